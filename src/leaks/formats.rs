//! The five report formats: recognition and reading. Only the fields keywarden uses are declared;
//! plaintext fields are read as [`Plain`] (straight into a `Secret`) or not at all, so serde skips
//! them without keeping a copy.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use keywarden_connector::Secret;
use serde::Deserialize;
use serde::de::IgnoredAny;

use super::{Indicator, Leak, LeakError, LeakFormat, digest_id, indicators_of};

/// A plaintext field, read straight into a [`Secret`].
struct Plain(Secret);

impl<'de> Deserialize<'de> for Plain {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(PlainVisitor)
    }
}

/// Takes a string; anything else is refused with a message that never shows the value (serde's
/// default one quotes it, and a plaintext field's value is a secret whatever its type).
struct PlainVisitor;

impl PlainVisitor {
    fn refuse<E: serde::de::Error>() -> E {
        E::custom("a plaintext field is not a string")
    }
}

impl<'de> serde::de::Visitor<'de> for PlainVisitor {
    type Value = Plain;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<Plain, E> {
        Ok(Plain(Secret::new(value.to_owned())))
    }

    fn visit_string<E: serde::de::Error>(self, value: String) -> Result<Plain, E> {
        Ok(Plain(Secret::new(value)))
    }

    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Plain, E> {
        Err(Self::refuse())
    }

    fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<Plain, E> {
        Err(Self::refuse())
    }

    fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<Plain, E> {
        Err(Self::refuse())
    }

    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Plain, E> {
        Err(Self::refuse())
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Plain, E> {
        Err(Self::refuse())
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, _: A) -> Result<Plain, A::Error> {
        Err(Self::refuse())
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, _: A) -> Result<Plain, A::Error> {
        Err(Self::refuse())
    }
}

/// The top-level keys that tell the formats apart; values are skipped unread.
#[derive(Deserialize)]
struct Probe {
    #[serde(rename = "RuleID")]
    rule_id: Option<IgnoredAny>,
    #[serde(rename = "DetectorName")]
    detector_name: Option<IgnoredAny>,
    #[serde(rename = "SourceMetadata")]
    source_metadata: Option<IgnoredAny>,
    results: Option<IgnoredAny>,
    plugins_used: Option<IgnoredAny>,
    incident: Option<IgnoredAny>,
    alert: Option<IgnoredAny>,
    secret_type: Option<IgnoredAny>,
}

impl Probe {
    fn format(&self) -> Option<LeakFormat> {
        if self.rule_id.is_some() {
            Some(LeakFormat::Gitleaks)
        } else if self.detector_name.is_some() || self.source_metadata.is_some() {
            Some(LeakFormat::Trufflehog)
        } else if self.results.is_some() && self.plugins_used.is_some() {
            Some(LeakFormat::DetectSecrets)
        } else if self.incident.is_some() {
            Some(LeakFormat::Gitguardian)
        } else if self.alert.is_some() || self.secret_type.is_some() {
            Some(LeakFormat::Github)
        } else {
            None
        }
    }
}

/// Recognises a report's format from its bytes, or `None` (also for an empty list, which any
/// list format could be).
pub fn detect(bytes: &[u8]) -> Option<LeakFormat> {
    let text = std::str::from_utf8(bytes).ok()?;
    if text.trim_start().starts_with('[') {
        let items: Vec<Probe> = serde_json::from_str(text).ok()?;
        return items.first()?.format();
    }
    if let Ok(probe) = serde_json::from_str::<Probe>(text) {
        return probe.format();
    }
    // JSON lines: TruffleHog writes one finding per line.
    let first = text.lines().find(|line| !line.trim().is_empty())?;
    let probe: Probe = serde_json::from_str(first).ok()?;
    probe.format().filter(|it| *it == LeakFormat::Trufflehog)
}

/// A serde error as a place and a message that quotes no value from the report.
fn malformed(err: &serde_json::Error, line_offset: usize) -> LeakError {
    let line = err.line() + line_offset;
    let full = err.to_string();
    // serde_json appends " at line L column C"; the place is given apart.
    let message = full
        .rsplit_once(" at line ")
        .map_or(full.as_str(), |(message, _)| message);
    LeakError::Malformed {
        place: format!("{line}:{}", err.column()),
        message: unquoted(message),
    }
}

/// `message` with every part in double quotes or backticks replaced by `…`: serde quotes the
/// values it found ("invalid type: string \"AKIA...\"", "integer `4111...`"), and a report's
/// values may be secrets.
pub(super) fn unquoted(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut open: Option<char> = None;
    let mut escaped = false;
    for c in message.chars() {
        match open {
            Some(quote) => match (escaped, c) {
                (false, '\\') => escaped = true,
                (false, c) if c == quote => {
                    open = None;
                    out.push('…');
                    out.push(quote);
                }
                _ => escaped = false,
            },
            None => {
                out.push(c);
                if c == '"' || c == '`' {
                    open = Some(c);
                }
            }
        }
    }
    if let Some(quote) = open {
        out.push('…');
        out.push(quote);
    }
    out
}

/// Where `bytes` stop being JSON (one document, or JSON lines), if they do.
pub(super) fn json_error(bytes: &[u8]) -> Option<LeakError> {
    let whole = serde_json::from_slice::<IgnoredAny>(bytes).err()?;
    let lines: Vec<(usize, &[u8])> = bytes
        .split(|it| *it == b'\n')
        .enumerate()
        .filter(|(_, line)| !line.iter().all(u8::is_ascii_whitespace))
        .collect();
    let json_lines = lines.len() > 1
        && lines
            .iter()
            .all(|(_, it)| it.trim_ascii_start().starts_with(b"{"));
    if !json_lines {
        return Some(malformed(&whole, 0));
    }
    lines.into_iter().find_map(|(index, line)| {
        serde_json::from_slice::<IgnoredAny>(line)
            .err()
            .map(|err| malformed(&err, index))
    })
}

fn json<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, LeakError> {
    serde_json::from_slice(bytes).map_err(|err| malformed(&err, 0))
}

// --- GitHub secret scanning ----------------------------------------------------------------

#[derive(Deserialize)]
struct GithubAlert {
    number: Option<u64>,
    created_at: Option<DateTime<Utc>>,
    url: Option<String>,
    html_url: Option<String>,
    secret_type: String,
    /// The literal (REST without `hide_secret`); plaintext.
    secret: Option<Plain>,
    resolution: Option<String>,
    push_protection_bypassed_at: Option<DateTime<Utc>>,
}

#[derive(Deserialize)]
struct GithubRepository {
    full_name: String,
}

#[derive(Deserialize)]
struct GithubWebhook {
    alert: GithubAlert,
    repository: Option<GithubRepository>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum GithubReport {
    Webhook(Box<GithubWebhook>),
    Alerts(Vec<GithubAlert>),
    Alert(Box<GithubAlert>),
}

pub(super) fn github(bytes: &[u8]) -> Result<Vec<Leak>, LeakError> {
    // `untagged` would hide where a report is malformed: try each shape, report the likeliest.
    let text = std::str::from_utf8(bytes).map_err(|_| LeakError::Malformed {
        place: "1:1".to_owned(),
        message: "not UTF-8 text".to_owned(),
    })?;
    let report = if text.trim_start().starts_with('[') {
        GithubReport::Alerts(json(bytes)?)
    } else if serde_json::from_str::<Probe>(text).is_ok_and(|it| it.alert.is_some()) {
        GithubReport::Webhook(json(bytes)?)
    } else {
        GithubReport::Alert(json(bytes)?)
    };
    Ok(match report {
        GithubReport::Webhook(hook) => {
            // Whatever the action (created, reopened, resolved, ...), the alert says what leaked;
            // only its resolution as a false positive or a test value dismisses it.
            let repository = hook.repository.map(|it| it.full_name);
            vec![github_leak(hook.alert, repository.as_deref())]
        }
        GithubReport::Alerts(alerts) => {
            alerts.into_iter().map(|it| github_leak(it, None)).collect()
        }
        GithubReport::Alert(alert) => vec![github_leak(*alert, None)],
    })
}

fn github_leak(alert: GithubAlert, repository: Option<&str>) -> Leak {
    let location = alert.html_url.clone().or_else(|| alert.url.clone());
    let id = match (&alert.url, repository, alert.number) {
        (Some(url), _, _) => url.clone(),
        (None, Some(repo), Some(n)) => format!("{repo}#{n}"),
        _ => digest_id(&[&alert.secret_type, location.as_deref().unwrap_or_default()]),
    };
    let (indicators, candidates) = alert
        .secret
        .map(|it| indicators_of(it.0))
        .unwrap_or_default();
    let exposed_at = [alert.created_at, alert.push_protection_bypassed_at]
        .into_iter()
        .flatten()
        .min();
    let dismissed = alert
        .resolution
        .filter(|it| matches!(it.as_str(), "false_positive" | "used_in_tests"))
        .map(|it| format!("resolved on GitHub as {it}"));
    Leak {
        id: format!("github:{id}"),
        format: LeakFormat::Github,
        detector: alert.secret_type,
        location,
        exposed_at,
        indicators,
        dismissed,
        candidates,
    }
}

// --- GitGuardian ---------------------------------------------------------------------------

#[derive(Deserialize)]
struct GitguardianWebhook {
    action: Option<String>,
    incident: GitguardianIncident,
}

#[derive(Deserialize)]
struct GitguardianIncident {
    id: u64,
    date: Option<DateTime<Utc>>,
    detector: Option<GitguardianDetector>,
    hmsl_hash: Option<String>,
    gitguardian_url: Option<String>,
}

#[derive(Deserialize)]
struct GitguardianDetector {
    name: String,
}

pub(super) fn gitguardian(bytes: &[u8]) -> Result<Vec<Leak>, LeakError> {
    let hook: GitguardianWebhook = json(bytes)?;
    let incident = hook.incident;
    let indicators = incident
        .hmsl_hash
        .filter(|it| !it.is_empty())
        .map(|it| vec![Indicator::Hmsl(it.to_ascii_lowercase())])
        .unwrap_or_default();
    Ok(vec![Leak {
        id: format!("gitguardian:{}", incident.id),
        format: LeakFormat::Gitguardian,
        detector: incident.detector.map(|it| it.name).unwrap_or_default(),
        location: incident.gitguardian_url,
        exposed_at: incident.date,
        indicators,
        dismissed: (hook.action.as_deref() == Some("incident_ignored"))
            .then(|| "ignored on GitGuardian".to_owned()),
        candidates: Default::default(),
    }])
}

// --- TruffleHog ----------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TrufflehogFinding {
    source_metadata: Option<TrufflehogMetadata>,
    detector_name: String,
    /// The detector's match: an access key id for AWS, the key for a private key; plaintext.
    raw: Option<Plain>,
    // `RawV2`, `SecretParts`, `Redacted` and `ExtraData` are never read.
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TrufflehogMetadata {
    /// By source type (`Git`, `Github`, `Filesystem`, ...): where the finding is.
    data: BTreeMap<String, TrufflehogPlace>,
}

#[derive(Deserialize)]
struct TrufflehogPlace {
    commit: Option<String>,
    file: Option<String>,
    repository: Option<String>,
    link: Option<String>,
    timestamp: Option<String>,
    line: Option<u64>,
}

/// TruffleHog's git timestamps (`2022-06-16 10:17:40 -0700`), or RFC 3339.
fn trufflehog_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S %z")
        .or_else(|_| DateTime::parse_from_rfc3339(text))
        .ok()
        .map(|it| it.with_timezone(&Utc))
}

pub(super) fn trufflehog(bytes: &[u8]) -> Result<Vec<Leak>, LeakError> {
    let mut leaks = Vec::new();
    for (index, line) in bytes.split(|it| *it == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let finding: TrufflehogFinding =
            serde_json::from_slice(line).map_err(|err| malformed(&err, index))?;
        let place = finding
            .source_metadata
            .and_then(|it| it.data.into_values().next());
        let (indicators, candidates) = finding
            .raw
            .map(|it| indicators_of(it.0))
            .unwrap_or_default();
        let (location, exposed_at, key) = match &place {
            Some(place) => {
                let file = place.file.clone().unwrap_or_default();
                let location = match (&place.repository, &place.commit, place.line) {
                    (Some(repo), Some(commit), Some(line)) => {
                        format!("{repo}@{commit}:{file}:{line}")
                    }
                    _ => place.link.clone().unwrap_or(file),
                };
                let exposed = place.timestamp.as_deref().and_then(trufflehog_time);
                let key = format!(
                    "{}|{}|{}",
                    place.commit.as_deref().unwrap_or_default(),
                    place.file.as_deref().unwrap_or_default(),
                    place.line.unwrap_or_default()
                );
                (Some(location), exposed, key)
            }
            None => (None, None, String::new()),
        };
        let shown: Vec<String> = indicators.iter().map(|it| format!("{it:?}")).collect();
        leaks.push(Leak {
            id: format!(
                "trufflehog:{}",
                digest_id(&[&finding.detector_name, &key, &shown.join(",")])
            ),
            format: LeakFormat::Trufflehog,
            detector: finding.detector_name,
            location,
            exposed_at,
            indicators,
            dismissed: None,
            candidates,
        });
    }
    Ok(leaks)
}

// --- gitleaks ------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GitleaksFinding {
    #[serde(rename = "RuleID")]
    rule_id: String,
    file: Option<String>,
    start_line: Option<u64>,
    commit: Option<String>,
    date: Option<String>,
    fingerprint: Option<String>,
    /// The matched secret (an access key id for `aws-access-token`); plaintext. `Match` is never
    /// read.
    secret: Option<Plain>,
}

pub(super) fn gitleaks(bytes: &[u8]) -> Result<Vec<Leak>, LeakError> {
    let findings: Vec<GitleaksFinding> = json(bytes)?;
    Ok(findings
        .into_iter()
        .map(|finding| {
            let location =
                finding
                    .file
                    .as_ref()
                    .map(|file| match (&finding.commit, finding.start_line) {
                        (Some(commit), Some(line)) if !commit.is_empty() => {
                            format!("{commit}:{file}:{line}")
                        }
                        (_, Some(line)) => format!("{file}:{line}"),
                        _ => file.clone(),
                    });
            // A redacted report (`--redact`) keeps `REDACTED`: its hash matches nothing.
            let (indicators, candidates) = finding
                .secret
                .map(|it| indicators_of(it.0))
                .unwrap_or_default();
            let fingerprint = finding.fingerprint.unwrap_or_else(|| {
                digest_id(&[&finding.rule_id, location.as_deref().unwrap_or_default()])
            });
            Leak {
                id: format!("gitleaks:{fingerprint}"),
                format: LeakFormat::Gitleaks,
                detector: finding.rule_id,
                location,
                exposed_at: finding
                    .date
                    .as_deref()
                    .and_then(|it| DateTime::parse_from_rfc3339(it).ok())
                    .map(|it| it.with_timezone(&Utc)),
                indicators,
                dismissed: None,
                candidates,
            }
        })
        .collect())
}

// --- detect-secrets ------------------------------------------------------------------------

#[derive(Deserialize)]
struct DetectSecretsBaseline {
    results: BTreeMap<String, Vec<DetectSecretsResult>>,
}

#[derive(Deserialize)]
struct DetectSecretsResult {
    #[serde(rename = "type")]
    kind: String,
    hashed_secret: String,
    line_number: Option<u64>,
    is_secret: Option<bool>,
}

pub(super) fn detect_secrets(bytes: &[u8]) -> Result<Vec<Leak>, LeakError> {
    let baseline: DetectSecretsBaseline = json(bytes)?;
    let mut leaks = Vec::new();
    for (file, results) in baseline.results {
        for (index, result) in results.into_iter().enumerate() {
            let hash = result.hashed_secret.to_ascii_lowercase();
            if hash.len() != 40 || !hash.bytes().all(|it| it.is_ascii_hexdigit()) {
                return Err(LeakError::Malformed {
                    place: format!("results.{file}[{index}].hashed_secret"),
                    message: "expected a SHA-1 in hex (40 digits)".to_owned(),
                });
            }
            let location = match result.line_number {
                Some(line) => format!("{file}:{line}"),
                None => file.clone(),
            };
            leaks.push(Leak {
                id: format!(
                    "detect_secrets:{}",
                    digest_id(&[&file, &result.kind, &hash])
                ),
                format: LeakFormat::DetectSecrets,
                detector: result.kind,
                location: Some(location),
                // A baseline says when it was made, not when the secret was exposed.
                exposed_at: None,
                indicators: vec![Indicator::Sha1(hash)],
                dismissed: (result.is_secret == Some(false))
                    .then(|| "marked not a secret in the baseline".to_owned()),
                candidates: Default::default(),
            });
        }
    }
    Ok(leaks)
}
