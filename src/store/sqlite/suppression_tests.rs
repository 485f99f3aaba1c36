//! Suppressions across a finding's lifecycle (resolve, reopen, expiry), and lease times at the end
//! of the calendar.

use crate::store::{
    Actions, AuditLog, Finding, FindingChanges, FindingStatus, Findings, NewAction, Observation,
    ScanId, Suppression,
};
use chrono::{TimeZone, Utc};

use super::*;

fn t(day: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, day, 12, 0, 0)
        .single()
        .expect("valid time")
}

fn sources() -> Vec<String> {
    vec!["keys".to_owned()]
}

fn observed() -> Vec<Observation> {
    vec![Observation {
        source: "keys".into(),
        credential_external_id: "c1".into(),
        policy_id: "p1".into(),
        severity: "high".into(),
        reason: "because".into(),
    }]
}

/// A store with one open finding (opened at day 1), suppressed from day 2 until `until`.
async fn suppressed_until(until: DateTime<Utc>) -> (SqliteStore, i64) {
    let store = SqliteStore::in_memory().await.expect("store");
    store
        .reconcile_findings(ScanId(1), &sources(), &observed(), t(1))
        .await
        .expect("reconcile");
    let id = store.findings(true).await.expect("findings")[0].id;
    store
        .suppress_finding(
            id,
            &Suppression {
                until,
                by: "alice".into(),
                reason: "replacement scheduled".into(),
            },
            t(2),
        )
        .await
        .expect("suppress");
    (store, id)
}

async fn finding(store: &SqliteStore, id: i64) -> Finding {
    store
        .findings(false)
        .await
        .expect("findings")
        .into_iter()
        .find(|it| it.id == id)
        .expect("the finding")
}

/// Resolves the finding at `resolved` (the condition stops holding), then observes it again at
/// `reopened`.
async fn resolve_and_reopen(
    store: &SqliteStore,
    resolved: DateTime<Utc>,
    reopened: DateTime<Utc>,
) -> FindingChanges {
    let gone = store
        .reconcile_findings(ScanId(2), &sources(), &[], resolved)
        .await
        .expect("reconcile");
    assert_eq!(gone.resolved, 1);
    store
        .reconcile_findings(ScanId(3), &sources(), &observed(), reopened)
        .await
        .expect("reconcile")
}

#[tokio::test]
async fn an_unexpired_suppression_survives_a_resolve_and_reopen() {
    let (store, id) = suppressed_until(t(20)).await;
    let resolved_then_back = resolve_and_reopen(&store, t(3), t(5)).await;
    assert_eq!(resolved_then_back.reopened, 1);
    let back = finding(&store, id).await;
    assert_eq!(back.status, FindingStatus::Suppressed);
    assert_eq!(back.suppressed_until, Some(t(20)));
    assert_eq!(back.suppressed_by.as_deref(), Some("alice"));
    assert_eq!(
        back.suppress_reason.as_deref(),
        Some("replacement scheduled")
    );
    assert_eq!(back.resolved_at, None);
    // Still suppressed at the next scan, and open once the suppression runs out.
    let again = store
        .reconcile_findings(ScanId(4), &sources(), &observed(), t(6))
        .await
        .expect("reconcile");
    assert_eq!((again.still_open, again.unsuppressed), (1, 0));
    assert_eq!(finding(&store, id).await.status, FindingStatus::Suppressed);
    let later = store
        .reconcile_findings(ScanId(5), &sources(), &observed(), t(21))
        .await
        .expect("reconcile");
    assert_eq!(later.unsuppressed, 1);
    let open = finding(&store, id).await;
    assert_eq!(open.status, FindingStatus::Open);
    assert_eq!(
        (
            open.suppressed_until,
            open.suppressed_by,
            open.suppress_reason
        ),
        (None, None, None)
    );
    // The reopening is audited with the status it came back in.
    let reopened: Vec<serde_json::Value> = store
        .events()
        .await
        .expect("events")
        .into_iter()
        .filter(|it| it.kind == "finding.reopened")
        .map(|it| serde_json::from_str(&it.data).expect("json"))
        .collect();
    assert_eq!(reopened.len(), 1);
    assert_eq!(reopened[0]["status"], "suppressed");
}

#[tokio::test]
async fn a_reopened_finding_keeps_no_expired_suppression() {
    let (store, id) = suppressed_until(t(4)).await;
    // Resolved while suppressed; back after the suppression ran out.
    let changes = resolve_and_reopen(&store, t(3), t(5)).await;
    assert_eq!(changes.reopened, 1);
    let back = finding(&store, id).await;
    assert_eq!(back.status, FindingStatus::Open);
    assert_eq!(
        (
            back.suppressed_until,
            back.suppressed_by,
            back.suppress_reason
        ),
        (None, None, None)
    );
    assert_eq!(back.opened_at, t(5));
}

#[tokio::test]
async fn an_expired_suppression_of_a_still_open_finding_is_cleared() {
    let (store, id) = suppressed_until(t(4)).await;
    let changes = store
        .reconcile_findings(ScanId(2), &sources(), &observed(), t(5))
        .await
        .expect("reconcile");
    assert_eq!(changes.unsuppressed, 1);
    let open = finding(&store, id).await;
    assert_eq!(open.status, FindingStatus::Open);
    assert_eq!(
        (
            open.suppressed_until,
            open.suppressed_by,
            open.suppress_reason
        ),
        (None, None, None)
    );
}

#[tokio::test]
async fn a_suppression_must_end_in_the_future() {
    let store = SqliteStore::in_memory().await.expect("store");
    store
        .reconcile_findings(ScanId(1), &sources(), &observed(), t(1))
        .await
        .expect("reconcile");
    let id = store.findings(true).await.expect("findings")[0].id;
    for until in [t(1), t(2)] {
        let err = store
            .suppress_finding(
                id,
                &Suppression {
                    until,
                    by: "bob".into(),
                    reason: "x".into(),
                },
                t(2),
            )
            .await
            .expect_err("a suppression in the past");
        assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    }
    assert_eq!(finding(&store, id).await.status, FindingStatus::Open);
}

#[tokio::test]
async fn a_lease_ending_past_the_last_valid_time_is_an_error_not_a_panic() {
    let store = SqliteStore::in_memory().await.expect("store");
    let action = NewAction {
        kind: crate::store::ActionKind::Rotate,
        source: "keys".into(),
        credential_external_id: "c1".into(),
        identity_external_id: "identity:ci".into(),
        origin: "cli".into(),
        step: "check".into(),
        state: serde_json::json!({}),
        holder: "test".into(),
        status: crate::store::ActionStatus::Running,
        parent: None,
        exclusive: true,
    };
    let err = store
        .create_action(&action, DateTime::<Utc>::MAX_UTC)
        .await
        .expect_err("no lease can end after the last valid time");
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    assert!(store.actions(false).await.expect("actions").is_empty());
}
