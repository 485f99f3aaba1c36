//! Last use from Vault's audit log against a real OpenBao dev server with its file audit device:
//! the times keywarden records for a token used, a secret-id logged in with and a Transit key
//! signed with are the times OpenBao logged those calls; a login that more than one secret-id
//! could have made is not attributed; the log is read incrementally (what the last scan read is
//! remembered, not read again) and across a rotation of the log file; nothing secret reaches the
//! connector's state, output or errors.

mod common;
mod vault;

use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use keywarden_connector::{
    Connector, ConnectorError, Credential, Inventory, InventorySink, Known, LastUse, ScanContext,
};
use reqwest::Method;
use serde_json::{Value, json};

use crate::vault::Peer;

/// What the test made and did in its namespace.
struct World {
    ns: String,
    /// The token that signs.
    used: Made,
    /// A token that is never used.
    idle: Made,
    /// The one secret-id of role `ci`.
    secret_id: Made,
    /// The two secret-ids of role `many` (the first logs in).
    many: [Made; 2],
    role_ids: [String; 2],
}

/// A token or secret-id: its accessor and the secret (never to be seen in keywarden's output).
struct Made {
    accessor: String,
    secret: String,
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
        "sys/policies/acl/signer",
        Some(json!({"policy": r#"path "transit/sign/release" { capabilities = ["update"] }"#})),
    )
    .await;
    let mut tokens = Vec::new();
    for name in ["used", "idle"] {
        let made = peer
            .ok(
                n,
                Method::POST,
                "auth/token/create",
                Some(json!({"policies": ["signer"], "display_name": name, "ttl": "1h"})),
            )
            .await;
        tokens.push(Made {
            accessor: made["auth"]["accessor"]
                .as_str()
                .expect("accessor")
                .to_owned(),
            secret: made["auth"]["client_token"]
                .as_str()
                .expect("token")
                .to_owned(),
        });
    }
    let mut secret_ids = Vec::new();
    let mut role_ids = Vec::new();
    for (role, count) in [("ci", 1), ("many", 2)] {
        peer.ok(
            n,
            Method::POST,
            &format!("auth/approle/role/{role}"),
            Some(json!({"token_policies": ["signer"]})),
        )
        .await;
        role_ids.push(
            peer.ok(
                n,
                Method::GET,
                &format!("auth/approle/role/{role}/role-id"),
                None,
            )
            .await["data"]["role_id"]
                .as_str()
                .expect("role id")
                .to_owned(),
        );
        for _ in 0..count {
            let made = peer
                .ok(
                    n,
                    Method::POST,
                    &format!("auth/approle/role/{role}/secret-id"),
                    None,
                )
                .await;
            secret_ids.push(Made {
                accessor: made["data"]["secret_id_accessor"]
                    .as_str()
                    .expect("accessor")
                    .to_owned(),
                secret: made["data"]["secret_id"].as_str().expect("id").to_owned(),
            });
        }
    }
    let mut secret_ids = secret_ids.into_iter();
    let mut tokens = tokens.into_iter();
    let mut role_ids = role_ids.into_iter();
    World {
        ns: format!("{ns}/"),
        used: tokens.next().expect("used"),
        idle: tokens.next().expect("idle"),
        secret_id: secret_ids.next().expect("ci"),
        many: [
            secret_ids.next().expect("many 1"),
            secret_ids.next().expect("many 2"),
        ],
        role_ids: [role_ids.next().expect("ci"), role_ids.next().expect("many")],
    }
}

/// Signs with `release` as the `used` token.
async fn sign(peer: &Peer, world: &World) {
    let url = format!("{}/v1/transit/sign/release", peer.addr);
    let response = peer
        .http
        .post(&url)
        .header("X-Vault-Token", &world.used.secret)
        .header("X-Vault-Namespace", world.ns.trim_end_matches('/'))
        .json(&json!({"input": "aGVsbG8="}))
        .send()
        .await
        .expect("sign");
    assert!(response.status().is_success(), "{}", response.status());
}

async fn login(peer: &Peer, world: &World, role_id: &str, secret_id: &str) {
    peer.ok(
        Some(world.ns.trim_end_matches('/')),
        Method::POST,
        "auth/approle/login",
        Some(json!({"role_id": role_id, "secret_id": secret_id})),
    )
    .await;
}

/// The time of the latest audit entry of `kind` (`request`/`response`) in the namespace that
/// `matches`, waiting for it to be written.
async fn logged_at(
    peer: &Peer,
    world: &World,
    path: &str,
    kind: &str,
    matches: impl Fn(&Value) -> bool,
) -> DateTime<Utc> {
    peer.audit_entries(Some(&world.ns), path)
        .await
        .iter()
        .filter(|it| it["type"] == kind && matches(it))
        .filter_map(|it| it["time"].as_str())
        .map(|it| it.parse::<DateTime<Utc>>().expect("time"))
        .max()
        .unwrap_or_else(|| panic!("no {kind} of {path} in the audit log"))
}

/// Everything the connector handed over, and the state it saved.
#[derive(Default)]
struct Capture {
    inventory: Inventory,
    state: Option<Value>,
}

#[async_trait]
impl InventorySink for Capture {
    async fn batch(&mut self, batch: Inventory) -> Result<(), ConnectorError> {
        self.inventory.identities.extend(batch.identities);
        self.inventory.credentials.extend(batch.credentials);
        self.inventory.errors.extend(batch.errors);
        Ok(())
    }

    async fn save_state(&mut self, state: Value) -> Result<(), ConnectorError> {
        self.state = Some(state);
        Ok(())
    }
}

/// The ledger of the previous scan: its credentials and the state it saved.
#[derive(Debug, Default)]
struct Previous {
    credentials: Vec<Credential>,
    state: Option<Value>,
    /// How often the identities' credentials were asked for.
    asked: Arc<Mutex<u32>>,
}

#[async_trait]
impl Known for Previous {
    async fn credentials_of(&self, identity_id: &str) -> Result<Vec<Credential>, ConnectorError> {
        *self.asked.lock().expect("lock") += 1;
        Ok(self
            .credentials
            .iter()
            .filter(|it| it.identity_id == identity_id)
            .cloned()
            .collect())
    }

    async fn state(&self) -> Result<Option<Value>, ConnectorError> {
        Ok(self.state.clone())
    }
}

async fn scan(peer: &Peer, world: &World, log: &Path, previous: Previous) -> Capture {
    let config: keywarden_vault::VaultConfig = serde_json::from_value(json!({
        "address": peer.addr,
        "token_file": peer.token_file,
        "namespaces": [world.ns],
        "audit_log": {"path": log, "device": "file"},
    }))
    .expect("config");
    config.validate().expect("valid");
    let connector = config.build("vault", Path::new("/")).expect("build");
    let mut cx = ScanContext::new(Utc::now());
    cx.known = Arc::new(previous);
    let mut capture = Capture::default();
    connector
        .inventory(&cx, &mut capture)
        .await
        .expect("the scan");
    capture
}

fn last_used<'a>(capture: &'a Capture, external_id: &str) -> &'a LastUse {
    &capture
        .inventory
        .credentials
        .iter()
        .find(|it| it.external_id == external_id)
        .unwrap_or_else(|| panic!("no {external_id}"))
        .last_used
}

fn from_log(at: DateTime<Utc>) -> LastUse {
    LastUse::At {
        at,
        source: "vault_audit_log".to_owned(),
    }
}

fn no_secret_of(world: &World, capture: &Capture, peer: &Peer) {
    let shown = format!(
        "{:?}\n{}",
        capture.inventory,
        capture.state.clone().unwrap_or_default()
    );
    for secret in [
        &world.used.secret,
        &world.idle.secret,
        &world.secret_id.secret,
        &world.many[0].secret,
        &world.many[1].secret,
    ] {
        assert!(
            !shown.contains(secret.as_str()),
            "a secret in the output or state"
        );
    }
    assert!(
        !shown.contains(peer.root_token()),
        "the root token in the output"
    );
}

#[tokio::test]
async fn last_use_is_when_openbao_logged_the_token_the_login_and_the_signature() {
    let Some(peer) = vault::peer() else { return };
    let world = world(&peer).await;
    let p = world.ns.clone();
    sign(&peer, &world).await;
    login(&peer, &world, &world.role_ids[0], &world.secret_id.secret).await;
    login(&peer, &world, &world.role_ids[1], &world.many[0].secret).await;

    let used_hmac = peer.audit_hash(&world.used.accessor).await;
    let signed = logged_at(&peer, &world, "transit/sign/release", "response", |_| true).await;
    let used = logged_at(&peer, &world, "transit/sign/release", "request", |it| {
        it["auth"]["accessor"] == used_hmac.as_str()
    })
    .await;
    let secret_hmac = peer.audit_hash(&world.secret_id.secret).await;
    let logged_in = logged_at(&peer, &world, "auth/approle/login", "response", |it| {
        it["request"]["data"]["secret_id"] == secret_hmac.as_str()
    })
    .await;

    let first = scan(&peer, &world, &peer.audit_log, Previous::default()).await;
    assert!(
        first.inventory.errors.is_empty(),
        "{:#?}",
        first.inventory.errors
    );
    let token = |made: &Made| format!("{p}token/{}", made.accessor);
    let secret_id = |role: &str, made: &Made| {
        format!("{p}auth/approle/role/{role}/secret-id/{}", made.accessor)
    };
    assert_eq!(last_used(&first, &token(&world.used)), &from_log(used));
    assert_eq!(last_used(&first, &token(&world.idle)), &LastUse::Unknown);
    assert_eq!(
        last_used(&first, &secret_id("ci", &world.secret_id)),
        &from_log(logged_in)
    );
    // Either of `many`'s secret-ids could have logged in: neither is said to have.
    for made in &world.many {
        assert_eq!(
            last_used(&first, &secret_id("many", made)),
            &LastUse::Unknown
        );
    }
    assert_eq!(
        last_used(&first, &format!("{p}transit/keys/release/v1")),
        &from_log(signed)
    );
    no_secret_of(&world, &first, &peer);

    // The next scan reads only what was written since, and remembers the rest.
    let offset = |capture: &Capture| {
        capture.state.as_ref().expect("state")["audit"]["position"]["offset"]
            .as_u64()
            .expect("offset")
    };
    sign(&peer, &world).await;
    let used_again = logged_at(&peer, &world, "transit/sign/release", "request", |it| {
        it["auth"]["accessor"] == used_hmac.as_str()
    })
    .await;
    assert!(used_again > used);
    let previous = Previous {
        credentials: first.inventory.credentials.clone(),
        state: first.state.clone(),
        ..Previous::default()
    };
    let second = scan(&peer, &world, &peer.audit_log, previous).await;
    assert!(offset(&second) > offset(&first));
    assert_eq!(
        last_used(&second, &token(&world.used)),
        &from_log(used_again)
    );
    assert_eq!(
        last_used(&second, &secret_id("ci", &world.secret_id)),
        &from_log(logged_in),
        "remembered from the first scan's read"
    );
    no_secret_of(&world, &second, &peer);
}

/// The lines of the server's audit log from byte `from` on.
fn log_since(peer: &Peer, from: usize) -> String {
    let text = std::fs::read_to_string(&peer.audit_log).expect("log");
    let end = text.rfind('\n').map_or(0, |it| it + 1);
    text[from.min(end)..end].to_owned()
}

#[tokio::test]
async fn the_log_is_followed_across_a_rotation_of_its_file() {
    let Some(peer) = vault::peer() else { return };
    let world = world(&peer).await;
    let p = world.ns.clone();
    let dir = tempfile::tempdir().expect("dir");
    let log = dir.path().join("audit.log");
    // keywarden reads a copy of the server's log, rotated the way logrotate does it: the file
    // renamed (Vault keeps writing to it until its SIGHUP), then a new one.
    let copied = log_since(&peer, 0);
    common::write(&log, &copied);
    let first = scan(&peer, &world, &log, Previous::default()).await;
    assert!(
        first.inventory.errors.is_empty(),
        "{:#?}",
        first.inventory.errors
    );

    sign(&peer, &world).await;
    let used_hmac = peer.audit_hash(&world.used.accessor).await;
    let used = logged_at(&peer, &world, "transit/sign/release", "request", |it| {
        it["auth"]["accessor"] == used_hmac.as_str()
    })
    .await;
    let before_login = std::fs::read_to_string(&peer.audit_log)
        .expect("log")
        .rfind('\n')
        .map_or(0, |it| it + 1);
    login(&peer, &world, &world.role_ids[0], &world.secret_id.secret).await;
    let secret_hmac = peer.audit_hash(&world.secret_id.secret).await;
    let logged_in = logged_at(&peer, &world, "auth/approle/login", "response", |it| {
        it["request"]["data"]["secret_id"] == secret_hmac.as_str()
    })
    .await;
    // The signature went to the old file before it was rotated; the login to the new one.
    let server_log = std::fs::read_to_string(&peer.audit_log).expect("log");
    let end = server_log.rfind('\n').map_or(0, |it| it + 1);
    let (to_old, to_new) = (
        &server_log[copied.len()..before_login],
        &server_log[before_login..end],
    );
    std::fs::rename(&log, dir.path().join("audit.log.1")).expect("rotate");
    let mut old = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.path().join("audit.log.1"))
        .expect("old");
    std::io::Write::write_all(&mut old, to_old.as_bytes()).expect("append");
    common::write(&log, to_new);

    let previous = Previous {
        credentials: first.inventory.credentials.clone(),
        state: first.state.clone(),
        ..Previous::default()
    };
    let second = scan(&peer, &world, &log, previous).await;
    assert!(
        second.inventory.errors.is_empty(),
        "{:#?}",
        second.inventory.errors
    );
    assert_eq!(
        last_used(&second, &format!("{p}token/{}", world.used.accessor)),
        &from_log(used),
        "the rest of the rotated file is read"
    );
    assert_eq!(
        last_used(
            &second,
            &format!(
                "{p}auth/approle/role/ci/secret-id/{}",
                world.secret_id.accessor
            )
        ),
        &from_log(logged_in),
        "and the new file"
    );
    let position = &second.state.as_ref().expect("state")["audit"]["position"];
    assert_eq!(
        position["offset"].as_u64(),
        Some(to_new.len() as u64),
        "reading goes on in the new file: {position}"
    );
}
