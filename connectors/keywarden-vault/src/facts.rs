//! What every kind's inventory shares: the settings it reads with, how a failed path becomes a
//! scan error, and how Vault's fields (times, metadata maps) become the model's.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use keywarden_connector::{Identity, IdentityKind, ScanError};
use serde_json::Value;

use crate::client::VaultError;

/// How a scan reads: metadata keys and how many lookups are in flight.
#[derive(Clone, Debug)]
pub struct Settings {
    pub owner_key: String,
    pub purpose_key: String,
    pub concurrency: usize,
}

impl Settings {
    /// The owner and purpose a metadata map names.
    pub fn owner_purpose(
        &self,
        metadata: &BTreeMap<String, String>,
    ) -> (Option<String>, Option<String>) {
        let pick = |key: &str| metadata.get(key).filter(|it| !it.is_empty()).cloned();
        (pick(&self.owner_key), pick(&self.purpose_key))
    }
}

/// A path that could not be read: one scan error, the scan goes on. `identity` is the identity
/// whose inventory is incomplete because of it, when there is one.
pub fn scan_error(namespace: &str, err: &VaultError, identity: Option<String>) -> ScanError {
    let path = match err {
        VaultError::Denied { path }
        | VaultError::NotFound { path }
        | VaultError::Retryable { path, .. }
        | VaultError::Permanent { path, .. }
        | VaultError::Login { path, .. } => path.clone(),
    };
    ScanError {
        subject: format!("{namespace}{path}"),
        message: err.to_string(),
        identity,
    }
}

/// An RFC 3339 time; Vault's zero time (`0001-01-01T00:00:00Z`, "never") and anything else
/// unreadable are none.
pub fn rfc3339(value: Option<&Value>) -> Option<DateTime<Utc>> {
    let text = value?.as_str()?;
    let at = DateTime::parse_from_rfc3339(text).ok()?.with_timezone(&Utc);
    (at.timestamp() > 0).then_some(at)
}

/// A Unix time in seconds (a number, or a numeric string).
pub fn unix(value: Option<&Value>) -> Option<DateTime<Utc>> {
    let seconds = match value? {
        Value::Number(n) => n.as_i64()?,
        Value::String(s) => s.parse().ok()?,
        _ => return None,
    };
    DateTime::from_timestamp(seconds, 0).filter(|it| it.timestamp() > 0)
}

/// A map of strings (metadata, custom_metadata, meta); `null` and non-string values are left out.
pub fn string_map(value: Option<&Value>) -> BTreeMap<String, String> {
    value
        .and_then(Value::as_object)
        .map(|it| {
            it.iter()
                .filter_map(|(key, value)| Some((key.clone(), value.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

/// A field as text for the attributes: strings as they are, numbers and booleans printed,
/// arrays of strings joined with `,`.
pub fn text(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Array(items) => Some(
            items
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(","),
        ),
        _ => None,
    }
}

/// The identity of a mount (the KV engine a secret lives in, the auth path that minted a token
/// without an entity).
pub fn mount_identity(namespace: &str, path: &str) -> Identity {
    Identity {
        external_id: format!("{namespace}{path}"),
        kind: IdentityKind::VaultMount,
        name: format!("{namespace}{path}"),
        owner: None,
        purpose: None,
        tags: BTreeMap::new(),
        confirmed_leaks: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn vault_times_read_and_zero_is_never() {
        assert_eq!(
            rfc3339(Some(&json!("2026-11-30T10:00:00.123456Z"))).map(|it| it.timestamp()),
            Some(1_796_032_800)
        );
        assert_eq!(rfc3339(Some(&json!("0001-01-01T00:00:00Z"))), None);
        assert_eq!(rfc3339(Some(&json!(null))), None);
        assert_eq!(
            unix(Some(&json!(1_796_032_800))).map(|it| it.timestamp()),
            Some(1_796_032_800)
        );
        assert_eq!(
            unix(Some(&json!("1796032800"))).map(|it| it.timestamp()),
            Some(1_796_032_800)
        );
        assert_eq!(unix(Some(&json!(0))), None);
    }

    #[test]
    fn maps_keep_only_strings() {
        let map = string_map(Some(&json!({"owner": "team-a", "n": 1, "x": null})));
        assert_eq!(map.len(), 1);
        let settings = Settings {
            owner_key: "owner".to_owned(),
            purpose_key: "purpose".to_owned(),
            concurrency: 1,
        };
        assert_eq!(
            settings.owner_purpose(&map),
            (Some("team-a".to_owned()), None)
        );
        assert_eq!(text(Some(&json!(["a", "b"]))).as_deref(), Some("a,b"));
    }
}
