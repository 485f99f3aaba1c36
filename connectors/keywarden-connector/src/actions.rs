//! What a connector offers to the daemon's action state machines (rotate, disable, delete,
//! quarantine).
//!
//! Every operation is idempotent: asked twice, it does the thing once (deleting a key that is
//! already gone succeeds). The state machines that sequence them, persist each step before it is
//! taken and resume after a crash live in the daemon; connectors only do single steps.

use std::fmt;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::{ConnectorError, CredentialKind, LastUse, Secret, named_enum};

named_enum! {
    /// One kind of single step a connector can take on a credential. A connector says which it
    /// offers per credential kind ([`KeyActions::capabilities`]); each action kind of the daemon
    /// names the ones it needs and is refused, naming what is missing, where one is not offered.
    Capability, "capability" {
        /// Read the keys an identity holds now, with their state ([`KeyActions::keys`]).
        ReadKeys = "read_keys",
        /// Read a key's last use as the source knows it now ([`KeyActions::last_used`]).
        ReadLastUse = "read_last_use",
        /// Create a new key ([`KeyActions::create_key`]).
        CreateKey = "create_key",
        /// Deliver a new key to its consumer and read it back ([`KeyActions::deliver`],
        /// [`KeyActions::delivered`]).
        DeliverKey = "deliver_key",
        /// Prove a delivered key works with the key itself ([`KeyActions::verify`]).
        VerifyKey = "verify_key",
        /// Switch a key off, and back on ([`KeyActions::set_active`]).
        DeactivateKey = "deactivate_key",
        /// Delete a key ([`KeyActions::delete_key`]).
        DeleteKey = "delete_key",
        /// Cut off the sessions an identity's keys minted before a time
        /// ([`KeyActions::deny_sessions_before`]).
        RevokeSessions = "revoke_sessions",
        /// Revoke a credential for good: it cannot be switched back on (a Vault token revoked
        /// by its accessor, a secret-id destroyed) ([`KeyActions::revoke`]).
        RevokeKey = "revoke_key",
        /// Revoke what a credential minted (the tokens of a secret-id's logins)
        /// ([`KeyActions::revoke_minted`]).
        RevokeMinted = "revoke_minted",
    }
}

/// One key of an identity, as the source reports it now.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HeldKey {
    pub id: String,
    pub active: bool,
    pub created_at: Option<DateTime<Utc>>,
}

/// An identity and every key it holds now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyHolder {
    /// The identity's external id (for AWS, the user's ARN).
    pub identity_id: String,
    /// Its name (the IAM user name).
    pub name: String,
    pub keys: Vec<HeldKey>,
}

/// A freshly created key. The secret lives only in memory until it is delivered.
#[derive(Debug)]
pub struct NewKey {
    pub id: String,
    pub secret: Secret,
}

/// Single, idempotent steps on the keys of one source.
#[async_trait]
pub trait KeyActions: Send + Sync + fmt::Debug {
    /// The steps this source can take on credentials of `kind` (none: it takes no action on them).
    fn capabilities(&self, kind: CredentialKind) -> &'static [Capability];

    /// The keys an identity holds now.
    async fn keys(&self, identity_id: &str) -> Result<KeyHolder, ConnectorError>;

    /// Where a new key of this identity is delivered (a description safe to log), or a `Config`
    /// error saying why there is no destination.
    fn destination(&self, identity_id: &str) -> Result<String, ConnectorError>;

    /// Creates a new active key to replace `replacing` (the source copies what it should of it:
    /// a secret-id's metadata). `attempt` names the rotation, the same on each of its attempts:
    /// a source that marks what it creates marks it with this, so an interrupted attempt's
    /// orphan is never confused with a key another rotation made.
    async fn create_key(
        &self,
        identity_id: &str,
        replacing: &str,
        attempt: &str,
    ) -> Result<NewKey, ConnectorError>;

    /// Hands a new key to the identity's destination, replacing the key held there. `token`
    /// identifies this delivery: delivering again with the same token changes nothing.
    async fn deliver(
        &self,
        identity_id: &str,
        key: &NewKey,
        token: &str,
    ) -> Result<(), ConnectorError>;

    /// The key the identity's destination holds now, if any.
    async fn delivered(&self, identity_id: &str) -> Result<Option<NewKey>, ConnectorError>;

    /// The id of the key the identity's destination holds now, if any (the secret is read and
    /// dropped at once).
    async fn delivered_id(&self, identity_id: &str) -> Result<Option<String>, ConnectorError> {
        Ok(self.delivered(identity_id).await?.map(|it| it.id.clone()))
    }

    /// Proves that `key` authenticates as the identity, using the key itself.
    async fn verify(&self, identity_id: &str, key: &NewKey) -> Result<(), ConnectorError>;

    /// When the key was last used, as the source knows it now.
    async fn last_used(&self, identity_id: &str, key_id: &str) -> Result<LastUse, ConnectorError>;

    /// Activates or deactivates one key.
    async fn set_active(
        &self,
        identity_id: &str,
        key_id: &str,
        active: bool,
    ) -> Result<(), ConnectorError>;

    /// How long a rotation keeps both keys, waits for last-use data and keeps the old key
    /// deactivated before deleting it.
    fn rotation_timing(&self) -> RotationTiming;

    /// Deletes one key; a key that no longer exists counts as deleted.
    async fn delete_key(&self, identity_id: &str, key_id: &str) -> Result<(), ConnectorError>;

    /// Denies everything to sessions of the identity issued before `before` (temporary
    /// credentials minted from a leaked key), acting with keywarden's own identity. Returns the
    /// name of the policy it attached.
    async fn deny_sessions_before(
        &self,
        identity_id: &str,
        before: DateTime<Utc>,
    ) -> Result<String, ConnectorError>;

    /// The names of the deny policies attached to the identity by [`Self::deny_sessions_before`].
    async fn session_denials(&self, identity_id: &str) -> Result<Vec<String>, ConnectorError>;

    /// One key of the identity as the source reports it now (`None`: it no longer exists).
    /// Sources that can look one key up without listing the identity's others do.
    async fn key(
        &self,
        identity_id: &str,
        key_id: &str,
    ) -> Result<Option<HeldKey>, ConnectorError> {
        Ok(self
            .keys(identity_id)
            .await?
            .keys
            .into_iter()
            .find(|it| it.id == key_id))
    }

    /// Revokes one credential for good; one that no longer exists counts as revoked.
    async fn revoke(&self, identity_id: &str, key_id: &str) -> Result<(), ConnectorError> {
        let _ = (identity_id, key_id);
        Err(ConnectorError::Refused(
            "this source revokes no credential".to_owned(),
        ))
    }

    /// Revokes what the credential minted (the tokens of a secret-id's logins) from `since` on,
    /// and before `until` where given (a rotation: what the new credential may have minted is
    /// kept); returns what it revoked, in words safe to log.
    async fn revoke_minted(
        &self,
        identity_id: &str,
        key_id: &str,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
    ) -> Result<Vec<String>, ConnectorError> {
        let _ = (identity_id, key_id, since, until);
        Err(ConnectorError::Refused(
            "this source revokes nothing a credential minted".to_owned(),
        ))
    }
}

/// The waits of a rotation, from the source's configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RotationTiming {
    /// Both keys stay active this long after delivery, unless the old key's last use, read at
    /// least `last_use_settle` after delivery, predates the delivery.
    pub overlap: std::time::Duration,
    pub last_use_settle: std::time::Duration,
    /// The old key stays deactivated this long before it is deleted.
    pub grace: std::time::Duration,
}

/// The versions of a versioned signing key (a Vault Transit key), as its source shows them now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyVersions {
    pub latest: u64,
    /// The oldest version still accepted (Vault's `min_decryption_version`).
    pub min_decryption: u64,
    /// The oldest version that may still sign (`min_encryption_version`; 0: any).
    pub min_encryption: u64,
    /// It signs and decrypts nothing (retiring its versions loses no data).
    pub signing_only: bool,
}

/// Single, idempotent steps on a versioned signing key (a Vault Transit key): the daemon's
/// version rotation sequences them (add a version, wait, retire the older ones).
#[async_trait]
pub trait VersionedKeys: Send + Sync + fmt::Debug {
    /// The key's versions now.
    async fn versions(&self, identity_id: &str) -> Result<KeyVersions, ConnectorError>;

    /// Adds a version, which becomes the one that signs; returns the versions after.
    async fn add_version(&self, identity_id: &str) -> Result<KeyVersions, ConnectorError>;

    /// Makes the source refuse every version below `version` (to sign and to verify).
    async fn retire_below(&self, identity_id: &str, version: u64) -> Result<(), ConnectorError>;

    /// How long the versions before a new one stay accepted after it was added.
    fn retire_after(&self) -> std::time::Duration;
}
