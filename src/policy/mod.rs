//! Policies: YAML rules parsed with their locations, and a pure evaluator.
//!
//! A policy says which credentials it looks at (`select`), what makes one of them a violation
//! (`when`), what keywarden does about it (`actions`), how bad it is (`severity`) and whether its
//! destructive actions really run (`mode`). [`load`] reads policy files and reports every error in
//! them at once, each as `file:line:column: message`; [`evaluate`] checks ledger credentials against
//! a [`PolicySet`] and returns one [`Violation`] per (credential, policy) that matches.
//!
//! # Policy file schema
//!
//! One file holds one *pack*:
//!
//! ```yaml
//! pack: signing-keys                # optional: a name for the pack
//! description: Hygiene of keys that sign releases.   # optional
//! policies:                         # required: a list (may be empty)
//!   - id: signing-key-max-age       # required; [a-z0-9.-], starts with a letter or digit;
//!                                   #   unique across every loaded file
//!     description: Signing keys must be replaced within a year.   # optional
//!     severity: high                # required: info | low | medium | high | critical (ascending)
//!     mode: dry_run                 # optional: dry_run (default) | enforce
//!     schedule: "0 6 * * *"         # optional: when the scheduler evaluates it (UTC), see below
//!     select:                       # optional: which credentials; omitted = every credential
//!       sources: ["release-*"]      #   globs on the source name
//!       kinds: [cosign_key, certificate]   # credential kinds (names below)
//!       names: ["*"]                #   globs on the credential name
//!       identities: ["ci-*"]        #   globs on the identity name
//!       purposes: [signing]         #   globs on the purpose (credential's, else identity's)
//!       tags: { env: "prod*" }      #   tag key -> glob on its value (credential's tag, else
//!                                   #   identity's); a credential without the tag does not match
//!     when:                         # required: at least one condition
//!       age_over: 365d              #   now - created_at > 365d
//!       unused_for: 45d             #   last use known and more than 45d ago, or never used and
//!                                   #   age > 45d; an unknown last use never matches
//!       never_used_and_older_than: 30d   # never used and age > 30d
//!       expires_within: 30d         #   has an expiry, not yet reached, at most 30d away
//!       expired: true               #   true: has an expiry <= now; false: has none, or it is later
//!       status: [active]            #   status is one of these (active | inactive | revoked)
//!       owner_missing: true         #   true: no owner on the credential nor its identity
//!                                   #   (a blank owner counts as none); false: has one
//!       tags_missing: [team]        #   at least one of these tag keys is on neither the
//!                                   #   credential nor its identity
//!       identity_credentials:       #   a count over the credentials of the same identity
//!         kinds: [access_key]       #     optional: only these kinds count (default: every kind)
//!         status: [active]          #     optional: only these statuses count (default: all)
//!         more_than: 1              #     required: holds when more than this many count
//!     actions: [notify, rotate]     # required, non-empty: notify | rotate | disable | delete |
//!                                   #   revoke_trust | quarantine
//!     enforce:                      # optional: how `mode: enforce` acts
//!       approval: required          #   none (default) | required: actions wait for
//!                                   #   `keywarden actions approve`
//!       max_actions_per_run: 10     #   default 10; the rest are deferred to later runs
//!       halt_share: 25%             #   halt if one run would act on more than this share of a
//!                                   #   source's credentials (default: the config's
//!                                   #   `enforcement.halt_share`)
//!       delete_hold: 7d             #   `delete` deactivates, holds this long, then deletes
//!       retry: { attempts: 3, backoff: 1h }   # failed actions: retries, first wait (doubles)
//!       generate:                   #   `rotate` of a Vault KV v2 secret: its new value
//!         field: password           #     the field replaced (the others are kept)
//!         length: 32                #     8 to 4096 characters, at least 128 bits in all
//!         alphabet: alphanumeric    #     alphanumeric (default) | hex | base64url | printable,
//!                                   #     or `characters: "..."` (each once)
//! ```
//!
//! Matching:
//! - `select`: every field given must match (AND); within a list, any entry may match (OR).
//!   `tags` with several keys needs all of them to match. A credential without a purpose (or
//!   without the tag) matches no `purposes` (or `tags`) pattern, not even `*`.
//! - `when`: every condition given must hold (AND).
//! - Globs follow [`globset`] syntax (`*`, `?`, `[a-z]`, `{a,b}`), are case-sensitive, and `*`
//!   also matches `/`.
//! - Credential kinds: `access_key`, `secret_id`, `token`, `kv_secret`, `transit_key_version`,
//!   `cosign_key`, `public_key`, `private_key`, `certificate`, `ssh_key`.
//! - `created_at` is the material's own creation time where it has one, else keywarden's first
//!   sighting ([`LedgerCredential::created_at`]); "age" is `now - created_at`.
//! - Every comparison with a duration is strict (`age_over: 365d` does not match at exactly 365
//!   days) except `expires_within`, which includes its bound.
//! - Credentials whose status is `gone` are never evaluated, so `status: [gone]` is refused.
//! - `identity_credentials` counts the credentials of the evaluated credential's identity (same
//!   source and identity id) that are not gone, the evaluated one included when it passes the
//!   filter: `{ kinds: [access_key], status: [active], more_than: 1 }` holds for each active key
//!   of a user with two. The evaluator gets the counts handed in ([`IdentityCounts`]): a scan asks
//!   the store for the counts of the identities on each page, so no identity is missed where its
//!   credentials span pages.
//!
//! Durations are written as people write them and parsed by [`humantime`]: `90d`, `12h`, `2w`,
//! `30m`, `1d 12h`, `90days`. A month is 30.44 days and a year 365.25 days, so prefer days.
//!
//! Durations are at most 100 years.
//!
//! Schedules are cron expressions: the usual five fields `minute hour day-of-month month
//! day-of-week` (day-of-week as crontab has it: 0-7, 0 and 7 are Sunday, or `SUN`..`SAT` in any
//! case; lists, ranges and steps: `1-5`, `5-7` and `FRI-SUN` are Friday to Sunday, `*/2`,
//! `1-5/2`, `SAT,SUN`), the [`cron`] crate's six or
//! seven fields `second minute hour day-of-month month day-of-week [year]` (there day-of-week 1 is
//! Sunday: prefer names), or `@hourly`, `@daily`, `@weekly`, `@monthly`, `@yearly`.
//!
//! Where a string is expected, a value YAML would read as a number or boolean is taken as written
//! (`id: 2024`, `tags: { version: 1.50 }`).
//!
//! Errors: a file that is not YAML (or repeats a key) is reported once, at the place the YAML
//! parser stopped, and the other files are still checked. Otherwise every problem in every policy
//! is reported: unknown fields, values of the wrong type, missing fields, unknown names, bad
//! durations, globs and cron expressions, duplicate ids. [`load`] and [`parse_str`] succeed only
//! when there is none.

#[cfg(test)]
mod began_tests;
mod eval;
pub mod generate;
#[cfg(test)]
mod generate_tests;
#[cfg(test)]
mod identity_tests;
#[cfg(test)]
mod pack_tests;
mod parse;
mod schedule;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

use chrono::{DateTime, TimeDelta, Utc};
use keywarden_connector::{CredentialKind, CredentialStatus};

use crate::diagnostic::{Diagnostic, Diagnostics};
pub use crate::ledger::IdentityCounts;
use crate::ledger::LedgerCredential;

pub use eval::evaluate;

use keywarden_connector::named_enum;

named_enum! {
    /// How bad a violation is; ordered from `Info` (least) to `Critical` (most).
    Severity, "severity" {
        Info = "info",
        Low = "low",
        Medium = "medium",
        High = "high",
        Critical = "critical",
    }
}

named_enum! {
    /// Whether a policy's destructive actions run or are only reported.
    #[derive(Default)]
    Mode, "mode" {
        /// Report what would be done; change nothing (the default).
        #[default]
        DryRun = "dry_run",
        /// Run the actions.
        Enforce = "enforce",
    }
}

named_enum! {
    /// What keywarden does about a violation.
    ActionKind, "action" {
        /// Alert the configured sinks.
        Notify = "notify",
        /// Replace the credential: create, deliver, verify, then disable and delete the old one.
        Rotate = "rotate",
        /// Deactivate the credential, keeping it so it can be re-enabled.
        Disable = "disable",
        /// Delete the credential.
        Delete = "delete",
        /// Stop trusting signatures made with it from a point in time on.
        RevokeTrust = "revoke_trust",
        /// Cut the identity off (e.g. a deny-all policy) while people investigate.
        Quarantine = "quarantine",
        /// Revoke the credential for good (a Vault token or secret-id: they cannot be switched
        /// off and on).
        Revoke = "revoke",
    }
}

/// Every policy loaded from a set of files, in load order (files sorted, policies as written).
#[derive(Clone, Debug, Default)]
pub struct PolicySet {
    pub policies: Vec<Policy>,
}

impl PolicySet {
    /// The policy with this id.
    pub fn get(&self, id: &str) -> Option<&Policy> {
        self.policies.iter().find(|policy| policy.id == id)
    }

    /// Whether a policy has a condition over an identity's credentials, so that [`evaluate`]
    /// needs [`IdentityCounts`].
    pub fn needs_identity_counts(&self) -> bool {
        self.policies
            .iter()
            .any(|policy| policy.when.identity_credentials.is_some())
    }

    /// Whether evaluating `credential` reads its identity's counts: a policy with a condition over
    /// an identity's credentials selects it. The counts of no other identity are looked up.
    pub fn counts_identity_of(&self, credential: &LedgerCredential) -> bool {
        self.policies.iter().any(|policy| {
            policy.when.identity_credentials.is_some() && policy.select.matches(credential)
        })
    }
}

/// One rule: which credentials, which conditions, which actions, when.
#[derive(Clone, Debug)]
pub struct Policy {
    /// Unique across all loaded files; `[a-z0-9.-]`, starting with a letter or digit.
    pub id: String,
    pub description: Option<String>,
    pub severity: Severity,
    pub mode: Mode,
    /// When the scheduler evaluates this policy; `None`: it has no schedule of its own.
    pub schedule: Option<Schedule>,
    pub select: Selector,
    pub when: Conditions,
    /// What to do about a violation, in order; never empty.
    pub actions: Vec<ActionKind>,
    /// How the policy acts in `enforce` mode.
    pub enforce: Enforcement,
    pub origin: Origin,
}

named_enum! {
    /// Whether a person must approve a policy's actions before they change anything.
    #[derive(Default)]
    Approval, "approval" {
        /// Enforcing policies act at once (the default).
        #[default]
        None = "none",
        /// Actions wait as `awaiting_approval` until `keywarden actions approve`.
        Required = "required",
    }
}

/// How an enforcing policy acts: the `enforce:` block of a policy.
#[derive(Clone, Debug, PartialEq)]
pub struct Enforcement {
    pub approval: Approval,
    /// At most this many new actions per run (default 10); the rest are deferred to later runs.
    pub max_actions_per_run: u32,
    /// If one run would act on more than this share of a source's credentials, the policy halts
    /// for that source and a critical finding says so; `None`: the configuration's default.
    pub halt_share: Option<f64>,
    /// `delete` of an active key deactivates it and deletes it only after this hold (default 7d).
    pub delete_hold: TimeDelta,
    pub retry: Retry,
    /// `rotate` of a secret whose value keywarden makes (a Vault KV v2 secret): how.
    pub generate: Option<generate::Generator>,
}

/// How a failed action of the policy is retried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retry {
    /// Retries after the first failure (default 3); then it stays failed, visible.
    pub attempts: u32,
    /// The wait before the first retry, doubled for each later one (default 1h).
    pub backoff: TimeDelta,
}

impl Default for Retry {
    fn default() -> Self {
        Self {
            attempts: 3,
            backoff: TimeDelta::hours(1),
        }
    }
}

impl Default for Enforcement {
    fn default() -> Self {
        Self {
            approval: Approval::None,
            max_actions_per_run: 10,
            halt_share: None,
            delete_hold: TimeDelta::days(7),
            retry: Retry::default(),
            generate: None,
        }
    }
}

/// Where a policy was defined.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    pub file: PathBuf,
    /// 1-based line of the policy's mapping (its first key).
    pub line: u64,
    /// 1-based column of the policy's mapping.
    pub column: u64,
    /// The `pack:` name of the file, if it has one.
    pub pack: Option<String>,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

/// A cron schedule with the text it was written as.
#[derive(Clone, Debug)]
pub struct Schedule {
    /// As written in the policy file.
    pub text: String,
    /// Parsed; a five-field expression has been given a leading `0` seconds field and its
    /// day-of-week numbers moved to the `cron` crate's numbering.
    pub cron: cron::Schedule,
}

/// A duration threshold with the text it was written as (`365d`), used in violation reasons.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Threshold {
    pub text: String,
    pub duration: TimeDelta,
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Which credentials a policy looks at. Every field that is `Some` (or non-empty) must match.
#[derive(Clone, Debug, Default)]
pub struct Selector {
    pub sources: Option<Patterns>,
    pub kinds: Option<KindSet>,
    pub names: Option<Patterns>,
    pub identities: Option<Patterns>,
    pub purposes: Option<Patterns>,
    /// Tag key and the patterns its value must match.
    pub tags: Vec<(String, Patterns)>,
}

/// A policy's conditions. Every one that is set must hold; at least one is set.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Conditions {
    pub age_over: Option<Threshold>,
    pub unused_for: Option<Threshold>,
    pub never_used_and_older_than: Option<Threshold>,
    pub expires_within: Option<Threshold>,
    pub expired: Option<bool>,
    pub status: Option<StatusSet>,
    pub owner_missing: Option<bool>,
    /// Matches when any of these keys is missing; empty means no such condition.
    pub tags_missing: Vec<String>,
    pub identity_credentials: Option<IdentityCondition>,
}

/// `identity_credentials`: more than `more_than` credentials of the identity pass the filter.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IdentityCondition {
    /// Only these kinds count; `None`: every kind.
    pub kinds: Option<KindSet>,
    /// Only these statuses count; `None`: every status (gone credentials never count).
    pub status: Option<StatusSet>,
    pub more_than: u64,
}

impl IdentityCondition {
    /// How many of the identity's credentials count.
    pub fn count(&self, ledger: &LedgerCredential, identities: &IdentityCounts) -> u64 {
        identities.count(
            &ledger.source,
            &ledger.credential.identity_id,
            |kind, status| {
                status != CredentialStatus::Gone
                    && self.kinds.is_none_or(|kinds| kinds.contains(kind))
                    && self.status.is_none_or(|set| set.contains(status))
            },
        )
    }
}

impl Conditions {
    /// Whether no condition is set (which a parsed policy never has).
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// A set of credential kinds, as a bitmask.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KindSet(u16);

impl KindSet {
    fn bit(kind: CredentialKind) -> u16 {
        1 << (kind as u16)
    }

    /// Adds a kind.
    pub fn insert(&mut self, kind: CredentialKind) {
        self.0 |= Self::bit(kind);
    }

    /// Whether the set holds `kind`.
    pub fn contains(self, kind: CredentialKind) -> bool {
        self.0 & Self::bit(kind) != 0
    }

    /// The kinds in the set, in declaration order.
    pub fn iter(self) -> impl Iterator<Item = CredentialKind> {
        CredentialKind::ALL
            .iter()
            .copied()
            .filter(move |kind| self.contains(*kind))
    }
}

impl FromIterator<CredentialKind> for KindSet {
    fn from_iter<I: IntoIterator<Item = CredentialKind>>(iter: I) -> Self {
        let mut set = Self::default();
        iter.into_iter().for_each(|kind| set.insert(kind));
        set
    }
}

/// A set of credential statuses, as a bitmask.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatusSet(u8);

impl StatusSet {
    fn bit(status: CredentialStatus) -> u8 {
        1 << (status as u8)
    }

    /// Adds a status.
    pub fn insert(&mut self, status: CredentialStatus) {
        self.0 |= Self::bit(status);
    }

    /// Whether the set holds `status`.
    pub fn contains(self, status: CredentialStatus) -> bool {
        self.0 & Self::bit(status) != 0
    }

    /// The statuses in the set, in declaration order.
    pub fn iter(self) -> impl Iterator<Item = CredentialStatus> {
        CredentialStatus::ALL
            .iter()
            .copied()
            .filter(move |status| self.contains(*status))
    }
}

impl FromIterator<CredentialStatus> for StatusSet {
    fn from_iter<I: IntoIterator<Item = CredentialStatus>>(iter: I) -> Self {
        let mut set = Self::default();
        iter.into_iter().for_each(|status| set.insert(status));
        set
    }
}

/// Compiled globs, any of which may match.
///
/// Patterns without glob syntax are compared as plain strings, and a `*` pattern makes the whole
/// set match anything without looking at the value.
#[derive(Clone, Debug)]
pub struct Patterns {
    /// As written.
    texts: Vec<String>,
    /// Whether one pattern is `*`.
    any: bool,
    literals: Vec<String>,
    globs: globset::GlobSet,
}

impl Patterns {
    /// Compiles patterns; the error names the first invalid one.
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<Self, PatternError> {
        let mut builder = globset::GlobSetBuilder::new();
        let mut literals = Vec::new();
        let mut any = false;
        for pattern in patterns {
            let pattern = pattern.as_ref();
            if pattern == "*" {
                any = true;
            } else if pattern.contains(['*', '?', '[', ']', '{', '}', '\\']) {
                let glob = globset::Glob::new(pattern).map_err(|err| PatternError {
                    pattern: pattern.to_owned(),
                    reason: err.kind().to_string(),
                })?;
                builder.add(glob);
            } else {
                literals.push(pattern.to_owned());
            }
        }
        let globs = builder.build().map_err(|err| PatternError {
            pattern: err.glob().unwrap_or_default().to_owned(),
            reason: err.kind().to_string(),
        })?;
        Ok(Self {
            texts: patterns.iter().map(|it| it.as_ref().to_owned()).collect(),
            any,
            literals,
            globs,
        })
    }

    /// The patterns as written.
    pub fn as_slice(&self) -> &[String] {
        &self.texts
    }

    /// Whether `*` is one of the patterns, so that any value matches.
    pub fn matches_anything(&self) -> bool {
        self.any
    }

    /// Whether any pattern matches `value`.
    pub fn is_match(&self, value: &str) -> bool {
        self.any
            || self.literals.iter().any(|literal| literal == value)
            || (!self.globs.is_empty() && self.globs.is_match(value))
    }
}

/// A glob that does not compile.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid glob `{pattern}`: {reason}")]
pub struct PatternError {
    pub pattern: String,
    pub reason: String,
}

/// One policy violated by one credential.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// Index into the credentials passed to [`evaluate`].
    pub credential: usize,
    /// Index into [`PolicySet::policies`].
    pub policy: usize,
    /// Why, in words: `age 400d exceeds 365d; status active`.
    pub reason: String,
}

/// Loads every `*.yaml` / `*.yml` file under each path and checks the policies in them.
///
/// A path may be a file (loaded whatever its extension) or a directory (searched recursively in
/// name order, skipping entries whose names start with `.` and not following links to
/// directories); a file reached twice is read once. Reports every error found in every file, each
/// with file:line:column — including an id defined twice, naming both places.
pub fn load(paths: &[PathBuf]) -> Result<PolicySet, Diagnostics> {
    let (files, mut diagnostics) = read_policy_files(paths);
    let parsed = parse_files(
        files
            .iter()
            .map(|(file, text)| (file.as_path(), text.as_str())),
    );
    match parsed {
        Ok(set) if diagnostics.is_empty() => Ok(set),
        Ok(_) => Err(Diagnostics(diagnostics)),
        Err(Diagnostics(more)) => {
            diagnostics.extend(more);
            Err(Diagnostics(diagnostics))
        }
    }
}

/// Parses one policy file's text and checks it, ids included. Pure: `file` only names the file in
/// errors and origins.
pub fn parse_str(file: &Path, text: &str) -> Result<Vec<Policy>, Diagnostics> {
    parse_files([(file, text)]).map(|set| set.policies)
}

/// Parses several files' texts into one set, checking that ids are unique across them. Pure.
///
/// Diagnostics come file by file, each file's in order of place.
fn parse_files<'a>(
    files: impl IntoIterator<Item = (&'a Path, &'a str)>,
) -> Result<PolicySet, Diagnostics> {
    let mut policies = Vec::new();
    let mut diagnostics = Vec::new();
    // Where each id was first defined, as `file:line:column`.
    let mut first_defined: HashMap<String, String> = HashMap::new();
    for (file, text) in files {
        let parsed = parse::parse_file(file, text);
        policies.extend(parsed.policies);
        let mut file_diagnostics = parsed.diagnostics;
        for id in parsed.ids {
            if let Some(first) = first_defined.get(&id.value) {
                let message = format!(
                    "duplicate policy id `{}`, first defined at {first}",
                    id.value
                );
                file_diagnostics.push(Diagnostic::at(file, &id.referenced, message));
            } else {
                let place = format!(
                    "{}:{}:{}",
                    file.display(),
                    id.referenced.line(),
                    id.referenced.column()
                );
                first_defined.insert(id.value, place);
            }
        }
        file_diagnostics.sort_by_key(|it| (it.line, it.column));
        diagnostics.extend(file_diagnostics);
    }
    if diagnostics.is_empty() {
        Ok(PolicySet { policies })
    } else {
        Err(Diagnostics(diagnostics))
    }
}

/// The one place the policy engine does I/O: finds and reads the policy files under `paths`.
///
/// Directories are walked in name order; entries whose names start with `.` are skipped, and
/// symbolic links to directories are not followed (links to files are). A file reached twice is
/// read once.
fn read_policy_files(paths: &[PathBuf]) -> (Vec<(PathBuf, String)>, Vec<Diagnostic>) {
    fn walk(dir: &Path, found: &mut Vec<PathBuf>, errors: &mut Vec<Diagnostic>) {
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(err) => {
                errors.push(Diagnostic::file(
                    dir,
                    format!("cannot read directory: {err}"),
                ));
                return;
            }
        };
        let mut entries: Vec<_> = entries
            .filter_map(Result::ok)
            .filter(|entry| !entry.file_name().to_string_lossy().starts_with('.'))
            .collect();
        entries.sort_by_key(|entry| entry.file_name());
        for entry in entries {
            let path = entry.path();
            let is_real_dir = entry.file_type().is_ok_and(|kind| kind.is_dir());
            if is_real_dir {
                walk(&path, found, errors);
            } else if path
                .extension()
                .is_some_and(|ext| ext == "yaml" || ext == "yml")
                && path.is_file()
            {
                found.push(path);
            }
        }
    }

    let mut found = Vec::new();
    let mut errors = Vec::new();
    for path in paths {
        if path.is_dir() {
            walk(path, &mut found, &mut errors);
        } else {
            found.push(path.clone());
        }
    }
    let mut seen = HashSet::new();
    let mut files = Vec::with_capacity(found.len());
    for path in found {
        let canonical = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
        if !seen.insert(canonical) {
            continue;
        }
        match std::fs::read_to_string(&path) {
            Ok(text) => files.push((path, text)),
            Err(err) => errors.push(Diagnostic::file(&path, format!("cannot read: {err}"))),
        }
    }
    (files, errors)
}

/// Whether a credential is selected by a policy and meets its conditions; the reason if so.
///
/// The same check [`evaluate`] makes, for one pair (e.g. to explain a finding).
pub fn violation_reason(
    policy: &Policy,
    credential: &LedgerCredential,
    identities: &IdentityCounts,
    now: DateTime<Utc>,
) -> Option<String> {
    eval::violation_reason(policy, credential, identities, now)
}
