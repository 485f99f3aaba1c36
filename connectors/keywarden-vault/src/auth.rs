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
    /// When its TTL runs out (none: a token without a TTL).
    expires_at: Option<Instant>,
    renewable: bool,
    /// The TTL the login granted.
    login_ttl: Duration,
    /// When Vault last confirmed the token is alive after a call was denied.
    checked_at: Option<Instant>,
}

/// Whether `auth/token/lookup-self` tells a dead token from a denial.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum SelfLookup {
    /// Not known yet.
    #[default]
    Untried,
    Allowed,
    /// A fresh token was denied it too: keywarden's policy does not grant it, and a denial is
    /// taken as a denial.
    Denied,
}

/// A login Vault refused, and when to try again.
struct Refused {
    until: Instant,
    delay: Duration,
    message: String,
}

/// What keywarden's login holds now.
#[derive(Default)]
struct State {
    lease: Option<Lease>,
    refused: Option<Refused>,
    /// keywarden's own identity, looked up once per token.
    own: Option<Own>,
    self_lookup: SelfLookup,
}

/// keywarden's own Vault identity, which its actions never take away from it: the accessor of
/// the token it calls with and, for an AppRole login, the role and secret-id it logs in with.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Own {
    pub token_accessor: String,
    pub approle: Option<OwnRole>,
}

/// The AppRole role keywarden logs in through.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnRole {
    pub namespace: String,
    /// With its trailing slash.
    pub mount: String,
    /// From the token's `role_name` (none: Vault did not say).
    pub role: Option<String>,
    /// The accessor of keywarden's secret-id (none: its lookup was not allowed).
    pub secret_id_accessor: Option<String>,
}

/// Whether a secret-id is the one keywarden logs in with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OwnSecretId {
    No,
    Yes,
    /// It may be: keywarden cannot tell which of its role's (or mount's) secret-ids is its own.
    Unknown,
}

impl Own {
    /// Whether a secret-id of role `role` is the one keywarden logs in with.
    pub fn secret_id(
        &self,
        namespace: &str,
        mount: &str,
        role: &str,
        accessor: &str,
    ) -> OwnSecretId {
        let Some(own) = &self.approle else {
            return OwnSecretId::No;
        };
        if own.namespace != namespace
            || own.mount != mount
            || own.role.as_deref().is_some_and(|it| it != role)
        {
            return OwnSecretId::No;
        }
        match (&own.role, own.secret_id_accessor.as_deref()) {
            (Some(_), Some(it)) if it == accessor => OwnSecretId::Yes,
            (Some(_), Some(_)) => OwnSecretId::No,
            _ => OwnSecretId::Unknown,
        }
    }

    /// Whether it is, or may be.
    pub fn may_be_secret_id(
        &self,
        namespace: &str,
        mount: &str,
        role: &str,
        accessor: &str,
    ) -> bool {
        self.secret_id(namespace, mount, role, accessor) != OwnSecretId::No
    }
}

/// keywarden's token, shared by the clients of every namespace.
pub struct Auth {
    login: Login,
    state: Mutex<State>,
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

/// What to do for the next call.
#[derive(Debug, PartialEq, Eq)]
enum Next {
    /// Send the token held.
    Use,
    /// Renew the token held first.
    Renew,
    /// Log in; `fallback`: the token held is still valid, and is used when the login fails.
    Login { fallback: bool },
}

/// The first login refused waits this long before the next attempt; each refusal after it
/// doubles the wait, up to [`MAX_REFUSED_DELAY`].
const REFUSED_DELAY: Duration = Duration::from_secs(1);
const MAX_REFUSED_DELAY: Duration = Duration::from_secs(300);
/// After Vault confirmed the token alive, later denials within this time are taken as denials.
const CHECKED_FOR: Duration = Duration::from_secs(10);
/// A token kept after a renewal or login failed for a passing reason is tried again this soon.
const RETRY_AFTER: Duration = Duration::from_secs(30);

fn next(state: &State, now: Instant) -> Next {
    let Some(held) = &state.lease else {
        return Next::Login { fallback: false };
    };
    if held.expires_at.is_some_and(|at| now >= at) {
        return Next::Login { fallback: false };
    }
    if now < held.renew_at {
        return Next::Use;
    }
    if held.renewable {
        Next::Renew
    } else {
        Next::Login { fallback: true }
    }
}

fn copy(token: &Secret) -> Secret {
    Secret::new(token.expose().to_owned())
}

/// When to try again after keeping a token: soon, and before it expires.
fn retry_at(now: Instant, expires_at: Option<Instant>) -> Instant {
    let soon = now.checked_add(RETRY_AFTER).unwrap_or(now);
    match expires_at {
        Some(at) => soon.min(at),
        None => soon,
    }
}

impl Auth {
    pub fn new(login: Login) -> Self {
        Self {
            login,
            state: Mutex::new(State::default()),
        }
    }

    /// The token to send now: the given one, or the login's (logging in or renewing first when
    /// due). `http`, `address`: the client and server to log in through.
    pub async fn token(&self, http: &reqwest::Client, address: &str) -> Result<Secret, VaultError> {
        let approle = match &self.login {
            Login::Token(token) => return Ok(copy(token)),
            Login::AppRole(approle) => approle,
        };
        let mut state = self.state.lock().await;
        current(&mut state, http, address, approle).await
    }

    /// A call sent with `token` was denied: whether the token itself is dead (revoked, its uses
    /// used up, expired early) and was replaced, so the call is worth one more attempt. Vault
    /// answers a dead token with the same 403 as a denial; `lookup-self` tells, when keywarden's
    /// policy grants it (a fresh token denied it too shows it does not: from then on a denial is
    /// a denial, and no login is spent on one).
    pub async fn rejected(&self, http: &reqwest::Client, address: &str, token: &Secret) -> bool {
        let Login::AppRole(approle) = &self.login else {
            return false;
        };
        let mut state = self.state.lock().await;
        if state.self_lookup == SelfLookup::Denied {
            return false;
        }
        let now = Instant::now();
        let Some(held) = state.lease.as_mut() else {
            return true;
        };
        if held.token.expose() != token.expose() {
            // Replaced meanwhile: the next attempt sends the new one.
            return true;
        }
        if held
            .checked_at
            .is_some_and(|at| now.saturating_duration_since(at) < CHECKED_FOR)
        {
            return false;
        }
        match lookup_self(http, address, &approle.namespace, &held.token).await {
            Ok(mut answer) => {
                wipe(&mut answer);
                held.checked_at = Some(now);
                state.self_lookup = SelfLookup::Allowed;
                false
            }
            Err(VaultError::Denied { .. }) => {
                let first = state.self_lookup == SelfLookup::Untried;
                // Dead, or (never seen allowed) lookup-self itself not granted: a fresh login
                // tells; either way its token is the one used from now on.
                state.lease = None;
                state.own = None;
                let Ok(fresh) = current(&mut state, http, address, approle).await else {
                    return false;
                };
                if first {
                    match lookup_self(http, address, &approle.namespace, &fresh).await {
                        Ok(mut answer) => {
                            wipe(&mut answer);
                            state.self_lookup = SelfLookup::Allowed;
                        }
                        Err(VaultError::Denied { .. }) => {
                            tracing::warn!(
                                "keywarden's Vault token may not read `auth/token/lookup-self`: \
                                 a token that dies early (revoked, its uses used up) is not told \
                                 from a denied call. Grant `read` on it."
                            );
                            state.self_lookup = SelfLookup::Denied;
                            return true;
                        }
                        Err(_) => {}
                    }
                }
                tracing::warn!(
                    "keywarden's Vault token was refused (revoked, its uses used up, or expired \
                     early); logged in again."
                );
                true
            }
            Err(_) => false,
        }
    }

    /// keywarden's own identity (its token's accessor; its AppRole role and secret-id), looked
    /// up once per token. `namespace`: the calling client's, where a given token is valid.
    pub async fn own(
        &self,
        http: &reqwest::Client,
        address: &str,
        namespace: &str,
    ) -> Result<Own, VaultError> {
        let mut state = self.state.lock().await;
        for attempt in 0..2 {
            let (token, approle) = match &self.login {
                Login::Token(token) => (copy(token), None),
                Login::AppRole(approle) => (
                    current(&mut state, http, address, approle).await?,
                    Some(approle),
                ),
            };
            if let Some(own) = &state.own {
                return Ok(own.clone());
            }
            let at = approle.map_or(namespace, |it| it.namespace.as_str());
            match looked_up(http, address, at, approle, &token).await {
                Ok(own) => {
                    state.own = Some(own.clone());
                    return Ok(own);
                }
                // A dead token: the next attempt logs in again (unless lookup-self is known not
                // to be granted, when no login would tell).
                Err(VaultError::Denied { .. })
                    if attempt == 0
                        && approle.is_some()
                        && state.self_lookup != SelfLookup::Denied =>
                {
                    state.lease = None;
                }
                Err(err) => return Err(err),
            }
        }
        Err(VaultError::Denied {
            path: "auth/token/lookup-self".to_owned(),
        })
    }
}

/// keywarden's own identity, as `token` shows it in `namespace`.
async fn looked_up(
    http: &reqwest::Client,
    address: &str,
    namespace: &str,
    approle: Option<&AppRoleLogin>,
    token: &Secret,
) -> Result<Own, VaultError> {
    let mut me = lookup_self(http, address, namespace, token).await?;
    let accessor = me
        .pointer("/data/accessor")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let role = me
        .pointer("/data/meta/role_name")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let orphan = me.pointer("/data/orphan").and_then(Value::as_bool);
    // lookup-self answers with the token itself (`data.id`).
    wipe(&mut me);
    let token_accessor = accessor.ok_or_else(|| VaultError::Permanent {
        path: "auth/token/lookup-self".to_owned(),
        message: "the answer carries no accessor".to_owned(),
    })?;
    let approle = match approle {
        Some(login) => Some(OwnRole {
            namespace: login.namespace.clone(),
            mount: login.mount.clone(),
            secret_id_accessor: match &role {
                Some(role) => own_secret_id(http, address, login, role, token).await?,
                None => None,
            },
            role,
        }),
        None => {
            if orphan == Some(false) {
                tracing::warn!(
                    "keywarden's Vault token is a child token: revoking its parent revokes it too. \
                     Give keywarden an orphan token."
                );
            }
            None
        }
    };
    Ok(Own {
        token_accessor,
        approle,
    })
}

/// The current token of an AppRole login, renewed or replaced first when due.
async fn current(
    state: &mut State,
    http: &reqwest::Client,
    address: &str,
    approle: &AppRoleLogin,
) -> Result<Secret, VaultError> {
    let now = Instant::now();
    let mut fallback = false;
    match next(state, now) {
        Next::Use => {
            if let Some(held) = &state.lease {
                return Ok(copy(&held.token));
            }
        }
        Next::Renew => {
            if let Some(held) = state.lease.as_mut() {
                match renew(http, address, approle, &held.token).await {
                    Ok(granted) if granted.ttl >= held.login_ttl / 2 => {
                        let token = copy(&granted.token);
                        *held = leased(granted, now, held.login_ttl);
                        tracing::debug!("Renewed keywarden's Vault token.");
                        return Ok(token);
                    }
                    Ok(granted) => {
                        tracing::info!(
                            "keywarden's Vault token is near its maximum TTL; logging in again."
                        );
                        *held = leased(granted, now, held.login_ttl);
                        held.renewable = false;
                        fallback = true;
                    }
                    Err(VaultError::Denied { .. }) => {
                        tracing::warn!(
                            "Vault refused to renew keywarden's token; logging in again."
                        );
                        state.lease = None;
                        state.own = None;
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, "Cannot renew keywarden's Vault token now; it is kept, and renewed later.");
                        held.renew_at = retry_at(now, held.expires_at);
                        return Ok(copy(&held.token));
                    }
                }
            }
        }
        Next::Login { fallback: keep } => {
            if !keep {
                state.lease = None;
                state.own = None;
            }
            fallback = keep;
        }
    }
    // A still-valid token is used while a login cannot be had.
    let keep = |state: &mut State| {
        state.lease.as_mut().map(|held| {
            held.renew_at = retry_at(now, held.expires_at);
            copy(&held.token)
        })
    };
    if let Some(refused) = &state.refused
        && now < refused.until
    {
        let err = VaultError::Login {
            path: format!("auth/{}login", approle.mount),
            message: refused.message.clone(),
        };
        return match fallback.then(|| keep(state)).flatten() {
            Some(token) => Ok(token),
            None => Err(err),
        };
    }
    match login(http, address, approle).await {
        Ok(granted) => {
            let token = copy(&granted.token);
            let login_ttl = granted.ttl;
            state.lease = Some(leased(granted, now, login_ttl));
            state.refused = None;
            state.own = None;
            tracing::debug!("Logged in to Vault with keywarden's AppRole.");
            Ok(token)
        }
        Err(err) => {
            if !matches!(err, VaultError::Retryable { .. }) {
                let delay = state
                    .refused
                    .as_ref()
                    .map_or(REFUSED_DELAY, |it| (it.delay * 2).min(MAX_REFUSED_DELAY));
                tracing::warn!(
                    error = %err,
                    retry_in_secs = delay.as_secs(),
                    "Vault refused keywarden's AppRole login."
                );
                state.refused = Some(Refused {
                    until: now.checked_add(delay).unwrap_or(now),
                    delay,
                    message: err.to_string(),
                });
            }
            match fallback.then(|| keep(state)).flatten() {
                Some(token) => Ok(token),
                None => Err(err),
            }
        }
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
        expires_at: (!granted.ttl.is_zero())
            .then(|| now.checked_add(granted.ttl))
            .flatten(),
        renewable: granted.renewable && !granted.ttl.is_zero(),
        login_ttl,
        checked_at: None,
    }
}

async fn lookup_self(
    http: &reqwest::Client,
    address: &str,
    namespace: &str,
    token: &Secret,
) -> Result<Value, VaultError> {
    // A GET: the default policy grants `read` on it, and OpenBao refuses a POST in a namespace.
    call(
        http,
        reqwest::Method::GET,
        (address, namespace),
        "auth/token/lookup-self",
        Some(token),
        None,
    )
    .await
}

/// The accessor of the secret-id keywarden logs in with, when its policy lets it look it up
/// (none when it does not); a passing failure is an error, so nothing is taken for good on it.
async fn own_secret_id(
    http: &reqwest::Client,
    address: &str,
    login: &AppRoleLogin,
    role: &str,
    token: &Secret,
) -> Result<Option<String>, VaultError> {
    let path = format!("auth/{}role/{role}/secret-id/lookup", login.mount);
    let mut body = json!({ "secret_id": login.secret_id.expose() });
    let answer = post(http, address, &login.namespace, &path, Some(token), &body).await;
    wipe(&mut body);
    match answer {
        Ok(mut answer) => {
            let accessor = answer
                .pointer("/data/secret_id_accessor")
                .and_then(Value::as_str)
                .map(str::to_owned);
            wipe(&mut answer);
            Ok(accessor)
        }
        Err(err @ VaultError::Retryable { .. }) => Err(err),
        Err(err) => {
            tracing::warn!(
                error = %err,
                "Cannot look up keywarden's own secret-id (grant `update` on \
                 `role/<role>/secret-id/lookup`); every secret-id of its role is kept from \
                 keywarden's rotations and revocations."
            );
            Ok(None)
        }
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
    match answer {
        Ok(answer) => granted(&path, answer),
        Err(err @ VaultError::Retryable { .. }) => Err(err),
        // Anything else (refused, not found behind a proxy, a bad answer) is the login refused,
        // which no caller may take for "nothing there".
        Err(err) => Err(VaultError::Login {
            message: err.to_string(),
            path,
        }),
    }
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
    call(
        http,
        reqwest::Method::POST,
        (address, namespace),
        path,
        token,
        Some(body),
    )
    .await
}

async fn call(
    http: &reqwest::Client,
    method: reqwest::Method,
    (address, namespace): (&str, &str),
    path: &str,
    token: Option<&Secret>,
    body: Option<&Value>,
) -> Result<Value, VaultError> {
    let mut request = http.request(method, format!("{address}/v1/{path}"));
    if let Some(body) = body {
        request = request.json(body);
    }
    if !namespace.is_empty() {
        request = request.header("X-Vault-Namespace", namespace.trim_end_matches('/'));
    }
    if let Some(token) = token {
        let mut value = reqwest::header::HeaderValue::from_str(token.expose()).map_err(|_| {
            VaultError::Permanent {
                path: path.to_owned(),
                message: "the token is not a valid header value".to_owned(),
            }
        })?;
        value.set_sensitive(true);
        request = request.header("X-Vault-Token", value);
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

    fn state(ttl: u64, renewable: bool, at: Instant) -> State {
        State {
            lease: Some(leased(
                Granted {
                    token: Secret::new("t".to_owned()),
                    ttl: Duration::from_secs(ttl),
                    renewable,
                },
                at,
                Duration::from_secs(ttl),
            )),
            ..State::default()
        }
    }

    #[test]
    fn a_token_is_used_renewed_or_replaced_by_its_age() {
        let now = Instant::now();
        let at = |secs: u64| now + Duration::from_secs(secs);
        assert_eq!(
            next(&State::default(), now),
            Next::Login { fallback: false }
        );
        let held = state(30, true, now);
        assert_eq!(next(&held, at(10)), Next::Use);
        assert_eq!(next(&held, at(21)), Next::Renew);
        // Expired (idle past its TTL): no renewal, and nothing to fall back on.
        assert_eq!(next(&held, at(30)), Next::Login { fallback: false });
        // Not renewable: a login, with the token kept while it is valid.
        assert_eq!(
            next(&state(30, false, now), at(21)),
            Next::Login { fallback: true }
        );
    }

    #[test]
    fn own_secret_id_is_told_by_accessor_or_else_by_role() {
        let mut own = Own {
            token_accessor: "tok".to_owned(),
            approle: Some(OwnRole {
                namespace: "ns/".to_owned(),
                mount: "approle/".to_owned(),
                role: Some("keywarden".to_owned()),
                secret_id_accessor: Some("mine".to_owned()),
            }),
        };
        assert!(own.may_be_secret_id("ns/", "approle/", "keywarden", "mine"));
        assert!(!own.may_be_secret_id("ns/", "approle/", "keywarden", "other"));
        assert!(!own.may_be_secret_id("", "approle/", "keywarden", "mine"));
        assert!(!own.may_be_secret_id("ns/", "approle-b/", "keywarden", "mine"));
        assert!(!own.may_be_secret_id("ns/", "approle/", "ci", "mine"));
        // Its own secret-id's accessor unknown: every one of its role may be it.
        if let Some(role) = own.approle.as_mut() {
            role.secret_id_accessor = None;
        }
        assert!(own.may_be_secret_id("ns/", "approle/", "keywarden", "other"));
        assert!(!own.may_be_secret_id("ns/", "approle/", "ci", "other"));
        own.approle = None;
        assert!(!own.may_be_secret_id("ns/", "approle/", "keywarden", "mine"));
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
