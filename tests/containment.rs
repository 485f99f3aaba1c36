//! From a leak report to a contained key, against moto and the real detect-secrets: a key moto
//! issued is committed to a fixture git repository, detect-secrets scans it, and
//! `keywarden leak ingest` of its baseline quarantines the key and opens a critical finding.
//!
//! Needs moto (`KEYWARDEN_TEST_MOTO_URL`) and detect-secrets (`KEYWARDEN_TEST_DETECT_SECRETS`, the
//! program, or `detect-secrets` on the PATH); without them the test skips, unless
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

#[tokio::test(flavor = "multi_thread")]
async fn a_detect_secrets_baseline_of_a_committed_key_contains_it() {
    let Some(account) = Account::new().await else {
        return;
    };
    let Some(detect_secrets) = detect_secrets() else {
        return;
    };
    account.user("ci", "/", &[]).await;
    let leaked = account.key("ci", 30, Some(1)).await;
    let ws = Workspace::new(&account, "");
    // The release signing key lives in a key file; the CI user `ci` holds it (its key reads the
    // key's password), and so does nobody else.
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

    // A pipeline's key committed by mistake.
    let repo = ws.path().join("repo");
    write(
        &repo.join("ci.env"),
        &format!("export AWS_ACCESS_KEY_ID={leaked}\nexport REGION=us-east-1\n"),
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

    let ingested = ws.json(
        &account,
        &["leak", "ingest", "baseline.json", "--output", "json"],
    );
    assert_eq!(ingested["format"], "detect_secrets", "{ingested:#}");
    let leak = &ingested["leaks"][0];
    assert_eq!(
        leak["matched"][0]["credential_external_id"],
        leaked.as_str(),
        "{ingested:#}"
    );
    assert_eq!(leak["matched"][0]["by"]["type"], "sha1", "{ingested:#}");
    assert_eq!(
        leak["contained"].as_array().map(Vec::len),
        Some(1),
        "{ingested:#}"
    );
    // Quarantined: inactive, with the policy denying its user's older sessions.
    assert_eq!(
        account.keys("ci").await,
        BTreeMap::from([(leaked.clone(), false)])
    );
    assert_eq!(
        account.inline_policies("ci").await,
        ["KeywardenRevokeOlderSessions"]
    );
    // The signer the CI user holds is distrusted for good; the other one is not.
    assert_eq!(
        leak["distrusted"].as_array().map(Vec::len),
        Some(1),
        "{ingested:#}"
    );
    let release = leak["distrusted"][0].as_str().expect("key id");
    let signers = ws.json(&account, &["trust", "list", "--format", "json"]);
    for signer in signers["signers"].as_array().expect("signers") {
        let name = signer["credentials"][0]["name"]
            .as_str()
            .unwrap_or_default();
        let distrusted = !signer["distrust_periods"]
            .as_array()
            .is_none_or(Vec::is_empty);
        assert_eq!(
            distrusted,
            name == "keys/release.pub",
            "{name}: {signers:#}"
        );
        if name == "keys/release.pub" {
            assert_eq!(signer["key_id"], release);
            assert_eq!(signer["trusted"], false, "{signer:#}");
            assert_eq!(signer["distrust_periods"][0]["reason"], "leaked");
            assert_eq!(signer["distrust_periods"][0]["until"], Value::Null);
        }
    }
    let findings = ws.json(&account, &["findings", "list", "--format", "json"]);
    let leaked_findings: Vec<&Value> = findings
        .as_array()
        .expect("findings")
        .iter()
        .filter(|it| it["policy_id"] == "keywarden.leaked")
        .collect();
    assert_eq!(leaked_findings.len(), 1, "{findings:#}");
    assert_eq!(leaked_findings[0]["severity"], "critical");

    // The same baseline again: nothing new is started.
    let actions = ws.json(&account, &["actions", "list", "--format", "json"]);
    let again = ws.json(
        &account,
        &["leak", "ingest", "baseline.json", "--output", "json"],
    );
    assert_eq!(again["leaks"][0]["new"], false, "{again:#}");
    assert_eq!(
        ws.json(&account, &["actions", "list", "--format", "json"]),
        actions
    );
}
