//! Findings: what policies found, reconciled with each scan's observations, suppressed or
//! acknowledged by people.

use std::fmt;
use std::str::FromStr;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{PAGE, Result, ScanId, StoreError};

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

/// The findings and their lifecycle. Every change writes its audit events in the same
/// transaction.
#[async_trait]
pub trait Findings: Send + Sync {
    /// Records violations a scan observed: opens new findings, keeps open ones, reopens resolved
    /// ones, reopens suppressed ones whose suppression ran out. Call it as often as needed within a
    /// scan (e.g. once per page of the ledger), then [`Findings::resolve_unobserved_findings`].
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
}
