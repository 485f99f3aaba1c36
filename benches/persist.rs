//! Target: persisting a scan of 100,000 credentials into a fresh SQLite store, history included,
//! in under 3 s. Run: `cargo bench --bench persist`.

use std::time::{Duration, Instant};

use chrono::Utc;
use criterion::{Criterion, criterion_group, criterion_main};
use keywarden::store::{SqliteStore, Store};
use keywarden_connector::ScanContext;
use keywarden_synthetic::SyntheticConfig;

const COUNT: u64 = 100_000;

fn persist(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let now = Utc::now();
    let connector = SyntheticConfig {
        count: COUNT,
        seed: 1,
        credentials_per_identity: 2,
    }
    .build("load");
    let inventory = runtime
        .block_on(keywarden_connector::collect(
            &connector,
            &ScanContext::new(now),
        ))
        .expect("inventory");
    let sources = [("load".to_owned(), "synthetic".to_owned())];

    let mut group = c.benchmark_group("persist");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(30));
    group.bench_function("100k_credentials_fresh_sqlite_file", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = tempfile::tempdir().expect("tempdir");
                let path = dir.path().join("bench.db");
                total += runtime.block_on(async {
                    // Opening (file creation + migrations) counts: it is part of a first scan.
                    let start = Instant::now();
                    let store = SqliteStore::open(&path).await.expect("open");
                    let scan = store.begin_scan(now, &sources).await.expect("begin");
                    let diff = store
                        .record_inventory(scan, "load", &inventory, now)
                        .await
                        .expect("record");
                    store.finish_scan(scan, now, false).await.expect("finish");
                    let elapsed = start.elapsed();
                    assert_eq!(diff.new, COUNT);
                    store.close().await;
                    elapsed
                });
            }
            total
        })
    });
    group.finish();
}

criterion_group!(benches, persist);
criterion_main!(benches);
