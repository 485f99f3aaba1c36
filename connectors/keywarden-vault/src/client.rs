//! One namespace of the server, through vaultrs's HTTP client (its TLS roots and timeout) with a
//! thin raw layer: vaultrs's typed calls carry the token of its settings, which cannot follow
//! keywarden's own token as it is renewed or replaced ([`crate::auth`]), and drop fields
//! keywarden reads (token accessors, token and Transit key reads). Every call is retried with
//! back-off when it failed for a passing reason, except the writes not safe to repeat.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use keywarden_connector::{ConnectorError, Secret};
use serde_json::Value;
use vaultrs::client::{VaultClient, VaultClientSettingsBuilder};

use crate::auth::Auth;

/// Why a call failed, shaped by what the caller does with it.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// The token may not do this: a scan error for this path, the scan goes on.
    #[error("permission denied on `{path}`")]
    Denied { path: String },
    /// Nothing there.
    #[error("`{path}` not found")]
    NotFound { path: String },
    /// A 5xx, a 429, a timeout or a refused connection: worth another attempt.
    #[error("`{path}`: server unavailable ({message})")]
    Retryable { path: String, message: String },
    /// keywarden's own login was refused (a wrong, expired or used-up secret-id): nothing can
    /// be read until it is fixed, so the scan fails as a whole and no caller takes it for
    /// "nothing there".
    #[error("keywarden's Vault login through `{path}` is refused: {message}")]
    Login { path: String, message: String },
    /// Anything else: the request or the answer was wrong.
    #[error("`{path}`: {message}")]
    Permanent { path: String, message: String },
}

impl VaultError {
    fn retryable(&self) -> bool {
        matches!(self, Self::Retryable { .. })
    }

    /// From an HTTP status and Vault's `errors` list (never a secret: Vault does not echo tokens).
    pub(crate) fn from_status(path: &str, status: u16, errors: &[String]) -> Self {
        let path = path.to_owned();
        let message = if errors.is_empty() {
            format!("status {status}")
        } else {
            format!("status {status}: {}", errors.join("; "))
        };
        match status {
            403 => Self::Denied { path },
            404 => Self::NotFound { path },
            429 | 500..=599 => Self::Retryable { path, message },
            _ => Self::Permanent { path, message },
        }
    }

    pub(crate) fn from_reqwest(path: &str, err: &reqwest::Error) -> Self {
        if err.is_timeout() || err.is_connect() || err.is_request() {
            Self::Retryable {
                path: path.to_owned(),
                message: if err.is_timeout() {
                    "timed out".to_owned()
                } else {
                    "cannot connect".to_owned()
                },
            }
        } else {
            Self::Permanent {
                path: path.to_owned(),
                message: "the answer could not be read".to_owned(),
            }
        }
    }
}

impl From<VaultError> for ConnectorError {
    fn from(err: VaultError) -> Self {
        match err {
            VaultError::Denied { .. } | VaultError::Login { .. } => {
                Self::Unauthorized(err.to_string())
            }
            VaultError::NotFound { .. } => Self::NotFound(err.to_string()),
            VaultError::Retryable { .. } => Self::Retryable {
                message: err.to_string(),
                retry_after: None,
            },
            VaultError::Permanent { .. } => Self::Permanent(err.to_string()),
        }
    }
}

pub(crate) fn errors_of(body: &Value) -> Vec<String> {
    body.get("errors")
        .and_then(Value::as_array)
        .map(|it| {
            it.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// A client of one namespace.
pub struct Namespace {
    /// `""` or `team-a/`.
    pub name: String,
    pub(crate) vault: VaultClient,
    address: String,
    auth: Arc<Auth>,
    backoff: ExponentialBuilder,
}

impl std::fmt::Debug for Namespace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Namespace")
            .field("name", &self.name)
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl Namespace {
    pub fn new(
        address: &str,
        namespace: &str,
        auth: Arc<Auth>,
        ca_file: Option<&Path>,
        timeout: Duration,
        max_attempts: u32,
    ) -> Result<Self, ConnectorError> {
        let mut settings = VaultClientSettingsBuilder::default();
        settings
            .address(address)
            // The raw layer sends keywarden's token itself; vaultrs's settings hold none.
            .token("")
            .timeout(Some(timeout))
            .verify(true)
            .ca_certs(
                ca_file
                    .map(|it| vec![it.display().to_string()])
                    .unwrap_or_default(),
            );
        if !namespace.is_empty() {
            settings.namespace(Some(namespace.trim_end_matches('/').to_owned()));
        }
        let settings = settings.build().map_err(|err| ConnectorError::Config {
            field: "address".to_owned(),
            message: err.to_string(),
        })?;
        let vault = VaultClient::new(settings).map_err(|err| ConnectorError::Config {
            field: if ca_file.is_some() {
                "ca_file"
            } else {
                "address"
            }
            .to_owned(),
            message: err.to_string(),
        })?;
        Ok(Self {
            name: namespace.to_owned(),
            vault,
            address: address.trim_end_matches('/').to_owned(),
            auth,
            backoff: ExponentialBuilder::default()
                .with_min_delay(Duration::from_millis(100))
                .with_max_delay(Duration::from_secs(5))
                .with_max_times(max_attempts.saturating_sub(1) as usize)
                .with_jitter(),
        })
    }

    /// A LIST of `path`'s keys; nothing there (Vault answers 404) is an empty list.
    pub async fn list(&self, path: &str) -> Result<Vec<String>, VaultError> {
        match self
            .raw(reqwest::Method::GET, &format!("{path}?list=true"), None)
            .await
        {
            Ok(body) => Ok(keys_of(&body)),
            Err(VaultError::NotFound { .. }) => Ok(Vec::new()),
            Err(err) => Err(err),
        }
    }

    /// `GET path`: the `data` of Vault's answer.
    pub async fn read(&self, path: &str) -> Result<Value, VaultError> {
        self.raw(reqwest::Method::GET, path, None)
            .await
            .map(|mut it| it.get_mut("data").map(Value::take).unwrap_or(Value::Null))
    }

    /// `POST path` with a JSON body: the `data` of Vault's answer (`null` for a 204).
    pub async fn write(&self, path: &str, body: &Value) -> Result<Value, VaultError> {
        self.raw(reqwest::Method::POST, path, Some(body))
            .await
            .map(|mut it| it.get_mut("data").map(Value::take).unwrap_or(Value::Null))
    }

    /// `PATCH path` with a JSON merge patch: the `data` of Vault's answer.
    pub async fn patch(&self, path: &str, body: &Value) -> Result<Value, VaultError> {
        self.raw(reqwest::Method::PATCH, path, Some(body))
            .await
            .map(|mut it| it.get_mut("data").map(Value::take).unwrap_or(Value::Null))
    }

    /// `POST path` once, not retried: for writes that are not safe to repeat (a Transit
    /// rotate, a secret-id created), whose caller reads the state again before it retries.
    pub async fn write_once(&self, path: &str, body: &Value) -> Result<Value, VaultError> {
        self.send(reqwest::Method::POST, path, Some(body))
            .await
            .map(|mut it| it.get_mut("data").map(Value::take).unwrap_or(Value::Null))
    }

    /// One request through vaultrs's HTTP client (its TLS roots and timeout), retried.
    async fn raw(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, VaultError> {
        (|| self.send(method.clone(), path, body))
            .retry(self.backoff)
            .when(VaultError::retryable)
            .await
    }

    /// keywarden's own identity, which its actions leave alone ([`crate::auth::Own`]).
    pub(crate) async fn own(&self) -> Result<crate::auth::Own, VaultError> {
        self.auth
            .own(&self.vault.http.http, &self.address, &self.name)
            .await
    }

    /// One request, one attempt; sent once more with a fresh login when it was denied because
    /// keywarden's token itself was dead (the denial is the token's: nothing was done).
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, VaultError> {
        let http = &self.vault.http.http;
        let token = self.auth.token(http, &self.address).await?;
        match self.send_with(&token, method.clone(), path, body).await {
            Err(VaultError::Denied { .. })
                if self.auth.rejected(http, &self.address, &token).await =>
            {
                let token = self.auth.token(http, &self.address).await?;
                self.send_with(&token, method, path, body).await
            }
            other => other,
        }
    }

    async fn send_with(
        &self,
        token: &Secret,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, VaultError> {
        let url = format!("{}/v1/{path}", self.address);
        let name = path.split('?').next().unwrap_or(path);
        {
            let http = &self.vault.http.http;
            let mut token =
                reqwest::header::HeaderValue::from_str(token.expose()).map_err(|_| {
                    VaultError::Permanent {
                        path: name.to_owned(),
                        message: "keywarden's token is not a valid header value".to_owned(),
                    }
                })?;
            // Never printed by a Debug of the request or its headers.
            token.set_sensitive(true);
            let mut request = http
                .request(method.clone(), &url)
                .header("X-Vault-Token", token);
            if !self.name.is_empty() {
                request = request.header("X-Vault-Namespace", self.name.trim_end_matches('/'));
            }
            if method == reqwest::Method::PATCH {
                // Vault takes a PATCH only as a JSON merge patch (RFC 7396).
                request = request.header(
                    reqwest::header::CONTENT_TYPE,
                    "application/merge-patch+json",
                );
            }
            if let Some(body) = body {
                request = request.json(body);
            }
            let response = request
                .send()
                .await
                .map_err(|err| VaultError::from_reqwest(name, &err))?;
            let status = response.status().as_u16();
            let bytes = response
                .bytes()
                .await
                .map_err(|err| VaultError::from_reqwest(name, &err))?;
            let body: Value = if bytes.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&bytes).map_err(|_| VaultError::Permanent {
                    path: name.to_owned(),
                    message: format!("status {status}: the answer is not JSON"),
                })?
            };
            if (200..300).contains(&status) {
                Ok(body)
            } else {
                Err(VaultError::from_status(name, status, &errors_of(&body)))
            }
        }
    }
}

/// `data.keys` of a LIST answer.
fn keys_of(body: &Value) -> Vec<String> {
    body.pointer("/data/keys")
        .and_then(Value::as_array)
        .map(|it| {
            it.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_what_the_caller_does() {
        assert!(matches!(
            VaultError::from_status("p", 403, &["permission denied".to_owned()]),
            VaultError::Denied { .. }
        ));
        assert!(matches!(
            VaultError::from_status("p", 404, &[]),
            VaultError::NotFound { .. }
        ));
        for status in [429, 500, 503] {
            assert!(VaultError::from_status("p", status, &[]).retryable());
        }
        let bad = VaultError::from_status("sys/x", 400, &["invalid".to_owned()]);
        assert!(!bad.retryable());
        assert_eq!(bad.to_string(), "`sys/x`: status 400: invalid");
    }

    #[test]
    fn list_keys_come_from_data_keys() {
        let body = serde_json::json!({"data": {"keys": ["a", "b/"]}});
        assert_eq!(keys_of(&body), ["a", "b/"]);
        assert!(keys_of(&serde_json::json!({"data": {}})).is_empty());
    }
}
