//! keywarden connector `files`: signing keys and certificates in local files.
//!
//! A `files` source walks the directories named by its [`FilesConfig`] and reports:
//!
//! - cosign key pairs (`cosign.pub` + encrypted `cosign.key`) as `cosign_key` credentials;
//! - PEM and DER public and private keys (PKCS#8, SEC1, PKCS#1; P-256, P-384, Ed25519, RSA) as
//!   `public_key` / `private_key` credentials;
//! - OpenSSH public keys and `OPENSSH PRIVATE KEY` files as `ssh_key` credentials;
//! - X.509 certificates (PEM, or DER named `*.der`, `*.cer`, `*.crt`) as `certificate`
//!   credentials of a `certificate_subject` identity.
//!
//! Every key is fingerprinted as `sha256_spki` (lower-hex SHA-256 of its DER
//! SubjectPublicKeyInfo, the form cosign uses) and `ssh_sha256` (OpenSSH `SHA256:<base64>`), so one
//! key found in several forms and files becomes one credential with the id
//! `key:sha256:<sha256_spki>`.
//! Certificates get the id `cert:sha256:<SHA-256 of the DER>`; encrypted keys whose public half is
//! nowhere to be found get `file:<path>`.
//!
//! Architecture invariants:
//! - Encrypted keys are never decrypted; unencrypted private keys are decoded only to derive their
//!   public half, held in `Zeroizing` buffers and dropped at once; no key byte reaches an error
//!   message or a log line.
//! - Ages come only from the material (a certificate's not-before), never from file times.
//! - One unreadable or malformed file is one [`keywarden_connector::ScanError`]; the scan goes on.

mod config;
mod key;
mod parse;
mod scan;
mod usage;
mod walk;

#[cfg(test)]
mod tests;

pub use crate::config::{FilesConfig, PathRule};
pub use crate::scan::FilesConnector;

/// The connector kind, the config `type` of a `files` source.
pub const KIND: &str = "files";

/// The public key of key material (PEM or DER keys and certificates, OpenSSH keys, a private key
/// only to derive its public half): its key id and public key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKeyId {
    /// Lower-hex SHA-256 of the DER SubjectPublicKeyInfo (`sha256_spki`).
    pub key_id: String,
    /// That DER SubjectPublicKeyInfo, base64.
    pub public_key: String,
}

/// The public keys in `bytes`, the contents of a file named `file_name` (the name only tells DER
/// and OpenSSH forms apart), in the order found; an error says why nothing could be read. An
/// encrypted private key has no public key here: it is never decrypted. Private key bytes are
/// decoded in zeroized buffers and never leave this function.
pub fn public_keys_of(file_name: &str, bytes: &[u8]) -> Result<Vec<PublicKeyId>, String> {
    let Some(parsed) = parse::parse_file(file_name, bytes) else {
        return Err(
            "not key material (no PEM block, DER key or certificate, or OpenSSH key)".into(),
        );
    };
    let mut keys = Vec::new();
    for item in &parsed.items {
        let found = match item {
            parse::Item::Key(key) => key.key.as_ref().map(|it| PublicKeyId {
                key_id: it.sha256_spki.clone(),
                public_key: it.public_key.clone(),
            }),
            parse::Item::Certificate(cert) => Some(PublicKeyId {
                key_id: cert.sha256_spki.clone(),
                public_key: cert.public_key.clone(),
            }),
        };
        if let Some(found) = found
            && !keys.contains(&found)
        {
            keys.push(found);
        }
    }
    if keys.is_empty() {
        return Err(parsed.errors.first().cloned().unwrap_or_else(|| {
            "no public key (an encrypted private key alone shows none)".into()
        }));
    }
    Ok(keys)
}
