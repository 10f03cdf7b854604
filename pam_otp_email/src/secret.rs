//! Bytes that must not leak: what a person typed, or a password with a code appended.
//!
//! A password is not ours to interpret: it need not be UTF-8, and it goes on to the password
//! module byte for byte. So the conversation and PAM_AUTHTOK are read into this type, and only a
//! code (which must be text) becomes a [`SecretString`].

use common::secret::SecretString;
use zeroize::Zeroize;

/// Owned secret bytes, wiped when dropped, redacted in `Debug`.
#[derive(Clone, Default)]
pub struct SecretBytes(Vec<u8>);

impl SecretBytes {
    /// Copies `bytes`; the caller wipes its own copy if it owns one.
    pub fn from_slice(bytes: &[u8]) -> Self {
        SecretBytes(bytes.to_vec())
    }

    /// The secret itself; callers must not log or persist it.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Length in bytes, so callers can bound input without looking at it.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when nothing was typed.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The same secret as text, when it is UTF-8 (a code must be; a password need not).
    pub fn to_secret_string(&self) -> Option<SecretString> {
        let text = std::str::from_utf8(&self.0).ok()?;
        Some(SecretString::new(text.to_owned()))
    }
}

impl std::fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl Drop for SecretBytes {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_bytes() {
        let secret = SecretBytes::from_slice(b"hunter2");
        assert_eq!(format!("{secret:?}"), "[redacted]");
    }

    #[test]
    fn only_utf8_becomes_a_string() {
        let text = SecretBytes::from_slice("pässword".as_bytes());
        assert_eq!(text.to_secret_string().unwrap().expose(), "pässword");
        let latin1 = SecretBytes::from_slice(b"p\xe4ssword");
        assert!(latin1.to_secret_string().is_none());
        assert_eq!(latin1.len(), 8);
        assert!(!latin1.is_empty());
        assert!(SecretBytes::default().is_empty());
    }
}
