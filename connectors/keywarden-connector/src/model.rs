//! Identities, credentials and what a scan of one source returns.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

/// Defines a closed, snake_case-named enum with `as_str`, `ALL`, `Display`, `FromStr` (failing with
/// a [`ParseKindError`] that lists the expected names) and serde by that name. Used for every
/// configured kind, so each has one name everywhere. The calling crate must depend on `serde`.
#[macro_export]
macro_rules! named_enum {
    ($(#[$meta:meta])* $name:ident, $what:literal { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[derive(::serde::Serialize, ::serde::Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant,)+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [Self] = &[$(Self::$variant,)+];

            /// The one snake_case name used in config, policies, the store and output.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)+
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::ParseKindError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok(Self::$variant),)+
                    _ => Err($crate::ParseKindError {
                        what: $what,
                        found: s.to_owned(),
                        expected: Self::ALL.iter().map(|it| it.as_str()).collect(),
                    }),
                }
            }
        }
    };
}

named_enum! {
    /// What kind of principal an identity is.
    IdentityKind, "identity kind" {
        IamUser = "iam_user",
        IamRole = "iam_role",
        ApproleRole = "approle_role",
        VaultEntity = "vault_entity",
        TransitKey = "transit_key",
        /// A Vault mount: the KV engine a secret lives in, or the auth path that minted a token
        /// bound to no entity.
        VaultMount = "vault_mount",
        /// A signing key pair (a cosign key pair, a PEM key pair, an SSH key).
        KeyPair = "key_pair",
        /// The subject a certificate was issued to.
        CertificateSubject = "certificate_subject",
    }
}

named_enum! {
    /// What kind of thing a credential is.
    CredentialKind, "credential kind" {
        /// An AWS access key.
        AccessKey = "access_key",
        /// A Vault AppRole secret-id.
        SecretId = "secret_id",
        /// A Vault token, known by its accessor.
        Token = "token",
        /// A version of a Vault KV secret.
        KvSecret = "kv_secret",
        /// A version of a Vault Transit key.
        TransitKeyVersion = "transit_key_version",
        /// A cosign key pair (`cosign.pub` with its encrypted `cosign.key`).
        CosignKey = "cosign_key",
        /// A PEM public key without its private half.
        PublicKey = "public_key",
        /// A PEM private key (its public half is derived for the fingerprint; it is never stored).
        PrivateKey = "private_key",
        /// An X.509 certificate.
        Certificate = "certificate",
        /// An OpenSSH public key.
        SshKey = "ssh_key",
    }
}

named_enum! {
    /// The state of a credential as its source reports it, or `gone` once the ledger no longer sees it.
    CredentialStatus, "credential status" {
        Active = "active",
        Inactive = "inactive",
        Revoked = "revoked",
        /// Set by the ledger when a scan no longer finds the credential; never reported by a connector.
        Gone = "gone",
    }
}

named_enum! {
    /// Where a credential's creation time came from.
    CreatedSource, "creation time source" {
        /// From the credential itself (a certificate's not-before, an access key's create date).
        Material = "material",
        /// keywarden's own first sighting: the material carries no creation time.
        FirstSeen = "first_seen",
    }
}

/// A string that names no known variant of a closed enum.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} `{found}`, expected one of: {}", expected.join(", "))]
pub struct ParseKindError {
    pub what: &'static str,
    pub found: String,
    pub expected: Vec<&'static str>,
}

/// A principal: an IAM user, an AppRole role, a key pair, a certificate subject.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Identity {
    /// Stable id within the source (an ARN, a role name, a key fingerprint).
    pub external_id: String,
    pub kind: IdentityKind,
    /// Human-readable name.
    pub name: String,
    pub owner: Option<String>,
    /// What the identity is for: `signing`, `publishing`, `deploy`, ...
    pub purpose: Option<String>,
    pub tags: BTreeMap<String, String>,
    /// What the provider itself says shows the identity's credentials exposed (the AWS managed
    /// policy `AWSCompromisedKeyQuarantineV3` attached to a user): each entry names it. Every
    /// such entry is a leak confirmed by the provider.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub confirmed_leaks: Vec<String>,
}

/// When a credential was last used, and how keywarden knows.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum LastUse {
    /// The source cannot tell.
    Unknown,
    /// The source says it has never been used.
    Never,
    /// Used at `at`, according to `source` (e.g. `aws_access_key_last_used`, `usage_log`).
    At { at: DateTime<Utc>, source: String },
}

impl LastUse {
    /// The time of last use, if known.
    pub fn at(&self) -> Option<DateTime<Utc>> {
        match self {
            Self::At { at, .. } => Some(*at),
            Self::Unknown | Self::Never => None,
        }
    }
}

/// A one-way fingerprint of a credential, stored to match it later (e.g. against a leak report).
#[derive(
    Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct Fingerprint {
    /// The algorithm and input, e.g. `sha256_spki` (SHA-256 of the DER SubjectPublicKeyInfo).
    pub algorithm: String,
    /// The value in the algorithm's customary form: lower-case hex for `sha256_*`, OpenSSH's
    /// `SHA256:<base64>` for `ssh_sha256`.
    pub value: String,
}

/// One thing that authenticates an identity.
///
/// It never holds a secret value: only ids, public material and one-way fingerprints.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Credential {
    /// Stable id within the source (an access key id, a file path, an accessor).
    pub external_id: String,
    /// The [`Identity::external_id`] this credential authenticates.
    pub identity_id: String,
    pub kind: CredentialKind,
    /// Human-readable name.
    pub name: String,
    pub status: CredentialStatus,
    /// Creation time carried by the material itself; `None` when it carries none, in which case the
    /// ledger uses its first sighting and says so.
    pub created_at: Option<DateTime<Utc>>,
    /// Start of the validity period, where the material has one.
    pub not_before: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used: LastUse,
    /// Algorithm name as people write it (`ecdsa-p256`, `ed25519`, `rsa`).
    pub algorithm: Option<String>,
    pub key_bits: Option<u32>,
    pub fingerprints: Vec<Fingerprint>,
    /// The public key, where the material shows it: its DER SubjectPublicKeyInfo, base64
    /// (standard alphabet, padded). Public by definition; what trust bundles carry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
    /// Owner of this credential, if it differs from or refines the identity's.
    pub owner: Option<String>,
    pub purpose: Option<String>,
    pub tags: BTreeMap<String, String>,
    /// Kind-specific facts: certificate subject, issuer, serial, key usage, file path, ...
    pub attributes: BTreeMap<String, String>,
    /// The signers (key ids: SHA-256 of the DER SubjectPublicKeyInfo, hex) this credential can
    /// make signatures with by the source's own access rules, sorted: a Vault token or AppRole
    /// secret-id whose policies allow `transit/sign/<key>`. Its identity holds them through it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signs_with: Vec<String>,
}

/// One record a connector could not read; the scan goes on without it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ScanError {
    /// What could not be read: a file path, a user name.
    pub subject: String,
    /// Why, in words safe to log (never a secret value).
    pub message: String,
    /// The [`Identity::external_id`] whose inventory is incomplete because of this error, when
    /// the connector can tell. Enforcement acts on nothing of that identity in this run; an error
    /// without one keeps enforcement off the whole source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
}

named_enum! {
    /// Why a connector left something it came across unread.
    SkipReason, "skip reason" {
        /// A symlink whose target is outside the scanned tree (and the source does not follow).
        SymlinkOutside = "symlink_outside",
        /// A symlink to a directory (and the source does not follow).
        SymlinkedDirectory = "symlinked_directory",
        /// A symlink whose target does not exist.
        BrokenSymlink = "broken_symlink",
        /// A FIFO, socket or device: never opened.
        SpecialFile = "special_file",
        /// Larger than the connector's limit for what it reads.
        TooLarge = "too_large",
        /// A directory already walked (a symlink loop, or a second way into it).
        Loop = "loop",
    }
}

/// Something a connector came across and left unread, and why. Not an error: the inventory is
/// complete without it; the scan's output says what was skipped so nothing goes silently missing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    /// What was skipped: a file path.
    pub subject: String,
    pub reason: SkipReason,
    /// The reason in words, e.g. the target of a symlink (never a secret value).
    pub detail: String,
}

/// Everything one scan of one source found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Inventory {
    pub identities: Vec<Identity>,
    pub credentials: Vec<Credential>,
    pub errors: Vec<ScanError>,
    /// What was left unread and why (see [`Skipped`]).
    pub skipped: Vec<Skipped>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_through_their_names() {
        for kind in CredentialKind::ALL {
            assert_eq!(kind.as_str().parse::<CredentialKind>(), Ok(*kind));
        }
        for kind in IdentityKind::ALL {
            assert_eq!(kind.as_str().parse::<IdentityKind>(), Ok(*kind));
        }
    }

    #[test]
    fn unknown_kind_lists_the_expected_names() {
        let err = "pgp_key".parse::<CredentialKind>().unwrap_err();
        let text = err.to_string();
        assert!(text.contains("unknown credential kind `pgp_key`"), "{text}");
        assert!(text.contains("cosign_key"), "{text}");
    }
}
