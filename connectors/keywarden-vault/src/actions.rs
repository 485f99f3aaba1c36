//! What the daemon's action machines may do to Vault credentials: read a token or secret-id
//! live, revoke a token by its accessor, destroy a secret-id by its accessor, revoke the tokens
//! a secret-id's role minted since the secret-id was made; and tell which token or secret-id a
//! leaked plaintext value is, by asking Vault. Single idempotent steps: the machines sequence
//! them. Tokens and secret-ids cannot be switched off and on, so only `revoke` takes them out.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use keywarden_connector::{
    Capability, ConnectorError, CredentialKind, HeldKey, KeyActions, KeyHolder, KeyVersions,
    LastUse, NewKey, RotationTiming, Secret, VersionedKeys,
};
use serde_json::{Value, json};

use crate::auth::OwnSecretId;
use crate::client::{Namespace, VaultError};
use crate::facts::{Settings, rfc3339, unix};
use crate::mounts::{self, MountKind};

/// The key actions of a `vault` source.
#[derive(Debug)]
pub struct VaultActions {
    pub(crate) namespaces: Arc<Vec<Namespace>>,
    pub(crate) settings: Settings,
    /// How long a Transit key's older versions stay accepted after a rotation.
    pub(crate) retire_after: std::time::Duration,
    /// Secret-id rotation: the overlap and the delivery rules.
    pub(crate) rotation: crate::rotation::RotationConfig,
}

/// A credential of this source, by its external id.
enum Target<'a> {
    Token {
        accessor: &'a str,
    },
    SecretId {
        mount: &'a str,
        role: &'a str,
        accessor: &'a str,
    },
}

impl VaultActions {
    /// The namespace a credential's external id belongs to (the longest configured prefix that
    /// leaves a token or auth path), and what it names there.
    fn target<'a>(&self, key_id: &'a str) -> Result<(&Namespace, Target<'a>), ConnectorError> {
        let unknown = || {
            ConnectorError::NotFound(format!(
                "`{key_id}` is not a Vault token or secret-id of this source"
            ))
        };
        let namespace = self
            .namespaces
            .iter()
            .filter(|ns| {
                key_id
                    .strip_prefix(ns.name.as_str())
                    .is_some_and(|rest| rest.starts_with("token/") || rest.starts_with("auth/"))
            })
            .max_by_key(|ns| ns.name.len())
            .ok_or_else(unknown)?;
        let rest = &key_id[namespace.name.len()..];
        if let Some(accessor) = rest.strip_prefix("token/") {
            return Ok((namespace, Target::Token { accessor }));
        }
        // auth/<mount>role/<role>/secret-id/<accessor>, the mount ending in `/`.
        let path = rest.strip_prefix("auth/").ok_or_else(unknown)?;
        let (head, accessor) = path.rsplit_once("/secret-id/").ok_or_else(unknown)?;
        let (mount_end, role) = head
            .rfind("role/")
            .map(|at| (at, &head[at + "role/".len()..]))
            .ok_or_else(unknown)?;
        Ok((
            namespace,
            Target::SecretId {
                mount: &head[..mount_end],
                role,
                accessor,
            },
        ))
    }

    async fn live(
        namespace: &Namespace,
        target: &Target<'_>,
    ) -> Result<Option<Value>, ConnectorError> {
        let found = match target {
            Target::Token { accessor } => {
                namespace
                    .write(
                        "auth/token/lookup-accessor",
                        &json!({ "accessor": accessor }),
                    )
                    .await
            }
            Target::SecretId {
                mount,
                role,
                accessor,
            } => {
                namespace
                    .write(
                        &format!("auth/{mount}role/{role}/secret-id-accessor/lookup"),
                        &json!({ "secret_id_accessor": accessor }),
                    )
                    .await
            }
        };
        match found {
            Ok(data) if data.is_null() => Ok(None),
            Ok(data) => Ok(Some(data)),
            Err(VaultError::NotFound { .. }) => Ok(None),
            Err(VaultError::Permanent { message, .. }) if message.contains("invalid accessor") => {
                Ok(None)
            }
            Err(err) => Err(err.into()),
        }
    }

    /// The tokens of `namespace` a login to the role minted since `since` (and before `until`).
    async fn minted(
        &self,
        namespace: &Namespace,
        mount: &str,
        role: &str,
        (since, until): (Option<DateTime<Utc>>, Option<DateTime<Utc>>),
        metadata: Option<&serde_json::Map<String, Value>>,
    ) -> Result<Vec<String>, ConnectorError> {
        let login = format!("auth/{mount}login");
        // keywarden's own token is never taken: the revocations after it would all be denied.
        // Asked before and after the list, which may have logged in again.
        let before = namespace.own().await?.token_accessor;
        let listed = namespace.list("auth/token/accessors").await?;
        let after = namespace.own().await?.token_accessor;
        let accessors: Vec<String> = listed
            .into_iter()
            .filter(|it| *it != before && *it != after)
            .collect();
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
            .buffer_unordered(self.settings.concurrency)
            .collect()
            .await;
        let mut minted = Vec::new();
        for (accessor, found) in lookups {
            let data = match found {
                Ok(data) => data,
                Err(VaultError::Permanent { message, .. })
                    if message.contains("invalid accessor") =>
                {
                    continue;
                }
                Err(err) => return Err(err.into()),
            };
            let of_role = data.get("path").and_then(Value::as_str) == Some(login.as_str())
                && data.pointer("/meta/role_name").and_then(Value::as_str) == Some(role);
            let created = unix(data.get("creation_time"));
            let after = match (since, created) {
                // Vault shows a token's creation to the second only.
                (Some(since), Some(created)) => created.timestamp() >= since.timestamp(),
                // Without a time to tell, every token of the role is taken.
                _ => true,
            };
            // Vault shows a token's creation to the second only: a token of the second `until`
            // falls in may be the new credential's, and is kept.
            let before = match (until, created) {
                (Some(until), Some(created)) => created.timestamp() < until.timestamp(),
                (Some(_), None) => false,
                (None, _) => true,
            };
            let carries = metadata.is_none_or(|want| {
                let mut meta = data
                    .get("meta")
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default();
                meta.remove("role_name");
                &meta == want
            });
            if of_role && after && before && carries {
                minted.push(accessor);
            }
        }
        minted.sort();
        Ok(minted)
    }
}

#[async_trait]
impl KeyActions for VaultActions {
    fn capabilities(&self, kind: CredentialKind) -> &'static [Capability] {
        use Capability::*;
        match kind {
            CredentialKind::Token => &[ReadKeys, RevokeKey],
            // Rotated without switching off: the old one is revoked after the overlap.
            CredentialKind::SecretId => &[
                ReadKeys,
                ReadLastUse,
                CreateKey,
                DeliverKey,
                VerifyKey,
                RevokeKey,
                RevokeMinted,
            ],
            _ => &[],
        }
    }

    /// The secret-ids of an AppRole role. A token's identity (an entity, an auth path) has
    /// tokens Vault cannot list by holder; they are read one at a time ([`Self::key`]).
    async fn keys(&self, identity_id: &str) -> Result<KeyHolder, ConnectorError> {
        let role = self.role(identity_id).map_err(|_| {
            ConnectorError::Refused(format!(
                "`{identity_id}` holds tokens, which Vault does not list by holder"
            ))
        })?;
        let base = format!("auth/{}role/{}", role.mount, role.name);
        let mut keys = Vec::new();
        for accessor in role.namespace.list(&format!("{base}/secret-id")).await? {
            let id = format!("{identity_id}/secret-id/{accessor}");
            if let Some(held) = self.key(identity_id, &id).await? {
                keys.push(held);
            }
        }
        Ok(KeyHolder {
            identity_id: identity_id.to_owned(),
            name: role.name.clone(),
            keys,
        })
    }

    async fn key(
        &self,
        _identity_id: &str,
        key_id: &str,
    ) -> Result<Option<HeldKey>, ConnectorError> {
        let (namespace, target) = self.target(key_id)?;
        let Some(data) = Self::live(namespace, &target).await? else {
            return Ok(None);
        };
        let created_at = match target {
            Target::Token { .. } => unix(data.get("creation_time")),
            Target::SecretId { .. } => rfc3339(data.get("creation_time")),
        };
        Ok(Some(HeldKey {
            id: key_id.to_owned(),
            active: true,
            created_at,
        }))
    }

    fn destination(&self, identity_id: &str) -> Result<String, ConnectorError> {
        let role = self.role(identity_id)?;
        Ok(format!(
            "vault_kv {}",
            role.destination(&self.rotation.deliver)?
        ))
    }

    async fn create_key(
        &self,
        identity_id: &str,
        replacing: &str,
        attempt: &str,
    ) -> Result<NewKey, ConnectorError> {
        let role = self.role(identity_id)?;
        let accessor = crate::rotation::accessor_of(replacing)?;
        let own = role.namespace.own().await?;
        match own.secret_id(&role.namespace.name, &role.mount, &role.name, accessor) {
            OwnSecretId::No => {}
            OwnSecretId::Yes => return Err(ConnectorError::Refused(own_secret_id(replacing))),
            OwnSecretId::Unknown => {
                return Err(ConnectorError::Refused(unknown_secret_id(replacing)));
            }
        }
        let delivered = self.delivered_id(identity_id).await?;
        let delivered = delivered
            .as_deref()
            .and_then(|it| crate::rotation::accessor_of(it).ok());
        role.create(accessor, delivered, attempt, &own).await
    }

    async fn deliver(
        &self,
        identity_id: &str,
        key: &NewKey,
        _token: &str,
    ) -> Result<(), ConnectorError> {
        let role = self.role(identity_id)?;
        let at = role.destination(&self.rotation.deliver)?;
        role.deliver(&self.store(), &at, key).await
    }

    async fn delivered(&self, identity_id: &str) -> Result<Option<NewKey>, ConnectorError> {
        let Ok(role) = self.role(identity_id) else {
            return Ok(None);
        };
        let at = role.destination(&self.rotation.deliver)?;
        role.delivered(&self.store(), &at).await
    }

    async fn verify(&self, identity_id: &str, key: &NewKey) -> Result<(), ConnectorError> {
        self.role(identity_id)?.verify(key).await
    }

    /// A token's last renewal, or a limited-use secret-id's last login, as Vault shows it now;
    /// nothing else is known live (the audit log's uses are the ledger's, and a live re-check
    /// keeps the later of the two).
    async fn last_used(&self, _identity_id: &str, key_id: &str) -> Result<LastUse, ConnectorError> {
        let Ok((namespace, target)) = self.target(key_id) else {
            return Ok(LastUse::Unknown);
        };
        let Some(data) = Self::live(namespace, &target).await? else {
            return Ok(LastUse::Unknown);
        };
        Ok(match target {
            Target::Token { .. } => match unix(data.get("last_renewal_time")) {
                Some(at) => LastUse::At {
                    at,
                    source: crate::tokens::LAST_RENEWAL.to_owned(),
                },
                None => LastUse::Unknown,
            },
            Target::SecretId { .. } => crate::approle::last_login(&data),
        })
    }

    async fn set_active(
        &self,
        _identity_id: &str,
        key_id: &str,
        _active: bool,
    ) -> Result<(), ConnectorError> {
        Err(ConnectorError::Refused(format!(
            "`{key_id}` cannot be switched off and on; it can only be revoked"
        )))
    }

    /// Secret-ids have no deactivated state: the overlap is all there is (the old one's last
    /// use, known only from the audit log, never ends it early).
    fn rotation_timing(&self) -> RotationTiming {
        RotationTiming {
            overlap: self.rotation.overlap,
            last_use_settle: self.rotation.overlap,
            grace: std::time::Duration::ZERO,
        }
    }

    async fn delete_key(&self, identity_id: &str, key_id: &str) -> Result<(), ConnectorError> {
        self.revoke(identity_id, key_id).await
    }

    async fn deny_sessions_before(
        &self,
        identity_id: &str,
        _before: DateTime<Utc>,
    ) -> Result<String, ConnectorError> {
        Err(ConnectorError::Refused(format!(
            "`{identity_id}`: Vault has no deny on older sessions; revoke the tokens instead"
        )))
    }

    async fn session_denials(&self, _identity_id: &str) -> Result<Vec<String>, ConnectorError> {
        Ok(Vec::new())
    }

    async fn revoke(&self, _identity_id: &str, key_id: &str) -> Result<(), ConnectorError> {
        let (namespace, target) = self.target(key_id)?;
        // Vault answers a destroy of a secret-id that is gone with a 500: ask first.
        if Self::live(namespace, &target).await?.is_none() {
            return Ok(());
        }
        let own = namespace.own().await?;
        match target {
            Target::Token { accessor } if accessor == own.token_accessor => {
                return Err(ConnectorError::Refused(format!(
                    "{key_id} is the token keywarden calls Vault with: revoking it would stop \
                     keywarden; give keywarden another token, then revoke this one by hand"
                )));
            }
            Target::SecretId {
                mount,
                role,
                accessor,
            } => match own.secret_id(&namespace.name, mount, role, accessor) {
                OwnSecretId::No => {}
                OwnSecretId::Yes => return Err(ConnectorError::Refused(own_secret_id(key_id))),
                OwnSecretId::Unknown => {
                    return Err(ConnectorError::Refused(unknown_secret_id(key_id)));
                }
            },
            Target::Token { .. } => {}
        }
        match target {
            Target::Token { accessor } => {
                namespace
                    .write(
                        "auth/token/revoke-accessor",
                        &json!({ "accessor": accessor }),
                    )
                    .await?;
            }
            Target::SecretId {
                mount,
                role,
                accessor,
            } => {
                namespace
                    .write(
                        &format!("auth/{mount}role/{role}/secret-id-accessor/destroy"),
                        &json!({ "secret_id_accessor": accessor }),
                    )
                    .await?;
            }
        }
        Ok(())
    }

    async fn revoke_minted(
        &self,
        identity_id: &str,
        key_id: &str,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
    ) -> Result<Vec<String>, ConnectorError> {
        let (namespace, target) = self.target(key_id)?;
        let Target::SecretId { mount, role, .. } = target else {
            return Err(ConnectorError::Refused(
                "a token's child tokens are revoked with it".to_owned(),
            ));
        };
        // A rotation (`until`): only the tokens that carry the old secret-id's own metadata, which
        // Vault copies onto them; a containment takes every token of the role's logins.
        let metadata = match until {
            Some(until) => Some(self.distinct_metadata(identity_id, key_id, until).await?),
            None => None,
        };
        let mut revoked = Vec::new();
        for accessor in self
            .minted(namespace, mount, role, (since, until), metadata.as_ref())
            .await?
        {
            namespace
                .write(
                    "auth/token/revoke-accessor",
                    &json!({ "accessor": accessor }),
                )
                .await?;
            revoked.push(format!("token {}token/{accessor}", namespace.name));
        }
        Ok(revoked)
    }
}

impl VaultActions {
    /// The AppRole role of an identity id (`<ns>auth/<mount>role/<name>`).
    fn role(&self, identity_id: &str) -> Result<crate::rotation::Role<'_>, ConnectorError> {
        let probe = format!("{identity_id}/secret-id/-");
        let refused = || {
            ConnectorError::Refused(format!(
                "`{identity_id}` is no AppRole role: keywarden creates no Vault credential for it"
            ))
        };
        let (namespace, target) = self.target(&probe).map_err(|_| refused())?;
        let Target::SecretId { mount, role, .. } = target else {
            return Err(refused());
        };
        Ok(crate::rotation::Role {
            namespace,
            mount: mount.to_owned(),
            name: role.to_owned(),
        })
    }

    /// The metadata of secret-id `key_id` that tells its tokens apart from those of the role's
    /// other secret-ids (made before `until`, the new one's creation), or why none does.
    async fn distinct_metadata(
        &self,
        identity_id: &str,
        key_id: &str,
        until: DateTime<Utc>,
    ) -> Result<serde_json::Map<String, Value>, ConnectorError> {
        let role = self.role(identity_id)?;
        let accessor = crate::rotation::accessor_of(key_id)?;
        let Some(old) = role.lookup(accessor).await? else {
            return Err(ConnectorError::Refused(format!(
                "{key_id} is gone, so its tokens cannot be told apart"
            )));
        };
        let metadata = old
            .get("metadata")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        // Only keywarden's mark makes the metadata unique: a secret-id that is gone (used up,
        // expired and tidied) may have carried the same, and its tokens may still be in use.
        if !metadata.contains_key(crate::rotation::REPLACES) {
            return Err(ConnectorError::Refused(format!(
                "{key_id} was not made by keywarden, so nothing in its metadata is known to be \
                 its own: its tokens are not told apart from those of the role's other \
                 secret-ids, past or present; they expire with their TTL"
            )));
        }
        for (other, data) in role.secret_ids().await? {
            let made = rfc3339(data.get("creation_time"));
            if other == accessor || made.is_none_or(|at| at >= until) {
                continue;
            }
            if data.get("metadata").and_then(Value::as_object) == Some(&metadata) {
                return Err(ConnectorError::Refused(format!(
                    "secret-id {other} of role `{}` carries the same metadata, so their tokens \
                     are not told apart; they expire with their TTL",
                    role.name
                )));
            }
        }
        Ok(metadata)
    }

    fn store(&self) -> crate::deliver::VaultStore {
        crate::deliver::VaultStore {
            namespaces: Arc::clone(&self.namespaces),
        }
    }

    /// The namespace and the Transit mount and key name of a key's identity id
    /// (`<ns><mount>keys/<name>`).
    fn transit_key<'a>(
        &self,
        identity_id: &'a str,
    ) -> Result<(&Namespace, &'a str, &'a str), ConnectorError> {
        let unknown = || {
            ConnectorError::NotFound(format!(
                "`{identity_id}` is not a Transit key of this source"
            ))
        };
        let namespace = self
            .namespaces
            .iter()
            .filter(|ns| identity_id.starts_with(ns.name.as_str()))
            .max_by_key(|ns| ns.name.len())
            .ok_or_else(unknown)?;
        let rest = &identity_id[namespace.name.len()..];
        let at = rest
            .rfind("keys/")
            .filter(|at| *at > 0)
            .ok_or_else(unknown)?;
        let (mount, name) = (&rest[..at], &rest[at + "keys/".len()..]);
        if name.is_empty() || name.contains('/') {
            return Err(unknown());
        }
        Ok((namespace, mount, name))
    }
}

#[async_trait]
impl VersionedKeys for VaultActions {
    async fn versions(&self, identity_id: &str) -> Result<KeyVersions, ConnectorError> {
        let (namespace, mount, name) = self.transit_key(identity_id)?;
        let data = namespace.read(&format!("{mount}keys/{name}")).await?;
        let number = |field: &str| data.get(field).and_then(Value::as_u64).unwrap_or(0);
        if number("latest_version") == 0 {
            return Err(ConnectorError::Permanent(format!(
                "`{identity_id}` shows no latest_version: not a versioned key"
            )));
        }
        let flag = |field: &str| data.get(field).and_then(Value::as_bool).unwrap_or(false);
        Ok(KeyVersions {
            latest: number("latest_version"),
            min_decryption: number("min_decryption_version"),
            min_encryption: number("min_encryption_version"),
            signing_only: flag("supports_signing")
                && !flag("supports_decryption")
                && !flag("supports_encryption"),
        })
    }

    async fn add_version(&self, identity_id: &str) -> Result<KeyVersions, ConnectorError> {
        let (namespace, mount, name) = self.transit_key(identity_id)?;
        // Not retried: a rotate that timed out may have added a version; the machine reads the
        // versions again before it adds another.
        namespace
            .write_once(&format!("{mount}keys/{name}/rotate"), &json!({}))
            .await?;
        self.versions(identity_id).await
    }

    async fn retire_below(&self, identity_id: &str, version: u64) -> Result<(), ConnectorError> {
        let (namespace, mount, name) = self.transit_key(identity_id)?;
        let now = self.versions(identity_id).await?;
        // Both minimums, never lowered: below them Vault neither signs nor verifies.
        namespace
            .write(
                &format!("{mount}keys/{name}/config"),
                &json!({
                    "min_decryption_version": version.max(now.min_decryption),
                    "min_encryption_version": version.max(now.min_encryption),
                }),
            )
            .await?;
        Ok(())
    }

    fn retire_after(&self) -> std::time::Duration {
        self.retire_after
    }
}

/// Why keywarden leaves the secret-id it logs in with alone.
fn own_secret_id(key_id: &str) -> String {
    format!(
        "{key_id} is the secret-id keywarden logs in with (`approle.secret_id_file`): replacing \
         or destroying it would lock keywarden out; put a new secret-id in that file, then \
         destroy this one by hand"
    )
}

/// Why keywarden leaves a secret-id of its own role alone when it cannot tell its own.
fn unknown_secret_id(key_id: &str) -> String {
    format!(
        "{key_id} is a secret-id of the role keywarden logs in with, and keywarden may not look \
         up which one is its own (grant `update` on `role/<role>/secret-id/lookup`): it may be \
         keywarden's own login, which it would lock itself out with; left alone"
    )
}

/// Whether a plaintext value looks like a Vault token (`hvs.`, `hvb.`, `s.`, `b.`, `r.` ...).
fn token_shaped(value: &str) -> bool {
    let Some((prefix, rest)) = value.split_once('.') else {
        return false;
    };
    matches!(prefix, "hvs" | "hvb" | "hvr" | "s" | "b" | "r")
        && rest.len() >= 20
        && rest
            .chars()
            .all(|it| it.is_ascii_alphanumeric() || matches!(it, '.' | '_' | '-'))
}

/// Whether a plaintext value looks like an AppRole secret-id (a UUID).
fn uuid_shaped(value: &str) -> bool {
    let parts: Vec<&str> = value.split('-').collect();
    parts.len() == 5
        && parts
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(part, len)| part.len() == len && part.chars().all(|it| it.is_ascii_hexdigit()))
}

impl VaultActions {
    /// Which token or secret-id of the configured namespaces `value` is: Vault looks the token
    /// up, or each AppRole role of each namespace looks the secret-id up. The value goes only to
    /// Vault, in a request body; a lookup that fails is no match.
    pub(crate) async fn identify(&self, value: &Secret) -> Result<Vec<String>, ConnectorError> {
        let text = value.expose().trim();
        let mut found = Vec::new();
        if token_shaped(text) {
            for namespace in self.namespaces.iter() {
                let looked_up = namespace
                    .write("auth/token/lookup", &json!({ "token": text }))
                    .await;
                if let Some(accessor) = looked_up
                    .ok()
                    .as_ref()
                    .and_then(|it| it.get("accessor"))
                    .and_then(Value::as_str)
                {
                    found.push(format!("{}token/{accessor}", namespace.name));
                }
            }
        } else if uuid_shaped(text) {
            for namespace in self.namespaces.iter() {
                for mount in mounts::discover(namespace).await? {
                    if !matches!(mount.kind, MountKind::AppRole) {
                        continue;
                    }
                    let path = &mount.path;
                    for role in namespace.list(&format!("auth/{path}role")).await? {
                        let data = namespace
                            .write(
                                &format!("auth/{path}role/{role}/secret-id/lookup"),
                                &json!({ "secret_id": text }),
                            )
                            .await;
                        if let Some(accessor) = data
                            .ok()
                            .as_ref()
                            .and_then(|it| it.get("secret_id_accessor"))
                            .and_then(Value::as_str)
                        {
                            found.push(format!(
                                "{}{}",
                                crate::approle::role_id(&namespace.name, path, &role),
                                format_args!("/secret-id/{accessor}")
                            ));
                        }
                    }
                }
            }
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vault_shaped_values_are_told_apart() {
        assert!(token_shaped("hvs.CAESIJ3XUr2kB9fR8m0r2pSxKp3aTqGZ"));
        assert!(token_shaped("s.COToAbCdEfGhIjKlMnOpQrSt.nVEVpd"));
        assert!(!token_shaped("s.short"));
        assert!(!token_shaped("AKIAIOSFODNN7EXAMPLE"));
        assert!(uuid_shaped("c098607f-fe21-d1a9-4af9-17e77a7d2648"));
        assert!(!uuid_shaped("c098607f-fe21-d1a9-4af9-17e77a7d264"));
        assert!(!uuid_shaped("not-a-uuid-at-all-x"));
    }
}
