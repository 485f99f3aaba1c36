//! Reading the signers: the ledger's, the stored trust records and the config's holders, put
//! together by [`super::assemble`]. The I/O half of `signers` (the store, and the key files the
//! config names).

use super::{Inputs, Signer, assemble};
use crate::config::Config;
use crate::config::signers::HolderSelector;
use crate::store::{Store, StoreError};

/// The config's holders with their key ids resolved (a `file` key is read), and the error of each
/// entry whose key could not be read, naming its place in the config file.
pub fn configured_holders(config: &Config) -> (Vec<(String, Vec<HolderSelector>)>, Vec<String>) {
    let mut configured = Vec::with_capacity(config.signers.len());
    let mut errors = Vec::new();
    for entry in &config.signers {
        match entry.key_id() {
            Ok(key_id) => configured.push((key_id, entry.held_by.clone())),
            Err(err) => errors.push(format!(
                "{}:{}:{}: signers: {err}",
                config.file.display(),
                entry.line,
                entry.column
            )),
        }
    }
    (configured, errors)
}

/// Every signer: the ledger's and the stored records', with the given holders.
pub async fn signers(
    store: &dyn Store,
    configured: &[(String, Vec<HolderSelector>)],
) -> Result<Vec<Signer>, StoreError> {
    let ledger = store.signers().await?;
    let records = store.distrust_periods().await?;
    // The holders' credentials are read only when the config names holders.
    let credentials = if configured.is_empty() {
        Vec::new()
    } else {
        store.present_credentials().await?
    };
    let signing = store.signing_holders().await?;
    Ok(assemble(Inputs {
        ledger,
        records,
        configured,
        credentials: &credentials,
        signing: &signing,
    }))
}

/// The finding on each credential of a signer that is distrusted now.
pub const SIGNER_DISTRUSTED: &str = "keywarden.signer-distrusted";

/// Keeps one `keywarden.signer-distrusted` finding open on each credential (of the `scope`
/// sources) of every signer distrusted at `at` — critical where the period in force was a leak,
/// high otherwise — and resolves it where the signer is trusted again. `open` are the unresolved
/// findings (to find the ones to resolve). Returns how many signers are distrusted at `at`.
pub async fn reconcile_findings(
    store: &dyn Store,
    signers: &[Signer],
    open: &[crate::store::Finding],
    scope: &[String],
    at: chrono::DateTime<chrono::Utc>,
) -> Result<usize, StoreError> {
    // The credentials with such a finding open, looked up per credential below (a scan of
    // 100,000 credentials holds tens of thousands of findings and of signers).
    let has_open: std::collections::HashSet<(&str, &str)> = open
        .iter()
        .filter(|it| it.policy_id == SIGNER_DISTRUSTED)
        .map(|it| (it.source.as_str(), it.credential_external_id.as_str()))
        .collect();
    let mut distrusted = 0;
    for signer in signers {
        let in_force = match signer.record.verdict(at) {
            crate::trust::Verdict::Distrusted(period) => Some(period),
            crate::trust::Verdict::Trusted | crate::trust::Verdict::BeforeValidFrom => None,
        };
        distrusted += usize::from(in_force.is_some());
        for credential in signer
            .credentials
            .iter()
            .filter(|it| scope.contains(&it.source))
        {
            match in_force {
                Some(period) => {
                    // Critical when any period in force is a leak, not only the earliest one.
                    let leaked = signer.record.periods.iter().any(|it| {
                        it.covers(at) && it.reason == crate::trust::DistrustReason::Leaked
                    });
                    let severity = if leaked { "critical" } else { "high" };
                    let finding = crate::store::RaisedFinding {
                        source: credential.source.clone(),
                        credential_external_id: credential.external_id.clone(),
                        policy_id: SIGNER_DISTRUSTED.to_owned(),
                        severity: severity.to_owned(),
                        reason: format!(
                            "signer {} is distrusted since {} ({}: {}, by {}); signatures made \
                             since prove nothing about where an artifact came from",
                            signer.key_id,
                            period.from.to_rfc3339(),
                            period.reason.as_str(),
                            period.evidence,
                            period.by
                        ),
                    };
                    store.raise_finding(&finding, at).await?;
                }
                None => {
                    let key = (credential.source.as_str(), credential.external_id.as_str());
                    if has_open.contains(&key) {
                        store
                            .clear_raised_finding(
                                &credential.source,
                                &credential.external_id,
                                SIGNER_DISTRUSTED,
                                at,
                            )
                            .await?;
                    }
                }
            }
        }
    }
    Ok(distrusted)
}
