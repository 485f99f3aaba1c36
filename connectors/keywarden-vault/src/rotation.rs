//! Rotation of AppRole secret-ids: the single steps the daemon's `rotate` machine takes on them
//! (create a secret-id with the old one's metadata, deliver it with the role id into a KV v2
//! secret, read it back, prove it works), and the `rotation:` configuration.
//!
//! ```yaml
//! rotation:
//!   overlap: 24h            # both secret-ids stay valid this long after delivery
//!   deliver:                # where a role's new secret-id goes: the first matching rule
//!     - roles: "ci-*"
//!       type: vault_kv      # a KV v2 secret in the role's own namespace
//!       mount: secret/
//!       path: "approle/{role}"
//! ```
//!
//! The KV secret gets `role_id`, `secret_id` and `secret_id_accessor`, so its consumer logs in
//! with what it reads there. Secret-ids cannot be switched off: the old one is destroyed after the
//! overlap, with the tokens its role's logins minted before the new one was made.

use std::time::Duration;

use keywarden_connector::{
    ConnectorError, FieldError, NewKey, Secret, SecretFields, SecretPath, SecretStore,
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::client::{Namespace, VaultError};
use crate::deliver::{VaultStore, wipe};

/// The `rotation:` section of a `vault` source.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotationConfig {
    /// Both secret-ids stay valid this long after the new one is delivered.
    #[serde(default = "default_overlap", with = "humantime_serde")]
    pub overlap: Duration,
    /// Where a role's new secret-id goes: the first rule whose `roles` glob matches.
    #[serde(default)]
    pub deliver: Vec<DeliverRule>,
}

impl Default for RotationConfig {
    fn default() -> Self {
        Self {
            overlap: default_overlap(),
            deliver: Vec::new(),
        }
    }
}

fn default_overlap() -> Duration {
    Duration::from_secs(24 * 3600)
}

/// One delivery rule of secret-ids.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum DeliverRule {
    /// A KV v2 secret in the role's namespace; `{role}` in `path` is the role's name.
    VaultKv {
        roles: String,
        mount: String,
        path: String,
    },
}

impl RotationConfig {
    /// Checks every field; errors name them (`rotation.deliver[0].path`).
    pub(crate) fn validate(&self, errors: &mut Vec<FieldError>) {
        if keywarden_connector::duration::check_duration(self.overlap).is_err() {
            errors.push(FieldError::new(
                "rotation.overlap",
                "longer than 100 years, the longest duration accepted",
            ));
        }
        for (idx, rule) in self.deliver.iter().enumerate() {
            let DeliverRule::VaultKv { roles, mount, path } = rule;
            let field = |name: &str| format!("rotation.deliver[{idx}].{name}");
            if let Err(err) = globset::Glob::new(roles) {
                errors.push(FieldError::new(
                    field("roles"),
                    format!("invalid glob: {}", err.kind()),
                ));
            }
            for (name, message) in
                keywarden_connector::template_problems(mount, path, "{role}", &["{role}"])
            {
                errors.push(FieldError::new(field(name), message));
            }
        }
    }
}

/// A role of this source, by its identity id (`<ns>auth/<mount>role/<name>`).
pub(crate) struct Role<'a> {
    pub namespace: &'a Namespace,
    /// The auth mount, with its trailing slash.
    pub mount: String,
    pub name: String,
}

impl Role<'_> {
    fn base(&self) -> String {
        format!("auth/{}role/{}", self.mount, self.name)
    }

    /// The identity id of a secret-id of this role by its accessor.
    fn secret_id(&self, accessor: &str) -> String {
        format!(
            "{}{}/secret-id/{accessor}",
            self.namespace.name,
            self.base()
        )
    }

    /// Where its new secret-ids go, by the first rule that matches its name.
    pub fn destination(&self, rules: &[DeliverRule]) -> Result<SecretPath, ConnectorError> {
        for rule in rules {
            let DeliverRule::VaultKv { roles, mount, path } = rule;
            let matches = globset::Glob::new(roles)
                .map(|it| it.compile_matcher().is_match(&self.name))
                .unwrap_or(false);
            if matches {
                return Ok(SecretPath {
                    namespace: self.namespace.name.clone(),
                    mount: mount.clone(),
                    path: path.replace("{role}", &self.name),
                });
            }
        }
        Err(ConnectorError::Config {
            field: "rotation.deliver".to_owned(),
            message: format!(
                "no delivery rule matches role `{}`: a new secret-id would have nowhere to go",
                self.name
            ),
        })
    }

    /// The role's secret-ids as Vault shows them now: accessor and lookup data.
    pub async fn secret_ids(&self) -> Result<Vec<(String, Value)>, ConnectorError> {
        let mut out = Vec::new();
        for accessor in self
            .namespace
            .list(&format!("{}/secret-id", self.base()))
            .await?
        {
            if let Some(data) = self.lookup(&accessor).await? {
                out.push((accessor, data));
            }
        }
        Ok(out)
    }

    /// One secret-id by its accessor (`None`: gone).
    pub async fn lookup(&self, accessor: &str) -> Result<Option<Value>, ConnectorError> {
        match self
            .namespace
            .write(
                &format!("{}/secret-id-accessor/lookup", self.base()),
                &json!({ "secret_id_accessor": accessor }),
            )
            .await
        {
            Ok(data) if data.is_null() => Ok(None),
            Ok(data) => Ok(Some(data)),
            Err(VaultError::NotFound { .. }) => Ok(None),
            Err(VaultError::Permanent { message, .. }) if message.contains("invalid") => Ok(None),
            Err(err) => Err(err.into()),
        }
    }

    /// Creates a secret-id to replace the one with accessor `replacing`: with its metadata, CIDR
    /// bounds and TTL, and the metadata keys [`REPLACES`] naming it and [`ATTEMPT`] naming the
    /// rotation (`attempt`). A secret-id an interrupted earlier attempt of the same rotation made
    /// (marked so, not the one at the destination, `delivered`, and not keywarden's own login)
    /// is destroyed first: its value is lost.
    pub async fn create(
        &self,
        replacing: &str,
        delivered: Option<&str>,
        attempt: &str,
        own: &crate::auth::Own,
    ) -> Result<NewKey, ConnectorError> {
        let Some(old) = self.lookup(replacing).await? else {
            return Err(ConnectorError::NotFound(format!(
                "secret-id {replacing} of role `{}` is gone",
                self.name
            )));
        };
        for (accessor, data) in self.secret_ids().await? {
            let mark = |key: &str| {
                data.pointer(&format!("/metadata/{key}"))
                    .and_then(Value::as_str)
            };
            // This rotation's own lost attempt only: a key another rotation of the same one made
            // may have been delivered and be in use.
            let marked = mark(REPLACES) == Some(replacing) && mark(ATTEMPT) == Some(attempt);
            if marked
                && Some(accessor.as_str()) != delivered
                && !own.may_be_secret_id(&self.namespace.name, &self.mount, &self.name, &accessor)
            {
                tracing::warn!(role = %self.name, %accessor, "Destroying a secret-id an interrupted rotation made.");
                self.namespace
                    .write(
                        &format!("{}/secret-id-accessor/destroy", self.base()),
                        &json!({ "secret_id_accessor": accessor }),
                    )
                    .await?;
            }
        }
        let mut metadata = old
            .get("metadata")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        metadata.insert(REPLACES.to_owned(), Value::String(replacing.to_owned()));
        metadata.insert(ATTEMPT.to_owned(), Value::String(attempt.to_owned()));
        // Vault takes the metadata as a JSON string of string values.
        let metadata = serde_json::to_string(&metadata).map_err(|err| {
            ConnectorError::Permanent(format!("the old secret-id's metadata: {err}"))
        })?;
        let mut body = json!({ "metadata": metadata });
        for field in ["cidr_list", "token_bound_cidrs"] {
            if let Some(list) = old
                .get(field)
                .filter(|it| it.as_array().is_some_and(|it| !it.is_empty()))
            {
                body[field] = list.clone();
            }
        }
        if let Some(ttl) = old
            .get("secret_id_ttl")
            .and_then(Value::as_u64)
            .filter(|it| *it > 0)
        {
            body["ttl"] = json!(format!("{ttl}s"));
        }
        // Not retried: a create that timed out may have made one, whose value is lost (the next
        // attempt destroys it, by its mark).
        let mut made = self
            .namespace
            .write_once(&format!("{}/secret-id", self.base()), &body)
            .await?;
        let accessor = made
            .get("secret_id_accessor")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let secret = made
            .get_mut("secret_id")
            .map(Value::take)
            .and_then(|it| match it {
                Value::String(text) => Some(Secret::new(text)),
                _ => None,
            });
        wipe(&mut made);
        match (accessor, secret) {
            (Some(accessor), Some(secret)) => Ok(NewKey {
                id: self.secret_id(&accessor),
                secret,
            }),
            _ => Err(ConnectorError::Permanent(format!(
                "{}: Vault answered a new secret-id without its accessor or value",
                self.base()
            ))),
        }
    }

    /// Writes the new secret-id, its accessor and the role id to the role's destination.
    pub async fn deliver(
        &self,
        store: &VaultStore,
        at: &SecretPath,
        key: &NewKey,
    ) -> Result<(), ConnectorError> {
        let accessor = accessor_of(&key.id)?;
        // Delivered already (a resumed step): not written twice.
        if let Some(held) = store.read(at).await?
            && held
                .fields
                .get("secret_id")
                .is_some_and(|it| it.expose() == key.secret.expose())
        {
            return Ok(());
        }
        let role_id = self
            .namespace
            .read(&format!("{}/role-id", self.base()))
            .await?
            .get("role_id")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| ConnectorError::Permanent(format!("{}: no role_id", self.base())))?;
        let fields = SecretFields::from([
            ("role_id".to_owned(), Secret::new(role_id)),
            (
                "secret_id".to_owned(),
                Secret::new(key.secret.expose().to_owned()),
            ),
            (
                "secret_id_accessor".to_owned(),
                Secret::new(accessor.to_owned()),
            ),
        ]);
        store.write(at, &fields, None).await.map(|_| ())
    }

    /// The secret-id the destination holds now, if any.
    pub async fn delivered(
        &self,
        store: &VaultStore,
        at: &SecretPath,
    ) -> Result<Option<NewKey>, ConnectorError> {
        let Some(held) = store.read(at).await? else {
            return Ok(None);
        };
        match (
            held.fields.get("secret_id_accessor"),
            held.fields.get("secret_id"),
        ) {
            (Some(accessor), Some(secret)) => Ok(Some(NewKey {
                id: self.secret_id(accessor.expose()),
                secret: Secret::new(secret.expose().to_owned()),
            })),
            _ => Err(ConnectorError::Permanent(format!(
                "the destination of role `{}` ({at}) holds no secret_id and secret_id_accessor",
                self.name
            ))),
        }
    }

    /// Proves the secret-id is one of the role's, valid now (Vault looks it up by its value;
    /// a lookup uses none of its uses).
    pub async fn verify(&self, key: &NewKey) -> Result<(), ConnectorError> {
        let mut body = json!({ "secret_id": key.secret.expose() });
        let found = self
            .namespace
            .write(&format!("{}/secret-id/lookup", self.base()), &body)
            .await;
        wipe(&mut body);
        match found {
            Ok(data) if !data.is_null() => Ok(()),
            Ok(_) | Err(VaultError::NotFound { .. }) => Err(ConnectorError::Permanent(format!(
                "role `{}` does not know the delivered secret-id",
                self.name
            ))),
            Err(err) => Err(err.into()),
        }
    }
}

/// The metadata key a secret-id keywarden made carries: the accessor of the one it replaces.
pub const REPLACES: &str = "keywarden_replaces";
/// The metadata key naming the rotation that made a secret-id.
pub const ATTEMPT: &str = "keywarden_action";

/// The accessor of a secret-id's identity id.
pub(crate) fn accessor_of(key_id: &str) -> Result<&str, ConnectorError> {
    key_id
        .rsplit_once("/secret-id/")
        .map(|(_, accessor)| accessor)
        .filter(|it| !it.is_empty())
        .ok_or_else(|| ConnectorError::NotFound(format!("`{key_id}` is not a secret-id")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> RotationConfig {
        serde_json::from_str(yaml).expect("config")
    }

    #[test]
    fn bad_rules_name_their_field() {
        let config = parse(
            r#"{"deliver":[{"type":"vault_kv","roles":"ci-[","mount":"secret","path":"a/{user}"},
                          {"type":"vault_kv","roles":"*","mount":"kv/","path":"a/../b"}]}"#,
        );
        let mut errors = Vec::new();
        config.validate(&mut errors);
        let fields: Vec<&str> = errors.iter().map(|it| it.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "rotation.deliver[0].roles",
                "rotation.deliver[0].mount",
                "rotation.deliver[0].path",
                "rotation.deliver[1].path",
            ]
        );
    }

    #[test]
    fn an_unknown_destination_type_is_refused() {
        let err = serde_json::from_str::<RotationConfig>(
            r#"{"deliver":[{"type":"file","roles":"*","path":"/x"}]}"#,
        )
        .expect_err("refused");
        assert!(err.to_string().contains("unknown variant `file`"), "{err}");
    }

    #[test]
    fn the_accessor_is_the_last_part_of_the_id() {
        assert_eq!(
            accessor_of("ns/auth/approle/role/ci/secret-id/abc-123").expect("id"),
            "abc-123"
        );
        assert!(accessor_of("ns/auth/approle/role/ci").is_err());
        assert!(accessor_of("ns/auth/approle/role/ci/secret-id/").is_err());
    }
}
