//! Policy evaluation throughput: 1,000,000 varied ledger credentials against the shipped policy
//! pack (`policies/`), on one core. Target: under 1 s per evaluation.
//!
//! Run: `cargo bench --bench evaluate`.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use keywarden::ledger::LedgerCredential;
use keywarden::policy::{self, PolicySet};
use keywarden_connector::{
    Credential, CredentialKind, CredentialStatus, Identity, IdentityKind, LastUse,
};

const CREDENTIALS: usize = 1_000_000;

/// A small deterministic generator (SplitMix64), so every run evaluates the same credentials.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// True with probability `percent`/100.
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        let len = u64::try_from(items.len()).unwrap_or(u64::MAX);
        let idx = usize::try_from(self.below(len)).unwrap_or_default();
        &items[idx]
    }

    fn days(&mut self, max: u64) -> TimeDelta {
        TimeDelta::seconds(i64::try_from(self.below(max * 86_400)).unwrap_or_default())
    }
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 6, 1, 12, 0, 0)
        .single()
        .unwrap_or_default()
}

/// A mix like a real ledger: mostly AWS access keys and Vault credentials, a good share of
/// signing keys and certificates; ages up to ~2 years; some unowned, some never used, some
/// expiring or expired; a few inactive, revoked or gone.
fn credentials(n: usize) -> Vec<LedgerCredential> {
    use CredentialKind::*;
    const SIGNING: &[CredentialKind] = &[CosignKey, PrivateKey, PublicKey, Certificate, SshKey];
    const VAULT: &[CredentialKind] = &[SecretId, Token, KvSecret, TransitKeyVersion];
    let now = now();
    let mut rng = Rng(0x6B65_7977_6172_6465);
    (0..n)
        .map(|idx| {
            let (source, kind, identity_kind) = match rng.below(10) {
                0..=3 => (
                    *rng.pick(&["aws-prod", "aws-dev", "aws-ci"]),
                    AccessKey,
                    IdentityKind::IamUser,
                ),
                4..=6 => ("vault-ci", *rng.pick(VAULT), IdentityKind::ApproleRole),
                _ => (
                    *rng.pick(&["release-keys", "release-certs"]),
                    *rng.pick(SIGNING),
                    IdentityKind::KeyPair,
                ),
            };
            let signing = identity_kind == IdentityKind::KeyPair && rng.chance(85);
            let first_seen = now - rng.days(800);
            let created_at = rng.chance(80).then(|| first_seen - rng.days(30));
            let expires_at = (kind == Certificate || kind == Token || rng.chance(5))
                .then(|| now - TimeDelta::days(60) + rng.days(500));
            let last_used = match rng.below(10) {
                0..=1 => LastUse::Unknown,
                2 => LastUse::Never,
                _ => LastUse::At {
                    at: now - rng.days(120),
                    source: "aws_access_key_last_used".to_owned(),
                },
            };
            let status = match rng.below(100) {
                0..=84 => CredentialStatus::Active,
                85..=94 => CredentialStatus::Inactive,
                95..=98 => CredentialStatus::Revoked,
                _ => CredentialStatus::Gone,
            };
            let mut identity_tags = BTreeMap::new();
            if rng.chance(60) {
                identity_tags.insert(
                    "env".to_owned(),
                    (*rng.pick(&["prod", "staging", "dev"])).to_owned(),
                );
            }
            let identity_name = format!("ci-{}", idx % 5_000);
            LedgerCredential {
                source: source.to_owned(),
                identity: Identity {
                    external_id: identity_name.clone(),
                    kind: identity_kind,
                    name: identity_name.clone(),
                    owner: rng.chance(70).then(|| format!("team-{}", idx % 40)),
                    purpose: Some(if signing { "signing" } else { "deploy" }.to_owned()),
                    tags: identity_tags,
                    confirmed_leaks: Vec::new(),
                },
                credential: Credential {
                    external_id: format!("cred-{idx}"),
                    identity_id: identity_name,
                    kind,
                    name: format!("cred-{idx}"),
                    status,
                    created_at,
                    not_before: None,
                    expires_at,
                    last_used,
                    algorithm: None,
                    key_bits: None,
                    fingerprints: Vec::new(),
                    public_key: None,
                    owner: rng.chance(5).then(|| "alice".to_owned()),
                    purpose: None,
                    tags: BTreeMap::new(),
                    attributes: BTreeMap::new(),
                    signs_with: Vec::new(),
                },
                first_seen,
                last_seen: now,
            }
        })
        .collect()
}

fn shipped_policies() -> PolicySet {
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/policies"));
    match policy::load(&[dir]) {
        Ok(set) => set,
        Err(err) => panic!("the shipped policies do not load:\n{err}"),
    }
}

fn evaluate(c: &mut Criterion) {
    let set = shipped_policies();
    let credentials = credentials(CREDENTIALS);
    let now = now();

    // One plain run first, to show what is evaluated and a number without criterion's statistics.
    let start = Instant::now();
    let identities = policy::IdentityCounts::of(&credentials);
    let violations = policy::evaluate(&set, &credentials, &identities, now);
    let elapsed = start.elapsed();
    let mut per_policy = vec![0_usize; set.policies.len()];
    for violation in &violations {
        per_policy[violation.policy] += 1;
    }
    println!(
        "{} credentials x {} policies: {} violations in {elapsed:.2?}",
        credentials.len(),
        set.policies.len(),
        violations.len()
    );
    for (policy, count) in set.policies.iter().zip(per_policy) {
        println!("  {:<36} {count}", policy.id);
    }
    drop(violations);

    let mut group = c.benchmark_group("policy");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(5))
        .throughput(Throughput::Elements(CREDENTIALS as u64));
    group.bench_function("evaluate_1m_credentials_shipped_pack", |b| {
        b.iter(|| policy::evaluate(black_box(&set), black_box(&credentials), &identities, now));
    });
    group.finish();
}

criterion_group!(benches, evaluate);
criterion_main!(benches);
