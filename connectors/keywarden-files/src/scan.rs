//! Walking the configured files and turning what they hold into identities and credentials.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use globset::GlobMatcher;
use keywarden_connector::{
    Connector, ConnectorError, Credential, CredentialKind, CredentialStatus, Fingerprint, Identity,
    IdentityKind, Inventory, InventorySink, LastUse, ScanContext, ScanError, SkipReason, Skipped,
};
use tracing::{debug, trace};
use zeroize::Zeroizing;

use crate::key::KeyFacts;
use crate::parse::{CertFacts, Item, KeyItem, parse_file};
use crate::usage::UsageLog;
use crate::walk::{Walk, special_kind};

/// Files larger than this are not key material and are not read.
const MAX_FILE_SIZE: u64 = 4 * 1024 * 1024;

/// The `files` connector, built from a [`crate::FilesConfig`].
///
/// [`Connector::inventory`] runs the file work on tokio's blocking pool
/// (`tokio::task::spawn_blocking`), so it must be called inside a tokio runtime;
/// [`FilesConnector::scan`] is the same work, synchronously.
#[derive(Clone, Debug)]
pub struct FilesConnector {
    pub(crate) source: String,
    pub(crate) base_dir: PathBuf,
    pub(crate) rules: Vec<Rule>,
    pub(crate) exclude: Vec<Matcher>,
    pub(crate) usage_log: Option<PathBuf>,
    /// Read symlinks that leave the tree and walk symlinked directories.
    pub(crate) follow_symlinks: bool,
}

/// A compiled [`crate::PathRule`].
#[derive(Clone, Debug)]
pub(crate) struct Rule {
    /// The config field of the glob, e.g. `paths[0].glob`.
    pub(crate) field: String,
    /// The directory (or file) to walk: the literal prefix of the glob.
    pub(crate) root: PathBuf,
    pub(crate) matcher: Matcher,
    pub(crate) owner: Option<String>,
    pub(crate) purpose: Option<String>,
    pub(crate) tags: BTreeMap<String, String>,
}

/// A compiled glob; relative globs match paths relative to the base directory.
#[derive(Clone, Debug)]
pub(crate) struct Matcher {
    pub(crate) absolute: bool,
    pub(crate) matcher: GlobMatcher,
}

/// A file selected for the scan.
#[derive(Debug)]
pub(crate) struct FoundFile {
    /// The path to read.
    pub(crate) path: PathBuf,
    /// The path relative to the base directory with `/` separators, or the absolute path for
    /// files outside it; used in ids, names and error subjects.
    pub(crate) display: String,
    /// The index of the first rule that matches the file.
    pub(crate) rule: usize,
    /// The path is a symlink the walk chose to follow.
    pub(crate) through_link: bool,
}

/// Key material found in one file.
#[derive(Debug)]
struct Found<T> {
    /// The index of the file in the sorted file list.
    file: usize,
    item: T,
}

/// A credential being assembled, with the files it was found in.
#[derive(Debug)]
pub(crate) struct Assembled {
    pub(crate) credential: Credential,
    /// Display paths of every file holding it.
    pub(crate) paths: Vec<String>,
}

#[async_trait]
impl Connector for FilesConnector {
    fn kind(&self) -> &'static str {
        crate::KIND
    }

    fn source(&self) -> &str {
        &self.source
    }

    /// One batch: key directories are small, and pairing keys with their other forms needs the
    /// whole set.
    async fn inventory(
        &self,
        cx: &ScanContext,
        sink: &mut dyn InventorySink,
    ) -> Result<(), ConnectorError> {
        let this = self.clone();
        let scan_cx = cx.clone();
        let inventory = tokio::task::spawn_blocking(move || this.scan(&scan_cx))
            .await
            .map_err(|error| {
                let what = if error.is_panic() {
                    "panicked"
                } else {
                    "was cancelled"
                };
                ConnectorError::Permanent(format!("the files scan task {what}"))
            })??;
        sink.batch(inventory).await
    }
}

impl FilesConnector {
    /// Inventories the source synchronously: the blocking work behind [`Connector::inventory`].
    ///
    /// Unreadable and malformed files become [`ScanError`]s; the only `Err` is a base directory
    /// that is gone.
    pub fn scan(&self, cx: &ScanContext) -> Result<Inventory, ConnectorError> {
        if !self.base_dir.is_dir() {
            return Err(ConnectorError::Config {
                field: "paths".to_owned(),
                message: format!(
                    "the base directory `{}` does not exist or is not a directory",
                    self.base_dir.display()
                ),
            });
        }
        let mut errors = Vec::new();
        let mut skipped = Vec::new();
        let files = self.collect_files(&mut errors, &mut skipped);
        cx.progress.add_total(files.len() as u64);

        let mut keys = Vec::new();
        let mut certs = Vec::new();
        for (idx, file) in files.iter().enumerate() {
            for item in self.read_file(file, &mut errors, &mut skipped) {
                match item {
                    Item::Key(item) => keys.push(Found { file: idx, item }),
                    Item::Certificate(item) => certs.push(Found {
                        file: idx,
                        item: *item,
                    }),
                }
            }
            cx.progress.advance(1);
        }

        pair_by_name(&files, &mut keys);
        let mut assembled = assemble_keys(&files, &self.rules, keys);
        assembled.extend(assemble_certificates(&files, &self.rules, certs));
        assembled.sort_by(|a, b| {
            (&a.credential.name, &a.credential.external_id)
                .cmp(&(&b.credential.name, &b.credential.external_id))
        });

        if let Some(path) = &self.usage_log
            && let Some(log) = UsageLog::read(path, &self.base_dir, &mut errors)
        {
            log.apply(&mut assembled);
        }

        let mut identities = BTreeMap::new();
        let mut credentials = Vec::with_capacity(assembled.len());
        for it in assembled {
            let identity = identity_for(&it.credential);
            identities
                .entry(identity.external_id.clone())
                .or_insert(identity);
            credentials.push(it.credential);
        }
        debug!(
            source = %self.source,
            n_files = files.len(),
            n_credentials = credentials.len(),
            n_errors = errors.len(),
            n_skipped = skipped.len(),
            "Scanned files."
        );
        Ok(Inventory {
            identities: identities.into_values().collect(),
            credentials,
            errors,
            skipped,
        })
    }

    /// Every file matched by a rule and not excluded, sorted by display path; what was passed
    /// over goes to `skipped`.
    fn collect_files(
        &self,
        errors: &mut Vec<ScanError>,
        skipped: &mut Vec<Skipped>,
    ) -> Vec<FoundFile> {
        let canonical_base = fs::canonicalize(&self.base_dir).ok();
        let mut walk = Walk::new(self);
        let mut walked: Vec<&Path> = Vec::new();
        for rule in &self.rules {
            if fs::symlink_metadata(&rule.root).is_err() {
                walk.errors.push(ScanError {
                    subject: rule.field.clone(),
                    message: format!("`{}` does not exist", self.display(&rule.root)),
                    identity: None,
                });
                continue;
            }
            if walked.iter().any(|it| rule.root.starts_with(it)) {
                continue;
            }
            walked.push(&rule.root);
            let inside = [canonical_base.clone(), fs::canonicalize(&rule.root).ok()];
            walk.root(&rule.root, &rule.field, &inside);
        }
        errors.append(&mut walk.errors);
        skipped.append(&mut walk.skipped);
        walk.files.into_values().collect()
    }

    /// Reads and decodes one file; problems become scan errors, a file that is too large or
    /// not a regular file (any more) is skipped. A FIFO is never waited on: the file is opened
    /// non-blocking and checked before anything is read, and without following a symlink unless
    /// the walk chose to follow it.
    fn read_file(
        &self,
        file: &FoundFile,
        errors: &mut Vec<ScanError>,
        skipped: &mut Vec<Skipped>,
    ) -> Vec<Item> {
        use std::io::Read;
        use std::os::unix::fs::OpenOptionsExt;

        let scan_error = |message: String| ScanError {
            subject: file.display.clone(),
            message,
            identity: None,
        };
        let mut flags = libc::O_NONBLOCK | libc::O_CLOEXEC;
        if !file.through_link {
            flags |= libc::O_NOFOLLOW;
        }
        let opened = fs::OpenOptions::new()
            .read(true)
            .custom_flags(flags)
            .open(&file.path)
            .and_then(|it| it.metadata().map(|meta| (it, meta)));
        let (handle, meta) = match opened {
            Ok(it) => it,
            Err(error) => {
                errors.push(scan_error(format!("cannot read file: {}", error.kind())));
                return Vec::new();
            }
        };
        let skip = |skipped: &mut Vec<Skipped>, reason: SkipReason, detail: String| {
            debug!(path = %file.display, %reason, %detail, "Skipped file.");
            skipped.push(Skipped {
                subject: file.display.clone(),
                reason,
                detail,
            });
        };
        if !meta.is_file() {
            let kind = special_kind(meta.file_type()).unwrap_or("not a regular file");
            skip(
                skipped,
                SkipReason::SpecialFile,
                format!("{kind}: never read"),
            );
            return Vec::new();
        }
        let too_large = |size: u64| {
            format!("{size} bytes, over the {MAX_FILE_SIZE}-byte limit for key material")
        };
        if meta.len() > MAX_FILE_SIZE {
            skip(skipped, SkipReason::TooLarge, too_large(meta.len()));
            return Vec::new();
        }
        let mut bytes = Zeroizing::new(Vec::new());
        if let Err(error) = handle.take(MAX_FILE_SIZE + 1).read_to_end(&mut bytes) {
            errors.push(scan_error(format!("cannot read file: {}", error.kind())));
            return Vec::new();
        }
        // It may have grown since it was measured.
        if bytes.len() as u64 > MAX_FILE_SIZE {
            skip(skipped, SkipReason::TooLarge, too_large(bytes.len() as u64));
            return Vec::new();
        }
        let file_name = file.display.rsplit('/').next().unwrap_or_default();
        let Some(parsed) = parse_file(file_name, &bytes) else {
            trace!(path = %file.display, "Skipped file that is not key material.");
            return Vec::new();
        };
        for message in parsed.errors {
            debug!(path = %file.display, error = %message, "Could not read key material.");
            errors.push(scan_error(message));
        }
        parsed.items
    }

    /// The display form of `path`: relative to the base directory with `/`, else absolute.
    pub(crate) fn display(&self, path: &Path) -> String {
        match path.strip_prefix(&self.base_dir) {
            Ok(relative) => slash_path(relative),
            Err(_) => slash_path(&std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())),
        }
    }
}

impl Matcher {
    pub(crate) fn is_match(&self, path: &Path, display: &str) -> bool {
        if self.absolute {
            std::path::absolute(path).is_ok_and(|it| self.matcher.is_match(it))
        } else {
            !Path::new(display).is_absolute() && self.matcher.is_match(display)
        }
    }
}

/// `path` with `/` separators.
fn slash_path(path: &Path) -> String {
    if path.is_absolute() {
        return path.to_string_lossy().into_owned();
    }
    let parts: Vec<_> = path
        .components()
        .map(|it| it.as_os_str().to_string_lossy())
        .collect();
    parts.join("/")
}

/// Gives an encrypted key without a public half (a cosign `.key`, an encrypted PKCS#8 key) the
/// public key of the `.pub` file of the same stem in the same directory, if that file holds
/// exactly one public key.
fn pair_by_name(files: &[FoundFile], keys: &mut [Found<KeyItem>]) {
    let mut public_by_file: BTreeMap<usize, Vec<KeyFacts>> = BTreeMap::new();
    for found in keys.iter() {
        if let (None, Some(key)) = (found.item.private, &found.item.key) {
            public_by_file
                .entry(found.file)
                .or_default()
                .push(key.clone());
        }
    }
    for found in keys.iter_mut().filter(|it| it.item.key.is_none()) {
        let shown = &files[found.file].display;
        let wanted = slash_path(&Path::new(shown).with_extension("pub"));
        let Ok(pub_idx) = files.binary_search_by(|it| it.display.as_str().cmp(&wanted)) else {
            continue;
        };
        if let Some([key]) = public_by_file.get(&pub_idx).map(Vec::as_slice) {
            trace!(path = %shown, public = %wanted, "Paired encrypted key with its public key.");
            found.item.key = Some(key.clone());
        }
    }
}

/// Which kind a credential found in several forms takes: the most specific one.
fn kind_rank(kind: CredentialKind) -> u8 {
    match kind {
        CredentialKind::CosignKey => 4,
        CredentialKind::PrivateKey => 3,
        CredentialKind::SshKey => 2,
        _ => 1,
    }
}

/// One credential per public key (all files holding the same key merged), and one per encrypted
/// key whose public key is unknown.
fn assemble_keys(files: &[FoundFile], rules: &[Rule], keys: Vec<Found<KeyItem>>) -> Vec<Assembled> {
    let mut by_key: BTreeMap<String, Vec<Found<KeyItem>>> = BTreeMap::new();
    let mut res = Vec::new();
    let mut n_unknown: BTreeMap<usize, usize> = BTreeMap::new();
    for found in keys {
        match &found.item.key {
            Some(key) => by_key
                .entry(key.sha256_spki.clone())
                .or_default()
                .push(found),
            None => {
                let n = n_unknown.entry(found.file).or_default();
                *n += 1;
                let display = &files[found.file].display;
                let id = match *n {
                    1 => format!("file:{display}"),
                    n => format!("file:{display}#{n}"),
                };
                res.push(assemble_key_group(files, rules, id, vec![found]));
            }
        }
    }
    for (sha256_spki, group) in by_key {
        res.push(assemble_key_group(
            files,
            rules,
            format!("key:sha256:{sha256_spki}"),
            group,
        ));
    }
    res
}

fn assemble_key_group(
    files: &[FoundFile],
    rules: &[Rule],
    external_id: String,
    group: Vec<Found<KeyItem>>,
) -> Assembled {
    let kind = group
        .iter()
        .map(|it| it.item.kind)
        .max_by_key(|it| kind_rank(*it))
        .unwrap_or(CredentialKind::PublicKey);
    let paths = distinct(group.iter().map(|it| files[it.file].display.clone()));
    let primary = match kind {
        CredentialKind::CosignKey => paths.iter().find(|it| it.ends_with(".pub")),
        _ => None,
    }
    .or(paths.first())
    .cloned()
    .unwrap_or_default();
    let primary_file = files.iter().find(|it| it.display == primary);
    let rule = primary_file.map(|it| &rules[it.rule]);

    let key = group.iter().find_map(|it| it.item.key.clone());
    let mut attributes = BTreeMap::new();
    attributes.insert("path".to_owned(), primary.clone());
    if paths.len() > 1 {
        attributes.insert("paths".to_owned(), paths.join(","));
    }
    let formats = distinct(group.iter().map(|it| it.item.format.to_owned()));
    attributes.insert("format".to_owned(), formats.join(","));
    let private: Vec<bool> = group.iter().filter_map(|it| it.item.private).collect();
    if !private.is_empty() {
        let encrypted = private.iter().all(|it| *it);
        attributes.insert("encrypted".to_owned(), encrypted.to_string());
    }
    if key.is_none() {
        attributes.insert("public_key".to_owned(), "missing".to_owned());
    }
    for found in &group {
        for (name, value) in &found.item.attributes {
            attributes
                .entry((*name).to_owned())
                .or_insert_with(|| value.clone());
        }
    }

    let default_purpose = (kind == CredentialKind::CosignKey).then(|| "signing".to_owned());
    let fingerprints = key
        .iter()
        .flat_map(|it| {
            [
                fingerprint("sha256_spki", &it.sha256_spki),
                fingerprint("ssh_sha256", &it.ssh_sha256),
            ]
        })
        .collect();
    let algorithm = key
        .as_ref()
        .map(|it| it.algorithm)
        .or_else(|| group.iter().find_map(|it| it.item.algorithm_hint));
    Assembled {
        credential: Credential {
            identity_id: external_id.clone(),
            external_id,
            kind,
            name: primary,
            status: CredentialStatus::Active,
            created_at: None,
            not_before: None,
            expires_at: None,
            last_used: LastUse::Unknown,
            algorithm: algorithm.map(str::to_owned),
            key_bits: key.as_ref().map(|it| it.bits),
            fingerprints,
            public_key: key.as_ref().map(|it| it.public_key.clone()),
            owner: rule.and_then(|it| it.owner.clone()),
            purpose: rule.and_then(|it| it.purpose.clone()).or(default_purpose),
            tags: rule.map(|it| it.tags.clone()).unwrap_or_default(),
            attributes,
            signs_with: Vec::new(),
        },
        paths,
    }
}

/// One credential per certificate (the same certificate in several files merged).
fn assemble_certificates(
    files: &[FoundFile],
    rules: &[Rule],
    certs: Vec<Found<CertFacts>>,
) -> Vec<Assembled> {
    let mut by_cert: BTreeMap<String, Vec<Found<CertFacts>>> = BTreeMap::new();
    for found in certs {
        by_cert
            .entry(found.item.sha256_cert.clone())
            .or_default()
            .push(found);
    }
    let mut res = Vec::with_capacity(by_cert.len());
    for (sha256_cert, group) in by_cert {
        let paths = distinct(group.iter().map(|it| files[it.file].display.clone()));
        let formats = distinct(group.iter().map(|it| it.item.format.to_owned()));
        let Some(first) = group.into_iter().next() else {
            continue;
        };
        let rule = &rules[files[first.file].rule];
        let cert = first.item;
        let external_id = format!("cert:sha256:{sha256_cert}");
        let identity_id = if cert.subject.is_empty() {
            external_id.clone()
        } else {
            cert.subject.clone()
        };
        let mut attributes = BTreeMap::from([
            ("path".to_owned(), paths[0].clone()),
            ("format".to_owned(), formats.join(",")),
            ("subject".to_owned(), cert.subject.clone()),
            ("issuer".to_owned(), cert.issuer.clone()),
            ("serial".to_owned(), cert.serial.clone()),
            ("is_ca".to_owned(), cert.is_ca.to_string()),
            ("self_signed".to_owned(), cert.self_signed.to_string()),
        ]);
        if paths.len() > 1 {
            attributes.insert("paths".to_owned(), paths.join(","));
        }
        if let Some(value) = &cert.key_usage {
            attributes.insert("key_usage".to_owned(), value.clone());
        }
        if let Some(value) = &cert.extended_key_usage {
            attributes.insert("extended_key_usage".to_owned(), value.clone());
        }
        if let Some(value) = &cert.common_name {
            attributes.insert("common_name".to_owned(), value.clone());
        }
        let default_purpose = cert.code_signing.then(|| "signing".to_owned());
        res.push(Assembled {
            credential: Credential {
                external_id,
                identity_id,
                kind: CredentialKind::Certificate,
                name: paths[0].clone(),
                status: CredentialStatus::Active,
                created_at: Some(cert.not_before),
                not_before: Some(cert.not_before),
                expires_at: Some(cert.not_after),
                last_used: LastUse::Unknown,
                algorithm: cert.algorithm.clone(),
                key_bits: cert.key_bits,
                fingerprints: vec![
                    fingerprint("sha256_cert", &sha256_cert),
                    fingerprint("sha256_spki", &cert.sha256_spki),
                ],
                public_key: Some(cert.public_key.clone()),
                owner: rule.owner.clone(),
                purpose: rule.purpose.clone().or(default_purpose),
                tags: rule.tags.clone(),
                attributes,
                signs_with: Vec::new(),
            },
            paths,
        });
    }
    res
}

/// The identity a credential authenticates: a key pair, or a certificate subject.
fn identity_for(credential: &Credential) -> Identity {
    let (kind, name) = if credential.kind == CredentialKind::Certificate {
        let name = credential
            .attributes
            .get("common_name")
            .or_else(|| credential.attributes.get("subject"))
            .filter(|it| !it.is_empty())
            .cloned()
            .unwrap_or_else(|| stem_name(&credential.name));
        (IdentityKind::CertificateSubject, name)
    } else {
        (IdentityKind::KeyPair, stem_name(&credential.name))
    };
    Identity {
        external_id: credential.identity_id.clone(),
        kind,
        name,
        owner: credential.owner.clone(),
        purpose: credential.purpose.clone(),
        tags: credential.tags.clone(),
        confirmed_leaks: Vec::new(),
    }
}

/// The file stem of `path`, or the directory name for a cosign key (`release/cosign.pub` →
/// `release`).
fn stem_name(path: &str) -> String {
    let path = Path::new(path);
    let stem = path
        .file_stem()
        .map(|it| it.to_string_lossy().into_owned())
        .unwrap_or_default();
    if stem == "cosign"
        && let Some(parent) = path.parent().and_then(Path::file_name)
    {
        return parent.to_string_lossy().into_owned();
    }
    stem
}

fn fingerprint(algorithm: &str, value: &str) -> Fingerprint {
    Fingerprint {
        algorithm: algorithm.to_owned(),
        value: value.to_owned(),
    }
}

/// The distinct values of `values`, in first-seen order.
fn distinct(values: impl Iterator<Item = String>) -> Vec<String> {
    let mut seen = BTreeSet::new();
    values.filter(|it| seen.insert(it.clone())).collect()
}
