//! Holders through a source's access rules (`signs_with`): only the credentials that may sign
//! hold the signer, and only they distrust it.

use chrono::{DateTime, TimeZone, Utc};
use keywarden_connector::{CredentialKind, CredentialStatus};

use super::*;
use crate::actions::revoke_trust::{Cause, HolderEnd, distrust_for};
use crate::ledger::fixtures;
use crate::trust::DistrustReason;

fn t(day: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, day, 0, 0, 0)
        .single()
        .expect("time")
}

/// A Transit key version `release v1`, signer `key-id`.
fn transit_signer() -> LedgerSigner {
    LedgerSigner {
        key_id: "key-id".to_owned(),
        public_key: None,
        algorithm: Some("ecdsa-p256".to_owned()),
        credentials: vec![SignerCredential {
            source: "vault".to_owned(),
            external_id: "transit/keys/release/v1".to_owned(),
            kind: CredentialKind::TransitKeyVersion,
            name: "release v1".to_owned(),
            status: CredentialStatus::Active,
            identity: "transit/keys/release".to_owned(),
            identity_name: "release".to_owned(),
            first_seen: t(1),
            not_before: None,
            created_at: Some(t(1)),
            expires_at: None,
        }],
    }
}

/// A token of the entity `ci`, signing with `signs_with`.
fn token(accessor: &str, signs_with: &[&str]) -> LedgerCredential {
    let mut it = fixtures::credential("vault", accessor, CredentialKind::Token, t(2));
    it.identity.external_id = "entity:ci".to_owned();
    it.identity.name = "ci".to_owned();
    it.credential.identity_id = "entity:ci".to_owned();
    it.credential.external_id = format!("token/{accessor}");
    it.credential.signs_with = signs_with.iter().map(|it| (*it).to_owned()).collect();
    it
}

fn cause() -> Cause<'static> {
    Cause {
        from: t(3),
        reason: DistrustReason::Leaked,
        evidence: "a leak report",
        by: "leak:test",
        holder_end: HolderEnd::ForGood,
    }
}

#[test]
fn only_the_tokens_whose_policies_may_sign_hold_the_signer_and_distrust_it() {
    let signer_token = token("a", &["key-id"]);
    let other_token = token("b", &[]);
    let unrelated = token("c", &["another-key"]);
    let signing = [signer_token.clone(), unrelated.clone()];
    let signers = assemble(Inputs {
        ledger: vec![transit_signer()],
        records: Vec::new(),
        configured: &[],
        credentials: &[],
        signing: &signing,
    });
    assert_eq!(signers.len(), 1);
    let holders: Vec<(&str, HeldVia, Vec<&str>)> = signers[0]
        .holders
        .iter()
        .map(|it| {
            (
                it.identity.as_str(),
                it.via,
                it.credentials
                    .iter()
                    .map(|c| c.external_id.as_str())
                    .collect(),
            )
        })
        .collect();
    assert_eq!(
        holders,
        [
            (
                "transit/keys/release",
                HeldVia::Own,
                vec!["transit/keys/release/v1"]
            ),
            ("entity:ci", HeldVia::Policy, vec!["token/a"]),
        ]
    );

    let distrusted = distrust_for(&signers, &signer_token, cause());
    assert_eq!(distrusted.len(), 1, "{distrusted:?}");
    assert_eq!(distrusted[0].key_id, "key-id");
    assert_eq!(distrusted[0].period.from, t(3));
    assert!(
        distrusted[0]
            .period
            .evidence
            .contains("token/a of its holder ci"),
        "{}",
        distrusted[0].period.evidence
    );
    // The same entity's other tokens may not sign with it: their leak distrusts nothing.
    assert!(distrust_for(&signers, &other_token, cause()).is_empty());
    assert!(distrust_for(&signers, &unrelated, cause()).is_empty());
}

#[test]
fn a_signer_known_only_from_its_record_keeps_its_policy_holders() {
    let signing = [token("a", &["gone-key"])];
    let signers = assemble(Inputs {
        ledger: Vec::new(),
        records: vec![("gone-key".to_owned(), TrustRecord::new(t(1)))],
        configured: &[],
        credentials: &[],
        signing: &signing,
    });
    assert_eq!(signers.len(), 1);
    assert_eq!(signers[0].holders.len(), 1);
    assert_eq!(signers[0].holders[0].via, HeldVia::Policy);
}
