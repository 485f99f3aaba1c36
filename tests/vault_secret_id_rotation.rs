//! Rotation of an AppRole secret-id against a real OpenBao dev server: a new secret-id with the
//! old one's metadata is delivered with the role id into KV v2 (and works), the old one is
//! destroyed after the overlap with the tokens its logins minted before, and what another
//! secret-id of the role minted is never touched; a crash after each step resumes to one new
//! secret-id, delivered once. No secret-id or token reaches the output, the trace log or the
//! database.

mod common;
mod vault;

use reqwest::Method;
use serde_json::{Value, json};

use crate::vault::Peer;

struct Role {
    ns: String,
    role_id: String,
    /// The secret-id rotated: accessor, value.
    old: (String, String),
    /// Token accessors its logins minted.
    minted: Vec<String>,
    secrets: Vec<String>,
}

async fn login(peer: &Peer, ns: &str, role_id: &str, secret_id: &str) -> (String, String) {
    let login = peer
        .ok(
            Some(ns),
            Method::POST,
            "auth/approle/login",
            Some(json!({"role_id": role_id, "secret_id": secret_id})),
        )
        .await;
    let field = |name: &str| {
        login["auth"][name]
            .as_str()
            .unwrap_or_else(|| panic!("{name}"))
            .to_owned()
    };
    (field("accessor"), field("client_token"))
}

async fn new_secret_id(peer: &Peer, ns: &str, metadata: Value) -> (String, String) {
    let made = peer
        .ok(
            Some(ns),
            Method::POST,
            "auth/approle/role/ci/secret-id",
            Some(json!({"metadata": metadata.to_string()})),
        )
        .await;
    (
        made["data"]["secret_id_accessor"]
            .as_str()
            .expect("accessor")
            .to_owned(),
        made["data"]["secret_id"].as_str().expect("id").to_owned(),
    )
}

/// The metadata of a secret-id an earlier rotation by keywarden made: its mark makes it unique.
fn marked() -> Value {
    json!({"owner": "platform", "keywarden_replaces": "an-earlier-one", "keywarden_action": "keywarden-action-0"})
}

/// A namespace with KV v2 at `kv/` and AppRole role `ci`, whose secret-id (made by an earlier
/// rotation, owner `platform`) logged in twice.
async fn role(peer: &Peer) -> Role {
    role_with(peer, marked()).await
}

/// [`role`] with the rotated secret-id's `metadata`.
async fn role_with(peer: &Peer, metadata: Value) -> Role {
    let ns = peer.fresh_namespace().await;
    peer.enable(&ns, "mounts", "kv", "kv", Some(json!({"version": "2"})))
        .await;
    peer.enable(&ns, "auth", "approle", "approle", None).await;
    peer.ok(
        Some(&ns),
        Method::POST,
        "auth/approle/role/ci",
        Some(json!({"token_policies": ["default"], "token_ttl": "1h"})),
    )
    .await;
    let role_id = peer
        .ok(Some(&ns), Method::GET, "auth/approle/role/ci/role-id", None)
        .await["data"]["role_id"]
        .as_str()
        .expect("role id")
        .to_owned();
    let old = new_secret_id(peer, &ns, metadata).await;
    let mut secrets = vec![old.1.clone()];
    let mut minted = Vec::new();
    for _ in 0..2 {
        let (accessor, token) = login(peer, &ns, &role_id, &old.1).await;
        minted.push(accessor);
        secrets.push(token);
    }
    // Vault shows a token's creation to the second: a token of the second the new secret-id is
    // made in may be the new one's, and is kept. These are older.
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    Role {
        ns,
        role_id,
        old,
        minted,
        secrets,
    }
}

fn config(peer: &Peer, ns: &str) -> String {
    format!(
        "store:\n  path: ledger.db\n  action_lease: 1500ms\nsources:\n  vault:\n    type: vault\n    \
         address: {}\n    token_file: {}\n    namespaces: [\"{ns}/\"]\n    rotation:\n      \
         overlap: 0s\n      deliver:\n        - roles: \"*\"\n          type: vault_kv\n          \
         mount: kv/\n          path: \"approle/{{role}}\"\n",
        peer.addr,
        peer.token_file.display(),
    )
}

fn run(dir: &std::path::Path, args: &[&str], shown: &mut String) -> String {
    let output = common::keywarden_with_env(dir, args, &[("KEYWARDEN_LOG", "trace")]);
    let (out, err) = (common::stdout(&output), common::stderr(&output));
    shown.push_str(&out);
    shown.push_str(&err);
    assert!(output.status.success(), "{args:?}\n{out}\n{err}");
    out
}

async fn exists(peer: &Peer, ns: &str, path: &str, body: Value) -> bool {
    peer.call(Some(ns), Method::POST, path, Some(body)).await.0 == 200
}

async fn secret_id_exists(peer: &Peer, ns: &str, accessor: &str) -> bool {
    exists(
        peer,
        ns,
        "auth/approle/role/ci/secret-id-accessor/lookup",
        json!({"secret_id_accessor": accessor}),
    )
    .await
}

async fn token_exists(peer: &Peer, ns: &str, accessor: &str) -> bool {
    exists(
        peer,
        ns,
        "auth/token/lookup-accessor",
        json!({"accessor": accessor}),
    )
    .await
}

async fn secret_ids(peer: &Peer, ns: &str) -> Vec<String> {
    let (status, body) = peer
        .call(
            Some(ns),
            vault::list(),
            "auth/approle/role/ci/secret-id",
            None,
        )
        .await;
    if status == 404 {
        return Vec::new();
    }
    let mut ids: Vec<String> = body["data"]["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .filter_map(|it| it.as_str().map(str::to_owned))
        .collect();
    ids.sort();
    ids
}

/// The KV secret's fields and its current version.
async fn delivered(peer: &Peer, ns: &str) -> (Value, u64) {
    let got = peer
        .ok(Some(ns), Method::GET, "kv/data/approle/ci", None)
        .await;
    (
        got["data"]["data"].clone(),
        got["data"]["metadata"]["version"]
            .as_u64()
            .expect("version"),
    )
}

#[tokio::test]
async fn a_secret_id_rotation_delivers_a_working_one_and_revokes_the_old_with_its_tokens() {
    let Some(peer) = vault::peer() else { return };
    let role = role(&peer).await;
    let ns = role.ns.as_str();
    let dir = tempfile::tempdir().expect("dir");
    common::write(&dir.path().join("keywarden.yaml"), &config(&peer, ns));
    let mut shown = String::new();
    run(dir.path(), &["scan"], &mut shown);
    let old_id = format!("{ns}/auth/approle/role/ci/secret-id/{}", role.old.0);

    let plan = run(dir.path(), &["rotate", &old_id], &mut shown);
    assert!(plan.contains("create a new secret-id for ci"), "{plan}");
    assert!(
        plan.contains(&format!("deliver it to vault_kv {ns}/kv/approle/ci")),
        "{plan}"
    );
    assert_eq!(
        secret_ids(&peer, ns).await,
        std::slice::from_ref(&role.old.0),
        "dry run"
    );

    let out = run(
        dir.path(),
        &["rotate", &old_id, "--enforce", "--format", "json"],
        &mut shown,
    );
    let records: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(records[0]["status"], "done", "{records:#}");

    // The new secret-id: delivered once with the role id, with the old one's metadata; it works.
    let (fields, version) = delivered(&peer, ns).await;
    assert_eq!(version, 1);
    assert_eq!(fields["role_id"], role.role_id.as_str());
    let accessor = fields["secret_id_accessor"].as_str().expect("accessor");
    assert_ne!(accessor, role.old.0);
    assert_eq!(secret_ids(&peer, ns).await, [accessor.to_owned()]);
    let new = peer
        .ok(
            Some(ns),
            Method::POST,
            "auth/approle/role/ci/secret-id-accessor/lookup",
            Some(json!({"secret_id_accessor": accessor})),
        )
        .await;
    let mut metadata = new["data"]["metadata"].clone();
    let action = metadata["keywarden_action"].take();
    assert!(
        action
            .as_str()
            .is_some_and(|it| it.starts_with("keywarden-action-1-")),
        "the rotation that made it: {action}"
    );
    metadata
        .as_object_mut()
        .expect("metadata")
        .remove("keywarden_action");
    assert_eq!(
        metadata,
        json!({"owner": "platform", "keywarden_replaces": role.old.0}),
        "the old one's metadata, and which one it replaced"
    );
    let secret = fields["secret_id"].as_str().expect("secret id").to_owned();
    let (kept, token) = login(&peer, ns, &role.role_id, &secret).await;

    // The old one is destroyed, and the tokens it minted are revoked.
    assert!(!secret_id_exists(&peer, ns, &role.old.0).await);
    for minted in &role.minted {
        assert!(!token_exists(&peer, ns, minted).await, "{minted} revoked");
    }
    assert!(token_exists(&peer, ns, &kept).await);

    let out = run(
        dir.path(),
        &["actions", "show", "1", "--format", "json"],
        &mut shown,
    );
    let steps: Vec<String> = serde_json::from_str::<Value>(&out).expect("json")["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|it| it["step"].as_str().expect("step").to_owned())
        .collect();
    assert_eq!(
        steps,
        [
            "check",
            "create",
            "create",
            "deliver",
            "verify",
            "overlap",
            "deactivate",
            "delete",
            "revoke_minted",
            "revoke_old",
            "done"
        ]
    );

    let database = common::database_text(dir.path());
    for value in role.secrets.iter().chain([&secret, &token]) {
        assert!(
            !shown.contains(value.as_str()),
            "a secret in the output or log"
        );
        assert!(
            !database.contains(value.as_str()),
            "a secret in the database"
        );
    }
}

/// Rotates role `ci`'s old secret-id while it holds another one with `metadata`; returns a
/// token the other minted and the rotation's report.
async fn rotate_beside(peer: &Peer, role: &Role, metadata: Value) -> (String, String) {
    let ns = role.ns.as_str();
    let other = new_secret_id(peer, ns, metadata).await;
    let (other_token, _) = login(peer, ns, &role.role_id, &other.1).await;
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    let dir = tempfile::tempdir().expect("dir");
    common::write(&dir.path().join("keywarden.yaml"), &config(peer, ns));
    let mut shown = String::new();
    run(dir.path(), &["scan"], &mut shown);
    let old_id = format!("{ns}/auth/approle/role/ci/secret-id/{}", role.old.0);
    let out = run(
        dir.path(),
        &["rotate", &old_id, "--enforce", "--format", "json"],
        &mut shown,
    );
    let records: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(records[0]["status"], "done", "{records:#}");
    assert!(
        !secret_id_exists(peer, ns, &role.old.0).await,
        "old destroyed"
    );
    assert!(secret_id_exists(peer, ns, &other.0).await, "other kept");
    let report = run(
        dir.path(),
        &["actions", "show", "1", "--format", "json"],
        &mut shown,
    );
    (other_token, report)
}

#[tokio::test]
async fn the_old_secret_ids_tokens_are_told_apart_by_its_metadata() {
    let Some(peer) = vault::peer() else { return };
    let role = role(&peer).await;
    let ns = role.ns.as_str();
    let (other_token, _) = rotate_beside(&peer, &role, json!({"owner": "deploys"})).await;
    for minted in &role.minted {
        assert!(
            !token_exists(&peer, ns, minted).await,
            "{minted}: the old one's"
        );
    }
    assert!(
        token_exists(&peer, ns, &other_token).await,
        "the other secret-id's token (other metadata) is kept"
    );
}

#[tokio::test]
async fn tokens_that_cannot_be_told_apart_are_left_to_expire() {
    let Some(peer) = vault::peer() else { return };
    let role = role(&peer).await;
    let ns = role.ns.as_str();
    let (other_token, report) = rotate_beside(&peer, &role, marked()).await;
    assert!(token_exists(&peer, ns, &other_token).await);
    for minted in &role.minted {
        assert!(
            token_exists(&peer, ns, minted).await,
            "not told apart from the other's: left to expire"
        );
    }
    assert!(report.contains("carries the same metadata"), "{report}");
}

#[tokio::test]
async fn a_secret_id_another_rotation_of_the_same_one_made_is_never_destroyed() {
    let Some(peer) = vault::peer() else { return };
    let role = role(&peer).await;
    // An earlier rotation of the same secret-id made and delivered it, then stopped: consumers
    // may use it. Only this rotation's own lost attempts are destroyed.
    let earlier = json!({
        "owner": "platform",
        "keywarden_replaces": role.old.0,
        "keywarden_action": "keywarden-action-99"
    });
    let (other_token, _) = rotate_beside(&peer, &role, earlier).await;
    assert!(token_exists(&peer, &role.ns, &other_token).await);
}

#[tokio::test]
async fn tokens_of_a_secret_id_keywarden_did_not_make_are_left_to_expire() {
    let Some(peer) = vault::peer() else { return };
    // Its metadata may be a gone secret-id's too (a used-up CI one), whose tokens live on.
    let role = role_with(&peer, json!({"owner": "platform"})).await;
    let ns = role.ns.as_str();
    let (other_token, report) = rotate_beside(&peer, &role, json!({"owner": "deploys"})).await;
    assert!(token_exists(&peer, ns, &other_token).await);
    for minted in &role.minted {
        assert!(
            token_exists(&peer, ns, minted).await,
            "not known to be its own: left to expire"
        );
    }
    assert!(report.contains("was not made by keywarden"), "{report}");
}

#[cfg(not(feature = "crash-points"))]
#[test]
fn a_crash_after_each_step_resumes_to_one_new_secret_id_delivered_once() {
    assert!(
        std::env::var("KEYWARDEN_REQUIRE_PEERS").as_deref() != Ok("1"),
        "the crash test needs `--features crash-points` (scripts/test passes --all-features)"
    );
    eprintln!("skipped: built without the crash-points feature");
}

#[cfg(feature = "crash-points")]
#[tokio::test]
async fn a_crash_after_each_step_resumes_to_one_new_secret_id_delivered_once() {
    let Some(peer) = vault::peer() else { return };
    for point in [
        "create",
        "deliver_recorded",
        "deliver",
        "verify",
        "revoke_minted",
        "revoke_old",
    ] {
        let role = role(&peer).await;
        let ns = role.ns.as_str();
        let dir = tempfile::tempdir().expect("dir");
        common::write(&dir.path().join("keywarden.yaml"), &config(&peer, ns));
        let mut shown = String::new();
        run(dir.path(), &["scan"], &mut shown);
        let old_id = format!("{ns}/auth/approle/role/ci/secret-id/{}", role.old.0);
        let crashed = common::keywarden_with_env(
            dir.path(),
            &["rotate", &old_id, "--enforce"],
            &[("KEYWARDEN_CRASH_AFTER", point)],
        );
        assert_eq!(
            crashed.status.code(),
            None,
            "{point}: killed by a signal\n{}",
            common::stderr(&crashed)
        );
        // A consumer that already switched to the delivered secret-id logs in with it before the
        // rotation resumes: that token is the new one's, and is kept.
        let switched = if matches!(point, "deliver" | "verify") {
            let (fields, _) = delivered(&peer, ns).await;
            let secret = fields["secret_id"].as_str().expect("secret id");
            Some(login(&peer, ns, &role.role_id, secret).await.0)
        } else {
            None
        };
        std::thread::sleep(std::time::Duration::from_millis(1_600));
        let resumed: Value = serde_json::from_str(&run(
            dir.path(),
            &["actions", "resume", "--format", "json"],
            &mut shown,
        ))
        .expect("json");
        assert_eq!(resumed[0]["status"], "done", "{point}: {resumed:#}");
        let (fields, version) = delivered(&peer, ns).await;
        let accessor = fields["secret_id_accessor"].as_str().expect("accessor");
        assert_eq!(version, 1, "{point}: delivered once");
        assert_eq!(
            secret_ids(&peer, ns).await,
            [accessor.to_owned()],
            "{point}: one new secret-id, nothing orphaned, the old one destroyed"
        );
        for minted in &role.minted {
            assert!(!token_exists(&peer, ns, minted).await, "{point}: {minted}");
        }
        if let Some(token) = switched {
            assert!(
                token_exists(&peer, ns, &token).await,
                "{point}: the new secret-id's token is kept"
            );
        }
    }
}
