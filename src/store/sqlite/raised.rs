//! Raised findings in bulk: one multi-row statement per chunk, not a transaction per finding.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::{QueryBuilder, Sqlite, Transaction};

use super::findings::finding_subject;
use super::{BATCH, append_events, map_err};
use crate::audit::ChainKeys;
use crate::audit::NewEvent;
use crate::store::{RaisedFinding, Result};

/// Opens, keeps open or reopens each finding (the last of any repeated key wins), with a
/// `finding.opened` or `finding.reopened` event for each one that was not open.
pub(super) async fn raise_findings(
    tx: &mut Transaction<'_, Sqlite>,
    keys: &ChainKeys,
    findings: &[RaisedFinding],
    at: DateTime<Utc>,
) -> Result<()> {
    // One row per key: a repeated key in one statement would update its own new row.
    let mut unique: HashMap<(&str, &str, &str), &RaisedFinding> = HashMap::new();
    let mut order = Vec::new();
    for it in findings {
        let key = (
            it.source.as_str(),
            it.credential_external_id.as_str(),
            it.policy_id.as_str(),
        );
        if unique.insert(key, it).is_none() {
            order.push(key);
        }
    }
    let rows: Vec<&RaisedFinding> = order
        .iter()
        .filter_map(|key| unique.get(key).copied())
        .collect();
    let mut events = Vec::new();
    for chunk in rows.chunks(BATCH) {
        // The status each one had before (absent: new), through the unique key.
        let mut query = QueryBuilder::<Sqlite>::new(
            "WITH wanted (source, credential_external_id, policy_id) AS (",
        );
        query.push_values(chunk, |mut row, it| {
            row.push_bind(it.source.clone())
                .push_bind(it.credential_external_id.clone())
                .push_bind(it.policy_id.clone());
        });
        query.push(
            ") SELECT f.source, f.credential_external_id, f.policy_id, f.status FROM wanted w \
             JOIN findings f ON f.source = w.source \
             AND f.credential_external_id = w.credential_external_id AND f.policy_id = w.policy_id",
        );
        let before: Vec<(String, String, String, String)> = query
            .build_query_as()
            .fetch_all(&mut **tx)
            .await
            .map_err(map_err)?;
        let before: HashMap<(String, String, String), String> = before
            .into_iter()
            .map(|(source, credential, policy, status)| ((source, credential, policy), status))
            .collect();
        let mut query = QueryBuilder::<Sqlite>::new(
            "INSERT INTO findings (source, credential_external_id, policy_id, severity, status, \
             reason, opened_at, last_seen_at, raised) ",
        );
        query.push_values(chunk, |mut row, it| {
            row.push_bind(it.source.clone())
                .push_bind(it.credential_external_id.clone())
                .push_bind(it.policy_id.clone())
                .push_bind(it.severity.clone())
                .push_bind("open")
                .push_bind(it.reason.clone())
                .push_bind(at)
                .push_bind(at)
                .push_bind(1_i64);
        });
        query.push(
            " ON CONFLICT (source, credential_external_id, policy_id) DO UPDATE SET \
             severity = excluded.severity, reason = excluded.reason, \
             last_seen_at = excluded.last_seen_at, raised = 1, \
             status = CASE WHEN findings.status = 'resolved' THEN 'open' ELSE findings.status END, \
             resolved_at = CASE WHEN findings.status = 'resolved' THEN NULL ELSE findings.resolved_at END",
        );
        query.build().execute(&mut **tx).await.map_err(map_err)?;
        for it in chunk {
            let key = (
                it.source.clone(),
                it.credential_external_id.clone(),
                it.policy_id.clone(),
            );
            let kind = match before.get(&key).map(String::as_str) {
                None => "finding.opened",
                Some("resolved") => "finding.reopened",
                Some(_) => continue,
            };
            events.push(NewEvent::new(
                kind,
                finding_subject(&it.source, &it.credential_external_id, &it.policy_id),
                json!({ "severity": it.severity, "reason": it.reason, "raised": true }),
            ));
        }
    }
    append_events(tx, keys, at, events).await
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use crate::store::{ActionControl, AuditLog, Findings, RaisedFinding, SqliteStore};

    fn raised(credential: &str, reason: &str) -> RaisedFinding {
        RaisedFinding {
            source: "leaks".to_owned(),
            credential_external_id: credential.to_owned(),
            policy_id: "keywarden.leak-unmatched".to_owned(),
            severity: "critical".to_owned(),
            reason: reason.to_owned(),
        }
    }

    #[tokio::test]
    async fn many_findings_are_opened_kept_or_reopened_as_one_would_be() {
        let store = SqliteStore::in_memory().await.expect("store");
        let at = chrono::Utc::now();
        store
            .raise_finding(&raised("open", "first"), at)
            .await
            .expect("raise");
        store
            .raise_finding(&raised("resolved", "first"), at)
            .await
            .expect("raise");
        store
            .clear_raised_finding("leaks", "resolved", "keywarden.leak-unmatched", at)
            .await
            .expect("clear");
        let before = store.events().await.expect("events").len();
        let later = at + TimeDelta::minutes(1);
        store
            .raise_findings(
                &[
                    raised("new", "a"),
                    raised("open", "again"),
                    raised("resolved", "back"),
                    raised("new", "a, said twice"),
                ],
                later,
            )
            .await
            .expect("raise many");
        let kinds: Vec<(String, String)> = store.events().await.expect("events")[before..]
            .iter()
            .map(|it| (it.kind.clone(), it.subject.clone()))
            .collect();
        assert_eq!(
            kinds,
            [
                (
                    "finding.opened".to_owned(),
                    "leaks/new/keywarden.leak-unmatched".to_owned()
                ),
                (
                    "finding.reopened".to_owned(),
                    "leaks/resolved/keywarden.leak-unmatched".to_owned()
                ),
            ],
            "an open finding kept open writes no event; a key said twice is one finding"
        );
        let findings = store.findings(true).await.expect("findings");
        assert_eq!(findings.len(), 3, "{findings:?}");
        for it in &findings {
            assert_eq!(it.last_seen_at, later);
            assert_eq!(it.resolved_at, None);
        }
        let new = findings
            .iter()
            .find(|it| it.credential_external_id == "new")
            .expect("new");
        assert_eq!(
            new.reason, "a, said twice",
            "the last of a repeated key wins"
        );
        let open = findings
            .iter()
            .find(|it| it.credential_external_id == "open")
            .expect("open");
        assert_eq!((open.reason.as_str(), open.opened_at), ("again", at));
    }
}
