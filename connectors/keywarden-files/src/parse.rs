//! Recognising and decoding the contents of one file. Pure: no I/O.
//!
//! A file is key material if it has PEM armor, holds OpenSSH public key lines, or is named like a
//! DER certificate (`*.der`, `*.cer`, `*.crt`); anything else is not looked at further.
//! Encrypted private keys (cosign, PKCS#8, legacy OpenSSL, OpenSSH) are never decrypted.
//! Every error message is built from fixed text, PEM labels, positions and the decoders' reasons
//! (ASN.1 tags and offsets), never from the bytes of the file.

use base64::Engine as _;
use chrono::{DateTime, Utc};
use keywarden_connector::CredentialKind;
use serde::Deserialize;
use tracing::trace;
use x509_parser::certificate::X509Certificate;
use zeroize::Zeroizing;

use crate::key::{KeyError, KeyFacts, PublicKey, sha256_hex};

/// Longest PEM label quoted in an error message.
const MAX_LABEL_LEN: usize = 64;

/// What one file holds: the key material found and the parts that could not be read.
#[derive(Debug, Default)]
pub(crate) struct Parsed {
    pub(crate) items: Vec<Item>,
    /// One message per unreadable part (PEM block, line), safe to log.
    pub(crate) errors: Vec<String>,
}

/// One piece of key material.
#[derive(Debug)]
pub(crate) enum Item {
    Key(KeyItem),
    Certificate(Box<CertFacts>),
}

/// A public key, a private key or a key pair found in a file.
#[derive(Debug)]
pub(crate) struct KeyItem {
    /// `cosign_key`, `private_key`, `ssh_key` or `public_key`.
    pub(crate) kind: CredentialKind,
    /// The public key, when it is known (always, except for encrypted keys without a public half).
    pub(crate) key: Option<KeyFacts>,
    /// `pem_spki`, `pem_pkcs8`, `sec1`, `pkcs1`, `der_spki`, `der_pkcs8`, `openssh` or `cosign`.
    pub(crate) format: &'static str,
    /// `Some(encrypted)` when the item holds a private key.
    pub(crate) private: Option<bool>,
    /// The algorithm, when it is known without the public key (a legacy encrypted RSA key).
    pub(crate) algorithm_hint: Option<&'static str>,
    /// Further public facts (`comment`, `kdf`, `cipher`).
    pub(crate) attributes: Vec<(&'static str, String)>,
}

/// The facts of one X.509 certificate.
#[derive(Debug)]
pub(crate) struct CertFacts {
    /// `x509_pem` or `x509_der`.
    pub(crate) format: &'static str,
    /// Lower-hex SHA-256 of the certificate DER.
    pub(crate) sha256_cert: String,
    /// Lower-hex SHA-256 of the subject public key's DER SubjectPublicKeyInfo.
    pub(crate) sha256_spki: String,
    /// That SubjectPublicKeyInfo, base64.
    pub(crate) public_key: String,
    pub(crate) algorithm: Option<String>,
    pub(crate) key_bits: Option<u32>,
    /// The subject DN, RFC 4514 style (`CN=..., O=...`).
    pub(crate) subject: String,
    pub(crate) common_name: Option<String>,
    pub(crate) issuer: String,
    /// Lower-hex serial number without leading zero bytes.
    pub(crate) serial: String,
    pub(crate) not_before: DateTime<Utc>,
    pub(crate) not_after: DateTime<Utc>,
    /// Comma-separated key usages (`digital_signature,...`), `invalid`, or `None` without the extension.
    pub(crate) key_usage: Option<String>,
    /// Comma-separated extended key usages (`code_signing,...`), `invalid`, or `None`.
    pub(crate) extended_key_usage: Option<String>,
    pub(crate) code_signing: bool,
    pub(crate) is_ca: bool,
    pub(crate) self_signed: bool,
}

/// Decodes `bytes`, the contents of a file named `file_name`.
///
/// Returns `None` when the file is not key material at all.
pub(crate) fn parse_file(file_name: &str, bytes: &[u8]) -> Option<Parsed> {
    if has_pem_armor(bytes) {
        return Some(parse_pem(bytes));
    }
    let extension = file_name
        .rsplit_once('.')
        .map(|(_, ext)| ext.to_ascii_lowercase());
    if let Some(ext @ ("der" | "cer" | "crt")) = extension.as_deref() {
        return Some(parse_der(bytes, ext == "der"));
    }
    if file_name.starts_with("known_hosts") {
        trace!(file = file_name, "Host keys are not inventoried.");
        return None;
    }
    let text = std::str::from_utf8(bytes).ok()?;
    parse_ssh_lines(text)
}

/// Whether some line starts with PEM armor.
fn has_pem_armor(bytes: &[u8]) -> bool {
    bytes
        .split(|it| *it == b'\n')
        .any(|line| line.trim_ascii_start().starts_with(b"-----BEGIN "))
}

fn parse_pem(bytes: &[u8]) -> Parsed {
    let mut res = Parsed::default();
    let blocks = match pem::parse_many(bytes) {
        Ok(blocks) => blocks,
        Err(error) => {
            res.errors.push(describe_pem_error(&error).to_owned());
            return res;
        }
    };
    if blocks.is_empty() {
        res.errors
            .push("PEM armor without a complete BEGIN/END block".to_owned());
        return res;
    }
    for (idx, block) in blocks.into_iter().enumerate() {
        let label = block.tag().to_owned();
        let legacy_encrypted = block
            .headers()
            .get("Proc-Type")
            .is_some_and(|it| it.contains("ENCRYPTED"));
        let der = Zeroizing::new(block.into_contents());
        match parse_pem_block(&label, &der, legacy_encrypted) {
            Ok(Some(item)) => res.items.push(item),
            Ok(None) => trace!(label = %label, "Skipped PEM block that is not a credential."),
            Err(message) => res.errors.push(format!(
                "PEM block {} `{}`: {message}",
                idx + 1,
                truncate(&label, MAX_LABEL_LEN)
            )),
        }
    }
    res
}

/// The message for a PEM framing error, without any of the file's text.
fn describe_pem_error(error: &pem::PemError) -> &'static str {
    match error {
        pem::PemError::MismatchedTags(..) => "PEM BEGIN and END labels differ",
        pem::PemError::MalformedFraming => "malformed PEM framing",
        pem::PemError::MissingBeginTag => "PEM BEGIN line is missing",
        pem::PemError::MissingEndTag => "PEM END line is missing",
        pem::PemError::MissingData => "PEM block has no data",
        pem::PemError::InvalidData(_) => "PEM block is not valid base64",
        pem::PemError::InvalidHeader(_) => "PEM block has an invalid header",
        pem::PemError::NotUtf8(_) => "PEM block is not valid UTF-8",
    }
}

fn parse_pem_block(
    label: &str,
    der: &[u8],
    legacy_encrypted: bool,
) -> Result<Option<Item>, String> {
    let item = match label {
        "CERTIFICATE" | "X509 CERTIFICATE" | "TRUSTED CERTIFICATE" => {
            Item::Certificate(Box::new(certificate(der, "x509_pem")?))
        }
        "PUBLIC KEY" => public(PublicKey::from_spki_der(der), "pem_spki")?,
        "RSA PUBLIC KEY" => public(PublicKey::from_pkcs1_public_der(der), "pkcs1")?,
        "PRIVATE KEY" => private(PublicKey::from_pkcs8_private_der(der), "pem_pkcs8")?,
        "EC PRIVATE KEY" if legacy_encrypted => encrypted("sec1", Some("ecdsa")),
        "EC PRIVATE KEY" => private(PublicKey::from_sec1_private_der(der), "sec1")?,
        "RSA PRIVATE KEY" if legacy_encrypted => encrypted("pkcs1", Some("rsa")),
        "RSA PRIVATE KEY" => private(PublicKey::from_pkcs1_private_der(der), "pkcs1")?,
        "ENCRYPTED PRIVATE KEY" => {
            pkcs8::der::Document::try_from(der)
                .map_err(|error| format!("invalid encrypted PKCS#8 private key: {error}"))?;
            encrypted("pem_pkcs8", None)
        }
        "OPENSSH PRIVATE KEY" => openssh_private(der)?,
        "ENCRYPTED SIGSTORE PRIVATE KEY" | "ENCRYPTED COSIGN PRIVATE KEY" => cosign_private(der)?,
        "EC PARAMETERS"
        | "DH PARAMETERS"
        | "X509 CRL"
        | "CERTIFICATE REQUEST"
        | "NEW CERTIFICATE REQUEST" => return Ok(None),
        _ => return Err("unknown PEM label".to_owned()),
    };
    Ok(Some(item))
}

/// A key item from a decoded public key.
fn public(key: Result<PublicKey, KeyError>, format: &'static str) -> Result<Item, String> {
    key_item(CredentialKind::PublicKey, key, format, None)
}

/// A key item from the public half derived from an unencrypted private key.
fn private(key: Result<PublicKey, KeyError>, format: &'static str) -> Result<Item, String> {
    key_item(CredentialKind::PrivateKey, key, format, Some(false))
}

fn key_item(
    kind: CredentialKind,
    key: Result<PublicKey, KeyError>,
    format: &'static str,
    private: Option<bool>,
) -> Result<Item, String> {
    let facts = key
        .and_then(|it| it.facts())
        .map_err(|error| error.to_string())?;
    Ok(Item::Key(KeyItem {
        kind,
        key: Some(facts),
        format,
        private,
        algorithm_hint: None,
        attributes: Vec::new(),
    }))
}

/// An encrypted private key whose public half is not in the file.
fn encrypted(format: &'static str, algorithm_hint: Option<&'static str>) -> Item {
    Item::Key(KeyItem {
        kind: CredentialKind::PrivateKey,
        key: None,
        format,
        private: Some(true),
        algorithm_hint,
        attributes: Vec::new(),
    })
}

/// An OpenSSH private key: its public half is stored in the clear, even when it is encrypted.
fn openssh_private(der: &[u8]) -> Result<Item, String> {
    let key = ssh_key::PrivateKey::from_bytes(der)
        .map_err(|error| format!("invalid OpenSSH private key: {error}"))?;
    ssh_item(
        key.public_key().key_data(),
        key.comment(),
        Some(key.is_encrypted()),
    )
}

/// The credential of an OpenSSH key, from its public half.
fn ssh_item(
    key_data: &ssh_key::public::KeyData,
    comment: &str,
    private: Option<bool>,
) -> Result<Item, String> {
    let facts = PublicKey::from_ssh(key_data)
        .and_then(|it| it.facts())
        .map_err(|error| error.to_string())?;
    let mut attributes = Vec::new();
    if !comment.is_empty() {
        attributes.push(("comment", comment.to_owned()));
    }
    Ok(Item::Key(KeyItem {
        kind: CredentialKind::SshKey,
        key: Some(facts),
        format: "openssh",
        private,
        algorithm_hint: None,
        attributes,
    }))
}

/// The JSON envelope cosign writes around its scrypt + secretbox encrypted PKCS#8 key.
///
/// Only the names are read: the key is never decrypted.
#[derive(Deserialize)]
struct CosignEnvelope {
    kdf: CosignAlgorithm,
    cipher: CosignAlgorithm,
    ciphertext: String,
}

#[derive(Deserialize)]
struct CosignAlgorithm {
    name: String,
}

fn cosign_private(der: &[u8]) -> Result<Item, String> {
    let envelope: CosignEnvelope = serde_json::from_slice(der).map_err(|error| {
        // The serde message can quote field values, so only its position is used.
        format!(
            "not a cosign encrypted key envelope (JSON error at line {} column {})",
            error.line(),
            error.column()
        )
    })?;
    if envelope.ciphertext.is_empty() {
        return Err("cosign encrypted key envelope has no ciphertext".to_owned());
    }
    Ok(Item::Key(KeyItem {
        kind: CredentialKind::CosignKey,
        key: None,
        format: "cosign",
        private: Some(true),
        algorithm_hint: None,
        attributes: vec![
            (
                "kdf",
                truncate(&envelope.kdf.name, MAX_LABEL_LEN).to_owned(),
            ),
            (
                "cipher",
                truncate(&envelope.cipher.name, MAX_LABEL_LEN).to_owned(),
            ),
        ],
    }))
}

/// A file without armor named like DER: a certificate, or for `*.der` also a public or private key.
fn parse_der(bytes: &[u8], any_der: bool) -> Parsed {
    let mut res = Parsed::default();
    let item = if !any_der || x509_parser::parse_x509_certificate(bytes).is_ok() {
        certificate(bytes, "x509_der").map(|it| Item::Certificate(Box::new(it)))
    } else if spki::SubjectPublicKeyInfoRef::try_from(bytes).is_ok() {
        public(PublicKey::from_spki_der(bytes), "der_spki")
    } else if pkcs8::PrivateKeyInfoRef::try_from(bytes).is_ok() {
        private(PublicKey::from_pkcs8_private_der(bytes), "der_pkcs8")
    } else {
        Err("not a DER certificate, public key or PKCS#8 private key".to_owned())
    };
    match item {
        Ok(item) => res.items.push(item),
        Err(message) => res.errors.push(message),
    }
    res
}

fn certificate(der: &[u8], format: &'static str) -> Result<CertFacts, String> {
    let (rest, cert) = x509_parser::parse_x509_certificate(der).map_err(|error| {
        let reason = match error {
            x509_parser::nom::Err::Incomplete(_) => "truncated".to_owned(),
            x509_parser::nom::Err::Error(error) | x509_parser::nom::Err::Failure(error) => {
                error.to_string()
            }
        };
        format!("invalid X.509 certificate: {reason}")
    })?;
    let validity = cert.validity();
    let not_before = DateTime::from_timestamp(validity.not_before.timestamp(), 0)
        .ok_or("certificate not-before is out of range")?;
    let not_after = DateTime::from_timestamp(validity.not_after.timestamp(), 0)
        .ok_or("certificate not-after is out of range")?;
    let (sha256_spki, algorithm, key_bits) = subject_key(&cert);
    let (extended_key_usage, code_signing) = extended_key_usage(&cert);
    Ok(CertFacts {
        format,
        // A `TRUSTED CERTIFICATE` block carries OpenSSL trust settings after the certificate.
        sha256_cert: sha256_hex(&der[..der.len() - rest.len()]),
        sha256_spki,
        public_key: base64::engine::general_purpose::STANDARD.encode(cert.public_key().raw),
        algorithm,
        key_bits,
        subject: cert.subject().to_string(),
        common_name: cert
            .subject()
            .iter_common_name()
            .find_map(|it| it.as_str().ok())
            .map(str::to_owned),
        issuer: cert.issuer().to_string(),
        serial: serial_hex(cert.raw_serial()),
        not_before,
        not_after,
        key_usage: key_usage(&cert),
        extended_key_usage,
        code_signing,
        is_ca: cert.is_ca(),
        self_signed: cert.subject().as_raw() == cert.issuer().as_raw(),
    })
}

/// Fingerprint, algorithm and size of the subject key; keys of algorithms this connector does not
/// decode are fingerprinted over the SubjectPublicKeyInfo as it is in the certificate.
fn subject_key(cert: &X509Certificate<'_>) -> (String, Option<String>, Option<u32>) {
    let spki = cert.public_key();
    match PublicKey::from_spki_der(spki.raw).and_then(|it| it.facts()) {
        Ok(facts) => (
            facts.sha256_spki,
            Some(facts.algorithm.to_owned()),
            Some(facts.bits),
        ),
        Err(error) => {
            trace!(%error, "Certificate key is fingerprinted as found.");
            let bits = spki
                .parsed()
                .ok()
                .and_then(|it| u32::try_from(it.key_size()).ok())
                .filter(|it| *it > 0);
            (
                sha256_hex(spki.raw),
                Some(spki.algorithm.algorithm.to_id_string()),
                bits,
            )
        }
    }
}

fn serial_hex(raw: &[u8]) -> String {
    let start = raw
        .iter()
        .position(|it| *it != 0)
        .unwrap_or(raw.len().saturating_sub(1));
    hex::encode(&raw[start..])
}

fn key_usage(cert: &X509Certificate<'_>) -> Option<String> {
    let usage = match cert.key_usage() {
        Ok(Some(ext)) => ext.value,
        Ok(None) => return None,
        Err(_) => return Some("invalid".to_owned()),
    };
    let names = [
        (usage.digital_signature(), "digital_signature"),
        (usage.non_repudiation(), "non_repudiation"),
        (usage.key_encipherment(), "key_encipherment"),
        (usage.data_encipherment(), "data_encipherment"),
        (usage.key_agreement(), "key_agreement"),
        (usage.key_cert_sign(), "key_cert_sign"),
        (usage.crl_sign(), "crl_sign"),
        (usage.encipher_only(), "encipher_only"),
        (usage.decipher_only(), "decipher_only"),
    ];
    Some(join_set(&names))
}

fn extended_key_usage(cert: &X509Certificate<'_>) -> (Option<String>, bool) {
    let usage = match cert.extended_key_usage() {
        Ok(Some(ext)) => ext.value,
        Ok(None) => return (None, false),
        Err(_) => return (Some("invalid".to_owned()), false),
    };
    let names = [
        (usage.any, "any"),
        (usage.server_auth, "server_auth"),
        (usage.client_auth, "client_auth"),
        (usage.code_signing, "code_signing"),
        (usage.email_protection, "email_protection"),
        (usage.time_stamping, "time_stamping"),
        (usage.ocsp_signing, "ocsp_signing"),
    ];
    let mut res = join_set(&names);
    for oid in &usage.other {
        if !res.is_empty() {
            res.push(',');
        }
        res.push_str(&oid.to_id_string());
    }
    (Some(res), usage.code_signing)
}

fn join_set(names: &[(bool, &str)]) -> String {
    names
        .iter()
        .filter(|(set, _)| *set)
        .map(|(_, name)| *name)
        .collect::<Vec<_>>()
        .join(",")
}

/// The OpenSSH public key algorithms recognised in key files (`*.pub`, `authorized_keys`).
const SSH_ALGORITHMS: &[&str] = &[
    "ssh-ed25519",
    "ssh-rsa",
    "ssh-dss",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
];

/// OpenSSH public key lines, optionally behind `authorized_keys` options.
///
/// A line counts as a key line when a known algorithm name is followed by a token starting with
/// `AAAA` (every SSH wire-format key starts with the 32-bit length of its algorithm name), so
/// scripts and prose that mention `ssh-rsa` are not taken for keys.
fn parse_ssh_lines(text: &str) -> Option<Parsed> {
    let mut res = Parsed::default();
    let mut seen = false;
    for (idx, line) in text.lines().enumerate() {
        let Some(key) = ssh_key_text(line) else {
            continue;
        };
        seen = true;
        match ssh_public(&key) {
            Ok(item) => res.items.push(item),
            Err(message) => res.errors.push(format!("line {}: {message}", idx + 1)),
        }
    }
    seen.then_some(res)
}

/// The `algorithm base64 [comment]` part of a key line, or `None` if the line holds no key.
fn ssh_key_text(line: &str) -> Option<String> {
    if line.trim_start().starts_with('#') {
        return None;
    }
    let tokens: Vec<&str> = line.split_ascii_whitespace().collect();
    let start = tokens
        .windows(2)
        .position(|pair| SSH_ALGORITHMS.contains(&pair[0]) && pair[1].starts_with("AAAA"))?;
    Some(tokens[start..].join(" "))
}

fn ssh_public(line: &str) -> Result<Item, String> {
    let key = ssh_key::PublicKey::from_openssh(line)
        .map_err(|error| format!("invalid OpenSSH public key: {error}"))?;
    ssh_item(key.key_data(), key.comment(), None)
}

/// At most `max` bytes of `text`, cut at a character boundary.
fn truncate(text: &str, max: usize) -> &str {
    match text.char_indices().nth(max) {
        Some((idx, _)) => &text[..idx],
        None => text,
    }
}
