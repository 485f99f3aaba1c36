//! [`Scans`] for SQLite: scan runs, sources that failed, and the ledger as connectors see it.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use keywarden_connector::{ConnectorError, Credential, Known};
use serde_json::json;

use super::recorder::SqliteSourceRecorder;
use super::{SqliteStore, append_events, begin_timed, from_json, map_err};
use crate::audit::NewEvent;
use crate::store::{Ledger, Result, ScanId, Scans, SourceRecorder, StoreError, StoredScanError};

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
impl Scans for SqliteStore {
    fn known(&self, source: &str) -> Arc<dyn Known> {
        Arc::new(SqliteKnown {
            store: self.clone(),
            source: source.to_owned(),
        })
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
        Ok(Box::new(SqliteSourceRecorder::new(
            self,
            scan,
            source.to_owned(),
            at,
        )))
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
}
