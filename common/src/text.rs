//! Untrusted text (user names, remote hosts, service names) made safe to log and to mail.

/// The longest user name, remote host, service or tty otpd accepts; longer ones are refused.
pub const MAX_FIELD_LEN: usize = 256;

/// Makes outside text (user names, hosts, services, request errors, SMTP replies, paths) safe
/// to put in a log line. Every text otpd or the module logs goes through this one function, so
/// the rule lives in one place: whatever the input, the output
///
/// - cannot end the line or start another: CR, LF, NUL, every other control character (C0, DEL,
///   C1 with NEL) and the Unicode line and paragraph separators (U+2028, U+2029) are escaped,
///   so a parser reading one event per line sees exactly one;
/// - cannot disguise the line on a terminal or in a viewer: ESC (terminal sequences), bidi
///   controls (U+202A..U+202E, U+2066..U+2069, LRM/RLM/ALM), zero-width and other invisible
///   format characters and non-ASCII spaces are escaped;
/// - cannot add a `key=value` pair: `=` is escaped, so outside text can never contain
///   `event=` or `rhost=`, even where a naive filter searches the whole line;
/// - is unambiguous: `\` is written `\\`.
///
/// ASCII characters are written `\xNN` (`a\nb` becomes `a\x0ab`), others `\u{NNNN}`.
pub fn escape_for_log(value: &str) -> String {
    escape(value, true)
}

/// [`escape_for_log`] for a value shown in a table on a terminal (otpctl), where `=` adds no
/// key: everything else that could end, hide or reorder the text is escaped the same way.
pub fn escape_for_terminal(value: &str) -> String {
    escape(value, false)
}

fn escape(value: &str, equals: bool) -> String {
    let mut out = String::with_capacity(value.len());
    for ch in value.chars() {
        if ch == '\\' {
            out.push_str("\\\\");
        } else if (equals && ch == '=') || (ch.is_ascii() && ch.is_ascii_control()) {
            out.push_str(&format!("\\x{:02x}", u32::from(ch)));
        } else if is_hidden_or_breaking(ch) {
            out.push_str(&format!("\\u{{{:04x}}}", u32::from(ch)));
        } else {
            out.push(ch);
        }
    }
    out
}

/// True when `line` holds a character [`escape_for_log`] would escape because it can break or
/// disguise a line (not merely `=` or `\\`). The logger checks every finished line with it.
pub fn breaks_log_line(line: &str) -> bool {
    line.chars()
        .any(|ch| (ch.is_ascii() && ch.is_ascii_control()) || is_hidden_or_breaking(ch))
}

/// Non-ASCII characters that end, hide or reorder text: controls (C1, NEL), Unicode whitespace
/// other than the ASCII space (U+2028, U+2029, no-break and typographic spaces), bidi controls,
/// and invisible format characters (zero-width, word joiner, BOM, interlinear annotation).
fn is_hidden_or_breaking(ch: char) -> bool {
    if ch.is_ascii() {
        return false;
    }
    ch.is_control()
        || ch.is_whitespace()
        || matches!(
            ch,
            '\u{061c}'
                | '\u{180e}'
                | '\u{200b}'..='\u{200f}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2060}'..='\u{206f}'
                | '\u{feff}'
                | '\u{fff9}'..='\u{fffb}'
        )
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
    fn every_line_breaking_or_hiding_character_is_escaped() {
        let cases = [
            ("\r", "\\x0d"),
            ("\n", "\\x0a"),
            ("\x1b", "\\x1b"),
            ("\0", "\\x00"),
            ("\x7f", "\\x7f"),
            ("\u{85}", "\\u{0085}"),
            ("\u{2028}", "\\u{2028}"),
            ("\u{2029}", "\\u{2029}"),
            ("\u{202e}", "\\u{202e}"),
            ("\u{2066}", "\\u{2066}"),
            ("\u{200f}", "\\u{200f}"),
            ("\u{200b}", "\\u{200b}"),
            ("\u{feff}", "\\u{feff}"),
            ("\u{a0}", "\\u{00a0}"),
            ("\u{3000}", "\\u{3000}"),
            ("\u{0b}", "\\x0b"),
            ("\u{0c}", "\\x0c"),
        ];
        for (raw, escaped) in cases {
            assert_eq!(escape_for_log(raw), escaped, "{raw:?}");
            assert!(breaks_log_line(raw), "{raw:?}");
            assert!(!breaks_log_line(&escape_for_log(raw)), "{raw:?}");
        }
    }

    #[test]
    fn outside_text_cannot_add_a_key_value_pair() {
        assert_eq!(
            escape_for_log("x event=verified rhost=1.2.3.4"),
            "x event\\x3dverified rhost\\x3d1.2.3.4"
        );
        assert!(!breaks_log_line("a=b c\\d"), "= and \\ do not break a line");
    }

    #[test]
    fn on_a_terminal_equals_signs_stay_and_line_breaks_are_still_escaped() {
        assert_eq!(
            escape_for_terminal("attempts_left=2\nfake\u{2028}"),
            "attempts_left=2\\x0afake\\u{2028}"
        );
    }

    #[test]
    fn ordinary_text_and_letters_are_kept() {
        for text in [
            "user not found: 550 5.1.1",
            "Jürgen Ødegård",
            "東京",
            "/etc/otpd/otpd.toml",
        ] {
            assert_eq!(escape_for_log(text), text);
        }
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
