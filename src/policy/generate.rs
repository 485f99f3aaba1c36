//! `enforce.generate`: the value keywarden makes when it rotates a secret whose value it owns (a
//! Vault KV v2 secret): which field, how long, from which characters. The value is drawn when the
//! rotation writes it (`actions::rotate_kv`), never here: this module only describes it.

use serde::{Deserialize, Serialize};

/// The least strength a generated value may have, in bits.
pub const MIN_BITS: f64 = 128.0;

/// How a rotated secret's new value is made.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Generator {
    /// The secret's field that gets the new value; its other fields are kept as they are.
    pub field: String,
    /// How many characters.
    pub length: u32,
    /// The characters it is drawn from, each equally likely (no repeats).
    pub characters: String,
}

/// The named character sets of `alphabet:`.
pub const ALPHABETS: &[(&str, &str)] = &[
    (
        "alphanumeric",
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
    ),
    ("hex", "0123456789abcdef"),
    (
        "base64url",
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
    ),
    (
        "printable",
        "!\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~",
    ),
];

impl Generator {
    /// The strength of a value it makes, in bits.
    pub fn bits(&self) -> f64 {
        let n = self.characters.chars().count().max(1) as f64;
        f64::from(self.length) * n.log2()
    }

    /// Why a generator would make weak or unusable values, if it would.
    pub fn problem(&self) -> Option<String> {
        let mut seen = std::collections::BTreeSet::new();
        if self.characters.chars().any(|it| !seen.insert(it)) {
            return Some(
                "`characters` lists a character twice (it would be drawn more often)".to_owned(),
            );
        }
        if seen.len() < 2 {
            return Some("`characters` needs at least two different characters".to_owned());
        }
        // Spaces, control, format (zero-width, bidi) and combining characters, and anything
        // outside ASCII, may be stripped or normalised by whoever reads the value: counted as
        // full symbols, they would overstate its strength.
        if let Some(bad) = self.characters.chars().find(|it| !it.is_ascii_graphic()) {
            return Some(format!(
                "`characters` must be printable ASCII other than space (`!` to `~`); it holds \
                 U+{:04X}",
                u32::from(bad)
            ));
        }
        if self.bits() < MIN_BITS {
            return Some(format!(
                "{} characters from a set of {} make {:.0} bits; at least {MIN_BITS:.0} are needed \
                 (make `length` longer)",
                self.length,
                seen.len(),
                self.bits()
            ));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generator(length: u32, characters: &str) -> Generator {
        Generator {
            field: "password".to_owned(),
            length,
            characters: characters.to_owned(),
        }
    }

    #[test]
    fn weak_or_biased_generators_are_refused() {
        let alnum = ALPHABETS[0].1;
        assert_eq!(generator(22, alnum).problem(), None, "22 × 5.95 bits");
        assert!(
            generator(21, alnum)
                .problem()
                .expect("weak")
                .contains("125 bits")
        );
        assert!(
            generator(64, "aab")
                .problem()
                .expect("twice")
                .contains("twice")
        );
        assert!(
            generator(200, "a")
                .problem()
                .expect("one")
                .contains("two different")
        );
        for (bad, code) in [
            ("ab\n", "U+000A"),
            ("ab c", "U+0020"),
            ("ab\u{200B}", "U+200B"),
            ("abe\u{301}", "U+0301"),
            ("abé", "U+00E9"),
        ] {
            let problem = generator(200, bad).problem().expect("refused");
            assert!(problem.contains(code), "{bad:?}: {problem}");
        }
        assert_eq!(
            generator(32, ALPHABETS[1].1).problem(),
            None,
            "32 hex digits: 128 bits"
        );
    }

    #[test]
    fn named_alphabets_hold_no_character_twice() {
        for (name, characters) in ALPHABETS {
            assert_eq!(generator(200, characters).problem(), None, "{name}");
        }
    }
}
