//! Several processes on one store: leases with fencing, heartbeats, busy and locked databases.
//! A second `SqliteStore` on the same file stands for a second process.

use crate::store::{
    ActionStatus, ActionUpdate, Actions, AuditLog, Findings, NewAction, Observation, Scans,
};
use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeDelta, TimeZone, Utc};
use keywarden_connector::{CredentialKind, Inventory};

use super::*;
use crate::actions::lease::{self, Heartbeat, Lease};
use crate::ledger::fixtures;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0)
        .single()
        .expect("valid time")
}

fn new_action(credential: &str, holder: &str) -> NewAction {
    NewAction {
        kind: crate::store::ActionKind::Rotate,
        source: "keys".into(),
        credential_external_id: credential.into(),
        identity_external_id: "identity:ci".into(),
        origin: "cli".into(),
        step: "check".into(),
        state: serde_json::json!({}),
        holder: holder.into(),
        status: crate::store::ActionStatus::Running,
        parent: None,
        exclusive: true,
    }
}

fn step(step: &str, holder: &str, token: i64) -> ActionUpdate {
    ActionUpdate {
        step: step.into(),
        status: ActionStatus::Running,
        state: serde_json::json!({ "step": step }),
        reason: None,
        next_at: None,
        detail: Some(format!("{holder} took {step}")),
        holder: holder.into(),
        token,
    }
}

async fn file_store(dir: &tempfile::TempDir, lease: TimeDelta) -> SqliteStore {
    SqliteStore::open_with(
        &dir.path().join("ledger.db"),
        SqliteOptions {
            action_lease: lease,
            ..SqliteOptions::default()
        },
    )
    .await
    .expect("open")
}

#[tokio::test]
async fn a_stalled_holder_is_taken_over_after_its_lease_and_its_late_write_is_refused() {
    let store = SqliteStore::in_memory().await.expect("store");
    let lease = store.action_lease();
    let created = store
        .create_action(&new_action("credential:a", "a"), t0())
        .await
        .expect("create");
    let a = store.claim_action(created.id, "a", t0()).await.expect("a");
    // `a` stops heartbeating. Before its lease runs out nobody else gets it ...
    let before_end = t0() + lease - TimeDelta::seconds(1);
    let err = store
        .claim_action(created.id, "b", before_end)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    // ... after, `b` does, under a new token.
    let after_end = t0() + lease;
    let b = store
        .claim_action(created.id, "b", after_end)
        .await
        .expect("b takes over");
    assert_eq!(b.lease_owner.as_deref(), Some("b"));
    assert!(b.lease_token > a.lease_token);
    let steps = store.action_steps(created.id).await.expect("steps").len();
    let events = store.events().await.expect("events").len();

    // `a` wakes up and records the step it was taking: refused, and nothing is written.
    let err = store
        .update_action(
            created.id,
            &step("create", "a", a.lease_token),
            after_end + TimeDelta::seconds(1),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    let err = store
        .renew_lease(
            created.id,
            "a",
            a.lease_token,
            after_end + TimeDelta::seconds(1),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    // A release by `a` does not free `b`'s lease.
    store
        .release_lease(created.id, "a", a.lease_token)
        .await
        .expect("release");
    assert_eq!(
        store.action(created.id).await.expect("action").lease_owner,
        Some("b".to_owned())
    );
    assert_eq!(
        store.action_steps(created.id).await.expect("steps").len(),
        steps
    );
    assert_eq!(store.events().await.expect("events").len(), events);
    // The take-over itself is audited.
    let claimed = store.events().await.expect("events");
    assert_eq!(
        claimed.last().map(|it| it.kind.as_str()),
        Some("action.claimed")
    );

    // `b` records it.
    let moved = store
        .update_action(
            created.id,
            &step("create", "b", b.lease_token),
            after_end + TimeDelta::seconds(2),
        )
        .await
        .expect("b moves it");
    assert_eq!(moved.step, "create");
}

#[tokio::test]
async fn a_renewed_lease_is_not_taken_over_and_a_released_one_is_free_at_once() {
    let store = SqliteStore::in_memory().await.expect("store");
    let lease = store.action_lease();
    let created = store
        .create_action(&new_action("credential:a", "a"), t0())
        .await
        .expect("create");
    let a = store.claim_action(created.id, "a", t0()).await.expect("a");
    let renewed_at = t0() + lease - TimeDelta::seconds(1);
    let until = store
        .renew_lease(created.id, "a", a.lease_token, renewed_at)
        .await
        .expect("renew");
    assert_eq!(until, renewed_at + lease);
    let err = store
        .claim_action(created.id, "b", t0() + lease + TimeDelta::seconds(1))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    store
        .release_lease(created.id, "a", a.lease_token)
        .await
        .expect("release");
    let b = store
        .claim_action(created.id, "b", t0() + TimeDelta::seconds(5))
        .await
        .expect("free after release");
    assert_eq!(b.lease_owner.as_deref(), Some("b"));
}

#[tokio::test]
async fn a_heartbeat_keeps_a_lease_past_its_first_end_and_stops_when_dropped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = file_store(&dir, TimeDelta::seconds(1)).await;
    let other = file_store(&dir, TimeDelta::seconds(1)).await;
    let created = store
        .create_action(&new_action("credential:a", "a"), Utc::now())
        .await
        .expect("create");
    let claimed = store
        .claim_action(created.id, "a", Utc::now())
        .await
        .expect("claim");
    let held = Lease::held_by(&claimed, "a").expect("held");
    let every = lease::heartbeat_every(store.action_lease());
    let heartbeat = Heartbeat::start(Arc::new(store.clone()), held, every, Arc::new(Utc::now));
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let err = other
        .claim_action(created.id, "b", Utc::now())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "still held: {err}");
    assert_eq!(heartbeat.lost(), None);
    drop(heartbeat);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let b = other
        .claim_action(created.id, "b", Utc::now())
        .await
        .expect("no heartbeat: taken over");
    assert_eq!(b.lease_owner.as_deref(), Some("b"));
}

#[tokio::test]
async fn a_heartbeat_reports_a_lease_taken_over_and_while_held_stops_the_work() {
    let store = SqliteStore::in_memory().await.expect("store");
    let created = store
        .create_action(&new_action("credential:a", "a"), t0())
        .await
        .expect("create");
    let claimed = store.claim_action(created.id, "a", t0()).await.expect("a");
    let held = Lease::held_by(&claimed, "a").expect("held");
    let heartbeat = Heartbeat::start(
        Arc::new(store.clone()),
        held.clone(),
        Duration::from_millis(50),
        Arc::new(t0),
    );
    let mut lost = heartbeat.watch();
    // `b` takes it over (as if `a` had stalled past its lease).
    store
        .claim_action(created.id, "b", t0() + store.action_lease())
        .await
        .expect("b");
    tokio::time::timeout(Duration::from_secs(5), lost.changed())
        .await
        .expect("reported in time")
        .expect("changed");
    assert!(heartbeat.lost().is_some());

    // The step `a` was taking is stopped.
    let clock = t0;
    let work = tokio::time::sleep(Duration::from_secs(3600));
    let stopped = tokio::time::timeout(
        Duration::from_secs(5),
        lease::while_held(&store, &held, Duration::from_millis(50), &clock, work),
    )
    .await
    .expect("stopped in time");
    assert!(stopped.is_err(), "the lease was lost");
}

/// A deferred read-then-write whose snapshot another connection made stale gets
/// `SQLITE_BUSY_SNAPSHOT` (517): retryable, like every busy or locked answer.
#[tokio::test]
async fn a_busy_snapshot_is_unavailable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = file_store(&dir, ACTION_LEASE).await;
    let other = file_store(&dir, ACTION_LEASE).await;
    store
        .create_action(&new_action("credential:a", "a"), t0())
        .await
        .expect("create");
    let mut reader = store.pool.begin().await.expect("deferred");
    let _: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM actions")
        .fetch_one(&mut *reader)
        .await
        .expect("read");
    other
        .create_action(&new_action("credential:b", "b"), t0())
        .await
        .expect("other writes");
    let err = sqlx::query("UPDATE actions SET reason = 'x'")
        .execute(&mut *reader)
        .await
        .unwrap_err();
    let code = match &err {
        sqlx::Error::Database(db) => db.code().map(|it| it.into_owned()),
        _ => None,
    };
    assert_eq!(code.as_deref(), Some("517"), "{err}");
    let mapped = map_err(err);
    assert!(matches!(mapped, StoreError::Unavailable(_)), "{mapped}");
}

fn inventory(prefix: &str, n: usize) -> Inventory {
    let mut inventory = Inventory::default();
    for i in 0..n {
        let it = fixtures::credential(
            "keys",
            &format!("{prefix}-{i}"),
            CredentialKind::PublicKey,
            t0(),
        );
        inventory.identities.push(it.identity);
        inventory.credentials.push(it.credential);
    }
    inventory
}

/// Two processes writing at once, each with several tasks, each write a read-then-write
/// (recording an inventory, observing findings, moving actions): every write waits for the lock
/// instead of failing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_writing_at_once_both_succeed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = file_store(&dir, ACTION_LEASE).await;
    let second = file_store(&dir, ACTION_LEASE).await;
    let scans = |store: SqliteStore, name: &'static str| async move {
        let sources = [("keys".to_owned(), "files".to_owned())];
        for round in 0..4 {
            let at = t0() + TimeDelta::minutes(round);
            let scan = store.begin_scan(at, &sources).await?;
            store
                .record_inventory(scan, "keys", &inventory(name, 300), at)
                .await?;
            let observations: Vec<Observation> = (0..50)
                .map(|i| Observation {
                    source: "keys".into(),
                    credential_external_id: format!("credential:{name}-{i}"),
                    policy_id: "p".into(),
                    severity: "high".into(),
                    reason: "r".into(),
                })
                .collect();
            store.observe_findings(scan, &observations, at).await?;
            store.finish_scan(scan, at, false).await?;
        }
        Ok::<_, StoreError>(())
    };
    let steps = |store: SqliteStore, name: String| async move {
        let created = store.create_action(&new_action(&name, &name), t0()).await?;
        for n in 0..15 {
            let claimed = store.claim_action(created.id, &name, t0()).await?;
            store
                .update_action(
                    created.id,
                    &step(&format!("step-{n}"), &name, claimed.lease_token),
                    t0(),
                )
                .await?;
        }
        Ok::<_, StoreError>(())
    };
    let mut tasks = vec![
        tokio::spawn(scans(first.clone(), "a")),
        tokio::spawn(scans(second.clone(), "b")),
    ];
    for i in 0..4 {
        tasks.push(tokio::spawn(steps(first.clone(), format!("first-{i}"))));
        tasks.push(tokio::spawn(steps(second.clone(), format!("second-{i}"))));
    }
    for task in tasks {
        task.await.expect("join").expect("every write succeeds");
    }
    assert!(first.verify_audit().await.expect("verify").is_ok());
}
