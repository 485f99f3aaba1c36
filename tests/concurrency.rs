//! Several keywarden processes on one store at the same time, as a daemon and CLI calls (or
//! several scheduled scans) share it; and what the store logs while they work.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use serde_json::Value;

use common::{
    Workspace, keywarden, repo, stderr, stdout, write_code_signing_cert, write_public_key,
};

/// The quickstart keys, plus enough generated public keys and certificates that one scan's
/// batches take long enough for three scans to overlap.
fn material(ws: &Workspace, bulk: usize) {
    let quickstart = repo().join("examples/quickstart/keys");
    copy_dir(&quickstart.join("release"), &ws.key("quickstart/release"));
    copy_dir(&quickstart.join("unsorted"), &ws.key("quickstart/unsorted"));
    for i in 0..bulk {
        write_public_key(&ws.key(&format!("bulk/deploy-{i:04}.pub")));
    }
    for i in 0..bulk / 10 {
        write_code_signing_cert(
            &ws.key(&format!("owned/signing-{i:03}.crt")),
            &format!("signing-{i}"),
            -400,
            20,
        );
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy");
    }
}

fn spawn(dir: &Path, args: &[&str], log: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_keywarden"))
        .args(args)
        .current_dir(dir)
        .env_remove("KEYWARDEN_CONFIG")
        .env("KEYWARDEN_LOG", log)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn keywarden")
}

/// The credential ids of a JSON scan report, with how often each appears.
fn credential_ids(report: &Value) -> BTreeMap<String, usize> {
    let mut ids = BTreeMap::new();
    for it in report["credentials"].as_array().expect("credentials") {
        let id = it["external_id"].as_str().expect("external_id").to_owned();
        *ids.entry(id).or_insert(0) += 1;
    }
    ids
}

fn ok(output: &Output, what: &str) {
    assert_eq!(
        output.status.code(),
        Some(0),
        "{what}\nstdout:\n{}\nstderr:\n{}",
        stdout(output),
        stderr(output)
    );
    let err = stderr(output);
    assert!(
        !err.contains("database") && !err.contains("locked"),
        "{what}: {err}"
    );
}

#[test]
fn three_scans_started_together_on_one_store_all_succeed_and_agree() {
    let ws = Workspace::new();
    material(&ws, 600);
    // Started together on a store that does not exist yet: creating and migrating it is raced
    // too.
    let children: Vec<Child> = (0..3)
        .map(|_| {
            spawn(
                ws.path(),
                &["scan", "--format", "json", "--no-progress"],
                "warn",
            )
        })
        .collect();
    let outputs: Vec<Output> = children
        .into_iter()
        .map(|it| it.wait_with_output().expect("wait"))
        .collect();
    for (n, output) in outputs.iter().enumerate() {
        ok(output, &format!("scan {n}"));
    }

    // Each saw the whole ledger, each credential once.
    let reports: Vec<Value> = outputs
        .iter()
        .map(|it| serde_json::from_slice(&it.stdout).expect("json report"))
        .collect();
    let expected = credential_ids(&reports[0]);
    assert!(expected.len() > 600, "{} credentials", expected.len());
    assert!(
        expected.values().all(|it| *it == 1),
        "duplicates: {expected:?}"
    );
    for report in &reports[1..] {
        assert_eq!(credential_ids(report), expected);
    }
    let scan_ids: std::collections::BTreeSet<i64> = reports
        .iter()
        .map(|it| it["scan_id"].as_i64().expect("scan id"))
        .collect();
    assert_eq!(scan_ids.len(), 3, "three scan runs");

    // A fourth scan finds the ledger consistent: nothing new, nothing gone, the same findings
    // once each; the audit chain holds.
    let after = ws.scan_json(0);
    assert_eq!(credential_ids(&after), expected);
    for source in after["sources"].as_array().expect("sources") {
        assert_eq!(source["new"], 0, "{source}");
        assert_eq!(source["gone"], 0, "{source}");
    }
    let mut findings = BTreeMap::new();
    for it in after["findings"].as_array().expect("findings") {
        let key = format!("{}/{}", it["credential"], it["policy"]);
        *findings.entry(key).or_insert(0) += 1;
    }
    assert!(findings.values().all(|it| *it == 1), "{findings:?}");
    let verify = keywarden(ws.path(), &["audit", "verify"]);
    ok(&verify, "audit verify");
}

#[test]
fn a_scan_at_trace_level_logs_no_statement_text() {
    let ws = Workspace::new();
    material(&ws, 1100);
    let output = spawn(ws.path(), &["scan", "--no-progress"], "trace")
        .wait_with_output()
        .expect("wait");
    ok(&output, "scan");
    let log = stderr(&output);
    assert!(!log.contains("INSERT INTO"), "statement text in the log");
    let longest = log.lines().map(str::len).max().unwrap_or_default();
    assert!(longest < 2000, "a log line of {longest} characters");
}
