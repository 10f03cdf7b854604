//! Template values: what each `{variable}` becomes, made safe for the place it lands.
//!
//! Every value that came from the login (user name, service, remote host) is untrusted: it is
//! stripped of control characters (a CR/LF could start a header or an SMTP command), of the
//! invisible characters that reorder or break lines when displayed, and capped in length.
//! In the HTML body values are escaped as well, so a user name cannot add markup or a link.

use common::config::{EmailAddress, MessageTemplate, TemplateVar};
use common::secret::SecretString;
use common::text::{mask_email, strip_for_mail};

use common::timefmt;

/// The longest user name, service, protocol or host written into a mail, in characters.
pub const MAX_VALUE_CHARS: usize = 128;

/// What `{rhost}` says when the login did not tell where it came from.
pub const UNKNOWN_RHOST: &str = "unknown";

/// The facts a code mail can show.
#[derive(Debug)]
pub struct Values<'a> {
    /// The code itself.
    pub code: &'a SecretString,
    /// The recipient (shown masked only); `None` for a code sent by phone only.
    pub to: Option<&'a EmailAddress>,
    /// The login's user name.
    pub user: &'a str,
    /// This machine's name.
    pub host: &'a str,
    /// The PAM service.
    pub service: &'a str,
    /// The login protocol.
    pub protocol: &'a str,
    /// Where the login came from, if known.
    pub rhost: Option<&'a str>,
    /// When the code was issued (Unix seconds).
    pub issued_at: i64,
    /// When it expires (Unix seconds).
    pub expires_at: i64,
}

impl Values<'_> {
    /// The plain value of `var`, cleaned for a mail.
    pub fn plain(&self, var: TemplateVar) -> String {
        match var {
            TemplateVar::Code => clean(self.code.expose()),
            TemplateVar::User => clean(self.user),
            TemplateVar::EmailMasked => self
                .to
                .map(|to| mask_email(to.as_str()))
                .unwrap_or_default(),
            TemplateVar::Host => clean(self.host),
            TemplateVar::Service => clean(self.service),
            TemplateVar::Protocol => clean(self.protocol),
            TemplateVar::Rhost => self.rhost.map_or_else(|| UNKNOWN_RHOST.to_string(), clean),
            TemplateVar::IssuedAt => timefmt::utc(self.issued_at),
            TemplateVar::ExpiresAt => timefmt::utc(self.expires_at),
            TemplateVar::ValidMinutes => {
                ((self.expires_at - self.issued_at).max(0) / 60).to_string()
            }
            // Only notifications have these; a code mail's templates cannot name them.
            TemplateVar::When | TemplateVar::Detail => String::new(),
        }
    }

    /// `template` rendered as plain text (subject, text/plain body).
    pub fn render_plain(&self, template: &MessageTemplate) -> String {
        template.render(|var| self.plain(var))
    }

    /// `template` rendered as HTML: every value escaped.
    pub fn render_html(&self, template: &MessageTemplate) -> String {
        template.render(|var| escape_html(&self.plain(var)))
    }
}

/// The facts a notification can show; never a code.
#[derive(Debug)]
pub struct NoticeValues<'a> {
    /// The user it is about.
    pub user: &'a str,
    /// The recipient (shown masked only); `None` for a notice sent by phone.
    pub to: Option<&'a EmailAddress>,
    /// This machine's name.
    pub host: &'a str,
    /// The PAM service, or `otpctl`.
    pub service: &'a str,
    /// Where the login came from, if known.
    pub rhost: Option<&'a str>,
    /// When the event was (Unix seconds).
    pub when: i64,
    /// The event's facts, one line.
    pub detail: &'a str,
}

impl NoticeValues<'_> {
    /// The plain value of `var`, cleaned for a mail.
    pub fn plain(&self, var: TemplateVar) -> String {
        match var {
            TemplateVar::User => clean(self.user),
            TemplateVar::EmailMasked => self
                .to
                .map(|to| mask_email(to.as_str()))
                .unwrap_or_default(),
            TemplateVar::Host => clean(self.host),
            TemplateVar::Service => clean(self.service),
            TemplateVar::Rhost => self.rhost.map_or_else(|| UNKNOWN_RHOST.to_string(), clean),
            TemplateVar::When => timefmt::utc(self.when),
            TemplateVar::Detail => clean(self.detail),
            // A notification's templates cannot name these (the config refuses them).
            TemplateVar::Code
            | TemplateVar::Protocol
            | TemplateVar::IssuedAt
            | TemplateVar::ExpiresAt
            | TemplateVar::ValidMinutes => String::new(),
        }
    }

    /// `template` rendered as plain text.
    pub fn render(&self, template: &MessageTemplate) -> String {
        template.render(|var| self.plain(var))
    }
}

/// Strips control characters and the invisible characters that change how text around them
/// is displayed (bidirectional overrides, line and paragraph separators), then caps the length.
pub fn clean(value: &str) -> String {
    let visible: String = value.chars().filter(|&c| !is_invisible_format(c)).collect();
    strip_for_mail(&visible, MAX_VALUE_CHARS)
}

fn is_invisible_format(c: char) -> bool {
    matches!(c,
        '\u{200B}'..='\u{200F}'
        | '\u{2028}'..='\u{202E}'
        | '\u{2060}'..='\u{2069}'
        | '\u{FEFF}'
    )
}

/// Escapes the five characters that mean something in HTML text and attributes.
pub fn escape_html(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use common::config::MessageTemplates;

    /// The values of a code mail for `user` from `rhost` (code 123456 to alice@example.com,
    /// sshd on box1, valid 10 minutes from 2026-11-22 12:45:00 UTC), handed to `f`.
    pub(in crate::mail) fn with<T>(
        user: &str,
        rhost: Option<&str>,
        f: impl FnOnce(Values<'_>) -> T,
    ) -> T {
        let code = SecretString::new("123456".into());
        let to = EmailAddress::parse("alice@example.com").unwrap();
        f(Values {
            code: &code,
            to: Some(&to),
            user,
            host: "box1",
            service: "sshd",
            protocol: "ssh",
            rhost,
            issued_at: 1_795_351_500,
            expires_at: 1_795_352_100,
        })
    }

    #[test]
    fn every_variable_has_its_value() {
        with("alice", Some("192.0.2.7"), |v| {
            let got: Vec<String> = TemplateVar::ALL.iter().map(|&var| v.plain(var)).collect();
            assert_eq!(
                got,
                [
                    "123456",
                    "alice",
                    "a***@e***.com",
                    "box1",
                    "sshd",
                    "ssh",
                    "192.0.2.7",
                    "2026-11-22 12:45:00 UTC",
                    "2026-11-22 12:55:00 UTC",
                    "10"
                ]
            );
        });
        with("alice", None, |v| {
            assert_eq!(v.plain(TemplateVar::Rhost), "unknown")
        });
    }

    #[test]
    fn untrusted_values_lose_controls_and_invisible_characters_and_are_capped() {
        with(
            "eve\r\n.\r\nMAIL FROM:<x@y>\u{202E}",
            Some("h\u{2028}X"),
            |v| {
                assert_eq!(v.plain(TemplateVar::User), "eve.MAIL FROM:<x@y>");
                assert_eq!(v.plain(TemplateVar::Rhost), "hX");
            },
        );
        let long = "ş".repeat(500);
        with(&long, None, |v| {
            assert_eq!(v.plain(TemplateVar::User).chars().count(), MAX_VALUE_CHARS);
        });
    }

    #[test]
    fn html_values_are_escaped_but_the_template_markup_is_kept() {
        with("<script>alert('x')</script>&\"", None, |v| {
            let html = v.render_html(&MessageTemplates::default().html);
            assert!(
                html.contains("<b>&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;</b>"),
                "{html}"
            );
            assert!(html.contains("<p style="));
            assert!(!html.contains("<script>"));
        });
    }
}
