//! From a leak to a contained key, against moto and the real detect-secrets: a key moto issued
//! is committed to a fixture git repository, detect-secrets scans it, and `keywarden leak ingest`
//! of its baseline distrusts the signers its user holds, quarantines the key and opens a critical
//! finding; and a user AWS itself quarantined (its managed `AWSCompromisedKeyQuarantineV3`
//! policy), seen by a scan, is a leak confirmed by AWS.
//!
//! Needs moto (`KEYWARDEN_TEST_MOTO_URL`) and detect-secrets (`KEYWARDEN_TEST_DETECT_SECRETS`, the
//! program, or `detect-secrets` on the PATH); without them the tests skip, unless
//! `KEYWARDEN_REQUIRE_PEERS=1`.

mod common;
mod moto;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

use common::{stderr, write};
use moto::*;

/// The detect-secrets program, or `None` (a failure when peers are required).
fn detect_secrets() -> Option<String> {
    let program =
        std::env::var("KEYWARDEN_TEST_DETECT_SECRETS").unwrap_or_else(|_| "detect-secrets".into());
    let works = Command::new(&program)
        .arg("--version")
        .output()
        .is_ok_and(|it| it.status.success());
    if works {
        return Some(program);
    }
    assert!(
        std::env::var("KEYWARDEN_REQUIRE_PEERS").as_deref() != Ok("1"),
        "detect-secrets ({program}) is required (KEYWARDEN_REQUIRE_PEERS=1) but does not run"
    );
    eprintln!(
        "skipping: detect-secrets ({program}) does not run; set KEYWARDEN_TEST_DETECT_SECRETS"
    );
    None
}

fn git(repo: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args(args)
        .current_dir(repo)
        .env("GIT_AUTHOR_NAME", "dev")
        .env("GIT_AUTHOR_EMAIL", "dev@example.com")
        .env("GIT_COMMITTER_NAME", "dev")
        .env("GIT_COMMITTER_EMAIL", "dev@example.com")
        .output()
        .expect("git");
    assert!(out.status.success(), "git {args:?}: {}", stderr(&out));
}

/// A moto account whose CI user `ci` has a 30-day-old key, committed by mistake to a fixture git
/// repository; the workspace scanned it, holds two key files of which `ci` holds
/// `keys/release.pub` (its key reads the signing key's password), and `baseline.json` is
/// detect-secrets' real baseline of the repository.
struct Leaked {
    account: Account,
    ws: Workspace,
    key: String,
}

async fn leaked_key_world() -> Option<Leaked> {
    let account = Account::new().await?;
    let detect_secrets = detect_secrets()?;
    account.user("ci", "/", &[]).await;
    let key = account.key("ci", 30, Some(1)).await;
    let ws = Workspace::new(&account, "");
    ws.short_lease();
    common::write_public_key(&ws.path().join("keys/release.pub"));
    common::write_public_key(&ws.path().join("keys/other.pub"));
    let config = std::fs::read_to_string(ws.path().join("keywarden.yaml")).expect("config");
    std::fs::write(
        ws.path().join("keywarden.yaml"),
        format!(
            "{config}  keys:\n    type: files\n    paths:\n      - glob: \"keys/**\"\nsigners:\n  \
             - key: {{ file: keys/release.pub }}\n    held_by:\n      - source: \"aws*\"\n        \
             identities: [ci]\n"
        ),
    )
    .expect("config");
    ws.scan(&account);

    let repo = ws.path().join("repo");
    write(
        &repo.join("ci.env"),
        &format!("export AWS_ACCESS_KEY_ID={key}\nexport REGION=us-east-1\n"),
    );
    git(&repo, &["init", "-q"]);
    git(&repo, &["add", "ci.env"]);
    git(&repo, &["commit", "-q", "-m", "ci settings"]);
    let scanned = Command::new(&detect_secrets)
        .arg("scan")
        .current_dir(&repo)
        .output()
        .expect("detect-secrets");
    assert!(scanned.status.success(), "{}", stderr(&scanned));
    std::fs::write(ws.path().join("baseline.json"), &scanned.stdout).expect("baseline");
    Some(Leaked { account, ws, key })
}

impl Leaked {
    fn ingest(&self) -> Value {
        self.ws.json(
            &self.account,
            &["leak", "ingest", "baseline.json", "--output", "json"],
        )
    }

    /// When the ledger says the leaked key was created (a detect-secrets baseline has no exposure
    /// time: the key is taken to be compromised since its creation).
    fn created_at(&self) -> String {
        let report = self.ws.json(
            &self.account,
            &["scan", "--format", "json", "--no-progress", "--no-enforce"],
        );
        by_id(&report, &self.key)["created_at"]
            .as_str()
            .expect("created_at")
            .to_owned()
    }

    /// The end every containment of the key reaches: inactive with the deny policy, exactly the
    /// signer `ci` holds distrusted for good from the key's creation, a critical finding open, a
    /// playbook whose three children are done.
    async fn assert_contained(&self) {
        let Self { account, ws, key } = self;
        assert_eq!(
            account.keys("ci").await,
            BTreeMap::from([(key.clone(), false)])
        );
        assert_eq!(
            account.inline_policies("ci").await,
            ["KeywardenRevokeOlderSessions"]
        );
        let created = self.created_at();
        let signers = ws.json(account, &["trust", "list", "--format", "json"]);
        for signer in signers["signers"].as_array().expect("signers") {
            let name = signer["credentials"][0]["name"]
                .as_str()
                .unwrap_or_default();
            let periods = signer["distrust_periods"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if name == "keys/release.pub" {
                assert_eq!(periods.len(), 1, "{signer:#}");
                assert_eq!(signer["trusted"], false, "{signer:#}");
                assert_eq!(periods[0]["reason"], "leaked");
                assert_eq!(periods[0]["until"], Value::Null);
                let from = periods[0]["from"].as_str().expect("from");
                assert_eq!(
                    chrono::DateTime::parse_from_rfc3339(from).expect("from"),
                    chrono::DateTime::parse_from_rfc3339(&created).expect("created"),
                    "distrusted from the compromise time: {signer:#}"
                );
            } else {
                assert!(periods.is_empty(), "{name} is not held by ci: {signer:#}");
            }
        }
        let findings = ws.json(account, &["findings", "list", "--format", "json"]);
        let open: Vec<&str> = findings
            .as_array()
            .expect("findings")
            .iter()
            .filter(|it| it["severity"] == "critical" && it["status"] == "open")
            .filter_map(|it| it["policy_id"].as_str())
            .collect();
        assert!(open.contains(&"keywarden.leaked"), "{findings:#}");
        assert!(open.contains(&"keywarden.containment"), "{findings:#}");
        let actions = ws.json(account, &["actions", "list", "--format", "json"]);
        let actions = actions.as_array().expect("actions");
        let parents: Vec<&Value> = actions
            .iter()
            .filter(|it| it["kind"] == "contain")
            .collect();
        assert_eq!(parents.len(), 1, "one playbook: {actions:#?}");
        assert_eq!(parents[0]["status"], "done", "{actions:#?}");
        let mut children: Vec<(i64, &str, &str)> = actions
            .iter()
            .filter(|it| it["parent"]["parent"] == parents[0]["id"])
            .map(|it| {
                (
                    it["parent"]["index"].as_i64().unwrap_or_default(),
                    it["kind"].as_str().unwrap_or_default(),
                    it["status"].as_str().unwrap_or_default(),
                )
            })
            .collect();
        children.sort_unstable();
        assert_eq!(
            children,
            [
                (0, "revoke_trust", "done"),
                (1, "quarantine", "done"),
                (2, "raise_finding", "done")
            ],
            "{actions:#?}"
        );
        assert_eq!(actions.len(), 4, "nothing else was started: {actions:#?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_detect_secrets_baseline_of_a_committed_key_contains_it() {
    let Some(world) = leaked_key_world().await else {
        return;
    };
    let ingested = world.ingest();
    assert_eq!(ingested["format"], "detect_secrets", "{ingested:#}");
    let leak = &ingested["leaks"][0];
    assert_eq!(
        leak["matched"][0]["credential_external_id"],
        world.key.as_str(),
        "{ingested:#}"
    );
    assert_eq!(leak["matched"][0]["by"]["type"], "sha1", "{ingested:#}");
    assert_eq!(
        leak["contained"].as_array().map(Vec::len),
        Some(1),
        "{ingested:#}"
    );
    assert_eq!(
        leak["distrusted"].as_array().map(Vec::len),
        Some(1),
        "{ingested:#}"
    );
    world.assert_contained().await;

    // The same baseline again: nothing new is started.
    let actions = world
        .ws
        .json(&world.account, &["actions", "list", "--format", "json"]);
    let again = world.ingest();
    assert_eq!(again["leaks"][0]["new"], false, "{again:#}");
    assert_eq!(
        world
            .ws
            .json(&world.account, &["actions", "list", "--format", "json"]),
        actions
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_containment_that_crashes_after_any_step_resumes_to_the_same_end() {
    for point in [
        "revoke_trust_distrust",
        "quarantine_deactivate",
        "raise_finding_raised",
    ] {
        let Some(world) = leaked_key_world().await else {
            return;
        };
        // Where the next ingest must come while the crashed process's lease still holds, the
        // lease is long enough for a loaded machine to start that process in time.
        let lease = if point == "revoke_trust_distrust" {
            std::time::Duration::from_secs(8)
        } else {
            SHORT_LEASE
        };
        let file = world.ws.path().join("keywarden.yaml");
        let config = std::fs::read_to_string(&file).expect("config");
        let config = config.replacen(
            &format!("action_lease: {}ms", SHORT_LEASE.as_millis()),
            &format!("action_lease: {}ms", lease.as_millis()),
            1,
        );
        std::fs::write(&file, config).expect("config");
        let crashed = world.ws.run(
            &world.account,
            &["leak", "ingest", "baseline.json", "--output", "json"],
            &[("KEYWARDEN_CRASH_AFTER", point)],
        );
        assert_ne!(
            crashed.status.code(),
            Some(0),
            "{point}: {}",
            stderr(&crashed)
        );
        assert!(
            stderr(&crashed).contains(&format!("crash point {point}")),
            "{point} was reached: {}",
            stderr(&crashed)
        );
        if point == "revoke_trust_distrust" {
            // The crashed process's lease has not run out: its action cannot be driven yet, so
            // the leak stays unanswered rather than marked answered half done.
            let early = world.ingest();
            assert_eq!(early["leaks"][0]["pending"], true, "{early:#}");
            assert_eq!(early["leaks"][0]["answered"], false, "{early:#}");
        }
        std::thread::sleep(lease);
        if point == "quarantine_deactivate" {
            // Resumed by `actions resume`, as the daemon would.
            world.ws.ok(&world.account, &["actions", "resume"]);
        }
        // The report ingested again answers the leak it recorded, driving on what the crash left.
        let again = world.ingest();
        assert_eq!(again["leaks"][0]["new"], false, "{point}: {again:#}");
        world.assert_contained().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_aws_quarantined_is_a_confirmed_leak_answered_by_the_scan() {
    let Some(world) = leaked_key_world().await else {
        return;
    };
    let Leaked { account, ws, key } = &world;
    let made = account
        .control(
            "managed-policy",
            serde_json::json!({ "account_id": account.id, "name": "AWSCompromisedKeyQuarantineV3" }),
        )
        .await;
    assert_eq!(
        made["arn"], "arn:aws:iam::aws:policy/AWSCompromisedKeyQuarantineV3",
        "{made}"
    );
    account
        .iam
        .attach_user_policy()
        .user_name("ci")
        .policy_arn("arn:aws:iam::aws:policy/AWSCompromisedKeyQuarantineV3")
        .send()
        .await
        .expect("attach");

    // Without enforcement it is reported, and nothing changes.
    let report = ws.scan_with(account, &["--no-enforce"]);
    let seen = report["confirmed_leaks"]
        .as_array()
        .expect("confirmed_leaks");
    assert_eq!(seen.len(), 1, "{report:#}");
    assert_eq!(
        seen[0]["evidence"],
        "arn:aws:iam::aws:policy/AWSCompromisedKeyQuarantineV3"
    );
    assert_eq!(seen[0]["identity_name"], "ci");
    assert_eq!(seen[0]["access_keys"][0], key.as_str());
    assert!(report["leaks"].as_array().is_some_and(Vec::is_empty));
    assert_eq!(
        account.keys("ci").await,
        BTreeMap::from([(key.clone(), true)])
    );
    assert!(
        ws.json(account, &["leak", "list", "--format", "json"])
            .as_array()
            .is_some_and(Vec::is_empty)
    );

    // Enforcing: the same leak is contained (once), and a later scan changes nothing.
    let enforced = ws.scan(account);
    let answered = &enforced["leaks"][0];
    assert_eq!(answered["new"], true, "{enforced:#}");
    assert_eq!(answered["format"], "provider");
    assert_eq!(answered["detector"], "AWSCompromisedKeyQuarantineV3");
    assert_eq!(
        answered["matched"][0]["credential_external_id"],
        key.as_str()
    );
    assert_eq!(answered["contained"].as_array().map(Vec::len), Some(1));
    world.assert_contained().await;
    assert_eq!(
        account.keys("ci").await,
        BTreeMap::from([(key.clone(), false)])
    );
    assert_eq!(
        account.inline_policies("ci").await,
        ["KeywardenRevokeOlderSessions"]
    );
    let actions = ws.json(account, &["actions", "list", "--format", "json"]);
    let again = ws.scan(account);
    assert_eq!(again["leaks"][0]["new"], false, "{again:#}");
    assert_eq!(again["leaks"][0]["answered"], false, "{again:#}");
    assert_eq!(
        ws.json(account, &["actions", "list", "--format", "json"]),
        actions
    );
}

/// GitGuardian's `hmsl_hash` of a secret, computed apart from keywarden: OpenSSL's scrypt
/// (Python `hashlib`) with ggshield's parameters.
fn hmsl_by_openssl(secret: &str) -> String {
    let out = Command::new("python3")
        .args([
            "-c",
            "import hashlib,sys; print(hashlib.scrypt(sys.argv[1].encode(), \
             salt=hashlib.sha256(b'GitGuardian').digest(), n=2048, r=8, p=1, dklen=32).hex())",
            secret,
        ])
        .output()
        .expect("python3");
    assert!(out.status.success(), "{}", stderr(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_secret_keywarden_created_is_matched_by_the_hashes_reports_carry() {
    let Some(account) = Account::new().await else {
        return;
    };
    let Some(detect_secrets) = detect_secrets() else {
        return;
    };
    account.user("ci-hash", "/", &[]).await;
    let old = account.key("ci-hash", 120, Some(1)).await;
    let ws = Workspace::with_file_delivery(&account);
    ws.scan(&account);
    let rotated = ws.json(&account, &["rotate", &old, "--enforce", "--format", "json"]);
    assert_eq!(rotated[0]["status"], "done", "{rotated:#}");
    ws.scan(&account);
    // The secret IAM handed keywarden's rotation (the test made the old key itself).
    let created = account.created_secrets().await;
    let (new, secret) = created
        .into_iter()
        .find(|(id, _)| *id != old)
        .expect("the rotation's new key");

    // A GitGuardian incident on the new secret: matched by its HasMySecretLeaked hash.
    let hook = serde_json::json!({
        "source": "GitGuardian", "timestamp": "2026-12-01T08:00:00Z",
        "action": "incident_triggered", "message": "m", "target_user": "u",
        "incident": {
            "id": 4100001, "date": "2026-12-01T07:59:00Z",
            "detector": {"name": "aws_iam", "display_name": "AWS Keys"},
            "secret_hash": "not-used", "hmsl_hash": hmsl_by_openssl(&secret),
            "status": "TRIGGERED",
            "gitguardian_url": "https://dashboard.gitguardian.com/workspace/1/incidents/4100001"
        }
    });
    std::fs::write(ws.path().join("gitguardian.json"), hook.to_string()).expect("hook");
    let ingested = ws.json(
        &account,
        &[
            "leak",
            "ingest",
            "gitguardian.json",
            "--no-contain",
            "--output",
            "json",
        ],
    );
    let matched = &ingested["leaks"][0]["matched"];
    assert_eq!(
        matched[0]["credential_external_id"],
        new.as_str(),
        "{ingested:#}"
    );
    assert_eq!(matched[0]["by"]["type"], "hmsl", "{ingested:#}");

    // The real detect-secrets over a file holding the new secret: matched by its SHA-1.
    let repo = ws.path().join("repo");
    write(
        &repo.join("settings.py"),
        &format!("aws_secret_access_key = \"{secret}\"\n"),
    );
    git(&repo, &["init", "-q"]);
    git(&repo, &["add", "settings.py"]);
    git(&repo, &["commit", "-q", "-m", "settings"]);
    let scanned = Command::new(&detect_secrets)
        .arg("scan")
        .current_dir(&repo)
        .output()
        .expect("detect-secrets");
    assert!(scanned.status.success(), "{}", stderr(&scanned));
    std::fs::write(ws.path().join("baseline.json"), &scanned.stdout).expect("baseline");
    let ingested = ws.json(
        &account,
        &[
            "leak",
            "ingest",
            "baseline.json",
            "--no-contain",
            "--output",
            "json",
        ],
    );
    let by_sha1: Vec<String> = ingested["leaks"]
        .as_array()
        .expect("leaks")
        .iter()
        .flat_map(|it| it["matched"].as_array().cloned().unwrap_or_default())
        .filter(|it| it["by"]["type"] == "sha1")
        .filter_map(|it| it["credential_external_id"].as_str().map(str::to_owned))
        .collect();
    // detect-secrets reports the one value under three detectors: each is matched to the key.
    assert!(!by_sha1.is_empty(), "{ingested:#}");
    assert!(by_sha1.iter().all(|it| *it == new), "{ingested:#}");

    // No secret is in the store: only its hashes.
    for file in ["ledger.db", "ledger.db-wal"] {
        let Ok(bytes) = std::fs::read(ws.path().join(file)) else {
            continue;
        };
        assert!(
            !bytes
                .windows(secret.len())
                .any(|it| it == secret.as_bytes()),
            "the secret is not in {file}"
        );
    }
}
