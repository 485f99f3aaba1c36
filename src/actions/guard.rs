//! The live re-check before a destructive step: re-read the key's state from its source and
//! evaluate the policy that started the action on it, as it is now.

use keywarden_connector::{CredentialStatus, HeldKey, LastUse};

use super::machine::{StepCx, StepError};
use crate::ledger::IdentityCounts;
use crate::policy::{self, PolicySet};

/// What the source holds now for the key acted on.
pub(crate) enum Live {
    /// The key, as the source reports it now, with every key the identity holds.
    Held { key: HeldKey, all: Vec<HeldKey> },
    /// The identity no longer holds the key.
    Gone,
}

/// Reads the key's live state.
pub(crate) async fn live_key(cx: &StepCx<'_>) -> Result<Live, StepError> {
    let all = cx.keys()?.keys(cx.identity()).await?.keys;
    Ok(match all.iter().find(|it| it.id == cx.key()).cloned() {
        Some(key) => Live::Held { key, all },
        None => Live::Gone,
    })
}

/// The identity's credential counts for conditions over them, as they are now: its credentials
/// of the target's kind (`all`, as the source reports them: an action earlier in the run may
/// have switched one off), its other credentials from the ledger.
async fn live_counts(
    cx: &StepCx<'_>,
    credential: &crate::ledger::LedgerCredential,
    all: &[HeldKey],
) -> Result<IdentityCounts, StepError> {
    let (source, identity) = (&credential.source, &credential.identity.external_id);
    let mut counts = IdentityCounts::default();
    for it in cx
        .engine
        .store
        .identity_credentials(source, identity)
        .await?
        .into_iter()
        .filter(|it| it.kind != credential.credential.kind && it.status != CredentialStatus::Gone)
    {
        counts.add(source, identity, it.kind, it.status, 1);
    }
    for key in all {
        let status = if key.active {
            CredentialStatus::Active
        } else {
            CredentialStatus::Inactive
        };
        counts.add(source, identity, credential.credential.kind, status, 1);
    }
    Ok(counts)
}

/// For an action a policy started (origin `policy:<id>`): why the policy's condition no longer
/// holds on the live state of the key, if it does not. Actions started by hand have no condition
/// to re-check (`None`). A policy that is no longer loaded, or a key that is gone, does not hold.
/// `live` is the key as the source reports it now, `all` every key its identity holds now.
pub(crate) async fn condition_lapsed(
    cx: &StepCx<'_>,
    live: &HeldKey,
    all: &[HeldKey],
) -> Result<Option<String>, StepError> {
    if !cx.record.origin.starts_with("policy:") {
        return Ok(None);
    }
    let live_use = cx.keys()?.last_used(cx.identity(), cx.key()).await?;
    condition_lapsed_with(cx, live, all, live_use).await
}

/// [`condition_lapsed`] with the last use the source shows now already read (`Unknown` where it
/// shows none live: the ledger's is kept).
pub(crate) async fn condition_lapsed_with(
    cx: &StepCx<'_>,
    live: &HeldKey,
    all: &[HeldKey],
    live_use: LastUse,
) -> Result<Option<String>, StepError> {
    let Some(policy_id) = cx.record.origin.strip_prefix("policy:") else {
        return Ok(None);
    };
    let Some(policy) = cx.engine.policies.get(policy_id) else {
        return Ok(Some(format!(
            "policy `{policy_id}` is no longer loaded; its condition cannot be re-checked"
        )));
    };
    let Some(mut credential) = cx
        .engine
        .store
        .find_credential(cx.key())
        .await?
        .into_iter()
        .find(|it| it.source == cx.record.source)
    else {
        return Ok(Some(format!("{} is no longer in the ledger", cx.key())));
    };
    credential.credential.status = if live.active {
        CredentialStatus::Active
    } else {
        CredentialStatus::Inactive
    };
    if live.created_at.is_some() {
        credential.credential.created_at = live.created_at;
    }
    // The later of what the source says now and what the ledger saw: a live read that knows
    // less (Vault's last renewal, where the ledger has the audit log's last request) never
    // makes a credential look less used than it was.
    if live_use.at() >= credential.credential.last_used.at() {
        credential.credential.last_used = live_use;
    }
    let one = PolicySet {
        policies: vec![policy.clone()],
    };
    let counts = live_counts(cx, &credential, all).await?;
    let holds =
        !policy::evaluate(&one, std::slice::from_ref(&credential), &counts, cx.now()).is_empty();
    Ok((!holds).then(|| {
        format!(
            "`{policy_id}` no longer holds on the live state of {} ({}, last use {})",
            cx.key(),
            credential.credential.status,
            match credential.credential.last_used.at() {
                Some(at) => super::machine::when(at),
                None => "none known".to_owned(),
            }
        )
    }))
}
