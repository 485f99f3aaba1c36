//! What the ledger knows about a credential: the connector's facts plus keywarden's own
//! (first and last sighting, effective creation time, effective owner).
//!
//! These are the values the policy engine evaluates and the reports print; the store produces them.

use chrono::{DateTime, Utc};
use keywarden_connector::{CreatedSource, Credential, Identity};

/// A credential as the ledger holds it, with the identity it authenticates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LedgerCredential {
    /// The configured source name.
    pub source: String,
    pub identity: Identity,
    pub credential: Credential,
    /// keywarden's first sighting of this credential.
    pub first_seen: DateTime<Utc>,
    /// The last scan that found it.
    pub last_seen: DateTime<Utc>,
}

impl LedgerCredential {
    /// The creation time: from the material where it has one, else the first sighting.
    pub fn created_at(&self) -> DateTime<Utc> {
        self.credential.created_at.unwrap_or(self.first_seen)
    }

    /// Where [`Self::created_at`] came from.
    pub fn created_source(&self) -> CreatedSource {
        match self.credential.created_at {
            Some(_) => CreatedSource::Material,
            None => CreatedSource::FirstSeen,
        }
    }

    /// The credential's owner, or else its identity's.
    pub fn owner(&self) -> Option<&str> {
        self.credential
            .owner
            .as_deref()
            .or(self.identity.owner.as_deref())
    }

    /// The credential's purpose, or else its identity's.
    pub fn purpose(&self) -> Option<&str> {
        self.credential
            .purpose
            .as_deref()
            .or(self.identity.purpose.as_deref())
    }

    /// A tag of the credential, or else of its identity.
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.credential
            .tags
            .get(key)
            .or_else(|| self.identity.tags.get(key))
            .map(String::as_str)
    }
}

#[cfg(test)]
pub(crate) mod fixtures {
    //! Builders for ledger credentials in tests.

    use std::collections::BTreeMap;

    use chrono::{DateTime, Utc};
    use keywarden_connector::{
        Credential, CredentialKind, CredentialStatus, Identity, IdentityKind, LastUse,
    };

    use super::LedgerCredential;

    /// An active credential of `kind`, first seen at `first_seen`, with no owner and nothing else.
    pub(crate) fn credential(
        source: &str,
        name: &str,
        kind: CredentialKind,
        first_seen: DateTime<Utc>,
    ) -> LedgerCredential {
        LedgerCredential {
            source: source.to_owned(),
            identity: Identity {
                external_id: format!("identity:{name}"),
                kind: IdentityKind::KeyPair,
                name: name.to_owned(),
                owner: None,
                purpose: None,
                tags: BTreeMap::new(),
            },
            credential: Credential {
                external_id: format!("credential:{name}"),
                identity_id: format!("identity:{name}"),
                kind,
                name: name.to_owned(),
                status: CredentialStatus::Active,
                created_at: None,
                not_before: None,
                expires_at: None,
                last_used: LastUse::Unknown,
                algorithm: None,
                key_bits: None,
                fingerprints: Vec::new(),
                owner: None,
                purpose: None,
                tags: BTreeMap::new(),
                attributes: BTreeMap::new(),
            },
            first_seen,
            last_seen: first_seen,
        }
    }
}
