//! `disable`, `delete` and `quarantine`: the single-key machines.
//!
//! - disable: `disable` → done.
//! - delete: `delete` (an active key is deactivated first) → `hold` (waits) → `remove` → done.
//!   A key switched back on during the hold is left alone.
//! - quarantine: `deactivate` → `deny_sessions` → done (a deny on sessions issued before the
//!   quarantine's cut-off, with keywarden's own identity).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::crash_point;
use super::guard::{self, Live};
use super::machine::{Machine, Next, StepCx, StepError, when};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub(crate) enum Disable {
    Disable,
}

#[async_trait]
impl Machine for Disable {
    fn step_name(&self) -> &'static str {
        "disable"
    }

    async fn step(self, cx: &StepCx<'_>) -> Result<Next<Self>, StepError> {
        let key = cx.key();
        let (live, all) = match guard::live_key(cx).await? {
            Live::Held { key, all } => (key, all),
            Live::Gone => return Ok(Next::Skipped(format!("{key} no longer exists"))),
        };
        if let Some(reason) = guard::condition_lapsed(cx, &live, &all).await? {
            return Ok(Next::Skipped(reason));
        }
        if !live.active {
            return Ok(Next::Done(format!("{key} was already inactive")));
        }
        cx.keys()?.set_active(cx.identity(), key, false).await?;
        Ok(Next::Done(format!("{key} deactivated")))
    }

    async fn cancel(self, cx: &StepCx<'_>) -> Result<String, StepError> {
        Ok(format!("stopped before {} was deactivated", cx.key()))
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub(crate) enum Delete {
    /// Re-check; deactivate an active key and hold it, or go on to `remove` an inactive one.
    #[serde(rename = "delete")]
    Begin {
        /// How long an active key stays deactivated before it is deleted, in seconds.
        #[serde(default)]
        hold_seconds: i64,
    },
    /// Deactivated by this action; deleted once the hold is over.
    Hold {
        deactivated_at: DateTime<Utc>,
    },
    Remove,
}

#[async_trait]
impl Machine for Delete {
    fn step_name(&self) -> &'static str {
        match self {
            Self::Begin { .. } => "delete",
            Self::Hold { .. } => "hold",
            Self::Remove => "remove",
        }
    }

    async fn step(self, cx: &StepCx<'_>) -> Result<Next<Self>, StepError> {
        let (key, identity) = (cx.key(), cx.identity());
        let actions = cx.keys()?;
        Ok(match self {
            Self::Begin { hold_seconds } => {
                let (live, all) = match guard::live_key(cx).await? {
                    Live::Held { key, all } => (key, all),
                    Live::Gone => return Ok(Next::Done(format!("{key} was already gone"))),
                };
                if let Some(reason) = guard::condition_lapsed(cx, &live, &all).await? {
                    return Ok(Next::Skipped(reason));
                }
                if !live.active {
                    return Ok(Next::Step(Self::Remove, Some(format!("{key} is inactive"))));
                }
                actions.set_active(identity, key, false).await?;
                crash_point("delete_deactivate");
                let now = cx.now();
                let until = chrono::TimeDelta::try_seconds(hold_seconds.max(0))
                    .and_then(|hold| now.checked_add_signed(hold))
                    .unwrap_or(DateTime::<Utc>::MAX_UTC);
                Next::Wait(
                    Self::Hold {
                        deactivated_at: now,
                    },
                    until,
                    format!("{key} deactivated; deleted after {}", when(until)),
                )
            }
            Self::Hold { .. } => Next::Step(Self::Remove, Some("hold over".to_owned())),
            Self::Remove => {
                // Someone may have switched it back on during the hold: it is in use, leave it.
                match guard::live_key(cx).await? {
                    Live::Gone => return Ok(Next::Done(format!("{key} was already gone"))),
                    Live::Held { key: live, .. } if live.active => {
                        return Ok(Next::Failed(format!(
                            "{key} was switched back on during the hold; left alone"
                        )));
                    }
                    Live::Held { .. } => {}
                }
                actions.delete_key(identity, key).await?;
                Next::Done(format!("{key} deleted"))
            }
        })
    }

    async fn cancel(self, cx: &StepCx<'_>) -> Result<String, StepError> {
        Ok(match self {
            Self::Begin { .. } => format!("stopped before {} was changed", cx.key()),
            Self::Hold { .. } | Self::Remove => {
                format!("{} is deactivated and kept (not deleted)", cx.key())
            }
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub(crate) enum Quarantine {
    Deactivate,
    DenySessions,
}

#[async_trait]
impl Machine for Quarantine {
    fn step_name(&self) -> &'static str {
        match self {
            Self::Deactivate => "deactivate",
            Self::DenySessions => "deny_sessions",
        }
    }

    async fn step(self, cx: &StepCx<'_>) -> Result<Next<Self>, StepError> {
        let (key, identity) = (cx.key(), cx.identity());
        let actions = cx.keys()?;
        Ok(match self {
            Self::Deactivate => {
                if let Live::Held { key: live, all } = guard::live_key(cx).await? {
                    if let Some(reason) = guard::condition_lapsed(cx, &live, &all).await? {
                        return Ok(Next::Skipped(reason));
                    }
                    if live.active {
                        actions.set_active(identity, key, false).await?;
                        crash_point("quarantine_deactivate");
                    }
                }
                // A key already gone still had sessions: deny them all the same.
                Next::Step(Self::DenySessions, Some(format!("{key} deactivated")))
            }
            Self::DenySessions => {
                // The cut-off is now, after the key was deactivated: no session minted with it
                // before this moment survives.
                let before = cx.now();
                let policy = actions.deny_sessions_before(identity, before).await?;
                Next::Done(format!(
                    "attached {policy}: sessions issued before {} are denied",
                    when(before)
                ))
            }
        })
    }

    async fn cancel(self, cx: &StepCx<'_>) -> Result<String, StepError> {
        Ok(match self {
            Self::Deactivate => format!("stopped before {} was changed", cx.key()),
            Self::DenySessions => format!(
                "{} is deactivated; older sessions were not denied",
                cx.key()
            ),
        })
    }
}
