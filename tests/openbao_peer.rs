//! The OpenBao test peer itself (`scripts/start-openbao`, `tests/vault/`): a namespace of the
//! test's own, a KV v2 mount in it, one secret written and read, and the file audit device's log
//! of it, with the root token only ever HMAC'd. Without `KEYWARDEN_TEST_VAULT_ADDR` it skips,
//! unless `KEYWARDEN_REQUIRE_PEERS=1` (as in `scripts/test` and CI), where a missing peer fails it.

mod vault;

use reqwest::Method;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn a_secret_in_a_fresh_namespace_is_audited_with_the_token_hmaced() {
    let Some(peer) = vault::peer() else {
        return;
    };
    let ns = peer.fresh_namespace().await;
    let other = peer.fresh_namespace().await;
    assert_ne!(ns, other);
    peer.enable(&ns, "mounts", "kv", "kv", Some(json!({ "version": "2" })))
        .await;
    let mounts = peer.ok(Some(&ns), Method::GET, "sys/mounts", None).await;
    assert_eq!(mounts["data"]["kv/"]["options"]["version"], "2", "{mounts}");
    // The namespace's mount is not the root namespace's.
    let root_mounts = peer.ok(None, Method::GET, "sys/mounts", None).await;
    assert!(root_mounts["data"].get("kv/").is_none(), "{root_mounts}");

    // A LIST of nothing is a 404 with no errors.
    let (status, body) = peer
        .call(Some(&ns), vault::list(), "kv/metadata", None)
        .await;
    assert_eq!((status, body), (404, json!({ "errors": [] })));

    let value = format!("selftest-value-{ns}");
    let path = "kv/data/selftest/one";
    let written = peer
        .ok(
            Some(&ns),
            Method::POST,
            path,
            Some(json!({ "data": { "password": value } })),
        )
        .await;
    assert_eq!(written["data"]["version"], 1, "{written}");
    let read = peer.ok(Some(&ns), Method::GET, path, None).await;
    assert_eq!(read["data"]["data"]["password"], value.as_str(), "{read}");
    let listed = peer
        .ok(Some(&ns), vault::list(), "kv/metadata/selftest", None)
        .await;
    assert_eq!(listed["data"]["keys"], json!(["one"]), "{listed}");
    // Not visible from the other namespace (which has no kv/ mount at all).
    let (status, _) = peer.call(Some(&other), Method::GET, path, None).await;
    assert_eq!(status, 404);

    assert!(
        peer.audit_log.is_file(),
        "{} is missing",
        peer.audit_log.display()
    );
    // OpenBao logs the path relative to the namespace, with the namespace beside it.
    let entries = peer.audit_entries(Some(&ns), path).await;
    let kinds: Vec<(&str, &str)> = entries
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap_or(""),
                e["request"]["operation"].as_str().unwrap_or(""),
            )
        })
        .collect();
    for wanted in [
        ("request", "create"),
        ("response", "create"),
        ("request", "read"),
        ("response", "read"),
    ] {
        assert!(
            kinds.contains(&wanted),
            "no {wanted:?} audit entry for {path} in {ns}: {kinds:?}"
        );
    }
    let token_hash = peer.audit_hash(peer.root_token()).await;
    assert!(token_hash.starts_with("hmac-sha256:"), "{token_hash}");
    for entry in &entries {
        assert_eq!(entry["request"]["mount_point"], format!("{ns}/kv/"));
        assert_eq!(entry["auth"]["client_token"], token_hash.as_str());
    }
    let (text, _) = peer.audit();
    assert!(
        !text.contains(&format!("{ns}/{path}")),
        "a namespaced path in the audit log"
    );
    assert!(
        !text.contains(peer.root_token()),
        "the root token is in the audit log in clear"
    );
    assert!(
        !text.contains(&value),
        "the secret is in the audit log in clear"
    );
}
