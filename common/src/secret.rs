//! A string that holds a secret (a one-time code): zeroized on drop, never printed.

use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use zeroize::Zeroize;

/// A secret string such as a one-time code. Its `Debug` is redacted so a request can be
/// logged whole without leaking the code, and its memory is wiped when it is dropped.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretString(String);

impl SecretString {
    /// Wraps a string that must not be logged.
    pub fn new(value: String) -> Self {
        Self(value)
    }

    /// The secret itself; callers must not log or persist it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Length in bytes, so callers can bound input without exposing it.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when nothing was typed.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Compares in time independent of where the first difference is.
    pub fn ct_eq(&self, other: &str) -> bool {
        self.0.as_bytes().ct_eq(other.as_bytes()).into()
    }
}

/// Equal when the texts are, compared in constant time, so answers holding codes can be compared
/// in tests without exposing them.
impl PartialEq for SecretString {
    fn eq(&self, other: &Self) -> bool {
        self.ct_eq(other.expose())
    }
}

impl Eq for SecretString {}

impl std::fmt::Debug for SecretString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl Drop for SecretString {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_secret() {
        let s = SecretString::new("123456".into());
        assert_eq!(format!("{s:?}"), "[redacted]");
    }

    #[test]
    fn compares_equal_only_for_the_same_text() {
        let s = SecretString::new("123456".into());
        assert!(s.ct_eq("123456"));
        assert!(!s.ct_eq("123457"));
        assert!(!s.ct_eq("12345"));
    }
}
