//! `keywarden audit` end to end: verify, checkpoint, export; tampering found through the CLI; the
//! audit key kept out of the database and every output.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use common::{Workspace, keywarden, keywarden_with_env, stderr, stdout, write, write_public_key};

/// Runs SQL on the workspace's store with Python's sqlite3, as someone holding only the file would.
fn tamper(ws: &Workspace, sql: &str) {
    let status = Command::new("python3")
        .args([
            "-c",
            "import sqlite3, sys\nc = sqlite3.connect(sys.argv[1])\nc.executescript(sys.argv[2])\nc.commit()",
        ])
        .arg(ws.path().join("ledger.db"))
        .arg(sql)
        .status()
        .expect("python3");
    assert!(status.success());
}

fn run(ws: &Workspace, args: &[&str], expected: i32) -> Output {
    let output = keywarden(ws.path(), args);
    assert_eq!(
        output.status.code(),
        Some(expected),
        "{args:?}\nstdout:\n{}\nstderr:\n{}",
        stdout(&output),
        stderr(&output)
    );
    output
}

fn scanned() -> Workspace {
    let ws = Workspace::new();
    write_public_key(&ws.key("owned/a.pub"));
    write_public_key(&ws.key("b.pub"));
    ws.scan_json(0);
    ws
}

fn checkpoint(ws: &Workspace) -> String {
    let output = run(ws, &["audit", "checkpoint"], 0);
    let text = stdout(&output);
    let path = ws.path().join("checkpoint.json");
    write(&path, &text);
    text
}

#[test]
fn verify_checkpoint_and_export_on_an_intact_log() {
    let ws = scanned();
    let verify = run(&ws, &["audit", "verify"], 0);
    assert!(
        stdout(&verify).contains("audit log intact"),
        "{}",
        stdout(&verify)
    );

    let text = checkpoint(&ws);
    let checkpoint: serde_json::Value = serde_json::from_str(&text).expect("json");
    for field in ["seq", "hash", "at", "key_id", "mac"] {
        assert!(!checkpoint[field].is_null(), "{field}: {checkpoint}");
    }
    // More events after the checkpoint are fine.
    write_public_key(&ws.key("c.pub"));
    ws.scan_json(0);
    let verify = run(
        &ws,
        &["audit", "verify", "--checkpoint", "checkpoint.json"],
        0,
    );
    assert!(
        stdout(&verify).contains(&format!(
            "matches the checkpoint at event {}",
            checkpoint["seq"]
        )),
        "{}",
        stdout(&verify)
    );

    let export = run(&ws, &["audit", "export"], 0);
    let lines: Vec<serde_json::Value> = stdout(&export)
        .lines()
        .map(|it| serde_json::from_str(it).expect("one JSON event per line"))
        .collect();
    let seqs: Vec<i64> = lines
        .iter()
        .map(|it| it["seq"].as_i64().expect("seq"))
        .collect();
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>());
    assert!(lines.iter().any(|it| {
        it["kind"] == "credential.first_seen"
            && it["subject"]
                .as_str()
                .is_some_and(|it| it.starts_with("release-keys/"))
            && it["data"]["new"] == "active"
    }));
    let since = checkpoint["seq"].as_i64().expect("seq");
    let tail = run(&ws, &["audit", "export", "--since", &since.to_string()], 0);
    let tail: Vec<i64> = stdout(&tail)
        .lines()
        .map(|it| {
            serde_json::from_str::<serde_json::Value>(it).expect("json")["seq"]
                .as_i64()
                .expect("seq")
        })
        .collect();
    assert_eq!(tail, seqs[since as usize..]);
}

#[test]
fn a_changed_event_is_reported_by_verify() {
    let ws = scanned();
    tamper(
        &ws,
        "UPDATE events SET data = '{\"forged\":true}' WHERE seq = 2;",
    );
    let verify = run(&ws, &["audit", "verify"], 1);
    assert!(
        stdout(&verify).contains("event 2 was changed"),
        "{}",
        stdout(&verify)
    );
    // No checkpoint of a broken log.
    let output = run(&ws, &["audit", "checkpoint"], 1);
    assert!(stdout(&output).contains("no checkpoint was made"));
}

#[test]
fn the_newest_events_cut_off_after_a_checkpoint_are_reported() {
    let ws = scanned();
    let text = checkpoint(&ws);
    let seq = serde_json::from_str::<serde_json::Value>(&text).expect("json")["seq"]
        .as_i64()
        .expect("seq");
    tamper(&ws, &format!("DELETE FROM events WHERE seq > {};", seq - 3));
    // The rest of the chain holds: only the checkpoint shows what is missing.
    run(&ws, &["audit", "verify"], 0);
    let verify = run(
        &ws,
        &["audit", "verify", "--checkpoint", "checkpoint.json"],
        1,
    );
    assert!(stdout(&verify).contains("cut off"), "{}", stdout(&verify));
}

#[test]
fn a_forged_or_malformed_checkpoint_is_refused() {
    let ws = scanned();
    let text = checkpoint(&ws);
    let mut forged: serde_json::Value = serde_json::from_str(&text).expect("json");
    forged["seq"] = serde_json::json!(1);
    write(&ws.path().join("forged.json"), &forged.to_string());
    let verify = run(&ws, &["audit", "verify", "--checkpoint", "forged.json"], 1);
    assert!(
        stdout(&verify).contains("checkpoint refused"),
        "{}",
        stdout(&verify)
    );
    assert!(stdout(&verify).contains("forged"), "{}", stdout(&verify));

    write(&ws.path().join("bad.json"), "{\n  \"seq\": \"x\"\n}\n");
    let output = run(&ws, &["audit", "verify", "--checkpoint", "bad.json"], 2);
    assert!(
        stderr(&output).contains("bad.json:2:"),
        "{}",
        stderr(&output)
    );
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|it| it == needle)
}

fn database_bytes(dir: &Path) -> Vec<u8> {
    let mut bytes = std::fs::read(dir.join("ledger.db")).expect("db");
    bytes.extend(std::fs::read(dir.join("ledger.db-wal")).unwrap_or_default());
    bytes
}

#[test]
fn the_key_file_is_0600_and_the_key_is_in_no_output_and_not_in_the_database() {
    let ws = Workspace::new();
    write_public_key(&ws.key("a.pub"));
    let mut seen = Vec::new();
    for args in [
        vec!["scan", "--log-level", "trace"],
        vec!["audit", "verify", "--log-level", "trace"],
        vec!["audit", "checkpoint", "--log-level", "trace"],
        vec!["audit", "export", "--log-level", "trace"],
    ] {
        let output = keywarden(ws.path(), &args);
        assert_eq!(
            output.status.code(),
            Some(0),
            "{args:?}: {}",
            stderr(&output)
        );
        seen.extend(output.stdout);
        seen.extend(output.stderr);
    }
    let key_file = ws.path().join("ledger.db.audit-key");
    let mode = std::fs::metadata(&key_file)
        .expect("key file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    let hex = std::fs::read_to_string(&key_file).expect("key");
    let hex = hex.trim();
    assert_eq!(hex.len(), 64);
    let raw: Vec<u8> = (0..32)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex"))
        .collect();
    assert!(!contains(&seen, hex.as_bytes()));
    let db = database_bytes(ws.path());
    assert!(!contains(&db, hex.as_bytes()));
    assert!(!contains(&db, &raw));

    // A key file others may read is refused, and the message does not show it.
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let output = keywarden(ws.path(), &["audit", "verify"]);
    assert_eq!(output.status.code(), Some(3));
    assert!(stderr(&output).contains("chmod 600"), "{}", stderr(&output));
    assert!(!stderr(&output).contains(hex));
}

#[test]
fn the_key_can_come_from_the_environment_and_another_key_is_refused() {
    let ws = Workspace::new();
    write_public_key(&ws.key("a.pub"));
    let hex = "11".repeat(32);
    // The same 32 bytes in base64.
    let base64 = "ERERERERERERERERERERERERERERERERERERERERERE=";
    let other = "22".repeat(32);
    let scan = keywarden_with_env(
        ws.path(),
        &["scan", "--format", "json"],
        &[("KEYWARDEN_AUDIT_KEY", &hex)],
    );
    assert_eq!(scan.status.code(), Some(0), "{}", stderr(&scan));
    assert!(!ws.path().join("ledger.db.audit-key").exists());
    let verify = keywarden_with_env(
        ws.path(),
        &["audit", "verify"],
        &[("KEYWARDEN_AUDIT_KEY", base64)],
    );
    assert_eq!(verify.status.code(), Some(0), "{}", stderr(&verify));

    let wrong = keywarden_with_env(
        ws.path(),
        &["audit", "verify"],
        &[("KEYWARDEN_AUDIT_KEY", &other)],
    );
    assert_eq!(wrong.status.code(), Some(3));
    assert!(stderr(&wrong).contains("audit key"), "{}", stderr(&wrong));
    // Without the variable there is no key file: a new key would not verify the log.
    let missing = keywarden(ws.path(), &["audit", "verify"]);
    assert_eq!(missing.status.code(), Some(3));
    assert!(
        stderr(&missing).contains("does not exist"),
        "{}",
        stderr(&missing)
    );
    assert!(!ws.path().join("ledger.db.audit-key").exists());
    let bad = keywarden_with_env(
        ws.path(),
        &["audit", "verify"],
        &[("KEYWARDEN_AUDIT_KEY", "not-a-key")],
    );
    assert_eq!(bad.status.code(), Some(3));
    for output in [&scan, &verify, &wrong, &missing, &bad] {
        for secret in [hex.as_str(), base64, other.as_str(), "not-a-key"] {
            assert!(!stdout(output).contains(secret) && !stderr(output).contains(secret));
        }
    }
}
