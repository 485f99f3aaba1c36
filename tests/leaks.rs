//! `keywarden leak ingest` end to end through the real binary: reports shaped as their tools write
//! them (plaintext fields included), matched against real key files, recorded once, answered with
//! findings, and no plaintext in the database, the logs at trace level or any output.

mod common;

use common::{keywarden_with_env, stderr, stdout, write};
use serde_json::Value;

const AKID: &str = "AKIAZ6EXAMPLE7KEY4ID";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY";

struct Intake {
    dir: tempfile::TempDir,
    /// The private key of the signer in `keys/`.
    pem: String,
}

impl Intake {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = rcgen::KeyPair::generate().expect("key");
        let pem = key.serialize_pem();
        write(&dir.path().join("keys/deploy.key"), &pem);
        write(
            &dir.path().join("keywarden.yaml"),
            "store:\n  path: ledger.db\npolicies: []\nsources:\n  keys:\n    type: files\n    \
             paths:\n      - glob: \"keys/**\"\n",
        );
        let ws = Self { dir, pem };
        let scan = ws.run(&["scan", "--format", "json", "--no-enforce"]);
        assert_eq!(scan.status.code(), Some(0), "{}", stderr(&scan));
        ws
    }

    fn run(&self, args: &[&str]) -> std::process::Output {
        keywarden_with_env(self.dir.path(), args, &[("KEYWARDEN_LOG", "trace")])
    }

    fn report(&self, name: &str, text: &str) -> String {
        write(&self.dir.path().join(name), text);
        name.to_owned()
    }

    fn ingest(&self, file: &str) -> (Value, String) {
        let out = self.run(&["leak", "ingest", file, "--output", "json"]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let all = format!("{}{}", stdout(&out), stderr(&out));
        (serde_json::from_slice(&out.stdout).expect("json"), all)
    }

    fn findings(&self) -> Vec<Value> {
        let out = self.run(&["findings", "list", "--format", "json"]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        serde_json::from_slice::<Value>(&out.stdout)
            .expect("json")
            .as_array()
            .expect("findings")
            .clone()
    }

    fn events(&self) -> usize {
        let out = self.run(&["audit", "export"]);
        stdout(&out).lines().count()
    }

    /// The store's files (database, WAL) as bytes.
    fn database(&self) -> Vec<u8> {
        let mut all = Vec::new();
        for name in ["ledger.db", "ledger.db-wal"] {
            if let Ok(bytes) = std::fs::read(self.dir.path().join(name)) {
                all.extend(bytes);
            }
        }
        all
    }

    /// No secret of the reports, nor any line of the private key's body, in `text`.
    fn assert_clean(&self, what: &str, text: &[u8]) {
        let text = String::from_utf8_lossy(text);
        assert!(!text.contains(SECRET), "the secret key is in {what}");
        for line in self.pem.lines().filter(|it| !it.starts_with("-----")) {
            assert!(!text.contains(line), "a private key line is in {what}");
        }
    }
}

fn json_string(text: &str) -> String {
    serde_json::to_string(text).expect("json")
}

#[test]
fn a_private_key_in_a_gitleaks_report_exposes_its_signer_and_a_second_ingest_changes_nothing() {
    let ws = Intake::new();
    let report = ws.report(
        "gitleaks.json",
        &format!(
            r#"[{{"RuleID":"private-key","Description":"Private Key","StartLine":1,"EndLine":5,"Match":{pem},"Secret":{pem},"File":"deploy/signing.key","Commit":"3b3f2a1","Date":"2026-11-17T08:00:00Z","Fingerprint":"3b3f2a1:deploy/signing.key:private-key:1"}},
                {{"RuleID":"aws-access-token","StartLine":3,"Match":"aws_secret_access_key = {SECRET} {AKID}","Secret":"{AKID}","File":"ci.env","Commit":"3b3f2a1","Date":"2026-11-17T08:00:00Z","Fingerprint":"3b3f2a1:ci.env:aws-access-token:3"}}]"#,
            pem = json_string(&ws.pem)
        ),
    );
    let (first, output) = ws.ingest(&report);
    assert_eq!(first["format"], "gitleaks");
    let leaks = first["leaks"].as_array().expect("leaks");
    assert_eq!(leaks.len(), 2);
    assert_eq!(leaks[0]["new"], true);
    let matched = &leaks[0]["matched"][0];
    assert_eq!(matched["source"], "keys", "{first:#}");
    assert_eq!(matched["by"]["type"], "key_id", "{first:#}");
    // The files source takes no actions: the exposure is a finding, and the output says why
    // nothing was contained.
    assert!(
        leaks[0]["not_contained"][0]
            .as_str()
            .is_some_and(|it| it.contains("takes no") || it.contains("cannot")),
        "{first:#}"
    );
    assert!(leaks[1]["matched"].as_array().is_some_and(Vec::is_empty));
    // The exposed key is a signer: distrusted for good from the exposure minus the look-back
    // (1 day by default), so what it signed before stays trusted.
    let key_id = leaks[0]["distrusted"][0]
        .as_str()
        .expect("distrusted")
        .to_owned();
    let shown = |at: &str| {
        let out = ws.run(&["trust", "show", &key_id, "--at", at, "--format", "json"]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        serde_json::from_slice::<Value>(&out.stdout).expect("json")
    };
    let period = &shown("2026-11-16T08:00:00Z")["distrust_periods"][0];
    assert_eq!(period["from"], "2026-11-16T08:00:00Z", "{period:#}");
    assert_eq!(period["until"], Value::Null);
    assert_eq!(period["reason"], "leaked");
    assert_eq!(shown("2099-01-01T00:00:00Z")["trusted"], false, "for good");

    let findings = ws.findings();
    let leaked: Vec<&Value> = findings
        .iter()
        .filter(|it| it["policy_id"] == "keywarden.leaked")
        .collect();
    assert_eq!(leaked.len(), 1, "{findings:#?}");
    assert_eq!(leaked[0]["severity"], "critical");
    let unmatched: Vec<&Value> = findings
        .iter()
        .filter(|it| it["policy_id"] == "keywarden.leak-unmatched")
        .collect();
    assert_eq!(unmatched.len(), 1, "{findings:#?}");
    assert!(
        unmatched[0]["reason"]
            .as_str()
            .is_some_and(|it| it.contains(AKID)),
        "the unmatched finding names the access key id: {findings:#?}"
    );

    // Again: nothing new, no event, no finding, no second period.
    let events = ws.events();
    let (again, again_output) = ws.ingest(&report);
    assert!(
        again["leaks"]
            .as_array()
            .expect("leaks")
            .iter()
            .all(|it| it["new"] == false),
        "{again:#}"
    );
    assert_eq!(ws.events(), events);
    assert_eq!(
        again["leaks"][0]["matched"], first["leaks"][0]["matched"],
        "a leak answered before still shows what it matched"
    );
    assert_eq!(again["leaks"][0]["answered"], false, "{again:#}");
    assert_eq!(ws.findings().len(), findings.len());
    assert_eq!(
        shown("2026-11-16T08:00:00Z")["distrust_periods"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );

    ws.assert_clean("the ingest's output and trace log", output.as_bytes());
    ws.assert_clean("the second ingest's output", again_output.as_bytes());
    ws.assert_clean("the database", &ws.database());
    let listed = ws.run(&["leak", "list", "--format", "json"]);
    ws.assert_clean("leak list", &listed.stdout);
    let audit = ws.run(&["audit", "export"]);
    ws.assert_clean("the audit log", &audit.stdout);
}

#[test]
fn trufflehog_and_detect_secrets_reports_are_matched_or_kept_as_unmatched_findings() {
    let ws = Intake::new();
    let trufflehog = ws.report(
        "trufflehog.jsonl",
        &format!(
            "{}\n{}\n",
            format_args!(
                r#"{{"SourceMetadata":{{"Data":{{"Filesystem":{{"file":"signing.key","line":1}}}}}},"DetectorType":20,"DetectorName":"PrivateKey","Verified":false,"Raw":{pem},"RawV2":{pem}}}"#,
                pem = json_string(&ws.pem)
            ),
            format_args!(
                r#"{{"SourceMetadata":{{"Data":{{"Git":{{"commit":"abc","file":"ci.env","timestamp":"2026-11-18 10:17:40 -0700","line":4}}}}}},"DetectorType":2,"DetectorName":"AWS","Verified":true,"Raw":"{AKID}","RawV2":"{AKID}:{SECRET}","SecretParts":{{"access_key_id":"{AKID}","secret_access_key":"{SECRET}"}}}}"#
            )
        ),
    );
    let (report, output) = ws.ingest(&trufflehog);
    assert_eq!(report["format"], "trufflehog");
    assert_eq!(
        report["leaks"][0]["matched"][0]["source"], "keys",
        "{report:#}"
    );
    assert_eq!(report["leaks"][1]["matched"], serde_json::json!([]));
    ws.assert_clean("the TruffleHog ingest", output.as_bytes());

    let baseline = ws.report(
        "baseline.json",
        r#"{"version":"1.5.0","plugins_used":[{"name":"AWSKeyDetector"}],"filters_used":[],"generated_at":"2026-11-30T12:00:00Z","results":{"ci/deploy.sh":[{"type":"AWS Access Key","filename":"ci/deploy.sh","hashed_secret":"25910f981e85ca04baf359199dd0bd4a3ae738b6","is_verified":false,"line_number":12}]}}"#,
    );
    let (report, _) = ws.ingest(&baseline);
    assert_eq!(report["format"], "detect_secrets");
    assert_eq!(report["leaks"][0]["matched"], serde_json::json!([]));
    let unmatched = ws
        .findings()
        .into_iter()
        .filter(|it| it["policy_id"] == "keywarden.leak-unmatched")
        .count();
    assert_eq!(unmatched, 2, "the AWS line and the baseline entry");
    ws.assert_clean("the database", &ws.database());
}

#[test]
fn a_truncated_or_unknown_report_is_a_clear_error_and_records_nothing() {
    let ws = Intake::new();
    let events = ws.events();
    let truncated = ws.report(
        "truncated.json",
        &format!(r#"[{{"RuleID":"aws-access-token","Secret":"{SECRET}","StartLine":"#),
    );
    let out = ws.run(&["leak", "ingest", &truncated]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("truncated.json:1:"),
        "{}",
        stderr(&out)
    );
    ws.assert_clean("the error", &out.stderr);

    let unknown = ws.report("unknown.json", r#"{"hello": "world"}"#);
    let out = ws.run(&["leak", "ingest", &unknown]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--format"), "{}", stderr(&out));

    let wrong = ws.run(&["leak", "ingest", &unknown, "--format", "gitleaks"]);
    assert_eq!(wrong.status.code(), Some(2), "{}", stderr(&wrong));
    assert_eq!(ws.events(), events, "nothing was recorded");
    let listed = ws.run(&["leak", "list", "--format", "json"]);
    assert_eq!(stdout(&listed).trim(), "[]");
}

#[test]
fn a_leak_that_matched_nothing_is_answered_once_its_key_is_in_the_ledger() {
    let ws = Intake::new();
    // A key the ledger has not seen yet.
    let later = rcgen::KeyPair::generate().expect("key").serialize_pem();
    let report = ws.report(
        "gitleaks.json",
        &format!(
            r#"[{{"RuleID":"private-key","StartLine":1,"Secret":{pem},"File":"k.pem","Commit":"c1","Date":"2026-11-20T00:00:00Z","Fingerprint":"c1:k.pem:private-key:1"}}]"#,
            pem = json_string(&later)
        ),
    );
    let (first, _) = ws.ingest(&report);
    assert_eq!(
        first["leaks"][0]["matched"],
        serde_json::json!([]),
        "{first:#}"
    );
    let count = |ws: &Intake, policy: &str| {
        ws.findings()
            .into_iter()
            .filter(|it| it["policy_id"] == policy && it["status"] != "resolved")
            .count()
    };
    assert_eq!(count(&ws, "keywarden.leak-unmatched"), 1);

    // The key turns up in a scanned directory: the same report now exposes it.
    write(&ws.dir.path().join("keys/later.key"), &later);
    let scan = ws.run(&["scan", "--format", "json", "--no-enforce"]);
    assert_eq!(scan.status.code(), Some(0), "{}", stderr(&scan));
    let (again, _) = ws.ingest(&report);
    let leak = &again["leaks"][0];
    assert_eq!(leak["new"], false, "{again:#}");
    assert_eq!(leak["answered"], true, "{again:#}");
    assert_eq!(leak["matched"][0]["source"], "keys", "{again:#}");
    assert_eq!(
        leak["distrusted"].as_array().map(Vec::len),
        Some(1),
        "{again:#}"
    );
    assert_eq!(
        count(&ws, "keywarden.leak-unmatched"),
        0,
        "the unmatched finding is resolved"
    );
    assert_eq!(count(&ws, "keywarden.leaked"), 1);

    // And a third time: nothing left to do.
    let events = ws.events();
    let (third, _) = ws.ingest(&report);
    assert_eq!(third["leaks"][0]["answered"], false, "{third:#}");
    assert_eq!(ws.events(), events);
}
