//! Writes the one piece of quickstart material that cannot be committed: a code-signing
//! certificate that is always about to expire.
//!
//! ```sh
//! cargo run -q --example quickstart_material -- examples/quickstart/keys
//! ```
//!
//! It writes `<dir>/generated/release-2026.crt`: a self-signed ECDSA P-256 code-signing
//! certificate, valid from 60 days ago until 12 days from now (its private key is thrown away).
//! A certificate already there is kept while it still expires within 30 days, so its credential
//! id stays the same from one run to the next; otherwise it is replaced.
//! `generated/` is gitignored.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use chrono::{DateTime, Datelike, Duration, Utc};
use keywarden_connector::ScanContext;
use keywarden_files::{FilesConfig, PathRule};

/// The certificate, relative to the keys directory.
const CERT_PATH: &str = "generated/release-2026.crt";
/// How long ago the certificate became valid.
const AGE_DAYS: i64 = 60;
/// How long it stays valid from now.
const VALID_DAYS: i64 = 12;
/// "Expiring soon", as the quickstart policy sees it.
const SOON_DAYS: i64 = 30;

fn main() -> anyhow::Result<()> {
    let dir = std::env::args_os()
        .nth(1)
        .map_or_else(|| PathBuf::from("examples/quickstart/keys"), PathBuf::from);
    let now = Utc::now();
    let path = dir.join(CERT_PATH);
    if expires_soon(&dir, now) {
        eprintln!(
            "{} still expires within {SOON_DAYS} days; kept",
            path.display()
        );
        return Ok(());
    }
    let pem = certificate(now)?;
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)
            .with_context(|| format!("failed to create {}", parent.display()))?;
    }
    fs::write(&path, pem).with_context(|| format!("failed to write {}", path.display()))?;
    eprintln!(
        "wrote {} (code signing, expires {})",
        path.display(),
        (now + Duration::days(VALID_DAYS)).date_naive()
    );
    Ok(())
}

/// Whether `dir` already holds the certificate, still valid and expiring within `SOON_DAYS`;
/// read with the `files` connector itself.
fn expires_soon(dir: &Path, now: DateTime<Utc>) -> bool {
    let config = FilesConfig {
        paths: vec![PathRule {
            glob: CERT_PATH.to_owned(),
            owner: None,
            purpose: None,
            tags: Default::default(),
        }],
        exclude: Vec::new(),
        usage_log: None,
        follow_symlinks: false,
    };
    let Ok(inventory) = config
        .build("quickstart", dir)
        .and_then(|it| it.scan(&ScanContext::new(now)))
    else {
        return false;
    };
    inventory.credentials.iter().any(|it| {
        it.expires_at
            .is_some_and(|at| at > now + Duration::days(1) && at <= now + Duration::days(SOON_DAYS))
    })
}

/// A fresh self-signed code-signing certificate, PEM.
fn certificate(now: DateTime<Utc>) -> anyhow::Result<String> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "Example Corp");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Release Signing 2026");
    let (year, month, day_of_month) = day(now - Duration::days(AGE_DAYS))?;
    params.not_before = rcgen::date_time_ymd(year, month, day_of_month);
    let (year, month, day_of_month) = day(now + Duration::days(VALID_DAYS))?;
    params.not_after = rcgen::date_time_ymd(year, month, day_of_month);
    params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::CodeSigning];
    Ok(params.self_signed(&key)?.pem())
}

/// The UTC date of `at` as rcgen takes it: year, month, day.
fn day(at: DateTime<Utc>) -> anyhow::Result<(i32, u8, u8)> {
    let date = at.date_naive();
    Ok((
        date.year(),
        u8::try_from(date.month())?,
        u8::try_from(date.day())?,
    ))
}
