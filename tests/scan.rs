//! `keywarden scan` end to end: the real binary over real key material in a temp dir.

mod common;

use common::{
    Workspace, credential, finding_policies, keywarden, stderr, stdout, write,
    write_code_signing_cert, write_public_key,
};

#[test]
fn second_scan_keeps_first_seen_marks_gone_resolves_replaced_and_opens_no_duplicates() {
    let ws = Workspace::new();
    write_public_key(&ws.key("owned/app.pub"));
    write_public_key(&ws.key("owned/retired.pub"));
    write_code_signing_cert(&ws.key("owned/release.crt"), "release", -300, 10);

    let first = ws.scan_json(0);
    assert_eq!(
        finding_policies(&first, "keys/owned/release.crt"),
        ["code-signing-cert-expiring"]
    );
    let first_seen = credential(&first, "keys/owned/app.pub").expect("app")["first_seen"].clone();
    let findings_before = first["findings"].as_array().expect("findings").len();

    // Nothing changed on disk: nothing new, no duplicate finding, first sighting kept.
    let again = ws.scan_json(0);
    assert_eq!(again["changes"]["opened"], 0, "{again:#}");
    assert_eq!(
        again["findings"].as_array().expect("findings").len(),
        findings_before
    );
    assert_eq!(
        credential(&again, "keys/owned/app.pub").expect("app")["first_seen"],
        first_seen
    );

    // Delete one key and renew the certificate.
    std::fs::remove_file(ws.key("owned/retired.pub")).expect("rm");
    write_code_signing_cert(&ws.key("owned/release.crt"), "release", -1, 365);
    let second = ws.scan_json(0);

    assert_eq!(
        credential(&second, "keys/owned/app.pub").expect("app")["first_seen"],
        first_seen
    );
    assert!(
        credential(&second, "keys/owned/retired.pub").is_none(),
        "{second:#}"
    );
    let source = &second["sources"][0];
    // The deleted key and the replaced certificate are gone; the renewed certificate is a new
    // credential without findings, and the old one's finding is resolved.
    assert_eq!(source["gone"], 2, "{second:#}");
    assert_eq!(source["new"], 1, "{second:#}");
    assert!(
        finding_policies(&second, "keys/owned/release.crt").is_empty(),
        "{second:#}"
    );
    assert_eq!(second["changes"]["resolved"], 1, "{second:#}");
    assert_eq!(second["changes"]["opened"], 0, "{second:#}");
    assert!(
        second["findings"]
            .as_array()
            .expect("findings")
            .iter()
            .all(|it| it["policy"] != "code-signing-cert-expiring"),
        "{second:#}"
    );

    let verify = keywarden(ws.path(), &["audit", "verify"]);
    assert_eq!(verify.status.code(), Some(0), "{}", stdout(&verify));
    assert!(stdout(&verify).contains("audit log intact"));
}

#[test]
fn malformed_pem_is_one_scan_error_and_the_rest_is_inventoried() {
    let ws = Workspace::new();
    write_public_key(&ws.key("owned/a.pub"));
    write_public_key(&ws.key("owned/b.pub"));
    write_code_signing_cert(&ws.key("owned/c.crt"), "c", -10, 100);
    write(
        &ws.key("owned/broken.pem"),
        "-----BEGIN PUBLIC KEY-----\nnot base64 at all!!\n-----END PUBLIC KEY-----\n",
    );
    let report = ws.scan_json(0);
    let errors = report["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 1, "{report:#}");
    assert!(
        errors[0]["subject"]
            .as_str()
            .expect("subject")
            .ends_with("broken.pem"),
        "{report:#}"
    );
    let names: Vec<&str> = report["credentials"]
        .as_array()
        .expect("credentials")
        .iter()
        .map(|it| it["name"].as_str().expect("name"))
        .collect();
    for name in ["keys/owned/a.pub", "keys/owned/b.pub", "keys/owned/c.crt"] {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }
    assert_eq!(names.len(), 3, "{names:?}");
}

#[cfg(unix)]
#[test]
fn the_scan_names_what_it_left_unread_and_why() {
    let ws = Workspace::new();
    write_public_key(&ws.key("owned/a.pub"));
    // A symlinked certificate directory, as /etc/ssl/certs is, and a file too large for a key.
    let outside = tempfile::tempdir().expect("tempdir");
    write_code_signing_cert(&outside.path().join("ca.crt"), "ca", -10, 100);
    std::fs::create_dir_all(ws.key("certs")).expect("mkdir");
    std::os::unix::fs::symlink(outside.path().join("ca.crt"), ws.key("certs/ca.pem"))
        .expect("symlink");
    write(&ws.key("owned/huge.pem"), &"x".repeat(4 * 1024 * 1024 + 1));

    let table = keywarden(ws.path(), &["scan"]);
    let text = stdout(&table);
    assert!(
        text.contains("2 left unread in source release-keys"),
        "{text}"
    );
    assert!(text.contains("keys/certs/ca.pem: links to `"), "{text}");
    assert!(text.contains("set `follow_symlinks: true`"), "{text}");
    assert!(
        text.contains("keys/owned/huge.pem: 4194305 bytes"),
        "{text}"
    );

    let report = ws.scan_json(0);
    let skipped = &report["sources"][0]["skipped"];
    assert_eq!(skipped["total"], 2, "{report:#}");
    assert_eq!(skipped["by_reason"]["symlink_outside"], 1, "{report:#}");
    assert_eq!(skipped["by_reason"]["too_large"], 1, "{report:#}");
    assert_eq!(
        skipped["first"][0]["subject"], "keys/certs/ca.pem",
        "{report:#}"
    );

    // Opted in, the certificate behind the link is read.
    let config = std::fs::read_to_string(ws.path().join("keywarden.yaml")).expect("config");
    write(
        &ws.path().join("keywarden.yaml"),
        &config.replace(
            "    type: files\n",
            "    type: files\n    follow_symlinks: true\n",
        ),
    );
    let report = ws.scan_json(0);
    assert!(
        credential(&report, "keys/certs/ca.pem").is_some(),
        "{report:#}"
    );
    assert_eq!(report["sources"][0]["skipped"]["total"], 1, "{report:#}");
}

#[test]
fn fail_on_gates_on_severity() {
    let ws = Workspace::new();
    // Expired two days ago: a critical finding.
    write_code_signing_cert(&ws.key("owned/old.crt"), "old", -400, -2);
    ws.scan_json(0);
    let output = keywarden(
        ws.path(),
        &["scan", "--format", "json", "--fail-on", "critical"],
    );
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let output = keywarden(ws.path(), &["scan", "--fail-on", "low"]);
    assert_eq!(output.status.code(), Some(1));
    let bad = keywarden(ws.path(), &["scan", "--fail-on", "severe"]);
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn fail_on_ignores_a_suppressed_finding_and_the_suppression_is_audited() {
    let ws = Workspace::new();
    // Expired, but younger than a year: exactly one finding.
    write_code_signing_cert(&ws.key("owned/old.crt"), "old", -200, -2);
    let report = ws.scan_json(0);
    let findings = report["findings"].as_array().expect("findings");
    assert_eq!(findings.len(), 1, "{report:#}");
    let id = findings[0]["id"].to_string();
    // A suppression too long to represent is refused naming the flag, and changes nothing.
    for until in ["300000y", "99999999999999999999d", "9999-12-31T00:00:00Z"] {
        let refused = keywarden(
            ws.path(),
            &[
                "findings", "suppress", &id, "--until", until, "--reason", "r", "--by", "bob",
            ],
        );
        assert_eq!(
            refused.status.code(),
            Some(2),
            "{until}: {}",
            stderr(&refused)
        );
        assert!(
            stderr(&refused).contains(&format!("--until `{until}`")),
            "{}",
            stderr(&refused)
        );
        assert!(
            !stderr(&refused).contains("panicked"),
            "{}",
            stderr(&refused)
        );
    }
    assert_eq!(ws.scan_json(0)["findings"][0]["status"], "open");
    let suppress = keywarden(
        ws.path(),
        &[
            "findings",
            "suppress",
            &id,
            "--until",
            "30d",
            "--reason",
            "replacement ordered",
            "--by",
            "alice",
        ],
    );
    assert_eq!(suppress.status.code(), Some(0), "{}", stderr(&suppress));
    let output = keywarden(ws.path(), &["scan", "--format", "json", "--fail-on", "low"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    assert_eq!(report["findings"][0]["status"], "suppressed");
    assert_eq!(report["findings"][0]["suppressed_by"], "alice");
    assert_eq!(
        report["findings"][0]["suppress_reason"],
        "replacement ordered"
    );
}

#[test]
fn table_output_is_worst_first_and_says_where_ages_come_from() {
    let ws = Workspace::new();
    write_public_key(&ws.key("owned/fresh.pub"));
    write_code_signing_cert(&ws.key("owned/expired.crt"), "expired", -400, -2);
    write_code_signing_cert(&ws.key("owned/soon.crt"), "soon", -100, 5);
    let output = keywarden(ws.path(), &["scan"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = stdout(&output);
    let expired = text.find("keys/owned/expired.crt").expect("expired row");
    let soon = text.find("keys/owned/soon.crt").expect("soon row");
    let fresh = text.find("keys/owned/fresh.pub").expect("fresh row");
    assert!(expired < soon && soon < fresh, "{text}");
    assert!(text.contains("first sighting"), "{text}");
    // Piped: no progress bar on stderr.
    assert!(!stderr(&output).contains("scanning"), "{}", stderr(&output));
}

#[test]
fn a_broken_config_leaves_the_store_untouched() {
    let ws = Workspace::new();
    write_public_key(&ws.key("owned/a.pub"));
    ws.scan_json(0);
    let db = ws.path().join("ledger.db");
    // Checkpointed on close, so the main file holds everything.
    let before = std::fs::read(&db).expect("db");

    let config = ws.path().join("keywarden.yaml");
    let good = std::fs::read_to_string(&config).expect("config");
    write(&config, &format!("{good}    colour: red\n"));
    write_public_key(&ws.key("owned/b.pub"));
    let output = keywarden(ws.path(), &["scan"]);
    assert_eq!(output.status.code(), Some(2), "{}", stdout(&output));
    let err = stderr(&output);
    assert!(err.contains("keywarden.yaml:"), "{err}");
    assert!(err.contains("colour"), "{err}");
    assert_eq!(std::fs::read(&db).expect("db"), before, "store changed");

    // A broken policy is refused the same way.
    write(&config, &good.replace("- /", "- ./bad-policies\n  - /"));
    write(
        &ws.path().join("bad-policies/bad.yaml"),
        "policies:\n  - id: broken\n    severity: high\n    when:\n      age_over: 90 dayz\n",
    );
    let output = keywarden(ws.path(), &["scan"]);
    assert_eq!(output.status.code(), Some(2), "{}", stdout(&output));
    assert!(
        stderr(&output).contains("bad.yaml:5:"),
        "{}",
        stderr(&output)
    );
    assert_eq!(std::fs::read(&db).expect("db"), before, "store changed");
}

#[test]
fn a_broken_config_creates_no_store() {
    let ws = Workspace::new();
    let config = ws.path().join("keywarden.yaml");
    let good = std::fs::read_to_string(&config).expect("config");
    write(&config, &good.replace("type: files", "type: filez"));
    let output = keywarden(ws.path(), &["scan"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("filez"), "{}", stderr(&output));
    assert!(!ws.path().join("ledger.db").exists());
}

#[test]
fn init_writes_a_config_that_scans() {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = keywarden(dir.path(), &["init"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(dir.path().join("policies/signing-keys.yaml").exists());
    // A second init refuses to overwrite.
    let again = keywarden(dir.path(), &["init"]);
    assert_eq!(again.status.code(), Some(2));
    write_code_signing_cert(&dir.path().join("keys/release/ci.crt"), "ci", -500, 200);
    let check = keywarden(dir.path(), &["policy", "check"]);
    assert_eq!(check.status.code(), Some(0), "{}", stderr(&check));
    let scan = keywarden(dir.path(), &["scan", "--format", "json"]);
    assert_eq!(scan.status.code(), Some(0), "{}", stderr(&scan));
    let report: serde_json::Value = serde_json::from_slice(&scan.stdout).expect("json");
    assert_eq!(
        finding_policies(&report, "keys/release/ci.crt"),
        ["signing-key-max-age"]
    );
    assert_eq!(
        credential(&report, "keys/release/ci.crt").expect("ci")["owner"],
        "release-eng"
    );
}

#[test]
fn a_dry_run_action_on_a_source_that_takes_no_actions_says_so() {
    let ws = Workspace::new();
    write_code_signing_cert(&ws.key("owned/old.crt"), "old", -400, 30);
    let report = ws.scan_json(0);
    let planned = report["planned_actions"]
        .as_array()
        .expect("planned_actions");
    let rotation = planned
        .iter()
        .find(|it| it["policy"] == "signing-key-max-age")
        .unwrap_or_else(|| panic!("no planned rotation: {report:#}"));
    assert_eq!(rotation["action"], "rotate", "{rotation:#}");
    assert_eq!(rotation["decision"], "unsupported", "{rotation:#}");
    assert_eq!(
        rotation["reason"],
        "source `release-keys` (files) takes no actions; its credentials are reported only",
        "{rotation:#}"
    );
}
