//! The shipped policy pack (`policies/`): each policy fires on a matching credential and not on a
//! compliant one, and reads as documented.

use std::collections::BTreeSet;
use std::path::PathBuf;

use keywarden_connector::{CredentialKind, CredentialStatus, LastUse};

use super::tests::{base, created, days, expires, now};
use super::*;
use crate::ledger::LedgerCredential;
use crate::ledger::fixtures;

fn shipped() -> PolicySet {
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/policies"));
    load(&[dir]).unwrap_or_else(|err| panic!("{err}"))
}

#[test]
fn shipped_policies_are_as_documented() {
    let set = shipped();
    let summary: Vec<(&str, Severity, Mode, Vec<ActionKind>)> = set
        .policies
        .iter()
        .map(|it| (it.id.as_str(), it.severity, it.mode, it.actions.clone()))
        .collect();
    use ActionKind::{Disable, Notify, Rotate};
    use Severity::{Critical, High, Medium};
    assert_eq!(
        summary,
        vec![
            (
                "cis-aws-1.14-access-key-rotation",
                High,
                Mode::DryRun,
                vec![Notify, Rotate]
            ),
            (
                "cis-aws-1.12-unused-credentials",
                Medium,
                Mode::DryRun,
                vec![Notify, Disable]
            ),
            (
                "cis-aws-1.13-one-active-access-key",
                Medium,
                Mode::DryRun,
                vec![Notify]
            ),
            ("credential-unowned", Medium, Mode::DryRun, vec![Notify]),
            (
                "code-signing-cert-expiring",
                High,
                Mode::DryRun,
                vec![Notify]
            ),
            (
                "code-signing-cert-expired",
                Critical,
                Mode::DryRun,
                vec![Notify]
            ),
            (
                "signing-key-max-age",
                High,
                Mode::DryRun,
                vec![Notify, Rotate]
            ),
        ]
    );
    for policy in &set.policies {
        assert!(
            policy.description.as_ref().is_some_and(|it| !it.is_empty()),
            "{}",
            policy.id
        );
    }
    for id in [
        "cis-aws-1.14-access-key-rotation",
        "cis-aws-1.12-unused-credentials",
        "cis-aws-1.13-one-active-access-key",
    ] {
        let number = id
            .trim_start_matches("cis-aws-")
            .split('-')
            .next()
            .unwrap_or_default();
        let description = set
            .get(id)
            .and_then(|it| it.description.clone())
            .unwrap_or_default();
        assert!(
            description.contains(&format!("CIS AWS Foundations {number}")),
            "{description}"
        );
    }
}

/// A signing credential of `kind`, owned, created 100 days ago.
fn signing(kind: CredentialKind) -> LedgerCredential {
    let mut credential = fixtures::credential("release-keys", "release", kind, now() - days(100));
    credential.credential.created_at = Some(now() - days(100));
    credential.identity.purpose = Some("signing".to_owned());
    credential.identity.owner = Some("release-team".to_owned());
    credential
}

/// Makes a credential one of the identity `shared:<name>`'s.
fn share(credential: &mut LedgerCredential, name: &str) {
    credential.credential.identity_id = format!("shared:{name}");
    credential.identity.external_id = format!("shared:{name}");
}

/// An active access key of an owned user, created `age` ago and last used `used` ago (`None`:
/// never).
fn access_key(age: i64, used: Option<i64>) -> LedgerCredential {
    let mut credential = base();
    credential.identity.owner = Some("platform".to_owned());
    created(&mut credential, days(age));
    credential.credential.last_used = match used {
        Some(ago) => LastUse::At {
            at: now() - days(ago),
            source: "aws_access_key_last_used".to_owned(),
        },
        None => LastUse::Never,
    };
    credential
}

#[test]
fn shipped_policies_fire_exactly_where_they_should() {
    use CredentialKind::{Certificate, CosignKey, PrivateKey, PublicKey, SshKey, Token};
    let with = |mut credential: LedgerCredential, change: fn(&mut LedgerCredential)| {
        change(&mut credential);
        credential
    };
    let cases: Vec<(&str, LedgerCredential, &[&str])> = vec![
        // code-signing-cert-expiring / -expired
        (
            "cert expiring in 10d",
            with(signing(Certificate), |c| expires(c, days(10))),
            &["code-signing-cert-expiring"],
        ),
        (
            "cert expiring in 40d",
            with(signing(Certificate), |c| expires(c, days(40))),
            &[],
        ),
        (
            "cert expired yesterday",
            with(signing(Certificate), |c| expires(c, -days(1))),
            &["code-signing-cert-expired"],
        ),
        (
            "deploy cert expired",
            with(signing(Certificate), |c| {
                expires(c, -days(1));
                c.identity.purpose = Some("deploy".into());
            }),
            &[],
        ),
        // signing-key-max-age
        (
            "cosign key 400d",
            with(signing(CosignKey), |c| created(c, days(400))),
            &["signing-key-max-age"],
        ),
        (
            "public key 366d",
            with(signing(PublicKey), |c| created(c, days(366))),
            &["signing-key-max-age"],
        ),
        (
            "ssh key 365d",
            with(signing(SshKey), |c| created(c, days(365))),
            &[],
        ),
        (
            "old cert expiring, unowned",
            with(signing(Certificate), |c| {
                created(c, days(400));
                expires(c, days(5));
                c.identity.owner = None;
            }),
            &[
                "code-signing-cert-expiring",
                "signing-key-max-age",
                "credential-unowned",
            ],
        ),
        (
            "old token (not signing material)",
            with(signing(Token), |c| created(c, days(400))),
            &[],
        ),
        // credential-unowned: every kind
        (
            "unowned private key",
            with(signing(PrivateKey), |c| c.identity.owner = None),
            &["credential-unowned"],
        ),
        (
            "unowned certificate",
            with(signing(Certificate), |c| c.identity.owner = None),
            &["credential-unowned"],
        ),
        (
            "unowned ssh key with a blank owner",
            with(signing(SshKey), |c| c.identity.owner = Some("  ".into())),
            &["credential-unowned"],
        ),
        (
            "unowned access key",
            with(access_key(10, Some(1)), |c| c.identity.owner = None),
            &["credential-unowned"],
        ),
        (
            "unowned inactive access key",
            with(access_key(10, Some(1)), |c| {
                c.identity.owner = None;
                c.credential.status = CredentialStatus::Inactive;
            }),
            &["credential-unowned"],
        ),
        (
            "access key owned on the key itself",
            with(access_key(10, Some(1)), |c| {
                c.identity.owner = None;
                c.credential.owner = Some("bob".into());
            }),
            &[],
        ),
        (
            "private key owned on the credential",
            with(signing(PrivateKey), |c| {
                c.identity.owner = None;
                c.credential.owner = Some("alice".into());
            }),
            &[],
        ),
        (
            "unowned key file without signing purpose",
            with(signing(PrivateKey), |c| {
                c.identity.owner = None;
                c.identity.purpose = None;
            }),
            &["credential-unowned"],
        ),
        // cis-aws-1.14-access-key-rotation
        (
            "access key 91d, used yesterday",
            access_key(91, Some(1)),
            &["cis-aws-1.14-access-key-rotation"],
        ),
        (
            "access key 90d, used yesterday",
            access_key(90, Some(1)),
            &[],
        ),
        (
            "inactive access key 200d, unused",
            with(access_key(200, Some(100)), |c| {
                c.credential.status = CredentialStatus::Inactive
            }),
            &[],
        ),
        // cis-aws-1.12-unused-credentials
        (
            "access key 60d, last used 46d ago",
            access_key(60, Some(46)),
            &["cis-aws-1.12-unused-credentials"],
        ),
        (
            "access key 60d, last used 45d ago",
            access_key(60, Some(45)),
            &[],
        ),
        (
            "access key 46d, never used",
            access_key(46, None),
            &["cis-aws-1.12-unused-credentials"],
        ),
        ("access key 45d, never used", access_key(45, None), &[]),
        (
            "access key 60d, last use unknown",
            with(access_key(60, None), |c| {
                c.credential.last_used = LastUse::Unknown
            }),
            &[],
        ),
        (
            "access key 100d, unused 50d",
            access_key(100, Some(50)),
            &[
                "cis-aws-1.14-access-key-rotation",
                "cis-aws-1.12-unused-credentials",
            ],
        ),
        // cis-aws-1.13-one-active-access-key: the `shared:` identities hold two keys each
        (
            "first of two active keys",
            with(access_key(10, Some(1)), |c| share(c, "two-active")),
            &["cis-aws-1.13-one-active-access-key"],
        ),
        (
            "second of two active keys",
            with(access_key(20, Some(2)), |c| share(c, "two-active")),
            &["cis-aws-1.13-one-active-access-key"],
        ),
        (
            "active key beside an inactive one",
            with(access_key(10, Some(1)), |c| share(c, "one-active")),
            &[],
        ),
        (
            "inactive key beside an active one",
            with(access_key(20, Some(30)), |c| {
                share(c, "one-active");
                c.credential.status = CredentialStatus::Inactive;
            }),
            &[],
        ),
        (
            "active key beside an active certificate",
            with(access_key(10, Some(1)), |c| share(c, "key-and-cert")),
            &[],
        ),
        (
            "active certificate beside an active key",
            with(access_key(10, Some(1)), |c| {
                share(c, "key-and-cert");
                c.credential.kind = Certificate;
            }),
            &[],
        ),
    ];
    let set = shipped();
    let mut credentials: Vec<LedgerCredential> = cases.iter().map(|(_, c, _)| c.clone()).collect();
    // Every case is its own identity but for the `shared:` ones.
    for (idx, credential) in credentials.iter_mut().enumerate() {
        if !credential.credential.identity_id.starts_with("shared:") {
            credential.credential.identity_id = format!("case-{idx}");
        }
    }
    let violations = evaluate(&set, &credentials, &IdentityCounts::of(&credentials), now());
    let mut failures = Vec::new();
    for (idx, (name, _, expected)) in cases.iter().enumerate() {
        let got: BTreeSet<&str> = violations
            .iter()
            .filter(|it| it.credential == idx)
            .map(|it| set.policies[it.policy].id.as_str())
            .collect();
        let expected: BTreeSet<&str> = expected.iter().copied().collect();
        if got != expected {
            failures.push(format!("{name}: expected {expected:?}, got {got:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // Every shipped policy is exercised by some case above.
    let fired: BTreeSet<usize> = violations.iter().map(|it| it.policy).collect();
    assert_eq!(fired.len(), set.policies.len());
}

#[test]
fn shipped_reasons_read_well() {
    let set = shipped();
    let reason = |id: &str, credential: &LedgerCredential| {
        set.get(id).and_then(|policy| {
            violation_reason(
                policy,
                credential,
                &IdentityCounts::of(std::slice::from_ref(credential)),
                now(),
            )
        })
    };
    let mut cert = signing(CredentialKind::Certificate);
    expires(&mut cert, days(12));
    assert_eq!(
        reason("code-signing-cert-expiring", &cert).as_deref(),
        Some("expires in 12d (within 30d)")
    );
    let mut key = signing(CredentialKind::CosignKey);
    created(&mut key, days(400));
    assert_eq!(
        reason("signing-key-max-age", &key).as_deref(),
        Some("age 400d exceeds 365d")
    );
    assert_eq!(
        reason(
            "cis-aws-1.14-access-key-rotation",
            &access_key(120, Some(1))
        )
        .as_deref(),
        Some("age 120d exceeds 90d; status active")
    );
    assert_eq!(
        reason(
            "cis-aws-1.12-unused-credentials",
            &access_key(120, Some(50))
        )
        .as_deref(),
        Some("last used 50d ago (unused for over 45d); status active")
    );
    let mut second = access_key(10, Some(1));
    second.credential.external_id = "key-2".to_owned();
    let first = access_key(120, Some(1));
    let pair = [first, second];
    assert_eq!(
        set.get("cis-aws-1.13-one-active-access-key")
            .and_then(|policy| {
                violation_reason(policy, &pair[0], &IdentityCounts::of(&pair), now())
            })
            .as_deref(),
        Some("status active; identity holds 2 active access_key credentials (more than 1)")
    );
    let mut unowned = signing(CredentialKind::Certificate);
    unowned.identity.owner = None;
    assert_eq!(
        reason("credential-unowned", &unowned).as_deref(),
        Some("no owner")
    );
}
