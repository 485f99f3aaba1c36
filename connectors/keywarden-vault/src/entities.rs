//! Identity entities: the owners of the tokens they hold (entity metadata names the owner).

use futures::StreamExt;
use keywarden_connector::{Identity, IdentityKind, Inventory};
use serde_json::Value;

use crate::client::{Namespace, VaultError};
use crate::facts::{self, Settings, string_map, text};

/// The identity id of an entity (entity ids are unique across namespaces).
pub fn entity_id(id: &str) -> String {
    format!("entity:{id}")
}

/// Every entity of the namespace. One that cannot be read is a scan error of that entity; the
/// list failing is the namespace's (each entity would be marked gone).
pub async fn inventory(
    namespace: &Namespace,
    settings: &Settings,
    out: &mut Inventory,
) -> Result<(), VaultError> {
    let ids = namespace.list("identity/entity/id").await?;
    let reads: Vec<_> = futures::stream::iter(ids)
        .map(|id| async move {
            let found = namespace.read(&format!("identity/entity/id/{id}")).await;
            (id, found)
        })
        .buffer_unordered(settings.concurrency)
        .collect()
        .await;
    for (id, found) in reads {
        match found {
            Ok(data) => out
                .identities
                .push(entity(&namespace.name, &id, &data, settings)),
            Err(err) => out.errors.push(facts::scan_error(
                &namespace.name,
                &err,
                Some(entity_id(&id)),
            )),
        }
    }
    Ok(())
}

fn entity(namespace: &str, id: &str, data: &Value, settings: &Settings) -> Identity {
    let mut tags = string_map(data.get("metadata"));
    let (owner, purpose) = settings.owner_purpose(&tags);
    let aliases: Vec<String> = data
        .get("aliases")
        .and_then(Value::as_array)
        .map(|it| {
            it.iter()
                .filter_map(|alias| {
                    let mount = alias.get("mount_path")?.as_str()?;
                    // An AppRole alias is named by the role id, half of a login: never kept;
                    // the role's name stands for it.
                    let name = if alias.get("mount_type").and_then(Value::as_str) == Some("approle")
                    {
                        let role = alias
                            .pointer("/metadata/role_name")
                            .and_then(Value::as_str)
                            .unwrap_or("(role id)");
                        format!("role/{role}")
                    } else {
                        alias.get("name")?.as_str()?.to_owned()
                    };
                    Some(format!("{mount}{name}"))
                })
                .collect()
        })
        .unwrap_or_default();
    if !aliases.is_empty() {
        tags.insert("aliases".to_owned(), aliases.join(","));
    }
    if let Some(disabled) = text(data.get("disabled")) {
        tags.insert("disabled".to_owned(), disabled);
    }
    tags.insert("namespace".to_owned(), namespace.to_owned());
    Identity {
        external_id: entity_id(id),
        kind: IdentityKind::VaultEntity,
        name: data
            .get("name")
            .and_then(Value::as_str)
            .filter(|it| !it.is_empty())
            .unwrap_or(id)
            .to_owned(),
        owner,
        purpose,
        tags,
        confirmed_leaks: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_entity_metadata_names_the_owner() {
        let settings = Settings {
            owner_key: "team".to_owned(),
            purpose_key: "purpose".to_owned(),
            concurrency: 1,
        };
        let data = json!({
            "name": "entity_ci", "metadata": {"team": "release"}, "disabled": false,
            "aliases": [
                {"mount_path": "auth/approle/", "mount_type": "approle", "name": "role-id-1",
                 "metadata": {"role_name": "ci"}},
                {"mount_path": "auth/userpass/", "mount_type": "userpass", "name": "alice"}
            ]
        });
        let identity = entity("", "e-1", &data, &settings);
        assert_eq!(identity.external_id, "entity:e-1");
        assert_eq!(identity.owner.as_deref(), Some("release"));
        assert_eq!(
            identity.tags["aliases"], "auth/approle/role/ci,auth/userpass/alice",
            "an AppRole alias by its role's name, never its role id"
        );
        assert_eq!(identity.name, "entity_ci");
    }
}
