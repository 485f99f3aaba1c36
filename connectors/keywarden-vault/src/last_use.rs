//! Last use from Vault's audit log, matched to the inventory of a namespace.
//!
//! - A token: its accessor's HMAC under the audit device (`sys/audit-hash/<device>`, asked once
//!   per accessor and remembered) or the accessor in clear (`hmac_accessor=false`) on a request.
//! - A secret-id: a login to its role with a `secret_id` HMAC. Vault logs no secret-id accessor,
//!   so a login is the secret-id's when it could only have been it — the role had one secret-id
//!   made before the login, in this scan and the ledger's last — and that pairing of HMAC and
//!   secret-id is remembered for later logins. Others are not attributed (nothing is guessed).
//! - A Transit key version: a successful `sign` response names its `key_version`.
//!
//! What the log showed is kept between scans (the log is read incrementally), and the later of
//! it and what Vault itself says (a token's last renewal, a limited-use secret-id's last login)
//! is the credential's last use, with where it came from.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use futures::StreamExt;
use keywarden_connector::{
    ConnectorError, Credential, CredentialKind, Inventory, Known, LastUse, ScanError,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::audit_file::Position;
use crate::audit_log::{HMAC, Uses};
use crate::client::Namespace;
use crate::facts::Settings;
use crate::{approle, transit};

/// Where a last use read from the audit log comes from.
pub const AUDIT_LOG: &str = "vault_audit_log";

/// What the audit log showed, kept between scans. Holds no secret: HMACs, accessors, ids, times.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditState {
    /// Where the last read of the log stopped.
    #[serde(default)]
    pub position: Option<Position>,
    /// A credential's external id → its last use in the log.
    #[serde(default)]
    pub last_used: BTreeMap<String, DateTime<Utc>>,
    /// A token accessor → its HMAC under the audit device.
    #[serde(default)]
    pub accessor_hmacs: BTreeMap<String, String>,
    /// The HMAC of a secret-id → that secret-id's external id.
    #[serde(default)]
    pub secret_id_hmacs: BTreeMap<String, String>,
}

/// The audit device and the root-namespace client `sys/audit-hash` is asked through.
pub struct Matcher<'a> {
    pub root: &'a Namespace,
    pub device: &'a str,
    pub settings: &'a Settings,
}

impl Matcher<'_> {
    /// Records in `state` what `uses` shows of the namespace's credentials in `out`, then sets
    /// each credential's last use from `state`. A failed `sys/audit-hash` is one scan error
    /// (without an identity: last use of every token is then unsure).
    pub async fn apply(
        &self,
        namespace: &str,
        uses: &Uses,
        state: &mut AuditState,
        known: &dyn Known,
        out: &mut Inventory,
    ) -> Result<(), ConnectorError> {
        if let Err(error) = self.tokens(uses, state, out).await {
            out.errors.push(error);
        }
        secret_ids(namespace, uses, state, known, out).await?;
        signatures(namespace, uses, state);
        for credential in &mut out.credentials {
            if let Some(at) = state.last_used.get(&credential.external_id) {
                set_later(credential, *at);
            }
        }
        Ok(())
    }

    async fn tokens(
        &self,
        uses: &Uses,
        state: &mut AuditState,
        out: &Inventory,
    ) -> Result<(), ScanError> {
        let tokens: Vec<(&str, &str)> = out
            .credentials
            .iter()
            .filter(|it| it.kind == CredentialKind::Token)
            .filter_map(|it| {
                it.attributes
                    .get("accessor")
                    .map(|accessor| (it.external_id.as_str(), accessor.as_str()))
            })
            .collect();
        let missing: Vec<String> = tokens
            .iter()
            .filter(|(_, accessor)| !state.accessor_hmacs.contains_key(*accessor))
            .map(|(_, accessor)| (*accessor).to_owned())
            .collect();
        let path = format!("sys/audit-hash/{}", self.device);
        let hashed: Vec<_> = futures::stream::iter(missing)
            .map(|accessor| {
                let path = &path;
                async move {
                    let found = self.root.write(path, &json!({ "input": accessor })).await;
                    (accessor, found)
                }
            })
            .buffer_unordered(self.settings.concurrency)
            .collect()
            .await;
        let mut failed = None;
        for (accessor, found) in hashed {
            match found {
                Ok(data) => match data.get("hash").and_then(serde_json::Value::as_str) {
                    Some(hash) if hash.starts_with(HMAC) => {
                        state.accessor_hmacs.insert(accessor, hash.to_owned());
                    }
                    _ => {
                        failed.get_or_insert_with(|| ScanError {
                            subject: path.clone(),
                            message: "the audit device answered no hmac-sha256 hash".to_owned(),
                            identity: None,
                        });
                    }
                },
                Err(err) => {
                    failed.get_or_insert_with(|| crate::facts::scan_error("", &err, None));
                }
            }
        }
        for (external_id, accessor) in tokens {
            let hmac = state.accessor_hmacs.get(accessor);
            let seen = [hmac.map(String::as_str), Some(accessor)]
                .into_iter()
                .flatten()
                .filter_map(|it| uses.tokens.get(it))
                .max();
            if let Some(at) = seen {
                record(state, external_id, *at);
            }
        }
        failed.map_or(Ok(()), Err)
    }
}

fn record(state: &mut AuditState, external_id: &str, at: DateTime<Utc>) {
    let entry = state.last_used.entry(external_id.to_owned()).or_insert(at);
    if at > *entry {
        *entry = at;
    }
}

/// Sets the credential's last use to `at` from the audit log, unless what it has is later.
fn set_later(credential: &mut Credential, at: DateTime<Utc>) {
    if credential.last_used.at().is_none_or(|it| it < at) {
        credential.last_used = LastUse::At {
            at,
            source: AUDIT_LOG.to_owned(),
        };
    }
}

async fn secret_ids(
    namespace: &str,
    uses: &Uses,
    state: &mut AuditState,
    known: &dyn Known,
    out: &Inventory,
) -> Result<(), ConnectorError> {
    let mut known_of: HashMap<String, Vec<Credential>> = HashMap::new();
    let mut logins: Vec<_> = uses
        .logins
        .iter()
        .filter(|(login, _)| login.namespace == namespace)
        .collect();
    logins.sort();
    for (login, at) in logins {
        if let Some(id) = state.secret_id_hmacs.get(&login.secret_id_hmac).cloned() {
            record(state, &id, *at);
            continue;
        }
        let role = approle::role_id(namespace, &login.mount, &login.role);
        if !known_of.contains_key(&role) {
            known_of.insert(role.clone(), known.credentials_of(&role).await?);
        }
        let mut candidates: BTreeSet<&str> = BTreeSet::new();
        for credential in out
            .credentials
            .iter()
            .chain(known_of.get(&role).into_iter().flatten())
        {
            let before = credential.created_at.is_none_or(|created| created <= *at);
            if credential.kind == CredentialKind::SecretId
                && credential.identity_id == role
                && before
            {
                candidates.insert(&credential.external_id);
            }
        }
        // Only when the login could have been no other secret-id.
        if let (Some(only), 1) = (candidates.first(), candidates.len()) {
            let only = (*only).to_owned();
            state
                .secret_id_hmacs
                .insert(login.secret_id_hmac.clone(), only.clone());
            record(state, &only, *at);
        } else {
            tracing::debug!(
                role = %role,
                candidates = candidates.len(),
                "A login to an AppRole role is not attributed to a secret-id: more than one \
                 could have made it."
            );
        }
    }
    Ok(())
}

fn signatures(namespace: &str, uses: &Uses, state: &mut AuditState) {
    for (signature, at) in &uses.signatures {
        if signature.namespace == namespace {
            let key = transit::key_id(namespace, &signature.mount, &signature.key);
            record(state, &format!("{key}/v{}", signature.version), *at);
        }
    }
}

/// Drops what the state remembers of credentials no longer seen.
pub fn prune(state: &mut AuditState, seen: &BTreeSet<String>, accessors: &BTreeSet<String>) {
    state.last_used.retain(|id, _| seen.contains(id));
    state.secret_id_hmacs.retain(|_, id| seen.contains(id));
    state
        .accessor_hmacs
        .retain(|accessor, _| accessors.contains(accessor));
}
