//! Trust bundles: the signers in the forms admission controllers and verifiers read.
//!
//! Four consumers cannot express time: cosign's `--key`, sigstore policy-controller's
//! `ClusterImagePolicy`, Kyverno's `verifyImages` and notation's trust store hold a key or do not.
//! Their exports hold only the signers trusted at one time (`at`: the command's `--at`, or now);
//! every signer distrusted then is left out, and so is every signer the format cannot express,
//! each with its reason ([`LeftOut`]). When no signer is left, the policies reject every image
//! rather than fall back to trusting anything. The `keywarden` bundle holds every signer with its
//! trust window and distrust periods, for a verifier that checks a signature's trusted time
//! against them; the caller signs its exact bytes (`super::bundle_key`).
//!
//! A public key is exported only if its DER hashes to the signer's key id, so an exported key is
//! the signer's and every file name built from a key id is 64 hex digits.
//!
//! Architecture invariant: no I/O and no clock, like [`crate::trust`]: the signers, the time and
//! the contents of the certificate files are handed in; the documents come back as bytes.

use std::collections::BTreeMap;

use base64::Engine as _;
use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use keywarden_connector::CredentialKind;
use serde::Serialize;
use sha2::{Digest as _, Sha256};
use x509_parser::certificate::X509Certificate;
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_NIST_EC_P521,
    OID_PKCS1_RSAENCRYPTION, OID_PKCS1_SHA1WITHRSA, OID_SHA1_WITH_RSA, OID_SIG_ED25519,
};
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;
use x509_parser::x509::SubjectPublicKeyInfo;

use super::Signer;
use crate::store::SignerCredential;
use crate::trust::{DistrustPeriod, DistrustReason, Reinstatement};

/// The name of what the policy formats define: the `ClusterImagePolicy`, the Kyverno
/// `ClusterPolicy` and its rule, the notation trust policy statement.
pub const POLICY_NAME: &str = "keywarden-signers";
/// The notation named trust store (`ca:keywarden`, `signingAuthority:keywarden`).
pub const NOTATION_STORE: &str = "keywarden";
/// The notation trust policy file, at the root of the exported notation directory.
pub const NOTATION_POLICY_FILE: &str = "trustpolicy.oci.json";
/// The store types a notation export fills: `ca` for the `notary.x509` signing scheme (what
/// `notation sign` uses by default), `signingAuthority` for `notary.x509.signingAuthority`.
pub const NOTATION_STORE_TYPES: [&str; 2] = ["ca", "signingAuthority"];
/// The `media_type` of a `keywarden` bundle.
pub const BUNDLE_MEDIA_TYPE: &str = "application/vnd.keywarden.trust-bundle.v1+json";

/// What `keywarden trust export` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// A directory of PEM public keys, `<key id>.pub` each (what `cosign verify --key` reads).
    Cosign,
    /// A sigstore policy-controller `ClusterImagePolicy` (YAML).
    PolicyController,
    /// A Kyverno `ClusterPolicy` with a `verifyImages` rule (YAML).
    Kyverno,
    /// A notation configuration directory: `trustpolicy.oci.json` and the trust store.
    Notation,
    /// Every signer with its trust window and distrust periods (JSON), signed by keywarden.
    Keywarden,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cosign => "cosign",
            Self::PolicyController => "policy-controller",
            Self::Kyverno => "kyverno",
            Self::Notation => "notation",
            Self::Keywarden => "keywarden",
        }
    }

    /// Whether the format holds trust windows and distrust periods: only `keywarden`; the others
    /// hold the signers trusted at one time.
    pub fn expresses_time(self) -> bool {
        self == Self::Keywarden
    }

    /// Whether the format is written as a directory (`cosign`, `notation`) rather than a file.
    pub fn is_directory(self) -> bool {
        matches!(self, Self::Cosign | Self::Notation)
    }
}

/// A signer an export leaves out, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeftOut {
    pub key_id: String,
    pub reason: String,
}

/// One file of a directory export, by its `/`-separated path relative to the directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputFile {
    pub path: String,
    pub bytes: Vec<u8>,
}

/// What an export writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// One file, at the output path.
    File(Vec<u8>),
    /// A directory: these subdirectories (made even when empty) and files.
    Directory {
        dirs: Vec<String>,
        files: Vec<OutputFile>,
    },
}

/// An export: what to write, the key ids it holds, and what it leaves out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Export {
    pub output: Output,
    /// The key ids of the signers it holds, in key id order.
    pub included: Vec<String>,
    pub left_out: Vec<LeftOut>,
    /// Other things to tell the reader (a certificate left out of a signer that is in).
    pub notes: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("cannot render the {format} document: {message}")]
    Render {
        format: &'static str,
        message: String,
    },
    #[error("signer {key_id}: no instant precedes its distrust period from {from}")]
    Time { key_id: String, from: DateTime<Utc> },
}

/// The key ids an export holds, for a format that cannot express time.
fn key_ids(keys: &[Key<'_>]) -> Vec<String> {
    keys.iter().map(|it| it.signer.key_id.clone()).collect()
}

/// A trusted signer with its public key, checked against its key id.
struct Key<'a> {
    signer: &'a Signer,
    der: Vec<u8>,
}

impl Key<'_> {
    fn pem(&self) -> String {
        pem_block("PUBLIC KEY", &self.der)
    }
}

fn pem_block(tag: &str, der: &[u8]) -> String {
    pem::encode_config(
        &pem::Pem::new(tag, der.to_vec()),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}

/// Lower-hex SHA-256.
fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The signer's DER SubjectPublicKeyInfo, if it is known and hashes to its key id.
fn public_key_der(signer: &Signer) -> Result<Vec<u8>, &'static str> {
    let Some(text) = signer.public_key.as_deref() else {
        return Err("its public key is unknown (no present credential shows it)");
    };
    let der = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|_| "its stored public key is not base64")?;
    if sha256_hex(&der) != signer.key_id {
        return Err("its stored public key does not hash to its key id");
    }
    Ok(der)
}

/// The signers trusted at `at` and from then on, with a known public key, and the others with
/// the reason. A consumer of a format without time trusts what it is given for as long as it
/// keeps it: a signer with a distrust period that has not ended by `at` (one in force, one to
/// come, one open until a replacement) is left out, so an export made with an earlier `--at`, or
/// kept past a scheduled revocation, never trusts a key that is distrusted later.
fn trusted_keys(signers: &[Signer], at: DateTime<Utc>) -> (Vec<Key<'_>>, Vec<LeftOut>) {
    let mut keys = Vec::new();
    let mut left_out = Vec::new();
    for signer in signers {
        if let Some(why) = signer.view(at).untrusted_because {
            left_out.push(LeftOut {
                key_id: signer.key_id.clone(),
                reason: format!("not trusted at {}: {why}", time(at)),
            });
            continue;
        }
        if let Some(later) = signer
            .record
            .periods
            .iter()
            .find(|it| it.until.is_none_or(|until| until > at))
        {
            left_out.push(LeftOut {
                key_id: signer.key_id.clone(),
                reason: format!(
                    "distrusted from {} ({}); a format without time cannot say until when it \
                     is trusted",
                    time(later.from),
                    later.reason.as_str()
                ),
            });
            continue;
        }
        match public_key_der(signer) {
            Ok(der) => keys.push(Key { signer, der }),
            Err(why) => left_out.push(LeftOut {
                key_id: signer.key_id.clone(),
                reason: why.to_owned(),
            }),
        }
    }
    (keys, left_out)
}

/// `cosign`: one `<key id>.pub` (a PEM `PUBLIC KEY`) per signer trusted at `at`.
pub fn cosign(signers: &[Signer], at: DateTime<Utc>) -> Export {
    let (keys, left_out) = trusted_keys(signers, at);
    let files = keys
        .iter()
        .map(|it| OutputFile {
            path: format!("{}.pub", it.signer.key_id),
            bytes: it.pem().into_bytes(),
        })
        .collect();
    Export {
        output: Output::Directory {
            dirs: Vec::new(),
            files,
        },
        included: key_ids(&keys),
        left_out,
        notes: Vec::new(),
    }
}

#[derive(Serialize)]
struct Metadata {
    name: &'static str,
    annotations: BTreeMap<&'static str, String>,
}

impl Metadata {
    fn at(at: DateTime<Utc>) -> Self {
        Self {
            name: POLICY_NAME,
            annotations: BTreeMap::from([("keywarden/trusted-at", time(at))]),
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Resource<S> {
    api_version: &'static str,
    kind: &'static str,
    metadata: Metadata,
    spec: S,
}

#[derive(Serialize)]
struct CipSpec {
    images: Vec<ImageGlob>,
    authorities: Vec<Authority>,
}

#[derive(Serialize)]
struct ImageGlob {
    glob: &'static str,
}

#[derive(Serialize)]
struct Authority {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<KeyData>,
    #[serde(rename = "static", skip_serializing_if = "Option::is_none")]
    static_: Option<StaticAuthority>,
}

#[derive(Serialize)]
struct KeyData {
    data: String,
}

#[derive(Serialize)]
struct StaticAuthority {
    action: &'static str,
    message: String,
}

fn nothing_trusted(at: DateTime<Utc>) -> String {
    format!(
        "keywarden trusts no signer at {}: no image signature can be trusted",
        time(at)
    )
}

/// YAML with a header saying what it is.
fn yaml<T: Serialize>(
    format: Format,
    at: DateTime<Utc>,
    value: &T,
) -> Result<Vec<u8>, ExportError> {
    let body = serde_saphyr::to_string(value).map_err(|err| ExportError::Render {
        format: format.as_str(),
        message: err.to_string(),
    })?;
    Ok(format!(
        "# keywarden trust export --format {}: the signers keywarden trusts at {}.\n\
         # This format cannot express time: export it again after every trust change.\n{body}",
        format.as_str(),
        time(at)
    )
    .into_bytes())
}

/// `policy-controller`: a `ClusterImagePolicy` for every image (`**`; narrow `spec.images` to
/// scope it) with one `key` authority per signer trusted at `at` (authorities are alternatives:
/// a signature by any one of them passes). With none trusted, one `static` authority that fails.
pub fn policy_controller(signers: &[Signer], at: DateTime<Utc>) -> Result<Export, ExportError> {
    let (keys, left_out) = trusted_keys(signers, at);
    let mut authorities: Vec<Authority> = keys
        .iter()
        .map(|it| Authority {
            name: format!("key-{}", it.signer.key_id),
            key: Some(KeyData { data: it.pem() }),
            static_: None,
        })
        .collect();
    if authorities.is_empty() {
        authorities.push(Authority {
            name: "no-trusted-signer".to_owned(),
            key: None,
            static_: Some(StaticAuthority {
                action: "fail",
                message: nothing_trusted(at),
            }),
        });
    }
    let policy = Resource {
        api_version: "policy.sigstore.dev/v1beta1",
        kind: "ClusterImagePolicy",
        metadata: Metadata::at(at),
        spec: CipSpec {
            images: vec![ImageGlob { glob: "**" }],
            authorities,
        },
    };
    Ok(Export {
        output: Output::File(yaml(Format::PolicyController, at, &policy)?),
        included: key_ids(&keys),
        left_out,
        notes: Vec::new(),
    })
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct KyvernoSpec {
    /// Kyverno before 1.13 reads only this (default `Audit`: fail open); later ones read each
    /// rule's `failureAction` and accept this, deprecated. Both say `Enforce`.
    validation_failure_action: &'static str,
    rules: Vec<KyvernoRule>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct KyvernoRule {
    name: &'static str,
    #[serde(rename = "match")]
    match_: KyvernoMatch,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    verify_images: Vec<VerifyImages>,
    #[serde(skip_serializing_if = "Option::is_none")]
    validate: Option<Validate>,
}

#[derive(Serialize)]
struct KyvernoMatch {
    any: Vec<ResourceFilter>,
}

#[derive(Serialize)]
struct ResourceFilter {
    resources: Kinds,
}

#[derive(Serialize)]
struct Kinds {
    kinds: Vec<&'static str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct VerifyImages {
    image_references: Vec<&'static str>,
    failure_action: &'static str,
    attestors: Vec<Attestor>,
}

#[derive(Serialize)]
struct Attestor {
    count: usize,
    entries: Vec<AttestorEntry>,
}

#[derive(Serialize)]
struct AttestorEntry {
    keys: AttestorKeys,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AttestorKeys {
    public_keys: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Validate {
    failure_action: &'static str,
    message: String,
    deny: Deny,
}

#[derive(Serialize)]
struct Deny {
    conditions: Conditions,
}

#[derive(Serialize)]
struct Conditions {
    any: Vec<Condition>,
}

#[derive(Serialize)]
struct Condition {
    key: &'static str,
    operator: &'static str,
    value: &'static str,
}

/// `kyverno`: a `ClusterPolicy` whose rule verifies every image of a Pod (`*`; narrow
/// `imageReferences` to scope it) against one attestor with one `keys` entry per signer trusted
/// at `at` and `count: 1`, so a signature by any one of them passes (without `count`, Kyverno
/// would require all). With none trusted, the rule denies every Pod instead.
pub fn kyverno(signers: &[Signer], at: DateTime<Utc>) -> Result<Export, ExportError> {
    let (keys, left_out) = trusted_keys(signers, at);
    let pods = KyvernoMatch {
        any: vec![ResourceFilter {
            resources: Kinds { kinds: vec!["Pod"] },
        }],
    };
    let rule = if keys.is_empty() {
        KyvernoRule {
            name: POLICY_NAME,
            match_: pods,
            verify_images: Vec::new(),
            validate: Some(Validate {
                failure_action: "Enforce",
                message: nothing_trusted(at),
                // Always true: a deny rule needs a condition, and this one always holds.
                deny: Deny {
                    conditions: Conditions {
                        any: vec![Condition {
                            key: "keywarden",
                            operator: "Equals",
                            value: "keywarden",
                        }],
                    },
                },
            }),
        }
    } else {
        KyvernoRule {
            name: POLICY_NAME,
            match_: pods,
            verify_images: vec![VerifyImages {
                image_references: vec!["*"],
                failure_action: "Enforce",
                attestors: vec![Attestor {
                    count: 1,
                    entries: keys
                        .iter()
                        .map(|it| AttestorEntry {
                            keys: AttestorKeys {
                                public_keys: it.pem(),
                            },
                        })
                        .collect(),
                }],
            }],
            validate: None,
        }
    };
    let policy = Resource {
        api_version: "kyverno.io/v1",
        kind: "ClusterPolicy",
        metadata: Metadata::at(at),
        spec: KyvernoSpec {
            validation_failure_action: "Enforce",
            rules: vec![rule],
        },
    };
    Ok(Export {
        output: Output::File(yaml(Format::Kyverno, at, &policy)?),
        included: key_ids(&keys),
        left_out,
        notes: Vec::new(),
    })
}

/// The contents of the files of the signers' certificate credentials, read by the caller, by
/// (source, external id); an `Err` says why a file could not be read. The ledger keeps a
/// certificate's digest (its external id `cert:sha256:<hex>`), not the certificate itself.
pub type Certificates = BTreeMap<(String, String), Result<Vec<u8>, String>>;

/// The certificate credentials of the signers trusted at `at`: what [`notation`] needs read.
pub fn certificate_credentials(signers: &[Signer], at: DateTime<Utc>) -> Vec<&SignerCredential> {
    signers
        .iter()
        .filter(|it| it.trusts(at))
        .flat_map(|it| &it.credentials)
        .filter(|it| it.kind == CredentialKind::Certificate)
        .collect()
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TrustPolicyDocument {
    version: &'static str,
    trust_policies: Vec<TrustPolicyStatement>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TrustPolicyStatement {
    name: &'static str,
    registry_scopes: Vec<&'static str>,
    signature_verification: SignatureVerification,
    trust_stores: Vec<String>,
    trusted_identities: Vec<&'static str>,
}

#[derive(Serialize)]
struct SignatureVerification {
    level: &'static str,
}

/// The store directory of one store type, relative to the notation directory.
pub fn notation_store_dir(store_type: &str) -> String {
    format!("truststore/x509/{store_type}/{NOTATION_STORE}")
}

/// `notation`: a trust policy (`trustpolicy.oci.json`, version 1.0, every repository `*`, level
/// `strict`) whose trust stores `ca:keywarden` and `signingAuthority:keywarden` hold, as
/// `<key id>.pem`, the certificates of the signers trusted at `at`. The store pins each
/// certificate itself (notation trusts a signature whose chain holds a store certificate), so
/// the trusted identity is `*`. A certificate goes in only if notation's trust store takes it: a
/// CA certificate (noted: notation then also trusts every certificate it issued), or a
/// self-signed one; a certificate issued by a CA is left out, and so is every signer without a
/// certificate.
pub fn notation(
    signers: &[Signer],
    at: DateTime<Utc>,
    certificates: &Certificates,
) -> Result<Export, ExportError> {
    let (keys, mut left_out) = trusted_keys(signers, at);
    let mut included = Vec::new();
    let mut notes = Vec::new();
    let mut store = Vec::new();
    for key in &keys {
        let (pems, reasons) = store_certificates(key, certificates);
        if pems.is_empty() {
            left_out.push(LeftOut {
                key_id: key.signer.key_id.clone(),
                reason: reasons.join("; "),
            });
            continue;
        }
        notes.extend(
            reasons
                .into_iter()
                .map(|why| format!("{}: {why}", key.signer.key_id)),
        );
        included.push(key.signer.key_id.clone());
        store.push((key.signer.key_id.as_str(), pems));
    }
    let document = TrustPolicyDocument {
        version: "1.0",
        trust_policies: vec![TrustPolicyStatement {
            name: POLICY_NAME,
            registry_scopes: vec!["*"],
            signature_verification: SignatureVerification { level: "strict" },
            trust_stores: NOTATION_STORE_TYPES
                .iter()
                .map(|it| format!("{it}:{NOTATION_STORE}"))
                .collect(),
            trusted_identities: vec!["*"],
        }],
    };
    let mut policy = serde_json::to_vec_pretty(&document).map_err(|err| ExportError::Render {
        format: Format::Notation.as_str(),
        message: err.to_string(),
    })?;
    policy.push(b'\n');
    let mut files = vec![OutputFile {
        path: NOTATION_POLICY_FILE.to_owned(),
        bytes: policy,
    }];
    for store_type in NOTATION_STORE_TYPES {
        for (key_id, pems) in &store {
            files.push(OutputFile {
                path: format!("{}/{key_id}.pem", notation_store_dir(store_type)),
                bytes: pems.clone().into_bytes(),
            });
        }
    }
    Ok(Export {
        output: Output::Directory {
            dirs: NOTATION_STORE_TYPES
                .iter()
                .map(|it| notation_store_dir(it))
                .collect(),
            files,
        },
        included,
        left_out,
        notes,
    })
}

/// The PEMs of a signer's certificates that can go into notation's trust store, and what to say
/// about the others (why each is left out) and about a CA certificate that goes in.
fn store_certificates(key: &Key<'_>, certificates: &Certificates) -> (String, Vec<String>) {
    let mut pems = String::new();
    let mut reasons = Vec::new();
    let mut any = false;
    for credential in &key.signer.credentials {
        if credential.kind != CredentialKind::Certificate {
            continue;
        }
        any = true;
        let what = format!(
            "certificate {} of source {}",
            credential.name, credential.source
        );
        match store_certificate(key, credential, certificates) {
            Ok(Stored { der, ca }) => {
                pems.push_str(&pem_block("CERTIFICATE", &der));
                if ca {
                    reasons.push(format!(
                        "{what} is a CA certificate: notation also trusts every certificate it \
                         issued, whose keys keywarden does not hold as signers"
                    ));
                }
            }
            Err(why) => reasons.push(format!("{what} is left out: {why}")),
        }
    }
    if !any {
        reasons.push("not a certificate: notation trusts X.509 certificates only".to_owned());
    }
    (pems, reasons)
}

/// A certificate for notation's trust store.
struct Stored {
    der: Vec<u8>,
    /// It is a CA certificate.
    ca: bool,
}

/// One certificate credential, if notation's trust store can hold it for this signer.
fn store_certificate(
    key: &Key<'_>,
    credential: &SignerCredential,
    certificates: &Certificates,
) -> Result<Stored, String> {
    let Some(digest) = credential.external_id.strip_prefix("cert:sha256:") else {
        return Err("the ledger does not name it by its SHA-256 digest".to_owned());
    };
    let contents =
        match certificates.get(&(credential.source.clone(), credential.external_id.clone())) {
            None => return Err("its file was not read".to_owned()),
            Some(Err(why)) => return Err(why.clone()),
            Some(Ok(contents)) => contents,
        };
    let Some(der) = find_certificate(contents, digest) else {
        return Err(
            "its file no longer holds it (changed since the last scan?); scan again".to_owned(),
        );
    };
    let (_, cert) =
        X509Certificate::from_der(&der).map_err(|_| "not a valid X.509 certificate".to_owned())?;
    if sha256_hex(cert.public_key().raw) != key.signer.key_id {
        return Err("its key is not the signer's".to_owned());
    }
    // notation's trust store takes a CA certificate, or one that verifies with its own key.
    if cert.is_ca() {
        return Ok(Stored { der, ca: true });
    }
    let algorithm = &cert.signature_algorithm.algorithm;
    if *algorithm == OID_PKCS1_SHA1WITHRSA || *algorithm == OID_SHA1_WITH_RSA {
        return Err("signed with SHA-1, which notation refuses".to_owned());
    }
    if cert.verify_signature(None).is_err() {
        return Err(
            "not self-signed: a notation trust store takes only CA or self-signed \
                    certificates, and one issued by a CA is trusted through that CA, which \
                    keywarden does not hold as this signer"
                .to_owned(),
        );
    }
    Ok(Stored { der, ca: false })
}

/// The certificate with this SHA-256 digest (lower hex) in a file's contents: one of its PEM
/// `CERTIFICATE` blocks, or the whole file as DER.
fn find_certificate(contents: &[u8], digest: &str) -> Option<Vec<u8>> {
    if let Ok(blocks) = pem::parse_many(contents) {
        for block in blocks {
            if block.tag() == "CERTIFICATE" && sha256_hex(block.contents()) == digest {
                return Some(block.contents().to_vec());
            }
        }
    }
    (sha256_hex(contents) == digest).then(|| contents.to_vec())
}

#[derive(Serialize)]
struct Bundle<'a> {
    media_type: &'static str,
    generated_at: DateTime<Utc>,
    /// The key id of the keywarden key that signs the bundle: a hint; a verifier pins the key.
    signed_with: &'a str,
    signers: Vec<BundleSigner<'a>>,
}

#[derive(Serialize)]
struct BundleSigner<'a> {
    key_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    algorithm: Option<&'a str>,
    public_key: BundlePublicKey,
    distrust_periods: Vec<BundlePeriod<'a>>,
}

/// sigstore's `PublicKey` (protobuf-specs `sigstore_common.proto`), with its field names.
#[derive(Serialize)]
struct BundlePublicKey {
    /// The DER SubjectPublicKeyInfo, base64; absent when no present credential shows it.
    #[serde(skip_serializing_if = "Option::is_none")]
    raw_bytes: Option<String>,
    key_details: &'static str,
    valid_for: TimeRange,
}

/// sigstore's `TimeRange`: closed, `[start, end]`; no `end` when none is known.
#[derive(Serialize)]
struct TimeRange {
    start: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    end: Option<DateTime<Utc>>,
}

#[derive(Serialize)]
struct BundlePeriod<'a> {
    from: DateTime<Utc>,
    /// `null`: no end known.
    until: Option<DateTime<Utc>>,
    reason: DistrustReason,
    evidence: &'a str,
    by: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reinstated: Option<&'a Reinstatement>,
    #[serde(skip_serializing_if = "Option::is_none")]
    until_replaced: Option<&'a crate::trust::Replacement>,
}

impl<'a> From<&'a DistrustPeriod> for BundlePeriod<'a> {
    fn from(it: &'a DistrustPeriod) -> Self {
        Self {
            from: it.from,
            until: it.until,
            reason: it.reason,
            evidence: &it.evidence,
            by: &it.by,
            reinstated: it.reinstated.as_ref(),
            until_replaced: it.until_replaced.as_ref(),
        }
    }
}

/// sigstore's `PublicKeyDetails` for a DER SubjectPublicKeyInfo. RSA keys are taken as
/// PKCS#1 v1.5 with SHA-256 (cosign's RSA signatures); an unknown key is `UNSPECIFIED`.
pub fn key_details(der: &[u8]) -> &'static str {
    const UNSPECIFIED: &str = "PUBLIC_KEY_DETAILS_UNSPECIFIED";
    let Ok((_, spki)) = SubjectPublicKeyInfo::from_der(der) else {
        return UNSPECIFIED;
    };
    let algorithm = &spki.algorithm.algorithm;
    if *algorithm == OID_SIG_ED25519 {
        return "PKIX_ED25519";
    }
    if *algorithm == OID_KEY_TYPE_EC_PUBLIC_KEY {
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|it| it.as_oid().ok());
        return match curve {
            Some(curve) if curve == OID_EC_P256 => "PKIX_ECDSA_P256_SHA_256",
            Some(curve) if curve == OID_NIST_EC_P384 => "PKIX_ECDSA_P384_SHA_384",
            Some(curve) if curve == OID_NIST_EC_P521 => "PKIX_ECDSA_P521_SHA_512",
            _ => UNSPECIFIED,
        };
    }
    if *algorithm == OID_PKCS1_RSAENCRYPTION
        && let Ok(PublicKey::RSA(rsa)) = spki.parsed()
    {
        return match rsa.key_size() {
            2048 => "PKIX_RSA_PKCS1V15_2048_SHA256",
            3072 => "PKIX_RSA_PKCS1V15_3072_SHA256",
            4096 => "PKIX_RSA_PKCS1V15_4096_SHA256",
            _ => UNSPECIFIED,
        };
    }
    UNSPECIFIED
}

/// The last instant a signer is trusted before its first distrust period with no end known
/// (a distrust period includes its start; sigstore's `valid_for.end` is inclusive), if it has
/// one. What lies between is in `distrust_periods`, which a verifier must check as well.
fn valid_until(signer: &Signer) -> Result<Option<DateTime<Utc>>, ExportError> {
    let Some(from) = signer
        .record
        .periods
        .iter()
        .filter(|it| it.until.is_none())
        .map(|it| it.from)
        .min()
    else {
        return Ok(None);
    };
    from.checked_sub_signed(TimeDelta::nanoseconds(1))
        .map(Some)
        .ok_or_else(|| ExportError::Time {
            key_id: signer.key_id.clone(),
            from,
        })
}

/// `keywarden`: every signer, trusted or not, with its public key (sigstore's `PublicKey`:
/// `raw_bytes`, `key_details`, `valid_for`) and every distrust period, as JSON; `signed_with` is
/// the key id of the key that will sign these exact bytes.
pub fn keywarden_bundle(
    signers: &[Signer],
    generated_at: DateTime<Utc>,
    signed_with: &str,
) -> Result<Export, ExportError> {
    let mut entries = Vec::with_capacity(signers.len());
    let mut notes = Vec::new();
    for signer in signers {
        let der = match public_key_der(signer) {
            Ok(der) => Some(der),
            Err(why) => {
                notes.push(format!("{}: listed by key id only: {why}", signer.key_id));
                None
            }
        };
        entries.push(BundleSigner {
            key_id: &signer.key_id,
            algorithm: signer.algorithm.as_deref(),
            public_key: BundlePublicKey {
                key_details: der
                    .as_deref()
                    .map_or("PUBLIC_KEY_DETAILS_UNSPECIFIED", key_details),
                raw_bytes: der.map(|it| base64::engine::general_purpose::STANDARD.encode(it)),
                valid_for: TimeRange {
                    start: signer.record.valid_from,
                    end: valid_until(signer)?,
                },
            },
            distrust_periods: signer.record.periods.iter().map(Into::into).collect(),
        });
    }
    let bundle = Bundle {
        media_type: BUNDLE_MEDIA_TYPE,
        generated_at,
        signed_with,
        signers: entries,
    };
    let mut bytes = serde_json::to_vec_pretty(&bundle).map_err(|err| ExportError::Render {
        format: Format::Keywarden.as_str(),
        message: err.to_string(),
    })?;
    bytes.push(b'\n');
    Ok(Export {
        output: Output::File(bytes),
        included: signers.iter().map(|it| it.key_id.clone()).collect(),
        left_out: Vec::new(),
        notes,
    })
}

#[cfg(test)]
#[path = "export_tests.rs"]
mod tests;
