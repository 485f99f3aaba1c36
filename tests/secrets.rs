//! Invariant 1: a secret value is never stored or logged. The `files` connector reads unencrypted
//! private keys to derive their public half; nothing of the private key may reach stdout, the logs
//! (at trace level) or the database.

mod common;

use common::{Workspace, keywarden, write};
use rcgen::{KeyPair, PKCS_ECDSA_P256_SHA256, PKCS_ED25519};

fn body_lines(pem: &str) -> Vec<String> {
    pem.lines()
        .filter(|it| !it.starts_with("-----") && it.len() >= 16)
        .map(str::to_owned)
        .collect()
}

#[test]
fn private_key_material_reaches_no_output_log_or_database_row() {
    let ws = Workspace::new();
    let ed25519 = KeyPair::generate_for(&PKCS_ED25519).expect("key");
    let p256 = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("key");
    let mut secrets: Vec<String> = Vec::new();
    for (name, key) in [("ed.pem", &ed25519), ("p256.pem", &p256)] {
        let pem = key.serialize_pem();
        write(&ws.key(&format!("owned/{name}")), &pem);
        secrets.extend(body_lines(&pem));
        // The raw PKCS#8 DER, as hex, in case anything logs bytes.
        secrets.push(hex_encode(&key.serialize_der()));
    }
    // A malformed private key, so the error path runs too.
    let broken = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        &body_lines(&p256.serialize_pem())[0][..40]
    );
    write(&ws.key("owned/broken.pem"), &broken);
    secrets.push(body_lines(&p256.serialize_pem())[0][..40].to_owned());

    let mut seen = String::new();
    for args in [
        vec!["scan", "--log-level", "trace"],
        vec!["scan", "--format", "json", "--log-level", "trace"],
        vec!["findings", "list", "--all", "--format", "json"],
    ] {
        let output = keywarden(ws.path(), &args);
        assert_eq!(output.status.code(), Some(0), "{args:?}");
        seen.push_str(&String::from_utf8_lossy(&output.stdout));
        seen.push_str(&String::from_utf8_lossy(&output.stderr));
    }
    assert!(
        seen.contains("private_key"),
        "the keys were not scanned:\n{seen}"
    );
    assert!(
        seen.contains("broken.pem"),
        "the broken key was not reported:\n{seen}"
    );

    let mut stored = Vec::new();
    for entry in std::fs::read_dir(ws.path()).expect("dir") {
        let path = entry.expect("entry").path();
        if path
            .file_name()
            .is_some_and(|it| it.to_string_lossy().starts_with("ledger.db"))
        {
            stored.extend(std::fs::read(&path).expect("db"));
        }
    }
    assert!(!stored.is_empty());
    let stored = String::from_utf8_lossy(&stored);

    for secret in &secrets {
        assert!(
            !seen.contains(secret.as_str()),
            "secret in output: {secret}"
        );
        assert!(
            !stored.contains(secret.as_str()),
            "secret in the database: {secret}"
        );
    }
}

fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|it| format!("{it:02x}")).collect()
}
