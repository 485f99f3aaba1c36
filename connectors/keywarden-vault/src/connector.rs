//! The `vault` connector: each namespace's mounts discovered, then its entities, tokens, AppRole
//! secret-ids, KV secrets and Transit keys inventoried, one batch per namespace.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use keywarden_connector::{
    Connector, ConnectorError, Identity, Inventory, InventorySink, KeyActions, Known, ScanContext,
    Secret, SecretStore, VersionedKeys,
};
use serde::{Deserialize, Serialize};

use crate::actions::VaultActions;
use crate::audit_file;
use crate::audit_log::{Change, Uses};
use crate::client::Namespace;
use crate::config::VaultConfig;
use crate::facts::Settings;
use crate::holders::Powers;
use crate::last_use::{self, AuditState, Matcher};
use crate::mounts::{self, MountKind};
use crate::{approle, entities, holders, kv, tokens, transit};

/// A configured `vault` source.
#[derive(Debug)]
pub struct VaultConnector {
    source: String,
    namespaces: Arc<Vec<Namespace>>,
    settings: Settings,
    audit: Option<AuditLog>,
    retire_after: std::time::Duration,
    rotation: crate::rotation::RotationConfig,
    full_refresh: std::time::Duration,
}

/// The audit log read for last use, and the client `sys/audit-hash` is asked through (audit
/// devices live in the root namespace).
#[derive(Debug)]
struct AuditLog {
    path: PathBuf,
    device: String,
    root: Namespace,
    changes: bool,
}

/// What the connector keeps between scans.
#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    #[serde(default)]
    audit: AuditState,
    /// When every secret-id was last looked up.
    #[serde(default)]
    full_refresh_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The KV mounts (by identity id) a path of which could not be read last time: read in
    /// full next time, whatever the audit log shows.
    #[serde(default)]
    kv_full: BTreeSet<String>,
    /// Each Transit key (by identity id) as the last scan handed it over.
    #[serde(default)]
    transit: BTreeMap<String, Identity>,
    /// Each token (by accessor) as the last scan found it.
    #[serde(default)]
    tokens: BTreeMap<String, tokens::Found>,
}

/// What one namespace's inventory goes by between full refreshes: the ledger, the KV secrets
/// and Transit keys the audit log shows changed (none: read everything), the tokens that need
/// no lookup, and what the last scan left.
#[derive(Clone, Copy)]
struct Between<'a> {
    known: Option<&'a dyn Known>,
    kv_changed: Option<&'a HashSet<Change>>,
    transit_changed: Option<&'a HashSet<Change>>,
    tokens: Option<&'a tokens::Unchanged<'a>>,
    last: &'a Left,
}

/// What one scan leaves for the next: the KV mounts to read in full, the Transit keys and tokens
/// found.
#[derive(Default)]
struct Left {
    /// The KV mounts (by identity id) a path of which could not be read.
    kv_failed: BTreeSet<String>,
    transit: BTreeMap<String, Identity>,
    tokens: BTreeMap<String, tokens::Found>,
}

impl VaultConnector {
    pub(crate) fn new(
        source: &str,
        config: &VaultConfig,
        login: crate::auth::Login,
        ca_file: Option<PathBuf>,
        audit_log: Option<PathBuf>,
    ) -> Result<Self, ConnectorError> {
        // One token for every namespace's client: logged in once, renewed once.
        let auth = Arc::new(crate::auth::Auth::new(login));
        let client = |namespace: &str| {
            Namespace::new(
                &config.address,
                namespace,
                Arc::clone(&auth),
                ca_file.as_deref(),
                config.timeout,
                config.max_attempts,
            )
        };
        let audit = match (audit_log, &config.audit_log) {
            (Some(path), Some(log)) => Some(AuditLog {
                path,
                device: log.device.trim_end_matches('/').to_owned(),
                root: client("")?,
                changes: log.changes,
            }),
            _ => None,
        };
        let namespaces = config
            .namespaces
            .iter()
            .map(|namespace| client(namespace))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            source: source.to_owned(),
            namespaces: Arc::new(namespaces),
            settings: Settings {
                owner_key: config.owner_key().to_owned(),
                purpose_key: config.purpose_key().to_owned(),
                concurrency: config.concurrency,
            },
            audit,
            retire_after: config.transit_retire_after,
            rotation: config.rotation.clone(),
            full_refresh: config.full_refresh,
        })
    }

    /// One namespace's inventory. An error is the namespace's as a whole (the server down,
    /// keywarden's token refused, a list of a whole kind denied): handing over less would mark
    /// what the ledger knows gone.
    async fn namespace(
        &self,
        namespace: &Namespace,
        between: Between<'_>,
        left: &mut Left,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Inventory, ConnectorError> {
        let known = between.known;
        let mut out = Inventory::default();
        let mut powers = Powers::default();
        let found = mounts::discover(namespace).await?;
        entities::inventory(namespace, &self.settings, &mut out).await?;
        tokens::inventory(
            namespace,
            &self.settings,
            (&mut out, &mut powers),
            between.tokens,
            &mut left.tokens,
        )
        .await?;
        for mount in &found {
            match mount.kind {
                MountKind::AppRole => {
                    approle::inventory(
                        namespace,
                        &mount.path,
                        &self.settings,
                        &mut out,
                        &mut powers,
                        known,
                    )
                    .await?;
                }
                MountKind::Kv { version } => {
                    let id = crate::facts::mount_identity(&namespace.name, &mount.path).external_id;
                    let incremental = known
                        .zip(between.kv_changed)
                        .filter(|_| !between.last.kv_failed.contains(&id));
                    let read = kv::inventory(
                        namespace,
                        &mount.path,
                        version,
                        &self.settings,
                        &mut out,
                        incremental,
                        now,
                    )
                    .await;
                    if !read {
                        left.kv_failed.insert(id);
                    }
                }
                MountKind::Transit => {
                    let unchanged = known.zip(between.transit_changed).map(|(known, changed)| {
                        transit::Unchanged {
                            known,
                            changed,
                            last: &between.last.transit,
                        }
                    });
                    transit::inventory(
                        namespace,
                        &mount.path,
                        &self.settings,
                        (&mut out, &mut powers),
                        unchanged.as_ref(),
                        &mut left.transit,
                    )
                    .await?;
                }
            }
        }
        holders::resolve(namespace, &powers, &self.settings, &mut out).await;
        Ok(out)
    }
}

impl VaultConnector {
    fn actions(&self) -> VaultActions {
        VaultActions {
            namespaces: Arc::clone(&self.namespaces),
            settings: self.settings.clone(),
            retire_after: self.retire_after,
            rotation: self.rotation.clone(),
        }
    }

    /// The uses the audit log shows since the last scan, with `state`'s position moved on; or
    /// none and a scan error (without an identity: last use is unsure, so enforcement waits)
    /// when it cannot be read. The last uses remembered are applied either way.
    async fn read_audit_log(
        &self,
        log: &AuditLog,
        state: &mut AuditState,
    ) -> (Option<Uses>, Option<keywarden_connector::ScanError>) {
        let path = log.path.clone();
        let from = state.position.clone();
        let continued = from.is_some();
        let read = tokio::task::spawn_blocking(move || audit_file::read_new(&path, from)).await;
        let error = |message: String| keywarden_connector::ScanError {
            subject: log.path.display().to_string(),
            message,
            identity: None,
        };
        match read {
            Ok(Ok(read)) => {
                if read.lost_rotated {
                    tracing::warn!(
                        path = %log.path.display(),
                        "The audit log was rotated away before it was read to its end; uses \
                         logged there since the last scan are not seen."
                    );
                }
                if read.uses.unreadable > 0 {
                    tracing::warn!(
                        path = %log.path.display(),
                        lines = read.uses.unreadable,
                        "Lines of the audit log are not audit entries; they are skipped, and \
                         every KV secret's metadata is read again."
                    );
                }
                if read.uses.unmapped > 0 {
                    tracing::warn!(
                        path = %log.path.display(),
                        entries = read.uses.unmapped,
                        "Changes in the audit log name no KV secret or Transit key (no mount: \
                         Vault before 1.14?), or mounts moved; every KV secret's metadata, \
                         Transit key and token is read again."
                    );
                }
                state.position = Some(read.position);
                let mut uses = read.uses;
                // Only a log read whole, each change told to its secret, shows every change.
                uses.complete =
                    continued && !read.lost_rotated && uses.unreadable == 0 && uses.unmapped == 0;
                (Some(uses), None)
            }
            Ok(Err(err)) => (Some(Uses::default()), Some(error(err.to_string()))),
            Err(err) => (
                Some(Uses::default()),
                Some(error(format!("reading it stopped: {err}"))),
            ),
        }
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

    fn key_actions(&self) -> Option<Arc<dyn KeyActions>> {
        Some(Arc::new(self.actions()))
    }

    fn versioned_keys(&self) -> Option<Arc<dyn VersionedKeys>> {
        Some(Arc::new(self.actions()))
    }

    fn secret_store(&self) -> Option<Arc<dyn SecretStore>> {
        Some(Arc::new(crate::deliver::VaultStore {
            namespaces: Arc::clone(&self.namespaces),
        }))
    }

    async fn identify_leaked(&self, value: &Secret) -> Result<Vec<String>, ConnectorError> {
        self.actions().identify(value).await
    }

    async fn inventory(
        &self,
        cx: &ScanContext,
        sink: &mut dyn InventorySink,
    ) -> Result<(), ConnectorError> {
        let mut state: State = match cx.known.state().await? {
            Some(value) => serde_json::from_value(value).unwrap_or_default(),
            None => State::default(),
        };
        let (uses, mut log_error) = match &self.audit {
            Some(log) => self.read_audit_log(log, &mut state.audit).await,
            None => (None, None),
        };
        let mut seen = BTreeSet::new();
        let mut accessors = BTreeSet::new();
        // Between full refreshes only what changed is looked up (secret-ids by their role's
        // list); the first scan and one at least every `full_refresh` look up everything.
        let due = state.full_refresh_at.is_none_or(|at| {
            chrono::TimeDelta::from_std(self.full_refresh)
                .ok()
                .and_then(|it| at.checked_add_signed(it))
                .is_none_or(|next| next <= cx.now)
        });
        let known = (!due).then_some(cx.known.as_ref());
        if due {
            // The accessors' HMACs are asked again at each full refresh: a device made again
            // (a new salt) would otherwise make every token look unused until then.
            state.audit.accessor_hmacs.clear();
        }
        // KV metadata and Transit keys are read again only where the audit log shows a change,
        // and only when it was read without a gap since the last scan.
        let changes = uses
            .as_ref()
            .filter(|it| it.complete && log_error.is_none())
            .filter(|_| self.audit.as_ref().is_some_and(|it| it.changes));
        let last = Left {
            kv_failed: std::mem::take(&mut state.kv_full),
            transit: std::mem::take(&mut state.transit),
            tokens: std::mem::take(&mut state.tokens),
        };
        // A token is looked up again unless the log shows no request made with it and no
        // renewal or revocation of it (matched by its accessor's HMAC, known from earlier scans).
        let hmacs = state.audit.accessor_hmacs.clone();
        let token_changed = |accessor: &str| -> bool {
            let (Some(uses), Some(hmac)) = (changes, hmacs.get(accessor)) else {
                return true;
            };
            let entity_logged_in = last
                .tokens
                .get(accessor)
                .and_then(|it| it.identity.strip_prefix("entity:"))
                .is_some_and(|entity| uses.entities_changed.contains(entity));
            entity_logged_in
                || [hmac.as_str(), accessor]
                    .iter()
                    .any(|it| uses.tokens.contains_key(*it) || uses.tokens_changed.contains(*it))
        };
        let unchanged_tokens = known
            .filter(|_| changes.is_some())
            .map(|known| tokens::Unchanged {
                known,
                last: &last.tokens,
                changed: &token_changed,
            });
        let between = Between {
            known,
            kv_changed: changes.map(|it| &it.kv_changed),
            transit_changed: changes.map(|it| &it.transit_changed),
            tokens: unchanged_tokens.as_ref(),
            last: &last,
        };
        let mut left = Left::default();
        for namespace in self.namespaces.iter() {
            // A namespace whose mounts moved is read in full; one where a change to tokens
            // cannot be told to one has all its tokens looked up.
            let moved = changes.is_some_and(|it| it.mounts_moved.contains(&namespace.name));
            let tokens_unmapped = changes.is_some_and(|it| {
                it.tokens_unmapped
                    .iter()
                    .any(|above| namespace.name.starts_with(above.as_str()))
            });
            let between = Between {
                known: between.known.filter(|_| !moved),
                tokens: between.tokens.filter(|_| !moved && !tokens_unmapped),
                ..between
            };
            let mut out = self
                .namespace(namespace, between, &mut left, cx.now)
                .await
                .map_err(|err| {
                    let label = if namespace.name.is_empty() {
                        "the root namespace".to_owned()
                    } else {
                        format!("namespace `{}`", namespace.name)
                    };
                    prefix(err, &label)
                })?;
            out.errors.extend(log_error.take());
            if let (Some(log), Some(uses)) = (&self.audit, &uses) {
                let matcher = Matcher {
                    root: &log.root,
                    device: &log.device,
                    settings: &self.settings,
                };
                matcher
                    .apply(
                        &namespace.name,
                        uses,
                        &mut state.audit,
                        cx.known.as_ref(),
                        &mut out,
                    )
                    .await?;
            }
            carry_forward(cx, &mut out).await?;
            for it in &out.credentials {
                seen.insert(it.external_id.clone());
                if let Some(accessor) = it.attributes.get("accessor") {
                    accessors.insert(accessor.clone());
                }
            }
            cx.progress.add_total(out.credentials.len() as u64);
            cx.progress.advance(out.credentials.len() as u64);
            sink.batch(out).await?;
        }
        if self.audit.is_some() {
            last_use::prune(&mut state.audit, &seen, &accessors);
        }
        if due {
            state.full_refresh_at = Some(cx.now);
        }
        state.kv_full = left.kv_failed;
        state.transit = left.transit;
        state.tokens = left.tokens;
        let value = serde_json::to_value(&state)
            .map_err(|err| ConnectorError::Permanent(format!("the connector state: {err}")))?;
        sink.save_state(value).await?;
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
