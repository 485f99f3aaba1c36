//! The configuration of an `aws_iam` source: which accounts, how to reach them, how hard to push,
//! where rotated keys go.

use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use globset::{Glob, GlobMatcher};
use keywarden_connector::{ConnectorError, FieldError, SecretStores};
use nix::unistd::{Gid, Group, Uid, User};
use serde::Deserialize;

use crate::connector::AwsIamConnector;
use crate::deliver_file::Ownership;

/// An `aws_iam` source: the IAM users of one AWS account, or of several reached by assuming a role
/// in each.
///
/// ```yaml
/// type: aws_iam
/// region: us-east-1
/// accounts:
///   - id: "111111111111"
///   - id: "222222222222"
///     role_arn: arn:aws:iam::222222222222:role/audit/keywarden
/// role_name: keywarden            # assumed in each listed account unless it names its role_arn
/// owner_tag: owner              # default: the config file's defaults.owner_tag
/// purpose_tag: purpose
/// full_refresh: 24h
/// ssh_public_keys: false         # CodeCommit SSH keys: one more call per user
/// rotation:
///   overlap: 1h
///   grace: 7d
///   deliver:
///     - users: "ci-*"
///       type: secrets_manager
///       secret_id: "ci/{user}/aws"
///     - users: "deploy-*"
///       type: vault_kv                  # a KV v2 secret of a `vault` source of this config
///       source: vault
///       namespace: "team-a/"            # default: the root namespace
///       mount: "secret/"
///       path: "aws/{account_id}/{user}"
///     - users: "*"
///       type: file
///       path: "/run/keywarden/{account_id}/{user}.json"
/// ```
///
/// Credentials come from the standard AWS chain (environment, profile, web identity, instance
/// role); `profile` picks a named profile.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsIamConfig {
    /// The region for STS and Secrets Manager (IAM itself is global). Defaults to the AWS chain's,
    /// else `us-east-1`.
    #[serde(default)]
    pub region: Option<String>,
    /// A named profile of the shared AWS config files.
    #[serde(default)]
    pub profile: Option<String>,
    /// Sends every AWS call to this endpoint instead of AWS's (a VPC endpoint, or moto in tests).
    #[serde(default)]
    pub endpoint_url: Option<String>,
    /// Accounts to inventory, each reached by assuming a role. Empty: the account of the
    /// credentials themselves.
    #[serde(default)]
    pub accounts: Vec<AccountConfig>,
    /// Reads the accounts from AWS Organizations (the credentials must be allowed
    /// `organizations:ListAccounts`); listed `accounts` are added to them.
    #[serde(default)]
    pub organizations: bool,
    /// The role assumed in each account that names no `role_arn`.
    #[serde(default = "default_role_name")]
    pub role_name: String,
    /// The user tag that names the owner of a user and its keys; defaults to the config file's
    /// `defaults.owner_tag`, else `owner`.
    #[serde(default)]
    pub owner_tag: Option<String>,
    /// The user tag that says what a user is for; defaults to `defaults.purpose_tag`, else
    /// `purpose`.
    #[serde(default)]
    pub purpose_tag: Option<String>,
    /// How often every user's keys, certificates and SSH keys are listed again even if the
    /// credential report shows no change (`24h`, `7d`; `0s` lists them on every scan).
    #[serde(default = "default_full_refresh", with = "humantime_serde")]
    pub full_refresh: Duration,
    /// Also inventory users' SSH public keys. Off by default: IAM SSH keys serve only AWS
    /// CodeCommit (closed to new customers since July 2024), and since nothing lists them in
    /// bulk they cost one call per user on every full scan, doubling its calls.
    #[serde(default)]
    pub ssh_public_keys: bool,
    /// How many per-user calls are in flight at once.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// A client-side limit on AWS calls per second, shared by all calls of this source.
    #[serde(default = "default_rate")]
    pub max_requests_per_second: u32,
    /// How many attempts one AWS call gets (with adaptive backoff) before a throttled call is
    /// retried again at the scan level.
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    /// Key rotation: timing and where new keys are delivered.
    #[serde(default)]
    pub rotation: RotationConfig,
}

/// One account to inventory.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountConfig {
    /// The 12-digit account id.
    pub id: String,
    /// The role to assume in it; defaults to `arn:aws:iam::<id>:role/<role_name>`.
    #[serde(default)]
    pub role_arn: Option<String>,
    /// The external id the role's trust policy asks for, if any.
    #[serde(default)]
    pub external_id: Option<String>,
}

/// How keys of this source are rotated.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotationConfig {
    /// How long old and new key both stay active after the new key is delivered. The old key is
    /// deactivated earlier if its last use, checked at least `last_use_settle` after delivery,
    /// predates the delivery.
    #[serde(default = "default_overlap", with = "humantime_serde")]
    pub overlap: Duration,
    /// How long AWS may take to record a use of the old key (its last-used data lags).
    #[serde(default = "default_settle", with = "humantime_serde")]
    pub last_use_settle: Duration,
    /// How long a deactivated old key is kept (so it can be switched back on) before it is
    /// deleted.
    #[serde(default = "default_grace", with = "humantime_serde")]
    pub grace: Duration,
    /// How long a new key may take to work (IAM is eventually consistent) before verification
    /// fails.
    #[serde(default = "default_verify_timeout", with = "humantime_serde")]
    pub verify_timeout: Duration,
    /// Where the new key of a user goes: the first rule whose `users` glob matches the user name.
    #[serde(default)]
    pub deliver: Vec<DeliverRule>,
}

impl Default for RotationConfig {
    fn default() -> Self {
        Self {
            overlap: default_overlap(),
            last_use_settle: default_settle(),
            grace: default_grace(),
            verify_timeout: default_verify_timeout(),
            deliver: Vec::new(),
        }
    }
}

/// One delivery rule: which users (a glob over IAM user names such as `ci-*` or `*`) and where
/// their new keys are written. `{user}` and `{account_id}` in paths and names are replaced.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum DeliverRule {
    /// A file written atomically with mode 0600, in the JSON shape of AWS's `credential_process`
    /// (`{"Version":1,"AccessKeyId":..,"SecretAccessKey":..}`), so a consumer can use
    /// `credential_process = cat <path>`. `path` is absolute; `{user}` may only be in its file
    /// name (the directory is fixed, `{account_id}` aside), and a user name that would lead the
    /// file out of the directory (`..`) is refused. Missing directories are created 0700.
    File {
        users: String,
        path: PathBuf,
        /// The owner (a user name or numeric id) given to the file and the directories
        /// keywarden creates; default: keywarden's own.
        #[serde(default)]
        owner: Option<String>,
        /// The group (a name or numeric id), likewise.
        #[serde(default)]
        group: Option<String>,
    },
    /// An AWS Secrets Manager secret (created if missing) holding the same JSON.
    SecretsManager { users: String, secret_id: String },
    /// A Vault KV v2 secret of the config's `vault` source `source`, with the same three fields
    /// (`Version`, `AccessKeyId`, `SecretAccessKey`), written check-and-set.
    VaultKv {
        users: String,
        source: String,
        #[serde(default)]
        namespace: String,
        mount: String,
        path: String,
    },
}

impl DeliverRule {
    /// The snake_case name of the destination kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::File { .. } => "file",
            Self::SecretsManager { .. } => "secrets_manager",
            Self::VaultKv { .. } => "vault_kv",
        }
    }

    /// The user-name glob.
    pub fn users(&self) -> &str {
        match self {
            Self::File { users, .. }
            | Self::SecretsManager { users, .. }
            | Self::VaultKv { users, .. } => users,
        }
    }
}

fn default_role_name() -> String {
    "keywarden".to_owned()
}
fn default_full_refresh() -> Duration {
    Duration::from_secs(24 * 3600)
}
fn default_concurrency() -> usize {
    8
}
fn default_rate() -> u32 {
    50
}
fn default_attempts() -> u32 {
    8
}
fn default_overlap() -> Duration {
    Duration::from_secs(24 * 3600)
}
fn default_settle() -> Duration {
    Duration::from_secs(4 * 3600)
}
fn default_grace() -> Duration {
    Duration::from_secs(7 * 24 * 3600)
}
fn default_verify_timeout() -> Duration {
    Duration::from_secs(60)
}

/// Whether `id` is a 12-digit AWS account id.
pub(crate) fn is_account_id(id: &str) -> bool {
    id.len() == 12 && id.bytes().all(|b| b.is_ascii_digit())
}

impl AwsIamConfig {
    /// The owner tag key in effect.
    pub fn owner_tag(&self) -> &str {
        self.owner_tag.as_deref().unwrap_or("owner")
    }

    /// The purpose tag key in effect.
    pub fn purpose_tag(&self) -> &str {
        self.purpose_tag.as_deref().unwrap_or("purpose")
    }

    /// Checks the configuration without touching AWS; returns every invalid field.
    pub fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut blank = |field: &str, value: Option<&str>| {
            if value.is_some_and(|it| it.trim().is_empty()) {
                errors.push(FieldError::new(
                    field,
                    "must not be empty; leave it out for the default",
                ));
            }
        };
        blank("region", self.region.as_deref());
        blank("profile", self.profile.as_deref());
        blank("role_name", Some(&self.role_name));
        blank("owner_tag", self.owner_tag.as_deref());
        blank("purpose_tag", self.purpose_tag.as_deref());
        if let Some(url) = &self.endpoint_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            errors.push(FieldError::new(
                "endpoint_url",
                format!("`{url}` is not an http:// or https:// URL"),
            ));
        }
        for (idx, account) in self.accounts.iter().enumerate() {
            if !is_account_id(&account.id) {
                errors.push(FieldError::new(
                    format!("accounts[{idx}].id"),
                    format!("`{}` is not a 12-digit AWS account id", account.id),
                ));
            }
            if let Some(arn) = &account.role_arn
                && !(arn.starts_with("arn:aws") && arn.contains(":role/"))
            {
                errors.push(FieldError::new(
                    format!("accounts[{idx}].role_arn"),
                    format!("`{arn}` is not an IAM role ARN (arn:aws:iam::<account>:role/<name>)"),
                ));
            }
            if self.accounts[..idx].iter().any(|it| it.id == account.id) {
                errors.push(FieldError::new(
                    format!("accounts[{idx}].id"),
                    format!("account {} is listed twice", account.id),
                ));
            }
        }
        if !(1..=64).contains(&self.concurrency) {
            errors.push(FieldError::new(
                "concurrency",
                format!("{} is out of range 1..=64", self.concurrency),
            ));
        }
        if self.max_requests_per_second == 0 {
            errors.push(FieldError::new(
                "max_requests_per_second",
                "must be at least 1",
            ));
        }
        if !(1..=20).contains(&self.max_attempts) {
            errors.push(FieldError::new(
                "max_attempts",
                format!("{} is out of range 1..=20", self.max_attempts),
            ));
        }
        for (field, value) in [
            ("full_refresh", self.full_refresh),
            ("rotation.overlap", self.rotation.overlap),
            ("rotation.last_use_settle", self.rotation.last_use_settle),
            ("rotation.grace", self.rotation.grace),
            ("rotation.verify_timeout", self.rotation.verify_timeout),
        ] {
            if let Err(err) = keywarden_connector::duration::check_duration(value) {
                errors.push(FieldError::new(
                    field,
                    format!("`{}` is {err}", humantime::format_duration(value)),
                ));
            }
        }
        for (idx, rule) in self.rotation.deliver.iter().enumerate() {
            if let Err(err) = Glob::new(rule.users()) {
                errors.push(FieldError::new(
                    format!("rotation.deliver[{idx}].users"),
                    format!("invalid glob: {}", err.kind()),
                ));
            }
            match rule {
                DeliverRule::File {
                    path, owner, group, ..
                } => {
                    if let Err(message) = check_file_template(path) {
                        errors.push(FieldError::new(
                            format!("rotation.deliver[{idx}].path"),
                            message,
                        ));
                    }
                    for (name, value) in [("owner", owner), ("group", group)] {
                        if value.as_deref().is_some_and(|it| it.trim().is_empty()) {
                            errors.push(FieldError::new(
                                format!("rotation.deliver[{idx}].{name}"),
                                "must not be empty; leave it out for keywarden's own",
                            ));
                        }
                    }
                }
                DeliverRule::SecretsManager { secret_id, .. } => {
                    if secret_id.trim().is_empty() {
                        errors.push(FieldError::new(
                            format!("rotation.deliver[{idx}].secret_id"),
                            "must not be empty",
                        ));
                    }
                }
                DeliverRule::VaultKv {
                    source,
                    namespace,
                    mount,
                    path,
                    ..
                } => {
                    let field = |name: &str| format!("rotation.deliver[{idx}].{name}");
                    if source.trim().is_empty() {
                        errors.push(FieldError::new(field("source"), "must not be empty"));
                    }
                    if !namespace.is_empty() && !namespace.ends_with('/') {
                        errors.push(FieldError::new(
                            field("namespace"),
                            "must end with `/` (`team-a/`), or be left out for the root",
                        ));
                    }
                    for (name, message) in keywarden_connector::template_problems(
                        mount,
                        path,
                        "{user}",
                        &["{user}", "{account_id}"],
                    ) {
                        errors.push(FieldError::new(field(name), message));
                    }
                }
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// Builds the connector for source `source`. No AWS call is made until the first scan or
    /// action. Fails with [`ConnectorError::Config`] on the first invalid field.
    pub fn build(&self, source: &str) -> Result<AwsIamConnector, ConnectorError> {
        self.build_inner(source, None, SecretStores::default())
    }

    /// [`Self::build`], delivering to the secret stores of the config's other sources
    /// (`vault_kv` rules), looked up in `stores` when a key is delivered.
    pub fn build_with_stores(
        &self,
        source: &str,
        stores: SecretStores,
    ) -> Result<AwsIamConnector, ConnectorError> {
        self.build_inner(source, None, stores)
    }

    /// Builds the connector acting with these credentials instead of the standard AWS chain's
    /// (for embedding keywarden's connector, and for tests).
    pub fn build_with_credentials(
        &self,
        source: &str,
        credentials: impl aws_credential_types::provider::ProvideCredentials + 'static,
    ) -> Result<AwsIamConnector, ConnectorError> {
        self.build_inner(
            source,
            Some(aws_credential_types::provider::SharedCredentialsProvider::new(credentials)),
            SecretStores::default(),
        )
    }

    fn build_inner(
        &self,
        source: &str,
        credentials: Option<aws_credential_types::provider::SharedCredentialsProvider>,
        stores: SecretStores,
    ) -> Result<AwsIamConnector, ConnectorError> {
        if let Err(mut errors) = self.validate() {
            return Err(errors.remove(0).into());
        }
        let mut rules = Vec::with_capacity(self.rotation.deliver.len());
        for (idx, rule) in self.rotation.deliver.iter().enumerate() {
            let matcher = Glob::new(rule.users())
                .map_err(|err| {
                    FieldError::new(
                        format!("rotation.deliver[{idx}].users"),
                        format!("invalid glob: {}", err.kind()),
                    )
                })?
                .compile_matcher();
            let ownership = match rule {
                DeliverRule::File { owner, group, .. } => Ownership {
                    owner: owner
                        .as_deref()
                        .map(|it| lookup_user(it, &format!("rotation.deliver[{idx}].owner")))
                        .transpose()?,
                    group: group
                        .as_deref()
                        .map(|it| lookup_group(it, &format!("rotation.deliver[{idx}].group")))
                        .transpose()?,
                },
                DeliverRule::SecretsManager { .. } | DeliverRule::VaultKv { .. } => {
                    Ownership::default()
                }
            };
            rules.push(Deliver {
                matcher,
                rule: rule.clone(),
                ownership,
            });
        }
        Ok(AwsIamConnector::new(
            source,
            self.clone(),
            rules,
            credentials,
            stores,
        ))
    }
}

/// One compiled delivery rule.
#[derive(Debug)]
pub(crate) struct Deliver {
    pub matcher: GlobMatcher,
    pub rule: DeliverRule,
    /// The owner and group of a `file` destination, looked up when the connector is built.
    pub ownership: Ownership,
}

/// The compiled delivery rules.
pub(crate) type DeliverRules = Vec<Deliver>;

/// Why a `file` destination's path template is unusable, if it is.
fn check_file_template(path: &Path) -> Result<(), String> {
    let shown = path.display();
    if !path.is_absolute() {
        return Err(format!(
            "`{shown}` must be an absolute path (new keys never land relative to where keywarden happens to run)"
        ));
    }
    let text = path.to_string_lossy();
    let rest = text.replace("{user}", "").replace("{account_id}", "");
    if rest.contains(['{', '}']) {
        return Err(format!(
            "`{shown}` has a placeholder other than {{user}} and {{account_id}}"
        ));
    }
    let (Some(dir), Some(_)) = (path.parent(), path.file_name()) else {
        return Err(format!("`{shown}` names no file"));
    };
    if dir.components().any(|it| it == Component::ParentDir) {
        return Err(format!("`{shown}` must not contain `..`"));
    }
    if dir.to_string_lossy().contains("{user}") {
        return Err(format!(
            "`{shown}`: {{user}} may only be in the file name, so every key stays in one fixed directory"
        ));
    }
    Ok(())
}

/// A user given by name or numeric id.
fn lookup_user(value: &str, field: &str) -> Result<Uid, FieldError> {
    if let Ok(id) = value.parse::<u32>() {
        return Ok(Uid::from_raw(id));
    }
    match User::from_name(value) {
        Ok(Some(user)) => Ok(user.uid),
        Ok(None) => Err(FieldError::new(
            field,
            format!("no user `{value}` on this host"),
        )),
        Err(err) => Err(FieldError::new(
            field,
            format!("cannot look up user `{value}`: {err}"),
        )),
    }
}

/// A group given by name or numeric id.
fn lookup_group(value: &str, field: &str) -> Result<Gid, FieldError> {
    if let Ok(id) = value.parse::<u32>() {
        return Ok(Gid::from_raw(id));
    }
    match Group::from_name(value) {
        Ok(Some(group)) => Ok(group.gid),
        Ok(None) => Err(FieldError::new(
            field,
            format!("no group `{value}` on this host"),
        )),
        Err(err) => Err(FieldError::new(
            field,
            format!("cannot look up group `{value}`: {err}"),
        )),
    }
}

/// Replaces `{user}` and `{account_id}` in a destination template.
pub(crate) fn expand(template: &str, user: &str, account_id: &str) -> String {
    template
        .replace("{user}", user)
        .replace("{account_id}", account_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> AwsIamConfig {
        serde_json::from_str(yaml).expect("config")
    }

    #[test]
    fn defaults_are_those_documented() {
        let config = parse("{}");
        assert_eq!(config.owner_tag(), "owner");
        assert_eq!(config.purpose_tag(), "purpose");
        assert_eq!(config.role_name, "keywarden");
        assert_eq!(config.full_refresh, Duration::from_secs(86_400));
        assert_eq!(config.rotation.grace, Duration::from_secs(7 * 86_400));
        assert!(config.validate().is_ok());
    }

    #[test]
    fn validate_names_every_bad_field() {
        let config = parse(
            r#"{"accounts":[{"id":"12345"},{"id":"111111111111","role_arn":"keywarden"},{"id":"111111111111"}],
                "endpoint_url":"localhost:5000","concurrency":0,"max_requests_per_second":0,
                "rotation":{"deliver":[{"users":"ci-[","type":"file","path":"relative.json"},
                                       {"users":"*","type":"secrets_manager","secret_id":" "}]}}"#,
        );
        let errors = config.validate().unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|it| it.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "endpoint_url",
                "accounts[0].id",
                "accounts[1].role_arn",
                "accounts[2].id",
                "concurrency",
                "max_requests_per_second",
                "rotation.deliver[0].users",
                "rotation.deliver[0].path",
                "rotation.deliver[1].secret_id",
            ]
        );
        assert!(matches!(
            config.build("aws"),
            Err(ConnectorError::Config { field, .. }) if field == "endpoint_url"
        ));
    }

    #[test]
    fn durations_longer_than_a_hundred_years_are_refused_by_field() {
        let config = parse(
            r#"{"full_refresh":"101y","rotation":{"overlap":"300000y","last_use_settle":"36526d",
                "grace":"200years","verify_timeout":"5000000000s"}}"#,
        );
        let errors = config.validate().unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|it| it.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "full_refresh",
                "rotation.overlap",
                "rotation.last_use_settle",
                "rotation.grace",
                "rotation.verify_timeout",
            ]
        );
        assert_eq!(
            errors[1].message,
            "`300000years` is longer than 100 years, the longest duration accepted"
        );
        assert!(matches!(
            config.build("aws"),
            Err(ConnectorError::Config { field, .. }) if field == "full_refresh"
        ));
        let longest = parse(r#"{"full_refresh":"100y","rotation":{"grace":"36525d"}}"#);
        assert!(longest.validate().is_ok());
    }

    #[test]
    fn unknown_destination_kind_is_refused() {
        let err = serde_json::from_str::<AwsIamConfig>(
            r#"{"rotation":{"deliver":[{"users":"*","type":"ssm_parameter","path":"/x"}]}}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("ssm_parameter"), "{err}");
    }

    #[test]
    fn vault_kv_rules_name_each_bad_field() {
        let config = parse(
            r#"{"rotation":{"deliver":[
                {"users":"*","type":"vault_kv","source":" ","namespace":"team","mount":"kv",
                 "path":"aws/{region}"},
                {"users":"*","type":"vault_kv","source":"vault","mount":"kv/","path":"a//b"},
                {"users":"*","type":"vault_kv","source":"vault","mount":"kv/","path":"aws/{user}"}]}}"#,
        );
        let errors = config.validate().expect_err("invalid");
        let fields: Vec<&str> = errors.iter().map(|it| it.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "rotation.deliver[0].source",
                "rotation.deliver[0].namespace",
                "rotation.deliver[0].mount",
                "rotation.deliver[0].path",
                "rotation.deliver[1].path",
            ]
        );
    }

    #[test]
    fn templates_expand_user_and_account() {
        assert_eq!(
            expand("ci/{account_id}/{user}", "deploy", "123456789012"),
            "ci/123456789012/deploy"
        );
    }

    #[test]
    fn file_destinations_keep_the_user_in_the_file_name_and_name_real_owners() {
        let config = parse(
            r#"{"rotation":{"deliver":[
                {"users":"a","type":"file","path":"/srv/{user}/key.json"},
                {"users":"b","type":"file","path":"/srv/../etc/{user}"},
                {"users":"c","type":"file","path":"/srv/{usr}.json"},
                {"users":"d","type":"file","path":"/srv/keys/{user}.json","owner":" "},
                {"users":"e","type":"file","path":"/srv/{account_id}/{user}.json","owner":"0","group":"root"}]}}"#,
        );
        let errors = config.validate().unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|it| it.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "rotation.deliver[0].path",
                "rotation.deliver[1].path",
                "rotation.deliver[2].path",
                "rotation.deliver[3].owner",
            ]
        );
        assert!(
            errors[0].message.contains("only be in the file name"),
            "{}",
            errors[0]
        );

        let owned = |owner: &str, group: &str| {
            parse(&format!(
                r#"{{"rotation":{{"deliver":[{{"users":"*","type":"file","path":"/srv/{{user}}.json","owner":"{owner}","group":"{group}"}}]}}}}"#
            ))
            .build("aws")
        };
        let built = owned("nobody", "65534").expect("a user by name, a group by id");
        assert_eq!(
            built.inner.deliver[0].ownership,
            Ownership {
                owner: Some(Uid::from_raw(65534)),
                group: Some(Gid::from_raw(65534)),
            }
        );
        let err = owned("no-such-user-keywarden", "0").expect_err("unknown user");
        assert!(
            matches!(&err, ConnectorError::Config { field, .. } if field == "rotation.deliver[0].owner"),
            "{err}"
        );
        let err = owned("0", "no-such-group-keywarden").expect_err("unknown group");
        assert!(
            matches!(&err, ConnectorError::Config { field, .. } if field == "rotation.deliver[0].group"),
            "{err}"
        );
    }
}
