//! Signers with their holders and trust, put together from what the store and the config hold.
//!
//! A signer is a public key (by key id) found in the ledger's signing credentials, or known only
//! from a stored trust record once its credentials are gone. Its holders are the identities that
//! can make signatures with it: the identity of each credential it was found in (a key file is
//! held by itself), and every identity a `signers:` entry of the config names for it.
//!
//! Architecture invariant: putting signers together does no I/O and reads no clock, like
//! [`crate::trust`]; every input and time is handed in. [`load`] reads the inputs.

pub mod bundle_key;
pub mod export;
pub mod load;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use keywarden_connector::{CredentialKind, CredentialStatus};
use serde::Serialize;

use crate::config::signers::HolderSelector;
use crate::ledger::LedgerCredential;
use crate::store::{LedgerSigner, SignerCredential};
use crate::trust::{DistrustPeriod, TrustRecord, Verdict};

/// How an identity came to hold a signer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HeldVia {
    /// The signer was found in one of the identity's own credentials.
    Own,
    /// A `signers:` entry of the config names the identity.
    Config,
    /// The source's own access rules let some of the identity's credentials sign with it (a
    /// Vault token whose policies allow `transit/sign/<key>`): only those credentials hold it.
    Policy,
}

/// A credential of a holder, as the ledger last saw it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HolderCredential {
    pub external_id: String,
    pub kind: CredentialKind,
    pub status: CredentialStatus,
    pub created_at: Option<DateTime<Utc>>,
    pub last_used: Option<DateTime<Utc>>,
}

/// An identity that can make signatures with a signer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Holder {
    pub source: String,
    /// The identity's external id.
    pub identity: String,
    pub name: String,
    pub via: HeldVia,
    /// Its present credentials (for `own` holders: the ones the signer was found in; for
    /// `policy` holders: the ones whose access rules let them sign with it).
    pub credentials: Vec<HolderCredential>,
}

/// A signer, its holders and its trust record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signer {
    pub key_id: String,
    /// The DER SubjectPublicKeyInfo, base64, where a credential showed it.
    pub public_key: Option<String>,
    pub algorithm: Option<String>,
    pub credentials: Vec<SignerCredential>,
    pub holders: Vec<Holder>,
    pub record: TrustRecord,
}

impl Signer {
    /// Whether a signature made at `at` is trusted.
    pub fn trusts(&self, at: DateTime<Utc>) -> bool {
        self.record.trusts(at)
    }
}

/// Everything [`assemble`] puts together.
pub struct Inputs<'a> {
    pub ledger: Vec<LedgerSigner>,
    /// Stored distrust periods by key id, with when each signer was trusted from then.
    pub records: Vec<(String, TrustRecord)>,
    /// The config's holders, by key id.
    pub configured: &'a [(String, Vec<HolderSelector>)],
    /// The ledger's present credentials of the sources the config's holders name (to list each
    /// holder's credentials).
    pub credentials: &'a [LedgerCredential],
    /// The present credentials that can sign with a signer by their source's access rules
    /// (their `signs_with`).
    pub signing: &'a [LedgerCredential],
}

/// The signers, by key id: from the ledger, and from stored records of signers whose credentials
/// are gone.
pub fn assemble(inputs: Inputs<'_>) -> Vec<Signer> {
    let mut records: BTreeMap<String, TrustRecord> = inputs.records.into_iter().collect();
    let mut signers: Vec<Signer> = Vec::with_capacity(inputs.ledger.len());
    // The credentials that may sign with each key, found once (not once per signer).
    let mut signing: BTreeMap<&str, Vec<&LedgerCredential>> = BTreeMap::new();
    for it in inputs.signing {
        for key_id in &it.credential.signs_with {
            let list = signing.entry(key_id.as_str()).or_default();
            // A key listed twice by one credential holds it once.
            if !list.last().is_some_and(|last| std::ptr::eq(*last, it)) {
                list.push(it);
            }
        }
    }
    let policy_holders =
        |key_id: &str| policy_holders(signing.get(key_id).map(Vec::as_slice).unwrap_or_default());
    for found in inputs.ledger {
        let valid_from = found.valid_from();
        // Trusted from the ledger's time, or the stored one if that is later: once stored, the
        // window never widens back (a certificate with an earlier not-before does not move it).
        let record = match (records.remove(&found.key_id), valid_from) {
            (Some(mut record), Some(from)) => {
                record.valid_from = record.valid_from.max(from);
                record
            }
            (Some(record), None) => record,
            (None, from) => TrustRecord::new(from.unwrap_or(DateTime::<Utc>::UNIX_EPOCH)),
        };
        let mut holders = own_holders(&found.credentials);
        // An identity that holds the signer itself is listed once, as its own holder.
        let configured = configured_holders(&found.key_id, inputs.configured, inputs.credentials);
        for holder in configured.into_iter().chain(policy_holders(&found.key_id)) {
            if !holders
                .iter()
                .any(|it| it.source == holder.source && it.identity == holder.identity)
            {
                holders.push(holder);
            }
        }
        holders.shrink_to_fit();
        signers.push(Signer {
            key_id: found.key_id,
            public_key: found.public_key,
            algorithm: found.algorithm,
            credentials: found.credentials,
            holders,
            record,
        });
    }
    for (key_id, record) in records {
        let mut holders = configured_holders(&key_id, inputs.configured, inputs.credentials);
        holders.extend(policy_holders(&key_id));
        signers.push(Signer {
            key_id,
            public_key: None,
            algorithm: None,
            credentials: Vec::new(),
            holders,
            record,
        });
    }
    signers.sort_by(|a, b| a.key_id.cmp(&b.key_id));
    signers
}

fn own_holders(credentials: &[SignerCredential]) -> Vec<Holder> {
    let mut holders: Vec<Holder> = Vec::new();
    for it in credentials {
        let credential = HolderCredential {
            external_id: it.external_id.clone(),
            kind: it.kind,
            status: it.status,
            created_at: it.created_at,
            last_used: None,
        };
        match holders
            .iter_mut()
            .find(|h| h.source == it.source && h.identity == it.identity)
        {
            Some(holder) => holder.credentials.push(credential),
            None => holders.push(Holder {
                source: it.source.clone(),
                identity: it.identity.clone(),
                name: it.identity_name.clone(),
                via: HeldVia::Own,
                credentials: vec![credential],
            }),
        }
    }
    holders
}

fn holder_credential(it: &LedgerCredential) -> HolderCredential {
    HolderCredential {
        external_id: it.credential.external_id.clone(),
        kind: it.credential.kind,
        status: it.credential.status,
        created_at: it.credential.created_at,
        last_used: it.credential.last_used.at(),
    }
}

/// The identities of the credentials that may sign with a key by their source's access rules
/// (`signing`, those credentials), each with just its own of them.
fn policy_holders(signing: &[&LedgerCredential]) -> Vec<Holder> {
    let mut holders: Vec<Holder> = Vec::new();
    for it in signing.iter().copied() {
        let credential = holder_credential(it);
        match holders
            .iter_mut()
            .find(|h| h.source == it.source && h.identity == it.identity.external_id)
        {
            Some(holder) => holder.credentials.push(credential),
            None => holders.push(Holder {
                source: it.source.clone(),
                identity: it.identity.external_id.clone(),
                name: it.identity.name.clone(),
                via: HeldVia::Policy,
                credentials: vec![credential],
            }),
        }
    }
    holders
}

fn configured_holders(
    key_id: &str,
    configured: &[(String, Vec<HolderSelector>)],
    credentials: &[LedgerCredential],
) -> Vec<Holder> {
    let selectors: Vec<&HolderSelector> = configured
        .iter()
        .filter(|(id, _)| id == key_id)
        .flat_map(|(_, selectors)| selectors)
        .collect();
    let mut holders: Vec<Holder> = Vec::new();
    if selectors.is_empty() {
        return holders;
    }
    for it in credentials {
        if !selectors
            .iter()
            .any(|selector| selector.matches(&it.source, &it.identity.name))
        {
            continue;
        }
        let credential = holder_credential(it);
        match holders
            .iter_mut()
            .find(|h| h.source == it.source && h.identity == it.identity.external_id)
        {
            Some(holder) => holder.credentials.push(credential),
            None => holders.push(Holder {
                source: it.source.clone(),
                identity: it.identity.external_id.clone(),
                name: it.identity.name.clone(),
                via: HeldVia::Config,
                credentials: vec![credential],
            }),
        }
    }
    holders
}

/// A signer as the CLI and API show it, at a given time.
#[derive(Clone, Debug, Serialize)]
pub struct SignerView<'a> {
    pub key_id: &'a str,
    pub algorithm: Option<&'a str>,
    /// The public key, PEM (`-----BEGIN PUBLIC KEY-----`), where it is known.
    pub public_key: Option<String>,
    pub valid_from: DateTime<Utc>,
    /// Whether a signature made at `at` is trusted, and why not.
    pub at: DateTime<Utc>,
    pub trusted: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub untrusted_because: Option<String>,
    pub credentials: &'a [SignerCredential],
    pub holders: &'a [Holder],
    pub distrust_periods: &'a [DistrustPeriod],
}

impl Signer {
    /// How the signer looks for a signature made at `at`.
    pub fn view(&self, at: DateTime<Utc>) -> SignerView<'_> {
        let untrusted_because = match self.record.verdict(at) {
            Verdict::Trusted => None,
            Verdict::BeforeValidFrom => Some(format!(
                "made before the signer was trusted (from {})",
                self.record.valid_from.to_rfc3339()
            )),
            Verdict::Distrusted(period) => Some(format!(
                "inside a distrust period ({}) from {}{}: {} (by {})",
                period.reason.as_str(),
                period.from.to_rfc3339(),
                period
                    .until
                    .map(|until| format!(" until {}", until.to_rfc3339()))
                    .unwrap_or_default(),
                period.evidence,
                period.by
            )),
        };
        SignerView {
            key_id: &self.key_id,
            algorithm: self.algorithm.as_deref(),
            public_key: self.public_key.as_deref().and_then(pem_public_key),
            valid_from: self.record.valid_from,
            at,
            trusted: untrusted_because.is_none(),
            untrusted_because,
            credentials: &self.credentials,
            holders: &self.holders,
            distrust_periods: &self.record.periods,
        }
    }
}

/// A base64 DER SubjectPublicKeyInfo as a PEM `PUBLIC KEY` block (LF line endings), or `None`
/// if the stored text is not base64.
pub fn pem_public_key(base64_der: &str) -> Option<String> {
    use base64::Engine as _;
    let der = base64::engine::general_purpose::STANDARD
        .decode(base64_der)
        .ok()?;
    let block = pem::Pem::new("PUBLIC KEY", der);
    Some(pem::encode_config(
        &block,
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    ))
}

#[cfg(test)]
mod holder_tests;
