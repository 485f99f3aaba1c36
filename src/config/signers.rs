//! The `signers:` block: which identities hold signing power over a signer that lives elsewhere
//! (the CI user whose access key reads the cosign key's password; later, the Vault tokens allowed
//! to call `transit/sign`).
//!
//! ```yaml
//! signers:
//!   - key: { file: keys/cosign.pub }       # or { key_id: <64 hex digits> }
//!     held_by:
//!       - source: aws                      # a ledger source (globs allowed)
//!         identities: [ci-release, "deploy-*"]   # identity names (globs allowed)
//! ```
//!
//! A key file found on disk is held by itself; this block adds the holders the ledger cannot see.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::diagnostic::Diagnostic;
use crate::policy::Patterns;

/// One `signers:` entry as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignerEntry {
    pub key: Spanned<KeyRef>,
    pub held_by: Spanned<Vec<HolderEntry>>,
}

/// How an entry names its signer.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum KeyRef {
    /// Lower-hex SHA-256 of the DER SubjectPublicKeyInfo, as `keywarden trust list` shows it.
    KeyId(String),
    /// A key file (public key, certificate, or key pair), relative to the config file.
    File(PathBuf),
}

/// One `held_by` selector as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HolderEntry {
    pub source: String,
    pub identities: Vec<String>,
}

/// A validated `held_by` selector.
#[derive(Clone, Debug)]
pub struct HolderSelector {
    pub sources: Patterns,
    pub identities: Patterns,
}

impl HolderSelector {
    /// Whether the identity named `identity` of `source` holds the signer.
    pub fn matches(&self, source: &str, identity: &str) -> bool {
        self.sources.is_match(source) && self.identities.is_match(identity)
    }
}

/// A validated `signers:` entry; a `file` key is read by [`SignerConfig::key_id`].
#[derive(Clone, Debug)]
pub struct SignerConfig {
    pub key: KeyRef,
    pub held_by: Vec<HolderSelector>,
    /// Where in the config file the entry is, for errors found when its file is read.
    pub line: u64,
    pub column: u64,
}

impl SignerConfig {
    /// The key id this entry names (I/O: a `file` key is read and its public key derived).
    pub fn key_id(&self) -> Result<String, String> {
        match &self.key {
            KeyRef::KeyId(id) => Ok(id.clone()),
            KeyRef::File(path) => {
                let bytes = std::fs::read(path)
                    .map_err(|err| format!("cannot read {}: {err}", path.display()))?;
                let name = path
                    .file_name()
                    .map(|it| it.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let keys = keywarden_files::public_keys_of(&name, &bytes)
                    .map_err(|err| format!("{}: {err}", path.display()))?;
                match keys.as_slice() {
                    [one] => Ok(one.key_id.clone()),
                    _ => Err(format!(
                        "{} holds {} public keys; name one by `key_id`",
                        path.display(),
                        keys.len()
                    )),
                }
            }
        }
    }
}

/// Whether `text` is a key id: 64 lower-case hex digits.
pub fn is_key_id(text: &str) -> bool {
    text.len() == 64
        && text
            .bytes()
            .all(|it| matches!(it, b'0'..=b'9' | b'a'..=b'f'))
}

/// Pure: checks every entry, resolving file paths against `base_dir`.
pub fn validate(
    file: &Path,
    base_dir: &Path,
    entries: Vec<SignerEntry>,
    errors: &mut Vec<Diagnostic>,
) -> Vec<SignerConfig> {
    let mut signers = Vec::with_capacity(entries.len());
    for (index, entry) in entries.into_iter().enumerate() {
        let at = &entry.key.referenced;
        let key = match entry.key.value {
            KeyRef::KeyId(id) if !is_key_id(&id) => {
                errors.push(Diagnostic::at(
                    file,
                    at,
                    format!(
                        "signers[{index}].key.key_id: expected 64 lower-case hex digits (SHA-256 \
                         of the DER SubjectPublicKeyInfo), found `{id}`"
                    ),
                ));
                continue;
            }
            KeyRef::File(path) if path.as_os_str().is_empty() => {
                errors.push(Diagnostic::at(
                    file,
                    at,
                    format!("signers[{index}].key.file: expected a file path"),
                ));
                continue;
            }
            KeyRef::File(path) => KeyRef::File(base_dir.join(path)),
            it @ KeyRef::KeyId(_) => it,
        };
        if entry.held_by.value.is_empty() {
            errors.push(Diagnostic::at(
                file,
                &entry.held_by.referenced,
                format!(
                    "signers[{index}].held_by: expected at least one `source` and `identities`"
                ),
            ));
        }
        let mut held_by = Vec::new();
        for (n, holder) in entry.held_by.value.into_iter().enumerate() {
            let place = format!("signers[{index}].held_by[{n}]");
            let sources = Patterns::new(&[holder.source]);
            let identities = Patterns::new(&holder.identities);
            match (sources, identities) {
                (Ok(sources), Ok(identities)) if !holder.identities.is_empty() => {
                    held_by.push(HolderSelector {
                        sources,
                        identities,
                    });
                }
                (Ok(_), Ok(_)) => errors.push(Diagnostic::at(
                    file,
                    &entry.held_by.referenced,
                    format!("{place}.identities: expected at least one identity name or glob"),
                )),
                (Err(err), _) | (_, Err(err)) => errors.push(Diagnostic::at(
                    file,
                    &entry.held_by.referenced,
                    format!("{place}: {err}"),
                )),
            }
        }
        signers.push(SignerConfig {
            key,
            held_by,
            line: at.line(),
            column: at.column(),
        });
    }
    signers
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::{Config, ConfigFile};
    use crate::diagnostic::{Diagnostics, parse_yaml};

    const SOURCES: &str =
        "sources:\n  keys:\n    type: files\n    paths:\n      - glob: \"k/**\"\n";

    fn parse(signers: &str) -> Result<Config, Diagnostics> {
        let file = Path::new("/etc/keywarden/keywarden.yaml");
        let text = format!("{SOURCES}signers:\n{signers}");
        let raw: ConfigFile = parse_yaml(file, &text).map_err(|it| Diagnostics(vec![it]))?;
        Config::validate(file, raw)
    }

    fn errors(signers: &str) -> Vec<String> {
        match parse(signers) {
            Ok(config) => panic!("expected errors, got {:?}", config.signers),
            Err(Diagnostics(all)) => all.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn holders_are_read_with_their_files_resolved_and_their_globs_compiled() {
        let config = parse(
            "  - key: { file: keys/cosign.pub }\n    held_by:\n      - source: aws\n        \
             identities: [ci-release, \"deploy-*\"]\n",
        )
        .expect("valid");
        let signer = &config.signers[0];
        assert_eq!(
            signer.key,
            super::KeyRef::File(Path::new("/etc/keywarden/keys/cosign.pub").to_path_buf())
        );
        let holder = &signer.held_by[0];
        assert!(holder.matches("aws", "ci-release"));
        assert!(holder.matches("aws", "deploy-prod"));
        assert!(!holder.matches("aws", "ci-test"));
        assert!(!holder.matches("gcp", "ci-release"));
    }

    #[test]
    fn bad_signer_entries_are_named_at_their_line_and_column() {
        let cases: &[(&str, &str)] = &[
            (
                "  - key: { key_id: ABC }\n    held_by:\n      - { source: a, identities: [x] }\n",
                "keywarden.yaml:7:10: signers[0].key.key_id: expected 64 lower-case hex digits",
            ),
            (
                "  - key: { key_id: 0000000000000000000000000000000000000000000000000000000000000000 }\n    held_by: []\n",
                "keywarden.yaml:8:14: signers[0].held_by: expected at least one",
            ),
            (
                "  - key: { file: k.pub }\n    held_by:\n      - { source: a, identities: [] }\n",
                "keywarden.yaml:9:7: signers[0].held_by[0].identities: expected at least one",
            ),
            (
                "  - key: { url: https://x }\n    held_by: []\n",
                "keywarden.yaml:7:12: unknown variant `url`",
            ),
        ];
        for (text, expected) in cases {
            let all = errors(text);
            assert!(
                all.iter().any(|it| it.contains(expected)),
                "{text}\nexpected `{expected}` in {all:#?}"
            );
        }
    }
}
