//! The store: the ledger of sources, identities and credentials with their history, scan runs,
//! findings and the audit log.
//!
//! Architecture invariant: this is the only module that speaks SQL (and the only one that imports
//! `sqlx`). The rest of the daemon sees the [`Store`] trait and plain domain types, so PostgreSQL can
//! be added as a second backend behind the same trait.

pub mod audit_key;
mod control;
mod sqlite;

use std::fmt;
use std::str::FromStr;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use keywarden_connector::Inventory;

use crate::audit::{AuditFailure, BrokenLink, Checkpoint, Event, Head};
use crate::ledger::{IdentityCounts, LedgerCredential};

pub use crate::store::control::{ActionControl, RaisedFinding, Transition};
pub use crate::store::sqlite::{SqliteOptions, SqliteStore};

/// Why a store operation failed, shaped by what the caller does about it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database is busy or unreachable; retry.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The thing asked for does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// The request conflicts with the stored state (e.g. suppressing a resolved finding).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The stored data is not what this version of keywarden expects.
    #[error("corrupt store: {0}")]
    Corrupt(String),
    /// Anything else from the database.
    #[error("database error: {0}")]
    Database(String),
    /// The audit key is missing, unreadable, too widely readable, or not the log's key.
    #[error("audit key: {0}")]
    AuditKey(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Identifies one scan run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ScanId(pub i64);

impl fmt::Display for ScanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Where a page of credentials ends, to read the next one from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct CredentialCursor(i64);

impl CredentialCursor {
    /// Before the first credential.
    pub const START: Self = Self(0);
}

/// The page size scans read the ledger in.
pub const PAGE: u32 = 2000;

/// Records one source's inventory, batch by batch; see [`Store::record_source`].
#[async_trait]
pub trait SourceRecorder: Send {
    /// Upserts a batch of identities and credentials with their history and scan errors.
    async fn batch(&mut self, batch: &Inventory) -> Result<()>;

    /// Keeps the connector's state, saved by `finish` (never if the recorder is dropped).
    fn save_state(&mut self, state: serde_json::Value);

    /// Marks what the source no longer has as gone and records the source as scanned.
    async fn finish(self: Box<Self>) -> Result<SourceDiff>;
}

/// What recording one source's inventory changed in the ledger.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SourceDiff {
    pub seen: u64,
    pub new: u64,
    pub changed: u64,
    pub gone: u64,
    pub errors: u64,
}

/// One violation the policy engine found, to be reconciled with the stored findings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observation {
    pub source: String,
    pub credential_external_id: String,
    pub policy_id: String,
    pub severity: String,
    pub reason: String,
}

/// The lifecycle state of a finding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingStatus {
    Open,
    Acknowledged,
    Suppressed,
    Resolved,
}

impl FindingStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Acknowledged => "acknowledged",
            Self::Suppressed => "suppressed",
            Self::Resolved => "resolved",
        }
    }
}

impl FromStr for FindingStatus {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "open" => Ok(Self::Open),
            "acknowledged" => Ok(Self::Acknowledged),
            "suppressed" => Ok(Self::Suppressed),
            "resolved" => Ok(Self::Resolved),
            other => Err(StoreError::Corrupt(format!(
                "unknown finding status `{other}`"
            ))),
        }
    }
}

impl fmt::Display for FindingStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stored finding.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    pub id: i64,
    pub source: String,
    pub credential_external_id: String,
    pub policy_id: String,
    pub severity: String,
    pub status: FindingStatus,
    pub reason: String,
    pub opened_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub suppressed_until: Option<DateTime<Utc>>,
    pub suppressed_by: Option<String>,
    pub suppress_reason: Option<String>,
}

/// How reconciling a scan's observations changed the findings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FindingChanges {
    pub opened: u64,
    pub reopened: u64,
    pub resolved: u64,
    /// Suppressions whose time ran out while the violation still holds.
    pub unsuppressed: u64,
    pub still_open: u64,
}

impl std::ops::AddAssign for FindingChanges {
    fn add_assign(&mut self, other: Self) {
        self.opened += other.opened;
        self.reopened += other.reopened;
        self.resolved += other.resolved;
        self.unsuppressed += other.unsuppressed;
        self.still_open += other.still_open;
    }
}

/// A suppression request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Suppression {
    pub until: DateTime<Utc>,
    pub by: String,
    pub reason: String,
}

/// One change in a credential's history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryEntry {
    pub scan_id: ScanId,
    pub at: DateTime<Utc>,
    /// `first_seen`, `status`, `last_used`, `owner`, `expires_at`, `gone`, `reappeared`.
    pub change: String,
    pub old_value: Option<String>,
    pub new_value: Option<String>,
}

/// A scan error as stored.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct StoredScanError {
    pub source: String,
    pub subject: String,
    pub message: String,
    /// The identity left unread, when the connector could tell.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
}

keywarden_connector::named_enum! {
    /// What an action does. Each kind is a typed state machine in `crate::actions`.
    ActionKind, "action" {
        /// Replace an access key: create, deliver, verify, overlap, deactivate, grace, delete.
        Rotate = "rotate",
        /// Deactivate one key.
        Disable = "disable",
        /// Deactivate one key, hold, then delete it.
        Delete = "delete",
        /// Deactivate one key and deny the sessions it minted.
        Quarantine = "quarantine",
        /// Containment playbook: ordered children (quarantine, then a critical finding).
        Contain = "contain",
        /// Open a finding keywarden raises itself (a child of a playbook); touches no connector.
        RaiseFinding = "raise_finding",
    }
}

keywarden_connector::named_enum! {
    /// The state of an action.
    ActionStatus, "action status" {
        /// Taking its steps (or interrupted while it did: `actions resume` continues it).
        Running = "running",
        /// Waiting until `next_at` (an overlap, grace or hold period, a child, a retry back-off).
        Waiting = "waiting",
        /// Created by a policy with `approval: required`; nothing is changed before `approve`.
        AwaitingApproval = "awaiting_approval",
        Done = "done",
        /// Ended without changing anything because the policy's condition no longer holds on the
        /// live state; `reason` says what changed.
        Skipped = "skipped",
        /// Not started or not continued because it would be unsafe; `reason` says why.
        Refused = "refused",
        /// Stopped on an error it cannot get past; `reason` says which.
        Failed = "failed",
        /// Stopped by a person (`actions cancel`) or pre-empted by a containment, at a safe point.
        Cancelled = "cancelled",
        /// Its approval was refused (`actions reject`).
        Rejected = "rejected",
    }
}

impl ActionStatus {
    /// Whether the action still has steps to take (and holds its credential's open slot).
    pub fn is_open(self) -> bool {
        matches!(self, Self::Running | Self::Waiting | Self::AwaitingApproval)
    }
}

/// Where a child action sits in its playbook.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ChildOf {
    pub parent: i64,
    /// 0-based place in the playbook's order.
    pub index: u32,
}

/// A new action on one credential.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewAction {
    pub kind: ActionKind,
    pub source: String,
    pub credential_external_id: String,
    pub identity_external_id: String,
    pub origin: String,
    pub step: String,
    pub state: serde_json::Value,
    /// The process that starts it, and so holds its lease.
    pub holder: String,
    /// `Running`, or `AwaitingApproval` for a policy that requires approval.
    pub status: ActionStatus,
    /// The playbook it is a child of.
    pub parent: Option<ChildOf>,
    /// Whether it holds the credential's one open slot (false only for playbook parents).
    pub exclusive: bool,
}

/// How long a process's hold on an action lasts unless renewed: each step renews it, and a
/// heartbeat ([`crate::actions::lease`]) renews it while a step runs. A crashed holder's actions
/// can be taken over this long after its last renewal.
pub const ACTION_LEASE: chrono::TimeDelta = chrono::TimeDelta::seconds(60);

/// A stored action.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ActionRecord {
    pub id: i64,
    pub kind: ActionKind,
    pub source: String,
    pub credential_external_id: String,
    pub identity_external_id: String,
    pub origin: String,
    pub status: ActionStatus,
    pub step: String,
    pub state: serde_json::Value,
    pub reason: Option<String>,
    pub next_at: Option<DateTime<Utc>>,
    /// Who drives it now, and until when (see [`Store::claim_action`]).
    pub lease_owner: Option<String>,
    pub lease_until: Option<DateTime<Utc>>,
    /// The fencing token: incremented by every successful claim, so a write from a holder whose
    /// lease was taken over names an old token and is refused.
    pub lease_token: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The playbook it is a child of.
    pub parent: Option<ChildOf>,
    /// How often it was retried after failing or being refused.
    pub attempts: u32,
}

/// One step an action entered.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ActionStep {
    pub at: DateTime<Utc>,
    pub step: String,
    pub status: ActionStatus,
    pub detail: Option<String>,
}

/// A change of an action's step, written before the step is taken.
#[derive(Clone, Debug, PartialEq)]
pub struct ActionUpdate {
    pub step: String,
    pub status: ActionStatus,
    pub state: serde_json::Value,
    pub reason: Option<String>,
    pub next_at: Option<DateTime<Utc>>,
    /// A line for the step log (never a secret).
    pub detail: Option<String>,
    /// The process making the change; it must hold the action's lease ...
    pub holder: String,
    /// ... under this fencing token (the one its claim returned).
    pub token: i64,
}

/// The ledger's storage. Every method that changes state writes its audit events in the same
/// transaction as the change.
#[async_trait]
pub trait Store: ActionControl + Send + Sync + fmt::Debug {
    /// Starts a scan run over `sources` (name, kind).
    async fn begin_scan(&self, at: DateTime<Utc>, sources: &[(String, String)]) -> Result<ScanId>;

    /// Starts recording one source's inventory. Batches are committed as they come (they are
    /// what the source showed); only [`SourceRecorder::finish`] marks what was not seen as gone.
    /// A recorder dropped without `finish` leaves every earlier credential as it was.
    async fn record_source(
        &self,
        scan: ScanId,
        source: &str,
        at: DateTime<Utc>,
    ) -> Result<Box<dyn SourceRecorder>>;

    /// Records a whole inventory at once: [`Store::record_source`], one batch, `finish`.
    async fn record_inventory(
        &self,
        scan: ScanId,
        source: &str,
        inventory: &Inventory,
        at: DateTime<Utc>,
    ) -> Result<SourceDiff> {
        let mut recorder = self.record_source(scan, source, at).await?;
        recorder.batch(inventory).await?;
        recorder.finish().await
    }

    /// Records that a source could not be inventoried at all; its ledger entries are left as they
    /// were (nothing is marked gone).
    async fn record_source_failure(
        &self,
        scan: ScanId,
        source: &str,
        error: &str,
        at: DateTime<Utc>,
    ) -> Result<()>;

    /// Up to `limit` credentials that are not gone, with their identities, after `after` in a
    /// stable order; each comes with the cursor to continue from.
    async fn credentials_page(
        &self,
        after: CredentialCursor,
        limit: u32,
    ) -> Result<Vec<(CredentialCursor, LedgerCredential)>>;

    /// Every credential that is not gone, with its identity. Holds them all: for small ledgers
    /// and tests; scans read [`Store::credentials_page`].
    async fn present_credentials(&self) -> Result<Vec<LedgerCredential>> {
        let mut all = Vec::new();
        let mut after = CredentialCursor::START;
        loop {
            let page = self.credentials_page(after, PAGE).await?;
            let Some((last, _)) = page.last() else {
                return Ok(all);
            };
            after = *last;
            all.extend(page.into_iter().map(|(_, it)| it));
        }
    }

    /// Records violations a scan observed: opens new findings, keeps open ones, reopens resolved
    /// ones, reopens suppressed ones whose suppression ran out. Call it as often as needed within a
    /// scan (e.g. once per page of the ledger), then [`Store::resolve_unobserved_findings`].
    async fn observe_findings(
        &self,
        scan: ScanId,
        observations: &[Observation],
        at: DateTime<Utc>,
    ) -> Result<FindingChanges>;

    /// Resolves the unresolved findings of `evaluated_sources` that `scan` did not observe.
    /// Findings of other sources are left alone. Returns how many were resolved.
    async fn resolve_unobserved_findings(
        &self,
        scan: ScanId,
        evaluated_sources: &[String],
        at: DateTime<Utc>,
    ) -> Result<u64>;

    /// Both steps at once: afterwards, for the `evaluated_sources`, exactly the `observations` are
    /// unresolved.
    async fn reconcile_findings(
        &self,
        scan: ScanId,
        evaluated_sources: &[String],
        observations: &[Observation],
        at: DateTime<Utc>,
    ) -> Result<FindingChanges> {
        let mut changes = self.observe_findings(scan, observations, at).await?;
        changes.resolved += self
            .resolve_unobserved_findings(scan, evaluated_sources, at)
            .await?;
        Ok(changes)
    }

    /// Ends a scan run.
    async fn finish_scan(&self, scan: ScanId, at: DateTime<Utc>, failed: bool) -> Result<()>;

    /// Up to `limit` findings with an id above `after`, in id order; optionally only the
    /// unresolved ones.
    async fn findings_page(
        &self,
        after: i64,
        limit: u32,
        unresolved_only: bool,
    ) -> Result<Vec<Finding>>;

    /// Findings, optionally only the unresolved ones, read page by page.
    async fn findings(&self, unresolved_only: bool) -> Result<Vec<Finding>> {
        let mut all = Vec::new();
        loop {
            let after = all.last().map_or(0, |it: &Finding| it.id);
            let page = self.findings_page(after, PAGE, unresolved_only).await?;
            if page.is_empty() {
                return Ok(all);
            }
            all.extend(page);
        }
    }

    /// Suppresses a finding until a time, with who and why.
    async fn suppress_finding(
        &self,
        id: i64,
        suppression: &Suppression,
        at: DateTime<Utc>,
    ) -> Result<Finding>;

    /// Marks an unresolved finding as acknowledged by someone.
    async fn acknowledge_finding(&self, id: i64, by: &str, at: DateTime<Utc>) -> Result<Finding>;

    /// The history of one credential, oldest first.
    async fn credential_history(
        &self,
        source: &str,
        external_id: &str,
    ) -> Result<Vec<HistoryEntry>>;

    /// The status of one credential (`gone` included), if the ledger has it.
    async fn credential_status(&self, source: &str, external_id: &str) -> Result<Option<String>>;

    /// The first-seen time of one credential, if the ledger has it.
    async fn credential_first_seen(
        &self,
        source: &str,
        external_id: &str,
    ) -> Result<Option<DateTime<Utc>>>;

    /// The scan errors of one scan run.
    async fn scan_errors(&self, scan: ScanId) -> Result<Vec<StoredScanError>>;

    /// What the ledger holds for one source, as connectors see it during a scan.
    fn known(&self, source: &str) -> std::sync::Arc<dyn keywarden_connector::Known>;

    /// How many credentials (not gone) each of these identities (source, identity external id)
    /// holds, by kind and status, for conditions over an identity's credentials.
    async fn identity_counts(&self, identities: &[(String, String)]) -> Result<IdentityCounts>;

    /// The credentials of one identity of a source that are not gone (incremental scans).
    async fn identity_credentials(
        &self,
        source: &str,
        identity_external_id: &str,
    ) -> Result<Vec<keywarden_connector::Credential>>;

    /// The connector state saved by the last completed inventory of a source.
    async fn connector_state(&self, source: &str) -> Result<Option<serde_json::Value>>;

    /// The ledger's credentials (gone ones included) with this external id, in any source.
    async fn find_credential(&self, external_id: &str) -> Result<Vec<LedgerCredential>>;

    /// Starts an action; `Conflict` if the credential already has an unfinished one.
    async fn create_action(&self, action: &NewAction, at: DateTime<Utc>) -> Result<ActionRecord>;

    /// Takes the lease of an unfinished action for `holder` (until [`Store::action_lease`] from
    /// `at`): granted when nobody holds it, `holder` already does, or the lease ran out;
    /// `Conflict` otherwise. Every grant increments the action's fencing token
    /// ([`ActionRecord::lease_token`]), which the holder names in each update. A finished action
    /// is returned as it is.
    async fn claim_action(&self, id: i64, holder: &str, at: DateTime<Utc>) -> Result<ActionRecord>;

    /// Moves an action to a new step (and logs it), in one transaction with its audit event.
    /// `Conflict` if the action is finished, or if `update.holder` does not hold its lease under
    /// `update.token` (it was taken over: the late write is refused); the lease is renewed, and
    /// released when the action finishes.
    async fn update_action(
        &self,
        id: i64,
        update: &ActionUpdate,
        at: DateTime<Utc>,
    ) -> Result<ActionRecord>;

    /// Extends the lease `holder` holds under `token` to [`Store::action_lease`] from `at` (the
    /// heartbeat while a step runs) and returns its new end. `Conflict` if the lease was taken
    /// over or the action finished; a lease that ran out but was not taken over is renewed.
    async fn renew_lease(
        &self,
        id: i64,
        holder: &str,
        token: i64,
        at: DateTime<Utc>,
    ) -> Result<DateTime<Utc>>;

    /// Gives up the lease `holder` holds under `token` (a process that stops driving an open
    /// action), so another may claim it at once. Nothing happens if it no longer holds it.
    async fn release_lease(&self, id: i64, holder: &str, token: i64) -> Result<()>;

    /// How long a lease lasts unless renewed.
    fn action_lease(&self) -> chrono::TimeDelta {
        ACTION_LEASE
    }

    /// One action.
    async fn action(&self, id: i64) -> Result<ActionRecord>;

    /// Actions, newest first; optionally only the unfinished ones.
    async fn actions(&self, open_only: bool) -> Result<Vec<ActionRecord>>;

    /// Every action on one credential, newest first.
    async fn credential_actions(
        &self,
        source: &str,
        credential_external_id: &str,
    ) -> Result<Vec<ActionRecord>>;

    /// The step log of one action, oldest first.
    async fn action_steps(&self, id: i64) -> Result<Vec<ActionStep>>;

    /// Up to `limit` audit events with a sequence number above `after`, in order.
    async fn events_page(&self, after: i64, limit: u32) -> Result<Vec<Event>>;

    /// The whole audit log, in sequence order. Holds it all: for tests; `audit verify` and
    /// `audit export` read [`Store::events_page`].
    async fn events(&self) -> Result<Vec<Event>> {
        let mut all: Vec<Event> = Vec::new();
        loop {
            let after = all.last().map_or(0, |it| it.seq);
            let page = self.events_page(after, PAGE).await?;
            if page.is_empty() {
                return Ok(all);
            }
            all.extend(page);
        }
    }

    /// Checks the audit log's keyed chain, streamed page by page in constant memory; returns how
    /// many events were checked.
    async fn verify_audit(&self) -> Result<std::result::Result<u64, BrokenLink>>;

    /// Checks the chain, and against `checkpoint` if given (authentic, its event still in the
    /// log with the same hash, the log reaching at least its sequence number).
    async fn verify_audit_with(
        &self,
        checkpoint: Option<&Checkpoint>,
    ) -> Result<std::result::Result<crate::audit::Verified, AuditFailure>>;

    /// A checkpoint of `head` (a head [`Store::verify_audit_with`] verified), taken at `at`.
    fn audit_checkpoint(&self, head: &Head, at: DateTime<Utc>) -> Checkpoint;
}
