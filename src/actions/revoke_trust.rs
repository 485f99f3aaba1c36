//! `revoke_trust`: distrusts signers from a point in time, touching no connector.
//!
//! Which signers, from when and until when is decided when the action is created (by a policy's
//! enforcement, a leak's containment or a person) and carried in its state, so a resumed action
//! distrusts exactly what was decided. Its one step applies each period through the store's trust
//! rules; distrust only widens, so taking the step again after a crash changes nothing more.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::crash_point;
use super::machine::{Machine, Next, StepCx, StepError};
use crate::ledger::LedgerCredential;
use crate::signers::{HeldVia, Signer};
use crate::store::TrustChange;
use crate::trust::{Change, DistrustPeriod, DistrustReason, Replacement};

/// One signer to distrust: its key id, when it is trusted from (for a signer without a stored
/// record), and the period.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignerDistrust {
    pub key_id: String,
    pub valid_from: DateTime<Utc>,
    pub period: DistrustPeriod,
}

/// How long distrust of a signer lasts when the credential that caused it is one its holder
/// holds, not the signer's own key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HolderEnd {
    /// For good: keywarden cannot know what was signed with it.
    ForGood,
    /// Until the credential is replaced (no longer in use).
    UntilReplaced,
}

/// What caused a distrust and how it is recorded.
#[derive(Clone, Copy, Debug)]
pub struct Cause<'a> {
    pub from: DateTime<Utc>,
    pub reason: DistrustReason,
    /// What showed it (never a secret).
    pub evidence: &'a str,
    /// Who or what decided it (`policy:<id>`, `leak:<id>`).
    pub by: &'a str,
    pub holder_end: HolderEnd,
}

/// The signers `target` is, or its identity holds, and the period each is distrusted for: a
/// signer's own key for good, a holder's credential as `cause.holder_end` says. Pure.
pub fn distrust_for(
    signers: &[Signer],
    target: &LedgerCredential,
    cause: Cause<'_>,
) -> Vec<SignerDistrust> {
    let credential = &target.credential.external_id;
    let mut out = Vec::new();
    for signer in signers {
        let is_signer = signer
            .credentials
            .iter()
            .any(|it| it.source == target.source && &it.external_id == credential);
        // An identity holds the signer through all its credentials, except where only some
        // of them may sign with it (a Vault token's policies): then through just those.
        let holds = signer.holders.iter().any(|it| {
            it.source == target.source
                && match it.via {
                    HeldVia::Own | HeldVia::Config => it.identity == target.identity.external_id,
                    HeldVia::Policy => it.credentials.iter().any(|c| &c.external_id == credential),
                }
        });
        if !is_signer && !holds {
            continue;
        }
        let (why, until_replaced) = if is_signer {
            (format!("its key {credential}"), None)
        } else {
            let until = (cause.holder_end == HolderEnd::UntilReplaced).then(|| Replacement {
                source: target.source.clone(),
                credential: credential.clone(),
            });
            (
                format!("{credential} of its holder {}", target.identity.name),
                until,
            )
        };
        out.push(SignerDistrust {
            key_id: signer.key_id.clone(),
            valid_from: signer.record.valid_from,
            period: DistrustPeriod {
                from: cause.from,
                until: None,
                reason: cause.reason,
                evidence: format!("{why}: {}", cause.evidence),
                by: cause.by.to_owned(),
                reinstated: None,
                until_replaced,
            },
        });
    }
    out
}

/// The key ids an action distrusts (or distrusted): a `revoke_trust`'s or a `contain`'s; none
/// for another kind or a state that does not read.
pub fn key_ids_of(record: &crate::store::ActionRecord) -> Vec<String> {
    use crate::store::ActionKind;
    let signers: Vec<SignerDistrust> = match record.kind {
        ActionKind::RevokeTrust => match serde_json::from_value(record.state.clone()) {
            Ok(RevokeTrust::Revoke { signers }) => signers,
            Err(_) => Vec::new(),
        },
        ActionKind::Contain => {
            match serde_json::from_value::<super::playbook::Contain>(record.state.clone()) {
                Ok(super::playbook::Contain::Children { distrust, .. }) => distrust,
                Err(_) => Vec::new(),
            }
        }
        _ => Vec::new(),
    };
    signers.into_iter().map(|it| it.key_id).collect()
}

/// The step log's words for one signer's period.
pub fn describe(it: &SignerDistrust) -> String {
    let end = match (&it.period.until, &it.period.until_replaced) {
        (Some(until), _) => format!("until {}", until.to_rfc3339()),
        (None, Some(credential)) => format!("until {credential} is replaced"),
        (None, None) => "for good".to_owned(),
    };
    format!(
        "distrust signer {} from {} {end} ({})",
        it.key_id,
        it.period.from.to_rfc3339(),
        it.period.reason.as_str()
    )
}

/// The `revoke_trust` machine.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub(crate) enum RevokeTrust {
    Revoke { signers: Vec<SignerDistrust> },
}

#[async_trait]
impl Machine for RevokeTrust {
    fn step_name(&self) -> &'static str {
        "revoke"
    }

    async fn step(self, cx: &StepCx<'_>) -> Result<Next<Self>, StepError> {
        let Self::Revoke { signers } = self;
        if signers.is_empty() {
            return Ok(Next::Done("no signer to distrust".to_owned()));
        }
        let now = cx.now();
        let (mut changed, mut already, mut refused) = (Vec::new(), 0_usize, Vec::new());
        for it in &signers {
            let change = TrustChange::Distrust(it.period.clone());
            match cx
                .engine
                .store
                .change_trust(&it.key_id, it.valid_from, &change, now)
                .await?
            {
                Ok(Change::Changed) => changed.push(it.key_id.clone()),
                Ok(Change::Unchanged) => already += 1,
                Err(err) => refused.push(format!("{}: {err}", it.key_id)),
            }
        }
        crash_point("revoke_trust_distrust");
        let mut summary = format!(
            "distrusted {} of {} signers ({already} already were)",
            changed.len(),
            signers.len()
        );
        if !changed.is_empty() {
            summary += &format!(": {}", changed.join(", "));
        }
        if refused.is_empty() {
            Ok(Next::Done(summary))
        } else {
            Ok(Next::Failed(format!(
                "{summary}; refused: {}",
                refused.join("; ")
            )))
        }
    }

    async fn cancel(self, _cx: &StepCx<'_>) -> Result<String, StepError> {
        Ok(
            "signers distrusted before the cancel stay distrusted (a person reinstates them)"
                .to_owned(),
        )
    }
}
