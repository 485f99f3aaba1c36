//! [`ActionControl`] for SQLite.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::json;

use super::actions::{fetch_action, log_action_step};
use super::findings::{fetch_finding, finding_subject};
use super::{SqliteStore, append_events, begin_timed, leases, map_err, rows};
use crate::audit::NewEvent;
use crate::store::{
    ActionControl, ActionRecord, ActionStatus, Finding, RaisedFinding, Result, StoreError,
    Transition,
};

/// The due actions: two range scans of the `actions_due` (status, next_at) index; finished actions
/// are never read.
pub(super) const DUE_ACTIONS: &str = "SELECT * FROM (\
       SELECT * FROM actions WHERE status = 'running' AND parent_id IS NULL \
       UNION ALL \
       SELECT * FROM actions WHERE status = 'waiting' AND parent_id IS NULL \
         AND (next_at IS NULL OR next_at <= ?)\
     ) ORDER BY id LIMIT ?";

#[async_trait]
impl ActionControl for SqliteStore {
    async fn transition_action(
        &self,
        id: i64,
        transition: &Transition,
        at: DateTime<Utc>,
    ) -> Result<ActionRecord> {
        let (mut tx, _timed) = begin_timed(&self.pool, "action_control").await?;
        let before = fetch_action(&mut tx, id).await?;
        if !transition.from.contains(&before.status) {
            return Err(StoreError::Conflict(format!(
                "action {id} is {}; it cannot be {}",
                before.status, transition.event
            )));
        }
        let held_by_other = before.status.is_open()
            && before
                .lease_owner
                .as_deref()
                .is_some_and(|owner| owner != transition.holder)
            && before.lease_until.is_some_and(|until| until >= at);
        if held_by_other && before.status == ActionStatus::Running {
            return Err(StoreError::Conflict(format!(
                "action {id} is being driven by {} right now; try again when its step is over",
                before.lease_owner.as_deref().unwrap_or_default()
            )));
        }
        let attempts = if transition.retry {
            before.attempts.saturating_add(1)
        } else {
            before.attempts
        };
        let state = transition
            .state
            .as_ref()
            .map_or_else(|| before.state.to_string(), ToString::to_string);
        let (lease_owner, lease_until) = if transition.to == ActionStatus::Running {
            (
                Some(transition.holder.clone()),
                Some(leases::lease_end(at, self.lease)?),
            )
        } else {
            (None, None)
        };
        let detail = match (&transition.by, &transition.reason) {
            (Some(by), Some(reason)) => format!("{} by {by}: {reason}", transition.event),
            (Some(by), None) => format!("{} by {by}", transition.event),
            (None, Some(reason)) => format!("{}: {reason}", transition.event),
            (None, None) => transition.event.to_owned(),
        };
        let reason = match transition.to {
            ActionStatus::Running => None,
            _ => Some(detail.clone()),
        };
        sqlx::query(
            "UPDATE actions SET status = ?, reason = ?, next_at = ?, state = ?, attempts = ?, \
             lease_owner = ?, lease_until = ?, updated_at = ? WHERE id = ?",
        )
        .bind(transition.to.as_str())
        .bind(&reason)
        .bind(transition.next_at)
        .bind(state)
        .bind(i64::from(attempts))
        .bind(lease_owner)
        .bind(lease_until)
        .bind(at)
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        log_action_step(&mut tx, id, &before.step, transition.to, Some(&detail), at).await?;
        append_events(
            &mut tx,
            &self.keys,
            at,
            vec![NewEvent::new(
                match transition.event {
                    "approved" => "action.approved",
                    "rejected" => "action.rejected",
                    "cancelled" => "action.cancelled",
                    "retried" => "action.retried",
                    _ => "action.transition",
                },
                format!("{}/{}", before.source, before.credential_external_id),
                json!({
                    "action": id,
                    "kind": before.kind.as_str(),
                    "from": before.status.as_str(),
                    "to": transition.to.as_str(),
                    "by": transition.by,
                    "reason": transition.reason,
                }),
            )],
        )
        .await?;
        let record = fetch_action(&mut tx, id).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(record)
    }

    async fn child_actions(&self, parent: i64) -> Result<Vec<ActionRecord>> {
        let rows: Vec<rows::ActionRow> =
            sqlx::query_as("SELECT * FROM actions WHERE parent_id = ? ORDER BY child_index")
                .bind(parent)
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)?;
        rows::convert(rows)
    }

    async fn open_action(
        &self,
        source: &str,
        credential_external_id: &str,
    ) -> Result<Option<ActionRecord>> {
        let row: Option<rows::ActionRow> = sqlx::query_as(
            "SELECT * FROM actions WHERE source = ? AND credential_external_id = ? \
             AND exclusive = 1 AND status IN ('running', 'waiting', 'awaiting_approval')",
        )
        .bind(source)
        .bind(credential_external_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?;
        row.map(TryInto::try_into).transpose()
    }

    async fn due_actions(&self, at: DateTime<Utc>, limit: u32) -> Result<Vec<ActionRecord>> {
        let rows: Vec<rows::ActionRow> = sqlx::query_as(DUE_ACTIONS)
            .bind(at)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        rows::convert(rows)
    }

    async fn present_credential_count(&self, source: &str) -> Result<u64> {
        let count: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM credentials WHERE source = ? AND status != 'gone'",
        )
        .bind(source)
        .fetch_one(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(u64::try_from(count).unwrap_or_default())
    }

    async fn raise_finding(&self, finding: &RaisedFinding, at: DateTime<Utc>) -> Result<Finding> {
        let (mut tx, _timed) = begin_timed(&self.pool, "action_control").await?;
        let existing: Option<(i64, String)> = sqlx::query_as(
            "SELECT id, status FROM findings WHERE source = ? AND credential_external_id = ? \
             AND policy_id = ?",
        )
        .bind(&finding.source)
        .bind(&finding.credential_external_id)
        .bind(&finding.policy_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_err)?;
        let subject = finding_subject(
            &finding.source,
            &finding.credential_external_id,
            &finding.policy_id,
        );
        let (id, event) = match existing {
            Some((id, status)) => {
                sqlx::query(
                    "UPDATE findings SET severity = ?, reason = ?, last_seen_at = ?, raised = 1, \
                     status = CASE WHEN status = 'resolved' THEN 'open' ELSE status END, \
                     resolved_at = NULL WHERE id = ?",
                )
                .bind(&finding.severity)
                .bind(&finding.reason)
                .bind(at)
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
                (id, (status == "resolved").then_some("finding.reopened"))
            }
            None => {
                let id: i64 = sqlx::query_scalar(
                    "INSERT INTO findings (source, credential_external_id, policy_id, severity, \
                     status, reason, opened_at, last_seen_at, raised) \
                     VALUES (?, ?, ?, ?, 'open', ?, ?, ?, 1) RETURNING id",
                )
                .bind(&finding.source)
                .bind(&finding.credential_external_id)
                .bind(&finding.policy_id)
                .bind(&finding.severity)
                .bind(&finding.reason)
                .bind(at)
                .bind(at)
                .fetch_one(&mut *tx)
                .await
                .map_err(map_err)?;
                (id, Some("finding.opened"))
            }
        };
        if let Some(kind) = event {
            append_events(
                &mut tx,
                &self.keys,
                at,
                vec![NewEvent::new(
                    kind,
                    subject,
                    json!({ "severity": finding.severity, "reason": finding.reason, "raised": true }),
                )],
            )
            .await?;
        }
        let stored = fetch_finding(&mut tx, id).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(stored)
    }

    async fn raise_findings(&self, findings: &[RaisedFinding], at: DateTime<Utc>) -> Result<()> {
        let (mut tx, _timed) = begin_timed(&self.pool, "raise_findings").await?;
        super::raised::raise_findings(&mut tx, &self.keys, findings, at).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn clear_raised_finding(
        &self,
        source: &str,
        credential_external_id: &str,
        policy_id: &str,
        at: DateTime<Utc>,
    ) -> Result<bool> {
        let (mut tx, _timed) = begin_timed(&self.pool, "action_control").await?;
        let done = sqlx::query(
            "UPDATE findings SET status = 'resolved', resolved_at = ? WHERE source = ? \
             AND credential_external_id = ? AND policy_id = ? AND raised = 1 \
             AND status != 'resolved'",
        )
        .bind(at)
        .bind(source)
        .bind(credential_external_id)
        .bind(policy_id)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?
        .rows_affected()
            > 0;
        if done {
            append_events(
                &mut tx,
                &self.keys,
                at,
                vec![NewEvent::new(
                    "finding.resolved",
                    finding_subject(source, credential_external_id, policy_id),
                    json!({ "raised": true }),
                )],
            )
            .await?;
        }
        tx.commit().await.map_err(map_err)?;
        Ok(done)
    }
}
