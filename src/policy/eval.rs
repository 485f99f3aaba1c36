//! The evaluator: pure, allocation-free except for the violations it returns.
//!
//! Everything that can be prepared is prepared at parse time (kind and status bitmasks, compiled
//! globs, `*` short-circuits), so evaluating is a few comparisons per (credential, policy) pair.
//! Conditions are first checked as booleans; the reason text is only built for a violation.

use std::fmt::{self, Write as _};

use chrono::{DateTime, TimeDelta, Utc};
use keywarden_connector::{CredentialStatus, LastUse};

use super::{Conditions, IdentityCounts, Policy, PolicySet, Selector, Violation};
use crate::ledger::LedgerCredential;

/// Checks every credential against every policy; one [`Violation`] per match, ordered by
/// credential, then policy.
///
/// `identities` holds the counts conditions over an identity's credentials use (see
/// [`IdentityCounts`]; empty when [`PolicySet::needs_identity_counts`] is false).
/// Pure: no I/O, no clock. Credentials whose status is `gone` are skipped.
pub fn evaluate(
    set: &PolicySet,
    credentials: &[LedgerCredential],
    identities: &IdentityCounts,
    now: DateTime<Utc>,
) -> Vec<Violation> {
    let mut violations = Vec::new();
    for (credential_idx, credential) in credentials.iter().enumerate() {
        if credential.credential.status == CredentialStatus::Gone {
            continue;
        }
        for (policy_idx, policy) in set.policies.iter().enumerate() {
            if policy.select.matches(credential) && policy.when.holds(credential, identities, now) {
                violations.push(Violation {
                    credential: credential_idx,
                    policy: policy_idx,
                    reason: policy.when.reason(credential, identities, now),
                });
            }
        }
    }
    violations
}

/// The reason `policy` is violated by `credential`, or `None` when it is not (or the credential
/// is gone).
pub(super) fn violation_reason(
    policy: &Policy,
    credential: &LedgerCredential,
    identities: &IdentityCounts,
    now: DateTime<Utc>,
) -> Option<String> {
    (credential.credential.status != CredentialStatus::Gone
        && policy.select.matches(credential)
        && policy.when.holds(credential, identities, now))
    .then(|| policy.when.reason(credential, identities, now))
}

impl Selector {
    /// Whether the credential is one this selector picks. Cheapest checks first.
    pub fn matches(&self, ledger: &LedgerCredential) -> bool {
        let credential = &ledger.credential;
        self.kinds
            .is_none_or(|kinds| kinds.contains(credential.kind))
            && self
                .sources
                .as_ref()
                .is_none_or(|patterns| patterns.is_match(&ledger.source))
            && self
                .names
                .as_ref()
                .is_none_or(|patterns| patterns.is_match(&credential.name))
            && self
                .identities
                .as_ref()
                .is_none_or(|patterns| patterns.is_match(&ledger.identity.name))
            && self.purposes.as_ref().is_none_or(|patterns| {
                ledger
                    .purpose()
                    .is_some_and(|purpose| patterns.is_match(purpose))
            })
            && self.tags.iter().all(|(key, patterns)| {
                ledger
                    .tag(key)
                    .is_some_and(|value| patterns.is_match(value))
            })
    }
}

/// Facts about one credential at `now` that several conditions use.
struct Facts<'a> {
    ledger: &'a LedgerCredential,
    now: DateTime<Utc>,
    age: TimeDelta,
}

impl<'a> Facts<'a> {
    fn new(ledger: &'a LedgerCredential, now: DateTime<Utc>) -> Self {
        Self {
            ledger,
            now,
            age: now - ledger.created_at(),
        }
    }

    fn last_use(&self) -> &'a LastUse {
        &self.ledger.credential.last_used
    }

    fn expires_at(&self) -> Option<DateTime<Utc>> {
        self.ledger.credential.expires_at
    }

    fn owner(&self) -> Option<&'a str> {
        self.ledger.owner().filter(|owner| !owner.trim().is_empty())
    }

    fn unused_for(&self, limit: TimeDelta) -> bool {
        match self.last_use() {
            LastUse::Unknown => false,
            LastUse::Never => self.age > limit,
            LastUse::At { at, .. } => self.now - *at > limit,
        }
    }

    fn never_used_and_older_than(&self, limit: TimeDelta) -> bool {
        matches!(self.last_use(), LastUse::Never) && self.age > limit
    }

    fn expires_within(&self, limit: TimeDelta) -> bool {
        self.expires_at()
            .is_some_and(|at| at > self.now && at - self.now <= limit)
    }

    fn expired(&self) -> bool {
        self.expires_at().is_some_and(|at| at <= self.now)
    }

    fn missing_tags<'k>(&self, keys: &'k [String]) -> impl Iterator<Item = &'k String> {
        keys.iter().filter(|key| self.ledger.tag(key).is_none())
    }
}

impl Conditions {
    /// Whether every condition that is set holds for the credential at `now`.
    pub fn holds(
        &self,
        ledger: &LedgerCredential,
        identities: &IdentityCounts,
        now: DateTime<Utc>,
    ) -> bool {
        let facts = Facts::new(ledger, now);
        self.status
            .is_none_or(|set| set.contains(ledger.credential.status))
            && self
                .age_over
                .as_ref()
                .is_none_or(|limit| facts.age > limit.duration)
            && self
                .unused_for
                .as_ref()
                .is_none_or(|limit| facts.unused_for(limit.duration))
            && self
                .never_used_and_older_than
                .as_ref()
                .is_none_or(|limit| facts.never_used_and_older_than(limit.duration))
            && self
                .expires_within
                .as_ref()
                .is_none_or(|limit| facts.expires_within(limit.duration))
            && self.expired.is_none_or(|want| facts.expired() == want)
            && self
                .owner_missing
                .is_none_or(|want| facts.owner().is_none() == want)
            && (self.tags_missing.is_empty()
                || facts.missing_tags(&self.tags_missing).next().is_some())
            && self
                .identity_credentials
                .as_ref()
                .is_none_or(|it| it.count(ledger, identities) > it.more_than)
    }

    /// When the conditions began to hold for the credential, as far as its times tell: the latest
    /// start of the time-bound conditions (`age_over` T: creation + T; `unused_for` T: last use,
    /// or creation when never used, + T; `never_used_and_older_than` T: creation + T;
    /// `expires_within` T: expiry − T; `expired: true`: the expiry). `None` when no condition is
    /// bound to a time (a missing owner began when nobody can tell), or a time is out of range.
    ///
    /// Only meaningful when [`Self::holds`] is true.
    pub fn began(&self, ledger: &LedgerCredential) -> Option<DateTime<Utc>> {
        let created = ledger.created_at();
        let after =
            |at: DateTime<Utc>, limit: &super::Threshold| at.checked_add_signed(limit.duration);
        let mut starts: Vec<Option<DateTime<Utc>>> = Vec::new();
        if let Some(limit) = &self.age_over {
            starts.push(after(created, limit));
        }
        if let Some(limit) = &self.unused_for {
            starts.push(match &ledger.credential.last_used {
                LastUse::At { at, .. } => after(*at, limit),
                LastUse::Never | LastUse::Unknown => after(created, limit),
            });
        }
        if let Some(limit) = &self.never_used_and_older_than {
            starts.push(after(created, limit));
        }
        if let Some(limit) = &self.expires_within {
            starts.push(
                ledger
                    .credential
                    .expires_at
                    .and_then(|at| at.checked_sub_signed(limit.duration)),
            );
        }
        if self.expired == Some(true) {
            starts.push(ledger.credential.expires_at);
        }
        if starts.is_empty() {
            return None;
        }
        // Every condition must hold: they all hold from the latest start.
        starts
            .into_iter()
            .try_fold(DateTime::<Utc>::MIN_UTC, |latest, it| {
                it.map(|at| latest.max(at))
            })
    }

    /// Why the conditions hold, one clause per condition: `age 400d exceeds 365d; status active`.
    ///
    /// Only meaningful when [`Self::holds`] is true.
    pub fn reason(
        &self,
        ledger: &LedgerCredential,
        identities: &IdentityCounts,
        now: DateTime<Utc>,
    ) -> String {
        let facts = Facts::new(ledger, now);
        let mut out = Clauses::default();
        if let Some(limit) = &self.age_over {
            out.add(format_args!("age {} exceeds {limit}", Elapsed(facts.age)));
        }
        if let Some(limit) = &self.unused_for {
            match facts.last_use() {
                LastUse::At { at, .. } => out.add(format_args!(
                    "last used {} ago (unused for over {limit})",
                    Elapsed(now - *at)
                )),
                LastUse::Never | LastUse::Unknown => out.add(format_args!(
                    "never used, age {} exceeds {limit}",
                    Elapsed(facts.age)
                )),
            }
        }
        if let Some(limit) = &self.never_used_and_older_than {
            out.add(format_args!(
                "never used, age {} exceeds {limit}",
                Elapsed(facts.age)
            ));
        }
        if let (Some(limit), Some(at)) = (&self.expires_within, facts.expires_at()) {
            out.add(format_args!(
                "expires in {} (within {limit})",
                Elapsed(at - now)
            ));
        }
        match (self.expired, facts.expires_at()) {
            (Some(true), Some(at)) => out.add(format_args!("expired {} ago", Elapsed(now - at))),
            (Some(false), _) => out.add(format_args!("has not expired")),
            _ => {}
        }
        if self.status.is_some() {
            out.add(format_args!("status {}", ledger.credential.status));
        }
        match (self.owner_missing, facts.owner()) {
            (Some(true), _) => out.add(format_args!("no owner")),
            (Some(false), Some(owner)) => out.add(format_args!("owner {owner}")),
            _ => {}
        }
        if !self.tags_missing.is_empty() {
            out.add(format_args!("missing tag"));
            for (idx, key) in facts.missing_tags(&self.tags_missing).enumerate() {
                let separator = if idx == 0 { " " } else { ", " };
                out.add_raw(format_args!("{separator}{key}"));
            }
        }
        if let Some(condition) = &self.identity_credentials {
            out.add(format_args!(
                "identity holds {} ",
                condition.count(ledger, identities)
            ));
            if let Some(status) = condition.status {
                for (idx, status) in status.iter().enumerate() {
                    let separator = if idx == 0 { "" } else { " or " };
                    out.add_raw(format_args!("{separator}{status}"));
                }
                out.add_raw(format_args!(" "));
            }
            if let Some(kinds) = condition.kinds {
                for (idx, kind) in kinds.iter().enumerate() {
                    let separator = if idx == 0 { "" } else { " or " };
                    out.add_raw(format_args!("{separator}{kind}"));
                }
                out.add_raw(format_args!(" "));
            }
            out.add_raw(format_args!(
                "credentials (more than {})",
                condition.more_than
            ));
        }
        out.0
    }
}

/// A reason being written: clauses separated by `; `.
#[derive(Default)]
struct Clauses(String);

impl Clauses {
    fn add(&mut self, clause: fmt::Arguments<'_>) {
        if !self.0.is_empty() {
            self.0.push_str("; ");
        }
        self.add_raw(clause);
    }

    fn add_raw(&mut self, text: fmt::Arguments<'_>) {
        // Writing to a String cannot fail.
        let _ = self.0.write_fmt(text);
    }
}

/// A length of time as people read it: its two largest units of days, hours, minutes, seconds
/// (`400d`, `365d 5h`, `3h 20m`, `42s`). Negative lengths show as `0s`.
pub(super) struct Elapsed(pub(super) TimeDelta);

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seconds = self.0.num_seconds().max(0);
        let parts = [
            (seconds / 86_400, "d"),
            (seconds / 3_600 % 24, "h"),
            (seconds / 60 % 60, "m"),
            (seconds % 60, "s"),
        ];
        let Some(first) = parts.iter().position(|(value, _)| *value > 0) else {
            return f.write_str("0s");
        };
        let (value, unit) = parts[first];
        write!(f, "{value}{unit}")?;
        if let Some((value, unit)) = parts.get(first + 1).filter(|(value, _)| *value > 0) {
            write!(f, " {value}{unit}")?;
        }
        Ok(())
    }
}
