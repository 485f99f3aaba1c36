//! Secret stores other sources deliver new credentials into (Vault KV v2): a rotation of an AWS
//! access key can write its new key into Vault, so its consumers read it where they read the
//! rest of their secrets.
//!
//! A source that can be such a store offers a [`SecretStore`] ([`crate::Connector::secret_store`]);
//! the daemon collects them, once every source is built, into the [`SecretStores`] it hands to the
//! sources that deliver, which look the store up by source name when they deliver.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;

use crate::{ConnectorError, Secret};

/// Where in a secret store a secret lives: a KV v2 secret `path` under `mount` in `namespace`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretPath {
    /// `""` (the root) or `team-a/`.
    pub namespace: String,
    /// The KV v2 mount, with its trailing slash (`secret/`).
    pub mount: String,
    /// The secret's path in the mount (`ci/deploy/aws`).
    pub path: String,
}

impl fmt::Display for SecretPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}{}", self.namespace, self.mount, self.path)
    }
}

/// Why a delivery rule's KV `mount` and `path` template are unusable, by field (`mount`,
/// `path`): the mount must end with `/`; the path must hold `required` (so identities do not
/// share one secret), no placeholder but `allowed`, and no `.`, `..` or `//` segment.
pub fn template_problems(
    mount: &str,
    path: &str,
    required: &str,
    allowed: &[&str],
) -> Vec<(&'static str, String)> {
    let mut problems = Vec::new();
    if !mount.ends_with('/') || mount.trim_matches('/').is_empty() {
        problems.push((
            "mount",
            "must name a mount and end with `/` (`secret/`)".to_owned(),
        ));
    }
    let rest = allowed
        .iter()
        .fold(path.to_owned(), |rest, it| rest.replace(it, ""));
    let trimmed = path.trim_matches('/');
    if !path.contains(required) {
        problems.push((
            "path",
            format!("must hold {required}: identities sharing one secret would get each other's"),
        ));
    } else if rest.contains(['{', '}']) {
        problems.push((
            "path",
            format!("has a placeholder other than {}", allowed.join(" and ")),
        ));
    } else if trimmed
        .split('/')
        .any(|it| it.is_empty() || it == "." || it == "..")
    {
        problems.push((
            "path",
            "must be a secret path without `.`, `..` or `//`".to_owned(),
        ));
    }
    problems
}

/// A secret's fields as a store holds them (each value a [`Secret`]).
pub type SecretFields = BTreeMap<String, Secret>;

/// A secret's current version and its text fields (fields of other JSON types are left out:
/// [`SecretStore::set_field`] keeps them as they are).
#[derive(Debug)]
pub struct Stored {
    pub version: u64,
    /// When the current version was written, as the store says.
    pub created_at: Option<chrono::DateTime<chrono::Utc>>,
    pub fields: SecretFields,
}

/// A secret store that takes deliveries: single, idempotent reads and writes.
#[async_trait]
pub trait SecretStore: Send + Sync + fmt::Debug {
    /// The secret's current version and its fields; `None` where there is no secret, or its
    /// current version is deleted or destroyed.
    async fn read(&self, at: &SecretPath) -> Result<Option<Stored>, ConnectorError>;

    /// Writes `fields` as the secret's new version, check-and-set on `cas` (0: only if there is
    /// none), or where `None` on the version it is at when the write starts, so a write that
    /// raced another fails (`Retryable`) instead of overwriting it. Returns the version written.
    async fn write(
        &self,
        at: &SecretPath,
        fields: &SecretFields,
        cas: Option<u64>,
    ) -> Result<u64, ConnectorError>;

    /// Writes a new version that differs from version `cas` only in `field` (set to `value`):
    /// every other field, of whatever type, is kept as the store holds it. Check-and-set on
    /// `cas`, as [`Self::write`]. Returns the version written.
    async fn set_field(
        &self,
        at: &SecretPath,
        field: &str,
        value: &Secret,
        cas: u64,
    ) -> Result<u64, ConnectorError>;
}

/// The secret stores of the configured sources, by source name: filled once, after every source
/// is built (so the order of sources in the config does not matter).
#[derive(Clone, Default)]
pub struct SecretStores(Arc<OnceLock<BTreeMap<String, Arc<dyn SecretStore>>>>);

impl fmt::Debug for SecretStores {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&String> = self
            .0
            .get()
            .map(|it| it.keys().collect())
            .unwrap_or_default();
        f.debug_tuple("SecretStores").field(&names).finish()
    }
}

impl SecretStores {
    /// Sets the stores; a second call changes nothing (and says so).
    pub fn set(&self, stores: BTreeMap<String, Arc<dyn SecretStore>>) -> bool {
        self.0.set(stores).is_ok()
    }

    /// The store of source `source`.
    pub fn get(&self, source: &str) -> Result<Arc<dyn SecretStore>, ConnectorError> {
        self.0
            .get()
            .and_then(|it| it.get(source))
            .cloned()
            .ok_or_else(|| ConnectorError::Config {
                field: "source".to_owned(),
                message: format!("`{source}` is no configured source that takes deliveries"),
            })
    }
}
