//! Leak intake: a report read ([`crate::leaks`], pure), matched against the ledger, recorded once,
//! and answered: a critical finding on each credential it exposed (or one for the leak when it
//! matches nothing), and a containment of each exposed key whose source can act on it.
//!
//! The report's bytes are the caller's, in a zeroizing buffer; nothing here keeps or logs a
//! plaintext value (a [`Leak`] holds none).

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, TimeDelta, Utc};
use keywarden_connector::CredentialKind;
use serde::Serialize;
use serde_json::json;

use crate::actions::revoke_trust::{self, Cause, HolderEnd};
use crate::actions::{self, ActionError, ActionKind, Engine, Request};
use crate::leaks::{self, Indicator, Known, Leak, LeakError, LeakFormat, LeakMatch};
use crate::ledger::LedgerCredential;
use crate::signers::Signer;
use crate::store::{Answered, RaisedFinding, Store, StoreError};
use crate::trust::DistrustReason;

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
    /// Whether this ingest recorded it (false: an earlier ingest did).
    pub new: bool,
    /// Whether this ingest answered it (false: an earlier ingest did, or the report dismisses
    /// it).
    pub answered: bool,
    pub matched: Vec<LeakMatch>,
    /// The key ids of the signers distrusted for it (the exposed credential is the signer, or its
    /// identity holds it), from the compromise time for good, by the actions in `contained`.
    pub distrusted: Vec<String>,
    /// The actions started for it: a `contain` playbook, or a `revoke_trust` alone.
    pub contained: Vec<i64>,
    /// Why a matched credential was not contained (its source takes no actions, ...).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_contained: Vec<String>,
    /// An action answering it could not be seen through now (another process drives it): it is
    /// left unanswered, and the next ingest of the report answers it.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub pending: bool,
}

/// What one ingest did.
#[derive(Clone, Debug, Serialize)]
pub struct Ingested {
    pub format: LeakFormat,
    pub leaks: Vec<Outcome>,
}

/// How leaks are answered.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Compromise time = exposure time minus this (a secret may be copied before the commit that
    /// shows it).
    pub look_back: TimeDelta,
    /// Quarantine each exposed key whose source can act (the `contain` playbook); when false,
    /// findings and distrust only.
    pub contain: bool,
}

/// Reads, matches, records and answers a report: a critical finding on each exposed credential,
/// the signers it is or holds distrusted (a `revoke_trust` action, or the first step of the
/// `contain` playbook that also quarantines the key where its source can act).
/// A leak is recorded before it is answered and marked answered after: an ingest that stops
/// part-way is completed by the next ingest of the report (every answer is idempotent).
pub async fn ingest(
    engine: Engine<'_>,
    settings: &Settings,
    bytes: &[u8],
    format: Option<LeakFormat>,
    at: DateTime<Utc>,
) -> Result<Ingested, IngestError> {
    let (format, mut found) = leaks::parse(bytes, format)?;
    identify(engine, &mut found).await;
    Ok(answer_all(engine, settings, format, found, at).await?)
}

/// Asks each configured source which of its credentials the exposed values no indicator
/// identifies are (Vault looks a token or secret-id up); each answer becomes a `lookup`
/// indicator. The values are dropped (zeroized) here, asked or not. A source that cannot be
/// asked is a warning: the leak is then matched by what else it shows, or stays unmatched.
async fn identify(engine: Engine<'_>, found: &mut [Leak]) {
    for leak in found.iter_mut() {
        let candidates = std::mem::take(&mut leak.candidates);
        for value in &candidates.0 {
            for connector in engine.connectors {
                match connector.identify_leaked(value).await {
                    Ok(ids) => {
                        for credential in ids {
                            let indicator = Indicator::Lookup {
                                source: connector.source().to_owned(),
                                credential,
                            };
                            if !leak.indicators.contains(&indicator) {
                                leak.indicators.push(indicator);
                            }
                        }
                    }
                    Err(err) => {
                        let text = err.to_string();
                        // Never the value itself, should an error ever quote it.
                        let text = if text.contains(value.expose().trim()) {
                            "the error quoted the value; withheld".to_owned()
                        } else {
                            text
                        };
                        tracing::warn!(
                            source = connector.source(),
                            leak = %leak.id,
                            error = %text,
                            "A source could not be asked which credential a leaked value is."
                        );
                    }
                }
            }
        }
    }
}

/// Answers the leaks a provider confirmed during inventory (AWS's quarantine policy on a user)
/// as [`ingest`] answers a report's: each is recorded once, every access key of the user is
/// taken as exposed.
pub async fn ingest_confirmed(
    engine: Engine<'_>,
    settings: &Settings,
    confirmed: &[leaks::ConfirmedLeak],
    at: DateTime<Utc>,
) -> Result<Ingested, StoreError> {
    let found = confirmed.iter().map(leaks::ConfirmedLeak::leak).collect();
    answer_all(engine, settings, LeakFormat::Provider, found, at).await
}

async fn answer_all(
    engine: Engine<'_>,
    settings: &Settings,
    format: LeakFormat,
    mut found: Vec<Leak>,
    at: DateTime<Utc>,
) -> Result<Ingested, StoreError> {
    let store = engine.store;
    // One exposure reported twice in one report is one leak.
    let mut ids = std::collections::HashSet::new();
    found.retain(|it| ids.insert(it.id.clone()));
    let known = known(store, &found).await?;
    let matched: Vec<(Leak, Vec<LeakMatch>)> = found
        .into_iter()
        .map(|leak| {
            let matches = known.matches(&leak);
            (leak, matches)
        })
        .collect();
    let recorded = store.record_leaks(&matched, at).await?;
    let mut outcomes = Vec::with_capacity(matched.len());
    let mut answering: Vec<Answering> = Vec::new();
    // Per outcome: every credential its leak has matched, before and now (what it shows at the
    // end, answered now or not).
    let mut every_match: Vec<Vec<LeakMatch>> = Vec::with_capacity(matched.len());
    for ((leak, matched), recorded) in matched.into_iter().zip(recorded) {
        // What to answer: everything, the first time or once the report no longer dismisses it;
        // later, only credentials it matches now and did not before (a key scanned since).
        let dismissed = leak.dismissed.is_some();
        let to_answer: Vec<LeakMatch> = if dismissed {
            Vec::new()
        } else if recorded.unanswered || recorded.dismissed_before {
            matched.clone()
        } else {
            matched
                .iter()
                .filter(|it| !recorded.matched_before.contains(it))
                .cloned()
                .collect()
        };
        let changed =
            recorded.unanswered || !to_answer.is_empty() || dismissed != recorded.dismissed_before;
        let mut all_matched = recorded.matched_before.clone();
        for it in &matched {
            if !all_matched.contains(it) {
                all_matched.push(it.clone());
            }
        }
        let first = recorded.unanswered || recorded.dismissed_before;
        let acts = changed && !dismissed && (first || !to_answer.is_empty());
        if changed {
            answering.push(Answering {
                index: outcomes.len(),
                // Recorded now with these matches: stored as it is.
                stored_as_is: recorded.new && all_matched == matched,
                all_matched: all_matched.clone(),
                new: recorded.new,
                acts,
            });
        }
        every_match.push(all_matched);
        outcomes.push(Outcome {
            leak,
            new: recorded.new,
            answered: false,
            matched: to_answer,
            distrusted: Vec::new(),
            contained: Vec::new(),
            not_contained: Vec::new(),
            pending: false,
        });
    }
    answer(engine, settings, &mut outcomes, &answering, at).await?;
    answering.retain(|it| !outcomes[it.index].pending);
    // Marked answered after the answer: an ingest that stops before this is answered again by
    // the next ingest of the report (every answer is idempotent).
    let answered: Vec<Answered> = answering
        .iter()
        .map(|it| {
            let outcome = &outcomes[it.index];
            Answered {
                leak: outcome.leak.clone(),
                matched: it.all_matched.clone(),
                what: json!({
                    "matched": outcome.matched,
                    "distrusted": outcome.distrusted,
                    "contained": outcome.contained,
                    "not_contained": outcome.not_contained,
                    "dismissed": outcome.leak.dismissed,
                }),
                stored_as_is: it.stored_as_is,
            }
        })
        .collect();
    store.leaks_answered(&answered, at).await?;
    for it in answering {
        outcomes[it.index].answered = true;
    }
    for (outcome, all_matched) in outcomes.iter_mut().zip(every_match) {
        outcome.matched = all_matched;
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

/// A leak this ingest answers.
struct Answering {
    /// Its outcome.
    index: usize,
    /// Every credential it has matched, before and now.
    all_matched: Vec<LeakMatch>,
    /// Recorded by this ingest.
    new: bool,
    /// Findings and containment are due (not only marking it answered: a dismissed leak).
    acts: bool,
    /// Recorded by this ingest with the matches it has now.
    stored_as_is: bool,
}

/// Answers the leaks whose answer acts: a critical finding on each
/// exposed credential, or one for a leak that matches nothing (all raised in one transaction);
/// for each exposed credential, the unmatched finding of its leak resolved and its containment.
async fn answer(
    engine: Engine<'_>,
    settings: &Settings,
    outcomes: &mut [Outcome],
    answering: &[Answering],
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    let store = engine.store;
    let acting: Vec<(usize, bool)> = answering
        .iter()
        .filter(|it| it.acts)
        .map(|it| (it.index, it.new))
        .collect();
    let mut raised = Vec::new();
    for (index, _) in &acting {
        raised.extend(findings_of(&outcomes[*index]));
    }
    store.raise_findings(&raised, at).await?;
    let mut signers: Option<Vec<Signer>> = None;
    for (index, new) in acting {
        let outcome = &mut outcomes[index];
        if outcome.matched.is_empty() {
            continue;
        }
        // It matches now: a finding that said it matched nothing (an earlier ingest's) is
        // resolved.
        if !new {
            store
                .clear_raised_finding(LEAK_SOURCE, &outcome.leak.id, UNMATCHED, at)
                .await?;
        }
        if signers.is_none() {
            signers = Some(crate::signers::load::signers(store, engine.holders).await?);
        }
        let signers = signers.as_deref().unwrap_or_default();
        let evidence = evidence(&outcome.leak);
        let leak = outcome.leak.clone();
        for matched in outcome.matched.clone() {
            contain(
                engine, settings, signers, &leak, &matched, &evidence, outcome,
            )
            .await?;
        }
    }
    Ok(())
}

/// The findings answering one leak: a critical one on each credential it exposed, or one on the
/// leak itself when it matches nothing.
fn findings_of(outcome: &Outcome) -> Vec<RaisedFinding> {
    let evidence = evidence(&outcome.leak);
    if outcome.matched.is_empty() {
        let indicators: Vec<String> = outcome.leak.indicators.iter().map(describe).collect();
        return vec![RaisedFinding {
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
        }];
    }
    outcome
        .matched
        .iter()
        .map(|matched| RaisedFinding {
            source: matched.source.clone(),
            credential_external_id: matched.credential_external_id.clone(),
            policy_id: LEAKED.to_owned(),
            severity: "critical".to_owned(),
            reason: format!("exposed: {evidence} (matched by {})", describe(&matched.by)),
        })
        .collect()
}

/// When the credential is taken to be compromised: the exposure the report shows minus the
/// look-back, or, without one, the credential's creation (what was signed since proves nothing).
fn compromise_time(leak: &Leak, target: &LedgerCredential, look_back: TimeDelta) -> DateTime<Utc> {
    match leak.exposed_at {
        Some(exposed) => exposed.checked_sub_signed(look_back).unwrap_or(exposed),
        None => target.created_at(),
    }
}

/// Answers one exposed credential: distrusts, from the compromise time for good, every signer it
/// is and every signer its identity holds (keywarden cannot know what was taken with a holder's
/// key), and quarantines it — the `contain` playbook (distrust, quarantine, a critical finding),
/// or, where its source cannot act on it or containment is off, a `revoke_trust` action alone.
async fn contain(
    engine: Engine<'_>,
    settings: &Settings,
    signers: &[Signer],
    leak: &Leak,
    matched: &LeakMatch,
    evidence: &str,
    outcome: &mut Outcome,
) -> Result<(), StoreError> {
    let target = match actions::target(
        engine.store,
        &matched.credential_external_id,
        Some(&matched.source),
    )
    .await
    {
        Ok(it) => it,
        Err(ActionError::Store(err)) => return Err(err),
        Err(err) => {
            // Gone since the match was made: nothing is left to act on.
            outcome
                .not_contained
                .push(format!("{}: {err}", matched.credential_external_id));
            return Ok(());
        }
    };
    let by = format!("leak:{}", leak.id);
    // An ingest that stopped part-way (a crash) left its action: it is driven on, not doubled.
    let earlier = engine
        .store
        .credential_actions(&target.source, &target.credential.external_id)
        .await?
        .into_iter()
        .find(|it| {
            it.origin == by
                && it.parent.is_none()
                && matches!(it.kind, ActionKind::Contain | ActionKind::RevokeTrust)
        });
    if let Some(earlier) = earlier {
        if earlier.status.is_open() {
            match actions::drive(engine, earlier.id).await {
                // Stopped by a passing failure: not answered until it gets past it.
                Ok(record) if record.status == crate::store::ActionStatus::Running => {
                    outcome.pending = true;
                }
                Ok(_) => {}
                Err(ActionError::Store(err)) => return Err(err),
                Err(err) => {
                    // Another process drives it (a crashed one's lease not yet run out): the
                    // leak stays unanswered, so the next ingest (or `actions resume`) sees it
                    // through.
                    outcome.pending = true;
                    outcome.not_contained.push(format!(
                        "{}: action {}: {err}",
                        matched.credential_external_id, earlier.id
                    ));
                }
            }
        }
        outcome.contained.push(earlier.id);
        let distrust = revoke_trust::key_ids_of(&earlier);
        for key_id in distrust {
            if !outcome.distrusted.contains(&key_id) {
                outcome.distrusted.push(key_id);
            }
        }
        return Ok(());
    }
    let cause = Cause {
        from: compromise_time(leak, &target, settings.look_back),
        reason: DistrustReason::Leaked,
        evidence,
        by: &by,
        holder_end: HolderEnd::ForGood,
    };
    let distrust = revoke_trust::distrust_for(signers, &target, cause);
    let reason = format!("exposed: {evidence}");
    let mut kinds = Vec::with_capacity(2);
    if settings.contain {
        kinds.push(ActionKind::Contain);
    }
    if !distrust.is_empty() {
        kinds.push(ActionKind::RevokeTrust);
    }
    for kind in kinds {
        let mut request = Request::new(kind, &target, &by);
        request.reason = Some(reason.clone());
        request.distrust.clone_from(&distrust);
        if kind == ActionKind::Contain {
            tracing::warn!(credential = %matched.credential_external_id, leak = %leak.id, "Containing a leaked credential.");
        }
        match actions::start(engine, request).await {
            Ok(record) => {
                outcome.contained.push(record.id);
                for it in &distrust {
                    if !outcome.distrusted.contains(&it.key_id) {
                        outcome.distrusted.push(it.key_id.clone());
                    }
                }
                // The playbook distrusted them (its first step): no second action.
                break;
            }
            Err(ActionError::Store(err)) => return Err(err),
            Err(err) => outcome
                .not_contained
                .push(format!("{}: {err}", matched.credential_external_id)),
        }
    }
    Ok(())
}

/// An indicator in words (ids are shown; hashes by their first digits).
fn describe(indicator: &Indicator) -> String {
    match indicator {
        Indicator::AccessKeyId(id) => format!("access key id {id}"),
        Indicator::KeyId(id) => format!("key id {id}"),
        Indicator::Lookup { source, credential } => {
            format!("{source} itself, asked, named {credential}")
        }
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
    let ids: Vec<String> = access_keys.into_iter().cloned().collect();
    // One query per chunk of ids, not one per id: a report may name a hundred thousand.
    for it in store.find_credentials(&ids).await? {
        if it.credential.status == keywarden_connector::CredentialStatus::Gone {
            continue;
        }
        known
            .access_keys
            .entry(it.credential.external_id.clone())
            .or_default()
            .push((it.source, it.credential.external_id));
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
            // Only AWS access key ids: the SHA-1 of another kind's public id (a number, a path)
            // could equal a hash a report carries for something else entirely.
            if it.credential.kind == CredentialKind::AccessKey
                && leaks::is_access_key_id(&it.credential.external_id)
            {
                by_hash
                    .entry(leaks::sha1_hex(it.credential.external_id.as_bytes()))
                    .or_default()
                    .push((it.source, it.credential.external_id));
            }
        }
        known.sha1 = by_hash;
    }
    // Hashes of secrets keywarden created (a rotation's new key), of the credentials still there.
    for (algorithm, wanted) in [
        (
            "sha1",
            indicators()
                .filter_map(|it| match it {
                    Indicator::Sha1(hash) => Some(hash.clone()),
                    _ => None,
                })
                .collect::<BTreeSet<String>>(),
        ),
        (
            "hmsl",
            indicators()
                .filter_map(|it| match it {
                    Indicator::Hmsl(hash) => Some(hash.clone()),
                    _ => None,
                })
                .collect(),
        ),
    ] {
        if wanted.is_empty() {
            continue;
        }
        let wanted: Vec<String> = wanted.into_iter().collect();
        let hits = store.secret_hashes(algorithm, &wanted).await?;
        let ids: Vec<String> = hits.iter().map(|(_, id, _)| id.clone()).collect();
        let present: std::collections::HashSet<(String, String)> = store
            .find_credentials(&ids)
            .await?
            .into_iter()
            .filter(|it| it.credential.status != keywarden_connector::CredentialStatus::Gone)
            .map(|it| (it.source, it.credential.external_id))
            .collect();
        let into = if algorithm == "sha1" {
            &mut known.sha1
        } else {
            &mut known.hmsl
        };
        for (source, external_id, value) in hits {
            let key = (source, external_id);
            if present.contains(&key) {
                into.entry(value).or_default().push(key);
            }
        }
    }
    Ok(known)
}
