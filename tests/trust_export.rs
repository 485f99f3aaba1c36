//! `keywarden trust export` end to end: real key files and certificates scanned, signers revoked
//! through the real binary, every format read back the way its consumer reads it, the keywarden
//! bundle's signature checked by the real `openssl`, bad input refused without writing anything.

mod common;

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use base64::Engine as _;
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use common::{
    stderr, stdout, write, write_code_signing_cert, write_issued_code_signing_cert,
    write_public_key,
};
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use x509_parser::prelude::{FromDer as _, X509Certificate};

/// Runs the binary in `dir` with none of keywarden's key variables from the caller's
/// environment, and these set.
fn keywarden_with(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_keywarden"))
        .args(args)
        .current_dir(dir)
        .env_remove("KEYWARDEN_CONFIG")
        .env_remove("KEYWARDEN_AUDIT_KEY")
        .env_remove("KEYWARDEN_AUDIT_KEY_FILE")
        .env_remove("KEYWARDEN_BUNDLE_KEY_FILE")
        .env("KEYWARDEN_LOG", "warn")
        .envs(env.iter().copied())
        .output()
        .expect("run keywarden")
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The DER of every PEM block of `text` with this tag.
fn pem_ders(text: &str, tag: &str) -> Vec<Vec<u8>> {
    pem::parse_many(text)
        .expect("pem")
        .into_iter()
        .map(|it| {
            assert_eq!(it.tag(), tag, "{text}");
            it.contents().to_vec()
        })
        .collect()
}

/// The key id (SHA-256 of the DER SubjectPublicKeyInfo) of a PEM public key file.
fn key_id_of_public_key(path: &Path) -> String {
    let text = std::fs::read_to_string(path).expect("read");
    let ders = pem_ders(&text, "PUBLIC KEY");
    assert_eq!(ders.len(), 1);
    sha256_hex(&ders[0])
}

/// The DER of a PEM certificate file.
fn certificate_der(path: &Path) -> Vec<u8> {
    let text = std::fs::read_to_string(path).expect("read");
    let mut ders = pem_ders(&text, "CERTIFICATE");
    assert_eq!(ders.len(), 1);
    ders.remove(0)
}

/// The key id of a PEM certificate file's subject key.
fn key_id_of_certificate(path: &Path) -> String {
    let der = certificate_der(path);
    let (_, cert) = X509Certificate::from_der(&der).expect("certificate");
    sha256_hex(cert.public_key().raw)
}

fn text(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).expect("read");
    serde_saphyr::from_str(&text).unwrap_or_else(|err| panic!("{err}: {text}"))
}

/// The names of the files (not directories) under `dir`, relative, `/`-separated.
fn files_under(dir: &Path) -> BTreeSet<String> {
    fn walk(root: &Path, dir: &Path, found: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                walk(root, &path, found);
            } else {
                let relative = path.strip_prefix(root).expect("inside");
                found.insert(relative.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    let mut found = BTreeSet::new();
    walk(dir, dir, &mut found);
    found
}

/// A workspace with one `files` source `keys`: two public keys (`release`, `old`), a self-signed
/// code-signing certificate (`codesign`), and a CA certificate (`ca`) with a code-signing
/// certificate it issued (`issued`), scanned once.
struct Export {
    dir: tempfile::TempDir,
}

impl Export {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let keys = dir.path().join("keys");
        write_public_key(&keys.join("release.pub"));
        write_public_key(&keys.join("old.pub"));
        write_code_signing_cert(&keys.join("codesign.pem"), "ci-signer", -1, 365);
        write_issued_code_signing_cert(&keys.join("ca.pem"), &keys.join("issued.pem"), "team");
        write(
            &dir.path().join("keywarden.yaml"),
            "store:\n  path: ledger.db\npolicies: []\nsources:\n  keys:\n    type: files\n    \
             paths:\n      - glob: \"keys/**\"\n",
        );
        let ws = Self { dir };
        let scan = ws.run(&["scan", "--format", "json", "--no-enforce"]);
        assert_eq!(scan.status.code(), Some(0), "{}", stderr(&scan));
        ws
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    fn run(&self, args: &[&str]) -> Output {
        keywarden_with(self.dir.path(), args, &[])
    }

    /// `trust export`, which must succeed.
    fn export(&self, args: &[&str]) -> Output {
        let mut all = vec!["trust", "export"];
        all.extend(args);
        let out = self.run(&all);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}{}",
            stdout(&out),
            stderr(&out)
        );
        out
    }

    /// The key id of a key file or certificate under `keys/`, computed from the file itself.
    fn key_id(&self, name: &str) -> String {
        let path = self.path("keys").join(name);
        if name.ends_with(".pub") {
            key_id_of_public_key(&path)
        } else {
            key_id_of_certificate(&path)
        }
    }

    fn key_ids(&self, names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|it| self.key_id(it)).collect()
    }

    fn revoke(&self, key_id: &str, from: &str) {
        let out = self.run(&[
            "trust",
            "revoke",
            key_id,
            "--from",
            from,
            "--reason",
            "key found in a public gist",
            "--by",
            "alice",
        ]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    }
}

const ALL: [&str; 5] = [
    "release.pub",
    "old.pub",
    "codesign.pem",
    "ca.pem",
    "issued.pem",
];

/// The key ids of a cosign directory's `<key id>.pub` files, each checked to hold exactly the
/// key its name says.
fn cosign_key_ids(dir: &Path) -> BTreeSet<String> {
    files_under(dir)
        .into_iter()
        .filter(|it| it != ".keywarden-export")
        .map(|name| {
            let key_id = name.strip_suffix(".pub").expect("a .pub file").to_owned();
            assert_eq!(key_id_of_public_key(&dir.join(&name)), key_id, "{name}");
            key_id
        })
        .collect()
}

#[test]
fn cosign_writes_one_public_key_per_trusted_signer_and_drops_a_distrusted_one() {
    let ws = Export::new();
    let out = ws.export(&["--format", "cosign", "--out", "cosign"]);
    assert!(
        stdout(&out).contains("5 signer(s) trusted"),
        "{}",
        stdout(&out)
    );
    let dir = ws.path("cosign");
    assert_eq!(cosign_key_ids(&dir), ws.key_ids(&ALL));
    // What cosign reads is the key itself: the same DER as the key file.
    let release = ws.key_id("release.pub");
    assert_eq!(
        pem_ders(
            &std::fs::read_to_string(dir.join(format!("{release}.pub"))).expect("read"),
            "PUBLIC KEY"
        ),
        pem_ders(
            &std::fs::read_to_string(ws.path("keys/release.pub")).expect("read"),
            "PUBLIC KEY"
        )
    );

    // Distrusted from a minute ago: gone from the next export into the same directory.
    let old = ws.key_id("old.pub");
    ws.revoke(&old, &text(Utc::now() - Duration::minutes(1)));
    let out = ws.export(&["--format", "cosign", "--out", "cosign"]);
    assert_eq!(
        cosign_key_ids(&dir),
        ws.key_ids(&["release.pub", "codesign.pem", "ca.pem", "issued.pem"])
    );
    assert!(
        stderr(&out).contains(&format!("left out {old}: not trusted at")),
        "{}",
        stderr(&out)
    );

    // Distrusted from a later time: a consumer keeps what it is given, so it is out already,
    // and an export for an earlier time never brings back a signer distrusted since.
    let later = Utc::now() + Duration::days(10);
    ws.revoke(&release, &text(later));
    ws.export(&["--format", "cosign", "--out", "cosign"]);
    assert!(!cosign_key_ids(&dir).contains(&release));
    ws.export(&[
        "--format",
        "cosign",
        "--out",
        "cosign",
        "--at",
        &text(Utc::now() - Duration::days(30)),
    ]);
    assert!(!cosign_key_ids(&dir).contains(&release));
    assert!(
        !cosign_key_ids(&dir).contains(&old),
        "distrusted now, out at any --at"
    );
}

#[test]
fn the_cluster_image_policy_has_a_key_authority_per_signer_trusted_now() {
    let ws = Export::new();
    let old = ws.key_id("old.pub");
    ws.revoke(&old, &text(Utc::now() - Duration::minutes(1)));
    ws.export(&["--format", "policy-controller", "--out", "cip.yaml"]);
    let doc = yaml(&ws.path("cip.yaml"));
    assert_eq!(doc["apiVersion"], "policy.sigstore.dev/v1beta1", "{doc:#}");
    assert_eq!(doc["kind"], "ClusterImagePolicy");
    assert_eq!(doc["metadata"]["name"], "keywarden-signers");
    assert_eq!(doc["spec"]["images"][0]["glob"], "**");
    let authorities = doc["spec"]["authorities"].as_array().expect("authorities");
    let mut names = BTreeSet::new();
    let mut keys = BTreeSet::new();
    for authority in authorities {
        assert!(
            names.insert(authority["name"].as_str().expect("name").to_owned()),
            "authority names are unique: {doc:#}"
        );
        let data = authority["key"]["data"].as_str().expect("key.data");
        for der in pem_ders(data, "PUBLIC KEY") {
            keys.insert(sha256_hex(&der));
        }
    }
    assert_eq!(authorities.len(), 4);
    assert_eq!(
        keys,
        ws.key_ids(&["release.pub", "codesign.pem", "ca.pem", "issued.pem"])
    );
    assert!(!keys.contains(&old));
}

#[test]
fn the_kyverno_policy_accepts_a_signature_by_any_one_signer_trusted_now() {
    let ws = Export::new();
    let old = ws.key_id("old.pub");
    ws.revoke(&old, &text(Utc::now() - Duration::minutes(1)));
    ws.export(&["--format", "kyverno", "--out", "kyverno.yaml"]);
    let doc = yaml(&ws.path("kyverno.yaml"));
    assert_eq!(doc["apiVersion"], "kyverno.io/v1", "{doc:#}");
    assert_eq!(doc["kind"], "ClusterPolicy");
    assert_eq!(
        doc["spec"]["validationFailureAction"], "Enforce",
        "Kyverno before 1.13 would audit only"
    );
    let rules = doc["spec"]["rules"].as_array().expect("rules");
    assert_eq!(rules.len(), 1);
    assert_eq!(rules[0]["match"]["any"][0]["resources"]["kinds"][0], "Pod");
    let verify = rules[0]["verifyImages"].as_array().expect("verifyImages");
    assert_eq!(verify.len(), 1);
    assert_eq!(verify[0]["imageReferences"][0], "*");
    assert_eq!(verify[0]["failureAction"], "Enforce");
    let attestors = verify[0]["attestors"].as_array().expect("attestors");
    assert_eq!(attestors.len(), 1);
    // Without `count`, Kyverno would require a signature by every key.
    assert_eq!(attestors[0]["count"], 1, "{doc:#}");
    let keys: BTreeSet<String> = attestors[0]["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .flat_map(|it| {
            pem_ders(
                it["keys"]["publicKeys"].as_str().expect("pem"),
                "PUBLIC KEY",
            )
        })
        .map(|der| sha256_hex(&der))
        .collect();
    assert_eq!(
        keys,
        ws.key_ids(&["release.pub", "codesign.pem", "ca.pem", "issued.pem"])
    );
}

#[test]
fn notation_trusts_the_certificates_of_the_signers_trusted_now() {
    let ws = Export::new();
    let out = ws.export(&["--format", "notation", "--out", "notation"]);
    let dir = ws.path("notation");
    let policy: Value = serde_json::from_slice(
        &std::fs::read(dir.join("trustpolicy.oci.json")).expect("trust policy"),
    )
    .expect("json");
    assert_eq!(policy["version"], "1.0", "{policy:#}");
    let statements = policy["trustPolicies"].as_array().expect("trustPolicies");
    assert_eq!(statements.len(), 1);
    let statement = &statements[0];
    assert_eq!(statement["registryScopes"], serde_json::json!(["*"]));
    assert_eq!(statement["signatureVerification"]["level"], "strict");
    assert_eq!(
        statement["trustStores"],
        serde_json::json!(["ca:keywarden", "signingAuthority:keywarden"])
    );
    assert_eq!(statement["trustedIdentities"], serde_json::json!(["*"]));

    // The stores hold the self-signed certificate and the CA, not the certificate the CA issued
    // (notation refuses it in a store) nor the plain keys (not certificates).
    let codesign = ws.key_id("codesign.pem");
    let ca = ws.key_id("ca.pem");
    let mut expected = BTreeSet::from([
        ".keywarden-export".to_owned(),
        "trustpolicy.oci.json".to_owned(),
    ]);
    for store in ["ca", "signingAuthority"] {
        for key_id in [&codesign, &ca] {
            expected.insert(format!("truststore/x509/{store}/keywarden/{key_id}.pem"));
        }
    }
    assert_eq!(files_under(&dir), expected);
    for store in ["ca", "signingAuthority"] {
        let stored = std::fs::read_to_string(
            dir.join(format!("truststore/x509/{store}/keywarden/{codesign}.pem")),
        )
        .expect("stored certificate");
        assert_eq!(
            pem_ders(&stored, "CERTIFICATE"),
            vec![certificate_der(&ws.path("keys/codesign.pem"))]
        );
    }
    let err = stderr(&out);
    for (name, why) in [
        ("release.pub", "not a certificate"),
        ("old.pub", "not a certificate"),
        ("issued.pem", "not self-signed"),
    ] {
        let key_id = ws.key_id(name);
        assert!(
            err.lines()
                .any(|it| it.starts_with(&format!("left out {key_id}:")) && it.contains(why)),
            "{name}: {err}"
        );
    }
    assert!(
        err.contains(&format!(
            "note: {ca}: certificate keys/ca.pem of source keys is a CA"
        )),
        "{err}"
    );

    // Distrusted now: out of the store on the next export.
    ws.revoke(&codesign, &text(Utc::now() - Duration::minutes(1)));
    let out = ws.export(&["--format", "notation", "--out", "notation"]);
    let stored = files_under(&dir);
    assert!(
        !stored.iter().any(|it| it.contains(&codesign)),
        "{stored:?}"
    );
    assert!(stored.contains(&format!("truststore/x509/ca/keywarden/{ca}.pem")));
    assert!(
        stderr(&out).contains(&format!("left out {codesign}: not trusted at")),
        "{}",
        stderr(&out)
    );
}

/// `openssl dgst -sha256 -verify PUB -signature SIG FILE`.
fn openssl_verifies(public: &Path, signature: &Path, file: &Path) -> Output {
    Command::new("openssl")
        .args(["dgst", "-sha256", "-verify"])
        .arg(public)
        .arg("-signature")
        .arg(signature)
        .arg(file)
        .output()
        .expect("run openssl (the real CLI)")
}

#[test]
fn the_keywarden_bundle_holds_every_signer_and_its_signature_verifies_with_openssl() {
    let ws = Export::new();
    let old = ws.key_id("old.pub");
    let from = Utc::now() - Duration::minutes(1);
    ws.revoke(&old, &text(from));
    let out = ws.export(&["--format", "keywarden", "--out", "bundle.json"]);
    let (bundle_path, sig_path, pub_path) = (
        ws.path("bundle.json"),
        ws.path("bundle.json.sig"),
        ws.path("bundle.json.pub"),
    );

    let bundle: Value =
        serde_json::from_slice(&std::fs::read(&bundle_path).expect("bundle")).expect("json");
    assert_eq!(
        bundle["media_type"],
        "application/vnd.keywarden.trust-bundle.v1+json"
    );
    let generated = DateTime::parse_from_rfc3339(bundle["generated_at"].as_str().expect("time"))
        .expect("generated_at is RFC 3339");
    assert!(
        (Utc::now() - generated.with_timezone(&Utc))
            .num_minutes()
            .abs()
            < 5
    );
    let signers = bundle["signers"].as_array().expect("signers");
    let ids: BTreeSet<String> = signers
        .iter()
        .map(|it| it["key_id"].as_str().expect("key id").to_owned())
        .collect();
    assert_eq!(ids, ws.key_ids(&ALL), "every signer, trusted or not");
    for signer in signers {
        let key = &signer["public_key"];
        let der = base64::engine::general_purpose::STANDARD
            .decode(key["raw_bytes"].as_str().expect("raw_bytes"))
            .expect("base64");
        assert_eq!(sha256_hex(&der), signer["key_id"].as_str().expect("id"));
        assert_eq!(key["key_details"], "PKIX_ECDSA_P256_SHA_256");
        assert!(key["valid_for"]["start"].is_string(), "{signer:#}");
    }
    let revoked = signers
        .iter()
        .find(|it| it["key_id"] == old.as_str())
        .expect("the revoked signer is in the bundle");
    let periods = revoked["distrust_periods"].as_array().expect("periods");
    assert_eq!(periods.len(), 1, "{revoked:#}");
    let period = &periods[0];
    assert_eq!(
        DateTime::parse_from_rfc3339(period["from"].as_str().expect("from")).expect("from"),
        DateTime::parse_from_rfc3339(&text(from)).expect("time")
    );
    assert_eq!(period["until"], Value::Null, "for good");
    assert_eq!(period["reason"], "manual");
    assert_eq!(period["evidence"], "key found in a public gist");
    assert_eq!(period["by"], "alice");
    assert!(
        revoked["public_key"]["valid_for"]["end"].is_string(),
        "valid until just before the period: {revoked:#}"
    );

    // The real openssl verifies the signature with the exported public key...
    let verified = openssl_verifies(&pub_path, &sig_path, &bundle_path);
    assert!(
        verified.status.success(),
        "{}{}",
        stdout(&verified),
        stderr(&verified)
    );
    assert!(stdout(&verified).contains("Verified OK"));
    // ... and refuses it once one byte of the bundle changes.
    let mut bytes = std::fs::read(&bundle_path).expect("bundle");
    let at = bytes.len() / 2;
    bytes[at] ^= 0x01;
    let tampered = ws.path("tampered.json");
    std::fs::write(&tampered, &bytes).expect("write");
    let refused = openssl_verifies(&pub_path, &sig_path, &tampered);
    assert!(!refused.status.success(), "{}", stdout(&refused));
    assert!(
        stdout(&refused).contains("Verification failure"),
        "{}",
        stdout(&refused)
    );

    // The private key: a 0600 file beside the database, in no output.
    let key_file = ws.path("ledger.db.bundle-key");
    let mode = std::fs::metadata(&key_file)
        .expect("key file")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    let key_text = std::fs::read_to_string(&key_file).expect("key");
    assert!(key_text.starts_with("-----BEGIN PRIVATE KEY-----"));
    let again = ws.export(&["--format", "keywarden", "--out", "again.json"]);
    assert_eq!(
        std::fs::read(&pub_path).expect("pub"),
        std::fs::read(ws.path("again.json.pub")).expect("pub"),
        "the same key signs every bundle"
    );
    let mut outputs = vec![stdout(&out), stderr(&out), stdout(&again), stderr(&again)];
    for path in [&bundle_path, &sig_path, &pub_path] {
        outputs.push(String::from_utf8_lossy(&std::fs::read(path).expect("read")).into_owned());
    }
    for line in key_text.lines().filter(|it| !it.starts_with("-----")) {
        for output in &outputs {
            assert!(!output.contains(line), "the private key is in an output");
        }
    }
}

#[test]
fn the_bundle_key_file_may_live_elsewhere_and_is_refused_when_others_may_read_it() {
    let ws = Export::new();
    let key_file = ws.path("secrets/bundle.key");
    let key_env = key_file.to_str().expect("utf-8");
    let out = keywarden_with(
        ws.dir.path(),
        &[
            "trust",
            "export",
            "--format",
            "keywarden",
            "--out",
            "bundle.json",
        ],
        &[("KEYWARDEN_BUNDLE_KEY_FILE", key_env)],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!ws.path("ledger.db.bundle-key").exists());
    let mode = std::fs::metadata(&key_file)
        .expect("key file")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);

    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let refused = keywarden_with(
        ws.dir.path(),
        &[
            "trust",
            "export",
            "--format",
            "keywarden",
            "--out",
            "other.json",
        ],
        &[("KEYWARDEN_BUNDLE_KEY_FILE", key_env)],
    );
    assert_eq!(refused.status.code(), Some(3), "{}", stderr(&refused));
    let err = stderr(&refused);
    assert!(
        err.contains("mode 644") && err.contains("chmod 600"),
        "{err}"
    );
    for path in ["other.json", "other.json.sig", "other.json.pub"] {
        assert!(!ws.path(path).exists(), "{path} is not written");
    }
    let key_text = std::fs::read_to_string(&key_file).expect("key");
    for line in key_text.lines().filter(|it| !it.starts_with("-----")) {
        assert!(!err.contains(line), "the private key is not in the error");
    }
}

#[test]
fn bad_input_is_refused_with_a_clear_error_and_writes_nothing() {
    let ws = Export::new();
    write(&ws.path("mine/notes.txt"), "my own file\n");
    write(&ws.path("plain-file"), "a file\n");
    std::fs::create_dir(ws.path("a-directory")).expect("mkdir");
    let before = files_under(ws.dir.path());

    let cases: [(&[&str], &str); 8] = [
        (&["--format", "gpg", "--out", "x"], "invalid value 'gpg'"),
        (
            &["--format", "cosign", "--out", "missing/keys"],
            "--out missing/keys",
        ),
        (
            &["--format", "kyverno", "--out", "plain-file/policy.yaml"],
            "plain-file is not a directory",
        ),
        (
            &["--format", "policy-controller", "--out", "a-directory"],
            "is a directory; --format policy-controller writes a file",
        ),
        (
            &["--format", "cosign", "--out", "mine"],
            "a directory that keywarden did not export to",
        ),
        (
            &["--format", "notation", "--out", "plain-file"],
            "exists and is not a directory",
        ),
        (
            &[
                "--format",
                "cosign",
                "--out",
                "keys-out",
                "--at",
                "yesterday",
            ],
            "--at `yesterday`: expected an RFC 3339 time",
        ),
        (
            &["--format", "keywarden", "--out", "b.json", "--at", "now"],
            "--at: the keywarden bundle holds every signer",
        ),
    ];
    for (args, message) in cases {
        let mut all = vec!["trust", "export"];
        all.extend(args);
        let out = ws.run(&all);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(message), "{args:?}: {}", stderr(&out));
        assert!(stdout(&out).is_empty(), "{args:?}: {}", stdout(&out));
    }
    assert_eq!(files_under(ws.dir.path()), before, "nothing was written");
    assert_eq!(
        std::fs::read_to_string(ws.path("mine/notes.txt")).expect("mine"),
        "my own file\n"
    );
    assert!(!ws.path("ledger.db.bundle-key").exists(), "no key was made");
}

#[test]
fn with_no_signer_trusted_the_exports_trust_no_image() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_public_key(&dir.path().join("keys/only.pub"));
    write(
        &dir.path().join("keywarden.yaml"),
        "store:\n  path: ledger.db\npolicies: []\nsources:\n  keys:\n    type: files\n    \
         paths:\n      - glob: \"keys/**\"\n",
    );
    let ws = Export { dir };
    let scan = ws.run(&["scan", "--no-enforce"]);
    assert_eq!(scan.status.code(), Some(0), "{}", stderr(&scan));
    ws.revoke(
        &ws.key_id("only.pub"),
        &text(Utc::now() - Duration::minutes(1)),
    );

    let out = ws.export(&["--format", "policy-controller", "--out", "cip.yaml"]);
    assert!(
        stderr(&out).contains("no signer is trusted"),
        "{}",
        stderr(&out)
    );
    let cip = yaml(&ws.path("cip.yaml"));
    let authorities = cip["spec"]["authorities"].as_array().expect("authorities");
    assert_eq!(authorities.len(), 1, "{cip:#}");
    assert_eq!(authorities[0]["static"]["action"], "fail");
    assert!(authorities[0].get("key").is_none());

    ws.export(&["--format", "kyverno", "--out", "kyverno.yaml"]);
    let policy = yaml(&ws.path("kyverno.yaml"));
    let rule = &policy["spec"]["rules"][0];
    assert!(rule.get("verifyImages").is_none(), "{policy:#}");
    assert_eq!(rule["validate"]["failureAction"], "Enforce");
    let condition = &rule["validate"]["deny"]["conditions"]["any"][0];
    assert_eq!(
        condition["key"], condition["value"],
        "a deny that always holds"
    );

    ws.export(&["--format", "cosign", "--out", "cosign"]);
    assert!(cosign_key_ids(&ws.path("cosign")).is_empty());
}
