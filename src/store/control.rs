//! The store's side of controlling actions: guarded status transitions (approve, reject, cancel,
//! retry), playbook children, due actions, and findings keywarden raises itself.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{ActionRecord, ActionStatus, Finding, Result};

/// A change of an action's status made from outside its machine: by a person (approve, reject,
/// cancel, retry) or by the engine ending it at a safe point.
#[derive(Clone, Debug, PartialEq)]
pub struct Transition {
    /// The statuses it may move from; anything else is a `Conflict`.
    pub from: &'static [ActionStatus],
    pub to: ActionStatus,
    /// Why (the step log and the audit event carry it).
    pub reason: Option<String>,
    /// Who asked for it.
    pub by: Option<String>,
    /// The event name, e.g. `approved`, `rejected`, `cancelled`, `retried`.
    pub event: &'static str,
    /// Count this as a retry (`attempts` + 1).
    pub retry: bool,
    /// When a retried action is next due (`None`: now).
    pub next_at: Option<DateTime<Utc>>,
    /// Replace the machine state (a cancelled machine's last state).
    pub state: Option<serde_json::Value>,
    /// The process taking it: it must hold the lease, if someone does and it has not run out.
    pub holder: String,
}

/// A finding keywarden raises itself (an enforcement halt, a containment): no scan resolves it;
/// [`ActionControl::clear_raised_finding`] does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RaisedFinding {
    pub source: String,
    /// The credential, or `*` for the whole source.
    pub credential_external_id: String,
    /// `keywarden.<what>`: the name the finding is listed under.
    pub policy_id: String,
    pub severity: String,
    pub reason: String,
}

/// Action control and keywarden's own findings.
#[async_trait]
pub trait ActionControl: Send + Sync {
    /// Moves an action's status as the transition says, in one transaction with its step log and
    /// audit event. Releases the lease when the new status is not `running`.
    async fn transition_action(
        &self,
        id: i64,
        transition: &Transition,
        at: DateTime<Utc>,
    ) -> Result<ActionRecord>;

    /// The children of a playbook, in playbook order.
    async fn child_actions(&self, parent: i64) -> Result<Vec<ActionRecord>>;

    /// The open exclusive action on a credential, if there is one.
    async fn open_action(
        &self,
        source: &str,
        credential_external_id: &str,
    ) -> Result<Option<ActionRecord>>;

    /// Up to `limit` open actions with no parent that are due at `at` (running ones, and waiting
    /// ones whose `next_at` has come), oldest first. Indexed: finding them does not read the
    /// finished ones.
    async fn due_actions(&self, at: DateTime<Utc>, limit: u32) -> Result<Vec<ActionRecord>>;

    /// How many credentials of a source are not gone.
    async fn present_credential_count(&self, source: &str) -> Result<u64>;

    /// Opens (or keeps open, or reopens) a raised finding; returns it.
    async fn raise_finding(&self, finding: &RaisedFinding, at: DateTime<Utc>) -> Result<Finding>;

    /// [`Self::raise_finding`] for many findings in one transaction (a leak report of a hundred
    /// thousand exposures): each opened, kept open or reopened, with the same audit events.
    async fn raise_findings(&self, findings: &[RaisedFinding], at: DateTime<Utc>) -> Result<()>;

    /// Resolves a raised finding if it is unresolved; returns whether it was.
    async fn clear_raised_finding(
        &self,
        source: &str,
        credential_external_id: &str,
        policy_id: &str,
        at: DateTime<Utc>,
    ) -> Result<bool>;
}
