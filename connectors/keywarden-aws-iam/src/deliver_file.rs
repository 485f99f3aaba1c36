//! File delivery of a new key: which file a user's key goes to, and writing and reading it
//! without ever leaving the configured directory.
//!
//! The directory of a `file` destination is fixed by the configuration (`{account_id}` may be in
//! it, always 12 digits); `{user}` may only be in the file name (checked by
//! [`crate::AwsIamConfig::validate`]). At delivery the expanded file name must be one plain
//! component (IAM allows `.` in user names, so `..` is a valid user), or the delivery is refused.
//! The directory is opened once and everything else happens relative to it: directories
//! keywarden creates are made 0700 (and given the configured owner and group), the configured
//! directory itself must not be a symlink, the file is written to a fresh temporary name
//! (`O_CREAT | O_EXCL | O_NOFOLLOW`, 0600) and renamed over the destination, and an existing
//! destination that is not a regular file (a symlink) is refused, as it is when read back.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use keywarden_connector::ConnectorError;
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, openat, renameat};
use nix::sys::stat::{Mode, fchmod, fstatat, mkdirat};
use nix::unistd::{Gid, Uid, UnlinkatFlags, fchown, fsync, unlinkat};
use zeroize::Zeroizing;

/// The most a delivered file may hold when it is read back (a key in JSON is ~120 bytes).
const MAX_READ: u64 = 64 * 1024;

/// Which owner and group files and the directories keywarden creates get (`None`: the
/// process's own).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Ownership {
    pub owner: Option<Uid>,
    pub group: Option<Gid>,
}

/// Where one user's key file goes: strictly inside `dir`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FileDestination {
    pub dir: PathBuf,
    pub name: String,
    pub ownership: Ownership,
}

impl FileDestination {
    /// The path of the file.
    pub fn path(&self) -> PathBuf {
        self.dir.join(&self.name)
    }

    /// The destination of `user`'s key for the validated template `template`: refused (a
    /// permanent error naming the user and the directory) unless the file name is one plain
    /// component inside the directory.
    pub fn resolve(
        template: &Path,
        user: &str,
        account_id: &str,
        ownership: Ownership,
    ) -> Result<Self, ConnectorError> {
        let expand = |it: &OsStr| crate::config::expand(&it.to_string_lossy(), user, account_id);
        let dir = template
            .parent()
            .map(|it| PathBuf::from(expand(it.as_os_str())))
            .unwrap_or_default();
        let name = template.file_name().map(expand).unwrap_or_default();
        let plain = !name.contains(['/', '\0'])
            && matches!(
                Path::new(&name).components().collect::<Vec<_>>()[..],
                [Component::Normal(it)] if it == OsStr::new(&name)
            );
        if !plain || !dir.is_absolute() {
            return Err(ConnectorError::Permanent(format!(
                "user `{user}`: its key file name `{name}` would not be a file inside {}; delivery refused",
                dir.display()
            )));
        }
        Ok(Self {
            dir,
            name,
            ownership,
        })
    }
}

fn failed(what: &str, path: &Path, err: impl std::fmt::Display) -> ConnectorError {
    ConnectorError::Permanent(format!("{what} {}: {err}", path.display()))
}

/// Opens the directory at `dir`, creating what is missing (0700, with `ownership`) one
/// component at a time. Existing ancestors are followed as configured; the directory itself
/// must not be a symlink. `create: false` returns `None` for a missing directory.
fn open_dir(
    dir: &Path,
    ownership: Ownership,
    create: bool,
) -> Result<Option<OwnedFd>, ConnectorError> {
    let parts: Vec<&OsStr> = dir
        .components()
        .filter_map(|it| match it {
            Component::Normal(part) => Some(part),
            _ => None,
        })
        .collect();
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    let mut current = nix::fcntl::open("/", flags, Mode::empty())
        .map_err(|err| failed("opening", Path::new("/"), err))?;
    let mut walked = PathBuf::from("/");
    let mut created = false;
    for (idx, part) in parts.iter().enumerate() {
        walked.push(part);
        let last = idx + 1 == parts.len();
        // Below a directory keywarden made, and for the directory itself: no symlinks.
        let flags = if last || created {
            flags | OFlag::O_NOFOLLOW
        } else {
            flags
        };
        let next = match openat(&current, *part, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) if !create => return Ok(None),
            Err(Errno::ENOENT) => {
                match mkdirat(&current, *part, Mode::S_IRWXU) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(err) => return Err(failed("creating the directory", &walked, err)),
                }
                let fd = openat(&current, *part, flags | OFlag::O_NOFOLLOW, Mode::empty())
                    .map_err(|err| failed("opening", &walked, err))?;
                // Exactly 0700 whatever the umask, then the configured owner and group.
                fchmod(&fd, Mode::S_IRWXU)
                    .map_err(|err| failed("setting the mode of", &walked, err))?;
                chown(&fd, ownership, &walked)?;
                created = true;
                fd
            }
            Err(Errno::ELOOP | Errno::ENOTDIR) => {
                return Err(ConnectorError::Permanent(format!(
                    "{} is a symlink or not a directory; key files are only delivered into a real directory",
                    walked.display()
                )));
            }
            Err(err) => return Err(failed("opening", &walked, err)),
        };
        current = next;
    }
    Ok(Some(current))
}

fn chown(fd: &OwnedFd, ownership: Ownership, path: &Path) -> Result<(), ConnectorError> {
    if ownership.owner.is_none() && ownership.group.is_none() {
        return Ok(());
    }
    fchown(fd, ownership.owner, ownership.group)
        .map_err(|err| failed("setting the owner of", path, err))
}

/// Refuses an existing destination that is not a regular file (a symlink, a directory, ...).
fn check_existing(dirfd: &OwnedFd, dest: &FileDestination) -> Result<(), ConnectorError> {
    match fstatat(dirfd, dest.name.as_str(), AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(stat) if stat.st_mode & nix::libc::S_IFMT == nix::libc::S_IFREG => Ok(()),
        Ok(_) => Err(ConnectorError::Permanent(format!(
            "{} exists and is not a regular file (a symlink?); delivery refused",
            dest.path().display()
        ))),
        Err(Errno::ENOENT) => Ok(()),
        Err(err) => Err(failed("checking", &dest.path(), err)),
    }
}

/// A name for a temporary file next to the destination, different on every call.
fn temporary_name(name: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |it| it.subsec_nanos());
    format!(".{name}.{}.{n}.{nanos}.tmp", std::process::id())
}

/// Writes `body` to the destination atomically with mode 0600 (and the configured owner and
/// group): a fresh temporary file in the directory, synced, renamed over the destination, then
/// the directory synced.
pub(crate) fn write(dest: &FileDestination, body: &[u8]) -> Result<(), ConnectorError> {
    let path = dest.path();
    let dirfd = open_dir(&dest.dir, dest.ownership, true)?
        .ok_or_else(|| failed("opening", &dest.dir, "missing"))?;
    check_existing(&dirfd, dest)?;
    let flags =
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let mut attempt = 0;
    let (tmp, fd) = loop {
        let tmp = temporary_name(&dest.name);
        match openat(&dirfd, tmp.as_str(), flags, Mode::S_IRUSR | Mode::S_IWUSR) {
            Ok(fd) => break (tmp, fd),
            Err(Errno::EEXIST) if attempt < 16 => attempt += 1,
            Err(err) => return Err(failed("creating a file next to", &path, err)),
        }
    };
    let written = (|| {
        fchmod(&fd, Mode::S_IRUSR | Mode::S_IWUSR)
            .map_err(|err| failed("setting the mode of", &path, err))?;
        chown(&fd, dest.ownership, &path)?;
        let mut file = File::from(fd);
        file.write_all(body)
            .map_err(|err| failed("writing", &path, err))?;
        file.sync_all()
            .map_err(|err| failed("syncing", &path, err))?;
        renameat(&dirfd, tmp.as_str(), &dirfd, dest.name.as_str())
            .map_err(|err| failed("renaming into", &path, err))
    })();
    if let Err(err) = written {
        // Best effort: the temporary file holds the secret.
        if let Err(unlink) = unlinkat(&dirfd, tmp.as_str(), UnlinkatFlags::NoRemoveDir) {
            tracing::warn!(path = %path.display(), error = %unlink, "Could not remove a temporary key file.");
        }
        return Err(err);
    }
    fsync(&dirfd).map_err(|err| failed("syncing the directory of", &path, err))
}

/// Reads the delivered file back; `None` if it (or its directory) does not exist. A symlink or
/// anything but a regular file is refused.
pub(crate) fn read(dest: &FileDestination) -> Result<Option<Zeroizing<String>>, ConnectorError> {
    let path = dest.path();
    let Some(dirfd) = open_dir(&dest.dir, dest.ownership, false)? else {
        return Ok(None);
    };
    let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
    let fd = match openat(&dirfd, dest.name.as_str(), flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => return Ok(None),
        Err(Errno::ELOOP) => {
            return Err(ConnectorError::Permanent(format!(
                "{} is a symlink; a delivered key is only read from a regular file",
                path.display()
            )));
        }
        Err(err) => return Err(failed("reading", &path, err)),
    };
    let file = File::from(fd);
    let meta = file
        .metadata()
        .map_err(|err| failed("reading", &path, err))?;
    if !meta.is_file() {
        return Err(ConnectorError::Permanent(format!(
            "{} is not a regular file",
            path.display()
        )));
    }
    let mut bytes = Zeroizing::new(Vec::new());
    file.take(MAX_READ)
        .read_to_end(&mut bytes)
        .map_err(|err| failed("reading", &path, err))?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| failed("reading", &path, "not UTF-8"))?
        .to_owned();
    Ok(Some(Zeroizing::new(text)))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    use super::*;

    fn dest(dir: &Path, name: &str, ownership: Ownership) -> FileDestination {
        FileDestination {
            dir: dir.to_path_buf(),
            name: name.to_owned(),
            ownership,
        }
    }

    fn mode(path: &Path) -> u32 {
        std::fs::symlink_metadata(path)
            .expect("meta")
            .permissions()
            .mode()
            & 0o777
    }

    #[test]
    fn user_names_that_would_leave_the_directory_are_refused() {
        let template = Path::new("/srv/keys/{account_id}/{user}");
        for user in ["..", ".", "../x", "a/../../b", "", "x/y", "..\0"] {
            let err =
                FileDestination::resolve(template, user, "123456789012", Ownership::default())
                    .expect_err(user);
            let message = err.to_string();
            assert!(matches!(err, ConnectorError::Permanent(_)), "{message}");
            assert!(message.contains(&format!("user `{user}`")), "{message}");
            assert!(message.contains("/srv/keys/123456789012"), "{message}");
        }
        for user in ["...", "a..b", "ci+x=y,z@w_-", ".hidden"] {
            let it = FileDestination::resolve(template, user, "123456789012", Ownership::default())
                .expect(user);
            assert_eq!(it.dir, Path::new("/srv/keys/123456789012"));
            assert_eq!(it.path().parent(), Some(it.dir.as_path()), "{user}");
        }
        // Around the name: `key-../x.json` would hold a `/`; `key-...json` is a plain name.
        let template = Path::new("/srv/keys/key-{user}.json");
        assert!(FileDestination::resolve(template, "../x", "1", Ownership::default()).is_err());
        let it =
            FileDestination::resolve(template, "..", "1", Ownership::default()).expect("plain");
        assert_eq!(it.path(), Path::new("/srv/keys/key-...json"));
    }

    #[test]
    fn missing_directories_are_made_0700_and_the_file_0600_replaced_atomically() {
        let root = tempfile::tempdir().expect("dir");
        std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        let dir = root.path().join("a/b");
        let it = dest(&dir, "key.json", Ownership::default());
        write(&it, b"one").expect("write");
        write(&it, b"two").expect("write");
        assert_eq!(std::fs::read_to_string(it.path()).expect("read"), "two");
        assert_eq!(mode(&it.path()), 0o600);
        assert_eq!(mode(&root.path().join("a")), 0o700);
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(
            mode(root.path()),
            0o755,
            "an existing directory is left as it is"
        );
        let leftovers = std::fs::read_dir(&dir).expect("ls").count();
        assert_eq!(leftovers, 1, "no temporary file is left behind");
        assert_eq!(
            read(&it).expect("read").as_deref().map(String::as_str),
            Some("two")
        );
        assert_eq!(
            read(&dest(&root.path().join("none"), "k", Ownership::default())).expect("read"),
            None
        );
    }

    #[test]
    fn owner_and_group_go_to_the_file_and_the_directories_keywarden_makes() {
        if !nix::unistd::Uid::effective().is_root() {
            eprintln!("skipped: changing owners needs root");
            return;
        }
        let root = tempfile::tempdir().expect("dir");
        let dir = root.path().join("a/b");
        let ownership = Ownership {
            owner: Some(Uid::from_raw(65534)),
            group: Some(Gid::from_raw(65533)),
        };
        let it = dest(&dir, "key.json", ownership);
        write(&it, b"key").expect("write");
        for path in [it.path(), dir.clone(), root.path().join("a")] {
            let meta = std::fs::metadata(&path).expect("meta");
            assert_eq!(
                (meta.uid(), meta.gid()),
                (65534, 65533),
                "{}",
                path.display()
            );
        }
        let meta = std::fs::metadata(root.path()).expect("meta");
        assert_eq!(
            (meta.uid(), meta.gid()),
            (0, 0),
            "an existing directory keeps its owner"
        );
    }

    #[test]
    fn symlinks_at_the_file_or_the_directory_are_refused() {
        let root = tempfile::tempdir().expect("dir");
        let dir = root.path().join("keys");
        std::fs::create_dir(&dir).expect("mkdir");
        let elsewhere = root.path().join("elsewhere.json");
        std::fs::write(&elsewhere, "{}").expect("write");
        std::os::unix::fs::symlink(&elsewhere, dir.join("key.json")).expect("link");
        let it = dest(&dir, "key.json", Ownership::default());
        let err = write(&it, b"secret").expect_err("a symlink destination");
        assert!(err.to_string().contains("not a regular file"), "{err}");
        let err = read(&it).expect_err("a symlink is not read");
        assert!(err.to_string().contains("symlink"), "{err}");
        assert_eq!(std::fs::read_to_string(&elsewhere).expect("read"), "{}");

        // The configured directory itself a symlink: refused.
        let linked = root.path().join("linked");
        std::os::unix::fs::symlink(&dir, &linked).expect("link");
        let err = write(
            &dest(&linked, "other.json", Ownership::default()),
            b"secret",
        )
        .expect_err("a symlinked directory");
        assert!(
            err.to_string().contains("symlink or not a directory"),
            "{err}"
        );
        assert!(!dir.join("other.json").exists());
    }
}
