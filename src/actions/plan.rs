//! Dry runs: what an action would do, and what would refuse it, touching nothing.

use keywarden_connector::{ConnectorError, CredentialStatus, HeldKey, KeyActions, KeyHolder};
use serde::Serialize;

use super::ActionKind;
use super::rotate;
use crate::ledger::LedgerCredential;
use crate::store::{Store, StoreError};

/// What a dry run would do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub kind: ActionKind,
    pub source: String,
    pub credential: String,
    pub identity: String,
    /// The steps, in words.
    pub steps: Vec<String>,
    /// Why the action would be refused, if it would be.
    pub refusal: Option<String>,
    /// Where the facts came from: `live` (read from the source now) or `ledger` (the last scan).
    pub from: &'static str,
}

/// Describes what an action would do, reading the key's live state (and nothing else).
pub async fn plan(
    actions: &dyn KeyActions,
    kind: ActionKind,
    target: &LedgerCredential,
) -> Result<Plan, ConnectorError> {
    let identity = &target.identity.external_id;
    let holder = if kind == ActionKind::Revoke {
        // One credential, read alone: a token's holder may hold tokens its source cannot list.
        KeyHolder {
            identity_id: identity.clone(),
            name: target.identity.name.clone(),
            keys: actions
                .key(identity, &target.credential.external_id)
                .await?
                .into_iter()
                .collect(),
        }
    } else {
        actions.keys(identity).await?
    };
    let destination = actions
        .destination(&target.identity.external_id)
        .map_err(|err| err.to_string());
    let timing = actions.rotation_timing();
    let switches_off = actions
        .capabilities(target.credential.kind)
        .contains(&keywarden_connector::Capability::DeactivateKey);
    Ok(describe(
        Facts {
            kind,
            target,
            holder: &holder,
            destination,
            timing: Some(timing),
            switches_off,
        },
        "live",
    ))
}

/// Describes what an action would do from the ledger alone (the identity's keys as the last scan
/// saw them): for reports of dry-run policies, which must not call the source per finding.
pub async fn plan_from_ledger(
    store: &dyn Store,
    kind: ActionKind,
    target: &LedgerCredential,
) -> Result<Plan, StoreError> {
    let held = store
        .identity_credentials(&target.source, &target.identity.external_id)
        .await?;
    Ok(plan_from_held(kind, target, held, true))
}

/// [`plan_from_ledger`] with the identity's present credentials already read.
pub(super) fn plan_from_held(
    kind: ActionKind,
    target: &LedgerCredential,
    held: Vec<keywarden_connector::Credential>,
    switches_off: bool,
) -> Plan {
    let keys = held
        .into_iter()
        .filter(|it| it.kind == target.credential.kind)
        .map(|it| HeldKey {
            active: it.status == CredentialStatus::Active,
            id: it.external_id,
            created_at: it.created_at,
        })
        .collect();
    let holder = KeyHolder {
        identity_id: target.identity.external_id.clone(),
        name: target.identity.name.clone(),
        keys,
    };
    describe(
        Facts {
            kind,
            target,
            holder: &holder,
            destination: Ok("its destination".to_owned()),
            timing: None,
            switches_off,
        },
        "ledger",
    )
}

/// What a plan is described from.
struct Facts<'a> {
    kind: ActionKind,
    target: &'a LedgerCredential,
    holder: &'a KeyHolder,
    destination: Result<String, String>,
    timing: Option<keywarden_connector::RotationTiming>,
    /// The credential can be switched off (an access key); else only revoked (a secret-id).
    switches_off: bool,
}

fn span(it: Option<std::time::Duration>) -> String {
    it.map_or_else(
        || "the configured period".to_owned(),
        |it| humantime::format_duration(it).to_string(),
    )
}

/// The steps of rotating a credential that cannot be switched off (a secret-id).
fn rotate_revocable(facts: &Facts<'_>, refusal: &mut Option<String>) -> Vec<String> {
    let key = &facts.target.credential.external_id;
    if !facts.holder.keys.iter().any(|it| it.id == *key) {
        refusal.get_or_insert(format!("{} no longer holds {key}", facts.holder.name));
    }
    let destination = facts.destination.clone().unwrap_or_else(|err| {
        refusal.get_or_insert(err);
        "(no destination)".to_owned()
    });
    vec![
        format!(
            "create a new secret-id for {} with {key}'s metadata",
            facts.holder.name
        ),
        format!("deliver it to {destination}"),
        "prove it works (Vault looks it up)".to_owned(),
        format!(
            "keep {key} valid for {}",
            span(facts.timing.map(|it| it.overlap))
        ),
        format!("revoke {key}"),
        format!(
            "revoke the tokens {key} minted before the new one was made (unless {} holds other \
             secret-ids, whose tokens cannot be told apart)",
            facts.holder.name
        ),
    ]
}

fn describe(facts: Facts<'_>, from: &'static str) -> Plan {
    let Facts {
        kind,
        target,
        holder,
        timing,
        ..
    } = facts;
    let destination = facts.destination.clone();
    let key = &target.credential.external_id;
    let mut refusal = None;
    let steps = match kind {
        ActionKind::Rotate if !facts.switches_off => rotate_revocable(&facts, &mut refusal),
        ActionKind::Rotate => {
            refusal = rotate::refusal(key, holder);
            let destination = destination.unwrap_or_else(|err| {
                refusal.get_or_insert(err);
                "(no destination)".to_owned()
            });
            let mut steps = Vec::new();
            if let Some(other) = holder.keys.iter().find(|it| it.id != *key && !it.active) {
                steps.push(format!("delete the inactive key {} to make room", other.id));
            }
            steps.extend([
                format!("create a new access key for {}", holder.name),
                format!("deliver it to {destination}"),
                "prove it works (sts:GetCallerIdentity with the new key)".to_owned(),
                format!(
                    "keep {key} active for {} (less once the new key is in use and {key} is not)",
                    span(timing.map(|it| it.overlap))
                ),
                format!("deactivate {key}"),
                format!("delete {key} after {}", span(timing.map(|it| it.grace))),
            ]);
            steps
        }
        ActionKind::Disable => vec![format!("deactivate {key}")],
        ActionKind::Delete => vec![
            format!("deactivate {key} if it is active, and hold it"),
            format!("delete {key} after the hold"),
        ],
        ActionKind::Quarantine => vec![
            format!("deactivate {key}"),
            format!(
                "attach a policy to {} denying every session issued before now",
                holder.name
            ),
        ],
        ActionKind::Revoke => vec![format!("revoke {key} for good")],
        ActionKind::RotateKv => vec![
            format!("read {key}'s current version"),
            "draw a new value as the policy's `enforce.generate` says".to_owned(),
            format!("write it as {key}'s next version, check-and-set, keeping its other fields"),
        ],
        ActionKind::RotateVersion => vec![
            format!(
                "add a version to {} that signs from now on (unless a newer one already does)",
                holder.name
            ),
            format!("keep {key} and older versions accepted for the source's transit_retire_after"),
            format!("retire {key} and older versions (Vault's minimum versions raised past it)"),
            format!("distrust their signers from the retirement (reason retired)"),
        ],
        ActionKind::Contain => vec![
            format!(
                "distrust the signers {key} is or {} holds, from the compromise time",
                holder.name
            ),
            format!(
                "take {key} out of use (quarantine, or revoke where it cannot be switched off), pre-empting a rotation in flight"
            ),
            format!("open a critical finding on {key}"),
        ],
        ActionKind::RaiseFinding => vec![format!("open a critical finding on {key}")],
        ActionKind::RevokeTrust => vec![format!(
            "distrust the signers {key} is or {} holds, from when the condition began",
            holder.name
        )],
    };
    let acts_on_the_key = !matches!(kind, ActionKind::RaiseFinding | ActionKind::RevokeTrust);
    if acts_on_the_key && kind != ActionKind::Rotate && !holder.keys.iter().any(|it| it.id == *key)
    {
        refusal = Some(format!("{} no longer holds key {key}", holder.name));
    }
    Plan {
        kind,
        source: target.source.clone(),
        credential: key.clone(),
        identity: target.identity.external_id.clone(),
        steps,
        refusal,
        from,
    }
}
