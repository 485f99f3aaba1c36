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
    for (path, kind, version) in entries(&engines) {
        let kind = match kind.as_str() {
            "kv" => MountKind::Kv {
                version: kv_version(version.as_ref()),
            },
            "transit" => MountKind::Transit,
            _ => continue,
        };
        mounts.push(Mount { path, kind });
    }
    for (path, kind, _) in entries(&auths) {
        if kind == "approle" {
            mounts.push(Mount {
                path,
                kind: MountKind::AppRole,
            });
        }
    }
    mounts.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(mounts)
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

    #[test]
    fn kv_version_two_only_when_the_option_says_so() {
        assert_eq!(kv_version(Some(&"2".to_owned())), 2);
        assert_eq!(kv_version(Some(&"1".to_owned())), 1);
        assert_eq!(kv_version(None), 1);
    }
}
