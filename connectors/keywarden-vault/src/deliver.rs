//! Vault KV v2 as a secret store other sources deliver into ([`SecretStore`]): reads the
//! current version of a secret, and writes a new one check-and-set.
//!
//! A value is moved into a [`Secret`] as soon as it is read, and every JSON value that held one
//! (Vault's answer, the request body) is wiped before it is dropped.

use std::sync::Arc;

use async_trait::async_trait;
use keywarden_connector::{ConnectorError, Secret, SecretFields, SecretPath, SecretStore, Stored};
use serde_json::{Map, Value, json};
use zeroize::Zeroize;

use crate::client::{Namespace, VaultError};

/// The KV v2 mounts of one `vault` source's namespaces, as a delivery destination.
#[derive(Debug)]
pub struct VaultStore {
    pub(crate) namespaces: Arc<Vec<Namespace>>,
}

impl VaultStore {
    fn namespace(&self, at: &SecretPath) -> Result<&Namespace, ConnectorError> {
        self.namespaces
            .iter()
            .find(|it| it.name == at.namespace)
            .ok_or_else(|| ConnectorError::Config {
                field: "namespace".to_owned(),
                message: format!(
                    "`{}` is not a namespace this source lists; deliveries go only to those",
                    at.namespace
                ),
            })
    }
}

/// Zeroizes every string in a JSON value (a secret's fields, Vault's answer).
pub(crate) fn wipe(value: &mut Value) {
    match value {
        Value::String(it) => it.zeroize(),
        Value::Array(items) => items.iter_mut().for_each(wipe),
        Value::Object(fields) => fields.values_mut().for_each(wipe),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// The path of a KV v2 endpoint (`data`, `metadata`) of a secret.
fn endpoint(at: &SecretPath, kind: &str) -> Result<String, ConnectorError> {
    let bad = |what: &str| ConnectorError::Config {
        field: "path".to_owned(),
        message: format!("`{at}`: {what}"),
    };
    if !at.mount.ends_with('/') || at.mount.len() < 2 {
        return Err(bad("the mount must end with `/`"));
    }
    let path = at.path.trim_matches('/');
    if path.is_empty()
        || path
            .split('/')
            .any(|it| it.is_empty() || it == "." || it == "..")
    {
        return Err(bad(
            "the secret path must be non-empty, without `.`, `..` or `//`",
        ));
    }
    Ok(format!("{}{kind}/{path}", at.mount))
}

#[async_trait]
impl SecretStore for VaultStore {
    async fn read(&self, at: &SecretPath) -> Result<Option<Stored>, ConnectorError> {
        let namespace = self.namespace(at)?;
        let mut answer = match namespace.read(&endpoint(at, "data")?).await {
            Ok(answer) => answer,
            // No secret, or its current version deleted (Vault answers 404 then too).
            Err(VaultError::NotFound { .. }) => return Ok(None),
            Err(err) => return Err(err.into()),
        };
        let version = answer
            .pointer("/metadata/version")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let created_at = crate::facts::rfc3339(answer.pointer("/metadata/created_time"));
        let fields = match answer.get_mut("data").map(Value::take) {
            Some(Value::Object(mut fields)) => {
                let mut out = SecretFields::new();
                for (name, value) in fields.iter_mut() {
                    if let Value::String(text) = value {
                        out.insert(name.clone(), Secret::new(std::mem::take(text)));
                    }
                }
                wipe(&mut Value::Object(std::mem::take(&mut fields)));
                Some(Stored {
                    version,
                    created_at,
                    fields: out,
                })
            }
            _ => None,
        };
        wipe(&mut answer);
        Ok(fields)
    }

    async fn write(
        &self,
        at: &SecretPath,
        fields: &SecretFields,
        cas: Option<u64>,
    ) -> Result<u64, ConnectorError> {
        let namespace = self.namespace(at)?;
        let current = match cas {
            Some(version) => version,
            None => match namespace.read(&endpoint(at, "metadata")?).await {
                Ok(metadata) => metadata
                    .get("current_version")
                    .and_then(Value::as_u64)
                    .unwrap_or(0),
                Err(VaultError::NotFound { .. }) => 0,
                Err(err) => return Err(err.into()),
            },
        };
        let data: Map<String, Value> = fields
            .iter()
            .map(|(name, value)| (name.clone(), Value::String(value.expose().to_owned())))
            .collect();
        let mut body = json!({ "options": { "cas": current }, "data": data });
        let written = namespace.write(&endpoint(at, "data")?, &body).await;
        wipe(&mut body);
        written_version(at, current, written)
    }

    /// A KV v2 PATCH (a JSON merge patch of the one field, `options.cas`): Vault writes the
    /// new version from the current one, so the other fields keep their values and types.
    async fn set_field(
        &self,
        at: &SecretPath,
        field: &str,
        value: &Secret,
        cas: u64,
    ) -> Result<u64, ConnectorError> {
        let namespace = self.namespace(at)?;
        let mut body = json!({ "options": { "cas": cas }, "data": { field: value.expose() } });
        let written = namespace.patch(&endpoint(at, "data")?, &body).await;
        wipe(&mut body);
        written_version(at, cas, written)
    }
}

/// The version a check-and-set write on `cas` made, or why it made none.
fn written_version(
    at: &SecretPath,
    cas: u64,
    written: Result<Value, VaultError>,
) -> Result<u64, ConnectorError> {
    match written {
        Ok(answer) => Ok(answer
            .get("version")
            .and_then(Value::as_u64)
            .unwrap_or(cas.saturating_add(1))),
        Err(VaultError::Permanent { message, .. }) if message.contains("check-and-set") => {
            Err(ConnectorError::Retryable {
                message: format!(
                    "`{at}` changed while keywarden wrote it (check-and-set on version {cas}): \
                     not overwritten"
                ),
                retry_after: None,
            })
        }
        Err(err) => Err(err.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(mount: &str, path: &str) -> SecretPath {
        SecretPath {
            namespace: String::new(),
            mount: mount.to_owned(),
            path: path.to_owned(),
        }
    }

    #[test]
    fn endpoints_are_under_the_mount_and_refuse_escapes() {
        assert_eq!(
            endpoint(&at("secret/", "ci/deploy"), "data").expect("path"),
            "secret/data/ci/deploy"
        );
        assert_eq!(
            endpoint(&at("kv/team/", "/x/"), "metadata").expect("path"),
            "kv/team/metadata/x"
        );
        for (mount, path) in [
            ("secret", "x"),
            ("secret/", ""),
            ("secret/", "a/../b"),
            ("secret/", "a//b"),
            ("/", "x"),
        ] {
            assert!(
                endpoint(&at(mount, path), "data").is_err(),
                "{mount} {path}"
            );
        }
    }

    #[test]
    fn wipe_clears_every_string() {
        let mut value = json!({"a": "secret", "b": ["x", {"c": "y"}], "n": 1});
        wipe(&mut value);
        assert_eq!(value, json!({"a": "", "b": ["", {"c": ""}], "n": 1}));
    }
}
