//! keywarden's own signing key for `keywarden` trust bundles: ECDSA P-256 with SHA-256, kept as a
//! PKCS#8 PEM file beside the database (`<database>.bundle-key`, or the file
//! `KEYWARDEN_BUNDLE_KEY_FILE` names), mode 0600, created atomically at first use.
//!
//! A signature is DER over the exact bundle bytes, as `openssl dgst -sha256 -verify` reads it;
//! the public half is a PEM `PUBLIC KEY`. The private key lives in types that zeroize on drop
//! (`p256`'s `SigningKey`, `Zeroizing` buffers) and never reaches a log line or an error message.
//! The only module that reads the key file or makes a new one (written through
//! [`crate::secret_file`], as the audit key is).

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::{DerSignature, SigningKey};
use p256::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _, EncodePublicKey as _, LineEnding};
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

/// Another place for the key file.
pub const KEY_FILE_ENV: &str = "KEYWARDEN_BUNDLE_KEY_FILE";

/// The most a key file may hold (a P-256 PKCS#8 PEM is about 240 bytes).
const MAX_KEY_FILE: u64 = 4096;

#[derive(Debug, thiserror::Error)]
pub enum BundleKeyError {
    /// The key file could not be read, created or used; never shows the key.
    #[error("the bundle signing key {}: {what}", path.display())]
    File { path: PathBuf, what: String },
    #[error("cannot sign the bundle: {0}")]
    Sign(String),
}

fn file_error(path: &Path, what: impl std::fmt::Display) -> BundleKeyError {
    BundleKeyError::File {
        path: path.to_owned(),
        what: what.to_string(),
    }
}

/// Where the bundle key of the store at `db` lives: [`KEY_FILE_ENV`] if set, else
/// `<db>.bundle-key`.
pub fn key_file(db: &Path) -> PathBuf {
    match std::env::var_os(KEY_FILE_ENV) {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => default_key_file(db),
    }
}

/// `<db>.bundle-key`.
pub fn default_key_file(db: &Path) -> PathBuf {
    let mut name = db.file_name().unwrap_or_default().to_os_string();
    name.push(".bundle-key");
    db.with_file_name(name)
}

/// keywarden's bundle signing key.
pub struct BundleKey {
    signing: SigningKey,
}

impl std::fmt::Debug for BundleKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BundleKey")
            .field("key_id", &self.key_id().unwrap_or_default())
            .finish_non_exhaustive()
    }
}

/// Whether [`BundleKey::load_or_create`] made a new key file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    Loaded,
    Created,
}

impl BundleKey {
    /// The key in `path`, or a new one written there if the file does not exist (if another
    /// process writes it first, that one).
    pub fn load_or_create(path: &Path) -> Result<(Self, Origin), BundleKeyError> {
        match Self::load(path)? {
            Some(key) => Ok((key, Origin::Loaded)),
            None => create_key_file(path),
        }
    }

    /// The key in `path`; `None` if the file does not exist. Refuses a file group or others may
    /// read or write.
    pub fn load(path: &Path) -> Result<Option<Self>, BundleKeyError> {
        let file = match File::open(path) {
            Ok(file) => file,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(file_error(path, format!("cannot open: {err}"))),
        };
        let meta = file
            .metadata()
            .map_err(|err| file_error(path, format!("cannot stat: {err}")))?;
        if !meta.is_file() {
            return Err(file_error(path, "not a regular file"));
        }
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(file_error(
                path,
                format!(
                    "mode {mode:o} lets group or others read or write the signing key; \
                     `chmod 600 {}` (and, if others could read it, replace the key)",
                    path.display()
                ),
            ));
        }
        // Room for the whole file up front: a buffer that grew would leave copies of the key in
        // memory it freed, which no zeroizing reaches.
        let mut text = Zeroizing::new(String::with_capacity(MAX_KEY_FILE as usize + 1));
        file.take(MAX_KEY_FILE + 1)
            .read_to_string(&mut text)
            .map_err(|err| file_error(path, format!("cannot read: {err}")))?;
        if text.len() as u64 > MAX_KEY_FILE {
            return Err(file_error(path, "larger than a key file"));
        }
        // The parser's own error says nothing of the key, but is not needed either.
        let secret = p256::SecretKey::from_pkcs8_pem(&text)
            .map_err(|_| file_error(path, "not a P-256 private key in PKCS#8 PEM"))?;
        Ok(Some(Self {
            signing: SigningKey::from(&secret),
        }))
    }

    /// A new random key (not written anywhere).
    pub fn generate() -> Result<Self, String> {
        // A random 32-byte string is a valid scalar but with negligible odds; try a few.
        for _ in 0..8 {
            let mut bytes = Zeroizing::new([0_u8; 32]);
            getrandom::fill(bytes.as_mut()).map_err(|err| format!("no randomness: {err}"))?;
            if let Ok(secret) = p256::SecretKey::from_slice(bytes.as_ref()) {
                return Ok(Self {
                    signing: SigningKey::from(&secret),
                });
            }
        }
        Err("no valid P-256 scalar drawn".to_owned())
    }

    /// The public key's DER SubjectPublicKeyInfo.
    fn public_key_der(&self) -> Result<Vec<u8>, BundleKeyError> {
        self.signing
            .verifying_key()
            .to_public_key_der()
            .map(|it| it.as_bytes().to_vec())
            .map_err(|err| BundleKeyError::Sign(format!("cannot encode the public key: {err}")))
    }

    /// The public key as PEM `PUBLIC KEY` (LF line endings).
    pub fn public_key_pem(&self) -> Result<String, BundleKeyError> {
        self.signing
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .map_err(|err| BundleKeyError::Sign(format!("cannot encode the public key: {err}")))
    }

    /// The key id: lower-hex SHA-256 of the public key's DER SubjectPublicKeyInfo.
    pub fn key_id(&self) -> Result<String, BundleKeyError> {
        Ok(hex::encode(Sha256::digest(self.public_key_der()?)))
    }

    /// An ECDSA P-256 signature over SHA-256 of `message`, DER (RFC 6979 nonces).
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, BundleKeyError> {
        let signature: DerSignature = self
            .signing
            .try_sign(message)
            .map_err(|_| BundleKeyError::Sign("the signature could not be made".to_owned()))?;
        Ok(signature.as_bytes().to_vec())
    }

    /// The private key as PKCS#8 PEM, zeroized on drop.
    fn to_pem(&self) -> Result<Zeroizing<String>, String> {
        p256::SecretKey::from(self.signing.as_nonzero_scalar())
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|_| "cannot encode the key".to_owned())
    }
}

fn create_key_file(path: &Path) -> Result<(BundleKey, Origin), BundleKeyError> {
    let key = BundleKey::generate().map_err(|err| file_error(path, err))?;
    let pem = key.to_pem().map_err(|err| file_error(path, err))?;
    match crate::secret_file::create_once(path, pem.as_bytes()) {
        Ok(crate::secret_file::Linked::Created) => {
            tracing::info!(file = %path.display(), "Created the bundle signing key file.");
            Ok((key, Origin::Created))
        }
        Ok(crate::secret_file::Linked::Exists) => BundleKey::load(path)?
            .map(|key| (key, Origin::Loaded))
            .ok_or_else(|| file_error(path, "vanished while it was being created")),
        Err(err) => Err(file_error(path, format!("cannot create: {err}"))),
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use p256::ecdsa::VerifyingKey;
    use p256::ecdsa::signature::Verifier as _;
    use p256::pkcs8::DecodePublicKey as _;

    use super::*;

    #[test]
    fn a_key_is_made_once_0600_and_read_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = default_key_file(&dir.path().join("ledger.db"));
        assert_eq!(path, dir.path().join("ledger.db.bundle-key"));
        let (made, origin) = BundleKey::load_or_create(&path).expect("create");
        assert_eq!(origin, Origin::Created);
        let mode = fs::metadata(&path).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let (again, origin) = BundleKey::load_or_create(&path).expect("load");
        assert_eq!(origin, Origin::Loaded);
        assert_eq!(made.key_id().expect("id"), again.key_id().expect("id"));
        let text = fs::read_to_string(&path).expect("read");
        assert!(text.starts_with("-----BEGIN PRIVATE KEY-----"), "PKCS#8");
        // No temporary file is left beside it.
        assert_eq!(fs::read_dir(dir.path()).expect("dir").count(), 1);
    }

    #[test]
    fn a_signature_verifies_with_the_public_key_and_only_over_the_same_bytes() {
        let key = BundleKey::generate().expect("key");
        let signature = key.sign(b"bundle").expect("sign");
        let public = VerifyingKey::from_public_key_pem(&key.public_key_pem().expect("pem"))
            .expect("public key");
        let der = p256::ecdsa::DerSignature::try_from(signature.as_slice()).expect("der");
        assert!(public.verify(b"bundle", &der).is_ok());
        assert!(public.verify(b"bundlE", &der).is_err());
    }

    #[test]
    fn a_key_file_others_can_read_is_refused_without_showing_the_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("key");
        BundleKey::load_or_create(&path).expect("create");
        let text = fs::read_to_string(&path).expect("read");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).expect("chmod");
        let err = BundleKey::load(&path).expect_err("refused").to_string();
        assert!(err.contains("mode 640"), "{err}");
        assert!(err.contains("chmod 600"), "{err}");
        for line in text.lines().filter(|it| !it.starts_with("-----")) {
            assert!(!err.contains(line), "the key is not in the error");
        }
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).expect("chmod");
        fs::write(&path, "not a key").expect("write");
        let err = BundleKey::load(&path).expect_err("refused").to_string();
        assert!(err.contains("not a P-256 private key"), "{err}");
    }

    #[test]
    fn debug_shows_the_key_id_only() {
        let key = BundleKey::generate().expect("key");
        let shown = format!("{key:?}");
        let pem = key.to_pem().expect("pem");
        assert!(shown.contains(&key.key_id().expect("id")), "{shown}");
        for line in pem.lines().filter(|it| !it.starts_with("-----")) {
            assert!(!shown.contains(line));
        }
    }
}
