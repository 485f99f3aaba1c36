//! keywarden's resolution of Vault ACL policies against OpenBao's own: for a set of policies
//! with exact paths, globs, `+` segments, overlapping rules and denies, every capability keywarden
//! decides for a path is the one OpenBao's `sys/capabilities` reports for a token holding them.

mod vault;

use keywarden_vault::Acl;
use reqwest::Method;
use serde_json::json;

const POLICIES: &[(&str, &str)] = &[
    (
        "signers",
        r#"
path "transit/sign/release" { capabilities = ["update"] }
path "transit/sign/release/*" { capabilities = ["update"] }
path "transit/sign/rel*" { capabilities = ["read"] }
path "transit/keys/+" { capabilities = ["read"] }
path "transit/+/ci-*" { capabilities = ["update", "list"] }
"#,
    ),
    (
        "broad",
        r#"
path "transit/*" { capabilities = ["list"] }
path "+/sign/+" { capabilities = ["create"] }
path "secret/data/*" { capabilities = ["read"] }
path "secret/data/team/+/db" { capabilities = ["update"] }
path "transit/sign/+" { capabilities = ["read"] }
path "transit/sign/*" { capabilities = ["delete"] }
path "+/+/+" { capabilities = ["delete"] }
"#,
    ),
    (
        "fences",
        r#"
path "transit/sign/locked" { capabilities = ["deny"] }
path "transit/sign/release/sha2-512" { capabilities = ["deny"] }
path "secret/data/team/private*" { capabilities = ["deny"] }
"#,
    ),
];

const PATHS: &[&str] = &[
    "transit/sign/release",
    "transit/sign/release/sha2-256",
    "transit/sign/release/sha2-512",
    "transit/sign/releases",
    "transit/sign/locked",
    "transit/sign/ci-build",
    "transit/verify/ci-build",
    "transit/sign/other",
    "transit/keys/release",
    "transit/keys/release/rotate",
    "transit/export/signing-key/release",
    "other/sign/x",
    "other/sign/x/y",
    "secret/data/app",
    "secret/data/team/a/db",
    "secret/data/team/private/db",
    "secret/metadata/app",
    "sys/mounts",
];

const CAPABILITIES: &[&str] = &["create", "read", "update", "delete", "list", "sudo"];

#[tokio::test]
async fn keywarden_resolves_policies_as_openbao_does() {
    let Some(peer) = vault::peer() else { return };
    let ns = peer.fresh_namespace().await;
    let n = Some(ns.as_str());
    for (name, policy) in POLICIES {
        peer.ok(
            n,
            Method::PUT,
            &format!("sys/policies/acl/{name}"),
            Some(json!({ "policy": policy })),
        )
        .await;
    }
    let names: Vec<&str> = POLICIES.iter().map(|(name, _)| *name).collect();
    let token = peer
        .ok(
            n,
            Method::POST,
            "auth/token/create",
            Some(json!({"policies": names, "no_default_policy": true})),
        )
        .await;
    let token = token["auth"]["client_token"]
        .as_str()
        .expect("token")
        .to_owned();
    let answer = peer
        .ok(
            n,
            Method::POST,
            "sys/capabilities",
            Some(json!({"token": token, "paths": PATHS})),
        )
        .await;
    // The policies as OpenBao stores them, read back the way the connector will.
    let mut stored = Vec::new();
    for name in &names {
        let read = peer
            .ok(n, Method::GET, &format!("sys/policies/acl/{name}"), None)
            .await;
        stored.push((
            name.to_string(),
            read["data"]["policy"].as_str().expect("policy").to_owned(),
        ));
    }
    let acl =
        Acl::from_policies(stored.iter().map(|(a, b)| (a.as_str(), b.as_str()))).expect("acl");
    let mut compared = 0;
    for path in PATHS {
        let granted: Vec<&str> = answer["data"][path]
            .as_array()
            .unwrap_or_else(|| panic!("no capabilities for {path}: {answer}"))
            .iter()
            .filter_map(|it| it.as_str())
            .collect();
        for capability in CAPABILITIES {
            assert_eq!(
                acl.allows(path, capability),
                granted.contains(capability),
                "{path} {capability}: OpenBao grants {granted:?}"
            );
            compared += 1;
        }
    }
    assert_eq!(compared, PATHS.len() * CAPABILITIES.len());
    // The decisions the holders rest on, stated outright.
    assert!(acl.allows("transit/sign/release", "update"));
    assert!(!acl.allows("transit/sign/locked", "update"));
}
