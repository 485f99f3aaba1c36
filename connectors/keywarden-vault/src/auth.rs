//! keywarden's own Vault token: given (from an environment variable or a file), or obtained by an
//! AppRole login and kept alive — renewed (`auth/token/renew-self`) once two thirds of its TTL
//! have passed, and replaced by a fresh login when it cannot be renewed (not renewable, refused)
//! or a renewal grants less than half the TTL the login did (its maximum TTL is near).
//!
//! The role id, secret id and token live in [`Secret`]; the JSON that carried them is wiped.

use std::time::{Duration, Instant};

use keywarden_connector::Secret;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::client::VaultError;
use crate::deliver::wipe;

/// How keywarden gets its token.
pub enum Login {
    /// A token given as it is.
    Token(Secret),
    /// An AppRole login.
    AppRole(AppRoleLogin),
}

/// An AppRole login of keywarden's own identity.
pub struct AppRoleLogin {
    /// The namespace the AppRole method is mounted in (`""`: the root).
    pub namespace: String,
    /// The auth mount, with its trailing slash (`approle/`).
    pub mount: String,
    pub role_id: Secret,
    pub secret_id: Secret,
}

/// A token from a login, and when to renew it.
struct Lease {
    token: Secret,
    renew_at: Instant,
    renewable: bool,
    /// The TTL the login granted.
    login_ttl: Duration,
}

/// keywarden's token, shared by the clients of every namespace.
pub struct Auth {
    login: Login,
    lease: Mutex<Option<Lease>>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.login {
            Login::Token(_) => "Auth(token)",
            Login::AppRole(_) => "Auth(approle)",
        })
    }
}

/// What a login or renewal answered.
struct Granted {
    token: Secret,
    ttl: Duration,
    renewable: bool,
}

impl Auth {
    pub fn new(login: Login) -> Self {
        Self {
            login,
            lease: Mutex::new(None),
        }
    }

    /// The token to send now: the given one, or the login's (logging in or renewing first when
    /// due). `http`, `address`: the client and server to log in through.
    pub async fn token(&self, http: &reqwest::Client, address: &str) -> Result<Secret, VaultError> {
        let approle = match &self.login {
            Login::Token(token) => return Ok(Secret::new(token.expose().to_owned())),
            Login::AppRole(approle) => approle,
        };
        let mut lease = self.lease.lock().await;
        let now = Instant::now();
        if let Some(held) = lease.as_ref() {
            if now < held.renew_at {
                return Ok(Secret::new(held.token.expose().to_owned()));
            }
            if held.renewable {
                let login_ttl = held.login_ttl;
                match renew(http, address, approle, &held.token).await {
                    Ok(granted) if granted.ttl >= login_ttl / 2 => {
                        let token = Secret::new(granted.token.expose().to_owned());
                        *lease = Some(leased(granted, now, login_ttl));
                        tracing::debug!("Renewed keywarden's Vault token.");
                        return Ok(token);
                    }
                    Ok(_) => tracing::info!(
                        "keywarden's Vault token is near its maximum TTL; logging in again."
                    ),
                    Err(err) => {
                        tracing::warn!(error = %err, "Cannot renew keywarden's Vault token; logging in again.")
                    }
                }
            }
        }
        let granted = login(http, address, approle).await?;
        let token = Secret::new(granted.token.expose().to_owned());
        let login_ttl = granted.ttl;
        *lease = Some(leased(granted, now, login_ttl));
        tracing::debug!("Logged in to Vault with keywarden's AppRole.");
        Ok(token)
    }
}

/// A lease renewed once two thirds of its TTL have passed (a token without a TTL, never).
fn leased(granted: Granted, now: Instant, login_ttl: Duration) -> Lease {
    let renew_at = if granted.ttl.is_zero() {
        now.checked_add(Duration::from_secs(100 * 365 * 24 * 3600))
    } else {
        now.checked_add(granted.ttl.mul_f64(2.0 / 3.0))
    };
    Lease {
        token: granted.token,
        renew_at: renew_at.unwrap_or(now),
        renewable: granted.renewable && !granted.ttl.is_zero(),
        login_ttl,
    }
}

async fn login(
    http: &reqwest::Client,
    address: &str,
    approle: &AppRoleLogin,
) -> Result<Granted, VaultError> {
    let path = format!("auth/{}login", approle.mount);
    let mut body = json!({
        "role_id": approle.role_id.expose(),
        "secret_id": approle.secret_id.expose(),
    });
    let answer = post(http, address, &approle.namespace, &path, None, &body).await;
    wipe(&mut body);
    granted(&path, answer?)
}

async fn renew(
    http: &reqwest::Client,
    address: &str,
    approle: &AppRoleLogin,
    token: &Secret,
) -> Result<Granted, VaultError> {
    let path = "auth/token/renew-self";
    let answer = post(
        http,
        address,
        &approle.namespace,
        path,
        Some(token),
        &json!({}),
    )
    .await?;
    granted(path, answer)
}

/// The token, TTL and renewability of a login's or renewal's `auth`.
fn granted(path: &str, mut answer: Value) -> Result<Granted, VaultError> {
    let ttl = answer
        .pointer("/auth/lease_duration")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let renewable = answer
        .pointer("/auth/renewable")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let token = answer
        .pointer_mut("/auth/client_token")
        .map(Value::take)
        .and_then(|it| match it {
            Value::String(text) => Some(Secret::new(text)),
            _ => None,
        });
    wipe(&mut answer);
    let token = token.ok_or_else(|| VaultError::Permanent {
        path: path.to_owned(),
        message: "the answer carries no token".to_owned(),
    })?;
    Ok(Granted {
        token,
        ttl: Duration::from_secs(ttl),
        renewable,
    })
}

/// One POST of the login or renewal (not retried here: the call that needed the token is).
async fn post(
    http: &reqwest::Client,
    address: &str,
    namespace: &str,
    path: &str,
    token: Option<&Secret>,
    body: &Value,
) -> Result<Value, VaultError> {
    let mut request = http.post(format!("{address}/v1/{path}")).json(body);
    if !namespace.is_empty() {
        request = request.header("X-Vault-Namespace", namespace.trim_end_matches('/'));
    }
    if let Some(token) = token {
        request = request.header("X-Vault-Token", token.expose());
    }
    let response = request
        .send()
        .await
        .map_err(|err| VaultError::from_reqwest(path, &err))?;
    let status = response.status().as_u16();
    let answer: Value = response.json().await.unwrap_or(Value::Null);
    match status {
        200..=299 => Ok(answer),
        // A login refused (a wrong or used-up secret id) is keywarden's own access refused.
        400 | 401 | 403 => Err(VaultError::Denied {
            path: path.to_owned(),
        }),
        _ => Err(VaultError::from_status(
            path,
            status,
            &crate::client::errors_of(&answer),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_is_renewed_after_two_thirds_of_its_ttl() {
        let now = Instant::now();
        let lease = leased(
            Granted {
                token: Secret::new("t".to_owned()),
                ttl: Duration::from_secs(30),
                renewable: true,
            },
            now,
            Duration::from_secs(30),
        );
        assert_eq!(lease.renew_at.duration_since(now), Duration::from_secs(20));
        assert!(lease.renewable);
        let forever = leased(
            Granted {
                token: Secret::new("t".to_owned()),
                ttl: Duration::ZERO,
                renewable: true,
            },
            now,
            Duration::ZERO,
        );
        assert!(forever.renew_at > now + Duration::from_secs(3600 * 24 * 365));
        assert!(!forever.renewable, "a token without a TTL is never renewed");
    }

    #[test]
    fn an_answer_without_a_token_is_an_error_that_shows_nothing() {
        let err = granted("auth/approle/login", json!({"auth": null})).err();
        assert!(matches!(err, Some(VaultError::Permanent { .. })));
        let ok = granted(
            "auth/approle/login",
            json!({"auth": {"client_token": "s.x", "lease_duration": 60, "renewable": true}}),
        )
        .expect("granted");
        assert_eq!(ok.token.expose(), "s.x");
        assert_eq!(ok.ttl, Duration::from_secs(60));
    }
}
