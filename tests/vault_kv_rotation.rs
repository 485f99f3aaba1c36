//! Rotation of a Vault KV v2 secret whose value keywarden makes, against a real OpenBao dev
//! server: an enforcing policy with `enforce.generate` writes a new value of the length and
//! alphabet it names as the secret's next version, check-and-set, keeping the other fields with
//! their types; a crash right after the write resumes without writing again (the version past
//! the one it began from holds the value it wrote), while someone else's write in between is not
//! taken for the rotation; one approved later re-checks the policy on the secret as it is then
//! (its owner's rotation by hand makes it fresh); without a generator (by hand) it is refused.
//! The value is in no output, trace log or row.

mod common;
mod vault;

use reqwest::Method;
use serde_json::{Value, json};

use crate::vault::Peer;

const POLICY: &str = "policies:\n  - id: stale-db-password\n    severity: high\n    mode: enforce\n    \
     select:\n      kinds: [kv_secret]\n      names: [\"kv/app/db\"]\n    when:\n      age_over: 1s\n    \
     actions: [rotate]\n    enforce:\n      generate:\n        field: password\n        length: 40\n        \
     alphabet: alphanumeric\n";

/// The secret's fields other than the password: of every JSON type.
fn others() -> Value {
    json!({"username": "app", "port": 5432, "tls": true, "hosts": ["a", "b"], "pool": {"max": 5}})
}

/// A namespace with KV v2 at `kv/` and the secret `app/db` (a password and [`others`]).
async fn world(peer: &Peer) -> String {
    let ns = peer.fresh_namespace().await;
    peer.enable(&ns, "mounts", "kv", "kv", Some(json!({"version": "2"})))
        .await;
    peer.ok(
        Some(&ns),
        Method::POST,
        "kv/data/app/db",
        Some(json!({"data": {
            "password": "old-password-1",
            "username": "app", "port": 5432, "tls": true, "hosts": ["a", "b"], "pool": {"max": 5}
        }})),
    )
    .await;
    ns
}

async fn secret(peer: &Peer, ns: &str) -> (Value, u64) {
    let got = peer.ok(Some(ns), Method::GET, "kv/data/app/db", None).await;
    (
        got["data"]["data"].clone(),
        got["data"]["metadata"]["version"]
            .as_u64()
            .expect("version"),
    )
}

fn workspace(peer: &Peer, ns: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("dir");
    common::write(&dir.path().join("stale.yaml"), POLICY);
    common::write(
        &dir.path().join("keywarden.yaml"),
        &format!(
            "store:\n  path: ledger.db\n  action_lease: 1500ms\npolicies:\n  - stale.yaml\n\
             sources:\n  vault:\n    type: vault\n    address: {}\n    token_file: {}\n    \
             namespaces: [\"{ns}/\"]\n",
            peer.addr,
            peer.token_file.display(),
        ),
    );
    dir
}

fn run(dir: &std::path::Path, args: &[&str], shown: &mut String) -> std::process::Output {
    let output = common::keywarden_with_env(dir, args, &[("KEYWARDEN_LOG", "trace")]);
    shown.push_str(&common::stdout(&output));
    shown.push_str(&common::stderr(&output));
    output
}

#[tokio::test]
async fn an_enforcing_policy_writes_a_generated_value_as_the_next_version_once() {
    let Some(peer) = vault::peer() else { return };
    let ns = world(&peer).await;
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
    let dir = workspace(&peer, &ns);
    let mut shown = String::new();

    // By hand there is no generator: refused, nothing written.
    let id = format!("{ns}/kv/app/db");
    let scanned = run(dir.path(), &["scan", "--no-enforce"], &mut shown);
    assert!(scanned.status.success(), "{}", common::stderr(&scanned));
    let by_hand = run(
        dir.path(),
        &["rotate", &id, "--enforce", "--format", "json"],
        &mut shown,
    );
    let records: Value = serde_json::from_slice(&by_hand.stdout).expect("json");
    assert_eq!(records[0]["status"], "refused", "{records:#}");
    assert!(
        records[0]["reason"]
            .as_str()
            .is_some_and(|it| it.contains("enforce.generate")),
        "{records:#}"
    );
    assert_eq!(secret(&peer, &ns).await.1, 1);

    let out = run(dir.path(), &["scan", "--format", "json"], &mut shown);
    assert!(out.status.success(), "{}", common::stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).expect("json");
    let decisions: Vec<(&str, &str)> = report["planned_actions"]
        .as_array()
        .expect("planned actions")
        .iter()
        .map(|it| {
            (
                it["credential"].as_str().unwrap_or_default(),
                it["decision"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(decisions, [(id.as_str(), "started")], "{report:#}");

    let (fields, version) = secret(&peer, &ns).await;
    assert_eq!(version, 2, "one new version");
    let mut kept = fields.clone();
    kept.as_object_mut().expect("fields").remove("password");
    assert_eq!(kept, others(), "other fields kept, with their types");
    let password = fields["password"].as_str().expect("password").to_owned();
    assert_ne!(password, "old-password-1");
    assert_eq!(password.len(), 40);
    assert!(password.chars().all(|it| it.is_ascii_alphanumeric()));

    // The next scan: the policy's earlier action stands; nothing is written again.
    let again = run(dir.path(), &["scan", "--format", "json"], &mut shown);
    assert!(again.status.success());
    assert_eq!(secret(&peer, &ns).await.1, 2);

    assert!(!shown.contains(&password), "the value in the output or log");
    assert!(
        !common::database_text(dir.path()).contains(&password),
        "the value in the database"
    );
}

#[cfg(feature = "crash-points")]
#[tokio::test]
async fn a_crash_right_after_the_write_resumes_without_writing_again() {
    let Some(peer) = vault::peer() else { return };
    let ns = world(&peer).await;
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
    let dir = workspace(&peer, &ns);
    let mut shown = String::new();
    let crashed = common::keywarden_with_env(
        dir.path(),
        &["scan"],
        &[("KEYWARDEN_CRASH_AFTER", "kv_written")],
    );
    assert_eq!(crashed.status.code(), None, "{}", common::stderr(&crashed));
    let (written, version) = secret(&peer, &ns).await;
    assert_eq!(version, 2);
    std::thread::sleep(std::time::Duration::from_millis(1_600));
    let resumed = run(
        dir.path(),
        &["actions", "resume", "--format", "json"],
        &mut shown,
    );
    assert!(resumed.status.success(), "{}", common::stderr(&resumed));
    let records: Value = serde_json::from_slice(&resumed.stdout).expect("json");
    assert_eq!(records[0]["kind"], "rotate_kv", "{records:#}");
    assert_eq!(records[0]["status"], "done", "{records:#}");
    let (fields, version) = secret(&peer, &ns).await;
    assert_eq!(version, 2, "not written again");
    assert_eq!(fields, written);
}

#[cfg(feature = "crash-points")]
#[tokio::test]
async fn a_write_by_someone_else_after_a_crash_is_not_taken_for_the_rotation() {
    let Some(peer) = vault::peer() else { return };
    let ns = world(&peer).await;
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
    let dir = workspace(&peer, &ns);
    let mut shown = String::new();
    // keywarden drew its value and stopped before writing it ...
    let crashed = common::keywarden_with_env(
        dir.path(),
        &["scan"],
        &[("KEYWARDEN_CRASH_AFTER", "kv_drawn")],
    );
    assert_eq!(crashed.status.code(), None, "{}", common::stderr(&crashed));
    assert_eq!(secret(&peer, &ns).await.1, 1);
    std::thread::sleep(std::time::Duration::from_millis(1_600));
    // ... a CI job wrote version 2: the old password again ...
    peer.ok(
        Some(&ns),
        Method::POST,
        "kv/data/app/db",
        Some(json!({"options": {"cas": 1}, "data": {"password": "old-password-1"}})),
    )
    .await;
    // ... so the resumed action does not take version 2 for its own write, nor for a rotation
    // (it holds the value `check` saw; its age, under the policy's 1s, is no reason to stop):
    // it writes version 3 on top of it.
    let resumed = run(
        dir.path(),
        &["actions", "resume", "--format", "json"],
        &mut shown,
    );
    assert!(resumed.status.success(), "{}", common::stderr(&resumed));
    let records: Value = serde_json::from_slice(&resumed.stdout).expect("json");
    assert_eq!(records[0]["kind"], "rotate_kv", "{records:#}");
    assert_eq!(records[0]["status"], "done", "{records:#}");
    let (fields, version) = secret(&peer, &ns).await;
    assert_eq!(version, 3, "{records:#}");
    let password = fields["password"].as_str().expect("password").to_owned();
    assert_ne!(
        password, "old-password-1",
        "the value the job wrote is replaced"
    );
    assert_eq!(password.len(), 40);
    let out = run(
        dir.path(),
        &["actions", "show", "1", "--format", "json"],
        &mut shown,
    );
    assert!(
        common::stdout(&out).contains("someone else wrote version 2"),
        "{}",
        common::stdout(&out)
    );
    assert!(!shown.contains(&password));
}

#[tokio::test]
async fn an_approved_rotation_re_checks_the_policy_on_the_secret_as_it_is_then() {
    let Some(peer) = vault::peer() else { return };
    let ns = world(&peer).await;
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
    let dir = workspace(&peer, &ns);
    let mut shown = String::new();
    // The policy requires approval: the action waits at `check`, having read nothing yet...
    let policy = POLICY.replace("    enforce:\n", "    enforce:\n      approval: required\n");
    common::write(&dir.path().join("stale.yaml"), &policy);
    let out = run(dir.path(), &["scan"], &mut shown);
    assert!(out.status.success(), "{}", common::stderr(&out));
    // ... its owner rotates it by hand before the approval (the ledger still holds version 1,
    // older than the policy's 1s) ...
    peer.ok(
        Some(&ns),
        Method::POST,
        "kv/data/app/db",
        Some(json!({"options": {"cas": 1}, "data": {"username": "app", "password": "by-hand-2"}})),
    )
    .await;
    // ... and the approved rotation checks the age OpenBao shows now: fresh, nothing written.
    let approved = run(
        dir.path(),
        &[
            "actions", "approve", "1", "--by", "alice", "--format", "json",
        ],
        &mut shown,
    );
    assert!(approved.status.success(), "{}", common::stderr(&approved));
    let records: Value = serde_json::from_slice(&approved.stdout).expect("json");
    assert_eq!(records[0]["status"], "skipped", "{records:#}");
    let (fields, version) = secret(&peer, &ns).await;
    assert_eq!(version, 2, "{fields:#}");
    assert_eq!(fields["password"], "by-hand-2");
    // Once it is old again, an approved rotation writes on top of it, check-and-set on 2.
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
    let out = run(dir.path(), &["scan"], &mut shown);
    assert!(out.status.success(), "{}", common::stderr(&out));
    let approved = run(
        dir.path(),
        &[
            "actions", "approve", "2", "--by", "alice", "--format", "json",
        ],
        &mut shown,
    );
    assert!(approved.status.success(), "{}", common::stderr(&approved));
    let (fields, version) = secret(&peer, &ns).await;
    assert_eq!(version, 3, "{fields:#}");
    assert_ne!(fields["password"], "by-hand-2");
    assert_eq!(fields["username"], "app");
}
