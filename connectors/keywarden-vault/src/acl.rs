//! Vault ACL policies resolved the way Vault resolves them, to tell which tokens and AppRole
//! roles may call a path (`transit/sign/<key>`). Pure: policy texts in, decisions out.
//!
//! Vault merges the rules of all of a token's policies by path (capabilities added up, `deny`
//! overriding everything for that path), then answers a request from one rule: the exact path if
//! there is a rule for it, else the highest-priority matching pattern (`*` glob at the end, `+`
//! for one segment). Priority, from Vault's policy documentation: a pattern whose first `+` or
//! `*` comes earlier is lower; one ending in `*` is lower than one that does not; more `+`
//! segments is lower; shorter is lower; lexicographically smaller is lower.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

/// A policy text that could not be read, with the policy's name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("policy `{policy}`: {message}")]
pub struct PolicyError {
    pub policy: String,
    pub message: String,
}

/// The merged rules of a set of policies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Acl {
    /// Everything allowed (the `root` policy).
    root: bool,
    rules: BTreeMap<String, BTreeSet<String>>,
}

impl Acl {
    /// The rules of these policies (name, text in HCL or JSON) merged. `root` allows everything.
    pub fn from_policies<'a>(
        policies: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, PolicyError> {
        let mut acl = Self::default();
        for (name, text) in policies {
            if name == "root" {
                acl.root = true;
                continue;
            }
            for (path, capabilities) in parse(text).map_err(|message| PolicyError {
                policy: name.to_owned(),
                message,
            })? {
                let merged = acl.rules.entry(path).or_default();
                merged.extend(capabilities);
                if merged.contains("deny") {
                    merged.retain(|it| it == "deny");
                }
            }
        }
        Ok(acl)
    }

    /// Whether a request to `path` with `capability` (`read`, `update`, ...) is allowed.
    pub fn allows(&self, path: &str, capability: &str) -> bool {
        if self.root {
            return true;
        }
        let path = path.trim_start_matches('/');
        let rule = self.rules.get(path).or_else(|| {
            self.rules
                .iter()
                .filter(|(pattern, _)| is_pattern(pattern) && matches(pattern, path))
                .max_by(|(a, _), (b, _)| priority(a, b))
                .map(|(_, capabilities)| capabilities)
        });
        rule.is_some_and(|it| !it.contains("deny") && it.contains(capability))
    }
}

fn is_pattern(rule: &str) -> bool {
    rule.ends_with('*') || rule.split('/').any(|it| it == "+")
}

/// Whether a `*`/`+` pattern matches a request path.
fn matches(pattern: &str, path: &str) -> bool {
    let (body, glob) = match pattern.strip_suffix('*') {
        Some(body) => (body, true),
        None => (pattern, false),
    };
    if !body.split('/').any(|it| it == "+") {
        return if glob {
            path.starts_with(body)
        } else {
            path == body
        };
    }
    let want: Vec<&str> = body.split('/').collect();
    let have: Vec<&str> = path.split('/').collect();
    let Some((last, head)) = want.split_last() else {
        return false;
    };
    if have.len() < want.len() || (!glob && have.len() != want.len()) {
        return false;
    }
    let segment = |want: &str, have: &str| want == "+" || want == have;
    if !head.iter().zip(&have).all(|(w, h)| segment(w, h)) {
        return false;
    }
    if glob {
        let rest = have[head.len()..].join("/");
        *last == "+" || rest.starts_with(last)
    } else {
        segment(last, have[head.len()])
    }
}

/// Vault's order of two matching patterns: `Greater` when `a` wins.
fn priority(a: &str, b: &str) -> Ordering {
    let first_wild = |p: &str| {
        let plus = p
            .split('/')
            .scan(0usize, |at, segment| {
                let start = *at;
                *at += segment.len() + 1;
                Some((start, segment))
            })
            .find(|(_, segment)| *segment == "+")
            .map(|(start, _)| start);
        let glob = p.strip_suffix('*').map(str::len);
        match (plus, glob) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) | (None, Some(a)) => a,
            (None, None) => p.len(),
        }
    };
    let pluses = |p: &str| p.split('/').filter(|it| *it == "+").count();
    first_wild(a)
        .cmp(&first_wild(b))
        .then_with(|| b.ends_with('*').cmp(&a.ends_with('*')))
        .then_with(|| pluses(b).cmp(&pluses(a)))
        .then_with(|| a.len().cmp(&b.len()))
        .then_with(|| a.cmp(b))
}

/// The `path` rules of one policy: HCL (`path "x" { capabilities = [...] }`) or its JSON form.
fn parse(text: &str) -> Result<Vec<(String, BTreeSet<String>)>, String> {
    let value: Value = if text.trim_start().starts_with('{') {
        serde_json::from_str(text).map_err(|err| format!("not JSON: {err}"))?
    } else {
        hcl::from_str(text).map_err(|err| format!("not HCL: {err}"))?
    };
    let mut rules = Vec::new();
    let Some(paths) = value.get("path") else {
        return Ok(rules);
    };
    let Some(paths) = paths.as_object() else {
        return Err("`path` must be blocks with a path label".to_owned());
    };
    for (path, rule) in paths {
        // One block, or several with the same label.
        let blocks = match rule {
            Value::Array(blocks) => blocks.iter().collect(),
            block => vec![block],
        };
        let mut capabilities = BTreeSet::new();
        for block in blocks {
            capabilities.extend(block_capabilities(path, block)?);
        }
        rules.push((path.trim_start_matches('/').to_owned(), capabilities));
    }
    Ok(rules)
}

fn block_capabilities(path: &str, block: &Value) -> Result<BTreeSet<String>, String> {
    let mut capabilities: BTreeSet<String> = match block.get("capabilities") {
        None => BTreeSet::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|it| it.as_str().map(str::to_owned))
            .collect::<Option<_>>()
            .ok_or_else(|| format!("path `{path}`: capabilities must be strings"))?,
        Some(_) => return Err(format!("path `{path}`: capabilities must be a list")),
    };
    // The old form: `policy = "read" | "write" | "deny" | "sudo"`.
    if let Some(old) = block.get("policy").and_then(Value::as_str) {
        let implied: &[&str] = match old {
            "deny" => &["deny"],
            "read" => &["read", "list"],
            "write" => &["create", "read", "update", "delete", "list"],
            "sudo" => &["create", "read", "update", "delete", "list", "sudo"],
            other => return Err(format!("path `{path}`: unknown policy `{other}`")),
        };
        capabilities.extend(implied.iter().map(|it| (*it).to_owned()));
    }
    Ok(capabilities)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(policies: &[(&str, &str)]) -> Acl {
        Acl::from_policies(policies.iter().copied()).expect("policies")
    }

    #[test]
    fn an_exact_rule_beats_every_pattern_and_deny_wins_on_its_path() {
        let acl = acl(&[
            (
                "a",
                r#"path "transit/sign/*" { capabilities = ["update"] }"#,
            ),
            (
                "b",
                r#"path "transit/sign/release" { capabilities = ["read"] }"#,
            ),
            (
                "c",
                r#"path "transit/sign/locked" { capabilities = ["update"] }"#,
            ),
            (
                "d",
                r#"path "transit/sign/locked" { capabilities = ["deny"] }"#,
            ),
        ]);
        assert!(acl.allows("transit/sign/other", "update"));
        assert!(
            !acl.allows("transit/sign/release", "update"),
            "the exact rule says read only"
        );
        assert!(!acl.allows("transit/sign/locked", "update"));
        assert!(!acl.allows("transit/keys/release", "read"));
    }

    #[test]
    fn the_more_specific_pattern_wins() {
        let acl = acl(&[(
            "p",
            r#"
path "transit/*" { capabilities = ["update"] }
path "transit/sign/rel*" { capabilities = ["deny"] }
path "+/sign/+" { capabilities = ["read"] }
"#,
        )]);
        // `transit/sign/rel*` has its first glob latest: it wins over `transit/*` and `+/...`.
        assert!(!acl.allows("transit/sign/release", "update"));
        // `transit/*` (first wildcard at 8) beats `+/sign/+` (first wildcard at 0).
        assert!(acl.allows("transit/sign/ci", "update"));
        assert!(acl.allows("other/sign/ci", "read"));
        assert!(
            !acl.allows("other/sign/ci/extra", "read"),
            "+ is one segment"
        );
    }

    #[test]
    fn root_allows_everything_and_json_and_old_forms_are_read() {
        assert!(acl(&[("root", "")]).allows("sys/anything", "sudo"));
        let json = acl(&[(
            "j",
            r#"{"path": {"transit/sign/k": {"capabilities": ["update"]}}}"#,
        )]);
        assert!(json.allows("transit/sign/k", "update"));
        let old = acl(&[("o", r#"path "secret/*" { policy = "write" }"#)]);
        assert!(old.allows("secret/x", "update"));
        let err = Acl::from_policies([("bad", "path \"x\" { policy = \"all\" }")]).unwrap_err();
        assert_eq!(err.policy, "bad");
        assert!(Acl::from_policies([("bad", "path {")]).is_err());
    }

    #[test]
    fn globs_and_segments_match_like_vault() {
        assert!(matches("transit/sign*", "transit/signature"));
        assert!(matches("transit/+/release", "transit/sign/release"));
        assert!(!matches(
            "transit/+/release",
            "transit/sign/release/sha2-256"
        ));
        assert!(matches(
            "transit/+/release*",
            "transit/sign/release/sha2-256"
        ));
        assert!(matches("+/sign/+*", "transit/sign/release/sha2-256"));
        assert!(!matches("transit/sign/", "transit/sign/x"));
    }
}
