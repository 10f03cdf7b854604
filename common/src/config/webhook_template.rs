//! The templates of a `[[channels.webhook]]` request: URLs, a form or JSON body, with
//! `{to}`, `{code}`, `{user}`, `{host}` and `{minutes}` placeholders.
//!
//! A value is never put in raw: it is percent-encoded in a URL, form-encoded (and the template's
//! own text too) in a form body, and JSON-string-escaped in a JSON body, where a placeholder may
//! only stand inside a string. So a user name such as `a&To=+1900...` or `a", "x": "` stays one
//! value of one field. A `{` not followed by a name and `}` is literal text (JSON needs braces);
//! a `{name}` that is no placeholder is an error, so a typo is not sent as is.

use std::fmt;

/// A value a webhook template can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WebhookVar {
    /// The user's phone number (E.164).
    To,
    /// The one-time code.
    Code,
    /// The login's user name.
    User,
    /// This machine's host name.
    Host,
    /// How many minutes the code stays valid.
    Minutes,
    /// A notification's text, one line (`notice_body` only; never a code).
    Message,
}

impl WebhookVar {
    /// Every placeholder, in the order the documentation lists them.
    pub const ALL: [WebhookVar; 6] = [
        WebhookVar::To,
        WebhookVar::Code,
        WebhookVar::User,
        WebhookVar::Host,
        WebhookVar::Minutes,
        WebhookVar::Message,
    ];

    /// The name written between braces.
    pub fn name(self) -> &'static str {
        match self {
            WebhookVar::To => "to",
            WebhookVar::Code => "code",
            WebhookVar::User => "user",
            WebhookVar::Host => "host",
            WebhookVar::Minutes => "minutes",
            WebhookVar::Message => "message",
        }
    }
}

/// What the placeholders stand for in one request; `Sync`, so a request being sent can hold
/// them across its awaits.
pub trait WebhookValues: Sync {
    /// The value of `var`, unescaped.
    fn value(&self, var: WebhookVar) -> &str;
}

/// One piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    /// The admin's text, as written.
    Text(String),
    /// A placeholder.
    Var(WebhookVar),
}

/// A template split into text and placeholders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template(Vec<Piece>);

impl Template {
    /// Splits `text`; an unknown `{name}` is an error that names it and lists the known ones.
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            literal.push_str(&rest[..open]);
            let after = &rest[open + 1..];
            let name_len = after
                .bytes()
                .take_while(|b| b.is_ascii_lowercase() || *b == b'_')
                .count();
            if name_len > 0 && after.as_bytes().get(name_len) == Some(&b'}') {
                let name = &after[..name_len];
                let Some(var) = WebhookVar::ALL.into_iter().find(|v| v.name() == name) else {
                    let known: Vec<String> = WebhookVar::ALL
                        .iter()
                        .map(|v| format!("{{{}}}", v.name()))
                        .collect();
                    return Err(format!(
                        "unknown placeholder {{{name}}}; the placeholders are {}",
                        known.join(" ")
                    ));
                };
                if !literal.is_empty() {
                    pieces.push(Piece::Text(std::mem::take(&mut literal)));
                }
                pieces.push(Piece::Var(var));
                rest = &after[name_len + 1..];
            } else {
                literal.push('{');
                rest = after;
            }
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            pieces.push(Piece::Text(literal));
        }
        Ok(Template(pieces))
    }

    /// True when the template uses `var`.
    pub fn uses(&self, var: WebhookVar) -> bool {
        self.0.contains(&Piece::Var(var))
    }

    /// The template with each piece of text through `text` and each value through `value`.
    fn render(
        &self,
        values: &dyn WebhookValues,
        text: impl Fn(&str, &mut String),
        value: impl Fn(&str, &mut String),
    ) -> String {
        let mut out = String::new();
        for piece in &self.0 {
            match piece {
                Piece::Text(t) => text(t, &mut out),
                Piece::Var(var) => value(values.value(*var), &mut out),
            }
        }
        out
    }

    /// The template's text alone, for checks on what the admin wrote.
    fn literal_text(&self) -> impl Iterator<Item = &str> {
        self.0.iter().filter_map(|p| match p {
            Piece::Text(t) => Some(t.as_str()),
            Piece::Var(_) => None,
        })
    }
}

/// Appends `value` percent-encoded: every byte but the unreserved `A-Z a-z 0-9 - . _ ~`, so a
/// value can never end a path segment, start a query or add a parameter.
pub fn percent_encode(value: &str, out: &mut String) {
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
}

/// Appends `value` as `application/x-www-form-urlencoded` writes it: a space as `+`, every byte
/// but `A-Z a-z 0-9 * - . _` percent-encoded (so a `+` or `&` in a value stays in it).
pub fn form_encode(value: &str, out: &mut String) {
    for byte in value.bytes() {
        match byte {
            b' ' => out.push('+'),
            b if b.is_ascii_alphanumeric() || matches!(b, b'*' | b'-' | b'.' | b'_') => {
                out.push(char::from(b));
            }
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
}

/// Appends `value` escaped for the inside of a JSON string: quotes, backslashes and every
/// control character escaped, so a value can never end the string it is in.
pub fn json_escape(value: &str, out: &mut String) {
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() || c == '\u{2028}' || c == '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", u32::from(c)));
            }
            c => out.push(c),
        }
    }
}

/// An endpoint's URL template: `https://HOST[:PORT]/...` (plain `http` only to a loopback
/// host), with placeholders only after the host, never `{code}` (a code in a URL ends up in
/// proxy and server logs) and no `user:password@` (credentials live in `credentials_file`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlTemplate {
    template: Template,
    /// `HOST[:PORT]` as written, for logs and audit rows (never the path, which may carry an
    /// account id or the phone number).
    authority: String,
}

impl UrlTemplate {
    /// Checks `text`; `is_loopback` tells whether a host is this machine.
    pub fn parse(text: &str, is_loopback: impl Fn(&str) -> bool) -> Result<UrlTemplate, String> {
        let (scheme, rest) = if let Some(rest) = text.strip_prefix("https://") {
            ("https", rest)
        } else if let Some(rest) = text.strip_prefix("http://") {
            ("http", rest)
        } else {
            return Err(format!(
                "an endpoint must start with https://, got {text:?}"
            ));
        };
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let authority = &rest[..authority_end];
        if authority.is_empty() || authority.contains(['{', '}', '@', ' ']) {
            return Err(format!(
                "an endpoint's host must be written out, without placeholders or user:password@ (credentials go in credentials_file), got {text:?}"
            ));
        }
        let host = host_of(authority);
        if scheme == "http" && !is_loopback(host) {
            return Err(format!(
                "http:// would send codes in clear text to {host:?}; only loopback hosts may use it, use https://"
            ));
        }
        let template = Template::parse(text)?;
        if !template
            .literal_text()
            .all(|t| t.bytes().all(|b| b.is_ascii_graphic()))
        {
            return Err(format!(
                "an endpoint must be written in visible ASCII, without spaces (percent-encode the rest), got {text:?}"
            ));
        }
        if template.uses(WebhookVar::Code) {
            return Err(
                "{code} must not be in an endpoint's URL, where proxies and servers log it; put it in the body".into(),
            );
        }
        Ok(UrlTemplate {
            template,
            authority: authority.to_string(),
        })
    }

    /// The URL with the values percent-encoded.
    pub fn render(&self, values: &dyn WebhookValues) -> String {
        self.template
            .render(values, |t, out| out.push_str(t), percent_encode)
    }

    /// `HOST[:PORT]`, for logs and audit rows.
    pub fn authority(&self) -> &str {
        &self.authority
    }

    /// True for `https://` (the only scheme but loopback `http://`).
    pub fn is_https(&self) -> bool {
        matches!(self.template.0.first(), Some(Piece::Text(t)) if t.starts_with("https://"))
    }

    /// The host as written (an IPv6 address without its brackets): where `otpctl doctor`
    /// connects and the name the certificate must carry.
    pub fn host(&self) -> &str {
        host_of(&self.authority)
    }

    /// The port written after the host, or the scheme's (443, or 80 for loopback `http://`).
    pub fn port(&self) -> u16 {
        let after_host = match self.authority.strip_prefix('[') {
            Some(inner) => inner.split_once(']').map_or("", |(_, rest)| rest),
            None => self
                .authority
                .find(':')
                .map_or("", |i| &self.authority[i..]),
        };
        after_host
            .strip_prefix(':')
            .and_then(|p| p.parse().ok())
            .unwrap_or(if self.is_https() { 443 } else { 80 })
    }
}

/// The host of `HOST[:PORT]` or `[IPV6]:PORT`.
fn host_of(authority: &str) -> &str {
    if let Some(inner) = authority.strip_prefix('[') {
        return inner.split(']').next().unwrap_or(inner);
    }
    authority.split(':').next().unwrap_or(authority)
}

/// How the body is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    /// `application/x-www-form-urlencoded`: `key=value&key=value`.
    Form,
    /// `application/json`.
    Json,
}

impl BodyFormat {
    /// The `Content-Type` of such a body.
    pub fn content_type(self) -> &'static str {
        match self {
            BodyFormat::Form => "application/x-www-form-urlencoded",
            BodyFormat::Json => "application/json",
        }
    }
}

/// A request body template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyTemplate {
    /// Fields `key=value` joined by `&`; keys are literal, values templates. Both are
    /// form-encoded when rendered: the template is written as the admin reads it
    /// (`Body=Your code is {code}`, `From=+15005550006`), not pre-encoded.
    Form(Vec<(String, Template)>),
    /// JSON text whose placeholders all stand inside strings.
    Json(Template),
}

impl BodyTemplate {
    /// Checks `text` as a code's body of `format`: it must use `{code}`, and not `{message}`.
    pub fn parse(text: &str, format: BodyFormat) -> Result<BodyTemplate, String> {
        let body = BodyTemplate::parse_any(text, format)?;
        if !body.uses(WebhookVar::Code) {
            return Err("the body must contain {code}, or the code goes nowhere".into());
        }
        if body.uses(WebhookVar::Message) {
            return Err(
                "{message} is a notification's text; it belongs in notice_body, not in the code's body"
                    .into(),
            );
        }
        Ok(body)
    }

    /// Checks `text` as a notification's body of `format`: it must use `{message}`, and never
    /// `{code}` or `{minutes}`.
    pub fn parse_notice(text: &str, format: BodyFormat) -> Result<BodyTemplate, String> {
        let body = BodyTemplate::parse_any(text, format)?;
        if body.uses(WebhookVar::Code) || body.uses(WebhookVar::Minutes) {
            return Err(
                "a notification never carries a code: {code} and {minutes} are not allowed here"
                    .into(),
            );
        }
        if !body.uses(WebhookVar::Message) {
            return Err("it must use {message}, the notification's text".into());
        }
        Ok(body)
    }

    fn parse_any(text: &str, format: BodyFormat) -> Result<BodyTemplate, String> {
        let body = match format {
            BodyFormat::Form => {
                let mut fields = Vec::new();
                for field in text.split('&') {
                    let Some((key, value)) = field.split_once('=') else {
                        return Err(format!(
                            "a form body is key=value pairs joined by &; {field:?} has no ="
                        ));
                    };
                    if key.is_empty() || key.contains(['{', '}']) {
                        return Err(format!(
                            "a form field's name must be plain text, got {key:?}"
                        ));
                    }
                    fields.push((key.to_string(), Template::parse(value)?));
                }
                BodyTemplate::Form(fields)
            }
            BodyFormat::Json => {
                let template = Template::parse(text)?;
                check_json(&template)?;
                BodyTemplate::Json(template)
            }
        };
        Ok(body)
    }

    /// True when some part of the body uses `var`.
    pub fn uses(&self, var: WebhookVar) -> bool {
        match self {
            BodyTemplate::Form(fields) => fields.iter().any(|(_, t)| t.uses(var)),
            BodyTemplate::Json(t) => t.uses(var),
        }
    }

    /// The format this body is in.
    pub fn format(&self) -> BodyFormat {
        match self {
            BodyTemplate::Form(_) => BodyFormat::Form,
            BodyTemplate::Json(_) => BodyFormat::Json,
        }
    }

    /// The text of `field` as the gateway reads it once decoded: a form field's value, or a
    /// top-level JSON key's string; `None` when the body has no such field.
    pub fn field_text(&self, field: &str, values: &dyn WebhookValues) -> Option<String> {
        match self {
            BodyTemplate::Form(fields) => {
                let (_, template) = fields.iter().find(|(key, _)| key == field)?;
                let raw = |t: &str, out: &mut String| out.push_str(t);
                Some(template.render(values, raw, raw))
            }
            BodyTemplate::Json(_) => {
                let rendered = self.render(values);
                let parsed: serde_json::Value = serde_json::from_str(&rendered).ok()?;
                parsed.get(field)?.as_str().map(str::to_string)
            }
        }
    }

    /// The body with every value escaped for the format.
    pub fn render(&self, values: &dyn WebhookValues) -> String {
        match self {
            BodyTemplate::Form(fields) => {
                let mut out = String::new();
                for (i, (key, value)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push('&');
                    }
                    form_encode(key, &mut out);
                    out.push('=');
                    out.push_str(&value.render(values, form_encode, form_encode));
                }
                out
            }
            BodyTemplate::Json(t) => t.render(values, |t, out| out.push_str(t), json_escape),
        }
    }
}

/// Values for the checks: each a string that would break out of its place if not escaped.
struct Probe;

impl WebhookValues for Probe {
    fn value(&self, _: WebhookVar) -> &str {
        "\"&= +\\{}\n"
    }
}

/// A JSON body must be JSON once filled in, and each placeholder must stand inside a string
/// (outside one, even an escaped value could add keys or change types).
fn check_json(template: &Template) -> Result<(), String> {
    let mut in_string = false;
    let mut escaped = false;
    for piece in &template.0 {
        match piece {
            Piece::Text(text) => {
                for c in text.chars() {
                    match (in_string, escaped, c) {
                        (true, true, _) => escaped = false,
                        (true, false, '\\') => escaped = true,
                        (_, false, '"') => in_string = !in_string,
                        _ => {}
                    }
                }
            }
            Piece::Var(var) if !in_string => {
                return Err(format!(
                    "{{{}}} must be inside a JSON string (\"...{{{}}}...\")",
                    var.name(),
                    var.name()
                ));
            }
            Piece::Var(_) => {}
        }
    }
    let rendered = template.render(&Probe, |t, out| out.push_str(t), json_escape);
    serde_json::from_str::<serde_json::Value>(&rendered)
        .map(drop)
        .map_err(|e| format!("the JSON body is not JSON once filled in: {e}"))
}

impl fmt::Display for WebhookVar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{{{}}}", self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values a hostile login could bring.
    struct Hostile;

    impl WebhookValues for Hostile {
        fn value(&self, var: WebhookVar) -> &str {
            match var {
                WebhookVar::To => "+441234567890",
                WebhookVar::Code => "123456",
                WebhookVar::User => "eve&To=+19005550000\"}, \"x\": \"/../?a=b#",
                WebhookVar::Host => "höst.example",
                WebhookVar::Minutes => "10",
                WebhookVar::Message => "locked\" & x=1",
            }
        }
    }

    fn loopback(host: &str) -> bool {
        host == "127.0.0.1" || host == "localhost"
    }

    #[test]
    fn the_three_escapings_leave_no_delimiter_raw() {
        let mut out = String::new();
        percent_encode("+44 a&b=c/d?e#f%", &mut out);
        assert_eq!(out, "%2B44%20a%26b%3Dc%2Fd%3Fe%23f%25");
        out.clear();
        form_encode("+44 a&b=c/ü", &mut out);
        assert_eq!(out, "%2B44+a%26b%3Dc%2F%C3%BC");
        out.clear();
        json_escape("a\"b\\c\nd\u{1}e\u{2028}", &mut out);
        assert_eq!(out, "a\\\"b\\\\c\\nd\\u0001e\\u2028");
    }

    #[test]
    fn a_form_body_is_the_twilio_form_with_every_part_encoded() {
        let body = BodyTemplate::parse(
            "To={to}&From=+15005550006&Body=Your code is {code}",
            BodyFormat::Form,
        )
        .unwrap();
        assert_eq!(
            body.render(&Hostile),
            "To=%2B441234567890&From=%2B15005550006&Body=Your+code+is+123456"
        );
        let body = BodyTemplate::parse("Body={code} for {user}", BodyFormat::Form).unwrap();
        let rendered = body.render(&Hostile);
        // One field whatever the user name holds.
        assert_eq!(rendered.matches('&').count(), 0, "{rendered}");
        assert_eq!(rendered.matches('=').count(), 1, "{rendered}");
    }

    #[test]
    fn a_json_body_keeps_hostile_values_inside_their_strings() {
        let body = BodyTemplate::parse(
            r#"{"topic": "otp", "message": "Code {code} for {user} on {host}, {minutes} min"}"#,
            BodyFormat::Json,
        )
        .unwrap();
        let rendered = body.render(&Hostile);
        let parsed: serde_json::Value = serde_json::from_str(&rendered).unwrap();
        let object = parsed.as_object().unwrap();
        assert_eq!(object.len(), 2, "{rendered}");
        assert_eq!(
            object["message"],
            "Code 123456 for eve&To=+19005550000\"}, \"x\": \"/../?a=b# on höst.example, 10 min"
        );
    }

    #[test]
    fn a_json_placeholder_outside_a_string_is_refused() {
        let e = BodyTemplate::parse(r#"{"code": "{code}", "m": {minutes}}"#, BodyFormat::Json)
            .unwrap_err();
        assert!(e.contains("{minutes} must be inside a JSON string"), "{e}");
        let e = BodyTemplate::parse(r#"{"code": "{code}""#, BodyFormat::Json).unwrap_err();
        assert!(e.contains("not JSON"), "{e}");
        // An escaped quote does not end the string.
        assert!(BodyTemplate::parse(r#"{"m": "say \"{code}\""}"#, BodyFormat::Json).is_ok());
    }

    #[test]
    fn a_body_needs_the_code_and_known_placeholders() {
        let e = BodyTemplate::parse("To={to}", BodyFormat::Form).unwrap_err();
        assert!(e.contains("{code}"), "{e}");
        let e = BodyTemplate::parse("To={phone}&B={code}", BodyFormat::Form).unwrap_err();
        assert!(e.contains("unknown placeholder {phone}"), "{e}");
        let e = BodyTemplate::parse("To&B={code}", BodyFormat::Form).unwrap_err();
        assert!(e.contains("has no ="), "{e}");
    }

    #[test]
    fn a_url_percent_encodes_its_values_and_keeps_its_own_text() {
        let url =
            UrlTemplate::parse("https://gw.example:8443/send/{to}?user={user}", loopback).unwrap();
        assert_eq!(url.authority(), "gw.example:8443");
        assert_eq!(
            url.render(&Hostile),
            "https://gw.example:8443/send/%2B441234567890?user=eve%26To%3D%2B19005550000%22%7D%2C%20%22x%22%3A%20%22%2F..%2F%3Fa%3Db%23"
        );
    }

    #[test]
    fn a_url_tells_its_host_and_port_for_a_connection_check() {
        let url = UrlTemplate::parse("https://gw.example:8443/send/{to}", loopback).unwrap();
        assert_eq!(
            (url.is_https(), url.host(), url.port()),
            (true, "gw.example", 8443)
        );
        let url = UrlTemplate::parse("https://gw.example/send", loopback).unwrap();
        assert_eq!(url.port(), 443);
        let url = UrlTemplate::parse("https://[::1]:9000/x", loopback).unwrap();
        assert_eq!((url.host(), url.port()), ("::1", 9000));
        let url = UrlTemplate::parse("http://localhost/x", loopback).unwrap();
        assert_eq!((url.is_https(), url.port()), (false, 80));
    }

    #[test]
    fn a_url_must_be_https_unless_loopback_and_never_carry_the_code() {
        assert!(UrlTemplate::parse("http://127.0.0.1:8080/x", loopback).is_ok());
        let e = UrlTemplate::parse("http://gw.example/x", loopback).unwrap_err();
        assert!(e.contains("clear text"), "{e}");
        let e = UrlTemplate::parse("ftp://gw.example/x", loopback).unwrap_err();
        assert!(e.contains("https://"), "{e}");
        let e = UrlTemplate::parse("https://gw.example/x?c={code}", loopback).unwrap_err();
        assert!(e.contains("{code} must not be"), "{e}");
        let e = UrlTemplate::parse("https://u:p@gw.example/x", loopback).unwrap_err();
        assert!(e.contains("credentials_file"), "{e}");
        assert!(UrlTemplate::parse("https://{host}/x", loopback).is_err());
        assert!(UrlTemplate::parse("https://gw.example/a b", loopback).is_err());
        assert!(UrlTemplate::parse("https://gw.example/\u{e9}", loopback).is_err());
    }
}
