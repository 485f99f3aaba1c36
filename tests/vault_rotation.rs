//! Rotation of a Vault Transit signing key against a real OpenBao dev server: `rotate` of a key
//! version adds one version (exactly one, even when the process dies right after OpenBao added
//! it), retires the older ones after the source's `transit_retire_after` (OpenBao then refuses to
//! verify with them) and closes their signers' trust from the retirement, so what they signed
//! before stays trusted. An enforcing policy does the same once, on the version it matches.

mod common;
mod vault;

use base64::Engine as _;
use reqwest::Method;
use serde_json::{Value, json};

use crate::vault::Peer;

/// A namespace with a Transit key `release` (ECDSA P-256, one version).
async fn world(peer: &Peer) -> String {
    let ns = peer.fresh_namespace().await;
    peer.enable(&ns, "mounts", "transit", "transit", None).await;
    peer.ok(
        Some(&ns),
        Method::POST,
        "transit/keys/release",
        Some(json!({"type": "ecdsa-p256"})),
    )
    .await;
    ns
}

fn input() -> String {
    base64::engine::general_purpose::STANDARD.encode(b"artifact digest")
}

async fn sign(peer: &Peer, ns: &str) -> String {
    peer.ok(
        Some(ns),
        Method::POST,
        "transit/sign/release",
        Some(json!({"input": input()})),
    )
    .await["data"]["signature"]
        .as_str()
        .expect("signature")
        .to_owned()
}

/// Whether OpenBao verifies the signature now.
async fn verifies(peer: &Peer, ns: &str, signature: &str) -> bool {
    let (status, body) = peer
        .call(
            Some(ns),
            Method::POST,
            "transit/verify/release",
            Some(json!({"input": input(), "signature": signature})),
        )
        .await;
    status == 200 && body["data"]["valid"] == true
}

async fn versions(peer: &Peer, ns: &str) -> (u64, u64, u64) {
    let key = peer
        .ok(Some(ns), Method::GET, "transit/keys/release", None)
        .await;
    let number = |field: &str| key["data"][field].as_u64().expect(field);
    (
        number("latest_version"),
        number("min_decryption_version"),
        number("min_encryption_version"),
    )
}

fn config(peer: &Peer, ns: &str, extra: &str, retire_after: &str) -> String {
    format!(
        "store:\n  path: ledger.db\n  action_lease: 1500ms\n{extra}sources:\n  vault:\n    \
         type: vault\n    address: {}\n    token_file: {}\n    namespaces: [\"{ns}/\"]\n    \
         transit_retire_after: {retire_after}\n",
        peer.addr,
        peer.token_file.display(),
    )
}

fn run(dir: &std::path::Path, args: &[&str]) -> String {
    let output = common::keywarden(dir, args);
    let (out, err) = (common::stdout(&output), common::stderr(&output));
    assert!(output.status.success(), "{args:?}\n{out}\n{err}");
    out
}

/// The key id of the signer `name` (`release v1`) in a scan report.
fn signer(report: &Value, name: &str) -> String {
    report["signers"]
        .as_array()
        .expect("signers")
        .iter()
        .find(|it| {
            it["credentials"]
                .as_array()
                .is_some_and(|c| c.iter().any(|c| c["name"] == name))
        })
        .unwrap_or_else(|| panic!("no signer {name} in {}", report["signers"]))["key_id"]
        .as_str()
        .expect("key id")
        .to_owned()
}

fn trust(dir: &std::path::Path, key_id: &str, at: Option<&str>) -> Value {
    let mut args = vec!["trust", "show", key_id, "--format", "json"];
    if let Some(at) = at {
        args.extend(["--at", at]);
    }
    serde_json::from_str(&run(dir, &args)).expect("json")
}

#[tokio::test]
async fn a_transit_rotation_adds_one_version_retires_the_old_and_closes_its_trust_from_then() {
    let Some(peer) = vault::peer() else { return };
    let ns = world(&peer).await;
    let signed_v1 = sign(&peer, &ns).await;
    assert!(signed_v1.starts_with("vault:v1:"), "{signed_v1}");
    let dir = tempfile::tempdir().expect("dir");
    common::write(
        &dir.path().join("keywarden.yaml"),
        &config(&peer, &ns, "", "0s"),
    );
    let report: Value =
        serde_json::from_str(&run(dir.path(), &["scan", "--format", "json"])).expect("json");
    let v1_signer = signer(&report, "release v1");
    let v1 = format!("{ns}/transit/keys/release/v1");
    let after_scan = chrono::Utc::now();

    // A dry run says what it would do and changes nothing.
    let plan = run(dir.path(), &["rotate", &v1]);
    assert!(plan.contains("add a version"), "{plan}");
    assert!(plan.contains("retire"), "{plan}");
    assert_eq!(versions(&peer, &ns).await, (1, 1, 0));

    // The process dies right after OpenBao added the version, before the store learns of it.
    let crashed = common::keywarden_with_env(
        dir.path(),
        &["rotate", &v1, "--enforce"],
        &[("KEYWARDEN_CRASH_AFTER", "transit_rotated")],
    );
    assert_eq!(
        crashed.status.code(),
        None,
        "killed by a signal\n{}",
        common::stderr(&crashed)
    );
    assert_eq!(
        versions(&peer, &ns).await,
        (2, 1, 0),
        "rotated, not retired"
    );
    assert!(verifies(&peer, &ns, &signed_v1).await, "v1 still accepted");

    // Resumed once the lease runs out: no second new version; v1 waits until a scan has
    // recorded v2 as a signer, so trust bundles include it before v1 goes.
    std::thread::sleep(std::time::Duration::from_millis(1_600));
    let resumed: Value =
        serde_json::from_str(&run(dir.path(), &["actions", "resume", "--format", "json"]))
            .expect("json");
    assert_eq!(resumed[0]["kind"], "rotate_version", "{resumed:#}");
    assert_eq!(resumed[0]["status"], "waiting", "{resumed:#}");
    assert_eq!(resumed[0]["step"], "await_signer", "{resumed:#}");
    assert_eq!(
        versions(&peer, &ns).await,
        (2, 1, 0),
        "one new version, v1 kept"
    );
    let report: Value =
        serde_json::from_str(&run(dir.path(), &["scan", "--format", "json"])).expect("json");
    let v2_signer = signer(&report, "release v2");
    let bundle = dir.path().join("bundle.json");
    run(
        dir.path(),
        &[
            "trust",
            "export",
            "--format",
            "keywarden",
            "--out",
            bundle.to_str().expect("path"),
        ],
    );
    let exported = std::fs::read_to_string(&bundle).expect("bundle");
    assert!(
        exported.contains(&v2_signer),
        "v2 in the bundle: {exported}"
    );

    // Looked at again (it waits a second at least): v1 retired, its trust closed from then.
    std::thread::sleep(std::time::Duration::from_millis(1_100));
    let before_retirement = chrono::Utc::now();
    let resumed: Value =
        serde_json::from_str(&run(dir.path(), &["actions", "resume", "--format", "json"]))
            .expect("json");
    assert_eq!(resumed[0]["status"], "done", "{resumed:#}");
    assert_eq!(
        versions(&peer, &ns).await,
        (2, 2, 2),
        "exactly one new version"
    );
    assert!(
        !verifies(&peer, &ns, &signed_v1).await,
        "OpenBao refuses the retired version"
    );
    let signed_v2 = sign(&peer, &ns).await;
    assert!(signed_v2.starts_with("vault:v2:"), "{signed_v2}");
    assert!(verifies(&peer, &ns, &signed_v2).await);

    let now = trust(dir.path(), &v1_signer, None);
    assert_eq!(now["trusted"], false, "{now:#}");
    let period = &now["distrust_periods"][0];
    assert_eq!(period["reason"], "retired", "{now:#}");
    let from: chrono::DateTime<chrono::Utc> = period["from"]
        .as_str()
        .expect("from")
        .parse()
        .expect("time");
    assert!(
        from >= before_retirement - chrono::TimeDelta::seconds(1),
        "{now:#}"
    );
    // What v1 signed before its retirement stays trusted.
    let then = trust(dir.path(), &v1_signer, Some(&after_scan.to_rfc3339()));
    assert_eq!(then["trusted"], true, "{then:#}");

    // The next scan: v2 a trusted signer; OpenBao shows v1 no more, and its signer's record
    // stays as it was.
    let report: Value =
        serde_json::from_str(&run(dir.path(), &["scan", "--format", "json"])).expect("json");
    assert_eq!(trust(dir.path(), &v2_signer, None)["trusted"], true);
    assert!(common::credential(&report, "release v1").is_none());
    let later = trust(dir.path(), &v1_signer, None);
    assert_eq!(
        later["distrust_periods"], now["distrust_periods"],
        "{later:#}"
    );
    let then = trust(dir.path(), &v1_signer, Some(&after_scan.to_rfc3339()));
    assert_eq!(then["trusted"], true, "{then:#}");
}

#[tokio::test]
async fn an_enforcing_rotate_policy_rotates_the_version_it_matches_once_then_waits_to_retire_it() {
    let Some(peer) = vault::peer() else { return };
    let ns = world(&peer).await;
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
    let dir = tempfile::tempdir().expect("dir");
    common::write(
        &dir.path().join("stale.yaml"),
        "policies:\n  - id: stale-transit-version\n    severity: high\n    mode: enforce\n    \
         select:\n      kinds: [transit_key_version]\n      names: [\"release v1\"]\n    \
         when:\n      age_over: 1s\n    actions: [rotate]\n",
    );
    common::write(
        &dir.path().join("keywarden.yaml"),
        &config(&peer, &ns, "policies:\n  - stale.yaml\n", "3s"),
    );
    let report: Value =
        serde_json::from_str(&run(dir.path(), &["scan", "--format", "json"])).expect("json");
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
    let v1 = format!("{ns}/transit/keys/release/v1");
    assert_eq!(
        decisions,
        [(v1.as_str(), "started")],
        "{:#}",
        report["planned_actions"]
    );
    // v2 signs; v1 stays accepted, the action waiting for a scan to record v2 (then 3 s).
    assert_eq!(versions(&peer, &ns).await, (2, 1, 0));
    let list = run(dir.path(), &["actions", "list", "--format", "json"]);
    let listed: Value = serde_json::from_str(&list).expect("json");
    assert_eq!(listed[0]["kind"], "rotate_version", "{listed:#}");
    assert_eq!(listed[0]["status"], "waiting", "{listed:#}");
    assert_eq!(listed[0]["step"], "await_signer", "{listed:#}");

    // Scanned again: the policy still matches v1, whose rotation is in progress.
    let report: Value =
        serde_json::from_str(&run(dir.path(), &["scan", "--format", "json"])).expect("json");
    let again: Vec<(&str, &str)> = report["planned_actions"]
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
    assert_eq!(
        again,
        [(v1.as_str(), "in_progress")],
        "{:#}",
        report["planned_actions"]
    );
    assert_eq!(versions(&peer, &ns).await, (2, 1, 0), "no second rotation");

    // v2 is recorded now; looked at again (every 3 s), the action waits out the retirement
    // period before it retires v1.
    std::thread::sleep(std::time::Duration::from_millis(3_100));
    let resumed: Value =
        serde_json::from_str(&run(dir.path(), &["actions", "resume", "--format", "json"]))
            .expect("json");
    assert_eq!(resumed[0]["status"], "waiting", "{resumed:#}");
    assert_eq!(resumed[0]["step"], "retire", "{resumed:#}");
    assert_eq!(
        versions(&peer, &ns).await,
        (2, 1, 0),
        "v1 kept for the period"
    );
    std::thread::sleep(std::time::Duration::from_millis(3_100));
    let resumed: Value =
        serde_json::from_str(&run(dir.path(), &["actions", "resume", "--format", "json"]))
            .expect("json");
    assert_eq!(resumed[0]["status"], "done", "{resumed:#}");
    assert_eq!(versions(&peer, &ns).await, (2, 2, 2), "v1 retired after it");
}

#[tokio::test]
async fn a_key_that_encrypts_is_never_rotated_by_version() {
    let Some(peer) = vault::peer() else { return };
    let ns = world(&peer).await;
    for (name, key_type) in [("data", "aes256-gcm96"), ("both", "rsa-2048")] {
        peer.ok(
            Some(&ns),
            Method::POST,
            &format!("transit/keys/{name}"),
            Some(json!({"type": key_type})),
        )
        .await;
    }
    let dir = tempfile::tempdir().expect("dir");
    common::write(
        &dir.path().join("keywarden.yaml"),
        &config(&peer, &ns, "", "0s"),
    );
    run(dir.path(), &["scan"]);
    for name in ["data", "both"] {
        let out = common::keywarden(
            dir.path(),
            &[
                "rotate",
                &format!("{ns}/transit/keys/{name}/v1"),
                "--enforce",
                "--format",
                "json",
            ],
        );
        let records: Value = serde_json::from_slice(&out.stdout).expect("json");
        assert_eq!(records[0]["status"], "refused", "{name}: {records:#}");
        assert!(
            records[0]["reason"]
                .as_str()
                .is_some_and(|it| it.contains("decrypts or encrypts too")),
            "{name}: {records:#}"
        );
        let key = peer
            .ok(
                Some(&ns),
                Method::GET,
                &format!("transit/keys/{name}"),
                None,
            )
            .await;
        assert_eq!(key["data"]["latest_version"], 1, "{name}: not rotated");
        assert_eq!(key["data"]["min_decryption_version"], 1, "{name}");
    }
}
