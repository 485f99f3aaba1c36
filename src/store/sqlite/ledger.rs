//! [`Ledger`] for SQLite: reading credentials with their identities and history.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use keywarden_connector::{Credential, CredentialStatus, Identity, IdentityKind};
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, Sqlite};

use super::{BATCH, SqliteStore, Timed, from_json, map_err, rows};
use crate::ledger::{IdentityCounts, LedgerCredential};
use crate::store::{CredentialCursor, HistoryEntry, Ledger, Result, StoreError};

pub(super) fn ledger_credential_from_row(row: &SqliteRow) -> Result<LedgerCredential> {
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
                confirmed_leaks: Vec::new(),
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

/// A credential row with its identity, its status `gone` if `finish` marked it so (in the
/// `status` column only; `data` keeps what the source last showed).
fn credential_marked_gone(row: &SqliteRow) -> Result<LedgerCredential> {
    let mut found = ledger_credential_from_row(row)?;
    let status: String = row.try_get("status").map_err(map_err)?;
    if status == CredentialStatus::Gone.as_str() {
        found.credential.status = CredentialStatus::Gone;
    }
    Ok(found)
}

/// Credentials of one source by external id, through the `(source, external_id)` key.
/// Pushes `(?, ?, ...)` binding each id of one chunk (at most [`BATCH`], under SQLite's limit of
/// bound parameters).
fn push_in_list(query: &mut QueryBuilder<Sqlite>, chunk: &[String]) {
    query.push("(");
    let mut ids = query.separated(", ");
    for id in chunk {
        ids.push_bind(id.clone());
    }
    ids.push_unseparated(")");
}

pub(super) const CREDENTIAL_COLUMNS: &str = "SELECT c.id, c.source, c.identity_external_id, c.status, \
     c.data, c.first_seen, c.last_seen, i.data AS identity_data FROM credentials c \
     LEFT JOIN identities i ON i.source = c.source AND i.external_id = c.identity_external_id ";

pub(super) fn source_credentials_query(source: &str, chunk: &[String]) -> QueryBuilder<Sqlite> {
    let mut query = QueryBuilder::<Sqlite>::new(CREDENTIAL_COLUMNS);
    query.push("WHERE c.source = ");
    query.push_bind(source.to_owned());
    query.push(" AND c.external_id IN ");
    push_in_list(&mut query, chunk);
    query
}

/// Credentials by external id in any source, through the `credentials_external_id` index.
pub(super) fn find_credentials_query(chunk: &[String]) -> QueryBuilder<Sqlite> {
    let mut query = QueryBuilder::<Sqlite>::new(CREDENTIAL_COLUMNS);
    query.push("WHERE c.external_id IN ");
    push_in_list(&mut query, chunk);
    query.push(" ORDER BY c.id");
    query
}

/// The present credentials of some identities of one source, through `credentials_identity`.
pub(super) fn identities_credentials_query(source: &str, chunk: &[String]) -> QueryBuilder<Sqlite> {
    let mut query = QueryBuilder::<Sqlite>::new(
        "SELECT identity_external_id, data FROM credentials WHERE source = ",
    );
    query.push_bind(source.to_owned());
    query.push(" AND identity_external_id IN ");
    push_in_list(&mut query, chunk);
    query.push(" AND status != 'gone' ORDER BY id");
    query
}

/// A credential by its external id in any source, through the `credentials_external_id` index.
pub(super) const FIND_CREDENTIAL: &str = "SELECT c.id, c.source, c.identity_external_id, c.status, \
     c.data, c.first_seen, c.last_seen, i.data AS identity_data FROM credentials c \
     LEFT JOIN identities i ON i.source = c.source AND i.external_id = c.identity_external_id \
     WHERE c.external_id = ? ORDER BY c.id";

#[async_trait]
impl Ledger for SqliteStore {
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

    async fn find_credential(&self, external_id: &str) -> Result<Vec<LedgerCredential>> {
        let rows = sqlx::query(FIND_CREDENTIAL)
            .bind(external_id)
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        rows.iter().map(credential_marked_gone).collect()
    }

    async fn find_credentials(&self, external_ids: &[String]) -> Result<Vec<LedgerCredential>> {
        let _timed = Timed::start("find_credentials");
        let mut found = Vec::new();
        for chunk in external_ids.chunks(BATCH) {
            let mut query = find_credentials_query(chunk);
            let rows = query.build().fetch_all(&self.pool).await.map_err(map_err)?;
            for row in &rows {
                found.push(credential_marked_gone(row)?);
            }
        }
        Ok(found)
    }

    async fn source_credentials(
        &self,
        source: &str,
        external_ids: &[String],
    ) -> Result<Vec<LedgerCredential>> {
        let mut found = Vec::with_capacity(external_ids.len());
        for chunk in external_ids.chunks(BATCH) {
            let mut query = source_credentials_query(source, chunk);
            let rows = query.build().fetch_all(&self.pool).await.map_err(map_err)?;
            for row in &rows {
                found.push(credential_marked_gone(row)?);
            }
        }
        Ok(found)
    }

    async fn identities_credentials(
        &self,
        source: &str,
        identities: &[String],
    ) -> Result<HashMap<String, Vec<Credential>>> {
        let mut by_identity: HashMap<String, Vec<Credential>> = HashMap::new();
        for chunk in identities.chunks(BATCH) {
            let mut query = identities_credentials_query(source, chunk);
            let rows: Vec<(String, String)> = query
                .build_query_as()
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)?;
            for (identity, data) in rows {
                by_identity
                    .entry(identity)
                    .or_default()
                    .push(from_json(&data)?);
            }
        }
        Ok(by_identity)
    }

    async fn identity_counts(&self, identities: &[(String, String)]) -> Result<IdentityCounts> {
        let mut counts = IdentityCounts::default();
        for chunk in identities.chunks(BATCH / 2) {
            let mut query = identity_counts_query(chunk);
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
}

/// The count of [`Ledger::identity_counts`] for a chunk of identities. The identities drive the
/// join (CROSS JOIN fixes the order): one look-up each in the (source, identity) index, named
/// (INDEXED BY) because for a long list SQLite would rather build an automatic index, reading the
/// whole table each time, as a row-value `IN (VALUES ..)` scans it.
pub(super) fn identity_counts_query(chunk: &[(String, String)]) -> QueryBuilder<Sqlite> {
    let mut query = QueryBuilder::<Sqlite>::new("WITH ids (s, i) AS (VALUES ");
    let mut keys = query.separated(", ");
    for (source, identity) in chunk {
        keys.push("(")
            .push_bind_unseparated(source.clone())
            .push_unseparated(", ")
            .push_bind_unseparated(identity.clone())
            .push_unseparated(")");
    }
    query.push(
        ") SELECT c.source, c.identity_external_id, c.kind, c.status, COUNT(*) \
         FROM ids CROSS JOIN credentials c INDEXED BY credentials_identity \
         ON c.source = ids.s \
         AND c.identity_external_id = ids.i WHERE c.status != 'gone' \
         GROUP BY c.source, c.identity_external_id, c.kind, c.status",
    );
    query
}
