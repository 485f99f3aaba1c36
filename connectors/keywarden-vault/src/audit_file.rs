//! Following Vault's file audit log from one scan to the next.
//!
//! A scan remembers where it stopped: the file (device and inode) and the offset just after its
//! last whole line. The next scan reads on from there. After a rotation (the file renamed, e.g.
//! `audit.log` → `audit.log.1`, and Vault writing a new `audit.log` after its SIGHUP) it first
//! reads the rest of the old file, found by its inode in the same directory, then the new one
//! from its start. A file cut shorter than the offset (logrotate's `copytruncate`) is read from
//! its start. A line still being written (no newline yet) is left for the next scan.

use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::audit_log::Uses;

/// Where reading stopped: which file, and the offset after its last whole line.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    pub dev: u64,
    pub ino: u64,
    pub offset: u64,
    /// SHA-256 (hex) of the file's first whole line, `""` before it has one: tells the file
    /// from a new one that got the same inode after it was deleted.
    #[serde(default)]
    pub head: String,
}

/// The audit log could not be read.
#[derive(Debug, thiserror::Error)]
#[error("the audit log {}: {source}", path.display())]
pub struct AuditFileError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// What one read found.
#[derive(Debug, Default)]
pub struct Read {
    pub uses: Uses,
    pub position: Position,
    /// Lines written since `from` may not all have been read: the file read last time was
    /// rotated away and is no longer there, or was cut shorter (a copytruncate).
    pub lost_rotated: bool,
}

/// Reads what was written to the log at `path` since `from` (everything, the first time).
pub fn read_new(path: &Path, from: Option<Position>) -> Result<Read, AuditFileError> {
    let failed = |path: &Path| {
        let path = path.to_owned();
        move |source| AuditFileError { path, source }
    };
    let mut read = Read::default();
    let current = match std::fs::metadata(path) {
        Ok(meta) => Some(meta),
        // Rotated away and not opened again yet: the old file may still be there.
        Err(err) if err.kind() == std::io::ErrorKind::NotFound && from.is_some() => None,
        Err(err) => return Err(failed(path)(err)),
    };
    let same_file = |meta: &std::fs::Metadata, at: &Position| {
        meta.dev() == at.dev && meta.ino() == at.ino && same_head(path, at)
    };
    let start = match (from.clone(), &current) {
        (Some(at), Some(meta)) if same_file(meta, &at) => {
            // Cut shorter than where we stopped: a copytruncate; read it from its start.
            if meta.len() < at.offset {
                read.lost_rotated = true;
                0
            } else {
                at.offset
            }
        }
        (Some(at), _) => {
            // Rotated: the rest of the old file first.
            match rotated(path, &at) {
                Some(old) => {
                    let end = read_from(&old, at.offset, &mut read.uses).map_err(failed(&old))?;
                    if current.is_none() {
                        read.position = Position {
                            offset: end,
                            ..at.clone()
                        };
                        return Ok(read);
                    }
                }
                None => read.lost_rotated = true,
            }
            if current.is_none() {
                read.position = at;
                return Ok(read);
            }
            0
        }
        (None, _) => 0,
    };
    let Some(meta) = current else {
        return Err(failed(path)(std::io::ErrorKind::NotFound.into()));
    };
    let end = read_from(path, start, &mut read.uses).map_err(failed(path))?;
    read.position = Position {
        dev: meta.dev(),
        ino: meta.ino(),
        offset: end,
        head: head(path).map_err(failed(path))?,
    };
    Ok(read)
}

/// The SHA-256 (hex) of the first whole line of the file, `""` if it has none yet.
fn head(path: &Path) -> std::io::Result<String> {
    use sha2::{Digest as _, Sha256};
    let mut reader = BufReader::new(File::open(path)?);
    let mut line = Vec::new();
    reader.read_until(b'\n', &mut line)?;
    let head = if line.last() == Some(&b'\n') {
        hex::encode(Sha256::digest(&line))
    } else {
        String::new()
    };
    zeroize::Zeroize::zeroize(&mut line);
    Ok(head)
}

/// Whether the file at `path` still starts as the one `at` was read from.
fn same_head(path: &Path, at: &Position) -> bool {
    at.head.is_empty() || head(path).is_ok_and(|it| it == at.head)
}

/// The file in `path`'s directory that is the one `at` names (renamed by a rotation).
fn rotated(path: &Path, at: &Position) -> Option<PathBuf> {
    let dir = path.parent().filter(|it| !it.as_os_str().is_empty())?;
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .find(|candidate| {
            std::fs::metadata(candidate)
                .is_ok_and(|meta| meta.is_file() && meta.dev() == at.dev && meta.ino() == at.ino)
                && same_head(candidate, at)
        })
}

/// Reads the whole lines of `path` from `offset`; returns the offset after the last one.
fn read_from(path: &Path, offset: u64, uses: &mut Uses) -> std::io::Result<u64> {
    use zeroize::Zeroize as _;
    let mut file = File::open(path)?;
    file.seek(SeekFrom::Start(offset))?;
    let mut reader = BufReader::with_capacity(1 << 16, file);
    let mut line = Vec::with_capacity(4096);
    let mut at = offset;
    loop {
        // The bytes the last line held are wiped (not the whole capacity, which one long line
        // grows for every line after it).
        line.as_mut_slice().zeroize();
        line.clear();
        let n = reader.read_until(b'\n', &mut line)?;
        if n == 0 || line.last() != Some(&b'\n') {
            // The end, or a line still being written: left for the next read.
            line.zeroize();
            return Ok(at);
        }
        uses.add_line(&line);
        at = at.saturating_add(n as u64);
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    fn entry(accessor: &str, time: &str) -> String {
        format!(
            r#"{{"time":"{time}","type":"request","auth":{{"accessor":"{accessor}"}},"request":{{"path":"x"}}}}"#
        ) + "\n"
    }

    fn append(path: &Path, text: &str) {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .expect("open");
        file.write_all(text.as_bytes()).expect("write");
    }

    fn accessors(read: &Read) -> Vec<String> {
        let mut it: Vec<String> = read.uses.tokens.keys().cloned().collect();
        it.sort();
        it
    }

    #[test]
    fn reads_on_from_where_it_stopped_and_leaves_a_partial_line() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("audit.log");
        append(&path, &entry("a", "2026-12-01T00:00:00Z"));
        let partial = entry("b", "2026-12-01T00:00:01Z");
        let (head, tail) = partial.split_at(20);
        append(&path, head);
        let first = read_new(&path, None).expect("read");
        assert_eq!(accessors(&first), ["a"]);
        assert_eq!(first.uses.unreadable, 0);
        append(&path, tail);
        append(&path, &entry("c", "2026-12-01T00:00:02Z"));
        let second = read_new(&path, Some(first.position.clone())).expect("read");
        assert_eq!(accessors(&second), ["b", "c"], "b is read whole, once");
        let third = read_new(&path, Some(second.position.clone())).expect("read");
        assert!(third.uses.tokens.is_empty());
        assert_eq!(third.position, second.position);
    }

    #[test]
    fn a_rotated_file_is_finished_before_the_new_one_is_read() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("audit.log");
        append(&path, &entry("a", "2026-12-01T00:00:00Z"));
        let first = read_new(&path, None).expect("read");
        // Written after the scan, then rotated away; a new file started.
        append(&path, &entry("b", "2026-12-01T00:00:01Z"));
        std::fs::rename(&path, dir.path().join("audit.log.1")).expect("rename");
        // Before the new file exists, the old one is read on.
        let between = read_new(&path, Some(first.position)).expect("read");
        assert_eq!(accessors(&between), ["b"]);
        append(&path, &entry("c", "2026-12-01T00:00:02Z"));
        let after = read_new(&path, Some(between.position.clone())).expect("read");
        assert_eq!(accessors(&after), ["c"], "b is not read twice");
        assert!(!after.lost_rotated);

        // Rotated and compressed away: only the new file can be read, and that is said.
        append(&path, &entry("d", "2026-12-01T00:00:03Z"));
        std::fs::rename(&path, dir.path().join("audit.log.2")).expect("rename");
        std::fs::remove_file(dir.path().join("audit.log.2")).expect("remove");
        append(&path, &entry("e", "2026-12-01T00:00:04Z"));
        let lost = read_new(&path, Some(after.position.clone())).expect("read");
        assert_eq!(accessors(&lost), ["e"]);
        assert!(lost.lost_rotated);
    }

    #[test]
    fn a_truncated_file_is_read_from_its_start() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("audit.log");
        append(&path, &entry("a", "2026-12-01T00:00:00Z"));
        append(&path, &entry("b", "2026-12-01T00:00:01Z"));
        let first = read_new(&path, None).expect("read");
        std::fs::write(&path, entry("c", "2026-12-01T00:00:02Z")).expect("truncate");
        let second = read_new(&path, Some(first.position)).expect("read");
        assert_eq!(accessors(&second), ["c"]);
    }

    #[test]
    fn a_missing_log_is_an_error_naming_it() {
        let err = read_new(Path::new("/nonexistent/audit.log"), None).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/audit.log"), "{err}");
    }
}
