//! Discovery: which secret engines and auth methods a namespace has mounted, at which paths.

use serde_json::Value;

use crate::client::{Namespace, VaultError};

/// What keywarden reads at a mount.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MountKind {
    /// A KV engine, version 1 or 2.
    Kv {
        version: u8,
    },
    Transit,
    /// An AppRole auth method.
    AppRole,
}

/// One mount keywarden reads: its path (`secret/`, `ci/approle/`) and kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    pub path: String,
    pub kind: MountKind,
}

/// The secret engines and auth methods of a namespace that keywarden reads, by path.
pub async fn discover(namespace: &Namespace) -> Result<Vec<Mount>, VaultError> {
    let engines = namespace.read("sys/mounts").await?;
    let auths = namespace.read("sys/auth").await?;
    Ok(mounts_of(&engines, &auths))
}

/// The mounts keywarden reads, from the `data` of `sys/mounts` and `sys/auth` (a map of path to
/// `{type, options}`). Pure.
fn mounts_of(engines: &Value, auths: &Value) -> Vec<Mount> {
    let entries = |listing: &Value| -> Vec<(String, String, Option<String>)> {
        listing
            .as_object()
            .map(|it| {
                it.iter()
                    .filter_map(|(path, mount)| {
                        let kind = mount.get("type")?.as_str()?.to_owned();
                        let version = mount
                            .pointer("/options/version")
                            .and_then(Value::as_str)
                            .map(str::to_owned);
                        Some((path.clone(), kind, version))
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut mounts = Vec::new();
    for (path, kind, version) in entries(engines) {
        let kind = match kind.as_str() {
            "kv" => MountKind::Kv {
                version: kv_version(version.as_ref()),
            },
            "transit" => MountKind::Transit,
            _ => continue,
        };
        mounts.push(Mount { path, kind });
    }
    for (path, kind, _) in entries(auths) {
        if kind == "approle" {
            mounts.push(Mount {
                path,
                kind: MountKind::AppRole,
            });
        }
    }
    mounts.sort_by(|a, b| a.path.cmp(&b.path));
    mounts
}

/// `options.version` of a KV mount: `"2"` is version 2, anything else (absent, `"1"`) version 1.
fn kv_version(version: Option<&String>) -> u8 {
    if version.is_some_and(|it| it == "2") {
        2
    } else {
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `sys/mounts` and `sys/auth` as Vault's API documentation shows their `data`
    /// (developer.hashicorp.com/vault/api-docs/system/mounts, .../system/auth).
    #[test]
    fn mounts_are_read_from_vaults_documented_answers() {
        let engines = serde_json::json!({
            "aws/": {"type": "aws", "options": null, "config": {"default_lease_ttl": 0}},
            "secret/": {"type": "kv", "options": {"version": "2"}, "local": false},
            "legacy/": {"type": "kv", "options": {}},
            "ci/transit/": {"type": "transit", "options": null},
            "sys/": {"type": "system"}
        });
        let auths = serde_json::json!({
            "token/": {"type": "token"},
            "ci/approle/": {"type": "approle", "options": {}}
        });
        assert_eq!(
            mounts_of(&engines, &auths),
            [
                Mount {
                    path: "ci/approle/".to_owned(),
                    kind: MountKind::AppRole
                },
                Mount {
                    path: "ci/transit/".to_owned(),
                    kind: MountKind::Transit
                },
                Mount {
                    path: "legacy/".to_owned(),
                    kind: MountKind::Kv { version: 1 }
                },
                Mount {
                    path: "secret/".to_owned(),
                    kind: MountKind::Kv { version: 2 }
                },
            ]
        );
        assert!(mounts_of(&serde_json::Value::Null, &serde_json::Value::Null).is_empty());
    }

    #[test]
    fn kv_version_two_only_when_the_option_says_so() {
        assert_eq!(kv_version(Some(&"2".to_owned())), 2);
        assert_eq!(kv_version(Some(&"1".to_owned())), 1);
        assert_eq!(kv_version(None), 1);
    }
}
