//! Rows as SQLite returns them (`sqlx::FromRow`), and how each becomes a domain type: statuses
//! are parsed, JSON columns decoded; a value this version does not know is `Corrupt`.

use chrono::{DateTime, Utc};

use super::from_json;
use crate::store::{ActionRecord, ActionStep, Finding, HistoryEntry, Result, ScanId};

/// A row of `actions`.
#[derive(sqlx::FromRow)]
pub(super) struct ActionRow {
    id: i64,
    kind: String,
    source: String,
    credential_external_id: String,
    identity_external_id: String,
    origin: String,
    status: String,
    step: String,
    state: String,
    reason: Option<String>,
    next_at: Option<DateTime<Utc>>,
    lease_owner: Option<String>,
    lease_until: Option<DateTime<Utc>>,
    lease_token: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    parent_id: Option<i64>,
    child_index: Option<i64>,
    attempts: i64,
}

impl TryFrom<ActionRow> for ActionRecord {
    type Error = crate::store::StoreError;

    fn try_from(row: ActionRow) -> Result<Self> {
        let corrupt = |err: keywarden_connector::ParseKindError| {
            crate::store::StoreError::Corrupt(format!("action {}: {err}", row.id))
        };
        Ok(Self {
            id: row.id,
            kind: row.kind.parse().map_err(corrupt)?,
            parent: row.parent_id.zip(row.child_index).map(|(parent, index)| {
                crate::store::ChildOf {
                    parent,
                    index: u32::try_from(index).unwrap_or(u32::MAX),
                }
            }),
            attempts: u32::try_from(row.attempts).unwrap_or(u32::MAX),
            source: row.source,
            credential_external_id: row.credential_external_id,
            identity_external_id: row.identity_external_id,
            origin: row.origin,
            status: row.status.parse().map_err(corrupt)?,
            step: row.step,
            state: from_json(&row.state)?,
            reason: row.reason,
            next_at: row.next_at,
            lease_owner: row.lease_owner,
            lease_until: row.lease_until,
            lease_token: row.lease_token,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

/// A row of `findings`.
#[derive(sqlx::FromRow)]
pub(super) struct FindingRow {
    id: i64,
    source: String,
    credential_external_id: String,
    policy_id: String,
    severity: String,
    status: String,
    reason: String,
    opened_at: DateTime<Utc>,
    last_seen_at: DateTime<Utc>,
    resolved_at: Option<DateTime<Utc>>,
    suppressed_until: Option<DateTime<Utc>>,
    suppressed_by: Option<String>,
    suppress_reason: Option<String>,
}

impl TryFrom<FindingRow> for Finding {
    type Error = crate::store::StoreError;

    fn try_from(row: FindingRow) -> Result<Self> {
        Ok(Self {
            id: row.id,
            source: row.source,
            credential_external_id: row.credential_external_id,
            policy_id: row.policy_id,
            severity: row.severity,
            status: row.status.parse()?,
            reason: row.reason,
            opened_at: row.opened_at,
            last_seen_at: row.last_seen_at,
            resolved_at: row.resolved_at,
            suppressed_until: row.suppressed_until,
            suppressed_by: row.suppressed_by,
            suppress_reason: row.suppress_reason,
        })
    }
}

/// A row of `credential_history`.
#[derive(sqlx::FromRow)]
pub(super) struct HistoryEntryRow {
    scan_id: i64,
    at: DateTime<Utc>,
    change: String,
    old_value: Option<String>,
    new_value: Option<String>,
}

impl From<HistoryEntryRow> for HistoryEntry {
    fn from(row: HistoryEntryRow) -> Self {
        Self {
            scan_id: ScanId(row.scan_id),
            at: row.at,
            change: row.change,
            old_value: row.old_value,
            new_value: row.new_value,
        }
    }
}

/// A row of `action_steps`.
#[derive(sqlx::FromRow)]
pub(super) struct ActionStepRow {
    at: DateTime<Utc>,
    step: String,
    status: String,
    detail: Option<String>,
}

impl TryFrom<ActionStepRow> for ActionStep {
    type Error = crate::store::StoreError;

    fn try_from(row: ActionStepRow) -> Result<Self> {
        Ok(Self {
            at: row.at,
            step: row.step,
            status: row
                .status
                .parse()
                .map_err(|err: keywarden_connector::ParseKindError| {
                    crate::store::StoreError::Corrupt(err.to_string())
                })?,
            detail: row.detail,
        })
    }
}

/// Converts fetched rows, stopping at the first that does not convert.
pub(super) fn convert<R, T>(rows: Vec<R>) -> Result<Vec<T>>
where
    T: TryFrom<R, Error = crate::store::StoreError>,
{
    rows.into_iter().map(T::try_from).collect()
}
