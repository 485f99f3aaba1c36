//! Mutation fuzzing of every parser of user input: the policy files, the config file and the key
//! material the `files` connector reads. Thousands of deterministic mutations (byte flips,
//! insertions, deletions, truncations, swapped lines) of valid inputs must never panic; a rejected
//! policy or config must say where (file:line:column or the file), and bad key material must be a
//! scan error on that file, never a failed scan.
//!
//! `KEYWARDEN_FUZZ_ITERATIONS` raises the count for longer runs.

mod common;

use std::path::Path;

use chrono::Utc;
use keywarden::config::{Config, ConfigFile};
use keywarden::diagnostic::parse_yaml;
use keywarden_connector::ScanContext;

/// xorshift64*: deterministic, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const INTERESTING: &[&[u8]] = &[
    b":",
    b"-",
    b" ",
    b"\n",
    b"\t",
    b"'",
    b"\"",
    b"{",
    b"}",
    b"[",
    b"]",
    b"&a",
    b"*a",
    b"<<",
    b"!!binary",
    b"#",
    b"99999999999999999999d",
    b"\xff",
    b"0",
    b"---",
    b"|",
    b">",
    b"?",
    b"~",
];

fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..=rng.below(3) {
        let at = rng.below(out.len() + 1);
        match rng.below(6) {
            0 if !out.is_empty() => {
                let at = at.min(out.len() - 1);
                out[at] ^= 1 << rng.below(8);
            }
            1 => {
                let piece = INTERESTING[rng.below(INTERESTING.len())];
                out.splice(at..at, piece.iter().copied());
            }
            2 => {
                let end = (at + rng.below(16)).min(out.len());
                out.drain(at..end);
            }
            3 => out.truncate(at),
            4 => {
                let text = String::from_utf8_lossy(&out).into_owned();
                let mut lines: Vec<&str> = text.lines().collect();
                if lines.len() > 1 {
                    let a = rng.below(lines.len());
                    let b = rng.below(lines.len());
                    lines.swap(a, b);
                }
                out = lines.join("\n").into_bytes();
            }
            _ => {
                let from = rng.below(out.len());
                let end = (from + rng.below(24)).min(out.len());
                let piece = out[from..end].to_vec();
                out.splice(at..at, piece);
            }
        }
    }
    out
}

fn iterations() -> usize {
    std::env::var("KEYWARDEN_FUZZ_ITERATIONS")
        .ok()
        .and_then(|it| it.parse().ok())
        .unwrap_or(1500)
}

/// A pack using every condition, `identity_credentials` in block and flow form included.
const EVERY_CONDITION: &str = r#"pack: fuzz
policies:
  - id: every-condition
    severity: high
    schedule: "0 6 * * MON-FRI,SUN"
    select:
      kinds: [access_key, certificate]
      sources: ["aws*"]
      tags: { env: "prod*" }
    when:
      age_over: 90d
      unused_for: 45d
      never_used_and_older_than: 30d
      expires_within: 30d
      expired: false
      status: [active, inactive]
      owner_missing: true
      tags_missing: [team]
      identity_credentials:
        kinds: [access_key]
        status: [active]
        more_than: 1
    actions: [notify, rotate]
  - id: flow-form
    severity: low
    schedule: "*/15 1-5 * * 5-7/2"
    when: { identity_credentials: { more_than: 0, status: [inactive] }, age_over: 1d }
    actions: [notify]
"#;

/// Every diagnostic of a rejected policy names the file, a line and a column within the text
/// (or, for a file that is empty as a whole, the file alone), and says something.
fn check_policy_errors(path: &Path, text: &str) {
    let Err(errors) = keywarden::policy::parse_str(path, text) else {
        return;
    };
    assert!(
        !errors.0.is_empty(),
        "an error without diagnostics:\n{text}"
    );
    let lines = text.lines().count() as u64 + 1;
    for error in &errors.0 {
        assert_eq!(error.file, path);
        assert!(!error.message.is_empty());
        let whole_file = error.message.starts_with("policy file is empty");
        assert!(
            whole_file || (error.line >= 1 && error.column >= 1 && error.line <= lines),
            "no line and column in `{error}` for:\n{text}"
        );
    }
}

#[test]
fn mutated_policy_files_never_panic_and_errors_name_their_place() {
    let dir = common::repo().join("policies");
    let mut rng = Rng(0x5eed_0001);
    let mut inputs: Vec<(std::path::PathBuf, Vec<u8>)> = std::fs::read_dir(&dir)
        .expect("policies")
        .map(|entry| {
            let path = entry.expect("entry").path();
            let original = std::fs::read(&path).expect("read");
            (path, original)
        })
        .collect();
    inputs.sort();
    let fuzz = dir.join("every-condition.yaml");
    assert!(
        keywarden::policy::parse_str(&fuzz, EVERY_CONDITION).is_ok(),
        "the unmutated pack is valid"
    );
    inputs.push((fuzz, EVERY_CONDITION.as_bytes().to_vec()));
    for (path, original) in &inputs {
        for _ in 0..iterations() {
            let mutated = mutate(&mut rng, original);
            check_policy_errors(path, &String::from_utf8_lossy(&mutated));
        }
    }
}

#[test]
fn mutated_identity_conditions_never_panic_and_errors_name_their_place() {
    // Values put in place of the condition's own: wrong types, numbers out of range, nesting.
    const VALUES: &[&str] = &[
        "-1",
        "1.5",
        "18446744073709551616",
        "99999999999999999999",
        "\"1\"",
        "true",
        "~",
        "[]",
        "{}",
        "[active, gone]",
        "[access_key, nope]",
        "{ more_than: 1 }",
        "0x10",
        "1e3",
        ".inf",
    ];
    let path = Path::new("/etc/keywarden/policies/identity.yaml");
    let mut rng = Rng(0x5eed_0005);
    for _ in 0..iterations() {
        let kinds = VALUES[rng.below(VALUES.len())];
        let status = VALUES[rng.below(VALUES.len())];
        let more_than = VALUES[rng.below(VALUES.len())];
        let text = format!(
            "policies:\n  - id: p\n    severity: low\n    when:\n      identity_credentials:\n        \
             kinds: {kinds}\n        status: {status}\n        more_than: {more_than}\n    \
             actions: [notify]\n"
        );
        check_policy_errors(path, &text);
        let mutated = mutate(&mut rng, text.as_bytes());
        check_policy_errors(path, &String::from_utf8_lossy(&mutated));
    }
}

#[test]
fn mutated_config_files_never_panic_and_errors_name_their_place() {
    let path = Path::new("/etc/keywarden/keywarden.yaml");
    let original = keywarden::config::STARTER.as_bytes();
    let mut rng = Rng(0x5eed_0002);
    for _ in 0..iterations() * 2 {
        let mutated = mutate(&mut rng, original);
        let text = String::from_utf8_lossy(&mutated);
        let res = parse_yaml::<ConfigFile>(path, &text)
            .map_err(|it| keywarden::diagnostic::Diagnostics(vec![it]))
            .and_then(|raw| Config::validate(path, raw));
        if let Err(errors) = res {
            assert!(!errors.0.is_empty());
            for error in &errors.0 {
                assert_eq!(error.file, path);
                assert!(!error.message.is_empty(), "{text}");
            }
        }
    }
}

/// A config with a full `aws_iam` source, every field set, and `signers:` holders.
const AWS_CONFIG: &str = r#"store:
  path: keywarden.db
policies: [policies]
defaults:
  owner_tag: team
sources:
  aws:
    type: aws_iam
    region: eu-west-1
    profile: audit
    endpoint_url: https://iam.example.internal
    accounts:
      - id: "111111111111"
      - id: "222222222222"
        role_arn: arn:aws:iam::222222222222:role/audit/keywarden
        external_id: shared-secret-id
    organizations: true
    role_name: keywarden
    owner_tag: Owner
    purpose_tag: Purpose
    full_refresh: 12h
    ssh_public_keys: true
    concurrency: 4
    max_requests_per_second: 20
    max_attempts: 6
    rotation:
      overlap: 2h
      last_use_settle: 4h
      grace: 7d
      verify_timeout: 90s
      deliver:
        - users: "ci-*"
          type: secrets_manager
          secret_id: "ci/{account_id}/{user}"
        - users: "*"
          type: file
          path: /run/keywarden/{user}.json
signers:
  - key: { key_id: 4c4e180cae03f7ad10962a09a6d24c7cc5e959bd092ca44f506a4dcbf8c1343d }
    held_by:
      - source: aws
        identities: ["ci-*", deploy]
  - key: { file: keys/cosign.pub }
    held_by:
      - { source: "aws*", identities: ["*"] }
"#;

#[test]
fn mutated_aws_sources_never_panic_and_errors_name_their_place() {
    let path = Path::new("/etc/keywarden/keywarden.yaml");
    let parse = |text: &str| {
        parse_yaml::<ConfigFile>(path, text)
            .map_err(|it| keywarden::diagnostic::Diagnostics(vec![it]))
            .and_then(|raw| Config::validate(path, raw))
    };
    let config = parse(AWS_CONFIG).expect("the unmutated config is valid");
    assert_eq!(config.sources[0].1.kind(), "aws_iam");
    let mut rng = Rng(0x5eed_0004);
    for _ in 0..iterations() {
        let mutated = mutate(&mut rng, AWS_CONFIG.as_bytes());
        let text = String::from_utf8_lossy(&mutated);
        if let Err(errors) = parse(&text) {
            assert!(!errors.0.is_empty());
            for error in &errors.0 {
                assert_eq!(error.file, path);
                assert!(!error.message.is_empty(), "{text}");
            }
        }
    }
}

#[test]
fn mutated_key_material_is_a_scan_error_never_a_failed_scan() {
    let originals: Vec<Vec<u8>> = [
        "release/cosign.pub",
        "release/cosign.key",
        "release/legacy-signing.crt",
        "unsorted/ci-deploy.pem",
    ]
    .iter()
    .map(|it| {
        std::fs::read(common::repo().join("examples/quickstart/keys").join(it))
            .expect("quickstart material")
    })
    .collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let config: keywarden_files::FilesConfig =
        serde_json::from_str(r#"{"paths": [{"glob": "keys/**"}]}"#).expect("config");
    let connector = config.build("fuzz", dir.path()).expect("build");
    let mut rng = Rng(0x5eed_0003);
    let rounds = iterations() / 10;
    for round in 0..rounds {
        let keys = dir.path().join("keys");
        let _ = std::fs::remove_dir_all(&keys);
        std::fs::create_dir_all(&keys).expect("mkdir");
        for (idx, original) in originals.iter().enumerate() {
            for copy in 0..5 {
                let name = format!("m{round}-{idx}-{copy}.pem");
                std::fs::write(keys.join(name), mutate(&mut rng, original)).expect("write");
            }
        }
        let inventory = connector
            .scan(&ScanContext::new(Utc::now()))
            .expect("a malformed file must not fail the scan");
        for error in &inventory.errors {
            assert!(!error.subject.is_empty());
            assert!(!error.message.is_empty());
        }
    }
}
