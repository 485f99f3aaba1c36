//! The single, idempotent key steps the daemon's action state machines take on IAM users:
//! create, deliver, verify, deactivate, delete, deny older sessions.
//!
//! Every call acts with keywarden's own identity (or the role it assumes in the account), never
//! with the key being acted on: a leaked key may already be under AWS's quarantine policy. The one
//! exception is [`KeyActions::verify`], whose point is to use the new key.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_credential_types::Credentials;
use aws_sdk_iam::types::StatusType;
use aws_smithy_types_convert::date_time::DateTimeExt;
use chrono::{DateTime, SecondsFormat, Utc};
use keywarden_connector::{
    Capability, ConnectorError, CredentialKind, FieldError, HeldKey, KeyActions, KeyHolder,
    LastUse, NewKey, RotationTiming, Secret, SecretFields, SecretPath,
};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::client::{Clients, map_err, persist};
use crate::config::{DeliverRule, expand};
use crate::connector::{Inner, access_key_last_used, arn_user_name, list_access_keys};
use crate::deliver_file::{self, FileDestination};

/// The name of the inline deny policy quarantine attaches to a user (AWS's console uses
/// `AWSRevokeOlderSessions` for roles).
pub const DENY_POLICY: &str = "KeywardenRevokeOlderSessions";

/// [`KeyActions`] on the users of one `aws_iam` source.
#[derive(Debug)]
pub struct AwsKeyActions {
    pub(crate) inner: Arc<Inner>,
}

/// A resolved destination of one user's keys.
enum Destination {
    File(FileDestination),
    SecretsManager(String),
    /// A KV v2 secret of another source of the config (`vault`).
    VaultKv {
        source: String,
        at: SecretPath,
    },
}

/// The fields of a KV delivery: the `credential_process` shape's, one field each.
const KV_ID: &str = "AccessKeyId";
const KV_SECRET: &str = "SecretAccessKey";

/// The JSON a destination holds: AWS's `credential_process` output shape.
#[derive(serde::Serialize, serde::Deserialize)]
struct Delivered {
    #[serde(rename = "Version")]
    version: u32,
    #[serde(rename = "AccessKeyId")]
    access_key_id: String,
    #[serde(rename = "SecretAccessKey")]
    secret_access_key: String,
}

impl Drop for Delivered {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.secret_access_key);
    }
}

fn user_of(identity_id: &str) -> Result<&str, ConnectorError> {
    arn_user_name(identity_id)
        .ok_or_else(|| ConnectorError::NotFound(format!("`{identity_id}` is not an IAM user ARN")))
}

impl AwsKeyActions {
    async fn clients(&self, identity_id: &str) -> Result<(Clients, String), ConnectorError> {
        self.inner.clients_for_arn(identity_id).await
    }

    fn resolve(&self, identity_id: &str) -> Result<Destination, ConnectorError> {
        let user = user_of(identity_id)?;
        let account = crate::connector::arn_account(identity_id).ok_or_else(|| {
            ConnectorError::NotFound(format!("`{identity_id}` is not an IAM user ARN"))
        })?;
        let deliver = self
            .inner
            .deliver
            .iter()
            .find(|it| it.matcher.is_match(user))
            .ok_or_else(|| ConnectorError::Config {
                field: "rotation.deliver".to_owned(),
                message: format!(
                    "no delivery rule matches user `{user}`: a new key would have nowhere to go"
                ),
            })?;
        Ok(match &deliver.rule {
            DeliverRule::File { path, .. } => Destination::File(FileDestination::resolve(
                path,
                user,
                account,
                deliver.ownership,
            )?),
            DeliverRule::SecretsManager { secret_id, .. } => {
                Destination::SecretsManager(expand(secret_id, user, account))
            }
            DeliverRule::VaultKv {
                source,
                namespace,
                mount,
                path,
                ..
            } => {
                let path = expand(path, user, account);
                // A user name cannot lead the secret out of its place (IAM names have no `/`,
                // but a path template may put `{user}` anywhere).
                if path.split('/').any(|it| it == "." || it == "..") {
                    return Err(ConnectorError::Refused(format!(
                        "user `{user}` would put its key outside the configured KV path"
                    )));
                }
                Destination::VaultKv {
                    source: source.clone(),
                    at: SecretPath {
                        namespace: namespace.clone(),
                        mount: mount.clone(),
                        path,
                    },
                }
            }
        })
    }
}

#[async_trait]
impl KeyActions for AwsKeyActions {
    fn capabilities(&self, kind: CredentialKind) -> &'static [Capability] {
        match kind {
            CredentialKind::AccessKey => Capability::ALL,
            // Signing certificates and SSH keys are inventoried, not acted on (yet).
            _ => &[],
        }
    }

    async fn keys(&self, identity_id: &str) -> Result<KeyHolder, ConnectorError> {
        let user = user_of(identity_id)?;
        let (clients, _) = self.clients(identity_id).await?;
        let keys = list_access_keys(&clients, user)
            .await?
            .iter()
            .map(|key| {
                Ok(HeldKey {
                    id: key
                        .access_key_id()
                        .ok_or_else(|| {
                            ConnectorError::Permanent(format!(
                                "iam:ListAccessKeys {user}: a key without an id"
                            ))
                        })?
                        .to_owned(),
                    active: key.status() == Some(&StatusType::Active),
                    created_at: key.create_date().and_then(|it| it.to_chrono_utc().ok()),
                })
            })
            .collect::<Result<_, ConnectorError>>()?;
        Ok(KeyHolder {
            identity_id: identity_id.to_owned(),
            name: user.to_owned(),
            keys,
        })
    }

    fn destination(&self, identity_id: &str) -> Result<String, ConnectorError> {
        Ok(match self.resolve(identity_id)? {
            Destination::File(file) => format!("file {}", file.path().display()),
            Destination::SecretsManager(id) => format!("secrets_manager {id}"),
            Destination::VaultKv { source, at } => format!("vault_kv {source} {at}"),
        })
    }

    fn rotation_timing(&self) -> RotationTiming {
        let rotation = &self.inner.config.rotation;
        RotationTiming {
            overlap: rotation.overlap,
            last_use_settle: rotation.last_use_settle,
            grace: rotation.grace,
        }
    }

    async fn create_key(
        &self,
        identity_id: &str,
        _replacing: &str,
        _attempt: &str,
    ) -> Result<NewKey, ConnectorError> {
        let user = user_of(identity_id)?;
        let (clients, _) = self.clients(identity_id).await?;
        // Never retried, not even by the SDK: a create that timed out may have happened, and the
        // state machine looks for such a key before it creates another.
        clients.permit().await;
        let created = clients
            .iam
            .create_access_key()
            .user_name(user)
            .customize()
            .config_override(
                aws_sdk_iam::config::Builder::default()
                    .retry_config(aws_config::retry::RetryConfig::disabled()),
            )
            .send()
            .await
            .map_err(|err| {
                let limit = err
                    .as_service_error()
                    .is_some_and(|it| it.is_limit_exceeded_exception());
                if limit {
                    // The user holds two keys: an interrupted attempt may have created one, which
                    // the next try deletes before creating.
                    ConnectorError::Retryable {
                        message: format!(
                            "iam:CreateAccessKey {user}: the user already holds two keys"
                        ),
                        retry_after: None,
                    }
                } else {
                    map_err(&format!("iam:CreateAccessKey {user}"), err)
                }
            })?;
        let key = created.access_key().ok_or_else(|| {
            ConnectorError::Permanent(format!("iam:CreateAccessKey {user}: no key in the answer"))
        })?;
        Ok(NewKey {
            id: key.access_key_id().to_owned(),
            secret: Secret::new(key.secret_access_key().to_owned()),
        })
    }

    async fn deliver(
        &self,
        identity_id: &str,
        key: &NewKey,
        token: &str,
    ) -> Result<(), ConnectorError> {
        let body = Zeroizing::new(
            serde_json::to_string(&Delivered {
                version: 1,
                access_key_id: key.id.clone(),
                secret_access_key: key.secret.expose().to_owned(),
            })
            .map_err(|err| ConnectorError::Permanent(format!("encoding the key: {err}")))?,
        );
        match self.resolve(identity_id)? {
            Destination::VaultKv { source, at } => {
                let fields = SecretFields::from([
                    ("Version".to_owned(), Secret::new("1".to_owned())),
                    (KV_ID.to_owned(), Secret::new(key.id.clone())),
                    (
                        KV_SECRET.to_owned(),
                        Secret::new(key.secret.expose().to_owned()),
                    ),
                ]);
                // Delivered already (a resumed step): not written twice.
                if let Some(held) = self.inner.stores.get(&source)?.read(&at).await?
                    && held
                        .fields
                        .get(KV_ID)
                        .is_some_and(|it| it.expose() == key.id)
                    && held
                        .fields
                        .get(KV_SECRET)
                        .is_some_and(|it| it.expose() == key.secret.expose())
                {
                    return Ok(());
                }
                self.inner
                    .stores
                    .get(&source)?
                    .write(&at, &fields, None)
                    .await
                    .map(|_| ())
            }
            Destination::File(file) => {
                tokio::task::spawn_blocking(move || deliver_file::write(&file, body.as_bytes()))
                    .await
                    .map_err(|err| ConnectorError::Permanent(format!("file delivery: {err}")))?
            }
            Destination::SecretsManager(secret_id) => {
                let (clients, _) = self.clients(identity_id).await?;
                let sm = clients.secrets_manager();
                // The same token makes Secrets Manager treat a repeated delivery as the same
                // version (it must be 32 to 64 characters).
                let request_token = hex::encode(Sha256::digest(token.as_bytes()));
                clients.permit().await;
                let put = sm
                    .put_secret_value()
                    .secret_id(&secret_id)
                    .secret_string(body.as_str())
                    .client_request_token(&request_token)
                    .send()
                    .await;
                match put {
                    Ok(_) => Ok(()),
                    Err(err) => {
                        match map_err(&format!("secretsmanager:PutSecretValue {secret_id}"), err) {
                            ConnectorError::NotFound(_) => {
                                clients.permit().await;
                                sm.create_secret()
                                    .name(&secret_id)
                                    .secret_string(body.as_str())
                                    .client_request_token(&request_token)
                                    .description(
                                        "AWS access key of an IAM user, rotated by keywarden",
                                    )
                                    .send()
                                    .await
                                    .map(|_| ())
                                    .map_err(|err| {
                                        map_err(
                                            &format!("secretsmanager:CreateSecret {secret_id}"),
                                            err,
                                        )
                                    })
                            }
                            other => Err(other),
                        }
                    }
                }
            }
        }
    }

    async fn delivered(&self, identity_id: &str) -> Result<Option<NewKey>, ConnectorError> {
        let text: Option<Zeroizing<String>> = match self.resolve(identity_id)? {
            Destination::VaultKv { source, at } => {
                let Some(held) = self.inner.stores.get(&source)?.read(&at).await? else {
                    return Ok(None);
                };
                return match (held.fields.get(KV_ID), held.fields.get(KV_SECRET)) {
                    (Some(id), Some(secret)) => Ok(Some(NewKey {
                        id: id.expose().to_owned(),
                        secret: Secret::new(secret.expose().to_owned()),
                    })),
                    _ => Err(ConnectorError::Permanent(format!(
                        "the destination of {identity_id} ({at}) holds no {KV_ID} and \
                         {KV_SECRET}"
                    ))),
                };
            }
            Destination::File(file) => {
                tokio::task::spawn_blocking(move || deliver_file::read(&file))
                    .await
                    .map_err(|err| ConnectorError::Permanent(format!("file delivery: {err}")))??
            }
            Destination::SecretsManager(secret_id) => {
                let (clients, _) = self.clients(identity_id).await?;
                clients.permit().await;
                match clients
                    .secrets_manager()
                    .get_secret_value()
                    .secret_id(&secret_id)
                    .send()
                    .await
                {
                    Ok(got) => got.secret_string().map(|it| Zeroizing::new(it.to_owned())),
                    Err(err) => {
                        match map_err(&format!("secretsmanager:GetSecretValue {secret_id}"), err) {
                            ConnectorError::NotFound(_) => None,
                            other => return Err(other),
                        }
                    }
                }
            }
        };
        let Some(text) = text else {
            return Ok(None);
        };
        let delivered: Delivered = serde_json::from_str(&text).map_err(|err| {
            // Only the position and the kind of error: serde's message may quote the value.
            ConnectorError::Permanent(format!(
                "the destination of {identity_id} does not hold an access key in the credential_process shape ({:?} error at line {} column {})",
                err.classify(),
                err.line(),
                err.column()
            ))
        })?;
        Ok(Some(NewKey {
            id: delivered.access_key_id.clone(),
            secret: Secret::new(delivered.secret_access_key.clone()),
        }))
    }

    async fn verify(&self, identity_id: &str, key: &NewKey) -> Result<(), ConnectorError> {
        let (clients, _) = self.clients(identity_id).await?;
        let credentials = Credentials::new(
            key.id.clone(),
            key.secret.expose().to_owned(),
            None,
            None,
            "keywarden-verify",
        );
        let sdk = clients
            .sdk
            .to_builder()
            .credentials_provider(
                aws_credential_types::provider::SharedCredentialsProvider::new(credentials),
            )
            .build();
        let sts = aws_sdk_sts::Client::new(&sdk);
        let deadline = Instant::now()
            .checked_add(self.inner.config.rotation.verify_timeout)
            .ok_or_else(|| {
                FieldError::new(
                    "rotation.verify_timeout",
                    keywarden_connector::duration::DurationError::TooLong.to_string(),
                )
            })?;
        let mut wait = Duration::from_millis(500);
        loop {
            clients.permit().await;
            let result =
                sts.get_caller_identity().send().await.map_err(|err| {
                    map_err(&format!("sts:GetCallerIdentity with key {}", key.id), err)
                });
            let err = match result {
                Ok(me) => {
                    let arn = me.arn().unwrap_or_default();
                    if arn == identity_id {
                        return Ok(());
                    }
                    ConnectorError::Permanent(format!(
                        "key {} authenticates as {arn}, not as {identity_id}",
                        key.id
                    ))
                }
                Err(err) => err,
            };
            // A new key can take a while to work everywhere (IAM is eventually consistent).
            if Instant::now() >= deadline {
                return Err(err);
            }
            tracing::debug!(key = %key.id, error = %err, "New key does not work yet; retrying.");
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(10));
        }
    }

    async fn last_used(&self, identity_id: &str, key_id: &str) -> Result<LastUse, ConnectorError> {
        let (clients, _) = self.clients(identity_id).await?;
        Ok(access_key_last_used(&clients, key_id).await?.0)
    }

    async fn set_active(
        &self,
        identity_id: &str,
        key_id: &str,
        active: bool,
    ) -> Result<(), ConnectorError> {
        let user = user_of(identity_id)?;
        let (clients, _) = self.clients(identity_id).await?;
        let status = if active {
            StatusType::Active
        } else {
            StatusType::Inactive
        };
        persist(&clients, || async {
            clients
                .iam
                .update_access_key()
                .user_name(user)
                .access_key_id(key_id)
                .status(status.clone())
                .send()
                .await
                .map(|_| ())
                .map_err(|err| map_err(&format!("iam:UpdateAccessKey {user} {key_id}"), err))
        })
        .await
    }

    async fn delete_key(&self, identity_id: &str, key_id: &str) -> Result<(), ConnectorError> {
        let user = user_of(identity_id)?;
        let (clients, _) = self.clients(identity_id).await?;
        let result = persist(&clients, || async {
            clients
                .iam
                .delete_access_key()
                .user_name(user)
                .access_key_id(key_id)
                .send()
                .await
                .map(|_| ())
                .map_err(|err| map_err(&format!("iam:DeleteAccessKey {user} {key_id}"), err))
        })
        .await;
        match result {
            Err(ConnectorError::NotFound(_)) => Ok(()),
            other => other,
        }
    }

    async fn deny_sessions_before(
        &self,
        identity_id: &str,
        before: DateTime<Utc>,
    ) -> Result<String, ConnectorError> {
        let user = user_of(identity_id)?;
        let (clients, _) = self.clients(identity_id).await?;
        let document = deny_document(before);
        persist(&clients, || async {
            clients
                .iam
                .put_user_policy()
                .user_name(user)
                .policy_name(DENY_POLICY)
                .policy_document(&document)
                .send()
                .await
                .map(|_| ())
                .map_err(|err| map_err(&format!("iam:PutUserPolicy {user}"), err))
        })
        .await?;
        Ok(DENY_POLICY.to_owned())
    }

    async fn session_denials(&self, identity_id: &str) -> Result<Vec<String>, ConnectorError> {
        let user = user_of(identity_id)?;
        let (clients, _) = self.clients(identity_id).await?;
        let listed = persist(&clients, || async {
            clients
                .iam
                .list_user_policies()
                .user_name(user)
                .send()
                .await
                .map_err(|err| map_err(&format!("iam:ListUserPolicies {user}"), err))
        })
        .await?;
        Ok(listed
            .policy_names()
            .iter()
            .filter(|it| it.as_str() == DENY_POLICY)
            .cloned()
            .collect())
    }
}

/// The deny-everything policy for sessions issued before `before` (`aws:TokenIssueTime` exists
/// only for temporary credentials, so it cuts off sessions minted from a leaked key while the
/// deactivated key itself is refused by IAM).
pub fn deny_document(before: DateTime<Utc>) -> String {
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "KeywardenRevokeOlderSessions",
            "Effect": "Deny",
            "Action": ["*"],
            "Resource": ["*"],
            "Condition": {
                "DateLessThan": {
                    "aws:TokenIssueTime": before.to_rfc3339_opts(SecondsFormat::Secs, true)
                }
            }
        }]
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deny_document_cuts_off_older_sessions() {
        let at: DateTime<Utc> = "2026-11-25T10:00:00Z".parse().expect("time");
        let doc: serde_json::Value = serde_json::from_str(&deny_document(at)).expect("json");
        let statement = &doc["Statement"][0];
        assert_eq!(statement["Effect"], "Deny");
        assert_eq!(statement["Action"][0], "*");
        assert_eq!(
            statement["Condition"]["DateLessThan"]["aws:TokenIssueTime"],
            "2026-11-25T10:00:00Z"
        );
    }

    fn file_actions(path: &str) -> Result<AwsKeyActions, ConnectorError> {
        let config: crate::AwsIamConfig = serde_json::from_value(serde_json::json!({
            "rotation": {"deliver": [{"users": "*", "type": "file", "path": path}]}
        }))
        .expect("config");
        let connector = config.build("aws")?;
        Ok(AwsKeyActions {
            inner: connector.inner,
        })
    }

    fn new_key() -> NewKey {
        NewKey {
            id: "AKIANEWKEY".to_owned(),
            secret: Secret::new("very-secret-value".to_owned()),
        }
    }

    #[tokio::test]
    async fn a_user_name_never_leads_a_delivery_out_of_its_directory() {
        let root = tempfile::tempdir().expect("dir");
        let keys = root.path().join("keys");
        let actions = file_actions(&format!("{}/{{user}}", keys.display())).expect("build");
        for user in ["..", "."] {
            let arn = format!("arn:aws:iam::123456789012:user/{user}");
            let err = actions
                .deliver(&arn, &new_key(), "token")
                .await
                .expect_err(user);
            let message = err.to_string();
            assert!(matches!(err, ConnectorError::Permanent(_)), "{message}");
            assert!(message.contains(&format!("user `{user}`")), "{message}");
            assert!(message.contains(&keys.display().to_string()), "{message}");
            assert!(!message.contains("very-secret-value"), "{message}");
            assert!(actions.destination(&arn).is_err(), "{user}");
            assert!(actions.delivered(&arn).await.is_err(), "{user}");
        }
        // Nothing was written beside the directory.
        let beside: Vec<_> = std::fs::read_dir(root.path())
            .expect("ls")
            .map(|it| it.expect("entry").file_name())
            .filter(|it| it != "keys")
            .collect();
        assert!(beside.is_empty(), "{beside:?}");
        // `...` is a plain file name: delivered inside.
        let arn = "arn:aws:iam::123456789012:user/...";
        actions
            .deliver(arn, &new_key(), "token")
            .await
            .expect("deliver");
        assert!(keys.join("...").is_file());
        let back = actions.delivered(arn).await.expect("read").expect("there");
        assert_eq!(back.id, "AKIANEWKEY");
        // `{user}` in the directory part is refused with the configuration.
        let err = file_actions(&format!("{}/{{user}}/key.json", keys.display()))
            .expect_err("{user} in a directory");
        assert!(
            matches!(&err, ConnectorError::Config { field, .. } if field == "rotation.deliver[0].path"),
            "{err}"
        );
    }
}
