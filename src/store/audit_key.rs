//! Where a store's audit key comes from: `KEYWARDEN_AUDIT_KEY`, or a 0600 file beside the database
//! (`<database>.audit-key`, or `KEYWARDEN_AUDIT_KEY_FILE`), created at first use.
//!
//! The key never enters the database, a log line or an error message.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::audit::AuditKey;
use crate::store::{Result, StoreError};

/// The key itself, as 64 hex digits or base64 of 32 bytes.
pub const KEY_ENV: &str = "KEYWARDEN_AUDIT_KEY";
/// Another place for the key file.
pub const KEY_FILE_ENV: &str = "KEYWARDEN_AUDIT_KEY_FILE";

/// Where the key of the store at `db` comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeySource {
    /// The environment variable [`KEY_ENV`].
    Env,
    /// A key file.
    File(PathBuf),
}

impl KeySource {
    /// The environment's choice for the store at `db`: [`KEY_ENV`] if set, else the file named by
    /// [`KEY_FILE_ENV`], else `<db>.audit-key`.
    pub fn for_store(db: &Path) -> Self {
        if std::env::var_os(KEY_ENV).is_some() {
            return Self::Env;
        }
        match std::env::var_os(KEY_FILE_ENV) {
            Some(path) if !path.is_empty() => Self::File(PathBuf::from(path)),
            _ => Self::File(default_key_file(db)),
        }
    }

    /// Reads the key; `Ok(None)` if the key file does not exist yet.
    pub fn load(&self) -> Result<Option<AuditKey>> {
        match self {
            Self::Env => {
                let text =
                    zeroize::Zeroizing::new(std::env::var(KEY_ENV).map_err(|_| {
                        StoreError::AuditKey(format!("{KEY_ENV} is not valid UTF-8"))
                    })?);
                AuditKey::parse(&text)
                    .map(Some)
                    .map_err(|err| StoreError::AuditKey(format!("{KEY_ENV}: {err}")))
            }
            Self::File(path) => read_key_file(path),
        }
    }

    /// Creates a new random key file; if another process created it first, reads that one.
    pub fn create(&self) -> Result<AuditKey> {
        match self {
            Self::Env => Err(StoreError::AuditKey(format!("{KEY_ENV} is set but empty"))),
            Self::File(path) => create_key_file(path),
        }
    }
}

impl std::fmt::Display for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Env => f.write_str(KEY_ENV),
            Self::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// `<db>.audit-key`.
pub fn default_key_file(db: &Path) -> PathBuf {
    let mut name = db.file_name().unwrap_or_default().to_os_string();
    name.push(".audit-key");
    db.with_file_name(name)
}

fn key_error(path: &Path, what: impl std::fmt::Display) -> StoreError {
    StoreError::AuditKey(format!("{}: {what}", path.display()))
}

fn read_key_file(path: &Path) -> Result<Option<AuditKey>> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(key_error(path, format!("cannot open: {err}"))),
    };
    let meta = file
        .metadata()
        .map_err(|err| key_error(path, format!("cannot stat: {err}")))?;
    if !meta.is_file() {
        return Err(key_error(path, "not a regular file"));
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(key_error(
            path,
            format!(
                "mode {mode:o} lets group or others read or write the audit key; \
                 `chmod 600 {}` (or make a new store)",
                path.display()
            ),
        ));
    }
    // Room for all it reads up front: a buffer that grew would leave copies of the key behind.
    let mut text = zeroize::Zeroizing::new(String::with_capacity(1024));
    file.take(1024)
        .read_to_string(&mut text)
        .map_err(|err| key_error(path, format!("cannot read: {err}")))?;
    AuditKey::parse(&text)
        .map(Some)
        .map_err(|err| key_error(path, err))
}

fn create_key_file(path: &Path) -> Result<AuditKey> {
    let key = AuditKey::from_fill(getrandom::fill)
        .map_err(|err| key_error(path, format!("no randomness for a new key: {err}")))?;
    let text = zeroize::Zeroizing::new(format!("{}\n", key.to_hex().as_str()));
    match crate::secret_file::create_once(path, text.as_bytes()) {
        Ok(crate::secret_file::Linked::Created) => {
            tracing::info!(file = %path.display(), "Created the audit key file.");
            Ok(key)
        }
        Ok(crate::secret_file::Linked::Exists) => read_key_file(path)?
            .ok_or_else(|| key_error(path, "vanished while it was being created")),
        Err(err) => Err(key_error(path, format!("cannot create: {err}"))),
    }
}
