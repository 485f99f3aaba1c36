//! Holders of Transit signers against a real OpenBao dev server: the tokens and AppRole
//! secret-ids whose policies let them call `transit/sign/<key>` hold the key's signers (as OpenBao
//! itself answers through `sys/capabilities-accessor`), and a stale one of them distrusts the
//! signers it could sign with — while a stale token of the same identity that may not sign
//! distrusts nothing.

mod common;
mod vault;

use std::collections::{BTreeMap, BTreeSet};

use keywarden_connector::{Connector, CredentialKind, ScanContext};
use reqwest::Method;
use serde_json::{Value, json};

use crate::vault::Peer;

/// Who may sign with what, as the test set it up in one namespace.
struct World {
    namespace: String,
    /// Token name (as the test calls it) → accessor.
    tokens: BTreeMap<&'static str, String>,
    /// AppRole role → its one secret-id's accessor.
    secret_ids: BTreeMap<&'static str, String>,
    /// Key id of each signer by `key vN`.
    key_ids: BTreeMap<String, String>,
}

const POLICIES: &[(&str, &str)] = &[
    (
        "sign-release",
        r#"path "transit/sign/release" { capabilities = ["update"] }"#,
    ),
    // The form cosign's `hashivault://` calls.
    (
        "sign-hashed",
        r#"path "transit/sign/release/sha2-256" { capabilities = ["update"] }"#,
    ),
    (
        "verify-only",
        r#"path "transit/verify/release" { capabilities = ["update"] }
           path "transit/sign/release" { capabilities = ["read"] }"#,
    ),
    // The deny covers `transit/sign/release` only: `transit/sign/release/sha2-256` is still the
    // glob's, so this one may sign with release after all (as OpenBao confirms).
    (
        "deny-one-path",
        r#"path "transit/sign/*" { capabilities = ["update"] }
           path "transit/sign/release" { capabilities = ["deny"] }"#,
    ),
    (
        "all-but-release",
        r#"path "transit/sign/*" { capabilities = ["update"] }
           path "transit/sign/release*" { capabilities = ["deny"] }"#,
    ),
];

/// Tokens made by `auth/token/create` (all of one identity, the auth path) with one policy each.
const TOKENS: &[(&str, &str)] = &[
    ("signer", "sign-release"),
    ("cosign", "sign-hashed"),
    ("verifier", "verify-only"),
    ("loophole", "deny-one-path"),
    ("others", "all-but-release"),
];

const ROLES: &[(&str, &str)] = &[("release", "sign-release"), ("builder", "verify-only")];

async fn world(peer: &Peer) -> World {
    let ns = peer.fresh_namespace().await;
    let n = Some(ns.as_str());
    peer.enable(&ns, "mounts", "transit", "transit", None).await;
    peer.enable(&ns, "auth", "approle", "approle", None).await;
    for (name, policy) in POLICIES {
        peer.ok(
            n,
            Method::PUT,
            &format!("sys/policies/acl/{name}"),
            Some(json!({ "policy": policy })),
        )
        .await;
    }
    // `release` rotated once, then signing limited to v2; `other` one version.
    for key in ["release", "other"] {
        peer.ok(
            n,
            Method::POST,
            &format!("transit/keys/{key}"),
            Some(json!({"type": "ecdsa-p256"})),
        )
        .await;
    }
    peer.ok(n, Method::POST, "transit/keys/release/rotate", None)
        .await;
    peer.ok(
        n,
        Method::POST,
        "transit/keys/release/config",
        Some(json!({"min_encryption_version": 2})),
    )
    .await;
    let mut tokens = BTreeMap::new();
    for (name, policy) in TOKENS {
        let made = peer
            .ok(
                n,
                Method::POST,
                "auth/token/create",
                Some(json!({"policies": [policy], "display_name": name, "ttl": "1h"})),
            )
            .await;
        let accessor = made["auth"]["accessor"].as_str().expect("accessor");
        tokens.insert(*name, accessor.to_owned());
    }
    let mut secret_ids = BTreeMap::new();
    for (role, policy) in ROLES {
        peer.ok(
            n,
            Method::POST,
            &format!("auth/approle/role/{role}"),
            Some(json!({"token_policies": [policy]})),
        )
        .await;
        let made = peer
            .ok(
                n,
                Method::POST,
                &format!("auth/approle/role/{role}/secret-id"),
                None,
            )
            .await;
        let accessor = made["data"]["secret_id_accessor"]
            .as_str()
            .expect("accessor");
        secret_ids.insert(*role, accessor.to_owned());
    }
    World {
        namespace: format!("{ns}/"),
        tokens,
        secret_ids,
        key_ids: BTreeMap::new(),
    }
}

fn connector(peer: &Peer, namespace: &str) -> Box<dyn Connector> {
    let config: keywarden_vault::VaultConfig = serde_json::from_value(json!({
        "address": peer.addr,
        "token_file": peer.token_file,
        "namespaces": [namespace],
    }))
    .expect("config");
    Box::new(
        config
            .build("vault", std::path::Path::new("/"))
            .expect("build"),
    )
}

/// Whether OpenBao itself lets the token with this accessor sign with `key`.
async fn openbao_may_sign(peer: &Peer, namespace: &str, accessor: &str, key: &str) -> bool {
    let answer = peer
        .ok(
            Some(namespace.trim_end_matches('/')),
            Method::POST,
            "sys/capabilities-accessor",
            Some(json!({"accessor": accessor, "paths": [format!("transit/sign/{key}"), format!("transit/sign/{key}/sha2-256")]})),
        )
        .await;
    let caps: Vec<&str> = answer["data"]
        .as_object()
        .expect("capabilities")
        .iter()
        .filter(|(path, _)| path.starts_with("transit/"))
        .flat_map(|(_, it)| it.as_array().into_iter().flatten())
        .filter_map(Value::as_str)
        .collect();
    caps.contains(&"update") || caps.contains(&"root")
}

#[tokio::test]
async fn tokens_and_secret_ids_whose_policies_may_sign_hold_exactly_those_signers() {
    let Some(peer) = vault::peer() else { return };
    let mut world = world(&peer).await;
    let p = world.namespace.clone();
    let scan = connector(&peer, &p);
    let inventory =
        keywarden_connector::collect(scan.as_ref(), &ScanContext::new(chrono::Utc::now()))
            .await
            .expect("scan");
    assert!(inventory.errors.is_empty(), "{:#?}", inventory.errors);
    for it in &inventory.credentials {
        if it.kind == CredentialKind::TransitKeyVersion {
            let key_id = it
                .fingerprints
                .iter()
                .find(|f| f.algorithm == "sha256_spki")
                .expect("a signer")
                .value
                .clone();
            world.key_ids.insert(it.name.clone(), key_id);
        }
    }
    let release_v2 = world.key_ids["release v2"].clone();
    let other_v1 = world.key_ids["other v1"].clone();
    let signs_with = |external_id: &str| -> BTreeSet<String> {
        inventory
            .credentials
            .iter()
            .find(|it| it.external_id == external_id)
            .unwrap_or_else(|| panic!("no {external_id}"))
            .signs_with
            .iter()
            .cloned()
            .collect()
    };
    let expected_tokens: [(&str, Vec<&String>); 5] = [
        ("signer", vec![&release_v2]),
        ("cosign", vec![&release_v2]),
        ("verifier", vec![]),
        ("loophole", vec![&release_v2, &other_v1]),
        ("others", vec![&other_v1]),
    ];
    for (name, expected) in expected_tokens {
        let accessor = &world.tokens[name];
        let got = signs_with(&format!("{p}token/{accessor}"));
        let expected: BTreeSet<String> = expected.into_iter().cloned().collect();
        assert_eq!(got, expected, "token {name}");
        // keywarden's reading of the policies is OpenBao's.
        for (key, version) in [("release", &release_v2), ("other", &other_v1)] {
            assert_eq!(
                got.contains(version),
                openbao_may_sign(&peer, &p, accessor, key).await,
                "token {name}, key {key}: keywarden and OpenBao disagree"
            );
        }
    }
    assert!(
        !inventory
            .credentials
            .iter()
            .any(|it| it.signs_with.contains(&world.key_ids["release v1"])),
        "v1 is below min_encryption_version: nobody can sign with it"
    );
    for (role, expected) in [("release", vec![&release_v2]), ("builder", vec![])] {
        let accessor = &world.secret_ids[role];
        let got = signs_with(&format!("{p}auth/approle/role/{role}/secret-id/{accessor}"));
        let expected: BTreeSet<String> = expected.into_iter().cloned().collect();
        assert_eq!(got, expected, "secret-id of role {role}");
    }
}

const STALE_TOKEN: &str = "policies:\n  - id: stale-vault-token\n    severity: high\n    mode: enforce\n    \
    select:\n      kinds: [token]\n      names: [\"NAME\"]\n    when:\n      age_over: 1s\n    \
    actions: [revoke_trust]\n";

fn config(peer: &Peer, world: &World, dir: &std::path::Path, stale: &str) {
    common::write(&dir.join("stale.yaml"), &STALE_TOKEN.replace("NAME", stale));
    common::write(
        &dir.join("keywarden.yaml"),
        &format!(
            "store:\n  path: ledger.db\npolicies:\n  - stale.yaml\nsources:\n  vault:\n    type: vault\n    address: {}\n    token_file: {}\n    namespaces: [\"{}\"]\n",
            peer.addr,
            peer.token_file.display(),
            world.namespace
        ),
    );
}

fn trust_list(dir: &std::path::Path) -> Value {
    let output = common::keywarden(dir, &["trust", "list", "--format", "json"]);
    let out = common::stdout(&output);
    assert!(
        output.status.success(),
        "{out}\n{}",
        common::stderr(&output)
    );
    serde_json::from_str(&out).expect("json")
}

fn signer<'a>(list: &'a Value, key_id: &str) -> &'a Value {
    list["signers"]
        .as_array()
        .expect("signers")
        .iter()
        .find(|it| it["key_id"] == key_id)
        .unwrap_or_else(|| panic!("no signer {key_id} in {list:#}"))
}

#[tokio::test]
async fn a_stale_token_distrusts_the_signers_its_policies_may_sign_with_and_no_other() {
    let Some(peer) = vault::peer() else { return };
    let world = world(&peer).await;
    let p = world.namespace.clone();
    // Older than the policy's 1s by the time the scan reads them.
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
    let dir = tempfile::tempdir().expect("dir");

    // The verifier is stale: it shares its identity (the auth path) with the signer, but its
    // policies may not sign, so nothing is distrusted.
    config(&peer, &world, dir.path(), "token-verifier");
    let output = common::keywarden(dir.path(), &["scan", "--format", "json"]);
    assert!(
        output.status.success(),
        "{}\n{}",
        common::stdout(&output),
        common::stderr(&output)
    );
    let list = trust_list(dir.path());
    let key_id = |name: &str| -> String {
        list["signers"]
            .as_array()
            .expect("signers")
            .iter()
            .find(|it| {
                it["credentials"]
                    .as_array()
                    .is_some_and(|c| c.iter().any(|c| c["name"] == name))
            })
            .unwrap_or_else(|| panic!("no signer {name}"))["key_id"]
            .as_str()
            .expect("key id")
            .to_owned()
    };
    let (release_v2, other_v1) = (key_id("release v2"), key_id("other v1"));
    for key in [&release_v2, &other_v1] {
        assert_eq!(
            signer(&list, key)["trusted"],
            true,
            "{:#}",
            signer(&list, key)
        );
    }
    // The holders of release v2 are the key itself and, through their policies, the signer,
    // cosign and loophole tokens and the release role's secret-id: nothing else.
    let held: BTreeSet<(String, String)> = signer(&list, &release_v2)["holders"]
        .as_array()
        .expect("holders")
        .iter()
        .filter(|it| it["via"] == "policy")
        .flat_map(|it| {
            it["credentials"]
                .as_array()
                .expect("credentials")
                .iter()
                .map(|c| {
                    (
                        it["name"].as_str().expect("name").to_owned(),
                        c["external_id"].as_str().expect("id").to_owned(),
                    )
                })
                .collect::<Vec<_>>()
        })
        .collect();
    let expected: BTreeSet<(String, String)> = [
        (
            format!("{p}auth/token/create"),
            format!("{p}token/{}", world.tokens["signer"]),
        ),
        (
            format!("{p}auth/token/create"),
            format!("{p}token/{}", world.tokens["cosign"]),
        ),
        (
            format!("{p}auth/token/create"),
            format!("{p}token/{}", world.tokens["loophole"]),
        ),
        (
            "release".to_owned(),
            format!(
                "{p}auth/approle/role/release/secret-id/{}",
                world.secret_ids["release"]
            ),
        ),
    ]
    .into_iter()
    .collect();
    assert_eq!(held, expected);

    // Now the signer token is stale: release v2 is distrusted from its creation + 1s, naming
    // the token; other v1 stays trusted.
    config(&peer, &world, dir.path(), "token-signer");
    let output = common::keywarden(dir.path(), &["scan", "--format", "json"]);
    assert!(output.status.success(), "{}", common::stderr(&output));
    let list = trust_list(dir.path());
    let release = signer(&list, &release_v2);
    assert_eq!(release["trusted"], false, "{release:#}");
    let periods = release["distrust_periods"].as_array().expect("periods");
    assert_eq!(periods.len(), 1, "{periods:#?}");
    assert_eq!(periods[0]["reason"], "stale");
    let evidence = periods[0]["evidence"].as_str().expect("evidence");
    assert!(
        evidence.contains(&format!("token/{}", world.tokens["signer"])),
        "{evidence}"
    );
    assert_eq!(signer(&list, &other_v1)["trusted"], true);
}
