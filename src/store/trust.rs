//! Signers as the ledger shows them, and their trust records.
//!
//! A signer is not stored apart from the ledger: it is every present credential of a signing kind
//! with a `sha256_spki` fingerprint (its key id), grouped by key id. Only what the ledger cannot
//! show is stored: each signer's distrust periods, changed under the write lock through the pure
//! rules of [`crate::trust`], with an audit event in the same transaction.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use keywarden_connector::{CredentialKind, CredentialStatus};

use super::Result;
use crate::trust::{Change, DistrustPeriod, TrustError, TrustRecord};

/// A credential a signer was found in.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct SignerCredential {
    pub source: String,
    pub external_id: String,
    pub kind: CredentialKind,
    pub name: String,
    pub status: CredentialStatus,
    /// The identity the credential belongs to (its external id).
    pub identity: String,
    pub identity_name: String,
    /// First seen by keywarden.
    pub first_seen: DateTime<Utc>,
    /// The certificate's not-before, where it has one.
    pub not_before: Option<DateTime<Utc>>,
    pub created_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// One signer: a public key, by key id, with the credentials it was found in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LedgerSigner {
    /// Lower-hex SHA-256 of the DER SubjectPublicKeyInfo.
    pub key_id: String,
    /// The DER SubjectPublicKeyInfo, base64, where a credential showed it.
    pub public_key: Option<String>,
    pub algorithm: Option<String>,
    pub credentials: Vec<SignerCredential>,
}

impl LedgerSigner {
    /// When the signer is trusted from: the earliest certificate not-before or first sighting of
    /// its credentials.
    pub fn valid_from(&self) -> Option<DateTime<Utc>> {
        self.credentials
            .iter()
            .map(|it| it.not_before.unwrap_or(it.first_seen))
            .min()
    }
}

/// A change to one signer's trust record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TrustChange {
    Distrust(DistrustPeriod),
    Reinstate {
        at: DateTime<Utc>,
        by: String,
        reason: String,
    },
    /// The credential a period waited for was replaced at `at`: the periods that lasted until
    /// then end there.
    Replaced {
        credential: crate::trust::Replacement,
        at: DateTime<Utc>,
    },
}

impl TrustChange {
    /// Applies the change to `record` by the rules of [`crate::trust`].
    pub fn apply(&self, record: &mut TrustRecord) -> std::result::Result<Change, TrustError> {
        match self {
            Self::Distrust(period) => record.distrust(period.clone()),
            Self::Reinstate { at, by, reason } => record.reinstate(*at, by, reason),
            Self::Replaced { credential, at } => Ok(record.end_on_replacement(credential, *at)),
        }
    }

    /// The audit event kind of the change.
    pub fn event_kind(&self) -> &'static str {
        match self {
            Self::Distrust(_) => "signer.distrusted",
            Self::Reinstate { .. } => "signer.reinstated",
            Self::Replaced { .. } => "signer.distrust_ended",
        }
    }
}

/// Signers and their trust records.
#[async_trait]
pub trait SignerTrust: Send + Sync {
    /// Every signer in the ledger, by key id: the present credentials of a signing kind with a
    /// `sha256_spki` fingerprint. One pass over the fingerprints.
    async fn signers(&self) -> Result<Vec<LedgerSigner>>;

    /// The present credentials that can sign with a signer by their source's own access rules
    /// (a non-empty `signs_with`: a Vault token whose policies allow `transit/sign/<key>`), with
    /// their identities. Through the signing-power index, not a pass over every credential.
    async fn signing_holders(&self) -> Result<Vec<crate::ledger::LedgerCredential>>;

    /// The stored trust record of each signer that has one, by key id: when it is trusted from
    /// (never moved earlier once stored) and its distrust periods.
    async fn distrust_periods(&self) -> Result<Vec<(String, TrustRecord)>>;

    /// Applies `change` to the trust record of the signer `key_id` (trusted from `valid_from`, or
    /// from the stored time if that is later: the window never widens back) under the write lock; when it changes the record, stores it and appends an audit event in
    /// the same transaction. A refused change (the outer `Ok(Err(..))`) changes nothing.
    async fn change_trust(
        &self,
        key_id: &str,
        valid_from: DateTime<Utc>,
        change: &TrustChange,
        at: DateTime<Utc>,
    ) -> Result<std::result::Result<Change, TrustError>>;
}

/// The credential kinds whose keys can make signatures.
pub const SIGNING_KINDS: &[CredentialKind] = &[
    CredentialKind::CosignKey,
    CredentialKind::PrivateKey,
    CredentialKind::PublicKey,
    CredentialKind::Certificate,
    CredentialKind::SshKey,
    CredentialKind::TransitKeyVersion,
];
