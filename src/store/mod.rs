//! The store: the ledger of sources, identities and credentials with their history, scan runs,
//! findings and the audit log.
//!
//! Architecture invariant: this is the only module that speaks SQL (and the only one that imports
//! `sqlx`). The rest of the daemon sees the [`Store`] trait and plain domain types, so PostgreSQL can
//! be added as a second backend behind the same trait.

mod sqlite;

use std::fmt;
use std::str::FromStr;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use keywarden_connector::Inventory;

use crate::audit::{BrokenLink, Event};
use crate::ledger::LedgerCredential;

pub use crate::store::sqlite::SqliteStore;

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
}

/// The ledger's storage. Every method that changes state writes its audit events in the same
/// transaction as the change.
#[async_trait]
pub trait Store: Send + Sync + fmt::Debug {
    /// Starts a scan run over `sources` (name, kind).
    async fn begin_scan(&self, at: DateTime<Utc>, sources: &[(String, String)]) -> Result<ScanId>;

    /// Records what one source's inventory found: upserts identities and credentials, writes their
    /// history, marks what is no longer there as gone and stores the scan errors.
    async fn record_inventory(
        &self,
        scan: ScanId,
        source: &str,
        inventory: &Inventory,
        at: DateTime<Utc>,
    ) -> Result<SourceDiff>;

    /// Records that a source could not be inventoried at all; its ledger entries are left as they
    /// were (nothing is marked gone).
    async fn record_source_failure(
        &self,
        scan: ScanId,
        source: &str,
        error: &str,
        at: DateTime<Utc>,
    ) -> Result<()>;

    /// Every credential that is not gone, with its identity.
    async fn present_credentials(&self) -> Result<Vec<LedgerCredential>>;

    /// Opens, keeps, reopens and resolves findings so that, for the `evaluated_sources`, exactly the
    /// `observations` are unresolved. Findings of other sources are left alone.
    async fn reconcile_findings(
        &self,
        scan: ScanId,
        evaluated_sources: &[String],
        observations: &[Observation],
        at: DateTime<Utc>,
    ) -> Result<FindingChanges>;

    /// Ends a scan run.
    async fn finish_scan(&self, scan: ScanId, at: DateTime<Utc>, failed: bool) -> Result<()>;

    /// Findings, optionally only the unresolved ones.
    async fn findings(&self, unresolved_only: bool) -> Result<Vec<Finding>>;

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

    /// The whole audit log, in sequence order.
    async fn events(&self) -> Result<Vec<Event>>;

    /// Checks the audit log's hash chain; returns how many events were checked.
    async fn verify_audit(&self) -> Result<std::result::Result<u64, BrokenLink>> {
        let events = self.events().await?;
        Ok(crate::audit::verify(&events))
    }
}
