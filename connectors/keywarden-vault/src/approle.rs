//! AppRole: each role an identity, each of its secret-ids (by accessor) a credential.

use std::collections::{BTreeMap, BTreeSet};

use futures::StreamExt;
use keywarden_connector::{
    Credential, CredentialKind, CredentialStatus, Identity, IdentityKind, Inventory, Known, LastUse,
};
use serde_json::{Value, json};

use crate::client::{Namespace, VaultError};
use crate::facts::{self, Settings, rfc3339, string_map, text};
use crate::holders::Powers;

/// Where a limited-use secret-id's last use comes from: Vault bumps `last_updated_time` on a
/// login only when it counts the secret-id's uses down.
pub const LAST_LOGIN: &str = "vault_secret_id_use_count";

/// Every role of one AppRole mount (`approle/`) and its secret-ids. A role whose secret-ids
/// cannot be read is a scan error of that role; the list of roles failing is the mount's.
pub async fn inventory(
    namespace: &Namespace,
    mount: &str,
    settings: &Settings,
    out: &mut Inventory,
    powers: &mut Powers,
    known: Option<&dyn Known>,
) -> Result<(), VaultError> {
    let roles = namespace.list(&format!("auth/{mount}role")).await?;
    let found: Vec<_> = futures::stream::iter(roles)
        .map(|role| async move {
            let found = secret_ids(namespace, mount, &role, settings, known).await;
            (role, found)
        })
        .buffered(settings.concurrency)
        .collect()
        .await;
    for (role, (credentials, errors, policies)) in found {
        let identity = role_identity(&namespace.name, mount, &role);
        for credential in &credentials {
            powers
                .grants
                .push((credential.external_id.clone(), policies.clone()));
        }
        out.credentials.extend(credentials);
        out.errors.extend(errors);
        out.identities.push(identity);
    }
    Ok(())
}

/// The identity id of a role.
pub fn role_id(namespace: &str, mount: &str, role: &str) -> String {
    format!("{namespace}auth/{mount}role/{role}")
}

fn role_identity(namespace: &str, mount: &str, role: &str) -> Identity {
    Identity {
        external_id: role_id(namespace, mount, role),
        kind: IdentityKind::ApproleRole,
        name: role.to_owned(),
        owner: None,
        purpose: None,
        tags: BTreeMap::from([
            ("mount".to_owned(), format!("{namespace}auth/{mount}")),
            ("namespace".to_owned(), namespace.to_owned()),
        ]),
        confirmed_leaks: Vec::new(),
    }
}

/// The policies of the tokens a role's secret-ids log in to: its `token_policies` (or the
/// older `policies`), and `default` unless the role says `token_no_default_policy`.
fn role_policies(role: &Value) -> BTreeSet<String> {
    let mut policies: BTreeSet<String> = ["token_policies", "policies"]
        .iter()
        .filter_map(|field| role.get(*field).and_then(Value::as_array))
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect();
    let no_default = role
        .get("token_no_default_policy")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if !no_default {
        policies.insert("default".to_owned());
    }
    policies
}

/// What one role holds: its secret-ids, the paths that could not be read, and the policies its
/// secret-ids log in to.
type RoleFound = (
    Vec<Credential>,
    Vec<keywarden_connector::ScanError>,
    BTreeSet<String>,
);

fn role_failed(namespace: &str, err: &VaultError, identity: String) -> RoleFound {
    (
        Vec::new(),
        vec![facts::scan_error(namespace, err, Some(identity))],
        BTreeSet::new(),
    )
}

/// A role's secret-ids, the paths that could not be read and the role's policies. A role that
/// cannot be read is the role's scan error alone: its secret-ids' signing power would be unknown.
/// With `known` (a scan between full ones), only the accessors the ledger does not hold are
/// looked up; the others are handed over as the ledger has them.
async fn secret_ids(
    namespace: &Namespace,
    mount: &str,
    role: &str,
    settings: &Settings,
    known: Option<&dyn Known>,
) -> RoleFound {
    let identity = role_id(&namespace.name, mount, role);
    let base = format!("auth/{mount}role/{role}");
    let policies = match namespace.read(&base).await {
        Ok(it) => role_policies(&it),
        Err(err) => return role_failed(&namespace.name, &err, identity),
    };
    let accessors = match namespace.list(&format!("{base}/secret-id")).await {
        Ok(it) => it,
        Err(err) => return role_failed(&namespace.name, &err, identity),
    };
    let mut held: BTreeMap<String, Credential> = match known {
        // The ledger unreadable: every accessor is looked up, as in a full scan.
        Some(known) => known
            .credentials_of(&identity)
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|it| it.kind == CredentialKind::SecretId)
            // A limited-use secret-id is looked up at every scan: its lookup is where its last
            // login shows, which a policy on disuse acts on.
            .filter(|it| {
                it.attributes
                    .get("secret_id_num_uses")
                    .is_none_or(|uses| uses == "0")
            })
            .filter_map(|mut it| {
                let accessor = it.attributes.get("accessor")?.clone();
                // Signing power is resolved again from the role's policies.
                it.signs_with.clear();
                Some((accessor, it))
            })
            .collect(),
        None => BTreeMap::new(),
    };
    let mut credentials = Vec::new();
    let accessors: Vec<String> = accessors
        .into_iter()
        .filter(|accessor| match held.remove(accessor) {
            Some(credential) => {
                credentials.push(credential);
                false
            }
            None => true,
        })
        .collect();
    let lookups: Vec<_> = futures::stream::iter(accessors)
        .map(|accessor| {
            let path = format!("{base}/secret-id-accessor/lookup");
            async move {
                let found = namespace
                    .write(&path, &json!({ "secret_id_accessor": accessor }))
                    .await;
                (accessor, found)
            }
        })
        .buffer_unordered(settings.concurrency)
        .collect()
        .await;
    let mut errors = Vec::new();
    for (accessor, found) in lookups {
        match found {
            Ok(data) => credentials.push(secret_id(
                &namespace.name,
                mount,
                role,
                &accessor,
                &data,
                settings,
            )),
            Err(err) => errors.push(facts::scan_error(
                &namespace.name,
                &err,
                Some(identity.clone()),
            )),
        }
    }
    (credentials, errors, policies)
}

/// A secret-id's last login as its lookup shows it. Only a limited-use secret-id shows one: its
/// count goes down and `last_updated_time` moves on.
pub fn last_login(data: &Value) -> LastUse {
    let created_at = rfc3339(data.get("creation_time"));
    let uses = data.get("secret_id_num_uses").and_then(Value::as_u64);
    let updated = rfc3339(data.get("last_updated_time"));
    match (uses, updated, created_at) {
        (Some(n), Some(at), Some(created)) if n > 0 && at > created => LastUse::At {
            at,
            source: LAST_LOGIN.to_owned(),
        },
        _ => LastUse::Unknown,
    }
}

/// The credential of one secret-id accessor lookup.
fn secret_id(
    namespace: &str,
    mount: &str,
    role: &str,
    accessor: &str,
    data: &Value,
    settings: &Settings,
) -> Credential {
    let metadata = string_map(data.get("metadata"));
    let (owner, purpose) = settings.owner_purpose(&metadata);
    let created_at = rfc3339(data.get("creation_time"));
    let last_used = last_login(data);
    let mut attributes = BTreeMap::new();
    for field in [
        "secret_id_num_uses",
        "secret_id_ttl",
        "cidr_list",
        "token_bound_cidrs",
    ] {
        if let Some(value) = text(data.get(field)).filter(|it| !it.is_empty()) {
            attributes.insert(field.to_owned(), value);
        }
    }
    attributes.insert("accessor".to_owned(), accessor.to_owned());
    attributes.insert("role".to_owned(), role.to_owned());
    attributes.insert("mount".to_owned(), format!("auth/{mount}"));
    attributes.insert("namespace".to_owned(), namespace.to_owned());
    Credential {
        external_id: format!("{}/secret-id/{accessor}", role_id(namespace, mount, role)),
        identity_id: role_id(namespace, mount, role),
        kind: CredentialKind::SecretId,
        name: format!("{role}/{accessor}"),
        status: CredentialStatus::Active,
        created_at,
        not_before: None,
        expires_at: rfc3339(data.get("expiration_time")),
        last_used,
        algorithm: None,
        key_bits: None,
        fingerprints: Vec::new(),
        public_key: None,
        owner,
        purpose,
        tags: metadata,
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
    fn a_secret_id_lookup_becomes_its_credential() {
        let data = json!({
            "cidr_list": [], "creation_time": "2026-11-30T10:00:00Z",
            "expiration_time": "0001-01-01T00:00:00Z", "last_updated_time": "2026-11-30T10:00:00Z",
            "metadata": {"owner": "release", "purpose": "signing"},
            "secret_id_accessor": "a-1", "secret_id_num_uses": 0, "secret_id_ttl": 0,
            "token_bound_cidrs": []
        });
        let credential = secret_id("", "approle/", "ci", "a-1", &data, &settings());
        assert_eq!(credential.external_id, "auth/approle/role/ci/secret-id/a-1");
        assert_eq!(credential.identity_id, "auth/approle/role/ci");
        assert_eq!(credential.owner.as_deref(), Some("release"));
        assert_eq!(credential.purpose.as_deref(), Some("signing"));
        assert_eq!(credential.expires_at, None, "the zero time is never");
        assert_eq!(
            credential.last_used,
            LastUse::Unknown,
            "unlimited uses show no login"
        );
        assert!(!credential.attributes.contains_key("cidr_list"));

        let limited = json!({
            "creation_time": "2026-11-30T10:00:00Z", "last_updated_time": "2026-11-30T11:00:00Z",
            "secret_id_num_uses": 4
        });
        let credential = secret_id("ns/", "approle/", "ci", "a-2", &limited, &settings());
        assert_eq!(
            credential.last_used.at(),
            rfc3339(Some(&json!("2026-11-30T11:00:00Z")))
        );
        assert_eq!(
            credential.external_id,
            "ns/auth/approle/role/ci/secret-id/a-2"
        );
    }
}
