//! [`Leaks`] for SQLite.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::{QueryBuilder, Sqlite};

use super::{BATCH, SqliteStore, append_events, begin_timed, from_json, map_err, to_json};
use crate::audit::NewEvent;
use crate::leaks::Leak;
use crate::store::leaks::{Answered, LeakMatch, Leaks, Recorded, StoredLeak};
use crate::store::{Result, StoreError};

#[async_trait]
impl Leaks for SqliteStore {
    async fn record_leaks(
        &self,
        leaks: &[(Leak, Vec<LeakMatch>)],
        at: DateTime<Utc>,
    ) -> Result<Vec<Recorded>> {
        let mut rows = Vec::with_capacity(leaks.len());
        for (leak, matched) in leaks {
            rows.push((leak, to_json(leak)?, to_json(matched)?, matched.len()));
        }
        let (mut tx, _timed) = begin_timed(&self.pool, "record_leaks").await?;
        let mut new: HashSet<String> = HashSet::new();
        // Seven values a row: a chunk stays far below SQLite's parameter limit.
        for chunk in rows.chunks(BATCH) {
            let mut query = QueryBuilder::<Sqlite>::new(
                "INSERT INTO leaks (id, format, detector, exposed_at, data, matched, ingested_at) ",
            );
            query.push_values(chunk, |mut row, (leak, data, matched, _)| {
                row.push_bind(leak.id.clone())
                    .push_bind(leak.format.as_str())
                    .push_bind(leak.detector.clone())
                    .push_bind(leak.exposed_at)
                    .push_bind(data.clone())
                    .push_bind(matched.clone())
                    .push_bind(at);
            });
            query.push(" ON CONFLICT (id) DO NOTHING RETURNING id");
            let ids: Vec<(String,)> = query
                .build_query_as()
                .fetch_all(&mut *tx)
                .await
                .map_err(map_err)?;
            new.extend(ids.into_iter().map(|(id,)| id));
        }
        let events = rows
            .iter()
            .filter(|(leak, ..)| new.contains(&leak.id))
            .map(|(leak, _, _, matched)| {
                NewEvent::new(
                    "leak.ingested",
                    format!("leak/{}", leak.id),
                    json!({
                        "format": leak.format.as_str(),
                        "detector": leak.detector,
                        "location": leak.location,
                        "exposed_at": leak.exposed_at,
                        "indicators": leak.indicators,
                        "matched": matched,
                        "dismissed": leak.dismissed,
                    }),
                )
            })
            .collect();
        append_events(&mut tx, &self.keys, at, events).await?;
        // Each leak as it now stands: answered or not, what it matched and whether it was
        // dismissed when last answered.
        let mut stored: HashMap<String, Recorded> = HashMap::new();
        // A leak this call inserted stands as given; only the others are read back.
        for (leak, matched) in leaks.iter().filter(|(leak, _)| new.contains(&leak.id)) {
            stored.insert(
                leak.id.clone(),
                Recorded {
                    new: true,
                    unanswered: true,
                    matched_before: matched.clone(),
                    dismissed_before: leak.dismissed.is_some(),
                },
            );
        }
        let known: Vec<&(&Leak, String, String, usize)> = rows
            .iter()
            .filter(|(leak, ..)| !new.contains(&leak.id))
            .collect();
        for chunk in known.chunks(BATCH) {
            let mut query = QueryBuilder::<Sqlite>::new(
                "SELECT id, answered_at IS NULL AS unanswered, data, matched FROM leaks WHERE id IN (",
            );
            let mut ids = query.separated(", ");
            for (leak, ..) in chunk {
                ids.push_bind(leak.id.clone());
            }
            ids.push_unseparated(")");
            let found: Vec<(String, bool, String, String)> = query
                .build_query_as()
                .fetch_all(&mut *tx)
                .await
                .map_err(map_err)?;
            for (id, unanswered, data, matched) in found {
                let before: Leak = from_json(&data)?;
                stored.insert(
                    id.clone(),
                    Recorded {
                        new: new.contains(&id),
                        unanswered,
                        matched_before: from_json(&matched)?,
                        dismissed_before: before.dismissed.is_some(),
                    },
                );
            }
        }
        tx.commit().await.map_err(map_err)?;
        leaks
            .iter()
            .map(|(leak, _)| {
                stored.get(&leak.id).cloned().ok_or_else(|| {
                    StoreError::Corrupt(format!("leak {} was not recorded", leak.id))
                })
            })
            .collect()
    }

    async fn leaks_answered(&self, answered: &[Answered], at: DateTime<Utc>) -> Result<()> {
        let mut rows = Vec::with_capacity(answered.len());
        for it in answered.iter().filter(|it| !it.stored_as_is) {
            rows.push((it, to_json(&it.leak)?, to_json(&it.matched)?));
        }
        let (mut tx, _timed) = begin_timed(&self.pool, "leaks_answered").await?;
        // Stored as they are: only the time of the answer, by id.
        let as_is: Vec<&Answered> = answered.iter().filter(|it| it.stored_as_is).collect();
        for chunk in as_is.chunks(BATCH) {
            let mut query = QueryBuilder::<Sqlite>::new("UPDATE leaks SET answered_at = ");
            query.push_bind(at);
            query.push(" WHERE id IN (");
            let mut ids = query.separated(", ");
            for it in chunk {
                ids.push_bind(it.leak.id.clone());
            }
            ids.push_unseparated(")");
            query.build().execute(&mut *tx).await.map_err(map_err)?;
        }
        // Three values a row, through the `id` key; one statement per chunk.
        for chunk in rows.chunks(BATCH) {
            let mut query = QueryBuilder::<Sqlite>::new("WITH answered (id, data, matched) AS (");
            query.push_values(chunk, |mut row, (it, data, matched)| {
                row.push_bind(it.leak.id.clone())
                    .push_bind(data.clone())
                    .push_bind(matched.clone());
            });
            query.push(") UPDATE leaks SET answered_at = ");
            query.push_bind(at);
            query.push(
                ", data = answered.data, matched = answered.matched FROM answered \
                 WHERE leaks.id = answered.id",
            );
            query.build().execute(&mut *tx).await.map_err(map_err)?;
        }
        let events = answered
            .iter()
            .map(|it| {
                NewEvent::new(
                    "leak.answered",
                    format!("leak/{}", it.leak.id),
                    it.what.clone(),
                )
            })
            .collect();
        append_events(&mut tx, &self.keys, at, events).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn record_secret_hashes(
        &self,
        source: &str,
        credential_external_id: &str,
        hashes: &[(&'static str, String)],
        at: DateTime<Utc>,
    ) -> Result<()> {
        if hashes.is_empty() {
            return Ok(());
        }
        let (mut tx, _timed) = begin_timed(&self.pool, "record_secret_hashes").await?;
        let mut query = QueryBuilder::<Sqlite>::new(
            "INSERT INTO secret_hashes (source, credential_external_id, algorithm, value, \
             recorded_at) ",
        );
        query.push_values(hashes, |mut row, (algorithm, value)| {
            row.push_bind(source.to_owned())
                .push_bind(credential_external_id.to_owned())
                .push_bind(*algorithm)
                .push_bind(value.clone())
                .push_bind(at);
        });
        query.push(" ON CONFLICT DO NOTHING");
        let added = query.build().execute(&mut *tx).await.map_err(map_err)?;
        if added.rows_affected() > 0 {
            let algorithms: Vec<&str> = hashes.iter().map(|(it, _)| *it).collect();
            let event = NewEvent::new(
                "credential.secret_hashed",
                format!("{source}/{credential_external_id}"),
                json!({ "algorithms": algorithms }),
            );
            append_events(&mut tx, &self.keys, at, vec![event]).await?;
        }
        tx.commit().await.map_err(map_err)
    }

    async fn secret_hashes(
        &self,
        algorithm: &str,
        values: &[String],
    ) -> Result<Vec<(String, String, String)>> {
        let mut found = Vec::new();
        for chunk in values.chunks(BATCH) {
            let mut query = QueryBuilder::<Sqlite>::new(
                "SELECT source, credential_external_id, value FROM secret_hashes WHERE algorithm = ",
            );
            query.push_bind(algorithm.to_owned());
            query.push(" AND value IN (");
            let mut list = query.separated(", ");
            for value in chunk {
                list.push_bind(value.clone());
            }
            list.push_unseparated(")");
            let rows: Vec<(String, String, String)> = query
                .build_query_as()
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)?;
            found.extend(rows);
        }
        Ok(found)
    }

    async fn leaks(&self) -> Result<Vec<StoredLeak>> {
        let rows: Vec<(String, String, DateTime<Utc>)> =
            sqlx::query_as("SELECT data, matched, ingested_at FROM leaks ORDER BY seq")
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)?;
        rows.into_iter()
            .map(|(data, matched, ingested_at)| {
                Ok(StoredLeak {
                    leak: from_json(&data)?,
                    matched: from_json(&matched)?,
                    ingested_at,
                })
            })
            .collect()
    }
}
