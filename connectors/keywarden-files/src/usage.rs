//! The usage log: a CSV of signing events that tells when each local key was last used.
//!
//! ```csv
//! time,key
//! 2026-03-01T12:00:00Z,sha256:3f1c...   # the sha256_spki fingerprint of the key
//! 2026-03-02T08:30:00Z,keys/release/cosign.pub   # or a file path relative to the base dir
//! ```
//!
//! The latest event of a credential sets [`LastUse::At`] with source `usage_log`.
//! A configured log claims to be complete for its source: a credential that has no event gets
//! [`LastUse::Never`], unless a malformed row named it (then it stays [`LastUse::Unknown`]), and
//! an unreadable log leaves every credential at [`LastUse::Unknown`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use keywarden_connector::{LastUse, ScanError};
use tracing::debug;

use crate::scan::Assembled;

/// The `source` of a [`LastUse::At`] taken from the usage log.
const SOURCE: &str = "usage_log";

/// What the usage log says, by key.
#[derive(Debug, Default)]
pub(crate) struct UsageLog {
    /// Latest event per `sha256_spki` fingerprint or relative path.
    latest: BTreeMap<UsageKey, DateTime<Utc>>,
    /// Keys named by a row whose time could not be read.
    uncertain: BTreeSet<UsageKey>,
}

/// How a row names a credential.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum UsageKey {
    /// Lower-hex `sha256_spki` fingerprint.
    Fingerprint(String),
    /// A path relative to the base directory, with `/` separators.
    Path(String),
}

impl UsageLog {
    /// Reads the log at `path`; malformed rows become scan errors (subject `usage_log:<line>`).
    ///
    /// Returns `None` if the log as a whole cannot be used (missing file, wrong header).
    pub(crate) fn read(path: &Path, base_dir: &Path, errors: &mut Vec<ScanError>) -> Option<Self> {
        let mut reader = match csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .comment(Some(b'#'))
            .from_path(path)
        {
            Ok(reader) => reader,
            Err(error) => {
                errors.push(ScanError {
                    subject: "usage_log".to_owned(),
                    message: format!("cannot read `{}`: {}", path.display(), describe(&error)),
                    identity: None,
                });
                return None;
            }
        };
        let header_ok = reader
            .headers()
            .is_ok_and(|it| it.iter().eq(["time", "key"]));
        if !header_ok {
            errors.push(ScanError {
                subject: "usage_log:1".to_owned(),
                message: "the first line must be the header `time,key`".to_owned(),
                identity: None,
            });
            return None;
        }
        let mut res = Self::default();
        for record in reader.records() {
            let record = match record {
                Ok(record) => record,
                Err(error) => {
                    let line = error.position().map_or(0, csv::Position::line);
                    errors.push(row_error(line, describe(&error)));
                    continue;
                }
            };
            let line = record.position().map_or(0, csv::Position::line);
            let (Some(time), Some(key)) = (record.get(0), record.get(1)) else {
                errors.push(row_error(
                    line,
                    "expected two fields, `time,key`".to_owned(),
                ));
                continue;
            };
            let Some(key) = UsageKey::parse(key, base_dir) else {
                errors.push(row_error(
                    line,
                    "key must be `sha256:<64 hex digits>` or a path relative to the config directory"
                        .to_owned(),
                ));
                continue;
            };
            let Ok(at) = DateTime::parse_from_rfc3339(time) else {
                errors.push(row_error(
                    line,
                    "time is not an RFC 3339 timestamp".to_owned(),
                ));
                res.uncertain.insert(key);
                continue;
            };
            let at = at.with_timezone(&Utc);
            let latest = res.latest.entry(key).or_insert(at);
            *latest = (*latest).max(at);
        }
        debug!(path = %path.display(), n_keys = res.latest.len(), "Read usage log.");
        Some(res)
    }

    /// Sets the last use of every credential: the latest event naming its key or one of its files,
    /// else `Never` (the log is complete), else `Unknown` if a malformed row might have named it.
    pub(crate) fn apply(&self, assembled: &mut [Assembled]) {
        for it in assembled {
            let mut keys: Vec<UsageKey> = it
                .credential
                .fingerprints
                .iter()
                .filter(|fp| fp.algorithm == "sha256_spki")
                .map(|fp| UsageKey::Fingerprint(fp.value.clone()))
                .collect();
            keys.extend(it.paths.iter().cloned().map(UsageKey::Path));
            let latest = keys.iter().filter_map(|key| self.latest.get(key)).max();
            it.credential.last_used = match latest {
                Some(at) => LastUse::At {
                    at: *at,
                    source: SOURCE.to_owned(),
                },
                None if keys.iter().any(|key| self.uncertain.contains(key)) => LastUse::Unknown,
                None => LastUse::Never,
            };
        }
    }
}

impl UsageKey {
    fn parse(text: &str, base_dir: &Path) -> Option<Self> {
        if let Some(hex) = text.strip_prefix("sha256:") {
            let valid = hex.len() == 64 && hex.bytes().all(|it| it.is_ascii_hexdigit());
            return valid.then(|| Self::Fingerprint(hex.to_ascii_lowercase()));
        }
        if text.is_empty() {
            return None;
        }
        let path = PathBuf::from(text);
        let relative = match path.strip_prefix(base_dir) {
            Ok(relative) => relative,
            Err(_) => path.as_path(),
        };
        let parts: Vec<_> = relative
            .components()
            .filter(|it| !matches!(it, std::path::Component::CurDir))
            .map(|it| it.as_os_str().to_string_lossy())
            .collect();
        if relative.is_absolute() {
            return Some(Self::Path(relative.to_string_lossy().into_owned()));
        }
        Some(Self::Path(parts.join("/")))
    }
}

fn row_error(line: u64, message: String) -> ScanError {
    ScanError {
        subject: format!("usage_log:{line}"),
        message,
        identity: None,
    }
}

/// A CSV error in words that quote nothing from the file.
fn describe(error: &csv::Error) -> String {
    match error.kind() {
        csv::ErrorKind::Io(error) => error.kind().to_string(),
        csv::ErrorKind::Utf8 { .. } => "the row is not valid UTF-8".to_owned(),
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => {
            format!("expected {expected_len} fields, found {len}")
        }
        _ => "malformed CSV".to_owned(),
    }
}
