//! `keywarden trust` end to end: signers found in real key files, revoked and reinstated by hand
//! through the real binary, every change audited, bad input refused without a change.

mod common;

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use common::{keywarden, stderr, stdout, write, write_public_key};
use serde_json::Value;

/// A workspace with two `files` sources: `keys` (the signer) and `ci` (a pipeline's key file),
/// and a `signers:` entry saying the `ci` identities hold the signer.
struct Trust {
    dir: tempfile::TempDir,
}

impl Trust {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        write_public_key(&dir.path().join("keys/release.pub"));
        write_public_key(&dir.path().join("ci/deploy.pub"));
        write(
            &dir.path().join("keywarden.yaml"),
            "store:\n  path: ledger.db\npolicies: []\nsources:\n  keys:\n    type: files\n    \
             paths:\n      - glob: \"keys/**\"\n  ci:\n    type: files\n    paths:\n      - \
             glob: \"ci/**\"\nsigners:\n  - key: { file: keys/release.pub }\n    held_by:\n      \
             - source: ci\n        identities: [\"*\"]\n",
        );
        let scan = keywarden(dir.path(), &["scan", "--format", "json", "--no-enforce"]);
        assert_eq!(scan.status.code(), Some(0), "{}", stderr(&scan));
        Self { dir }
    }

    fn run(&self, args: &[&str]) -> std::process::Output {
        keywarden(self.dir.path(), args)
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["--format", "json"]);
        let out = self.run(&all);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
        serde_json::from_slice(&out.stdout).expect("json")
    }

    /// The key id of `keys/release.pub`.
    fn release(&self) -> String {
        let list = self.json(&["trust", "list"]);
        let signers = list["signers"].as_array().expect("signers");
        let signer = signers
            .iter()
            .find(|it| {
                it["credentials"]
                    .as_array()
                    .is_some_and(|c| c.iter().any(|c| c["name"] == "keys/release.pub"))
            })
            .unwrap_or_else(|| panic!("release.pub is a signer: {list:#}"));
        signer["key_id"].as_str().expect("key id").to_owned()
    }

    fn trusted_at(&self, key_id: &str, at: DateTime<Utc>) -> bool {
        let shown = self.json(&["trust", "show", key_id, "--at", &text(at)]);
        shown["trusted"].as_bool().expect("trusted")
    }

    /// The audit events about signers, as `audit export` writes them.
    fn signer_events(&self) -> Vec<Value> {
        let out = self.run(&["audit", "export"]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        stdout(&out)
            .lines()
            .map(|line| serde_json::from_str::<Value>(line).expect("event"))
            .filter(|it| {
                it["subject"]
                    .as_str()
                    .is_some_and(|s| s.starts_with("signer/"))
            })
            .collect()
    }
}

fn text(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[test]
fn a_signer_revoked_from_t_trusts_signatures_before_t_and_none_after() {
    let ws = Trust::new();
    let key = ws.release();
    let t = Utc::now() + Duration::days(10);
    assert!(
        ws.trusted_at(&key, t + Duration::days(1)),
        "trusted before any revocation"
    );

    let out = ws.run(&[
        "trust",
        "revoke",
        &key,
        "--from",
        &text(t),
        "--reason",
        "key found in a public gist",
        "--by",
        "alice",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(ws.trusted_at(&key, t - Duration::seconds(1)));
    assert!(!ws.trusted_at(&key, t), "the period includes its start");
    assert!(!ws.trusted_at(&key, t + Duration::days(3650)), "for good");

    let events = ws.signer_events();
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0]["kind"], "signer.distrusted");
    assert_eq!(events[0]["data"]["by"], "alice");
    assert_eq!(events[0]["data"]["reason"], "manual");
    assert_eq!(events[0]["data"]["evidence"], "key found in a public gist");

    // The same revocation again changes nothing and writes no event.
    let again = ws.run(&[
        "trust",
        "revoke",
        &key,
        "--from",
        &text(t),
        "--reason",
        "again",
        "--by",
        "bob",
    ]);
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    assert!(stderr(&again).contains("unchanged"), "{}", stderr(&again));
    assert_eq!(ws.signer_events().len(), 1);
}

#[test]
fn a_closed_period_distrusts_only_inside_it() {
    let ws = Trust::new();
    let key = ws.release();
    let t1 = Utc::now() + Duration::days(10);
    let t2 = t1 + Duration::days(5);
    let out = ws.run(&[
        "trust",
        "revoke",
        &key,
        "--from",
        &text(t1),
        "--until",
        &text(t2),
        "--reason",
        "holder key unrotated",
        "--by",
        "bob",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(ws.trusted_at(&key, t1 - Duration::seconds(1)));
    assert!(!ws.trusted_at(&key, t1));
    assert!(!ws.trusted_at(&key, t2 - Duration::seconds(1)));
    assert!(ws.trusted_at(&key, t2), "the period ends before `until`");
}

#[test]
fn reinstating_needs_a_reason_and_is_audited() {
    let ws = Trust::new();
    let key = ws.release();
    let from = Utc::now() - Duration::minutes(1);
    let out = ws.run(&[
        "trust",
        "revoke",
        &key,
        "--from",
        &text(from),
        "--reason",
        "suspected",
        "--by",
        "alice",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    let refused = ws.run(&["trust", "reinstate", &key, "--reason", " ", "--by", "carol"]);
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("--reason"),
        "{}",
        stderr(&refused)
    );
    assert_eq!(
        ws.signer_events().len(),
        1,
        "a refused reinstatement writes nothing"
    );

    // Backdated: it would trust what was signed while distrusted.
    let past = text(Utc::now() - Duration::days(1));
    let backdated = ws.run(&[
        "trust",
        "reinstate",
        &key,
        "--at",
        &past,
        "--reason",
        "r",
        "--by",
        "carol",
    ]);
    assert_eq!(backdated.status.code(), Some(2), "{}", stderr(&backdated));
    assert!(
        stderr(&backdated).contains("backdated"),
        "{}",
        stderr(&backdated)
    );
    assert_eq!(ws.signer_events().len(), 1);

    let at = Utc::now() + Duration::hours(1);
    let out = ws.run(&[
        "trust",
        "reinstate",
        &key,
        "--at",
        &text(at),
        "--reason",
        "false alarm: the gist held \
         a test key",
        "--by",
        "carol",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // Inside the period (before the reinstatement) nothing is trusted; after it, again.
    assert!(!ws.trusted_at(&key, at - Duration::seconds(1)));
    assert!(ws.trusted_at(&key, at));
    let events = ws.signer_events();
    assert_eq!(events.len(), 2, "{events:#?}");
    assert_eq!(events[1]["kind"], "signer.reinstated");
    assert_eq!(events[1]["data"]["by"], "carol");
    assert!(
        events[1]["data"]["reason"]
            .as_str()
            .is_some_and(|it| it.starts_with("false alarm")),
        "{events:#?}"
    );
    let shown = ws.json(&["trust", "show", &key]);
    assert_eq!(
        shown["distrust_periods"][0]["reinstated"]["by"], "carol",
        "{shown:#}"
    );
}

#[test]
fn bad_revocations_are_refused_and_change_nothing() {
    let ws = Trust::new();
    let key = ws.release();
    let now = Utc::now();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![
                "--from".into(),
                text(now + Duration::days(2)),
                "--until".into(),
                text(now + Duration::days(1)),
            ],
            "not after --from",
        ),
        (vec!["--from".into(), "yesterday".into()], "RFC 3339"),
    ];
    for (times, expected) in cases {
        let mut args: Vec<String> = vec!["trust".into(), "revoke".into(), key.clone()];
        args.extend(times);
        args.extend(["--reason".into(), "r".into(), "--by".into(), "b".into()]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = ws.run(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(expected),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    let unknown = ws.run(&[
        "trust",
        "revoke",
        "0123456789abcdef",
        "--from",
        "now",
        "--reason",
        "r",
        "--by",
        "b",
    ]);
    assert_eq!(unknown.status.code(), Some(2), "{}", stderr(&unknown));
    assert!(
        stderr(&unknown).contains("no signer"),
        "{}",
        stderr(&unknown)
    );
    assert!(ws.signer_events().is_empty());
    let shown = ws.json(&["trust", "show", &key]);
    assert_eq!(
        shown["distrust_periods"],
        serde_json::json!([]),
        "{shown:#}"
    );
}

#[test]
fn a_signer_lists_its_own_holder_and_the_holders_the_config_names() {
    let ws = Trust::new();
    let key = ws.release();
    let shown = ws.json(&["trust", "show", &key]);
    let holders: Vec<(String, String)> = shown["holders"]
        .as_array()
        .expect("holders")
        .iter()
        .map(|it| {
            (
                it["source"].as_str().expect("source").to_owned(),
                it["via"].as_str().expect("via").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        holders,
        [
            ("keys".to_owned(), "own".to_owned()),
            ("ci".to_owned(), "config".to_owned())
        ],
        "{shown:#}"
    );
    let ci = &shown["holders"][1]["credentials"][0];
    assert_eq!(ci["status"], "active", "{shown:#}");
    // The public key shown is the signer's: its DER hashes to the key id.
    let pem = pem::parse(shown["public_key"].as_str().expect("public key")).expect("PEM");
    assert_eq!(pem.tag(), "PUBLIC KEY");
    use sha2::Digest as _;
    assert_eq!(hex::encode(sha2::Sha256::digest(pem.contents())), key);

    // A `signers:` entry whose key file is missing is a warning naming its place: it never
    // blocks listing or revoking the other signers.
    std::fs::remove_file(ws.dir.path().join("keys/release.pub")).expect("rm");
    let out = ws.run(&["trust", "list"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("warning:"), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("keywarden.yaml:") && stderr(&out).contains("release.pub"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_scan_shows_each_signers_trust_and_fails_on_a_distrusted_one_until_it_is_reinstated() {
    let ws = Trust::new();
    let key = ws.release();
    let scan = |expected: i32| -> Value {
        let out = ws.run(&[
            "scan",
            "--format",
            "json",
            "--no-progress",
            "--fail-on",
            "high",
        ]);
        assert_eq!(out.status.code(), Some(expected), "{}", stderr(&out));
        serde_json::from_slice(&out.stdout).expect("json")
    };
    let distrust_findings = |report: &Value| -> Vec<Value> {
        report["findings"]
            .as_array()
            .expect("findings")
            .iter()
            .filter(|it| it["policy"] == "keywarden.signer-distrusted")
            .cloned()
            .collect()
    };
    let release_in = |report: &Value| -> Value {
        report["signers"]
            .as_array()
            .expect("signers")
            .iter()
            .find(|it| it["key_id"] == key.as_str())
            .unwrap_or_else(|| panic!("{report:#}"))
            .clone()
    };
    let clean = scan(0);
    assert_eq!(release_in(&clean)["trusted"], true, "{clean:#}");
    assert!(distrust_findings(&clean).is_empty());

    let from = text(Utc::now() - Duration::days(1));
    let out = ws.run(&[
        "trust",
        "revoke",
        &key,
        "--from",
        &from,
        "--reason",
        "suspected",
        "--by",
        "alice",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report = scan(1);
    let release = release_in(&report);
    assert_eq!(release["trusted"], false, "{release:#}");
    assert!(
        release["untrusted_because"]
            .as_str()
            .is_some_and(|it| it.contains("suspected")),
        "{release:#}"
    );
    let found = distrust_findings(&report);
    assert_eq!(
        found.len(),
        1,
        "one finding on the signer's one credential: {report:#}"
    );
    assert_eq!(found[0]["source"], "keys");
    assert_eq!(
        found[0]["severity"], "high",
        "a manual distrust, not a leak"
    );
    let others: Vec<&Value> = report["signers"]
        .as_array()
        .expect("signers")
        .iter()
        .filter(|it| it["key_id"] != key.as_str())
        .collect();
    assert!(others.iter().all(|it| it["trusted"] == true), "{others:#?}");
    let table = ws.run(&["scan", "--no-progress"]);
    assert!(
        stdout(&table).contains(&format!("{} keys/keys/release.pub", &key[..16]))
            && stdout(&table).contains("NOT TRUSTED"),
        "{}",
        stdout(&table)
    );

    let out = ws.run(&[
        "trust",
        "reinstate",
        &key,
        "--reason",
        "false alarm: the key never left the HSM",
        "--by",
        "carol",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let after = scan(0);
    assert_eq!(release_in(&after)["trusted"], true, "{after:#}");
    assert!(distrust_findings(&after).is_empty(), "resolved: {after:#}");
}
