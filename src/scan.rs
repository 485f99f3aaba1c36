//! One scan: inventory every source, persist, evaluate the policies, reconcile the findings.
//!
//! The data flow of DESIGN.md in one function: connector inventory → store (upsert + history) →
//! policy evaluation → findings. A source that fails as a whole is recorded as failed and its
//! ledger entries and findings are left as they were; one bad record is a scan error.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use keywarden_connector::{Connector, Progress, ScanContext};

use crate::ledger::LedgerCredential;
use crate::policy::{self, PolicySet};
use crate::store::{
    Finding, FindingChanges, Observation, ScanId, SourceDiff, Store, StoreError, StoredScanError,
};

/// What happened to one source in a scan.
#[derive(Clone, Debug)]
pub struct SourceOutcome {
    pub name: String,
    pub kind: &'static str,
    /// What the ledger learned, or why the source could not be inventoried.
    pub result: Result<SourceDiff, String>,
}

/// Everything a scan found and did, for the reports.
#[derive(Debug)]
pub struct ScanReport {
    pub scan_id: ScanId,
    pub started_at: DateTime<Utc>,
    pub sources: Vec<SourceOutcome>,
    /// Present credentials of the configured sources.
    pub credentials: Vec<LedgerCredential>,
    /// Unresolved findings of the configured sources.
    pub findings: Vec<Finding>,
    pub changes: FindingChanges,
    pub errors: Vec<StoredScanError>,
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
}

/// Runs one scan over `connectors` at `now`.
pub async fn run(
    store: &dyn Store,
    connectors: &[Arc<dyn Connector>],
    policies: &PolicySet,
    now: DateTime<Utc>,
    progress: Arc<dyn Progress>,
) -> Result<ScanReport, StoreError> {
    let names: Vec<(String, String)> = connectors
        .iter()
        .map(|it| (it.source().to_owned(), it.kind().to_owned()))
        .collect();
    let scan_id = store.begin_scan(now, &names).await?;
    let cx = ScanContext {
        now,
        progress: progress.clone(),
    };

    let mut sources = Vec::with_capacity(connectors.len());
    let mut scanned = Vec::new();
    for connector in connectors {
        let name = connector.source().to_owned();
        let result = match connector.inventory(&cx).await {
            Ok(inventory) => {
                for error in &inventory.errors {
                    tracing::warn!(source = %name, subject = %error.subject, error = %error.message, "Skipped a record.");
                }
                let diff = store
                    .record_inventory(scan_id, &name, &inventory, now)
                    .await?;
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
        });
    }

    let configured: Vec<&str> = names.iter().map(|(name, _)| name.as_str()).collect();
    // Only what this scan saw is evaluated: a failed source's stale entries decide nothing.
    let (mut credentials, stale): (Vec<LedgerCredential>, Vec<LedgerCredential>) = store
        .present_credentials()
        .await?
        .into_iter()
        .filter(|it| configured.contains(&it.source.as_str()))
        .partition(|it| scanned.contains(&it.source));
    let observations: Vec<Observation> = policy::evaluate(policies, &credentials, now)
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
    credentials.extend(stale);
    let changes = store
        .reconcile_findings(scan_id, &scanned, &observations, now)
        .await?;
    let failed = sources.iter().any(|it| it.result.is_err());
    store.finish_scan(scan_id, now, failed).await?;

    let findings = store
        .findings(true)
        .await?
        .into_iter()
        .filter(|it| configured.contains(&it.source.as_str()))
        .collect();
    let errors = store.scan_errors(scan_id).await?;
    Ok(ScanReport {
        scan_id,
        started_at: now,
        sources,
        credentials,
        findings,
        changes,
        errors,
    })
}
