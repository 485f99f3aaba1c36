//! The store's behaviour on SQLite. Tests that tamper with rows live here because only the store
//! speaks SQL.

use chrono::{Duration, TimeZone, Utc};
use keywarden_connector::{CredentialKind, CredentialStatus, Inventory, LastUse, ScanError};

use super::*;
use crate::ledger::fixtures;

fn t(day: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, day, 12, 0, 0)
        .single()
        .expect("valid time")
}

fn inventory(names: &[&str]) -> Inventory {
    let mut inventory = Inventory::default();
    for name in names {
        let it = fixtures::credential("keys", name, CredentialKind::PublicKey, t(1));
        inventory.identities.push(it.identity);
        inventory.credentials.push(it.credential);
    }
    inventory
}

async fn scan(store: &SqliteStore, at: DateTime<Utc>, inventory: &Inventory) -> SourceDiff {
    let sources = [("keys".to_owned(), "files".to_owned())];
    let id = store.begin_scan(at, &sources).await.expect("begin");
    let diff = store
        .record_inventory(id, "keys", inventory, at)
        .await
        .expect("record");
    store.finish_scan(id, at, false).await.expect("finish");
    diff
}

#[tokio::test]
async fn second_scan_keeps_first_seen_and_marks_missing_credentials_gone() {
    let store = SqliteStore::in_memory().await.expect("store");
    let first = scan(&store, t(1), &inventory(&["a", "b"])).await;
    assert_eq!((first.seen, first.new, first.gone), (2, 2, 0));

    let second = scan(&store, t(2), &inventory(&["a"])).await;
    assert_eq!(
        (second.seen, second.new, second.changed, second.gone),
        (1, 0, 0, 1)
    );

    assert_eq!(
        store
            .credential_first_seen("keys", "credential:a")
            .await
            .expect("query"),
        Some(t(1))
    );
    assert_eq!(
        store
            .credential_status("keys", "credential:b")
            .await
            .expect("query")
            .as_deref(),
        Some("gone")
    );
    let present = store.present_credentials().await.expect("present");
    assert_eq!(present.len(), 1);
    assert_eq!(present[0].first_seen, t(1));
    assert_eq!(present[0].last_seen, t(2));

    let history = store
        .credential_history("keys", "credential:b")
        .await
        .expect("history");
    let changes: Vec<&str> = history.iter().map(|it| it.change.as_str()).collect();
    assert_eq!(changes, ["first_seen", "gone"]);

    // It comes back: same row, history says so, first sighting unchanged.
    let third = scan(&store, t(3), &inventory(&["a", "b"])).await;
    assert_eq!((third.new, third.changed), (0, 1));
    let history = store
        .credential_history("keys", "credential:b")
        .await
        .expect("history");
    assert_eq!(
        history.last().map(|it| it.change.as_str()),
        Some("reappeared")
    );
    assert_eq!(
        store
            .credential_first_seen("keys", "credential:b")
            .await
            .expect("query"),
        Some(t(1))
    );
}

#[tokio::test]
async fn changes_of_status_last_use_and_owner_are_recorded() {
    let store = SqliteStore::in_memory().await.expect("store");
    let mut inv = inventory(&["a"]);
    scan(&store, t(1), &inv).await;
    inv.credentials[0].status = CredentialStatus::Inactive;
    inv.credentials[0].owner = Some("team-a".into());
    inv.credentials[0].last_used = LastUse::At {
        at: t(2),
        source: "usage_log".into(),
    };
    let diff = scan(&store, t(3), &inv).await;
    assert_eq!(diff.changed, 1);
    let history = store
        .credential_history("keys", "credential:a")
        .await
        .expect("history");
    let changes: Vec<(&str, Option<&str>)> = history
        .iter()
        .map(|it| (it.change.as_str(), it.new_value.as_deref()))
        .collect();
    assert_eq!(
        changes,
        [
            ("first_seen", Some("active")),
            ("status", Some("inactive")),
            ("last_used", Some("2026-01-02T12:00:00Z (usage_log)")),
            ("owner", Some("team-a")),
        ]
    );
}

#[tokio::test]
async fn scan_errors_are_kept_with_their_scan() {
    let store = SqliteStore::in_memory().await.expect("store");
    let mut inv = inventory(&["a"]);
    inv.errors.push(ScanError {
        subject: "bad.pem".into(),
        message: "malformed PEM".into(),
    });
    let id = store
        .begin_scan(t(1), &[("keys".into(), "files".into())])
        .await
        .expect("begin");
    let diff = store
        .record_inventory(id, "keys", &inv, t(1))
        .await
        .expect("record");
    assert_eq!(diff.errors, 1);
    let errors = store.scan_errors(id).await.expect("errors");
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].subject, "bad.pem");
}

fn observation(credential: &str, policy: &str) -> Observation {
    Observation {
        source: "keys".into(),
        credential_external_id: credential.into(),
        policy_id: policy.into(),
        severity: "high".into(),
        reason: "because".into(),
    }
}

#[tokio::test]
async fn findings_are_opened_once_resolved_when_the_condition_stops_and_reopened() {
    let store = SqliteStore::in_memory().await.expect("store");
    let sources = ["keys".to_owned()];
    let obs = [observation("c1", "p1"), observation("c2", "p1")];
    let first = store
        .reconcile_findings(ScanId(1), &sources, &obs, t(1))
        .await
        .expect("reconcile");
    assert_eq!(first.opened, 2);
    let again = store
        .reconcile_findings(ScanId(2), &sources, &obs, t(2))
        .await
        .expect("reconcile");
    assert_eq!((again.opened, again.still_open), (0, 2));
    assert_eq!(store.findings(false).await.expect("findings").len(), 2);

    let third = store
        .reconcile_findings(ScanId(3), &sources, &obs[..1], t(3))
        .await
        .expect("reconcile");
    assert_eq!(third.resolved, 1);
    let unresolved = store.findings(true).await.expect("findings");
    assert_eq!(unresolved.len(), 1);
    assert_eq!(unresolved[0].credential_external_id, "c1");

    let fourth = store
        .reconcile_findings(ScanId(4), &sources, &obs, t(4))
        .await
        .expect("reconcile");
    assert_eq!(fourth.reopened, 1);
    assert_eq!(store.findings(false).await.expect("findings").len(), 2);
}

#[tokio::test]
async fn findings_of_sources_not_evaluated_are_left_alone() {
    let store = SqliteStore::in_memory().await.expect("store");
    store
        .reconcile_findings(
            ScanId(1),
            &["keys".to_owned()],
            &[observation("c1", "p1")],
            t(1),
        )
        .await
        .expect("reconcile");
    let changes = store
        .reconcile_findings(ScanId(2), &["other".to_owned()], &[], t(2))
        .await
        .expect("reconcile");
    assert_eq!(changes.resolved, 0);
    assert_eq!(store.findings(true).await.expect("findings").len(), 1);
}

#[tokio::test]
async fn suppression_is_recorded_and_expires() {
    let store = SqliteStore::in_memory().await.expect("store");
    let sources = ["keys".to_owned()];
    let obs = [observation("c1", "p1")];
    store
        .reconcile_findings(ScanId(1), &sources, &obs, t(1))
        .await
        .expect("reconcile");
    let id = store.findings(true).await.expect("findings")[0].id;
    let suppressed = store
        .suppress_finding(
            id,
            &Suppression {
                until: t(10),
                by: "alice".into(),
                reason: "replacement scheduled".into(),
            },
            t(2),
        )
        .await
        .expect("suppress");
    assert_eq!(suppressed.status, FindingStatus::Suppressed);
    assert_eq!(suppressed.suppressed_by.as_deref(), Some("alice"));
    assert_eq!(
        suppressed.suppress_reason.as_deref(),
        Some("replacement scheduled")
    );

    let during = store
        .reconcile_findings(ScanId(2), &sources, &obs, t(5))
        .await
        .expect("reconcile");
    assert_eq!(during.unsuppressed, 0);
    assert_eq!(
        store.findings(true).await.expect("findings")[0].status,
        FindingStatus::Suppressed
    );
    let after = store
        .reconcile_findings(ScanId(3), &sources, &obs, t(10) + Duration::seconds(1))
        .await
        .expect("reconcile");
    assert_eq!(after.unsuppressed, 1);
    assert_eq!(
        store.findings(true).await.expect("findings")[0].status,
        FindingStatus::Open
    );

    let kinds: Vec<String> = store
        .events()
        .await
        .expect("events")
        .into_iter()
        .map(|it| it.kind)
        .collect();
    assert!(
        kinds.contains(&"finding.suppressed".to_owned()),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&"finding.suppression_expired".to_owned()),
        "{kinds:?}"
    );
}

#[tokio::test]
async fn a_resolved_finding_cannot_be_suppressed() {
    let store = SqliteStore::in_memory().await.expect("store");
    let sources = ["keys".to_owned()];
    store
        .reconcile_findings(ScanId(1), &sources, &[observation("c1", "p1")], t(1))
        .await
        .expect("reconcile");
    store
        .reconcile_findings(ScanId(2), &sources, &[], t(2))
        .await
        .expect("reconcile");
    let id = store.findings(false).await.expect("findings")[0].id;
    let err = store
        .suppress_finding(
            id,
            &Suppression {
                until: t(9),
                by: "bob".into(),
                reason: "x".into(),
            },
            t(3),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
}

async fn store_with_events() -> SqliteStore {
    let store = SqliteStore::in_memory().await.expect("store");
    scan(&store, t(1), &inventory(&["a", "b"])).await;
    scan(&store, t(2), &inventory(&["a"])).await;
    store
}

#[tokio::test]
async fn audit_chain_of_a_real_history_verifies() {
    let store = store_with_events().await;
    let checked = store.verify_audit().await.expect("verify").expect("intact");
    assert!(checked >= 6, "{checked}");
}

#[tokio::test]
async fn audit_detects_a_changed_row() {
    let store = store_with_events().await;
    sqlx::query("UPDATE events SET data = '{\"sources\":[\"forged\"]}' WHERE seq = 2")
        .execute(&store.pool)
        .await
        .expect("tamper");
    let broken = store.verify_audit().await.expect("verify").unwrap_err();
    assert_eq!(broken.seq, 2);
    assert_eq!(broken.reason, audit::BrokenReason::HashMismatch);
}

#[tokio::test]
async fn audit_detects_a_deleted_row() {
    let store = store_with_events().await;
    sqlx::query("DELETE FROM events WHERE seq = 3")
        .execute(&store.pool)
        .await
        .expect("tamper");
    let broken = store.verify_audit().await.expect("verify").unwrap_err();
    assert_eq!(broken.seq, 4);
}

#[tokio::test]
async fn audit_detects_a_deleted_row_even_when_renumbered() {
    let store = store_with_events().await;
    sqlx::query("DELETE FROM events WHERE seq = 3")
        .execute(&store.pool)
        .await
        .expect("tamper");
    sqlx::query("UPDATE events SET seq = seq - 1 WHERE seq > 3")
        .execute(&store.pool)
        .await
        .expect("tamper");
    let broken = store.verify_audit().await.expect("verify").unwrap_err();
    assert_eq!(broken.seq, 3);
}

#[tokio::test]
async fn audit_detects_reordered_rows() {
    let store = store_with_events().await;
    // Swap the content of rows 2 and 3, keeping each row's own hash fields consistent with
    // its old position: the hash covers the sequence number, so this cannot pass.
    for sql in [
        "UPDATE events SET seq = -2 WHERE seq = 2",
        "UPDATE events SET seq = 2 WHERE seq = 3",
        "UPDATE events SET seq = 3 WHERE seq = -2",
    ] {
        sqlx::query(sql).execute(&store.pool).await.expect("tamper");
    }
    let broken = store.verify_audit().await.expect("verify").unwrap_err();
    assert_eq!(broken.seq, 2);
}

#[tokio::test]
async fn opening_a_file_creates_it_in_wal_mode_and_reopening_keeps_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("nested/keywarden.db");
    let store = SqliteStore::open(&path).await.expect("open");
    scan(&store, t(1), &inventory(&["a"])).await;
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&store.pool)
        .await
        .expect("pragma");
    assert_eq!(mode, "wal");
    store.close().await;
    let store = SqliteStore::open(&path).await.expect("reopen");
    assert_eq!(store.present_credentials().await.expect("present").len(), 1);
}

#[tokio::test]
async fn batches_accumulate_and_only_finish_marks_gone() {
    let store = SqliteStore::in_memory().await.expect("store");
    scan(&store, t(1), &inventory(&["a", "b", "c"])).await;

    let id = store
        .begin_scan(t(2), &[("keys".into(), "files".into())])
        .await
        .expect("begin");
    let mut recorder = store
        .record_source(id, "keys", t(2))
        .await
        .expect("recorder");
    recorder.batch(&inventory(&["a"])).await.expect("batch");
    recorder
        .batch(&inventory(&["b", "d"]))
        .await
        .expect("batch");
    // "a" again in a later batch: one bad record, not a second credential.
    recorder.batch(&inventory(&["a"])).await.expect("batch");
    // Before finish nothing is gone.
    assert_eq!(
        store
            .credential_status("keys", "credential:c")
            .await
            .expect("status")
            .as_deref(),
        Some("active")
    );
    let diff = recorder.finish().await.expect("finish");
    assert_eq!((diff.seen, diff.new, diff.gone, diff.errors), (3, 1, 1, 1));
    assert_eq!(
        store
            .credential_status("keys", "credential:c")
            .await
            .expect("status")
            .as_deref(),
        Some("gone")
    );
    assert_eq!(store.scan_errors(id).await.expect("errors").len(), 1);
}

#[tokio::test]
async fn a_recorder_dropped_without_finish_marks_nothing_gone() {
    let store = SqliteStore::in_memory().await.expect("store");
    scan(&store, t(1), &inventory(&["a", "b"])).await;
    let id = store
        .begin_scan(t(2), &[("keys".into(), "files".into())])
        .await
        .expect("begin");
    let mut recorder = store
        .record_source(id, "keys", t(2))
        .await
        .expect("recorder");
    recorder.batch(&inventory(&["a"])).await.expect("batch");
    drop(recorder);
    assert_eq!(
        store
            .credential_status("keys", "credential:b")
            .await
            .expect("status")
            .as_deref(),
        Some("active")
    );
    assert!(store.verify_audit().await.expect("verify").is_ok());
}

#[tokio::test]
async fn findings_observed_over_several_calls_are_all_kept() {
    let store = SqliteStore::in_memory().await.expect("store");
    let sources = ["keys".to_owned()];
    let all = [
        observation("c1", "p1"),
        observation("c2", "p1"),
        observation("c3", "p2"),
    ];
    store
        .reconcile_findings(ScanId(1), &sources, &all, t(1))
        .await
        .expect("reconcile");
    // The next scan observes them page by page, then resolves what it did not see.
    let mut changes = store
        .observe_findings(ScanId(2), &all[..1], t(2))
        .await
        .expect("observe");
    changes += store
        .observe_findings(ScanId(2), &all[2..], t(2))
        .await
        .expect("observe");
    changes.resolved += store
        .resolve_unobserved_findings(ScanId(2), &sources, t(2))
        .await
        .expect("resolve");
    assert_eq!(
        (changes.still_open, changes.resolved, changes.opened),
        (2, 1, 0)
    );
    let unresolved: Vec<String> = store
        .findings(true)
        .await
        .expect("findings")
        .into_iter()
        .map(|it| it.credential_external_id)
        .collect();
    assert_eq!(unresolved, ["c1", "c3"]);
    assert!(store.verify_audit().await.expect("verify").is_ok());
}
