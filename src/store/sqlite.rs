//! The SQLite backend: one file, WAL, created and migrated on first open.
//!
//! Several keywarden processes may share one file (a daemon and CLI calls, several scans). Every
//! transaction that writes begins `IMMEDIATE` ([`begin_write`]): it takes the write lock before
//! it reads, so a read-then-write can never find its snapshot stale (`SQLITE_BUSY_SNAPSHOT`).
//! A writer waits for another's lock up to the busy timeout, then retries with back-off and
//! jitter; what is still busy after that is [`StoreError::Unavailable`].

mod leases;
mod pool;
mod rows;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use backon::Retryable;
use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use keywarden_connector::{
    ConnectorError, Credential, CredentialStatus, Identity, IdentityKind, Inventory, Known,
};
use serde_json::json;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{ConnectOptions, QueryBuilder, Row, Sqlite, Transaction};

pub use self::pool::SqliteOptions;
use self::pool::{Timed, begin_timed, begin_write, busy_backoff, is_retryable, map_err};
use crate::audit::{
    AuditFailure, AuditKey, BrokenLink, ChainKeys, Checkpoint, Event, Head, NewEvent, Verified,
    Verifier,
};
use crate::ledger::{IdentityCounts, LedgerCredential};
use crate::store::audit_key::KeySource;
use crate::store::{
    ACTION_LEASE, ActionRecord, ActionStatus, ActionStep, ActionUpdate, CredentialCursor, Finding,
    FindingChanges, FindingStatus, HistoryEntry, NewAction, Observation, Result, ScanId,
    SourceDiff, SourceRecorder, Store, StoreError, StoredScanError, Suppression,
};

mod audit;

use audit::append_events;

static MIGRATOR: Migrator = sqlx::migrate!("src/store/migrations/sqlite");

/// Rows per multi-row statement; well under SQLite's 32766 bound parameters.
const BATCH: usize = 1000;

/// The ledger in one SQLite file.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// The audit chain's keys (derived from the audit key, which the store does not keep).
    keys: Arc<ChainKeys>,
    lease: TimeDelta,
}

impl SqliteStore {
    /// Opens the store at `path`, creating the file and its tables on first use. The audit key
    /// is `KEYWARDEN_AUDIT_KEY` if set, else the 0600 file `<path>.audit-key` (or
    /// `KEYWARDEN_AUDIT_KEY_FILE`), created with a random key at first use.
    pub async fn open(path: &Path) -> Result<Self> {
        Self::open_with(path, SqliteOptions::default()).await
    }

    /// [`SqliteStore::open`] with these settings.
    pub async fn open_with(path: &Path, settings: SqliteOptions) -> Result<Self> {
        let pool = Self::connect(Self::file_options(path, &settings)?, 4).await?;
        let key = audit::resolve_key(&pool, &KeySource::for_store(path)).await?;
        Self::keyed(pool, &key, settings.action_lease).await
    }

    /// Opens the store at `path` with an explicit audit key.
    pub async fn open_with_key(path: &Path, key: &AuditKey) -> Result<Self> {
        let settings = SqliteOptions::default();
        let pool = Self::connect(Self::file_options(path, &settings)?, 4).await?;
        Self::keyed(pool, key, settings.action_lease).await
    }

    /// A private in-memory store with a random audit key, for tests and benchmarks.
    pub async fn in_memory() -> Result<Self> {
        let key = AuditKey::from_fill(getrandom::fill)
            .map_err(|err| StoreError::AuditKey(format!("no randomness for a key: {err}")))?;
        Self::in_memory_with_key(&key).await
    }

    /// A private in-memory store with the given audit key.
    pub async fn in_memory_with_key(key: &AuditKey) -> Result<Self> {
        let options = SqliteConnectOptions::from_str("sqlite::memory:")
            .map_err(map_err)?
            .foreign_keys(true);
        // One connection: every connection to `:memory:` would be a database of its own.
        let pool = Self::connect(options, 1).await?;
        Self::keyed(pool, key, ACTION_LEASE).await
    }

    fn file_options(path: &Path, settings: &SqliteOptions) -> Result<SqliteConnectOptions> {
        if let Some(parent) = path.parent().filter(|it| !it.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|err| {
                StoreError::Unavailable(format!("cannot create {}: {err}", parent.display()))
            })?;
        }
        Ok(SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(settings.busy_timeout)
            .foreign_keys(true))
    }

    /// Opens the pool and brings the schema up to date.
    async fn connect(options: SqliteConnectOptions, max_connections: u32) -> Result<SqlitePool> {
        // sqlx logs every statement with its whole text (a 1,000-row INSERT is pages long), and
        // slow ones at warn: off. `Timed` logs slow store operations by name instead.
        let options = options.disable_statement_logging();
        let pool = (|| async {
            SqlitePoolOptions::new()
                .max_connections(max_connections)
                .connect_with(options.clone())
                .await
                .map_err(map_err)
        })
        .retry(busy_backoff())
        .when(is_retryable)
        .await?;
        // Under the write lock, so processes opening a new file together migrate it once.
        let mut tx = begin_write(&pool, "migrate").await?;
        MIGRATOR
            .run(&mut *tx)
            .await
            .map_err(|err| StoreError::Database(format!("migration failed: {err}")))?;
        tx.commit().await.map_err(map_err)?;
        Ok(pool)
    }

    /// Binds the pool to its audit key (see [`audit::attach_key`]).
    async fn keyed(pool: SqlitePool, key: &AuditKey, lease: TimeDelta) -> Result<Self> {
        let keys = audit::attach_key(&pool, key).await?;
        Ok(Self {
            pool,
            keys: Arc::new(keys),
            lease,
        })
    }

    /// Closes the pool, checkpointing the WAL.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|err| StoreError::Corrupt(err.to_string()))
}

fn from_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|err| StoreError::Corrupt(err.to_string()))
}

fn opt_time(value: Option<DateTime<Utc>>) -> Option<String> {
    value.map(|it| it.to_rfc3339_opts(SecondsFormat::Secs, true))
}

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
struct SqliteSourceRecorder {
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
}

#[async_trait]
impl SourceRecorder for SqliteSourceRecorder {
    async fn batch(&mut self, batch: &Inventory) -> Result<()> {
        let (scan, at, source) = (self.scan, self.at, self.source.as_str());
        let (mut tx, _timed) = begin_timed(&self.pool, "batch").await?;
        self.diff.errors += batch.errors.len() as u64;
        let mut scan_errors: Vec<(String, String, Option<String>)> = batch
            .errors
            .iter()
            .map(|it| (it.subject.clone(), it.message.clone(), it.identity.clone()))
            .collect();

        let identity_events =
            audit::identity_changes(&mut tx, scan, source, &batch.identities).await?;
        upsert_identities(&mut tx, scan, source, &batch.identities, at).await?;
        append_events(&mut tx, &self.keys, at, identity_events).await?;

        let mut fresh: Vec<&Credential> = Vec::with_capacity(batch.credentials.len());
        for credential in &batch.credentials {
            if self.seen.insert(credential.external_id.clone()) {
                fresh.push(credential);
            } else {
                // A connector reporting one credential twice is one bad record, not a failed scan.
                self.diff.errors += 1;
                scan_errors.push((
                    credential.name.clone(),
                    format!("credential `{}` reported twice", credential.external_id),
                    Some(credential.identity_id.clone()),
                ));
            }
        }
        let existing = existing_credentials(&mut tx, source, &fresh).await?;

        let mut new_rows: Vec<(&Credential, String)> = Vec::new();
        let mut unchanged_ids: Vec<i64> = Vec::new();
        let mut history: Vec<HistoryRow> = Vec::new();
        let mut changed_fingerprints: Vec<(i64, &keywarden_connector::Fingerprint)> = Vec::new();
        for credential in fresh {
            self.diff.seen += 1;
            let data = to_json(credential)?;
            match existing.get(&credential.external_id) {
                None => new_rows.push((credential, data)),
                Some(old) if old.data == data && old.status != CredentialStatus::Gone.as_str() => {
                    unchanged_ids.push(old.id)
                }
                Some(old) => {
                    self.diff.changed += 1;
                    let previous: Credential = from_json(&old.data)?;
                    if old.status == CredentialStatus::Gone.as_str() {
                        history.push(HistoryRow {
                            credential_id: old.id,
                            external_id: credential.external_id.clone(),
                            change: "reappeared",
                            old_value: Some(old.status.clone()),
                            new_value: Some(credential.status.as_str().to_owned()),
                        });
                    }
                    for (change, old_value, new_value) in tracked_changes(&previous, credential) {
                        history.push(HistoryRow {
                            credential_id: old.id,
                            external_id: credential.external_id.clone(),
                            change,
                            old_value: Some(old_value),
                            new_value: Some(new_value),
                        });
                    }
                    sqlx::query(
                        "UPDATE credentials SET identity_external_id = ?, kind = ?, name = ?, \
                         status = ?, created_at = ?, expires_at = ?, last_used_at = ?, owner = ?, \
                         data = ?, last_seen = ?, gone_at = NULL, last_scan_id = MAX(last_scan_id, ?) \
                         WHERE id = ?",
                    )
                    .bind(&credential.identity_id)
                    .bind(credential.kind.as_str())
                    .bind(&credential.name)
                    .bind(credential.status.as_str())
                    .bind(credential.created_at)
                    .bind(credential.expires_at)
                    .bind(credential.last_used.at())
                    .bind(&credential.owner)
                    .bind(&data)
                    .bind(at)
                    .bind(scan.0)
                    .bind(old.id)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                    sqlx::query("DELETE FROM fingerprints WHERE credential_id = ?")
                        .bind(old.id)
                        .execute(&mut *tx)
                        .await
                        .map_err(map_err)?;
                    changed_fingerprints
                        .extend(credential.fingerprints.iter().map(|it| (old.id, it)));
                }
            }
        }
        insert_fingerprints(&mut tx, &changed_fingerprints).await?;

        // New credentials, in batches; RETURNING maps each back to its row id.
        let mut new_fingerprints: Vec<(i64, &keywarden_connector::Fingerprint)> = Vec::new();
        for chunk in new_rows.chunks(BATCH) {
            let mut query = QueryBuilder::<Sqlite>::new(
                "INSERT INTO credentials (source, external_id, identity_external_id, kind, name, \
                 status, created_at, expires_at, last_used_at, owner, data, first_seen, last_seen, \
                 last_scan_id) ",
            );
            query.push_values(chunk, |mut row, (credential, data)| {
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
                    .push_bind(data.clone())
                    .push_bind(at)
                    .push_bind(at)
                    .push_bind(scan.0);
            });
            query.push(" RETURNING id, external_id");
            let returned: Vec<(i64, String)> = query
                .build_query_as()
                .fetch_all(&mut *tx)
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
                history.push(HistoryRow {
                    credential_id: id,
                    external_id: credential.external_id.clone(),
                    change: "first_seen",
                    old_value: None,
                    new_value: Some(credential.status.as_str().to_owned()),
                });
                new_fingerprints.extend(credential.fingerprints.iter().map(|it| (id, it)));
            }
        }
        self.diff.new += new_rows.len() as u64;
        insert_fingerprints(&mut tx, &new_fingerprints).await?;

        for chunk in unchanged_ids.chunks(BATCH) {
            let mut query = QueryBuilder::<Sqlite>::new("UPDATE credentials SET last_seen = ");
            query.push_bind(at);
            query.push(", last_scan_id = MAX(last_scan_id, ");
            query.push_bind(scan.0);
            query.push(") WHERE id IN (");
            let mut ids = query.separated(", ");
            for id in chunk {
                ids.push_bind(*id);
            }
            ids.push_unseparated(")");
            query.build().execute(&mut *tx).await.map_err(map_err)?;
        }
        insert_history(&mut tx, &self.keys, scan, source, at, &history).await?;

        for chunk in scan_errors.chunks(BATCH) {
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
            query.build().execute(&mut *tx).await.map_err(map_err)?;
        }
        tx.commit().await.map_err(map_err)
    }

    fn save_state(&mut self, state: serde_json::Value) {
        self.state = Some(state);
    }

    async fn finish(self: Box<Self>) -> Result<SourceDiff> {
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

fn finding_subject(source: &str, credential: &str, policy: &str) -> String {
    format!("{source}/{credential}/{policy}")
}

async fn fetch_finding(tx: &mut Transaction<'_, Sqlite>, id: i64) -> Result<Finding> {
    let row: rows::FindingRow = sqlx::query_as("SELECT * FROM findings WHERE id = ?")
        .bind(id)
        .fetch_optional(&mut **tx)
        .await
        .map_err(map_err)?
        .ok_or_else(|| StoreError::NotFound(format!("finding {id}")))?;
    row.try_into()
}

fn ledger_credential_from_row(row: &SqliteRow) -> Result<LedgerCredential> {
    let identity_data: Option<String> = row.try_get("identity_data").map_err(map_err)?;
    let identity = match identity_data {
        Some(data) => from_json(&data)?,
        None => {
            let external_id: String = row.try_get("identity_external_id").map_err(map_err)?;
            Identity {
                name: external_id.clone(),
                external_id,
                kind: IdentityKind::KeyPair,
                owner: None,
                purpose: None,
                tags: Default::default(),
            }
        }
    };
    let data: String = row.try_get("data").map_err(map_err)?;
    Ok(LedgerCredential {
        source: row.try_get("source").map_err(map_err)?,
        identity,
        credential: from_json(&data)?,
        first_seen: row.try_get("first_seen").map_err(map_err)?,
        last_seen: row.try_get("last_seen").map_err(map_err)?,
    })
}

async fn fetch_action(tx: &mut Transaction<'_, Sqlite>, id: i64) -> Result<ActionRecord> {
    let row: rows::ActionRow = sqlx::query_as("SELECT * FROM actions WHERE id = ?")
        .bind(id)
        .fetch_optional(&mut **tx)
        .await
        .map_err(map_err)?
        .ok_or_else(|| StoreError::NotFound(format!("action {id}")))?;
    row.try_into()
}

async fn log_action_step(
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

/// The ledger of one source, as a connector sees it.
#[derive(Debug)]
struct SqliteKnown {
    store: SqliteStore,
    source: String,
}

fn to_connector_error(err: StoreError) -> ConnectorError {
    match err {
        StoreError::Unavailable(message) => ConnectorError::Retryable {
            message: format!("ledger: {message}"),
            retry_after: None,
        },
        other => ConnectorError::Permanent(format!("ledger: {other}")),
    }
}

#[async_trait]
impl Known for SqliteKnown {
    async fn credentials_of(
        &self,
        identity_id: &str,
    ) -> std::result::Result<Vec<Credential>, ConnectorError> {
        self.store
            .identity_credentials(&self.source, identity_id)
            .await
            .map_err(to_connector_error)
    }

    async fn state(&self) -> std::result::Result<Option<serde_json::Value>, ConnectorError> {
        self.store
            .connector_state(&self.source)
            .await
            .map_err(to_connector_error)
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn known(&self, source: &str) -> Arc<dyn Known> {
        Arc::new(SqliteKnown {
            store: self.clone(),
            source: source.to_owned(),
        })
    }

    async fn identity_counts(&self, identities: &[(String, String)]) -> Result<IdentityCounts> {
        let mut counts = IdentityCounts::default();
        for chunk in identities.chunks(BATCH / 2) {
            let mut query = QueryBuilder::<Sqlite>::new(
                "SELECT source, identity_external_id, kind, status, COUNT(*) FROM credentials \
                 WHERE status != 'gone' AND (source, identity_external_id) IN (VALUES ",
            );
            let mut keys = query.separated(", ");
            for (source, identity) in chunk {
                keys.push("(")
                    .push_bind_unseparated(source.clone())
                    .push_unseparated(", ")
                    .push_bind_unseparated(identity.clone())
                    .push_unseparated(")");
            }
            query.push(") GROUP BY source, identity_external_id, kind, status");
            let rows: Vec<(String, String, String, String, i64)> = query
                .build_query_as()
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)?;
            for (source, identity, kind, status, count) in rows {
                let kind = kind
                    .parse()
                    .map_err(|err| StoreError::Corrupt(format!("credential kind: {err}")))?;
                let status = status
                    .parse()
                    .map_err(|err| StoreError::Corrupt(format!("credential status: {err}")))?;
                let count = u64::try_from(count).unwrap_or_default();
                counts.add(&source, &identity, kind, status, count);
            }
        }
        Ok(counts)
    }

    async fn identity_credentials(
        &self,
        source: &str,
        identity_external_id: &str,
    ) -> Result<Vec<Credential>> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT data FROM credentials WHERE source = ? AND identity_external_id = ? \
             AND status != 'gone' ORDER BY id",
        )
        .bind(source)
        .bind(identity_external_id)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.iter().map(|(data,)| from_json(data)).collect()
    }

    async fn connector_state(&self, source: &str) -> Result<Option<serde_json::Value>> {
        let row: Option<(Option<String>,)> =
            sqlx::query_as("SELECT connector_state FROM sources WHERE name = ?")
                .bind(source)
                .fetch_optional(&self.pool)
                .await
                .map_err(map_err)?;
        row.and_then(|(it,)| it)
            .map(|it| from_json(&it))
            .transpose()
    }

    async fn find_credential(&self, external_id: &str) -> Result<Vec<LedgerCredential>> {
        let rows = sqlx::query(
            "SELECT c.id, c.source, c.identity_external_id, c.status, c.data, c.first_seen, \
             c.last_seen, i.data AS identity_data FROM credentials c \
             LEFT JOIN identities i ON i.source = c.source AND i.external_id = c.identity_external_id \
             WHERE c.external_id = ? ORDER BY c.id",
        )
        .bind(external_id)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.iter()
            .map(|row| {
                let mut found = ledger_credential_from_row(row)?;
                // `finish` marks a credential gone in its `status` column only; `data` keeps
                // what the source last showed.
                let status: String = row.try_get("status").map_err(map_err)?;
                if status == CredentialStatus::Gone.as_str() {
                    found.credential.status = CredentialStatus::Gone;
                }
                Ok(found)
            })
            .collect()
    }

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

    async fn claim_action(&self, id: i64, holder: &str, at: DateTime<Utc>) -> Result<ActionRecord> {
        let (mut tx, _timed) = begin_timed(&self.pool, "claim_action").await?;
        let record = leases::claim(&mut tx, &self.keys, id, holder, at, self.lease).await?;
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

    async fn begin_scan(&self, at: DateTime<Utc>, sources: &[(String, String)]) -> Result<ScanId> {
        let (mut tx, _timed) = begin_timed(&self.pool, "begin_scan").await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO scans (started_at, status) VALUES (?, 'running') RETURNING id",
        )
        .bind(at)
        .fetch_one(&mut *tx)
        .await
        .map_err(map_err)?;
        for (name, kind) in sources {
            sqlx::query(
                "INSERT INTO sources (name, kind, first_seen) VALUES (?, ?, ?) \
                 ON CONFLICT (name) DO UPDATE SET kind = excluded.kind",
            )
            .bind(name)
            .bind(kind)
            .bind(at)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        }
        let names: Vec<&str> = sources.iter().map(|(name, _)| name.as_str()).collect();
        append_events(
            &mut tx,
            &self.keys,
            at,
            vec![NewEvent::new(
                "scan.started",
                format!("scan/{id}"),
                json!({ "sources": names }),
            )],
        )
        .await?;
        tx.commit().await.map_err(map_err)?;
        Ok(ScanId(id))
    }

    async fn record_source(
        &self,
        scan: ScanId,
        source: &str,
        at: DateTime<Utc>,
    ) -> Result<Box<dyn SourceRecorder>> {
        Ok(Box::new(SqliteSourceRecorder {
            pool: self.pool.clone(),
            keys: self.keys.clone(),
            scan,
            source: source.to_owned(),
            at,
            diff: SourceDiff::default(),
            seen: HashSet::new(),
            state: None,
        }))
    }

    async fn record_source_failure(
        &self,
        scan: ScanId,
        source: &str,
        error: &str,
        at: DateTime<Utc>,
    ) -> Result<()> {
        let (mut tx, _timed) = begin_timed(&self.pool, "record_source_failure").await?;
        sqlx::query(
            "INSERT INTO scan_sources (scan_id, source, status, error) VALUES (?, ?, 'failed', ?)",
        )
        .bind(scan.0)
        .bind(source)
        .bind(error)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        append_events(
            &mut tx,
            &self.keys,
            at,
            vec![NewEvent::new(
                "source.failed",
                format!("source/{source}"),
                json!({ "scan": scan.0, "error": error }),
            )],
        )
        .await?;
        tx.commit().await.map_err(map_err)?;
        Ok(())
    }

    async fn credentials_page(
        &self,
        after: CredentialCursor,
        limit: u32,
    ) -> Result<Vec<(CredentialCursor, LedgerCredential)>> {
        let _timed = Timed::start("credentials_page");
        let rows = sqlx::query(
            "SELECT c.id, c.source, c.identity_external_id, c.data, c.first_seen, c.last_seen, \
             i.data AS identity_data FROM credentials c \
             LEFT JOIN identities i ON i.source = c.source AND i.external_id = c.identity_external_id \
             WHERE c.status != 'gone' AND c.id > ? ORDER BY c.id LIMIT ?",
        )
        .bind(after.0)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.iter()
            .map(|row| {
                Ok((
                    CredentialCursor(row.try_get("id").map_err(map_err)?),
                    ledger_credential_from_row(row)?,
                ))
            })
            .collect()
    }

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
            let mut query = QueryBuilder::<Sqlite>::new(
                "SELECT * FROM findings WHERE (source, credential_external_id, policy_id) IN (VALUES ",
            );
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
            query.push(")");
            let rows: Vec<rows::FindingRow> = query
                .build_query_as()
                .fetch_all(&mut *tx)
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

            let mut new = Vec::new();
            let mut seen_ids: Vec<i64> = Vec::new();
            for obs in chunk {
                let key = (
                    obs.source.clone(),
                    obs.credential_external_id.clone(),
                    obs.policy_id.clone(),
                );
                let subject =
                    finding_subject(&obs.source, &obs.credential_external_id, &obs.policy_id);
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
                // A suppression that has not run out survives a resolve and a reopen; one that
                // has is cleared, so no finding keeps a stale suppression.
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
                if kind.is_none()
                    && !stale
                    && finding.severity == obs.severity
                    && finding.reason == obs.reason
                {
                    // Nothing to change but the sighting: updated in bulk below.
                    seen_ids.push(finding.id);
                    continue;
                }
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
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
                if let Some(kind) = kind {
                    let mut detail = detail;
                    detail["status"] = json!(status.as_str());
                    events.push(NewEvent::new(kind, subject, detail));
                }
            }
            if !seen_ids.is_empty() {
                let mut query = QueryBuilder::<Sqlite>::new("UPDATE findings SET last_seen_at = ");
                query.push_bind(at);
                query.push(", last_scan_id = MAX(COALESCE(last_scan_id, 0), ");
                query.push_bind(scan.0);
                query.push(") WHERE id IN (");
                let mut ids = query.separated(", ");
                for id in &seen_ids {
                    ids.push_bind(*id);
                }
                ids.push_unseparated(")");
                query.build().execute(&mut *tx).await.map_err(map_err)?;
            }
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
                query.build().execute(&mut *tx).await.map_err(map_err)?;
            }
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

    async fn finish_scan(&self, scan: ScanId, at: DateTime<Utc>, failed: bool) -> Result<()> {
        let status = if failed { "failed" } else { "completed" };
        let (mut tx, _timed) = begin_timed(&self.pool, "finish_scan").await?;
        sqlx::query("UPDATE scans SET finished_at = ?, status = ? WHERE id = ?")
            .bind(at)
            .bind(status)
            .bind(scan.0)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        let kind = if failed {
            "scan.failed"
        } else {
            "scan.completed"
        };
        append_events(
            &mut tx,
            &self.keys,
            at,
            vec![NewEvent::new(kind, format!("scan/{}", scan.0), json!({}))],
        )
        .await?;
        tx.commit().await.map_err(map_err)?;
        Ok(())
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

    async fn credential_history(
        &self,
        source: &str,
        external_id: &str,
    ) -> Result<Vec<HistoryEntry>> {
        let rows: Vec<rows::HistoryEntryRow> = sqlx::query_as(
            "SELECT h.scan_id, h.at, h.change, h.old_value, h.new_value FROM credential_history h \
             JOIN credentials c ON c.id = h.credential_id \
             WHERE c.source = ? AND c.external_id = ? ORDER BY h.id",
        )
        .bind(source)
        .bind(external_id)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(rows.into_iter().map(HistoryEntry::from).collect())
    }

    async fn credential_status(&self, source: &str, external_id: &str) -> Result<Option<String>> {
        sqlx::query_scalar("SELECT status FROM credentials WHERE source = ? AND external_id = ?")
            .bind(source)
            .bind(external_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)
    }

    async fn credential_first_seen(
        &self,
        source: &str,
        external_id: &str,
    ) -> Result<Option<DateTime<Utc>>> {
        sqlx::query_scalar(
            "SELECT first_seen FROM credentials WHERE source = ? AND external_id = ?",
        )
        .bind(source)
        .bind(external_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)
    }

    async fn scan_errors(&self, scan: ScanId) -> Result<Vec<StoredScanError>> {
        let rows: Vec<(String, String, String, Option<String>)> = sqlx::query_as(
            "SELECT source, subject, message, identity FROM scan_errors WHERE scan_id = ? ORDER BY id",
        )
        .bind(scan.0)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(rows
            .into_iter()
            .map(|(source, subject, message, identity)| StoredScanError {
                source,
                subject,
                message,
                identity,
            })
            .collect())
    }

    async fn events_page(&self, after: i64, limit: u32) -> Result<Vec<Event>> {
        audit::events_page(&self.pool, after, limit).await
    }

    async fn verify_audit(&self) -> Result<std::result::Result<u64, BrokenLink>> {
        let legacy_through = audit::legacy_through(&self.pool).await?;
        let verified = audit::verify(&self.pool, Verifier::new(&self.keys, legacy_through)).await?;
        Ok(verified.map(|it| it.events))
    }

    async fn verify_audit_with(
        &self,
        checkpoint: Option<&Checkpoint>,
    ) -> Result<std::result::Result<Verified, AuditFailure>> {
        let legacy_through = audit::legacy_through(&self.pool).await?;
        let mut verifier = Verifier::new(&self.keys, legacy_through);
        if let Some(checkpoint) = checkpoint {
            verifier = match verifier.with_checkpoint(checkpoint) {
                Ok(it) => it,
                Err(err) => return Ok(Err(AuditFailure::Checkpoint(err))),
            };
        }
        Ok(audit::verify(&self.pool, verifier)
            .await?
            .map_err(AuditFailure::Broken))
    }

    fn audit_checkpoint(&self, head: &Head, at: DateTime<Utc>) -> Checkpoint {
        self.keys.checkpoint(head, at)
    }
}

mod control;
#[cfg(test)]
mod suppression_tests;
#[cfg(test)]
mod tests;

#[cfg(test)]
mod concurrency_tests;
