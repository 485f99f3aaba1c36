//! Action leases with fencing, inside the caller's write transaction.
//!
//! A lease is (`lease_owner`, `lease_until`, `lease_token`). A claim is granted when nobody holds
//! the lease, the claimant already does, or it ran out; every grant increments the token. A write
//! names the owner and token it claimed with and is refused once the token moved on: a holder
//! that was taken over (it stalled past its lease) cannot record a step any more, even if it
//! wakes up and tries. The check and the write are one transaction (`BEGIN IMMEDIATE`), so no
//! claim can come between them.

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::json;
use sqlx::{Sqlite, Transaction};

use super::actions::fetch_action;
use super::{append_events, map_err};
use crate::audit::ChainKeys;
use crate::audit::NewEvent;
use crate::store::{ActionRecord, Result, StoreError};

/// When a lease taken or renewed at `at` ends.
pub(super) fn lease_end(at: DateTime<Utc>, lease: TimeDelta) -> Result<DateTime<Utc>> {
    at.checked_add_signed(lease).ok_or_else(|| {
        StoreError::Conflict(format!(
            "a lease of {lease} from {at} ends past the last representable time"
        ))
    })
}

/// Refuses a write from anyone but the holder of the lease under `token`.
pub(super) fn check_fence(before: &ActionRecord, holder: &str, token: i64) -> Result<()> {
    if before.lease_owner.as_deref() == Some(holder) && before.lease_token == token {
        return Ok(());
    }
    Err(StoreError::Conflict(format!(
        "action {}: {holder} (token {token}) no longer holds its lease; it is held by {} \
         (token {}, until {})",
        before.id,
        before.lease_owner.as_deref().unwrap_or("nobody"),
        before.lease_token,
        before
            .lease_until
            .map(|it| it.to_rfc3339())
            .unwrap_or_default()
    )))
}

/// Grants the lease of an open action to `holder`, or answers `Conflict`.
pub(super) async fn claim(
    tx: &mut Transaction<'_, Sqlite>,
    keys: &ChainKeys,
    id: i64,
    holder: &str,
    at: DateTime<Utc>,
    lease: TimeDelta,
) -> Result<ActionRecord> {
    let before = fetch_action(tx, id).await?;
    if !before.status.is_open() {
        return Ok(before);
    }
    let free = match before.lease_owner.as_deref() {
        None => true,
        Some(owner) => owner == holder || before.lease_until.is_none_or(|until| until <= at),
    };
    if !free {
        return Err(StoreError::Conflict(format!(
            "action {id} is being driven by {} (lease until {})",
            before.lease_owner.as_deref().unwrap_or_default(),
            before
                .lease_until
                .map(|it| it.to_rfc3339())
                .unwrap_or_default()
        )));
    }
    sqlx::query(
        "UPDATE actions SET lease_owner = ?, lease_until = ?, lease_token = lease_token + 1 \
         WHERE id = ?",
    )
    .bind(holder)
    .bind(lease_end(at, lease)?)
    .bind(id)
    .execute(&mut **tx)
    .await
    .map_err(map_err)?;
    if before.lease_owner.as_deref().is_some_and(|it| it != holder) {
        append_events(
            tx,
            keys,
            at,
            vec![NewEvent::new(
                "action.claimed",
                format!("{}/{}", before.source, before.credential_external_id),
                json!({
                    "action": id,
                    "holder": holder,
                    "from": before.lease_owner,
                    "token": before.lease_token + 1,
                }),
            )],
        )
        .await?;
    }
    fetch_action(tx, id).await
}

/// Extends the lease `holder` holds under `token`; returns its new end.
pub(super) async fn renew(
    tx: &mut Transaction<'_, Sqlite>,
    id: i64,
    holder: &str,
    token: i64,
    at: DateTime<Utc>,
    lease: TimeDelta,
) -> Result<DateTime<Utc>> {
    let before = fetch_action(tx, id).await?;
    if !before.status.is_open() {
        return Err(StoreError::Conflict(format!(
            "action {id} is already {}; there is no lease to renew",
            before.status
        )));
    }
    check_fence(&before, holder, token)?;
    let until = lease_end(at, lease)?;
    sqlx::query("UPDATE actions SET lease_until = ? WHERE id = ?")
        .bind(until)
        .bind(id)
        .execute(&mut **tx)
        .await
        .map_err(map_err)?;
    Ok(until)
}

/// Gives up the lease if `holder` still holds it under `token`.
pub(super) async fn release(
    tx: &mut Transaction<'_, Sqlite>,
    id: i64,
    holder: &str,
    token: i64,
) -> Result<()> {
    sqlx::query(
        "UPDATE actions SET lease_owner = NULL, lease_until = NULL \
         WHERE id = ? AND lease_owner = ? AND lease_token = ?",
    )
    .bind(id)
    .bind(holder)
    .bind(token)
    .execute(&mut **tx)
    .await
    .map_err(map_err)?;
    Ok(())
}
