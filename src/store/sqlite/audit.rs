//! The audit log in SQLite: keyed events appended inside the caller's transaction, the key checked
//! and the legacy prefix closed at open, pages of events, streamed verification.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use keywarden_connector::Identity;
use serde_json::json;
use sqlx::sqlite::SqlitePool;
use sqlx::{QueryBuilder, Row, Sqlite, Transaction};

use super::{BATCH, map_err};
use async_trait::async_trait;

use super::SqliteStore;
use crate::audit::{
    self, AuditFailure, AuditKey, BrokenLink, ChainKeys, Checkpoint, Event, Head, KEYED_MARKER,
    NewEvent, StoredEvent, Verified, Verifier,
};
use crate::store::audit_key::{KEY_ENV, KeySource};
use crate::store::{AuditLog, Result, ScanId, StoreError};

/// Events per page when the log is read in order (verification, export): about 3 MB of rows.
pub(super) const EVENT_PAGE: u32 = 10_000;

/// Appends events to the keyed chain inside the caller's transaction, in multi-row inserts.
pub(super) async fn append_events(
    tx: &mut Transaction<'_, Sqlite>,
    keys: &ChainKeys,
    at: DateTime<Utc>,
    events: Vec<NewEvent>,
) -> Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    // Micro-second precision so the stored text round-trips exactly into the hash input.
    let at = audit::event_time_text(at);
    let at_parsed = parse_time(&at)?;
    let last: Option<(i64, String)> =
        sqlx::query_as("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&mut **tx)
            .await
            .map_err(map_err)?;
    let (mut seq, mut prev_hash) = last.unwrap_or((0, audit::GENESIS.to_owned()));
    let mut rows = Vec::with_capacity(events.len());
    for event in events {
        seq += 1;
        let data = event.data.to_string();
        let hash = keys.event_hash(
            seq,
            at_parsed,
            event.kind,
            &event.subject,
            &data,
            &prev_hash,
        );
        let prev = std::mem::replace(&mut prev_hash, hash.clone());
        rows.push((seq, event.kind, event.subject, data, prev, hash));
    }
    for chunk in rows.chunks(BATCH) {
        let mut query = QueryBuilder::<Sqlite>::new(
            "INSERT INTO events (seq, at, kind, subject, data, prev_hash, hash) ",
        );
        query.push_values(chunk, |mut row, (seq, kind, subject, data, prev, hash)| {
            row.push_bind(*seq)
                .push_bind(at.as_str())
                .push_bind(*kind)
                .push_bind(subject.as_str())
                .push_bind(data.as_str())
                .push_bind(prev.as_str())
                .push_bind(hash.as_str());
        });
        query.build().execute(&mut **tx).await.map_err(map_err)?;
    }
    Ok(())
}

fn parse_time(at: &str) -> Result<DateTime<Utc>> {
    Ok(DateTime::parse_from_rfc3339(at)
        .map_err(|err| StoreError::Corrupt(format!("event time `{at}`: {err}")))?
        .with_timezone(&Utc))
}

/// The legacy boundary and the recorded key id.
async fn meta<'c, E>(executor: E) -> Result<(i64, Option<String>)>
where
    E: sqlx::Executor<'c, Database = Sqlite>,
{
    sqlx::query_as("SELECT legacy_through, key_id FROM audit_meta WHERE id = 1")
        .fetch_optional(executor)
        .await
        .map_err(map_err)?
        .ok_or_else(|| StoreError::Corrupt("the audit_meta row is missing".to_owned()))
}

/// The events up to this sequence number are the legacy (unkeyed) prefix.
pub(super) async fn legacy_through(pool: &SqlitePool) -> Result<i64> {
    Ok(meta(pool).await?.0)
}

/// The key of the store: loaded from `source`, or created there unless the log is already keyed
/// (a new key would not verify it).
pub(super) async fn resolve_key(pool: &SqlitePool, source: &KeySource) -> Result<AuditKey> {
    if let Some(key) = source.load()? {
        return Ok(key);
    }
    if let (_, Some(id)) = meta(pool).await? {
        // Another process may have made the key and keyed the log between the two reads (three
        // scans started together on a new store): read the file again before refusing.
        if let Some(key) = source.load()? {
            return Ok(key);
        }
        return Err(StoreError::AuditKey(format!(
            "the audit log is keyed (key id {id}) but its key file {source} does not exist: \
             restore it or set {KEY_ENV}; a new key would not verify the log"
        )));
    }
    source.create()
}

/// Binds the store to its key: refuses a key other than the one the log is keyed with, records
/// the key's id at first use, and closes a legacy prefix with the keyed marker.
pub(super) async fn attach_key(pool: &SqlitePool, key: &AuditKey) -> Result<ChainKeys> {
    let keys = ChainKeys::derive(key);
    // Usually there is nothing to write: check without taking the write lock first.
    let (legacy_through, key_id) = meta(pool).await?;
    check_key_id(key_id.as_deref(), &keys)?;
    if key_id.is_some() && (legacy_through == 0 || max_seq(pool).await? != Some(legacy_through)) {
        return Ok(keys);
    }
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(map_err)?;
    let (legacy_through, key_id) = meta(&mut *tx).await?;
    check_key_id(key_id.as_deref(), &keys)?;
    match key_id {
        Some(_) => {}
        None => {
            sqlx::query("UPDATE audit_meta SET key_id = ? WHERE id = 1")
                .bind(keys.key_id())
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
        }
    }
    // Only a log that still ends at its legacy prefix gets the marker; anything else is left for
    // `audit verify` to report.
    if legacy_through > 0 && max_seq(&mut *tx).await? == Some(legacy_through) {
        let (at, hash): (String, String) =
            sqlx::query_as("SELECT at, hash FROM events WHERE seq = ?")
                .bind(legacy_through)
                .fetch_one(&mut *tx)
                .await
                .map_err(map_err)?;
        append_events(
            &mut tx,
            &keys,
            parse_time(&at)?,
            vec![NewEvent::new(
                KEYED_MARKER,
                "audit",
                audit::keyed_marker_data(legacy_through, &hash),
            )],
        )
        .await?;
    }
    tx.commit().await.map_err(map_err)?;
    Ok(keys)
}

/// The event of one row of a credential's history, written with it.
pub(super) fn history_event(
    source: &str,
    external_id: &str,
    scan: ScanId,
    change: &str,
    old: Option<&str>,
    new: Option<&str>,
) -> NewEvent {
    let kind = match change {
        "first_seen" => "credential.first_seen",
        "status" => "credential.status_changed",
        "last_used" => "credential.last_used_changed",
        "owner" => "credential.owner_changed",
        "expires_at" => "credential.expiry_changed",
        "signs_with" => "credential.signing_power_changed",
        "gone" => "credential.gone",
        "reappeared" => "credential.reappeared",
        _ => "credential.changed",
    };
    NewEvent::new(
        kind,
        format!("{source}/{external_id}"),
        json!({ "scan": scan.0, "change": change, "old": old, "new": new }),
    )
}

/// An event about one identity of a source.
pub(super) fn identity_event(
    kind: &'static str,
    source: &str,
    external_id: &str,
    scan: ScanId,
    mut data: serde_json::Value,
) -> NewEvent {
    if let Some(object) = data.as_object_mut() {
        object.insert("scan".to_owned(), json!(scan.0));
    }
    NewEvent::new(kind, format!("identity/{source}/{external_id}"), data)
}

/// The events of a batch's identities against the ledger before it is upserted: first seen,
/// back after being gone, owner changed.
pub(super) async fn identity_changes(
    tx: &mut Transaction<'_, Sqlite>,
    scan: ScanId,
    source: &str,
    identities: &[Identity],
) -> Result<Vec<NewEvent>> {
    let mut known: HashMap<String, (Option<String>, bool)> =
        HashMap::with_capacity(identities.len());
    for chunk in identities.chunks(BATCH) {
        let mut query = QueryBuilder::<Sqlite>::new(
            "SELECT external_id, owner, gone_at IS NOT NULL AS gone FROM identities WHERE source = ",
        );
        query.push_bind(source);
        query.push(" AND external_id IN (");
        let mut ids = query.separated(", ");
        for identity in chunk {
            ids.push_bind(identity.external_id.as_str());
        }
        ids.push_unseparated(")");
        let rows: Vec<(String, Option<String>, bool)> = query
            .build_query_as()
            .fetch_all(&mut **tx)
            .await
            .map_err(map_err)?;
        known.extend(
            rows.into_iter()
                .map(|(id, owner, gone)| (id, (owner, gone))),
        );
    }
    let mut events = Vec::new();
    for identity in identities {
        let id = identity.external_id.as_str();
        match known.get(id) {
            None => events.push(identity_event(
                "identity.first_seen",
                source,
                id,
                scan,
                json!({ "kind": identity.kind.as_str(), "owner": identity.owner }),
            )),
            Some((owner, gone)) => {
                if *gone {
                    events.push(identity_event(
                        "identity.reappeared",
                        source,
                        id,
                        scan,
                        json!({}),
                    ));
                }
                if *owner != identity.owner {
                    events.push(identity_event(
                        "identity.owner_changed",
                        source,
                        id,
                        scan,
                        json!({ "old": owner, "new": identity.owner }),
                    ));
                }
            }
        }
    }
    Ok(events)
}

fn check_key_id(recorded: Option<&str>, keys: &ChainKeys) -> Result<()> {
    match recorded {
        Some(id) if id != keys.key_id() => Err(StoreError::AuditKey(format!(
            "the audit log is keyed with key id {id}, not with the given key (id {})",
            keys.key_id()
        ))),
        _ => Ok(()),
    }
}

async fn max_seq<'c, E>(executor: E) -> Result<Option<i64>>
where
    E: sqlx::Executor<'c, Database = Sqlite>,
{
    sqlx::query_scalar("SELECT MAX(seq) FROM events")
        .fetch_one(executor)
        .await
        .map_err(map_err)
}

fn event_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<Event> {
    let at: String = row.try_get("at").map_err(map_err)?;
    Ok(Event {
        seq: row.try_get("seq").map_err(map_err)?,
        at: parse_time(&at)?,
        kind: row.try_get("kind").map_err(map_err)?,
        subject: row.try_get("subject").map_err(map_err)?,
        data: row.try_get("data").map_err(map_err)?,
        prev_hash: row.try_get("prev_hash").map_err(map_err)?,
        hash: row.try_get("hash").map_err(map_err)?,
    })
}

async fn page<'c, E>(executor: E, after: i64, limit: u32) -> Result<Vec<Event>>
where
    E: sqlx::Executor<'c, Database = Sqlite>,
{
    let rows = sqlx::query(
        "SELECT seq, at, kind, subject, data, prev_hash, hash FROM events \
         WHERE seq > ? ORDER BY seq LIMIT ?",
    )
    .bind(after)
    .bind(i64::from(limit))
    .fetch_all(executor)
    .await
    .map_err(map_err)?;
    rows.iter().map(event_from_row).collect()
}

/// Up to `limit` events after `after`, in sequence order.
pub(super) async fn events_page(pool: &SqlitePool, after: i64, limit: u32) -> Result<Vec<Event>> {
    page(pool, after, limit).await
}

/// Feeds the whole log to `verifier` page by page, inside one read transaction (one snapshot).
/// Each row is checked as stored, its text fields borrowed (no copy, no time parsing).
pub(super) async fn verify(
    pool: &SqlitePool,
    mut verifier: Verifier<'_>,
) -> Result<std::result::Result<Verified, BrokenLink>> {
    let mut tx = pool.begin().await.map_err(map_err)?;
    let mut after = 0;
    loop {
        let rows = sqlx::query(
            "SELECT seq, at, kind, subject, data, prev_hash, hash FROM events \
             WHERE seq > ? ORDER BY seq LIMIT ?",
        )
        .bind(after)
        .bind(i64::from(EVENT_PAGE))
        .fetch_all(&mut *tx)
        .await
        .map_err(map_err)?;
        let Some(last) = rows.last() else {
            break;
        };
        after = last.try_get(0).map_err(map_err)?;
        for row in &rows {
            let event = StoredEvent {
                seq: row.try_get(0).map_err(map_err)?,
                at: row.try_get(1).map_err(map_err)?,
                kind: row.try_get(2).map_err(map_err)?,
                subject: row.try_get(3).map_err(map_err)?,
                data: row.try_get(4).map_err(map_err)?,
                prev_hash: row.try_get(5).map_err(map_err)?,
                hash: row.try_get(6).map_err(map_err)?,
            };
            if let Err(broken) = verifier.push_stored(&event) {
                tx.rollback().await.map_err(map_err)?;
                return Ok(Err(broken));
            }
        }
    }
    tx.rollback().await.map_err(map_err)?;
    Ok(verifier.finish())
}

#[async_trait]
impl AuditLog for SqliteStore {
    async fn events_page(&self, after: i64, limit: u32) -> Result<Vec<Event>> {
        events_page(&self.pool, after, limit).await
    }

    async fn verify_audit(&self) -> Result<std::result::Result<u64, BrokenLink>> {
        let legacy_through = legacy_through(&self.pool).await?;
        let verified = verify(&self.pool, Verifier::new(&self.keys, legacy_through)).await?;
        Ok(verified.map(|it| it.events))
    }

    async fn verify_audit_with(
        &self,
        checkpoint: Option<&Checkpoint>,
    ) -> Result<std::result::Result<Verified, AuditFailure>> {
        let legacy_through = legacy_through(&self.pool).await?;
        let mut verifier = Verifier::new(&self.keys, legacy_through);
        if let Some(checkpoint) = checkpoint {
            verifier = match verifier.with_checkpoint(checkpoint) {
                Ok(it) => it,
                Err(err) => return Ok(Err(AuditFailure::Checkpoint(err))),
            };
        }
        Ok(verify(&self.pool, verifier)
            .await?
            .map_err(AuditFailure::Broken))
    }

    fn audit_checkpoint(&self, head: &Head, at: DateTime<Utc>) -> Checkpoint {
        self.keys.checkpoint(head, at)
    }
}

#[cfg(test)]
mod tests;
