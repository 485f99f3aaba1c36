//! `keywarden trust export`: the signers trusted now (or every signer with its windows) in the
//! formats admission and release tooling read, written through temporary files renamed into
//! place.

use std::fs::{self, File};
use std::io::{Read as _, Write as _};
use std::path::{Component, Path, PathBuf};
use std::process::ExitCode;

use chrono::{DateTime, Utc};

use super::trust::{load, parse_time, time};
use super::{ConfigArg, Failure};
use crate::config::{Config, SourceConfig};
use crate::signers::Signer;
use crate::signers::bundle_key::{self, BundleKey, Origin};
use crate::signers::export::{self, Export, Output};

/// The file that marks a directory `trust export` wrote, so that the next export may replace it.
const EXPORT_MARKER: &str = ".keywarden-export";
/// The most a certificate file may hold for `notation`.
const MAX_CERTIFICATE_FILE: u64 = 1 << 20;

/// `trust export`: checks --at and --out before anything is read, builds the documents (pure,
/// `signers::export`), then writes them through temporary files renamed into place, so a failed
/// export writes nothing.
pub(super) async fn export(
    config: &ConfigArg,
    format: export::Format,
    out: &Path,
    at: Option<&str>,
    now: DateTime<Utc>,
) -> Result<ExitCode, Failure> {
    if format.expresses_time() && at.is_some() {
        return Err(Failure::Input(
            "--at: the keywarden bundle holds every signer with its trust window and distrust \
             periods, for every time; --at chooses the signers of the formats that cannot \
             express time"
                .into(),
        ));
    }
    let at = parse_time("--at", at.unwrap_or("now"), now)?;
    let out = checked_out(out, format)?;
    let (loaded, store, signers) = load(config).await?;
    store.close().await;
    let render = |err: export::ExportError| Failure::Internal(err.into());
    let exported = match format {
        export::Format::Cosign => export::cosign(&signers, at),
        export::Format::PolicyController => {
            export::policy_controller(&signers, at).map_err(render)?
        }
        export::Format::Kyverno => export::kyverno(&signers, at).map_err(render)?,
        export::Format::Notation => {
            let certificates = read_certificates(&loaded, &signers, at);
            export::notation(&signers, at, &certificates).map_err(render)?
        }
        export::Format::Keywarden => {
            return export_bundle(&loaded, &signers, &out, now).await;
        }
    };
    match &exported.output {
        Output::File(bytes) => write_files(&[(out.as_path(), bytes.as_slice())]),
        Output::Directory { dirs, files } => write_directory(&out, format, dirs, files),
    }
    .map_err(|err| cannot_write(&out, &err))?;
    tell(&exported);
    println!(
        "wrote {} (--format {}): {} signer(s) trusted at {}",
        out.display(),
        format.as_str(),
        exported.included.len(),
        time(at)
    );
    if exported.included.is_empty() {
        eprintln!(
            "warning: no signer is trusted at {}: the export trusts no signature",
            time(at)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The `keywarden` bundle, its signature and keywarden's public key.
async fn export_bundle(
    config: &Config,
    signers: &[Signer],
    out: &Path,
    now: DateTime<Utc>,
) -> Result<ExitCode, Failure> {
    let key_file = bundle_key::key_file(&config.store_path);
    let (key, origin) =
        BundleKey::load_or_create(&key_file).map_err(|err| Failure::Internal(err.into()))?;
    if origin == Origin::Created {
        eprintln!(
            "created keywarden's bundle signing key {} (keep it; its public half is {}.pub)",
            key_file.display(),
            out.display()
        );
    }
    let key_error = |err: bundle_key::BundleKeyError| Failure::Internal(err.into());
    let key_id = key.key_id().map_err(key_error)?;
    let exported = export::keywarden_bundle(signers, now, &key_id)
        .map_err(|err| Failure::Internal(err.into()))?;
    let Output::File(bundle) = &exported.output else {
        return Err(Failure::Internal(anyhow::anyhow!(
            "the keywarden bundle is one file"
        )));
    };
    let signature = key.sign(bundle).map_err(key_error)?;
    let public = key.public_key_pem().map_err(key_error)?;
    drop(key);
    let (sig_path, pub_path) = (suffixed(out, ".sig"), suffixed(out, ".pub"));
    write_files(&[
        (out, bundle.as_slice()),
        (&sig_path, signature.as_slice()),
        (&pub_path, public.as_bytes()),
    ])
    .map_err(|err| cannot_write(out, &err))?;
    tell(&exported);
    println!(
        "wrote {} ({} signer(s) with their trust windows and distrust periods), its signature \
         {} and keywarden's public key {} (key id {key_id}); verify with `openssl dgst -sha256 \
         -verify {} -signature {} {}`",
        out.display(),
        exported.included.len(),
        sig_path.display(),
        pub_path.display(),
        pub_path.display(),
        sig_path.display(),
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// What an export left out, on stderr.
fn tell(exported: &Export) {
    for it in &exported.left_out {
        eprintln!("left out {}: {}", it.key_id, it.reason);
    }
    for note in &exported.notes {
        eprintln!("note: {note}");
    }
}

fn cannot_write(out: &Path, err: &std::io::Error) -> Failure {
    Failure::Input(format!(
        "--out {}: cannot write: {err}; nothing was written",
        out.display()
    ))
}

/// `path` with `suffix` appended to its file name (`bundle.json` → `bundle.json.sig`).
fn suffixed(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(suffix);
    PathBuf::from(name)
}

/// --out, checked before anything is read or written: its directory exists, and what is there
/// is of the kind the format writes (a directory export replaces only an empty directory or one
/// an earlier export wrote).
fn checked_out(out: &Path, format: export::Format) -> Result<PathBuf, Failure> {
    let bad = |what: String| Failure::Input(format!("--out {}: {what}", out.display()));
    if out.file_name().is_none() {
        return Err(bad("expected a file or directory name".into()));
    }
    let parent = match out.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    match fs::metadata(parent) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => return Err(bad(format!("{} is not a directory", parent.display()))),
        Err(err) => return Err(bad(format!("{}: {err}", parent.display()))),
    }
    let found = |path: &Path| match fs::symlink_metadata(path) {
        Ok(meta) => Ok(Some(meta)),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(bad(format!("{}: {err}", path.display()))),
    };
    if !format.is_directory() {
        let mut paths = vec![out.to_path_buf()];
        if format == export::Format::Keywarden {
            paths.extend([suffixed(out, ".sig"), suffixed(out, ".pub")]);
        }
        for path in &paths {
            if found(path)?.is_some_and(|meta| meta.is_dir()) {
                return Err(bad(format!(
                    "{} is a directory; --format {} writes a file",
                    path.display(),
                    format.as_str()
                )));
            }
        }
        return Ok(out.to_path_buf());
    }
    match found(out)? {
        None => {}
        Some(meta) if meta.file_type().is_symlink() => {
            return Err(bad("is a symbolic link; name the directory itself".into()));
        }
        Some(meta) if !meta.is_dir() => {
            return Err(bad(format!(
                "exists and is not a directory; --format {} writes a directory",
                format.as_str()
            )));
        }
        Some(_) => {
            let mut entries = fs::read_dir(out).map_err(|err| bad(err.to_string()))?;
            let empty = entries.next().is_none();
            if !empty && !out.join(EXPORT_MARKER).is_file() {
                return Err(bad(format!(
                    "a directory that keywarden did not export to (no {EXPORT_MARKER}); an \
                     export replaces its directory whole, so name a new or empty one"
                )));
            }
        }
    }
    Ok(out.to_path_buf())
}

/// A new name beside `path` for a temporary file or directory.
fn temporary_beside(path: &Path, what: &str) -> std::io::Result<PathBuf> {
    let nonce = getrandom::u64().map_err(std::io::Error::other)?;
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    Ok(path.with_file_name(format!(".{name}.{nonce:016x}.{what}")))
}

/// Writes `bytes` to a new temporary file beside `path`; returns its name.
fn stage_file(path: &Path, bytes: &[u8]) -> std::io::Result<PathBuf> {
    let tmp = temporary_beside(path, "tmp")?;
    let written = (|| {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()
    })();
    match written {
        Ok(()) => Ok(tmp),
        Err(err) => {
            let _ = fs::remove_file(&tmp);
            Err(err)
        }
    }
}

/// Writes each file whole under a temporary name, then renames them all into place: on an error
/// before the renames, nothing is written.
fn write_files(files: &[(&Path, &[u8])]) -> std::io::Result<()> {
    let mut staged: Vec<(PathBuf, &Path)> = Vec::with_capacity(files.len());
    for (path, bytes) in files {
        match stage_file(path, bytes) {
            Ok(tmp) => staged.push((tmp, path)),
            Err(err) => {
                for (tmp, _) in &staged {
                    let _ = fs::remove_file(tmp);
                }
                return Err(err);
            }
        }
    }
    for (done, (tmp, path)) in staged.iter().enumerate() {
        if let Err(err) = fs::rename(tmp, path) {
            for (tmp, _) in staged.iter().skip(done) {
                let _ = fs::remove_file(tmp);
            }
            return Err(err);
        }
    }
    Ok(())
}

/// Builds the directory under a temporary name beside `out`, then puts it in the place of `out`
/// (the earlier export there is removed, so no file of a signer distrusted since is left).
fn write_directory(
    out: &Path,
    format: export::Format,
    dirs: &[String],
    files: &[export::OutputFile],
) -> std::io::Result<()> {
    let tmp = temporary_beside(out, "tmp")?;
    fs::create_dir(&tmp)?;
    let filled = (|| {
        fs::write(
            tmp.join(EXPORT_MARKER),
            format!(
                "written by `keywarden trust export --format {}`; the next export replaces this \
                 directory whole\n",
                format.as_str()
            ),
        )?;
        for dir in dirs {
            fs::create_dir_all(tmp.join(relative(dir)?))?;
        }
        for file in files {
            let path = tmp.join(relative(&file.path)?);
            if let Some(parent) = path.parent() {
                fs::create_dir_all(parent)?;
            }
            let mut written = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)?;
            written.write_all(&file.bytes)?;
            written.sync_all()?;
        }
        Ok(())
    })();
    if let Err(err) = filled {
        let _ = fs::remove_dir_all(&tmp);
        return Err(err);
    }
    if fs::symlink_metadata(out).is_ok() {
        let old = temporary_beside(out, "old")?;
        if let Err(err) = fs::rename(out, &old) {
            let _ = fs::remove_dir_all(&tmp);
            return Err(err);
        }
        // Checked again on what was moved away: a directory put in its place since the first
        // check is put back, never deleted.
        if !written_by_export(&old) {
            let _ = fs::rename(&old, out);
            let _ = fs::remove_dir_all(&tmp);
            return Err(std::io::Error::other(
                "it was replaced while the export was written by something an export did not \
                 write; it is left as it is",
            ));
        }
        if let Err(err) = fs::rename(&tmp, out) {
            let _ = fs::rename(&old, out);
            let _ = fs::remove_dir_all(&tmp);
            return Err(err);
        }
        let _ = fs::remove_dir_all(&old);
        Ok(())
    } else {
        fs::rename(&tmp, out).inspect_err(|_| {
            let _ = fs::remove_dir_all(&tmp);
        })
    }
}

/// Whether a directory is one an export may replace: a real directory (not a link) that holds the
/// export marker, or nothing.
fn written_by_export(dir: &Path) -> bool {
    fs::symlink_metadata(dir).is_ok_and(|meta| meta.is_dir())
        && (dir.join(EXPORT_MARKER).is_file()
            || fs::read_dir(dir).is_ok_and(|mut it| it.next().is_none()))
}

/// A `/`-separated path of an export, which must stay inside its directory.
fn relative(path: &str) -> std::io::Result<&Path> {
    let path = Path::new(path);
    if path
        .components()
        .all(|it| matches!(it, Component::Normal(_)))
    {
        Ok(path)
    } else {
        Err(std::io::Error::other(format!(
            "{}: not a path inside the export",
            path.display()
        )))
    }
}

/// The contents of the certificate files of the trusted signers, for `notation`: the ledger keeps
/// a certificate's digest, not the certificate, so it is read again from the `files` source it
/// was found in (and used only if it still has that digest).
fn read_certificates(
    config: &Config,
    signers: &[Signer],
    at: DateTime<Utc>,
) -> export::Certificates {
    let mut read = export::Certificates::new();
    for credential in export::certificate_credentials(signers, at) {
        let contents = match config
            .sources
            .iter()
            .find(|(name, _)| *name == credential.source)
        {
            Some((_, SourceConfig::Files(_))) => {
                read_limited(&config.base_dir.join(&credential.name))
            }
            Some((_, other)) => Err(format!(
                "the ledger keeps no certificate, and keywarden reads certificates again only \
                 from `files` sources, not `{}`",
                other.kind()
            )),
            None => Err(format!(
                "its source `{}` is no longer in the config",
                credential.source
            )),
        };
        read.insert(
            (credential.source.clone(), credential.external_id.clone()),
            contents,
        );
    }
    read
}

fn read_limited(path: &Path) -> Result<Vec<u8>, String> {
    let cannot = |err: std::io::Error| format!("cannot read {}: {err}", path.display());
    let file = File::open(path).map_err(cannot)?;
    let mut bytes = Vec::new();
    file.take(MAX_CERTIFICATE_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(cannot)?;
    if bytes.len() as u64 > MAX_CERTIFICATE_FILE {
        return Err(format!("{} is larger than 1 MiB", path.display()));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_empty_directory_or_an_exports_own_is_replaced() {
        let dir = tempfile::tempdir().expect("tempdir");
        let empty = dir.path().join("empty");
        fs::create_dir(&empty).expect("mkdir");
        assert!(written_by_export(&empty));
        let ours = dir.path().join("ours");
        fs::create_dir(&ours).expect("mkdir");
        fs::write(ours.join(EXPORT_MARKER), "x").expect("marker");
        fs::write(ours.join("a.pub"), "x").expect("file");
        assert!(written_by_export(&ours));
        let foreign = dir.path().join("foreign");
        fs::create_dir(&foreign).expect("mkdir");
        fs::write(foreign.join("notes.txt"), "mine").expect("file");
        assert!(!written_by_export(&foreign));
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&ours, &link).expect("symlink");
        assert!(
            !written_by_export(&link),
            "a link is never taken for a directory"
        );
        let file = dir.path().join("file");
        fs::write(&file, "x").expect("file");
        assert!(!written_by_export(&file));
    }
}
