//! What travels on an SMTP connection as text: replies (RFC 5321 4.2), the EHLO keywords otpd
//! uses, dot-stuffed message bytes and base64 AUTH lines. No I/O here; `smtp_client.rs` speaks
//! the protocol with these.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use zeroize::Zeroizing;

/// A server reply: its code and text lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The three-digit code.
    pub code: u16,
    /// The text of each line, without the code and separator.
    pub lines: Vec<String>,
}

impl Reply {
    /// 2xx and 3xx: the command was taken.
    pub fn is_positive(&self) -> bool {
        (200..400).contains(&self.code)
    }

    /// 4xx: refused for now.
    pub fn is_transient(&self) -> bool {
        (400..500).contains(&self.code)
    }

    /// The reply on one line, as quoted in errors: `553 5.7.1 sender not allowed`.
    pub fn one_line(&self) -> String {
        let text = self.lines.join(" ");
        if text.is_empty() {
            self.code.to_string()
        } else {
            format!("{} {}", self.code, text)
        }
    }
}

/// What the server said it offers in its EHLO reply.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Features {
    /// PIPELINING: commands may be sent in groups.
    pub pipelining: bool,
    /// STARTTLS.
    pub starttls: bool,
    /// AUTH PLAIN.
    pub auth_plain: bool,
    /// AUTH LOGIN.
    pub auth_login: bool,
}

impl Features {
    /// The keywords of an EHLO reply.
    pub fn from_ehlo(reply: &Reply) -> Features {
        let mut features = Features::default();
        // The first line is the server's greeting name; the others are keywords.
        for line in reply.lines.iter().skip(1) {
            let mut words = line.split_ascii_whitespace();
            let keyword = words.next().unwrap_or_default().to_ascii_uppercase();
            match keyword.as_str() {
                "PIPELINING" => features.pipelining = true,
                "STARTTLS" => features.starttls = true,
                "AUTH" => {
                    for mechanism in words {
                        match mechanism.to_ascii_uppercase().as_str() {
                            "PLAIN" => features.auth_plain = true,
                            "LOGIN" => features.auth_login = true,
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        features
    }
}

/// `prefix`, `secret` in base64 and CRLF, in a string wiped on drop and sized up front so no
/// unwiped copy is left by a reallocation.
pub fn secret_line(prefix: &str, secret: &[u8]) -> Zeroizing<String> {
    let mut line = Zeroizing::new(String::with_capacity(
        prefix.len() + secret.len().div_ceil(3) * 4 + 2,
    ));
    line.push_str(prefix);
    BASE64.encode_string(secret, &mut line);
    line.push_str("\r\n");
    line
}

/// Splits `250-text` / `250 text` / `250` into code, whether it is the last line, and text;
/// `None` when the line is no reply line.
pub fn parse_reply_line(line: &str) -> Option<(u16, bool, String)> {
    let bytes = line.as_bytes();
    if bytes.len() < 3 || !bytes[..3].iter().all(u8::is_ascii_digit) {
        return None;
    }
    let code = line[..3].parse().ok()?;
    match bytes.get(3) {
        None => Some((code, true, String::new())),
        Some(b' ') => Some((code, true, line[4..].to_string())),
        Some(b'-') => Some((code, false, line[4..].to_string())),
        Some(_) => None,
    }
}

/// `message` with CRLF line ends and every line that starts with a dot given a second one
/// (RFC 5321 4.5.2), so no line of the message can end the DATA early.
pub fn dot_stuffed(message: &[u8]) -> Zeroizing<Vec<u8>> {
    // At most every byte doubles, and the end of the data (CRLF . CRLF) may follow: sized so
    // the copy (it holds the code) never reallocates.
    let mut out = Zeroizing::new(Vec::with_capacity(message.len() * 2 + 5));
    let mut at_line_start = true;
    let mut previous = 0u8;
    for &byte in message {
        if at_line_start && byte == b'.' {
            out.push(b'.');
        }
        if byte == b'\n' && previous != b'\r' {
            out.push(b'\r');
        }
        out.push(byte);
        at_line_start = byte == b'\n';
        previous = byte;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_lines_parse_and_malformed_ones_are_refused() {
        assert_eq!(
            parse_reply_line("250-PIPELINING").unwrap(),
            (250, false, "PIPELINING".into())
        );
        assert_eq!(
            parse_reply_line("250 ok").unwrap(),
            (250, true, "ok".into())
        );
        assert_eq!(parse_reply_line("354").unwrap(), (354, true, String::new()));
        for bad in ["", "25", "2x0 ok", "250_ok", "abc"] {
            assert!(parse_reply_line(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn ehlo_keywords_become_features() {
        let reply = Reply {
            code: 250,
            lines: vec![
                "mx.example.com greets you".into(),
                "PIPELINING".into(),
                "auth login PLAIN".into(),
                "STARTTLS".into(),
            ],
        };
        let features = Features::from_ehlo(&reply);
        assert!(features.pipelining && features.starttls);
        assert!(features.auth_plain && features.auth_login);
        let bare = Reply {
            code: 250,
            lines: vec!["PIPELINING is the greeting name here".into()],
        };
        assert_eq!(Features::from_ehlo(&bare), Features::default());
    }

    #[test]
    fn dots_at_line_starts_are_doubled_and_bare_newlines_become_crlf() {
        assert_eq!(
            *dot_stuffed(b".a\r\nb.\r\n.\r\n..x\nend"),
            b"..a\r\nb.\r\n..\r\n...x\r\nend"
        );
        assert_eq!(*dot_stuffed(b"plain\r\n"), b"plain\r\n");
    }

    #[test]
    fn a_reply_reads_as_one_line() {
        let reply = Reply {
            code: 553,
            lines: vec!["5.7.1 sender".into(), "not allowed".into()],
        };
        assert_eq!(reply.one_line(), "553 5.7.1 sender not allowed");
        assert!(!reply.is_positive() && !reply.is_transient());
    }
}
