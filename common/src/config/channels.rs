//! `[[channels.webhook]]`: codes sent by an HTTPS request (an SMS gateway such as Twilio's
//! Messages API, a chat or push webhook) to the user's phone number, and a profile's
//! `channels = ["NAME", "email"]`, the order in which a user's channels are tried.
//!
//! Each channel has endpoints tried in order (failover), a body template encoded as a form or
//! as JSON (see [`super::webhook_template`] for the escaping), headers written out, and its
//! credentials (`basic USER:PASSWORD` or `bearer TOKEN`) in a private file.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use toml::Spanned;

use super::check::{self, SECOND, is_loopback};
use super::error::Invalid;
use super::raw::{RawWebhook, Text};
use super::sms;
use super::webhook_template::{BodyFormat, BodyTemplate, UrlTemplate};

/// The name a profile's `channels` uses for the code mail.
pub const EMAIL_CHANNEL: &str = "email";

/// How long one request to one endpoint may take unless `timeout_seconds` says otherwise.
pub const DEFAULT_WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);

/// The most endpoints one channel lists.
const MAX_ENDPOINTS: usize = 8;

/// The longest channel name a prompt shows.
const MAX_DISPLAY_NAME: usize = 32;

/// The longest body template, in bytes.
const MAX_BODY: usize = 8 * 1024;

/// One way a code can reach a user.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Channel {
    /// The code mail, to the user's address.
    Email,
    /// The `[[channels.webhook]]` of this name, to the user's phone number.
    Webhook(String),
}

impl Channel {
    /// The name written in `channels`.
    pub fn name(&self) -> &str {
        match self {
            Channel::Email => EMAIL_CHANNEL,
            Channel::Webhook(name) => name,
        }
    }
}

/// The HTTP method of a webhook request; both carry the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookMethod {
    /// `POST` (the default).
    Post,
    /// `PUT`.
    Put,
}

/// One `[[channels.webhook]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookChannel {
    /// A unique name for `channels`, logs and audit rows.
    pub name: String,
    /// How the prompt names the channel (`Code sent by SMS to ...`); the name by default.
    pub display_name: String,
    /// The endpoints, tried in order until one answers 2xx; never empty.
    pub endpoints: Vec<UrlTemplate>,
    /// The request's method.
    pub method: WebhookMethod,
    /// Extra headers, as written (no placeholders); never `Authorization`, `Content-Type`,
    /// `Content-Length` or `Host`, which otpd sets.
    pub headers: Vec<(String, String)>,
    /// The body, in its format.
    pub body: BodyTemplate,
    /// The body of a notification sent by this channel (`{message}`, never `{code}`); without
    /// it, notifications of its users go by mail.
    pub notice_body: Option<BodyTemplate>,
    /// The body's field that an SMS gateway sends as the message (Twilio's `Body`), kept
    /// within one SMS segment (see [`super::sms`]); `None` for gateways that are no SMS.
    pub sms_field: Option<String>,
    /// A private file holding `basic USER:PASSWORD` or `bearer TOKEN` on its first line.
    pub credentials_file: Option<PathBuf>,
    /// Extra trusted CA certificates (PEM), besides the system store.
    pub ca_file: Option<PathBuf>,
    /// How long one request to one endpoint may take.
    pub timeout: Duration,
}

impl WebhookChannel {
    /// Checks one `[[channels.webhook]]`; also returns the span of its name.
    pub(super) fn from_raw(
        raw: &Spanned<RawWebhook>,
    ) -> Result<(WebhookChannel, std::ops::Range<usize>), Invalid> {
        let hook = raw.get_ref();
        let missing = |key: &str, what: &str| {
            Invalid::new(
                raw.span(),
                format!("this webhook channel has no {key}; {what}"),
            )
        };
        let name_value = hook
            .name
            .as_ref()
            .ok_or_else(|| missing("name", "add name = \"NAME\" to list it in channels"))?;
        let name = check::label("a webhook channel name", name_value)?;
        if name == EMAIL_CHANNEL {
            return Err(Invalid::new(
                name_value.span(),
                "\"email\" names the code mail in channels; call this channel something else",
            ));
        }
        let display_name = match &hook.display_name {
            Some(v) => {
                let text = v.get_ref();
                let count = text.chars().count();
                if count == 0 || count > MAX_DISPLAY_NAME || text.chars().any(char::is_control) {
                    return Err(Invalid::new(
                        v.span(),
                        format!(
                            "display_name must be 1 to {MAX_DISPLAY_NAME} characters without control characters, got {text:?}"
                        ),
                    ));
                }
                text.clone()
            }
            None => name.clone(),
        };
        let endpoints = hook.endpoints.as_ref().ok_or_else(|| {
            missing(
                "endpoints",
                "add endpoints = [\"https://...\"], tried in order",
            )
        })?;
        if endpoints.get_ref().is_empty() || endpoints.get_ref().len() > MAX_ENDPOINTS {
            return Err(Invalid::new(
                endpoints.span(),
                format!("endpoints must list 1 to {MAX_ENDPOINTS} URLs"),
            ));
        }
        let endpoints = endpoints
            .get_ref()
            .iter()
            .map(|url| {
                UrlTemplate::parse(url.get_ref(), is_loopback)
                    .map_err(|why| Invalid::new(url.span(), why))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let method = match &hook.method {
            None => WebhookMethod::Post,
            Some(v) => match v.get_ref().as_str() {
                "POST" => WebhookMethod::Post,
                "PUT" => WebhookMethod::Put,
                other => {
                    return Err(Invalid::new(
                        v.span(),
                        format!("method must be \"POST\" or \"PUT\", got {other:?}"),
                    ));
                }
            },
        };
        let headers = headers(hook.headers.as_ref())?;
        let format = match &hook.body_format {
            None => BodyFormat::Form,
            Some(v) => match v.get_ref().as_str() {
                "form" => BodyFormat::Form,
                "json" => BodyFormat::Json,
                other => {
                    return Err(Invalid::new(
                        v.span(),
                        format!("body_format must be \"form\" or \"json\", got {other:?}"),
                    ));
                }
            },
        };
        let body_value = hook.body.as_ref().ok_or_else(|| {
            missing(
                "body",
                "add body = \"...{code}...\", the request's body with placeholders",
            )
        })?;
        if body_value.get_ref().len() > MAX_BODY {
            return Err(Invalid::new(
                body_value.span(),
                format!("body must be at most {MAX_BODY} bytes"),
            ));
        }
        let body = BodyTemplate::parse(body_value.get_ref(), format)
            .map_err(|why| Invalid::new(body_value.span(), why))?;
        let notice_body = hook
            .notice_body
            .as_ref()
            .map(|v| notice_body(v, format))
            .transpose()?;
        let sms_field = match &hook.sms_field {
            None => None,
            Some(field) => {
                sms::check_template(&body, field.get_ref()).map_err(|why| {
                    // A field that is not there is the key's mistake; a text too long, the body's.
                    let span = if why.starts_with("sms_field") {
                        field.span()
                    } else {
                        body_value.span()
                    };
                    Invalid::new(span, why)
                })?;
                Some(field.get_ref().clone())
            }
        };
        if let (Some(field), Some(notice), Some(value)) =
            (&hook.sms_field, &notice_body, &hook.notice_body)
        {
            sms::check_template(notice, field.get_ref())
                .map_err(|why| Invalid::new(value.span(), format!("notice_body: {why}")))?;
        }
        let credentials_file = hook
            .credentials_file
            .as_ref()
            .map(|v| check::absolute_path("credentials_file", v))
            .transpose()?;
        let ca_file = hook
            .ca_file
            .as_ref()
            .map(|v| check::absolute_path("ca_file", v))
            .transpose()?;
        let timeout = match &hook.timeout_seconds {
            Some(v) => check::duration("timeout_seconds", v, 1, 60, SECOND)?,
            None => DEFAULT_WEBHOOK_TIMEOUT,
        };
        let channel = WebhookChannel {
            name,
            display_name,
            endpoints,
            method,
            headers,
            body,
            notice_body,
            sms_field,
            credentials_file,
            ca_file,
            timeout,
        };
        Ok((channel, name_value.span()))
    }
}

/// `notice_body`: in the body's format, with `{message}` and without `{code}` or `{minutes}`.
fn notice_body(value: &Text, format: BodyFormat) -> Result<BodyTemplate, Invalid> {
    if value.get_ref().len() > MAX_BODY {
        return Err(Invalid::new(
            value.span(),
            format!("notice_body must be at most {MAX_BODY} bytes"),
        ));
    }
    BodyTemplate::parse_notice(value.get_ref(), format)
        .map_err(|why| Invalid::new(value.span(), format!("notice_body: {why}")))
}

/// The `headers` table: token names (not the ones otpd sets), values without control
/// characters (a CR/LF would start another header).
fn headers(raw: Option<&Spanned<BTreeMap<Text, Text>>>) -> Result<Vec<(String, String)>, Invalid> {
    let mut out = Vec::new();
    for (name, value) in raw.iter().flat_map(|t| t.get_ref()) {
        let header = name.get_ref();
        let token = !header.is_empty()
            && header
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if !token {
            return Err(Invalid::new(
                name.span(),
                format!("{header:?} is not a header name"),
            ));
        }
        let reserved = ["authorization", "content-type", "content-length", "host"];
        if reserved.contains(&header.to_ascii_lowercase().as_str()) {
            return Err(Invalid::new(
                name.span(),
                format!(
                    "otpd sets {header} itself (credentials go in credentials_file, the type follows body_format)"
                ),
            ));
        }
        if value.get_ref().chars().any(char::is_control) {
            return Err(Invalid::new(
                value.span(),
                "a header value must not contain control characters",
            ));
        }
        out.push((header.clone(), value.get_ref().clone()));
    }
    Ok(out)
}

/// Each `[[channels.webhook]]`, with names unique.
pub(super) fn webhooks(
    raw: Option<&Vec<Spanned<RawWebhook>>>,
) -> Result<Vec<WebhookChannel>, Invalid> {
    let mut out: Vec<WebhookChannel> = Vec::new();
    for entry in raw.into_iter().flatten() {
        let (channel, span) = WebhookChannel::from_raw(entry)?;
        if out.iter().any(|c| c.name == channel.name) {
            return Err(Invalid::new(
                span,
                format!(
                    "a second webhook channel is named {:?}; names must be unique",
                    channel.name
                ),
            ));
        }
        out.push(channel);
    }
    Ok(out)
}

/// A profile's `channels`: names, none twice, at least one.
pub(super) fn channel_list(value: &Spanned<Vec<Text>>) -> Result<Vec<Channel>, Invalid> {
    if value.get_ref().is_empty() {
        return Err(Invalid::new(
            value.span(),
            "channels must name at least one channel (\"email\" or a [[channels.webhook]] name)",
        ));
    }
    let mut out: Vec<Channel> = Vec::new();
    for name in value.get_ref() {
        let channel = if name.get_ref() == EMAIL_CHANNEL {
            Channel::Email
        } else {
            Channel::Webhook(check::label("a channel name", name)?)
        };
        if out.contains(&channel) {
            return Err(Invalid::new(
                name.span(),
                format!("channel {:?} is listed twice", channel.name()),
            ));
        }
        out.push(channel);
    }
    Ok(out)
}

/// Every webhook name in a `channels` list must be a `[[channels.webhook]]`.
pub(super) fn check_known(
    value: &Spanned<Vec<Text>>,
    webhooks: &[WebhookChannel],
) -> Result<(), Invalid> {
    for name in value.get_ref() {
        let name_text = name.get_ref();
        if name_text != EMAIL_CHANNEL && !webhooks.iter().any(|w| &w.name == name_text) {
            return Err(Invalid::new(
                name.span(),
                format!(
                    "no [[channels.webhook]] is named {name_text:?}; channels are \"email\" and the webhook names"
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(body: &str) -> Result<WebhookChannel, Invalid> {
        #[derive(serde::Deserialize)]
        struct W {
            h: Spanned<RawWebhook>,
        }
        let raw: W = toml::from_str(&format!("[h]\nname = \"sms\"\n{body}")).unwrap();
        WebhookChannel::from_raw(&raw.h).map(|(c, _)| c)
    }

    const TWILIO: &str = "endpoints = [\"https://api.twilio.com/2010-04-01/Accounts/AC1/Messages.json\"]\nbody = \"To={to}&From=+15005550006&Body=Your code is {code}\"\n";

    #[test]
    fn a_twilio_channel_takes_the_defaults() {
        let c = hook(TWILIO).unwrap();
        assert_eq!(c.display_name, "sms");
        assert_eq!(c.method, WebhookMethod::Post);
        assert_eq!(c.body.format(), BodyFormat::Form);
        assert_eq!(c.timeout, DEFAULT_WEBHOOK_TIMEOUT);
        assert_eq!(c.endpoints[0].authority(), "api.twilio.com");
        assert_eq!((c.credentials_file, c.ca_file), (None, None));
        assert_eq!(c.sms_field, None);
    }

    #[test]
    fn an_sms_field_must_be_in_the_body_and_fit_one_segment_at_its_line() {
        let c = hook(&format!("{TWILIO}sms_field = \"Body\"")).unwrap();
        assert_eq!(c.sms_field.as_deref(), Some("Body"));
        let e = hook(&format!("{TWILIO}sms_field = \"Text\"")).unwrap_err();
        assert!(
            e.message.contains("not a field of the body"),
            "{}",
            e.message
        );
        let long = "a".repeat(151);
        let e = hook(&format!(
            "endpoints = [\"https://gw.example/x\"]\nbody = \"Body={long}{{code}}\"\nsms_field = \"Body\""
        ))
        .unwrap_err();
        assert!(e.message.contains("161 GSM-7 characters"), "{}", e.message);
    }

    #[test]
    fn keys_are_checked_where_they_are_written() {
        let e = hook("endpoints = []\nbody = \"B={code}\"").unwrap_err();
        assert!(e.message.contains("1 to 8"), "{}", e.message);
        let e = hook(&format!("{TWILIO}method = \"GET\"")).unwrap_err();
        assert!(e.message.contains("POST"), "{}", e.message);
        let e = hook(&format!("{TWILIO}body_format = \"xml\"")).unwrap_err();
        assert!(e.message.contains("form"), "{}", e.message);
        let e = hook(&format!("{TWILIO}headers = {{ Authorization = \"x\" }}")).unwrap_err();
        assert!(e.message.contains("credentials_file"), "{}", e.message);
        let e = hook(&format!("{TWILIO}headers = {{ X-A = \"a\\r\\nB: c\" }}")).unwrap_err();
        assert!(e.message.contains("control"), "{}", e.message);
        let e = hook(&format!("{TWILIO}credentials_file = \"cred\"")).unwrap_err();
        assert!(e.message.contains("absolute"), "{}", e.message);
        let e = hook(&format!("{TWILIO}timeout_seconds = 0")).unwrap_err();
        assert!(e.message.contains("timeout_seconds"), "{}", e.message);
        let e = hook("endpoints = [\"http://gw.example/x\"]\nbody = \"B={code}\"").unwrap_err();
        assert!(e.message.contains("clear text"), "{}", e.message);
        let e = hook("endpoints = [\"https://gw.example/x\"]").unwrap_err();
        assert!(e.message.contains("no body"), "{}", e.message);
        let c = hook(&format!(
            "{TWILIO}headers = {{ X-Token-Kind = \"sms\" }}\ndisplay_name = \"SMS\""
        ))
        .unwrap();
        assert_eq!(c.headers, vec![("X-Token-Kind".into(), "sms".into())]);
        assert_eq!(c.display_name, "SMS");
    }

    #[test]
    fn a_notice_body_carries_the_message_and_never_the_code() {
        let c = hook(&format!(
            "{TWILIO}notice_body = \"To={{to}}&From=+15005550006&Body={{message}}\"\nsms_field = \"Body\""
        ))
        .unwrap();
        assert!(c.notice_body.is_some());
        for (notice, says) in [
            ("To={to}&Body={message} {code}", "never carries a code"),
            ("To={to}&Body=locked", "must use {message}"),
            ("To={to}&Text={message}", "not a field of the body"),
        ] {
            let e = hook(&format!(
                "{TWILIO}notice_body = {notice:?}\nsms_field = \"Body\""
            ))
            .unwrap_err();
            assert!(e.message.contains(says), "{notice}: {}", e.message);
        }
        let e = hook("endpoints = [\"https://gw.example/x\"]\nbody = \"B={code} {message}\"")
            .unwrap_err();
        assert!(
            e.message.contains("belongs in notice_body"),
            "{}",
            e.message
        );
    }
}
