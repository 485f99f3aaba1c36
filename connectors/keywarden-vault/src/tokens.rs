//! Token accessors: every service token of a namespace, looked up by its accessor (the token
//! itself is never seen). Batch tokens have no accessor and are not listed by Vault.

use std::collections::{BTreeMap, BTreeSet};

use futures::StreamExt;
use keywarden_connector::{
    Credential, CredentialKind, CredentialStatus, Identity, Inventory, LastUse,
};
use serde_json::{Value, json};

use crate::client::{Namespace, VaultError};
use crate::facts::{self, Settings, rfc3339, string_map, text, unix};
use crate::holders::Powers;

/// Where a token's last renewal comes from.
pub const LAST_RENEWAL: &str = "vault_token_last_renewal";

/// Every token accessor of the namespace with its lookup. A failure is the namespace's: a token
/// not looked up has no known identity whose ledger entries could be kept instead.
pub async fn inventory(
    namespace: &Namespace,
    settings: &Settings,
    out: &mut Inventory,
    powers: &mut Powers,
) -> Result<(), VaultError> {
    let accessors = namespace.list("auth/token/accessors").await?;
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
    let mut mounts: BTreeMap<String, Identity> = BTreeMap::new();
    for (accessor, found) in lookups {
        match found {
            Ok(data) => {
                let credential = token(&namespace.name, &accessor, &data, settings);
                powers
                    .grants
                    .push((credential.external_id.clone(), policies(&data)));
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
        "ttl",
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
