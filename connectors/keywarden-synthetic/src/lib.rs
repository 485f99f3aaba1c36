//! keywarden connector `synthetic`: a generated source of any size, for load tests, benchmarks and
//! demos. Every credential it reports is made up, deterministically from the seed, and marked with
//! the attribute `synthetic=true`; nothing is read from anywhere.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use keywarden_connector::{
    Connector, ConnectorError, Credential, CredentialKind, CredentialStatus, FieldError,
    Fingerprint, Identity, IdentityKind, Inventory, InventorySink, LastUse, ScanContext,
};
use serde::Deserialize;

/// Configuration of a `synthetic` source.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SyntheticConfig {
    /// How many credentials to generate.
    pub count: u64,
    /// Varies the generated population; the same seed gives the same credentials.
    #[serde(default)]
    pub seed: u64,
    /// How many credentials share one identity.
    #[serde(default = "default_per_identity")]
    pub credentials_per_identity: u64,
}

fn default_per_identity() -> u64 {
    2
}

impl SyntheticConfig {
    /// Pure validation.
    pub fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut errors = Vec::new();
        if self.count > 10_000_000 {
            errors.push(FieldError::new("count", "at most 10000000"));
        }
        if self.credentials_per_identity == 0 {
            errors.push(FieldError::new(
                "credentials_per_identity",
                "must be at least 1",
            ));
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    pub fn build(&self, source: &str) -> SyntheticConnector {
        SyntheticConnector {
            source: source.to_owned(),
            config: self.clone(),
        }
    }
}

/// The running `synthetic` connector.
#[derive(Clone, Debug)]
pub struct SyntheticConnector {
    source: String,
    config: SyntheticConfig,
}

/// SplitMix64: a small, well-known mixer, enough to spread the generated values.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Identities per batch handed to the sink.
const BATCH: u64 = 1000;

const KINDS: [CredentialKind; 5] = [
    CredentialKind::CosignKey,
    CredentialKind::Certificate,
    CredentialKind::PrivateKey,
    CredentialKind::AccessKey,
    CredentialKind::SshKey,
];

impl SyntheticConnector {
    /// The `index`-th identity.
    pub fn identity(&self, index: u64) -> Identity {
        let r = mix(self.config.seed ^ index.wrapping_mul(31));
        let mut tags = BTreeMap::new();
        tags.insert("team".to_owned(), format!("team-{}", r % 17));
        Identity {
            external_id: format!("identity-{index}"),
            kind: IdentityKind::KeyPair,
            name: format!("pipeline-{index}"),
            owner: (!r.is_multiple_of(10)).then(|| format!("owner-{}", r % 97)),
            purpose: Some(
                if r.is_multiple_of(3) {
                    "publishing"
                } else {
                    "signing"
                }
                .to_owned(),
            ),
            tags,
            confirmed_leaks: Vec::new(),
        }
    }

    /// The `index`-th credential, as seen at `now`.
    pub fn credential(&self, index: u64, now: DateTime<Utc>) -> Credential {
        let r = mix(self.config.seed.wrapping_add(index));
        let kind = KINDS[(r % KINDS.len() as u64) as usize];
        let age_days = (r >> 8) % 900;
        // Checked: a `now` at the edge of the calendar gives `now` itself (or no expiry), never
        // an overflow.
        let days_before = |days: u64| {
            now.checked_sub_signed(Duration::days(days as i64))
                .unwrap_or(now)
        };
        let created_at = days_before(age_days);
        let expires_at = (kind == CredentialKind::Certificate)
            .then(|| created_at.checked_add_signed(Duration::days(365 + ((r >> 20) % 400) as i64)))
            .flatten();
        let last_used = match (r >> 32) % 4 {
            0 => LastUse::Never,
            1 => LastUse::Unknown,
            _ => LastUse::At {
                at: days_before((r >> 40) % (age_days + 1)),
                source: "synthetic".to_owned(),
            },
        };
        let mut attributes = BTreeMap::new();
        attributes.insert("synthetic".to_owned(), "true".to_owned());
        Credential {
            external_id: format!("synthetic-{index}"),
            identity_id: format!(
                "identity-{}",
                index / self.config.credentials_per_identity.max(1)
            ),
            kind,
            name: format!("{}-{index}", kind.as_str()),
            status: if (r >> 48).is_multiple_of(20) {
                CredentialStatus::Inactive
            } else {
                CredentialStatus::Active
            },
            created_at: (kind == CredentialKind::Certificate || kind == CredentialKind::AccessKey)
                .then_some(created_at),
            not_before: None,
            expires_at,
            last_used,
            algorithm: Some("ecdsa-p256".to_owned()),
            key_bits: Some(256),
            fingerprints: vec![Fingerprint {
                algorithm: "sha256_spki".to_owned(),
                value: format!(
                    "{:016x}{:016x}{:016x}{:016x}",
                    r,
                    mix(r),
                    mix(r ^ 1),
                    mix(r ^ 2)
                ),
            }],
            public_key: None,
            owner: None,
            purpose: None,
            tags: BTreeMap::new(),
            attributes,
            signs_with: Vec::new(),
        }
    }
}

#[async_trait]
impl Connector for SyntheticConnector {
    fn kind(&self) -> &'static str {
        "synthetic"
    }

    fn source(&self) -> &str {
        &self.source
    }

    async fn inventory(
        &self,
        cx: &ScanContext,
        sink: &mut dyn InventorySink,
    ) -> Result<(), ConnectorError> {
        let count = self.config.count;
        let per = self.config.credentials_per_identity.max(1);
        cx.progress.add_total(count);
        let mut start = 0;
        while start < count {
            // Batches start on an identity boundary, so each identity comes with its credentials.
            let end = (start + BATCH * per).min(count);
            let batch = Inventory {
                identities: (start / per..end.div_ceil(per))
                    .map(|it| self.identity(it))
                    .collect(),
                credentials: (start..end).map(|it| self.credential(it, cx.now)).collect(),
                errors: Vec::new(),
                skipped: Vec::new(),
            };
            sink.batch(batch).await?;
            cx.progress.advance(end - start);
            start = end;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn generates_the_requested_population_deterministically() {
        let config = SyntheticConfig {
            count: 2001,
            seed: 7,
            credentials_per_identity: 2,
        };
        let connector = config.build("load");
        let now = DateTime::from_timestamp(1_800_000_000, 0).expect("valid time");
        let a = keywarden_connector::collect(&connector, &ScanContext::new(now))
            .await
            .expect("inventory");
        let b = keywarden_connector::collect(&connector, &ScanContext::new(now))
            .await
            .expect("inventory");
        // Several batches, the last one partial: every credential and identity exactly once.
        assert_eq!(a.credentials.len(), 2001);
        assert_eq!(a.identities.len(), 1001);
        assert_eq!(a, b);
        let ids: std::collections::BTreeSet<_> = a
            .credentials
            .iter()
            .map(|it| it.external_id.as_str())
            .collect();
        assert_eq!(ids.len(), 2001);
        let identities: std::collections::BTreeSet<_> = a
            .identities
            .iter()
            .map(|it| it.external_id.as_str())
            .collect();
        assert!(
            a.credentials
                .iter()
                .all(|it| identities.contains(it.identity_id.as_str()))
        );
        let kinds: std::collections::BTreeSet<_> = a.credentials.iter().map(|it| it.kind).collect();
        assert_eq!(kinds.len(), KINDS.len());
    }

    #[test]
    fn times_at_the_edges_of_the_calendar_do_not_overflow() {
        let connector = SyntheticConfig {
            count: 64,
            seed: 9,
            credentials_per_identity: 1,
        }
        .build("edge");
        for now in [DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC] {
            for index in 0..64 {
                let credential = connector.credential(index, now);
                assert!(credential.created_at.is_none_or(|at| at <= now));
                if let LastUse::At { at, .. } = credential.last_used {
                    assert!(at <= now);
                }
            }
        }
    }
}
