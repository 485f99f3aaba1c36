//! Holders of Transit signers: which tokens and AppRole secret-ids of a namespace may call
//! `<mount>sign/<key>` (or `<mount>sign/<key>/<hash>`, the form cosign's `hashivault://` uses),
//! from the namespace's ACL policies resolved as Vault resolves them ([`crate::acl`]). Each such
//! credential's `signs_with` names the key ids of the versions it can sign with: every version
//! from the key's `min_encryption_version` up (Vault refuses to sign with an older one).
//!
//! A token's policies are its own and its entity's (`policies`, `identity_policies` of its
//! lookup); a secret-id's are its role's `token_policies`, plus `default` unless the role sets
//! `token_no_default_policy`. A policy that cannot be read or parsed is one scan error without an
//! identity (so enforcement stays off the whole source: the holders it would grant are unknown),
//! and grants nothing.
//!
//! Not seen: a parent namespace's policy granting a path of a child namespace, and policies an
//! entity gets through its groups.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use futures::StreamExt;
use keywarden_connector::Inventory;

use crate::acl::Acl;
use crate::client::{Namespace, VaultError};
use crate::facts::{self, Settings};

/// The hash algorithms `transit/sign/<key>/<hash>` takes (`none` for Ed25519 and prehashed input).
const HASHES: &[&str] = &[
    "sha1", "sha2-224", "sha2-256", "sha2-384", "sha2-512", "sha3-224", "sha3-256", "sha3-384",
    "sha3-512", "none",
];

/// A version of a Transit signing key: a signer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SigningVersion {
    /// The Transit mount, with its trailing slash (`transit/`).
    pub mount: String,
    pub key: String,
    pub version: u64,
    /// The key's `min_encryption_version` (0: any version may sign).
    pub min_encryption_version: u64,
    pub key_id: String,
}

/// What one namespace's inventory showed of signing power: the signers, and the policies each
/// token and secret-id carries.
#[derive(Clone, Debug, Default)]
pub struct Powers {
    pub signers: Vec<SigningVersion>,
    /// A credential's external id and the names of its policies.
    pub grants: Vec<(String, BTreeSet<String>)>,
}

/// Sets `signs_with` on every credential of `out` that `powers` grants signing with a signer of
/// the namespace. Reads each policy named once; none when there is no signer.
pub async fn resolve(
    namespace: &Namespace,
    powers: &Powers,
    settings: &Settings,
    out: &mut Inventory,
) {
    if powers.signers.is_empty() || powers.grants.is_empty() {
        return;
    }
    let names: BTreeSet<String> = powers
        .grants
        .iter()
        .flat_map(|(_, it)| it)
        .filter(|it| *it != "root")
        .cloned()
        .collect();
    let reads: Vec<_> = futures::stream::iter(names)
        .map(|name| async move {
            let found = namespace.read(&format!("sys/policies/acl/{name}")).await;
            (name, found)
        })
        .buffer_unordered(settings.concurrency)
        .collect()
        .await;
    let mut texts: BTreeMap<String, String> = BTreeMap::new();
    for (name, found) in reads {
        match found {
            Ok(data) => {
                let text = data
                    .get("policy")
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or_default();
                texts.insert(name, text.to_owned());
            }
            // A token may still name a policy that was deleted: it grants nothing.
            Err(VaultError::NotFound { .. }) => {}
            Err(err) => out
                .errors
                .push(facts::scan_error(&namespace.name, &err, None)),
        }
    }
    // A policy that does not parse is reported once and grants nothing.
    texts.retain(
        |name, text| match Acl::from_policies([(name.as_str(), text.as_str())]) {
            Ok(_) => true,
            Err(err) => {
                out.errors.push(keywarden_connector::ScanError {
                    subject: format!("{}sys/policies/acl/{name}", namespace.name),
                    message: format!("{err}; the signers it grants are not known"),
                    identity: None,
                });
                false
            }
        },
    );
    let mut acls: HashMap<&BTreeSet<String>, Vec<String>> = HashMap::new();
    let mut signs_with: HashMap<&str, Vec<String>> = HashMap::new();
    for (credential, policies) in &powers.grants {
        let held = acls.entry(policies).or_insert_with(|| {
            acl_of(policies, &texts)
                .map(|acl| held_by(&acl, &powers.signers).into_iter().collect())
                .unwrap_or_default()
        });
        if !held.is_empty() {
            signs_with.insert(credential, held.clone());
        }
    }
    for credential in &mut out.credentials {
        if let Some(held) = signs_with.remove(credential.external_id.as_str()) {
            credential.signs_with = held;
        }
    }
}

fn acl_of(
    policies: &BTreeSet<String>,
    texts: &BTreeMap<String, String>,
) -> Result<Acl, crate::acl::PolicyError> {
    Acl::from_policies(policies.iter().filter_map(|name| {
        if name == "root" {
            Some(("root", ""))
        } else {
            texts
                .get(name.as_str())
                .map(|text| (name.as_str(), text.as_str()))
        }
    }))
}

/// The key ids of the signers `acl` lets sign.
fn held_by(acl: &Acl, signers: &[SigningVersion]) -> BTreeSet<String> {
    let mut allowed: HashMap<(&str, &str), bool> = HashMap::new();
    signers
        .iter()
        .filter(|it| it.version >= it.min_encryption_version)
        .filter(|it| {
            *allowed
                .entry((it.mount.as_str(), it.key.as_str()))
                .or_insert_with(|| may_sign(acl, &it.mount, &it.key))
        })
        .map(|it| it.key_id.clone())
        .collect()
}

/// Whether `acl` allows signing with the key `key` of the Transit mount `mount`.
pub fn may_sign(acl: &Acl, mount: &str, key: &str) -> bool {
    let path = format!("{mount}sign/{key}");
    acl.allows(&path, "update")
        || HASHES
            .iter()
            .any(|hash| acl.allows(&format!("{path}/{hash}"), "update"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(text: &str) -> Acl {
        Acl::from_policies([("p", text)]).expect("policy")
    }

    fn version(key: &str, version: u64, min: u64) -> SigningVersion {
        SigningVersion {
            mount: "transit/".to_owned(),
            key: key.to_owned(),
            version,
            min_encryption_version: min,
            key_id: format!("{key}-v{version}"),
        }
    }

    #[test]
    fn signing_power_follows_the_sign_path_and_the_minimum_version() {
        let exact = acl(r#"path "transit/sign/release" { capabilities = ["update"] }"#);
        let hashed = acl(r#"path "transit/sign/release/sha2-256" { capabilities = ["update"] }"#);
        let glob = acl(r#"path "transit/sign/*" { capabilities = ["create", "update"] }"#);
        let read_only = acl(r#"path "transit/sign/release" { capabilities = ["read"] }"#);
        let verify = acl(r#"path "transit/verify/release" { capabilities = ["update"] }"#);
        let denied = acl(r#"path "transit/sign/*" { capabilities = ["update"] }
               path "transit/sign/release*" { capabilities = ["deny"] }"#);
        // A deny of `sign/release` alone leaves `sign/release/sha2-256` to the glob.
        let loophole = acl(r#"path "transit/sign/*" { capabilities = ["update"] }
               path "transit/sign/release" { capabilities = ["deny"] }"#);
        let signers = [
            version("release", 1, 2),
            version("release", 2, 2),
            version("other", 1, 0),
        ];
        let ids = |acl: &Acl| held_by(acl, &signers).into_iter().collect::<Vec<_>>();
        assert_eq!(
            ids(&exact),
            ["release-v2"],
            "v1 is below min_encryption_version"
        );
        assert_eq!(ids(&hashed), ["release-v2"]);
        assert_eq!(ids(&glob), ["other-v1", "release-v2"]);
        assert!(ids(&read_only).is_empty());
        assert!(ids(&verify).is_empty());
        assert_eq!(ids(&denied), ["other-v1"]);
        assert_eq!(ids(&loophole), ["other-v1", "release-v2"]);
        let root = Acl::from_policies([("root", "")]).expect("root");
        assert_eq!(ids(&root), ["other-v1", "release-v2"]);
    }
}
