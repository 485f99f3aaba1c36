//! Actions on one credential — rotate, disable, delete, quarantine — as persisted state machines.
//!
//! Each action is a row in the store with its current step and a JSON state (key ids and times,
//! never a secret). Every step is written to the store *before* it is taken, and every step is
//! idempotent or checks what a crashed earlier attempt left behind, so after a crash or restart
//! [`resume`] continues each action where it stood:
//!
//! rotate: `check` → (`retire_inactive`) → `create` → `deliver` → `verify` → `overlap` (waits) →
//! `deactivate` → `grace` (waits) → `delete` → done.
//! - `create` first deletes any key the user holds that was not there when the step was entered
//!   (a key created by a crashed attempt, whose secret is lost), then creates the new key, records
//!   its id (step `deliver`) and delivers it at once: the secret is only ever in memory between
//!   creation and delivery.
//! - `deliver`, entered again after a crash, looks at the destination: if it holds the new key the
//!   delivery happened; if not, the unrecoverable new key is deleted and `create` runs again. So
//!   the consumer gets exactly one new key, once.
//! - `verify` reads the key back from the destination and proves it with the key itself.
//!
//! disable: `disable` → done. delete: `delete` → done. quarantine: `deactivate` → `deny_sessions`
//! → done (a deny on sessions issued before the quarantine began, with keywarden's own identity).
//!
//! Architecture invariant: this module decides the order of steps and persists them; the
//! connector's [`KeyActions`] take single steps; the store is the only place state lives.

pub mod lease;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use keywarden_connector::{
    Connector, ConnectorError, CredentialKind, CredentialStatus, KeyActions, LastUse, named_enum,
};
use serde::{Deserialize, Serialize};

use crate::ledger::LedgerCredential;
use crate::store::{ActionRecord, ActionStatus, ActionUpdate, NewAction, Store, StoreError};

named_enum! {
    /// What an action does to its credential.
    ActionKind, "action" {
        Rotate = "rotate",
        Disable = "disable",
        Delete = "delete",
        Quarantine = "quarantine",
    }
}

/// Why an action could not be started or continued.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    /// The credential is not in the ledger (or not in any configured source).
    #[error("not found: {0}")]
    NotFound(String),
    /// The credential is of a kind, or in a source, that cannot take this action.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// More than one credential has this id; name the source.
    #[error("ambiguous: {0}")]
    Ambiguous(String),
    /// Another keywarden process is driving the action.
    #[error("busy: {0}")]
    Busy(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a dry run would do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub kind: ActionKind,
    pub source: String,
    pub credential: String,
    pub identity: String,
    /// The steps, in words.
    pub steps: Vec<String>,
    /// Why the action would be refused, if it would be.
    pub refusal: Option<String>,
}

/// The state of a rotation, persisted with the action.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct RotateState {
    /// The key ids the user held when `create` was entered: any other key found then is an
    /// orphan of a crashed attempt.
    #[serde(default)]
    existing: Vec<String>,
    /// The user's other, inactive key, deleted first to make room.
    #[serde(default)]
    retire: Option<String>,
    #[serde(default)]
    new_key: Option<String>,
    /// Identifies this delivery, so a repeated one is the same delivery.
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    delivered_at: Option<DateTime<Utc>>,
    #[serde(default)]
    deactivated_at: Option<DateTime<Utc>>,
    /// When `create` was entered: a key newer than this that is not in `existing` was created
    /// by an interrupted attempt.
    #[serde(default)]
    create_entered_at: Option<DateTime<Utc>>,
    /// Quarantine: sessions issued before this are denied.
    #[serde(default)]
    deny_before: Option<DateTime<Utc>>,
}

/// How far apart keywarden's clock and AWS's may be when telling an orphan by its creation time.
const ORPHAN_SKEW: chrono::TimeDelta = chrono::TimeDelta::minutes(2);

/// A clock, so tests can move time past overlap and grace periods.
pub type Clock<'a> = &'a (dyn Fn() -> DateTime<Utc> + Send + Sync);

/// Crash points for the crash-and-resume tests: with the `crash-points` feature and
/// `KEYWARDEN_CRASH_AFTER=<point>`, the process aborts right after that side effect, before the
/// store learns of it — the worst moment for a crash.
fn crash_point(point: &str) {
    #[cfg(feature = "crash-points")]
    if std::env::var("KEYWARDEN_CRASH_AFTER").is_ok_and(|it| it == point) {
        eprintln!("crash point {point}: aborting");
        std::process::abort();
    }
    #[cfg(not(feature = "crash-points"))]
    let _ = point;
}

/// Finds the connector of a ledger source (`aws` or a partition `aws/123456789012`).
pub fn connector_of<'a>(
    connectors: &'a [Arc<dyn Connector>],
    source: &str,
) -> Option<&'a Arc<dyn Connector>> {
    connectors.iter().find(|it| {
        source == it.source()
            || source
                .strip_prefix(it.source())
                .is_some_and(|rest| rest.starts_with('/'))
    })
}

/// Looks up the one present credential with this external id (in `source`, if given).
pub async fn target(
    store: &dyn Store,
    external_id: &str,
    source: Option<&str>,
) -> Result<LedgerCredential, ActionError> {
    let (present, gone): (Vec<LedgerCredential>, Vec<LedgerCredential>) = store
        .find_credential(external_id)
        .await?
        .into_iter()
        .filter(|it| source.is_none_or(|source| it.source == source))
        .partition(|it| it.credential.status != CredentialStatus::Gone);
    if present.len() > 1 {
        let sources: Vec<&str> = present.iter().map(|it| it.source.as_str()).collect();
        return Err(ActionError::Ambiguous(format!(
            "{external_id} is in several sources ({}); name one with --source",
            sources.join(", ")
        )));
    }
    let Some(credential) = present.into_iter().next() else {
        return Err(ActionError::NotFound(match gone.first() {
            Some(it) => format!(
                "{external_id} is gone from {} (the last scan no longer found it)",
                it.source
            ),
            None => {
                format!("no credential {external_id} in the ledger; run `keywarden scan` first")
            }
        }));
    };
    if credential.credential.kind != CredentialKind::AccessKey {
        return Err(ActionError::Unsupported(format!(
            "{external_id} is a {}; actions act on access keys",
            credential.credential.kind
        )));
    }
    Ok(credential)
}

/// The key actions of a credential's source.
pub fn key_actions(
    connectors: &[Arc<dyn Connector>],
    source: &str,
) -> Result<Arc<dyn KeyActions>, ActionError> {
    let connector = connector_of(connectors, source).ok_or_else(|| {
        ActionError::NotFound(format!("source `{source}` is not in the configuration"))
    })?;
    connector.key_actions().ok_or_else(|| {
        ActionError::Unsupported(format!(
            "source `{source}` ({}) takes no key actions",
            connector.kind()
        ))
    })
}

/// Why rotating `key` of this holder would be unsafe, if it would.
fn rotation_refusal(key: &str, holder: &keywarden_connector::KeyHolder) -> Option<String> {
    let Some(old) = holder.keys.iter().find(|it| it.id == key) else {
        return Some(format!("{} no longer holds key {key}", holder.name));
    };
    if !old.active {
        return Some(format!(
            "key {key} of {} is inactive: nothing uses it, so there is nothing to rotate; delete it instead",
            holder.name
        ));
    }
    let others: Vec<&keywarden_connector::HeldKey> =
        holder.keys.iter().filter(|it| it.id != key).collect();
    if let Some(other) = others.iter().find(|it| it.active) {
        return Some(format!(
            "both access keys of {} are active ({key} and {}): AWS allows two keys per user, so a new \
             key would need one of them gone, and keywarden cannot tell which one the consumers \
             still use. Deactivate the one not in use (or rotate it away), then rotate again",
            holder.name, other.id
        ));
    }
    None
}

/// Describes what an action would do, touching nothing but reads.
pub async fn plan(
    actions: &dyn KeyActions,
    kind: ActionKind,
    target: &LedgerCredential,
) -> Result<Plan, ConnectorError> {
    let key = &target.credential.external_id;
    let identity = &target.identity.external_id;
    let holder = actions.keys(identity).await?;
    let mut refusal = None;
    let steps = match kind {
        ActionKind::Rotate => {
            refusal = rotation_refusal(key, &holder);
            let destination = match actions.destination(identity) {
                Ok(it) => it,
                Err(err) => {
                    refusal.get_or_insert_with(|| err.to_string());
                    "(no destination)".to_owned()
                }
            };
            let timing = actions.rotation_timing();
            let mut steps = Vec::new();
            if let Some(other) = holder.keys.iter().find(|it| it.id != *key && !it.active) {
                steps.push(format!("delete the inactive key {} to make room", other.id));
            }
            steps.extend([
                format!("create a new access key for {}", holder.name),
                format!("deliver it to {destination}"),
                "prove it works (sts:GetCallerIdentity with the new key)".to_owned(),
                format!(
                    "keep {key} active for {} (less if its last use predates the delivery)",
                    humantime::format_duration(timing.overlap)
                ),
                format!("deactivate {key}"),
                format!(
                    "delete {key} after {}",
                    humantime::format_duration(timing.grace)
                ),
            ]);
            steps
        }
        ActionKind::Disable => vec![format!("deactivate {key}")],
        ActionKind::Delete => vec![format!("delete {key}")],
        ActionKind::Quarantine => vec![
            format!("deactivate {key}"),
            format!(
                "attach a policy to {} denying every session issued before now",
                holder.name
            ),
        ],
    };
    if kind != ActionKind::Rotate && !holder.keys.iter().any(|it| it.id == *key) {
        refusal = Some(format!("{} no longer holds key {key}", holder.name));
    }
    Ok(Plan {
        kind,
        source: target.source.clone(),
        credential: key.clone(),
        identity: identity.clone(),
        steps,
        refusal,
    })
}

/// Starts an action and drives it as far as it goes now (done, waiting, refused or failed).
pub async fn start(
    store: &dyn Store,
    actions: &dyn KeyActions,
    kind: ActionKind,
    target: &LedgerCredential,
    origin: &str,
    clock: Clock<'_>,
) -> Result<ActionRecord, ActionError> {
    let first = match kind {
        ActionKind::Rotate => "check",
        ActionKind::Disable => "disable",
        ActionKind::Delete => "delete",
        ActionKind::Quarantine => "deactivate",
    };
    let state = RotateState::default();
    let record = store
        .create_action(
            &NewAction {
                kind: kind.as_str().to_owned(),
                source: target.source.clone(),
                credential_external_id: target.credential.external_id.clone(),
                identity_external_id: target.identity.external_id.clone(),
                origin: origin.to_owned(),
                step: first.to_owned(),
                state: to_value(&state)?,
                holder: lease::process_owner().to_owned(),
            },
            clock(),
        )
        .await?;
    drive(store, actions, record, clock).await
}

/// Starts the actions of enforcing policies on the unresolved findings of a scan: for each
/// finding whose policy is in `enforce` mode, the policy's first key action (rotate, disable,
/// delete, quarantine). A credential that already has an action of that kind (in any state: a
/// refused or failed one waits for a person) gets no second one. Returns the actions started;
/// a finding whose credential cannot take the action is skipped (and logged).
pub async fn enforce(
    store: &dyn Store,
    connectors: &[Arc<dyn Connector>],
    policies: &crate::policy::PolicySet,
    findings: &[crate::store::Finding],
    clock: Clock<'_>,
) -> Result<Vec<ActionRecord>, StoreError> {
    use crate::policy::{ActionKind as PolicyAction, Mode};
    let mut started = Vec::new();
    for finding in findings.iter().filter(|it| crate::report::is_active(it)) {
        let Some(policy) = policies.get(&finding.policy_id) else {
            continue;
        };
        if policy.mode != Mode::Enforce {
            continue;
        }
        let kind = policy.actions.iter().find_map(|action| match action {
            PolicyAction::Rotate => Some(ActionKind::Rotate),
            PolicyAction::Disable => Some(ActionKind::Disable),
            PolicyAction::Delete => Some(ActionKind::Delete),
            PolicyAction::Quarantine => Some(ActionKind::Quarantine),
            PolicyAction::Notify | PolicyAction::RevokeTrust => None,
        });
        let Some(kind) = kind else {
            continue;
        };
        let existing = store
            .credential_actions(&finding.source, &finding.credential_external_id)
            .await?;
        if existing.iter().any(|it| it.kind == kind.as_str()) {
            continue;
        }
        let origin = format!("policy:{}", policy.id);
        let attempt = async {
            let target = target(
                store,
                &finding.credential_external_id,
                Some(&finding.source),
            )
            .await?;
            let key_actions = key_actions(connectors, &target.source)?;
            tracing::info!(action = %kind, credential = %finding.credential_external_id, %origin, "Enforcing a policy.");
            start(store, key_actions.as_ref(), kind, &target, &origin, clock).await
        };
        match attempt.await {
            Ok(record) => started.push(record),
            // Another action on this credential is open (another policy's, or by hand).
            Err(ActionError::Store(StoreError::Conflict(message))) => {
                tracing::info!(credential = %finding.credential_external_id, %origin, %message, "Not started: the credential has an open action.");
            }
            Err(ActionError::Store(err)) => return Err(err),
            Err(err) => {
                tracing::warn!(credential = %finding.credential_external_id, %origin, error = %err, "Cannot enforce the policy on this credential.");
            }
        }
    }
    Ok(started)
}

/// Continues every unfinished action that is due: the running ones (interrupted) and the waiting
/// ones whose time has come. Returns them as they ended up.
pub async fn resume(
    store: &dyn Store,
    connectors: &[Arc<dyn Connector>],
    clock: Clock<'_>,
) -> Result<Vec<ActionRecord>, ActionError> {
    let mut out = Vec::new();
    let mut open = store.actions(true).await?;
    open.reverse(); // oldest first
    for record in open {
        let due =
            record.status == ActionStatus::Running || record.next_at.is_none_or(|at| at <= clock());
        if !due {
            out.push(record);
            continue;
        }
        let actions = match key_actions(connectors, &record.source) {
            Ok(it) => it,
            Err(err) => {
                tracing::error!(action = record.id, error = %err, "Cannot resume action.");
                out.push(record);
                continue;
            }
        };
        match drive(store, actions.as_ref(), record.clone(), clock).await {
            Ok(record) => out.push(record),
            Err(ActionError::Busy(message)) => {
                tracing::info!(action = record.id, %message, "Left to the process that drives it.");
                out.push(record);
            }
            Err(err) => return Err(err),
        }
    }
    Ok(out)
}

/// Takes the action's lease for this process (`Busy` if another process holds it).
async fn claim(
    store: &dyn Store,
    record: &ActionRecord,
    clock: Clock<'_>,
) -> Result<ActionRecord, ActionError> {
    match store
        .claim_action(record.id, lease::process_owner(), clock())
        .await
    {
        Ok(record) => Ok(record),
        Err(StoreError::Conflict(message)) => Err(ActionError::Busy(message)),
        Err(err) => Err(err.into()),
    }
}

/// Records a step under the lease; a refused write (the lease was taken over: fencing) is
/// `Busy`, as the action is now another process's.
async fn record_step(
    store: &dyn Store,
    id: i64,
    update: &ActionUpdate,
    at: DateTime<Utc>,
) -> Result<ActionRecord, ActionError> {
    match store.update_action(id, update, at).await {
        Ok(record) => Ok(record),
        Err(StoreError::Conflict(message)) => Err(ActionError::Busy(message)),
        Err(err) => Err(err.into()),
    }
}

fn to_value(state: &RotateState) -> Result<serde_json::Value, ActionError> {
    // Serializing a struct of strings and times cannot fail; kept as an error all the same.
    serde_json::to_value(state).map_err(|err| StoreError::Corrupt(err.to_string()).into())
}

/// Takes the action's steps until it is done, waiting, refused or failed; first takes its lease
/// (`Busy` if another live process holds it). A passing failure (throttling, a network error)
/// leaves the action running where it stood, with the reason, for `actions resume`.
pub async fn drive(
    store: &dyn Store,
    actions: &dyn KeyActions,
    record: ActionRecord,
    clock: Clock<'_>,
) -> Result<ActionRecord, ActionError> {
    let record = claim(store, &record, clock).await?;
    let Some(held) = lease::Lease::held_by(&record, lease::process_owner()) else {
        return Ok(record); // Finished: there is nothing to drive.
    };
    let mut result = drive_held(store, actions, record, &held, clock).await;
    if let Ok(record) = &mut result
        && record.status.is_open()
    {
        match store
            .release_lease(held.action, &held.owner, held.token)
            .await
        {
            Ok(()) => (record.lease_owner, record.lease_until) = (None, None),
            Err(err) => {
                tracing::warn!(action = held.action, error = %err, "Cannot release the lease; it runs out by itself.");
            }
        }
    }
    result
}

/// [`drive`] once the lease is held: a heartbeat renews it while each step runs, and each step is
/// recorded under its fencing token.
async fn drive_held(
    store: &dyn Store,
    actions: &dyn KeyActions,
    mut record: ActionRecord,
    held: &lease::Lease,
    clock: Clock<'_>,
) -> Result<ActionRecord, ActionError> {
    let holder = held.owner.clone();
    let every = lease::heartbeat_every(store.action_lease());
    loop {
        if !record.status.is_open() {
            return Ok(record);
        }
        if record.status == ActionStatus::Waiting && record.next_at.is_some_and(|at| at > clock()) {
            return Ok(record);
        }
        let state: RotateState = serde_json::from_value(record.state.clone())
            .map_err(|err| StoreError::Corrupt(format!("action {}: {err}", record.id)))?;
        let taken = lease::while_held(
            store,
            held,
            every,
            clock,
            step(store, actions, &record, state, clock),
        )
        .await
        .map_err(|lost| ActionError::Busy(lost.to_string()))?;
        let next = match taken {
            Ok(next) => next,
            Err(StepError::Connector(err)) if err.is_retryable() => {
                // The store has the step to resume from (create may have moved on to deliver).
                let current = store.action(record.id).await?;
                tracing::warn!(action = record.id, step = %current.step, error = %err, "Step failed for now; resume later.");
                let update = ActionUpdate {
                    step: current.step.clone(),
                    status: ActionStatus::Running,
                    state: current.state.clone(),
                    reason: Some(format!("will retry: {err}")),
                    next_at: None,
                    detail: None,
                    holder: holder.clone(),
                    token: held.token,
                };
                return record_step(store, record.id, &update, clock()).await;
            }
            Err(StepError::Connector(err)) => {
                record = store.action(record.id).await?;
                Next::Failed(format!("{}: {err}", record.step))
            }
            Err(StepError::Action(err)) => return Err(err),
        };
        let (step, status, state, reason, next_at, detail) = match next {
            Next::Step(step, state, detail) => (
                step.to_owned(),
                ActionStatus::Running,
                to_value(&state)?,
                None,
                None,
                detail,
            ),
            Next::Wait(step, state, until, detail) => (
                step.to_owned(),
                ActionStatus::Waiting,
                to_value(&state)?,
                None,
                Some(until),
                Some(detail),
            ),
            Next::Done(state, detail) => (
                "done".to_owned(),
                ActionStatus::Done,
                to_value(&state)?,
                None,
                None,
                Some(detail),
            ),
            Next::Refused(reason) => (
                record.step.clone(),
                ActionStatus::Refused,
                record.state.clone(),
                Some(reason),
                None,
                None,
            ),
            Next::Failed(reason) => (
                record.step.clone(),
                ActionStatus::Failed,
                record.state.clone(),
                Some(reason),
                None,
                None,
            ),
        };
        let update = ActionUpdate {
            step,
            status,
            state,
            reason,
            next_at,
            detail,
            holder: holder.clone(),
            token: held.token,
        };
        record = record_step(store, record.id, &update, clock()).await?;
    }
}

/// Where one step leads.
enum Next {
    /// On to this step (written before it is taken), with a line for the log.
    Step(&'static str, RotateState, Option<String>),
    /// Wait in this step until the time.
    Wait(&'static str, RotateState, DateTime<Utc>, String),
    Done(RotateState, String),
    Refused(String),
    Failed(String),
}

/// A time as the step log shows it (RFC 3339, to the second).
fn when(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn span(duration: std::time::Duration) -> chrono::Duration {
    chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX)
}

/// Why a step could not be taken.
#[derive(Debug, thiserror::Error)]
enum StepError {
    #[error(transparent)]
    Connector(#[from] ConnectorError),
    #[error(transparent)]
    Action(#[from] ActionError),
}

impl From<StoreError> for StepError {
    fn from(err: StoreError) -> Self {
        Self::Action(err.into())
    }
}

/// Takes the action's current step. Only `create` writes to the store itself (the new key's id,
/// between creating and delivering it); every other transition is written by [`drive`].
async fn step(
    store: &dyn Store,
    actions: &dyn KeyActions,
    record: &ActionRecord,
    mut state: RotateState,
    clock: Clock<'_>,
) -> Result<Next, StepError> {
    let key = record.credential_external_id.as_str();
    let identity = record.identity_external_id.as_str();
    Ok(match (record.kind.as_str(), record.step.as_str()) {
        ("rotate", "check") => {
            let holder = actions.keys(identity).await?;
            if let Some(reason) = rotation_refusal(key, &holder) {
                return Ok(Next::Refused(reason));
            }
            if let Err(err) = actions.destination(identity) {
                return Ok(Next::Refused(err.to_string()));
            }
            match holder.keys.iter().find(|it| it.id != key) {
                Some(other) => {
                    state.retire = Some(other.id.clone());
                    Next::Step(
                        "retire_inactive",
                        state,
                        Some(format!("{} holds inactive key {}", holder.name, other.id)),
                    )
                }
                None => enter_create(actions, identity, state, clock).await?,
            }
        }
        ("rotate", "retire_inactive") => {
            if let Some(other) = &state.retire {
                // Look again: someone may have switched it back on since `check`.
                let holder = actions.keys(identity).await?;
                if holder.keys.iter().any(|it| it.id == *other && it.active) {
                    return Ok(Next::Refused(format!(
                        "{other} of {} was switched back on; both keys are active now",
                        holder.name
                    )));
                }
                actions.delete_key(identity, other).await?;
                crash_point("retire_inactive");
            }
            enter_create(actions, identity, state, clock).await?
        }
        ("rotate", "create") => {
            // A key that was not there when this step was entered, created since, is an orphan
            // of an interrupted attempt: its secret is lost, so it goes.
            let entered = state.create_entered_at.unwrap_or_else(clock) - ORPHAN_SKEW;
            let holder = actions.keys(identity).await?;
            for orphan in holder.keys.iter().filter(|it| {
                !state.existing.contains(&it.id) && it.created_at.is_none_or(|at| at >= entered)
            }) {
                tracing::warn!(action = record.id, key = %orphan.id, "Deleting a key left by an interrupted rotation.");
                actions.delete_key(identity, &orphan.id).await?;
            }
            let new = actions.create_key(identity).await?;
            crash_point("create");
            let token = format!("keywarden-action-{}-{}", record.id, new.id);
            state.new_key = Some(new.id.clone());
            state.token = Some(token.clone());
            // The new key's id is recorded before delivery; the secret never is.
            let entered = ActionUpdate {
                step: "deliver".to_owned(),
                status: ActionStatus::Running,
                state: to_value(&state)?,
                reason: None,
                next_at: None,
                detail: Some(format!("created {}", new.id)),
                holder: lease::process_owner().to_owned(),
                token: record.lease_token,
            };
            record_step(store, record.id, &entered, clock()).await?;
            crash_point("deliver_recorded");
            let delivery = actions.deliver(identity, &new, &token).await;
            drop(new);
            if let Err(err) = delivery {
                return undelivered(actions, record, identity, &state, err).await;
            }
            crash_point("deliver");
            state.delivered_at = Some(clock());
            Next::Step(
                "verify",
                state,
                Some(format!("delivered to {}", actions.destination(identity)?)),
            )
        }
        ("rotate", "deliver") => {
            // Entered again after an interruption: the secret is gone from memory, so either the
            // destination has the new key or the key is useless.
            let new_key = state.new_key.clone().unwrap_or_default();
            if actions.delivered_id(identity).await?.as_deref() == Some(new_key.as_str()) {
                state.delivered_at.get_or_insert_with(clock);
                Next::Step(
                    "verify",
                    state,
                    Some(format!("{new_key} found at the destination")),
                )
            } else {
                actions.delete_key(identity, &new_key).await?;
                state.new_key = None;
                state.token = None;
                let mut next = enter_create(actions, identity, state, clock).await?;
                if let Next::Step(_, _, detail) = &mut next {
                    *detail = Some(format!(
                        "{new_key} was never delivered; deleted it to create another"
                    ));
                }
                next
            }
        }
        ("rotate", "verify") => {
            let new_key = state.new_key.clone().unwrap_or_default();
            let Some(delivered) = actions.delivered(identity).await? else {
                return Ok(Next::Failed(format!(
                    "the destination no longer holds a key (expected {new_key})"
                )));
            };
            if delivered.id != new_key {
                return Ok(Next::Failed(format!(
                    "the destination holds {} instead of {new_key}: something else changed it",
                    delivered.id
                )));
            }
            actions.verify(identity, &delivered).await?;
            crash_point("verify");
            let delivered_at = state.delivered_at.unwrap_or_else(clock);
            let timing = actions.rotation_timing();
            let until = delivered_at + span(timing.overlap);
            // Look again once last-use data has settled: the old key may go before `until`.
            let check = until.min(delivered_at + span(timing.last_use_settle));
            Next::Wait(
                "overlap",
                state,
                check,
                format!(
                    "{new_key} works; both keys stay active until {} at the latest",
                    when(until)
                ),
            )
        }
        ("rotate", "overlap") => {
            let delivered_at = state.delivered_at.unwrap_or_else(clock);
            let timing = actions.rotation_timing();
            let now = clock();
            let until = delivered_at + span(timing.overlap);
            let settled = delivered_at + span(timing.last_use_settle);
            if now >= until {
                Next::Step("deactivate", state, Some("overlap period over".to_owned()))
            } else if now >= settled {
                match actions.last_used(identity, key).await? {
                    LastUse::Never => {
                        Next::Step("deactivate", state, Some(format!("{key} was never used")))
                    }
                    LastUse::At { at, .. } if at < delivered_at => Next::Step(
                        "deactivate",
                        state,
                        Some(format!("{key} last used {}, before the delivery", when(at))),
                    ),
                    used => Next::Wait(
                        "overlap",
                        state,
                        until.min(now + chrono::Duration::hours(1)),
                        match used.at() {
                            Some(at) => format!("{key} last used {}, after the delivery", when(at)),
                            None => {
                                format!("{key}: last use unknown; waiting for the overlap period")
                            }
                        },
                    ),
                }
            } else {
                Next::Wait(
                    "overlap",
                    state,
                    until.min(settled),
                    "waiting for the overlap period".to_owned(),
                )
            }
        }
        ("rotate", "deactivate") => {
            actions.set_active(identity, key, false).await?;
            crash_point("deactivate");
            let now = clock();
            state.deactivated_at.get_or_insert(now);
            let until = now + span(actions.rotation_timing().grace);
            Next::Wait(
                "grace",
                state,
                until,
                format!("{key} deactivated; deleted after {}", when(until)),
            )
        }
        ("rotate", "grace") => Next::Step("delete", state, None),
        ("rotate", "delete") => {
            // Someone may have switched the old key back on to roll back: leave it then.
            let holder = actions.keys(identity).await?;
            if holder.keys.iter().any(|it| it.id == key && it.active) {
                return Ok(Next::Failed(format!(
                    "{key} was switched back on during the grace period; left alone"
                )));
            }
            actions.delete_key(identity, key).await?;
            crash_point("delete");
            Next::Done(state, format!("{key} deleted"))
        }
        ("delete", "delete") => {
            actions.delete_key(identity, key).await?;
            Next::Done(state, format!("{key} deleted"))
        }
        ("disable", "disable") => {
            actions.set_active(identity, key, false).await?;
            Next::Done(state, format!("{key} deactivated"))
        }
        ("quarantine", "deactivate") => {
            actions.set_active(identity, key, false).await?;
            crash_point("quarantine_deactivate");
            Next::Step("deny_sessions", state, Some(format!("{key} deactivated")))
        }
        ("quarantine", "deny_sessions") => {
            // The cut-off is now, after the key was deactivated: no session minted with it
            // before this moment survives.
            let before = clock();
            state.deny_before = Some(before);
            let policy = actions.deny_sessions_before(identity, before).await?;
            Next::Done(
                state,
                format!(
                    "attached {policy}: sessions issued before {} are denied",
                    when(before)
                ),
            )
        }
        (kind, step) => Next::Failed(format!("unknown step `{step}` of a {kind} action")),
    })
}

/// Enters `create`, recording the keys the user holds now and when.
async fn enter_create(
    actions: &dyn KeyActions,
    identity: &str,
    mut state: RotateState,
    clock: Clock<'_>,
) -> Result<Next, StepError> {
    let holder = actions.keys(identity).await?;
    state.existing = holder.keys.iter().map(|it| it.id.clone()).collect();
    state.create_entered_at = Some(clock());
    Ok(Next::Step("create", state, None))
}

/// A delivery failed. A permanent failure (refused, invalid destination) wrote nothing: the new
/// key is useless and is deleted. A passing one (a timeout) may have written: if the destination
/// holds the new key the delivery happened; if it holds another, the key is deleted; if it cannot
/// be read, the action stays at `deliver` for `actions resume` to look again.
async fn undelivered(
    actions: &dyn KeyActions,
    record: &ActionRecord,
    identity: &str,
    state: &RotateState,
    err: ConnectorError,
) -> Result<Next, StepError> {
    let new_key = state.new_key.as_deref().unwrap_or_default();
    if err.is_retryable() {
        match actions.delivered_id(identity).await {
            Ok(Some(id)) if id == new_key => {
                let mut state = state.clone();
                state.delivered_at = Some(Utc::now());
                return Ok(Next::Step(
                    "verify",
                    state,
                    Some(format!(
                        "delivered to {} (despite: {err})",
                        actions.destination(identity)?
                    )),
                ));
            }
            Ok(_) => {}
            Err(check) => {
                tracing::error!(action = record.id, error = %check, "Cannot tell whether the key was delivered; `actions resume` will look again.");
                return Err(err.into());
            }
        }
    }
    tracing::warn!(action = record.id, key = %new_key, error = %err, "Delivery failed; deleting the undelivered key.");
    actions.delete_key(identity, new_key).await?;
    Err(err.into())
}
