//! The one type a secret value may live in.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};

/// A secret value (an access key secret, a token, a private key).
///
/// `Debug` and `Display` print `[REDACTED]`, the memory is zeroized on drop, and it implements no
/// `Serialize`, so it cannot reach a log line, a database row or an error message by accident.
/// Read it only where it is delivered, with [`Secret::expose`].
pub struct Secret(SecretString);

impl Secret {
    pub fn new(value: String) -> Self {
        Self(SecretString::from(value))
    }

    /// The secret value; call only at the point of delivery.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self::new(value)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([REDACTED])")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_value() {
        let secret = Secret::new("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".to_owned());
        let shown = format!("{secret:?} {secret} {:?}", Some(&secret));
        assert!(!shown.contains("wJalr"), "{shown}");
        assert!(shown.contains("REDACTED"));
        assert_eq!(secret.expose(), "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY");
    }
}
