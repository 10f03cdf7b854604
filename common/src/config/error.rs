//! Configuration errors that point at the offending spot, as `FILE:LINE:COLUMN: message`.
//!
//! Editors and `grep`-style tools jump to that form, and an admin reloading otpd on a busy
//! server should not have to hunt for which of three `valid_minutes` is wrong.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use crate::text::escape_for_log;

/// A position in the configuration file: 1-based line and column, the column counted in
/// characters (not bytes) as editors count it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    /// 1-based line number.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
}

impl Location {
    /// The line and column of byte `offset` in `text`. An offset past the end, or inside a
    /// multi-byte character, is moved back to the nearest character start, so a position is
    /// always produced.
    pub(crate) fn of_offset(text: &str, offset: usize) -> Location {
        let mut end = offset.min(text.len());
        while end > 0 && !text.is_char_boundary(end) {
            end -= 1;
        }
        let before = text.get(..end).unwrap_or_default();
        let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
        let line_text = before.get(line_start..).unwrap_or_default();
        Location {
            line: before.matches('\n').count() + 1,
            column: line_text.chars().count() + 1,
        }
    }
}

/// Why a configuration file was refused. `Display` gives `FILE:LINE:COLUMN: message`, or
/// `FILE: message` when the problem has no position (the file could not be read).
#[derive(Debug, Clone)]
pub struct ConfigError {
    path: PathBuf,
    location: Option<Location>,
    message: String,
}

impl ConfigError {
    /// The file the error is about.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where in the file, when the error is about a place in it.
    pub fn location(&self) -> Option<Location> {
        self.location
    }

    /// The explanation alone, without file and position.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The file could not be read at all.
    pub(crate) fn unreadable(path: &Path, error: &std::io::Error) -> ConfigError {
        ConfigError {
            path: path.to_path_buf(),
            location: None,
            message: format!("cannot read the configuration file: {error}"),
        }
    }

    /// A problem found at `invalid.span` in `text`.
    pub(crate) fn at(path: &Path, text: &str, invalid: Invalid) -> ConfigError {
        ConfigError {
            path: path.to_path_buf(),
            location: Some(Location::of_offset(text, invalid.span.start)),
            message: invalid.message,
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The path comes from the command line, but a log line must stay one line.
        let path = escape_for_log(&self.path.display().to_string());
        match self.location {
            Some(at) => write!(f, "{path}:{}:{}: {}", at.line, at.column, self.message),
            None => write!(f, "{path}: {}", self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

/// A problem found while turning the raw file into a [`super::Config`]: what is wrong and the
/// byte span it is about. Turned into a [`ConfigError`] once, where the text is at hand.
#[derive(Debug)]
pub(crate) struct Invalid {
    pub(crate) span: Range<usize>,
    pub(crate) message: String,
}

impl Invalid {
    /// `message` about the bytes at `span`.
    pub(crate) fn new(span: Range<usize>, message: impl Into<String>) -> Invalid {
        Invalid {
            span,
            message: message.into(),
        }
    }
}

impl From<toml::de::Error> for Invalid {
    /// Syntax errors, unknown keys and wrong types, as the TOML parser found them. Its message
    /// may quote the file (a key with a newline in it), so control characters are escaped; an
    /// error without a span is put at the start of the file rather than nowhere.
    fn from(error: toml::de::Error) -> Invalid {
        Invalid {
            span: error.span().unwrap_or(0..0),
            message: in_toml_words(error.message()),
        }
    }
}

/// The parser's message on one line and in TOML's vocabulary: serde speaks of maps, sequences,
/// `i64` and our private struct names, the admin wrote tables, arrays and integers.
fn in_toml_words(message: &str) -> String {
    let one_line = message
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    let mut words = one_line
        .replace("expected i64", "expected an integer")
        .replace("a sequence", "an array")
        .replace("type: sequence", "type: array")
        .replace("a map", "a table")
        .replace("type: map", "type: table")
        // `=` is escaped in every logged text (it could forge a `key=value`); say it in words.
        .replace("`=`", "an equals sign");
    while let Some(start) = words.find("struct Raw") {
        let rest = words.get(start + "struct ".len()..).unwrap_or_default();
        let name_len = rest
            .find(|c: char| !c.is_ascii_alphanumeric())
            .unwrap_or(rest.len());
        words.replace_range(start..start + "struct ".len() + name_len, "a table");
    }
    escape_for_log(&words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_equals_sign_is_named_in_words_not_escaped() {
        assert_eq!(
            in_toml_words("expected `.`, `=`"),
            "expected `.`, an equals sign"
        );
    }

    fn at(line: usize, column: usize) -> Location {
        Location { line, column }
    }

    #[test]
    fn offsets_become_one_based_lines_and_columns() {
        let text = "a = 1\nbb = 2\n";
        assert_eq!(Location::of_offset(text, 0), at(1, 1));
        assert_eq!(Location::of_offset(text, 4), at(1, 5));
        assert_eq!(Location::of_offset(text, 6), at(2, 1));
        assert_eq!(Location::of_offset(text, 11), at(2, 6));
    }

    #[test]
    fn columns_count_characters_not_bytes() {
        let text = "# é\nname = \"ü\" x";
        // "x" is the 12th character of line 2 although "ü" takes two bytes.
        let x = text.rfind('x').unwrap();
        assert_eq!(Location::of_offset(text, x), at(2, 12));
    }

    #[test]
    fn an_offset_past_the_end_or_mid_character_still_gets_a_position() {
        assert_eq!(Location::of_offset("ab\n", 99), at(2, 1));
        assert_eq!(Location::of_offset("é", 1), at(1, 1));
    }

    #[test]
    fn display_is_file_line_column_message() {
        let e = ConfigError::at(
            Path::new("/etc/otpd/otpd.toml"),
            "x\ny = 90",
            Invalid::new(6..8, "valid_minutes must be between 1 and 60, got 90"),
        );
        assert_eq!(
            e.to_string(),
            "/etc/otpd/otpd.toml:2:5: valid_minutes must be between 1 and 60, got 90"
        );
        assert_eq!(e.location(), Some(at(2, 5)));
    }

    #[test]
    fn parser_messages_use_toml_words_on_one_line() {
        let error = |text: &str| {
            #[derive(Debug, serde::Deserialize)]
            struct RawThing {
                #[allow(dead_code)]
                n: Option<i64>,
            }
            #[derive(Debug, serde::Deserialize)]
            struct W {
                #[allow(dead_code)]
                t: Option<RawThing>,
                #[allow(dead_code)]
                v: Option<Vec<i64>>,
            }
            Invalid::from(toml::from_str::<W>(text).unwrap_err()).message
        };
        assert_eq!(
            error("t = 3"),
            "invalid type: integer `3`, expected a table"
        );
        assert_eq!(
            error("[t]\nn = \"1\""),
            "invalid type: string \"1\", expected an integer"
        );
        assert_eq!(
            error("v = 1"),
            "invalid type: integer `1`, expected an array"
        );
        assert!(!error("t = ").contains('\n'));
        assert!(!error("t = ").contains("\\x0a"));
    }

    #[test]
    fn an_unreadable_file_has_no_position() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "gone");
        let e = ConfigError::unreadable(Path::new("/nope.toml"), &io);
        assert_eq!(e.location(), None);
        assert_eq!(
            e.to_string(),
            "/nope.toml: cannot read the configuration file: gone"
        );
    }
}
