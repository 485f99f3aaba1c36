//! Target: finding the due actions among 100,000 stored ones in under 20 ms (indexed).
//! Run: `cargo bench --bench due_actions`.
//!
//! The store holds 100,000 actions the way a long-lived deployment does: 98,000 finished (done),
//! 1,900 waiting for a time still ahead (overlaps, graces, holds), 100 due (50 waiting whose
//! time has come, 50 interrupted while running). The measured call is what `actions resume` and
//! the daemon's tick make: `ActionControl::due_actions(now, 10_000)`.

use std::time::Duration;

use chrono::{TimeDelta, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use keywarden::store::{
    ActionControl, ActionKind, ActionStatus, ActionUpdate, Actions, NewAction, SqliteStore,
};

const TOTAL: u32 = 100_000;
const WAITING_AHEAD: u32 = 1_900;
const DUE_WAITING: u32 = 50;
const DUE_RUNNING: u32 = 50;

fn seed(runtime: &tokio::runtime::Runtime, store: &SqliteStore) {
    let now = Utc::now();
    runtime.block_on(async {
        for i in 0..TOTAL {
            let record = store
                .create_action(
                    &NewAction {
                        kind: ActionKind::Rotate,
                        source: "aws".to_owned(),
                        credential_external_id: format!("AKIA{i:016}"),
                        identity_external_id: format!("arn:aws:iam::1:user/u{i}"),
                        origin: "bench".to_owned(),
                        step: "check".to_owned(),
                        state: serde_json::json!({ "step": "check" }),
                        holder: "bench".to_owned(),
                        status: ActionStatus::Running,
                        parent: None,
                        exclusive: true,
                    },
                    now,
                )
                .await
                .expect("create");
            let (status, next_at) = if i < DUE_RUNNING {
                continue;
            } else if i < DUE_RUNNING + DUE_WAITING {
                (ActionStatus::Waiting, Some(now - TimeDelta::hours(1)))
            } else if i < DUE_RUNNING + DUE_WAITING + WAITING_AHEAD {
                (ActionStatus::Waiting, Some(now + TimeDelta::days(3)))
            } else {
                (ActionStatus::Done, None)
            };
            let update = ActionUpdate {
                step: if status == ActionStatus::Done {
                    "done"
                } else {
                    "overlap"
                }
                .to_owned(),
                status,
                state: serde_json::json!({ "step": "check" }),
                reason: None,
                next_at,
                detail: None,
                holder: "bench".to_owned(),
                token: record.lease_token,
            };
            store
                .update_action(record.id, &update, now)
                .await
                .expect("update");
        }
    });
}

fn due_actions(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let store = runtime
        .block_on(SqliteStore::open(&dir.path().join("bench.db")))
        .expect("store");
    seed(&runtime, &store);
    let now = Utc::now();
    let due = runtime
        .block_on(store.due_actions(now, 10_000))
        .expect("due");
    assert_eq!(
        due.len() as u32,
        DUE_RUNNING + DUE_WAITING,
        "the seed is what it says"
    );

    let mut group = c.benchmark_group("actions");
    group.measurement_time(Duration::from_secs(10));
    group.bench_function("due_among_100k", |b| {
        b.iter(|| {
            runtime
                .block_on(store.due_actions(now, 10_000))
                .expect("due")
        });
    });
    group.finish();
}

criterion_group!(benches, due_actions);
criterion_main!(benches);
