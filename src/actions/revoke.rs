//! `revoke`: for credentials that cannot be switched off and on again (a Vault token, an AppRole
//! secret-id) — re-read it live, revoke it for good, then, in a containment, revoke what it
//! minted (the tokens its logins made).
//!
//! - `check`: the credential as its source shows it now; gone is done; for a policy's action, the
//!   policy's condition re-checked on it (a token used since is skipped).
//! - `revoke`: revoked (idempotent: one already gone counts as revoked).
//! - `revoke_minted`: what it minted, from its creation on, revoked; a source that mints nothing
//!   it can revoke says so and the action is done. In a containment this runs even when the
//!   source refused to revoke the credential itself (keywarden's own login, which it would lock
//!   itself out with): what was minted with it is revoked, and the action fails, naming the
//!   credential that is still live, for a person to replace.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use keywarden_connector::{ConnectorError, CredentialStatus, HeldKey};
use serde::{Deserialize, Serialize};

use super::crash_point;
use super::guard;
use super::machine::{Machine, Next, StepCx, StepError};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub(crate) enum Revoke {
    Check {
        /// Revoke what it minted too (a containment: whatever it made may be in other hands).
        #[serde(default)]
        minted: bool,
    },
    #[serde(rename = "revoke")]
    Cut {
        minted: bool,
        /// Its creation, as the source showed it: what it minted since is revoked.
        since: Option<DateTime<Utc>>,
    },
    #[serde(rename = "revoke_minted")]
    Minted {
        since: Option<DateTime<Utc>>,
        /// Why the credential itself was not revoked (the source refused), if it was not.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        kept: Option<String>,
    },
}

/// The identity's credentials of the target's kind as the ledger holds them, with the target as
/// its source shows it now: what a policy's identity conditions are re-checked on.
async fn others(cx: &StepCx<'_>, live: &HeldKey) -> Result<Vec<HeldKey>, StepError> {
    let store = cx.engine.store;
    let Some(target) = store
        .find_credential(cx.key())
        .await?
        .into_iter()
        .find(|it| it.source == cx.record.source)
    else {
        return Ok(vec![live.clone()]);
    };
    let mut all: Vec<HeldKey> = store
        .identity_credentials(&cx.record.source, cx.identity())
        .await?
        .into_iter()
        .filter(|it| it.kind == target.credential.kind && it.external_id != cx.key())
        .map(|it| HeldKey {
            active: it.status == CredentialStatus::Active,
            created_at: it.created_at,
            id: it.external_id,
        })
        .collect();
    all.push(live.clone());
    Ok(all)
}

#[async_trait]
impl Machine for Revoke {
    fn step_name(&self) -> &'static str {
        match self {
            Self::Check { .. } => "check",
            Self::Cut { .. } => "revoke",
            Self::Minted { .. } => "revoke_minted",
        }
    }

    async fn step(self, cx: &StepCx<'_>) -> Result<Next<Self>, StepError> {
        let (key, identity) = (cx.key(), cx.identity());
        let actions = cx.keys()?;
        Ok(match self {
            Self::Check { minted } => {
                let Some(live) = actions.key(identity, key).await? else {
                    return Ok(Next::Done(format!("{key} no longer exists")));
                };
                let all = others(cx, &live).await?;
                if let Some(reason) = guard::condition_lapsed(cx, &live, &all).await? {
                    return Ok(Next::Skipped(reason));
                }
                Next::Step(
                    Self::Cut {
                        minted,
                        since: live.created_at,
                    },
                    Some(format!("{key} is live")),
                )
            }
            Self::Cut { minted, since } => match actions.revoke(identity, key).await {
                Ok(()) => {
                    crash_point("revoke_revoked");
                    if minted {
                        Next::Step(
                            Self::Minted { since, kept: None },
                            Some(format!("{key} revoked")),
                        )
                    } else {
                        Next::Done(format!("{key} revoked"))
                    }
                }
                // A containment still takes away what it minted.
                Err(ConnectorError::Refused(why)) if minted => Next::Step(
                    Self::Minted {
                        since,
                        kept: Some(why.clone()),
                    },
                    Some(format!("{key} not revoked: {why}")),
                ),
                Err(err) => return Err(err.into()),
            },
            Self::Minted { since, kept } => {
                let report = match actions.revoke_minted(identity, key, since, None).await {
                    Ok(revoked) if revoked.is_empty() => {
                        "it had minted nothing still valid".to_owned()
                    }
                    Ok(revoked) => format!("what it minted is revoked: {}", revoked.join(", ")),
                    Err(ConnectorError::Refused(why)) => why,
                    Err(err) => return Err(err.into()),
                };
                match kept {
                    None => Next::Done(format!("{key} revoked; {report}")),
                    Some(why) => Next::Failed(format!(
                        "{key} is NOT revoked and can still be used: {why}; {report}"
                    )),
                }
            }
        })
    }

    async fn cancel(self, cx: &StepCx<'_>) -> Result<String, StepError> {
        Ok(match self {
            Self::Check { .. } => format!("stopped before {} was changed", cx.key()),
            Self::Cut { .. } => {
                format!("stopped at revoking {}: it may have been revoked", cx.key())
            }
            Self::Minted { .. } => {
                format!("{} is revoked; what it minted was not revoked", cx.key())
            }
        })
    }
}
