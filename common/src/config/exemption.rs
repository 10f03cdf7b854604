//! `[[exemptions]]`: automation bound to an SSH key (issue #16). A login of `user` that sshd says
//! authenticated with a listed key needs no code, when the caller that reports it is root or a
//! trusted caller.

use std::collections::BTreeSet;

use toml::Spanned;

use super::check;
use super::error::Invalid;
use super::raw::{RawExemption, Text};

/// Length of the base64 part of a SHA256 fingerprint: 32 bytes, unpadded.
const SHA256_BASE64_LEN: usize = 43;

/// One validated `[[exemptions]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exemption {
    /// The user name this exemption is for (exactly; no globs, an exemption names an account).
    pub user: String,
    /// `SHA256:...` fingerprints as `ssh-keygen -lf` prints them.
    pub ssh_key_fingerprints: BTreeSet<String>,
}

impl Exemption {
    pub(super) fn from_raw(raw: &Spanned<RawExemption>) -> Result<Exemption, Invalid> {
        let entry = raw.get_ref();
        let Some(user) = &entry.user else {
            return Err(Invalid::new(
                raw.span(),
                "this exemption has no user; add user = \"NAME\"",
            ));
        };
        let user = check::account_name("user", user.get_ref(), user.span())?;
        let Some(list) = &entry.ssh_key_fingerprints else {
            return Err(Invalid::new(
                raw.span(),
                "this exemption has no ssh_key_fingerprints; list the keys as ssh-keygen -lf prints them, e.g. [\"SHA256:...\"]",
            ));
        };
        if list.get_ref().is_empty() {
            return Err(Invalid::new(
                list.span(),
                "ssh_key_fingerprints is empty and would exempt nothing; list keys, or remove the exemption",
            ));
        }
        let ssh_key_fingerprints = list
            .get_ref()
            .iter()
            .map(fingerprint)
            .collect::<Result<_, _>>()?;
        Ok(Exemption {
            user,
            ssh_key_fingerprints,
        })
    }
}

/// `SHA256:` and 43 characters of unpadded standard base64 whose last character carries no
/// bits past the 32 bytes (so each digest has exactly one spelling).
fn fingerprint(text: &Text) -> Result<String, Invalid> {
    let value = text.get_ref();
    let wrong = |why: &str| {
        Invalid::new(
            text.span(),
            format!(
                "{value:?} is not an SSH key fingerprint: {why}; write it as ssh-keygen -lf prints it, e.g. \"SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s\""
            ),
        )
    };
    let Some(digest) = value.strip_prefix("SHA256:") else {
        if value.starts_with("MD5:") || value.contains(':') && !value.contains(' ') {
            return Err(wrong("only SHA256 fingerprints are accepted"));
        }
        return Err(wrong("it must start with SHA256:"));
    };
    if digest.len() != SHA256_BASE64_LEN {
        return Err(wrong(&format!(
            "the part after SHA256: must be {SHA256_BASE64_LEN} base64 characters, got {}",
            digest.len()
        )));
    }
    let base64 = |c: char| c.is_ascii_alphanumeric() || c == '+' || c == '/';
    if !digest.chars().all(base64) {
        return Err(wrong(
            "the part after SHA256: must be base64 (A-Z a-z 0-9 + /)",
        ));
    }
    // 43 characters carry 258 bits; the last character's low 2 bits must be zero.
    let last_ok = digest
        .chars()
        .last()
        .is_some_and(|c| "AEIMQUYcgkosw048".contains(c));
    if !last_ok {
        return Err(wrong(
            "its last character is not one a 32-byte digest can end with",
        ));
    }
    Ok(value.clone())
}
