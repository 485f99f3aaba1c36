//! Public keys: decoding them from every supported container and fingerprinting them.
//!
//! Every key, whatever file it came from, is decoded into [`PublicKey`] and re-encoded as a DER
//! SubjectPublicKeyInfo before it is hashed, so the same key in PEM, PKCS#8, SEC1, PKCS#1 and
//! OpenSSH form gets one and the same `sha256_spki` fingerprint.
//! Private keys are decoded only to derive their public half and are dropped (and zeroized by
//! their crates) before the function returns.

use std::ops::RangeInclusive;

use base64::Engine as _;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePublicKey};
use rsa::traits::PublicKeyParts;
use sha2::{Digest, Sha256};
use spki::ObjectIdentifier;
use ssh_key::public::{EcdsaPublicKey, Ed25519PublicKey, KeyData, RsaPublicKey};
use ssh_key::{HashAlg, Mpint};

/// `id-ecPublicKey` (RFC 5480).
const OID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
/// `secp256r1` / `prime256v1`.
const OID_P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
/// `secp384r1`.
const OID_P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
/// `id-Ed25519` (RFC 8410).
const OID_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
/// `rsaEncryption` (RFC 8017).
const OID_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");

/// RSA modulus sizes accepted, in bits: weak keys are inventoried (and flagged by policy), not
/// refused.
const RSA_BITS: RangeInclusive<usize> = 512..=16384;

/// Why a key could not be decoded. Messages name the container and the decoder's reason (which
/// only ever carries ASN.1 tags and offsets), never key bytes.
#[derive(Debug, thiserror::Error)]
pub(crate) enum KeyError {
    /// A well-formed key of an algorithm this connector does not handle.
    #[error("unsupported key algorithm {0}")]
    Unsupported(String),
    /// The container could not be decoded.
    #[error("invalid {what}: {reason}")]
    Malformed {
        /// What was being decoded (`PKCS#8 private key`, `SubjectPublicKeyInfo`, ...).
        what: &'static str,
        /// The decoder's reason.
        reason: String,
    },
}

impl KeyError {
    fn malformed(what: &'static str, reason: impl std::fmt::Display) -> Self {
        Self::Malformed {
            what,
            reason: reason.to_string(),
        }
    }
}

/// A decoded public key of a supported algorithm.
#[derive(Debug)]
pub(crate) enum PublicKey {
    Ed25519(ed25519_dalek::VerifyingKey),
    P256(p256::PublicKey),
    P384(p384::PublicKey),
    Rsa(rsa::PublicKey),
}

/// The public facts about a key that end up in the inventory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct KeyFacts {
    /// `ecdsa-p256`, `ecdsa-p384`, `ed25519` or `rsa`.
    pub(crate) algorithm: &'static str,
    /// Curve size, or RSA modulus size in bits.
    pub(crate) bits: u32,
    /// Lower-hex SHA-256 of the DER SubjectPublicKeyInfo.
    pub(crate) sha256_spki: String,
    /// That DER SubjectPublicKeyInfo, base64.
    pub(crate) public_key: String,
    /// The OpenSSH `SHA256:<base64>` fingerprint.
    pub(crate) ssh_sha256: String,
}

impl PublicKey {
    /// Decodes a DER SubjectPublicKeyInfo (`PUBLIC KEY`).
    pub(crate) fn from_spki_der(der: &[u8]) -> Result<Self, KeyError> {
        let info = spki::SubjectPublicKeyInfoRef::try_from(der)
            .map_err(|error| KeyError::malformed("SubjectPublicKeyInfo", error))?;
        let what = "SubjectPublicKeyInfo";
        match algorithm_of(info.algorithm.oid, info.algorithm.parameters_oid().ok())? {
            Algorithm::Ed25519 => ed25519_dalek::VerifyingKey::from_public_key_der(der)
                .map(Self::Ed25519)
                .map_err(|error| KeyError::malformed(what, error)),
            Algorithm::P256 => p256::PublicKey::from_public_key_der(der)
                .map(Self::P256)
                .map_err(|error| KeyError::malformed(what, error)),
            Algorithm::P384 => p384::PublicKey::from_public_key_der(der)
                .map(Self::P384)
                .map_err(|error| KeyError::malformed(what, error)),
            Algorithm::Rsa => {
                let bits = info.subject_public_key.as_bytes().ok_or_else(|| {
                    KeyError::malformed(what, "the key is not a whole number of bytes")
                })?;
                Self::from_pkcs1_public_der(bits)
            }
        }
    }

    /// Decodes a PKCS#1 `RSA PUBLIC KEY`.
    pub(crate) fn from_pkcs1_public_der(der: &[u8]) -> Result<Self, KeyError> {
        let what = "PKCS#1 RSA public key";
        let key = rsa::pkcs1::RsaPublicKeyRef::try_from(der)
            .map_err(|error| KeyError::malformed(what, error))?;
        rsa_public(key.modulus.as_bytes(), key.public_exponent.as_bytes(), what)
    }

    /// Derives the public key of a PKCS#8 `PRIVATE KEY`.
    pub(crate) fn from_pkcs8_private_der(der: &[u8]) -> Result<Self, KeyError> {
        let what = "PKCS#8 private key";
        let info = pkcs8::PrivateKeyInfoRef::try_from(der)
            .map_err(|error| KeyError::malformed(what, error))?;
        match algorithm_of(info.algorithm.oid, info.algorithm.parameters_oid().ok())? {
            Algorithm::Ed25519 => ed25519_dalek::SigningKey::from_pkcs8_der(der)
                .map(|secret| Self::Ed25519(secret.verifying_key()))
                .map_err(|error| KeyError::malformed(what, error)),
            Algorithm::P256 => p256::SecretKey::from_pkcs8_der(der)
                .map(|secret| Self::P256(secret.public_key()))
                .map_err(|error| KeyError::malformed(what, error)),
            Algorithm::P384 => p384::SecretKey::from_pkcs8_der(der)
                .map(|secret| Self::P384(secret.public_key()))
                .map_err(|error| KeyError::malformed(what, error)),
            Algorithm::Rsa => Self::from_pkcs1_private_der(info.private_key.as_bytes()),
        }
    }

    /// Derives the public key of a SEC1 `EC PRIVATE KEY` (P-256 or P-384).
    pub(crate) fn from_sec1_private_der(der: &[u8]) -> Result<Self, KeyError> {
        if let Ok(secret) = p256::SecretKey::from_sec1_der(der) {
            return Ok(Self::P256(secret.public_key()));
        }
        match p384::SecretKey::from_sec1_der(der) {
            Ok(secret) => Ok(Self::P384(secret.public_key())),
            Err(_) => Err(KeyError::malformed(
                "SEC1 EC private key",
                "not a P-256 or P-384 key, or malformed",
            )),
        }
    }

    /// Reads the public key (modulus and public exponent) of a PKCS#1 `RSA PRIVATE KEY`; the
    /// private components are not decoded.
    pub(crate) fn from_pkcs1_private_der(der: &[u8]) -> Result<Self, KeyError> {
        let what = "PKCS#1 RSA private key";
        let key = rsa::pkcs1::RsaPrivateKeyRef::try_from(der)
            .map_err(|error| KeyError::malformed(what, error))?;
        rsa_public(key.modulus.as_bytes(), key.public_exponent.as_bytes(), what)
    }

    /// Converts an OpenSSH public key.
    pub(crate) fn from_ssh(key: &KeyData) -> Result<Self, KeyError> {
        let what = "OpenSSH public key";
        match key {
            KeyData::Ed25519(Ed25519PublicKey(bytes)) => {
                ed25519_dalek::VerifyingKey::from_bytes(bytes)
                    .map(Self::Ed25519)
                    .map_err(|error| KeyError::malformed(what, error))
            }
            KeyData::Ecdsa(EcdsaPublicKey::NistP256(point)) => {
                p256::PublicKey::from_sec1_bytes(point.as_bytes())
                    .map(Self::P256)
                    .map_err(|error| KeyError::malformed(what, error))
            }
            KeyData::Ecdsa(EcdsaPublicKey::NistP384(point)) => {
                p384::PublicKey::from_sec1_bytes(point.as_bytes())
                    .map(Self::P384)
                    .map_err(|error| KeyError::malformed(what, error))
            }
            KeyData::Rsa(RsaPublicKey { e, n }) => {
                let (Some(e), Some(n)) = (e.as_positive_bytes(), n.as_positive_bytes()) else {
                    return Err(KeyError::malformed(what, "negative RSA parameter"));
                };
                rsa_public(n, e, what)
            }
            other => Err(KeyError::Unsupported(other.algorithm().to_string())),
        }
    }

    /// The DER SubjectPublicKeyInfo, as every PKIX tool writes it.
    fn spki_der(&self) -> Result<Vec<u8>, KeyError> {
        let doc = match self {
            Self::Ed25519(key) => key.to_public_key_der(),
            Self::P256(key) => key.to_public_key_der(),
            Self::P384(key) => key.to_public_key_der(),
            Self::Rsa(key) => key.to_public_key_der(),
        };
        doc.map(|doc| doc.into_vec())
            .map_err(|error| KeyError::malformed("public key encoding", error))
    }

    /// The same key as OpenSSH wire data.
    fn ssh_key_data(&self) -> Result<KeyData, KeyError> {
        let what = "OpenSSH key encoding";
        match self {
            Self::Ed25519(key) => Ok(KeyData::Ed25519(Ed25519PublicKey(key.to_bytes()))),
            Self::P256(key) => EcdsaPublicKey::from_sec1_bytes(&key.to_sec1_bytes())
                .map(KeyData::Ecdsa)
                .map_err(|error| KeyError::malformed(what, error)),
            Self::P384(key) => EcdsaPublicKey::from_sec1_bytes(&key.to_sec1_bytes())
                .map(KeyData::Ecdsa)
                .map_err(|error| KeyError::malformed(what, error)),
            Self::Rsa(key) => {
                let e = Mpint::from_positive_bytes(&key.e_bytes())
                    .map_err(|error| KeyError::malformed(what, error))?;
                let n = Mpint::from_positive_bytes(&key.n_bytes())
                    .map_err(|error| KeyError::malformed(what, error))?;
                Ok(KeyData::Rsa(RsaPublicKey { e, n }))
            }
        }
    }

    /// Algorithm, size and fingerprints.
    pub(crate) fn facts(&self) -> Result<KeyFacts, KeyError> {
        let (algorithm, bits) = match self {
            Self::Ed25519(_) => ("ed25519", 256),
            Self::P256(_) => ("ecdsa-p256", 256),
            Self::P384(_) => ("ecdsa-p384", 384),
            Self::Rsa(key) => ("rsa", key.n().as_ref().bit_width_vartime()),
        };
        let ssh = ssh_key::PublicKey::new(self.ssh_key_data()?, "");
        let spki = self.spki_der()?;
        Ok(KeyFacts {
            algorithm,
            bits,
            sha256_spki: sha256_hex(&spki),
            public_key: base64::engine::general_purpose::STANDARD.encode(&spki),
            ssh_sha256: ssh.fingerprint(HashAlg::Sha256).to_string(),
        })
    }
}

/// An RSA public key from its big-endian modulus and exponent.
fn rsa_public(n: &[u8], e: &[u8], what: &'static str) -> Result<PublicKey, KeyError> {
    let n = rsa::BoxedUint::from_be_slice_vartime(n);
    let e = rsa::BoxedUint::from_be_slice_vartime(e);
    rsa::PublicKey::new_with_size_limits(n, e, RSA_BITS)
        .map(PublicKey::Rsa)
        .map_err(|error| KeyError::malformed(what, error))
}

/// Lower-hex SHA-256 of `bytes`.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The key algorithms this connector decodes.
enum Algorithm {
    Ed25519,
    P256,
    P384,
    Rsa,
}

/// Maps an AlgorithmIdentifier to a supported algorithm.
fn algorithm_of(
    oid: ObjectIdentifier,
    parameter: Option<ObjectIdentifier>,
) -> Result<Algorithm, KeyError> {
    match (oid, parameter) {
        (OID_ED25519, _) => Ok(Algorithm::Ed25519),
        (OID_RSA, _) => Ok(Algorithm::Rsa),
        (OID_EC_PUBLIC_KEY, Some(OID_P256)) => Ok(Algorithm::P256),
        (OID_EC_PUBLIC_KEY, Some(OID_P384)) => Ok(Algorithm::P384),
        (OID_EC_PUBLIC_KEY, Some(curve)) => Err(KeyError::Unsupported(format!("EC curve {curve}"))),
        (OID_EC_PUBLIC_KEY, None) => Err(KeyError::malformed(
            "EC key",
            "the named curve parameter is missing",
        )),
        (other, _) => Err(KeyError::Unsupported(other.to_string())),
    }
}
