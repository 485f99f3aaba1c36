//! What the ledger knows about a credential: the connector's facts plus keywarden's own
//! (first and last sighting, effective creation time, effective owner).
//!
//! These are the values the policy engine evaluates and the reports print; the store produces them.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use keywarden_connector::{CreatedSource, Credential, CredentialKind, CredentialStatus, Identity};

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

/// How many credentials of one kind and status an identity holds.
type Tally = (CredentialKind, CredentialStatus, u64);

/// How many credentials (not gone) each identity holds, by kind and status: what conditions over
/// an identity's credentials (`identity_credentials` in a policy) count.
///
/// A scan reads the ledger page by page and one identity's credentials may span pages, so the
/// counts come from the store for the identities of a page ([`crate::store::Ledger::identity_counts`]);
/// [`Self::of`] counts within credentials that hold every credential of their identities.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IdentityCounts {
    /// Source → identity external id → its tallies.
    by_identity: HashMap<String, HashMap<String, Vec<Tally>>>,
}

impl IdentityCounts {
    /// Counts the credentials given (gone ones excluded), each under its source and identity.
    pub fn of(credentials: &[LedgerCredential]) -> Self {
        let mut counts = Self::default();
        for it in credentials {
            if it.credential.status != CredentialStatus::Gone {
                counts.add(
                    &it.source,
                    &it.credential.identity_id,
                    it.credential.kind,
                    it.credential.status,
                    1,
                );
            }
        }
        counts
    }

    /// Adds `count` credentials of `kind` and `status` to an identity.
    pub fn add(
        &mut self,
        source: &str,
        identity: &str,
        kind: CredentialKind,
        status: CredentialStatus,
        count: u64,
    ) {
        let tallies = self
            .by_identity
            .entry(source.to_owned())
            .or_default()
            .entry(identity.to_owned())
            .or_default();
        match tallies
            .iter_mut()
            .find(|(k, s, _)| *k == kind && *s == status)
        {
            Some((_, _, n)) => *n = n.saturating_add(count),
            None => tallies.push((kind, status, count)),
        }
    }

    /// How many credentials of the identity pass `filter` (on kind and status); 0 for an identity
    /// not counted.
    pub fn count(
        &self,
        source: &str,
        identity: &str,
        mut filter: impl FnMut(CredentialKind, CredentialStatus) -> bool,
    ) -> u64 {
        self.by_identity
            .get(source)
            .and_then(|it| it.get(identity))
            .map_or(0, |tallies| {
                tallies
                    .iter()
                    .filter(|(kind, status, _)| filter(*kind, *status))
                    .map(|(_, _, n)| *n)
                    .sum()
            })
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
                confirmed_leaks: Vec::new(),
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
                public_key: None,
                owner: None,
                purpose: None,
                tags: BTreeMap::new(),
                attributes: BTreeMap::new(),
                signs_with: Vec::new(),
            },
            first_seen,
            last_seen: first_seen,
        }
    }
}
