//! KV secrets, listed recursively. Version 2: each secret's metadata (age from its current
//! version's creation, owner and purpose from `custom_metadata`). Version 1 keeps no metadata:
//! a secret is known by its path alone. A secret's value is never read.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};
use futures::StreamExt;
use keywarden_connector::{
    Credential, CredentialKind, CredentialStatus, Inventory, Known, LastUse,
};
use serde_json::Value;

use crate::audit_log::Change;
use crate::client::Namespace;
use crate::facts::{self, Settings, rfc3339, string_map, text};

/// Every secret of one KV mount (`secret/`). With `incremental` (a scan between full ones, the
/// audit log read without a gap), a v2 secret the ledger holds whose path the log shows no
/// change to is handed over as the ledger has it, its metadata not read again. Returns whether
/// every path was read: where one was not, the next scan reads the mount in full, so a change
/// the log showed now is not lost with the read that failed.
pub async fn inventory(
    namespace: &Namespace,
    mount: &str,
    version: u8,
    settings: &Settings,
    out: &mut Inventory,
    incremental: Option<(&dyn Known, &HashSet<Change>)>,
    now: DateTime<Utc>,
) -> bool {
    let errors = out.errors.len();
    let listing = if version == 2 {
        format!("{mount}metadata/")
    } else {
        mount.to_owned()
    };
    let identity = facts::mount_identity(&namespace.name, mount);
    let mut paths = walk(namespace, &listing, settings, &identity.external_id, out).await;
    if version == 2
        && let Some((known, changed)) = incremental
    {
        let mut held: HashMap<String, Credential> = known
            .credentials_of(&identity.external_id)
            .await
            .unwrap_or_default()
            .into_iter()
            // A v1 record (the mount was upgraded since) is read again.
            .filter(|it| {
                it.kind == CredentialKind::KvSecret
                    && it.attributes.get("kv_version").map(String::as_str) == Some("2")
            })
            .map(|it| (it.external_id.clone(), it))
            .collect();
        paths.retain(|path| {
            let change = Change {
                namespace: namespace.name.clone(),
                mount: mount.to_owned(),
                path: path.clone(),
            };
            match held.remove(&format!("{}{mount}{path}", namespace.name)) {
                Some(credential) if !changed.contains(&change) => {
                    out.credentials.push(credential);
                    false
                }
                _ => true,
            }
        });
    }
    if version == 2 {
        let reads: Vec<_> = futures::stream::iter(paths)
            .map(|path| async move {
                let found = namespace.read(&format!("{mount}metadata/{path}")).await;
                (path, found)
            })
            .buffer_unordered(settings.concurrency)
            .collect()
            .await;
        for (path, found) in reads {
            match found {
                Ok(data) => out.credentials.push(kv2_secret(
                    &namespace.name,
                    mount,
                    &path,
                    &data,
                    settings,
                    now,
                )),
                Err(err) => out.errors.push(facts::scan_error(
                    &namespace.name,
                    &err,
                    Some(identity.external_id.clone()),
                )),
            }
        }
    } else {
        out.credentials.extend(
            paths
                .iter()
                .map(|path| kv1_secret(&namespace.name, mount, path)),
        );
    }
    out.identities.push(identity);
    out.errors.len() == errors
}

/// The leaf paths under `listing` (relative to it), folder by folder, each level's folders
/// listed concurrently. A folder that cannot be listed is one scan error.
async fn walk(
    namespace: &Namespace,
    listing: &str,
    settings: &Settings,
    identity: &str,
    out: &mut Inventory,
) -> Vec<String> {
    let mut leaves = Vec::new();
    let mut folders = vec![String::new()];
    while !folders.is_empty() {
        let listed: Vec<_> = futures::stream::iter(std::mem::take(&mut folders))
            .map(|folder| async move {
                let found = namespace.list(&format!("{listing}{folder}")).await;
                (folder, found)
            })
            .buffer_unordered(settings.concurrency)
            .collect()
            .await;
        for (folder, found) in listed {
            match found {
                Ok(keys) => {
                    for key in keys {
                        let path = format!("{folder}{key}");
                        if key.ends_with('/') {
                            folders.push(path);
                        } else {
                            leaves.push(path);
                        }
                    }
                }
                Err(err) => out.errors.push(facts::scan_error(
                    &namespace.name,
                    &err,
                    Some(identity.to_owned()),
                )),
            }
        }
    }
    leaves.sort();
    leaves
}

/// The credential of one KV v2 secret's metadata.
fn kv2_secret(
    namespace: &str,
    mount: &str,
    path: &str,
    data: &Value,
    settings: &Settings,
    now: DateTime<Utc>,
) -> Credential {
    let custom = string_map(data.get("custom_metadata"));
    let (owner, purpose) = settings.owner_purpose(&custom);
    let current = data
        .get("current_version")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let version = data.pointer(&format!("/versions/{current}"));
    let created_at = rfc3339(version.and_then(|it| it.get("created_time")));
    // With `delete_version_after` Vault sets a deletion time in the future at every write: the
    // version is deleted only once it has passed.
    let deleted = rfc3339(version.and_then(|it| it.get("deletion_time")))
        .is_some_and(|at| at <= now)
        || version
            .and_then(|it| it.get("destroyed"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
    let mut attributes = BTreeMap::new();
    for field in [
        "current_version",
        "max_versions",
        "cas_required",
        "updated_time",
    ] {
        if let Some(value) = text(data.get(field)).filter(|it| !it.is_empty()) {
            attributes.insert(field.to_owned(), value);
        }
    }
    attributes.insert("kv_version".to_owned(), "2".to_owned());
    attributes.insert("mount".to_owned(), mount.to_owned());
    attributes.insert("namespace".to_owned(), namespace.to_owned());
    Credential {
        external_id: format!("{namespace}{mount}{path}"),
        identity_id: format!("{namespace}{mount}"),
        kind: CredentialKind::KvSecret,
        name: format!("{mount}{path}"),
        status: if deleted {
            CredentialStatus::Inactive
        } else {
            CredentialStatus::Active
        },
        created_at,
        not_before: None,
        expires_at: None,
        last_used: LastUse::Unknown,
        algorithm: None,
        key_bits: None,
        fingerprints: Vec::new(),
        public_key: None,
        owner,
        purpose,
        tags: custom,
        attributes,
        signs_with: Vec::new(),
    }
}

/// A KV v1 secret: its path is all v1 shows.
fn kv1_secret(namespace: &str, mount: &str, path: &str) -> Credential {
    Credential {
        external_id: format!("{namespace}{mount}{path}"),
        identity_id: format!("{namespace}{mount}"),
        kind: CredentialKind::KvSecret,
        name: format!("{mount}{path}"),
        status: CredentialStatus::Active,
        created_at: None,
        not_before: None,
        expires_at: None,
        last_used: LastUse::Unknown,
        algorithm: None,
        key_bits: None,
        fingerprints: Vec::new(),
        public_key: None,
        owner: None,
        purpose: None,
        tags: BTreeMap::new(),
        attributes: BTreeMap::from([
            ("kv_version".to_owned(), "1".to_owned()),
            ("mount".to_owned(), mount.to_owned()),
            ("namespace".to_owned(), namespace.to_owned()),
        ]),
        signs_with: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_age_is_the_current_versions_and_a_deleted_one_is_inactive() {
        let settings = Settings {
            owner_key: "owner".to_owned(),
            purpose_key: "purpose".to_owned(),
            concurrency: 1,
        };
        let data = json!({
            "cas_required": false, "created_time": "2026-01-01T00:00:00Z", "current_version": 2,
            "max_versions": 0, "updated_time": "2026-11-30T11:00:00Z",
            "custom_metadata": {"owner": "team-a", "purpose": "publishing"},
            "versions": {
                "1": {"created_time": "2026-01-01T00:00:00Z", "deletion_time": "", "destroyed": false},
                "2": {"created_time": "2026-11-30T10:00:00Z", "deletion_time": "", "destroyed": false}
            }
        });
        let now = rfc3339(Some(&json!("2026-12-01T00:00:00Z"))).expect("now");
        let secret = kv2_secret("ns/", "secret/", "ci/npm", &data, &settings, now);
        assert_eq!(secret.external_id, "ns/secret/ci/npm");
        assert_eq!(secret.identity_id, "ns/secret/");
        assert_eq!(
            secret.created_at,
            rfc3339(Some(&json!("2026-11-30T10:00:00Z")))
        );
        assert_eq!(secret.status, CredentialStatus::Active);
        assert_eq!(secret.owner.as_deref(), Some("team-a"));
        let mut deleted = data.clone();
        deleted["versions"]["2"]["deletion_time"] = json!("2026-11-30T12:00:00Z");
        let secret = kv2_secret("", "secret/", "ci/npm", &deleted, &settings, now);
        assert_eq!(secret.status, CredentialStatus::Inactive);
        // `delete_version_after`: a deletion time still to come is no deletion yet.
        deleted["versions"]["2"]["deletion_time"] = json!("2026-12-30T12:00:00Z");
        let secret = kv2_secret("", "secret/", "ci/npm", &deleted, &settings, now);
        assert_eq!(secret.status, CredentialStatus::Active);
    }
}
