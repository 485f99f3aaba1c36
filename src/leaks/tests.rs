//! Each format from payloads shaped as its documentation shows (plaintext fields included), the
//! indicators taken, and no plaintext anywhere in what parsing returns or in its errors.

use sha2::Digest as _;

use super::*;

const AKID: &str = "AKIAZ6EXAMPLE7KEY4ID";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY";

/// A fresh P-256 key: its PKCS#8 PEM and its key id.
fn private_key() -> (String, String) {
    let key = rcgen::KeyPair::generate().expect("key");
    let id = hex::encode(sha2::Sha256::digest(
        rcgen::PublicKeyData::subject_public_key_info(&key),
    ));
    (key.serialize_pem(), id)
}

fn json_string(text: &str) -> String {
    serde_json::to_string(text).expect("json string")
}

/// Neither the secret, nor any line of the private key's body, is in anything parsing returned.
fn assert_no_plaintext(leaks: &[Leak], private_pem: Option<&str>) {
    let shown = format!("{leaks:?} {}", serde_json::to_string(leaks).expect("json"));
    assert!(!shown.contains(SECRET), "{shown}");
    assert!(!shown.contains("wJalr"), "{shown}");
    if let Some(pem) = private_pem {
        for line in pem.lines().filter(|it| !it.starts_with("-----")) {
            assert!(!shown.contains(line), "private key line in {shown}");
        }
    }
}

#[test]
fn an_access_key_id_is_recognised_by_its_shape() {
    assert!(is_access_key_id(AKID));
    assert!(is_access_key_id("ASIAZ6EXAMPLE7KEY4ID"));
    assert!(!is_access_key_id("AKIAZ6EXAMPLE7KEY4I"), "19 characters");
    assert!(!is_access_key_id("akiaz6example7key4id"), "lower case");
    assert!(!is_access_key_id(SECRET));
}

#[test]
fn github_alerts_give_the_access_key_id_or_the_key_id_and_keep_no_literal() {
    let (pem, key_id) = private_key();
    let alerts = format!(
        r#"[{{"number":42,"created_at":"2026-11-20T10:00:00Z","url":"https://api.github.com/repos/o/r/secret-scanning/alerts/42","html_url":"https://github.com/o/r/security/secret-scanning/42","secret_type":"aws_access_key_id","secret_type_display_name":"AWS Access Key ID","secret":"{AKID}","validity":"active","resolution":null,"push_protection_bypassed":true,"push_protection_bypassed_at":"2026-11-19T09:00:00Z"}},
            {{"number":43,"created_at":"2026-11-21T10:00:00Z","url":"https://api.github.com/repos/o/r/secret-scanning/alerts/43","secret_type":"private_key","secret":{pem},"resolution":"false_positive"}},
            {{"number":44,"created_at":"2026-11-22T10:00:00Z","url":"https://api.github.com/repos/o/r/secret-scanning/alerts/44","secret_type":"aws_secret_access_key","secret":"{SECRET}"}}]"#,
        pem = json_string(&pem)
    );
    let (format, leaks) = parse(alerts.as_bytes(), None).expect("parse");
    assert_eq!(format, LeakFormat::Github);
    assert_eq!(leaks.len(), 3);
    assert_eq!(
        leaks[0].indicators,
        [Indicator::AccessKeyId(AKID.to_owned())]
    );
    assert_eq!(
        leaks[0].id,
        "github:https://api.github.com/repos/o/r/secret-scanning/alerts/42"
    );
    // The earliest time shown: the push-protection bypass, before the alert.
    assert_eq!(
        leaks[0].exposed_at.map(|it| it.to_rfc3339()),
        Some("2026-11-19T09:00:00+00:00".to_owned())
    );
    assert_eq!(leaks[1].indicators, [Indicator::KeyId(key_id)]);
    assert!(
        leaks[1].dismissed.is_some(),
        "a false positive is dismissed"
    );
    // A secret access key identifies nothing keywarden holds; no hash of it is made.
    assert!(leaks[2].indicators.is_empty(), "{:?}", leaks[2]);
    assert_no_plaintext(&leaks, Some(&pem));
    assert!(!format!("{leaks:?}").contains(&sha1_hex(SECRET.as_bytes())));
}

#[test]
fn a_github_webhook_has_no_literal_and_is_known_by_its_alert() {
    let hook = r#"{"action":"created","alert":{"number":7,"created_at":"2026-11-20T10:00:00Z","url":"https://api.github.com/repos/o/r/secret-scanning/alerts/7","secret_type":"aws_access_key_id","validity":"unknown"},"repository":{"full_name":"o/r"},"sender":{"login":"x"}}"#;
    let (format, leaks) = parse(hook.as_bytes(), None).expect("parse");
    assert_eq!(format, LeakFormat::Github);
    assert_eq!(leaks.len(), 1);
    assert!(leaks[0].indicators.is_empty());
    assert_eq!(leaks[0].detector, "aws_access_key_id");
}

#[test]
fn a_gitguardian_incident_gives_its_hmsl_hash() {
    let hook = r#"{"source":"GitGuardian","timestamp":"2026-11-28T08:48:49.290758Z","action":"incident_triggered","message":"m","target_user":"u","custom_webhook_name":"w","incident":{"id":3827964,"date":"2026-11-23T14:34:11Z","detector":{"name":"aws_iam","display_name":"AWS Keys","nature":"specific","family":"credentials","detector_group_name":"aws_iam"},"secret_hash":"Ri9FjVgdOlPnBmujoxP4XPJcbe82BhJXB/SAngijw/juCISuOMgPzYhV28m6OG24","hmsl_hash":"05975add34ddc9a38a0fb57c7d3e676ffed57080516fc16bf8d8f14308fedb86","secret_revoked":false,"validity":"valid","occurrence_count":1,"status":"TRIGGERED","regression":false,"severity":"unknown","gitguardian_url":"https://dashboard.gitguardian.com/workspace/1/incidents/3827964"}}"#;
    let (format, leaks) = parse(hook.as_bytes(), None).expect("parse");
    assert_eq!(format, LeakFormat::Gitguardian);
    assert_eq!(leaks[0].id, "gitguardian:3827964");
    assert_eq!(
        leaks[0].indicators,
        [Indicator::Hmsl(
            "05975add34ddc9a38a0fb57c7d3e676ffed57080516fc16bf8d8f14308fedb86".to_owned()
        )]
    );
}

#[test]
fn trufflehog_lines_give_the_access_key_id_or_the_derived_key_id_and_drop_raw_v2() {
    let (pem, key_id) = private_key();
    let aws = format!(
        r#"{{"SourceMetadata":{{"Data":{{"Git":{{"commit":"fbc14303ffbf8fb1c2c1914e8dda7d0121633aca","file":"keys","email":"dev <dev@example.com>","repository":"https://github.com/o/r","timestamp":"2026-11-18 10:17:40 -0700","line":4}}}}}},"SourceID":1,"SourceType":16,"SourceName":"trufflehog - git","DetectorType":2,"DetectorName":"AWS","DetectorDescription":"AWS","DecoderName":"PLAIN","Verified":true,"Raw":"{AKID}","RawV2":"{AKID}:{SECRET}","Redacted":"{AKID}","ExtraData":{{"account":"123456789012","resource_type":"Access key"}},"StructuredData":null,"SecretParts":{{"access_key_id":"{AKID}","secret_access_key":"{SECRET}"}}}}"#
    );
    let key = format!(
        r#"{{"SourceMetadata":{{"Data":{{"Filesystem":{{"file":"deploy/signing.key","line":1}}}}}},"DetectorType":20,"DetectorName":"PrivateKey","Verified":false,"Raw":{pem},"RawV2":{pem},"Redacted":"-----BEGIN PRIVATE KEY-----"}}"#,
        pem = json_string(&pem)
    );
    let report = format!("{aws}\n\n{key}\n");
    let (format, leaks) = parse(report.as_bytes(), None).expect("parse");
    assert_eq!(format, LeakFormat::Trufflehog);
    assert_eq!(leaks.len(), 2);
    assert_eq!(
        leaks[0].indicators,
        [Indicator::AccessKeyId(AKID.to_owned())]
    );
    assert_eq!(
        leaks[0].exposed_at.map(|it| it.to_rfc3339()),
        Some("2026-11-18T17:17:40+00:00".to_owned())
    );
    assert_eq!(leaks[1].indicators, [Indicator::KeyId(key_id)]);
    assert_eq!(leaks[1].location.as_deref(), Some("deploy/signing.key"));
    assert_no_plaintext(&leaks, Some(&pem));
    // Stable ids: the same report reads the same.
    let (_, again) = parse(report.as_bytes(), None).expect("parse");
    assert_eq!(
        leaks.iter().map(|it| &it.id).collect::<Vec<_>>(),
        again.iter().map(|it| &it.id).collect::<Vec<_>>()
    );
}

#[test]
fn gitleaks_findings_give_the_access_key_id_or_the_derived_key_id_and_no_hash_of_a_secret() {
    let (pem, key_id) = private_key();
    let report = format!(
        r#"[{{"RuleID":"aws-access-token","Description":"AWS","StartLine":3,"EndLine":3,"StartColumn":19,"EndColumn":38,"Match":"aws_access_key_id = {AKID}","Secret":"{AKID}","File":"config/ci.env","SymlinkFile":"","Commit":"3b3f2a1","Entropy":3.6,"Author":"dev","Email":"dev@example.com","Date":"2026-11-17T08:00:00Z","Message":"add ci","Tags":[],"Fingerprint":"3b3f2a1:config/ci.env:aws-access-token:3"}},
            {{"RuleID":"private-key","StartLine":1,"Match":{pem},"Secret":{pem},"File":"signing.key","Commit":"","Date":"","Fingerprint":"signing.key:private-key:1"}},
            {{"RuleID":"generic-api-key","StartLine":9,"Match":"token = {SECRET}","Secret":"{SECRET}","File":"app.py","Fingerprint":"app.py:generic-api-key:9"}}]"#,
        pem = json_string(&pem)
    );
    let (format, leaks) = parse(report.as_bytes(), None).expect("parse");
    assert_eq!(format, LeakFormat::Gitleaks);
    assert_eq!(
        leaks[0].id,
        "gitleaks:3b3f2a1:config/ci.env:aws-access-token:3"
    );
    assert_eq!(
        leaks[0].indicators,
        [Indicator::AccessKeyId(AKID.to_owned())]
    );
    assert_eq!(
        leaks[0].location.as_deref(),
        Some("3b3f2a1:config/ci.env:3")
    );
    assert_eq!(leaks[1].indicators, [Indicator::KeyId(key_id)]);
    assert_eq!(leaks[1].exposed_at, None, "no date");
    assert!(leaks[2].indicators.is_empty(), "{:?}", leaks[2]);
    assert_no_plaintext(&leaks, Some(&pem));
    assert!(!format!("{leaks:?}").contains(&sha1_hex(SECRET.as_bytes())));
}

#[test]
fn a_detect_secrets_baseline_gives_its_hashes() {
    let hash = sha1_hex(AKID.as_bytes());
    let baseline = format!(
        r#"{{"version":"1.5.0","plugins_used":[{{"name":"AWSKeyDetector"}}],"filters_used":[],"generated_at":"2026-11-30T12:00:00Z","results":{{"ci/deploy.sh":[{{"type":"AWS Access Key","filename":"ci/deploy.sh","hashed_secret":"{hash}","is_verified":false,"line_number":12}},{{"type":"Secret Keyword","filename":"ci/deploy.sh","hashed_secret":"{}","is_verified":false,"line_number":13,"is_secret":false}}]}}}}"#,
        sha1_hex(b"other")
    );
    let (format, leaks) = parse(baseline.as_bytes(), None).expect("parse");
    assert_eq!(format, LeakFormat::DetectSecrets);
    assert_eq!(leaks.len(), 2);
    assert_eq!(leaks[0].indicators, [Indicator::Sha1(hash)]);
    assert_eq!(leaks[0].location.as_deref(), Some("ci/deploy.sh:12"));
    assert!(leaks[1].dismissed.is_some());
}

#[test]
fn a_truncated_or_unknown_report_is_an_error_naming_the_place_without_quoting_a_value() {
    let truncated = format!(r#"[{{"RuleID":"aws-access-token","Secret":"{SECRET}","StartLine":"#);
    let err = parse(truncated.as_bytes(), Some(LeakFormat::Gitleaks)).expect_err("truncated");
    assert!(
        matches!(&err, LeakError::Malformed { place, .. } if place.starts_with("1:")),
        "{err}"
    );
    assert!(!err.to_string().contains("wJalr"), "{err}");

    // A value of the wrong type: serde would quote it.
    let wrong = format!(r#"[{{"RuleID":"r","Secret":"x","StartLine":"{SECRET}"}}]"#);
    let err = parse(wrong.as_bytes(), Some(LeakFormat::Gitleaks)).expect_err("wrong type");
    assert!(!err.to_string().contains("wJalr"), "{err}");
    assert!(err.to_string().contains("invalid type"), "{err}");
    // A plaintext field that is a number: refused without showing it.
    let number = r#"[{"RuleID":"r","Secret":4111111111111111,"StartLine":1}]"#;
    let err = parse(number.as_bytes(), Some(LeakFormat::Gitleaks)).expect_err("number");
    assert!(!err.to_string().contains("4111"), "{err}");
    assert!(err.to_string().contains("not a string"), "{err}");

    // TruffleHog: the line of the bad object.
    let lines =
        format!("{{\"DetectorName\":\"AWS\",\"Raw\":\"{AKID}\"}}\n{{\"DetectorName\": 5}}\n");
    let err = parse(lines.as_bytes(), None).expect_err("bad line");
    assert!(
        matches!(&err, LeakError::Malformed { place, .. } if place.starts_with("2:")),
        "{err}"
    );

    let err = parse(br#"{"hello":"world"}"#, None).expect_err("unknown");
    assert!(matches!(err, LeakError::Unrecognised(_)), "{err}");
    assert!(parse(b"\x00\x01", None).is_err());
}

#[test]
fn quoted_values_are_cut_from_error_messages() {
    assert_eq!(
        formats_unquoted(r#"invalid type: string "AKIA\"X", expected u64"#),
        r#"invalid type: string "…", expected u64"#
    );
    assert_eq!(formats_unquoted(r#"open "abc"#), r#"open "…""#);
    assert_eq!(
        formats_unquoted("invalid type: integer `4111111111111111`, expected a string"),
        "invalid type: integer `…`, expected a string"
    );
}

fn formats_unquoted(text: &str) -> String {
    super::formats::unquoted(text)
}

#[test]
fn known_credentials_are_matched_by_access_key_id_key_id_and_hash_each_once() {
    let mut known = Known::default();
    let aws = ("aws".to_owned(), AKID.to_owned());
    known.access_keys.insert(AKID.to_owned(), vec![aws.clone()]);
    known
        .sha1
        .insert(sha1_hex(AKID.as_bytes()), vec![aws.clone()]);
    known.key_ids.insert(
        "ab".repeat(32),
        vec![("keys".to_owned(), "key:sha256:ab".to_owned())],
    );
    let leak = |indicators: Vec<Indicator>| Leak {
        id: "x".to_owned(),
        format: LeakFormat::Gitleaks,
        detector: "d".to_owned(),
        location: None,
        exposed_at: None,
        indicators,
        dismissed: None,
        candidates: Default::default(),
    };
    // By id and by hash: one match, by the first indicator.
    let both = known.matches(&leak(vec![
        Indicator::AccessKeyId(AKID.to_owned()),
        Indicator::Sha1(sha1_hex(AKID.as_bytes())),
    ]));
    assert_eq!(both.len(), 1);
    assert_eq!(both[0].by, Indicator::AccessKeyId(AKID.to_owned()));
    let hashed = known.matches(&leak(vec![Indicator::Sha1(sha1_hex(AKID.as_bytes()))]));
    assert_eq!(hashed[0].credential_external_id, AKID);
    let key = known.matches(&leak(vec![Indicator::KeyId("ab".repeat(32))]));
    assert_eq!(key[0].source, "keys");
    let none = known.matches(&leak(vec![
        Indicator::AccessKeyId("AKIAZ6EXAMPLE7KEY4XX".to_owned()),
        Indicator::Sha1(sha1_hex(b"other")),
        Indicator::Hmsl("00".repeat(32)),
    ]));
    assert!(none.is_empty());
}

#[test]
fn the_hmsl_hash_is_ggshields() {
    // Vectors from OpenSSL's scrypt (Python `hashlib.scrypt`) with ggshield 1.56.1's parameters
    // (`hash_string`: salt sha256(b"GitGuardian").digest(), n=2048, r=8, p=1, length=32).
    assert_eq!(
        super::hmsl_hex(b"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
        "a2727ef11569043cc925d57a621a7dfc6422357a68c25b80463f5666f3bac778"
    );
    assert_eq!(
        super::hmsl_hex(b"AKIAIOSFODNN7EXAMPLE"),
        "495e16db667d3649f7d7151d75aecf681cb280220cf139f4037137778b2ae818"
    );
}

#[test]
fn a_value_no_indicator_identifies_is_held_as_a_secret_for_its_source_to_identify() {
    let token = "s.9fQm2LrT4pXa7KzWcVb3NdYe.AbCdE";
    let report = format!(
        r#"[{{"RuleID":"vault-service-token","File":"ci.sh","StartLine":3,"Secret":{}}},
            {{"RuleID":"aws-access-token","File":"ci.sh","StartLine":4,"Secret":"{AKID}"}},
            {{"RuleID":"generic-api-key","File":"ci.sh","StartLine":5,"Secret":"REDACTED"}}]"#,
        json_string(token)
    );
    let (_, leaks) = parse(report.as_bytes(), Some(LeakFormat::Gitleaks)).expect("parse");
    assert!(leaks[0].indicators.is_empty());
    let held: Vec<&str> = leaks[0].candidates.0.iter().map(|it| it.expose()).collect();
    assert_eq!(held, [token]);
    assert!(
        leaks[1].candidates.0.is_empty(),
        "an access key id is an indicator, not asked of the sources"
    );
    assert!(
        leaks[2].candidates.0.is_empty(),
        "a redacted report holds nothing"
    );
    let shown = format!("{leaks:?} {}", serde_json::to_string(&leaks).expect("json"));
    assert!(!shown.contains("9fQm2LrT4pXa7KzW"), "{shown}");
}
