//! How the SQLite backend shares its file: settings, write transactions that take the lock
//! first, busy retries with back-off, timing of slow operations, and SQLite's result codes.

use std::time::{Duration, Instant};

use backon::{ExponentialBuilder, Retryable};
use chrono::TimeDelta;
use sqlx::sqlite::SqlitePool;
use sqlx::{Sqlite, Transaction};

use crate::store::{ACTION_LEASE, Result, StoreError};

/// How a [`SqliteStore`] shares its file with other processes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SqliteOptions {
    /// How long a statement waits for another process's lock before SQLite answers busy.
    pub busy_timeout: Duration,
    /// How long a process holds an action's lease without renewing it.
    pub action_lease: TimeDelta,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self {
            busy_timeout: Duration::from_secs(10),
            action_lease: ACTION_LEASE,
        }
    }
}

/// A store operation slower than this is logged (at debug, by name and time only).
const SLOW: Duration = Duration::from_secs(1);

/// The back-off between attempts to take the write lock: a few tries, each after SQLite's own
/// busy timeout, with jitter so processes that collided do not collide again.
pub(super) fn busy_backoff() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(50))
        .with_max_delay(Duration::from_secs(2))
        .with_max_times(6)
        .with_jitter()
}

pub(super) fn is_retryable(err: &StoreError) -> bool {
    matches!(err, StoreError::Unavailable(_))
}

/// Logs a store operation that took longer than [`SLOW`] when dropped: its name and time, never
/// its statements (they can be pages long).
pub(super) struct Timed {
    op: &'static str,
    started: Instant,
}

impl Timed {
    pub(super) fn start(op: &'static str) -> Self {
        Self {
            op,
            started: Instant::now(),
        }
    }
}

impl Drop for Timed {
    fn drop(&mut self) {
        let elapsed = self.started.elapsed();
        if elapsed >= SLOW {
            tracing::debug!(
                op = self.op,
                elapsed_ms = elapsed.as_millis() as u64,
                "Slow store operation."
            );
        }
    }
}

/// Begins a write transaction: `BEGIN IMMEDIATE` takes the write lock first, so what the
/// transaction reads cannot be changed by another process before it writes. Busy (another
/// process holds the lock past the busy timeout) is retried with back-off.
pub(super) async fn begin_write(
    pool: &SqlitePool,
    op: &'static str,
) -> Result<Transaction<'static, Sqlite>> {
    (|| async { pool.begin_with("BEGIN IMMEDIATE").await.map_err(map_err) })
        .retry(busy_backoff())
        .when(is_retryable)
        .notify(|err, after| {
            tracing::debug!(op, error = %err, retry_in_ms = after.as_millis() as u64, "Store busy; retrying.");
        })
        .await
}

/// [`begin_write`] and a [`Timed`] guard for the whole operation.
pub(super) async fn begin_timed(
    pool: &SqlitePool,
    op: &'static str,
) -> Result<(Transaction<'static, Sqlite>, Timed)> {
    let timed = Timed::start(op);
    Ok((begin_write(pool, op).await?, timed))
}

/// The primary result code of an (extended) SQLite result code.
const SQLITE_BUSY: i64 = 5;
const SQLITE_LOCKED: i64 = 6;

pub(super) fn map_err(err: sqlx::Error) -> StoreError {
    match &err {
        sqlx::Error::RowNotFound => StoreError::NotFound(err.to_string()),
        sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
            StoreError::Unavailable(err.to_string())
        }
        sqlx::Error::Database(db) => {
            // sqlx reports SQLite's extended result code; its low byte is the primary code.
            let code = db.code().and_then(|it| it.parse::<i64>().ok());
            match code {
                // SQLITE_CONSTRAINT_UNIQUE, SQLITE_CONSTRAINT_PRIMARYKEY: e.g. a second open
                // action on a credential, created by a concurrent caller.
                Some(2067 | 1555) => StoreError::Conflict(err.to_string()),
                // SQLITE_BUSY and its extended codes (_RECOVERY, _SNAPSHOT, _TIMEOUT),
                // SQLITE_LOCKED and its (_SHAREDCACHE, _VTAB): another connection holds it.
                Some(code) if matches!(code & 0xff, SQLITE_BUSY | SQLITE_LOCKED) => {
                    StoreError::Unavailable(err.to_string())
                }
                _ => StoreError::Database(err.to_string()),
            }
        }
        _ => StoreError::Database(err.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Collects what a subscriber writes.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn logged(at: tracing::Level, elapsed: Duration) -> String {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(at)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let started = Instant::now()
                .checked_sub(elapsed)
                .expect("an instant back then");
            drop(Timed {
                op: "observe_findings",
                started,
            });
        });
        let bytes = captured.0.lock().expect("lock").clone();
        String::from_utf8(bytes).expect("utf-8")
    }

    #[test]
    fn a_slow_operation_is_one_short_debug_line_with_its_name() {
        let log = logged(tracing::Level::DEBUG, Duration::from_secs(2));
        assert!(log.contains("Slow store operation"), "{log}");
        assert!(log.contains("op=\"observe_findings\""), "{log}");
        assert!(log.contains("DEBUG"), "{log}");
        assert_eq!(log.lines().count(), 1, "{log}");
        assert!(log.len() < 200, "{log}");
        // Not at info (nor warn, as sqlx did).
        assert_eq!(logged(tracing::Level::INFO, Duration::from_secs(2)), "");
        // A fast one is not logged at all.
        assert_eq!(logged(tracing::Level::TRACE, Duration::ZERO), "");
    }
}
