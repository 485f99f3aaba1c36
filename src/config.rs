//! The configuration file: sources, policy paths, the store, defaults.
//!
//! Loading is split in three: [`load`] reads and deserializes (unknown fields are errors),
//! [`Config::validate`] checks everything it can without I/O, and [`Config::build`] does the I/O of
//! setting up each connector. Every error names file:line:column and what was expected.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use keywarden_connector::{Connector, FieldError};
use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::diagnostic::{Diagnostic, Diagnostics, parse_yaml};

pub mod signers;

/// The whole configuration file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Where the ledger is kept.
    #[serde(default)]
    pub store: StoreConfig,
    /// Policy files or directories of them, relative to the config file.
    #[serde(default)]
    pub policies: Vec<Spanned<PathBuf>>,
    /// Defaults applied to every source.
    #[serde(default)]
    pub defaults: Defaults,
    /// Limits on what enforcing policies may do in one run.
    #[serde(default = "default_enforcement")]
    pub enforcement: Spanned<EnforcementConfig>,
    /// The configured sources, by name, in file order.
    pub sources: Sources,
    /// Who holds signing power over signers the ledger cannot tie to them.
    #[serde(default)]
    pub signers: Vec<signers::SignerEntry>,
    /// How leak reports are answered.
    #[serde(default)]
    pub leaks: LeaksConfig,
}

/// The `leaks:` block.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaksConfig {
    /// How long before the exposure a report shows the secret is taken to be compromised
    /// (`1d`, the default): it may have been copied before the commit that shows it.
    #[serde(default)]
    pub look_back: Option<Spanned<String>>,
}

/// The default `leaks.look_back`.
pub const DEFAULT_LOOK_BACK: chrono::TimeDelta = chrono::TimeDelta::days(1);

/// The `enforcement:` block: limits on what enforcing policies may do in one run, over all
/// policies.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EnforcementConfig {
    /// At most this many new actions per source per run (over all policies); default 25.
    #[serde(default = "default_max_actions_per_source")]
    pub max_actions_per_source: u32,
    /// A policy that would act on more than this share of a source's credentials in one run
    /// halts for that source and opens a critical finding; default 0.5. A policy's own
    /// `enforce.halt_share` takes precedence.
    #[serde(default = "default_halt_share")]
    pub halt_share: f64,
    /// The halt applies only when a run would act on at least this many credentials of the
    /// source, so one key of a two-key account is not a halt; default 5.
    #[serde(default = "default_halt_min_actions")]
    pub halt_min_actions: u32,
}

fn default_enforcement() -> Spanned<EnforcementConfig> {
    Spanned {
        value: EnforcementConfig::default(),
        referenced: serde_saphyr::Location::UNKNOWN,
        defined: serde_saphyr::Location::UNKNOWN,
    }
}

fn default_max_actions_per_source() -> u32 {
    25
}

fn default_halt_share() -> f64 {
    0.5
}

fn default_halt_min_actions() -> u32 {
    5
}

impl Default for EnforcementConfig {
    fn default() -> Self {
        Self {
            max_actions_per_source: default_max_actions_per_source(),
            halt_share: default_halt_share(),
            halt_min_actions: default_halt_min_actions(),
        }
    }
}

/// The `sources` mapping, kept in file order with the place of each name and entry.
#[derive(Debug, Default)]
pub struct Sources(pub Vec<(Spanned<String>, Spanned<SourceConfig>)>);

impl<'de> Deserialize<'de> for Sources {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;

        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Sources;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a mapping of source names to sources")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Sources, A::Error> {
                let mut entries: Vec<(Spanned<String>, Spanned<SourceConfig>)> = Vec::new();
                while let Some((name, source)) =
                    map.next_entry::<Spanned<String>, Spanned<SourceConfig>>()?
                {
                    if entries.iter().any(|(it, _)| it.value == name.value) {
                        return Err(serde::de::Error::custom(format!(
                            "source `{}` is defined twice",
                            name.value
                        )));
                    }
                    entries.push((name, source));
                }
                Ok(Sources(entries))
            }
        }

        deserializer.deserialize_map(Visitor)
    }
}

/// The store backend.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// The SQLite file, relative to the config file; created on first run.
    pub path: Spanned<PathBuf>,
    /// How long a write waits for another process's lock before retrying (`10s`).
    #[serde(default)]
    pub busy_timeout: Option<Spanned<String>>,
    /// How long an action's lease lasts unless renewed (`60s`); a crashed process's actions
    /// are taken over this long after its last heartbeat.
    #[serde(default)]
    pub action_lease: Option<Spanned<String>>,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            path: Spanned {
                value: PathBuf::from("keywarden.db"),
                referenced: serde_saphyr::Location::UNKNOWN,
                defined: serde_saphyr::Location::UNKNOWN,
            },
            busy_timeout: None,
            action_lease: None,
        }
    }
}

/// A `store` duration: present, parsed by humantime, at least `min`.
fn store_duration(
    file: &Path,
    field: &str,
    value: Option<&Spanned<String>>,
    min: std::time::Duration,
    errors: &mut Vec<Diagnostic>,
) -> Option<std::time::Duration> {
    let value = value?;
    match humantime::parse_duration(value.value.trim()) {
        Ok(it) if it >= min && chrono::TimeDelta::from_std(it).is_ok() => Some(it),
        Ok(_) => {
            errors.push(Diagnostic::at(
                file,
                &value.referenced,
                format!(
                    "store.{field}: expected a duration of at least {}",
                    humantime::format_duration(min)
                ),
            ));
            None
        }
        Err(err) => {
            errors.push(Diagnostic::at(
                file,
                &value.referenced,
                format!("store.{field}: {err}; expected a duration such as 10s or 2m"),
            ));
            None
        }
    }
}

/// Defaults applied to every source.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    /// The tag key that names an identity's owner in sources that have tags (e.g. AWS IAM).
    #[serde(default = "default_owner_tag")]
    pub owner_tag: String,
    /// The tag key that names an identity's purpose.
    #[serde(default = "default_purpose_tag")]
    pub purpose_tag: String,
}

fn default_owner_tag() -> String {
    "owner".to_owned()
}

fn default_purpose_tag() -> String {
    "purpose".to_owned()
}

impl Default for Defaults {
    fn default() -> Self {
        Self {
            owner_tag: default_owner_tag(),
            purpose_tag: default_purpose_tag(),
        }
    }
}

/// One source: a closed set of kinds, each named by its `type`.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum SourceConfig {
    /// Signing keys and certificates on disk.
    Files(keywarden_files::FilesConfig),
    /// A generated population, for load tests and benchmarks.
    Synthetic(keywarden_synthetic::SyntheticConfig),
    /// The IAM users of AWS accounts: access keys, signing certificates, SSH keys.
    AwsIam(Box<keywarden_aws_iam::AwsIamConfig>),
    /// A Vault or OpenBao server: tokens, AppRole secret-ids, KV secrets, Transit keys.
    Vault(Box<keywarden_vault::VaultConfig>),
}

impl SourceConfig {
    /// The snake_case kind name, the same as the `type` in the file.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Files(_) => "files",
            Self::Synthetic(_) => "synthetic",
            Self::AwsIam(_) => "aws_iam",
            Self::Vault(_) => "vault",
        }
    }

    /// Pure validation of the kind's own fields.
    fn validate(&self) -> Result<(), Vec<FieldError>> {
        match self {
            Self::Files(config) => config.validate(),
            Self::Synthetic(config) => config.validate(),
            Self::AwsIam(config) => config.validate(),
            Self::Vault(config) => config.validate(),
        }
    }
}

/// A loaded, validated configuration with every relative path resolved.
#[derive(Debug)]
pub struct Config {
    /// The file it was read from.
    pub file: PathBuf,
    /// The directory relative paths resolve against.
    pub base_dir: PathBuf,
    pub store_path: PathBuf,
    /// How the store shares its file with other processes.
    pub store_options: crate::store::SqliteOptions,
    pub policy_paths: Vec<PathBuf>,
    pub defaults: Defaults,
    pub enforcement: EnforcementConfig,
    pub sources: Vec<(String, SourceConfig)>,
    pub signers: Vec<signers::SignerConfig>,
    /// `leaks.look_back`.
    pub leak_look_back: chrono::TimeDelta,
}

/// Reads, deserializes and validates a config file. Nothing is created or changed.
pub fn load(file: &Path) -> Result<Config, Diagnostics> {
    let text = std::fs::read_to_string(file)
        .map_err(|err| Diagnostics(vec![Diagnostic::file(file, format!("cannot read: {err}"))]))?;
    let raw: ConfigFile = parse_yaml(file, &text).map_err(|it| Diagnostics(vec![it]))?;
    Config::validate(file, raw)
}

/// Whether a source name is usable in ids, file names and URLs.
fn valid_source_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|it| it.is_ascii_lowercase() || it.is_ascii_digit() || it == '-' || it == '_')
}

impl Config {
    /// Pure: checks everything that can be checked without I/O and collects every error.
    pub fn validate(file: &Path, raw: ConfigFile) -> Result<Config, Diagnostics> {
        let mut errors = Vec::new();
        let base_dir = file
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        if raw.store.path.value.as_os_str().is_empty() {
            errors.push(Diagnostic::at(
                file,
                &raw.store.path.referenced,
                "store.path: expected a file path, e.g. keywarden.db",
            ));
        }
        let enforcement = &raw.enforcement.value;
        if !(enforcement.halt_share > 0.0 && enforcement.halt_share <= 1.0) {
            errors.push(Diagnostic::at(
                file,
                &raw.enforcement.referenced,
                format!(
                    "enforcement.halt_share: expected a share more than 0 and at most 1, found {}",
                    enforcement.halt_share
                ),
            ));
        }
        if enforcement.max_actions_per_source == 0 {
            errors.push(Diagnostic::at(
                file,
                &raw.enforcement.referenced,
                "enforcement.max_actions_per_source: expected at least 1 (use `mode: dry_run` \
                 policies to act on nothing)",
            ));
        }
        let mut store_options = crate::store::SqliteOptions::default();
        if let Some(it) = store_duration(
            file,
            "busy_timeout",
            raw.store.busy_timeout.as_ref(),
            std::time::Duration::ZERO,
            &mut errors,
        ) {
            store_options.busy_timeout = it;
        }
        if let Some(it) = store_duration(
            file,
            "action_lease",
            raw.store.action_lease.as_ref(),
            std::time::Duration::from_secs(1),
            &mut errors,
        )
        .and_then(|it| chrono::TimeDelta::from_std(it).ok())
        {
            store_options.action_lease = it;
        }
        if raw.sources.0.is_empty() {
            errors.push(Diagnostic::file(
                file,
                "sources: expected at least one source, e.g. a `files` source",
            ));
        }
        let mut sources = Vec::with_capacity(raw.sources.0.len());
        for (name, source) in raw.sources.0 {
            if !valid_source_name(&name.value) {
                errors.push(Diagnostic::at(
                    file,
                    &name.referenced,
                    format!(
                        "source name `{}`: expected lower-case letters, digits, `-` or `_` (at most 64)",
                        name.value
                    ),
                ));
            }
            for error in source.value.validate().err().unwrap_or_default() {
                errors.push(Diagnostic::at(
                    file,
                    &source.referenced,
                    format!("sources.{}.{error}", name.value),
                ));
            }
            sources.push((name.value, source.value));
        }
        let signers = signers::validate(file, &base_dir, raw.signers, &mut errors);
        let leak_look_back = match &raw.leaks.look_back {
            None => DEFAULT_LOOK_BACK,
            Some(text) => match humantime::parse_duration(text.value.trim())
                .ok()
                .and_then(|it| chrono::TimeDelta::from_std(it).ok())
                .filter(|it| *it <= chrono::TimeDelta::days(3650))
            {
                Some(it) => it,
                None => {
                    errors.push(Diagnostic::at(
                        file,
                        &text.referenced,
                        "leaks.look_back: expected a duration of at most 10 years, such as 1d or \
                         12h",
                    ));
                    DEFAULT_LOOK_BACK
                }
            },
        };
        if !errors.is_empty() {
            return Err(Diagnostics(errors));
        }
        Ok(Config {
            file: file.to_owned(),
            store_path: base_dir.join(&raw.store.path.value),
            store_options,
            policy_paths: raw
                .policies
                .into_iter()
                .map(|it| base_dir.join(it.value))
                .collect(),
            defaults: raw.defaults,
            enforcement: raw.enforcement.value,
            sources,
            signers,
            leak_look_back,
            base_dir,
        })
    }

    /// Sets up every connector (I/O allowed). An error names the source.
    pub fn build(&self) -> Result<Vec<Arc<dyn Connector>>, Diagnostics> {
        let mut connectors: Vec<Arc<dyn Connector>> = Vec::with_capacity(self.sources.len());
        let mut errors = Vec::new();
        // Filled once every source is built: `vault_kv` deliveries look their store up in it.
        let stores = keywarden_connector::SecretStores::default();
        for (name, source) in &self.sources {
            match source {
                SourceConfig::Files(config) => match config.build(name, &self.base_dir) {
                    Ok(connector) => connectors.push(Arc::new(connector)),
                    Err(err) => errors.push(Diagnostic::file(
                        &self.file,
                        format!("sources.{name}: {err}"),
                    )),
                },
                SourceConfig::Synthetic(config) => connectors.push(Arc::new(config.build(name))),
                SourceConfig::AwsIam(config) => {
                    if let Err(message) = self.check_deliveries(config) {
                        errors.push(Diagnostic::file(
                            &self.file,
                            format!("sources.{name}: {message}"),
                        ));
                        continue;
                    }
                    match with_tag_defaults(config, &self.defaults)
                        .build_with_stores(name, stores.clone())
                    {
                        Ok(connector) => connectors.push(Arc::new(connector)),
                        Err(err) => errors.push(Diagnostic::file(
                            &self.file,
                            format!("sources.{name}: {err}"),
                        )),
                    }
                }
                SourceConfig::Vault(config) => {
                    let mut config = (**config).clone();
                    config
                        .owner_key
                        .get_or_insert_with(|| self.defaults.owner_tag.clone());
                    config
                        .purpose_key
                        .get_or_insert_with(|| self.defaults.purpose_tag.clone());
                    match config.build(name, &self.base_dir) {
                        Ok(connector) => connectors.push(Arc::new(connector)),
                        Err(err) => errors.push(Diagnostic::file(
                            &self.file,
                            format!("sources.{name}: {err}"),
                        )),
                    }
                }
            }
        }
        stores.set(
            connectors
                .iter()
                .filter_map(|it| Some((it.source().to_owned(), it.secret_store()?)))
                .collect(),
        );
        if errors.is_empty() {
            Ok(connectors)
        } else {
            Err(Diagnostics(errors))
        }
    }

    /// Each `vault_kv` delivery rule of an `aws_iam` source names a `vault` source of this
    /// config, and a namespace that source lists.
    fn check_deliveries(&self, config: &keywarden_aws_iam::AwsIamConfig) -> Result<(), String> {
        for (idx, rule) in config.rotation.deliver.iter().enumerate() {
            let keywarden_aws_iam::DeliverRule::VaultKv {
                source, namespace, ..
            } = rule
            else {
                continue;
            };
            let field = format!("rotation.deliver[{idx}]");
            let found = self.sources.iter().find(|(name, _)| name == source);
            let Some((_, SourceConfig::Vault(vault))) = found else {
                return Err(format!(
                    "{field}.source: `{source}` is not a `vault` source of this config"
                ));
            };
            if !vault.namespaces.iter().any(|it| it == namespace) {
                return Err(format!(
                    "{field}.namespace: `{namespace}` is not a namespace source `{source}` lists"
                ));
            }
        }
        Ok(())
    }
}

/// An `aws_iam` source with the file's default tag keys where it names none of its own.
fn with_tag_defaults(
    config: &keywarden_aws_iam::AwsIamConfig,
    defaults: &Defaults,
) -> keywarden_aws_iam::AwsIamConfig {
    let mut config = config.clone();
    config
        .owner_tag
        .get_or_insert_with(|| defaults.owner_tag.clone());
    config
        .purpose_tag
        .get_or_insert_with(|| defaults.purpose_tag.clone());
    config
}

/// The starting configuration `keywarden init` writes.
pub const STARTER: &str = r#"# keywarden configuration.
# Relative paths are resolved against the directory of this file.
# Unknown fields are errors; `keywarden policy check` validates the policies it points at.

# The ledger: an SQLite file, created on first run.
store:
  path: keywarden.db
  # Several keywarden processes may share it. A write waits this long for another's lock
  # before retrying:
  # busy_timeout: 10s
  # An action's lease; a crashed process's actions are taken over this long after it stopped:
  # action_lease: 60s

# Policy files, or directories of *.yaml policy files.
policies:
  - policies

defaults:
  # Tag keys that name an identity's owner and purpose, in sources that have tags.
  owner_tag: owner
  purpose_tag: purpose

# Sources, by name. `type` picks the connector.
sources:
  # Signing keys and certificates on disk: cosign key pairs, PEM keys, X.509 certificates,
  # OpenSSH keys. Private keys are read only to derive their public fingerprint; encrypted
  # keys are never decrypted; no key material is stored.
  release-keys:
    type: files
    paths:
      # The first rule that matches a file gives its owner, purpose and tags.
      - glob: "keys/release/**"
        owner: release-eng
        purpose: signing
        tags:
          team: release
      - glob: "keys/**"
    # Files to leave out.
    exclude:
      - "**/*.bak"
    # Optional CSV of signing events (`time,key`) that tells when each key was last used.
    # usage_log: signing-events.csv

  # IAM users of AWS accounts: access keys with their last use, signing certificates, SSH keys.
  # Credentials come from the standard AWS chain (environment, profile, SSO, instance role).
  # aws:
  #   type: aws_iam
  #   region: us-east-1
  #   accounts:                 # default: the account of the credentials
  #     - id: "111111111111"    # assumes arn:aws:iam::111111111111:role/keywarden
  #   full_refresh: 24h
  #   rotation:                 # for `keywarden rotate` and policies in enforce mode
  #     overlap: 24h
  #     grace: 7d
  #     deliver:
  #       - users: "ci-*"
  #         type: secrets_manager
  #         secret_id: "ci/{user}/aws"
"#;

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, Diagnostics> {
        let file = Path::new("/etc/keywarden/keywarden.yaml");
        let raw: ConfigFile = parse_yaml(file, text).map_err(|it| Diagnostics(vec![it]))?;
        Config::validate(file, raw)
    }

    #[test]
    fn store_durations_are_read_and_a_bad_one_is_named_with_its_place() {
        let sources = "sources:\n  keys:\n    type: files\n    paths:\n      - glob: \"k/**\"\n";
        let config = parse(&format!(
            "store:\n  path: a.db\n  busy_timeout: 3s\n  action_lease: 2m\n{sources}"
        ))
        .expect("valid");
        assert_eq!(
            config.store_options.busy_timeout,
            std::time::Duration::from_secs(3)
        );
        assert_eq!(
            config.store_options.action_lease,
            chrono::TimeDelta::minutes(2)
        );
        let defaults = parse(sources).expect("valid");
        assert_eq!(
            defaults.store_options,
            crate::store::SqliteOptions::default()
        );

        let err = parse(&format!(
            "store:\n  path: a.db\n  action_lease: soon\n  busy_timeout: 0s\n{sources}"
        ))
        .unwrap_err();
        assert_eq!(err.0.len(), 1, "{err}");
        assert_eq!(err.0[0].line, 3, "{err}");
        assert!(err.0[0].message.contains("store.action_lease"), "{err}");
        let err = parse(&format!(
            "store:\n  path: a.db\n  action_lease: 10ms\n{sources}"
        ))
        .unwrap_err();
        assert!(err.0[0].message.contains("at least 1s"), "{err}");
    }

    #[test]
    fn starter_config_is_valid() {
        let config = parse(STARTER).expect("starter config");
        assert_eq!(config.sources.len(), 1);
        assert_eq!(config.sources[0].0, "release-keys");
        assert_eq!(config.sources[0].1.kind(), "files");
        assert_eq!(
            config.store_path,
            PathBuf::from("/etc/keywarden/keywarden.db")
        );
        assert_eq!(
            config.policy_paths,
            [PathBuf::from("/etc/keywarden/policies")]
        );
    }

    #[test]
    fn starter_aws_example_is_valid_once_uncommented() {
        let start = STARTER.find("  # aws:").expect("aws example");
        let example: String = STARTER[start..]
            .lines()
            .map(|line| line.replacen("# ", "", 1))
            .collect::<Vec<_>>()
            .join("\n");
        let text = format!("{}\n{example}\n", &STARTER[..start]);
        let config = parse(&text).expect("starter with the aws example");
        assert_eq!(config.sources[1].1.kind(), "aws_iam");
    }

    #[test]
    fn aws_sources_take_the_files_default_tag_keys_unless_they_name_their_own() {
        let config = parse(
            "defaults:\n  owner_tag: team\nsources:\n  a:\n    type: aws_iam\n  b:\n    type: aws_iam\n    owner_tag: Owner\n",
        )
        .expect("config");
        let tags: Vec<(String, String)> = config
            .sources
            .iter()
            .map(|(_, source)| match source {
                SourceConfig::AwsIam(aws) => {
                    let aws = with_tag_defaults(aws, &config.defaults);
                    (aws.owner_tag().to_owned(), aws.purpose_tag().to_owned())
                }
                other => panic!("unexpected {}", other.kind()),
            })
            .collect();
        assert_eq!(
            tags,
            [
                ("team".to_owned(), "purpose".to_owned()),
                ("Owner".to_owned(), "purpose".to_owned())
            ]
        );
    }

    #[test]
    fn unknown_top_level_field_names_its_place() {
        let err = parse("store:\n  path: a.db\nsourcez: {}\n").unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("/etc/keywarden/keywarden.yaml:3:1: "),
            "{text}"
        );
        assert!(text.contains("sourcez"), "{text}");
    }

    #[test]
    fn unknown_source_type_is_an_error_naming_the_kinds() {
        let err = parse("sources:\n  a:\n    type: ldap\n").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("ldap"), "{text}");
        assert!(text.contains(":3:"), "{text}");
    }

    #[test]
    fn unknown_field_inside_a_source_is_an_error() {
        let err = parse("sources:\n  a:\n    type: synthetic\n    count: 3\n    colour: red\n")
            .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("colour"), "{text}");
        assert!(text.contains("keywarden.yaml:"), "{text}");
    }

    #[test]
    fn a_vault_source_is_read_and_its_errors_name_field_and_place() {
        let config = parse(
            "sources:\n  v:\n    type: vault\n    address: http://127.0.0.1:8200\n    token_env: VAULT_TOKEN\n",
        )
        .expect("config");
        assert_eq!(config.sources[0].1.kind(), "vault");
        let err = parse(
            "sources:\n  v:\n    type: vault\n    address: vault:8200\n    token_env: VAULT_TOKEN\n    namespaces: [team-a]\n",
        )
        .unwrap_err();
        assert_eq!(err.0.len(), 2, "{err}");
        assert_eq!((err.0[0].line, err.0[0].column), (3, 5), "{err}");
        assert!(err.0[0].message.starts_with("sources.v.address: "), "{err}");
        assert!(
            err.0[1].message.starts_with("sources.v.namespaces[0]: "),
            "{err}"
        );
        // The token itself is not a field of the file.
        let err =
            parse("sources:\n  v:\n    type: vault\n    address: http://x\n    token: s.abc\n")
                .unwrap_err();
        assert!(err.to_string().contains("unknown field `token`"), "{err}");
        // A tagged source is read as a whole: its unknown field is placed at the source's entry.
        assert_eq!((err.0[0].line, err.0[0].column), (2, 3), "{err}");
    }

    #[test]
    fn every_validation_error_is_reported_with_its_place() {
        let err = parse(
            "sources:\n  Bad Name:\n    type: synthetic\n    count: 3\n  b:\n    type: synthetic\n    count: 3\n    credentials_per_identity: 0\n",
        )
        .unwrap_err();
        assert_eq!(err.0.len(), 2, "{err}");
        assert_eq!((err.0[0].line, err.0[0].column), (2, 3), "{err}");
        assert!(
            err.0[1].message.contains("credentials_per_identity"),
            "{err}"
        );
        assert_eq!(err.0[1].line, 6, "{err}");
    }

    #[test]
    fn a_huge_rotation_period_is_an_error_naming_its_place() {
        let err =
            parse("sources:\n  aws:\n    type: aws_iam\n    rotation:\n      grace: 300000y\n")
                .unwrap_err();
        assert_eq!(err.0.len(), 1, "{err}");
        assert_eq!((err.0[0].line, err.0[0].column), (3, 5), "{err}");
        assert_eq!(
            err.0[0].message,
            "sources.aws.rotation.grace: `300000years` is longer than 100 years, the longest \
             duration accepted"
        );
    }

    #[test]
    fn no_sources_is_an_error() {
        let err = parse("sources: {}\n").unwrap_err();
        assert!(err.to_string().contains("at least one source"), "{err}");
    }
}
