//! Target: `keywarden leak ingest` of a 100,000-finding TruffleHog report against a ledger of
//! 100,000 credentials in under 2 s, memory bounded.
//!
//! The ledger: 100,000 AWS access keys (AKIA-shaped ids) of 50,000 users, recorded through the
//! scan's per-batch path once, then copied fresh for each run (the first ingest of a report is
//! measured; a second ingest is a no-op). The report: TruffleHog v3 JSON lines of the `AWS`
//! detector, each with a git source (commit, file, line, timestamp) and the plaintext fields
//! TruffleHog writes (`RawV2` with a secret: dropped at the door). 1,000 of the reported key ids
//! are in the ledger; the other 99,000 are not, and each is kept as an unmatched critical
//! finding. Measured: `intake::ingest` as the CLI calls it (parse, match, record, answer, mark
//! answered), with containment on but no connector configured, so a matched key gets its
//! finding and no action (the time from a leak to a contained key is `scripts/bench-contain`'s).
//! Run: `cargo bench --bench leak_ingest`.

use std::time::{Duration, Instant};

use chrono::Utc;
use criterion::{Criterion, criterion_group, criterion_main};
use keywarden::actions::Engine;
use keywarden::intake::{self, Settings};
use keywarden::policy::PolicySet;
use keywarden::store::{Scans, SqliteStore};
use keywarden_connector::{
    Credential, CredentialKind, CredentialStatus, Identity, IdentityKind, Inventory, LastUse,
};

const LEDGER: u64 = 100_000;
const REPORTED: u64 = 100_000;
const MATCHING: u64 = 1_000;

fn key_id(index: u64) -> String {
    format!("AKIA{index:016}")
}

fn ledger_batches() -> Vec<Inventory> {
    let now = Utc::now();
    let mut batches = Vec::new();
    let mut batch = Inventory::default();
    for index in 0..LEDGER {
        let user = index / 2;
        if index % 2 == 0 {
            batch.identities.push(Identity {
                external_id: format!("arn:aws:iam::123456789012:user/ci-{user}"),
                kind: IdentityKind::IamUser,
                name: format!("ci-{user}"),
                owner: None,
                purpose: None,
                tags: Default::default(),
                confirmed_leaks: Vec::new(),
            });
        }
        batch.credentials.push(Credential {
            external_id: key_id(index),
            identity_id: format!("arn:aws:iam::123456789012:user/ci-{user}"),
            kind: CredentialKind::AccessKey,
            name: key_id(index),
            status: CredentialStatus::Active,
            created_at: now.checked_sub_signed(chrono::TimeDelta::days(30)),
            not_before: None,
            expires_at: None,
            last_used: LastUse::Never,
            algorithm: None,
            key_bits: None,
            fingerprints: Vec::new(),
            public_key: None,
            owner: None,
            purpose: None,
            tags: Default::default(),
            attributes: Default::default(),
            signs_with: Vec::new(),
        });
        if batch.identities.len() >= 1000 && index % 2 == 1 {
            batches.push(std::mem::take(&mut batch));
        }
    }
    batches.push(batch);
    batches
}

/// The report: `MATCHING` of its key ids are in the ledger (spread over it), the rest are not.
fn report() -> Vec<u8> {
    let mut out = Vec::new();
    for line in 0..REPORTED {
        let id = if line % (REPORTED / MATCHING) == 0 {
            key_id(line)
        } else {
            key_id(LEDGER + line)
        };
        let finding = serde_json::json!({
            "SourceMetadata": {"Data": {"Git": {
                "commit": format!("{line:040x}"),
                "file": format!("deploy/env-{}.sh", line % 97),
                "email": "dev <dev@example.com>",
                "repository": "https://github.com/example/pipelines.git",
                "timestamp": "2026-11-20 10:00:00 +0000",
                "line": line % 500 + 1
            }}},
            "SourceID": 1,
            "SourceType": 16,
            "SourceName": "trufflehog - git",
            "DetectorType": 2,
            "DetectorName": "AWS",
            "DecoderName": "PLAIN",
            "Verified": false,
            "Raw": id,
            "RawV2": format!("{id}wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY{line}"),
            "Redacted": id,
            "ExtraData": {"account": "123456789012", "resource_type": "Access key"},
            "StructuredData": null
        });
        serde_json::to_writer(&mut out, &finding).expect("line");
        out.push(b'\n');
    }
    out
}

fn ingest(c: &mut Criterion) {
    if std::env::var_os("KEYWARDEN_BENCH_PRINT").is_some() {
        // The store's slow operations, each with its time.
        let _ = tracing_subscriber::fmt()
            .with_env_filter("keywarden=debug")
            .with_writer(std::io::stderr)
            .try_init();
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let seeded = tempfile::tempdir().expect("tempdir");
    let template = seeded.path().join("ledger.db");
    runtime.block_on(async {
        let store = SqliteStore::open(&template).await.expect("open");
        let now = Utc::now();
        let sources = [("aws".to_owned(), "aws_iam".to_owned())];
        let scan = store.begin_scan(now, &sources).await.expect("begin");
        let mut recorder = store
            .record_source(scan, "aws", now)
            .await
            .expect("recorder");
        for batch in ledger_batches() {
            recorder.batch(&batch).await.expect("batch");
        }
        recorder.finish().await.expect("finish");
        store
            .finish_scan(scan, now, false)
            .await
            .expect("finish scan");
        store.close().await;
    });
    let report = report();
    let policies = PolicySet::default();
    let settings = Settings {
        look_back: chrono::TimeDelta::days(1),
        contain: true,
    };

    let mut group = c.benchmark_group("leak_ingest");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(30));
    group.bench_function("trufflehog_100k_findings_against_100k_credentials", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = tempfile::tempdir().expect("tempdir");
                let path = dir.path().join("ledger.db");
                std::fs::copy(&template, &path).expect("copy");
                // The audit key goes with its database: the copy continues the same chain.
                std::fs::copy(
                    keywarden::store::audit_key::default_key_file(&template),
                    keywarden::store::audit_key::default_key_file(&path),
                )
                .expect("copy the audit key");
                total += runtime.block_on(async {
                    let store = SqliteStore::open(&path).await.expect("open");
                    let clock = Utc::now;
                    let engine = Engine {
                        store: &store,
                        connectors: &[],
                        policies: &policies,
                        holders: &[],
                        clock: &clock,
                    };
                    let start = Instant::now();
                    let ingested = intake::ingest(engine, &settings, &report, None, Utc::now())
                        .await
                        .expect("ingest");
                    let elapsed = start.elapsed();
                    if std::env::var_os("KEYWARDEN_BENCH_PRINT").is_some() {
                        eprintln!("one ingest: {elapsed:?}");
                    }
                    assert_eq!(ingested.leaks.len() as u64, REPORTED);
                    let matched = ingested
                        .leaks
                        .iter()
                        .filter(|it| !it.matched.is_empty())
                        .count() as u64;
                    assert_eq!(matched, MATCHING);
                    store.close().await;
                    elapsed
                });
            }
            total
        })
    });
    group.finish();
}

criterion_group!(benches, ingest);
criterion_main!(benches);
