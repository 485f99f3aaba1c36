//! One scan: inventory every source, persist, evaluate the policies, reconcile the findings.
//!
//! The data flow of DESIGN.md in one function: connector inventory → store (upsert + history) →
//! policy evaluation → findings. A source that fails as a whole is recorded as failed and its
//! ledger entries and findings are left as they were; one bad record is a scan error.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use keywarden_connector::{
    Connector, ConnectorError, CredentialKind, CredentialStatus, Inventory, InventorySink,
    Progress, ScanContext, SkipReason, Skipped,
};

use crate::leaks::ConfirmedLeak;
use crate::ledger::{IdentityCounts, LedgerCredential};
use crate::policy::{self, PolicySet};
use crate::store::{
    CredentialCursor, Finding, FindingChanges, Observation, PAGE, ScanId, SourceDiff,
    SourceRecorder, Store, StoreError, StoredScanError,
};

/// What happened to one source in a scan.
#[derive(Clone, Debug)]
pub struct SourceOutcome {
    pub name: String,
    pub kind: &'static str,
    /// What the ledger learned, or why the source could not be inventoried.
    pub result: Result<SourceDiff, String>,
    /// What the connector left unread, and why.
    pub skipped: SkippedSummary,
    /// Leaks the provider itself confirmed (AWS's quarantine policy on a user), seen in this
    /// inventory, failed or not.
    pub confirmed_leaks: Vec<ConfirmedLeak>,
}

/// How many of a source's skipped records are kept, with their reasons, for the report.
pub const SKIPPED_KEPT: usize = 50;

/// What a source left unread: every one counted by reason, the first [`SKIPPED_KEPT`] kept.
#[derive(Clone, Debug, Default)]
pub struct SkippedSummary {
    pub total: u64,
    pub by_reason: std::collections::BTreeMap<SkipReason, u64>,
    pub first: Vec<Skipped>,
}

impl SkippedSummary {
    fn add(&mut self, skipped: &[Skipped]) {
        for it in skipped {
            self.total += 1;
            *self.by_reason.entry(it.reason).or_default() += 1;
            if self.first.len() < SKIPPED_KEPT {
                self.first.push(it.clone());
            }
        }
    }
}

/// Everything a scan found and did, for the reports. The credentials themselves stay in the
/// ledger: reports read them page by page ([`crate::store::Ledger::credentials_page`]) within [`Self::scope`].
#[derive(Debug)]
pub struct ScanReport {
    pub scan_id: ScanId,
    pub started_at: DateTime<Utc>,
    pub sources: Vec<SourceOutcome>,
    /// The configured sources: reports show their credentials and findings only.
    pub scope: Vec<String>,
    /// Unresolved findings of the configured sources.
    pub findings: Vec<Finding>,
    pub changes: FindingChanges,
    pub errors: Vec<StoredScanError>,
    /// The sources (and partitions) inventoried without failing as a whole.
    pub clean: Vec<String>,
    /// What enforcement did after the evaluation (`None`: it did not run).
    pub enforcement: Option<crate::actions::enforce::Report>,
    /// Every signer with its trust, as it stands after the scan (and enforcement); empty when the
    /// caller did not read them.
    pub signers: Vec<crate::signers::Signer>,
    /// What became of the leaks the sources' providers confirmed (empty when the caller did not
    /// answer them).
    pub leaks: Vec<crate::intake::Outcome>,
}

impl ScanReport {
    /// Where enforcement may act after this scan.
    pub fn enforcement_scope(&self) -> crate::actions::enforce::Scope {
        crate::actions::enforce::Scope {
            clean: self.clean.clone(),
            errors: self.errors.clone(),
        }
    }
}

impl ScanReport {
    /// The unresolved findings of one credential.
    pub fn findings_by_credential(&self) -> HashMap<(&str, &str), Vec<&Finding>> {
        let mut map: HashMap<(&str, &str), Vec<&Finding>> = HashMap::new();
        for finding in &self.findings {
            map.entry((
                finding.source.as_str(),
                finding.credential_external_id.as_str(),
            ))
            .or_default()
            .push(finding);
        }
        map
    }

    /// Whether a ledger credential belongs to this report.
    pub fn in_scope(&self, credential: &LedgerCredential) -> bool {
        self.scope.contains(&credential.source)
    }
}

/// Hands a connector's batches to the ledger, keeping a store failure to report it as such.
struct LedgerSink {
    source: String,
    recorder: Box<dyn SourceRecorder>,
    failure: Option<StoreError>,
    skipped: SkippedSummary,
    confirmed: Vec<ConfirmedLeak>,
}

impl LedgerSink {
    /// Keeps the leaks a batch's identities carry the provider's confirmation of, with their
    /// present access keys in the batch (a connector hands an identity and its credentials in
    /// one batch).
    fn confirmed_in(&mut self, batch: &Inventory) {
        for identity in batch
            .identities
            .iter()
            .filter(|it| !it.confirmed_leaks.is_empty())
        {
            let access_keys: Vec<String> = batch
                .credentials
                .iter()
                .filter(|it| {
                    it.identity_id == identity.external_id
                        && it.kind == CredentialKind::AccessKey
                        && it.status != CredentialStatus::Gone
                })
                .map(|it| it.external_id.clone())
                .collect();
            for evidence in &identity.confirmed_leaks {
                tracing::error!(source = %self.source, identity = %identity.name, %evidence, "The provider confirms a leak.");
                self.confirmed.push(ConfirmedLeak {
                    source: self.source.clone(),
                    identity: identity.external_id.clone(),
                    identity_name: identity.name.clone(),
                    evidence: evidence.clone(),
                    access_keys: access_keys.clone(),
                });
            }
        }
    }
}

#[async_trait]
impl InventorySink for LedgerSink {
    async fn batch(&mut self, batch: Inventory) -> Result<(), ConnectorError> {
        for error in &batch.errors {
            tracing::warn!(source = %self.source, subject = %error.subject, error = %error.message, "Skipped a record.");
        }
        for it in &batch.skipped {
            tracing::info!(source = %self.source, subject = %it.subject, reason = %it.reason, detail = %it.detail, "Left unread.");
        }
        self.skipped.add(&batch.skipped);
        self.confirmed_in(&batch);
        self.recorder.batch(&batch).await.map_err(|err| {
            let message = format!("the ledger could not record a batch: {err}");
            self.failure = Some(err);
            ConnectorError::Permanent(message)
        })
    }

    async fn save_state(&mut self, state: serde_json::Value) -> Result<(), ConnectorError> {
        self.recorder.save_state(state);
        Ok(())
    }
}

/// The counts of the identities of a page of credentials, for conditions over an identity's
/// credentials (they may span pages, so the store counts them); empty when no policy needs them.
pub async fn identity_counts(
    store: &dyn Store,
    policies: &PolicySet,
    credentials: &[LedgerCredential],
) -> Result<IdentityCounts, StoreError> {
    if !policies.needs_identity_counts() {
        return Ok(IdentityCounts::default());
    }
    let keys: BTreeSet<(String, String)> = credentials
        .iter()
        .filter(|it| policies.counts_identity_of(it))
        .map(|it| (it.source.clone(), it.credential.identity_id.clone()))
        .collect();
    store
        .identity_counts(&keys.into_iter().collect::<Vec<_>>())
        .await
}

/// Runs one scan over `connectors` at `now`.
pub async fn run(
    store: &dyn Store,
    connectors: &[Arc<dyn Connector>],
    policies: &PolicySet,
    now: DateTime<Utc>,
    progress: Arc<dyn Progress>,
) -> Result<ScanReport, StoreError> {
    // A partitioned source (several AWS accounts) is inventoried and recorded part by part, each
    // as the source `<source>/<part>`.
    let mut units: Vec<(String, Option<String>, &Arc<dyn Connector>)> = Vec::new();
    let mut unsplit: Vec<(String, &'static str, String)> = Vec::new();
    for connector in connectors {
        let name = connector.source().to_owned();
        match connector.partitions(&ScanContext::new(now)).await {
            Ok(parts) if parts.is_empty() => units.push((name, None, connector)),
            Ok(parts) => units.extend(
                parts
                    .into_iter()
                    .map(|part| (format!("{name}/{part}"), Some(part), connector)),
            ),
            Err(err) => {
                tracing::error!(source = %name, error = %err, "Source could not be listed.");
                unsplit.push((name, connector.kind(), err.to_string()));
            }
        }
    }
    let names: Vec<(String, String)> = units
        .iter()
        .map(|(name, _, connector)| (name.clone(), connector.kind().to_owned()))
        .chain(
            unsplit
                .iter()
                .map(|(name, kind, _)| (name.clone(), (*kind).to_owned())),
        )
        .collect();
    let scan_id = store.begin_scan(now, &names).await?;

    let mut sources = Vec::with_capacity(names.len());
    for (name, kind, message) in unsplit {
        store
            .record_source_failure(scan_id, &name, &message, now)
            .await?;
        sources.push(SourceOutcome {
            name,
            kind,
            result: Err(message),
            skipped: SkippedSummary::default(),
            confirmed_leaks: Vec::new(),
        });
    }
    let mut scanned = Vec::new();
    for (name, partition, connector) in units {
        let cx = ScanContext {
            now,
            progress: progress.clone(),
            partition,
            known: store.known(&name),
        };
        let mut sink = LedgerSink {
            source: name.clone(),
            recorder: store.record_source(scan_id, &name, now).await?,
            failure: None,
            skipped: SkippedSummary::default(),
            confirmed: Vec::new(),
        };
        let res = connector.inventory(&cx, &mut sink).await;
        if let Some(err) = sink.failure {
            return Err(err);
        }
        let result = match res {
            Ok(()) => {
                let diff = sink.recorder.finish().await?;
                scanned.push(name.clone());
                Ok(diff)
            }
            Err(err) => {
                tracing::error!(source = %name, error = %err, "Source could not be inventoried.");
                let message = err.to_string();
                store
                    .record_source_failure(scan_id, &name, &message, now)
                    .await?;
                Err(message)
            }
        };
        sources.push(SourceOutcome {
            name,
            kind: connector.kind(),
            result,
            skipped: sink.skipped,
            confirmed_leaks: sink.confirmed,
        });
    }

    // Page by page, so the ledger is never all in memory. Only what this scan saw is evaluated: a
    // failed source's stale entries decide nothing.
    let mut changes = FindingChanges::default();
    let mut after = CredentialCursor::START;
    loop {
        let page = store.credentials_page(after, PAGE).await?;
        let Some((last, _)) = page.last() else {
            break;
        };
        after = *last;
        let credentials: Vec<LedgerCredential> = page
            .into_iter()
            .map(|(_, it)| it)
            .filter(|it| scanned.contains(&it.source))
            .collect();
        let identities = identity_counts(store, policies, &credentials).await?;
        let observations: Vec<Observation> =
            policy::evaluate(policies, &credentials, &identities, now)
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
        changes += store.observe_findings(scan_id, &observations, now).await?;
    }
    changes.resolved += store
        .resolve_unobserved_findings(scan_id, &scanned, now)
        .await?;
    let failed = sources.iter().any(|it| it.result.is_err());
    store.finish_scan(scan_id, now, failed).await?;

    let scope: Vec<String> = names.into_iter().map(|(name, _)| name).collect();
    let findings: Vec<Finding> = store
        .findings(true)
        .await?
        .into_iter()
        .filter(|it| scope.contains(&it.source))
        .collect();
    let errors = store.scan_errors(scan_id).await?;
    Ok(ScanReport {
        scan_id,
        started_at: now,
        sources,
        scope,
        clean: scanned,
        findings,
        changes,
        errors,
        enforcement: None,
        signers: Vec::new(),
        leaks: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use keywarden_connector::{CredentialKind, NoProgress};
    use keywarden_synthetic::SyntheticConfig;

    use super::*;
    use crate::ledger::fixtures;
    use crate::report;
    use crate::store::SqliteStore;
    use crate::store::{Ledger, Scans};

    fn shipped_policies() -> PolicySet {
        policy::load(&[PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/policies"
        ))])
        .expect("shipped policies")
    }

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).expect("valid time")
    }

    /// Hands over one batch of credentials, then fails if told to.
    #[derive(Debug)]
    struct Flaky {
        names: Vec<&'static str>,
        fail_after_first_batch: bool,
    }

    #[async_trait]
    impl Connector for Flaky {
        fn kind(&self) -> &'static str {
            "flaky"
        }

        fn source(&self) -> &str {
            "flaky"
        }

        async fn inventory(
            &self,
            _cx: &ScanContext,
            sink: &mut dyn InventorySink,
        ) -> Result<(), ConnectorError> {
            for (idx, name) in self.names.iter().enumerate() {
                // Stale and unowned signing keys: each has findings.
                let mut it = fixtures::credential("flaky", name, CredentialKind::PrivateKey, now());
                it.credential.created_at = Some(now() - chrono::Duration::days(800));
                it.credential.purpose = Some("signing".to_owned());
                sink.batch(Inventory {
                    identities: vec![it.identity],
                    credentials: vec![it.credential],
                    errors: Vec::new(),
                    skipped: Vec::new(),
                })
                .await?;
                if idx == 0 && self.fail_after_first_batch {
                    return Err(ConnectorError::Retryable {
                        message: "connection reset".to_owned(),
                        retry_after: None,
                    });
                }
            }
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_source_failing_mid_stream_marks_nothing_gone_and_resolves_nothing() {
        let store = SqliteStore::in_memory().await.expect("store");
        let policies = shipped_policies();
        let healthy: Arc<dyn Connector> = Arc::new(Flaky {
            names: vec!["a", "b", "c"],
            fail_after_first_batch: false,
        });
        let first = run(&store, &[healthy], &policies, now(), Arc::new(NoProgress))
            .await
            .expect("scan");
        let open = first.findings.len();
        assert!(open >= 3, "{:?}", first.findings);

        let failing: Arc<dyn Connector> = Arc::new(Flaky {
            names: vec!["a", "b", "c"],
            fail_after_first_batch: true,
        });
        let later = now() + chrono::Duration::hours(1);
        let second = run(&store, &[failing], &policies, later, Arc::new(NoProgress))
            .await
            .expect("scan");
        assert!(second.sources[0].result.is_err());
        assert_eq!(second.changes.resolved, 0);
        assert_eq!(second.findings.len(), open);
        for name in ["credential:a", "credential:b", "credential:c"] {
            assert_eq!(
                store
                    .credential_status("flaky", name)
                    .await
                    .expect("status")
                    .as_deref(),
                Some("active"),
                "{name}"
            );
        }
    }

    /// Two accounts, `a` and `b`; `b` fails when told to. Each saves its part name as state.
    #[derive(Debug)]
    struct Accounts {
        fail_b: bool,
    }

    #[async_trait]
    impl Connector for Accounts {
        fn kind(&self) -> &'static str {
            "accounts"
        }

        fn source(&self) -> &str {
            "org"
        }

        async fn partitions(&self, _cx: &ScanContext) -> Result<Vec<String>, ConnectorError> {
            Ok(vec!["a".to_owned(), "b".to_owned()])
        }

        async fn inventory(
            &self,
            cx: &ScanContext,
            sink: &mut dyn InventorySink,
        ) -> Result<(), ConnectorError> {
            let part = cx.partition.clone().unwrap_or_default();
            if part == "b" && self.fail_b {
                return Err(ConnectorError::Unauthorized(
                    "role not assumable".to_owned(),
                ));
            }
            let seen = cx.known.state().await?;
            let it = fixtures::credential(
                "org",
                &format!("key-{part}"),
                CredentialKind::AccessKey,
                now(),
            );
            sink.batch(Inventory {
                identities: vec![it.identity],
                credentials: vec![it.credential],
                errors: Vec::new(),
                skipped: Vec::new(),
            })
            .await?;
            sink.save_state(serde_json::json!({ "part": part, "seen_before": seen.is_some() }))
                .await
        }
    }

    #[tokio::test]
    async fn each_partition_is_its_own_source_and_one_failing_leaves_the_others_alone() {
        let store = SqliteStore::in_memory().await.expect("store");
        let policies = PolicySet::default();
        let healthy: Arc<dyn Connector> = Arc::new(Accounts { fail_b: false });
        let first = run(&store, &[healthy], &policies, now(), Arc::new(NoProgress))
            .await
            .expect("scan");
        let names: Vec<&str> = first.sources.iter().map(|it| it.name.as_str()).collect();
        assert_eq!(names, ["org/a", "org/b"]);
        assert_eq!(first.scope, ["org/a", "org/b"]);
        for (source, key) in [("org/a", "credential:key-a"), ("org/b", "credential:key-b")] {
            assert_eq!(
                store
                    .credential_status(source, key)
                    .await
                    .expect("status")
                    .as_deref(),
                Some("active"),
                "{source}"
            );
            let state = store
                .connector_state(source)
                .await
                .expect("state")
                .expect("saved");
            assert_eq!(state["seen_before"], false);
        }

        let failing: Arc<dyn Connector> = Arc::new(Accounts { fail_b: true });
        let later = now() + chrono::Duration::hours(1);
        let second = run(&store, &[failing], &policies, later, Arc::new(NoProgress))
            .await
            .expect("scan");
        assert!(second.sources[0].result.is_ok());
        assert!(second.sources[1].result.is_err());
        // The failed account keeps its entries (nothing is marked gone) and its old state.
        assert_eq!(
            store
                .credential_status("org/b", "credential:key-b")
                .await
                .expect("status")
                .as_deref(),
            Some("active")
        );
        let b = store
            .connector_state("org/b")
            .await
            .expect("state")
            .expect("kept");
        assert_eq!(b["seen_before"], false);
        let a = store
            .connector_state("org/a")
            .await
            .expect("state")
            .expect("saved");
        assert_eq!(
            a["seen_before"], true,
            "the ledger handed `a` its own state back"
        );
    }

    /// One user's two access keys, first and last, with more than a page of other users' single
    /// keys between them.
    #[derive(Debug)]
    struct Spread;

    #[async_trait]
    impl Connector for Spread {
        fn kind(&self) -> &'static str {
            "spread"
        }

        fn source(&self) -> &str {
            "spread"
        }

        async fn inventory(
            &self,
            _cx: &ScanContext,
            sink: &mut dyn InventorySink,
        ) -> Result<(), ConnectorError> {
            let fillers = crate::store::PAGE as usize + 10;
            let mut batch = Inventory::default();
            for idx in 0..fillers + 2 {
                let name = format!("key-{idx}");
                let mut it =
                    fixtures::credential("spread", &name, CredentialKind::AccessKey, now());
                if idx == 0 || idx == fillers + 1 {
                    it.credential.identity_id = "identity:two-keys".to_owned();
                    it.identity.external_id = "identity:two-keys".to_owned();
                }
                batch.identities.push(it.identity);
                batch.credentials.push(it.credential);
            }
            sink.batch(batch).await
        }
    }

    #[tokio::test]
    async fn an_identity_condition_counts_credentials_on_other_pages() {
        let store = SqliteStore::in_memory().await.expect("store");
        let text = "policies:\n  - id: one-active-key\n    severity: medium\n    select: { kinds: \
                    [access_key] }\n    when:\n      identity_credentials: { kinds: [access_key], \
                    status: [active], more_than: 1 }\n    actions: [notify]\n";
        let policies = PolicySet {
            policies: policy::parse_str(std::path::Path::new("p.yaml"), text).expect("policy"),
        };
        let connector: Arc<dyn Connector> = Arc::new(Spread);
        let report = run(&store, &[connector], &policies, now(), Arc::new(NoProgress))
            .await
            .expect("scan");
        let mut flagged: Vec<&str> = report
            .findings
            .iter()
            .map(|it| it.credential_external_id.as_str())
            .collect();
        flagged.sort_unstable();
        let last = format!("credential:key-{}", crate::store::PAGE + 11);
        assert_eq!(flagged, ["credential:key-0", last.as_str()]);
    }

    #[tokio::test]
    async fn identity_counts_are_looked_up_only_for_what_a_counting_policy_selects() {
        let store = SqliteStore::in_memory().await.expect("store");
        // Two users with two keys each: access keys of one, cosign keys of the other.
        let mut batch = Inventory::default();
        let mut page = Vec::new();
        for (user, kind) in [
            ("keys", CredentialKind::AccessKey),
            ("signer", CredentialKind::CosignKey),
        ] {
            for n in 0..2 {
                let mut it = fixtures::credential("s", &format!("{user}-{n}"), kind, now());
                it.credential.identity_id = user.to_owned();
                it.identity.external_id = user.to_owned();
                batch.identities.push(it.identity.clone());
                batch.credentials.push(it.credential.clone());
                page.push(it);
            }
        }
        let scan = store
            .begin_scan(now(), &[("s".to_owned(), "t".to_owned())])
            .await
            .expect("scan");
        let mut recorder = store.record_source(scan, "s", now()).await.expect("rec");
        recorder.batch(&batch).await.expect("batch");
        recorder.finish().await.expect("finish");
        let text = "policies:\n  - id: one-active-key\n    severity: medium\n    select: { kinds: \
                    [access_key] }\n    when:\n      identity_credentials: { more_than: 1 }\n    \
                    actions: [notify]\n";
        let policies = PolicySet {
            policies: policy::parse_str(std::path::Path::new("p.yaml"), text).expect("policy"),
        };
        let counts = identity_counts(&store, &policies, &page)
            .await
            .expect("counts");
        assert_eq!(counts.count("s", "keys", |_, _| true), 2);
        // The policy selects no cosign key: their user's credentials are not counted.
        assert_eq!(counts.count("s", "signer", |_, _| true), 0);
    }

    #[tokio::test]
    async fn a_large_ledger_is_recorded_evaluated_and_reported_across_pages() {
        let store = SqliteStore::in_memory().await.expect("store");
        let policies = shipped_policies();
        let count = u64::from(crate::store::PAGE) * 2 + 345;
        let connector: Arc<dyn Connector> = Arc::new(
            SyntheticConfig {
                count,
                seed: 3,
                credentials_per_identity: 3,
            }
            .build("load"),
        );
        let connectors = [connector];
        let first = run(&store, &connectors, &policies, now(), Arc::new(NoProgress))
            .await
            .expect("scan");
        assert_eq!(
            first.sources[0].result.as_ref().map(|it| it.seen),
            Ok(count)
        );

        // Every credential's violations, evaluated in one piece, equal the findings the paged scan
        // opened.
        let all = store.present_credentials().await.expect("present");
        assert_eq!(all.len() as u64, count);
        let expected = policy::evaluate(&policies, &all, &IdentityCounts::of(&all), now()).len();
        assert_eq!(first.findings.len(), expected);
        assert_eq!(first.changes.opened as usize, expected);

        // Again: nothing new, nothing resolved, no duplicates.
        let again = run(&store, &connectors, &policies, now(), Arc::new(NoProgress))
            .await
            .expect("scan");
        assert_eq!((again.changes.opened, again.changes.resolved), (0, 0));
        assert_eq!(again.findings.len(), expected);

        // The JSON lists every credential once, across pages.
        let mut out = Vec::new();
        report::write_json(&store, &again, &mut out)
            .await
            .expect("json");
        let json: serde_json::Value = serde_json::from_slice(&out).expect("valid json");
        assert_eq!(
            json["credentials"].as_array().map(Vec::len),
            Some(count as usize)
        );
        assert_eq!(json["findings"].as_array().map(Vec::len), Some(expected));
        assert_eq!(json["scan_id"], again.scan_id.0);

        // The bounded table shows exactly the first rows of the full ranking.
        let full = report::table(&store, &again, None).await.expect("table");
        let top = report::table(&store, &again, Some(25))
            .await
            .expect("table");
        // Rows as trimmed cells: column widths differ between the two tables.
        let rows = |text: &str| -> Vec<Vec<String>> {
            text.lines()
                .filter(|it| it.starts_with('│'))
                .skip(1)
                .map(|line| {
                    line.trim_matches('│')
                        .split('┆')
                        .map(|cell| cell.trim().to_owned())
                        .collect()
                })
                .collect()
        };
        let full_rows = rows(&full);
        let top_rows = rows(&top);
        assert!(full_rows.len() >= count as usize);
        assert!(!top_rows.is_empty());
        assert_eq!(top_rows[..], full_rows[..top_rows.len()]);
        assert!(
            top.contains(&format!("... and {} more credentials", count - 25)),
            "{top}"
        );
    }
}
