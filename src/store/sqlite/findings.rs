//! [`Findings`] for SQLite: reconciling observations, suppressing, acknowledging.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::json;
use sqlx::{QueryBuilder, Sqlite, Transaction};

use super::{BATCH, SqliteStore, Timed, append_events, begin_timed, map_err, rows};
use crate::audit::NewEvent;
use crate::store::{
    Finding, FindingChanges, FindingStatus, Findings, Observation, Result, ScanId, StoreError,
    Suppression,
};

pub(super) fn finding_subject(source: &str, credential: &str, policy: &str) -> String {
    format!("{source}/{credential}/{policy}")
}

pub(super) async fn fetch_finding(tx: &mut Transaction<'_, Sqlite>, id: i64) -> Result<Finding> {
    let row: rows::FindingRow = sqlx::query_as("SELECT * FROM findings WHERE id = ?")
        .bind(id)
        .fetch_optional(&mut **tx)
        .await
        .map_err(map_err)?
        .ok_or_else(|| StoreError::NotFound(format!("finding {id}")))?;
    row.try_into()
}

#[async_trait]
impl Findings for SqliteStore {
    async fn observe_findings(
        &self,
        scan: ScanId,
        observations: &[Observation],
        at: DateTime<Utc>,
    ) -> Result<FindingChanges> {
        let mut changes = FindingChanges::default();
        let (mut tx, _timed) = begin_timed(&self.pool, "observe_findings").await?;
        let mut events = Vec::new();
        for chunk in observations.chunks(BATCH / 3) {
            observe_chunk(&mut tx, scan, chunk, at, &mut changes, &mut events).await?;
        }
        append_events(&mut tx, &self.keys, at, events).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(changes)
    }

    async fn resolve_unobserved_findings(
        &self,
        scan: ScanId,
        evaluated_sources: &[String],
        at: DateTime<Utc>,
    ) -> Result<u64> {
        let (mut tx, _timed) = begin_timed(&self.pool, "resolve_unobserved_findings").await?;
        let mut events = Vec::new();
        for source in evaluated_sources {
            let unobserved: Vec<(String, String, String)> = sqlx::query_as(
                "SELECT credential_external_id, policy_id, status FROM findings WHERE source = ? \
                 AND status != 'resolved' AND raised = 0 \
                 AND (last_scan_id IS NULL OR last_scan_id < ?)",
            )
            .bind(source)
            .bind(scan.0)
            .fetch_all(&mut *tx)
            .await
            .map_err(map_err)?;
            sqlx::query(
                "UPDATE findings SET status = 'resolved', resolved_at = ? WHERE source = ? \
                 AND status != 'resolved' AND raised = 0 \
                 AND (last_scan_id IS NULL OR last_scan_id < ?)",
            )
            .bind(at)
            .bind(source)
            .bind(scan.0)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
            for (credential, policy, status) in unobserved {
                events.push(NewEvent::new(
                    "finding.resolved",
                    finding_subject(source, &credential, &policy),
                    json!({ "scan": scan.0, "previous_status": status }),
                ));
            }
        }
        let resolved = events.len() as u64;
        append_events(&mut tx, &self.keys, at, events).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(resolved)
    }

    async fn findings_page(
        &self,
        after: i64,
        limit: u32,
        unresolved_only: bool,
    ) -> Result<Vec<Finding>> {
        let sql = if unresolved_only {
            "SELECT * FROM findings WHERE id > ? AND status != 'resolved' ORDER BY id LIMIT ?"
        } else {
            "SELECT * FROM findings WHERE id > ? ORDER BY id LIMIT ?"
        };
        let _timed = Timed::start("findings_page");
        let rows: Vec<rows::FindingRow> = sqlx::query_as(sql)
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        rows::convert(rows)
    }

    async fn suppress_finding(
        &self,
        id: i64,
        suppression: &Suppression,
        at: DateTime<Utc>,
    ) -> Result<Finding> {
        let (mut tx, _timed) = begin_timed(&self.pool, "suppress_finding").await?;
        let finding = fetch_finding(&mut tx, id).await?;
        if finding.status == FindingStatus::Resolved {
            return Err(StoreError::Conflict(format!(
                "finding {id} is resolved; there is nothing to suppress"
            )));
        }
        if suppression.until <= at {
            return Err(StoreError::Conflict(format!(
                "a suppression of finding {id} must end in the future"
            )));
        }
        sqlx::query(
            "UPDATE findings SET status = 'suppressed', suppressed_until = ?, suppressed_by = ?, \
             suppress_reason = ? WHERE id = ?",
        )
        .bind(suppression.until)
        .bind(&suppression.by)
        .bind(&suppression.reason)
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        append_events(
            &mut tx,
            &self.keys,
            at,
            vec![NewEvent::new(
                "finding.suppressed",
                finding_subject(
                    &finding.source,
                    &finding.credential_external_id,
                    &finding.policy_id,
                ),
                json!({
                    "finding": id,
                    "until": suppression.until.to_rfc3339_opts(SecondsFormat::Secs, true),
                    "by": suppression.by,
                    "reason": suppression.reason,
                }),
            )],
        )
        .await?;
        let finding = fetch_finding(&mut tx, id).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(finding)
    }

    async fn acknowledge_finding(&self, id: i64, by: &str, at: DateTime<Utc>) -> Result<Finding> {
        let (mut tx, _timed) = begin_timed(&self.pool, "acknowledge_finding").await?;
        let finding = fetch_finding(&mut tx, id).await?;
        if finding.status != FindingStatus::Open {
            return Err(StoreError::Conflict(format!(
                "finding {id} is {}; only an open finding can be acknowledged",
                finding.status
            )));
        }
        sqlx::query("UPDATE findings SET status = 'acknowledged' WHERE id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        append_events(
            &mut tx,
            &self.keys,
            at,
            vec![NewEvent::new(
                "finding.acknowledged",
                finding_subject(
                    &finding.source,
                    &finding.credential_external_id,
                    &finding.policy_id,
                ),
                json!({ "finding": id, "by": by }),
            )],
        )
        .await?;
        let finding = fetch_finding(&mut tx, id).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(finding)
    }
}

/// Reconciles one chunk of observations with the stored findings (the events go to `events`).
async fn observe_chunk(
    tx: &mut Transaction<'_, Sqlite>,
    scan: ScanId,
    chunk: &[Observation],
    at: DateTime<Utc>,
    changes: &mut FindingChanges,
    events: &mut Vec<NewEvent>,
) -> Result<()> {
    let existing = stored_findings(tx, chunk).await?;
    let mut new = Vec::new();
    let mut seen_ids: Vec<i64> = Vec::new();
    for obs in chunk {
        let key = (
            obs.source.clone(),
            obs.credential_external_id.clone(),
            obs.policy_id.clone(),
        );
        let subject = finding_subject(&obs.source, &obs.credential_external_id, &obs.policy_id);
        let detail = json!({
            "scan": scan.0,
            "severity": obs.severity,
            "reason": obs.reason,
        });
        let Some(finding) = existing.get(&key) else {
            new.push(obs);
            changes.opened += 1;
            events.push(NewEvent::new("finding.opened", subject, detail));
            continue;
        };
        let (status, kind, stale) = next_state(finding, at, changes);
        if kind.is_none()
            && !stale
            && finding.severity == obs.severity
            && finding.reason == obs.reason
        {
            // Nothing to change but the sighting: updated in bulk below.
            seen_ids.push(finding.id);
            continue;
        }
        update_finding(tx, scan, at, finding, obs, status, stale).await?;
        if let Some(kind) = kind {
            let mut detail = detail;
            detail["status"] = json!(status.as_str());
            events.push(NewEvent::new(kind, subject, detail));
        }
    }
    touch_findings(tx, scan, at, &seen_ids).await?;
    insert_findings(tx, scan, at, &new).await?;
    Ok(())
}

/// The stored findings of a chunk of observations, by (source, credential, policy).
async fn stored_findings(
    tx: &mut Transaction<'_, Sqlite>,
    chunk: &[Observation],
) -> Result<HashMap<(String, String, String), Finding>> {
    let mut query = stored_findings_query(chunk);
    let rows: Vec<rows::FindingRow> = query
        .build_query_as()
        .fetch_all(&mut **tx)
        .await
        .map_err(map_err)?;
    let mut existing: HashMap<(String, String, String), Finding> =
        HashMap::with_capacity(rows.len());
    for row in rows {
        let finding = Finding::try_from(row)?;
        existing.insert(
            (
                finding.source.clone(),
                finding.credential_external_id.clone(),
                finding.policy_id.clone(),
            ),
            finding,
        );
    }

    Ok(existing)
}

/// What a stored finding becomes when it is observed again: its status, the event to write (none
/// when it stays as it was) and whether a suppression that ran out is to be cleared. A
/// suppression that has not run out survives a resolve and a reopen; one that has is cleared, so
/// no finding keeps a stale suppression.
fn next_state(
    finding: &Finding,
    at: DateTime<Utc>,
    changes: &mut FindingChanges,
) -> (FindingStatus, Option<&'static str>, bool) {
    let live = finding.suppressed_until.is_some_and(|until| until > at);
    let stale = !live
        && (finding.suppressed_until.is_some()
            || finding.suppressed_by.is_some()
            || finding.suppress_reason.is_some());
    let (status, kind) = match (finding.status, live) {
        (FindingStatus::Resolved, true) => {
            changes.reopened += 1;
            (FindingStatus::Suppressed, Some("finding.reopened"))
        }
        (FindingStatus::Resolved, false) => {
            changes.reopened += 1;
            (FindingStatus::Open, Some("finding.reopened"))
        }
        (FindingStatus::Suppressed, false) => {
            changes.unsuppressed += 1;
            (FindingStatus::Open, Some("finding.suppression_expired"))
        }
        (other, _) => {
            changes.still_open += 1;
            (other, None)
        }
    };
    (status, kind, stale)
}

/// Writes an observed finding's new status, severity and reason.
async fn update_finding(
    tx: &mut Transaction<'_, Sqlite>,
    scan: ScanId,
    at: DateTime<Utc>,
    finding: &Finding,
    obs: &Observation,
    status: FindingStatus,
    stale: bool,
) -> Result<()> {
    let reopened = finding.status == FindingStatus::Resolved;
    sqlx::query(
        "UPDATE findings SET status = ?, severity = ?, reason = ?, last_seen_at = ?, \
         last_scan_id = MAX(COALESCE(last_scan_id, 0), ?), resolved_at = NULL, \
         opened_at = CASE WHEN ? THEN ? ELSE opened_at END, \
         suppressed_until = CASE WHEN ? THEN NULL ELSE suppressed_until END, \
         suppressed_by = CASE WHEN ? THEN NULL ELSE suppressed_by END, \
         suppress_reason = CASE WHEN ? THEN NULL ELSE suppress_reason END WHERE id = ?",
    )
    .bind(status.as_str())
    .bind(&obs.severity)
    .bind(&obs.reason)
    .bind(at)
    .bind(scan.0)
    .bind(reopened)
    .bind(at)
    .bind(stale)
    .bind(stale)
    .bind(stale)
    .bind(finding.id)
    .execute(&mut **tx)
    .await
    .map_err(map_err)?;
    Ok(())
}

/// Marks findings observed again without a change as seen by this scan.
async fn touch_findings(
    tx: &mut Transaction<'_, Sqlite>,
    scan: ScanId,
    at: DateTime<Utc>,
    seen_ids: &[i64],
) -> Result<()> {
    if !seen_ids.is_empty() {
        let mut query = QueryBuilder::<Sqlite>::new("UPDATE findings SET last_seen_at = ");
        query.push_bind(at);
        query.push(", last_scan_id = MAX(COALESCE(last_scan_id, 0), ");
        query.push_bind(scan.0);
        query.push(") WHERE id IN (");
        let mut ids = query.separated(", ");
        for id in seen_ids {
            ids.push_bind(*id);
        }
        ids.push_unseparated(")");
        query.build().execute(&mut **tx).await.map_err(map_err)?;
    }
    Ok(())
}

/// Opens findings for observations the store has never seen.
async fn insert_findings(
    tx: &mut Transaction<'_, Sqlite>,
    scan: ScanId,
    at: DateTime<Utc>,
    new: &[&Observation],
) -> Result<()> {
    if !new.is_empty() {
        let mut query = QueryBuilder::<Sqlite>::new(
            "INSERT INTO findings (source, credential_external_id, policy_id, severity, \
             status, reason, opened_at, last_seen_at, last_scan_id) ",
        );
        query.push_values(new, |mut row, obs| {
            row.push_bind(obs.source.clone())
                .push_bind(obs.credential_external_id.clone())
                .push_bind(obs.policy_id.clone())
                .push_bind(obs.severity.clone())
                .push_bind("open")
                .push_bind(obs.reason.clone())
                .push_bind(at)
                .push_bind(at)
                .push_bind(scan.0);
        });
        query.build().execute(&mut **tx).await.map_err(map_err)?;
    }
    Ok(())
}

/// The look-up of [`stored_findings`]. The observations drive the join (CROSS JOIN fixes the
/// order), so each is one look-up in the (source, credential, policy) unique index; a row-value
/// `IN (VALUES ..)` would scan the table once per chunk.
pub(super) fn stored_findings_query(chunk: &[Observation]) -> QueryBuilder<Sqlite> {
    let mut query = QueryBuilder::<Sqlite>::new("WITH obs (s, c, p) AS (VALUES ");
    let mut keys = query.separated(", ");
    for obs in chunk {
        keys.push("(")
            .push_bind_unseparated(obs.source.clone())
            .push_unseparated(", ")
            .push_bind_unseparated(obs.credential_external_id.clone())
            .push_unseparated(", ")
            .push_bind_unseparated(obs.policy_id.clone())
            .push_unseparated(")");
    }
    query.push(
        ") SELECT f.* FROM obs CROSS JOIN findings f ON f.source = obs.s \
         AND f.credential_external_id = obs.c AND f.policy_id = obs.p",
    );
    query
}
