//! Email addresses otpd will send a code to or from, checked strictly before any use.
//!
//! An address ends up in SMTP commands and mail headers, so anything that could break out of
//! them (CR, LF, NUL, angle brackets, commas, quotes, backslashes) is refused outright. The
//! accepted form is deliberately narrower than RFC 5321: a dot-atom local part and a domain of
//! plain DNS labels. Quoted local parts, comments, IP literals and non-ASCII are refused; no
//! real login-code mailbox needs them, and each is a classic way to confuse a mail parser.

use std::fmt;
use std::str::FromStr;

/// The longest address accepted (RFC 5321's forward-path limit, less the angle brackets).
pub const MAX_ADDRESS_LEN: usize = 254;
/// The longest local part (before the `@`) accepted (RFC 5321).
pub const MAX_LOCAL_LEN: usize = 64;
/// The longest domain label (RFC 1035).
const MAX_LABEL_LEN: usize = 63;

/// Why a text is not an address otpd accepts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// Nothing was given.
    #[error("the address is empty")]
    Empty,
    /// Longer than [`MAX_ADDRESS_LEN`] bytes.
    #[error("the address is {0} characters long; at most {MAX_ADDRESS_LEN} are allowed")]
    TooLong(usize),
    /// A character that is never allowed (control, space, quote, bracket, comma, backslash,
    /// non-ASCII), shown escaped.
    #[error("the address contains {0:?}, which is not allowed in an address")]
    ForbiddenChar(char),
    /// No `@`, or more than one.
    #[error("the address must contain exactly one '@'")]
    NotOneAt,
    /// Nothing before the `@`.
    #[error("the part before '@' is empty")]
    EmptyLocal,
    /// The part before the `@` is longer than [`MAX_LOCAL_LEN`].
    #[error("the part before '@' is {0} characters long; at most {MAX_LOCAL_LEN} are allowed")]
    LocalTooLong(usize),
    /// The part before the `@` starts or ends with a dot, or has two in a row.
    #[error("the part before '@' must not start or end with '.' or contain '..'")]
    LocalDots,
    /// The domain is not dot-separated labels of letters, digits and hyphens.
    #[error(
        "the domain must be labels of letters, digits and '-' separated by dots (like mail.example.com), or localhost"
    )]
    BadDomain,
}

/// An email address that passed [`EmailAddress::parse`]: safe to put into an SMTP envelope and
/// a header as is.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EmailAddress(String);

impl EmailAddress {
    /// Checks `text` and wraps it. Surrounding whitespace is not trimmed: an address read from
    /// a file or table with stray spaces is a sign something else is wrong.
    pub fn parse(text: &str) -> Result<EmailAddress, AddressError> {
        if text.is_empty() {
            return Err(AddressError::Empty);
        }
        if let Some(bad) = text.chars().find(|&c| !is_address_char(c)) {
            return Err(AddressError::ForbiddenChar(bad));
        }
        // Every character is ASCII from here on, so bytes and characters agree.
        if text.len() > MAX_ADDRESS_LEN {
            return Err(AddressError::TooLong(text.len()));
        }
        let mut parts = text.split('@');
        let (Some(local), Some(domain), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(AddressError::NotOneAt);
        };
        check_local(local)?;
        check_domain(domain)?;
        Ok(EmailAddress(text.to_string()))
    }

    /// The sender a relay (DMZ) host's unused mail config names: a reserved domain (RFC 2606)
    /// that means nothing if it ever showed. It passes [`EmailAddress::parse`] (tested).
    pub(in crate::config) fn relay_placeholder() -> EmailAddress {
        EmailAddress("otpd@relay.invalid".to_string())
    }

    /// The address as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Characters that may appear anywhere in an accepted address: the RFC 5322 `atext` set, the
/// dot and the `@`. Of `atext` the apostrophe is left out too: quotes of either kind are
/// refused so no consumer has to wonder about quoting.
fn is_address_char(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(
            c,
            '!' | '#'
                | '$'
                | '%'
                | '&'
                | '*'
                | '+'
                | '-'
                | '/'
                | '='
                | '?'
                | '^'
                | '_'
                | '`'
                | '{'
                | '|'
                | '}'
                | '~'
                | '.'
                | '@'
        )
}

fn check_local(local: &str) -> Result<(), AddressError> {
    if local.is_empty() {
        return Err(AddressError::EmptyLocal);
    }
    if local.len() > MAX_LOCAL_LEN {
        return Err(AddressError::LocalTooLong(local.len()));
    }
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return Err(AddressError::LocalDots);
    }
    Ok(())
}

/// `localhost`, or two or more DNS labels of letters, digits and inner hyphens whose last one
/// (the top-level domain) is not all digits, so `user@10.0.0.1` is not mistaken for a name.
fn check_domain(domain: &str) -> Result<(), AddressError> {
    if domain.eq_ignore_ascii_case("localhost") {
        return Ok(());
    }
    let labels: Vec<&str> = domain.split('.').collect();
    let labels_ok = labels.len() >= 2 && labels.iter().all(|label| is_dns_label(label));
    let tld_ok = labels
        .last()
        .is_some_and(|tld| !tld.bytes().all(|b| b.is_ascii_digit()));
    if labels_ok && tld_ok {
        Ok(())
    } else {
        Err(AddressError::BadDomain)
    }
}

/// One DNS label: 1 to 63 letters, digits and hyphens, not starting or ending with a hyphen.
pub(super) fn is_dns_label(label: &str) -> bool {
    (1..=MAX_LABEL_LEN).contains(&label.len())
        && !label.starts_with('-')
        && !label.ends_with('-')
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for EmailAddress {
    type Err = AddressError;

    fn from_str(text: &str) -> Result<EmailAddress, AddressError> {
        EmailAddress::parse(text)
    }
}

impl AsRef<str> for EmailAddress {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_addresses_are_accepted_unchanged() {
        for good in [
            "alice@example.com",
            "first.last+otp@mail.example.co.uk",
            "a_b-c=d@xn--bcher-kva.example",
            "root@localhost",
            "x@a1.b2",
        ] {
            assert_eq!(EmailAddress::parse(good).unwrap().as_str(), good);
        }
    }

    #[test]
    fn header_and_smtp_injection_characters_are_refused() {
        for bad in [
            "a@example.com\r\nBcc: x@evil.example",
            "a@example.com\nx",
            "a\u{0}@example.com",
            "a b@example.com",
            " a@example.com",
            "\"a\"@example.com",
            "o'brien@example.com",
            "<a@example.com>",
            "a@example.com,b@example.com",
            "a\\b@example.com",
            "a\t@example.com",
            "ä@example.com",
            "a@exämple.com",
        ] {
            assert!(
                matches!(
                    EmailAddress::parse(bad),
                    Err(AddressError::ForbiddenChar(_))
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn structure_is_checked() {
        let cases = [
            ("", AddressError::Empty),
            ("alice", AddressError::NotOneAt),
            ("a@b@example.com", AddressError::NotOneAt),
            ("@example.com", AddressError::EmptyLocal),
            (".a@example.com", AddressError::LocalDots),
            ("a.@example.com", AddressError::LocalDots),
            ("a..b@example.com", AddressError::LocalDots),
            ("a@", AddressError::BadDomain),
            ("a@example", AddressError::BadDomain),
            ("a@example..com", AddressError::BadDomain),
            ("a@-example.com", AddressError::BadDomain),
            ("a@example-.com", AddressError::BadDomain),
            ("a@exa_mple.com", AddressError::BadDomain),
            ("a@10.0.0.1", AddressError::BadDomain),
            ("a@example.com.", AddressError::BadDomain),
        ];
        for (text, expected) in cases {
            assert_eq!(EmailAddress::parse(text), Err(expected), "{text:?}");
        }
    }

    #[test]
    fn lengths_are_capped() {
        let local = "a".repeat(64);
        assert!(EmailAddress::parse(&format!("{local}@example.com")).is_ok());
        assert_eq!(
            EmailAddress::parse(&format!("a{local}@example.com")),
            Err(AddressError::LocalTooLong(65))
        );
        let domain = format!("{}.com", vec!["a".repeat(63); 4].join("."));
        let long = format!("a@{domain}");
        assert_eq!(long.len(), 261);
        assert_eq!(EmailAddress::parse(&long), Err(AddressError::TooLong(261)));
        assert!(
            EmailAddress::parse(&format!("a@{}.com", "b".repeat(64))).is_err(),
            "a 64-character label"
        );
    }

    #[test]
    fn error_messages_escape_control_characters() {
        let e = EmailAddress::parse("a\r@example.com").unwrap_err();
        assert_eq!(
            e.to_string(),
            "the address contains '\\r', which is not allowed in an address"
        );
    }
}
