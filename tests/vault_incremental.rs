//! Incremental scans of a `vault` source against a real OpenBao dev server: between full
//! refreshes a role's secret-ids are looked up only where its list shows one the ledger does not
//! hold (OpenBao's audit log counts the lookups), the ledger's are handed over unchanged, one
//! destroyed is gone; at `full_refresh` every one is looked up again.

mod common;
mod vault;

use reqwest::Method;
use serde_json::{Value, json};

use crate::vault::Peer;

const LOOKUP: &str = "auth/approle/role/ci/secret-id-accessor/lookup";

/// A `vault` source on namespace `ns` reading OpenBao's audit log (`audit_extra` appended to
/// its block), with a full refresh every hour.
fn audited_config(peer: &Peer, ns: &str, audit_extra: &str) -> String {
    format!(
        "store:\n  path: ledger.db\nsources:\n  vault:\n    type: vault\n    address: {}\n    \
         token_file: {}\n    namespaces: [\"{ns}/\"]\n    full_refresh: 1h\n    audit_log:\n      \
         path: {}\n{audit_extra}",
        peer.addr,
        peer.token_file.display(),
        peer.audit_log.display(),
    )
}

/// Scans (JSON report) in `dir` and returns the report.
fn scan_report(dir: &std::path::Path) -> Value {
    let output = common::keywarden(dir, &["scan", "--format", "json"]);
    assert!(output.status.success(), "{}", common::stderr(&output));
    serde_json::from_slice(&output.stdout).expect("json")
}

/// The name and `field` of each of the report's credentials of `kind`, by name.
fn named(report: &Value, kind: &str, field: &str) -> Vec<(String, Value)> {
    let mut found: Vec<(String, Value)> = report["credentials"]
        .as_array()
        .expect("credentials")
        .iter()
        .filter(|it| it["kind"] == kind)
        .map(|it| {
            (
                it["name"].as_str().expect("name").to_owned(),
                it[field].clone(),
            )
        })
        .collect();
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found
}

/// The requests made in namespace `ns` that the audit log shows so far and `matches` takes.
fn requests(peer: &Peer, ns: &str, matches: impl Fn(&Value) -> bool) -> usize {
    let want = format!("{ns}/");
    peer.audit()
        .1
        .iter()
        .filter(|it| {
            it["type"] == "request"
                && it["request"]["namespace"]["path"] == want.as_str()
                && matches(&it["request"])
        })
        .count()
}

async fn new_secret_id(peer: &Peer, ns: &str) -> String {
    peer.ok(
        Some(ns),
        Method::POST,
        "auth/approle/role/ci/secret-id",
        Some(json!({"metadata": json!({"owner": "platform"}).to_string()})),
    )
    .await["data"]["secret_id_accessor"]
        .as_str()
        .expect("accessor")
        .to_owned()
}

/// The lookups of role `ci`'s secret-ids the audit log shows so far (keywarden's and the
/// test's own).
fn lookups(peer: &Peer, ns: &str) -> usize {
    requests(peer, ns, |it| it["path"] == LOOKUP)
}

/// Scans and returns the role's secret-ids in the report (external id → owner), and how many
/// lookups the scan made.
async fn scan(peer: &Peer, ns: &str, dir: &std::path::Path) -> (Vec<(String, Value)>, usize) {
    let before = lookups(peer, ns);
    let output = common::keywarden(dir, &["scan", "--format", "json"]);
    assert!(output.status.success(), "{}", common::stderr(&output));
    // The audit device writes as it answers; give the last lines a moment.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let report: Value = serde_json::from_slice(&output.stdout).expect("json");
    let mut ids: Vec<(String, Value)> = report["credentials"]
        .as_array()
        .expect("credentials")
        .iter()
        .filter(|it| it["kind"] == "secret_id")
        .map(|it| {
            (
                it["external_id"].as_str().expect("id").to_owned(),
                it["owner"].clone(),
            )
        })
        .collect();
    ids.sort_by(|a, b| a.0.cmp(&b.0));
    (ids, lookups(peer, ns) - before)
}

#[tokio::test]
async fn between_full_refreshes_only_new_secret_ids_are_looked_up() {
    let Some(peer) = vault::peer() else { return };
    let ns = peer.fresh_namespace().await;
    peer.enable(&ns, "auth", "approle", "approle", None).await;
    peer.ok(
        Some(&ns),
        Method::POST,
        "auth/approle/role/ci",
        Some(json!({"token_policies": ["default"]})),
    )
    .await;
    let mut accessors = Vec::new();
    for _ in 0..3 {
        accessors.push(new_secret_id(&peer, &ns).await);
    }
    let dir = tempfile::tempdir().expect("dir");
    let config = |full_refresh: &str| {
        format!(
            "store:\n  path: ledger.db\nsources:\n  vault:\n    type: vault\n    address: {}\n    \
             token_file: {}\n    namespaces: [\"{ns}/\"]\n    full_refresh: {full_refresh}\n",
            peer.addr,
            peer.token_file.display(),
        )
    };
    common::write(&dir.path().join("keywarden.yaml"), &config("1h"));
    let id = |accessor: &str| format!("{ns}/auth/approle/role/ci/secret-id/{accessor}");

    // The first scan is a full one: every secret-id looked up.
    let (first, looked) = scan(&peer, &ns, dir.path()).await;
    assert_eq!(looked, 3);
    assert_eq!(first.len(), 3);
    assert!(
        first.iter().all(|(_, owner)| owner == "platform"),
        "{first:?}"
    );

    // Nothing changed: nothing looked up, the same secret-ids as the ledger had them.
    let (second, looked) = scan(&peer, &ns, dir.path()).await;
    assert_eq!(looked, 0, "no lookups between full refreshes");
    assert_eq!(second, first);

    // One new and one destroyed: one lookup, and the destroyed one gone.
    let added = new_secret_id(&peer, &ns).await;
    peer.ok(
        Some(&ns),
        Method::POST,
        "auth/approle/role/ci/secret-id-accessor/destroy",
        Some(json!({"secret_id_accessor": accessors[0]})),
    )
    .await;
    let (third, looked) = scan(&peer, &ns, dir.path()).await;
    assert_eq!(looked, 1, "only the new one");
    let mut expected: Vec<String> = accessors[1..]
        .iter()
        .chain([&added])
        .map(|it| id(it))
        .collect();
    expected.sort();
    let got: Vec<&String> = third.iter().map(|(it, _)| it).collect();
    assert_eq!(got, expected.iter().collect::<Vec<_>>());

    // Full refresh due (0s): every one looked up again.
    common::write(&dir.path().join("keywarden.yaml"), &config("0s"));
    let (fourth, looked) = scan(&peer, &ns, dir.path()).await;
    assert_eq!(looked, 3);
    assert_eq!(fourth, third);
}

/// The metadata reads of KV secrets under `kv/` the audit log shows so far.
fn metadata_reads(peer: &Peer, ns: &str) -> usize {
    requests(peer, ns, |it| {
        it["operation"] == "read"
            && it["path"]
                .as_str()
                .is_some_and(|it| it.starts_with("kv/metadata/") && !it.ends_with('/'))
    })
}

#[tokio::test]
async fn kv_metadata_is_read_again_only_where_the_audit_log_shows_a_change() {
    let Some(peer) = vault::peer() else { return };
    let ns = peer.fresh_namespace().await;
    peer.enable(&ns, "mounts", "kv", "kv", Some(json!({"version": "2"})))
        .await;
    let write = |path: &'static str, value: &'static str| {
        let (peer, ns) = (&peer, ns.clone());
        async move {
            peer.ok(
                Some(&ns),
                Method::POST,
                &format!("kv/data/{path}"),
                Some(json!({"data": {"v": value}})),
            )
            .await;
        }
    };
    for path in ["app/a", "app/b", "c"] {
        write(path, "1").await;
    }
    let dir = tempfile::tempdir().expect("dir");
    common::write(
        &dir.path().join("keywarden.yaml"),
        &audited_config(&peer, &ns, "      device: file\n"),
    );
    let scan = |dir: &std::path::Path| named(&scan_report(dir), "kv_secret", "created_at");
    let settle = || tokio::time::sleep(std::time::Duration::from_millis(300));

    let before = metadata_reads(&peer, &ns);
    let first = scan(dir.path());
    settle().await;
    assert_eq!(
        metadata_reads(&peer, &ns) - before,
        3,
        "the first scan reads all"
    );
    assert_eq!(first.len(), 3);

    let before = metadata_reads(&peer, &ns);
    let second = scan(dir.path());
    settle().await;
    assert_eq!(
        metadata_reads(&peer, &ns) - before,
        0,
        "nothing changed, nothing read"
    );
    assert_eq!(second, first);

    // A new version of one, and a new secret: those two read, the rest as the ledger has them.
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    write("app/a", "2").await;
    write("d", "1").await;
    settle().await;
    let before = metadata_reads(&peer, &ns);
    let third = scan(dir.path());
    settle().await;
    assert_eq!(
        metadata_reads(&peer, &ns) - before,
        2,
        "the changed one and the new one"
    );
    assert_eq!(third.len(), 4);
    let created = |scan: &[(String, Value)], name: &str| {
        scan.iter()
            .find(|(it, _)| it == name)
            .map(|(_, at)| at.clone())
            .unwrap_or_else(|| panic!("{name} in {scan:?}"))
    };
    assert_ne!(
        created(&third, "kv/app/a"),
        created(&first, "kv/app/a"),
        "its current version's creation read again"
    );
    assert_eq!(created(&third, "kv/app/b"), created(&first, "kv/app/b"));
}

#[tokio::test]
async fn a_change_whose_metadata_read_failed_is_read_at_the_next_scan() {
    let Some(peer) = vault::peer() else { return };
    let ns = peer.fresh_namespace().await;
    let n = Some(ns.as_str());
    peer.enable(&ns, "mounts", "kv", "kv", Some(json!({"version": "2"})))
        .await;
    let write = |version: &'static str| {
        let (peer, ns) = (&peer, ns.clone());
        async move {
            peer.ok(
                Some(&ns),
                Method::POST,
                "kv/data/app/a",
                Some(json!({"data": {"v": version}})),
            )
            .await;
        }
    };
    let policy = |denied: bool| {
        let mut text =
            r#"path "*" { capabilities = ["read", "list", "update", "sudo"] }"#.to_owned();
        if denied {
            text.push_str(r#" path "kv/metadata/app/a" { capabilities = ["deny"] }"#);
        }
        json!({ "policy": text })
    };
    write("1").await;
    peer.ok(
        n,
        Method::PUT,
        "sys/policies/acl/scanner",
        Some(policy(false)),
    )
    .await;
    let token = peer
        .ok(
            n,
            Method::POST,
            "auth/token/create",
            Some(json!({"policies": ["scanner"], "no_default_policy": false})),
        )
        .await["auth"]["client_token"]
        .as_str()
        .expect("token")
        .to_owned();
    let dir = tempfile::tempdir().expect("dir");
    common::write(&dir.path().join("token"), &format!("{token}\n"));
    common::write(
        &dir.path().join("keywarden.yaml"),
        &format!(
            "store:\n  path: ledger.db\nsources:\n  vault:\n    type: vault\n    address: {}\n    \
             token_file: token\n    namespaces: [\"{ns}/\"]\n    full_refresh: 1h\n    audit_log:\n      \
             path: {}\n      device: file\n",
            peer.addr,
            peer.audit_log.display(),
        ),
    );
    let created = |dir: &std::path::Path| {
        let output = common::keywarden(dir, &["scan", "--format", "json"]);
        let report: Value = serde_json::from_slice(&output.stdout).expect("json");
        common::credential(&report, "kv/app/a")
            .map(|it| it["created_at"].clone())
            .unwrap_or_else(|| panic!("kv/app/a in {report:#}"))
    };
    let settle = || tokio::time::sleep(std::time::Duration::from_millis(300));
    let first = created(dir.path());
    settle().await;

    // A new version, whose metadata the next scan may not read: the ledger's record stands ...
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    write("2").await;
    peer.ok(
        n,
        Method::PUT,
        "sys/policies/acl/scanner",
        Some(policy(true)),
    )
    .await;
    settle().await;
    assert_eq!(created(dir.path()), first, "carried forward, not gone");
    settle().await;

    // ... and the scan after it, the log showing no change any more, still reads it.
    peer.ok(
        n,
        Method::PUT,
        "sys/policies/acl/scanner",
        Some(policy(false)),
    )
    .await;
    let third = created(dir.path());
    assert_ne!(
        third, first,
        "the version written while it could not be read"
    );
}

#[tokio::test]
async fn a_limited_use_secret_id_is_looked_up_at_every_scan_for_its_last_login() {
    let Some(peer) = vault::peer() else { return };
    let ns = peer.fresh_namespace().await;
    peer.enable(&ns, "auth", "approle", "approle", None).await;
    peer.ok(
        Some(&ns),
        Method::POST,
        "auth/approle/role/ci",
        Some(json!({"token_policies": ["default"]})),
    )
    .await;
    new_secret_id(&peer, &ns).await;
    let made = peer
        .ok(
            Some(&ns),
            Method::POST,
            "auth/approle/role/ci/secret-id",
            Some(json!({"num_uses": 5})),
        )
        .await;
    let limited = made["data"]["secret_id_accessor"]
        .as_str()
        .expect("accessor")
        .to_owned();
    let secret = made["data"]["secret_id"].as_str().expect("id").to_owned();
    let dir = tempfile::tempdir().expect("dir");
    common::write(
        &dir.path().join("keywarden.yaml"),
        &format!(
            "store:\n  path: ledger.db\nsources:\n  vault:\n    type: vault\n    address: {}\n    \
             token_file: {}\n    namespaces: [\"{ns}/\"]\n    full_refresh: 1h\n",
            peer.addr,
            peer.token_file.display(),
        ),
    );
    let last_used = |dir: &std::path::Path| {
        let output = common::keywarden(dir, &["scan", "--format", "json"]);
        assert!(output.status.success(), "{}", common::stderr(&output));
        let report: Value = serde_json::from_slice(&output.stdout).expect("json");
        common::credential(&report, &format!("ci/{limited}"))
            .map(|it| it["last_used"].clone())
            .unwrap_or_else(|| panic!("ci/{limited} in {report:#}"))
    };
    let before = lookups(&peer, &ns);
    assert_eq!(last_used(dir.path())["state"], "unknown", "never used");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        lookups(&peer, &ns) - before,
        2,
        "the first scan is a full one"
    );

    let role_id = peer
        .ok(Some(&ns), Method::GET, "auth/approle/role/ci/role-id", None)
        .await["data"]["role_id"]
        .as_str()
        .expect("role id")
        .to_owned();
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    peer.ok(
        Some(&ns),
        Method::POST,
        "auth/approle/login",
        Some(json!({"role_id": role_id, "secret_id": secret})),
    )
    .await;
    let before = lookups(&peer, &ns);
    let used = last_used(dir.path());
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        lookups(&peer, &ns) - before,
        1,
        "only the limited-use one, between full refreshes"
    );
    assert!(
        used["at"].is_string(),
        "its login since the last scan: {used}"
    );
}

#[tokio::test]
async fn with_changes_off_every_scan_reads_all_kv_metadata() {
    let Some(peer) = vault::peer() else { return };
    let ns = peer.fresh_namespace().await;
    peer.enable(&ns, "mounts", "kv", "kv", Some(json!({"version": "2"})))
        .await;
    for path in ["a", "b"] {
        peer.ok(
            Some(&ns),
            Method::POST,
            &format!("kv/data/{path}"),
            Some(json!({"data": {"v": "1"}})),
        )
        .await;
    }
    let dir = tempfile::tempdir().expect("dir");
    common::write(
        &dir.path().join("keywarden.yaml"),
        &audited_config(&peer, &ns, "      changes: false\n"),
    );
    for scan in ["first", "second"] {
        let before = metadata_reads(&peer, &ns);
        let output = common::keywarden(dir.path(), &["scan"]);
        assert!(output.status.success(), "{}", common::stderr(&output));
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert_eq!(metadata_reads(&peer, &ns) - before, 2, "{scan} scan");
    }
}

/// The reads of a Transit key (not the list) the audit log shows so far in namespace `ns`.
fn transit_key_reads(peer: &Peer, ns: &str) -> usize {
    requests(peer, ns, |it| {
        it["operation"] == "read"
            && it["path"]
                .as_str()
                .is_some_and(|it| it.starts_with("transit/keys/") && !it.ends_with('/'))
    })
}

#[tokio::test]
async fn transit_keys_are_read_again_only_when_the_audit_log_shows_a_change_or_they_rotate_themselves()
 {
    let Some(peer) = vault::peer() else { return };
    let ns = peer.fresh_namespace().await;
    peer.enable(&ns, "mounts", "transit", "transit", None).await;
    for (name, body) in [
        ("a", json!({"type": "ecdsa-p256"})),
        ("b", json!({"type": "ecdsa-p256"})),
        // Vault rotates this one itself, logging no request.
        (
            "c",
            json!({"type": "ecdsa-p256", "auto_rotate_period": "1h"}),
        ),
    ] {
        peer.ok(
            Some(&ns),
            Method::POST,
            &format!("transit/keys/{name}"),
            Some(body),
        )
        .await;
    }
    peer.ok(
        Some(&ns),
        Method::PUT,
        "sys/policies/acl/sign-a",
        Some(json!({"policy": "path \"transit/sign/a\" { capabilities = [\"update\"] }"})),
    )
    .await;
    peer.ok(
        Some(&ns),
        Method::POST,
        "auth/token/create",
        Some(json!({"policies": ["sign-a"], "display_name": "signer-a"})),
    )
    .await;
    let dir = tempfile::tempdir().expect("dir");
    common::write(
        &dir.path().join("keywarden.yaml"),
        &audited_config(&peer, &ns, "      device: file\n"),
    );
    // The Transit versions in the report (name → creation, key id), and which versions a token
    // holds by its policy.
    let scan = || {
        let report = scan_report(dir.path());
        let versions = (
            named(&report, "transit_key_version", "created_at"),
            named(&report, "transit_key_version", "fingerprints"),
        );
        let mut held: Vec<String> = report["signers"]
            .as_array()
            .expect("signers")
            .iter()
            .filter(|it| {
                it["holders"]
                    .as_array()
                    .is_some_and(|h| h.iter().any(|h| h["via"] == "policy"))
            })
            .flat_map(|it| {
                it["credentials"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|c| c["name"].as_str().unwrap_or_default().to_owned())
                    .collect::<Vec<_>>()
            })
            .collect();
        held.sort();
        (versions, held)
    };
    let settle = || tokio::time::sleep(std::time::Duration::from_millis(300));
    type Versions = (Vec<(String, Value)>, Vec<(String, Value)>);
    let names =
        |versions: &Versions| -> Vec<String> { versions.0.iter().map(|it| it.0.clone()).collect() };

    let before = transit_key_reads(&peer, &ns);
    let (first, held) = scan();
    settle().await;
    assert_eq!(
        transit_key_reads(&peer, &ns) - before,
        3,
        "the first scan reads all"
    );
    assert_eq!(names(&first), ["a v1", "b v1", "c v1"]);
    assert_eq!(held, ["a v1"], "the token's policy signs with a");

    let before = transit_key_reads(&peer, &ns);
    let (second, held) = scan();
    settle().await;
    assert_eq!(
        transit_key_reads(&peer, &ns) - before,
        1,
        "only the key that rotates itself is read"
    );
    assert_eq!(
        second, first,
        "the others handed over as the ledger has them"
    );
    assert_eq!(held, ["a v1"], "and their holders found as before");

    peer.ok(Some(&ns), Method::POST, "transit/keys/a/rotate", None)
        .await;
    settle().await;
    let before = transit_key_reads(&peer, &ns);
    let (third, held) = scan();
    settle().await;
    assert_eq!(
        transit_key_reads(&peer, &ns) - before,
        2,
        "the rotated key and the one that rotates itself"
    );
    assert_eq!(names(&third), ["a v1", "a v2", "b v1", "c v1"]);
    assert_eq!(held, ["a v1", "a v2"]);

    // The policy now signs with b, then with nothing: no token changed, so none is looked up,
    // but what the token holds follows the policy.
    for (policy, holds) in [
        (
            "path \"transit/sign/b\" { capabilities = [\"update\"] }",
            vec!["b v1"],
        ),
        (
            "path \"transit/keys/*\" { capabilities = [\"read\"] }",
            vec![],
        ),
    ] {
        peer.ok(
            Some(&ns),
            Method::PUT,
            "sys/policies/acl/sign-a",
            Some(json!({ "policy": policy })),
        )
        .await;
        let before = token_lookups(&peer, &ns);
        let (_, held) = scan();
        settle().await;
        assert_eq!(
            token_lookups(&peer, &ns) - before,
            0,
            "the token was not looked up"
        );
        assert_eq!(held, holds, "{policy}");
    }
}

/// The token lookups (by accessor) the audit log shows so far in namespace `ns`.
fn token_lookups(peer: &Peer, ns: &str) -> usize {
    requests(peer, ns, |it| it["path"] == "auth/token/lookup-accessor")
}

#[tokio::test]
async fn tokens_are_looked_up_again_only_when_the_audit_log_shows_them_used_renewed_or_an_entity_changed()
 {
    let Some(peer) = vault::peer() else { return };
    let ns = peer.fresh_namespace().await;
    let mut made = Vec::new();
    for name in ["used", "renewed", "revoked"] {
        let auth = peer
            .ok(
                Some(&ns),
                Method::POST,
                "auth/token/create",
                Some(json!({"policies": ["default"], "display_name": name, "ttl": "1h"})),
            )
            .await["auth"]
            .clone();
        made.push((
            auth["client_token"].as_str().expect("token").to_owned(),
            auth["accessor"].as_str().expect("accessor").to_owned(),
        ));
    }
    let dir = tempfile::tempdir().expect("dir");
    common::write(
        &dir.path().join("keywarden.yaml"),
        &audited_config(&peer, &ns, "      device: file\n"),
    );
    // The tokens in the report: display name → expiry.
    let scan = || named(&scan_report(dir.path()), "token", "expires_at");
    let settle = || tokio::time::sleep(std::time::Duration::from_millis(300));
    let lookups_of = |before: usize| {
        let (peer, ns) = (&peer, ns.clone());
        async move {
            settle().await;
            token_lookups(peer, &ns) - before
        }
    };

    let before = token_lookups(&peer, &ns);
    let first = scan();
    assert_eq!(lookups_of(before).await, 3, "the first scan looks up all");
    let names: Vec<&str> = first.iter().map(|it| it.0.as_str()).collect();
    assert_eq!(names, ["token-renewed", "token-revoked", "token-used"]);

    let before = token_lookups(&peer, &ns);
    let second = scan();
    assert_eq!(
        lookups_of(before).await,
        0,
        "nothing changed, nothing looked up"
    );
    assert_eq!(second, first);

    // One token makes a request; another is renewed by its accessor a second later.
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    let (status, _) = {
        let url = format!("{}/v1/auth/token/lookup-self", peer.addr);
        let response = peer
            .http
            .get(&url)
            .header("X-Vault-Token", &made[0].0)
            .header("X-Vault-Namespace", &ns)
            .send()
            .await
            .expect("lookup-self");
        (response.status().as_u16(), ())
    };
    assert_eq!(status, 200);
    peer.ok(
        Some(&ns),
        Method::POST,
        "auth/token/renew-accessor",
        Some(json!({"accessor": made[1].1, "increment": "2h"})),
    )
    .await;
    let before = token_lookups(&peer, &ns);
    let third = scan();
    assert_eq!(
        lookups_of(before).await,
        2,
        "the used one and the renewed one"
    );
    let expiry = |scan: &[(String, Value)], name: &str| {
        scan.iter()
            .find(|it| it.0 == name)
            .map(|it| it.1.clone())
            .unwrap_or_else(|| panic!("{name} in {scan:?}"))
    };
    assert_ne!(
        expiry(&third, "token-renewed"),
        expiry(&first, "token-renewed"),
        "its new expiry read"
    );
    assert_eq!(
        expiry(&third, "token-revoked"),
        expiry(&first, "token-revoked")
    );

    // An entity made: the policies tokens inherit may have changed, so all are looked up.
    peer.ok(
        Some(&ns),
        Method::POST,
        "identity/entity",
        Some(json!({"name": "someone"})),
    )
    .await;
    let before = token_lookups(&peer, &ns);
    scan();
    assert_eq!(
        lookups_of(before).await,
        3,
        "an identity change looks up all"
    );

    // One revoked by its accessor is no longer listed: gone, with nothing looked up.
    peer.ok(
        Some(&ns),
        Method::POST,
        "auth/token/revoke-accessor",
        Some(json!({"accessor": made[2].1})),
    )
    .await;
    let before = token_lookups(&peer, &ns);
    let last = scan();
    assert_eq!(lookups_of(before).await, 0);
    let names: Vec<&str> = last.iter().map(|it| it.0.as_str()).collect();
    assert_eq!(names, ["token-renewed", "token-used"]);
}
