//! When a policy's conditions began to hold ([`Conditions::began`]): what `revoke_trust`
//! distrusts a signer from.

use keywarden_connector::LastUse;

use super::tests::{base, created, days, expires, now};
use super::*;

fn when(body: &str) -> Conditions {
    let text = format!(
        "policies:\n  - id: p\n    severity: low\n    when: {body}\n    actions: [revoke_trust]\n"
    );
    match parse_str(Path::new("t.yaml"), &text) {
        Ok(mut policies) => policies.remove(0).when,
        Err(err) => panic!("{text}\n{err}"),
    }
}

#[test]
fn each_time_bound_condition_begins_at_its_own_moment() {
    let mut key = base();
    created(&mut key, days(400));
    assert_eq!(
        when("{ age_over: 365d }").began(&key),
        Some(now() - days(35)),
        "creation + 365 days"
    );
    assert_eq!(
        when("{ never_used_and_older_than: 30d }").began(&key),
        Some(now() - days(370))
    );
    key.credential.last_used = LastUse::At {
        at: now() - days(100),
        source: "test".to_owned(),
    };
    assert_eq!(
        when("{ unused_for: 90d }").began(&key),
        Some(now() - days(10)),
        "last use + 90 days"
    );
    key.credential.last_used = LastUse::Never;
    assert_eq!(
        when("{ unused_for: 90d }").began(&key),
        Some(now() - days(310)),
        "never used: creation + 90 days"
    );
    expires(&mut key, days(-5));
    assert_eq!(
        when("{ expired: true }").began(&key),
        Some(now() - days(5)),
        "an expired certificate: from not-after"
    );
    expires(&mut key, days(10));
    assert_eq!(
        when("{ expires_within: 30d }").began(&key),
        Some(now() - days(20)),
        "expiry − 30 days"
    );
}

#[test]
fn all_conditions_hold_from_the_latest_start_and_untimed_ones_have_none() {
    let mut key = base();
    created(&mut key, days(400));
    key.credential.last_used = LastUse::At {
        at: now() - days(100),
        source: "test".to_owned(),
    };
    assert_eq!(
        when("{ age_over: 365d, unused_for: 90d }").began(&key),
        Some(now() - days(10))
    );
    assert_eq!(
        when("{ age_over: 365d, owner_missing: true }").began(&key),
        Some(now() - days(35)),
        "an untimed condition does not move the start"
    );
    assert_eq!(when("{ owner_missing: true }").began(&key), None);
    assert_eq!(when("{ expired: false }").began(&key), None);
    assert_eq!(
        when("{ expired: true }").began(&key),
        None,
        "no expiry, no start"
    );
}
