//! Tests of the policy engine: parsing and its errors (with exact places), each condition's
//! boundaries, selectors and loading. The shipped pack is tested in `pack_tests.rs`.

use std::path::{Path, PathBuf};

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use keywarden_connector::{CredentialKind, CredentialStatus, LastUse};

use super::*;
use crate::ledger::LedgerCredential;
use crate::ledger::fixtures;

// ---------------------------------------------------------------------------------------------
// Helpers

pub(super) fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 6, 1, 12, 0, 0)
        .single()
        .expect("valid time")
}

pub(super) fn days(n: i64) -> TimeDelta {
    TimeDelta::days(n)
}

/// An active access key `key-1` of source `aws-prod`, first seen (and so created) 10 days ago,
/// with no owner, purpose, tags or expiry, and an unknown last use.
pub(super) fn base() -> LedgerCredential {
    fixtures::credential(
        "aws-prod",
        "key-1",
        CredentialKind::AccessKey,
        now() - days(10),
    )
}

/// A one-policy set with these `select` and `when` bodies (YAML flow mappings).
fn policy(select: &str, when: &str) -> PolicySet {
    let text = format!(
        "policies:\n  - id: p\n    severity: low\n    select: {select}\n    when: {when}\n    \
         actions: [notify]\n"
    );
    match parse_str(Path::new("test.yaml"), &text) {
        Ok(policies) => PolicySet { policies },
        Err(err) => panic!("{text}\n{err}"),
    }
}

/// Evaluates one credential against a one-policy set; the violation's reason, if any.
fn check(select: &str, when: &str, credential: LedgerCredential) -> Option<String> {
    let set = policy(select, when);
    let violations = evaluate(
        &set,
        std::slice::from_ref(&credential),
        &IdentityCounts::of(std::slice::from_ref(&credential)),
        now(),
    );
    assert!(violations.len() <= 1, "{violations:?}");
    violations.into_iter().next().map(|violation| {
        assert_eq!((violation.credential, violation.policy), (0, 0));
        violation.reason
    })
}

/// One row of a data-driven test: a credential built from [`base`] and the expected outcome.
struct Case {
    name: &'static str,
    setup: fn(&mut LedgerCredential),
    /// `None`: no violation; `Some(reason)`: a violation with exactly this reason.
    expect: Option<&'static str>,
}

fn run(select: &str, when: &str, cases: &[Case]) {
    let mut failures = Vec::new();
    for case in cases {
        let mut credential = base();
        (case.setup)(&mut credential);
        let got = check(select, when, credential);
        if got.as_deref() != case.expect {
            failures.push(format!(
                "{}: expected {:?}, got {got:?}",
                case.name, case.expect
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "select {select} when {when}:\n{}",
        failures.join("\n")
    );
}

pub(super) fn created(credential: &mut LedgerCredential, ago: TimeDelta) {
    credential.credential.created_at = Some(now() - ago);
}

fn used(credential: &mut LedgerCredential, ago: TimeDelta) {
    credential.credential.last_used = LastUse::At {
        at: now() - ago,
        source: "aws_access_key_last_used".to_owned(),
    };
}

pub(super) fn expires(credential: &mut LedgerCredential, from_now: TimeDelta) {
    credential.credential.expires_at = Some(now() + from_now);
}

/// The diagnostics of a text that must fail to parse, as `file:line:column: message` lines.
fn errors(text: &str) -> Vec<String> {
    match parse_str(Path::new("t.yaml"), text) {
        Ok(policies) => panic!("expected errors, parsed {policies:?}"),
        Err(Diagnostics(diagnostics)) => diagnostics.iter().map(ToString::to_string).collect(),
    }
}

/// Asserts the errors of `text` are exactly `expected`, in order, by their `file:line:column: `
/// prefix and a part of the message.
fn assert_errors(text: &str, expected: &[(&str, &str)]) {
    let got = errors(text);
    let ok = got.len() == expected.len()
        && got
            .iter()
            .zip(expected)
            .all(|(line, (place, part))| line.starts_with(place) && line.contains(part));
    assert!(ok, "expected {expected:#?}\ngot {got:#?}");
}

// ---------------------------------------------------------------------------------------------
// Conditions, with their boundaries

#[test]
fn age_over_is_strict_and_uses_first_seen_without_material_time() {
    run(
        "{}",
        "{ age_over: 365d }",
        &[
            Case {
                name: "exactly 365d",
                setup: |c| created(c, days(365)),
                expect: None,
            },
            Case {
                name: "365d and 1s",
                setup: |c| created(c, days(365) + TimeDelta::seconds(1)),
                expect: Some("age 365d exceeds 365d"),
            },
            Case {
                name: "366d",
                setup: |c| created(c, days(366)),
                expect: Some("age 366d exceeds 365d"),
            },
            Case {
                name: "366d 5h shows hours",
                setup: |c| created(c, days(366) + TimeDelta::hours(5)),
                expect: Some("age 366d 5h exceeds 365d"),
            },
            Case {
                name: "first seen 400d ago, no material time",
                setup: |c| c.first_seen = now() - days(400),
                expect: Some("age 400d exceeds 365d"),
            },
            Case {
                name: "material time wins over an old first sighting",
                setup: |c| {
                    c.first_seen = now() - days(400);
                    created(c, days(20));
                },
                expect: None,
            },
        ],
    );
}

#[test]
fn unused_for_distinguishes_unknown_never_and_known_use() {
    run(
        "{}",
        "{ unused_for: 45d }",
        &[
            Case {
                name: "unknown last use, old",
                setup: |c| created(c, days(400)),
                expect: None,
            },
            Case {
                name: "never used, age 46d",
                setup: |c| {
                    created(c, days(46));
                    c.credential.last_used = LastUse::Never;
                },
                expect: Some("never used, age 46d exceeds 45d"),
            },
            Case {
                name: "never used, age exactly 45d",
                setup: |c| {
                    created(c, days(45));
                    c.credential.last_used = LastUse::Never;
                },
                expect: None,
            },
            Case {
                name: "used 46d ago",
                setup: |c| {
                    created(c, days(400));
                    used(c, days(46));
                },
                expect: Some("last used 46d ago (unused for over 45d)"),
            },
            Case {
                name: "used exactly 45d ago",
                setup: |c| {
                    created(c, days(400));
                    used(c, days(45));
                },
                expect: None,
            },
            Case {
                name: "used yesterday",
                setup: |c| {
                    created(c, days(400));
                    used(c, days(1));
                },
                expect: None,
            },
        ],
    );
}

#[test]
fn never_used_and_older_than_needs_never() {
    run(
        "{}",
        "{ never_used_and_older_than: 30d }",
        &[
            Case {
                name: "never used, 31d",
                setup: |c| {
                    created(c, days(31));
                    c.credential.last_used = LastUse::Never;
                },
                expect: Some("never used, age 31d exceeds 30d"),
            },
            Case {
                name: "never used, exactly 30d",
                setup: |c| {
                    created(c, days(30));
                    c.credential.last_used = LastUse::Never;
                },
                expect: None,
            },
            Case {
                name: "unknown last use, 100d",
                setup: |c| created(c, days(100)),
                expect: None,
            },
            Case {
                name: "used 90d ago, 100d",
                setup: |c| {
                    created(c, days(100));
                    used(c, days(90));
                },
                expect: None,
            },
        ],
    );
}

#[test]
fn expires_within_includes_its_bound_and_excludes_the_expired() {
    run(
        "{}",
        "{ expires_within: 30d }",
        &[
            Case {
                name: "no expiry",
                setup: |_| {},
                expect: None,
            },
            Case {
                name: "in 12d",
                setup: |c| expires(c, days(12)),
                expect: Some("expires in 12d (within 30d)"),
            },
            Case {
                name: "in exactly 30d",
                setup: |c| expires(c, days(30)),
                expect: Some("expires in 30d (within 30d)"),
            },
            Case {
                name: "in 30d and 1s",
                setup: |c| expires(c, days(30) + TimeDelta::seconds(1)),
                expect: None,
            },
            Case {
                name: "expires right now",
                setup: |c| expires(c, TimeDelta::zero()),
                expect: None,
            },
            Case {
                name: "expired yesterday",
                setup: |c| expires(c, -days(1)),
                expect: None,
            },
        ],
    );
}

#[test]
fn expired_true_and_false() {
    run(
        "{}",
        "{ expired: true }",
        &[
            Case {
                name: "expires right now",
                setup: |c| expires(c, TimeDelta::zero()),
                expect: Some("expired 0s ago"),
            },
            Case {
                name: "expired 2d ago",
                setup: |c| expires(c, -days(2)),
                expect: Some("expired 2d ago"),
            },
            Case {
                name: "expires in 1s",
                setup: |c| expires(c, TimeDelta::seconds(1)),
                expect: None,
            },
            Case {
                name: "no expiry",
                setup: |_| {},
                expect: None,
            },
        ],
    );
    run(
        "{}",
        "{ expired: false }",
        &[
            Case {
                name: "no expiry",
                setup: |_| {},
                expect: Some("has not expired"),
            },
            Case {
                name: "expires tomorrow",
                setup: |c| expires(c, days(1)),
                expect: Some("has not expired"),
            },
            Case {
                name: "expired",
                setup: |c| expires(c, -days(1)),
                expect: None,
            },
        ],
    );
}

#[test]
fn status_is_one_of_the_list() {
    run(
        "{}",
        "{ status: [active, inactive] }",
        &[
            Case {
                name: "active",
                setup: |_| {},
                expect: Some("status active"),
            },
            Case {
                name: "inactive",
                setup: |c| c.credential.status = CredentialStatus::Inactive,
                expect: Some("status inactive"),
            },
            Case {
                name: "revoked",
                setup: |c| c.credential.status = CredentialStatus::Revoked,
                expect: None,
            },
        ],
    );
}

#[test]
fn owner_missing_falls_back_to_the_identity() {
    run(
        "{}",
        "{ owner_missing: true }",
        &[
            Case {
                name: "no owner anywhere",
                setup: |_| {},
                expect: Some("no owner"),
            },
            Case {
                name: "owner on the identity",
                setup: |c| c.identity.owner = Some("team-a".to_owned()),
                expect: None,
            },
            Case {
                name: "owner on the credential",
                setup: |c| c.credential.owner = Some("alice".to_owned()),
                expect: None,
            },
            Case {
                name: "blank owner",
                setup: |c| c.identity.owner = Some("  ".to_owned()),
                expect: Some("no owner"),
            },
        ],
    );
    run(
        "{}",
        "{ owner_missing: false }",
        &[
            Case {
                name: "owner on the identity",
                setup: |c| c.identity.owner = Some("team-a".to_owned()),
                expect: Some("owner team-a"),
            },
            Case {
                name: "credential owner refines the identity's",
                setup: |c| {
                    c.identity.owner = Some("team-a".to_owned());
                    c.credential.owner = Some("alice".to_owned());
                },
                expect: Some("owner alice"),
            },
            Case {
                name: "no owner",
                setup: |_| {},
                expect: None,
            },
        ],
    );
}

#[test]
fn tags_missing_checks_credential_then_identity() {
    run(
        "{}",
        "{ tags_missing: [team, env] }",
        &[
            Case {
                name: "no tags",
                setup: |_| {},
                expect: Some("missing tag team, env"),
            },
            Case {
                name: "team on the identity, env on the credential",
                setup: |c| {
                    c.identity.tags.insert("team".into(), "a".into());
                    c.credential.tags.insert("env".into(), "prod".into());
                },
                expect: None,
            },
            Case {
                name: "only team",
                setup: |c| {
                    c.credential.tags.insert("team".into(), "a".into());
                },
                expect: Some("missing tag env"),
            },
        ],
    );
}

#[test]
fn all_conditions_must_hold() {
    run(
        "{}",
        "{ age_over: 90d, status: [active], owner_missing: true }",
        &[
            Case {
                name: "all hold",
                setup: |c| created(c, days(100)),
                expect: Some("age 100d exceeds 90d; status active; no owner"),
            },
            Case {
                name: "inactive",
                setup: |c| {
                    created(c, days(100));
                    c.credential.status = CredentialStatus::Inactive;
                },
                expect: None,
            },
            Case {
                name: "young",
                setup: |c| created(c, days(80)),
                expect: None,
            },
            Case {
                name: "owned",
                setup: |c| {
                    created(c, days(100));
                    c.identity.owner = Some("team-a".into());
                },
                expect: None,
            },
        ],
    );
}

#[test]
fn gone_credentials_are_skipped() {
    let set = policy("{}", "{ age_over: 0s }");
    let mut gone = base();
    gone.credential.status = CredentialStatus::Gone;
    let credentials = [gone, base()];
    let violations = evaluate(&set, &credentials, &IdentityCounts::of(&credentials), now());
    assert_eq!(
        violations,
        vec![Violation {
            credential: 1,
            policy: 0,
            reason: "age 10d exceeds 0s".to_owned()
        }]
    );
    assert_eq!(
        violation_reason(
            &set.policies[0],
            &credentials[0],
            &IdentityCounts::default(),
            now()
        ),
        None
    );
}

// ---------------------------------------------------------------------------------------------
// Selectors

/// A condition that holds for [`base`], so that only the selector decides.
const ALWAYS: &str = "{ age_over: 0s }";

fn selected(select: &str, setup: fn(&mut LedgerCredential)) -> bool {
    let mut credential = base();
    setup(&mut credential);
    check(select, ALWAYS, credential).is_some()
}

#[test]
fn selectors_match_as_documented() {
    #[allow(clippy::type_complexity)]
    let cases: &[(&str, fn(&mut LedgerCredential), bool)] = &[
        // sources: globs and literals
        ("{ sources: [\"aws-*\"] }", |_| {}, true),
        (
            "{ sources: [\"aws-*\"] }",
            |c| c.source = "vault-ci".into(),
            false,
        ),
        ("{ sources: [aws-prod] }", |_| {}, true),
        (
            "{ sources: [aws-prod] }",
            |c| c.source = "aws-prod-2".into(),
            false,
        ),
        ("{ sources: [vault-ci, aws-prod] }", |_| {}, true),
        // kinds
        ("{ kinds: [token, access_key] }", |_| {}, true),
        (
            "{ kinds: [token, access_key] }",
            |c| c.credential.kind = CredentialKind::CosignKey,
            false,
        ),
        // names: `*` also matches `/`; alternation; `?`
        (
            "{ names: [\"*\"] }",
            |c| c.credential.name = "keys/a/cosign.pub".into(),
            true,
        ),
        (
            "{ names: [\"keys/*.pub\"] }",
            |c| c.credential.name = "keys/a/cosign.pub".into(),
            true,
        ),
        ("{ names: [\"key-{1,2}\"] }", |_| {}, true),
        ("{ names: [\"key-{2,3}\"] }", |_| {}, false),
        ("{ names: [\"KEY-*\"] }", |_| {}, false),
        // identities
        (
            "{ identities: [\"deploy-?\"] }",
            |c| c.identity.name = "deploy-1".into(),
            true,
        ),
        (
            "{ identities: [\"deploy-?\"] }",
            |c| c.identity.name = "deploy-10".into(),
            false,
        ),
        // purposes: the credential's, else the identity's
        (
            "{ purposes: [signing] }",
            |c| c.identity.purpose = Some("signing".into()),
            true,
        ),
        (
            "{ purposes: [signing] }",
            |c| c.credential.purpose = Some("signing".into()),
            true,
        ),
        (
            "{ purposes: [signing] }",
            |c| {
                c.identity.purpose = Some("signing".into());
                c.credential.purpose = Some("deploy".into());
            },
            false,
        ),
        ("{ purposes: [signing] }", |_| {}, false),
        ("{ purposes: [\"*\"] }", |_| {}, false),
        (
            "{ purposes: [\"*\"] }",
            |c| c.identity.purpose = Some("deploy".into()),
            true,
        ),
        // tags: the credential's, else the identity's
        (
            "{ tags: { env: \"prod*\" } }",
            |c| {
                c.credential.tags.insert("env".into(), "prod-eu".into());
            },
            true,
        ),
        (
            "{ tags: { env: \"prod*\" } }",
            |c| {
                c.identity.tags.insert("env".into(), "production".into());
            },
            true,
        ),
        (
            "{ tags: { env: \"prod*\" } }",
            |c| {
                c.identity.tags.insert("env".into(), "prod".into());
                c.credential.tags.insert("env".into(), "dev".into());
            },
            false,
        ),
        ("{ tags: { env: \"prod*\" } }", |_| {}, false),
        ("{ tags: { env: \"*\" } }", |_| {}, false),
        (
            "{ tags: { env: \"*\" } }",
            |c| {
                c.identity.tags.insert("env".into(), "x".into());
            },
            true,
        ),
        (
            "{ tags: { env: prod, team: \"a*\" } }",
            |c| {
                c.identity.tags.insert("env".into(), "prod".into());
                c.identity.tags.insert("team".into(), "b".into());
            },
            false,
        ),
        // a number written as a tag glob keeps its text (1.50, not 1.5)
        (
            "{ tags: { version: 1.50 } }",
            |c| {
                c.identity.tags.insert("version".into(), "1.50".into());
            },
            true,
        ),
        // every field given must match
        (
            "{ kinds: [access_key], sources: [\"vault-*\"] }",
            |_| {},
            false,
        ),
        (
            "{ kinds: [access_key], sources: [\"aws-*\"] }",
            |_| {},
            true,
        ),
        // nothing given: everything
        ("{}", |_| {}, true),
    ];
    let failures: Vec<String> = cases
        .iter()
        .enumerate()
        .filter(|(_, (select, setup, want))| selected(select, *setup) != *want)
        .map(|(idx, (select, _, want))| format!("case {idx}: {select} should select: {want}"))
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// Parsing

const FULL: &str = "\
pack: demo
description: A demo pack.
policies:
  - id: demo-1
    description: Everything at once.
    severity: critical
    mode: enforce
    schedule: \"*/5 * * * *\"
    select:
      sources: [\"release-*\"]
      kinds: [cosign_key, certificate]
      names: [\"*\"]
      identities: [ci]
      purposes: [signing]
      tags: { env: \"prod*\" }
    when:
      age_over: 1d 12h
      unused_for: 2w
      never_used_and_older_than: 30m
      expires_within: 30d
      expired: false
      status: [active, revoked]
      owner_missing: true
      tags_missing: [team]
    actions: [notify, revoke_trust, quarantine]
  - id: demo-2
    severity: info
    when: { owner_missing: false }
    actions: [notify]
";

#[test]
fn parses_every_field() {
    let policies = parse_str(Path::new("demo.yaml"), FULL).unwrap_or_else(|err| panic!("{err}"));
    assert_eq!(policies.len(), 2);
    let p = &policies[0];
    assert_eq!(p.id, "demo-1");
    assert_eq!(p.description.as_deref(), Some("Everything at once."));
    assert_eq!(p.severity, Severity::Critical);
    assert_eq!(p.mode, Mode::Enforce);
    assert_eq!(
        p.schedule.as_ref().map(|it| it.text.as_str()),
        Some("*/5 * * * *")
    );
    assert_eq!(
        p.select.kinds.map(|it| it.iter().collect::<Vec<_>>()),
        Some(vec![CredentialKind::CosignKey, CredentialKind::Certificate])
    );
    assert_eq!(
        p.select.sources.as_ref().map(Patterns::as_slice),
        Some(&["release-*".to_owned()][..])
    );
    assert!(
        p.select
            .names
            .as_ref()
            .is_some_and(Patterns::matches_anything)
    );
    assert_eq!(p.select.tags.len(), 1);
    assert_eq!(
        p.when.age_over,
        Some(Threshold {
            text: "1d 12h".into(),
            duration: days(1) + TimeDelta::hours(12)
        })
    );
    assert_eq!(
        p.when.unused_for.as_ref().map(|it| it.duration),
        Some(days(14))
    );
    assert_eq!(
        p.when
            .never_used_and_older_than
            .as_ref()
            .map(|it| it.duration),
        Some(TimeDelta::minutes(30))
    );
    assert_eq!(p.when.expired, Some(false));
    assert_eq!(
        p.when.status.map(|it| it.iter().collect::<Vec<_>>()),
        Some(vec![CredentialStatus::Active, CredentialStatus::Revoked])
    );
    assert_eq!(p.when.owner_missing, Some(true));
    assert_eq!(p.when.tags_missing, vec!["team".to_owned()]);
    assert_eq!(
        p.actions,
        vec![
            ActionKind::Notify,
            ActionKind::RevokeTrust,
            ActionKind::Quarantine
        ]
    );
    assert_eq!(
        p.origin,
        Origin {
            file: "demo.yaml".into(),
            line: 4,
            column: 5,
            pack: Some("demo".into())
        }
    );
    assert_eq!(p.origin.to_string(), "demo.yaml:4:5");

    let q = &policies[1];
    assert_eq!(
        (q.severity, q.mode, q.schedule.is_none()),
        (Severity::Info, Mode::DryRun, true)
    );
    assert!(q.select.kinds.is_none() && q.select.sources.is_none() && q.select.tags.is_empty());
    assert_eq!((q.origin.line, q.origin.column), (26, 5));
}

#[test]
fn names_round_trip_and_severity_is_ordered() {
    for severity in Severity::ALL {
        assert_eq!(severity.as_str().parse::<Severity>(), Ok(*severity));
    }
    for mode in Mode::ALL {
        assert_eq!(mode.as_str().parse::<Mode>(), Ok(*mode));
    }
    for action in ActionKind::ALL {
        assert_eq!(action.as_str().parse::<ActionKind>(), Ok(*action));
    }
    assert!(Severity::ALL.windows(2).all(|pair| pair[0] < pair[1]));
    assert!(Severity::Info < Severity::Critical);
    assert_eq!(ActionKind::RevokeTrust.to_string(), "revoke_trust");
}

#[test]
fn an_empty_pack_is_fine_and_an_empty_file_is_not() {
    assert_eq!(
        parse_str(Path::new("t.yaml"), "policies: []\n").map(|it| it.len()),
        Ok(0)
    );
    assert_eq!(
        parse_str(Path::new("t.yaml"), "pack: x\npolicies:\n").map(|it| it.len()),
        Ok(0)
    );
    assert_eq!(
        errors("# nothing here\n"),
        vec!["t.yaml: policy file is empty, expected a mapping with a `policies:` list"]
    );
    assert_errors(
        "pack: x\n",
        &[(
            "t.yaml:1:1: ",
            "missing field `policies` in policy file, expected a list of policies",
        )],
    );
}

// ---------------------------------------------------------------------------------------------
// Errors: each with its exact place and what was expected

/// A valid policy with one line replaced, to put one error in it. Line 3 is a spare line that
/// can be replaced without removing anything.
fn with_line(line: usize, replacement: &str) -> String {
    let lines = [
        "policies:",
        "  - id: a",
        "    description: the template",
        "    severity: low",
        "    select: { kinds: [access_key] }",
        "    when: { age_over: 1d }",
        "    actions: [notify]",
    ];
    let mut out: Vec<&str> = lines.to_vec();
    out[line - 1] = replacement;
    out.join("\n") + "\n"
}

#[test]
fn the_template_policy_is_valid() {
    assert!(parse_str(Path::new("t.yaml"), &with_line(1, "policies:")).is_ok());
    assert!(parse_str(Path::new("t.yaml"), &with_line(3, "    mode: enforce")).is_ok());
}

/// Whether `text` starts with the first `…`-separated piece of `pattern` and holds the others in
/// order after it.
fn matches_pieces(text: &str, pattern: &str) -> bool {
    let mut pieces = pattern.split('…');
    let first = pieces.next().unwrap_or_default();
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    for piece in pieces {
        match rest.find(piece) {
            Some(at) => rest = &rest[at + piece.len()..],
            None => return false,
        }
    }
    true
}

#[test]
fn each_error_names_its_place_and_what_was_expected() {
    let cases: &[(usize, &str, &str)] = &[
        (
            3,
            "    colour: red",
            "t.yaml:3:5: unknown field `colour` in policy `a`, expected one of: id, description, \
             severity, mode, schedule, select, when, actions",
        ),
        (
            5,
            "    select: { kinds: [access_key], nmes: [x] }",
            "t.yaml:5:36: unknown field `nmes` in `select`, expected one of: sources, kinds, \
             names, identities, purposes, tags",
        ),
        (
            6,
            "    when: { age_over: 90 dayz }",
            "t.yaml:6:23: invalid duration `90 dayz` for `age_over`: unknown time unit \"dayz\", \
             supported units: …; expected e.g. 90d, 12h, 2w, 30m",
        ),
        (
            6,
            "    when: { expires_within: 30 }",
            "t.yaml:6:29: invalid duration `30` for `expires_within`: time unit needed, for \
             example 30sec or 30ms; expected e.g. 90d, 12h, 2w, 30m",
        ),
        (
            3,
            "    schedule: \"0 61 * * *\"",
            "t.yaml:3:15: invalid cron expression `0 61 * * *`: Hours must be less than 23. ('61' \
             specified.); expected 5 fields `minute hour day-of-month month day-of-week` …",
        ),
        (
            3,
            "    schedule: 0 6 * *",
            "t.yaml:3:15: invalid cron expression `0 6 * *`: 4 fields; expected 5 fields \
             `minute hour day-of-month month day-of-week` (e.g. \"0 6 * * *\"), 6 or 7 fields \
             with seconds first (and a year last), or @daily etc.",
        ),
        (
            5,
            "    select: { kinds: [cosign_key, pgp_key] }",
            "t.yaml:5:35: unknown credential kind `pgp_key`, expected one of: access_key, \
             secret_id, token, kv_secret, transit_key_version, cosign_key, public_key, \
             private_key, certificate, ssh_key",
        ),
        (
            7,
            "    actions: [notify, page]",
            "t.yaml:7:23: unknown action `page`, expected one of: notify, rotate, disable, \
             delete, revoke_trust, quarantine",
        ),
        (
            4,
            "    severity: urgent",
            "t.yaml:4:15: unknown severity `urgent`, expected one of: info, low, medium, high, \
             critical",
        ),
        (
            3,
            "    mode: on",
            "t.yaml:3:11: unknown mode `on`, expected one of: dry_run, enforce",
        ),
        (
            6,
            "    when: {}",
            "t.yaml:6:5: `when` has no conditions, expected at least one of: age_over, \
             unused_for, never_used_and_older_than, expires_within, expired, status, \
             owner_missing, tags_missing",
        ),
        (
            6,
            "    when:",
            "t.yaml:6:5: `when` has no conditions, expected at least one of: age_over, ",
        ),
        (
            6,
            "    when: { status: [active, gone] }",
            "t.yaml:6:30: status `gone` never matches: gone credentials are not evaluated; expected \
             one of: active, inactive, revoked",
        ),
        (
            6,
            "    when: { status: [expired] }",
            "t.yaml:6:22: unknown credential status `expired`, expected one of: active, \
             inactive, revoked",
        ),
        (
            6,
            "    when: { expired: \"yes\" }",
            "t.yaml:6:22: expected true or false for `expired`, found a string",
        ),
        (
            7,
            "    actions: notify",
            "t.yaml:7:14: expected a list for `actions` (e.g. [a, b]), found a string",
        ),
        (
            7,
            "    actions: []",
            "t.yaml:7:14: `actions` is an empty list; give at least one value or leave it out",
        ),
        (
            5,
            "    select: { names: [\"[a-\"] }",
            "t.yaml:5:23: invalid glob `[a-`: unclosed character class; missing ']' in `names`",
        ),
        (
            5,
            "    select: [access_key]",
            "t.yaml:5:13: expected a mapping for `select`, found a list",
        ),
        (
            2,
            "  - id: Signing_Key",
            "t.yaml:2:9: invalid policy id `Signing_Key`: use lower-case letters, digits, `-` \
             and `.`, starting with a letter or digit (e.g. signing-key-max-age)",
        ),
        (
            2,
            "  - id: [a]",
            "t.yaml:2:9: expected a string for `id`, found a list",
        ),
        (
            4,
            "    mode: dry_run",
            "t.yaml:2:5: missing field `severity` in policy `a`, expected one of: info, low, \
             medium, high, critical",
        ),
        (
            6,
            "    mode: dry_run",
            "t.yaml:2:5: missing field `when` in policy `a`, expected at least one of: \
             age_over, ",
        ),
        (
            7,
            "    mode: dry_run",
            "t.yaml:2:5: missing field `actions` in policy `a`, expected a list of: notify, \
             rotate, disable, delete, revoke_trust, quarantine",
        ),
        (
            2,
            "  - mode: dry_run",
            "t.yaml:2:5: missing field `id` in policy",
        ),
    ];
    let mut failures = Vec::new();
    for (line, replacement, expected) in cases {
        let text = with_line(*line, replacement);
        let got = match parse_str(Path::new("t.yaml"), &text) {
            Ok(_) => vec!["(parsed)".to_owned()],
            Err(Diagnostics(diagnostics)) => diagnostics.iter().map(ToString::to_string).collect(),
        };
        if !(got.len() == 1 && matches_pieces(&got[0], expected)) {
            failures.push(format!(
                "{replacement}\n  expected {expected}\n  got {got:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_error_in_a_file_is_reported_in_order() {
    let text = "\
policies:
  - id: a
    severity: hgih
    schedule: \"0 6 * * * * * *\"
    select: { kinds: [pgp_key, ssh_key, gpg_key] }
    when: { age_over: 1 year ago, unused_for: 3x }
    actions: [notify, page]
    extra: 1
  - id: b
    severity: low
    when: {}
    actions: [rotate]
  - id: c
    severity: low
    when: { age_over: 1d }
    actions: [notify]
";
    assert_errors(
        text,
        &[
            ("t.yaml:3:15: ", "unknown severity `hgih`"),
            (
                "t.yaml:4:15: ",
                "invalid cron expression `0 6 * * * * * *`: 8 fields",
            ),
            ("t.yaml:5:23: ", "unknown credential kind `pgp_key`"),
            ("t.yaml:5:41: ", "unknown credential kind `gpg_key`"),
            (
                "t.yaml:6:23: ",
                "invalid duration `1 year ago` for `age_over`",
            ),
            ("t.yaml:6:47: ", "invalid duration `3x` for `unused_for`"),
            ("t.yaml:7:23: ", "unknown action `page`"),
            ("t.yaml:8:5: ", "unknown field `extra` in policy `a`"),
            ("t.yaml:11:5: ", "`when` has no conditions"),
        ],
    );
}

#[test]
fn duplicate_ids_name_both_places() {
    let text = "\
policies:
  - id: same
    severity: low
    when: { age_over: 1d }
    actions: [notify]
  - id: same
    severity: high
    when: { age_over: 2d }
    actions: [notify]
";
    assert_eq!(
        errors(text),
        vec!["t.yaml:6:9: duplicate policy id `same`, first defined at t.yaml:2:9"]
    );
    // A policy with other errors still claims its id.
    let text = text.replace("severity: low", "severity: lo");
    assert_errors(
        &text,
        &[
            ("t.yaml:3:15: ", "unknown severity `lo`"),
            (
                "t.yaml:6:9: ",
                "duplicate policy id `same`, first defined at t.yaml:2:9",
            ),
        ],
    );
}

#[test]
fn yaml_syntax_errors_and_repeated_keys_name_their_place() {
    assert_errors(
        "policies:\n  - id: a\n    id: b\n",
        &[("t.yaml:3:5: ", "duplicate mapping key: id")],
    );
    assert_errors("policies: [\n  - id: a\n", &[("t.yaml:", "")]);
}

#[test]
fn yaml_anchors_and_merges_work() {
    let text = "\
policies:
  - &base
    id: a
    severity: low
    select: { kinds: [access_key] }
    when: { age_over: 90d }
    actions: [notify]
  - <<: *base
    id: b
    when: { age_over: 30d }
";
    let policies = parse_str(Path::new("t.yaml"), text).unwrap_or_else(|err| panic!("{err}"));
    let summary: Vec<_> = policies
        .iter()
        .map(|it| {
            (
                it.id.as_str(),
                it.when.age_over.as_ref().map(|t| t.text.as_str()),
            )
        })
        .collect();
    assert_eq!(summary, vec![("a", Some("90d")), ("b", Some("30d"))]);
}

// ---------------------------------------------------------------------------------------------
// Loading files

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap_or_else(|err| panic!("{err}"));
    }
    std::fs::write(&path, text).unwrap_or_else(|err| panic!("{err}"));
    path
}

#[test]
fn load_reports_every_error_of_every_file() {
    let dir = tempfile::tempdir().unwrap_or_else(|err| panic!("{err}"));
    write(
        dir.path(),
        "a.yaml",
        "policies:\n  - id: a\n    severity: low\n    colour: red\n    when: { age_over: 1d }\n    \
         actions: [notify]\n",
    );
    write(
        dir.path(),
        "b.yml",
        "policies:\n  - id: b\n    severity: low\n    schedule: \"0 25 * * *\"\n    \
         select: { kinds: [pgp_key] }\n    when: { age_over: 90 dayz }\n    actions: [notify]\n",
    );
    let err = match load(&[dir.path().to_path_buf()]) {
        Ok(set) => panic!("loaded {set:?}"),
        Err(err) => err,
    };
    let a = dir.path().join("a.yaml");
    let b = dir.path().join("b.yml");
    let got: Vec<(PathBuf, u64, u64)> = err
        .0
        .iter()
        .map(|it| (it.file.clone(), it.line, it.column))
        .collect();
    assert_eq!(
        got,
        vec![
            (a.clone(), 4, 5),
            (b.clone(), 4, 15),
            (b.clone(), 5, 23),
            (b.clone(), 6, 23)
        ],
        "{err}"
    );
    let text = err.to_string();
    for part in [
        format!("{}:4:5: unknown field `colour`", a.display()),
        format!("{}:4:15: invalid cron expression `0 25 * * *`", b.display()),
        format!("{}:5:23: unknown credential kind `pgp_key`", b.display()),
        format!("{}:6:23: invalid duration `90 dayz`", b.display()),
    ] {
        assert!(text.contains(&part), "{part}\nnot in\n{text}");
    }
}

#[test]
fn load_walks_directories_in_order_and_checks_ids_across_files() {
    let dir = tempfile::tempdir().unwrap_or_else(|err| panic!("{err}"));
    let policy = |id: &str| {
        format!(
            "policies:\n  - id: {id}\n    severity: low\n    when: {{ age_over: 1d }}\n    \
             actions: [notify]\n"
        )
    };
    write(dir.path(), "b.yaml", &policy("from-b"));
    write(dir.path(), "a.yml", &policy("from-a"));
    write(dir.path(), "sub/c.yaml", &policy("from-sub-c"));
    write(dir.path(), ".hidden/d.yaml", "not: [valid");
    write(dir.path(), ".e.yaml", "not: [valid");
    write(dir.path(), "README.md", "not a policy");
    // Named explicitly, a file loads whatever its extension and wherever it is.
    let extra = write(dir.path(), ".hidden/extra.policy", &policy("from-extra"));

    let set =
        load(&[dir.path().to_path_buf(), extra.clone()]).unwrap_or_else(|err| panic!("{err}"));
    let ids: Vec<&str> = set.policies.iter().map(|it| it.id.as_str()).collect();
    assert_eq!(ids, ["from-a", "from-b", "from-sub-c", "from-extra"]);
    assert!(
        set.get("from-b")
            .is_some_and(|it| it.origin.file == dir.path().join("b.yaml"))
    );
    // A file named again, or reached again through a link to its directory, is read once.
    #[cfg(unix)]
    std::os::unix::fs::symlink(dir.path().join("sub"), dir.path().join("link"))
        .unwrap_or_else(|err| panic!("{err}"));
    let again = load(&[dir.path().to_path_buf(), dir.path().join("b.yaml")])
        .unwrap_or_else(|err| panic!("{err}"));
    assert_eq!(again.policies.len(), 3);

    write(dir.path(), "sub/c.yaml", &policy("from-a"));
    let err = load(&[dir.path().to_path_buf()])
        .err()
        .map(|it| it.to_string());
    assert_eq!(
        err,
        Some(format!(
            "{}:2:9: duplicate policy id `from-a`, first defined at {}:2:9",
            dir.path().join("sub/c.yaml").display(),
            dir.path().join("a.yml").display()
        ))
    );

    // A file that is not YAML is reported; the others are still checked.
    write(dir.path(), "sub/c.yaml", "policies: [\n");
    write(dir.path(), "z.yaml", &policy("Bad"));
    let err = load(&[dir.path().to_path_buf()]).err().map(|it| it.0);
    let places: Vec<_> = err
        .iter()
        .flatten()
        .map(|it| {
            it.file
                .strip_prefix(dir.path())
                .map(Path::to_path_buf)
                .unwrap_or_default()
        })
        .collect();
    assert_eq!(
        places,
        [PathBuf::from("sub/c.yaml"), PathBuf::from("z.yaml")]
    );

    let missing = dir.path().join("missing.yaml");
    let err = load(std::slice::from_ref(&missing))
        .err()
        .map(|it| it.to_string())
        .unwrap_or_default();
    assert!(
        err.starts_with(&format!("{}: cannot read: ", missing.display())),
        "{err}"
    );
}
