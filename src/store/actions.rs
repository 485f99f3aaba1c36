//! Actions: their kinds and statuses, records, leases and the step log.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::Result;

keywarden_connector::named_enum! {
    /// What an action does. Each kind is a typed state machine in `crate::actions`.
    ActionKind, "action" {
        /// Replace an access key: create, deliver, verify, overlap, deactivate, grace, delete.
        Rotate = "rotate",
        /// Deactivate one key.
        Disable = "disable",
        /// Deactivate one key, hold, then delete it.
        Delete = "delete",
        /// Deactivate one key and deny the sessions it minted.
        Quarantine = "quarantine",
        /// Containment playbook: ordered children (distrust the signers the credential is or
        /// holds, quarantine or revoke it, then a critical finding).
        Contain = "contain",
        /// Open a finding keywarden raises itself (a child of a playbook); touches no connector.
        RaiseFinding = "raise_finding",
        /// Distrust signers from a point in time (the credential is one, or its identity holds
        /// them); touches no connector.
        RevokeTrust = "revoke_trust",
        /// Revoke a credential for good (a Vault token, a secret-id), and in a containment what
        /// it minted (a secret-id's tokens).
        Revoke = "revoke",
        /// Rotate a versioned signing key (a Vault Transit key): add a version, retire the older
        /// ones after a while, and close their signers' trust from then.
        RotateVersion = "rotate_version",
        /// Rotate a secret whose value keywarden makes (a Vault KV v2 secret): a new value as
        /// the policy's `enforce.generate` says, written check-and-set.
        RotateKv = "rotate_kv",
    }
}

keywarden_connector::named_enum! {
    /// The state of an action.
    ActionStatus, "action status" {
        /// Taking its steps (or interrupted while it did: `actions resume` continues it).
        Running = "running",
        /// Waiting until `next_at` (an overlap, grace or hold period, a child, a retry back-off).
        Waiting = "waiting",
        /// Created by a policy with `approval: required`; nothing is changed before `approve`.
        AwaitingApproval = "awaiting_approval",
        Done = "done",
        /// Ended without changing anything because the policy's condition no longer holds on the
        /// live state; `reason` says what changed.
        Skipped = "skipped",
        /// Not started or not continued because it would be unsafe; `reason` says why.
        Refused = "refused",
        /// Stopped on an error it cannot get past; `reason` says which.
        Failed = "failed",
        /// Stopped by a person (`actions cancel`) or pre-empted by a containment, at a safe point.
        Cancelled = "cancelled",
        /// Its approval was refused (`actions reject`).
        Rejected = "rejected",
    }
}

impl ActionStatus {
    /// Whether the action still has steps to take (and holds its credential's open slot).
    pub fn is_open(self) -> bool {
        matches!(self, Self::Running | Self::Waiting | Self::AwaitingApproval)
    }
}

/// Where a child action sits in its playbook.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ChildOf {
    pub parent: i64,
    /// 0-based place in the playbook's order.
    pub index: u32,
}

/// A new action on one credential.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewAction {
    pub kind: ActionKind,
    pub source: String,
    pub credential_external_id: String,
    pub identity_external_id: String,
    pub origin: String,
    pub step: String,
    pub state: serde_json::Value,
    /// The process that starts it, and so holds its lease.
    pub holder: String,
    /// `Running`, or `AwaitingApproval` for a policy that requires approval.
    pub status: ActionStatus,
    /// The playbook it is a child of.
    pub parent: Option<ChildOf>,
    /// Whether it holds the credential's one open slot (false only for playbook parents).
    pub exclusive: bool,
}

/// How long a process's hold on an action lasts unless renewed: each step renews it, and a
/// heartbeat ([`crate::actions::lease`]) renews it while a step runs. A crashed holder's actions
/// can be taken over this long after its last renewal.
pub const ACTION_LEASE: chrono::TimeDelta = chrono::TimeDelta::seconds(60);

/// A stored action.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ActionRecord {
    pub id: i64,
    pub kind: ActionKind,
    pub source: String,
    pub credential_external_id: String,
    pub identity_external_id: String,
    pub origin: String,
    pub status: ActionStatus,
    pub step: String,
    pub state: serde_json::Value,
    pub reason: Option<String>,
    pub next_at: Option<DateTime<Utc>>,
    /// Who drives it now, and until when (see [`Actions::claim_action`]).
    pub lease_owner: Option<String>,
    pub lease_until: Option<DateTime<Utc>>,
    /// The fencing token: incremented by every successful claim, so a write from a holder whose
    /// lease was taken over names an old token and is refused.
    pub lease_token: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The playbook it is a child of.
    pub parent: Option<ChildOf>,
    /// How often it was retried after failing or being refused.
    pub attempts: u32,
}

/// One step an action entered.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ActionStep {
    pub at: DateTime<Utc>,
    pub step: String,
    pub status: ActionStatus,
    pub detail: Option<String>,
}

/// A change of an action's step, written before the step is taken.
#[derive(Clone, Debug, PartialEq)]
pub struct ActionUpdate {
    pub step: String,
    pub status: ActionStatus,
    pub state: serde_json::Value,
    pub reason: Option<String>,
    pub next_at: Option<DateTime<Utc>>,
    /// A line for the step log (never a secret).
    pub detail: Option<String>,
    /// The process making the change; it must hold the action's lease ...
    pub holder: String,
    /// ... under this fencing token (the one its claim returned).
    pub token: i64,
}

/// Actions as the engine drives them: created, claimed under a lease, moved step by step.
/// Every change writes its audit event in the same transaction.
#[async_trait]
pub trait Actions: Send + Sync {
    /// Starts an action; `Conflict` if the credential already has an unfinished one.
    async fn create_action(&self, action: &NewAction, at: DateTime<Utc>) -> Result<ActionRecord>;

    /// Takes the lease of an unfinished action for `holder` (until [`Actions::action_lease`] from
    /// `at`): granted when nobody holds it, `holder` already does, or the lease ran out;
    /// `Conflict` otherwise. Every grant increments the action's fencing token
    /// ([`ActionRecord::lease_token`]), which the holder names in each update. A finished action
    /// is returned as it is.
    async fn claim_action(&self, id: i64, holder: &str, at: DateTime<Utc>) -> Result<ActionRecord>;

    /// Moves an action to a new step (and logs it), in one transaction with its audit event.
    /// `Conflict` if the action is finished, or if `update.holder` does not hold its lease under
    /// `update.token` (it was taken over: the late write is refused); the lease is renewed, and
    /// released when the action finishes.
    async fn update_action(
        &self,
        id: i64,
        update: &ActionUpdate,
        at: DateTime<Utc>,
    ) -> Result<ActionRecord>;

    /// Extends the lease `holder` holds under `token` to [`Actions::action_lease`] from `at` (the
    /// heartbeat while a step runs) and returns its new end. `Conflict` if the lease was taken
    /// over or the action finished; a lease that ran out but was not taken over is renewed.
    async fn renew_lease(
        &self,
        id: i64,
        holder: &str,
        token: i64,
        at: DateTime<Utc>,
    ) -> Result<DateTime<Utc>>;

    /// Gives up the lease `holder` holds under `token` (a process that stops driving an open
    /// action), so another may claim it at once. Nothing happens if it no longer holds it.
    async fn release_lease(&self, id: i64, holder: &str, token: i64) -> Result<()>;

    /// How long a lease lasts unless renewed.
    fn action_lease(&self) -> chrono::TimeDelta {
        ACTION_LEASE
    }

    /// One action.
    async fn action(&self, id: i64) -> Result<ActionRecord>;

    /// Actions, newest first; optionally only the unfinished ones.
    async fn actions(&self, open_only: bool) -> Result<Vec<ActionRecord>>;

    /// Every action on one credential, newest first.
    async fn credential_actions(
        &self,
        source: &str,
        credential_external_id: &str,
    ) -> Result<Vec<ActionRecord>>;

    /// The step log of one action, oldest first.
    async fn action_steps(&self, id: i64) -> Result<Vec<ActionStep>>;
}
