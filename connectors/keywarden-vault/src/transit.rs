//! Transit keys: each key an identity, each of its versions a credential with its creation
//! time; each version of a signing key carries its public key, so it is a signer. Keys are read
//! raw: vaultrs cannot parse every key type (`hmac`, `cmac`, managed, ML-DSA) and drops fields
//! keywarden needs (`latest_version`, `auto_rotate_period`, `min_available_version`).

use std::collections::{BTreeMap, HashSet};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use futures::StreamExt;
use keywarden_connector::{
    Credential, CredentialKind, CredentialStatus, Fingerprint, Identity, IdentityKind, Inventory,
    Known, LastUse,
};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::audit_log::Change;
use crate::client::{Namespace, VaultError};
use crate::facts::{self, Settings, rfc3339, text, unix};
use crate::holders::{Powers, SigningVersion};

/// What an incremental scan knows of a mount's keys: the ledger, the keys the audit log shows
/// changed since the last scan (read without a gap), and each key as the last scan found it.
pub struct Unchanged<'a> {
    pub known: &'a dyn Known,
    pub changed: &'a HashSet<Change>,
    pub last: &'a BTreeMap<String, Identity>,
}

/// Every key of one Transit mount (`transit/`) with its versions. A key that cannot be read is a
/// scan error of that key; the list of keys failing is the mount's. With `unchanged`, a key the
/// last scan found, that the audit log shows no change to and that Vault does not rotate by
/// itself (`auto_rotate_period`, which logs no request) is handed over as the ledger has it,
/// not read again. `found` gets each key handed over (for the next scan).
pub async fn inventory(
    namespace: &Namespace,
    mount: &str,
    settings: &Settings,
    (out, powers): (&mut Inventory, &mut Powers),
    unchanged: Option<&Unchanged<'_>>,
    found: &mut BTreeMap<String, Identity>,
) -> Result<(), VaultError> {
    // Nothing there (404) is no keys.
    let names = namespace.list(&format!("{mount}keys")).await?;
    let mut keys = Vec::with_capacity(names.len());
    let mut to_read = Vec::new();
    for name in names {
        match kept(namespace, mount, &name, unchanged).await {
            Some(key) => keys.push((name, Ok(key))),
            None => to_read.push(name),
        }
    }
    let reads: Vec<_> = futures::stream::iter(to_read)
        .map(|name| async move {
            let found = namespace.read(&format!("{mount}keys/{name}")).await;
            let key = found.and_then(|data| key(&namespace.name, mount, &name, &data));
            (name, key)
        })
        .buffer_unordered(settings.concurrency)
        .collect()
        .await;
    keys.extend(reads);
    for (name, read) in keys {
        match read {
            Ok((key, versions)) => {
                signing_versions(mount, &name, &key, &versions, powers);
                found.insert(key.external_id.clone(), key.clone());
                out.identities.push(key);
                out.credentials.extend(versions);
            }
            Err(err) => out.errors.push(facts::scan_error(
                &namespace.name,
                &err,
                Some(key_id(&namespace.name, mount, &name)),
            )),
        }
    }
    Ok(())
}

/// The key and its versions as the last scan and the ledger have them, if it need not be read.
async fn kept(
    namespace: &Namespace,
    mount: &str,
    name: &str,
    unchanged: Option<&Unchanged<'_>>,
) -> Option<(Identity, Vec<Credential>)> {
    let unchanged = unchanged?;
    let id = key_id(&namespace.name, mount, name);
    let key = unchanged.last.get(&id)?;
    let change = Change {
        namespace: namespace.name.clone(),
        mount: mount.to_owned(),
        path: name.to_owned(),
    };
    if unchanged.changed.contains(&change) || rotates_itself(key) {
        return None;
    }
    // The ledger unreadable: the key is read.
    let versions = unchanged.known.credentials_of(&id).await.ok()?;
    let versions: Vec<Credential> = versions
        .into_iter()
        .filter(|it| it.kind == CredentialKind::TransitKeyVersion)
        .collect();
    Some((key.clone(), versions))
}

/// Whether Vault rotates the key on its own (`auto_rotate_period` set): a rotation no audit
/// entry shows.
fn rotates_itself(key: &Identity) -> bool {
    key.tags
        .get("auto_rotate_period")
        .is_some_and(|it| !matches!(it.as_str(), "" | "0" | "0s"))
}

/// Each version of a signing key, for its holders.
fn signing_versions(
    mount: &str,
    name: &str,
    key: &Identity,
    versions: &[Credential],
    powers: &mut Powers,
) {
    let min_encryption_version = key
        .tags
        .get("min_encryption_version")
        .and_then(|it| it.parse().ok())
        .unwrap_or(0);
    for version in versions {
        let signer = version
            .fingerprints
            .iter()
            .find(|it| it.algorithm == "sha256_spki");
        let number = version
            .attributes
            .get("version")
            .and_then(|it| it.parse().ok());
        if let (Some(signer), Some(number)) = (signer, number) {
            powers.signers.push(SigningVersion {
                mount: mount.to_owned(),
                key: name.to_owned(),
                version: number,
                min_encryption_version,
                key_id: signer.value.clone(),
            });
        }
    }
}

/// The identity id of a Transit key.
pub fn key_id(namespace: &str, mount: &str, name: &str) -> String {
    format!("{namespace}{mount}keys/{name}")
}

/// A key and its versions. A key type with no per-version material (`hmac`, `cmac`, managed
/// keys show no `keys`) is the key alone.
fn key(
    namespace: &str,
    mount: &str,
    name: &str,
    data: &Value,
) -> Result<(Identity, Vec<Credential>), VaultError> {
    let path = format!("{mount}keys/{name}");
    let bad = |message: String| VaultError::Permanent {
        path: path.clone(),
        message,
    };
    let key_type = data
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("the key has no type".to_owned()))?
        .to_owned();
    let mut tags = BTreeMap::new();
    for field in [
        "type",
        "latest_version",
        "min_decryption_version",
        "min_encryption_version",
        "min_available_version",
        "auto_rotate_period",
        "exportable",
        "supports_signing",
        "deletion_allowed",
    ] {
        if let Some(value) = text(data.get(field)) {
            tags.insert(field.to_owned(), value);
        }
    }
    tags.insert("mount".to_owned(), mount.to_owned());
    tags.insert("namespace".to_owned(), namespace.to_owned());
    let identity = Identity {
        external_id: key_id(namespace, mount, name),
        kind: IdentityKind::TransitKey,
        name: name.to_owned(),
        owner: None,
        purpose: data
            .get("supports_signing")
            .and_then(Value::as_bool)
            .filter(|it| *it)
            .map(|_| "signing".to_owned()),
        tags,
        confirmed_leaks: Vec::new(),
    };
    let Some(keys) = data.get("keys").and_then(Value::as_object) else {
        return Ok((identity, Vec::new()));
    };
    let min_decryption = data
        .get("min_decryption_version")
        .and_then(Value::as_u64)
        .unwrap_or(1);
    let min_available = data
        .get("min_available_version")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let mut versions = Vec::with_capacity(keys.len());
    for (number, material) in keys {
        let version: u64 = number
            .parse()
            .map_err(|_| bad(format!("version `{number}` is not a number")))?;
        let (created_at, public_key) = match material {
            // Symmetric keys: the version's creation time, nothing public.
            Value::Number(_) => (unix(Some(material)), None),
            Value::Object(fields) => {
                let created = rfc3339(fields.get("creation_time"));
                let public = fields
                    .get("public_key")
                    .and_then(Value::as_str)
                    .filter(|it| !it.is_empty())
                    .map(|it| spki_der(&key_type, it))
                    .transpose()
                    .map_err(|message| bad(format!("version {version}: {message}")))?;
                (created, public)
            }
            _ => {
                return Err(bad(format!(
                    "version {version} is neither a time nor a key"
                )));
            }
        };
        let active = version >= min_decryption && version >= min_available;
        versions.push(key_version(
            namespace, mount, name, &key_type, version, created_at, public_key, active,
        ));
    }
    versions.sort_by(|a, b| a.external_id.cmp(&b.external_id));
    Ok((identity, versions))
}

#[allow(clippy::too_many_arguments)]
fn key_version(
    namespace: &str,
    mount: &str,
    name: &str,
    key_type: &str,
    version: u64,
    created_at: Option<chrono::DateTime<chrono::Utc>>,
    public_key: Option<Vec<u8>>,
    active: bool,
) -> Credential {
    let (algorithm, key_bits) = algorithm(key_type);
    let fingerprints = public_key
        .as_ref()
        .map(|der| {
            vec![Fingerprint {
                algorithm: "sha256_spki".to_owned(),
                value: hex::encode(Sha256::digest(der)),
            }]
        })
        .unwrap_or_default();
    Credential {
        external_id: format!("{}/v{version}", key_id(namespace, mount, name)),
        identity_id: key_id(namespace, mount, name),
        kind: CredentialKind::TransitKeyVersion,
        name: format!("{name} v{version}"),
        status: if active {
            CredentialStatus::Active
        } else {
            CredentialStatus::Inactive
        },
        created_at,
        not_before: None,
        expires_at: None,
        last_used: LastUse::Unknown,
        algorithm: Some(algorithm),
        key_bits,
        fingerprints,
        public_key: public_key.map(|der| STANDARD.encode(der)),
        owner: None,
        purpose: None,
        tags: BTreeMap::new(),
        attributes: BTreeMap::from([
            ("key".to_owned(), name.to_owned()),
            ("version".to_owned(), version.to_string()),
            ("key_type".to_owned(), key_type.to_owned()),
            ("mount".to_owned(), mount.to_owned()),
            ("namespace".to_owned(), namespace.to_owned()),
        ]),
        signs_with: Vec::new(),
    }
}

/// The algorithm as people write it, and the key size where the type names one.
fn algorithm(key_type: &str) -> (String, Option<u32>) {
    match key_type.strip_prefix("rsa-") {
        Some(bits) => ("rsa".to_owned(), bits.parse().ok()),
        None => (key_type.to_owned(), None),
    }
}

/// The DER SubjectPublicKeyInfo of a version's public key: PEM for ECDSA and RSA, the raw key in
/// base64 for Ed25519.
fn spki_der(key_type: &str, public_key: &str) -> Result<Vec<u8>, String> {
    if key_type == "ed25519" {
        use ed25519_dalek::pkcs8::EncodePublicKey as _;
        let raw = STANDARD
            .decode(public_key.trim())
            .map_err(|_| "the ed25519 public key is not base64".to_owned())?;
        let bytes: [u8; 32] = raw
            .try_into()
            .map_err(|_| "the ed25519 public key is not 32 bytes".to_owned())?;
        let key = ed25519_dalek::VerifyingKey::from_bytes(&bytes)
            .map_err(|_| "the ed25519 public key is not a curve point".to_owned())?;
        return key
            .to_public_key_der()
            .map(|it| it.as_bytes().to_vec())
            .map_err(|err| format!("the ed25519 public key: {err}"));
    }
    let (label, document) = spki::Document::from_pem(public_key)
        .map_err(|err| format!("the public key is not PEM: {err}"))?;
    if label != "PUBLIC KEY" {
        return Err(format!("a PEM `{label}` where a PUBLIC KEY was expected"));
    }
    Ok(document.as_bytes().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const P256_PEM: &str = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEimQ95yvrWKFlE51rBplQZgb2ca3e\nPoXCJTxZfmcEXgo5J6+bkP8MH6Abal6knBd/r0ZHqNyJQZID+VeDl6aU0w==\n-----END PUBLIC KEY-----\n";

    #[test]
    fn each_version_of_a_signing_key_is_a_signer() {
        let data = json!({
            "type": "ecdsa-p256", "latest_version": 2, "min_decryption_version": 2,
            "min_available_version": 0, "auto_rotate_period": 0, "supports_signing": true,
            "keys": {
                "1": {"name": "P-256", "public_key": P256_PEM, "creation_time": "2026-01-01T00:00:00Z"},
                "2": {"name": "P-256", "public_key": P256_PEM, "creation_time": "2026-11-30T10:00:00Z"}
            }
        });
        let (identity, versions) = key("ns/", "transit/", "release", &data).expect("key");
        assert_eq!(identity.external_id, "ns/transit/keys/release");
        assert_eq!(identity.purpose.as_deref(), Some("signing"));
        assert_eq!(versions.len(), 2);
        assert_eq!(versions[0].external_id, "ns/transit/keys/release/v1");
        assert_eq!(
            versions[0].status,
            CredentialStatus::Inactive,
            "below min_decryption_version"
        );
        assert_eq!(versions[1].status, CredentialStatus::Active);
        let der = spki_der("ecdsa-p256", P256_PEM).expect("der");
        assert_eq!(
            versions[1].fingerprints[0].value,
            hex::encode(Sha256::digest(&der))
        );
        assert_eq!(
            versions[1].public_key.as_deref(),
            Some(STANDARD.encode(&der).as_str())
        );
    }

    #[test]
    fn an_hmac_key_is_the_key_alone_and_a_bad_version_an_error() {
        let (identity, versions) = key(
            "",
            "transit/",
            "mac",
            &json!({"type": "hmac", "latest_version": 1}),
        )
        .expect("hmac");
        assert_eq!(identity.tags["type"], "hmac");
        assert!(versions.is_empty());
        let (_, aes) = key(
            "",
            "transit/",
            "enc",
            &json!({"type": "aes256-gcm96", "keys": {"1": 1_796_032_800}}),
        )
        .expect("aes");
        assert!(aes[0].fingerprints.is_empty());
        assert_eq!(
            aes[0].created_at.map(|it| it.timestamp()),
            Some(1_796_032_800)
        );
        let err = key(
            "",
            "transit/",
            "odd",
            &json!({"type": "ecdsa-p256", "keys": {"1": {"public_key": "not pem"}}}),
        )
        .unwrap_err();
        assert!(err.to_string().contains("version 1"), "{err}");
    }

    #[test]
    fn an_ed25519_key_is_wrapped_in_its_spki() {
        let raw = [7u8; 32];
        let key = ed25519_dalek::SigningKey::from_bytes(&raw).verifying_key();
        let der = spki_der("ed25519", &STANDARD.encode(key.as_bytes())).expect("der");
        assert_eq!(der.len(), 44);
        assert!(der.ends_with(key.as_bytes()));
        assert!(spki_der("ed25519", "AAAA").is_err());
    }
}
