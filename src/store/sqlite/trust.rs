//! [`SignerTrust`] for SQLite.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use keywarden_connector::Credential;
use serde_json::json;

use super::{SqliteStore, Timed, append_events, begin_timed, from_json, map_err, to_json};
use crate::audit::NewEvent;
use crate::store::trust::{
    LedgerSigner, SIGNING_KINDS, SignerCredential, SignerTrust, TrustChange,
};
use crate::store::{Result, StoreError};
use crate::trust::{Change, DistrustPeriod, TrustError, TrustRecord};

/// A signer's credential row: key id, the credential as stored, its identity's name.
#[derive(sqlx::FromRow)]
struct SignerRow {
    key_id: String,
    source: String,
    status: String,
    data: String,
    first_seen: DateTime<Utc>,
    identity_name: Option<String>,
}

/// Every present credential of a signing kind with a `sha256_spki` fingerprint, by key id.
pub(super) fn signers_query() -> String {
    let kinds: Vec<String> = SIGNING_KINDS
        .iter()
        .map(|it| format!("'{}'", it.as_str()))
        .collect();
    format!(
        "SELECT f.value AS key_id, c.source, c.status, c.data, c.first_seen, \
         i.name AS identity_name FROM fingerprints f \
         JOIN credentials c ON c.id = f.credential_id \
         LEFT JOIN identities i ON i.source = c.source AND i.external_id = c.identity_external_id \
         WHERE f.algorithm = 'sha256_spki' AND c.status != 'gone' AND c.kind IN ({}) \
         ORDER BY f.credential_id",
        kinds.join(", ")
    )
}

#[async_trait]
impl SignerTrust for SqliteStore {
    async fn signing_holders(&self) -> Result<Vec<crate::ledger::LedgerCredential>> {
        let _timed = Timed::start("signing_holders");
        let query = format!(
            "{}WHERE c.status != 'gone' AND c.id IN (SELECT DISTINCT credential_id FROM \
             signing_power) ORDER BY c.id",
            super::ledger::CREDENTIAL_COLUMNS
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(query))
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        rows.iter()
            .map(super::ledger::ledger_credential_from_row)
            .collect()
    }

    async fn signers(&self) -> Result<Vec<LedgerSigner>> {
        let _timed = Timed::start("signers");
        use futures_util::TryStreamExt as _;
        // Row by row: each credential's JSON is dropped once read (tens of thousands of signing
        // credentials held whole doubled a scan's peak memory).
        let query = signers_query();
        let mut rows =
            sqlx::query_as::<_, SignerRow>(sqlx::AssertSqlSafe(query.as_str())).fetch(&self.pool);
        let mut by_key: BTreeMap<String, LedgerSigner> = BTreeMap::new();
        while let Some(row) = rows.try_next().await.map_err(map_err)? {
            let credential: Credential = from_json(&row.data)?;
            let status = row
                .status
                .parse()
                .map_err(|err| StoreError::Corrupt(format!("credential status: {err}")))?;
            let signer = by_key
                .entry(row.key_id.clone())
                .or_insert_with(|| LedgerSigner {
                    key_id: row.key_id.clone(),
                    public_key: None,
                    algorithm: None,
                    // Most signers have one credential (the growth step would reserve four).
                    credentials: Vec::with_capacity(1),
                });
            if signer.public_key.is_none() {
                signer.public_key.clone_from(&credential.public_key);
            }
            if signer.algorithm.is_none() {
                signer.algorithm.clone_from(&credential.algorithm);
            }
            signer.credentials.push(SignerCredential {
                source: row.source,
                identity_name: row
                    .identity_name
                    .unwrap_or_else(|| credential.identity_id.clone()),
                identity: credential.identity_id,
                external_id: credential.external_id,
                kind: credential.kind,
                name: credential.name,
                status,
                first_seen: row.first_seen,
                not_before: credential.not_before,
                created_at: credential.created_at,
                expires_at: credential.expires_at,
            });
        }
        Ok(by_key.into_values().collect())
    }

    async fn distrust_periods(&self) -> Result<Vec<(String, TrustRecord)>> {
        let rows: Vec<(String, DateTime<Utc>, String)> =
            sqlx::query_as("SELECT key_id, valid_from, periods FROM signer_trust ORDER BY key_id")
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)?;
        rows.into_iter()
            .map(|(key_id, valid_from, periods)| {
                let periods: Vec<DistrustPeriod> = from_json(&periods)?;
                Ok((
                    key_id,
                    TrustRecord {
                        valid_from,
                        periods,
                    },
                ))
            })
            .collect()
    }

    async fn change_trust(
        &self,
        key_id: &str,
        valid_from: DateTime<Utc>,
        change: &TrustChange,
        at: DateTime<Utc>,
    ) -> Result<std::result::Result<Change, TrustError>> {
        let (mut tx, _timed) = begin_timed(&self.pool, "change_trust").await?;
        let stored: Option<(DateTime<Utc>, String)> =
            sqlx::query_as("SELECT valid_from, periods FROM signer_trust WHERE key_id = ?")
                .bind(key_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_err)?;
        let mut record = TrustRecord::new(valid_from);
        if let Some((stored_from, periods)) = stored {
            record.valid_from = record.valid_from.max(stored_from);
            record.periods = from_json(&periods)?;
        }
        let outcome = match change.apply(&mut record) {
            Ok(outcome) => outcome,
            // Refused: nothing was written; the transaction rolls back on drop.
            Err(err) => return Ok(Err(err)),
        };
        if outcome == Change::Unchanged {
            return Ok(Ok(Change::Unchanged));
        }
        sqlx::query(
            "INSERT INTO signer_trust (key_id, valid_from, periods, updated_at) \
             VALUES (?, ?, ?, ?) ON CONFLICT (key_id) DO UPDATE SET \
             valid_from = excluded.valid_from, periods = excluded.periods, \
             updated_at = excluded.updated_at",
        )
        .bind(key_id)
        .bind(record.valid_from)
        .bind(to_json(&record.periods)?)
        .bind(at)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        let data = match change {
            TrustChange::Distrust(period) => json!({
                "from": period.from,
                "until": period.until,
                "reason": period.reason,
                "evidence": period.evidence,
                "by": period.by,
                "until_replaced": period.until_replaced,
            }),
            TrustChange::Replaced { credential, at } => json!({
                "at": at,
                "replaced": credential,
            }),
            TrustChange::Reinstate { at, by, reason } => json!({
                "at": at,
                "by": by,
                "reason": reason,
            }),
        };
        let event = NewEvent::new(change.event_kind(), format!("signer/{key_id}"), data);
        append_events(&mut tx, &self.keys, at, vec![event]).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(Ok(Change::Changed))
    }
}
