//! The `vault` connector: each namespace's mounts discovered, then its entities, tokens, AppRole
//! secret-ids, KV secrets and Transit keys inventoried, one batch per namespace.

use std::collections::{BTreeSet, HashSet};
use std::path::PathBuf;

use async_trait::async_trait;
use keywarden_connector::{
    Connector, ConnectorError, Inventory, InventorySink, ScanContext, Secret,
};

use crate::client::Namespace;
use crate::config::VaultConfig;
use crate::facts::Settings;
use crate::holders::Powers;
use crate::mounts::{self, MountKind};
use crate::{approle, entities, holders, kv, tokens, transit};

/// A configured `vault` source.
#[derive(Debug)]
pub struct VaultConnector {
    source: String,
    namespaces: Vec<Namespace>,
    settings: Settings,
}

impl VaultConnector {
    pub(crate) fn new(
        source: &str,
        config: &VaultConfig,
        token: Secret,
        ca_file: Option<PathBuf>,
    ) -> Result<Self, ConnectorError> {
        let namespaces = config
            .namespaces
            .iter()
            .map(|namespace| {
                Namespace::new(
                    &config.address,
                    namespace,
                    &token,
                    ca_file.as_deref(),
                    config.timeout,
                    config.max_attempts,
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            source: source.to_owned(),
            namespaces,
            settings: Settings {
                owner_key: config.owner_key().to_owned(),
                purpose_key: config.purpose_key().to_owned(),
                concurrency: config.concurrency,
            },
        })
    }

    /// One namespace's inventory. An error is the namespace's as a whole (the server down,
    /// keywarden's token refused, a list of a whole kind denied): handing over less would mark
    /// what the ledger knows gone.
    async fn namespace(&self, namespace: &Namespace) -> Result<Inventory, ConnectorError> {
        let mut out = Inventory::default();
        let mut powers = Powers::default();
        let found = mounts::discover(namespace).await?;
        entities::inventory(namespace, &self.settings, &mut out).await?;
        tokens::inventory(namespace, &self.settings, &mut out, &mut powers).await?;
        for mount in &found {
            match mount.kind {
                MountKind::AppRole => {
                    approle::inventory(
                        namespace,
                        &mount.path,
                        &self.settings,
                        &mut out,
                        &mut powers,
                    )
                    .await?;
                }
                MountKind::Kv { version } => {
                    kv::inventory(namespace, &mount.path, version, &self.settings, &mut out).await;
                }
                MountKind::Transit => {
                    transit::inventory(
                        namespace,
                        &mount.path,
                        &self.settings,
                        &mut out,
                        &mut powers,
                    )
                    .await?;
                }
            }
        }
        holders::resolve(namespace, &powers, &self.settings, &mut out).await;
        Ok(out)
    }
}

/// Keeps what the ledger knew of each identity whose inventory a failed path left incomplete,
/// so nothing of it is marked gone on the strength of a call that failed.
async fn carry_forward(cx: &ScanContext, out: &mut Inventory) -> Result<(), ConnectorError> {
    let incomplete: BTreeSet<String> = out
        .errors
        .iter()
        .filter_map(|it| it.identity.clone())
        .collect();
    let mut seen: HashSet<String> = out
        .credentials
        .iter()
        .map(|it| it.external_id.clone())
        .collect();
    for identity in incomplete {
        for credential in cx.known.credentials_of(&identity).await? {
            if seen.insert(credential.external_id.clone()) {
                out.credentials.push(credential);
            }
        }
    }
    Ok(())
}

#[async_trait]
impl Connector for VaultConnector {
    fn kind(&self) -> &'static str {
        "vault"
    }

    fn source(&self) -> &str {
        &self.source
    }

    async fn inventory(
        &self,
        cx: &ScanContext,
        sink: &mut dyn InventorySink,
    ) -> Result<(), ConnectorError> {
        for namespace in &self.namespaces {
            let mut out = self.namespace(namespace).await.map_err(|err| {
                let label = if namespace.name.is_empty() {
                    "the root namespace".to_owned()
                } else {
                    format!("namespace `{}`", namespace.name)
                };
                prefix(err, &label)
            })?;
            carry_forward(cx, &mut out).await?;
            cx.progress.add_total(out.credentials.len() as u64);
            cx.progress.advance(out.credentials.len() as u64);
            sink.batch(out).await?;
        }
        Ok(())
    }
}

/// The error with the namespace it happened in.
fn prefix(err: ConnectorError, label: &str) -> ConnectorError {
    match err {
        ConnectorError::Unauthorized(it) => ConnectorError::Unauthorized(format!("{label}: {it}")),
        ConnectorError::NotFound(it) => ConnectorError::NotFound(format!("{label}: {it}")),
        ConnectorError::Retryable {
            message,
            retry_after,
        } => ConnectorError::Retryable {
            message: format!("{label}: {message}"),
            retry_after,
        },
        ConnectorError::Refused(it) => ConnectorError::Refused(format!("{label}: {it}")),
        ConnectorError::Permanent(it) => ConnectorError::Permanent(format!("{label}: {it}")),
        config @ ConnectorError::Config { .. } => config,
    }
}
