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
