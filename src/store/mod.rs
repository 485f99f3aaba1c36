//! The store: the ledger of sources, identities and credentials with their history, scan runs,
//! findings and the audit log.
//!
//! Architecture invariant: this is the only module that speaks SQL (and the only one that imports
//! `sqlx`). The rest of the daemon sees the [`Store`] trait and plain domain types, so PostgreSQL can
//! be added as a second backend behind the same trait.

mod actions;
pub mod audit_key;
mod audit_log;
mod control;
mod findings;
pub mod leaks;
mod ledger;
mod scans;
mod sqlite;
pub mod trust;

use std::fmt;

use chrono::{DateTime, Utc};

pub use self::actions::{
    ACTION_LEASE, ActionKind, ActionRecord, ActionStatus, ActionStep, ActionUpdate, Actions,
    ChildOf, NewAction,
};
pub use self::audit_log::AuditLog;
pub use self::control::{ActionControl, RaisedFinding, Transition};
pub use self::findings::{
    Finding, FindingChanges, FindingStatus, Findings, Observation, Suppression,
};
pub use self::leaks::{Answered, LeakMatch, Leaks, Recorded, StoredLeak};
pub use self::ledger::Ledger;
pub use self::scans::{Scans, SourceDiff, SourceRecorder};
pub use self::sqlite::{SqliteOptions, SqliteStore};
pub use self::trust::{LedgerSigner, SignerCredential, SignerTrust, TrustChange};

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

/// The whole store, split by concern: scan runs ([`Scans`]), reading the ledger ([`Ledger`]),
/// findings ([`Findings`]), actions ([`Actions`], [`ActionControl`]), signer trust
/// ([`SignerTrust`]), leak intake ([`Leaks`]) and the audit log ([`AuditLog`]). Every method that changes state writes its audit events in the same
/// transaction as the change. Implemented for every type that implements the parts.
pub trait Store:
    Scans
    + Ledger
    + Findings
    + Actions
    + ActionControl
    + SignerTrust
    + Leaks
    + AuditLog
    + Send
    + Sync
    + fmt::Debug
{
}

impl<T> Store for T where
    T: Scans
        + Ledger
        + Findings
        + Actions
        + ActionControl
        + SignerTrust
        + Leaks
        + Leaks
        + AuditLog
        + Send
        + Sync
        + fmt::Debug
{
}
