//! Shared helpers of the integration tests: real key material in temp dirs, and the real binary.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair};
use time::{Duration, OffsetDateTime};

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs the keywarden binary with `args` in `dir`.
pub fn keywarden(dir: &Path, args: &[&str]) -> Output {
    keywarden_with_env(dir, args, &[])
}

/// Runs the keywarden binary with `args` in `dir` and these environment variables set.
pub fn keywarden_with_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_keywarden"))
        .args(args)
        .current_dir(dir)
        .env_remove("KEYWARDEN_CONFIG")
        .env_remove("KEYWARDEN_AUDIT_KEY")
        .env_remove("KEYWARDEN_AUDIT_KEY_FILE")
        .env("KEYWARDEN_LOG", "warn")
        .envs(env.iter().copied())
        .output()
        .expect("run keywarden")
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Writes a self-signed code-signing certificate valid from `now + from_days` to `now + to_days`.
pub fn write_code_signing_cert(path: &Path, common_name: &str, from_days: i64, to_days: i64) {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    let now = OffsetDateTime::now_utc();
    params.not_before = now + Duration::days(from_days);
    params.not_after = now + Duration::days(to_days);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
    let key = KeyPair::generate().expect("key");
    let cert = params.self_signed(&key).expect("certificate");
    write(path, &cert.pem());
}

/// Writes a self-signed CA certificate to `ca_path` and a code-signing certificate it issued to
/// `leaf_path`, both valid from yesterday for a year.
pub fn write_issued_code_signing_cert(ca_path: &Path, leaf_path: &Path, common_name: &str) {
    let now = OffsetDateTime::now_utc();
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca.distinguished_name
        .push(DnType::CommonName, format!("{common_name} CA"));
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.not_before = now - Duration::days(1);
    ca.not_after = now + Duration::days(365);
    let ca_key = KeyPair::generate().expect("key");
    let ca_cert = ca.self_signed(&ca_key).expect("CA certificate");
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let mut leaf = CertificateParams::new(Vec::<String>::new()).expect("params");
    leaf.distinguished_name
        .push(DnType::CommonName, common_name);
    leaf.not_before = now - Duration::days(1);
    leaf.not_after = now + Duration::days(365);
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
    let leaf_key = KeyPair::generate().expect("key");
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer).expect("certificate");
    write(ca_path, &ca_cert.pem());
    write(leaf_path, &leaf_cert.pem());
}

/// Writes a fresh ECDSA P-256 public key in PEM (SPKI) form.
pub fn write_public_key(path: &Path) {
    let key = KeyPair::generate().expect("key");
    write(path, &key.public_key_pem());
}

pub fn write(path: &Path, text: &str) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("mkdir");
    }
    std::fs::write(path, text).expect("write");
}

/// A workspace with a config that scans `keys/` with the shipped policies.
pub struct Workspace {
    pub dir: tempfile::TempDir,
}

impl Workspace {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = format!(
            "store:\n  path: ledger.db\npolicies:\n  - {}\nsources:\n  release-keys:\n    type: files\n    paths:\n      - glob: \"keys/owned/**\"\n        owner: release-eng\n        purpose: signing\n      - glob: \"keys/**\"\n        purpose: signing\n",
            repo().join("policies").display()
        );
        write(&dir.path().join("keywarden.yaml"), &config);
        Self { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn key(&self, relative: &str) -> PathBuf {
        self.dir.path().join("keys").join(relative)
    }

    /// `keywarden scan --format json`, parsed; panics unless the exit status is `expected`.
    pub fn scan_json(&self, expected: i32) -> serde_json::Value {
        let output = keywarden(self.path(), &["scan", "--format", "json"]);
        assert_eq!(
            output.status.code(),
            Some(expected),
            "stdout:\n{}\nstderr:\n{}",
            stdout(&output),
            stderr(&output)
        );
        serde_json::from_slice(&output.stdout).expect("json report")
    }
}

/// The credentials of a JSON report, by name.
pub fn credential<'a>(report: &'a serde_json::Value, name: &str) -> Option<&'a serde_json::Value> {
    report["credentials"]
        .as_array()
        .expect("credentials")
        .iter()
        .find(|it| it["name"] == name)
}

/// The policy ids of the unresolved findings of one credential.
pub fn finding_policies(report: &serde_json::Value, name: &str) -> Vec<String> {
    let mut policies: Vec<String> = credential(report, name)
        .map(|it| {
            it["findings"]
                .as_array()
                .expect("findings")
                .iter()
                .map(|it| it["policy"].as_str().expect("policy").to_owned())
                .collect()
        })
        .unwrap_or_default();
    policies.sort();
    policies
}

/// The store's files under `dir` (`ledger.db` and its `-wal`, `-shm`), as text: what a test
/// looks for secrets in.
pub fn database_text(dir: &Path) -> String {
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(dir).expect("dir") {
        let path = entry.expect("entry").path();
        if path.to_string_lossy().contains("ledger.db") {
            bytes.extend(std::fs::read(&path).expect("db"));
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}
