//! The pure export: each format's documents from signers and a time.
use chrono::TimeDelta;
use keywarden_connector::CredentialStatus;
use p256::pkcs8::EncodePublicKey as _;
use serde_json::Value;

use super::*;
use crate::trust::TrustRecord;

fn t(day: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000, 0).expect("time") + TimeDelta::days(day)
}

/// A P-256 public key's DER, from a fixed scalar.
fn p256_der(seed: u8) -> Vec<u8> {
    let secret = p256::SecretKey::from_slice(&[seed; 32]).expect("scalar");
    secret
        .public_key()
        .to_public_key_der()
        .expect("der")
        .as_bytes()
        .to_vec()
}

fn credential(kind: CredentialKind, external_id: &str, name: &str) -> SignerCredential {
    SignerCredential {
        source: "keys".to_owned(),
        external_id: external_id.to_owned(),
        kind,
        name: name.to_owned(),
        status: CredentialStatus::Active,
        identity: name.to_owned(),
        identity_name: name.to_owned(),
        first_seen: t(0),
        not_before: None,
        created_at: None,
        expires_at: None,
    }
}

fn signer_of(der: &[u8], credentials: Vec<SignerCredential>) -> Signer {
    Signer {
        key_id: sha256_hex(der),
        public_key: Some(base64::engine::general_purpose::STANDARD.encode(der)),
        algorithm: Some("ecdsa-p256".to_owned()),
        credentials,
        holders: Vec::new(),
        record: TrustRecord::new(t(0)),
    }
}

fn key_signer(seed: u8) -> Signer {
    let der = p256_der(seed);
    let id = format!("key:sha256:{}", sha256_hex(&der));
    signer_of(
        &der,
        vec![credential(CredentialKind::PublicKey, &id, "k.pub")],
    )
}

fn period(from: i64, until: Option<i64>) -> DistrustPeriod {
    DistrustPeriod {
        from: t(from),
        until: until.map(t),
        reason: DistrustReason::Leaked,
        evidence: "gist".to_owned(),
        by: "alice".to_owned(),
        reinstated: None,
        until_replaced: None,
    }
}

fn directory(export: &Export) -> (&[String], &[OutputFile]) {
    match &export.output {
        Output::Directory { dirs, files } => (dirs, files),
        Output::File(_) => panic!("a directory export"),
    }
}

fn file(export: &Export) -> &str {
    match &export.output {
        Output::File(bytes) => std::str::from_utf8(bytes).expect("utf-8"),
        Output::Directory { .. } => panic!("a file export"),
    }
}

/// The key id of each PEM `PUBLIC KEY` in `text`.
fn pem_key_ids(text: &str) -> Vec<String> {
    pem::parse_many(text)
        .expect("pem")
        .iter()
        .map(|it| {
            assert_eq!(it.tag(), "PUBLIC KEY");
            sha256_hex(it.contents())
        })
        .collect()
}

#[test]
fn cosign_holds_exactly_the_signers_trusted_at_the_time() {
    let trusted = key_signer(1);
    let mut revoked = key_signer(2);
    revoked.record.periods.push(period(10, None));
    let mut closed = key_signer(3);
    closed.record.periods.push(period(10, Some(20)));
    let signers = vec![trusted.clone(), revoked.clone(), closed.clone()];

    // Before the periods begin, only the signer with none: a format without time would keep
    // trusting the others past their distrust.
    let before = cosign(&signers, t(9));
    assert_eq!(before.included, vec![trusted.key_id.clone()], "{before:?}");
    let export = cosign(&signers, t(10));
    let (_, files) = directory(&export);
    let names: Vec<&str> = files.iter().map(|it| it.path.as_str()).collect();
    assert_eq!(names, vec![format!("{}.pub", trusted.key_id)]);
    assert_eq!(
        pem_key_ids(std::str::from_utf8(&files[0].bytes).expect("utf-8")),
        vec![trusted.key_id.clone()]
    );
    let mut left: Vec<&str> = export
        .left_out
        .iter()
        .map(|it| it.key_id.as_str())
        .collect();
    left.sort_unstable();
    let mut expected = vec![revoked.key_id.as_str(), closed.key_id.as_str()];
    expected.sort_unstable();
    assert_eq!(left, expected);
    assert!(
        export
            .left_out
            .iter()
            .all(|it| it.reason.contains("distrust")),
        "{:?}",
        export.left_out
    );
    // The closed period is over at day 20: trusted again.
    assert_eq!(cosign(&signers, t(20)).included.len(), 2);
    // Before its window, a signer is not trusted either.
    assert!(cosign(&signers, t(-1)).included.is_empty());
}

#[test]
fn a_signer_whose_key_is_unknown_or_not_its_own_is_left_out() {
    let mut unknown = key_signer(1);
    unknown.public_key = None;
    let mut other = key_signer(2);
    other.public_key = Some(base64::engine::general_purpose::STANDARD.encode(p256_der(3)));
    let mut garbled = key_signer(4);
    garbled.public_key = Some("not base64!".to_owned());
    let export = cosign(&[unknown, other, garbled], t(1));
    assert!(export.included.is_empty());
    let reasons: Vec<&str> = export
        .left_out
        .iter()
        .map(|it| it.reason.as_str())
        .collect();
    assert!(
        reasons.iter().any(|it| it.contains("unknown")),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|it| it.contains("does not hash to its key id")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|it| it.contains("not base64")),
        "{reasons:?}"
    );
}

fn parse_yaml(text: &str) -> Value {
    serde_saphyr::from_str(text).expect("yaml")
}

#[test]
fn the_cluster_image_policy_has_one_key_authority_per_trusted_signer() {
    let a = key_signer(1);
    let b = key_signer(2);
    let mut revoked = key_signer(3);
    revoked.record.periods.push(period(0, None));
    let export = policy_controller(&[a.clone(), b.clone(), revoked.clone()], t(5)).expect("export");
    let text = file(&export);
    assert!(text.starts_with("# keywarden trust export"), "{text}");
    let doc = parse_yaml(text);
    assert_eq!(doc["apiVersion"], "policy.sigstore.dev/v1beta1");
    assert_eq!(doc["kind"], "ClusterImagePolicy");
    assert_eq!(doc["metadata"]["name"], POLICY_NAME);
    assert_eq!(doc["spec"]["images"][0]["glob"], "**");
    let authorities = doc["spec"]["authorities"].as_array().expect("authorities");
    let ids: Vec<String> = authorities
        .iter()
        .flat_map(|it| pem_key_ids(it["key"]["data"].as_str().expect("data")))
        .collect();
    assert_eq!(ids, vec![a.key_id.clone(), b.key_id.clone()]);
    assert_eq!(authorities[0]["name"], format!("key-{}", a.key_id));
    assert!(authorities.iter().all(|it| it.get("static").is_none()));
    assert_eq!(export.left_out.len(), 1);
}

#[test]
fn with_no_signer_trusted_the_policies_reject_every_image() {
    let mut revoked = key_signer(1);
    revoked.record.periods.push(period(0, None));
    let signers = [revoked];

    let cip = parse_yaml(file(&policy_controller(&signers, t(5)).expect("cip")));
    let authorities = cip["spec"]["authorities"].as_array().expect("authorities");
    assert_eq!(authorities.len(), 1);
    assert_eq!(authorities[0]["static"]["action"], "fail");
    assert!(authorities[0].get("key").is_none());

    let policy = parse_yaml(file(&kyverno(&signers, t(5)).expect("kyverno")));
    let rule = &policy["spec"]["rules"][0];
    assert!(rule.get("verifyImages").is_none(), "{rule:#}");
    assert_eq!(rule["validate"]["failureAction"], "Enforce");
    let condition = &rule["validate"]["deny"]["conditions"]["any"][0];
    assert_eq!(condition["operator"], "Equals");
    assert_eq!(condition["key"], condition["value"], "always true: denies");
}

#[test]
fn the_kyverno_policy_accepts_any_one_trusted_key() {
    let a = key_signer(1);
    let b = key_signer(2);
    let export = kyverno(&[a.clone(), b.clone()], t(5)).expect("export");
    let doc = parse_yaml(file(&export));
    assert_eq!(doc["apiVersion"], "kyverno.io/v1");
    assert_eq!(doc["kind"], "ClusterPolicy");
    let rule = &doc["spec"]["rules"][0];
    assert_eq!(rule["match"]["any"][0]["resources"]["kinds"][0], "Pod");
    let verify = &rule["verifyImages"][0];
    assert_eq!(verify["imageReferences"][0], "*");
    assert_eq!(verify["failureAction"], "Enforce");
    let attestors = verify["attestors"].as_array().expect("attestors");
    assert_eq!(attestors.len(), 1);
    assert_eq!(attestors[0]["count"], 1, "any one key, not all of them");
    let ids: Vec<String> = attestors[0]["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .flat_map(|it| pem_key_ids(it["keys"]["publicKeys"].as_str().expect("pem")))
        .collect();
    assert_eq!(ids, vec![a.key_id, b.key_id]);
}

struct Cert {
    der: Vec<u8>,
    spki: Vec<u8>,
}

fn cert(ca: bool, issuer: Option<&(rcgen::CertificateParams, rcgen::KeyPair)>) -> Cert {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "signer");
    if ca {
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    }
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = match issuer {
        None => params.self_signed(&key).expect("self-signed"),
        Some((issuer_params, issuer_key)) => {
            let issuer = rcgen::Issuer::from_params(issuer_params, issuer_key);
            params.signed_by(&key, &issuer).expect("issued")
        }
    };
    use rcgen::PublicKeyData as _;
    Cert {
        der: cert.der().to_vec(),
        spki: key.subject_public_key_info(),
    }
}

fn cert_signer(cert: &Cert) -> Signer {
    signer_of(
        &cert.spki,
        vec![credential(
            CredentialKind::Certificate,
            &format!("cert:sha256:{}", sha256_hex(&cert.der)),
            "codesign.pem",
        )],
    )
}

fn read(signer: &Signer, contents: Vec<u8>) -> Certificates {
    signer
        .credentials
        .iter()
        .map(|it| {
            (
                (it.source.clone(), it.external_id.clone()),
                Ok(contents.clone()),
            )
        })
        .collect()
}

#[test]
fn notation_pins_self_signed_certificates_in_both_store_types() {
    let cert = cert(false, None);
    let signer = cert_signer(&cert);
    let plain = key_signer(9);
    // The file holds another certificate first, and ours as PEM.
    let other = self::cert(false, None);
    let contents = format!(
        "{}{}",
        pem_block("CERTIFICATE", &other.der),
        pem_block("CERTIFICATE", &cert.der)
    );
    let certificates = read(&signer, contents.into_bytes());
    let export = notation(&[signer.clone(), plain.clone()], t(1), &certificates).expect("notation");
    assert_eq!(export.included, vec![signer.key_id.clone()]);
    assert_eq!(export.left_out.len(), 1);
    assert_eq!(export.left_out[0].key_id, plain.key_id);
    assert!(export.left_out[0].reason.contains("not a certificate"));

    let (dirs, files) = directory(&export);
    assert_eq!(
        dirs,
        [
            "truststore/x509/ca/keywarden",
            "truststore/x509/signingAuthority/keywarden"
        ]
    );
    let policy: Value = serde_json::from_slice(&files[0].bytes).expect("json");
    assert_eq!(files[0].path, NOTATION_POLICY_FILE);
    assert_eq!(policy["version"], "1.0");
    let statement = &policy["trustPolicies"][0];
    assert_eq!(statement["registryScopes"], serde_json::json!(["*"]));
    assert_eq!(statement["signatureVerification"]["level"], "strict");
    assert_eq!(
        statement["trustStores"],
        serde_json::json!(["ca:keywarden", "signingAuthority:keywarden"])
    );
    assert_eq!(statement["trustedIdentities"], serde_json::json!(["*"]));
    let stored: Vec<&str> = files[1..].iter().map(|it| it.path.as_str()).collect();
    assert_eq!(
        stored,
        vec![
            format!("truststore/x509/ca/keywarden/{}.pem", signer.key_id),
            format!(
                "truststore/x509/signingAuthority/keywarden/{}.pem",
                signer.key_id
            ),
        ]
    );
    let blocks = pem::parse_many(&files[1].bytes).expect("pem");
    assert_eq!(blocks.len(), 1);
    assert_eq!(blocks[0].tag(), "CERTIFICATE");
    assert_eq!(blocks[0].contents(), cert.der.as_slice());
}

#[test]
fn notation_takes_what_its_trust_store_takes_and_leaves_out_the_rest() {
    let ca_key = rcgen::KeyPair::generate().expect("key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let issued = cert(false, Some(&(ca_params, ca_key)));
    let ca = cert(true, None);
    let changed = cert(false, None);
    let unreadable = cert(false, None);
    let signers = [
        cert_signer(&issued),
        cert_signer(&ca),
        cert_signer(&changed),
        cert_signer(&unreadable),
    ];
    let mut certificates = read(&signers[0], issued.der.clone());
    certificates.extend(read(&signers[1], ca.der.clone()));
    // The file now holds another certificate.
    certificates.extend(read(&signers[2], cert(false, None).der));
    certificates.extend(signers[3].credentials.iter().map(|it| {
        (
            (it.source.clone(), it.external_id.clone()),
            Err("gone".into()),
        )
    }));
    let export = notation(&signers, t(1), &certificates).expect("notation");
    let reason = |signer: &Signer| {
        export
            .left_out
            .iter()
            .find(|it| it.key_id == signer.key_id)
            .map(|it| it.reason.clone())
            .unwrap_or_default()
    };
    assert!(
        reason(&signers[0]).contains("not self-signed"),
        "{export:?}"
    );
    assert!(
        reason(&signers[2]).contains("no longer holds it"),
        "{export:?}"
    );
    assert!(reason(&signers[3]).ends_with("gone"), "{export:?}");
    // A CA certificate goes in (notation's store takes it), with a note on what that means.
    assert_eq!(export.included, vec![signers[1].key_id.clone()]);
    assert!(
        export
            .notes
            .iter()
            .any(|it| it.starts_with(&signers[1].key_id) && it.contains("CA certificate")),
        "{export:?}"
    );
    let (dirs, files) = directory(&export);
    assert_eq!(dirs.len(), 2);
    assert_eq!(files.len(), 3, "the policy and the CA in both stores");
    let blocks = pem::parse_many(&files[1].bytes).expect("pem");
    assert_eq!(blocks[0].contents(), ca.der.as_slice());
}

#[test]
fn with_no_certificate_signer_the_notation_stores_are_empty() {
    let export = notation(&[key_signer(1)], t(1), &Certificates::new()).expect("notation");
    assert!(export.included.is_empty());
    // Only the trust policy: the stores are empty, so notation trusts nothing.
    let (dirs, files) = directory(&export);
    assert_eq!(dirs.len(), 2);
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].path, NOTATION_POLICY_FILE);
}

#[test]
fn the_bundle_holds_every_signer_with_its_window_and_periods() {
    let trusted = key_signer(1);
    let mut revoked = key_signer(2);
    revoked.record.periods.push(period(10, Some(20)));
    revoked.record.periods.push(period(30, None));
    let mut unknown = key_signer(3);
    unknown.public_key = None;
    let signers = [trusted.clone(), revoked.clone(), unknown.clone()];
    let export = keywarden_bundle(&signers, t(40), "abc").expect("bundle");
    assert_eq!(export.included.len(), 3);
    assert_eq!(export.notes.len(), 1, "{:?}", export.notes);
    let bundle: Value = serde_json::from_str(file(&export)).expect("json");
    assert_eq!(bundle["media_type"], BUNDLE_MEDIA_TYPE);
    assert_eq!(bundle["generated_at"], "2023-12-24T22:13:20Z");
    assert_eq!(bundle["signed_with"], "abc");
    let entries = bundle["signers"].as_array().expect("signers");
    let entry = |signer: &Signer| {
        entries
            .iter()
            .find(|it| it["key_id"] == signer.key_id.as_str())
            .unwrap_or_else(|| panic!("{} in the bundle", signer.key_id))
    };

    let first = entry(&trusted);
    let der = base64::engine::general_purpose::STANDARD
        .decode(
            first["public_key"]["raw_bytes"]
                .as_str()
                .expect("raw bytes"),
        )
        .expect("base64");
    assert_eq!(sha256_hex(&der), trusted.key_id);
    assert_eq!(
        first["public_key"]["key_details"],
        "PKIX_ECDSA_P256_SHA_256"
    );
    assert_eq!(
        first["public_key"]["valid_for"],
        serde_json::json!({ "start": "2023-11-14T22:13:20Z" })
    );
    assert_eq!(first["distrust_periods"], serde_json::json!([]));

    let second = entry(&revoked);
    assert_eq!(
        second["public_key"]["valid_for"]["end"], "2023-12-14T22:13:19.999999999Z",
        "the last instant before the period with no end"
    );
    let periods = second["distrust_periods"].as_array().expect("periods");
    assert_eq!(periods.len(), 2);
    assert_eq!(periods[0]["from"], "2023-11-24T22:13:20Z");
    assert_eq!(periods[0]["until"], "2023-12-04T22:13:20Z");
    assert_eq!(periods[0]["reason"], "leaked");
    assert_eq!(periods[0]["evidence"], "gist");
    assert_eq!(periods[0]["by"], "alice");
    assert_eq!(periods[1]["until"], Value::Null);

    let third = entry(&unknown);
    assert!(third["public_key"].get("raw_bytes").is_none());
    assert_eq!(
        third["public_key"]["key_details"],
        "PUBLIC_KEY_DETAILS_UNSPECIFIED"
    );
    // The same input gives the same bytes (what is signed can be made again).
    assert_eq!(
        keywarden_bundle(&signers, t(40), "abc").expect("bundle"),
        export
    );
}

#[test]
fn key_details_name_the_curve_and_size() {
    let p384 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).expect("p384");
    let ed = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).expect("ed25519");
    use rcgen::PublicKeyData as _;
    assert_eq!(key_details(&p256_der(1)), "PKIX_ECDSA_P256_SHA_256");
    assert_eq!(
        key_details(&p384.subject_public_key_info()),
        "PKIX_ECDSA_P384_SHA_384"
    );
    assert_eq!(key_details(&ed.subject_public_key_info()), "PKIX_ED25519");
    assert_eq!(key_details(b"junk"), "PUBLIC_KEY_DETAILS_UNSPECIFIED");
}
