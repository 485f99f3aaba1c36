//! Errors in user-written files (config, policies), each naming file:line:column.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde_saphyr::MessageFormatter;

/// One problem in a user-written file, at a place a person can jump to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    /// 1-based; 0 when the place is unknown (then only the file is named).
    pub line: u64,
    /// 1-based; 0 when unknown.
    pub column: u64,
    /// What is wrong and what was expected, without the location.
    pub message: String,
}

impl Diagnostic {
    /// A problem at a YAML location.
    pub fn at(file: &Path, location: &serde_saphyr::Location, message: impl Into<String>) -> Self {
        Self {
            file: file.to_owned(),
            line: location.line(),
            column: location.column(),
            message: message.into(),
        }
    }

    /// A problem with the file as a whole (it cannot be read, it is empty).
    pub fn file(file: &Path, message: impl Into<String>) -> Self {
        Self {
            file: file.to_owned(),
            line: 0,
            column: 0,
            message: message.into(),
        }
    }

    /// Turns a YAML deserialization error into a diagnostic at its location.
    pub fn from_yaml(file: &Path, err: &serde_saphyr::Error) -> Self {
        let message = serde_saphyr::DefaultMessageFormatter
            .format_message(err)
            .escape_debug()
            .to_string();
        match err.location() {
            Some(location) if location.line() > 0 => Self::at(file, &location, message),
            _ => Self::file(file, message),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.file.display(),
                self.line,
                self.column,
                self.message
            )
        }
    }
}

impl std::error::Error for Diagnostic {}

/// Several diagnostics, reported together.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (idx, diagnostic) in self.0.iter().enumerate() {
            if idx > 0 {
                writeln!(f)?;
            }
            write!(f, "{diagnostic}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

/// Deserializes YAML text read from `file`, naming the place of the first structural error.
///
/// Documents are parsed with snippets off, duplicate keys rejected and unknown tags refused; unknown
/// fields are refused by the target types (`deny_unknown_fields`).
pub fn parse_yaml<T: DeserializeOwned>(file: &Path, text: &str) -> Result<T, Diagnostic> {
    let options = serde_saphyr::options! {
        with_snippet: false,
        reject_unsupported_tags: true,
    };
    serde_saphyr::from_str_with_options(text, options)
        .map_err(|err| Diagnostic::from_yaml(file, &err))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Sample {
        name: String,
        count: u32,
    }

    #[test]
    fn unknown_field_names_line_and_column() {
        let err = parse_yaml::<Sample>(Path::new("x.yaml"), "name: a\ncount: 1\ncolour: red\n")
            .unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("x.yaml:3:1: "), "{text}");
        assert!(text.contains("colour"), "{text}");
    }

    #[test]
    fn wrong_type_names_the_value() {
        let err = parse_yaml::<Sample>(Path::new("x.yaml"), "name: a\ncount: many\n").unwrap_err();
        assert_eq!((err.line, err.column), (2, 8), "{err}");
    }
}
