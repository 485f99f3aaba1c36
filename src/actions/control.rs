//! A person's controls over an action (and a containment's): cancel at a safe point, approve or
//! reject one awaiting approval, retry one that failed or was refused.

use super::engine::{claim, drive_record, keys_of, this_process, versions_of};
use super::keys::{Delete, Disable, Quarantine};
use super::machine::{Machine, StepCx, StepError, from_record};
use super::playbook::{Contain, RaiseFinding};
use super::revoke::Revoke;
use super::revoke_trust::RevokeTrust;
use super::rotate::Rotate;
use super::rotate_kv::RotateKv;
use super::rotate_version::RotateVersion;
use super::{ActionError, ActionKind, Engine};
use crate::store::{ActionRecord, ActionStatus, StoreError, Transition};

/// Cancels an open action at a safe point (see each machine's `cancel`), with who and why.
pub async fn cancel(
    engine: Engine<'_>,
    id: i64,
    reason: &str,
    by: &str,
) -> Result<ActionRecord, ActionError> {
    let record = engine.store.action(id).await?;
    cancel_record(engine, record, reason, Some(by)).await
}

pub(crate) async fn cancel_record(
    engine: Engine<'_>,
    record: ActionRecord,
    reason: &str,
    by: Option<&str>,
) -> Result<ActionRecord, ActionError> {
    if !record.status.is_open() {
        return Err(ActionError::Busy(format!(
            "action {} is already {}",
            record.id, record.status
        )));
    }
    let holder = this_process();
    let report = if record.status == ActionStatus::AwaitingApproval {
        "nothing was changed".to_owned()
    } else {
        let record = claim(engine, &record).await?;
        let keys = keys_of(engine, &record)?;
        let versions = versions_of(engine, &record)?;
        let cx = StepCx {
            engine,
            record: &record,
            keys,
            versions,
            holder: &holder,
            token: record.lease_token,
        };
        let ended = match record.kind {
            ActionKind::Rotate => cancel_as::<Rotate>(&cx).await,
            ActionKind::Disable => cancel_as::<Disable>(&cx).await,
            ActionKind::Delete => cancel_as::<Delete>(&cx).await,
            ActionKind::Quarantine => cancel_as::<Quarantine>(&cx).await,
            ActionKind::Revoke => cancel_as::<Revoke>(&cx).await,
            ActionKind::Contain => cancel_as::<Contain>(&cx).await,
            ActionKind::RaiseFinding => cancel_as::<RaiseFinding>(&cx).await,
            ActionKind::RevokeTrust => cancel_as::<RevokeTrust>(&cx).await,
            ActionKind::RotateVersion => cancel_as::<RotateVersion>(&cx).await,
            ActionKind::RotateKv => cancel_as::<RotateKv>(&cx).await,
        };
        match ended {
            Ok(report) => report,
            Err(StepError::Action(err)) => return Err(err),
            Err(StepError::Connector(err)) => {
                return Err(ActionError::Busy(format!(
                    "cannot stop action {} safely now ({err}); nothing was cancelled, try again",
                    record.id
                )));
            }
        }
    };
    Ok(engine
        .store
        .transition_action(
            record.id,
            &Transition {
                from: &[
                    ActionStatus::Running,
                    ActionStatus::Waiting,
                    ActionStatus::AwaitingApproval,
                ],
                to: ActionStatus::Cancelled,
                reason: Some(format!("{reason}; {report}")),
                by: by.map(str::to_owned),
                event: "cancelled",
                retry: false,
                next_at: None,
                state: None,
                holder,
            },
            engine.now(),
        )
        .await?)
}

async fn cancel_as<M: Machine>(cx: &StepCx<'_>) -> Result<String, StepError> {
    let state: M = from_record(cx.record)?;
    state.cancel(cx).await
}

/// A person's decision on an action: one guarded status change (see [`Transition`]).
struct Decision<'a> {
    from: &'static [ActionStatus],
    to: ActionStatus,
    event: &'static str,
    by: &'a str,
    reason: Option<&'a str>,
    counted: bool,
}

async fn decide(
    engine: Engine<'_>,
    id: i64,
    decision: Decision<'_>,
) -> Result<ActionRecord, ActionError> {
    engine
        .store
        .transition_action(
            id,
            &Transition {
                from: decision.from,
                to: decision.to,
                reason: decision.reason.map(str::to_owned),
                by: Some(decision.by.to_owned()),
                event: decision.event,
                retry: decision.counted,
                next_at: None,
                state: None,
                holder: this_process(),
            },
            engine.now(),
        )
        .await
        .map_err(not_now)
}

/// Approves an action awaiting approval and drives it.
pub async fn approve(
    engine: Engine<'_>,
    id: i64,
    by: &str,
    reason: Option<&str>,
) -> Result<ActionRecord, ActionError> {
    let decision = Decision {
        from: &[ActionStatus::AwaitingApproval],
        to: ActionStatus::Running,
        event: "approved",
        by,
        reason,
        counted: false,
    };
    let record = decide(engine, id, decision).await?;
    drive_record(engine, record).await
}

/// Rejects an action awaiting approval: it ends, having changed nothing.
pub async fn reject(
    engine: Engine<'_>,
    id: i64,
    by: &str,
    reason: Option<&str>,
) -> Result<ActionRecord, ActionError> {
    let decision = Decision {
        from: &[ActionStatus::AwaitingApproval],
        to: ActionStatus::Rejected,
        event: "rejected",
        by,
        reason,
        counted: false,
    };
    decide(engine, id, decision).await
}

/// Runs a failed or refused action again from the state it stopped in; `counted` makes it an
/// attempt (a policy's retries are limited).
pub async fn retry(
    engine: Engine<'_>,
    id: i64,
    by: &str,
    counted: bool,
) -> Result<ActionRecord, ActionError> {
    let record = decide(
        engine,
        id,
        retried(ActionStatus::Running, by, None, counted),
    )
    .await?;
    drive_record(engine, record).await
}

/// Retries a failed or refused action whose policy now requires approval: it waits for
/// `approve` (which drives it) and changes nothing before.
pub async fn retry_awaiting_approval(
    engine: Engine<'_>,
    id: i64,
    by: &str,
    counted: bool,
) -> Result<ActionRecord, ActionError> {
    let reason = Some("its policy requires approval");
    let decision = retried(ActionStatus::AwaitingApproval, by, reason, counted);
    decide(engine, id, decision).await
}

/// A failed or refused action taken up again, into `to`.
fn retried<'a>(
    to: ActionStatus,
    by: &'a str,
    reason: Option<&'a str>,
    counted: bool,
) -> Decision<'a> {
    Decision {
        from: &[ActionStatus::Failed, ActionStatus::Refused],
        to,
        event: "retried",
        by,
        reason,
        counted,
    }
}

/// A request that does not fit the action's state is the caller's mistake, not the store's.
fn not_now(err: StoreError) -> ActionError {
    match err {
        StoreError::Conflict(message) => ActionError::Busy(message),
        other => other.into(),
    }
}
