//! The SQLite backend: one file, WAL, created and migrated on first open.
//!
//! Several keywarden processes may share one file (a daemon and CLI calls, several scans). Every
//! transaction that writes begins `IMMEDIATE` ([`begin_write`]): it takes the write lock before
//! it reads, so a read-then-write can never find its snapshot stale (`SQLITE_BUSY_SNAPSHOT`).
//! A writer waits for another's lock up to the busy timeout, then retries with back-off and
//! jitter; what is still busy after that is [`StoreError::Unavailable`].

mod actions;
mod audit;
mod control;
mod findings;
mod leaks;
mod leases;
mod ledger;
mod pool;
mod raised;
mod recorder;
mod rows;
mod scans;
mod trust;

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use backon::Retryable;
use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use sqlx::ConnectOptions;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use self::audit::append_events;
pub use self::pool::SqliteOptions;
use self::pool::{Timed, begin_timed, begin_write, busy_backoff, is_retryable, map_err};
use crate::audit::{AuditKey, ChainKeys};
use crate::store::audit_key::KeySource;
use crate::store::{ACTION_LEASE, Result, StoreError};

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

#[cfg(test)]
mod suppression_tests;
#[cfg(test)]
mod tests;

#[cfg(test)]
mod concurrency_tests;
#[cfg(test)]
mod plan_tests;
#[cfg(test)]
mod signing_power_tests;
