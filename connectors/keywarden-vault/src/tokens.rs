//! Token accessors: every service token of a namespace, looked up by its accessor (the token
//! itself is never seen). Batch tokens have no accessor and are not listed by Vault.

use std::collections::{BTreeMap, BTreeSet};

use futures::StreamExt;
use keywarden_connector::{
    Credential, CredentialKind, CredentialStatus, Identity, Inventory, Known, LastUse,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::client::{Namespace, VaultError};
use crate::facts::{self, Settings, rfc3339, string_map, text, unix};
use crate::holders::Powers;

/// Where a token's last renewal comes from.
pub const LAST_RENEWAL: &str = "vault_token_last_renewal";

/// What the last scan found of a token, for the next one: its identity (where the ledger holds
/// it) and its policies (for the holders of signers).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Found {
    pub identity: String,
    pub policies: BTreeSet<String>,
}

/// What an incremental scan knows of the tokens: the ledger, each token as the last scan found
/// it, and which of them may have changed since (used, renewed or revoked by accessor).
pub struct Unchanged<'a> {
    pub known: &'a dyn Known,
    pub last: &'a BTreeMap<String, Found>,
    pub changed: &'a (dyn Fn(&str) -> bool + Sync),
}

/// Every token accessor of the namespace with its lookup. A failure is the namespace's: a token
/// not looked up has no known identity whose ledger entries could be kept instead. With
/// `unchanged`, a listed token the last scan found and that has not changed since is handed
/// over as the ledger has it, not looked up. `found` gets each token handed over.
pub async fn inventory(
    namespace: &Namespace,
    settings: &Settings,
    (out, powers): (&mut Inventory, &mut Powers),
    unchanged: Option<&Unchanged<'_>>,
    found: &mut BTreeMap<String, Found>,
) -> Result<(), VaultError> {
    let listed = namespace.list("auth/token/accessors").await?;
    let mut mounts: BTreeMap<String, Identity> = BTreeMap::new();
    let accessors = match unchanged {
        Some(unchanged) => {
            let (kept, rest) = kept(unchanged, listed).await;
            for (accessor, mut credential, was) in kept {
                // Signing power is resolved again (a policy may have lost it).
                credential.signs_with.clear();
                powers
                    .grants
                    .push((credential.external_id.clone(), was.policies.clone()));
                if !credential.identity_id.starts_with("entity:") {
                    let path = credential
                        .attributes
                        .get("path")
                        .map_or("auth/token/", String::as_str);
                    mounts
                        .entry(credential.identity_id.clone())
                        .or_insert_with(|| facts::mount_identity(&namespace.name, path));
                }
                found.insert(accessor, was);
                out.credentials.push(credential);
            }
            rest
        }
        None => listed,
    };
    let lookups: Vec<_> = futures::stream::iter(accessors)
        .map(|accessor| async move {
            let found = namespace
                .write(
                    "auth/token/lookup-accessor",
                    &json!({ "accessor": accessor }),
                )
                .await;
            (accessor, found)
        })
        .buffer_unordered(settings.concurrency)
        .collect()
        .await;
    for (accessor, looked_up) in lookups {
        match looked_up {
            Ok(data) => {
                let credential = token(&namespace.name, &accessor, &data, settings);
                let policies = policies(&data);
                found.insert(
                    accessor.clone(),
                    Found {
                        identity: credential.identity_id.clone(),
                        policies: policies.clone(),
                    },
                );
                powers
                    .grants
                    .push((credential.external_id.clone(), policies));
                if !credential.identity_id.starts_with("entity:") {
                    let path = data
                        .get("path")
                        .and_then(Value::as_str)
                        .unwrap_or("auth/token/");
                    mounts
                        .entry(credential.identity_id.clone())
                        .or_insert_with(|| facts::mount_identity(&namespace.name, path));
                }
                out.credentials.push(credential);
            }
            // A token revoked or expired between the list and the lookup is simply gone.
            Err(VaultError::Permanent { message, .. }) if message.contains("invalid accessor") => {}
            Err(err) => return Err(err),
        }
    }
    out.identities.extend(mounts.into_values());
    Ok(())
}

/// The listed tokens that need no lookup (with their ledger entry and what the last scan found),
/// and the rest. A token is looked up when the last scan did not find it, it may have changed,
/// or the ledger does not hold it (or cannot be read).
async fn kept(
    unchanged: &Unchanged<'_>,
    listed: Vec<String>,
) -> (Vec<(String, Credential, Found)>, Vec<String>) {
    let mut candidates: BTreeMap<String, Found> = BTreeMap::new();
    let mut rest = Vec::new();
    for accessor in listed {
        match unchanged.last.get(&accessor) {
            Some(was) if !(unchanged.changed)(&accessor) => {
                candidates.insert(accessor, was.clone());
            }
            _ => rest.push(accessor),
        }
    }
    let identities: BTreeSet<&str> = candidates.values().map(|it| it.identity.as_str()).collect();
    let mut held: BTreeMap<String, Credential> = BTreeMap::new();
    for identity in identities {
        let Ok(credentials) = unchanged.known.credentials_of(identity).await else {
            continue;
        };
        for credential in credentials {
            if credential.kind != CredentialKind::Token {
                continue;
            }
            if let Some(accessor) = credential.attributes.get("accessor") {
                held.insert(accessor.clone(), credential);
            }
        }
    }
    let mut kept = Vec::with_capacity(candidates.len());
    for (accessor, was) in candidates {
        match held.remove(&accessor) {
            Some(credential) => kept.push((accessor, credential, was)),
            None => rest.push(accessor),
        }
    }
    (kept, rest)
}

/// A token's policies: its own and its entity's.
fn policies(data: &Value) -> BTreeSet<String> {
    ["policies", "identity_policies"]
        .iter()
        .filter_map(|field| data.get(*field).and_then(Value::as_array))
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect()
}

/// The credential of one token lookup.
fn token(namespace: &str, accessor: &str, data: &Value, settings: &Settings) -> Credential {
    let meta = string_map(data.get("meta"));
    let (owner, purpose) = settings.owner_purpose(&meta);
    let entity = data
        .get("entity_id")
        .and_then(Value::as_str)
        .filter(|it| !it.is_empty());
    let path = data
        .get("path")
        .and_then(Value::as_str)
        .unwrap_or("auth/token/");
    let identity_id = match entity {
        Some(id) => format!("entity:{id}"),
        None => format!("{namespace}{path}"),
    };
    let last_used = match unix(data.get("last_renewal_time")) {
        Some(at) => LastUse::At {
            at,
            source: LAST_RENEWAL.to_owned(),
        },
        None => LastUse::Unknown,
    };
    let mut attributes = BTreeMap::new();
    for field in [
        "display_name",
        "policies",
        "identity_policies",
        "path",
        "type",
        "orphan",
        // Not `ttl`: the time left, different at every lookup (`expire_time` is the fact).
        "creation_ttl",
        "explicit_max_ttl",
        "period",
        "num_uses",
        "renewable",
        "entity_id",
    ] {
        if let Some(value) = text(data.get(field)).filter(|it| !it.is_empty()) {
            attributes.insert(field.to_owned(), value);
        }
    }
    if let Some(role) = meta.get("role_name") {
        attributes.insert("role".to_owned(), role.clone());
    }
    attributes.insert("accessor".to_owned(), accessor.to_owned());
    attributes.insert("namespace".to_owned(), namespace.to_owned());
    Credential {
        external_id: format!("{namespace}token/{accessor}"),
        identity_id,
        kind: CredentialKind::Token,
        name: text(data.get("display_name"))
            .filter(|it| !it.is_empty())
            .unwrap_or_else(|| accessor.to_owned()),
        status: CredentialStatus::Active,
        created_at: unix(data.get("creation_time")),
        not_before: None,
        expires_at: rfc3339(data.get("expire_time")),
        last_used,
        algorithm: None,
        key_bits: None,
        fingerprints: Vec::new(),
        public_key: None,
        owner,
        purpose,
        tags: meta,
        attributes,
        signs_with: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings {
            owner_key: "owner".to_owned(),
            purpose_key: "purpose".to_owned(),
            concurrency: 1,
        }
    }

    #[test]
    fn a_token_lookup_becomes_its_credential() {
        let data = json!({
            "accessor": "acc1", "creation_time": 1_796_032_800, "display_name": "approle",
            "entity_id": "e-1", "expire_time": "2026-12-30T10:00:00Z", "id": "",
            "meta": {"role_name": "ci", "owner": "team-a"}, "path": "auth/approle/login",
            "policies": ["default", "sign"], "type": "service", "orphan": true,
            "last_renewal_time": 1_796_036_400
        });
        let credential = token("team-a/", "acc1", &data, &settings());
        assert_eq!(credential.external_id, "team-a/token/acc1");
        assert_eq!(credential.identity_id, "entity:e-1");
        assert_eq!(credential.owner.as_deref(), Some("team-a"));
        assert_eq!(credential.attributes["role"], "ci");
        assert_eq!(credential.attributes["policies"], "default,sign");
        assert_eq!(
            credential.created_at.map(|it| it.timestamp()),
            Some(1_796_032_800)
        );
        assert!(credential.expires_at.is_some());
        assert_eq!(
            credential.last_used,
            LastUse::At {
                at: unix(Some(&json!(1_796_036_400))).expect("time"),
                source: LAST_RENEWAL.to_owned()
            }
        );
        let no_entity = token(
            "",
            "acc2",
            &json!({"path": "auth/token/create"}),
            &settings(),
        );
        assert_eq!(no_entity.identity_id, "auth/token/create");
        assert_eq!(no_entity.last_used, LastUse::Unknown);
        assert_eq!(no_entity.name, "acc2");
    }
}
