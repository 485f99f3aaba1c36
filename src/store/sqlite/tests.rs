//! The store's behaviour on SQLite. Tests that tamper with rows live here because only the store
//! speaks SQL.

use crate::store::{
    ActionRecord, ActionStatus, ActionStep, ActionUpdate, Actions, AuditLog, FindingStatus,
    Findings, Ledger, NewAction, Observation, ScanId, Scans, SourceDiff, Suppression,
};
use chrono::{Duration, TimeZone, Utc};
use keywarden_connector::{
    Credential, CredentialKind, CredentialStatus, Identity, Inventory, LastUse, ScanError,
};

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
        identity: None,
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
    assert_eq!(broken.reason, crate::audit::BrokenReason::HashMismatch);
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

// --- Actions -------------------------------------------------------------------------------

fn new_action(source: &str, credential: &str) -> NewAction {
    NewAction {
        kind: crate::store::ActionKind::Rotate,
        source: source.into(),
        credential_external_id: credential.into(),
        identity_external_id: "identity:ci".into(),
        origin: "cli".into(),
        step: "create_new_key".into(),
        state: serde_json::json!({ "old_key": credential }),
        holder: HOLDER.into(),
        status: ActionStatus::Running,
        parent: None,
        exclusive: true,
    }
}

/// The process the action tests act as.
const HOLDER: &str = "test-host:1";

fn update(step: &str, status: ActionStatus) -> ActionUpdate {
    ActionUpdate {
        step: step.into(),
        status,
        state: serde_json::json!({ "step": step }),
        reason: None,
        next_at: None,
        detail: None,
        holder: HOLDER.into(),
        token: 1,
    }
}

async fn count(store: &SqliteStore, table: &str) -> i64 {
    let sql = match table {
        "actions" => "SELECT COUNT(*) FROM actions",
        "action_steps" => "SELECT COUNT(*) FROM action_steps",
        "events" => "SELECT COUNT(*) FROM events",
        other => panic!("no count for `{other}`"),
    };
    sqlx::query_scalar(sql)
        .fetch_one(&store.pool)
        .await
        .expect("count")
}

/// The (kind, subject, data) of the events after the first `skip`.
async fn events_after(
    store: &SqliteStore,
    skip: usize,
) -> Vec<(String, String, serde_json::Value)> {
    store
        .events()
        .await
        .expect("events")
        .into_iter()
        .skip(skip)
        .map(|it| {
            let data = serde_json::from_str(&it.data).expect("event data is JSON");
            (it.kind, it.subject, data)
        })
        .collect()
}

#[tokio::test]
async fn create_action_starts_a_running_action_with_one_step_and_an_audit_event() {
    let store = store_with_events().await;
    let events_before = store.events().await.expect("events").len();
    let new = new_action("keys", "credential:a");

    let record = store.create_action(&new, t(3)).await.expect("create");
    assert_eq!(record.status, ActionStatus::Running);
    assert_eq!(
        (
            record.kind.as_str(),
            record.source.as_str(),
            record.credential_external_id.as_str(),
            record.identity_external_id.as_str(),
            record.origin.as_str(),
            record.step.as_str(),
        ),
        (
            "rotate",
            "keys",
            "credential:a",
            "identity:ci",
            "cli",
            "create_new_key"
        )
    );
    assert_eq!(record.state, new.state);
    assert_eq!((record.reason.as_deref(), record.next_at), (None, None));
    assert_eq!((record.created_at, record.updated_at), (t(3), t(3)));
    assert_eq!(store.action(record.id).await.expect("action"), record);

    let steps = store.action_steps(record.id).await.expect("steps");
    assert_eq!(
        steps,
        [ActionStep {
            at: t(3),
            step: "create_new_key".into(),
            status: ActionStatus::Running,
            detail: None,
        }]
    );

    let events = events_after(&store, events_before).await;
    assert_eq!(events.len(), 1, "{events:?}");
    let (kind, subject, data) = &events[0];
    assert_eq!(
        (kind.as_str(), subject.as_str()),
        ("action.started", "keys/credential:a")
    );
    assert_eq!(data["action"], record.id);
    assert_eq!(data["kind"], "rotate");
    assert_eq!(data["origin"], "cli");
    assert!(store.verify_audit().await.expect("verify").is_ok());
}

#[tokio::test]
async fn a_second_action_on_a_credential_conflicts_until_the_first_is_done() {
    let store = SqliteStore::in_memory().await.expect("store");
    let new = new_action("keys", "credential:a");
    let first = store.create_action(&new, t(1)).await.expect("create");

    let totals = async |store: &SqliteStore| {
        (
            count(store, "actions").await,
            count(store, "action_steps").await,
            count(store, "events").await,
        )
    };
    let before = totals(&store).await;
    let err = store.create_action(&new, t(2)).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    assert_eq!(
        totals(&store).await,
        before,
        "a refused action changes nothing"
    );

    // Waiting is unfinished too.
    store
        .update_action(first.id, &update("overlap", ActionStatus::Waiting), t(2))
        .await
        .expect("update");
    let before = totals(&store).await;
    let err = store.create_action(&new, t(3)).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    assert_eq!(
        totals(&store).await,
        before,
        "a refused action changes nothing"
    );
    assert_eq!(
        store.action(first.id).await.expect("action").status,
        ActionStatus::Waiting
    );

    // Other credentials, and the same id in another source, are not blocked.
    store
        .create_action(&new_action("keys", "credential:b"), t(3))
        .await
        .expect("another credential");
    store
        .create_action(&new_action("other", "credential:a"), t(3))
        .await
        .expect("another source");

    store
        .update_action(first.id, &update("finished", ActionStatus::Done), t(4))
        .await
        .expect("update");
    let second = store.create_action(&new, t(5)).await.expect("create again");
    assert_ne!(second.id, first.id);
    assert_eq!(second.status, ActionStatus::Running);
    assert_eq!(
        store.action(first.id).await.expect("action").status,
        ActionStatus::Done
    );
}

#[tokio::test]
async fn update_action_moves_the_step_logs_it_and_audits_it() {
    let store = SqliteStore::in_memory().await.expect("store");
    let created = store
        .create_action(&new_action("keys", "credential:a"), t(1))
        .await
        .expect("create");
    let events_before = store.events().await.expect("events").len();

    // With a detail: the step log keeps the detail.
    let waiting = ActionUpdate {
        step: "overlap".into(),
        status: ActionStatus::Waiting,
        state: serde_json::json!({ "old_key": "AKIAOLD", "new_key": "AKIANEW" }),
        reason: None,
        next_at: Some(t(8)),
        detail: Some("created AKIANEW".into()),
        holder: HOLDER.into(),
        token: 1,
    };
    let record = store
        .update_action(created.id, &waiting, t(2))
        .await
        .expect("update");
    assert_eq!(
        (record.step.as_str(), record.status, record.next_at),
        ("overlap", ActionStatus::Waiting, Some(t(8)))
    );
    assert_eq!(record.state, waiting.state);
    assert_eq!(record.reason, None);
    assert_eq!((record.created_at, record.updated_at), (t(1), t(2)));
    assert_eq!(store.action(created.id).await.expect("action"), record);

    // Without a detail: the step log keeps the reason.
    let failed = ActionUpdate {
        step: "deactivate_old_key".into(),
        status: ActionStatus::Failed,
        state: serde_json::json!({ "old_key": "AKIAOLD" }),
        reason: Some("AccessDenied on UpdateAccessKey".into()),
        next_at: None,
        detail: None,
        holder: HOLDER.into(),
        token: 1,
    };
    let record = store
        .update_action(created.id, &failed, t(3))
        .await
        .expect("update");
    assert_eq!(
        (
            record.step.as_str(),
            record.status,
            record.reason.as_deref(),
            record.next_at
        ),
        (
            "deactivate_old_key",
            ActionStatus::Failed,
            Some("AccessDenied on UpdateAccessKey"),
            None
        ),
        "next_at is cleared, the reason set"
    );
    assert_eq!(record.state, failed.state);
    assert_eq!(record.updated_at, t(3));

    let steps: Vec<(String, ActionStatus, Option<String>, DateTime<Utc>)> = store
        .action_steps(created.id)
        .await
        .expect("steps")
        .into_iter()
        .map(|it| (it.step, it.status, it.detail, it.at))
        .collect();
    assert_eq!(
        steps,
        [
            ("create_new_key".into(), ActionStatus::Running, None, t(1)),
            (
                "overlap".into(),
                ActionStatus::Waiting,
                Some("created AKIANEW".into()),
                t(2)
            ),
            (
                "deactivate_old_key".into(),
                ActionStatus::Failed,
                Some("AccessDenied on UpdateAccessKey".into()),
                t(3)
            ),
        ]
    );

    let events = events_after(&store, events_before).await;
    let summary: Vec<(&str, &str, &serde_json::Value, &serde_json::Value)> = events
        .iter()
        .map(|(kind, subject, data)| {
            (
                kind.as_str(),
                subject.as_str(),
                &data["step"],
                &data["status"],
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                "action.step",
                "keys/credential:a",
                &serde_json::json!("overlap"),
                &serde_json::json!("waiting")
            ),
            (
                "action.step",
                "keys/credential:a",
                &serde_json::json!("deactivate_old_key"),
                &serde_json::json!("failed")
            ),
        ]
    );
    assert!(
        events
            .iter()
            .all(|(_, _, data)| data["action"] == created.id)
    );
    assert_eq!(events[1].2["reason"], "AccessDenied on UpdateAccessKey");

    let total = store.events().await.expect("events").len() as u64;
    assert_eq!(
        store.verify_audit().await.expect("verify").expect("intact"),
        total
    );
}

#[tokio::test]
async fn the_audit_chain_stays_intact_over_many_action_updates() {
    let store = store_with_events().await;
    let action = store
        .create_action(&new_action("keys", "credential:a"), t(3))
        .await
        .expect("create");
    for (i, status) in [
        ActionStatus::Running,
        ActionStatus::Waiting,
        ActionStatus::Running,
        ActionStatus::Waiting,
        ActionStatus::Done,
    ]
    .into_iter()
    .enumerate()
    {
        let at = t(4) + Duration::minutes(i as i64);
        store
            .update_action(action.id, &update(&format!("step-{i}"), status), at)
            .await
            .expect("update");
    }
    let steps = store.action_steps(action.id).await.expect("steps");
    assert_eq!(steps.len(), 6);
    assert_eq!(steps[5].step, "step-4");
    let total = store.events().await.expect("events").len() as u64;
    assert_eq!(
        store.verify_audit().await.expect("verify").expect("intact"),
        total
    );
}

#[tokio::test]
async fn updating_an_unknown_action_is_not_found_and_changes_nothing() {
    let store = SqliteStore::in_memory().await.expect("store");
    let action = store
        .create_action(&new_action("keys", "credential:a"), t(1))
        .await
        .expect("create");
    let events = count(&store, "events").await;
    let steps = count(&store, "action_steps").await;
    let err = store
        .update_action(action.id + 1, &update("x", ActionStatus::Done), t(2))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err}");
    let err = store.action(action.id + 1).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err}");
    assert_eq!(count(&store, "events").await, events);
    assert_eq!(count(&store, "action_steps").await, steps);
}

#[tokio::test]
async fn only_the_lease_holder_moves_an_action_until_the_lease_runs_out() {
    let store = SqliteStore::in_memory().await.expect("store");
    let soon = |seconds: i64| t(1) + chrono::TimeDelta::seconds(seconds);
    let action = store
        .create_action(&new_action("keys", "credential:a"), t(1))
        .await
        .expect("create");
    assert_eq!(action.lease_owner.as_deref(), Some(HOLDER));
    assert_eq!(action.lease_token, 1);
    let mut other = update("create", ActionStatus::Running);
    other.holder = "other".into();
    let err = store
        .update_action(action.id, &other, soon(1))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    let err = store
        .claim_action(action.id, "other", soon(1))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    // The holder claims again: granted, under a new token.
    let again = store
        .claim_action(action.id, HOLDER, soon(2))
        .await
        .expect("own claim");
    assert_eq!(again.lease_token, 2);
    // Anyone may claim it once the lease ran out.
    let later = soon(2) + crate::store::ACTION_LEASE;
    let claimed = store
        .claim_action(action.id, "other", later)
        .await
        .expect("expired lease");
    assert_eq!(claimed.lease_owner.as_deref(), Some("other"));
    assert_eq!(claimed.lease_token, 3);
    // Finishing releases it.
    other.token = 3;
    other.status = ActionStatus::Done;
    let done = store
        .update_action(action.id, &other, later)
        .await
        .expect("done");
    assert_eq!((done.lease_owner, done.lease_until), (None, None));
}

#[tokio::test]
async fn a_finished_action_cannot_be_moved_again() {
    let store = SqliteStore::in_memory().await.expect("store");
    let action = store
        .create_action(&new_action("keys", "credential:a"), t(1))
        .await
        .expect("create");
    store
        .update_action(action.id, &update("done", ActionStatus::Done), t(2))
        .await
        .expect("done");
    let events = count(&store, "events").await;
    let err = store
        .update_action(action.id, &update("create", ActionStatus::Running), t(3))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    assert_eq!(
        store.action(action.id).await.expect("action").status,
        ActionStatus::Done
    );
    assert_eq!(count(&store, "events").await, events);
}

#[tokio::test]
async fn actions_are_listed_newest_first_open_ones_or_all_or_by_credential() {
    let store = SqliteStore::in_memory().await.expect("store");
    let a1 = store
        .create_action(&new_action("keys", "credential:a"), t(1))
        .await
        .expect("create");
    let b = store
        .create_action(&new_action("keys", "credential:b"), t(2))
        .await
        .expect("create");
    let c = store
        .create_action(&new_action("keys", "credential:c"), t(3))
        .await
        .expect("create");
    let other = store
        .create_action(&new_action("other", "credential:a"), t(4))
        .await
        .expect("create");
    store
        .update_action(a1.id, &update("done", ActionStatus::Done), t(5))
        .await
        .expect("update");
    let a2 = store
        .create_action(&new_action("keys", "credential:a"), t(6))
        .await
        .expect("create");
    store
        .update_action(b.id, &update("overlap", ActionStatus::Waiting), t(6))
        .await
        .expect("update");
    store
        .update_action(c.id, &update("refused", ActionStatus::Refused), t(7))
        .await
        .expect("update");

    let ids = |records: Vec<ActionRecord>| records.into_iter().map(|it| it.id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.actions(true).await.expect("open")),
        [a2.id, other.id, b.id],
        "running and waiting only, newest first"
    );
    assert_eq!(
        ids(store.actions(false).await.expect("all")),
        [a2.id, other.id, c.id, b.id, a1.id]
    );
    assert_eq!(
        ids(store
            .credential_actions("keys", "credential:a")
            .await
            .expect("credential")),
        [a2.id, a1.id],
        "not other credentials' nor other sources'"
    );
    assert_eq!(
        ids(store
            .credential_actions("other", "credential:a")
            .await
            .expect("credential")),
        [other.id]
    );
    assert!(
        store
            .credential_actions("keys", "credential:z")
            .await
            .expect("credential")
            .is_empty()
    );
    // The listed records are the stored ones, with their current status.
    let all = store.actions(false).await.expect("all");
    assert_eq!(all[2].status, ActionStatus::Refused);
    assert_eq!(all[3].status, ActionStatus::Waiting);
}

// --- Connector state and the ledger as connectors see it -----------------------------------

async fn scan_source(
    store: &SqliteStore,
    source: &str,
    at: DateTime<Utc>,
    inventory: &Inventory,
) -> SourceDiff {
    let id = store
        .begin_scan(at, &[(source.to_owned(), "aws-iam".to_owned())])
        .await
        .expect("begin");
    let diff = store
        .record_inventory(id, source, inventory, at)
        .await
        .expect("record");
    store.finish_scan(id, at, false).await.expect("finish");
    diff
}

/// Records one source with an optional state; `finish` only when asked.
async fn record_with_state(
    store: &SqliteStore,
    at: DateTime<Utc>,
    state: Option<serde_json::Value>,
    finish: bool,
) {
    let id = store
        .begin_scan(at, &[("keys".into(), "files".into())])
        .await
        .expect("begin");
    let mut recorder = store.record_source(id, "keys", at).await.expect("recorder");
    recorder.batch(&inventory(&["a"])).await.expect("batch");
    if let Some(state) = state {
        recorder.save_state(state);
    }
    if finish {
        recorder.finish().await.expect("finish");
    }
    store.finish_scan(id, at, false).await.expect("finish scan");
}

#[tokio::test]
async fn connector_state_is_saved_by_finish_only_and_kept_when_not_replaced() {
    let store = SqliteStore::in_memory().await.expect("store");
    assert_eq!(store.connector_state("keys").await.expect("state"), None);

    // A source scanned without state has none.
    record_with_state(&store, t(1), None, true).await;
    assert_eq!(store.connector_state("keys").await.expect("state"), None);

    let first = serde_json::json!({ "full_listing_at": "2026-01-02T12:00:00Z", "n": 1 });
    record_with_state(&store, t(2), Some(first.clone()), true).await;
    assert_eq!(
        store.connector_state("keys").await.expect("state"),
        Some(first.clone())
    );

    // Dropped without finish: the new state is not saved.
    record_with_state(&store, t(3), Some(serde_json::json!({ "n": 2 })), false).await;
    assert_eq!(
        store.connector_state("keys").await.expect("state"),
        Some(first.clone())
    );

    // Finished without a state: the earlier one stays.
    record_with_state(&store, t(4), None, true).await;
    assert_eq!(
        store.connector_state("keys").await.expect("state"),
        Some(first.clone())
    );

    // A new state replaces it; other sources have their own.
    let second = serde_json::json!({ "n": 3 });
    record_with_state(&store, t(5), Some(second.clone()), true).await;
    assert_eq!(
        store.connector_state("keys").await.expect("state"),
        Some(second)
    );
    assert_eq!(store.connector_state("other").await.expect("state"), None);
}

/// A credential `name` of `identity`.
fn owned(source: &str, name: &str, identity: &str) -> (Identity, Credential) {
    let mut it = fixtures::credential(source, name, CredentialKind::AccessKey, t(1));
    it.identity.external_id = format!("identity:{identity}");
    it.identity.name = identity.to_owned();
    it.credential.identity_id = format!("identity:{identity}");
    (it.identity, it.credential)
}

fn inventory_of(items: &[(Identity, Credential)]) -> Inventory {
    let mut inventory = Inventory::default();
    for (identity, credential) in items {
        if !inventory
            .identities
            .iter()
            .any(|it| it.external_id == identity.external_id)
        {
            inventory.identities.push(identity.clone());
        }
        inventory.credentials.push(credential.clone());
    }
    inventory
}

/// Source `keys`: alice holds a1 and (until the second scan) a2, bob holds b1. Source `other`:
/// alice holds a copy of a1 and x1.
async fn ledger_of_two_sources() -> (SqliteStore, Vec<(Identity, Credential)>) {
    let store = SqliteStore::in_memory().await.expect("store");
    let keys = vec![
        owned("keys", "a1", "alice"),
        owned("keys", "a2", "alice"),
        owned("keys", "b1", "bob"),
    ];
    scan_source(&store, "keys", t(1), &inventory_of(&keys)).await;
    let mut other_a1 = owned("other", "a1", "alice");
    other_a1.1.name = "a1 in other".into();
    let other = vec![other_a1, owned("other", "x1", "alice")];
    scan_source(&store, "other", t(1), &inventory_of(&other)).await;
    let present = vec![keys[0].clone(), keys[2].clone()];
    let diff = scan_source(&store, "keys", t(2), &inventory_of(&present)).await;
    assert_eq!(diff.gone, 1);
    (store, keys)
}

#[tokio::test]
async fn identity_credentials_are_that_identitys_present_credentials_in_that_source() {
    let (store, keys) = ledger_of_two_sources().await;
    assert_eq!(
        store
            .identity_credentials("keys", "identity:alice")
            .await
            .expect("alice"),
        [keys[0].1.clone()],
        "a2 is gone; other sources' credentials of alice are not this source's"
    );
    assert_eq!(
        store
            .identity_credentials("keys", "identity:bob")
            .await
            .expect("bob"),
        [keys[2].1.clone()]
    );
    let other: Vec<String> = store
        .identity_credentials("other", "identity:alice")
        .await
        .expect("other")
        .into_iter()
        .map(|it| it.external_id)
        .collect();
    assert_eq!(other, ["credential:a1", "credential:x1"]);
    assert!(
        store
            .identity_credentials("keys", "identity:nobody")
            .await
            .expect("nobody")
            .is_empty()
    );
}

#[tokio::test]
async fn find_credential_finds_it_in_every_source_gone_ones_included() {
    let (store, _) = ledger_of_two_sources().await;
    let found = store.find_credential("credential:a1").await.expect("find");
    let found: Vec<(&str, &str, &str, CredentialStatus)> = found
        .iter()
        .map(|it| {
            (
                it.source.as_str(),
                it.identity.external_id.as_str(),
                it.credential.name.as_str(),
                it.credential.status,
            )
        })
        .collect();
    assert_eq!(
        found,
        [
            ("keys", "identity:alice", "a1", CredentialStatus::Active),
            (
                "other",
                "identity:alice",
                "a1 in other",
                CredentialStatus::Active
            ),
        ]
    );

    let gone = store.find_credential("credential:a2").await.expect("find");
    assert_eq!(gone.len(), 1, "{gone:?}");
    assert_eq!(gone[0].source, "keys");
    assert_eq!(gone[0].first_seen, t(1));
    assert_eq!(
        gone[0].credential.status,
        CredentialStatus::Gone,
        "callers tell a gone credential by its status"
    );

    assert!(
        store
            .find_credential("credential:nowhere")
            .await
            .expect("find")
            .is_empty()
    );
}

#[tokio::test]
async fn known_shows_a_source_as_the_store_does() {
    let (store, keys) = ledger_of_two_sources().await;
    let state = serde_json::json!({ "report_generated_at": "2026-01-02T12:00:00Z" });
    let id = store
        .begin_scan(t(3), &[("keys".into(), "files".into())])
        .await
        .expect("begin");
    let mut recorder = store
        .record_source(id, "keys", t(3))
        .await
        .expect("recorder");
    recorder
        .batch(&inventory_of(&[keys[0].clone(), keys[2].clone()]))
        .await
        .expect("batch");
    recorder.save_state(state.clone());
    recorder.finish().await.expect("finish");

    let known = store.known("keys");
    for identity in ["identity:alice", "identity:bob", "identity:nobody"] {
        assert_eq!(
            known.credentials_of(identity).await.expect("known"),
            store
                .identity_credentials("keys", identity)
                .await
                .expect("store"),
            "{identity}"
        );
    }
    assert_eq!(
        known.credentials_of("identity:alice").await.expect("known"),
        [keys[0].1.clone()]
    );
    assert_eq!(known.state().await.expect("state"), Some(state));

    let other = store.known("other");
    assert_eq!(
        other
            .credentials_of("identity:alice")
            .await
            .expect("known")
            .len(),
        2
    );
    assert_eq!(other.state().await.expect("state"), None);
}

#[tokio::test]
async fn batches_are_written_in_groups_before_finish_and_an_identity_sent_twice_is_kept_once() {
    let store = SqliteStore::in_memory().await.expect("store");
    let id = store
        .begin_scan(t(1), &[("keys".into(), "files".into())])
        .await
        .expect("begin");
    let mut recorder = store
        .record_source(id, "keys", t(1))
        .await
        .expect("recorder");
    let names: Vec<String> = (0..6_000).map(|i| format!("k{i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    // 3,000 identities + 3,000 credentials a batch: the second fills a group of 10,000 rows.
    let mut first = inventory(&names[..3_000]);
    // One identity sent again in the next batch, as a connector paging by identity may.
    let again = first.identities[0].clone();
    recorder.batch(&first).await.expect("batch");
    let count = || async {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM credentials")
            .fetch_one(&store.pool)
            .await
            .expect("count")
    };
    assert_eq!(count().await, 0, "one batch waits for its group");
    let mut second = inventory(&names[3_000..]);
    second.identities.push(again);
    recorder.batch(&second).await.expect("batch");
    assert_eq!(
        count().await,
        6_000,
        "a full group is committed before finish"
    );
    first = inventory(&["last"]);
    recorder.batch(&first).await.expect("batch");
    let diff = recorder.finish().await.expect("finish");
    assert_eq!((diff.seen, diff.new), (6_001, 6_001));
    assert_eq!(count().await, 6_001);
    let identities: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM identities")
        .fetch_one(&store.pool)
        .await
        .expect("identities");
    assert_eq!(identities, 6_001);
    let first_seen: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM events WHERE kind = 'identity.first_seen'")
            .fetch_one(&store.pool)
            .await
            .expect("events");
    assert_eq!(
        first_seen, 6_001,
        "one event per identity, however often it was sent"
    );
    assert!(store.verify_audit().await.expect("verify").is_ok());
}

#[tokio::test]
async fn a_changed_credential_keeps_its_first_sighting_and_gets_its_new_fingerprints() {
    let store = SqliteStore::in_memory().await.expect("store");
    let with = |value: &str, status: CredentialStatus| {
        let mut inventory = inventory(&["a", "b"]);
        for credential in &mut inventory.credentials {
            credential.status = status;
            credential.fingerprints = vec![keywarden_connector::Fingerprint {
                algorithm: "sha256_spki".to_owned(),
                value: format!("{value}-{}", credential.external_id),
            }];
        }
        inventory
    };
    scan(&store, t(1), &with("old", CredentialStatus::Active)).await;
    let diff = scan(&store, t(2), &with("new", CredentialStatus::Inactive)).await;
    assert_eq!((diff.changed, diff.new), (2, 0));
    for name in ["a", "b"] {
        let id = format!("credential:{name}");
        assert_eq!(
            store
                .credential_first_seen("keys", &id)
                .await
                .expect("first"),
            Some(t(1))
        );
        assert_eq!(
            store
                .credential_status("keys", &id)
                .await
                .expect("status")
                .as_deref(),
            Some("inactive")
        );
        let values: Vec<(String, String)> = sqlx::query_as(
            "SELECT f.value, c.last_seen FROM fingerprints f JOIN credentials c \
             ON c.id = f.credential_id WHERE c.external_id = ?",
        )
        .bind(&id)
        .fetch_all(&store.pool)
        .await
        .expect("fingerprints");
        assert_eq!(values.len(), 1, "{values:?}");
        assert_eq!(values[0].0, format!("new-{id}"));
    }
}

#[tokio::test]
async fn a_leak_is_recorded_once_and_waits_for_its_answer_until_answered() {
    use crate::leaks::{Indicator, Leak, LeakFormat};
    use crate::store::{Leaks, Recorded};
    let store = SqliteStore::in_memory().await.expect("store");
    let leak = Leak {
        id: "gitleaks:c:f:r:1".to_owned(),
        format: LeakFormat::Gitleaks,
        detector: "aws-access-token".to_owned(),
        location: Some("c:f:1".to_owned()),
        exposed_at: None,
        indicators: vec![Indicator::AccessKeyId("AKIAZ6EXAMPLE7KEY4ID".to_owned())],
        dismissed: None,
        candidates: Default::default(),
    };
    let at = DateTime::from_timestamp(1_800_000_000, 0).expect("time");
    let first = store
        .record_leaks(&[(leak.clone(), Vec::new())], at)
        .await
        .expect("record");
    assert_eq!(
        first,
        [Recorded {
            new: true,
            unanswered: true,
            matched_before: Vec::new(),
            dismissed_before: false,
        }]
    );
    // An ingest that stopped before its answer: the next one answers it.
    let again = store
        .record_leaks(&[(leak.clone(), Vec::new())], at)
        .await
        .expect("record");
    assert_eq!(
        again,
        [Recorded {
            new: false,
            unanswered: true,
            matched_before: Vec::new(),
            dismissed_before: false,
        }]
    );
    store
        .leaks_answered(
            &[crate::store::Answered {
                leak: leak.clone(),
                matched: Vec::new(),
                what: serde_json::json!({}),
                stored_as_is: false,
            }],
            at,
        )
        .await
        .expect("answered");
    let done = store
        .record_leaks(&[(leak.clone(), Vec::new())], at)
        .await
        .expect("record");
    assert_eq!(
        done,
        [Recorded {
            new: false,
            unanswered: false,
            matched_before: Vec::new(),
            dismissed_before: false,
        }]
    );
    assert_eq!(store.leaks().await.expect("leaks").len(), 1);
}
