//! Target: the first scan of 100,000 credentials persisted into a fresh SQLite store in under 3 s,
//! on the path a scan takes: `record_source`, one `batch` per batch the connector hands over
//! (the `synthetic` source's 1,000 identities / 2,000 credentials, half of them with a last use),
//! `finish`, then the ledger read page by page, evaluated against the shipped policies and the
//! findings observed (`observe_findings`), the unobserved resolved, the scan finished. History
//! rows and their audit events (keyed chain) included.
//! Run: `cargo bench --bench persist`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use keywarden::ledger::LedgerCredential;
use keywarden::policy::{self, PolicySet};
use keywarden::store::{CredentialCursor, Findings, Ledger, Observation, PAGE, Scans, SqliteStore};
use keywarden_connector::{Connector, ConnectorError, Inventory, InventorySink, ScanContext};
use keywarden_synthetic::SyntheticConfig;

const COUNT: u64 = 100_000;

/// The batches exactly as the connector hands them to a scan.
#[derive(Default)]
struct Batches(Vec<Inventory>);

#[async_trait]
impl InventorySink for Batches {
    async fn batch(&mut self, batch: Inventory) -> Result<(), ConnectorError> {
        self.0.push(batch);
        Ok(())
    }
}

/// What `scan::run` does with one source's batches, without the connector and the report.
async fn first_scan(
    store: &SqliteStore,
    batches: &[Inventory],
    policies: &PolicySet,
    now: DateTime<Utc>,
) -> (u64, u64) {
    let sources = [("load".to_owned(), "synthetic".to_owned())];
    let scan = store.begin_scan(now, &sources).await.expect("begin");
    let mut recorder = store
        .record_source(scan, "load", now)
        .await
        .expect("recorder");
    for batch in batches {
        recorder.batch(batch).await.expect("batch");
    }
    let diff = recorder.finish().await.expect("finish");
    let mut opened = 0;
    let mut after = CredentialCursor::START;
    loop {
        let page = store.credentials_page(after, PAGE).await.expect("page");
        let Some((last, _)) = page.last() else {
            break;
        };
        after = *last;
        let credentials: Vec<LedgerCredential> = page.into_iter().map(|(_, it)| it).collect();
        // As the scan does: identity counts from the store when a policy needs them.
        let counts = keywarden::scan::identity_counts(store, policies, &credentials)
            .await
            .expect("counts");
        let observations: Vec<Observation> = policy::evaluate(policies, &credentials, &counts, now)
            .into_iter()
            .map(|violation| {
                let credential = &credentials[violation.credential];
                let policy = &policies.policies[violation.policy];
                Observation {
                    source: credential.source.clone(),
                    credential_external_id: credential.credential.external_id.clone(),
                    policy_id: policy.id.clone(),
                    severity: policy.severity.as_str().to_owned(),
                    reason: violation.reason,
                }
            })
            .collect();
        opened += store
            .observe_findings(scan, &observations, now)
            .await
            .expect("observe")
            .opened;
    }
    store
        .resolve_unobserved_findings(scan, &["load".to_owned()], now)
        .await
        .expect("resolve");
    store
        .finish_scan(scan, now, false)
        .await
        .expect("finish scan");
    (diff.new, opened)
}

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
    let mut batches = Batches::default();
    runtime
        .block_on(connector.inventory(&ScanContext::new(now), &mut batches))
        .expect("inventory");
    let policies = policy::load(&[PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("policies")])
        .expect("shipped policies");

    let mut group = c.benchmark_group("persist");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(40));
    group.bench_function("100k_credentials_first_scan_batches_and_findings", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = tempfile::tempdir().expect("tempdir");
                let path = dir.path().join("bench.db");
                total += runtime.block_on(async {
                    // Opening (file creation, migrations, the audit key file) counts: it is part
                    // of a first scan.
                    let start = Instant::now();
                    let store = SqliteStore::open(&path).await.expect("open");
                    let (new, opened) = first_scan(&store, &batches.0, &policies, now).await;
                    let elapsed = start.elapsed();
                    assert_eq!(new, COUNT);
                    assert!(opened > 0);
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
