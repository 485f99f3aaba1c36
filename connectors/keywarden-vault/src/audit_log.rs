//! Vault's JSON audit log, read for last use: which token made a request, which secret-id logged
//! in to which AppRole role, which Transit key version signed. Pure: lines in, uses out.
//!
//! An audit entry carries the token's accessor as `hmac-sha256:<hex>` (in clear when the device
//! sets `hmac_accessor=false`), the request's namespace and its namespace-relative path in clear,
//! a login's `secret_id` as an HMAC, and a sign response's `key_version` in clear. Only those
//! fields are read (the rest is skipped unparsed); a `secret_id` that is not an HMAC (a device
//! with `log_raw=true` writes it raw) is never kept.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use keywarden_connector::Secret;
use serde::Deserialize;

/// The prefix of a value the audit device has hashed.
pub const HMAC: &str = "hmac-sha256:";

#[derive(Deserialize)]
struct Entry {
    #[serde(rename = "type")]
    kind: String,
    time: DateTime<Utc>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    auth: Option<Auth>,
    #[serde(default)]
    request: Option<Request>,
    #[serde(default)]
    response: Option<Response>,
}

#[derive(Deserialize)]
struct Auth {
    #[serde(default)]
    accessor: Option<String>,
    /// The entity a login's or renewal's token belongs to (not HMAC'd).
    #[serde(default)]
    entity_id: Option<String>,
    #[serde(default)]
    metadata: Option<HashMap<String, serde_json::Value>>,
}

#[derive(Deserialize)]
struct Request {
    #[serde(default)]
    path: String,
    #[serde(default)]
    operation: String,
    #[serde(default)]
    mount_point: String,
    #[serde(default)]
    mount_type: String,
    #[serde(default)]
    namespace: Option<NamespaceRef>,
    #[serde(default)]
    data: Option<RequestData>,
}

impl Request {
    /// Whether the request writes (creates, updates, deletes or patches) rather than reads.
    fn writes(&self) -> bool {
        matches!(
            self.operation.as_str(),
            "create" | "update" | "delete" | "patch"
        )
    }

    /// The namespace it was made in (`""`: the root; `team-a/`).
    fn namespace(&self) -> &str {
        self.namespace
            .as_ref()
            .map(|it| it.path.as_str())
            .unwrap_or_default()
    }
}

#[derive(Deserialize)]
struct NamespaceRef {
    #[serde(default)]
    path: String,
}

#[derive(Deserialize)]
struct RequestData {
    /// A token accessor named in the request (`renew-accessor`, `revoke-accessor`), as logged.
    #[serde(default)]
    accessor: Option<String>,
    /// Held as a secret until it is shown to be an HMAC: a raw log carries the secret-id itself.
    #[serde(default, deserialize_with = "secret")]
    secret_id: Option<Secret>,
}

fn secret<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Secret>, D::Error> {
    let value: Option<String> = Option::deserialize(d)?;
    Ok(value.map(Secret::new))
}

#[derive(Deserialize)]
struct Response {
    #[serde(default)]
    auth: Option<Auth>,
    #[serde(default)]
    data: Option<ResponseData>,
}

#[derive(Deserialize)]
struct ResponseData {
    /// Any value: only a number is a Transit sign's version.
    #[serde(default)]
    key_version: Option<serde_json::Value>,
    #[serde(default)]
    batch_results: Option<Vec<BatchResult>>,
}

#[derive(Deserialize)]
struct BatchResult {
    #[serde(default)]
    key_version: Option<serde_json::Value>,
}

/// A login to an AppRole role.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Login {
    /// The namespace path (`""` or `team-a/`).
    pub namespace: String,
    /// The AppRole mount (`approle/`).
    pub mount: String,
    pub role: String,
    /// The HMAC of the secret-id it logged in with.
    pub secret_id_hmac: String,
}

/// A signature made with one Transit key version.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Signature {
    pub namespace: String,
    /// The Transit mount (`transit/`).
    pub mount: String,
    pub key: String,
    pub version: u64,
}

/// The last time each thing was used, from the lines read.
#[derive(Debug, Default)]
pub struct Uses {
    /// A token's accessor as the log shows it (an HMAC, or in clear) → its last request.
    pub tokens: HashMap<String, DateTime<Utc>>,
    pub logins: HashMap<Login, DateTime<Utc>>,
    pub signatures: HashMap<Signature, DateTime<Utc>>,
    /// KV secrets written, deleted, undeleted or destroyed (or their metadata changed).
    pub kv_changed: HashSet<Change>,
    /// Transit keys created, rotated, configured, trimmed, imported, restored or deleted (the
    /// change's `path` is the key's name).
    pub transit_changed: HashSet<Change>,
    /// Token accessors (as logged: HMAC'd) renewed or revoked by accessor, or answered (a
    /// request logged before the last read whose response came after it).
    pub tokens_changed: HashSet<String>,
    /// Entities that logged in or renewed a token: a login refreshes the entity's group
    /// memberships (an external group's), which changes the policies its other tokens inherit.
    pub entities_changed: HashSet<String>,
    /// Namespaces (`""`, `team-a/`) whose mounts were enabled, disabled or tuned, whose storage
    /// was written raw, or that were made or deleted: what is under a path there may be another
    /// secret or key than the ledger's, so they are read in full.
    pub mounts_moved: HashSet<String>,
    /// Namespaces (`""`, `team-a/`) where a token was renewed or revoked by the token itself in
    /// the request's data (which one is not told), or an identity entity or group changed
    /// (which tokens' inherited policies is not told; a group can hold entities of child
    /// namespaces): every token there and in the namespaces under it is looked up again. How
    /// group policies apply (`sys/config/group-policy-application`) is the root's: all.
    pub tokens_unmapped: HashSet<String>,
    /// Lines that were not an audit entry.
    pub unreadable: u64,
    /// KV or Transit changes whose secret or key cannot be told (no `mount_point`, as before
    /// Vault 1.14, or one that is not a prefix of the path; a Transit restore naming its key in
    /// the request's HMAC'd data).
    pub unmapped: u64,
    pub lines: u64,
    /// Every line since the last scan was read (no file rotated away or cut shorter unread):
    /// what the log does not show did not happen.
    pub complete: bool,
}

/// A KV secret or Transit key a request changed: namespace (`""` or `team-a/`), mount
/// (`secret/`) and path (the secret's, or the key's name).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Change {
    pub namespace: String,
    pub mount: String,
    pub path: String,
}

/// What a request tells of the secret or key it changes.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    /// It changes nothing (a read, a list; a Transit signature).
    Nothing,
    /// It changes this secret or key.
    Change(Change),
    /// It changes something, but which cannot be told.
    Unmapped,
}

/// Where a write lands: its mount and the path under it.
enum Write<'a> {
    /// Not a write (a read, a list).
    None,
    At {
        mount: &'a str,
        rest: &'a str,
    },
    /// A write whose mount cannot be told from its path.
    Unmapped,
}

fn write_of<'a>(request: &'a Request, namespace: &str) -> Write<'a> {
    if !request.writes() {
        return Write::None;
    }
    let mount = request
        .mount_point
        .strip_prefix(namespace)
        .unwrap_or(&request.mount_point);
    match request
        .path
        .strip_prefix(mount)
        .filter(|_| !mount.is_empty())
    {
        Some(rest) => Write::At { mount, rest },
        None => Write::Unmapped,
    }
}

/// The Transit key a request changes, if it changes one: a write under `keys/<name>` (create,
/// `rotate`, `config`, `trim`, `import`, `import_version`, a delete) or a `restore`; or an
/// `encrypt` or `datakey` that creates its key (operation `create`: Vault makes a missing key
/// on encryption). Signing and other encryption change no key.
fn transit_change(request: &Request, namespace: &str) -> Seen {
    let (mount, rest) = match write_of(request, namespace) {
        Write::None => return Seen::Nothing,
        // Without its mount (before Vault 1.14) only a request that may change a key is unmapped:
        // signatures and encryption are not.
        Write::Unmapped => {
            let may_change = ["keys/", "restore", "encrypt/", "datakey/"]
                .iter()
                .any(|it| request.path.contains(it));
            return if may_change {
                Seen::Unmapped
            } else {
                Seen::Nothing
            };
        }
        Write::At { mount, rest } => (mount, rest),
    };
    let created = request.operation == "create";
    let name = if let Some(key) = rest.strip_prefix("keys/") {
        key.split('/').next().unwrap_or_default()
    } else if let Some(key) = rest.strip_prefix("encrypt/").filter(|_| created) {
        key.split('/').next().unwrap_or_default()
    } else if let Some(key) = rest.strip_prefix("datakey/").filter(|_| created) {
        // `datakey/<plaintext|wrapped>/<name>`
        key.split('/').nth(1).unwrap_or_default()
    } else if let Some(restored) = rest.strip_prefix("restore") {
        match restored.strip_prefix('/') {
            Some(name) if !name.is_empty() => name.split('/').next().unwrap_or_default(),
            // `restore` with the name in its (HMAC'd) data: which key is not told.
            _ => return Seen::Unmapped,
        }
    } else {
        return Seen::Nothing;
    };
    if name.is_empty() {
        return Seen::Nothing;
    }
    Seen::Change(Change {
        namespace: namespace.to_owned(),
        mount: mount.to_owned(),
        path: name.to_owned(),
    })
}

/// The secret a KV request changes, if it changes one (a v2 write, delete, undelete, destroy,
/// metadata write or patch; a v1 write or delete).
fn kv_change(request: &Request, namespace: &str) -> Seen {
    let (mount, rest) = match write_of(request, namespace) {
        Write::None => return Seen::Nothing,
        Write::Unmapped => return Seen::Unmapped,
        Write::At { mount, rest } => (mount, rest),
    };
    let path = ["data/", "metadata/", "delete/", "undelete/", "destroy/"]
        .iter()
        .find_map(|it| rest.strip_prefix(it))
        .unwrap_or(rest);
    if path.is_empty() {
        // The mount's own config (`config`, a list of the root).
        return Seen::Nothing;
    }
    Seen::Change(Change {
        namespace: namespace.to_owned(),
        mount: mount.to_owned(),
        path: path.to_owned(),
    })
}

fn later(map_entry: &mut DateTime<Utc>, at: DateTime<Utc>) {
    if at > *map_entry {
        *map_entry = at;
    }
}

impl Uses {
    /// A write that moves mounts: `sys/mounts/...` (enable, disable, tune) or `sys/raw` in the
    /// request's namespace, a child namespace made or deleted (`sys/namespaces/<name>`); a
    /// `sys/remount`, whose destination may be another namespace, is unmapped.
    fn mount_change(&mut self, request: &Request) {
        if !request.writes() {
            return;
        }
        let namespace = request.namespace();
        let path = request.path.as_str();
        if path.starts_with("sys/remount") {
            self.unmapped += 1;
        } else if path.starts_with("sys/mounts") || path.starts_with("sys/raw") {
            self.mounts_moved.insert(namespace.to_owned());
        } else if let Some(child) = path.strip_prefix("sys/namespaces/") {
            let child = child.trim_end_matches('/');
            self.mounts_moved.insert(format!("{namespace}{child}/"));
        }
    }

    /// What a request changes of tokens other than the one making it (that one is used, which
    /// is seen anyway): one renewed or revoked by accessor; or, unmapped, a token named by
    /// itself in the data, or an entity or group whose policies its tokens inherit.
    fn token_change(&mut self, request: &Request) {
        if !request.writes() {
            return;
        }
        let namespace = request.namespace().to_owned();
        if request.path == "sys/config/group-policy-application" {
            self.tokens_unmapped.insert(String::new());
            return;
        }
        let identity = request.mount_type == "identity" || request.path.starts_with("identity/");
        // Look-ups and OIDC calls are `update`s that change nothing.
        let reads = ["identity/lookup/", "identity/oidc/"]
            .iter()
            .any(|it| request.path.starts_with(it));
        if identity && !reads {
            self.tokens_unmapped.insert(namespace);
            return;
        }
        match request.path.as_str() {
            "auth/token/renew-accessor" | "auth/token/revoke-accessor" => {
                match request.data.as_ref().and_then(|it| it.accessor.as_ref()) {
                    Some(accessor) => {
                        self.tokens_changed.insert(accessor.clone());
                    }
                    None => {
                        self.tokens_unmapped.insert(namespace);
                    }
                }
            }
            "auth/token/renew" | "auth/token/revoke" | "auth/token/revoke-orphan" => {
                self.tokens_unmapped.insert(namespace);
            }
            // The token in the path (deprecated, still served).
            path if path.starts_with("auth/token/renew/")
                || path.starts_with("auth/token/revoke/") =>
            {
                self.tokens_unmapped.insert(namespace);
            }
            _ => {}
        }
    }

    /// Takes one line of the log.
    pub fn add_line(&mut self, line: &[u8]) {
        if line.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        self.lines += 1;
        let Ok(entry) = serde_json::from_slice::<Entry>(line) else {
            self.unreadable += 1;
            return;
        };
        let at = entry.time;
        // A KV change is taken from the request as well as the response: a write whose response
        // was never logged (Vault stopped in between) is still seen; one that failed costs only
        // a metadata read.
        if let Some(request) = entry.request.as_ref() {
            self.token_change(request);
            self.mount_change(request);
            let namespace = request.namespace();
            let (seen, changed) = match request.mount_type.as_str() {
                "kv" => (kv_change(request, namespace), &mut self.kv_changed),
                "transit" => (
                    transit_change(request, namespace),
                    &mut self.transit_changed,
                ),
                _ => (Seen::Nothing, &mut self.kv_changed),
            };
            match seen {
                Seen::Nothing => {}
                Seen::Change(change) => {
                    changed.insert(change);
                }
                Seen::Unmapped => self.unmapped += 1,
            }
        }
        // A token is used by every request it makes, allowed or not.
        if entry.kind == "request" {
            if let Some(accessor) = entry
                .auth
                .as_ref()
                .and_then(|it| it.accessor.as_ref())
                .filter(|it| !it.is_empty())
            {
                later(self.tokens.entry(accessor.clone()).or_insert(at), at);
            }
            return;
        }
        if entry.kind != "response" {
            return;
        }
        if let Some(accessor) = entry
            .auth
            .as_ref()
            .and_then(|it| it.accessor.as_ref())
            .filter(|it| !it.is_empty())
        {
            self.tokens_changed.insert(accessor.clone());
        }
        if let Some(entity) = entry
            .response
            .as_ref()
            .and_then(|it| it.auth.as_ref())
            .and_then(|it| it.entity_id.as_ref())
            .filter(|it| !it.is_empty())
        {
            self.entities_changed.insert(entity.clone());
        }
        if entry.error.as_deref().is_some_and(|it| !it.is_empty()) {
            return;
        }
        let (Some(request), Some(response)) = (entry.request, entry.response) else {
            return;
        };
        let namespace = request.namespace().to_owned();
        if request.mount_type == "approle" {
            if let Some(login) = login(&request, &response, &namespace) {
                later(self.logins.entry(login).or_insert(at), at);
            }
        } else if request.mount_type == "transit" && request.operation == "update" {
            for signature in signatures(&request, &response, &namespace) {
                later(self.signatures.entry(signature).or_insert(at), at);
            }
        }
    }
}

fn login(request: &Request, response: &Response, namespace: &str) -> Option<Login> {
    let mount = request
        .path
        .strip_prefix("auth/")?
        .strip_suffix("login")?
        .to_owned();
    let role = response
        .auth
        .as_ref()?
        .metadata
        .as_ref()?
        .get("role_name")?
        .as_str()?
        .to_owned();
    let secret_id = request.data.as_ref()?.secret_id.as_ref()?;
    // Only an HMAC is kept; a raw secret-id is dropped here, zeroized.
    if !secret_id.expose().starts_with(HMAC) {
        return None;
    }
    Some(Login {
        namespace: namespace.to_owned(),
        mount,
        role,
        secret_id_hmac: secret_id.expose().to_owned(),
    })
}

fn signatures(request: &Request, response: &Response, namespace: &str) -> Vec<Signature> {
    let mount = request
        .mount_point
        .strip_prefix(namespace)
        .unwrap_or(&request.mount_point);
    let Some(rest) = request
        .path
        .strip_prefix(mount)
        .and_then(|it| it.strip_prefix("sign/"))
    else {
        return Vec::new();
    };
    let key = rest.split('/').next().unwrap_or_default();
    if key.is_empty() {
        return Vec::new();
    }
    let Some(data) = &response.data else {
        return Vec::new();
    };
    let mut versions: Vec<u64> = data
        .key_version
        .as_ref()
        .and_then(serde_json::Value::as_u64)
        .into_iter()
        .collect();
    versions.extend(
        data.batch_results
            .iter()
            .flatten()
            .filter_map(|it| it.key_version.as_ref().and_then(serde_json::Value::as_u64)),
    );
    versions.sort_unstable();
    versions.dedup();
    versions
        .into_iter()
        .map(|version| Signature {
            namespace: namespace.to_owned(),
            mount: mount.to_owned(),
            key: key.to_owned(),
            version,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().expect("time")
    }

    const TOKEN_REQUEST: &str = r#"{"time":"2026-12-02T10:00:00.5Z","type":"request","auth":{"client_token":"hmac-sha256:aa","accessor":"hmac-sha256:acc1","policies":["root"]},"request":{"path":"kv/data/x","operation":"read","namespace":{"id":"root","path":""}}}"#;
    const LOGIN: &str = r#"{"time":"2026-12-02T11:00:00Z","type":"response","auth":{"accessor":"hmac-sha256:new"},"request":{"operation":"update","mount_point":"team-a/auth/approle/","mount_type":"approle","namespace":{"id":"x","path":"team-a/"},"path":"auth/approle/login","data":{"role_id":"hmac-sha256:r","secret_id":"hmac-sha256:s1"}},"response":{"auth":{"accessor":"hmac-sha256:new","metadata":{"role_name":"ci"}},"mount_type":"approle"}}"#;
    const SIGN: &str = r#"{"time":"2026-12-02T12:00:00Z","type":"response","request":{"operation":"update","mount_point":"team-a/transit/","mount_type":"transit","namespace":{"id":"x","path":"team-a/"},"path":"transit/sign/release/sha2-256","data":{"input":"hmac-sha256:i"}},"response":{"data":{"key_version":2,"signature":"hmac-sha256:sig"}}}"#;

    #[test]
    fn transit_key_writes_name_their_key_and_signatures_and_reads_do_not() {
        let mut uses = Uses::default();
        let line = |operation: &str, path: &str| {
            format!(
                r#"{{"time":"2026-12-02T12:00:00Z","type":"request","request":{{"operation":"{operation}","mount_point":"team-a/transit/","mount_type":"transit","namespace":{{"id":"x","path":"team-a/"}},"path":"{path}"}}}}"#
            )
        };
        for (operation, path) in [
            ("update", "transit/keys/rotated/rotate"),
            ("update", "transit/keys/configured/config"),
            ("update", "transit/keys/trimmed/trim"),
            ("create", "transit/keys/made"),
            ("delete", "transit/keys/deleted"),
            ("update", "transit/restore/restored"),
            ("update", "transit/sign/signing/sha2-256"),
            ("update", "transit/encrypt/encrypting"),
            ("read", "transit/keys/read"),
            ("list", "transit/keys/"),
        ] {
            uses.add_line(line(operation, path).as_bytes());
        }
        uses.add_line(SIGN.as_bytes());
        let mut changed: Vec<String> = uses
            .transit_changed
            .iter()
            .map(|it| {
                assert_eq!(
                    (it.namespace.as_str(), it.mount.as_str()),
                    ("team-a/", "transit/")
                );
                it.path.clone()
            })
            .collect();
        changed.sort();
        assert_eq!(
            changed,
            [
                "configured",
                "deleted",
                "made",
                "restored",
                "rotated",
                "trimmed"
            ]
        );
        assert!(uses.kv_changed.is_empty());
        assert_eq!(uses.unmapped, 0);
        // A restore naming its key in its data only: which key is not told.
        uses.add_line(line("update", "transit/restore").as_bytes());
        assert_eq!(uses.unmapped, 1);
    }

    #[test]
    fn token_renewals_by_accessor_are_named_and_by_token_or_identity_change_are_not() {
        let line = |operation: &str, path: &str, data: &str| {
            format!(
                r#"{{"time":"2026-12-02T12:00:00Z","type":"request","request":{{"operation":"{operation}","mount_type":"token","path":"{path}","data":{data}}}}}"#
            )
        };
        let mut uses = Uses::default();
        for (operation, path, data) in [
            (
                "update",
                "auth/token/renew-accessor",
                r#"{"accessor":"hmac-sha256:a1"}"#,
            ),
            (
                "update",
                "auth/token/revoke-accessor",
                r#"{"accessor":"hmac-sha256:a2"}"#,
            ),
            // keywarden's own lookups, and a read: nothing changes.
            (
                "update",
                "auth/token/lookup-accessor",
                r#"{"accessor":"hmac-sha256:a3"}"#,
            ),
            ("update", "auth/token/create", "{}"),
            ("read", "identity/entity/id/x", "{}"),
        ] {
            uses.add_line(line(operation, path, data).as_bytes());
        }
        let mut changed: Vec<&str> = uses.tokens_changed.iter().map(String::as_str).collect();
        changed.sort_unstable();
        assert_eq!(changed, ["hmac-sha256:a1", "hmac-sha256:a2"]);
        assert!(uses.tokens_unmapped.is_empty());
        for (operation, path, data) in [
            ("update", "auth/token/renew", r#"{"token":"hmac-sha256:t"}"#),
            ("update", "auth/token/revoke/hmac-sha256:t", "{}"),
            ("update", "identity/group", r#"{"name":"hmac-sha256:g"}"#),
        ] {
            let mut uses = Uses::default();
            uses.add_line(line(operation, path, data).as_bytes());
            assert!(uses.tokens_unmapped.contains(""), "{path}");
        }
    }

    #[test]
    fn moved_mounts_logins_and_keys_made_by_encryption_are_seen() {
        let mut uses = Uses::default();
        for line in [
            // A key Vault makes on encryption, and one without its mount (Vault before 1.14)
            // that only signs: the first is a change, the second nothing.
            r#"{"time":"2026-12-02T12:00:00Z","type":"request","request":{"operation":"create","mount_point":"transit/","mount_type":"transit","path":"transit/encrypt/made"}}"#,
            r#"{"time":"2026-12-02T12:00:00Z","type":"request","request":{"operation":"create","mount_point":"transit/","mount_type":"transit","path":"transit/datakey/wrapped/dk"}}"#,
            r#"{"time":"2026-12-02T12:00:00Z","type":"request","request":{"operation":"update","mount_point":"transit/","mount_type":"transit","path":"transit/encrypt/existing"}}"#,
            r#"{"time":"2026-12-02T12:00:00Z","type":"request","request":{"operation":"update","mount_type":"transit","path":"transit/sign/release"}}"#,
            // A look-up under identity/ changes nothing.
            r#"{"time":"2026-12-02T12:00:00Z","type":"request","request":{"operation":"update","mount_type":"identity","path":"identity/lookup/entity"}}"#,
            // A login: its entity's group memberships are refreshed.
            r#"{"time":"2026-12-02T12:00:00Z","type":"response","auth":{"accessor":"hmac-sha256:n"},"request":{"operation":"update","mount_type":"userpass","path":"auth/userpass/login/alice"},"response":{"auth":{"accessor":"hmac-sha256:n","entity_id":"e-1"}}}"#,
        ] {
            uses.add_line(line.as_bytes());
        }
        let mut keys: Vec<&str> = uses
            .transit_changed
            .iter()
            .map(|it| it.path.as_str())
            .collect();
        keys.sort_unstable();
        assert_eq!(keys, ["dk", "made"]);
        assert_eq!(uses.unmapped, 0);
        assert!(uses.tokens_unmapped.is_empty());
        assert!(uses.entities_changed.contains("e-1"));
        assert!(uses.tokens_changed.contains("hmac-sha256:n"));
        let line = |path: &str| {
            format!(
                r#"{{"time":"2026-12-02T12:00:00Z","type":"request","request":{{"operation":"update","mount_type":"system","namespace":{{"id":"x","path":"team-a/"}},"path":"{path}"}}}}"#
            )
        };
        for (path, moved) in [
            ("sys/mounts/transit", "team-a/"),
            ("sys/raw/logical/x", "team-a/"),
            ("sys/namespaces/child", "team-a/child/"),
        ] {
            let mut uses = Uses::default();
            uses.add_line(line(path).as_bytes());
            assert_eq!(uses.unmapped, 0, "{path}");
            let moved_: Vec<&str> = uses.mounts_moved.iter().map(String::as_str).collect();
            assert_eq!(moved_, [moved], "{path}");
        }
        let mut uses = Uses::default();
        uses.add_line(line("sys/remount").as_bytes());
        assert_eq!(uses.unmapped, 1, "a remount may land in another namespace");
    }

    #[test]
    fn kv_writes_deletes_and_metadata_changes_name_their_secret_and_reads_do_not() {
        let entry = |operation: &str, path: &str, error: &str| {
            format!(
                r#"{{"time":"2026-12-02T11:00:00Z","type":"response","error":"{error}","request":{{"operation":"{operation}","mount_point":"team-a/kv/","mount_type":"kv","namespace":{{"id":"x","path":"team-a/"}},"path":"{path}"}},"response":{{}}}}"#
            )
        };
        let mut uses = Uses::default();
        for (operation, path, error) in [
            ("create", "kv/data/app/a", ""),
            ("update", "kv/metadata/app/b", ""),
            ("update", "kv/destroy/c", ""),
            ("delete", "kv/metadata/gone", ""),
            ("read", "kv/data/read-only", ""),
            ("list", "kv/metadata/app/", ""),
            ("update", "kv/data/refused", "permission denied"),
        ] {
            uses.add_line(entry(operation, path, error).as_bytes());
        }
        let mut changed: Vec<String> = uses
            .kv_changed
            .iter()
            .map(|it| {
                assert_eq!(
                    (it.namespace.as_str(), it.mount.as_str()),
                    ("team-a/", "kv/")
                );
                it.path.clone()
            })
            .collect();
        changed.sort();
        // A refused write is counted too: its request entry cannot tell, and counting one too
        // many costs only a metadata read.
        assert_eq!(changed, ["app/a", "app/b", "c", "gone", "refused"]);
        assert_eq!(uses.unmapped, 0);
    }

    #[test]
    fn a_kv_write_seen_only_as_a_request_counts_and_one_without_its_mount_is_unmapped() {
        let mut uses = Uses::default();
        uses.add_line(
            br#"{"time":"2026-12-02T11:00:00Z","type":"request","request":{"operation":"create","mount_point":"kv/","mount_type":"kv","path":"kv/data/app/a"}}"#,
        );
        assert_eq!(uses.kv_changed.len(), 1, "{:?}", uses.kv_changed);
        assert_eq!(uses.unmapped, 0);
        // Before Vault 1.14 an entry carries no mount_point: which secret changed is not told.
        uses.add_line(
            br#"{"time":"2026-12-02T11:00:00Z","type":"response","request":{"operation":"update","mount_type":"kv","path":"kv/data/app/b"},"response":{}}"#,
        );
        uses.add_line(
            br#"{"time":"2026-12-02T11:00:00Z","type":"response","request":{"operation":"update","mount_point":"other/","mount_type":"kv","path":"kv/data/app/c"},"response":{}}"#,
        );
        assert_eq!(uses.unmapped, 2);
        assert_eq!(uses.kv_changed.len(), 1);
    }

    #[test]
    fn a_request_login_and_signature_are_each_a_use() {
        let mut uses = Uses::default();
        for line in [TOKEN_REQUEST, LOGIN, SIGN, "", "not json"] {
            uses.add_line(line.as_bytes());
        }
        assert_eq!(uses.lines, 4);
        assert_eq!(uses.unreadable, 1);
        assert_eq!(
            uses.tokens.get("hmac-sha256:acc1"),
            Some(&at("2026-12-02T10:00:00.5Z"))
        );
        assert_eq!(uses.tokens.len(), 1, "a response is not counted twice");
        let login = Login {
            namespace: "team-a/".to_owned(),
            mount: "approle/".to_owned(),
            role: "ci".to_owned(),
            secret_id_hmac: "hmac-sha256:s1".to_owned(),
        };
        assert_eq!(uses.logins.get(&login), Some(&at("2026-12-02T11:00:00Z")));
        let signature = Signature {
            namespace: "team-a/".to_owned(),
            mount: "transit/".to_owned(),
            key: "release".to_owned(),
            version: 2,
        };
        assert_eq!(
            uses.signatures.get(&signature),
            Some(&at("2026-12-02T12:00:00Z"))
        );
    }

    #[test]
    fn the_latest_use_wins_and_failures_and_raw_secrets_count_for_nothing() {
        let mut uses = Uses::default();
        let earlier = TOKEN_REQUEST.replace("10:00:00.5Z", "09:00:00Z");
        let failed = SIGN.replace("12:00:00Z", "13:00:00Z").replace(
            r#""type":"response","#,
            r#""type":"response","error":"permission denied","#,
        );
        let raw = LOGIN.replace("hmac-sha256:s1", "raw-secret-id-value");
        let verify = SIGN.replace("transit/sign/", "transit/verify/");
        for line in [TOKEN_REQUEST, &earlier, SIGN, &failed, &raw, &verify] {
            uses.add_line(line.as_bytes());
        }
        assert_eq!(
            uses.tokens.get("hmac-sha256:acc1"),
            Some(&at("2026-12-02T10:00:00.5Z"))
        );
        assert_eq!(uses.signatures.len(), 1, "{:?}", uses.signatures);
        assert_eq!(
            uses.signatures.values().next(),
            Some(&at("2026-12-02T12:00:00Z"))
        );
        assert!(uses.logins.is_empty(), "a raw secret-id is never kept");
        assert!(!format!("{uses:?}").contains("raw-secret-id-value"));
    }

    #[test]
    fn a_batch_signature_uses_every_version_it_names_and_root_has_no_prefix() {
        let batch = r#"{"time":"2026-12-02T12:00:00Z","type":"response","request":{"operation":"update","mount_point":"transit/","mount_type":"transit","path":"transit/sign/k","data":{}},"response":{"data":{"batch_results":[{"key_version":1},{"key_version":3}]}}}"#;
        let mut uses = Uses::default();
        uses.add_line(batch.as_bytes());
        let mut versions: Vec<(String, u64)> = uses
            .signatures
            .keys()
            .map(|it| {
                (
                    format!("{}{}{}", it.namespace, it.mount, it.key),
                    it.version,
                )
            })
            .collect();
        versions.sort();
        assert_eq!(
            versions,
            [("transit/k".to_owned(), 1), ("transit/k".to_owned(), 3)]
        );
    }
}
