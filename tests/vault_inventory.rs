//! The `vault` connector against a real OpenBao dev server (scripts/start-openbao): a seeded
//! pair of namespaces inventoried exactly, owners included; an `hmac` key and paths the token may
//! not read do not stop the scan, and what the ledger knew behind them is kept.

mod common;
mod vault;

use std::collections::{BTreeMap, BTreeSet};

use keywarden_connector::{
    Connector, ConnectorError, Credential, CredentialKind, CredentialStatus, Identity,
    IdentityKind, Inventory, Known, LastUse, ScanContext,
};
use reqwest::Method;
use serde_json::{Value, json};

use crate::vault::Peer;

/// What the test made in one namespace, to compare the inventory with.
struct Seeded {
    namespace: String,
    identities: BTreeSet<(IdentityKind, String)>,
    credentials: BTreeSet<(CredentialKind, String)>,
    /// The PEM public key of each version of `release`, as OpenBao shows it.
    release_pems: BTreeMap<u64, String>,
    limited_secret_id: String,
    renewed_token: String,
    /// The secret-ids and the token the test made: never to be seen in keywarden's output.
    secrets: Vec<String>,
}

async fn seed(peer: &Peer) -> Seeded {
    let ns = peer.fresh_namespace().await;
    let n = Some(ns.as_str());
    let p = format!("{ns}/");
    let mut identities = BTreeSet::new();
    let mut credentials = BTreeSet::new();

    peer.enable(&ns, "auth", "approle", "approle", None).await;
    peer.enable(&ns, "mounts", "kv", "kv", Some(json!({"version": "2"})))
        .await;
    peer.enable(&ns, "mounts", "kv1", "kv", Some(json!({"version": "1"})))
        .await;
    peer.enable(&ns, "mounts", "transit", "transit", None).await;
    identities.insert((IdentityKind::VaultMount, format!("{p}kv/")));
    identities.insert((IdentityKind::VaultMount, format!("{p}kv1/")));

    // An entity keywarden should name as an owner.
    let entity = peer
        .ok(
            n,
            Method::POST,
            "identity/entity",
            Some(json!({"name": "release-bot", "metadata": {"owner": "release-team"}})),
        )
        .await;
    let entity_id = entity["data"]["id"].as_str().expect("entity id").to_owned();
    identities.insert((IdentityKind::VaultEntity, format!("entity:{entity_id}")));

    // AppRole: a role, two secret-ids (one limited to 5 uses, then used to log in).
    peer.ok(
        n,
        Method::POST,
        "auth/approle/role/ci",
        Some(json!({"token_policies": ["default"]})),
    )
    .await;
    identities.insert((
        IdentityKind::ApproleRole,
        format!("{p}auth/approle/role/ci"),
    ));
    // A role with no secret-id: Vault answers its LIST with 404, which is an empty list.
    peer.ok(
        n,
        Method::POST,
        "auth/approle/role/idle",
        Some(json!({"token_policies": ["default"]})),
    )
    .await;
    identities.insert((
        IdentityKind::ApproleRole,
        format!("{p}auth/approle/role/idle"),
    ));
    let mut secret_ids = Vec::new();
    for body in [
        json!({"metadata": "{\"owner\":\"release-team\",\"purpose\":\"signing\"}"}),
        json!({"num_uses": 5}),
    ] {
        let made = peer
            .ok(
                n,
                Method::POST,
                "auth/approle/role/ci/secret-id",
                Some(body),
            )
            .await;
        let accessor = made["data"]["secret_id_accessor"]
            .as_str()
            .expect("accessor")
            .to_owned();
        credentials.insert((
            CredentialKind::SecretId,
            format!("{p}auth/approle/role/ci/secret-id/{accessor}"),
        ));
        secret_ids.push((
            accessor,
            made["data"]["secret_id"].as_str().expect("id").to_owned(),
        ));
    }
    let role_id = peer
        .ok(n, Method::GET, "auth/approle/role/ci/role-id", None)
        .await["data"]["role_id"]
        .as_str()
        .expect("role id")
        .to_owned();
    let login = peer
        .ok(
            n,
            Method::POST,
            "auth/approle/login",
            Some(json!({"role_id": role_id, "secret_id": secret_ids[1].1})),
        )
        .await;
    let login_accessor = login["auth"]["accessor"]
        .as_str()
        .expect("accessor")
        .to_owned();
    let login_entity = login["auth"]["entity_id"]
        .as_str()
        .expect("entity")
        .to_owned();
    credentials.insert((CredentialKind::Token, format!("{p}token/{login_accessor}")));
    identities.insert((IdentityKind::VaultEntity, format!("entity:{login_entity}")));

    // A token made directly (no entity: held by the auth path that minted it), then renewed.
    let token = peer
        .ok(n, Method::POST, "auth/token/create", Some(json!({"policies": ["default"], "ttl": "2h", "meta": {"owner": "ops"}, "display_name": "ci-deployer"})))
        .await;
    let token_accessor = token["auth"]["accessor"]
        .as_str()
        .expect("accessor")
        .to_owned();
    let made_token = token["auth"]["client_token"]
        .as_str()
        .expect("token")
        .to_owned();
    peer.ok(
        n,
        Method::POST,
        "auth/token/renew-accessor",
        Some(json!({"accessor": token_accessor, "increment": "3h"})),
    )
    .await;
    credentials.insert((CredentialKind::Token, format!("{p}token/{token_accessor}")));
    identities.insert((IdentityKind::VaultMount, format!("{p}auth/token/create")));

    // KV v2, nested, with owners in custom_metadata; KV v1.
    for (path, owner) in [
        ("ci/npm", Some("release-team")),
        ("top", None),
        ("a/b/c", None),
        ("private/x", None),
    ] {
        peer.ok(
            n,
            Method::POST,
            &format!("kv/data/{path}"),
            Some(json!({"data": {"value": "kv-secret-value-do-not-log"}})),
        )
        .await;
        if let Some(owner) = owner {
            peer.ok(
                n,
                Method::POST,
                &format!("kv/metadata/{path}"),
                Some(json!({"custom_metadata": {"owner": owner, "purpose": "publishing"}})),
            )
            .await;
        }
        credentials.insert((CredentialKind::KvSecret, format!("{p}kv/{path}")));
    }
    peer.ok(
        n,
        Method::POST,
        "kv1/legacy",
        Some(json!({"value": "kv1-secret-value"})),
    )
    .await;
    credentials.insert((CredentialKind::KvSecret, format!("{p}kv1/legacy")));

    // Transit: a signing key rotated once, an Ed25519 key, an HMAC key, one the scan token may
    // not read.
    for (name, kind) in [
        ("release", "ecdsa-p256"),
        ("ed", "ed25519"),
        ("mac", "hmac"),
        ("locked", "ecdsa-p256"),
    ] {
        let mut body = json!({"type": kind});
        if kind == "hmac" {
            body["key_size"] = json!(32);
        }
        peer.ok(n, Method::POST, &format!("transit/keys/{name}"), Some(body))
            .await;
        identities.insert((IdentityKind::TransitKey, format!("{p}transit/keys/{name}")));
    }
    peer.ok(n, Method::POST, "transit/keys/release/rotate", None)
        .await;
    for version in ["release/v1", "release/v2", "ed/v1", "locked/v1"] {
        credentials.insert((
            CredentialKind::TransitKeyVersion,
            format!("{p}transit/keys/{version}"),
        ));
    }
    let release = peer.ok(n, Method::GET, "transit/keys/release", None).await;
    let release_pems = release["data"]["keys"]
        .as_object()
        .expect("keys")
        .iter()
        .map(|(version, key)| {
            (
                version.parse().expect("version"),
                key["public_key"].as_str().expect("pem").to_owned(),
            )
        })
        .collect();
    Seeded {
        namespace: p,
        identities,
        credentials,
        release_pems,
        limited_secret_id: secret_ids[1].0.clone(),
        renewed_token: token_accessor,
        secrets: vec![
            secret_ids[0].1.clone(),
            secret_ids[1].1.clone(),
            made_token,
            login["auth"]["client_token"]
                .as_str()
                .expect("token")
                .to_owned(),
        ],
    }
}

fn connector(peer: &Peer, token_file: &std::path::Path, namespaces: &[&str]) -> Box<dyn Connector> {
    let config: keywarden_vault::VaultConfig = serde_json::from_value(json!({
        "address": peer.addr,
        "token_file": token_file,
        "namespaces": namespaces,
        "concurrency": 4,
    }))
    .expect("config");
    config.validate().expect("valid");
    Box::new(
        config
            .build("vault", std::path::Path::new("/"))
            .expect("build"),
    )
}

type Ids = (
    BTreeSet<(IdentityKind, String)>,
    BTreeSet<(CredentialKind, String)>,
);

fn ids_of(inventory: &Inventory) -> Ids {
    (
        inventory
            .identities
            .iter()
            .map(|it| (it.kind, it.external_id.clone()))
            .collect(),
        inventory
            .credentials
            .iter()
            .map(|it| (it.kind, it.external_id.clone()))
            .collect(),
    )
}

fn credential<'a>(inventory: &'a Inventory, id: &str) -> &'a Credential {
    inventory
        .credentials
        .iter()
        .find(|it| it.external_id == id)
        .unwrap_or_else(|| panic!("no {id}"))
}

fn identity<'a>(inventory: &'a Inventory, id: &str) -> &'a Identity {
    inventory
        .identities
        .iter()
        .find(|it| it.external_id == id)
        .unwrap_or_else(|| panic!("no {id}"))
}

/// The key id of a PEM public key, by openssl: SHA-256 of its DER SubjectPublicKeyInfo.
fn openssl_key_id(pem: &str) -> String {
    use std::io::Write as _;
    let mut child = std::process::Command::new("openssl")
        .args(["pkey", "-pubin", "-outform", "DER"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("openssl");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(pem.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("openssl");
    assert!(out.status.success());
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(&out.stdout))
}

#[tokio::test]
async fn inventory_of_two_seeded_namespaces_is_exact_with_owners() {
    let Some(peer) = vault::peer() else { return };
    let a = seed(&peer).await;
    let b = seed(&peer).await;
    let scan = connector(&peer, &peer.token_file, &[&a.namespace, &b.namespace]);
    let inventory =
        keywarden_connector::collect(scan.as_ref(), &ScanContext::new(chrono::Utc::now()))
            .await
            .expect("inventory");
    assert!(inventory.errors.is_empty(), "{:#?}", inventory.errors);
    let (identities, credentials) = ids_of(&inventory);
    let expected_identities: BTreeSet<_> = a.identities.union(&b.identities).cloned().collect();
    let expected_credentials: BTreeSet<_> = a.credentials.union(&b.credentials).cloned().collect();
    assert_eq!(identities, expected_identities);
    assert_eq!(credentials, expected_credentials);

    let p = &a.namespace;
    // Owners: custom_metadata, secret-id metadata, entity metadata, token meta.
    assert_eq!(
        credential(&inventory, &format!("{p}kv/ci/npm"))
            .owner
            .as_deref(),
        Some("release-team")
    );
    assert_eq!(
        credential(&inventory, &format!("{p}kv/ci/npm"))
            .purpose
            .as_deref(),
        Some("publishing")
    );
    let owned: Vec<&Identity> = inventory
        .identities
        .iter()
        .filter(|it| {
            it.kind == IdentityKind::VaultEntity && it.owner.as_deref() == Some("release-team")
        })
        .collect();
    assert_eq!(owned.len(), 2, "one created entity per namespace");
    let signing_secret_ids: Vec<&Credential> = inventory
        .credentials
        .iter()
        .filter(|it| {
            it.kind == CredentialKind::SecretId && it.purpose.as_deref() == Some("signing")
        })
        .collect();
    assert_eq!(signing_secret_ids.len(), 2);
    assert!(
        signing_secret_ids
            .iter()
            .all(|it| it.owner.as_deref() == Some("release-team"))
    );
    let token = credential(&inventory, &format!("{p}token/{}", a.renewed_token));
    assert_eq!(token.owner.as_deref(), Some("ops"));
    assert_eq!(token.identity_id, format!("{p}auth/token/create"));
    assert_eq!(token.attributes["display_name"], "token-ci-deployer");
    assert!(token.expires_at.is_some());
    // Last use where Vault shows one: a renewed token, a limited-use secret-id logged in with.
    assert!(
        matches!(&token.last_used, LastUse::At { source, .. } if source == keywarden_vault::LAST_RENEWAL),
        "{:?}",
        token.last_used
    );
    let limited = credential(
        &inventory,
        &format!("{p}auth/approle/role/ci/secret-id/{}", a.limited_secret_id),
    );
    assert!(
        matches!(&limited.last_used, LastUse::At { source, .. } if source == keywarden_vault::LAST_LOGIN),
        "{:?}",
        limited.last_used
    );
    assert_eq!(limited.attributes["secret_id_num_uses"], "4");

    // Transit: each version a signer with the key id openssl computes from OpenBao's PEM.
    for (version, pem) in &a.release_pems {
        let found = credential(&inventory, &format!("{p}transit/keys/release/v{version}"));
        assert_eq!(found.status, CredentialStatus::Active);
        assert!(found.created_at.is_some());
        assert_eq!(found.fingerprints[0].algorithm, "sha256_spki");
        assert_eq!(found.fingerprints[0].value, openssl_key_id(pem));
        assert_eq!(found.algorithm.as_deref(), Some("ecdsa-p256"));
    }
    let ed = credential(&inventory, &format!("{p}transit/keys/ed/v1"));
    assert_eq!(ed.fingerprints.len(), 1);
    assert_eq!(
        identity(&inventory, &format!("{p}transit/keys/mac")).tags["type"],
        "hmac"
    );
    assert_eq!(
        identity(&inventory, &format!("{p}transit/keys/release")).tags["latest_version"],
        "2"
    );
    assert_eq!(
        credential(&inventory, &format!("{p}kv1/legacy")).created_at,
        None
    );
    assert!(
        credential(&inventory, &format!("{p}kv/top"))
            .created_at
            .is_some()
    );

    // Nothing secret is in the inventory.
    let text = format!("{inventory:?}");
    for secret in [
        "kv-secret-value-do-not-log",
        "kv1-secret-value",
        peer.root_token(),
    ] {
        assert!(!text.contains(secret), "a secret value in the inventory");
    }
}

/// The ledger's view, as the scan hands it to the connector.
#[derive(Debug)]
struct Ledger(Vec<Credential>);

#[async_trait::async_trait]
impl Known for Ledger {
    async fn credentials_of(&self, identity_id: &str) -> Result<Vec<Credential>, ConnectorError> {
        Ok(self
            .0
            .iter()
            .filter(|it| it.identity_id == identity_id)
            .cloned()
            .collect())
    }

    async fn state(&self) -> Result<Option<Value>, ConnectorError> {
        Ok(None)
    }
}

#[tokio::test]
async fn an_hmac_key_and_paths_the_token_may_not_read_do_not_stop_the_scan() {
    let Some(peer) = vault::peer() else { return };
    let seeded = seed(&peer).await;
    let p = &seeded.namespace;
    let ns = Some(p.trim_end_matches('/'));
    // A scan token of the namespace that may read everything but one key and one folder.
    let policy = r#"
path "*" { capabilities = ["create", "read", "update", "delete", "list", "sudo"] }
path "transit/keys/locked" { capabilities = ["deny"] }
path "kv/metadata/private/*" { capabilities = ["deny"] }
path "kv/metadata/private" { capabilities = ["deny"] }
"#;
    peer.ok(
        ns,
        Method::PUT,
        "sys/policies/acl/scan",
        Some(json!({"policy": policy})),
    )
    .await;
    let token = peer
        .ok(
            ns,
            Method::POST,
            "auth/token/create",
            Some(json!({"policies": ["scan"], "no_default_policy": true})),
        )
        .await;
    let scan_accessor = token["auth"]["accessor"]
        .as_str()
        .expect("accessor")
        .to_owned();
    let dir = tempfile::tempdir().expect("dir");
    let token_file = dir.path().join("token");
    std::fs::write(
        &token_file,
        token["auth"]["client_token"].as_str().expect("token"),
    )
    .expect("write");

    // What the ledger knew from an earlier scan of the two unreadable paths.
    let locked = format!("{p}transit/keys/locked");
    let known_version = Credential {
        external_id: format!("{locked}/v1"),
        identity_id: locked.clone(),
        kind: CredentialKind::TransitKeyVersion,
        name: "locked v1".to_owned(),
        status: CredentialStatus::Active,
        created_at: None,
        not_before: None,
        expires_at: None,
        last_used: LastUse::Unknown,
        algorithm: None,
        key_bits: None,
        fingerprints: Vec::new(),
        public_key: None,
        owner: None,
        purpose: None,
        tags: BTreeMap::new(),
        attributes: BTreeMap::new(),
        signs_with: Vec::new(),
    };
    let known_secret = Credential {
        external_id: format!("{p}kv/private/x"),
        identity_id: format!("{p}kv/"),
        kind: CredentialKind::KvSecret,
        name: "kv/private/x".to_owned(),
        ..known_version.clone()
    };
    let mut cx = ScanContext::new(chrono::Utc::now());
    cx.known = std::sync::Arc::new(Ledger(vec![known_version.clone(), known_secret.clone()]));

    let scan = connector(&peer, &token_file, &[p]);
    let inventory = keywarden_connector::collect(scan.as_ref(), &cx)
        .await
        .expect("the scan goes on");
    let subjects: BTreeSet<(String, Option<String>)> = inventory
        .errors
        .iter()
        .map(|it| (it.subject.clone(), it.identity.clone()))
        .collect();
    assert_eq!(
        subjects,
        BTreeSet::from([
            (format!("{p}transit/keys/locked"), Some(locked.clone())),
            (format!("{p}kv/metadata/private/"), Some(format!("{p}kv/"))),
        ]),
        "{:#?}",
        inventory.errors
    );
    assert!(
        inventory
            .errors
            .iter()
            .all(|it| it.message.contains("permission denied"))
    );
    let (_, credentials) = ids_of(&inventory);
    let mut expected = seeded.credentials.clone();
    expected.insert((CredentialKind::Token, format!("{p}token/{scan_accessor}")));
    assert_eq!(
        credentials, expected,
        "the rest is read, and the unreadable paths' credentials kept"
    );
    assert_eq!(
        credential(&inventory, &known_version.external_id),
        &known_version
    );
    assert_eq!(
        credential(&inventory, &known_secret.external_id),
        &known_secret
    );
    assert!(
        identity(&inventory, &format!("{p}transit/keys/mac"))
            .tags
            .contains_key("type")
    );
}

#[tokio::test]
async fn a_token_that_cannot_read_the_namespace_fails_the_scan_and_names_it() {
    let Some(peer) = vault::peer() else { return };
    let dir = tempfile::tempdir().expect("dir");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "s.not-a-real-token-value\n").expect("write");
    let ns = peer.fresh_namespace().await;
    let scan = connector(&peer, &token_file, &[&format!("{ns}/")]);
    let err = keywarden_connector::collect(scan.as_ref(), &ScanContext::new(chrono::Utc::now()))
        .await
        .expect_err("refused");
    let text = err.to_string();
    assert!(matches!(err, ConnectorError::Unauthorized(_)), "{text}");
    assert!(
        text.contains(&format!("namespace `{ns}/`")) && text.contains("sys/mounts"),
        "{text}"
    );
    assert!(!text.contains("not-a-real-token-value"), "{text}");
}

#[tokio::test]
async fn a_scan_records_the_vault_source_and_its_signers_and_no_secret_anywhere() {
    let Some(peer) = vault::peer() else { return };
    let seeded = seed(&peer).await;
    let dir = tempfile::tempdir().expect("dir");
    let config = format!(
        "store:\n  path: ledger.db\npolicies:\n  - {}\nsources:\n  vault:\n    type: vault\n    address: {}\n    token_file: {}\n    namespaces: [\"{}\"]\n    audit_log:\n      path: {}\n",
        common::repo().join("policies").display(),
        peer.addr,
        peer.token_file.display(),
        seeded.namespace,
        peer.audit_log.display()
    );
    common::write(&dir.path().join("keywarden.yaml"), &config);
    let output = common::keywarden_with_env(
        dir.path(),
        &["scan", "--format", "json"],
        &[("KEYWARDEN_LOG", "trace")],
    );
    let (out, err) = (common::stdout(&output), common::stderr(&output));
    assert!(output.status.success(), "{out}\n{err}");
    let report: Value = serde_json::from_str(&out).expect("json");
    let recorded: BTreeSet<(String, String)> = report["credentials"]
        .as_array()
        .expect("credentials")
        .iter()
        .filter(|it| it["source"] == "vault")
        .map(|it| {
            (
                it["kind"].as_str().expect("kind").to_owned(),
                it["external_id"].as_str().expect("id").to_owned(),
            )
        })
        .collect();
    let expected: BTreeSet<(String, String)> = seeded
        .credentials
        .iter()
        .map(|(kind, id)| (kind.as_str().to_owned(), id.clone()))
        .collect();
    assert_eq!(recorded, expected);
    // Each version of the Transit signing key is a signer, by the key id openssl computes.
    let signers: BTreeSet<&str> = report["signers"]
        .as_array()
        .expect("signers")
        .iter()
        .filter_map(|it| it["key_id"].as_str())
        .collect();
    for pem in seeded.release_pems.values() {
        assert!(
            signers.contains(openssl_key_id(pem).as_str()),
            "{signers:?}"
        );
    }
    // No token, secret-id or KV value in the output, the trace-level log or the database.
    let mut database = Vec::new();
    for entry in std::fs::read_dir(dir.path()).expect("dir") {
        let path = entry.expect("entry").path();
        if path.to_string_lossy().contains("ledger.db") {
            database.extend(std::fs::read(&path).expect("db"));
        }
    }
    let database = String::from_utf8_lossy(&database);
    assert!(
        err.contains("TRACE") || err.contains("trace"),
        "the log ran at trace level"
    );
    let mut secrets = seeded.secrets.clone();
    secrets.extend([
        peer.root_token().to_owned(),
        "kv-secret-value-do-not-log".to_owned(),
        "kv1-secret-value".to_owned(),
    ]);
    for secret in &secrets {
        assert!(!out.contains(secret.as_str()), "a secret in the report");
        assert!(!err.contains(secret.as_str()), "a secret in the log");
        assert!(
            !database.contains(secret.as_str()),
            "a secret in the database"
        );
    }
}
