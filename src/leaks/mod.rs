//! Leak reports, pure: recognising a report's format, reading what each entry says was exposed,
//! and dropping every plaintext field at the door.
//!
//! Formats: GitHub secret scanning (REST alert objects, a list of them, or the
//! `secret_scanning_alert` webhook payload), GitGuardian incident webhooks, TruffleHog v3 JSON
//! lines, gitleaks JSON reports and detect-secrets baselines (facts:
//! `shared/docs/reference/trust-and-leaks.md` §3).
//!
//! What an entry exposed is kept only as [`Indicator`]s, none of them a secret: an AWS access key
//! id given in the clear (an id, not a secret), the key id of a private key (its public key is
//! derived in memory, then the private bytes are zeroized), or a one-way hash the report itself
//! carries. No hash of another plaintext is made (an unsalted hash of a password is reversible). Plaintext fields
//! (TruffleHog `Raw`/`RawV2`/`SecretParts`, gitleaks `Secret`/`Match`, GitHub `secret`) are read
//! into [`Secret`] and dropped once the indicator is taken; they never reach a [`Leak`], an error
//! or a log line. The report's bytes are the caller's to zeroize (`ingest` reads them into a
//! zeroizing buffer).
//!
//! Architecture invariant: no I/O and no clock.

mod formats;
pub mod signature;

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use keywarden_connector::Secret;
use serde::{Deserialize, Serialize};
use sha2::Digest as _;
use zeroize::Zeroizing;

pub use self::formats::detect;

/// A leak report format, as `--format` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
pub enum LeakFormat {
    Github,
    Gitguardian,
    Trufflehog,
    Gitleaks,
    DetectSecrets,
    /// The provider's own word, seen during inventory (AWS's quarantine policy on a user); not a
    /// report format `leak ingest` reads.
    #[value(skip)]
    Provider,
}

impl LeakFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Github => "github",
            Self::Gitguardian => "gitguardian",
            Self::Trufflehog => "trufflehog",
            Self::Gitleaks => "gitleaks",
            Self::DetectSecrets => "detect_secrets",
            Self::Provider => "provider",
        }
    }
}

/// What shows which credential was exposed; never a secret.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "snake_case")]
pub enum Indicator {
    /// An AWS access key id, given in the clear.
    AccessKeyId(String),
    /// The key id (lower-hex SHA-256 of the DER SubjectPublicKeyInfo) of a private key found in
    /// the report, derived in memory.
    KeyId(String),
    /// Lower-hex SHA-1 of the exposed value, as the report carries it (detect-secrets
    /// `hashed_secret`); matched against the SHA-1 of each AWS access key id in the ledger.
    Sha1(String),
    /// GitGuardian's HasMySecretLeaked hash.
    Hmsl(String),
    /// The source itself said which of its credentials the exposed value is, when asked at
    /// intake (Vault looked the token or secret-id up).
    Lookup { source: String, credential: String },
}

/// Plaintext values a report carries that no indicator identifies but their source might (a
/// Vault token or secret-id): held as secrets only until intake has asked the sources
/// ([`crate::intake`]), never stored, serialized or shown.
#[derive(Clone, Default)]
pub struct Candidates(pub Vec<std::sync::Arc<Secret>>);

impl std::fmt::Debug for Candidates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Candidates({} redacted)", self.0.len())
    }
}

/// Candidates never make two leaks differ: they are not part of what a leak is.
impl PartialEq for Candidates {
    fn eq(&self, _other: &Self) -> bool {
        true
    }
}

impl Eq for Candidates {}

/// One exposure a report tells of.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Leak {
    /// Stable within its format (the same entry ingested again has the same id).
    pub id: String,
    pub format: LeakFormat,
    /// The report's rule or detector (`aws_access_key_id`, `aws-access-token`, `AWS`, ...).
    pub detector: String,
    /// Where it was found (a file and line, a commit, a URL); never the secret.
    pub location: Option<String>,
    /// The earliest time the report shows the secret exposed (commit date, alert creation).
    pub exposed_at: Option<DateTime<Utc>>,
    pub indicators: Vec<Indicator>,
    /// Why the report itself says this is no longer a concern (a GitHub alert resolved as a false
    /// positive), if it does.
    pub dismissed: Option<String>,
    /// Exposed values only their source can identify; dropped once intake asked.
    #[serde(skip)]
    pub candidates: Candidates,
}

/// A ledger credential a leak was matched to, and by what.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeakMatch {
    pub source: String,
    pub credential_external_id: String,
    pub by: Indicator,
}

/// What the ledger knows that leaks are matched against: each credential (source, external id)
/// by access key id, by key id (signers), by SHA-1 of its access key id or of a secret keywarden
/// created for it, and by the HasMySecretLeaked hash of such a secret.
#[derive(Clone, Debug, Default)]
pub struct Known {
    pub access_keys: HashMap<String, Vec<(String, String)>>,
    pub key_ids: HashMap<String, Vec<(String, String)>>,
    pub sha1: HashMap<String, Vec<(String, String)>>,
    pub hmsl: HashMap<String, Vec<(String, String)>>,
}

impl Known {
    /// The credentials `leak` matches, each once, by the first indicator that matched it.
    pub fn matches(&self, leak: &Leak) -> Vec<LeakMatch> {
        let mut found: Vec<LeakMatch> = Vec::new();
        for indicator in &leak.indicators {
            let looked_up;
            let hits = match indicator {
                Indicator::AccessKeyId(id) => self.access_keys.get(id),
                Indicator::KeyId(id) => self.key_ids.get(id),
                Indicator::Sha1(hash) => self.sha1.get(hash),
                Indicator::Hmsl(hash) => self.hmsl.get(hash),
                Indicator::Lookup { source, credential } => {
                    looked_up = vec![(source.clone(), credential.clone())];
                    Some(&looked_up)
                }
            };
            for (source, external_id) in hits.into_iter().flatten() {
                if !found
                    .iter()
                    .any(|it| it.source == *source && it.credential_external_id == *external_id)
                {
                    found.push(LeakMatch {
                        source: source.clone(),
                        credential_external_id: external_id.clone(),
                        by: indicator.clone(),
                    });
                }
            }
        }
        found
    }
}

/// A report that could not be read; names the place and never quotes a value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LeakError {
    /// The bytes are not a report of the format (or of any known one).
    #[error("{0}")]
    Unrecognised(String),
    /// Part of the report is malformed: `line:column` (or the entry) and what was expected.
    #[error("{place}: {message}")]
    Malformed { place: String, message: String },
}

/// Reads a report (`format` when given, else recognised from the bytes).
pub fn parse(
    bytes: &[u8],
    format: Option<LeakFormat>,
) -> Result<(LeakFormat, Vec<Leak>), LeakError> {
    let format = match format {
        Some(format) => format,
        None => detect(bytes).ok_or_else(|| {
            // Not even JSON (a truncated file): say where it breaks.
            if let Some(err) = formats::json_error(bytes) {
                return err;
            }
            LeakError::Unrecognised(
                "not a leak report keywarden reads (GitHub secret scanning alerts, GitGuardian \
                 incident webhook, TruffleHog JSON lines, gitleaks JSON, detect-secrets \
                 baseline); name the format with --format"
                    .to_owned(),
            )
        })?,
    };
    let leaks = match format {
        LeakFormat::Github => formats::github(bytes)?,
        LeakFormat::Gitguardian => formats::gitguardian(bytes)?,
        LeakFormat::Trufflehog => formats::trufflehog(bytes)?,
        LeakFormat::Gitleaks => formats::gitleaks(bytes)?,
        LeakFormat::DetectSecrets => formats::detect_secrets(bytes)?,
        LeakFormat::Provider => {
            return Err(LeakError::Unrecognised(
                "`provider` leaks come from inventory, not from a report".to_owned(),
            ));
        }
    };
    Ok((format, leaks))
}

/// A provider's own word, seen during inventory, that an identity's credentials were exposed:
/// AWS attaches its managed `AWSCompromisedKeyQuarantine*` policy to a user whose access key it
/// found exposed. AWS does not say which of the user's keys: each is taken as exposed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ConfirmedLeak {
    pub source: String,
    /// The identity's external id (the user's ARN).
    pub identity: String,
    pub identity_name: String,
    /// What shows it (the policy's ARN).
    pub evidence: String,
    /// The identity's present access keys as the inventory listed them.
    pub access_keys: Vec<String>,
}

impl ConfirmedLeak {
    /// The leak, with an id that stays the same for as long as the evidence does (each scan
    /// that sees it again changes nothing).
    pub fn leak(&self) -> Leak {
        let detector = self
            .evidence
            .rsplit('/')
            .next()
            .unwrap_or(&self.evidence)
            .to_owned();
        Leak {
            id: format!("{}:{}:{}", self.source, self.identity, self.evidence),
            format: LeakFormat::Provider,
            detector,
            location: Some(format!(
                "{} in {} ({} attached by AWS)",
                self.identity_name, self.source, self.evidence
            )),
            exposed_at: None,
            indicators: self
                .access_keys
                .iter()
                .map(|it| Indicator::AccessKeyId(it.clone()))
                .collect(),
            dismissed: None,
            candidates: Default::default(),
        }
    }
}

/// Whether `text` has the shape of an AWS access key id (`AKIA`, `ASIA`, `ABIA`, `ACCA` or
/// `A3T?` and 16 upper-case letters or digits).
pub fn is_access_key_id(text: &str) -> bool {
    let bytes = text.as_bytes();
    let prefix_ok = bytes.len() == 20
        && (matches!(&bytes[..4], b"AKIA" | b"ASIA" | b"ABIA" | b"ACCA")
            || (&bytes[..3] == b"A3T" && bytes[3].is_ascii_alphanumeric()));
    prefix_ok
        && bytes[4..]
            .iter()
            .all(|it| it.is_ascii_uppercase() || it.is_ascii_digit())
}

/// Lower-hex SHA-1 of `value`.
pub fn sha1_hex(value: &[u8]) -> String {
    hex::encode(sha1::Sha1::digest(value))
}

/// GitGuardian's HasMySecretLeaked hash of a secret (the `hmsl_hash` of its incident webhooks),
/// lower hex: scrypt of the UTF-8 secret with GitGuardian's public pepper, SHA-256("GitGuardian"),
/// as salt, N = 2048, r = 8, p = 1, 32 bytes (ggshield's `verticals/hmsl/crypto.py`). Only for
/// secrets of high entropy keywarden itself created: a hash of a guessable secret can be
/// reversed.
pub fn hmsl_hex(secret: &[u8]) -> String {
    let pepper = sha2::Sha256::digest(b"GitGuardian");
    let mut out = Zeroizing::new([0_u8; 32]);
    // N = 2^11. Valid parameters and a 32-byte output cannot fail; an empty hash never matches.
    let hashed = scrypt::Params::new(11, 8, 1)
        .ok()
        .and_then(|params| scrypt::scrypt(secret, &pepper, &params, out.as_mut()).ok());
    match hashed {
        Some(()) => hex::encode(out.as_ref()),
        None => String::new(),
    }
}

/// The indicators of a plaintext value a report carries, taken at once, and the value as a
/// candidate for its source to identify when nothing else does; otherwise the value is dropped
/// (zeroized) when this returns. A private key gives the key id of its public half; an access key
/// id gives itself; anything else nothing: an unsalted hash of a password or token could be
/// reversed with a dictionary, so none is made or kept (only hashes a report itself carries are).
fn indicators_of(value: Secret) -> (Vec<Indicator>, Candidates) {
    let found = known_indicators(&value);
    let text = value.expose().trim();
    // What nothing here identifies, its source may (a Vault token or secret-id): one line of
    // printable text, kept as a secret until intake has asked.
    let candidate = found.is_empty()
        && (8..=512).contains(&text.len())
        && text.chars().all(|it| it.is_ascii_graphic())
        && text != "REDACTED";
    let candidates = if candidate {
        Candidates(vec![std::sync::Arc::new(Secret::new(text.to_owned()))])
    } else {
        Candidates::default()
    };
    (found, candidates)
}

fn known_indicators(value: &Secret) -> Vec<Indicator> {
    let text = value.expose().trim();
    if is_access_key_id(text) {
        return vec![Indicator::AccessKeyId(text.to_owned())];
    }
    if text.contains("PRIVATE KEY-----") {
        let bytes = Zeroizing::new(text.as_bytes().to_vec());
        // A key that cannot be read (encrypted, truncated) identifies nothing.
        if let Ok(keys) = keywarden_files::public_keys_of("leaked.pem", &bytes) {
            return keys
                .into_iter()
                .map(|it| Indicator::KeyId(it.key_id))
                .collect();
        }
    }
    Vec::new()
}

/// Lower-hex SHA-256 of the parts, each length-prefixed: a stable id for an entry that has none.
fn digest_id(parts: &[&str]) -> String {
    let mut hasher = sha2::Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    hex::encode(hasher.finalize())
}

#[cfg(test)]
mod tests;
