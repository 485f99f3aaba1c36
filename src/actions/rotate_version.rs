//! `rotate_version`: rotate a versioned signing key (a Vault Transit key) — add a version that
//! signs from now on, keep the older ones accepted for a while, then retire them and close their
//! signers' trust from that moment (what they signed before stays valid).
//!
//! check → rotate → await_signer (a scan records the new version) → retire (waits out the
//! source's `transit_retire_after`) → close_trust → done.
//! - `check`: the key's versions as the source shows them now. A version already below the
//!   source's minimum is done; one that is no longer the latest (a newer one signs) skips the
//!   rotation and is only retired; a policy's condition is re-checked on the live state.
//! - `rotate`: adds a version unless the latest is already newer than the one acted on (a crash
//!   after the rotation, or someone else rotated): the key gets exactly one new version.
//! - `await_signer`: the older versions' retirement period starts only once a scan has recorded
//!   the new version as a signer, so trust bundles include it before anything is retired.
//! - `retire`: re-reads the versions; refuses to retire the only version that signs; raises the
//!   source's minimum versions past the one acted on (idempotent: a minimum already past it is
//!   left as it is).
//! - `close_trust`: distrusts, from the retirement, the signers of every version at or below the
//!   one acted on (reason `retired`); distrust only widens, so taking it again changes nothing.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use keywarden_connector::{ConnectorError, CredentialStatus, HeldKey, KeyVersions, LastUse};
use serde::{Deserialize, Serialize};

use super::crash_point;
use super::guard;
use super::machine::{Machine, Next, StepCx, StepError, after, when};
use crate::store::TrustChange;
use crate::trust::{Change, DistrustPeriod, DistrustReason};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub(crate) enum RotateVersion {
    Check,
    /// Add a version unless the latest is already past `version`.
    Rotate {
        version: u64,
    },
    /// Wait until a scan has recorded the new version `latest` as a signer (so trust bundles
    /// include it) before the older ones' retirement period starts.
    AwaitSigner {
        version: u64,
        latest: u64,
    },
    /// Retire `version` and every older one (`rotated_at`: when the ledger was first seen holding
    /// the newer version, the start of the retirement period).
    Retire {
        version: u64,
        rotated_at: DateTime<Utc>,
        /// Their signers, read from the ledger before anything was retired (a source shows no
        /// retired version, so the next scan no longer finds them).
        #[serde(default)]
        signers: Vec<Retiring>,
    },
    /// Distrust `signers` (of `version` and the older ones) from `retired_at`.
    CloseTrust {
        version: u64,
        retired_at: DateTime<Utc>,
        #[serde(default)]
        signers: Vec<Retiring>,
    },
}

/// The signer of a version being retired.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Retiring {
    pub key_id: String,
    pub valid_from: DateTime<Utc>,
    /// The version's external id.
    pub credential: String,
}

/// The signers of the identity's versions at or below `version`, as the ledger holds them.
async fn retiring(cx: &StepCx<'_>, version: u64) -> Result<Vec<Retiring>, StepError> {
    let signers = crate::signers::load::signers(cx.engine.store, cx.engine.holders).await?;
    Ok(signers
        .into_iter()
        .filter_map(|signer| {
            let credential = signer.credentials.iter().find(|it| {
                it.source == cx.record.source
                    && it.identity == cx.identity()
                    && version_of(&it.external_id).is_some_and(|v| v <= version)
            })?;
            Some(Retiring {
                credential: credential.external_id.clone(),
                key_id: signer.key_id,
                valid_from: signer.record.valid_from,
            })
        })
        .collect())
}

/// The version number of a key version's external id (`<key>/v<n>`).
pub(crate) fn version_of(external_id: &str) -> Option<u64> {
    external_id
        .rsplit_once("/v")
        .and_then(|(_, n)| n.parse().ok())
        .filter(|n| *n > 0)
}

/// How often a rotation waiting for a scan to record its new version looks again: the
/// retirement period, but at least a second and at most ten minutes.
fn poll(retire_after: std::time::Duration) -> std::time::Duration {
    retire_after.clamp(
        std::time::Duration::from_secs(1),
        std::time::Duration::from_secs(600),
    )
}

/// Whether the source still accepts `version`.
fn accepted(version: u64, live: &KeyVersions) -> bool {
    version >= live.min_decryption && version <= live.latest
}

/// The identity's versions as the ledger holds them, with their live status: what a policy's
/// condition is re-checked on.
async fn live_versions(
    cx: &StepCx<'_>,
    live: &KeyVersions,
) -> Result<(Option<HeldKey>, Vec<HeldKey>), StepError> {
    let mut target = None;
    let mut all = Vec::new();
    for it in cx
        .engine
        .store
        .identity_credentials(&cx.record.source, cx.identity())
        .await?
        .into_iter()
        .filter(|it| it.status != CredentialStatus::Gone)
    {
        let Some(version) = version_of(&it.external_id) else {
            continue;
        };
        let held = HeldKey {
            active: accepted(version, live),
            created_at: it.created_at,
            id: it.external_id,
        };
        if held.id == cx.key() {
            target = Some(held.clone());
        }
        all.push(held);
    }
    Ok((target, all))
}

impl RotateVersion {
    async fn check(cx: &StepCx<'_>) -> Result<Next<Self>, StepError> {
        let key = cx.key();
        let Some(version) = version_of(key) else {
            return Ok(Next::Refused(format!("{key} names no key version")));
        };
        let live = cx.versions()?.versions(cx.identity()).await?;
        if !live.signing_only {
            return Ok(Next::Refused(format!(
                "{} decrypts or encrypts too: retiring its older versions would leave what they \
                 encrypted unreadable; only signing keys are rotated by version",
                cx.identity()
            )));
        }
        if !accepted(version, &live) {
            return Ok(Next::Done(format!(
                "{key} is already retired (the source accepts v{} to v{})",
                live.min_decryption, live.latest
            )));
        }
        let (target, all) = live_versions(cx, &live).await?;
        let target = target.unwrap_or(HeldKey {
            id: key.to_owned(),
            active: true,
            created_at: None,
        });
        // Only the ledger knows a version's use (from the audit log's sign responses).
        if let Some(reason) =
            guard::condition_lapsed_with(cx, &target, &all, LastUse::Unknown).await?
        {
            return Ok(Next::Skipped(reason));
        }
        if live.latest > version {
            return Ok(Next::Step(
                Self::AwaitSigner {
                    version,
                    latest: live.latest,
                },
                Some(format!(
                    "v{} already signs; {key} is only retired",
                    live.latest
                )),
            ));
        }
        Ok(Next::Step(
            Self::Rotate { version },
            Some(format!("{key} is the latest version")),
        ))
    }

    /// On to the retirement period once the ledger holds the new version; else checked again
    /// later (a scan records it).
    async fn await_signer(
        cx: &StepCx<'_>,
        version: u64,
        latest: u64,
    ) -> Result<Next<Self>, StepError> {
        let new = format!("{}/v{latest}", cx.identity());
        let recorded = cx
            .engine
            .store
            .find_credential(&new)
            .await?
            .into_iter()
            .any(|it| {
                it.source == cx.record.source && it.credential.status != CredentialStatus::Gone
            });
        let retire_after = cx.versions()?.retire_after();
        if !recorded {
            let again = after(cx.now(), poll(retire_after));
            return Ok(Next::Wait(
                Self::AwaitSigner { version, latest },
                again,
                format!("waiting for a scan to record {new} as a signer"),
            ));
        }
        let rotated_at = cx.now();
        let until = after(rotated_at, retire_after);
        Ok(Next::Wait(
            Self::Retire {
                version,
                rotated_at,
                signers: retiring(cx, version).await?,
            },
            until,
            format!(
                "{new} is a signer; v{version} stays accepted until {}",
                when(until)
            ),
        ))
    }

    async fn retire(
        cx: &StepCx<'_>,
        version: u64,
        rotated_at: DateTime<Utc>,
        mut signers: Vec<Retiring>,
    ) -> Result<Next<Self>, StepError> {
        let versions = cx.versions()?;
        let live = versions.versions(cx.identity()).await?;
        if live.latest <= version {
            return Ok(Next::Refused(format!(
                "v{version} is the latest version of {} (v{}): retiring it would leave nothing \
                 that signs",
                cx.identity(),
                live.latest
            )));
        }
        let Some(below) = version.checked_add(1) else {
            return Ok(Next::Refused(format!("v{version} cannot be retired")));
        };
        // Any the ledger learned of since (a scan while it waited).
        for it in retiring(cx, version).await? {
            if !signers.iter().any(|known| known.key_id == it.key_id) {
                signers.push(it);
            }
        }
        let mut retired_at = cx.now();
        let detail = if live.min_decryption >= below {
            // Retired before a crash let it be recorded, or by someone else: from no later than
            // the end of the retirement period.
            retired_at = retired_at.min(after(rotated_at, cx.versions()?.retire_after()));
            format!("v{version} was already retired")
        } else {
            versions.retire_below(cx.identity(), below).await?;
            crash_point("transit_retired");
            format!(
                "v{version} and older retired (v{} signs since {})",
                live.latest,
                when(rotated_at)
            )
        };
        Ok(Next::Step(
            Self::CloseTrust {
                version,
                retired_at,
                signers,
            },
            Some(detail),
        ))
    }

    async fn close_trust(
        cx: &StepCx<'_>,
        version: u64,
        retired_at: DateTime<Utc>,
        signers: Vec<Retiring>,
    ) -> Result<Next<Self>, StepError> {
        let store = cx.engine.store;
        let (mut changed, mut refused) = (Vec::new(), Vec::new());
        for it in signers {
            let period = DistrustPeriod {
                from: retired_at,
                until: None,
                reason: DistrustReason::Retired,
                evidence: format!(
                    "{} retired by action {} (a newer version signs)",
                    it.credential, cx.record.id
                ),
                by: format!("action:{}", cx.record.id),
                reinstated: None,
                until_replaced: None,
            };
            let change = TrustChange::Distrust(period);
            match store
                .change_trust(&it.key_id, it.valid_from, &change, cx.now())
                .await?
            {
                Ok(Change::Changed) => changed.push(it.key_id),
                Ok(Change::Unchanged) => {}
                Err(err) => refused.push(format!("{}: {err}", it.key_id)),
            }
        }
        crash_point("transit_trust_closed");
        let summary = format!(
            "v{version} and older retired; signers distrusted from {}: {}",
            when(retired_at),
            if changed.is_empty() {
                "none (already)".to_owned()
            } else {
                changed.join(", ")
            }
        );
        Ok(if refused.is_empty() {
            Next::Done(summary)
        } else {
            Next::Failed(format!("{summary}; refused: {}", refused.join("; ")))
        })
    }
}

#[async_trait]
impl Machine for RotateVersion {
    fn step_name(&self) -> &'static str {
        match self {
            Self::Check => "check",
            Self::Rotate { .. } => "rotate",
            Self::AwaitSigner { .. } => "await_signer",
            Self::Retire { .. } => "retire",
            Self::CloseTrust { .. } => "close_trust",
        }
    }

    async fn step(self, cx: &StepCx<'_>) -> Result<Next<Self>, StepError> {
        match self {
            Self::Check => Self::check(cx).await,
            Self::Rotate { version } => {
                let versions = cx.versions()?;
                let live = versions.versions(cx.identity()).await?;
                let latest = if live.latest > version {
                    // Rotated already: by this action before a crash, or by someone else.
                    live.latest
                } else {
                    let after_rotation = versions.add_version(cx.identity()).await?;
                    crash_point("transit_rotated");
                    after_rotation.latest
                };
                if latest <= version {
                    return Err(ConnectorError::Permanent(format!(
                        "{} shows v{latest} as its latest version after a rotation",
                        cx.identity()
                    ))
                    .into());
                }
                Ok(Next::Step(
                    Self::AwaitSigner { version, latest },
                    Some(format!("v{latest} signs from now")),
                ))
            }
            Self::AwaitSigner { version, latest } => Self::await_signer(cx, version, latest).await,
            Self::Retire {
                version,
                rotated_at,
                signers,
            } => Self::retire(cx, version, rotated_at, signers).await,
            Self::CloseTrust {
                version,
                retired_at,
                signers,
            } => Self::close_trust(cx, version, retired_at, signers).await,
        }
    }

    async fn cancel(self, cx: &StepCx<'_>) -> Result<String, StepError> {
        Ok(match self {
            Self::Check => format!("stopped before {} was changed", cx.identity()),
            Self::Rotate { .. } => format!(
                "stopped at rotating {}: a new version may have been added",
                cx.identity()
            ),
            Self::AwaitSigner { version, .. } | Self::Retire { version, .. } => format!(
                "a newer version of {} signs; v{version} was not retired and stays accepted",
                cx.identity()
            ),
            Self::CloseTrust { version, .. } => format!(
                "v{version} is retired; its signers' trust was not closed (their signatures \
                 after the retirement stay trusted)"
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_is_read_from_its_external_id() {
        assert_eq!(version_of("ns/transit/keys/release/v12"), Some(12));
        assert_eq!(version_of("transit/keys/v/v3"), Some(3));
        assert_eq!(version_of("transit/keys/release/v0"), None);
        assert_eq!(version_of("transit/keys/release"), None);
        assert_eq!(version_of("transit/keys/release/vx"), None);
    }

    #[test]
    fn only_versions_between_the_minimum_and_the_latest_are_accepted() {
        let live = KeyVersions {
            latest: 4,
            min_decryption: 2,
            min_encryption: 0,
            signing_only: true,
        };
        assert!(!accepted(1, &live));
        assert!(accepted(2, &live));
        assert!(accepted(4, &live));
        assert!(!accepted(5, &live));
    }
}
