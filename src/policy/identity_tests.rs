//! Conditions over an identity's credentials (`identity_credentials`) and bounded durations:
//! parsing with exact places, and evaluation with the counts handed in.

use std::path::Path;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use keywarden_connector::{CredentialKind, CredentialStatus};

use super::*;
use crate::ledger::fixtures;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 6, 1, 12, 0, 0)
        .single()
        .expect("valid time")
}

/// One policy whose `when` is the given lines (indented under `when:`).
fn text(when: &[&str]) -> String {
    let mut out = String::from(
        "policies:\n  - id: p\n    severity: low\n    select: { kinds: [access_key] }\n    when:\n",
    );
    for line in when {
        out.push_str("      ");
        out.push_str(line);
        out.push('\n');
    }
    out.push_str("    actions: [notify]\n");
    out
}

fn parse(when: &[&str]) -> PolicySet {
    let text = text(when);
    match parse_str(Path::new("t.yaml"), &text) {
        Ok(policies) => PolicySet { policies },
        Err(err) => panic!("{text}\n{err}"),
    }
}

fn errors(when: &[&str]) -> Vec<String> {
    match parse_str(Path::new("t.yaml"), &text(when)) {
        Ok(policies) => panic!("expected errors, parsed {policies:?}"),
        Err(Diagnostics(diagnostics)) => diagnostics.iter().map(ToString::to_string).collect(),
    }
}

/// An access key `name` of identity `user` in `aws`, active, owned.
fn key(user: &str, name: &str, status: CredentialStatus) -> LedgerCredential {
    let mut it = fixtures::credential("aws", name, CredentialKind::AccessKey, now());
    it.credential.identity_id = user.to_owned();
    it.identity.external_id = user.to_owned();
    it.credential.status = status;
    it
}

const TWO_ACTIVE: &[&str] = &[
    "identity_credentials:",
    "  kinds: [access_key]",
    "  status: [active]",
    "  more_than: 1",
];

#[test]
fn the_condition_parses_with_its_filters() {
    let set = parse(TWO_ACTIVE);
    assert!(set.needs_identity_counts());
    let condition = set.policies[0]
        .when
        .identity_credentials
        .clone()
        .expect("condition");
    assert_eq!(condition.more_than, 1);
    assert_eq!(
        condition.kinds.map(|it| it.iter().collect::<Vec<_>>()),
        Some(vec![CredentialKind::AccessKey])
    );
    assert_eq!(
        condition.status.map(|it| it.iter().collect::<Vec<_>>()),
        Some(vec![CredentialStatus::Active])
    );
    // Only `more_than` is required.
    let bare = parse(&["identity_credentials: { more_than: 0 }"]);
    assert_eq!(
        bare.policies[0].when.identity_credentials,
        Some(IdentityCondition {
            kinds: None,
            status: None,
            more_than: 0
        })
    );
    assert!(!parse(&["age_over: 1d"]).needs_identity_counts());
}

#[test]
fn counts_are_needed_only_for_credentials_a_counting_policy_selects() {
    // The policy selects access keys; a signing key of the same user needs no counts.
    let set = parse(TWO_ACTIVE);
    assert!(set.counts_identity_of(&key("u", "k", CredentialStatus::Active)));
    let mut signing = key("u", "s", CredentialStatus::Active);
    signing.credential.kind = CredentialKind::CosignKey;
    assert!(!set.counts_identity_of(&signing));
    // A policy without the condition needs none, whatever it selects.
    assert!(!parse(&["age_over: 1d"]).counts_identity_of(&key("u", "k", CredentialStatus::Active)));
}

#[test]
fn bad_identity_conditions_are_reported_at_their_line_and_column() {
    let cases: &[(&[&str], &[&str])] = &[
        (
            &["identity_credentials: { kinds: [access_key] }"],
            &[
                "t.yaml:6:29: missing field `more_than` in `identity_credentials`, expected a whole number",
            ],
        ),
        (
            &["identity_credentials: { more_than: -1 }"],
            &["t.yaml:6:42: expected a whole number (0 or more) for `more_than`, found `-1`"],
        ),
        (
            &["identity_credentials: { more_than: 1.5 }"],
            &["t.yaml:6:42: expected a whole number (0 or more) for `more_than`, found `1.5`"],
        ),
        (
            &["identity_credentials: { more_than: two }"],
            &["t.yaml:6:42: expected a whole number (0 or more) for `more_than`, found a string"],
        ),
        (
            &["identity_credentials: { more_than: 1, owner: x }"],
            &[
                "t.yaml:6:45: unknown field `owner` in `identity_credentials`, expected one of: kinds, status, more_than",
            ],
        ),
        (
            &["identity_credentials: { more_than: 1, kinds: [acces_key] }"],
            &["t.yaml:6:53: unknown"],
        ),
        (
            &["identity_credentials: { more_than: 1, status: [gone] }"],
            &["t.yaml:6:54: status `gone` never matches"],
        ),
        (
            &["identity_credentials: [1]"],
            &["t.yaml:6:29: expected a mapping for `identity_credentials`, found a list"],
        ),
        (
            &["identity_credentials:", "  more_than: 1", "  kinds: []"],
            &["t.yaml:8:16: `kinds` is an empty list"],
        ),
    ];
    for (when, expected) in cases {
        let got = errors(when);
        let ok = got.len() == expected.len()
            && got
                .iter()
                .zip(expected.iter())
                .all(|(got, want)| got.starts_with(want));
        assert!(ok, "{when:?}: expected {expected:#?}, got {got:#?}");
    }
}

#[test]
fn it_counts_the_identitys_credentials_that_pass_the_filter() {
    let set = parse(
        &["status: [active]"]
            .iter()
            .chain(TWO_ACTIVE)
            .copied()
            .collect::<Vec<_>>(),
    );
    let credentials = [
        key("two", "a", CredentialStatus::Active),
        key("two", "b", CredentialStatus::Active),
        key("one", "c", CredentialStatus::Active),
        key("one", "d", CredentialStatus::Inactive),
        key("gone", "e", CredentialStatus::Active),
        key("gone", "f", CredentialStatus::Gone),
    ];
    let violations = evaluate(&set, &credentials, &IdentityCounts::of(&credentials), now());
    let flagged: Vec<&str> = violations
        .iter()
        .map(|it| credentials[it.credential].credential.name.as_str())
        .collect();
    assert_eq!(flagged, ["a", "b"]);
    assert_eq!(
        violations[0].reason,
        "status active; identity holds 2 active access_key credentials (more than 1)"
    );
}

#[test]
fn the_counts_handed_in_decide_not_the_credentials_of_the_page() {
    let set = parse(TWO_ACTIVE);
    // A page holding one key of a user whose second key is on another page.
    let page = [key("split", "a", CredentialStatus::Active)];
    assert!(evaluate(&set, &page, &IdentityCounts::of(&page), now()).is_empty());
    let mut counts = IdentityCounts::default();
    counts.add(
        "aws",
        "split",
        CredentialKind::AccessKey,
        CredentialStatus::Active,
        2,
    );
    counts.add(
        "aws",
        "split",
        CredentialKind::Certificate,
        CredentialStatus::Active,
        5,
    );
    counts.add(
        "other",
        "split",
        CredentialKind::AccessKey,
        CredentialStatus::Active,
        9,
    );
    let violations = evaluate(&set, &page, &counts, now());
    assert_eq!(violations.len(), 1);
    // The filter applies to the counts: certificates and another source's identity do not count.
    let mut counts = IdentityCounts::default();
    counts.add(
        "aws",
        "split",
        CredentialKind::AccessKey,
        CredentialStatus::Active,
        1,
    );
    counts.add(
        "aws",
        "split",
        CredentialKind::AccessKey,
        CredentialStatus::Inactive,
        4,
    );
    counts.add(
        "aws",
        "split",
        CredentialKind::Certificate,
        CredentialStatus::Active,
        5,
    );
    counts.add(
        "other",
        "split",
        CredentialKind::AccessKey,
        CredentialStatus::Active,
        9,
    );
    assert!(evaluate(&set, &page, &counts, now()).is_empty());
    // No filter: every credential of the identity counts.
    let any = parse(&["identity_credentials: { more_than: 5 }"]);
    assert_eq!(evaluate(&any, &page, &counts, now()).len(), 1);
}

#[test]
fn more_than_is_strict() {
    let credentials = [
        key("u", "a", CredentialStatus::Active),
        key("u", "b", CredentialStatus::Active),
    ];
    let counts = IdentityCounts::of(&credentials);
    let at = |n: u32| {
        let set = parse(&[&format!("identity_credentials: {{ more_than: {n} }}") as &str]);
        evaluate(&set, &credentials, &counts, now()).len()
    };
    assert_eq!((at(0), at(1), at(2)), (2, 2, 0));
}

#[test]
fn durations_over_a_hundred_years_are_errors_at_their_place() {
    assert_eq!(
        errors(&["age_over: 300000y"]),
        [
            "t.yaml:6:17: invalid duration `300000y` for `age_over`: longer than 100 years, the \
          longest duration accepted; expected e.g. 90d, 12h, 2w, 30m"
        ]
    );
    let got = errors(&[
        "unused_for: 36526d",
        "expires_within: 99999999999999999999d",
        "never_used_and_older_than: 101y",
    ]);
    assert_eq!(got.len(), 3, "{got:#?}");
    assert!(got[0].starts_with("t.yaml:6:19: invalid duration `36526d` for `unused_for`: longer"));
    assert!(got[1].starts_with("t.yaml:7:23: invalid duration `99999999999999999999d`"));
    assert!(got[2].starts_with("t.yaml:8:34: invalid duration `101y`"));
    // 100 years is the longest, and evaluating it at any time does not overflow.
    let set = parse(&["age_over: 100y", "expires_within: 36525d"]);
    let mut old = key("u", "a", CredentialStatus::Active);
    old.first_seen = DateTime::<Utc>::MIN_UTC;
    old.credential.expires_at = Some(DateTime::<Utc>::MAX_UTC);
    for at in [DateTime::<Utc>::MIN_UTC, now(), DateTime::<Utc>::MAX_UTC] {
        let _ = evaluate(
            &set,
            std::slice::from_ref(&old),
            &IdentityCounts::default(),
            at,
        );
    }
    assert_eq!(
        set.policies[0].when.age_over.as_ref().map(|it| it.duration),
        Some(TimeDelta::days(36_525))
    );
}
