//! Checks shared by the sections: numbers in a range, protocol names, paths, account names.
//!
//! Each check takes the spanned raw value and returns either the typed value or an [`Invalid`]
//! pointing at it, with a message that says what is allowed.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use toml::Spanned;

use super::address::is_dns_label;
use super::error::Invalid;
use super::raw::{Int, Text};
use crate::service::Protocol;
use crate::text::MAX_FIELD_LEN;

/// The longest Unix socket path: `sun_path` holds 108 bytes including the terminating NUL.
const MAX_SOCKET_PATH: usize = 107;

/// The longest name of a mail server or profile; they appear in logs and audit rows.
const MAX_LABEL_LEN: usize = 64;

/// An integer key that must lie in `min..=max`.
pub(super) fn number<T: TryFrom<i64>>(
    key: &str,
    value: &Int,
    min: i64,
    max: i64,
) -> Result<T, Invalid> {
    in_range(key, value, min, max, "")
}

/// A cap (a count that limits something) in `min..=max`. Zero is refused like any other
/// out-of-range value, and the message says so, because elsewhere 0 often means "unlimited".
pub(super) fn cap<T: TryFrom<i64>>(
    key: &str,
    value: &Int,
    min: i64,
    max: i64,
) -> Result<T, Invalid> {
    let note = if *value.get_ref() == 0 {
        " (0 does not mean unlimited)"
    } else {
        ""
    };
    in_range(key, value, min, max, note)
}

fn in_range<T: TryFrom<i64>>(
    key: &str,
    value: &Int,
    min: i64,
    max: i64,
    note: &str,
) -> Result<T, Invalid> {
    let got = *value.get_ref();
    let out_of_range = || {
        Invalid::new(
            value.span(),
            format!("{key} must be between {min} and {max}, got {got}{note}"),
        )
    };
    if !(min..=max).contains(&got) {
        return Err(out_of_range());
    }
    T::try_from(got).map_err(|_| out_of_range())
}

/// A number of seconds, minutes or days in `min..=max`, as a [`Duration`] of `unit` each.
pub(super) fn duration(
    key: &str,
    value: &Int,
    min: i64,
    max: i64,
    unit: Duration,
) -> Result<Duration, Invalid> {
    let count: u32 = number(key, value, min, max)?;
    Ok(unit * count)
}

/// Seconds in a minute and a day, for [`duration`].
pub(super) const SECOND: Duration = Duration::from_secs(1);
/// Seconds in a minute.
pub(super) const MINUTE: Duration = Duration::from_secs(60);
/// Seconds in a day.
pub(super) const DAY: Duration = Duration::from_secs(86_400);

/// A protocol name; the set is closed so that a typo cannot silently protect nothing.
pub(super) fn protocol(value: &Text) -> Result<Protocol, Invalid> {
    Protocol::parse(value.get_ref()).ok_or_else(|| {
        let known: Vec<&str> = Protocol::ALL.iter().map(|p| p.as_str()).collect();
        Invalid::new(
            value.span(),
            format!(
                "unknown protocol {:?}; the protocols are {}",
                value.get_ref(),
                known.join(", ")
            ),
        )
    })
}

/// An absolute path without control characters (a NUL would cut it short at the system call).
pub(super) fn absolute_path(key: &str, value: &Text) -> Result<PathBuf, Invalid> {
    let path = value.get_ref();
    if !path.starts_with('/') {
        return Err(Invalid::new(
            value.span(),
            format!("{key} must be an absolute path (starting with /), got {path:?}"),
        ));
    }
    if path.chars().any(char::is_control) {
        return Err(Invalid::new(
            value.span(),
            format!("{key} must not contain control characters, got {path:?}"),
        ));
    }
    Ok(PathBuf::from(path))
}

/// The daemon's socket path: absolute, and short enough for `sun_path`, which would otherwise
/// only fail when the daemon binds.
pub(super) fn socket_path(value: &Text) -> Result<PathBuf, Invalid> {
    let path = absolute_path("socket", value)?;
    let len = value.get_ref().len();
    if len > MAX_SOCKET_PATH {
        return Err(Invalid::new(
            value.span(),
            format!(
                "socket path is {len} bytes long; a Unix socket path can be at most {MAX_SOCKET_PATH}"
            ),
        ));
    }
    Ok(path)
}

/// A user or group name as the system knows it. Deliberately loose about the characters (names
/// from a directory service may hold dots, `@` or a backslash) but refuses what can never be in
/// one: nothing, whitespace, control characters and `:`, the `/etc/passwd` separator.
pub(super) fn account_name(
    what: &str,
    name: &str,
    span: std::ops::Range<usize>,
) -> Result<String, Invalid> {
    let bad = name.is_empty()
        || name.chars().count() > MAX_FIELD_LEN
        || name
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == ':');
    if bad {
        return Err(Invalid::new(
            span,
            format!(
                "{what} must be a user or group name of 1 to {MAX_FIELD_LEN} characters without spaces, control characters or ':', got {name:?}"
            ),
        ));
    }
    Ok(name.to_string())
}

/// A name we give things ourselves (a mail server, a profile): 1 to 64 of `A-Z a-z 0-9 _ . -`,
/// so it can be written into logs and audit rows as is.
pub(super) fn label(what: &str, value: &Spanned<String>) -> Result<String, Invalid> {
    let name = value.get_ref();
    let ok = (1..=MAX_LABEL_LEN).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if !ok {
        return Err(Invalid::new(
            value.span(),
            format!(
                "{what} must be 1 to {MAX_LABEL_LEN} characters of A-Z, a-z, 0-9, '_', '.' and '-', got {name:?}"
            ),
        ));
    }
    Ok(name.clone())
}

/// A host name (DNS labels, no trailing dot) or an IP address without brackets.
pub(super) fn host(key: &str, value: &Text) -> Result<String, Invalid> {
    let host = value.get_ref();
    let is_name = host.len() <= 253 && host.split('.').all(is_dns_label);
    if is_name || host.parse::<IpAddr>().is_ok() {
        Ok(host.clone())
    } else {
        Err(Invalid::new(
            value.span(),
            format!(
                "{key} must be a host name (letters, digits, '-' and dots) or an IP address without brackets, got {host:?}"
            ),
        ))
    }
}

/// Hosts where a plain connection (SMTP, LDAP) never leaves the machine.
pub(super) fn is_loopback(host: &str) -> bool {
    match host.parse::<IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => host.eq_ignore_ascii_case("localhost"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn int(v: i64) -> Int {
        // Spans are irrelevant to these checks' results; deserialize gives us a real one.
        #[derive(serde::Deserialize)]
        struct W {
            v: Int,
        }
        toml::from_str::<W>(&format!("v = {v}")).unwrap().v
    }

    fn text(v: &str) -> Text {
        #[derive(serde::Deserialize)]
        struct W {
            v: Text,
        }
        toml::from_str::<W>(&format!("v = {v:?}")).unwrap().v
    }

    #[test]
    fn numbers_outside_the_range_name_the_range_and_the_value() {
        let e = number::<u32>("valid_minutes", &int(90), 1, 60).unwrap_err();
        assert_eq!(e.message, "valid_minutes must be between 1 and 60, got 90");
        assert_eq!(e.span, 4..6);
        assert_eq!(number::<u32>("valid_minutes", &int(60), 1, 60).unwrap(), 60);
        assert!(number::<u8>("code_length", &int(-1), 0, 10).is_err());
    }

    #[test]
    fn a_zero_cap_says_zero_is_not_unlimited() {
        let e = cap::<u32>("max_sends_per_hour", &int(0), 1, 1000).unwrap_err();
        assert_eq!(
            e.message,
            "max_sends_per_hour must be between 1 and 1000, got 0 (0 does not mean unlimited)"
        );
    }

    #[test]
    fn durations_scale_by_their_unit() {
        assert_eq!(
            duration("lockout_minutes", &int(15), 1, 1440, MINUTE).unwrap(),
            Duration::from_secs(900)
        );
    }

    #[test]
    fn paths_must_be_absolute_and_sockets_short() {
        assert!(absolute_path("state_dir", &text("var/lib/otpd")).is_err());
        assert!(absolute_path("state_dir", &text("/var/lib/otpd\n")).is_err());
        assert!(socket_path(&text(&format!("/{}", "s".repeat(106)))).is_ok());
        assert!(socket_path(&text(&format!("/{}", "s".repeat(107)))).is_err());
    }

    #[test]
    fn account_names_refuse_spaces_colons_and_controls() {
        assert!(account_name("g", "wheel", 0..0).is_ok());
        assert!(account_name("g", "DOMAIN\\bob", 0..0).is_ok());
        for bad in ["", "a b", "a:b", "a\nb", "a\u{0}"] {
            assert!(account_name("g", bad, 0..0).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn labels_are_short_and_plain() {
        assert!(label("name", &text("relay-1.example_a")).is_ok());
        assert!(label("name", &text("")).is_err());
        assert!(label("name", &text("a b")).is_err());
        assert!(label("name", &text(&"a".repeat(65))).is_err());
    }
}
