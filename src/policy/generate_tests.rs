//! `enforce.generate`: parsed into a generator, and each mistake reported at its place.

use std::path::Path;

use super::generate::ALPHABETS;
use super::*;

fn policy(generate: &str) -> String {
    format!(
        "policies:\n  - id: kv\n    severity: high\n    mode: enforce\n    select:\n      kinds: \
         [kv_secret]\n    when:\n      age_over: 90d\n    actions: [rotate]\n    enforce:\n      \
         generate:\n{generate}"
    )
}

fn errors(text: &str) -> Vec<String> {
    match parse_str(Path::new("t.yaml"), text) {
        Ok(policies) => panic!("expected errors, parsed {policies:?}"),
        Err(Diagnostics(diagnostics)) => diagnostics.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn a_generator_is_read_with_its_alphabet() {
    let set = parse_str(
        Path::new("t.yaml"),
        &policy("        field: password\n        length: 40\n        alphabet: hex\n"),
    )
    .expect("valid");
    let generate = set[0].enforce.generate.as_ref().expect("generate");
    assert_eq!(generate.field, "password");
    assert_eq!(generate.length, 40);
    assert_eq!(generate.characters, ALPHABETS[1].1);
    let custom = parse_str(
        Path::new("t.yaml"),
        &policy("        field: pin\n        length: 60\n        characters: \"0123456789\"\n"),
    )
    .expect("valid");
    let generate = custom[0].enforce.generate.as_ref().expect("generate");
    assert_eq!(generate.characters, "0123456789");
    let default = parse_str(
        Path::new("t.yaml"),
        &policy("        field: token\n        length: 32\n"),
    )
    .expect("valid");
    assert_eq!(
        default[0]
            .enforce
            .generate
            .as_ref()
            .expect("generate")
            .characters,
        ALPHABETS[0].1,
        "alphanumeric unless said"
    );
}

#[test]
fn each_mistake_names_its_line_and_column() {
    let cases: [(&str, &str); 7] = [
        (
            "        field: password\n        length: 12\n",
            "t.yaml:12:9: `generate`: 12 characters from a set of 62 make 71 bits",
        ),
        (
            "        field: password\n        length: 40\n        alphabet: emoji\n",
            "t.yaml:14:19: unknown alphabet `emoji`, expected one of: alphanumeric, hex",
        ),
        (
            "        length: 40\n",
            "t.yaml:12:9: missing field `field` in `generate`",
        ),
        (
            "        field: password\n        length: 5000\n",
            "t.yaml:13:17: invalid `length` `5000`: expected a whole number from 8 to 4096",
        ),
        (
            "        field: password\n        length: 40\n        alphabet: hex\n        characters: ab\n",
            "t.yaml:15:21: give either `alphabet` or `characters`, not both",
        ),
        (
            "        field: password\n        length: 40\n        characters: \"ab\\u200Bcdefgh\"\n",
            "t.yaml:12:9: `generate`: `characters` must be printable ASCII other than space (`!` to `~`); it holds U+200B",
        ),
        (
            "        field: password\n        length: 40\n        colour: red\n",
            "t.yaml:14:9: unknown field `colour` in `generate`, expected one of: field, length",
        ),
    ];
    for (generate, expected) in cases {
        let got = errors(&policy(generate));
        assert!(
            got.len() == 1 && got[0].starts_with(expected),
            "{generate}\nexpected {expected}\ngot {got:#?}"
        );
    }
}
