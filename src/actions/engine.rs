//! The engine: starts actions, drives their machines step by step, persists each state before the
//! step that acts on it, and takes the person's controls (approve, reject, cancel, retry).

use std::sync::Arc;

use chrono::TimeDelta;
use keywarden_connector::{ConnectorError, KeyActions, VersionedKeys};

use super::keys::{Delete, Disable, Quarantine};
use super::lease::{self, Lease};
use super::machine::{self, Machine, Next, StepCx, StepError, from_record, to_value};
use super::playbook::{self, Contain, RaiseFinding};
use super::revoke::Revoke;
use super::revoke_trust::{RevokeTrust, SignerDistrust};
use super::rotate::Rotate;
use super::rotate_kv::RotateKv;
use super::rotate_version::RotateVersion;
use super::{
    ActionError, ActionKind, Engine, connector_of, is_containment, key_actions, resolve_kind,
};
use crate::ledger::LedgerCredential;
use crate::store::{ActionRecord, ActionStatus, ActionUpdate, ChildOf, NewAction, StoreError};

pub use super::control::{approve, cancel, reject, retry};
pub(crate) use super::control::{cancel_record, retry_awaiting_approval};

/// An action to start.
#[derive(Clone, Debug)]
pub struct Request<'a> {
    pub kind: ActionKind,
    pub target: &'a LedgerCredential,
    /// `cli`, `policy:<id>`, `leak:<id>`, ...
    pub origin: String,
    /// Wait for `actions approve` before changing anything.
    pub approval_required: bool,
    /// `delete`: how long an active key stays deactivated before it is deleted.
    pub delete_hold: TimeDelta,
    /// Why (a containment's finding carries it).
    pub reason: Option<String>,
    /// `revoke_trust`, `contain`: the signers to distrust and for when (decided by the caller).
    pub distrust: Vec<SignerDistrust>,
    /// `rotate` of a KV secret: how its new value is made (a policy's `enforce.generate`).
    pub generate: Option<crate::policy::generate::Generator>,
}

impl<'a> Request<'a> {
    /// An action by hand, with the defaults.
    pub fn new(kind: ActionKind, target: &'a LedgerCredential, origin: &str) -> Self {
        Self {
            kind,
            target,
            origin: origin.to_owned(),
            approval_required: false,
            delete_hold: TimeDelta::days(7),
            reason: None,
            distrust: Vec::new(),
            generate: None,
        }
    }
}

/// What a kind's first state is made from.
#[derive(Clone, Copy)]
pub(crate) struct Seed<'s> {
    pub delete_hold: TimeDelta,
    pub reason: &'s str,
    pub distrust: &'s [SignerDistrust],
    /// `contain`: how it takes the key out of use (`quarantine`, or `revoke` where the source
    /// revokes for good).
    pub containment: ActionKind,
    /// `revoke`: revoke what the credential minted too.
    pub minted: bool,
    /// `rotate_kv`: how the new value is made.
    pub generate: Option<&'s crate::policy::generate::Generator>,
}

impl Seed<'_> {
    const EMPTY: Seed<'static> = Seed {
        delete_hold: TimeDelta::zero(),
        reason: "",
        distrust: &[],
        containment: ActionKind::Quarantine,
        minted: false,
        generate: None,
    };
}

/// Whether an action is still at its kind's first step (it has changed nothing yet).
pub(crate) fn at_first_step(record: &ActionRecord) -> bool {
    initial_state(record.kind, Seed::EMPTY).is_ok_and(|(step, _)| step == record.step)
}

/// Whether an action holds its credential's one open slot: everything but the playbook itself
/// and the kinds that touch no connector.
fn exclusive(kind: ActionKind) -> bool {
    !matches!(
        kind,
        ActionKind::Contain | ActionKind::RaiseFinding | ActionKind::RevokeTrust
    )
}

/// The first state of a kind, with its step name.
fn initial_state(
    kind: ActionKind,
    seed: Seed<'_>,
) -> Result<(String, serde_json::Value), StepError> {
    let Seed {
        delete_hold,
        reason,
        distrust,
        containment,
        minted,
        generate,
    } = seed;
    fn of<M: Machine>(state: M) -> Result<(String, serde_json::Value), StepError> {
        Ok((state.step_name().to_owned(), to_value(&state)?))
    }
    match kind {
        ActionKind::Rotate => of(Rotate::Check),
        ActionKind::Disable => of(Disable::Disable),
        ActionKind::Delete => of(Delete::Begin {
            hold_seconds: delete_hold.num_seconds(),
        }),
        ActionKind::Quarantine => of(Quarantine::Deactivate),
        ActionKind::Contain => of(Contain::Children {
            children: playbook::default_children(!distrust.is_empty(), containment),
            next: 0,
            reason: reason.to_owned(),
            distrust: distrust.to_vec(),
        }),
        ActionKind::RaiseFinding => of(RaiseFinding::Raise {
            policy_id: "keywarden.containment".to_owned(),
            severity: "critical".to_owned(),
            reason: reason.to_owned(),
        }),
        ActionKind::RevokeTrust => of(RevokeTrust::Revoke {
            signers: distrust.to_vec(),
        }),
        ActionKind::Revoke => of(Revoke::Check { minted }),
        ActionKind::RotateVersion => of(RotateVersion::Check),
        ActionKind::RotateKv => of(RotateKv::Check {
            generate: generate.cloned(),
            rechecks: 0,
        }),
    }
}

fn action_err(err: StepError) -> ActionError {
    match err {
        StepError::Action(err) => err,
        StepError::Connector(err) => ActionError::Busy(err.to_string()),
    }
}

/// Starts an action and drives it as far as it goes now (done, waiting, refused, failed), or
/// leaves it `awaiting_approval`. A containment first cancels an open rotation or delete of the
/// same credential at a safe point.
pub async fn start(
    engine: Engine<'_>,
    mut request: Request<'_>,
) -> Result<ActionRecord, ActionError> {
    let target = request.target;
    // A rotation of a versioned signing key adds a version rather than a key.
    request.kind = resolve_kind(request.kind, target.credential.kind);
    key_actions(
        engine.connectors,
        &target.source,
        request.kind,
        target.credential.kind,
    )?;
    if is_containment(request.kind) && !request.approval_required {
        preempt(engine, target, request.kind, &request.origin).await?;
    }
    let reason = request.reason.clone().unwrap_or_else(|| {
        format!(
            "{} of {} ({})",
            request.kind, target.credential.external_id, request.origin
        )
    });
    let seed = Seed {
        delete_hold: request.delete_hold,
        reason: &reason,
        distrust: &request.distrust,
        containment: containment_of(engine, target),
        // Revoked because it leaked: what it minted may be in other hands too.
        minted: request.origin.starts_with("leak:"),
        generate: request.generate.as_ref(),
    };
    let (step, state) = initial_state(request.kind, seed).map_err(action_err)?;
    let record = engine
        .store
        .create_action(
            &NewAction {
                kind: request.kind,
                source: target.source.clone(),
                credential_external_id: target.credential.external_id.clone(),
                identity_external_id: target.identity.external_id.clone(),
                origin: request.origin.clone(),
                step,
                state,
                holder: this_process(),
                status: if request.approval_required {
                    ActionStatus::AwaitingApproval
                } else {
                    ActionStatus::Running
                },
                parent: None,
                exclusive: exclusive(request.kind),
            },
            engine.now(),
        )
        .await?;
    if record.status == ActionStatus::AwaitingApproval {
        return Ok(record);
    }
    drive_record(engine, record).await
}

/// How a containment takes the credential out of use: `revoke` where its source revokes
/// credentials of its kind for good and cannot switch them off (a Vault token), else
/// `quarantine`.
fn containment_of(engine: Engine<'_>, target: &LedgerCredential) -> ActionKind {
    let offers = |kind| {
        key_actions(
            engine.connectors,
            &target.source,
            kind,
            target.credential.kind,
        )
        .is_ok_and(|it| it.is_some())
    };
    if offers(ActionKind::Revoke) && !offers(ActionKind::Quarantine) {
        ActionKind::Revoke
    } else {
        ActionKind::Quarantine
    }
}

/// Whether a containment of `kind` cancels an open action of kind `open` to act at once.
pub(crate) fn pre_empts(kind: ActionKind, open: ActionKind) -> bool {
    is_containment(kind)
        && match open {
            ActionKind::Rotate | ActionKind::Delete => true,
            // A quarantine does more than a disable: it takes over.
            ActionKind::Disable => kind != ActionKind::Disable,
            _ => false,
        }
}

/// Cancels the open rotation or delete of a credential a containment is about to act on.
async fn preempt(
    engine: Engine<'_>,
    target: &LedgerCredential,
    kind: ActionKind,
    origin: &str,
) -> Result<(), ActionError> {
    let Some(open) = engine
        .store
        .open_action(&target.source, &target.credential.external_id)
        .await?
    else {
        return Ok(());
    };
    if !pre_empts(kind, open.kind) {
        return Err(ActionError::Busy(format!(
            "{} already has open action {} ({} {})",
            target.credential.external_id, open.id, open.kind, open.status
        )));
    }
    let ended = cancel_record(
        engine,
        open,
        &format!("pre-empted by {kind} ({origin})"),
        Some("keywarden"),
    )
    .await?;
    tracing::warn!(
        action = ended.id,
        reason = ended.reason.as_deref().unwrap_or_default(),
        "Pre-empted by a containment."
    );
    Ok(())
}

/// Takes the action's steps until it is done, waiting, refused, skipped or failed; first takes
/// its lease (`Busy` if another process holds it). A passing failure (throttling, a network error)
/// leaves the action running where it stood, with the reason, for `actions resume`.
pub async fn drive(engine: Engine<'_>, id: i64) -> Result<ActionRecord, ActionError> {
    let record = engine.store.action(id).await?;
    drive_record(engine, record).await
}

pub(crate) async fn drive_record(
    engine: Engine<'_>,
    record: ActionRecord,
) -> Result<ActionRecord, ActionError> {
    match record.kind {
        ActionKind::Rotate => drive_as::<Rotate>(engine, record).await,
        ActionKind::Disable => drive_as::<Disable>(engine, record).await,
        ActionKind::Delete => drive_as::<Delete>(engine, record).await,
        ActionKind::Quarantine => drive_as::<Quarantine>(engine, record).await,
        ActionKind::Revoke => drive_as::<Revoke>(engine, record).await,
        ActionKind::Contain => drive_as::<Contain>(engine, record).await,
        ActionKind::RaiseFinding => drive_as::<RaiseFinding>(engine, record).await,
        ActionKind::RevokeTrust => drive_as::<RevokeTrust>(engine, record).await,
        ActionKind::RotateVersion => drive_as::<RotateVersion>(engine, record).await,
        ActionKind::RotateKv => drive_as::<RotateKv>(engine, record).await,
    }
}

/// The configured connector of an action's source.
fn configured<'e>(
    engine: Engine<'e>,
    record: &ActionRecord,
) -> Result<&'e Arc<dyn keywarden_connector::Connector>, ActionError> {
    connector_of(engine.connectors, &record.source).ok_or_else(|| {
        ActionError::NotFound(format!(
            "source `{}` is not in the configuration",
            record.source
        ))
    })
}

/// The steps on versioned keys an action's machine works with (`rotate_version` only).
pub(super) fn versions_of(
    engine: Engine<'_>,
    record: &ActionRecord,
) -> Result<Option<Arc<dyn VersionedKeys>>, ActionError> {
    if record.kind != ActionKind::RotateVersion {
        return Ok(None);
    }
    let connector = configured(engine, record)?;
    connector.versioned_keys().map(Some).ok_or_else(|| {
        ActionError::Unsupported(format!(
            "source `{}` ({}) has no versioned keys",
            record.source,
            connector.kind()
        ))
    })
}

/// The key actions an action's machine works with (none for a kind that needs none).
pub(super) fn keys_of(
    engine: Engine<'_>,
    record: &ActionRecord,
) -> Result<Option<Arc<dyn KeyActions>>, ActionError> {
    if machine::needs(record.kind).is_empty() {
        return Ok(None);
    }
    let connector = configured(engine, record)?;
    connector.key_actions().map(Some).ok_or_else(|| {
        ActionError::Unsupported(format!(
            "source `{}` ({}) takes no actions",
            record.source,
            connector.kind()
        ))
    })
}

async fn drive_as<M: Machine>(
    engine: Engine<'_>,
    record: ActionRecord,
) -> Result<ActionRecord, ActionError> {
    if !runnable(engine, &record) {
        return Ok(record);
    }
    let record = claim(engine, &record).await?;
    let Some(held) = Lease::held_by(&record, lease::process_owner()) else {
        return Ok(record); // Finished meanwhile: nothing to drive.
    };
    let mut result = drive_held::<M>(engine, record, &held).await;
    let still_ours = match &result {
        Ok(record) => record.lease_owner.as_deref() == Some(held.owner.as_str()),
        // Stopped on an error (a refused pre-emption, a credential gone from the ledger): the
        // action is as it was; free it rather than keep it until the lease runs out.
        Err(_) => true,
    };
    if still_ours {
        match engine
            .store
            .release_lease(held.action, &held.owner, held.token)
            .await
        {
            Ok(()) => {
                if let Ok(record) = &mut result {
                    (record.lease_owner, record.lease_until) = (None, None);
                }
            }
            Err(err) => {
                tracing::warn!(action = held.action, error = %err, "Cannot release the lease; it runs out by itself.");
            }
        }
    }
    result
}

/// [`drive_as`] once the lease is held: a heartbeat renews it while each step runs, and each
/// state is recorded under its fencing token.
async fn drive_held<M: Machine>(
    engine: Engine<'_>,
    mut record: ActionRecord,
    held: &Lease,
) -> Result<ActionRecord, ActionError> {
    let keys = keys_of(engine, &record)?;
    let versions = versions_of(engine, &record)?;
    let every = lease::heartbeat_every(engine.store.action_lease());
    loop {
        if !runnable(engine, &record) {
            return Ok(record);
        }
        let state: M = from_record(&record)?;
        let cx = StepCx {
            engine,
            record: &record,
            keys: keys.clone(),
            versions: versions.clone(),
            holder: &held.owner,
            token: held.token,
        };
        let taken = lease::while_held(engine.store, held, every, engine.clock, state.step(&cx))
            .await
            .map_err(|lost| ActionError::Busy(lost.to_string()))?;
        let next = match taken {
            Ok(next) => next,
            Err(StepError::Connector(err)) if err.is_retryable() => {
                // The store has the state to resume from (create may have moved on to deliver).
                let current = engine.store.action(record.id).await?;
                tracing::warn!(action = record.id, step = %current.step, error = %err, "Step failed for now; resume later.");
                let update = ActionUpdate {
                    step: current.step.clone(),
                    status: ActionStatus::Running,
                    state: current.state.clone(),
                    reason: Some(format!("will retry: {err}")),
                    next_at: None,
                    detail: None,
                    holder: held.owner.clone(),
                    token: held.token,
                };
                return record_step(engine, record.id, &update).await;
            }
            Err(StepError::Connector(ConnectorError::Refused(reason))) => Next::Refused(reason),
            Err(StepError::Connector(err)) => {
                let current = engine.store.action(record.id).await?;
                Next::Failed(format!("{}: {err}", current.step))
            }
            Err(StepError::Action(err)) => return Err(err),
        };
        record = record_next(engine, record.id, next, held).await?;
    }
}

/// Whether the action has a step to take now.
fn runnable(engine: Engine<'_>, record: &ActionRecord) -> bool {
    match record.status {
        ActionStatus::Running => true,
        ActionStatus::Waiting => record.next_at.is_none_or(|at| at <= engine.now()),
        _ => false,
    }
}

/// Writes where a step led.
async fn record_next<M: Machine>(
    engine: Engine<'_>,
    id: i64,
    next: Next<M>,
    held: &Lease,
) -> Result<ActionRecord, ActionError> {
    let holder = held.owner.as_str();
    let token = held.token;
    // The state as stored: a step may have persisted one of its own (rotate's create).
    let current = engine.store.action(id).await?;
    let ended = |status, reason: String| ActionUpdate {
        step: current.step.clone(),
        status,
        state: current.state.clone(),
        reason: Some(reason),
        next_at: None,
        detail: None,
        holder: holder.to_owned(),
        token,
    };
    let update = match next {
        Next::Step(state, detail) => ActionUpdate {
            step: state.step_name().to_owned(),
            status: ActionStatus::Running,
            state: to_value(&state).map_err(action_err)?,
            reason: None,
            next_at: None,
            detail,
            holder: holder.to_owned(),
            token,
        },
        Next::Wait(state, until, detail) => ActionUpdate {
            step: state.step_name().to_owned(),
            status: ActionStatus::Waiting,
            state: to_value(&state).map_err(action_err)?,
            reason: None,
            next_at: Some(until),
            detail: Some(detail),
            holder: holder.to_owned(),
            token,
        },
        Next::Done(detail) => ActionUpdate {
            step: "done".to_owned(),
            status: ActionStatus::Done,
            state: current.state.clone(),
            reason: None,
            next_at: None,
            detail: Some(detail),
            holder: holder.to_owned(),
            token,
        },
        Next::Skipped(reason) => ended(ActionStatus::Skipped, reason),
        Next::Refused(reason) => ended(ActionStatus::Refused, reason),
        Next::Failed(reason) => ended(ActionStatus::Failed, reason),
    };
    Ok(engine
        .store
        .update_action(id, &update, engine.now())
        .await?)
}

/// The child `index` of a playbook: the one already created (a crash may have come between
/// creating it and the parent moving on), or a new one.
pub(crate) async fn child(
    cx: &StepCx<'_>,
    kind: ActionKind,
    index: u32,
    seed: Seed<'_>,
) -> Result<ActionRecord, StepError> {
    let engine = cx.engine;
    let parent = cx.record;
    if let Some(existing) = engine
        .store
        .child_actions(parent.id)
        .await?
        .into_iter()
        .find(|it| it.parent.is_some_and(|of| of.index == index))
    {
        return Ok(existing);
    }
    let Some(target) = engine
        .store
        .find_credential(&parent.credential_external_id)
        .await?
        .into_iter()
        .find(|it| it.source == parent.source)
    else {
        return Err(ActionError::NotFound(format!(
            "{} is no longer in the ledger",
            parent.credential_external_id
        ))
        .into());
    };
    key_actions(
        engine.connectors,
        &target.source,
        kind,
        target.credential.kind,
    )?;
    let origin = format!("action:{}", parent.id);
    if is_containment(kind) {
        preempt(engine, &target, kind, &origin).await?;
    }
    let (step, state) = initial_state(kind, seed)?;
    Ok(engine
        .store
        .create_action(
            &NewAction {
                kind,
                source: target.source.clone(),
                credential_external_id: target.credential.external_id.clone(),
                identity_external_id: target.identity.external_id.clone(),
                origin,
                step,
                state,
                holder: cx.holder.to_owned(),
                status: ActionStatus::Running,
                parent: Some(ChildOf {
                    parent: parent.id,
                    index,
                }),
                exclusive: exclusive(kind),
            },
            engine.now(),
        )
        .await?)
}

/// Continues every unfinished top-level action that is due: the running ones (interrupted) and
/// the waiting ones whose time has come (a playbook drives its children). Returns them as they
/// ended up; an action another process drives is left to it.
pub async fn resume(engine: Engine<'_>) -> Result<Vec<ActionRecord>, ActionError> {
    let mut out = Vec::new();
    for record in engine.store.due_actions(engine.now(), 10_000).await? {
        let id = record.id;
        match drive_record(engine, record).await {
            Ok(record) => out.push(record),
            Err(ActionError::Busy(message)) => {
                tracing::info!(action = id, %message, "Left to the process that drives it.");
            }
            Err(
                err @ (ActionError::NotFound(_)
                | ActionError::Unsupported(_)
                | ActionError::Ambiguous(_)),
            ) => {
                tracing::error!(action = id, error = %err, "Cannot resume action.");
                out.push(engine.store.action(id).await?);
            }
            Err(err) => return Err(err),
        }
    }
    Ok(out)
}

/// This process, as it holds action leases (a random owner id, drawn once).
pub(crate) fn this_process() -> String {
    lease::process_owner().to_owned()
}

/// Takes the action's lease for this process: granted when nobody holds it, this process does,
/// or the holder's lease ran out.
pub(super) async fn claim(
    engine: Engine<'_>,
    record: &ActionRecord,
) -> Result<ActionRecord, ActionError> {
    match engine
        .store
        .claim_action(record.id, lease::process_owner(), engine.now())
        .await
    {
        Ok(record) => Ok(record),
        Err(StoreError::Conflict(message)) => Err(ActionError::Busy(message)),
        Err(err) => Err(err.into()),
    }
}

/// Records a step; a write refused because another process took the lease over is `Busy`.
async fn record_step(
    engine: Engine<'_>,
    id: i64,
    update: &ActionUpdate,
) -> Result<ActionRecord, ActionError> {
    match engine.store.update_action(id, update, engine.now()).await {
        Ok(record) => Ok(record),
        Err(StoreError::Conflict(message)) => Err(ActionError::Busy(message)),
        Err(err) => Err(err.into()),
    }
}
