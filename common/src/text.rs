//! Untrusted text (user names, remote hosts, service names) made safe to log and to mail.

/// The longest user name, remote host, service or tty otpd accepts; longer ones are refused.
pub const MAX_FIELD_LEN: usize = 256;

/// Escapes control characters (and backslashes) so a log line stays one line and cannot be
/// forged: `a\nb` becomes `a\x0ab`.
pub fn escape_for_log(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for ch in value.chars() {
        if ch == '\\' {
            out.push_str("\\\\");
        } else if ch.is_control() {
            for unit in ch.to_string().bytes() {
                out.push_str(&format!("\\x{unit:02x}"));
            }
        } else {
            out.push(ch);
        }
    }
    out
}

/// Removes control characters and caps the length (in characters), for text that goes into a
/// mail body or subject.
pub fn strip_for_mail(value: &str, max_chars: usize) -> String {
    value
        .chars()
        .filter(|c| !c.is_control())
        .take(max_chars)
        .collect()
}

/// Masks an address for display: `alice@example.com` becomes `a***@e***.com`. The full address
/// is never shown to the person at the prompt.
pub fn mask_email(address: &str) -> String {
    let Some((local, domain)) = address.rsplit_once('@') else {
        return "***".to_string();
    };
    let first = |s: &str| s.chars().next().map(String::from).unwrap_or_default();
    let (host, tld) = match domain.rsplit_once('.') {
        Some((host, tld)) => (host, format!(".{tld}")),
        None => (domain, String::new()),
    };
    format!("{}***@{}***{}", first(local), first(host), tld)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_escape_keeps_one_line() {
        assert_eq!(escape_for_log("a\nb\r\\"), "a\\x0ab\\x0d\\\\");
        assert_eq!(escape_for_log("bob"), "bob");
    }

    #[test]
    fn mail_strip_removes_controls_and_caps() {
        assert_eq!(strip_for_mail("x\r\n.\r\nMAIL FROM:", 100), "x.MAIL FROM:");
        assert_eq!(strip_for_mail("abcdef", 3), "abc");
    }

    #[test]
    fn masks_address() {
        assert_eq!(mask_email("alice@example.com"), "a***@e***.com");
        assert_eq!(mask_email("b@localhost"), "b***@l***");
        assert_eq!(mask_email("nonsense"), "***");
    }
}
