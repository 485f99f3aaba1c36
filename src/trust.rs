//! Signer trust, pure: a signer's trust window and its distrust periods, and whether a signature
//! made at a given time proves provenance.
//!
//! A signer is trusted from `valid_from` (first seen, or a certificate's not-before). Any number of
//! distrust periods `[from, until)` cut into that window (`until` open for a signer compromised
//! for good), each with a reason, the evidence and who or what decided it. A signature made at
//! `t` is trusted only if `t` is at or after `valid_from` and inside no distrust period, so what
//! was signed before a compromise stays valid. Distrust only widens: periods are added, never
//! shortened or removed, except by a person who reinstates the signer with a reason, and that is
//! recorded on the periods it closes.
//!
//! Architecture invariant: no I/O and no clock; every time is given.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Why a signer is distrusted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DistrustReason {
    /// The signer, or a credential that can sign with it, was past its policy's age or expiry.
    Stale,
    /// The signer's key, or a credential that can sign with it, was exposed.
    Leaked,
    /// A person said so.
    Manual,
    /// The key version was retired by a rotation: its source no longer uses it.
    Retired,
}

impl DistrustReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stale => "stale",
            Self::Leaked => "leaked",
            Self::Manual => "manual",
            Self::Retired => "retired",
        }
    }
}

/// A person ending distrust: when from, who and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reinstatement {
    pub at: DateTime<Utc>,
    pub by: String,
    pub reason: String,
}

/// A span of time in which signatures of a signer prove nothing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DistrustPeriod {
    pub from: DateTime<Utc>,
    /// `None`: distrusted for good.
    pub until: Option<DateTime<Utc>>,
    pub reason: DistrustReason,
    /// What showed it (a policy and credential, a leak report); never a secret.
    pub evidence: String,
    /// Who or what decided it (`policy:<id>`, `leak:<report>`, a person).
    pub by: String,
    /// Set when a person closed the period early; `until` is then the reinstatement time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reinstated: Option<Reinstatement>,
    /// A period that lasts until a credential is replaced (a holder's stale access key): names
    /// that credential. While `until` is open the period is in force;
    /// [`TrustRecord::end_on_replacement`] closes it once the credential is replaced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until_replaced: Option<Replacement>,
}

/// The credential whose replacement ends a distrust period.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Replacement {
    /// The ledger source (a partition of a source included: `aws/111122223333`).
    pub source: String,
    /// The credential's external id.
    pub credential: String,
}

impl std::fmt::Display for Replacement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} in {}", self.credential, self.source)
    }
}

impl DistrustPeriod {
    /// Whether `at` falls inside `[from, until)`.
    pub fn covers(&self, at: DateTime<Utc>) -> bool {
        self.from <= at && self.until.is_none_or(|until| at < until)
    }

    /// Whether the period is open for good (not waiting for a credential to be replaced).
    pub fn for_good(&self) -> bool {
        self.until.is_none() && self.until_replaced.is_none()
    }

    /// Whether this period already distrusts everything `other` would (same reason or not). An
    /// open period that ends on a replacement contains only another that ends on the same one.
    fn contains(&self, other: &DistrustPeriod) -> bool {
        self.from <= other.from
            && match (self.until, other.until) {
                (None, _) if self.for_good() => true,
                // Open until a replacement: only the same wait is inside it.
                (None, None) => other.until_replaced == self.until_replaced,
                (None, Some(_)) | (Some(_), None) => false,
                (Some(mine), Some(theirs)) => theirs <= mine,
            }
    }
}

/// A signer's trust: its window and the distrust periods cutting into it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustRecord {
    pub valid_from: DateTime<Utc>,
    pub periods: Vec<DistrustPeriod>,
}

/// Whether a signature made at a time is trusted, and if not, why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict<'a> {
    Trusted,
    /// Made before the signer was trusted at all.
    BeforeValidFrom,
    /// Made inside this distrust period (the earliest-starting one that covers it).
    Distrusted(&'a DistrustPeriod),
}

/// What a change to a trust record did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// The record changed; the audit event describes this.
    Changed,
    /// Nothing to do: an existing period with the same reason already covers it (a report
    /// ingested twice, a policy acting again).
    Unchanged,
}

/// A change refused, before anything changed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TrustError {
    #[error("the distrust period ends ({until}) before it begins ({from})")]
    EmptyPeriod {
        from: DateTime<Utc>,
        until: DateTime<Utc>,
    },
    #[error("a reinstatement needs {0}")]
    Missing(&'static str),
    #[error("nothing to reinstate: no distrust period is in force at {0}")]
    NothingToReinstate(DateTime<Utc>),
}

impl TrustRecord {
    pub fn new(valid_from: DateTime<Utc>) -> Self {
        Self {
            valid_from,
            periods: Vec::new(),
        }
    }

    /// Whether a signature made at `at` is trusted.
    pub fn verdict(&self, at: DateTime<Utc>) -> Verdict<'_> {
        if at < self.valid_from {
            return Verdict::BeforeValidFrom;
        }
        match self
            .periods
            .iter()
            .filter(|it| it.covers(at))
            .min_by_key(|it| it.from)
        {
            Some(period) => Verdict::Distrusted(period),
            None => Verdict::Trusted,
        }
    }

    /// Whether signatures made at `at` are trusted.
    pub fn trusts(&self, at: DateTime<Utc>) -> bool {
        self.verdict(at) == Verdict::Trusted
    }

    /// Ends, at `at`, every open period that lasts until `credential` is replaced (it is no longer
    /// in use). A period that has not begun by `at` stays open: a replacement seen before the
    /// period began cannot end it.
    pub fn end_on_replacement(&mut self, credential: &Replacement, at: DateTime<Utc>) -> Change {
        let mut changed = Change::Unchanged;
        for period in &mut self.periods {
            if period.until.is_none()
                && period.until_replaced.as_ref() == Some(credential)
                && period.from < at
            {
                period.until = Some(at);
                changed = Change::Changed;
            }
        }
        changed
    }

    /// Adds a distrust period. Distrust only widens: a period already covered by one with the same
    /// reason changes nothing; any other is added beside the existing ones.
    pub fn distrust(&mut self, period: DistrustPeriod) -> Result<Change, TrustError> {
        if let Some(until) = period.until
            && until <= period.from
        {
            return Err(TrustError::EmptyPeriod {
                from: period.from,
                until,
            });
        }
        if !self.would_change(&period) {
            return Ok(Change::Unchanged);
        }
        self.periods.push(period);
        Ok(Change::Changed)
    }

    /// Whether [`Self::distrust`] would add `period`: no period with the same reason covers it
    /// already, and no person ended one the same decider opened from as early (a person who
    /// reinstated a signer a policy distrusted is not overruled by that policy running again).
    pub fn would_change(&self, period: &DistrustPeriod) -> bool {
        !self.periods.iter().any(|it| {
            it.reason == period.reason
                && (it.contains(period)
                    || (it.reinstated.is_some() && it.by == period.by && it.from <= period.from))
        })
    }

    /// A person trusts the signer again from `at`: every period in force at `at` ends there,
    /// keeping who reinstated it and why. Periods that ended before `at` stay as they are (what
    /// was signed inside them proves nothing), and so do periods that begin after it.
    pub fn reinstate(
        &mut self,
        at: DateTime<Utc>,
        by: &str,
        reason: &str,
    ) -> Result<Change, TrustError> {
        if by.trim().is_empty() {
            return Err(TrustError::Missing("who reinstates (--by)"));
        }
        if reason.trim().is_empty() {
            return Err(TrustError::Missing("a reason (--reason)"));
        }
        // Only periods that have begun by `at` are closed there; one that begins later is kept
        // (a reinstatement never erases distrust, backdated or not).
        let in_force =
            |it: &DistrustPeriod| it.from <= at && it.until.is_none_or(|until| until > at);
        if !self.periods.iter().any(in_force) {
            return Err(TrustError::NothingToReinstate(at));
        }
        for period in self.periods.iter_mut().filter(|it| in_force(it)) {
            period.until = Some(at);
            period.reinstated = Some(Reinstatement {
                at,
                by: by.to_owned(),
                reason: reason.to_owned(),
            });
        }
        Ok(Change::Changed)
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use super::*;

    fn t(day: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000, 0).expect("time") + TimeDelta::days(day)
    }

    fn period(from: i64, until: Option<i64>, reason: DistrustReason) -> DistrustPeriod {
        DistrustPeriod {
            from: t(from),
            until: until.map(t),
            reason,
            evidence: "test".to_owned(),
            by: "policy:test".to_owned(),
            reinstated: None,
            until_replaced: None,
        }
    }

    #[test]
    fn a_signer_revoked_from_t_trusts_what_was_signed_before_t_only() {
        let mut record = TrustRecord::new(t(0));
        assert_eq!(
            record.distrust(period(10, None, DistrustReason::Leaked)),
            Ok(Change::Changed)
        );
        assert!(record.trusts(t(9)));
        assert!(record.trusts(t(10) - TimeDelta::seconds(1)));
        assert!(!record.trusts(t(10)), "the period includes its start");
        assert!(!record.trusts(t(10_000)), "an open period never ends");
        assert_eq!(record.verdict(t(-1)), Verdict::BeforeValidFrom);
    }

    #[test]
    fn a_closed_period_distrusts_only_inside_it() {
        let mut record = TrustRecord::new(t(0));
        record
            .distrust(period(10, Some(20), DistrustReason::Stale))
            .expect("distrust");
        assert!(record.trusts(t(9)));
        assert!(!record.trusts(t(10)));
        assert!(!record.trusts(t(20) - TimeDelta::seconds(1)));
        assert!(record.trusts(t(20)), "the period excludes its end");
        assert!(record.trusts(t(30)));
    }

    #[test]
    fn distrust_only_widens_and_the_same_period_twice_changes_nothing() {
        let mut record = TrustRecord::new(t(0));
        record
            .distrust(period(10, Some(20), DistrustReason::Stale))
            .expect("first");
        let before = record.clone();
        assert_eq!(
            record.distrust(period(10, Some(20), DistrustReason::Stale)),
            Ok(Change::Unchanged)
        );
        assert_eq!(
            record.distrust(period(12, Some(15), DistrustReason::Stale)),
            Ok(Change::Unchanged)
        );
        assert_eq!(record, before);
        // A wider or differently founded period is added; nothing narrows the first.
        assert_eq!(
            record.distrust(period(5, Some(25), DistrustReason::Leaked)),
            Ok(Change::Changed)
        );
        assert_eq!(record.periods.len(), 2);
        assert!(!record.trusts(t(5)) && !record.trusts(t(24)) && record.trusts(t(25)));
        match record.verdict(t(12)) {
            Verdict::Distrusted(it) => assert_eq!(it.reason, DistrustReason::Leaked),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_period_that_ends_before_it_begins_is_refused_and_changes_nothing() {
        let mut record = TrustRecord::new(t(0));
        for until in [9, 10] {
            assert_eq!(
                record.distrust(period(10, Some(until), DistrustReason::Manual)),
                Err(TrustError::EmptyPeriod {
                    from: t(10),
                    until: t(until)
                })
            );
        }
        assert!(record.periods.is_empty());
    }

    #[test]
    fn reinstating_needs_a_person_and_a_reason_and_keeps_the_past_distrusted() {
        let mut record = TrustRecord::new(t(0));
        record
            .distrust(period(10, None, DistrustReason::Leaked))
            .expect("distrust");
        record
            .distrust(period(2, Some(4), DistrustReason::Stale))
            .expect("distrust");
        let before = record.clone();
        assert_eq!(
            record.reinstate(t(30), "", "rotated"),
            Err(TrustError::Missing("who reinstates (--by)"))
        );
        assert_eq!(
            record.reinstate(t(30), "alice", "  "),
            Err(TrustError::Missing("a reason (--reason)"))
        );
        assert_eq!(record, before, "a refused reinstatement changes nothing");

        assert_eq!(
            record.reinstate(t(30), "alice", "key never left the HSM"),
            Ok(Change::Changed)
        );
        assert!(
            !record.trusts(t(20)),
            "what was signed while distrusted stays so"
        );
        assert!(!record.trusts(t(3)));
        assert!(record.trusts(t(30)) && record.trusts(t(100)));
        let closed = &record.periods[0];
        assert_eq!(closed.until, Some(t(30)));
        assert_eq!(
            closed.reinstated.as_ref().map(|it| it.by.as_str()),
            Some("alice")
        );
        assert_eq!(
            record.periods[1].reinstated, None,
            "a period already over is left as it was"
        );
        assert_eq!(
            record.reinstate(t(40), "alice", "again"),
            Err(TrustError::NothingToReinstate(t(40)))
        );
    }

    #[test]
    fn a_reinstatement_never_erases_distrust_that_begins_after_it() {
        let mut record = TrustRecord::new(t(0));
        record
            .distrust(period(50, None, DistrustReason::Leaked))
            .expect("distrust");
        let before = record.clone();
        assert_eq!(
            record.reinstate(t(30), "bob", "backdated"),
            Err(TrustError::NothingToReinstate(t(30)))
        );
        assert_eq!(record, before);
        assert!(!record.trusts(t(60)));
    }

    fn replacement(credential: &str) -> Replacement {
        Replacement {
            source: "aws/111122223333".to_owned(),
            credential: credential.to_owned(),
        }
    }

    #[test]
    fn a_period_until_replacement_is_in_force_until_the_credential_is_replaced() {
        let mut record = TrustRecord::new(t(0));
        let mut pending = period(90, None, DistrustReason::Stale);
        pending.until_replaced = Some(replacement("AKIA1"));
        assert!(!pending.for_good());
        assert_eq!(record.distrust(pending.clone()), Ok(Change::Changed));
        assert_eq!(
            record.distrust(pending.clone()),
            Ok(Change::Unchanged),
            "the same wait twice is one period"
        );
        assert!(record.trusts(t(89)) && !record.trusts(t(1_000)));
        // Another credential's replacement, or one seen before the period began, ends nothing.
        assert_eq!(
            record.end_on_replacement(&replacement("AKIA2"), t(120)),
            Change::Unchanged
        );
        assert_eq!(
            record.end_on_replacement(&replacement("AKIA1"), t(90)),
            Change::Unchanged
        );
        assert_eq!(
            record.end_on_replacement(&replacement("AKIA1"), t(120)),
            Change::Changed
        );
        assert!(!record.trusts(t(119)), "signed while the key was stale");
        assert!(record.trusts(t(120)), "trusted again once it was replaced");
        assert_eq!(
            record.end_on_replacement(&replacement("AKIA1"), t(150)),
            Change::Unchanged
        );
        assert_eq!(
            record.periods[0].until,
            Some(t(120)),
            "an ended period keeps its end"
        );
    }

    #[test]
    fn a_period_for_good_is_not_inside_one_that_waits_for_a_replacement() {
        let mut record = TrustRecord::new(t(0));
        let mut pending = period(10, None, DistrustReason::Leaked);
        pending.until_replaced = Some(replacement("AKIA1"));
        record.distrust(pending).expect("pending");
        assert_eq!(
            record.distrust(period(20, None, DistrustReason::Leaked)),
            Ok(Change::Changed),
            "distrust for good is wider than distrust until a replacement"
        );
        assert_eq!(
            record.distrust(period(20, Some(30), DistrustReason::Leaked)),
            Ok(Change::Unchanged),
            "inside the period for good"
        );
        record.end_on_replacement(&replacement("AKIA1"), t(40));
        assert!(!record.trusts(t(50)), "the period for good still holds");
    }

    #[test]
    fn a_policy_acting_again_does_not_overrule_a_person_who_reinstated() {
        let mut record = TrustRecord::new(t(0));
        record
            .distrust(period(10, None, DistrustReason::Stale))
            .expect("distrust");
        record
            .reinstate(t(20), "alice", "the holder key is rotated out of band")
            .expect("reinstate");
        let again = period(10, None, DistrustReason::Stale);
        assert!(!record.would_change(&again));
        assert_eq!(record.distrust(again), Ok(Change::Unchanged));
        assert!(record.trusts(t(30)));
        let mut other = period(10, None, DistrustReason::Stale);
        other.by = "policy:other".to_owned();
        assert!(
            record.would_change(&other),
            "another decider still distrusts"
        );
        assert!(
            record.would_change(&period(15, None, DistrustReason::Leaked)),
            "a leak is a new cause"
        );
    }
}
