//! The connector contract shared by keywarden and its connectors.
//!
//! A *connector* inventories one configured *source* (a directory of keys, an AWS account, a Vault
//! mount) and reports its *identities* and their *credentials*.
//! This crate holds that model, the [`Connector`] trait, the error types a connector returns and the
//! [`Secret`] type every secret value must live in.
//!
//! Architecture invariant: this crate does no I/O and knows nothing of the daemon, SQL or HTTP.

mod actions;
mod destination;
pub mod duration;
mod model;
mod secret;

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;

pub use crate::actions::{
    Capability, HeldKey, KeyActions, KeyHolder, KeyVersions, NewKey, RotationTiming, VersionedKeys,
};
pub use crate::destination::{
    SecretFields, SecretPath, SecretStore, SecretStores, Stored, template_problems,
};
pub use crate::model::{
    CreatedSource, Credential, CredentialKind, CredentialStatus, Fingerprint, Identity,
    IdentityKind, Inventory, LastUse, ParseKindError, ScanError, SkipReason, Skipped,
};
pub use crate::secret::Secret;

/// A configured connector instance, ready to inventory its source.
///
/// Connectors are used as trait objects (`Arc<dyn Connector>`), so the trait stays object-safe.
#[async_trait]
pub trait Connector: Send + Sync + fmt::Debug {
    /// The snake_case kind name, the same string as the config `type` (`files`, `aws_iam`, ...).
    fn kind(&self) -> &'static str;

    /// The configured source name (`release-keys`, `aws-prod`).
    fn source(&self) -> &str;

    /// The parts this source is inventoried and reported in, each as its own scope (the accounts
    /// of an AWS organization). Empty, the default, means the source is one scope. Each part is
    /// inventoried with [`ScanContext::partition`] set to it and recorded in the ledger as the
    /// source `<source>/<part>`, so one failing part leaves the others' ledger entries alone.
    async fn partitions(&self, _cx: &ScanContext) -> Result<Vec<String>, ConnectorError> {
        Ok(Vec::new())
    }

    /// Inventories the whole source, handing what it finds to `sink` in batches.
    ///
    /// Batches keep memory bounded on large sources: a connector should not hold more than a few
    /// thousand credentials before passing them on. An identity is passed in the same batch as,
    /// or an earlier batch than, the credentials that refer to it.
    ///
    /// One bad record (an unreadable file, a user whose keys cannot be listed) is reported in
    /// [`Inventory::errors`] and the scan goes on; an `Err` means the source as a whole could not
    /// be inventoried and nothing may be concluded from what is missing (the ledger keeps what the
    /// batches showed but marks nothing gone). An error from the sink must be returned as it is.
    async fn inventory(
        &self,
        cx: &ScanContext,
        sink: &mut dyn InventorySink,
    ) -> Result<(), ConnectorError>;

    /// Which of this source's credentials a leaked plaintext value is, asked of the source
    /// itself (a Vault token or AppRole secret-id looked up): their external ids. The value is
    /// never kept, logged or put in an error. Sources that cannot tell say none.
    async fn identify_leaked(&self, _value: &Secret) -> Result<Vec<String>, ConnectorError> {
        Ok(Vec::new())
    }

    /// The steps on versioned signing keys (Vault Transit keys) this source supports, if any.
    fn versioned_keys(&self) -> Option<Arc<dyn VersionedKeys>> {
        None
    }

    /// The secret store this source is, for other sources' deliveries (Vault KV v2), if any.
    fn secret_store(&self) -> Option<Arc<dyn SecretStore>> {
        None
    }

    /// The key actions (rotate, disable, delete, quarantine) this source supports, if any.
    fn key_actions(&self) -> Option<Arc<dyn KeyActions>> {
        None
    }
}

/// Where a connector hands its inventory, batch by batch.
#[async_trait]
pub trait InventorySink: Send {
    /// Takes one batch. An error means the receiver cannot go on; the connector stops and
    /// returns it.
    async fn batch(&mut self, batch: Inventory) -> Result<(), ConnectorError>;

    /// Keeps connector-owned state (what an incremental scan needs next time, e.g. when the last
    /// full refresh happened). It is saved only if the inventory completes, and handed back in
    /// [`Known::state`] on the next scan of the same source. It must never hold a secret.
    async fn save_state(&mut self, _state: serde_json::Value) -> Result<(), ConnectorError> {
        Ok(())
    }
}

/// Collecting into an [`Inventory`] keeps every batch in memory: for tests and small sources.
#[async_trait]
impl InventorySink for Inventory {
    async fn batch(&mut self, batch: Inventory) -> Result<(), ConnectorError> {
        self.identities.extend(batch.identities);
        self.credentials.extend(batch.credentials);
        self.errors.extend(batch.errors);
        self.skipped.extend(batch.skipped);
        Ok(())
    }
}

/// Runs a connector's inventory and collects every batch into one [`Inventory`].
pub async fn collect(
    connector: &dyn Connector,
    cx: &ScanContext,
) -> Result<Inventory, ConnectorError> {
    let mut inventory = Inventory::default();
    connector.inventory(cx, &mut inventory).await?;
    Ok(inventory)
}

/// What a connector is told about the scan it runs in.
#[derive(Clone, Debug)]
pub struct ScanContext {
    /// The time the scan started; connectors use it instead of reading the clock.
    pub now: chrono::DateTime<chrono::Utc>,
    /// Where to report progress on long scans.
    pub progress: Arc<dyn Progress>,
    /// The part of the source to inventory, one of [`Connector::partitions`]; `None` for the
    /// whole source.
    pub partition: Option<String>,
    /// What the ledger already holds for this source (and partition), for incremental scans.
    pub known: Arc<dyn Known>,
}

impl ScanContext {
    /// A context that reports progress nowhere, for the whole source, with nothing known.
    pub fn new(now: chrono::DateTime<chrono::Utc>) -> Self {
        Self {
            now,
            progress: Arc::new(NoProgress),
            partition: None,
            known: Arc::new(NothingKnown),
        }
    }
}

/// What the ledger already holds for the source being inventoried.
///
/// A connector may use it to skip calls whose answer it can show has not changed (an IAM user
/// whose key slots are as the ledger last saw them); it must still hand every credential it
/// found, changed or not, to the sink.
#[async_trait]
pub trait Known: Send + Sync + fmt::Debug {
    /// The credentials of one identity the ledger holds as present (not gone).
    async fn credentials_of(&self, identity_id: &str) -> Result<Vec<Credential>, ConnectorError>;

    /// The state saved by the last completed inventory ([`InventorySink::save_state`]).
    async fn state(&self) -> Result<Option<serde_json::Value>, ConnectorError>;
}

/// Knows nothing: every scan is a first scan.
#[derive(Debug, Default, Clone, Copy)]
pub struct NothingKnown;

#[async_trait]
impl Known for NothingKnown {
    async fn credentials_of(&self, _identity_id: &str) -> Result<Vec<Credential>, ConnectorError> {
        Ok(Vec::new())
    }

    async fn state(&self) -> Result<Option<serde_json::Value>, ConnectorError> {
        Ok(None)
    }
}

/// Progress reporting for long scans.
pub trait Progress: Send + Sync + fmt::Debug {
    /// Adds `n` to the number of items the connector expects to look at.
    fn add_total(&self, n: u64);
    /// Marks `n` more items as done.
    fn advance(&self, n: u64);
}

/// A [`Progress`] that reports nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn add_total(&self, _n: u64) {}
    fn advance(&self, _n: u64) {}
}

/// Why a whole source could not be inventoried (or an action could not be taken), shaped by what the
/// caller does about it.
#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    /// The configuration of the source is wrong; retrying will not help.
    #[error("invalid configuration for field `{field}`: {message}")]
    Config { field: String, message: String },
    /// The source refused keywarden's identity.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// The thing asked for does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// A passing failure (network, throttling, unavailable); retry with backoff.
    #[error("temporarily unavailable: {message}")]
    Retryable {
        message: String,
        /// What the peer asked for in `Retry-After`, if anything.
        retry_after: Option<std::time::Duration>,
    },
    /// The source refuses the change because of its own state or limits (a quota reached, a
    /// conflicting state); retrying will not help until that changes.
    #[error("refused: {0}")]
    Refused(String),
    /// Anything else that retrying will not fix.
    #[error("{0}")]
    Permanent(String),
}

/// One invalid field of a connector's configuration, found by its pure `validate()`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    /// The path of the field within the source's config, e.g. `paths[1].glob`.
    pub field: String,
    /// What is wrong with it and what was expected.
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl From<FieldError> for ConnectorError {
    fn from(error: FieldError) -> Self {
        Self::Config {
            field: error.field,
            message: error.message,
        }
    }
}

impl ConnectorError {
    /// Whether the caller should retry later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Retryable { .. })
    }
}
