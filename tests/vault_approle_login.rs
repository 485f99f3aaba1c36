//! keywarden's own AppRole login against a real OpenBao dev server: a scan logs in with the role
//! id and secret id read from files (in no output, log or row, nor the token it got), and a
//! long-lived connector renews its token once two thirds of its TTL have passed and logs in again
//! when its maximum TTL is near, without a call failing.

mod common;
mod vault;

use std::sync::Arc;

use keywarden_connector::{Connector, SecretPath};
use reqwest::Method;
use serde_json::{Value, json};

use crate::vault::Peer;

struct World {
    ns: String,
    dir: tempfile::TempDir,
    secrets: Vec<String>,
}

/// A namespace with KV v2 at `kv/` (one secret) and AppRole role `keywarden` whose tokens may
/// read everything in it, with `ttl` and `max_ttl`; its role id and a secret id in files.
async fn world(peer: &Peer, ttl: &str, max_ttl: &str) -> World {
    let ns = peer.fresh_namespace().await;
    let n = Some(ns.as_str());
    peer.enable(&ns, "mounts", "kv", "kv", Some(json!({"version": "2"})))
        .await;
    peer.enable(&ns, "auth", "approle", "approle", None).await;
    peer.ok(
        n,
        Method::POST,
        "kv/data/app/db",
        Some(json!({"data": {"password": "kv-value-1"}})),
    )
    .await;
    peer.ok(
        n,
        Method::PUT,
        "sys/policies/acl/keywarden",
        Some(
            json!({"policy": r#"path "*" { capabilities = ["read", "list", "update", "sudo"] }"#}),
        ),
    )
    .await;
    peer.ok(
        n,
        Method::POST,
        "auth/approle/role/keywarden",
        Some(json!({"token_policies": ["keywarden"], "token_ttl": ttl, "token_max_ttl": max_ttl})),
    )
    .await;
    let role_id = peer
        .ok(n, Method::GET, "auth/approle/role/keywarden/role-id", None)
        .await["data"]["role_id"]
        .as_str()
        .expect("role id")
        .to_owned();
    let secret_id = peer
        .ok(
            n,
            Method::POST,
            "auth/approle/role/keywarden/secret-id",
            None,
        )
        .await["data"]["secret_id"]
        .as_str()
        .expect("secret id")
        .to_owned();
    let dir = tempfile::tempdir().expect("dir");
    common::write(&dir.path().join("role-id"), &format!("{role_id}\n"));
    common::write(&dir.path().join("secret-id"), &format!("{secret_id}\n"));
    common::write(
        &dir.path().join("keywarden.yaml"),
        &format!(
            "store:\n  path: ledger.db\nsources:\n  vault:\n    type: vault\n    address: {}\n    \
             namespaces: [\"{ns}/\"]\n    approle:\n      namespace: \"{ns}/\"\n      \
             role_id_file: role-id\n      secret_id_file: secret-id\n",
            peer.addr
        ),
    );
    World {
        ns,
        dir,
        secrets: vec![role_id, secret_id],
    }
}

/// Something in `text` shaped like a Vault or OpenBao service token (`s.` or `hvs.` and at least
/// 20 letters and digits), if anything is.
fn token_like(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    (0..bytes.len()).find_map(|at| {
        let rest = text.get(at..)?;
        let body = rest
            .strip_prefix("hvs.")
            .or_else(|| rest.strip_prefix("s."))?;
        let preceded = at > 0 && bytes[at - 1].is_ascii_alphanumeric();
        let run = body.bytes().take_while(u8::is_ascii_alphanumeric).count();
        (!preceded && run >= 20).then(|| rest[..rest.len() - body.len() + run].to_owned())
    })
}

/// The audit log's requests to `path` in the namespace.
async fn requests(peer: &Peer, ns: &str, path: &str) -> usize {
    peer.audit_entries(Some(ns), path)
        .await
        .iter()
        .filter(|it| it["type"] == "request")
        .count()
}

#[tokio::test]
async fn a_scan_logs_in_with_the_approle_and_shows_none_of_it() {
    let Some(peer) = vault::peer() else { return };
    let world = world(&peer, "1h", "2h").await;
    let output = common::keywarden_with_env(
        world.dir.path(),
        &["scan", "--format", "json"],
        &[("KEYWARDEN_LOG", "trace")],
    );
    let (out, err) = (common::stdout(&output), common::stderr(&output));
    assert!(output.status.success(), "{out}\n{err}");
    let report: Value = serde_json::from_str(&out).expect("json");
    assert!(
        common::credential(&report, "kv/app/db").is_some(),
        "the token it got reads the namespace"
    );
    assert_eq!(requests(&peer, &world.ns, "auth/approle/login").await, 1);
    let tokens: Vec<String> = peer
        .audit_entries(Some(&world.ns), "auth/approle/login")
        .await
        .iter()
        .filter_map(|it| it["auth"]["accessor"].as_str().map(str::to_owned))
        .collect();
    assert!(!tokens.is_empty());
    let database = common::database_text(world.dir.path());
    for secret in &world.secrets {
        assert!(!out.contains(secret.as_str()) && !err.contains(secret.as_str()));
        assert!(
            !database.contains(secret.as_str()),
            "{} in the database",
            if secret == &world.secrets[0] {
                "role id"
            } else {
                "secret id"
            }
        );
    }
    assert!(err.contains("TRACE"), "the log is at trace level");
    assert_eq!(token_like(&out), None, "no token in the output");
    assert_eq!(token_like(&err), None, "no token in the trace log");
    assert_eq!(token_like(&database), None, "no token in the database");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_token_is_renewed_before_it_expires_and_replaced_near_its_maximum() {
    let Some(peer) = vault::peer() else { return };
    let world = world(&peer, "3s", "5s").await;
    let config: keywarden_vault::VaultConfig = serde_saphyr::from_str(&format!(
        "address: {}\nnamespaces: [\"{}/\"]\napprole:\n  namespace: \"{}/\"\n  role_id_file: \
         role-id\n  secret_id_file: secret-id\n",
        peer.addr, world.ns, world.ns
    ))
    .expect("config");
    let connector: Arc<dyn Connector> =
        Arc::new(config.build("vault", world.dir.path()).expect("build"));
    let store = connector.secret_store().expect("a secret store");
    let at = SecretPath {
        namespace: format!("{}/", world.ns),
        mount: "kv/".to_owned(),
        path: "app/db".to_owned(),
    };
    // 0 s: login (TTL 3 s, renewed after 2 s); 2.2 s: renewed (2.8 s granted); 4.4 s: a renewal
    // would grant 0.6 s, less than half the login's: logged in again. Every read succeeds,
    // the last after the first token's TTL and its maximum TTL are over.
    for wait in [0, 2_200, 2_200, 1_000] {
        tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
        let read = store.read(&at).await.expect("read with a live token");
        assert!(read.is_some());
    }
    assert_eq!(requests(&peer, &world.ns, "auth/approle/login").await, 2);
    assert!(requests(&peer, &world.ns, "auth/token/renew-self").await >= 1);
}
