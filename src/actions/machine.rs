//! The shape every action kind has: a typed state machine.
//!
//! A kind is an enum of states (serialized with its `step` tag as the action's state in the
//! store), the capabilities it needs of its connector, a step function and a cancel function
//! that ends it at a safe point. To add a kind: add it to [`crate::store::ActionKind`], write its
//! machine in a file of its own, and add it to [`needs`] and to the dispatch in
//! [`super::engine`] and [`super::control`].

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use keywarden_connector::{
    Capability, ConnectorError, HeldKey, KeyActions, KeyHolder, KeyVersions, LastUse, NewKey,
    RotationTiming, VersionedKeys,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{ActionError, ActionKind, Engine};
use crate::store::{ActionRecord, ActionStatus, ActionUpdate, StoreError};

/// Where one step leads.
pub(crate) enum Next<S> {
    /// On to this state (written before it is taken), with a line for the step log.
    Step(S, Option<String>),
    /// Wait in this state until the time.
    Wait(S, DateTime<Utc>, String),
    Done(String),
    /// The policy's condition no longer holds on the live state: nothing was changed.
    Skipped(String),
    /// It would be unsafe: nothing (more) was changed.
    Refused(String),
    Failed(String),
}

/// Why a step could not be taken.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StepError {
    #[error(transparent)]
    Connector(#[from] ConnectorError),
    #[error(transparent)]
    Action(#[from] ActionError),
}

impl From<StoreError> for StepError {
    fn from(err: StoreError) -> Self {
        Self::Action(err.into())
    }
}

/// What a step sees: the engine, the action as stored, and its source's key actions (when the
/// kind needs any).
pub(crate) struct StepCx<'a> {
    pub engine: Engine<'a>,
    pub record: &'a ActionRecord,
    pub keys: Option<Arc<dyn KeyActions>>,
    /// The source's steps on versioned signing keys (for `rotate_version`).
    pub versions: Option<Arc<dyn VersionedKeys>>,
    /// The process driving the action (it holds the lease), and the lease's fencing token.
    pub holder: &'a str,
    pub token: i64,
}

impl StepCx<'_> {
    pub fn now(&self) -> DateTime<Utc> {
        self.engine.now()
    }

    /// The key acted on.
    pub fn key(&self) -> &str {
        &self.record.credential_external_id
    }

    pub fn identity(&self) -> &str {
        &self.record.identity_external_id
    }

    /// The source's key actions, fenced; an error if the kind declared no need of them.
    pub fn keys(&self) -> Result<Fenced<'_, '_>, StepError> {
        match self.keys.as_deref() {
            Some(inner) => Ok(Fenced { cx: self, inner }),
            None => Err(StepError::Action(ActionError::Unsupported(format!(
                "action {} has no key actions",
                self.record.id
            )))),
        }
    }

    /// The source's steps on versioned keys, fenced; an error if the kind declared no need.
    pub fn versions(&self) -> Result<FencedVersions<'_, '_>, StepError> {
        match self.versions.as_deref() {
            Some(inner) => Ok(FencedVersions { cx: self, inner }),
            None => Err(StepError::Action(ActionError::Unsupported(format!(
                "action {} has no versioned keys",
                self.record.id
            )))),
        }
    }

    /// Renews the lease, or refuses to act: taken over, finished, or not confirmable.
    pub(crate) async fn fence(&self) -> Result<(), ConnectorError> {
        self.engine
            .store
            .renew_lease(self.record.id, self.holder, self.token, self.now())
            .await
            .map(|_| ())
            .map_err(|err| ConnectorError::Retryable {
                message: format!(
                    "not acting on action {}: its lease is not held ({err})",
                    self.record.id
                ),
                retry_after: None,
            })
    }

    /// Persists a state in the middle of a step (rotate's `create` records the new key's id
    /// between creating and delivering it).
    pub async fn persist<S: Serialize + Machine>(
        &self,
        state: &S,
        detail: String,
    ) -> Result<(), StepError> {
        let update = ActionUpdate {
            step: state.step_name().to_owned(),
            status: ActionStatus::Running,
            state: to_value(state)?,
            reason: None,
            next_at: None,
            detail: Some(detail),
            holder: self.holder.to_owned(),
            token: self.token,
        };
        self.engine
            .store
            .update_action(self.record.id, &update, self.now())
            .await?;
        Ok(())
    }
}

/// A source's key actions as a step uses them. Every call that changes a credential first
/// renews the action's lease under the step's fencing token: a holder whose lease was taken over
/// (it stalled past the lease) learns it before it acts, not only when it records the step, and
/// acts on nothing. Reads go straight through.
#[derive(Clone, Copy)]
pub(crate) struct Fenced<'s, 'a> {
    cx: &'s StepCx<'a>,
    inner: &'s dyn KeyActions,
}

impl Fenced<'_, '_> {
    async fn fence(&self) -> Result<(), ConnectorError> {
        self.cx.fence().await
    }

    pub async fn keys(&self, identity: &str) -> Result<KeyHolder, ConnectorError> {
        self.inner.keys(identity).await
    }

    pub fn destination(&self, identity: &str) -> Result<String, ConnectorError> {
        self.inner.destination(identity)
    }

    pub async fn delivered(&self, identity: &str) -> Result<Option<NewKey>, ConnectorError> {
        self.inner.delivered(identity).await
    }

    pub async fn delivered_id(&self, identity: &str) -> Result<Option<String>, ConnectorError> {
        self.inner.delivered_id(identity).await
    }

    pub async fn verify(&self, identity: &str, key: &NewKey) -> Result<(), ConnectorError> {
        self.inner.verify(identity, key).await
    }

    pub async fn last_used(&self, identity: &str, key: &str) -> Result<LastUse, ConnectorError> {
        self.inner.last_used(identity, key).await
    }

    pub fn rotation_timing(&self) -> RotationTiming {
        self.inner.rotation_timing()
    }

    pub fn capabilities(&self, kind: keywarden_connector::CredentialKind) -> &'static [Capability] {
        self.inner.capabilities(kind)
    }

    pub async fn create_key(
        &self,
        identity: &str,
        replacing: &str,
        attempt: &str,
    ) -> Result<NewKey, ConnectorError> {
        self.fence().await?;
        self.inner.create_key(identity, replacing, attempt).await
    }

    pub async fn deliver(
        &self,
        identity: &str,
        key: &NewKey,
        token: &str,
    ) -> Result<(), ConnectorError> {
        self.fence().await?;
        self.inner.deliver(identity, key, token).await
    }

    pub async fn set_active(
        &self,
        identity: &str,
        key: &str,
        active: bool,
    ) -> Result<(), ConnectorError> {
        self.fence().await?;
        self.inner.set_active(identity, key, active).await
    }

    pub async fn delete_key(&self, identity: &str, key: &str) -> Result<(), ConnectorError> {
        self.fence().await?;
        self.inner.delete_key(identity, key).await
    }

    pub async fn key(&self, identity: &str, key: &str) -> Result<Option<HeldKey>, ConnectorError> {
        self.inner.key(identity, key).await
    }

    pub async fn revoke(&self, identity: &str, key: &str) -> Result<(), ConnectorError> {
        self.fence().await?;
        self.inner.revoke(identity, key).await
    }

    pub async fn revoke_minted(
        &self,
        identity: &str,
        key: &str,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
    ) -> Result<Vec<String>, ConnectorError> {
        self.fence().await?;
        self.inner.revoke_minted(identity, key, since, until).await
    }

    pub async fn deny_sessions_before(
        &self,
        identity: &str,
        before: DateTime<Utc>,
    ) -> Result<String, ConnectorError> {
        self.fence().await?;
        self.inner.deny_sessions_before(identity, before).await
    }
}

/// A source's steps on versioned keys as a step uses them, fenced like [`Fenced`].
#[derive(Clone, Copy)]
pub(crate) struct FencedVersions<'s, 'a> {
    cx: &'s StepCx<'a>,
    inner: &'s dyn VersionedKeys,
}

impl FencedVersions<'_, '_> {
    pub async fn versions(&self, identity: &str) -> Result<KeyVersions, ConnectorError> {
        self.inner.versions(identity).await
    }

    pub async fn add_version(&self, identity: &str) -> Result<KeyVersions, ConnectorError> {
        self.cx.fence().await?;
        self.inner.add_version(identity).await
    }

    pub async fn retire_below(&self, identity: &str, version: u64) -> Result<(), ConnectorError> {
        self.cx.fence().await?;
        self.inner.retire_below(identity, version).await
    }

    pub fn retire_after(&self) -> std::time::Duration {
        self.inner.retire_after()
    }
}

/// One action kind's state machine.
#[async_trait]
pub(crate) trait Machine:
    Serialize + DeserializeOwned + Clone + Send + Sync + Sized
{
    /// The name of the state, as the store and the step log show it.
    fn step_name(&self) -> &'static str;

    /// Takes the step this state stands for.
    async fn step(self, cx: &StepCx<'_>) -> Result<Next<Self>, StepError>;

    /// Ends the action at a safe point (cancelled by a person or pre-empted by a containment):
    /// undoes what would be left half-done and says what remains, for the report.
    async fn cancel(self, cx: &StepCx<'_>) -> Result<String, StepError>;
}

/// How a rotation may retire the old key, one of: switch it off, then delete it (an access key);
/// or revoke it (a secret-id, which cannot be switched off).
pub(crate) const RETIRE_ROTATED: &[&[Capability]] = &[
    &[Capability::DeactivateKey, Capability::DeleteKey],
    &[Capability::RevokeKey],
];

/// What each kind needs of its connector, for credentials of the kind it acts on.
pub(crate) fn needs(kind: ActionKind) -> &'static [Capability] {
    use Capability::*;
    match kind {
        // And a way to retire the old key: [`RETIRE_ROTATED`].
        ActionKind::Rotate => &[ReadKeys, ReadLastUse, CreateKey, DeliverKey, VerifyKey],
        ActionKind::Disable => &[ReadKeys, DeactivateKey],
        ActionKind::Delete => &[ReadKeys, DeactivateKey, DeleteKey],
        ActionKind::Quarantine => &[ReadKeys, DeactivateKey, RevokeSessions],
        // The playbook's children check their own needs when they are created.
        ActionKind::Contain => &[ReadKeys],
        ActionKind::Revoke => &[ReadKeys, RevokeKey],
        // Versioned keys are asked of the connector's own steps on them ([`VersionedKeys`]).
        // `rotate_kv` writes through the source's secret store ([`keywarden_connector::SecretStore`]).
        ActionKind::RaiseFinding
        | ActionKind::RevokeTrust
        | ActionKind::RotateVersion
        | ActionKind::RotateKv => &[],
    }
}

pub(crate) fn to_value<S: Serialize>(state: &S) -> Result<serde_json::Value, StepError> {
    // Serializing an enum of strings and times cannot fail; kept as an error all the same.
    serde_json::to_value(state).map_err(|err| StoreError::Corrupt(err.to_string()).into())
}

/// Reads an action's state as its machine. A state written before the machines were typed
/// (a flat object, the step in the `step` column) is read by adding the step as its tag.
pub(crate) fn from_record<S: DeserializeOwned>(record: &ActionRecord) -> Result<S, StoreError> {
    let mut value = record.state.clone();
    if let Some(object) = value.as_object_mut() {
        object
            .entry("step")
            .or_insert_with(|| serde_json::Value::String(record.step.clone()));
    }
    serde_json::from_value(value).map_err(|err| {
        StoreError::Corrupt(format!(
            "action {} ({} at `{}`): {err}",
            record.id, record.kind, record.step
        ))
    })
}

/// A time as the step log shows it (RFC 3339, to the second).
pub(crate) fn when(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// `at + duration`, or the far future where that overflows (a wait that never ends on its own).
pub(crate) fn after(at: DateTime<Utc>, duration: std::time::Duration) -> DateTime<Utc> {
    chrono::TimeDelta::from_std(duration)
        .ok()
        .and_then(|it| at.checked_add_signed(it))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}
