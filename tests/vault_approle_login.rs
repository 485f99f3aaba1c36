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
    world_with(peer, json!({"token_ttl": ttl, "token_max_ttl": max_ttl})).await
}

/// [`world`] with the role's token settings `role`.
async fn world_with(peer: &Peer, role: Value) -> World {
    world_denied(peer, role, &[]).await
}

/// [`world_with`], its token denied the paths `denied`; three secrets at `kv/denied/<n>`.
async fn world_denied(peer: &Peer, role: Value, denied: &[&str]) -> World {
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
    let mut policy = r#"path "*" { capabilities = ["read", "list", "update", "sudo"] }"#.to_owned();
    for path in denied {
        policy.push_str(&format!(" path \"{path}\" {{ capabilities = [\"deny\"] }}"));
    }
    for n in 0..3 {
        peer.ok(
            Some(ns.as_str()),
            Method::POST,
            &format!("kv/data/denied/{n}"),
            Some(json!({"data": {"v": "x"}})),
        )
        .await;
    }
    peer.ok(
        n,
        Method::PUT,
        "sys/policies/acl/keywarden",
        Some(json!({ "policy": policy })),
    )
    .await;
    peer.ok(
        n,
        Method::POST,
        "auth/approle/role/keywarden",
        Some({
            let mut role = role;
            role["token_policies"] = json!(["keywarden"]);
            role
        }),
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

/// The accessors of the live tokens AppRole logins in the namespace minted.
async fn live_logins(peer: &Peer, ns: &str) -> Vec<String> {
    let listed = peer
        .ok(Some(ns), vault::list(), "auth/token/accessors", None)
        .await;
    let mut live = Vec::new();
    for accessor in listed["data"]["keys"].as_array().expect("keys") {
        let (status, found) = peer
            .call(
                Some(ns),
                Method::POST,
                "auth/token/lookup-accessor",
                Some(json!({"accessor": accessor})),
            )
            .await;
        if status == 200 && found["data"]["path"] == "auth/approle/login" {
            live.push(accessor.as_str().expect("accessor").to_owned());
        }
    }
    live
}

async fn token_exists(peer: &Peer, ns: &str, accessor: &str) -> bool {
    let (status, _) = peer
        .call(
            Some(ns),
            Method::POST,
            "auth/token/lookup-accessor",
            Some(json!({"accessor": accessor})),
        )
        .await;
    status == 200
}

async fn secret_id_exists(peer: &Peer, ns: &str, accessor: &str) -> bool {
    let (status, _) = peer
        .call(
            Some(ns),
            Method::POST,
            "auth/approle/role/keywarden/secret-id-accessor/lookup",
            Some(json!({"secret_id_accessor": accessor})),
        )
        .await;
    status == 200
}

fn run(dir: &std::path::Path, args: &[&str], shown: &mut String) -> String {
    let output = common::keywarden_with_env(dir, args, &[("KEYWARDEN_LOG", "trace")]);
    let (out, err) = (common::stdout(&output), common::stderr(&output));
    shown.push_str(&out);
    shown.push_str(&err);
    assert!(output.status.success(), "{args:?}\n{out}\n{err}");
    out
}

/// Whether a scan still reads the namespace.
fn scans(dir: &std::path::Path, shown: &mut String) -> bool {
    let out = run(dir, &["scan", "--format", "json"], shown);
    let report: Value = serde_json::from_str(&out).expect("json");
    common::credential(&report, "kv/app/db").is_some()
}

#[tokio::test]
async fn a_containment_of_its_own_role_never_revokes_the_token_keywarden_calls_with() {
    let Some(peer) = vault::peer() else { return };
    let world = world(&peer, "1h", "2h").await;
    let ns = world.ns.as_str();
    // Another pipeline's secret-id of keywarden's role leaked, and was used.
    let made = peer
        .ok(
            Some(ns),
            Method::POST,
            "auth/approle/role/keywarden/secret-id",
            None,
        )
        .await;
    let leaked = made["data"]["secret_id"].as_str().expect("id").to_owned();
    let leaked_accessor = made["data"]["secret_id_accessor"]
        .as_str()
        .expect("accessor")
        .to_owned();
    let stolen = peer
        .ok(
            Some(ns),
            Method::POST,
            "auth/approle/login",
            Some(json!({"role_id": world.secrets[0], "secret_id": leaked})),
        )
        .await["auth"]["accessor"]
        .as_str()
        .expect("accessor")
        .to_owned();
    let mut shown = String::new();
    run(world.dir.path(), &["scan"], &mut shown);
    common::write(
        &world.dir.path().join("report.json"),
        &json!([{
            "RuleID": "generic-api-key", "File": "ci/deploy.sh", "StartLine": 3,
            "Commit": "0123abc", "Date": "2026-12-01T00:00:00Z",
            "Fingerprint": "0123abc:ci/deploy.sh:generic-api-key:3", "Secret": leaked,
        }])
        .to_string(),
    );
    let out = run(
        world.dir.path(),
        &["leak", "ingest", "report.json", "--output", "json"],
        &mut shown,
    );
    let ingested: Value = serde_json::from_str(&out).expect("json");
    assert!(
        !secret_id_exists(&peer, ns, &leaked_accessor).await,
        "the leaked secret-id is destroyed: {ingested:#}"
    );
    assert!(
        !token_exists(&peer, ns, &stolen).await,
        "the token its login minted is revoked"
    );
    // Of the role's tokens (the stolen one, the scan's and the ingest's own) only the one the
    // ingest called with is left: every other was revoked, and that one never.
    assert_eq!(
        live_logins(&peer, ns).await.len(),
        1,
        "keywarden's own token is never revoked: {ingested:#}"
    );
    assert_eq!(
        requests(&peer, ns, "auth/approle/login").await,
        3,
        "the stolen login, the scan's and the ingest's: keywarden never had to log in again"
    );
    assert!(
        scans(world.dir.path(), &mut shown),
        "keywarden still logs in"
    );
    assert!(!shown.contains(leaked.as_str()));
}

#[tokio::test]
async fn keywarden_refuses_to_rotate_or_destroy_the_secret_id_it_logs_in_with() {
    let Some(peer) = vault::peer() else { return };
    let world = world(&peer, "1h", "2h").await;
    let ns = world.ns.as_str();
    let accessor = peer
        .ok(
            Some(ns),
            Method::POST,
            "auth/approle/role/keywarden/secret-id/lookup",
            Some(json!({"secret_id": world.secrets[1]})),
        )
        .await["data"]["secret_id_accessor"]
        .as_str()
        .expect("accessor")
        .to_owned();
    let mut config =
        std::fs::read_to_string(world.dir.path().join("keywarden.yaml")).expect("config");
    config.push_str(
        "    rotation:\n      overlap: 0s\n      deliver:\n        - roles: \"*\"\n          \
         type: vault_kv\n          mount: kv/\n          path: \"approle/{role}\"\n",
    );
    common::write(&world.dir.path().join("keywarden.yaml"), &config);
    let mut shown = String::new();
    run(world.dir.path(), &["scan"], &mut shown);
    let id = format!("{ns}/auth/approle/role/keywarden/secret-id/{accessor}");
    let quiet = |args: &[&str], shown: &mut String| {
        let output =
            common::keywarden_with_env(world.dir.path(), args, &[("KEYWARDEN_LOG", "trace")]);
        shown.push_str(&common::stdout(&output));
        shown.push_str(&common::stderr(&output));
    };
    // A rotation by hand, and the containment of its leak (which destroys a leaked secret-id),
    // after someone logged in with it.
    quiet(&["rotate", &id, "--enforce"], &mut shown);
    let stolen = peer
        .ok(
            Some(ns),
            Method::POST,
            "auth/approle/login",
            Some(json!({"role_id": world.secrets[0], "secret_id": world.secrets[1]})),
        )
        .await["auth"]["accessor"]
        .as_str()
        .expect("accessor")
        .to_owned();
    common::write(
        &world.dir.path().join("report.json"),
        &json!([{
            "RuleID": "generic-api-key", "File": "ci/deploy.sh", "StartLine": 3,
            "Commit": "0123abc", "Date": "2026-12-01T00:00:00Z",
            "Fingerprint": "0123abc:ci/deploy.sh:generic-api-key:3", "Secret": world.secrets[1],
        }])
        .to_string(),
    );
    quiet(&["leak", "ingest", "report.json"], &mut shown);
    assert!(secret_id_exists(&peer, ns, &accessor).await, "still there");
    let out = run(
        world.dir.path(),
        &["actions", "list", "--format", "json"],
        &mut shown,
    );
    let records: Value = serde_json::from_str(&out).expect("json");
    let records = records.as_array().expect("records");
    let refused: Vec<&Value> = records
        .iter()
        .filter(|it| it["credential_external_id"] == id.as_str())
        .filter(|it| {
            it["reason"]
                .as_str()
                .is_some_and(|it| it.contains("secret_id_file"))
        })
        .collect();
    assert!(
        refused
            .iter()
            .any(|it| it["kind"] == "rotate" && it["status"] == "refused"),
        "the rotation is refused as keywarden's own login: {records:#?}"
    );
    let contained = refused
        .iter()
        .find(|it| it["kind"] == "revoke")
        .unwrap_or_else(|| panic!("the containment's revoke: {records:#?}"));
    assert_eq!(
        contained["status"], "failed",
        "a person must act: {contained:#}"
    );
    assert!(
        contained["reason"]
            .as_str()
            .is_some_and(|it| it.contains("NOT revoked")),
        "{contained:#}"
    );
    assert!(
        !token_exists(&peer, ns, &stolen).await,
        "what was minted with it is revoked all the same"
    );
    assert!(
        scans(world.dir.path(), &mut shown),
        "keywarden still logs in"
    );
}

#[tokio::test]
async fn a_token_that_died_early_is_replaced_by_a_fresh_login() {
    let Some(peer) = vault::peer() else { return };
    // Each token dies after three calls, long before its TTL: Vault answers it with a 403.
    let world = world_with(&peer, json!({"token_ttl": "1h", "token_num_uses": 3})).await;
    let mut shown = String::new();
    let out = run(world.dir.path(), &["scan", "--format", "json"], &mut shown);
    let report: Value = serde_json::from_str(&out).expect("json");
    assert!(common::credential(&report, "kv/app/db").is_some(), "{out}");
    assert_eq!(report["errors"], json!([]), "no call failed");
    assert!(
        requests(&peer, &world.ns, "auth/approle/login").await >= 2,
        "logged in again when its token was used up"
    );
}

#[tokio::test]
async fn a_refused_login_fails_the_scan_once_with_a_clear_message() {
    let Some(peer) = vault::peer() else { return };
    let world = world(&peer, "1h", "2h").await;
    let wrong = "0a1b2c3d-0000-4000-8000-00000000beef";
    common::write(&world.dir.path().join("secret-id"), &format!("{wrong}\n"));
    let output = common::keywarden_with_env(
        world.dir.path(),
        &["scan", "--format", "json"],
        &[("KEYWARDEN_LOG", "trace")],
    );
    let shown = format!("{}{}", common::stdout(&output), common::stderr(&output));
    assert!(
        shown.contains("keywarden's Vault login through `auth/approle/login` is refused"),
        "{shown}"
    );
    assert!(!shown.contains(wrong) && !shown.contains(world.secrets[0].as_str()));
    assert_eq!(
        requests(&peer, &world.ns, "auth/approle/login").await,
        1,
        "one attempt, not one per call"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_login_is_not_tried_again_before_its_back_off() {
    let Some(peer) = vault::peer() else { return };
    let world = world(&peer, "1h", "2h").await;
    common::write(
        &world.dir.path().join("secret-id"),
        "0a1b2c3d-0000-4000-8000-00000000beef\n",
    );
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
    for _ in 0..5 {
        let err = store.read(&at).await.expect_err("refused");
        assert!(err.to_string().contains("login"), "{err}");
    }
    assert_eq!(
        requests(&peer, &world.ns, "auth/approle/login").await,
        1,
        "five calls, one login: the next waits a second"
    );
    tokio::time::sleep(std::time::Duration::from_millis(1_200)).await;
    assert!(store.read(&at).await.is_err());
    assert_eq!(requests(&peer, &world.ns, "auth/approle/login").await, 2);
}

/// A scan whose token is denied the three secrets under `kv/denied/` (and `lookup-self` too,
/// with `lookup_self_denied`): its scan errors, its logins and what it showed.
async fn denied_scan(peer: &Peer, lookup_self_denied: bool) -> (usize, usize, String) {
    let mut denied = vec![
        "kv/metadata/denied/0",
        "kv/metadata/denied/1",
        "kv/metadata/denied/2",
    ];
    if lookup_self_denied {
        denied.push("auth/token/lookup-self");
    }
    let world = world_denied(peer, json!({"token_ttl": "1h"}), &denied).await;
    let mut shown = String::new();
    let out = run(world.dir.path(), &["scan", "--format", "json"], &mut shown);
    let report: Value = serde_json::from_str(&out).expect("json");
    let errors = report["errors"].as_array().map_or(0, Vec::len);
    let logins = requests(peer, &world.ns, "auth/approle/login").await;
    (errors, logins, shown)
}

#[tokio::test]
async fn a_denied_path_is_a_denial_and_costs_no_login() {
    let Some(peer) = vault::peer() else { return };
    let (errors, logins, _) = denied_scan(&peer, false).await;
    assert_eq!(errors, 3, "each denied path its scan error");
    assert_eq!(
        logins, 1,
        "lookup-self showed the token alive: no login again"
    );
}

#[tokio::test]
async fn without_lookup_self_denials_cost_one_login_at_most() {
    let Some(peer) = vault::peer() else { return };
    let (errors, logins, shown) = denied_scan(&peer, true).await;
    assert_eq!(errors, 3);
    assert_eq!(
        logins, 2,
        "a fresh token denied lookup-self too: denials are taken as denials from then on"
    );
    assert!(shown.contains("lookup-self"), "the log says what to grant");
}
