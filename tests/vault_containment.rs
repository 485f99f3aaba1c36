//! Containment of a leaked Vault credential against a real OpenBao dev server: a gitleaks report
//! carrying an AppRole secret-id in the clear is matched by asking OpenBao (keywarden knows only
//! accessors), and the playbook distrusts the Transit signer the secret-id could sign with,
//! destroys the secret-id and revokes the tokens its role's logins minted since it was made —
//! and nothing else: another role's secret-id and token stay. A leaked token is revoked. No
//! token or secret-id reaches the output, the trace log or the database.

mod common;
mod vault;

use reqwest::Method;
use serde_json::{Value, json};

use crate::vault::Peer;

struct World {
    ns: String,
    /// The leaked secret-id of role `ci` (allowed to sign with `release`): accessor, secret.
    leaked: (String, String),
    /// Tokens a login with it minted.
    minted: Vec<String>,
    /// Role `other`'s secret-id accessor and a token its login minted: untouched.
    other_secret_id: String,
    other_token: String,
    /// A token made directly, to leak on its own: accessor, secret.
    token: (String, String),
    secrets: Vec<String>,
}

async fn world(peer: &Peer) -> World {
    let ns = peer.fresh_namespace().await;
    let n = Some(ns.as_str());
    peer.enable(&ns, "mounts", "transit", "transit", None).await;
    peer.enable(&ns, "auth", "approle", "approle", None).await;
    peer.ok(
        n,
        Method::POST,
        "transit/keys/release",
        Some(json!({"type": "ecdsa-p256"})),
    )
    .await;
    peer.ok(
        n,
        Method::PUT,
        "sys/policies/acl/sign-release",
        Some(json!({"policy": r#"path "transit/sign/release" { capabilities = ["update"] }"#})),
    )
    .await;
    let mut secrets = Vec::new();
    let mut made = Vec::new();
    for (role, policy) in [("ci", "sign-release"), ("other", "default")] {
        peer.ok(
            n,
            Method::POST,
            &format!("auth/approle/role/{role}"),
            Some(json!({"token_policies": [policy]})),
        )
        .await;
        let role_id = peer
            .ok(
                n,
                Method::GET,
                &format!("auth/approle/role/{role}/role-id"),
                None,
            )
            .await["data"]["role_id"]
            .as_str()
            .expect("role id")
            .to_owned();
        let secret = peer
            .ok(
                n,
                Method::POST,
                &format!("auth/approle/role/{role}/secret-id"),
                None,
            )
            .await;
        let accessor = secret["data"]["secret_id_accessor"]
            .as_str()
            .expect("accessor")
            .to_owned();
        let secret_id = secret["data"]["secret_id"].as_str().expect("id").to_owned();
        secrets.push(secret_id.clone());
        let mut tokens = Vec::new();
        for _ in 0..if role == "ci" { 2 } else { 1 } {
            let login = peer
                .ok(
                    n,
                    Method::POST,
                    "auth/approle/login",
                    Some(json!({"role_id": role_id, "secret_id": secret_id})),
                )
                .await;
            tokens.push(
                login["auth"]["accessor"]
                    .as_str()
                    .expect("accessor")
                    .to_owned(),
            );
            secrets.push(
                login["auth"]["client_token"]
                    .as_str()
                    .expect("token")
                    .to_owned(),
            );
        }
        made.push((accessor, secret_id, tokens));
    }
    let direct = peer
        .ok(
            n,
            Method::POST,
            "auth/token/create",
            Some(json!({"policies": ["default"], "ttl": "1h"})),
        )
        .await;
    let token = (
        direct["auth"]["accessor"]
            .as_str()
            .expect("accessor")
            .to_owned(),
        direct["auth"]["client_token"]
            .as_str()
            .expect("token")
            .to_owned(),
    );
    secrets.push(token.1.clone());
    let mut made = made.into_iter();
    let (ci_accessor, ci_secret, ci_tokens) = made.next().expect("ci");
    let (other_accessor, _, mut other_tokens) = made.next().expect("other");
    World {
        ns: format!("{ns}/"),
        leaked: (ci_accessor, ci_secret),
        minted: ci_tokens,
        other_secret_id: other_accessor,
        other_token: other_tokens.remove(0),
        token,
        secrets,
    }
}

async fn secret_id_exists(peer: &Peer, world: &World, role: &str, accessor: &str) -> bool {
    let (status, _) = peer
        .call(
            Some(world.ns.trim_end_matches('/')),
            Method::POST,
            &format!("auth/approle/role/{role}/secret-id-accessor/lookup"),
            Some(json!({"secret_id_accessor": accessor})),
        )
        .await;
    status == 200
}

async fn token_exists(peer: &Peer, world: &World, accessor: &str) -> bool {
    let (status, _) = peer
        .call(
            Some(world.ns.trim_end_matches('/')),
            Method::POST,
            "auth/token/lookup-accessor",
            Some(json!({"accessor": accessor})),
        )
        .await;
    status == 200
}

fn gitleaks(secret: &str, line: u32) -> String {
    json!([{
        "RuleID": "generic-api-key",
        "File": "ci/deploy.sh",
        "StartLine": line,
        "Commit": "0123abc",
        "Date": "2026-12-01T00:00:00Z",
        "Fingerprint": format!("0123abc:ci/deploy.sh:generic-api-key:{line}"),
        "Secret": secret,
    }])
    .to_string()
}

fn run(dir: &std::path::Path, args: &[&str]) -> (String, String) {
    let output = common::keywarden_with_env(dir, args, &[("KEYWARDEN_LOG", "trace")]);
    let (out, err) = (common::stdout(&output), common::stderr(&output));
    assert!(output.status.success(), "{args:?}\n{out}\n{err}");
    (out, err)
}

#[tokio::test]
async fn a_leaked_secret_id_is_destroyed_its_tokens_revoked_and_its_signers_distrusted() {
    let Some(peer) = vault::peer() else { return };
    let world = world(&peer).await;
    let p = world.ns.clone();
    let dir = tempfile::tempdir().expect("dir");
    common::write(
        &dir.path().join("keywarden.yaml"),
        &format!(
            "store:\n  path: ledger.db\nsources:\n  vault:\n    type: vault\n    address: {}\n    token_file: {}\n    namespaces: [\"{p}\"]\n",
            peer.addr,
            peer.token_file.display(),
        ),
    );
    let mut shown = String::new();
    let (out, err) = run(dir.path(), &["scan", "--format", "json"]);
    shown.push_str(&out);
    shown.push_str(&err);
    let leaked_id = format!("{p}auth/approle/role/ci/secret-id/{}", world.leaked.0);
    let report: Value = serde_json::from_str(&out).expect("json");
    let signer = report["signers"]
        .as_array()
        .expect("signers")
        .iter()
        .find(|it| {
            it["credentials"]
                .as_array()
                .is_some_and(|c| c.iter().any(|c| c["name"] == "release v1"))
        })
        .unwrap_or_else(|| panic!("no signer release v1 in {}", report["signers"]))["key_id"]
        .as_str()
        .expect("key id")
        .to_owned();

    common::write(
        &dir.path().join("report.json"),
        &gitleaks(&world.leaked.1, 3),
    );
    let (out, err) = run(
        dir.path(),
        &["leak", "ingest", "report.json", "--output", "json"],
    );
    shown.push_str(&out);
    shown.push_str(&err);
    let ingested: Value = serde_json::from_str(&out).expect("json");
    let leak = &ingested["leaks"][0];
    let matched: Vec<&str> = leak["matched"]
        .as_array()
        .expect("matched")
        .iter()
        .filter_map(|it| it["credential_external_id"].as_str())
        .collect();
    assert_eq!(matched, [leaked_id.as_str()], "{leak:#}");
    assert_eq!(leak["matched"][0]["by"]["type"], "lookup", "{leak:#}");
    assert_eq!(leak["distrusted"], json!([signer]), "{leak:#}");

    // OpenBao: the secret-id is destroyed and the tokens its logins minted are revoked; the
    // other role's secret-id and token are untouched.
    assert!(!secret_id_exists(&peer, &world, "ci", &world.leaked.0).await);
    for token in &world.minted {
        assert!(
            !token_exists(&peer, &world, token).await,
            "token {token} was not revoked"
        );
    }
    assert!(secret_id_exists(&peer, &world, "other", &world.other_secret_id).await);
    assert!(token_exists(&peer, &world, &world.other_token).await);
    assert!(token_exists(&peer, &world, &world.token.0).await);

    // The signer it could sign with is distrusted, as a leak.
    let (out, _) = run(dir.path(), &["trust", "show", &signer, "--format", "json"]);
    let view: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(view["trusted"], false, "{view:#}");
    assert_eq!(view["distrust_periods"][0]["reason"], "leaked", "{view:#}");

    // A leaked token alone: revoked (matched by asking OpenBao).
    common::write(&dir.path().join("token.json"), &gitleaks(&world.token.1, 9));
    let (out, err) = run(
        dir.path(),
        &["leak", "ingest", "token.json", "--output", "json"],
    );
    shown.push_str(&out);
    shown.push_str(&err);
    let ingested: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(
        ingested["leaks"][0]["matched"][0]["credential_external_id"],
        format!("{p}token/{}", world.token.0),
        "{ingested:#}"
    );
    assert!(!token_exists(&peer, &world, &world.token.0).await);
    assert!(token_exists(&peer, &world, &world.other_token).await);

    // No token or secret-id anywhere keywarden writes.
    let database = common::database_text(dir.path());
    for secret in &world.secrets {
        assert!(
            !shown.contains(secret.as_str()),
            "a secret in the output or log"
        );
        assert!(
            !database.contains(secret.as_str()),
            "a secret in the database"
        );
    }
}

#[tokio::test]
async fn a_token_deleted_by_hand_is_revoked_after_a_dry_run_that_says_so() {
    let Some(peer) = vault::peer() else { return };
    let ns = peer.fresh_namespace().await;
    // keywarden's own token is the namespace's (valid there only), as on HCP Vault.
    peer.ok(
        Some(&ns),
        Method::PUT,
        "sys/policies/acl/keywarden",
        Some(
            json!({"policy": r#"path "*" { capabilities = ["read", "list", "update", "sudo"] }"#}),
        ),
    )
    .await;
    let own = peer
        .ok(
            Some(&ns),
            Method::POST,
            "auth/token/create-orphan",
            Some(json!({"policies": ["keywarden"], "ttl": "1h"})),
        )
        .await["auth"]["client_token"]
        .as_str()
        .expect("token")
        .to_owned();
    let mut accessors = Vec::new();
    for _ in 0..2 {
        let made = peer
            .ok(
                Some(&ns),
                Method::POST,
                "auth/token/create",
                Some(json!({"policies": ["default"], "ttl": "1h"})),
            )
            .await;
        accessors.push(
            made["auth"]["accessor"]
                .as_str()
                .expect("accessor")
                .to_owned(),
        );
    }
    let world = World {
        ns: format!("{ns}/"),
        leaked: (String::new(), String::new()),
        minted: Vec::new(),
        other_secret_id: String::new(),
        other_token: String::new(),
        token: (String::new(), String::new()),
        secrets: Vec::new(),
    };
    let dir = tempfile::tempdir().expect("dir");
    common::write(
        &dir.path().join("keywarden.yaml"),
        &format!(
            "store:\n  path: ledger.db\nsources:\n  vault:\n    type: vault\n    address: {}\n    token_file: token\n    namespaces: [\"{}\"]\n",
            peer.addr, world.ns
        ),
    );
    common::write(&dir.path().join("token"), &format!("{own}\n"));
    run(dir.path(), &["scan"]);
    let id = format!("{}token/{}", world.ns, accessors[0]);
    let (plan, _) = run(dir.path(), &["delete", &id]);
    assert!(plan.contains(&format!("revoke {id} for good")), "{plan}");
    assert!(
        token_exists(&peer, &world, &accessors[0]).await,
        "a dry run"
    );
    let (out, _) = run(
        dir.path(),
        &["delete", &id, "--enforce", "--format", "json"],
    );
    let records: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(records[0]["kind"], "revoke", "{records:#}");
    assert_eq!(records[0]["status"], "done", "{records:#}");
    assert!(!token_exists(&peer, &world, &accessors[0]).await, "revoked");
    assert!(
        token_exists(&peer, &world, &accessors[1]).await,
        "left alone"
    );
}

#[tokio::test]
async fn an_enforcing_revoke_policy_revokes_the_token_it_matches_and_no_other() {
    let Some(peer) = vault::peer() else { return };
    let ns = peer.fresh_namespace().await;
    let n = Some(ns.as_str());
    let mut accessors = Vec::new();
    for name in ["stale-ci", "keep"] {
        let made = peer
            .ok(
                n,
                Method::POST,
                "auth/token/create",
                Some(json!({"policies": ["default"], "display_name": name, "ttl": "1h"})),
            )
            .await;
        accessors.push(
            made["auth"]["accessor"]
                .as_str()
                .expect("accessor")
                .to_owned(),
        );
    }
    let world = World {
        ns: format!("{ns}/"),
        leaked: (String::new(), String::new()),
        minted: Vec::new(),
        other_secret_id: String::new(),
        other_token: String::new(),
        token: (String::new(), String::new()),
        secrets: Vec::new(),
    };
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
    let dir = tempfile::tempdir().expect("dir");
    common::write(
        &dir.path().join("stale.yaml"),
        "policies:\n  - id: stale-vault-token\n    severity: high\n    mode: enforce\n    \
         select:\n      kinds: [token]\n      names: [\"token-stale-*\"]\n    when:\n      \
         age_over: 1s\n    actions: [revoke]\n",
    );
    common::write(
        &dir.path().join("keywarden.yaml"),
        &format!(
            "store:\n  path: ledger.db\npolicies:\n  - stale.yaml\nsources:\n  vault:\n    type: vault\n    address: {}\n    token_file: {}\n    namespaces: [\"{}\"]\n",
            peer.addr,
            peer.token_file.display(),
            world.ns
        ),
    );
    let (out, _) = run(dir.path(), &["scan", "--format", "json"]);
    let report: Value = serde_json::from_str(&out).expect("json");
    let decisions: Vec<(String, String)> = report["planned_actions"]
        .as_array()
        .expect("planned actions")
        .iter()
        .map(|it| {
            (
                it["credential"].as_str().unwrap_or_default().to_owned(),
                it["decision"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        decisions,
        [(
            format!("{}token/{}", world.ns, accessors[0]),
            "started".to_owned()
        )],
        "{:#}",
        report["planned_actions"]
    );
    assert!(!token_exists(&peer, &world, &accessors[0]).await, "revoked");
    assert!(
        token_exists(&peer, &world, &accessors[1]).await,
        "left alone"
    );
}
