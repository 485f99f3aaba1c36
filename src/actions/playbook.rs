//! Playbooks: a parent action with ordered children, each its own crash-resumable action.
//!
//! `contain` runs its children one after another: a child is created (with its place in the
//! playbook, so a crash between creating it and recording it finds it again), driven, and the
//! parent moves on once it is done or skipped. A child that waits makes the parent wait; a child
//! that fails, is refused or is cancelled fails the parent. Retrying the parent retries a child
//! that failed or was refused (not one a person cancelled or rejected). `raise_finding` is a child that
//! touches no connector: it opens a critical finding keywarden raises itself.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::ActionKind;
use super::engine::{self, Seed};
use super::machine::{Machine, Next, StepCx, StepError};
use super::revoke_trust::SignerDistrust;
use crate::store::{ActionStatus, RaisedFinding};
use keywarden_connector::ConnectorError;

/// The containment playbook.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub(crate) enum Contain {
    /// Running child `next` of `children`.
    Children {
        children: Vec<ActionKind>,
        next: u32,
        /// Why the containment was started (the finding child carries it).
        reason: String,
        /// The signers the `revoke_trust` child distrusts.
        #[serde(default)]
        distrust: Vec<SignerDistrust>,
    },
}

/// The default containment: distrust the signers the credential is or holds (first: it touches
/// no connector, and a quarantine that fails must not leave them trusted), take the key out of
/// use (`containment`: quarantine it, or revoke it where its source revokes for good), then open
/// a critical finding.
pub(crate) fn default_children(distrust: bool, containment: ActionKind) -> Vec<ActionKind> {
    let mut children = Vec::with_capacity(3);
    if distrust {
        children.push(ActionKind::RevokeTrust);
    }
    children.extend([containment, ActionKind::RaiseFinding]);
    children
}

#[async_trait]
impl Machine for Contain {
    fn step_name(&self) -> &'static str {
        "children"
    }

    async fn step(self, cx: &StepCx<'_>) -> Result<Next<Self>, StepError> {
        let Self::Children {
            children,
            next,
            reason,
            distrust,
        } = self;
        let Some(kind) = children.get(next as usize).copied() else {
            return Ok(Next::Done(format!("all {} steps done", children.len())));
        };
        let seed = Seed {
            delete_hold: chrono::TimeDelta::zero(),
            reason: &reason,
            distrust: &distrust,
            containment: ActionKind::Quarantine,
            // A containment's revoke takes what the credential minted too.
            minted: true,
            generate: None,
        };
        let child = engine::child(cx, kind, next, seed).await?;
        // A playbook retried after this child failed or was refused retries the child with it
        // (once per retry of the parent: the parent counted more attempts, or was taken up
        // again after the child ended); a child ended by a person stays ended. A parent resumed
        // after a crash, never retried, does not retry its child.
        let retried = matches!(child.status, ActionStatus::Failed | ActionStatus::Refused)
            && (cx.record.attempts > child.attempts || child.updated_at < cx.record.updated_at);
        let child = if retried {
            Box::pin(engine::retry(
                cx.engine,
                child.id,
                &format!("playbook action {}", cx.record.id),
                true,
            ))
            .await?
        } else {
            Box::pin(engine::drive_record(cx.engine, child)).await?
        };
        let label = format!("step {} ({kind}, action {})", next + 1, child.id);
        let state = Self::Children {
            children,
            next,
            reason,
            distrust,
        };
        Ok(match child.status {
            ActionStatus::Done | ActionStatus::Skipped => {
                let Self::Children {
                    children,
                    next,
                    reason,
                    distrust,
                } = state;
                Next::Step(
                    Self::Children {
                        children,
                        next: next + 1,
                        reason,
                        distrust,
                    },
                    Some(format!("{label} {}", child.status)),
                )
            }
            ActionStatus::Waiting => Next::Wait(
                state,
                child.next_at.unwrap_or_else(|| cx.now()),
                format!("{label} waiting"),
            ),
            // Stopped by a passing failure: the parent stays running and resumes with it.
            ActionStatus::Running => {
                return Err(StepError::Connector(ConnectorError::Retryable {
                    message: format!(
                        "{label}: {}",
                        child.reason.as_deref().unwrap_or("interrupted")
                    ),
                    retry_after: None,
                }));
            }
            ActionStatus::AwaitingApproval => {
                Next::Wait(state, cx.now(), format!("{label} awaiting approval"))
            }
            ActionStatus::Failed
            | ActionStatus::Refused
            | ActionStatus::Cancelled
            | ActionStatus::Rejected => Next::Failed(format!(
                "{label} {}: {}",
                child.status,
                child.reason.as_deref().unwrap_or("no reason given")
            )),
        })
    }

    async fn cancel(self, cx: &StepCx<'_>) -> Result<String, StepError> {
        let mut out = Vec::new();
        for child in cx.engine.store.child_actions(cx.record.id).await? {
            if child.status.is_open() {
                let ended = Box::pin(engine::cancel_record(
                    cx.engine,
                    child,
                    "its playbook was cancelled",
                    None,
                ))
                .await?;
                out.push(format!(
                    "action {}: {}",
                    ended.id,
                    ended.reason.unwrap_or_default()
                ));
            }
        }
        Ok(if out.is_empty() {
            "no step was in progress".to_owned()
        } else {
            out.join("; ")
        })
    }
}

/// Opens a critical finding keywarden raises itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub(crate) enum RaiseFinding {
    Raise {
        policy_id: String,
        severity: String,
        reason: String,
    },
}

#[async_trait]
impl Machine for RaiseFinding {
    fn step_name(&self) -> &'static str {
        "raise"
    }

    async fn step(self, cx: &StepCx<'_>) -> Result<Next<Self>, StepError> {
        let Self::Raise {
            policy_id,
            severity,
            reason,
        } = self;
        let finding = cx
            .engine
            .store
            .raise_finding(
                &RaisedFinding {
                    source: cx.record.source.clone(),
                    credential_external_id: cx.record.credential_external_id.clone(),
                    policy_id,
                    severity,
                    reason,
                },
                cx.now(),
            )
            .await?;
        super::crash_point("raise_finding_raised");
        Ok(Next::Done(format!(
            "finding {} ({}) is {}",
            finding.id, finding.policy_id, finding.status
        )))
    }

    async fn cancel(self, _cx: &StepCx<'_>) -> Result<String, StepError> {
        Ok("no finding was raised".to_owned())
    }
}
