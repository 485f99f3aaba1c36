//! Creating a file that holds a secret (a key keywarden makes for itself) exactly once: mode
//! 0600 from its first byte, written whole under a temporary name in its directory and linked
//! into place, so a reader never sees a partial file and a file another process linked first is
//! never replaced.

use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// What became of the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Linked {
    /// This call created it with the contents given.
    Created,
    /// Another process created it first: read that one.
    Exists,
}

/// Creates `path` with `contents` unless it exists; its directory is created if missing.
pub fn create_once(path: &Path, contents: &[u8]) -> std::io::Result<Linked> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&dir)?;
    let nonce = getrandom::u64().map_err(std::io::Error::other)?;
    let tmp = dir.join(format!(
        ".{}.{nonce:016x}.tmp",
        path.file_name().unwrap_or_default().to_string_lossy()
    ));
    let written = (|| -> std::io::Result<()> {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(contents)?;
        file.sync_all()
    })();
    let linked = written.and_then(|()| fs::hard_link(&tmp, path));
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            if let Ok(dir) = File::open(&dir) {
                let _ = dir.sync_all();
            }
            Ok(Linked::Created)
        }
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => Ok(Linked::Exists),
        Err(err) => Err(err),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn a_secret_file_is_made_once_with_mode_0600_and_never_replaced() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sub/key");
        assert_eq!(
            create_once(&path, b"first").expect("create"),
            Linked::Created
        );
        let mode = fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            create_once(&path, b"second").expect("again"),
            Linked::Exists
        );
        assert_eq!(fs::read(&path).expect("read"), b"first");
        let left: Vec<_> = fs::read_dir(dir.path().join("sub"))
            .expect("dir")
            .filter_map(Result::ok)
            .map(|it| it.file_name())
            .collect();
        assert_eq!(left.len(), 1, "no temporary file is left: {left:?}");
    }
}
