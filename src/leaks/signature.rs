//! Webhook delivery signatures, checked before a payload is read (the daemon's HTTP intake calls
//! these with the raw body and headers):
//! - GitHub: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(body, webhook secret)>`;
//! - GitGuardian: `Gitguardian-Signature: sha256=<hex HMAC-SHA256(Timestamp + token, body)>` with
//!   the `Timestamp` header, which must be recent.
//!
//! The comparison is the MAC's own constant-time check; no error says how close a guess was.

use chrono::{DateTime, TimeDelta, Utc};
use hmac::{KeyInit, Mac};
use keywarden_connector::Secret;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// Why a delivery was refused; never quotes the secret or the expected signature.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the {0} header is missing")]
    Missing(&'static str),
    #[error("the {0} header is not `sha256=<hex>`")]
    Malformed(&'static str),
    #[error("the {0} signature does not match the body")]
    Mismatch(&'static str),
    #[error("the Timestamp header is not a time keywarden reads")]
    BadTimestamp,
    #[error("the delivery is {0} seconds away from now, more than the {1} seconds allowed")]
    Stale(i64, i64),
}

/// The hex digest of a `sha256=<hex>` header value.
fn digest_of(header: &'static str, value: Option<&str>) -> Result<Vec<u8>, SignatureError> {
    let value = value.ok_or(SignatureError::Missing(header))?;
    let hex_part = value
        .trim()
        .strip_prefix("sha256=")
        .ok_or(SignatureError::Malformed(header))?;
    hex::decode(hex_part).map_err(|_| SignatureError::Malformed(header))
}

/// Checks GitHub's `X-Hub-Signature-256` header over the raw `body`.
pub fn verify_github(
    body: &[u8],
    secret: &Secret,
    header: Option<&str>,
) -> Result<(), SignatureError> {
    const HEADER: &str = "X-Hub-Signature-256";
    let expected = digest_of(HEADER, header)?;
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(secret.expose().as_bytes())
        .map_err(|_| SignatureError::Mismatch(HEADER))?;
    mac.update(body);
    mac.verify_slice(&expected)
        .map_err(|_| SignatureError::Mismatch(HEADER))
}

/// How far a GitGuardian `Timestamp` may be from now.
pub const GITGUARDIAN_TOLERANCE: TimeDelta = TimeDelta::minutes(5);

/// Checks GitGuardian's `Gitguardian-Signature` over `Timestamp` + token and the raw `body`, and
/// that the timestamp (Unix seconds) is within [`GITGUARDIAN_TOLERANCE`] of `now`.
pub fn verify_gitguardian(
    body: &[u8],
    token: &Secret,
    timestamp: Option<&str>,
    signature: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), SignatureError> {
    const HEADER: &str = "Gitguardian-Signature";
    let expected = digest_of(HEADER, signature)?;
    let timestamp = timestamp
        .ok_or(SignatureError::Missing("Timestamp"))?
        .trim();
    let seconds: i64 = timestamp
        .parse()
        .map_err(|_| SignatureError::BadTimestamp)?;
    let at = DateTime::from_timestamp(seconds, 0).ok_or(SignatureError::BadTimestamp)?;
    let away = now.signed_duration_since(at).abs();
    if away > GITGUARDIAN_TOLERANCE {
        return Err(SignatureError::Stale(
            away.num_seconds(),
            GITGUARDIAN_TOLERANCE.num_seconds(),
        ));
    }
    let key = format!("{timestamp}{}", token.expose());
    let key = zeroize::Zeroizing::new(key);
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(key.as_bytes())
        .map_err(|_| SignatureError::Mismatch(HEADER))?;
    mac.update(body);
    mac.verify_slice(&expected)
        .map_err(|_| SignatureError::Mismatch(HEADER))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hmac_hex(key: &[u8], body: &[u8]) -> String {
        let mut mac = <HmacSha256 as KeyInit>::new_from_slice(key).expect("key");
        mac.update(body);
        hex::encode(mac.finalize().into_bytes())
    }

    #[test]
    fn github_signatures_are_checked_over_the_raw_body() {
        // GitHub's documented example: secret "It's a Secret to Everybody", body "Hello, World!".
        let secret = Secret::new("It's a Secret to Everybody".to_owned());
        let good = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert_eq!(verify_github(b"Hello, World!", &secret, Some(good)), Ok(()));
        assert_eq!(
            verify_github(b"Hello, World?", &secret, Some(good)),
            Err(SignatureError::Mismatch("X-Hub-Signature-256"))
        );
        assert_eq!(
            verify_github(b"Hello, World!", &secret, None),
            Err(SignatureError::Missing("X-Hub-Signature-256"))
        );
        assert_eq!(
            verify_github(b"Hello, World!", &secret, Some("sha1=abc")),
            Err(SignatureError::Malformed("X-Hub-Signature-256"))
        );
    }

    #[test]
    fn gitguardian_signatures_cover_the_timestamp_and_refuse_stale_deliveries() {
        let token = Secret::new("gg-token".to_owned());
        let now = DateTime::from_timestamp(1_800_000_000, 0).expect("time");
        let body = br#"{"source":"GitGuardian"}"#;
        let timestamp = "1800000000";
        let good = format!("sha256={}", hmac_hex(b"1800000000gg-token", body));
        assert_eq!(
            verify_gitguardian(body, &token, Some(timestamp), Some(&good), now),
            Ok(())
        );
        // Another timestamp with the same signature: the timestamp is part of the key.
        assert_eq!(
            verify_gitguardian(body, &token, Some("1800000001"), Some(&good), now),
            Err(SignatureError::Mismatch("Gitguardian-Signature"))
        );
        let later = now + TimeDelta::minutes(6);
        assert_eq!(
            verify_gitguardian(body, &token, Some(timestamp), Some(&good), later),
            Err(SignatureError::Stale(360, 300))
        );
        assert_eq!(
            verify_gitguardian(body, &token, None, Some(&good), now),
            Err(SignatureError::Missing("Timestamp"))
        );
    }
}
