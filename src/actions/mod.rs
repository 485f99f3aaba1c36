//! Actions — rotate, disable, delete, quarantine, containment playbooks — as persisted, typed
//! state machines driven by one engine.
//!
//! Each action kind is a [`machine::Machine`]: an enum of states, each carrying the data that state
//! needs (key ids and times, never a secret), and a step function that takes the current state to
//! the next. The engine ([`engine`]) persists every state *before* the step that acts on it is
//! taken, holds a lease so one process drives an action at a time, and resumes what a crash or a
//! restart left. Steps are idempotent or check on re-entry what an interrupted attempt left.
//!
//! - `rotate` ([`rotate`]): check → (retire_inactive) → create → deliver → verify → overlap (waits)
//!   → deactivate → grace (waits) → delete.
//! - `disable`, `delete` (deactivate, hold, delete), `quarantine` (deactivate, deny older
//!   sessions): [`keys`].
//! - `contain` ([`playbook`]): a parent whose ordered children (distrust the signers, quarantine,
//!   then a critical finding) each run as their own crash-resumable action; done when they are.
//! - `raise_finding` ([`playbook`]): opens a finding keywarden raises itself; touches no connector.
//! - `revoke` ([`revoke`]): check → revoke → (revoke what it minted, in a containment) → done;
//!   for credentials that cannot be switched off and on (Vault tokens and secret-ids).
//! - `rotate_version` ([`rotate_version`]): check → rotate → retire (waits) → close_trust; a
//!   `rotate` of a versioned signing key (a Vault Transit key version) runs as this kind.
//! - `rotate_kv` ([`rotate_kv`]): check → write; a `rotate` of a KV v2 secret, whose new value
//!   the policy's `enforce.generate` describes.
//! - `revoke_trust` ([`revoke_trust`]): distrusts the signers a credential is or holds, from when
//!   its condition began or it was compromised; touches no connector.
//!
//! Connectors offer [`Capability`]s per credential kind; a machine names the ones it needs and is
//! refused, naming the missing ones, where its source does not offer them. Containment
//! (quarantine, disable, contain) pre-empts an open rotation or delete of the same credential:
//! that action is cancelled at a safe point first ([`engine::cancel`]).
//!
//! Architecture invariant: this module decides the order of steps and persists them; a
//! connector's [`KeyActions`] take single steps; the store is the only place state lives.
//! Architecture invariant: a step acting on a policy's finding first re-reads the live state and
//! re-checks the policy's condition on it ([`guard`]); if it no longer holds, the action ends
//! `skipped`.

mod control;
pub mod enforce;
mod engine;
mod guard;
mod keys;
pub mod lease;
mod machine;
mod plan;
mod playbook;
mod revoke;
pub mod revoke_trust;
mod rotate;
mod rotate_kv;
mod rotate_version;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use keywarden_connector::{Capability, Connector, CredentialKind, CredentialStatus, KeyActions};

use crate::ledger::LedgerCredential;
use crate::policy::PolicySet;
use crate::store::{Store, StoreError};

pub use crate::store::ActionKind;
pub use engine::{Request, approve, cancel, drive, reject, resume, retry, start};
pub use plan::{Plan, plan, plan_from_ledger};

/// Why an action could not be started or continued.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    /// The credential is not in the ledger (or not in any configured source).
    #[error("not found: {0}")]
    NotFound(String),
    /// The credential is of a kind, or in a source, that cannot take this action.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// More than one credential has this id; name the source.
    #[error("ambiguous: {0}")]
    Ambiguous(String),
    /// Another keywarden process is driving the action, or the request does not fit its state.
    #[error("busy: {0}")]
    Busy(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The config's `signers:` holders with their key ids resolved.
pub type Holders = [(String, Vec<crate::config::signers::HolderSelector>)];

/// A clock, so tests can move time past overlap, grace and hold periods.
pub type Clock<'a> = &'a (dyn Fn() -> DateTime<Utc> + Send + Sync);

/// What the engine works with: the store, the configured connectors, the loaded policies (for
/// the live re-checks of policy actions) and the clock.
#[derive(Clone, Copy)]
pub struct Engine<'a> {
    pub store: &'a dyn Store,
    pub connectors: &'a [Arc<dyn Connector>],
    pub policies: &'a PolicySet,
    /// The config's `signers:` holders, by key id (for distrusting what an identity holds).
    pub holders: &'a Holders,
    pub clock: Clock<'a>,
}

impl Engine<'_> {
    pub fn now(&self) -> DateTime<Utc> {
        (self.clock)()
    }
}

/// Crash points for the crash-and-resume tests: with the `crash-points` feature and
/// `KEYWARDEN_CRASH_AFTER=<point>`, the process aborts right after that side effect, before the
/// store learns of it — the worst moment for a crash.
pub(crate) fn crash_point(point: &str) {
    #[cfg(feature = "crash-points")]
    if std::env::var("KEYWARDEN_CRASH_AFTER").is_ok_and(|it| it == point) {
        eprintln!("crash point {point}: aborting");
        std::process::abort();
    }
    #[cfg(not(feature = "crash-points"))]
    let _ = point;
}

/// Finds the connector of a ledger source (`aws` or a partition `aws/123456789012`).
pub fn connector_of<'a>(
    connectors: &'a [Arc<dyn Connector>],
    source: &str,
) -> Option<&'a Arc<dyn Connector>> {
    connectors.iter().find(|it| {
        source == it.source()
            || source
                .strip_prefix(it.source())
                .is_some_and(|rest| rest.starts_with('/'))
    })
}

/// Looks up the one present credential with this external id (in `source`, if given).
pub async fn target(
    store: &dyn Store,
    external_id: &str,
    source: Option<&str>,
) -> Result<LedgerCredential, ActionError> {
    let found = store.find_credential(external_id).await?;
    pick_target(external_id, source, found)
}

/// The one present credential among those `found` with this external id (in `source`, if
/// given), or why there is none.
fn pick_target(
    external_id: &str,
    source: Option<&str>,
    found: Vec<LedgerCredential>,
) -> Result<LedgerCredential, ActionError> {
    let (present, gone): (Vec<LedgerCredential>, Vec<LedgerCredential>) = found
        .into_iter()
        .filter(|it| source.is_none_or(|source| it.source == source))
        .partition(|it| it.credential.status != CredentialStatus::Gone);
    if present.len() > 1 {
        let sources: Vec<&str> = present.iter().map(|it| it.source.as_str()).collect();
        return Err(ActionError::Ambiguous(format!(
            "{external_id} is in several sources ({}); name one with --source",
            sources.join(", ")
        )));
    }
    present.into_iter().next().ok_or_else(|| {
        ActionError::NotFound(match gone.first() {
            Some(it) => format!(
                "{external_id} is gone from {} (the last scan no longer found it)",
                it.source
            ),
            None => {
                format!("no credential {external_id} in the ledger; run `keywarden scan` first")
            }
        })
    })
}

/// The kind an action on a credential of `credential` runs as: a `rotate` of a versioned signing
/// key's version is a `rotate_version` (a new version, not a new key).
pub fn resolve_kind(kind: ActionKind, credential: CredentialKind) -> ActionKind {
    match (kind, credential) {
        (ActionKind::Rotate, CredentialKind::TransitKeyVersion) => ActionKind::RotateVersion,
        (ActionKind::Rotate, CredentialKind::KvSecret) => ActionKind::RotateKv,
        // Nothing to switch off first: deleting a token or a secret-id is revoking it.
        (ActionKind::Delete, CredentialKind::Token | CredentialKind::SecretId) => {
            ActionKind::Revoke
        }
        _ => kind,
    }
}

/// The key actions of a credential's source, checked to offer everything `kind` needs on
/// credentials of `credential_kind`.
pub fn key_actions(
    connectors: &[Arc<dyn Connector>],
    source: &str,
    kind: ActionKind,
    credential_kind: CredentialKind,
) -> Result<Option<Arc<dyn KeyActions>>, ActionError> {
    let kind = resolve_kind(kind, credential_kind);
    if kind == ActionKind::RotateVersion {
        let connector = connector_of(connectors, source).ok_or_else(|| {
            ActionError::NotFound(format!("source `{source}` is not in the configuration"))
        })?;
        if credential_kind != CredentialKind::TransitKeyVersion
            || connector.versioned_keys().is_none()
        {
            return Err(ActionError::Unsupported(format!(
                "source `{source}` ({}) cannot rotate_version a {credential_kind}: it has no \
                 versioned keys of that kind",
                connector.kind()
            )));
        }
        return Ok(None);
    }
    if kind == ActionKind::RotateKv {
        let connector = connector_of(connectors, source).ok_or_else(|| {
            ActionError::NotFound(format!("source `{source}` is not in the configuration"))
        })?;
        if connector.secret_store().is_none() {
            return Err(ActionError::Unsupported(format!(
                "source `{source}` ({}) cannot rotate_kv a {credential_kind}: it holds no \
                 secrets keywarden writes",
                connector.kind()
            )));
        }
        return Ok(None);
    }
    let needs = machine::needs(kind);
    if needs.is_empty() {
        return Ok(None);
    }
    let connector = connector_of(connectors, source).ok_or_else(|| {
        ActionError::NotFound(format!("source `{source}` is not in the configuration"))
    })?;
    let missing = |offered: &[Capability]| -> Vec<&'static str> {
        needs
            .iter()
            .filter(|it| !offered.contains(it))
            .map(|it| it.as_str())
            .collect()
    };
    let Some(actions) = connector.key_actions() else {
        return Err(ActionError::Unsupported(format!(
            "source `{source}` ({}) takes no actions; a {credential_kind} there is reported only",
            connector.kind(),
        )));
    };
    let offered = actions.capabilities(credential_kind);
    let mut lacking = missing(offered);
    if kind == ActionKind::Rotate
        && !machine::RETIRE_ROTATED
            .iter()
            .any(|way| way.iter().all(|it| offered.contains(it)))
    {
        lacking.push("deactivate_key and delete_key, or revoke_key");
    }
    if !lacking.is_empty() {
        return Err(ActionError::Unsupported(format!(
            "source `{source}` ({}) cannot {kind} a {credential_kind}: it does not offer {}",
            connector.kind(),
            lacking.join(", ")
        )));
    }
    Ok(Some(actions))
}

/// Whether the source of a credential switches credentials of its kind off and on (an access
/// key), rather than only revoking them (a secret-id); a source that takes no actions counts as
/// switching off (nothing is planned on it anyway).
pub(crate) fn switches_off(
    connectors: &[Arc<dyn Connector>],
    source: &str,
    credential_kind: CredentialKind,
) -> bool {
    connector_of(connectors, source)
        .and_then(|it| it.key_actions())
        .is_none_or(|it| {
            it.capabilities(credential_kind)
                .contains(&Capability::DeactivateKey)
        })
}

/// Whether an action kind contains a compromise, and so pre-empts a rotation or delete in flight.
pub fn is_containment(kind: ActionKind) -> bool {
    matches!(
        kind,
        ActionKind::Quarantine | ActionKind::Disable | ActionKind::Contain | ActionKind::Revoke
    )
}
