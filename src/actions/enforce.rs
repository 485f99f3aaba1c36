//! Guarded enforcement: the step after a scan's evaluation that starts the actions of enforcing
//! policies, and says for every finding what it did and why.
//!
//! - Only findings of sources (AWS accounts are sources of their own) inventoried without error in
//!   this run are acted on, and none of an identity whose inventory failed; a source with an error
//!   keywarden cannot tie to an identity is left alone whole. Those findings are reported `stale`.
//! - Each action's first destructive step re-reads the live state and re-checks the policy's
//!   condition ([`super::guard`]): an action whose condition lapsed ends `skipped`.
//! - Blast radius: at most `max_actions_per_run` new actions per policy and
//!   `max_actions_per_source` per source; the rest are `deferred` to later runs. A policy that
//!   would act on more than its halt share of a source's credentials acts on none of them there,
//!   and a critical finding (`keywarden.enforcement-halted.<policy>`) says so until it no longer
//!   would.
//! - A failed action is retried after the policy's back-off (doubling), up to its attempts; a
//!   refused one is tried again each run (its first step re-checks the reason).
//! - Dry-run policies get a plan from the ledger: what would be done, or what would refuse it.

use std::collections::HashMap;

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;

mod view;

#[cfg(test)]
pub(in crate::actions) use self::view::CHUNK;

use self::view::{View, Wanted};
use super::plan::plan_from_held;
use super::revoke_trust::{self, Cause, HolderEnd, SignerDistrust};
use super::{ActionError, ActionKind, Engine, Request, connector_of, key_actions, target};
use crate::config::EnforcementConfig;
use crate::ledger::LedgerCredential;
use crate::policy::{Approval, Mode, Policy};
use crate::signers::Signer;
use crate::store::{
    ActionRecord, ActionStatus, Finding, RaisedFinding, StoreError, StoredScanError, TrustChange,
};
use crate::trust::{DistrustReason, Replacement};

/// What a scan read without error: where enforcement may act.
#[derive(Clone, Debug, Default)]
pub struct Scope {
    /// Sources (and partitions) inventoried without failing as a whole in this run.
    pub clean: Vec<String>,
    /// The run's scan errors.
    pub errors: Vec<StoredScanError>,
}

impl Scope {
    /// Why nothing of `identity` in `source` may be acted on this run, if so.
    pub fn stale(&self, source: &str, identity: &str) -> Option<String> {
        if !self.clean.iter().any(|it| it == source) {
            return Some(format!(
                "source `{source}` was not inventoried without error in this run; its ledger \
                 entries may be stale"
            ));
        }
        let errors = self.errors.iter().filter(|it| it.source == source);
        for error in errors {
            match &error.identity {
                None => {
                    return Some(format!(
                        "`{source}` had a scan error this run that cannot be tied to one identity \
                         ({}: {}); nothing of the source is acted on",
                        error.subject, error.message
                    ));
                }
                Some(it) if it == identity => {
                    return Some(format!(
                        "the inventory of {} failed this run ({}); its ledger entries may be stale",
                        error.subject, error.message
                    ));
                }
                Some(_) => {}
            }
        }
        None
    }
}

/// What enforcement decided for one finding's action.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// A new action was started (see its status: done, waiting, awaiting_approval, skipped, ...).
    Started,
    /// A failed or refused action was tried again.
    Retried,
    /// An action on the credential is open.
    InProgress,
    /// The policy's action on the credential ended earlier (done, cancelled, rejected).
    AlreadyActed,
    /// Over a cap; a later run acts on it.
    Deferred,
    /// The policy halted for this source: it would act on too much of it at once.
    Halted,
    /// Its source or identity was not inventoried without error in this run.
    Stale,
    /// A failed action waits for its back-off, or has used up its attempts.
    Failed,
    /// A dry-run policy: what would be done.
    WouldAct,
    /// A dry-run policy: what would refuse it.
    WouldRefuse,
    /// Nothing to act on (`revoke_trust` of a credential that is no signer and whose identity
    /// holds none).
    NothingToDo,
    /// The source cannot take this action.
    Unsupported,
}

/// One finding's action and what enforcement did with it.
#[derive(Clone, Debug, Serialize)]
pub struct Item {
    pub finding: i64,
    pub source: String,
    pub credential: String,
    pub policy: String,
    pub action: ActionKind,
    pub mode: Mode,
    pub decision: Decision,
    pub action_id: Option<i64>,
    pub action_status: Option<ActionStatus>,
    pub reason: Option<String>,
    /// For dry-run policies: the steps it would take.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<String>,
}

/// A policy halted for one source.
#[derive(Clone, Debug, Serialize)]
pub struct Halt {
    pub policy: String,
    pub source: String,
    /// How many credentials it would have acted on, of how many in the source.
    pub would_act: u64,
    pub credentials: u64,
    pub share: f64,
}

/// What one enforcement run did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    pub items: Vec<Item>,
    pub halts: Vec<Halt>,
    /// Distrust periods that waited for a credential's replacement and ended this run: the
    /// signer's key id and the credential (`source/external id`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub trust_ended: Vec<(String, String)>,
}

impl Report {
    /// The actions started or retried by this run.
    pub fn started(&self) -> impl Iterator<Item = &Item> {
        self.items
            .iter()
            .filter(|it| matches!(it.decision, Decision::Started | Decision::Retried))
    }
}

/// The policy id of the finding that says a policy halted for a source.
pub fn halt_finding_id(policy: &str) -> String {
    format!("keywarden.enforcement-halted.{policy}")
}

/// The first action of a policy that changes something.
fn action_of(policy: &Policy) -> Option<Result<ActionKind, String>> {
    use crate::policy::ActionKind as P;
    policy.actions.iter().find_map(|action| match action {
        P::Notify => None,
        P::Rotate => Some(Ok(ActionKind::Rotate)),
        P::Disable => Some(Ok(ActionKind::Disable)),
        P::Delete => Some(Ok(ActionKind::Delete)),
        P::Quarantine => Some(Ok(ActionKind::Quarantine)),
        P::RevokeTrust => Some(Ok(ActionKind::RevokeTrust)),
        P::Revoke => Some(Ok(ActionKind::Revoke)),
    })
}

/// What to do with an enforcing policy's finding, before the caps.
enum Candidate {
    /// Start the action (`revoke_trust`: distrusting these signers).
    Start(Vec<SignerDistrust>),
    /// Retry this action; count it as an attempt.
    Retry(i64, bool),
}

struct Pending<'a> {
    item: usize,
    policy: &'a Policy,
    candidate: Candidate,
}

/// Runs enforcement over the unresolved `findings` of a scan.
pub async fn run(
    engine: Engine<'_>,
    limits: &EnforcementConfig,
    scope: &Scope,
    findings: &[Finding],
) -> Result<Report, ActionError> {
    let now = engine.now();
    let mut report = Report {
        trust_ended: end_replaced_distrust(engine, scope).await?,
        ..Report::default()
    };
    let mut pending: Vec<Pending> = Vec::new();
    let acting: Vec<(&Finding, &Policy, Result<ActionKind, String>)> = findings
        .iter()
        .filter(|it| crate::report::is_active(it))
        .filter_map(|finding| {
            let policy = engine.policies.get(&finding.policy_id)?;
            Some((finding, policy, action_of(policy)?))
        })
        .collect();
    // The signers, read once, where a policy revokes trust.
    let signers = if acting
        .iter()
        .any(|(_, _, kind)| kind.as_ref().is_ok_and(|it| *it == ActionKind::RevokeTrust))
    {
        crate::signers::load::signers(engine.store, engine.holders).await?
    } else {
        Vec::new()
    };
    for chunk in acting.chunks(view::CHUNK) {
        let wanted: Vec<Wanted> = chunk
            .iter()
            .filter(|(finding, _, kind)| {
                kind.as_ref()
                    .is_ok_and(|kind| takes_no_actions(engine, finding, *kind).is_none())
            })
            .map(|(finding, policy, _)| Wanted {
                source: &finding.source,
                external_id: &finding.credential_external_id,
                holder: policy.mode == Mode::DryRun,
            })
            .collect();
        let view = View::fetch(engine.store, &wanted).await?;
        for (finding, policy, kind) in chunk {
            let mut item = Item {
                finding: finding.id,
                source: finding.source.clone(),
                credential: finding.credential_external_id.clone(),
                policy: policy.id.clone(),
                action: *kind.as_ref().unwrap_or(&ActionKind::RaiseFinding),
                mode: policy.mode,
                decision: Decision::Unsupported,
                action_id: None,
                action_status: None,
                reason: None,
                steps: Vec::new(),
            };
            let kind = match kind {
                Ok(kind) => *kind,
                Err(reason) => {
                    item.reason = Some(reason.clone());
                    report.items.push(item);
                    continue;
                }
            };
            let found = Found {
                view: &view,
                scope,
                signers: &signers,
                now,
            };
            if let Some(candidate) = decide(engine, found, policy, kind, finding, &mut item).await?
            {
                pending.push(Pending {
                    item: report.items.len(),
                    policy,
                    candidate,
                });
            }
            report.items.push(item);
        }
    }
    halt(engine, limits, scope, &mut report, &mut pending).await?;
    act(engine, limits, &mut report, pending).await?;
    Ok(report)
}

/// Why a finding's source cannot take `kind` at all (told apart before the ledger is read: a
/// scan of such a source may hold tens of thousands of findings with an action).
fn takes_no_actions(engine: Engine<'_>, finding: &Finding, kind: ActionKind) -> Option<String> {
    let connector = connector_of(engine.connectors, &finding.source)?;
    (connector.key_actions().is_none() && !super::machine::needs(kind).is_empty()).then(|| {
        format!(
            "source `{}` ({}) takes no actions; its credentials are reported only",
            finding.source,
            connector.kind()
        )
    })
}

/// What a finding is decided on: the ledger as read for its chunk, the run's scope and time.
#[derive(Clone, Copy)]
struct Found<'a> {
    view: &'a View,
    scope: &'a Scope,
    signers: &'a [Signer],
    now: DateTime<Utc>,
}

/// Sorts one finding into stale, unsupported, dry run, in progress, ... or a candidate to act on.
async fn decide(
    engine: Engine<'_>,
    found: Found<'_>,
    policy: &Policy,
    kind: ActionKind,
    finding: &Finding,
    item: &mut Item,
) -> Result<Option<Candidate>, ActionError> {
    let Found {
        view,
        scope,
        signers,
        now,
    } = found;
    let store = engine.store;
    if let Some(reason) = takes_no_actions(engine, finding, kind) {
        item.reason = Some(reason);
        return Ok(None);
    }
    let credential = match view.target(&finding.source, &finding.credential_external_id) {
        Ok(it) => it,
        Err(err) => {
            item.decision = Decision::Stale;
            item.reason = Some(err.to_string());
            return Ok(None);
        }
    };
    // What the action runs as (a Transit version's rotation is a `rotate_version`): earlier
    // actions of the policy are looked up by it.
    let kind = super::resolve_kind(kind, credential.credential.kind);
    if let Err(err) = key_actions(
        engine.connectors,
        &credential.source,
        kind,
        credential.credential.kind,
    ) {
        item.reason = Some(err.to_string());
        return Ok(None);
    }
    let distrust = if kind == ActionKind::RevokeTrust {
        let distrust = distrust_of(policy, finding, &credential, signers);
        if distrust.is_empty() {
            item.decision = Decision::NothingToDo;
            item.reason = Some(format!(
                "{} is no signer and {} holds none",
                credential.credential.external_id, credential.identity.name
            ));
            return Ok(None);
        }
        // Only what would change a signer's trust as it stands: a signer added to the holder
        // since, a period ended by a replacement that no longer holds (the key active again).
        let changing: Vec<SignerDistrust> = distrust
            .into_iter()
            .filter(|it| {
                signers
                    .iter()
                    .find(|signer| signer.key_id == it.key_id)
                    .is_none_or(|signer| signer.record.would_change(&it.period))
            })
            .collect();
        if changing.is_empty() {
            item.decision = Decision::AlreadyActed;
            item.reason = Some("every signer it would distrust already is".to_owned());
            return Ok(None);
        }
        changing
    } else {
        Vec::new()
    };
    if policy.mode == Mode::DryRun && kind == ActionKind::RevokeTrust {
        item.decision = Decision::WouldAct;
        item.steps = distrust.iter().map(revoke_trust::describe).collect();
        return Ok(None);
    }
    if policy.mode == Mode::DryRun {
        let held = view.held(&credential.source, &credential.identity.external_id);
        let switches_off = super::switches_off(
            engine.connectors,
            &credential.source,
            credential.credential.kind,
        );
        let plan = plan_from_held(kind, &credential, held, switches_off);
        item.decision = match plan.refusal {
            Some(_) => Decision::WouldRefuse,
            None => Decision::WouldAct,
        };
        item.reason = plan.refusal;
        item.steps = plan.steps;
        return Ok(None);
    }
    if let Some(reason) = scope.stale(&credential.source, &credential.identity.external_id) {
        item.decision = Decision::Stale;
        item.reason = Some(reason);
        return Ok(None);
    }
    // Distrust takes no slot of the credential: a rotation in flight does not hold it up.
    let open = if kind == ActionKind::RevokeTrust {
        None
    } else {
        store
            .open_action(&finding.source, &finding.credential_external_id)
            .await?
    };
    if let Some(open) = open {
        // A containment acting at once pre-empts a rotation or delete in flight (`start` cancels
        // it at a safe point); anything else waits for the open action.
        let contains_now = policy.enforce.approval != Approval::Required
            && super::engine::pre_empts(kind, open.kind);
        if !contains_now {
            set_action(item, Decision::InProgress, &open);
            return Ok(None);
        }
    }
    let origin = format!("policy:{}", policy.id);
    if kind == ActionKind::RevokeTrust {
        // Decided by the signers' trust as it stands, not by an earlier action; but one of the
        // policy's still open (awaiting approval) is not started twice.
        let open = store
            .credential_actions(&finding.source, &finding.credential_external_id)
            .await?
            .into_iter()
            .find(|it| it.kind == kind && it.origin == origin && it.status.is_open());
        if let Some(open) = open {
            set_action(item, Decision::InProgress, &open);
            return Ok(None);
        }
        return Ok(Some(Candidate::Start(distrust)));
    }
    let previous = store
        .credential_actions(&finding.source, &finding.credential_external_id)
        .await?
        .into_iter()
        .find(|it| it.kind == kind && it.origin == origin);
    let Some(previous) = previous else {
        return Ok(Some(Candidate::Start(distrust)));
    };
    Ok(match previous.status {
        ActionStatus::Skipped => Some(Candidate::Start(distrust)),
        // Into approval only what has changed nothing yet: an action that stopped part-way
        // (a key created or switched off) is left for a person, who retries or cancels it.
        ActionStatus::Failed | ActionStatus::Refused
            if policy.enforce.approval == Approval::Required
                && !super::engine::at_first_step(&previous) =>
        {
            set_action(item, Decision::Failed, &previous);
            item.reason = Some(format!(
                "stopped at `{}` and its policy now requires approval; left for a person \
                 (`keywarden actions retry {}` or `cancel`): {}",
                previous.step,
                previous.id,
                previous.reason.as_deref().unwrap_or_default()
            ));
            None
        }
        ActionStatus::Refused => Some(Candidate::Retry(previous.id, false)),
        ActionStatus::Failed => {
            let retry = policy.enforce.retry;
            let wait = backoff(retry.backoff, previous.attempts);
            let due = wait
                .and_then(|wait| previous.updated_at.checked_add_signed(wait))
                .is_some_and(|at| at <= now);
            if previous.attempts < retry.attempts && due {
                Some(Candidate::Retry(previous.id, true))
            } else {
                set_action(item, Decision::Failed, &previous);
                item.reason = Some(if previous.attempts >= retry.attempts {
                    format!(
                        "failed after {} retries; left for a person (`keywarden actions retry {}`): {}",
                        previous.attempts,
                        previous.id,
                        previous.reason.as_deref().unwrap_or_default()
                    )
                } else {
                    format!(
                        "failed; retried after the back-off: {}",
                        previous.reason.as_deref().unwrap_or_default()
                    )
                });
                None
            }
        }
        _ => {
            set_action(item, Decision::AlreadyActed, &previous);
            None
        }
    })
}

/// The signers a `revoke_trust` policy's finding distrusts: the credential's own (for good) and
/// those its identity holds (until the credential is replaced), from when the policy's condition
/// began to hold (`age_over: 365d`: creation + 365 days), or, where no condition is bound to a
/// time, from when keywarden first saw it hold.
fn distrust_of(
    policy: &Policy,
    finding: &Finding,
    credential: &LedgerCredential,
    signers: &[Signer],
) -> Vec<SignerDistrust> {
    let from = policy
        .when
        .began(credential)
        .unwrap_or(finding.opened_at)
        .min(finding.last_seen_at);
    let evidence = format!("policy `{}`: {}", policy.id, finding.reason);
    let by = format!("policy:{}", policy.id);
    let cause = Cause {
        from,
        reason: DistrustReason::Stale,
        evidence: &evidence,
        by: &by,
        holder_end: HolderEnd::UntilReplaced,
    };
    revoke_trust::distrust_for(signers, credential, cause)
}

/// Ends the distrust periods that lasted until a credential was replaced, at this run's time (the
/// first time keywarden can tell), where the credential's source and identity were inventoried
/// without error this run and the credential is replaced: gone, or no longer active while its
/// identity holds an active credential of the same kind made after it (a rotation). A key only
/// switched off is not replaced: switched on again, it would sign while stale.
async fn end_replaced_distrust(
    engine: Engine<'_>,
    scope: &Scope,
) -> Result<Vec<(String, String)>, ActionError> {
    let now = engine.now();
    let mut ended = Vec::new();
    for (key_id, record) in engine.store.distrust_periods().await? {
        let waiting: std::collections::BTreeSet<&Replacement> = record
            .periods
            .iter()
            .filter(|it| it.until.is_none())
            .filter_map(|it| it.until_replaced.as_ref())
            .collect();
        for credential in waiting {
            if !replaced(engine, scope, credential).await? {
                continue;
            }
            let change = TrustChange::Replaced {
                credential: credential.clone(),
                at: now,
            };
            if let Ok(crate::trust::Change::Changed) = engine
                .store
                .change_trust(&key_id, record.valid_from, &change, now)
                .await?
            {
                tracing::info!(signer = %key_id, %credential, "Distrust ended: the credential was replaced.");
                ended.push((key_id.clone(), credential.to_string()));
            }
        }
    }
    Ok(ended)
}

/// Whether a credential a distrust period waits for is replaced, as far as this run can tell.
async fn replaced(
    engine: Engine<'_>,
    scope: &Scope,
    wanted: &Replacement,
) -> Result<bool, ActionError> {
    use keywarden_connector::CredentialStatus;
    let Some(found) = engine
        .store
        .find_credential(&wanted.credential)
        .await?
        .into_iter()
        .find(|it| it.source == wanted.source)
    else {
        // Not in the ledger at all: nothing can be told of it.
        return Ok(false);
    };
    if scope
        .stale(&found.source, &found.identity.external_id)
        .is_some()
    {
        return Ok(false);
    }
    match found.credential.status {
        CredentialStatus::Gone => Ok(true),
        CredentialStatus::Active => Ok(false),
        CredentialStatus::Inactive | CredentialStatus::Revoked => {
            let held = engine
                .store
                .identity_credentials(&found.source, &found.identity.external_id)
                .await?;
            Ok(held.iter().any(|it| {
                it.external_id != found.credential.external_id
                    && it.kind == found.credential.kind
                    && it.status == CredentialStatus::Active
                    && it.created_at.unwrap_or(DateTime::<Utc>::MIN_UTC) > found.created_at()
            }))
        }
    }
}

/// `backoff × 2^attempts`, or `None` where that overflows.
fn backoff(first: TimeDelta, attempts: u32) -> Option<TimeDelta> {
    let factor = 2_i32.checked_pow(attempts.min(30))?;
    first.checked_mul(factor)
}

fn set_action(item: &mut Item, decision: Decision, action: &ActionRecord) {
    item.decision = decision;
    item.action_id = Some(action.id);
    item.action_status = Some(action.status);
    item.reason.clone_from(&action.reason);
}

/// Halts the policies that would act on too much of a source at once.
async fn halt(
    engine: Engine<'_>,
    limits: &EnforcementConfig,
    scope: &Scope,
    report: &mut Report,
    pending: &mut Vec<Pending<'_>>,
) -> Result<(), ActionError> {
    let now = engine.now();
    let mut groups: HashMap<(&str, &str), u64> = HashMap::new();
    for it in pending.iter() {
        *groups
            .entry((it.policy.id.as_str(), report.items[it.item].source.as_str()))
            .or_default() += 1;
    }
    let mut halted: Vec<(String, String)> = Vec::new();
    for ((policy_id, source), would_act) in groups {
        let Some(policy) = engine.policies.get(policy_id) else {
            continue;
        };
        let share = policy.enforce.halt_share.unwrap_or(limits.halt_share);
        let credentials = engine.store.present_credential_count(source).await?;
        #[allow(clippy::cast_precision_loss)]
        let over = would_act >= u64::from(limits.halt_min_actions)
            && would_act as f64 > share * credentials as f64;
        if !over {
            continue;
        }
        let reason = format!(
            "enforcing `{policy_id}` would act on {would_act} of the {credentials} credentials of \
             `{source}` in one run, more than its halt share ({:.0}%); it acts on none of them \
             there until a person looks (narrow the policy, raise `halt_share`, or act by hand)",
            share * 100.0
        );
        tracing::error!(
            policy = policy_id,
            source,
            would_act,
            credentials,
            "Enforcement halted."
        );
        engine
            .store
            .raise_finding(
                &RaisedFinding {
                    source: source.to_owned(),
                    credential_external_id: "*".to_owned(),
                    policy_id: halt_finding_id(policy_id),
                    severity: "critical".to_owned(),
                    reason: reason.clone(),
                },
                now,
            )
            .await?;
        report.halts.push(Halt {
            policy: policy_id.to_owned(),
            source: source.to_owned(),
            would_act,
            credentials,
            share,
        });
        halted.push((policy_id.to_owned(), source.to_owned()));
    }
    // A halt that no longer holds is resolved.
    for policy in engine
        .policies
        .policies
        .iter()
        .filter(|it| it.mode == Mode::Enforce)
    {
        for source in &scope.clean {
            if !halted.contains(&(policy.id.clone(), source.clone())) {
                engine
                    .store
                    .clear_raised_finding(source, "*", &halt_finding_id(&policy.id), now)
                    .await?;
            }
        }
    }
    pending.retain(|it| {
        let item = &mut report.items[it.item];
        let stop = halted.contains(&(it.policy.id.clone(), item.source.clone()));
        if stop {
            item.decision = Decision::Halted;
            item.reason = Some(format!(
                "`{}` halted for `{}`: see finding {}",
                it.policy.id,
                item.source,
                halt_finding_id(&it.policy.id)
            ));
        }
        !stop
    });
    Ok(())
}

/// Starts (or retries) the candidates within the caps; defers the rest.
async fn act(
    engine: Engine<'_>,
    limits: &EnforcementConfig,
    report: &mut Report,
    pending: Vec<Pending<'_>>,
) -> Result<(), ActionError> {
    let mut per_policy: HashMap<String, u32> = HashMap::new();
    let mut per_source: HashMap<String, u32> = HashMap::new();
    for it in pending {
        let item = &mut report.items[it.item];
        let policy_count = per_policy.entry(it.policy.id.clone()).or_default();
        let source_count = per_source.entry(item.source.clone()).or_default();
        if *policy_count >= it.policy.enforce.max_actions_per_run {
            item.decision = Decision::Deferred;
            item.reason = Some(format!(
                "over `{}`'s max_actions_per_run ({}); a later run acts on it",
                it.policy.id, it.policy.enforce.max_actions_per_run
            ));
            continue;
        }
        if *source_count >= limits.max_actions_per_source {
            item.decision = Decision::Deferred;
            item.reason = Some(format!(
                "over the max_actions_per_source of `{}` ({}); a later run acts on it",
                item.source, limits.max_actions_per_source
            ));
            continue;
        }
        *policy_count += 1;
        *source_count += 1;
        let outcome = match it.candidate {
            // A policy that now requires approval retries into approval, never straight on.
            Candidate::Retry(id, counted) if it.policy.enforce.approval == Approval::Required => {
                let by = format!("policy:{}", it.policy.id);
                super::engine::retry_awaiting_approval(engine, id, &by, counted)
                    .await
                    .map(|record| (Decision::Retried, record))
            }
            Candidate::Retry(id, counted) => {
                super::retry(engine, id, &format!("policy:{}", it.policy.id), counted)
                    .await
                    .map(|record| (Decision::Retried, record))
            }
            Candidate::Start(distrust) => {
                let credential = target(engine.store, &item.credential, Some(&item.source)).await?;
                let origin = format!("policy:{}", it.policy.id);
                tracing::info!(action = %item.action, credential = %item.credential, %origin, "Enforcing a policy.");
                super::start(
                    engine,
                    Request {
                        kind: item.action,
                        target: &credential,
                        origin,
                        approval_required: it.policy.enforce.approval == Approval::Required,
                        delete_hold: it.policy.enforce.delete_hold,
                        reason: None,
                        distrust,
                        generate: it.policy.enforce.generate.clone(),
                    },
                )
                .await
                .map(|record| (Decision::Started, record))
            }
        };
        match outcome {
            Ok((decision, record)) => set_action(item, decision, &record),
            Err(ActionError::Store(StoreError::Conflict(message)) | ActionError::Busy(message)) => {
                item.decision = Decision::InProgress;
                item.reason = Some(message);
            }
            Err(ActionError::Store(err)) => return Err(err.into()),
            Err(err) => {
                tracing::warn!(credential = %item.credential, error = %err, "Cannot enforce the policy on this credential.");
                item.decision = Decision::Unsupported;
                item.reason = Some(err.to_string());
            }
        }
    }
    Ok(())
}
