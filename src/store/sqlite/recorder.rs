//! Recording one source's inventory: each batch in its own transaction (identities, credentials,
//! fingerprints, history, scan errors and their audit events), what was not seen marked gone by
//! `finish`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use keywarden_connector::{Credential, CredentialStatus, Identity, Inventory};
use serde_json::json;
use sqlx::query_builder::Separated;
use sqlx::sqlite::SqlitePool;
use sqlx::{QueryBuilder, Sqlite, Transaction};

use super::{
    BATCH, SqliteStore, append_events, audit, begin_timed, from_json, map_err, opt_time, to_json,
};
use crate::audit::{ChainKeys, NewEvent};
use crate::store::{Result, ScanId, SourceDiff, SourceRecorder, StoreError};

/// A credential row as it stood before this scan.
#[derive(sqlx::FromRow)]
struct Existing {
    id: i64,
    external_id: String,
    status: String,
    data: String,
}

/// A field of a credential whose change is written to its history.
fn tracked_changes(old: &Credential, new: &Credential) -> Vec<(&'static str, String, String)> {
    let mut changes = Vec::new();
    if old.status != new.status {
        changes.push((
            "status",
            old.status.as_str().to_owned(),
            new.status.as_str().to_owned(),
        ));
    }
    if old.last_used != new.last_used {
        changes.push(("last_used", last_used_text(old), last_used_text(new)));
    }
    if old.owner != new.owner {
        changes.push((
            "owner",
            old.owner.clone().unwrap_or_default(),
            new.owner.clone().unwrap_or_default(),
        ));
    }
    if old.signs_with != new.signs_with {
        changes.push((
            "signs_with",
            old.signs_with.join(","),
            new.signs_with.join(","),
        ));
    }
    if old.expires_at != new.expires_at {
        changes.push((
            "expires_at",
            opt_time(old.expires_at).unwrap_or_default(),
            opt_time(new.expires_at).unwrap_or_default(),
        ));
    }
    changes
}

fn last_used_text(credential: &Credential) -> String {
    match &credential.last_used {
        keywarden_connector::LastUse::Unknown => "unknown".to_owned(),
        keywarden_connector::LastUse::Never => "never".to_owned(),
        keywarden_connector::LastUse::At { at, source } => {
            format!(
                "{} ({source})",
                at.to_rfc3339_opts(SecondsFormat::Secs, true)
            )
        }
    }
}

struct HistoryRow {
    credential_id: i64,
    external_id: String,
    change: &'static str,
    old_value: Option<String>,
    new_value: Option<String>,
}

/// Writes history rows and, in the same transaction, one audit event for each.
async fn insert_history(
    tx: &mut Transaction<'_, Sqlite>,
    keys: &ChainKeys,
    scan: ScanId,
    source: &str,
    at: DateTime<Utc>,
    rows: &[HistoryRow],
) -> Result<()> {
    for chunk in rows.chunks(BATCH) {
        let mut query = QueryBuilder::<Sqlite>::new(
            "INSERT INTO credential_history (credential_id, scan_id, at, change, old_value, new_value) ",
        );
        query.push_values(chunk, |mut row, it| {
            row.push_bind(it.credential_id)
                .push_bind(scan.0)
                .push_bind(at)
                .push_bind(it.change)
                .push_bind(it.old_value.clone())
                .push_bind(it.new_value.clone());
        });
        query.build().execute(&mut **tx).await.map_err(map_err)?;
    }
    let events = rows
        .iter()
        .map(|it| {
            audit::history_event(
                source,
                &it.external_id,
                scan,
                it.change,
                it.old_value.as_deref(),
                it.new_value.as_deref(),
            )
        })
        .collect();
    append_events(tx, keys, at, events).await
}

async fn insert_fingerprints(
    tx: &mut Transaction<'_, Sqlite>,
    rows: &[(i64, &keywarden_connector::Fingerprint)],
) -> Result<()> {
    for chunk in rows.chunks(BATCH) {
        let mut query = QueryBuilder::<Sqlite>::new(
            "INSERT OR IGNORE INTO fingerprints (credential_id, algorithm, value) ",
        );
        query.push_values(chunk, |mut row, (id, fingerprint)| {
            row.push_bind(*id)
                .push_bind(fingerprint.algorithm.clone())
                .push_bind(fingerprint.value.clone());
        });
        query.build().execute(&mut **tx).await.map_err(map_err)?;
    }
    Ok(())
}

/// Records which signers each credential can sign with (its `signs_with`).
async fn insert_signing_power(
    tx: &mut Transaction<'_, Sqlite>,
    rows: &[(i64, &String)],
) -> Result<()> {
    for chunk in rows.chunks(BATCH) {
        let mut query = QueryBuilder::<Sqlite>::new(
            "INSERT OR IGNORE INTO signing_power (credential_id, key_id) ",
        );
        query.push_values(chunk, |mut row, (id, key_id)| {
            row.push_bind(*id).push_bind((*key_id).clone());
        });
        query.build().execute(&mut **tx).await.map_err(map_err)?;
    }
    Ok(())
}

async fn upsert_identities(
    tx: &mut Transaction<'_, Sqlite>,
    scan: ScanId,
    source: &str,
    identities: &[Identity],
    at: DateTime<Utc>,
) -> Result<()> {
    let mut rows = Vec::with_capacity(identities.len());
    for identity in identities {
        rows.push((identity, to_json(identity)?));
    }
    for chunk in rows.chunks(BATCH) {
        let mut query = QueryBuilder::<Sqlite>::new(
            "INSERT INTO identities (source, external_id, kind, name, owner, data, first_seen, \
             last_seen, gone_at, last_scan_id) ",
        );
        query.push_values(chunk, |mut row, (identity, data)| {
            row.push_bind(source.to_owned())
                .push_bind(identity.external_id.clone())
                .push_bind(identity.kind.as_str())
                .push_bind(identity.name.clone())
                .push_bind(identity.owner.clone())
                .push_bind(data.clone())
                .push_bind(at)
                .push_bind(at)
                .push_bind(None::<String>)
                .push_bind(scan.0);
        });
        query.push(
            " ON CONFLICT (source, external_id) DO UPDATE SET kind = excluded.kind, \
             name = excluded.name, owner = excluded.owner, data = excluded.data, \
             last_seen = excluded.last_seen, gone_at = NULL, \
             last_scan_id = MAX(last_scan_id, excluded.last_scan_id)",
        );
        query.build().execute(&mut **tx).await.map_err(map_err)?;
    }
    Ok(())
}

/// Records one source's inventory: each batch in its own transaction, what was not seen marked
/// gone only by [`SourceRecorder::finish`].
pub(super) struct SqliteSourceRecorder {
    pool: SqlitePool,
    keys: Arc<ChainKeys>,
    scan: ScanId,
    source: String,
    at: DateTime<Utc>,
    diff: SourceDiff,
    /// Every credential id this scan has seen, to catch one reported twice.
    seen: HashSet<String>,
    /// The connector's state, saved by `finish`.
    state: Option<serde_json::Value>,
    /// Batches not yet written, merged (see [`GROUP_ROWS`]).
    pending: Inventory,
}

/// The connector's batches are written in groups of about this many rows (identities and
/// credentials), one transaction each: every commit rewrites each B-tree page it touched, so a
/// group of several batches writes far fewer pages than each batch alone, while the write lock is
/// still held only while a group is written (never while the connector works).
const GROUP_ROWS: usize = 10_000;

impl SqliteSourceRecorder {
    pub(super) fn new(
        store: &SqliteStore,
        scan: ScanId,
        source: String,
        at: DateTime<Utc>,
    ) -> Self {
        Self {
            pool: store.pool.clone(),
            keys: store.keys.clone(),
            scan,
            source,
            at,
            diff: SourceDiff::default(),
            seen: HashSet::new(),
            state: None,
            pending: Inventory::default(),
        }
    }

    /// Writes the pending group, if any.
    async fn flush(&mut self) -> Result<()> {
        let mut group = std::mem::take(&mut self.pending);
        if group.identities.is_empty() && group.credentials.is_empty() && group.errors.is_empty() {
            return Ok(());
        }
        // An identity sent in two batches of one group is written once, as last sent.
        let mut last: HashMap<String, usize> = HashMap::with_capacity(group.identities.len());
        for (index, identity) in group.identities.iter().enumerate() {
            last.insert(identity.external_id.clone(), index);
        }
        if last.len() < group.identities.len() {
            let mut index = 0;
            group.identities.retain(|it| {
                let keep = last.get(&it.external_id) == Some(&index);
                index += 1;
                keep
            });
        }
        self.write(&group).await
    }
}

impl SqliteSourceRecorder {
    /// The credentials of a batch this scan has not seen yet; one reported twice is one bad
    /// record (a scan error), not a failed scan.
    fn first_sightings<'a>(
        &mut self,
        credentials: &'a [Credential],
        scan_errors: &mut Vec<(String, String, Option<String>)>,
    ) -> Vec<&'a Credential> {
        let mut fresh = Vec::with_capacity(credentials.len());
        for credential in credentials {
            if self.seen.insert(credential.external_id.clone()) {
                fresh.push(credential);
            } else {
                self.diff.errors += 1;
                scan_errors.push((
                    credential.name.clone(),
                    format!("credential `{}` reported twice", credential.external_id),
                    Some(credential.identity_id.clone()),
                ));
            }
        }
        fresh
    }
}

/// A batch's credentials sorted against the ledger: new, unchanged, changed (with their history).
#[derive(Default)]
struct Sorted<'a> {
    new_rows: Vec<(&'a Credential, String)>,
    unchanged_ids: Vec<i64>,
    /// Changed ones: the credential, its serialised data and its row id.
    updates: Vec<(&'a Credential, String, i64)>,
    history: Vec<HistoryRow>,
}

impl<'a> Sorted<'a> {
    fn add(&mut self, credential: &'a Credential, old: Option<&Existing>) -> Result<()> {
        let data = to_json(credential)?;
        let Some(old) = old else {
            self.new_rows.push((credential, data));
            return Ok(());
        };
        let was_gone = old.status == CredentialStatus::Gone.as_str();
        if old.data == data && !was_gone {
            self.unchanged_ids.push(old.id);
            return Ok(());
        }
        let previous: Credential = from_json(&old.data)?;
        if was_gone {
            self.history.push(HistoryRow {
                credential_id: old.id,
                external_id: credential.external_id.clone(),
                change: "reappeared",
                old_value: Some(old.status.clone()),
                new_value: Some(credential.status.as_str().to_owned()),
            });
        }
        for (change, old_value, new_value) in tracked_changes(&previous, credential) {
            self.history.push(HistoryRow {
                credential_id: old.id,
                external_id: credential.external_id.clone(),
                change,
                old_value: Some(old_value),
                new_value: Some(new_value),
            });
        }
        self.updates.push((credential, data, old.id));
        Ok(())
    }
}

/// Writes changed credentials over their rows (a multi-row upsert on the (source, external id)
/// key: one statement per 1,000, not one per credential) and drops their fingerprints and signing power,
/// written again after.
async fn update_credentials(
    tx: &mut Transaction<'_, Sqlite>,
    scan: ScanId,
    source: &str,
    at: DateTime<Utc>,
    updates: &[(&Credential, String, i64)],
) -> Result<()> {
    for chunk in updates.chunks(BATCH) {
        let mut query = QueryBuilder::<Sqlite>::new(INSERT_CREDENTIALS);
        query.push_values(chunk, |row, (credential, data, _)| {
            bind_credential(row, source, credential, data, at, scan);
        });
        // `first_seen` is kept; everything the source shows is replaced.
        query.push(
            " ON CONFLICT (source, external_id) DO UPDATE SET \
             identity_external_id = excluded.identity_external_id, kind = excluded.kind, \
             name = excluded.name, status = excluded.status, created_at = excluded.created_at, \
             expires_at = excluded.expires_at, last_used_at = excluded.last_used_at, \
             owner = excluded.owner, data = excluded.data, last_seen = excluded.last_seen, \
             gone_at = NULL, last_scan_id = MAX(last_scan_id, excluded.last_scan_id)",
        );
        query.build().execute(&mut **tx).await.map_err(map_err)?;
        for table in ["fingerprints", "signing_power"] {
            let mut query = QueryBuilder::<Sqlite>::new(format!(
                "DELETE FROM {table} WHERE credential_id IN ("
            ));
            let mut ids = query.separated(", ");
            for (_, _, id) in chunk {
                ids.push_bind(*id);
            }
            ids.push_unseparated(")");
            query.build().execute(&mut **tx).await.map_err(map_err)?;
        }
    }
    Ok(())
}

/// One row of [`INSERT_CREDENTIALS`].
fn bind_credential(
    mut row: Separated<'_, Sqlite, &'static str>,
    source: &str,
    credential: &Credential,
    data: &str,
    at: DateTime<Utc>,
    scan: ScanId,
) {
    row.push_bind(source.to_owned())
        .push_bind(credential.external_id.clone())
        .push_bind(credential.identity_id.clone())
        .push_bind(credential.kind.as_str())
        .push_bind(credential.name.clone())
        .push_bind(credential.status.as_str())
        .push_bind(credential.created_at)
        .push_bind(credential.expires_at)
        .push_bind(credential.last_used.at())
        .push_bind(credential.owner.clone())
        .push_bind(data.to_owned())
        .push_bind(at)
        .push_bind(at)
        .push_bind(scan.0);
}

/// The columns a credential row is written with, new or changed.
const INSERT_CREDENTIALS: &str = "INSERT INTO credentials (source, external_id, \
     identity_external_id, kind, name, status, created_at, expires_at, last_used_at, owner, data, \
     first_seen, last_seen, last_scan_id) ";

/// Inserts new credentials in multi-row statements; RETURNING maps each back to its row id.
async fn insert_credentials<'a>(
    tx: &mut Transaction<'_, Sqlite>,
    scan: ScanId,
    source: &str,
    at: DateTime<Utc>,
    rows: &[(&'a Credential, String)],
) -> Result<Vec<(i64, &'a Credential)>> {
    let mut inserted = Vec::with_capacity(rows.len());
    for chunk in rows.chunks(BATCH) {
        let mut query = QueryBuilder::<Sqlite>::new(INSERT_CREDENTIALS);
        query.push_values(chunk, |row, (credential, data)| {
            bind_credential(row, source, credential, data, at, scan);
        });
        query.push(" RETURNING id, external_id");
        let returned: Vec<(i64, String)> = query
            .build_query_as()
            .fetch_all(&mut **tx)
            .await
            .map_err(map_err)?;
        let ids: HashMap<&str, i64> = returned
            .iter()
            .map(|(id, external_id)| (external_id.as_str(), *id))
            .collect();
        for (credential, _) in chunk {
            let id = *ids.get(credential.external_id.as_str()).ok_or_else(|| {
                StoreError::Corrupt(format!("no row id for {}", credential.external_id))
            })?;
            inserted.push((id, *credential));
        }
    }
    Ok(inserted)
}

/// Marks credentials seen again without a change as seen by this scan.
async fn touch_unchanged(
    tx: &mut Transaction<'_, Sqlite>,
    scan: ScanId,
    at: DateTime<Utc>,
    ids: &[i64],
) -> Result<()> {
    for chunk in ids.chunks(BATCH) {
        let mut query = QueryBuilder::<Sqlite>::new("UPDATE credentials SET last_seen = ");
        query.push_bind(at);
        query.push(", last_scan_id = MAX(last_scan_id, ");
        query.push_bind(scan.0);
        query.push(") WHERE id IN (");
        let mut list = query.separated(", ");
        for id in chunk {
            list.push_bind(*id);
        }
        list.push_unseparated(")");
        query.build().execute(&mut **tx).await.map_err(map_err)?;
    }
    Ok(())
}

async fn insert_scan_errors(
    tx: &mut Transaction<'_, Sqlite>,
    scan: ScanId,
    source: &str,
    errors: &[(String, String, Option<String>)],
) -> Result<()> {
    for chunk in errors.chunks(BATCH) {
        let mut query = QueryBuilder::<Sqlite>::new(
            "INSERT INTO scan_errors (scan_id, source, subject, message, identity) ",
        );
        query.push_values(chunk, |mut row, (subject, message, identity)| {
            row.push_bind(scan.0)
                .push_bind(source.to_owned())
                .push_bind(subject.clone())
                .push_bind(message.clone())
                .push_bind(identity.clone());
        });
        query.build().execute(&mut **tx).await.map_err(map_err)?;
    }
    Ok(())
}

#[async_trait]
impl SourceRecorder for SqliteSourceRecorder {
    async fn batch(&mut self, batch: &Inventory) -> Result<()> {
        let pending = &mut self.pending;
        pending.identities.extend(batch.identities.iter().cloned());
        pending
            .credentials
            .extend(batch.credentials.iter().cloned());
        pending.errors.extend(batch.errors.iter().cloned());
        if pending.identities.len() + pending.credentials.len() >= GROUP_ROWS {
            self.flush().await?;
        }
        Ok(())
    }

    fn save_state(&mut self, state: serde_json::Value) {
        self.state = Some(state);
    }

    async fn finish(mut self: Box<Self>) -> Result<SourceDiff> {
        self.flush().await?;
        self.mark_gone().await
    }
}

impl SqliteSourceRecorder {
    /// Writes one group: identities, credentials, fingerprints, history, scan errors and their
    /// audit events, in one transaction.
    async fn write(&mut self, batch: &Inventory) -> Result<()> {
        self.diff.errors += batch.errors.len() as u64;
        let mut scan_errors: Vec<(String, String, Option<String>)> = batch
            .errors
            .iter()
            .map(|it| (it.subject.clone(), it.message.clone(), it.identity.clone()))
            .collect();
        let fresh = self.first_sightings(&batch.credentials, &mut scan_errors);
        let (scan, at, source) = (self.scan, self.at, self.source.as_str());
        let (mut tx, _timed) = begin_timed(&self.pool, "batch").await?;

        let identity_events =
            audit::identity_changes(&mut tx, scan, source, &batch.identities).await?;
        upsert_identities(&mut tx, scan, source, &batch.identities, at).await?;
        append_events(&mut tx, &self.keys, at, identity_events).await?;

        let existing = existing_credentials(&mut tx, source, &fresh).await?;
        let mut sorted = Sorted::default();
        for credential in fresh {
            self.diff.seen += 1;
            sorted.add(credential, existing.get(&credential.external_id))?;
        }
        self.diff.changed += sorted.updates.len() as u64;
        self.diff.new += sorted.new_rows.len() as u64;
        let mut fingerprints = Vec::new();
        let mut power = Vec::new();
        update_credentials(&mut tx, scan, source, at, &sorted.updates).await?;
        for (credential, _, id) in &sorted.updates {
            fingerprints.extend(credential.fingerprints.iter().map(|it| (*id, it)));
            power.extend(credential.signs_with.iter().map(|it| (*id, it)));
        }
        insert_fingerprints(&mut tx, &fingerprints).await?;
        let new = insert_credentials(&mut tx, scan, source, at, &sorted.new_rows).await?;
        let mut fingerprints = Vec::new();
        for (id, credential) in &new {
            sorted.history.push(HistoryRow {
                credential_id: *id,
                external_id: credential.external_id.clone(),
                change: "first_seen",
                old_value: None,
                new_value: Some(credential.status.as_str().to_owned()),
            });
            fingerprints.extend(credential.fingerprints.iter().map(|it| (*id, it)));
            power.extend(credential.signs_with.iter().map(|it| (*id, it)));
        }
        insert_fingerprints(&mut tx, &fingerprints).await?;
        insert_signing_power(&mut tx, &power).await?;
        touch_unchanged(&mut tx, scan, at, &sorted.unchanged_ids).await?;
        insert_history(&mut tx, &self.keys, scan, source, at, &sorted.history).await?;
        insert_scan_errors(&mut tx, scan, source, &scan_errors).await?;
        tx.commit().await.map_err(map_err)
    }

    /// Marks what the scan did not see as gone and records the source as scanned.
    async fn mark_gone(&self) -> Result<SourceDiff> {
        let (scan, at, source) = (self.scan, self.at, self.source.as_str());
        let mut diff = self.diff.clone();
        let (mut tx, _timed) = begin_timed(&self.pool, "finish").await?;
        // What this scan did not see is gone.
        let gone_identities: Vec<String> = sqlx::query_scalar(
            "UPDATE identities SET gone_at = ? WHERE source = ? AND last_scan_id < ? AND gone_at IS NULL \
             RETURNING external_id",
        )
        .bind(at)
        .bind(source)
        .bind(scan.0)
        .fetch_all(&mut *tx)
        .await
        .map_err(map_err)?;
        let identity_events = gone_identities
            .into_iter()
            .map(|id| audit::identity_event("identity.gone", source, &id, scan, json!({})))
            .collect();
        append_events(&mut tx, &self.keys, at, identity_events).await?;
        let gone: Vec<(i64, String, String)> = sqlx::query_as(
            "SELECT id, external_id, status FROM credentials \
             WHERE source = ? AND status != 'gone' AND last_scan_id < ?",
        )
        .bind(source)
        .bind(scan.0)
        .fetch_all(&mut *tx)
        .await
        .map_err(map_err)?;
        sqlx::query(
            "UPDATE credentials SET status = 'gone', gone_at = ? \
             WHERE source = ? AND status != 'gone' AND last_scan_id < ?",
        )
        .bind(at)
        .bind(source)
        .bind(scan.0)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        diff.gone = gone.len() as u64;
        let mut history = Vec::with_capacity(gone.len());
        let mut events = Vec::with_capacity(1);
        for (id, external_id, status) in gone {
            history.push(HistoryRow {
                credential_id: id,
                external_id,
                change: "gone",
                old_value: Some(status),
                new_value: Some("gone".to_owned()),
            });
        }
        insert_history(&mut tx, &self.keys, scan, source, at, &history).await?;

        sqlx::query(
            "INSERT INTO scan_sources (scan_id, source, status, credentials, new_credentials, \
             changed_credentials, gone_credentials) VALUES (?, ?, 'completed', ?, ?, ?, ?)",
        )
        .bind(scan.0)
        .bind(source)
        .bind(diff.seen as i64)
        .bind(diff.new as i64)
        .bind(diff.changed as i64)
        .bind(diff.gone as i64)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        sqlx::query(
            "UPDATE sources SET last_scan_id = ?, \
             connector_state = COALESCE(?, connector_state) WHERE name = ?",
        )
        .bind(scan.0)
        .bind(self.state.as_ref().map(|it| it.to_string()))
        .bind(source)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        events.push(NewEvent::new(
            "source.scanned",
            format!("source/{source}"),
            json!({
                "scan": scan.0,
                "credentials": diff.seen,
                "new": diff.new,
                "changed": diff.changed,
                "gone": diff.gone,
                "errors": diff.errors,
            }),
        ));
        append_events(&mut tx, &self.keys, at, events).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(diff)
    }
}

/// The stored rows of the given credentials of a source, by external id.
async fn existing_credentials(
    tx: &mut Transaction<'_, Sqlite>,
    source: &str,
    credentials: &[&Credential],
) -> Result<HashMap<String, Existing>> {
    let mut existing = HashMap::with_capacity(credentials.len());
    for chunk in credentials.chunks(BATCH) {
        let mut query = QueryBuilder::<Sqlite>::new(
            "SELECT id, external_id, status, data FROM credentials WHERE source = ",
        );
        query.push_bind(source.to_owned());
        query.push(" AND external_id IN (");
        let mut ids = query.separated(", ");
        for credential in chunk {
            ids.push_bind(credential.external_id.clone());
        }
        ids.push_unseparated(")");
        let rows: Vec<Existing> = query
            .build_query_as()
            .fetch_all(&mut **tx)
            .await
            .map_err(map_err)?;
        for row in rows {
            existing.insert(row.external_id.clone(), row);
        }
    }
    Ok(existing)
}
