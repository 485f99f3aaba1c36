//! Scans of real key material in temporary directories.
//!
//! Fixed keys come from `testdata/` (made by OpenSSL and OpenSSH; see its README) and their
//! expected fingerprints were computed by those tools; certificates are made with rcgen.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, TimeZone, Utc};
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey};
use keywarden_connector::{
    Connector, Credential, CredentialKind, IdentityKind, Inventory, LastUse, Progress, ScanContext,
    SkipReason,
};
use sha2::{Digest, Sha256};

use crate::{FilesConfig, PathRule};

const P256_PKCS8: &str = include_str!("../testdata/p256-pkcs8.pem");
const P256_PUBLIC: &str = include_str!("../testdata/p256-public.pem");
const P256_SEC1: &str = include_str!("../testdata/p256-sec1.pem");
const P256_OPENSSH: &str = include_str!("../testdata/p256-openssh");
const P256_SSH_LINE: &str = include_str!("../testdata/p256.ssh.txt");
const P256_ENCRYPTED_PKCS8: &str = include_str!("../testdata/p256-encrypted-pkcs8.pem");
const P256_LEGACY_ENCRYPTED: &str = include_str!("../testdata/p256-legacy-encrypted.pem");
const P384_SEC1: &str = include_str!("../testdata/p384-sec1.pem");
const RSA_PKCS1: &str = include_str!("../testdata/rsa2048-pkcs1.pem");
const RSA768_PKCS1: &str = include_str!("../testdata/rsa768-pkcs1.pem");
const RSA_PKCS8: &str = include_str!("../testdata/rsa2048-pkcs8.pem");
const RSA_PUBLIC: &str = include_str!("../testdata/rsa2048-public.pem");
const RSA_PKCS1_PUBLIC: &str = include_str!("../testdata/rsa2048-pkcs1-public.pem");
const RSA_OPENSSH: &str = include_str!("../testdata/rsa2048-openssh");
const RSA_SSH_LINE: &str = include_str!("../testdata/rsa2048.ssh.txt");
const ED25519_PKCS8: &str = include_str!("../testdata/ed25519-pkcs8.pem");
const SSH_ENCRYPTED: &str = include_str!("../testdata/ssh-ed25519-encrypted");
const SSH_ENCRYPTED_LINE: &str = include_str!("../testdata/ssh-ed25519-encrypted.pub.txt");

/// `openssl pkey -pubout -outform DER | sha256sum` of each fixture key.
const P256_SPKI: &str = "9e3c1f6ea0e8fcacb1d43a6b4bc9b8fdf2eedcf004ca4d6bd982abf4ab5627f1";
const P384_SPKI: &str = "8b3dac89f7a32ce47e2f2e33ee7b768b2ebe9e2dfded2088698a7f23f1b81e03";
const RSA_SPKI: &str = "0d3d584cb3eb31c9aaf563038db5fd40c84b87db8764bb41af76d5fb96e53836";
const RSA768_SPKI: &str = "42d86eafa483b40a23805fe15b43988ee3a52e130489610c942086877a7f7b9b";
const ED25519_SPKI: &str = "3d4f3fd355a312aa3cab6b4e7c9a691e7183af2ea01e718d670bfa87415acc57";
/// SHA-256 of the SubjectPublicKeyInfo of the encrypted OpenSSH key (Python `cryptography`).
const SSH_ENCRYPTED_SPKI: &str = "4af2084aa1332661fa51550ecfff7f3dfb77c419035ea1af772b06a8a7ac1b69";

/// `ssh-keygen -l` of each fixture key.
const P256_SSH: &str = "SHA256:8c7exlxP372B25XZa9qB55LdSYAspayYLAK05iphi1Y";
const P384_SSH: &str = "SHA256:D7Q/U2frt4gCmzQLDPZS1EmZaahfyRvuS2Koc2BDJRA";
const RSA_SSH: &str = "SHA256:T3RzZ/5TwXO8fBDDpbX+5Rkm1g9m120lwuTxHcX4jeg";
/// SHA-256 of the OpenSSH key blob (Python `cryptography`; ssh-keygen refuses keys this weak).
const RSA768_SSH: &str = "SHA256:2UPLHRM53bf1a+d0f2VGnR+18AUCDsppI1FAbmfUlxk";
/// `ssh-keygen -l` of the Ed25519 fixture, converted to OpenSSH form by Python `cryptography`.
const ED25519_SSH: &str = "SHA256:u8wm5GM4gy0tezXQ7hk5hb01JeWrsU6viRbQFvPZgxA";
const SSH_ENCRYPTED_SSH: &str = "SHA256:sLUiGHD8wNVbk+ZASWL/QkhcO+fgAa62LMarIShLTao";

/// A temporary directory of key files, the base directory of the config.
struct Tree(tempfile::TempDir);

impl Tree {
    fn new() -> Self {
        Self(tempfile::tempdir().expect("a temporary directory"))
    }

    fn path(&self) -> &Path {
        self.0.path()
    }

    fn write(&self, relative: &str, contents: impl AsRef<[u8]>) -> &Self {
        let path = self.0.path().join(relative);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).expect("create the directory");
        }
        fs::write(path, contents).expect("write the file");
        self
    }
}

fn rule(glob: &str, owner: Option<&str>) -> PathRule {
    PathRule {
        glob: glob.to_owned(),
        owner: owner.map(str::to_owned),
        purpose: None,
        tags: BTreeMap::new(),
    }
}

fn config(rules: Vec<PathRule>) -> FilesConfig {
    FilesConfig {
        paths: rules,
        exclude: Vec::new(),
        usage_log: None,
        follow_symlinks: false,
    }
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0)
        .single()
        .expect("a valid time")
}

fn scan_with(config: &FilesConfig, dir: &Path) -> Inventory {
    config
        .build("test-keys", dir)
        .expect("a valid config")
        .scan(&ScanContext::new(now()))
        .expect("the scan succeeds")
}

fn scan_all(dir: &Path) -> Inventory {
    scan_with(&config(vec![rule("**", None)]), dir)
}

#[track_caller]
fn only(inventory: &Inventory) -> &Credential {
    assert_eq!(inventory.credentials.len(), 1, "{inventory:#?}");
    &inventory.credentials[0]
}

#[track_caller]
fn named<'a>(inventory: &'a Inventory, name: &str) -> &'a Credential {
    inventory
        .credentials
        .iter()
        .find(|it| it.name == name)
        .unwrap_or_else(|| panic!("no credential named {name}: {inventory:#?}"))
}

fn fingerprint<'a>(credential: &'a Credential, algorithm: &str) -> Option<&'a str> {
    credential
        .fingerprints
        .iter()
        .find(|it| it.algorithm == algorithm)
        .map(|it| it.value.as_str())
}

fn attribute<'a>(credential: &'a Credential, name: &str) -> Option<&'a str> {
    credential.attributes.get(name).map(String::as_str)
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The base64 body of a PEM text, without armor and line breaks.
fn pem_body(text: &str) -> String {
    text.lines().filter(|it| !it.starts_with("-----")).collect()
}

fn pem(label: &str, der: &[u8]) -> String {
    pem::encode(&pem::Pem::new(label, der))
}

fn der_of(pem_text: &str) -> Vec<u8> {
    pem::parse(pem_text).expect("valid PEM").into_contents()
}

/// What a scan must report about one fixture key.
struct Expected {
    algorithm: &'static str,
    bits: u32,
    sha256_spki: &'static str,
    ssh_sha256: &'static str,
}

const P256: Expected = Expected {
    algorithm: "ecdsa-p256",
    bits: 256,
    sha256_spki: P256_SPKI,
    ssh_sha256: P256_SSH,
};
const P384: Expected = Expected {
    algorithm: "ecdsa-p384",
    bits: 384,
    sha256_spki: P384_SPKI,
    ssh_sha256: P384_SSH,
};
const RSA: Expected = Expected {
    algorithm: "rsa",
    bits: 2048,
    sha256_spki: RSA_SPKI,
    ssh_sha256: RSA_SSH,
};
/// Too weak to use, but inventoried so a policy can flag it.
const RSA768: Expected = Expected {
    algorithm: "rsa",
    bits: 768,
    sha256_spki: RSA768_SPKI,
    ssh_sha256: RSA768_SSH,
};
const ED25519: Expected = Expected {
    algorithm: "ed25519",
    bits: 256,
    sha256_spki: ED25519_SPKI,
    ssh_sha256: ED25519_SSH,
};

#[test]
fn every_format_has_the_kind_algorithm_and_fingerprints_of_openssl_and_ssh_keygen() {
    use CredentialKind::{PrivateKey, PublicKey, SshKey};
    let cases = [
        ("a.pem", P256_PKCS8, PrivateKey, "pem_pkcs8", &P256),
        ("a.pem", P256_PUBLIC, PublicKey, "pem_spki", &P256),
        ("a.pem", P256_SEC1, PrivateKey, "sec1", &P256),
        ("id_a", P256_OPENSSH, SshKey, "openssh", &P256),
        ("a.pub", P256_SSH_LINE, SshKey, "openssh", &P256),
        ("a.pem", P384_SEC1, PrivateKey, "sec1", &P384),
        ("a.pem", RSA_PKCS1, PrivateKey, "pkcs1", &RSA),
        ("a.pem", RSA_PKCS8, PrivateKey, "pem_pkcs8", &RSA),
        ("a.pem", RSA_PUBLIC, PublicKey, "pem_spki", &RSA),
        ("a.pem", RSA_PKCS1_PUBLIC, PublicKey, "pkcs1", &RSA),
        ("id_a", RSA_OPENSSH, SshKey, "openssh", &RSA),
        ("a.pub", RSA_SSH_LINE, SshKey, "openssh", &RSA),
        ("a.pem", RSA768_PKCS1, PrivateKey, "pkcs1", &RSA768),
        ("a.pem", ED25519_PKCS8, PrivateKey, "pem_pkcs8", &ED25519),
    ];
    for (file, contents, kind, format, expected) in cases {
        let tree = Tree::new();
        tree.write(file, contents);
        let inventory = scan_all(tree.path());
        let what = format!("{format} {}", expected.algorithm);
        assert!(
            inventory.errors.is_empty(),
            "{what}: {:?}",
            inventory.errors
        );
        let it = only(&inventory);
        assert_eq!(it.kind, kind, "{what}");
        assert_eq!(attribute(it, "format"), Some(format), "{what}");
        assert_eq!(it.algorithm.as_deref(), Some(expected.algorithm), "{what}");
        assert_eq!(it.key_bits, Some(expected.bits), "{what}");
        assert_eq!(
            fingerprint(it, "sha256_spki"),
            Some(expected.sha256_spki),
            "{what}"
        );
        assert_eq!(
            fingerprint(it, "ssh_sha256"),
            Some(expected.ssh_sha256),
            "{what}"
        );
        assert_eq!(
            it.external_id,
            format!("key:sha256:{}", expected.sha256_spki)
        );
        assert_eq!(it.created_at, None, "a bare key carries no creation time");
        assert_eq!(it.last_used, LastUse::Unknown);
        let private = kind == PrivateKey || file == "id_a";
        let encrypted = private.then_some("false");
        assert_eq!(attribute(it, "encrypted"), encrypted, "{what}");
    }
}

/// The Ed25519 fixture key in PEM public, PEM private, OpenSSH public and OpenSSH private form.
fn ed25519_forms() -> Vec<(&'static str, String)> {
    let secret = ed25519_dalek::SigningKey::from_pkcs8_pem(ED25519_PKCS8).expect("fixture key");
    let public = secret.verifying_key();
    let key_data =
        ssh_key::public::KeyData::Ed25519(ssh_key::public::Ed25519PublicKey(public.to_bytes()));
    let ssh_public = ssh_key::PublicKey::new(key_data, "deploy@ci");
    let mut pair = [0_u8; 64];
    pair[..32].copy_from_slice(&secret.to_bytes());
    pair[32..].copy_from_slice(&public.to_bytes());
    let keypair = ssh_key::private::Ed25519Keypair::from_bytes(&pair).expect("a key pair");
    let ssh_private = ssh_key::PrivateKey::new(keypair.into(), "deploy@ci")
        .expect("a private key")
        .to_openssh(ssh_key::LineEnding::LF)
        .expect("OpenSSH encoding");
    let line_ending = pkcs8::LineEnding::LF;
    vec![
        (
            "ed/deploy.key",
            secret
                .to_pkcs8_pem(line_ending)
                .expect("PKCS#8")
                .to_string(),
        ),
        (
            "ed/deploy.pem",
            public.to_public_key_pem(line_ending).expect("SPKI"),
        ),
        ("ed/id_deploy", ssh_private.to_string()),
        (
            "ed/id_deploy.pub",
            ssh_public.to_openssh().expect("OpenSSH encoding"),
        ),
    ]
}

#[test]
fn one_key_in_every_form_is_one_credential_with_one_fingerprint() {
    // Each form alone has the same fingerprints...
    for (file, contents) in ed25519_forms() {
        let tree = Tree::new();
        tree.write(file, &contents);
        let inventory = scan_all(tree.path());
        let it = only(&inventory);
        assert_eq!(fingerprint(it, "sha256_spki"), Some(ED25519_SPKI), "{file}");
        assert_eq!(fingerprint(it, "ssh_sha256"), Some(ED25519_SSH), "{file}");
    }

    // ...and together they are one credential listing every file.
    let tree = Tree::new();
    for (file, contents) in ed25519_forms() {
        tree.write(file, contents);
    }
    for (file, contents) in [
        ("p256/a.key", P256_PKCS8),
        ("p256/a.pub", P256_PUBLIC),
        ("p256/a.sec1", P256_SEC1),
        ("p256/id_a", P256_OPENSSH),
        ("p256/id_a.pub", P256_SSH_LINE),
    ] {
        tree.write(file, contents);
    }
    let inventory = scan_all(tree.path());
    assert!(inventory.errors.is_empty(), "{:?}", inventory.errors);
    assert_eq!(inventory.credentials.len(), 2, "{inventory:#?}");

    let ed = named(&inventory, "ed/deploy.key");
    assert_eq!(ed.kind, CredentialKind::PrivateKey);
    assert_eq!(ed.external_id, format!("key:sha256:{ED25519_SPKI}"));
    assert_eq!(
        attribute(ed, "paths"),
        Some("ed/deploy.key,ed/deploy.pem,ed/id_deploy,ed/id_deploy.pub")
    );
    assert_eq!(attribute(ed, "format"), Some("pem_pkcs8,pem_spki,openssh"));
    assert_eq!(attribute(ed, "comment"), Some("deploy@ci"));

    let p256 = named(&inventory, "p256/a.key");
    assert_eq!(p256.external_id, format!("key:sha256:{P256_SPKI}"));
    assert_eq!(
        attribute(p256, "paths"),
        Some("p256/a.key,p256/a.pub,p256/a.sec1,p256/id_a,p256/id_a.pub")
    );
    assert_eq!(attribute(p256, "encrypted"), Some("false"));

    // One key-pair identity per credential, named after the file.
    let mut identities: Vec<_> = inventory
        .identities
        .iter()
        .map(|it| (it.kind, it.external_id.as_str(), it.name.as_str()))
        .collect();
    identities.sort();
    assert_eq!(
        identities,
        [
            (IdentityKind::KeyPair, ed.external_id.as_str(), "deploy"),
            (IdentityKind::KeyPair, p256.external_id.as_str(), "a"),
        ]
    );
}

/// A cosign-format private key file: the JSON envelope cosign writes, around bytes that are not a
/// valid secretbox (so any attempt to decrypt would fail).
fn cosign_key(label: &str) -> String {
    let envelope = serde_json::json!({
        "kdf": {
            "name": "scrypt",
            "params": {"N": 32768, "r": 8, "p": 1},
            "salt": "+QseLb/O/0j2dG201MALNSv2xLcclv6UvpXZVvXGT0k=",
        },
        "cipher": {"name": "nacl/secretbox", "nonce": "B5zH5d9AwoPkgaPAwIgpnft2BO6HZM/j"},
        "ciphertext": "bm90IGEgcmVhbCBjaXBoZXJ0ZXh0LCBuZXZlciBkZWNyeXB0ZWQ=",
    });
    pem(label, envelope.to_string().as_bytes())
}

#[test]
fn a_cosign_pair_is_one_credential_and_a_lone_key_has_no_fingerprint() {
    let tree = Tree::new();
    tree.write("release/cosign.pub", P256_PUBLIC)
        .write(
            "release/cosign.key",
            cosign_key("ENCRYPTED SIGSTORE PRIVATE KEY"),
        )
        .write("old/cosign.key", cosign_key("ENCRYPTED COSIGN PRIVATE KEY"));
    let config = config(vec![
        rule("release/**", Some("release-eng")),
        rule("old/*", None),
    ]);
    let inventory = scan_with(&config, tree.path());
    assert!(inventory.errors.is_empty(), "{:?}", inventory.errors);
    assert_eq!(inventory.credentials.len(), 2, "{inventory:#?}");

    let pair = named(&inventory, "release/cosign.pub");
    assert_eq!(pair.kind, CredentialKind::CosignKey);
    assert_eq!(pair.external_id, format!("key:sha256:{P256_SPKI}"));
    assert_eq!(fingerprint(pair, "sha256_spki"), Some(P256_SPKI));
    assert_eq!(attribute(pair, "path"), Some("release/cosign.pub"));
    assert_eq!(
        attribute(pair, "paths"),
        Some("release/cosign.key,release/cosign.pub")
    );
    assert_eq!(attribute(pair, "format"), Some("cosign,pem_spki"));
    assert_eq!(attribute(pair, "encrypted"), Some("true"));
    assert_eq!(attribute(pair, "kdf"), Some("scrypt"));
    assert_eq!(attribute(pair, "cipher"), Some("nacl/secretbox"));
    assert_eq!(attribute(pair, "public_key"), None);
    assert_eq!(pair.owner.as_deref(), Some("release-eng"));
    assert_eq!(pair.purpose.as_deref(), Some("signing"));
    assert_eq!(pair.created_at, None);

    let lone = named(&inventory, "old/cosign.key");
    assert_eq!(lone.kind, CredentialKind::CosignKey);
    assert_eq!(lone.external_id, "file:old/cosign.key");
    assert!(lone.fingerprints.is_empty());
    assert_eq!(attribute(lone, "public_key"), Some("missing"));
    assert_eq!(lone.owner, None);

    let names: BTreeMap<&str, &str> = inventory
        .identities
        .iter()
        .map(|it| (it.external_id.as_str(), it.name.as_str()))
        .collect();
    assert_eq!(names[pair.external_id.as_str()], "release");
    assert_eq!(names[lone.external_id.as_str()], "old");
}

#[test]
fn encrypted_keys_are_not_decrypted_but_pair_with_their_public_key() {
    let tree = Tree::new();
    tree.write("lone/signing.pem", P256_ENCRYPTED_PKCS8)
        .write("lone/legacy.pem", P256_LEGACY_ENCRYPTED)
        .write("paired/signing.pem", P256_ENCRYPTED_PKCS8)
        .write("paired/signing.pub", P256_PUBLIC)
        .write("ssh/id_ed25519", SSH_ENCRYPTED)
        .write("ssh/id_ed25519.pub", SSH_ENCRYPTED_LINE);
    let inventory = scan_all(tree.path());
    assert!(inventory.errors.is_empty(), "{:?}", inventory.errors);
    assert_eq!(inventory.credentials.len(), 4, "{inventory:#?}");

    let lone = named(&inventory, "lone/signing.pem");
    assert_eq!(
        (lone.kind, lone.external_id.as_str()),
        (CredentialKind::PrivateKey, "file:lone/signing.pem")
    );
    assert!(lone.fingerprints.is_empty());
    assert_eq!(attribute(lone, "encrypted"), Some("true"));
    assert_eq!(attribute(lone, "public_key"), Some("missing"));

    let legacy = named(&inventory, "lone/legacy.pem");
    assert_eq!(legacy.external_id, "file:lone/legacy.pem");
    assert_eq!(attribute(legacy, "encrypted"), Some("true"));
    assert_eq!(attribute(legacy, "format"), Some("sec1"));
    assert_eq!(legacy.algorithm.as_deref(), Some("ecdsa"));

    let paired = named(&inventory, "paired/signing.pem");
    assert_eq!(paired.external_id, format!("key:sha256:{P256_SPKI}"));
    assert_eq!(attribute(paired, "encrypted"), Some("true"));
    assert_eq!(
        attribute(paired, "paths"),
        Some("paired/signing.pem,paired/signing.pub")
    );

    let ssh = named(&inventory, "ssh/id_ed25519");
    assert_eq!(ssh.kind, CredentialKind::SshKey);
    assert_eq!(fingerprint(ssh, "sha256_spki"), Some(SSH_ENCRYPTED_SPKI));
    assert_eq!(fingerprint(ssh, "ssh_sha256"), Some(SSH_ENCRYPTED_SSH));
    assert_eq!(attribute(ssh, "encrypted"), Some("true"));
    assert_eq!(attribute(ssh, "comment"), Some("ci@example.test"));
    assert_eq!(
        attribute(ssh, "paths"),
        Some("ssh/id_ed25519,ssh/id_ed25519.pub")
    );
}

/// A self-signed certificate for the P-256 fixture key.
fn certificate(
    common_name: &str,
    serial: &[u8],
    usage: rcgen::ExtendedKeyUsagePurpose,
    not_before: (i32, u8, u8),
    not_after: (i32, u8, u8),
) -> rcgen::Certificate {
    let key = rcgen::KeyPair::from_pem(P256_PKCS8).expect("the fixture key");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "Example Corp");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, common_name);
    params.serial_number = Some(rcgen::SerialNumber::from_slice(serial));
    params.not_before = rcgen::date_time_ymd(not_before.0, not_before.1, not_before.2);
    params.not_after = rcgen::date_time_ymd(not_after.0, not_after.1, not_after.2);
    params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![usage];
    params.self_signed(&key).expect("a certificate")
}

fn utc(year: i32, month: u32, day: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(year, month, day, 0, 0, 0)
        .single()
        .expect("a valid date")
}

#[test]
fn certificates_report_subject_serial_usage_and_validity() {
    let signing = certificate(
        "Release Signer",
        &[0x01, 0x23, 0x45, 0x67, 0x89],
        rcgen::ExtendedKeyUsagePurpose::CodeSigning,
        (2024, 1, 2),
        (2027, 3, 4),
    );
    let server = certificate(
        "api.example.test",
        &[0x7f],
        rcgen::ExtendedKeyUsagePurpose::ServerAuth,
        (2025, 5, 6),
        (2026, 5, 6),
    );
    // OpenSSL's trusted form: the certificate followed by its trust settings.
    let mut trusted = signing.der().to_vec();
    trusted.extend_from_slice(&[0x30, 0x00]);
    let tree = Tree::new();
    tree.write("certs/release.crt", signing.der().as_ref())
        .write("certs/release.pem", signing.pem())
        .write("certs/bundle.pem", signing.pem() + &server.pem())
        .write("certs/trusted.pem", pem("TRUSTED CERTIFICATE", &trusted));
    let inventory = scan_all(tree.path());
    assert!(inventory.errors.is_empty(), "{:?}", inventory.errors);
    assert_eq!(inventory.credentials.len(), 2, "{inventory:#?}");

    let cert_sha = sha256_hex(signing.der());
    let it = inventory
        .credentials
        .iter()
        .find(|it| it.external_id == format!("cert:sha256:{cert_sha}"))
        .expect("the signing certificate");
    assert_eq!(it.kind, CredentialKind::Certificate);
    assert_eq!(it.name, "certs/bundle.pem");
    assert_eq!(
        attribute(it, "paths"),
        Some("certs/bundle.pem,certs/release.crt,certs/release.pem,certs/trusted.pem")
    );
    assert_eq!(attribute(it, "format"), Some("x509_pem,x509_der"));
    assert_eq!(attribute(it, "serial"), Some("0123456789"));
    assert_eq!(attribute(it, "key_usage"), Some("digital_signature"));
    assert_eq!(attribute(it, "extended_key_usage"), Some("code_signing"));
    assert_eq!(attribute(it, "self_signed"), Some("true"));
    assert_eq!(attribute(it, "is_ca"), Some("false"));
    let subject = attribute(it, "subject").expect("a subject");
    assert!(subject.contains("CN=Release Signer"), "{subject}");
    assert!(subject.contains("O=Example Corp"), "{subject}");
    assert_eq!(attribute(it, "issuer"), Some(subject));
    assert_eq!(it.created_at, Some(utc(2024, 1, 2)));
    assert_eq!(it.not_before, Some(utc(2024, 1, 2)));
    assert_eq!(it.expires_at, Some(utc(2027, 3, 4)));
    assert_eq!(it.purpose.as_deref(), Some("signing"));
    assert_eq!(
        (it.algorithm.as_deref(), it.key_bits),
        (Some("ecdsa-p256"), Some(256))
    );
    assert_eq!(fingerprint(it, "sha256_cert"), Some(cert_sha.as_str()));
    assert_eq!(fingerprint(it, "sha256_spki"), Some(P256_SPKI));
    assert_eq!(it.identity_id, subject);

    let server_it = inventory
        .credentials
        .iter()
        .find(|it| it.external_id == format!("cert:sha256:{}", sha256_hex(server.der())))
        .expect("the server certificate");
    assert_eq!(attribute(server_it, "serial"), Some("7f"));
    assert_eq!(
        attribute(server_it, "extended_key_usage"),
        Some("server_auth")
    );
    assert_eq!(server_it.purpose, None);
    assert_eq!(server_it.expires_at, Some(utc(2026, 5, 6)));

    let identity = inventory
        .identities
        .iter()
        .find(|it| it.external_id == subject)
        .expect("the subject identity");
    assert_eq!(identity.kind, IdentityKind::CertificateSubject);
    assert_eq!(identity.name, "Release Signer");
}

#[test]
fn one_malformed_pem_among_good_files_is_one_scan_error() {
    let cert = certificate(
        "Release Signer",
        &[0x01],
        rcgen::ExtendedKeyUsagePurpose::CodeSigning,
        (2024, 1, 2),
        (2027, 3, 4),
    );
    let broken = P256_PKCS8.replacen("MIGHAgEA", "MIGH!gEA", 1);
    assert_ne!(broken, P256_PKCS8);
    let tree = Tree::new();
    tree.write("keys/a-cert.pem", cert.pem())
        .write("keys/b-broken.pem", &broken)
        .write("keys/c-rsa.pem", RSA_PKCS1)
        .write("keys/d.pub", SSH_ENCRYPTED_LINE);
    let inventory = scan_all(tree.path());
    assert_eq!(inventory.errors.len(), 1, "{:?}", inventory.errors);
    assert_eq!(inventory.errors[0].subject, "keys/b-broken.pem");
    assert_eq!(inventory.errors[0].message, "PEM block is not valid base64");
    let mut names: Vec<&str> = inventory
        .credentials
        .iter()
        .map(|it| it.name.as_str())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["keys/a-cert.pem", "keys/c-rsa.pem", "keys/d.pub"]);
}

#[test]
fn malformed_files_give_one_error_each_and_no_key_material_in_it() {
    let der = der_of(P256_PKCS8);
    let public_der = der_of(P256_PUBLIC);
    let body = pem_body(P256_PKCS8);
    let mut with_blank_line = P256_PKCS8.lines().collect::<Vec<_>>();
    with_blank_line.insert(2, "");
    let ssh_line = SSH_ENCRYPTED_LINE.trim();
    let cosign_with_key_in_field = pem(
        "ENCRYPTED SIGSTORE PRIVATE KEY",
        serde_json::json!({"kdf": body, "cipher": {"name": "x"}, "ciphertext": "x"})
            .to_string()
            .as_bytes(),
    );
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "bad-base64.pem",
            P256_PKCS8.replacen("MIGHAgEA", "MIGH!gEA", 1),
            "not valid base64",
        ),
        (
            "truncated.pem",
            pem("PRIVATE KEY", &der[..60]),
            "invalid PKCS#8 private key",
        ),
        (
            "wrong-type.pem",
            pem("PRIVATE KEY", &public_der),
            "invalid PKCS#8 private key",
        ),
        (
            "wrong-sec1.pem",
            pem("EC PRIVATE KEY", &der),
            "invalid SEC1 EC private key",
        ),
        (
            "unknown.pem",
            pem("SECRET THING", &der),
            "unknown PEM label",
        ),
        (
            "blank-line.pem",
            with_blank_line.join("\n"),
            "invalid header",
        ),
        (
            "no-end.pem",
            P256_PKCS8.lines().take(3).collect::<Vec<_>>().join("\n"),
            "without a complete",
        ),
        (
            "cosign.key",
            pem("ENCRYPTED SIGSTORE PRIVATE KEY", &der),
            "not a cosign encrypted key envelope",
        ),
        (
            "cosign2.key",
            cosign_with_key_in_field,
            "not a cosign encrypted key envelope",
        ),
        (
            "bad-cert.pem",
            pem("CERTIFICATE", &der),
            "invalid X.509 certificate",
        ),
        (
            "bad-cert.crt",
            String::from_utf8_lossy(&der).into_owned(),
            "invalid X.509 certificate",
        ),
        (
            "bad-openssh",
            pem("OPENSSH PRIVATE KEY", &der),
            "invalid OpenSSH private key",
        ),
        (
            "bad.pub",
            ssh_line[..50].to_owned(),
            "line 1: invalid OpenSSH public key",
        ),
        (
            "bad-encrypted.pem",
            pem("ENCRYPTED PRIVATE KEY", &der[..40]),
            "invalid encrypted PKCS#8",
        ),
    ];
    // Any 12 characters of the base64 body, or 8 bytes of the DER in hex, would be key material.
    let hex_der = hex::encode(&der);
    let ssh_blob = ssh_line.split_whitespace().nth(1).expect("a key blob");
    let needles: Vec<&str> = [body.as_str(), hex_der.as_str(), ssh_blob]
        .iter()
        .flat_map(|text| (0..text.len().saturating_sub(12)).map(move |it| &text[it..it + 12]))
        .collect();
    for (file, contents, expected) in cases {
        let tree = Tree::new();
        tree.write(file, contents.as_bytes());
        let inventory = scan_all(tree.path());
        assert!(inventory.credentials.is_empty(), "{file}: {inventory:#?}");
        assert_eq!(inventory.errors.len(), 1, "{file}: {:?}", inventory.errors);
        let error = &inventory.errors[0];
        assert_eq!(error.subject, file);
        assert!(
            error.message.contains(expected),
            "{file}: {}",
            error.message
        );
        for needle in &needles {
            assert!(
                !error.message.contains(needle),
                "{file}: the message quotes key material: {}",
                error.message
            );
        }
    }
}

#[test]
fn files_that_are_not_key_material_are_skipped_silently() {
    let tree = Tree::new();
    tree.write("README.md", "Rotate ssh-rsa keys yearly; see the BEGIN PRIVATE KEY note.\n")
        .write("rotate.sh", "#!/bin/sh\nssh-keygen -t ssh-ed25519 -f id_new\n")
        .write("blob.bin", [0_u8, 159, 146, 150, 255, 1, 2, 3])
        .write("empty.pem", "")
        .write("known_hosts", format!("example.test {}", P256_SSH_LINE))
        .write(
            "ec-with-params.pem",
            format!(
                "-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n{P256_SEC1}"
            ),
        );
    let inventory = scan_all(tree.path());
    assert!(inventory.errors.is_empty(), "{:?}", inventory.errors);
    assert_eq!(only(&inventory).name, "ec-with-params.pem");
}

#[test]
fn the_first_matching_rule_gives_the_owner_and_excluded_files_are_skipped() {
    let tree = Tree::new();
    tree.write("keys/release/a.pem", P256_PKCS8)
        .write("keys/release/old/b.pem", RSA_PKCS1)
        .write("keys/other/c.pem", ED25519_PKCS8)
        .write("elsewhere/d.pem", P384_SEC1);
    let mut release_rule = rule("keys/release/**", Some("release-eng"));
    release_rule.purpose = Some("publishing".to_owned());
    release_rule.tags.insert("tier".to_owned(), "1".to_owned());
    let mut config = config(vec![release_rule, rule("keys/**", Some("platform"))]);
    config.exclude = vec!["keys/release/old/**".to_owned()];
    let inventory = scan_with(&config, tree.path());
    assert!(inventory.errors.is_empty(), "{:?}", inventory.errors);
    let owners: BTreeMap<&str, Option<&str>> = inventory
        .credentials
        .iter()
        .map(|it| (it.name.as_str(), it.owner.as_deref()))
        .collect();
    assert_eq!(
        owners,
        BTreeMap::from([
            ("keys/other/c.pem", Some("platform")),
            ("keys/release/a.pem", Some("release-eng")),
        ])
    );
    let release = named(&inventory, "keys/release/a.pem");
    assert_eq!(release.purpose.as_deref(), Some("publishing"));
    assert_eq!(release.tags.get("tier").map(String::as_str), Some("1"));
    let identity = inventory
        .identities
        .iter()
        .find(|it| it.external_id == release.identity_id)
        .expect("its identity");
    assert_eq!(identity.owner.as_deref(), Some("release-eng"));

    // The other order: the broad rule matches first.
    config.paths.reverse();
    config.exclude.clear();
    let inventory = scan_with(&config, tree.path());
    let owners: Vec<Option<&str>> = inventory
        .credentials
        .iter()
        .map(|it| it.owner.as_deref())
        .collect();
    assert_eq!(owners, [Some("platform"); 3]);
}

#[test]
fn absolute_globs_reach_files_outside_the_config_directory() {
    let keys = Tree::new();
    keys.write("release/a.pem", P256_PKCS8)
        .write("release/b.txt", P256_PUBLIC);
    let config_dir = Tree::new();
    let glob = format!("{}/release/*.pem", keys.path().display());
    let inventory = scan_with(&config(vec![rule(&glob, Some("ops"))]), config_dir.path());
    assert!(inventory.errors.is_empty(), "{:?}", inventory.errors);
    let it = only(&inventory);
    let expected = keys.path().join("release/a.pem");
    assert_eq!(it.name, expected.to_string_lossy());
    assert_eq!(it.owner.as_deref(), Some("ops"));
}

#[test]
fn ids_are_stable_across_scans_and_ignore_file_times() {
    let tree = Tree::new();
    tree.write("keys/a.pem", P256_PKCS8)
        .write(
            "keys/cosign.key",
            cosign_key("ENCRYPTED SIGSTORE PRIVATE KEY"),
        )
        .write("keys/b.pub", RSA_SSH_LINE);
    let first = scan_all(tree.path());
    std::thread::sleep(std::time::Duration::from_millis(20));
    // Rewriting the files changes their times, not their material.
    tree.write("keys/a.pem", P256_PKCS8)
        .write("keys/b.pub", RSA_SSH_LINE);
    let second = scan_all(tree.path());
    assert_eq!(first, second);
    assert!(first.credentials.iter().all(|it| it.created_at.is_none()));
    let ids: Vec<&str> = first
        .credentials
        .iter()
        .map(|it| it.external_id.as_str())
        .collect();
    assert_eq!(
        ids,
        [
            format!("key:sha256:{P256_SPKI}").as_str(),
            format!("key:sha256:{RSA_SPKI}").as_str(),
            "file:keys/cosign.key",
        ]
    );
}

#[test]
fn the_usage_log_sets_last_use_and_never() {
    let tree = Tree::new();
    tree.write("keys/a.pem", P256_PKCS8)
        .write("keys/b.pem", RSA_PKCS1)
        .write("keys/c.pem", ED25519_PKCS8)
        .write("keys/d.pem", P384_SEC1)
        .write(
            "usage.csv",
            format!(
                "time,key\n\
                 2026-01-01T00:00:00Z,sha256:{P256_SPKI}\n\
                 2026-03-01T12:30:00+02:00,sha256:{}\n\
                 2026-02-01T00:00:00Z,keys/b.pem\n\
                 yesterday,keys/d.pem\n\
                 2026-02-01T00:00:00Z,sha256:nothex\n\
                 2026-02-01T00:00:00Z\n",
                P256_SPKI.to_uppercase()
            ),
        );
    let mut config = config(vec![rule("keys/**", None)]);
    config.usage_log = Some(PathBuf::from("usage.csv"));
    let inventory = scan_with(&config, tree.path());

    let subjects: Vec<&str> = inventory
        .errors
        .iter()
        .map(|it| it.subject.as_str())
        .collect();
    assert_eq!(subjects, ["usage_log:5", "usage_log:6", "usage_log:7"]);
    let last_used = |name: &str| named(&inventory, name).last_used.clone();
    assert_eq!(
        last_used("keys/a.pem"),
        LastUse::At {
            at: Utc
                .with_ymd_and_hms(2026, 3, 1, 10, 30, 0)
                .single()
                .expect("a time"),
            source: "usage_log".to_owned(),
        }
    );
    assert_eq!(
        last_used("keys/b.pem"),
        LastUse::At {
            at: utc(2026, 2, 1),
            source: "usage_log".to_owned(),
        }
    );
    assert_eq!(last_used("keys/c.pem"), LastUse::Never);
    // Its only row had an unreadable time: the log cannot say it was never used.
    assert_eq!(last_used("keys/d.pem"), LastUse::Unknown);

    // A log with the wrong header is not used at all.
    tree.write("usage.csv", "when,what\n2026-01-01T00:00:00Z,keys/a.pem\n");
    let inventory = scan_with(&config, tree.path());
    assert_eq!(inventory.errors.len(), 1, "{:?}", inventory.errors);
    assert_eq!(inventory.errors[0].subject, "usage_log:1");
    assert!(
        inventory
            .credentials
            .iter()
            .all(|it| it.last_used == LastUse::Unknown)
    );

    // A missing log is one error, and last use stays unknown.
    fs::remove_file(tree.path().join("usage.csv")).expect("remove the log");
    let inventory = scan_with(&config, tree.path());
    assert_eq!(inventory.errors.len(), 1, "{:?}", inventory.errors);
    assert_eq!(inventory.errors[0].subject, "usage_log");
    assert!(
        inventory
            .credentials
            .iter()
            .all(|it| it.last_used == LastUse::Unknown)
    );
}

#[cfg(unix)]
#[test]
fn symlinks_are_followed_only_inside_the_tree() {
    let outside = Tree::new();
    outside.write("secret.pem", RSA_PKCS1);
    let tree = Tree::new();
    tree.write("keys/a.pem", P256_PKCS8);
    std::os::unix::fs::symlink(
        tree.path().join("keys/a.pem"),
        tree.path().join("keys/link.pem"),
    )
    .expect("a symlink");
    std::os::unix::fs::symlink(
        outside.path().join("secret.pem"),
        tree.path().join("keys/out.pem"),
    )
    .expect("a symlink");
    std::os::unix::fs::symlink(outside.path(), tree.path().join("keys/outdir")).expect("a symlink");
    std::os::unix::fs::symlink(
        tree.path().join("nowhere"),
        tree.path().join("keys/broken.pem"),
    )
    .expect("a symlink");
    let inventory = scan_all(tree.path());
    assert!(inventory.errors.is_empty(), "{:?}", inventory.errors);
    let it = only(&inventory);
    assert_eq!(attribute(it, "paths"), Some("keys/a.pem,keys/link.pem"));
    // What was not read is said, with why.
    let skipped: Vec<(&str, SkipReason)> = inventory
        .skipped
        .iter()
        .map(|it| (it.subject.as_str(), it.reason))
        .collect();
    assert_eq!(
        skipped,
        [
            ("keys/broken.pem", SkipReason::BrokenSymlink),
            ("keys/out.pem", SkipReason::SymlinkOutside),
            ("keys/outdir", SkipReason::SymlinkedDirectory),
        ]
    );
    let out = &inventory.skipped[1].detail;
    assert!(
        out.contains("secret.pem") && out.contains("follow_symlinks"),
        "{out}"
    );

    // Opted in: the link out of the tree and the linked directory are read (one key, two paths).
    let mut followed = config(vec![rule("**", None)]);
    followed.follow_symlinks = true;
    let inventory = scan_with(&followed, tree.path());
    assert!(inventory.errors.is_empty(), "{:?}", inventory.errors);
    let rsa = inventory
        .credentials
        .iter()
        .find(|it| fingerprint(it, "sha256_spki") == Some(RSA_SPKI))
        .expect("the key behind the link is read");
    assert_eq!(
        attribute(rsa, "paths"),
        Some("keys/out.pem,keys/outdir/secret.pem")
    );
    assert_eq!(inventory.credentials.len(), 2);
    assert_eq!(inventory.skipped.len(), 1, "{:?}", inventory.skipped);
}

#[cfg(unix)]
#[test]
fn a_symlink_loop_is_walked_once() {
    let tree = Tree::new();
    tree.write("keys/sub/a.pem", P256_PKCS8);
    std::os::unix::fs::symlink(tree.path().join("keys"), tree.path().join("keys/sub/up"))
        .expect("a symlink");
    std::os::unix::fs::symlink(
        tree.path().join("keys/sub"),
        tree.path().join("keys/sub/self"),
    )
    .expect("a symlink");
    let mut followed = config(vec![rule("**", None)]);
    followed.follow_symlinks = true;
    let inventory = scan_within_a_timeout(followed, tree.path());
    assert!(inventory.errors.is_empty(), "{:?}", inventory.errors);
    assert_eq!(attribute(only(&inventory), "path"), Some("keys/sub/a.pem"));
    let loops: Vec<&str> = inventory
        .skipped
        .iter()
        .filter(|it| it.reason == SkipReason::Loop)
        .map(|it| it.subject.as_str())
        .collect();
    assert_eq!(loops, ["keys/sub/self", "keys/sub/up"]);
}

/// Runs the scan on another thread and fails (instead of hanging) if it takes over 20 s.
fn scan_within_a_timeout(config: FilesConfig, dir: &Path) -> Inventory {
    let (tx, rx) = std::sync::mpsc::channel();
    let dir = dir.to_path_buf();
    std::thread::spawn(move || {
        let _ = tx.send(scan_with(&config, &dir));
    });
    rx.recv_timeout(std::time::Duration::from_secs(20))
        .expect("the scan finishes: no FIFO opened, no loop walked forever")
}

#[cfg(unix)]
#[test]
fn a_fifo_is_never_opened_even_when_following_symlinks() {
    let outside = Tree::new();
    let tree = Tree::new();
    tree.write("keys/a.pem", P256_PKCS8);
    for fifo in [
        tree.path().join("keys/pipe.pem"),
        outside.path().join("far.pem"),
    ] {
        let status = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo");
        assert!(status.success());
    }
    std::os::unix::fs::symlink(
        tree.path().join("keys/pipe.pem"),
        tree.path().join("keys/in.pem"),
    )
    .expect("a symlink");
    std::os::unix::fs::symlink(
        outside.path().join("far.pem"),
        tree.path().join("keys/far.pem"),
    )
    .expect("a symlink");
    for follow in [false, true] {
        let mut it = config(vec![rule("**", None)]);
        it.follow_symlinks = follow;
        let inventory = scan_within_a_timeout(it, tree.path());
        assert!(inventory.errors.is_empty(), "{:?}", inventory.errors);
        assert_eq!(attribute(only(&inventory), "path"), Some("keys/a.pem"));
        let mut special: Vec<&str> = inventory
            .skipped
            .iter()
            .filter(|it| it.reason == SkipReason::SpecialFile)
            .map(|it| it.subject.as_str())
            .collect();
        special.sort_unstable();
        assert_eq!(
            special,
            ["keys/far.pem", "keys/in.pem", "keys/pipe.pem"],
            "follow: {follow}"
        );
    }
}

#[test]
fn a_file_over_the_size_limit_is_reported() {
    let tree = Tree::new();
    tree.write("keys/a.pem", P256_PKCS8);
    let mut big = P256_PKCS8.as_bytes().to_vec();
    big.resize(4 * 1024 * 1024 + 1, b'\n');
    tree.write("keys/huge.pem", &big);
    let inventory = scan_all(tree.path());
    assert!(inventory.errors.is_empty(), "{:?}", inventory.errors);
    assert_eq!(attribute(only(&inventory), "path"), Some("keys/a.pem"));
    assert_eq!(inventory.skipped.len(), 1, "{:?}", inventory.skipped);
    let it = &inventory.skipped[0];
    assert_eq!(
        (it.subject.as_str(), it.reason),
        ("keys/huge.pem", SkipReason::TooLarge)
    );
    assert!(it.detail.contains("4194305 bytes"), "{}", it.detail);
}

#[test]
fn a_missing_directory_is_a_scan_error_and_a_missing_base_dir_fails_the_scan() {
    let tree = Tree::new();
    tree.write("keys/a.pem", P256_PKCS8);
    let config = config(vec![rule("keys/*.pem", None), rule("keyz/**", None)]);
    let inventory = scan_with(&config, tree.path());
    assert_eq!(inventory.credentials.len(), 1);
    assert_eq!(inventory.errors.len(), 1, "{:?}", inventory.errors);
    assert_eq!(inventory.errors[0].subject, "paths[1].glob");
    assert_eq!(inventory.errors[0].message, "`keyz` does not exist");

    let connector = config
        .build("test-keys", tree.path())
        .expect("a valid config");
    let base = tree.path().to_path_buf();
    drop(tree);
    assert!(!base.exists());
    let err = connector
        .scan(&ScanContext::new(now()))
        .expect_err("the base dir is gone");
    assert!(
        matches!(&err, keywarden_connector::ConnectorError::Config { field, .. } if field == "paths"),
        "{err}"
    );
}

#[derive(Debug, Default)]
struct CountingProgress {
    total: AtomicU64,
    done: AtomicU64,
}

impl Progress for CountingProgress {
    fn add_total(&self, n: u64) {
        self.total.fetch_add(n, Ordering::SeqCst);
    }

    fn advance(&self, n: u64) {
        self.done.fetch_add(n, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn inventory_runs_through_the_connector_trait_and_reports_progress() {
    let tree = Tree::new();
    tree.write("keys/a.pem", P256_PKCS8)
        .write("keys/b.pub", RSA_SSH_LINE)
        .write("keys/notes.txt", "nothing here\n");
    let connector: Arc<dyn Connector> = Arc::new(
        config(vec![rule("keys/**", None)])
            .build("release-keys", tree.path())
            .expect("a valid config"),
    );
    assert_eq!(connector.kind(), "files");
    assert_eq!(connector.source(), "release-keys");
    let progress = Arc::new(CountingProgress::default());
    let cx = ScanContext {
        progress: progress.clone(),
        ..ScanContext::new(now())
    };
    let inventory = keywarden_connector::collect(connector.as_ref(), &cx)
        .await
        .expect("the scan succeeds");
    assert_eq!(inventory.credentials.len(), 2);
    assert_eq!(progress.total.load(Ordering::SeqCst), 3);
    assert_eq!(progress.done.load(Ordering::SeqCst), 3);
}

/// The committed quickstart material (`examples/quickstart/keys`) reads as the README says.
#[test]
fn the_quickstart_material_reads_as_documented() {
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/quickstart");
    let mut config = config(vec![
        rule("keys/release/**", Some("release-eng")),
        rule("keys/**", None),
    ]);
    // The README is scanned too: it must read as no key material.
    config.exclude = vec!["keys/generated/**".to_owned()];
    let inventory = scan_with(&config, &base);
    assert!(inventory.errors.is_empty(), "{:?}", inventory.errors);
    assert_eq!(inventory.credentials.len(), 4, "{inventory:#?}");

    let cosign = named(&inventory, "keys/release/cosign.pub");
    assert_eq!(cosign.kind, CredentialKind::CosignKey);
    assert_eq!(
        attribute(cosign, "paths"),
        Some("keys/release/cosign.key,keys/release/cosign.pub")
    );
    assert_eq!(cosign.algorithm.as_deref(), Some("ecdsa-p256"));
    assert_eq!(cosign.owner.as_deref(), Some("release-eng"));
    assert_eq!(cosign.created_at, None);

    let legacy = named(&inventory, "keys/release/legacy-signing.crt");
    assert_eq!(legacy.created_at, Some(utc(2023, 6, 1)));
    assert_eq!(legacy.expires_at, Some(utc(2036, 1, 1)));
    assert_eq!(
        attribute(legacy, "extended_key_usage"),
        Some("code_signing")
    );
    assert_eq!(legacy.purpose.as_deref(), Some("signing"));

    let old = named(&inventory, "keys/release/old-signing.crt");
    assert_eq!(old.expires_at, Some(utc(2025, 1, 15)));
    assert_eq!(attribute(old, "extended_key_usage"), Some("code_signing"));

    let unowned = named(&inventory, "keys/unsorted/ci-deploy.pem");
    assert_eq!(unowned.kind, CredentialKind::PrivateKey);
    assert_eq!(unowned.algorithm.as_deref(), Some("ed25519"));
    assert_eq!(unowned.owner, None);
    assert_eq!(attribute(unowned, "encrypted"), Some("false"));
}
