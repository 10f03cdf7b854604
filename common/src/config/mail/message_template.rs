//! The code mail's subject and bodies: text with `{variable}` placeholders, written inline in
//! the config or as `@/path/to/file`.
//!
//! Templates are parsed when the config loads, so an unknown `{variable}` or a body without
//! `{code}` stops otpd at start (or keeps the old config on reload) instead of surprising a
//! user at login. `{{` and `}}` stand for literal braces (for CSS in an HTML template).
//! Rendering only asks for the value of each variable; otpd strips, caps and (in HTML)
//! escapes the values, because they come from the login and the login is untrusted.

use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use super::super::admin_file::{self, AdminFileKind};
use super::super::check;
use super::super::error::{Invalid, Location};
use super::super::raw::{RawSettings, Text};

/// The longest subject template, in characters; a subject is one short line.
const MAX_SUBJECT_CHARS: usize = 200;

/// The longest body template, in bytes, inline or from a file.
const MAX_BODY_BYTES: usize = 64 * 1024;

/// The subject used when the config sets none.
pub const DEFAULT_SUBJECT: &str = "Your login code for {host}";

/// The plain-text body used when the config sets none. Tests and people alike find the code
/// after "code is: ".
pub const DEFAULT_TEXT: &str = "Your login code is: {code}

It is for user {user} on {host} ({service}, {protocol} from {rhost}).
Issued: {issued_at}
Expires: {expires_at} ({valid_minutes} minutes).

If you did not try to log in, do not share this code and tell your administrator:
somebody may know your password.
";

/// The HTML body used when the config sets none: the same words, the code large.
pub const DEFAULT_HTML: &str = "<!DOCTYPE html>
<html>
<body style=\"font-family: sans-serif\">
<p>Your login code is:</p>
<p style=\"font-size: 28px; font-weight: bold; letter-spacing: 4px\">{code}</p>
<p>It is for user <b>{user}</b> on <b>{host}</b> ({service}, {protocol} from {rhost}).<br>
Issued: {issued_at}<br>
Expires: {expires_at} ({valid_minutes} minutes).</p>
<p>If you did not try to log in, do not share this code and tell your administrator:
somebody may know your password.</p>
</body>
</html>
";

/// A value a template can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TemplateVar {
    /// The one-time code.
    Code,
    /// The login's user name.
    User,
    /// The recipient address, masked as at the prompt (`a***@e***.com`).
    EmailMasked,
    /// This machine's host name.
    Host,
    /// The PAM service.
    Service,
    /// The login protocol (ssh, ftp, ...).
    Protocol,
    /// Where the login came from, or "unknown".
    Rhost,
    /// When the code was issued, in UTC.
    IssuedAt,
    /// When the code expires, in UTC.
    ExpiresAt,
    /// How many minutes the code is valid.
    ValidMinutes,
    /// A notification's event time, in UTC (notifications only).
    When,
    /// What a notification says of its event, one line (notifications only).
    Detail,
}

impl TemplateVar {
    /// Every variable, in the order the documentation lists them.
    pub const ALL: [TemplateVar; 10] = [
        TemplateVar::Code,
        TemplateVar::User,
        TemplateVar::EmailMasked,
        TemplateVar::Host,
        TemplateVar::Service,
        TemplateVar::Protocol,
        TemplateVar::Rhost,
        TemplateVar::IssuedAt,
        TemplateVar::ExpiresAt,
        TemplateVar::ValidMinutes,
    ];

    /// The variables a notification's subject and text may use: never the code.
    pub const NOTICE: [TemplateVar; 7] = [
        TemplateVar::User,
        TemplateVar::EmailMasked,
        TemplateVar::Host,
        TemplateVar::Service,
        TemplateVar::Rhost,
        TemplateVar::When,
        TemplateVar::Detail,
    ];

    /// The name written between braces.
    pub fn name(self) -> &'static str {
        match self {
            TemplateVar::Code => "code",
            TemplateVar::User => "user",
            TemplateVar::EmailMasked => "email_masked",
            TemplateVar::Host => "host",
            TemplateVar::Service => "service",
            TemplateVar::Protocol => "protocol",
            TemplateVar::Rhost => "rhost",
            TemplateVar::IssuedAt => "issued_at",
            TemplateVar::ExpiresAt => "expires_at",
            TemplateVar::ValidMinutes => "valid_minutes",
            TemplateVar::When => "when",
            TemplateVar::Detail => "detail",
        }
    }

    fn from_name(name: &str, kind: TemplateKind) -> Option<TemplateVar> {
        kind.vars().iter().copied().find(|v| v.name() == name)
    }

    fn list(kind: TemplateKind) -> String {
        kind.vars()
            .iter()
            .map(|v| format!("{{{}}}", v.name()))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Which part of the message a template is, which decides what it may contain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::config) enum TemplateKind {
    /// One line, no control characters.
    Subject,
    /// The text/plain body; must show `{code}`.
    Text,
    /// The text/html body; must show `{code}`.
    Html,
    /// A notification's subject: one line, never the code.
    NoticeSubject,
    /// A notification's text body: never the code.
    NoticeText,
}

impl TemplateKind {
    fn key(self) -> &'static str {
        match self {
            TemplateKind::Subject | TemplateKind::NoticeSubject => "subject",
            TemplateKind::Text | TemplateKind::NoticeText => "text_template",
            TemplateKind::Html => "html_template",
        }
    }

    /// The variables this part may use.
    fn vars(self) -> &'static [TemplateVar] {
        match self {
            TemplateKind::Subject | TemplateKind::Text | TemplateKind::Html => &TemplateVar::ALL,
            TemplateKind::NoticeSubject | TemplateKind::NoticeText => &TemplateVar::NOTICE,
        }
    }

    /// Whether this part is one line.
    fn is_subject(self) -> bool {
        matches!(self, TemplateKind::Subject | TemplateKind::NoticeSubject)
    }

    /// Whether this part must show the code.
    fn needs_code(self) -> bool {
        matches!(self, TemplateKind::Text | TemplateKind::Html)
    }
}

/// A parsed template: literal text and variables, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageTemplate {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Var(TemplateVar),
}

/// Why a template was refused: where in the template text, the text at fault, and why.
#[derive(Debug)]
pub(in crate::config) struct TemplateError {
    offset: usize,
    token: String,
    message: String,
}

impl MessageTemplate {
    /// The template with each variable replaced by `value(variable)`.
    pub fn render(&self, mut value: impl FnMut(TemplateVar) -> String) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Var(var) => out.push_str(&value(*var)),
            }
        }
        out
    }

    /// True when the template shows `var` somewhere.
    pub fn uses(&self, var: TemplateVar) -> bool {
        self.parts.contains(&Part::Var(var))
    }

    /// A built-in template. They are tested to parse; were one ever broken, its text would be
    /// sent as written rather than failing every login.
    pub(in crate::config) fn builtin(text: &str, kind: TemplateKind) -> MessageTemplate {
        MessageTemplate::parse(text, kind).unwrap_or_else(|_| MessageTemplate {
            parts: vec![Part::Text(text.to_string())],
        })
    }

    pub(in crate::config) fn parse(
        text: &str,
        kind: TemplateKind,
    ) -> Result<MessageTemplate, TemplateError> {
        // A file edited on Windows has CRLF line ends; the mail gets CRLF anyway.
        let text = text.replace("\r\n", "\n");
        let fail = |offset: usize, token: &str, message: String| TemplateError {
            offset,
            token: token.to_string(),
            message,
        };
        check_size_and_characters(&text, kind).map_err(|(at, ch, why)| fail(at, &ch, why))?;
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut rest = text.char_indices().peekable();
        while let Some((at, ch)) = rest.next() {
            match ch {
                '{' if rest.peek().map(|&(_, c)| c) == Some('{') => {
                    rest.next();
                    literal.push('{');
                }
                '}' if rest.peek().map(|&(_, c)| c) == Some('}') => {
                    rest.next();
                    literal.push('}');
                }
                '}' => {
                    return Err(fail(
                        at,
                        "}",
                        "a lone '}'; write '}}' for a literal brace".into(),
                    ));
                }
                '{' => {
                    let after = text.get(at + 1..).unwrap_or_default();
                    let Some(close) = after
                        .find(['}', '{', '\n'])
                        .filter(|&i| after.get(i..).is_some_and(|s| s.starts_with('}')))
                    else {
                        return Err(fail(
                            at,
                            "{",
                            "a '{' without its '}'; write '{{' for a literal brace".into(),
                        ));
                    };
                    let name = after.get(..close).unwrap_or_default();
                    let Some(var) = TemplateVar::from_name(name, kind) else {
                        let what = if name == TemplateVar::Code.name() {
                            "a notification never carries the code, so no variable"
                        } else {
                            "unknown variable"
                        };
                        return Err(fail(
                            at,
                            &format!("{{{name}}}"),
                            format!(
                                "{what} {{{name}}}; the variables are {}",
                                TemplateVar::list(kind)
                            ),
                        ));
                    };
                    if !literal.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut literal)));
                    }
                    parts.push(Part::Var(var));
                    // Skip the name and the closing brace.
                    for _ in 0..name.chars().count() + 1 {
                        rest.next();
                    }
                }
                other => literal.push(other),
            }
        }
        if !literal.is_empty() {
            parts.push(Part::Text(literal));
        }
        let template = MessageTemplate { parts };
        if kind.needs_code() && !template.uses(TemplateVar::Code) {
            return Err(fail(
                0,
                "",
                "must contain {code}, or the mail would not carry the code".into(),
            ));
        }
        Ok(template)
    }
}

/// Lengths and characters: a subject is one line of at most 200 characters; a body is at most
/// 64 KiB and may hold line breaks and tabs but no other control characters.
fn check_size_and_characters(
    text: &str,
    kind: TemplateKind,
) -> Result<(), (usize, String, String)> {
    if kind.is_subject() {
        if text.trim().is_empty() {
            return Err((0, String::new(), "must not be empty".into()));
        }
        let count = text.chars().count();
        if count > MAX_SUBJECT_CHARS {
            return Err((
                0,
                String::new(),
                format!("is {count} characters long; at most {MAX_SUBJECT_CHARS} are allowed"),
            ));
        }
    } else if text.len() > MAX_BODY_BYTES {
        return Err((
            0,
            String::new(),
            format!(
                "is {} bytes long; at most {MAX_BODY_BYTES} are allowed",
                text.len()
            ),
        ));
    }
    let allowed = |c: char| !kind.is_subject() && (c == '\n' || c == '\t');
    if let Some((at, bad)) = text
        .char_indices()
        .find(|&(_, c)| c.is_control() && !allowed(c))
    {
        return Err((
            at,
            bad.to_string(),
            format!(
                "contains the control character {:?}, which is not allowed here",
                bad
            ),
        ));
    }
    Ok(())
}

/// `subject`, `text_template` or `html_template` as written: inline, or `@/path` to a file.
/// `config_text` (the whole file, when at hand) lets an error point at the exact variable.
pub(in crate::config) fn from_value(
    value: &Text,
    kind: TemplateKind,
    config_text: Option<&str>,
) -> Result<MessageTemplate, Invalid> {
    let written = value.get_ref();
    let key = kind.key();
    if let Some(path) = written.strip_prefix('@') {
        let path_value = toml::Spanned::new(value.span(), path.to_string());
        let path = check::absolute_path(&format!("the file of {key}"), &path_value)?;
        let text = read_template_file(&path)
            .map_err(|why| Invalid::new(value.span(), format!("{key}: {why}")))?;
        return MessageTemplate::parse(&text, kind).map_err(|e| {
            let at = Location::of_offset(&text, e.offset);
            Invalid::new(
                value.span(),
                format!(
                    "{key} file {}:{}:{}: {}",
                    path.display(),
                    at.line,
                    at.column,
                    e.message
                ),
            )
        });
    }
    MessageTemplate::parse(written, kind).map_err(|e| {
        let offset = locate(value, config_text, &e);
        Invalid::new(offset..offset, format!("{key} {}", e.message))
    })
}

/// The byte offset in the config file of the error `e` inside the inline template `value`.
/// Exact when the string has no escapes (the usual case); otherwise the first place the
/// offending text appears in the written string; otherwise the string's start.
fn locate(value: &Text, config_text: Option<&str>, e: &TemplateError) -> usize {
    let span: Range<usize> = value.span();
    let text = value.get_ref();
    let written = config_text.and_then(|t| t.get(span.clone()));
    let opening = match written {
        Some(w) => [r#"""""#, "'''", "\"", "'"]
            .into_iter()
            .find(|q| w.starts_with(q) && w.ends_with(q))
            .map(|q| {
                // A newline right after an opening triple quote is not part of the value.
                let body = w
                    .get(q.len()..w.len().saturating_sub(q.len()))
                    .unwrap_or("");
                let trimmed = if q.len() == 3 && body.starts_with('\n') {
                    1
                } else {
                    0
                };
                (
                    q.len() + trimmed,
                    body.get(trimmed..) == Some(text.as_str()),
                )
            }),
        None => Some((1, span.len() == text.len() + 2)),
    };
    if let Some((skip, true)) = opening {
        return span.start + skip + e.offset;
    }
    let found = written.and_then(|w| (!e.token.is_empty()).then(|| w.find(&e.token)));
    if let Some(Some(i)) = found {
        return span.start + i;
    }
    span.start
}

/// Reads a template file through [`admin_file::read`]: a regular file, at most 64 KiB of UTF-8,
/// that neither group nor others may write (whoever can change it can change what every user is
/// told), owned by root or otpd's user, and never a FIFO or device that would hang the reader.
fn read_template_file(path: &Path) -> Result<String, String> {
    let bytes = admin_file::read(path, AdminFileKind::Template).map_err(|e| e.to_string())?;
    String::from_utf8(bytes.to_vec()).map_err(|_| format!("{} is not UTF-8 text", path.display()))
}

/// The subject and both bodies of the code mail. Shared, not copied: every login's settings
/// and every message refer to the same parsed templates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageTemplates {
    /// The subject line.
    pub subject: Arc<MessageTemplate>,
    /// The text/plain part.
    pub text: Arc<MessageTemplate>,
    /// The text/html part.
    pub html: Arc<MessageTemplate>,
}

impl Default for MessageTemplates {
    /// The built-in subject and bodies.
    fn default() -> MessageTemplates {
        MessageTemplates {
            subject: Arc::new(MessageTemplate::builtin(
                DEFAULT_SUBJECT,
                TemplateKind::Subject,
            )),
            text: Arc::new(MessageTemplate::builtin(DEFAULT_TEXT, TemplateKind::Text)),
            html: Arc::new(MessageTemplate::builtin(DEFAULT_HTML, TemplateKind::Html)),
        }
    }
}

impl MessageTemplates {
    /// `self` with the parts `overrides` sets replaced: a profile's message over `[mail]`'s.
    pub fn with(&self, overrides: &MessageOverrides) -> MessageTemplates {
        MessageTemplates {
            subject: Arc::clone(overrides.subject.as_ref().unwrap_or(&self.subject)),
            text: Arc::clone(overrides.text.as_ref().unwrap_or(&self.text)),
            html: Arc::clone(overrides.html.as_ref().unwrap_or(&self.html)),
        }
    }

    /// `[mail]`'s `subject`, `text_template` and `html_template` over the built-in ones.
    pub(in crate::config) fn from_raw(
        subject: Option<&Text>,
        text: Option<&Text>,
        html: Option<&Text>,
        config_text: &str,
    ) -> Result<MessageTemplates, Invalid> {
        let overrides = MessageOverrides::from_values(subject, text, html, Some(config_text))?;
        Ok(MessageTemplates::default().with(&overrides))
    }
}

/// The parts of the message a profile (or `[defaults]`) replaces; `None` keeps `[mail]`'s.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageOverrides {
    /// A different subject.
    pub subject: Option<Arc<MessageTemplate>>,
    /// A different text/plain body.
    pub text: Option<Arc<MessageTemplate>>,
    /// A different text/html body.
    pub html: Option<Arc<MessageTemplate>>,
}

impl MessageOverrides {
    /// Applies the `subject`, `text_template` and `html_template` keys of a profile.
    pub(in crate::config) fn overlay(&mut self, raw: &RawSettings) -> Result<(), Invalid> {
        let set = MessageOverrides::from_values(
            raw.subject.as_ref(),
            raw.text_template.as_ref(),
            raw.html_template.as_ref(),
            None,
        )?;
        self.subject = set.subject.or(self.subject.take());
        self.text = set.text.or(self.text.take());
        self.html = set.html.or(self.html.take());
        Ok(())
    }

    fn from_values(
        subject: Option<&Text>,
        text: Option<&Text>,
        html: Option<&Text>,
        config_text: Option<&str>,
    ) -> Result<MessageOverrides, Invalid> {
        let parse = |value: Option<&Text>, kind| {
            value
                .map(|v| from_value(v, kind, config_text).map(Arc::new))
                .transpose()
        };
        Ok(MessageOverrides {
            subject: parse(subject, TemplateKind::Subject)?,
            text: parse(text, TemplateKind::Text)?,
            html: parse(html, TemplateKind::Html)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;

    fn parse(text: &str, kind: TemplateKind) -> Result<MessageTemplate, String> {
        MessageTemplate::parse(text, kind).map_err(|e| e.message)
    }

    fn names(var: TemplateVar) -> String {
        format!("<{}>", var.name())
    }

    fn value(config: &str) -> (Text, String) {
        #[derive(serde::Deserialize)]
        struct W {
            t: Text,
        }
        let text = format!("t = {config}\n");
        (toml::from_str::<W>(&text).unwrap().t, text)
    }

    #[test]
    fn the_built_in_templates_parse_and_show_the_code() {
        for (text, kind) in [
            (DEFAULT_SUBJECT, TemplateKind::Subject),
            (DEFAULT_TEXT, TemplateKind::Text),
            (DEFAULT_HTML, TemplateKind::Html),
        ] {
            let t = MessageTemplate::parse(text, kind).unwrap();
            assert_eq!(t, MessageTemplate::builtin(text, kind));
        }
        let d = MessageTemplates::default();
        assert!(d.text.uses(TemplateVar::Code) && d.html.uses(TemplateVar::Code));
        assert!(
            d.text
                .render(names)
                .starts_with("Your login code is: <code>\n")
        );
    }

    #[test]
    fn every_variable_renders_and_braces_can_be_escaped() {
        let all: String = TemplateVar::ALL
            .iter()
            .map(|v| format!("{{{}}} ", v.name()))
            .collect();
        let t = parse(&format!("{{{{literal}}}} {all}"), TemplateKind::Text).unwrap();
        assert_eq!(
            t.render(names),
            "{literal} <code> <user> <email_masked> <host> <service> <protocol> <rhost> <issued_at> <expires_at> <valid_minutes> "
        );
        let css = parse(
            "<style>p {{ color: red }}</style>{code}",
            TemplateKind::Html,
        )
        .unwrap();
        assert_eq!(css.render(names), "<style>p { color: red }</style><code>");
    }

    #[test]
    fn unknown_variables_and_stray_braces_are_refused() {
        let e = parse("Code {code} for {usr}", TemplateKind::Text).unwrap_err();
        assert!(
            e.starts_with("unknown variable {usr}; the variables are {code} {user}"),
            "{e}"
        );
        assert!(parse("{Code}", TemplateKind::Text).is_err());
        assert!(
            parse("{code} {", TemplateKind::Text)
                .unwrap_err()
                .contains("without its '}'")
        );
        assert!(parse("{code} {user", TemplateKind::Text).is_err());
        assert!(parse("{code} {us\ner}", TemplateKind::Text).is_err());
        assert!(
            parse("{code} }", TemplateKind::Text)
                .unwrap_err()
                .contains("lone '}'")
        );
    }

    #[test]
    fn bodies_must_carry_the_code_subjects_need_not() {
        let e = parse("Hello {user}", TemplateKind::Html).unwrap_err();
        assert!(e.contains("must contain {code}"), "{e}");
        assert!(parse("Login on {host}", TemplateKind::Subject).is_ok());
    }

    #[test]
    fn subjects_are_one_short_line_and_bodies_have_no_odd_controls() {
        assert!(parse("a\nb", TemplateKind::Subject).is_err());
        assert!(parse("a\rBcc: x", TemplateKind::Subject).is_err());
        assert!(parse(" ", TemplateKind::Subject).is_err());
        assert!(parse(&"x".repeat(201), TemplateKind::Subject).is_err());
        assert!(parse(&"ş".repeat(200), TemplateKind::Subject).is_ok());
        assert!(parse("{code}\n\tline\r\n", TemplateKind::Text).is_ok());
        assert!(parse("{code}\u{1b}[31m", TemplateKind::Text).is_err());
        assert!(
            parse(
                &format!("{{code}}{}", "x".repeat(MAX_BODY_BYTES)),
                TemplateKind::Text
            )
            .is_err()
        );
    }

    #[test]
    fn utf8_text_survives_parsing() {
        let t = parse("Giriş kodunuz: {code} — ログインコード", TemplateKind::Text).unwrap();
        assert_eq!(t.render(names), "Giriş kodunuz: <code> — ログインコード");
    }

    #[test]
    fn an_inline_error_points_at_the_variable() {
        let (v, text) = value("\"Code: {code} for {usr}\"");
        let e = from_value(&v, TemplateKind::Text, Some(&text)).unwrap_err();
        assert_eq!(&text[e.span.start..e.span.start + 5], "{usr}");
        assert!(
            e.message
                .starts_with("text_template unknown variable {usr}"),
            "{}",
            e.message
        );
        // Without the file at hand a plain string still maps exactly.
        let e = from_value(&v, TemplateKind::Text, None).unwrap_err();
        assert_eq!(&text[e.span.start..e.span.start + 5], "{usr}");
        let (v, text) = value("\"\"\"\nCode: {code}\nfor {usr}\"\"\"");
        let e = from_value(&v, TemplateKind::Text, Some(&text)).unwrap_err();
        assert_eq!(&text[e.span.start..e.span.start + 5], "{usr}");
        let (v, text) = value("\"Code:\\t{code} {usr}\"");
        let e = from_value(&v, TemplateKind::Text, Some(&text)).unwrap_err();
        assert_eq!(&text[e.span.start..e.span.start + 5], "{usr}");
    }

    #[test]
    fn a_template_file_is_read_and_its_errors_name_file_line_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("code.txt");
        let mut f = std::fs::File::create(&path).unwrap();
        f.write_all("Kod: {code}\nKullanıcı: {user}\n".as_bytes())
            .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let (v, text) = value(&format!("\"@{}\"", path.display()));
        let t = from_value(&v, TemplateKind::Text, Some(&text)).unwrap();
        assert_eq!(t.render(names), "Kod: <code>\nKullanıcı: <user>\n");

        std::fs::write(&path, "Kod: {code}\nKullanıcı: {kullanici}\n").unwrap();
        let e = from_value(&v, TemplateKind::Text, Some(&text)).unwrap_err();
        assert!(
            e.message.starts_with(&format!(
                "text_template file {}:2:12: unknown variable {{kullanici}}",
                path.display()
            )),
            "{}",
            e.message
        );
        assert_eq!(e.span, v.span());
    }

    #[test]
    fn a_template_file_others_may_write_or_that_is_missing_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("code.txt");
        std::fs::write(&path, "{code}").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        let (v, text) = value(&format!("\"@{}\"", path.display()));
        let e = from_value(&v, TemplateKind::Html, Some(&text)).unwrap_err();
        assert!(
            e.message.contains("lets group or others change it"),
            "{}",
            e.message
        );
        let (v, text) = value("\"@/nonexistent/otpd/code.txt\"");
        let e = from_value(&v, TemplateKind::Html, Some(&text)).unwrap_err();
        assert!(
            e.message
                .starts_with("html_template: /nonexistent/otpd/code.txt: cannot open"),
            "{}",
            e.message
        );
        let (v, text) = value("\"@relative.txt\"");
        assert!(from_value(&v, TemplateKind::Html, Some(&text)).is_err());
    }

    #[test]
    fn overrides_replace_only_what_they_set() {
        let raw: RawSettings = toml::from_str("subject = \"Admin login on {host}\"").unwrap();
        let mut o = MessageOverrides::default();
        o.overlay(&raw).unwrap();
        let m = MessageTemplates::default().with(&o);
        assert_eq!(m.subject.render(names), "Admin login on <host>");
        assert_eq!(m.text, MessageTemplates::default().text);
        // A later overlay without the key keeps it.
        o.overlay(&RawSettings::default()).unwrap();
        assert!(o.subject.is_some());
    }
}
