//! [`Actions`] for SQLite: creating, claiming and moving actions, the step log.

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::json;
use sqlx::{Sqlite, Transaction};

use super::{SqliteStore, append_events, begin_timed, leases, map_err, rows};
use crate::audit::NewEvent;
use crate::store::{
    ActionRecord, ActionStatus, ActionStep, ActionUpdate, Actions, NewAction, Result, StoreError,
};

pub(super) async fn fetch_action(
    tx: &mut Transaction<'_, Sqlite>,
    id: i64,
) -> Result<ActionRecord> {
    let row: rows::ActionRow = sqlx::query_as("SELECT * FROM actions WHERE id = ?")
        .bind(id)
        .fetch_optional(&mut **tx)
        .await
        .map_err(map_err)?
        .ok_or_else(|| StoreError::NotFound(format!("action {id}")))?;
    row.try_into()
}

pub(super) async fn log_action_step(
    tx: &mut Transaction<'_, Sqlite>,
    id: i64,
    step: &str,
    status: ActionStatus,
    detail: Option<&str>,
    at: DateTime<Utc>,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO action_steps (action_id, seq, at, step, status, detail) \
         VALUES (?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM action_steps WHERE action_id = ?), ?, ?, ?, ?)",
    )
    .bind(id)
    .bind(id)
    .bind(at)
    .bind(step)
    .bind(status.as_str())
    .bind(detail)
    .execute(&mut **tx)
    .await
    .map_err(map_err)?;
    Ok(())
}

#[async_trait]
impl Actions for SqliteStore {
    async fn create_action(&self, action: &NewAction, at: DateTime<Utc>) -> Result<ActionRecord> {
        let (mut tx, _timed) = begin_timed(&self.pool, "create_action").await?;
        let open: Option<(i64,)> = sqlx::query_as(
            "SELECT id FROM actions WHERE source = ? AND credential_external_id = ? \
             AND exclusive = 1 AND status IN ('running', 'waiting', 'awaiting_approval')",
        )
        .bind(&action.source)
        .bind(&action.credential_external_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_err)?;
        if let Some((id,)) = open.filter(|_| action.exclusive) {
            return Err(StoreError::Conflict(format!(
                "{} already has unfinished action {id}; resume or finish it first",
                action.credential_external_id
            )));
        }
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO actions (kind, source, credential_external_id, identity_external_id, \
             origin, status, step, state, lease_owner, lease_until, lease_token, created_at, \
             updated_at, parent_id, child_index, exclusive) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(action.kind.as_str())
        .bind(&action.source)
        .bind(&action.credential_external_id)
        .bind(&action.identity_external_id)
        .bind(&action.origin)
        .bind(action.status.as_str())
        .bind(&action.step)
        .bind(action.state.to_string())
        .bind(&action.holder)
        .bind(leases::lease_end(at, self.lease)?)
        .bind(at)
        .bind(at)
        .bind(action.parent.map(|it| it.parent))
        .bind(action.parent.map(|it| i64::from(it.index)))
        .bind(action.exclusive)
        .fetch_one(&mut *tx)
        .await
        .map_err(map_err)?;
        log_action_step(&mut tx, id, &action.step, action.status, None, at).await?;
        append_events(
            &mut tx,
            &self.keys,
            at,
            vec![NewEvent::new(
                "action.started",
                format!("{}/{}", action.source, action.credential_external_id),
                json!({
                    "action": id,
                    "kind": action.kind.as_str(),
                    "origin": action.origin,
                    "status": action.status.as_str(),
                    "parent": action.parent.map(|it| it.parent),
                }),
            )],
        )
        .await?;
        let record = fetch_action(&mut tx, id).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(record)
    }

    async fn claim_action(&self, id: i64, holder: &str, at: DateTime<Utc>) -> Result<ActionRecord> {
        let (mut tx, _timed) = begin_timed(&self.pool, "claim_action").await?;
        let record = leases::claim(&mut tx, &self.keys, id, holder, at, self.lease).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(record)
    }

    async fn update_action(
        &self,
        id: i64,
        update: &ActionUpdate,
        at: DateTime<Utc>,
    ) -> Result<ActionRecord> {
        let (mut tx, _timed) = begin_timed(&self.pool, "update_action").await?;
        let before = fetch_action(&mut tx, id).await?;
        if !before.status.is_open() {
            return Err(StoreError::Conflict(format!(
                "action {id} is already {}; start a new one",
                before.status
            )));
        }
        leases::check_fence(&before, &update.holder, update.token)?;
        // The engine releases the lease when its drive stops with the action still open, so a
        // waiting action is free for whoever finds it due (or must cancel it at once, as a
        // containment does).
        let (lease_owner, lease_until) = if update.status.is_open() {
            (
                Some(update.holder.as_str()),
                Some(leases::lease_end(at, self.lease)?),
            )
        } else {
            (None, None)
        };
        sqlx::query(
            "UPDATE actions SET step = ?, status = ?, state = ?, reason = ?, next_at = ?, \
             lease_owner = ?, lease_until = ?, updated_at = ? WHERE id = ?",
        )
        .bind(&update.step)
        .bind(update.status.as_str())
        .bind(update.state.to_string())
        .bind(&update.reason)
        .bind(update.next_at)
        .bind(lease_owner)
        .bind(lease_until)
        .bind(at)
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        log_action_step(
            &mut tx,
            id,
            &update.step,
            update.status,
            update.detail.as_deref().or(update.reason.as_deref()),
            at,
        )
        .await?;
        append_events(
            &mut tx,
            &self.keys,
            at,
            vec![NewEvent::new(
                "action.step",
                format!("{}/{}", before.source, before.credential_external_id),
                json!({
                    "action": id,
                    "kind": before.kind.as_str(),
                    "step": update.step,
                    "status": update.status.as_str(),
                    "detail": update.detail,
                    "reason": update.reason,
                }),
            )],
        )
        .await?;
        let record = fetch_action(&mut tx, id).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(record)
    }

    async fn renew_lease(
        &self,
        id: i64,
        holder: &str,
        token: i64,
        at: DateTime<Utc>,
    ) -> Result<DateTime<Utc>> {
        let (mut tx, _timed) = begin_timed(&self.pool, "renew_lease").await?;
        let until = leases::renew(&mut tx, id, holder, token, at, self.lease).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(until)
    }

    async fn release_lease(&self, id: i64, holder: &str, token: i64) -> Result<()> {
        let (mut tx, _timed) = begin_timed(&self.pool, "release_lease").await?;
        leases::release(&mut tx, id, holder, token).await?;
        tx.commit().await.map_err(map_err)
    }

    fn action_lease(&self) -> TimeDelta {
        self.lease
    }

    async fn action(&self, id: i64) -> Result<ActionRecord> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        let record = fetch_action(&mut tx, id).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(record)
    }

    async fn actions(&self, open_only: bool) -> Result<Vec<ActionRecord>> {
        let rows: Vec<rows::ActionRow> = sqlx::query_as(if open_only {
            "SELECT * FROM actions WHERE status IN ('running', 'waiting', 'awaiting_approval') \
             ORDER BY id DESC"
        } else {
            "SELECT * FROM actions ORDER BY id DESC"
        })
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows::convert(rows)
    }

    async fn credential_actions(
        &self,
        source: &str,
        credential_external_id: &str,
    ) -> Result<Vec<ActionRecord>> {
        let rows: Vec<rows::ActionRow> = sqlx::query_as(
            "SELECT * FROM actions WHERE source = ? AND credential_external_id = ? ORDER BY id DESC",
        )
        .bind(source)
        .bind(credential_external_id)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows::convert(rows)
    }

    async fn action_steps(&self, id: i64) -> Result<Vec<ActionStep>> {
        let rows: Vec<rows::ActionStepRow> = sqlx::query_as(
            "SELECT at, step, status, detail FROM action_steps WHERE action_id = ? ORDER BY seq",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows::convert(rows)
    }
}
