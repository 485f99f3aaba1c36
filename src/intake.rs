//! Leak intake: a report read ([`crate::leaks`], pure), matched against the ledger, recorded once,
//! and answered: a critical finding on each credential it exposed (or one for the leak when it
//! matches nothing), and a containment of each exposed key whose source can act on it.
//!
//! The report's bytes are the caller's, in a zeroizing buffer; nothing here keeps or logs a
//! plaintext value (a [`Leak`] holds none).

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use keywarden_connector::CredentialKind;
use serde::Serialize;

use crate::actions::{self, ActionError, ActionKind, Engine, Request};
use crate::leaks::{self, Indicator, Known, Leak, LeakError, LeakFormat, LeakMatch};
use crate::store::{RaisedFinding, Store, StoreError};

/// The finding on a credential a leak exposed.
pub const LEAKED: &str = "keywarden.leaked";
/// The finding on a leak that matches no credential.
pub const UNMATCHED: &str = "keywarden.leak-unmatched";
/// The source name of findings on leaks that match no credential.
pub const LEAK_SOURCE: &str = "leaks";

/// Why an ingest failed.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The report is not one keywarden reads: bad input, nothing was changed.
    #[error(transparent)]
    Report(#[from] LeakError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What became of one leak.
#[derive(Clone, Debug, Serialize)]
pub struct Outcome {
    #[serde(flatten)]
    pub leak: Leak,
    /// Whether this ingest recorded it (false: an earlier ingest did; nothing was done again).
    pub new: bool,
    pub matched: Vec<LeakMatch>,
    /// The containment actions started for it.
    pub contained: Vec<i64>,
    /// Why a matched credential was not contained (its source takes no actions, ...).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_contained: Vec<String>,
}

/// What one ingest did.
#[derive(Clone, Debug, Serialize)]
pub struct Ingested {
    pub format: LeakFormat,
    pub leaks: Vec<Outcome>,
}

/// Reads, matches, records and answers a report. With `engine`, each newly exposed key whose
/// source can act is contained (the `contain` playbook); without, findings only.
pub async fn ingest(
    store: &dyn Store,
    engine: Option<Engine<'_>>,
    bytes: &[u8],
    format: Option<LeakFormat>,
    at: DateTime<Utc>,
) -> Result<Ingested, IngestError> {
    let (format, found) = leaks::parse(bytes, format)?;
    let known = known(store, &found).await?;
    let matched: Vec<(Leak, Vec<LeakMatch>)> = found
        .into_iter()
        .map(|leak| {
            let matches = known.matches(&leak);
            (leak, matches)
        })
        .collect();
    let new = store.record_leaks(&matched, at).await?;
    let mut outcomes = Vec::with_capacity(matched.len());
    for ((leak, matched), new) in matched.into_iter().zip(new) {
        let mut outcome = Outcome {
            leak,
            new,
            matched,
            contained: Vec::new(),
            not_contained: Vec::new(),
        };
        if new && outcome.leak.dismissed.is_none() {
            answer(store, engine, &mut outcome, at).await?;
        }
        outcomes.push(outcome);
    }
    Ok(Ingested {
        format,
        leaks: outcomes,
    })
}

/// What the leak says, for a finding's reason: never a secret.
fn evidence(leak: &Leak) -> String {
    let mut text = format!("{} `{}`", leak.format.as_str(), leak.detector);
    if let Some(location) = &leak.location {
        text += &format!(" at {location}");
    }
    if let Some(at) = leak.exposed_at {
        text += &format!(", exposed since {}", at.to_rfc3339());
    }
    text
}

async fn answer(
    store: &dyn Store,
    engine: Option<Engine<'_>>,
    outcome: &mut Outcome,
    at: DateTime<Utc>,
) -> Result<(), IngestError> {
    let evidence = evidence(&outcome.leak);
    if outcome.matched.is_empty() {
        let indicators: Vec<String> = outcome.leak.indicators.iter().map(describe).collect();
        let finding = RaisedFinding {
            source: LEAK_SOURCE.to_owned(),
            credential_external_id: outcome.leak.id.clone(),
            policy_id: UNMATCHED.to_owned(),
            severity: "critical".to_owned(),
            reason: format!(
                "{evidence} ({}) matches no credential in the ledger",
                if indicators.is_empty() {
                    "no identifying value".to_owned()
                } else {
                    indicators.join(", ")
                }
            ),
        };
        store.raise_finding(&finding, at).await?;
        return Ok(());
    }
    for matched in &outcome.matched {
        let finding = RaisedFinding {
            source: matched.source.clone(),
            credential_external_id: matched.credential_external_id.clone(),
            policy_id: LEAKED.to_owned(),
            severity: "critical".to_owned(),
            reason: format!("exposed: {evidence} (matched by {})", describe(&matched.by)),
        };
        store.raise_finding(&finding, at).await?;
        let Some(engine) = engine else {
            continue;
        };
        match contain(engine, &outcome.leak, matched, &evidence).await {
            Ok(id) => outcome.contained.push(id),
            Err(ActionError::Store(err)) => return Err(err.into()),
            Err(err) => outcome
                .not_contained
                .push(format!("{}: {err}", matched.credential_external_id)),
        }
    }
    Ok(())
}

/// Starts the containment playbook on an exposed credential.
async fn contain(
    engine: Engine<'_>,
    leak: &Leak,
    matched: &LeakMatch,
    evidence: &str,
) -> Result<i64, ActionError> {
    let target = actions::target(
        engine.store,
        &matched.credential_external_id,
        Some(&matched.source),
    )
    .await?;
    let mut request = Request::new(ActionKind::Contain, &target, &format!("leak:{}", leak.id));
    request.reason = Some(format!("exposed: {evidence}"));
    tracing::warn!(credential = %matched.credential_external_id, leak = %leak.id, "Containing a leaked credential.");
    Ok(actions::start(engine, request).await?.id)
}

/// An indicator in words (ids are shown; hashes by their first digits).
fn describe(indicator: &Indicator) -> String {
    match indicator {
        Indicator::AccessKeyId(id) => format!("access key id {id}"),
        Indicator::KeyId(id) => format!("key id {id}"),
        Indicator::Sha1(hash) => format!("SHA-1 {}…", hash.get(..12).unwrap_or(hash)),
        Indicator::Hmsl(hash) => {
            format!("HasMySecretLeaked hash {}…", hash.get(..12).unwrap_or(hash))
        }
    }
}

/// The ledger's facts the leaks' indicators can match, read only for the kinds of indicator the
/// report has.
async fn known(store: &dyn Store, leaks: &[Leak]) -> Result<Known, StoreError> {
    let mut known = Known::default();
    let indicators = || leaks.iter().flat_map(|it| &it.indicators);
    let access_keys: BTreeSet<&String> = indicators()
        .filter_map(|it| match it {
            Indicator::AccessKeyId(id) => Some(id),
            _ => None,
        })
        .collect();
    for id in access_keys {
        let found = store.find_credential(id).await?;
        let present = found
            .into_iter()
            .filter(|it| it.credential.status != keywarden_connector::CredentialStatus::Gone);
        for it in present {
            known
                .access_keys
                .entry(id.clone())
                .or_default()
                .push((it.source, it.credential.external_id));
        }
    }
    if indicators().any(|it| matches!(it, Indicator::KeyId(_))) {
        for signer in store.signers().await? {
            let holders: Vec<(String, String)> = signer
                .credentials
                .into_iter()
                .map(|it| (it.source, it.external_id))
                .collect();
            known.key_ids.insert(signer.key_id, holders);
        }
    }
    if indicators().any(|it| matches!(it, Indicator::Sha1(_))) {
        let mut by_hash: HashMap<String, Vec<(String, String)>> = HashMap::new();
        for it in store.present_credentials().await? {
            if it.credential.kind == CredentialKind::AccessKey {
                by_hash
                    .entry(leaks::sha1_hex(it.credential.external_id.as_bytes()))
                    .or_default()
                    .push((it.source, it.credential.external_id));
            }
        }
        known.sha1 = by_hash;
    }
    Ok(known)
}
