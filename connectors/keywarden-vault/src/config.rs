//! The configuration of a `vault` source: where the server is, how keywarden authenticates,
//! which namespaces it reads, how hard it pushes.

use std::path::{Path, PathBuf};
use std::time::Duration;

use keywarden_connector::{ConnectorError, FieldError, Secret};
use serde::Deserialize;

use crate::connector::VaultConnector;

/// A `vault` source: one Vault or OpenBao server, one or more of its namespaces.
///
/// ```yaml
/// type: vault
/// address: https://vault.internal:8200
/// token_file: /run/keywarden/vault-token   # or token_env: VAULT_TOKEN
/// ca_file: /etc/keywarden/vault-ca.pem
/// namespaces: ["", "team-a/"]              # "" is the root namespace (the default)
/// owner_key: owner                         # metadata key naming an owner
/// purpose_key: purpose
/// concurrency: 8
/// timeout: 10s
/// max_attempts: 4
/// transit_retire_after: 7d                 # older Transit versions accepted after a rotation
/// full_refresh: 24h                        # every secret-id looked up again at least this often
/// rotation:                                # AppRole secret-ids (see `rotation.rs`)
///   overlap: 24h
///   deliver:
///     - roles: "ci-*"
///       type: vault_kv
///       mount: secret/
///       path: "approle/{role}"
/// audit_log:                               # Vault's file audit device, for last use
///   path: /var/log/vault/audit.log
///   device: file                           # the device's path in `sys/audit`
/// ```
///
/// The token is read from the named environment variable or file when the source is built; it
/// is never written in the config file itself.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaultConfig {
    /// The server's address, `http://` or `https://`.
    pub address: String,
    /// An environment variable holding keywarden's token.
    #[serde(default)]
    pub token_env: Option<String>,
    /// A file holding keywarden's token (its first line).
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Or an AppRole login of keywarden's own identity, its token renewed before it expires.
    #[serde(default)]
    pub approle: Option<AppRoleConfig>,
    /// A PEM bundle of the CAs the server's certificate is checked against, besides the system's.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// The namespaces read, each `""` (root) or a path ending in `/`.
    #[serde(default = "default_namespaces")]
    pub namespaces: Vec<String>,
    /// The metadata key (KV `custom_metadata`, secret-id and entity metadata) that names an owner;
    /// defaults to the config file's `defaults.owner_tag`, else `owner`.
    #[serde(default)]
    pub owner_key: Option<String>,
    /// The metadata key that says what something is for.
    #[serde(default)]
    pub purpose_key: Option<String>,
    /// How many lookups are in flight at once.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// How long one call may take.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// How many attempts a call that failed for a passing reason (a 5xx, 429, a timeout) gets.
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    /// Vault's file audit log, read incrementally for when tokens, secret-ids and Transit keys
    /// were last used.
    #[serde(default)]
    pub audit_log: Option<AuditLogConfig>,
    /// How long a Transit key's older versions stay accepted after keywarden rotates it, before
    /// its minimum versions are raised.
    #[serde(default = "default_retire_after", with = "humantime_serde")]
    pub transit_retire_after: Duration,
    /// Scans between full ones look up only the secret-ids a role's list shows new; every
    /// secret-id is looked up again at least this often (and at the first scan).
    #[serde(default = "default_full_refresh", with = "humantime_serde")]
    pub full_refresh: Duration,
    /// Rotation of AppRole secret-ids: the overlap and where new ones are delivered.
    #[serde(default)]
    pub rotation: crate::rotation::RotationConfig,
}

fn default_full_refresh() -> Duration {
    Duration::from_secs(24 * 3600)
}

fn default_retire_after() -> Duration {
    Duration::from_secs(7 * 24 * 3600)
}

/// keywarden's own AppRole login: the role id and secret id are read from files (never written in
/// the config file itself).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppRoleConfig {
    /// The AppRole auth mount, with its trailing slash.
    #[serde(default = "default_approle_mount")]
    pub mount: String,
    /// The namespace it is mounted in (`""`: the root).
    #[serde(default)]
    pub namespace: String,
    /// A file holding the role id (its first line).
    pub role_id_file: PathBuf,
    /// A file holding the secret id (its first line).
    pub secret_id_file: PathBuf,
}

fn default_approle_mount() -> String {
    "approle/".to_owned()
}

/// Where Vault's file audit device writes, and its name.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditLogConfig {
    /// The device's `file_path`, readable by keywarden (relative to the config file).
    pub path: PathBuf,
    /// The device's path in `sys/audit` (`file`), for `sys/audit-hash/<device>`.
    #[serde(default = "default_device")]
    pub device: String,
    /// Whether the changes the log shows decide which KV metadata, Transit keys and tokens are
    /// read again between full refreshes (off where the file does not see every write: an HA
    /// cluster's other nodes, filtered devices, replication).
    #[serde(default = "default_true")]
    pub changes: bool,
}

fn default_true() -> bool {
    true
}

fn default_device() -> String {
    "file".to_owned()
}

fn default_namespaces() -> Vec<String> {
    vec![String::new()]
}

fn default_concurrency() -> usize {
    8
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

fn default_attempts() -> u32 {
    4
}

impl VaultConfig {
    /// The fields that cannot work, each named; no I/O.
    pub fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut errors = Vec::new();
        if !(self.address.starts_with("http://") || self.address.starts_with("https://")) {
            errors.push(FieldError::new(
                "address",
                format!("`{}` is not an http:// or https:// URL", self.address),
            ));
        }
        match (&self.token_env, &self.token_file, &self.approle) {
            (None, None, None) => errors.push(FieldError::new(
                "token_env",
                "name where the token comes from: token_env, token_file or approle",
            )),
            (Some(_), Some(_), _) => errors.push(FieldError::new(
                "token_file",
                "give token_env or token_file, not both",
            )),
            (Some(_), None, Some(_)) | (None, Some(_), Some(_)) => errors.push(FieldError::new(
                "approle",
                "give a token (token_env, token_file) or an approle login, not both",
            )),
            _ => {}
        }
        if let Some(approle) = &self.approle {
            if !approle.mount.ends_with('/') || approle.mount.trim_matches('/').is_empty() {
                errors.push(FieldError::new(
                    "approle.mount",
                    "must name a mount and end with `/` (`approle/`)",
                ));
            }
            if !approle.namespace.is_empty() && !approle.namespace.ends_with('/') {
                errors.push(FieldError::new(
                    "approle.namespace",
                    "must end with `/` (`team-a/`), or be left out for the root",
                ));
            }
        }
        if self
            .token_env
            .as_deref()
            .is_some_and(|it| it.trim().is_empty())
        {
            errors.push(FieldError::new("token_env", "must not be empty"));
        }
        if self.namespaces.is_empty() {
            errors.push(FieldError::new(
                "namespaces",
                "must list at least one namespace (\"\" for the root)",
            ));
        }
        for (idx, namespace) in self.namespaces.iter().enumerate() {
            if let Err(message) = check_namespace(namespace) {
                errors.push(FieldError::new(format!("namespaces[{idx}]"), message));
            }
            if self.namespaces[..idx].contains(namespace) {
                errors.push(FieldError::new(
                    format!("namespaces[{idx}]"),
                    format!("`{namespace}` is listed twice"),
                ));
            }
        }
        for (field, value) in [
            ("owner_key", self.owner_key.as_deref()),
            ("purpose_key", self.purpose_key.as_deref()),
        ] {
            if value.is_some_and(|it| it.trim().is_empty()) {
                errors.push(FieldError::new(
                    field,
                    "must not be empty; leave it out for the default",
                ));
            }
        }
        if self.concurrency == 0 || self.concurrency > 256 {
            errors.push(FieldError::new("concurrency", "must be between 1 and 256"));
        }
        if self.timeout.is_zero() {
            errors.push(FieldError::new("timeout", "must be more than 0s"));
        }
        if self.max_attempts == 0 || self.max_attempts > 20 {
            errors.push(FieldError::new("max_attempts", "must be between 1 and 20"));
        }
        if keywarden_connector::duration::check_duration(self.transit_retire_after).is_err() {
            errors.push(FieldError::new(
                "transit_retire_after",
                "longer than 100 years, the longest duration accepted",
            ));
        }
        self.rotation.validate(&mut errors);
        if keywarden_connector::duration::check_duration(self.full_refresh).is_err() {
            errors.push(FieldError::new(
                "full_refresh",
                "longer than 100 years, the longest duration accepted",
            ));
        }
        if let Some(log) = &self.audit_log {
            if log.path.as_os_str().is_empty() {
                errors.push(FieldError::new("audit_log.path", "must not be empty"));
            }
            let device = log.device.trim_end_matches('/');
            if device.is_empty()
                || !device
                    .chars()
                    .all(|it| it.is_ascii_alphanumeric() || matches!(it, '-' | '_' | '/'))
            {
                errors.push(FieldError::new(
                    "audit_log.device",
                    format!(
                        "`{}` is not an audit device path (letters, digits, `-`, `_`, `/`)",
                        log.device
                    ),
                ));
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// Reads the token and sets up a client per namespace. `base_dir` resolves relative paths.
    pub fn build(&self, source: &str, base_dir: &Path) -> Result<VaultConnector, ConnectorError> {
        let login = match &self.approle {
            // Logged in at the first call, not here: building makes no request.
            Some(approle) => crate::auth::Login::AppRole(crate::auth::AppRoleLogin {
                namespace: approle.namespace.clone(),
                mount: approle.mount.clone(),
                role_id: first_line(
                    &base_dir.join(&approle.role_id_file),
                    "approle.role_id_file",
                )?,
                secret_id: first_line(
                    &base_dir.join(&approle.secret_id_file),
                    "approle.secret_id_file",
                )?,
            }),
            None => crate::auth::Login::Token(self.token(base_dir)?),
        };
        let ca_file = self.ca_file.as_ref().map(|it| base_dir.join(it));
        let audit_log = self.audit_log.as_ref().map(|it| base_dir.join(&it.path));
        VaultConnector::new(source, self, login, ca_file, audit_log)
    }

    fn token(&self, base_dir: &Path) -> Result<Secret, ConnectorError> {
        let config = |field: &str, message: String| ConnectorError::Config {
            field: field.to_owned(),
            message,
        };
        if let Some(file) = &self.token_file {
            return first_line(&base_dir.join(file), "token_file");
        }
        let raw = if let Some(name) = &self.token_env {
            std::env::var(name)
                .map_err(|_| config("token_env", format!("the environment has no `{name}`")))?
        } else if let Some(file) = &self.token_file {
            let path = base_dir.join(file);
            std::fs::read_to_string(&path).map_err(|err| {
                config(
                    "token_file",
                    format!("cannot read {}: {err}", path.display()),
                )
            })?
        } else {
            return Err(config("token_env", "no token source".to_owned()));
        };
        let token = Secret::new(raw);
        let line = token.expose().lines().next().unwrap_or_default().trim();
        if line.is_empty() {
            return Err(config(
                if self.token_env.is_some() {
                    "token_env"
                } else {
                    "token_file"
                },
                "the token is empty".to_owned(),
            ));
        }
        Ok(Secret::new(line.to_owned()))
    }
}

/// The first line of a file holding a secret, as a [`Secret`]; the error names `field` and the
/// file, never what it holds.
fn first_line(path: &Path, field: &str) -> Result<Secret, ConnectorError> {
    let config = |message: String| ConnectorError::Config {
        field: field.to_owned(),
        message,
    };
    let raw = Secret::new(
        std::fs::read_to_string(path)
            .map_err(|err| config(format!("cannot read {}: {err}", path.display())))?,
    );
    let line = raw.expose().lines().next().unwrap_or_default().trim();
    if line.is_empty() {
        return Err(config(format!("{}: the token is empty", path.display())));
    }
    Ok(Secret::new(line.to_owned()))
}

impl VaultConfig {
    /// The owner metadata key, `owner` unless configured.
    pub fn owner_key(&self) -> &str {
        self.owner_key.as_deref().unwrap_or("owner")
    }

    /// The purpose metadata key, `purpose` unless configured.
    pub fn purpose_key(&self) -> &str {
        self.purpose_key.as_deref().unwrap_or("purpose")
    }
}

/// `""`, or path segments of letters, digits, `-` and `_`, each followed by `/`.
fn check_namespace(namespace: &str) -> Result<(), String> {
    if namespace.is_empty() {
        return Ok(());
    }
    let Some(inner) = namespace.strip_suffix('/') else {
        return Err(format!("`{namespace}` must end with `/` (e.g. `team-a/`)"));
    };
    let valid = inner.split('/').all(|segment| {
        !segment.is_empty()
            && segment
                .chars()
                .all(|it| it.is_ascii_alphanumeric() || it == '-' || it == '_')
    });
    if valid {
        Ok(())
    } else {
        Err(format!(
            "`{namespace}` is not a namespace path (segments of letters, digits, `-`, `_`)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> VaultConfig {
        serde_json::from_str(json).expect("config")
    }

    #[test]
    fn defaults_read_the_root_namespace() {
        let config = parse(r#"{"address":"http://127.0.0.1:8200","token_env":"VAULT_TOKEN"}"#);
        assert_eq!(config.validate(), Ok(()));
        assert_eq!(config.namespaces, [""]);
        assert_eq!(config.concurrency, 8);
        assert_eq!(config.owner_key(), "owner");
    }

    #[test]
    fn validate_names_every_bad_field() {
        let config = parse(
            r#"{"address":"vault:8200","token_env":" ","token_file":"t",
                "namespaces":["team-a","a//","ok/","ok/"],"owner_key":"","concurrency":0,
                "timeout":"0s","max_attempts":0}"#,
        );
        let errors = config.validate().unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|it| it.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "address",
                "token_file",
                "token_env",
                "namespaces[0]",
                "namespaces[1]",
                "namespaces[3]",
                "owner_key",
                "concurrency",
                "timeout",
                "max_attempts"
            ],
            "{errors:?}"
        );
        let none = parse(r#"{"address":"http://x","namespaces":[]}"#);
        let fields: Vec<String> = none
            .validate()
            .unwrap_err()
            .into_iter()
            .map(|it| it.field)
            .collect();
        assert_eq!(fields, ["token_env", "namespaces"]);
    }

    #[test]
    fn the_audit_log_names_its_file_and_device() {
        let config = parse(
            r#"{"address":"http://x","token_env":"T","audit_log":{"path":"/var/log/vault/audit.log"}}"#,
        );
        assert_eq!(config.validate(), Ok(()));
        assert_eq!(
            config.audit_log.as_ref().map(|it| it.device.as_str()),
            Some("file")
        );
        let bad = parse(
            r#"{"address":"http://x","token_env":"T","audit_log":{"path":"","device":"a b"}}"#,
        );
        let fields: Vec<String> = bad
            .validate()
            .unwrap_err()
            .into_iter()
            .map(|it| it.field)
            .collect();
        assert_eq!(fields, ["audit_log.path", "audit_log.device"]);
        let err = serde_json::from_str::<VaultConfig>(
            r#"{"address":"http://x","token_env":"T","audit_log":{"path":"a","hmac":false}}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("unknown field `hmac`"), "{err}");
    }

    #[test]
    fn unknown_fields_are_refused() {
        let err = serde_json::from_str::<VaultConfig>(
            r#"{"address":"http://x","token_env":"T","token":"s.abc"}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("unknown field `token`"), "{err}");
    }

    #[test]
    fn the_token_comes_from_its_file_first_line_and_is_never_shown() {
        let dir = std::env::temp_dir().join(format!("kw-vault-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(dir.join("token"), "s.sekrit-token-value\nignored\n").expect("write");
        let config = parse(r#"{"address":"http://x","token_file":"token"}"#);
        let token = config.token(&dir).expect("token");
        assert_eq!(token.expose(), "s.sekrit-token-value");
        assert!(!format!("{token:?}").contains("sekrit"));
        std::fs::write(dir.join("token"), "\n").expect("write");
        let err = config.token(&dir).unwrap_err();
        assert!(err.to_string().contains("token is empty"), "{err}");
        assert!(err.to_string().contains("`token_file`"), "{err}");
        let missing = parse(r#"{"address":"http://x","token_env":"KEYWARDEN_NO_SUCH_VAR_9"}"#);
        let err = missing.token(&dir).unwrap_err();
        assert!(err.to_string().contains("KEYWARDEN_NO_SUCH_VAR_9"), "{err}");
        std::fs::remove_dir_all(&dir).ok();
    }
}
