//! Walking the configured roots: which files are read, and what is skipped and why.
//!
//! A symlink to a file inside the tree (the base directory or the rule's root) is read; one that
//! leaves the tree, or names a directory, is read only when the source sets `follow_symlinks`,
//! and is otherwise reported as skipped. Special files (FIFOs, sockets, devices) are never
//! opened, followed or not. Every directory walked is remembered by (device, inode), so a symlink
//! loop, or a second way into a directory, is walked once.

use std::collections::{BTreeMap, HashSet};
use std::fs::{self, FileType, Metadata};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use keywarden_connector::{ScanError, SkipReason, Skipped};
use tracing::trace;

use crate::scan::{FilesConnector, FoundFile};

/// What one walk over every rule's root collects.
pub(crate) struct Walk<'a> {
    connector: &'a FilesConnector,
    pub files: BTreeMap<String, FoundFile>,
    pub errors: Vec<ScanError>,
    pub skipped: Vec<Skipped>,
    /// (device, inode) of every directory walked from the current root.
    visited: HashSet<(u64, u64)>,
}

/// What kind of special file a file type is, if it is one.
pub(crate) fn special_kind(file_type: FileType) -> Option<&'static str> {
    if file_type.is_fifo() {
        Some("a FIFO")
    } else if file_type.is_socket() {
        Some("a socket")
    } else if file_type.is_block_device() || file_type.is_char_device() {
        Some("a device")
    } else {
        None
    }
}

impl<'a> Walk<'a> {
    pub fn new(connector: &'a FilesConnector) -> Self {
        Self {
            connector,
            files: BTreeMap::new(),
            errors: Vec::new(),
            skipped: Vec::new(),
            visited: HashSet::new(),
        }
    }

    fn skip(&mut self, path: &Path, reason: SkipReason, detail: String) {
        trace!(path = %path.display(), %reason, %detail, "Skipped.");
        self.skipped.push(Skipped {
            subject: self.connector.display(path),
            reason,
            detail,
        });
    }

    /// The rule that selects `path` (not excluded), if one does.
    fn select(&self, path: &Path, shown: &str) -> Option<usize> {
        let connector = self.connector;
        if connector.exclude.iter().any(|it| it.is_match(path, shown)) {
            trace!(path = %shown, "Skipped excluded file.");
            return None;
        }
        connector
            .rules
            .iter()
            .position(|it| it.matcher.is_match(path, shown))
    }

    fn add(&mut self, path: &Path, through_link: bool) {
        let shown = self.connector.display(path);
        if self.files.contains_key(&shown) {
            return;
        }
        if let Some(rule) = self.select(path, &shown) {
            self.files.insert(
                shown.clone(),
                FoundFile {
                    path: path.to_path_buf(),
                    display: shown,
                    rule,
                    through_link,
                },
            );
        }
    }

    /// Walks one root (followed as configured), `inside` being the canonical directories a
    /// symlink may point into without `follow_symlinks`.
    pub fn root(&mut self, root: &Path, field: &str, inside: &[Option<PathBuf>]) {
        let meta = match fs::metadata(root) {
            Ok(meta) => meta,
            Err(error) => {
                self.errors.push(ScanError {
                    subject: field.to_owned(),
                    message: format!(
                        "cannot read `{}`: {}",
                        self.connector.display(root),
                        error.kind()
                    ),
                    identity: None,
                });
                return;
            }
        };
        if meta.is_dir() {
            // Per root: rules may name nested roots (`keys/owned/**`, then `keys/**`), whose
            // files are kept once by their path.
            self.visited.clear();
            self.visited.insert((meta.dev(), meta.ino()));
            self.tree(root.to_path_buf(), inside);
        } else if meta.is_file() {
            self.add(root, false);
        } else if let Some(kind) = special_kind(meta.file_type()) {
            self.skip(
                root,
                SkipReason::SpecialFile,
                format!("{kind}: never opened"),
            );
        }
    }

    fn tree(&mut self, root: PathBuf, inside: &[Option<PathBuf>]) {
        let mut stack = vec![root];
        while let Some(dir) = stack.pop() {
            let entries = match fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(error) => {
                    self.cannot_read(&dir, &error);
                    continue;
                }
            };
            let mut paths: Vec<(PathBuf, std::io::Result<FileType>)> = entries
                .filter_map(|it| match it {
                    Ok(entry) => Some((entry.path(), entry.file_type())),
                    Err(error) => {
                        self.cannot_read(&dir, &error);
                        None
                    }
                })
                .collect();
            // Real directories and files first, then symlinks: a directory reached both ways
            // is walked under its own name.
            paths.sort_by_key(|(path, file_type)| {
                let link = file_type.as_ref().is_ok_and(FileType::is_symlink);
                (link, path.clone())
            });
            // Pushed in reverse so the walk goes in name order.
            let mut below = Vec::new();
            for (path, file_type) in paths {
                let file_type = match file_type {
                    Ok(it) => it,
                    Err(error) => {
                        self.cannot_read(&path, &error);
                        continue;
                    }
                };
                if file_type.is_dir() {
                    match fs::symlink_metadata(&path) {
                        Ok(meta) => self.enter(&path, &meta, &mut below, None),
                        Err(error) => self.cannot_read(&path, &error),
                    }
                } else if file_type.is_file() {
                    self.add(&path, false);
                } else if file_type.is_symlink() {
                    self.link(&path, inside, &mut below);
                } else if let Some(kind) = special_kind(file_type) {
                    let shown = self.connector.display(&path);
                    if self.select(&path, &shown).is_some() {
                        self.skip(
                            &path,
                            SkipReason::SpecialFile,
                            format!("{kind}: never opened"),
                        );
                    }
                }
            }
            stack.extend(below.into_iter().rev());
        }
    }

    /// Queues a directory unless it was walked already.
    fn enter(
        &mut self,
        path: &Path,
        meta: &Metadata,
        below: &mut Vec<PathBuf>,
        target: Option<&Path>,
    ) {
        if self.visited.insert((meta.dev(), meta.ino())) {
            below.push(path.to_path_buf());
        } else {
            let detail = match target {
                Some(target) => format!(
                    "links to `{}`, a directory already walked (a loop?)",
                    target.display()
                ),
                None => "a directory already walked".to_owned(),
            };
            self.skip(path, SkipReason::Loop, detail);
        }
    }

    fn link(&mut self, path: &Path, inside: &[Option<PathBuf>], below: &mut Vec<PathBuf>) {
        let follow = self.connector.follow_symlinks;
        let shown = self.connector.display(path);
        let selected = self.select(path, &shown).is_some();
        let (target, meta) = match (fs::canonicalize(path), fs::metadata(path)) {
            (Ok(target), Ok(meta)) => (target, meta),
            _ => {
                if selected {
                    self.skip(
                        path,
                        SkipReason::BrokenSymlink,
                        "its target does not exist".to_owned(),
                    );
                }
                return;
            }
        };
        if meta.is_dir() {
            if follow {
                self.enter(path, &meta, below, Some(&target));
            } else if selected {
                self.skip(
                    path,
                    SkipReason::SymlinkedDirectory,
                    format!(
                        "links to the directory `{}`; not followed (set `follow_symlinks: true`)",
                        target.display()
                    ),
                );
            }
        } else if meta.is_file() {
            let stays = inside.iter().flatten().any(|root| target.starts_with(root));
            if stays || follow {
                self.add(path, true);
            } else if selected {
                self.skip(
                    path,
                    SkipReason::SymlinkOutside,
                    format!(
                        "links to `{}`, outside the scanned tree; not followed (set `follow_symlinks: true`)",
                        target.display()
                    ),
                );
            }
        } else if let Some(kind) = special_kind(meta.file_type())
            && selected
        {
            self.skip(
                path,
                SkipReason::SpecialFile,
                format!("links to `{}`, {kind}: never opened", target.display()),
            );
        }
    }

    fn cannot_read(&mut self, path: &Path, error: &std::io::Error) {
        self.errors.push(ScanError {
            subject: self.connector.display(path),
            message: format!("cannot read: {}", error.kind()),
            identity: None,
        });
    }
}
