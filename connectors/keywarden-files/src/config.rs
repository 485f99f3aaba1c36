//! The configuration of a `files` source: which files to look at, who owns them.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use globset::{Glob, GlobBuilder, GlobMatcher};
use keywarden_connector::{ConnectorError, FieldError};
use serde::Deserialize;

use crate::scan::{FilesConnector, Matcher, Rule};

/// A `files` source: signing keys and certificates in local files.
///
/// ```yaml
/// paths:
///   - glob: "keys/release/**"
///     owner: release-eng
///   - glob: "keys/**"
/// exclude: ["**/*.md"]
/// usage_log: keys/usage.csv
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilesConfig {
    /// Which files to inventory, and the owner, purpose and tags of what they hold.
    /// A file matched by several rules takes them from the first rule that matches it.
    pub paths: Vec<PathRule>,
    /// Globs of files to skip, relative to the directory of the config file (or absolute).
    #[serde(default)]
    pub exclude: Vec<String>,
    /// A CSV file of signing events (`time,key`) that tells when each key was last used.
    /// When it is set, a key that does not appear in it is reported as never used.
    #[serde(default)]
    pub usage_log: Option<PathBuf>,
    /// Also read symlinks whose target is outside the tree (the config directory or the rule's
    /// root) and walk symlinked directories, e.g. `/etc/ssl/certs`. Off by default: such links
    /// are reported as skipped. Special files (FIFOs, sockets, devices) are never opened, and a
    /// directory reached twice (a symlink loop) is walked once.
    #[serde(default)]
    pub follow_symlinks: bool,
}

/// One set of files and what keywarden should know about the credentials in them.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathRule {
    /// A glob relative to the directory of the config file (or absolute), e.g. `keys/release/**`.
    /// `*` does not cross `/`, `**` does.
    pub glob: String,
    /// Who answers for these credentials (a team or a person).
    #[serde(default)]
    pub owner: Option<String>,
    /// What they are for (`signing`, `deploy`, ...); cosign keys and code-signing certificates
    /// default to `signing`.
    #[serde(default)]
    pub purpose: Option<String>,
    /// Free-form tags copied to each identity and credential.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

impl FilesConfig {
    /// Checks the configuration without touching the filesystem; returns every invalid field.
    pub fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut errors = Vec::new();
        if self.paths.is_empty() {
            errors.push(FieldError::new(
                "paths",
                "at least one path rule is required",
            ));
        }
        for (idx, rule) in self.paths.iter().enumerate() {
            if let Err(message) = check_glob(&rule.glob) {
                errors.push(FieldError::new(format!("paths[{idx}].glob"), message));
            }
            if rule.owner.as_deref().is_some_and(|it| it.trim().is_empty()) {
                errors.push(FieldError::new(
                    format!("paths[{idx}].owner"),
                    "must not be empty; leave it out for no owner",
                ));
            }
            if rule
                .purpose
                .as_deref()
                .is_some_and(|it| it.trim().is_empty())
            {
                errors.push(FieldError::new(
                    format!("paths[{idx}].purpose"),
                    "must not be empty; leave it out for the default",
                ));
            }
        }
        for (idx, glob) in self.exclude.iter().enumerate() {
            if let Err(message) = check_glob(glob) {
                errors.push(FieldError::new(format!("exclude[{idx}]"), message));
            }
        }
        if let Some(path) = &self.usage_log
            && path.as_os_str().is_empty()
        {
            errors.push(FieldError::new("usage_log", "must not be empty"));
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// Builds the connector for source `source`; `base_dir` is the directory of the config file,
    /// against which relative globs and the usage log resolve.
    ///
    /// Fails with [`ConnectorError::Config`] if the configuration is invalid (the first invalid
    /// field) or `base_dir` is not a directory.
    pub fn build(&self, source: &str, base_dir: &Path) -> Result<FilesConnector, ConnectorError> {
        if let Err(mut errors) = self.validate() {
            return Err(errors.remove(0).into());
        }
        // The directory of a config file named without a directory is the current one.
        let base_dir = if base_dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            base_dir
        };
        if !base_dir.is_dir() {
            return Err(FieldError::new(
                "paths",
                format!(
                    "the base directory `{}` does not exist or is not a directory",
                    base_dir.display()
                ),
            )
            .into());
        }
        let mut rules = Vec::with_capacity(self.paths.len());
        for (idx, rule) in self.paths.iter().enumerate() {
            let field = format!("paths[{idx}].glob");
            let matcher =
                compile(&rule.glob).map_err(|message| FieldError::new(&field, message))?;
            rules.push(Rule {
                field,
                root: base_dir.join(literal_prefix(&rule.glob)),
                matcher,
                owner: rule.owner.clone(),
                purpose: rule.purpose.clone(),
                tags: rule.tags.clone(),
            });
        }
        let mut exclude = Vec::with_capacity(self.exclude.len());
        for (idx, glob) in self.exclude.iter().enumerate() {
            exclude.push(
                compile(glob)
                    .map_err(|message| FieldError::new(format!("exclude[{idx}]"), message))?,
            );
        }
        Ok(FilesConnector {
            source: source.to_owned(),
            base_dir: base_dir.to_path_buf(),
            rules,
            exclude,
            usage_log: self.usage_log.as_ref().map(|it| base_dir.join(it)),
            follow_symlinks: self.follow_symlinks,
        })
    }
}

/// Why `glob` is not usable, if it is not.
fn check_glob(glob: &str) -> Result<(), String> {
    if glob.trim().is_empty() {
        return Err("must not be empty".to_owned());
    }
    if Path::new(glob)
        .components()
        .any(|it| it == Component::ParentDir)
    {
        return Err(
            "must not contain `..`; use an absolute glob for files outside the config directory"
                .to_owned(),
        );
    }
    compile(glob).map(drop)
}

fn compile(glob: &str) -> Result<Matcher, String> {
    let compiled: Glob = GlobBuilder::new(glob.trim_start_matches("./"))
        .literal_separator(true)
        .build()
        .map_err(|error| format!("invalid glob: {}", error.kind()))?;
    let matcher: GlobMatcher = compiled.compile_matcher();
    Ok(Matcher {
        absolute: Path::new(glob).is_absolute(),
        matcher,
    })
}

/// The leading components of `glob` that contain no glob syntax: the directory to walk.
fn literal_prefix(glob: &str) -> PathBuf {
    let mut res = PathBuf::new();
    for component in Path::new(glob.trim_start_matches("./")).components() {
        let text = component.as_os_str().to_string_lossy();
        if text.contains(['*', '?', '[', ']', '{', '}', '\\']) {
            break;
        }
        res.push(component);
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(glob: &str) -> PathRule {
        PathRule {
            glob: glob.to_owned(),
            owner: None,
            purpose: None,
            tags: BTreeMap::new(),
        }
    }

    #[test]
    fn validate_names_every_bad_field() {
        let config = FilesConfig {
            paths: vec![rule("keys/**"), rule("keys/[oops"), rule("../elsewhere/*")],
            exclude: vec!["ok/**".to_owned(), "{unclosed".to_owned()],
            usage_log: Some(PathBuf::new()),
            follow_symlinks: false,
        };
        let errors = config.validate().expect_err("the config is invalid");
        let fields: Vec<&str> = errors.iter().map(|it| it.field.as_str()).collect();
        assert_eq!(
            fields,
            ["paths[1].glob", "paths[2].glob", "exclude[1]", "usage_log"]
        );
        assert!(
            errors[1]
                .to_string()
                .starts_with("paths[2].glob: must not contain `..`")
        );
    }

    #[test]
    fn validate_requires_a_path_rule() {
        let config = FilesConfig {
            paths: Vec::new(),
            exclude: Vec::new(),
            usage_log: None,
            follow_symlinks: false,
        };
        assert_eq!(
            config.validate().expect_err("no path rule"),
            [FieldError::new(
                "paths",
                "at least one path rule is required"
            )]
        );
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let err = serde_json::from_value::<FilesConfig>(serde_json::json!({
            "paths": [{"glob": "keys/**", "ownr": "x"}],
        }))
        .expect_err("`ownr` is not a field");
        assert!(err.to_string().contains("unknown field `ownr`"), "{err}");
        let config: FilesConfig = serde_json::from_value(serde_json::json!({
            "paths": [{"glob": "keys/**", "owner": "x", "tags": {"team": "a"}}],
        }))
        .expect("a valid config");
        assert_eq!(config.paths[0].owner.as_deref(), Some("x"));
        assert!(config.exclude.is_empty() && config.usage_log.is_none());
    }

    #[test]
    fn literal_prefix_stops_at_the_first_wildcard() {
        assert_eq!(literal_prefix("keys/release/**"), Path::new("keys/release"));
        assert_eq!(literal_prefix("./keys/*.pem"), Path::new("keys"));
        assert_eq!(literal_prefix("**/*.pem"), Path::new(""));
        assert_eq!(
            literal_prefix("keys/cosign.pub"),
            Path::new("keys/cosign.pub")
        );
        assert_eq!(literal_prefix("/etc/keys/{a,b}/*"), Path::new("/etc/keys"));
    }

    #[test]
    fn build_rejects_a_missing_base_dir() {
        let config = FilesConfig {
            paths: vec![rule("keys/**")],
            exclude: Vec::new(),
            usage_log: None,
            follow_symlinks: false,
        };
        let err = config
            .build("release-keys", Path::new("/nonexistent/keywarden"))
            .expect_err("the base dir is missing");
        assert!(
            matches!(&err, ConnectorError::Config { field, .. } if field == "paths"),
            "{err}"
        );
    }
}
