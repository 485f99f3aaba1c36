//! An AWS access key rotation delivering its new key into Vault KV v2, against moto and OpenBao
//! together: the new key lands in the configured KV secret (check-and-set, one version even when
//! the process dies right after the write), works, and is in no log, row or output; a rule that
//! names no `vault` source of the config is refused at load, naming the field.

mod common;
mod moto;
mod vault;

use reqwest::Method;
use serde_json::{Value, json};

use common::{stderr, stdout};
use moto::{Account, Workspace};
use vault::Peer;

/// A namespace with a KV v2 mount `kv/` and one secret of someone else's, left alone.
async fn kv_namespace(peer: &Peer) -> String {
    let ns = peer.fresh_namespace().await;
    peer.enable(&ns, "mounts", "kv", "kv", Some(json!({"version": "2"})))
        .await;
    peer.ok(
        Some(&ns),
        Method::POST,
        "kv/data/other",
        Some(json!({"data": {"token": "not-keywardens"}})),
    )
    .await;
    ns
}

/// A workspace for `account` delivering every user's key to `<ns>/kv/aws/{user}`, with the
/// OpenBao namespace as a second source.
fn workspace(account: &Account, peer: &Peer, ns: &str) -> Workspace {
    let ws = Workspace::new(
        account,
        &format!(
            "    rotation:\n      overlap: 0s\n      grace: 0s\n      deliver:\n        - users: \"*\"\n          type: vault_kv\n          source: vault\n          namespace: \"{ns}/\"\n          mount: kv/\n          path: \"aws/{{user}}\"\n"
        ),
    );
    let file = ws.path().join("keywarden.yaml");
    let mut config = std::fs::read_to_string(&file).expect("config");
    config.push_str(&format!(
        "  vault:\n    type: vault\n    address: {}\n    token_file: {}\n    namespaces: [\"{ns}/\"]\n",
        peer.addr,
        peer.token_file.display()
    ));
    std::fs::write(&file, config).expect("config");
    ws
}

/// The KV secret's current fields and version.
async fn delivered(peer: &Peer, ns: &str, user: &str) -> (Value, u64) {
    let got = peer
        .ok(Some(ns), Method::GET, &format!("kv/data/aws/{user}"), None)
        .await;
    let version = got["data"]["metadata"]["version"]
        .as_u64()
        .expect("version");
    (got["data"]["data"].clone(), version)
}

#[cfg(feature = "crash-points")]
async fn versions(peer: &Peer, ns: &str, user: &str) -> u64 {
    peer.ok(
        Some(ns),
        Method::GET,
        &format!("kv/metadata/aws/{user}"),
        None,
    )
    .await["data"]["current_version"]
        .as_u64()
        .expect("current version")
}

#[tokio::test(flavor = "multi_thread")]
async fn an_aws_rotation_delivers_the_new_key_into_vault_kv_once_and_nowhere_else() {
    let Some(account) = Account::new().await else {
        return;
    };
    let Some(peer) = vault::peer() else { return };
    let ns = kv_namespace(&peer).await;
    let arn = account.user("ci-deploy", "/", &[]).await;
    let old = account.key("ci-deploy", 120, Some(1)).await;
    let ws = workspace(&account, &peer, &ns);
    ws.scan(&account);

    let dry = ws.ok(&account, &["rotate", &old]);
    let text = stdout(&dry);
    assert!(
        text.contains(&format!(
            "deliver it to vault_kv vault {ns}/kv/aws/ci-deploy"
        )),
        "{text}"
    );

    let out = ws.run(
        &account,
        &["rotate", &old, "--enforce", "--format", "json"],
        &[("KEYWARDEN_LOG", "trace")],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let records: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(records[0]["status"], "done", "{records:#}");

    let keys = account.keys("ci-deploy").await;
    assert_eq!(keys.len(), 1, "old key deleted: {keys:?}");
    let new = keys.keys().next().expect("key").clone();
    assert_ne!(new, old);
    let (fields, version) = delivered(&peer, &ns, "ci-deploy").await;
    assert_eq!(version, 1, "written once");
    assert_eq!(fields["AccessKeyId"], new.as_str(), "{fields:#}");
    assert_eq!(fields["Version"], "1");
    assert_eq!(
        account.whoami(&fields).await,
        arn,
        "the delivered key works"
    );
    let other = peer.ok(Some(&ns), Method::GET, "kv/data/other", None).await;
    assert_eq!(other["data"]["data"]["token"], "not-keywardens");

    // The secret: in no output, trace log or row.
    let secret = fields["SecretAccessKey"].as_str().expect("secret");
    assert!(!stdout(&out).contains(secret) && !stderr(&out).contains(secret));
    let database = common::database_text(ws.path());
    assert!(!database.contains(secret));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_right_after_the_kv_write_resumes_without_writing_it_again() {
    let Some(account) = Account::new().await else {
        return;
    };
    let Some(peer) = vault::peer() else { return };
    #[cfg(not(feature = "crash-points"))]
    {
        if std::env::var("KEYWARDEN_REQUIRE_PEERS").is_ok_and(|it| it == "1") {
            panic!("the crash test needs `--features crash-points`");
        }
        let _ = (account, peer);
        eprintln!("skipped: built without the crash-points feature");
    }
    #[cfg(feature = "crash-points")]
    {
        let ns = kv_namespace(&peer).await;
        account.user("ci-crash", "/", &[]).await;
        let old = account.key("ci-crash", 120, Some(1)).await;
        let ws = workspace(&account, &peer, &ns);
        ws.short_lease();
        ws.scan(&account);
        let crashed = ws.run(
            &account,
            &["rotate", &old, "--enforce"],
            &[("KEYWARDEN_CRASH_AFTER", "deliver")],
        );
        assert_eq!(crashed.status.code(), None, "{}", stderr(&crashed));
        assert_eq!(versions(&peer, &ns, "ci-crash").await, 1);
        std::thread::sleep(moto::SHORT_LEASE);
        ws.ok(&account, &["actions", "resume"]);
        let keys = account.keys("ci-crash").await;
        assert_eq!(keys.len(), 1, "{keys:?}");
        let new = keys.keys().next().expect("key");
        let (fields, version) = delivered(&peer, &ns, "ci-crash").await;
        assert_eq!(version, 1, "the resumed rotation did not write again");
        assert_eq!(fields["AccessKeyId"], new.as_str());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_kv_delivery_to_a_source_that_is_not_vault_is_refused_at_load() {
    let Some(account) = Account::new().await else {
        return;
    };
    let ws = Workspace::new(
        &account,
        "    rotation:\n      deliver:\n        - users: \"*\"\n          type: vault_kv\n          source: nope\n          mount: kv/\n          path: \"aws/{user}\"\n",
    );
    let out = ws.run(&account, &["scan"], &[]);
    assert_ne!(out.status.code(), Some(0));
    let err = stderr(&out);
    assert!(
        err.contains("sources.aws: rotation.deliver[0].source: `nope` is not a `vault` source"),
        "{err}"
    );
    assert!(!ws.path().join("ledger.db").exists(), "nothing changed");
}
