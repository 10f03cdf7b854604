//! `[mail]`: who code mails come from, what they say, and how they leave the machine: through
//! the local MTA's `sendmail` (the default when no server is listed), or through the SMTP
//! servers in `[[mail.servers]]`, tried in order.

mod dkim;
mod message_template;
mod server;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use toml::Spanned;

use super::address::EmailAddress;
use super::check::{self, SECOND};
use super::error::{Invalid, Location};
use super::raw::{RawMail, Text};

pub use self::dkim::DkimSettings;
pub use self::message_template::{
    DEFAULT_HTML, DEFAULT_SUBJECT, DEFAULT_TEXT, MessageOverrides, MessageTemplate,
    MessageTemplates, TemplateVar,
};
pub(super) use self::message_template::{TemplateKind, from_value};
pub use self::server::{
    DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_MESSAGES_PER_CONNECTION, Security, SmtpAuth, SmtpServer,
};

/// The longest sender display name; it goes into a header.
const MAX_FROM_NAME: usize = 128;

/// Where `sendmail` usually is; postfix, exim and msmtp all install one there.
pub const DEFAULT_SENDMAIL_PATH: &str = "/usr/sbin/sendmail";

/// How long a whole send may take, over every server, unless `total_timeout_seconds` says
/// otherwise.
pub const DEFAULT_TOTAL_TIMEOUT: Duration = Duration::from_secs(20);

/// How code mails are sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailConfig {
    /// The envelope and header sender.
    pub from: EmailAddress,
    /// A display name for the `From:` header, free of control characters.
    pub from_name: Option<String>,
    /// Where replies go, if not to `from`.
    pub reply_to: Option<EmailAddress>,
    /// How mail leaves the machine.
    pub transport: MailTransport,
    /// The SMTP servers in the order they are tried: never empty with
    /// [`MailTransport::Smtp`], names unique; always empty with [`MailTransport::Sendmail`].
    pub servers: Vec<SmtpServer>,
    /// The subject and bodies; profiles may replace them (see [`MessageOverrides`]).
    pub message: MessageTemplates,
    /// The longest a whole send may take, over every server tried.
    pub total_timeout: Duration,
    /// DKIM signing, when configured.
    pub dkim: Option<DkimSettings>,
}

/// How mail leaves the machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailTransport {
    /// The SMTP servers of [`MailConfig::servers`], tried in order.
    Smtp,
    /// The local MTA's `sendmail` program, which queues and retries on its own.
    Sendmail {
        /// The program, an absolute path.
        path: PathBuf,
    },
}

impl MailConfig {
    /// Checks `[mail]`. `text` is the whole file, to say on which line a duplicate server name
    /// was first used and to point into inline templates.
    pub(super) fn from_raw(raw: &Spanned<RawMail>, text: &str) -> Result<MailConfig, Invalid> {
        let mail = raw.get_ref();
        let Some(from) = &mail.from else {
            return Err(Invalid::new(
                raw.span(),
                "[mail] needs from = \"ADDRESS\", the sender of code mails",
            ));
        };
        let from = address("from", from)?;
        let from_name = mail.from_name.as_ref().map(from_name).transpose()?;
        let reply_to = mail
            .reply_to
            .as_ref()
            .map(|v| address("reply_to", v))
            .transpose()?;
        let (transport, servers) = transport(raw, text)?;
        let message = MessageTemplates::from_raw(
            mail.subject.as_ref(),
            mail.text_template.as_ref(),
            mail.html_template.as_ref(),
            text,
        )?;
        let total_timeout = match &mail.total_timeout_seconds {
            Some(v) => check::duration("total_timeout_seconds", v, 1, 120, SECOND)?,
            None => DEFAULT_TOTAL_TIMEOUT,
        };
        let dkim = mail.dkim.as_ref().map(DkimSettings::from_raw).transpose()?;
        Ok(MailConfig {
            from,
            from_name,
            reply_to,
            transport,
            servers,
            message,
            total_timeout,
            dkim,
        })
    }
}

impl MailConfig {
    /// The mail config of a relay (DMZ) host, which has no `[mail]`: SMTP with no server, so
    /// nothing is read or checked at start, and nothing could be sent if anything ever tried
    /// (a relay forwards every login, so nothing does).
    pub(super) fn unused_on_relay() -> MailConfig {
        MailConfig {
            from: EmailAddress::relay_placeholder(),
            from_name: None,
            reply_to: None,
            transport: MailTransport::Smtp,
            servers: Vec::new(),
            message: MessageTemplates::default(),
            total_timeout: DEFAULT_TOTAL_TIMEOUT,
            dkim: None,
        }
    }
}

/// `transport`, `sendmail_path` and `[[mail.servers]]`, which must agree: a server list that
/// would be ignored, or a sendmail path that would be, is a mistake worth stopping for.
fn transport(
    raw: &Spanned<RawMail>,
    text: &str,
) -> Result<(MailTransport, Vec<SmtpServer>), Invalid> {
    let mail = raw.get_ref();
    let kind = match &mail.transport {
        None => None,
        Some(v) => match v.get_ref().as_str() {
            "smtp" => Some(("smtp", v.span())),
            "sendmail" => Some(("sendmail", v.span())),
            other => {
                return Err(Invalid::new(
                    v.span(),
                    format!("transport must be \"smtp\" or \"sendmail\", got {other:?}"),
                ));
            }
        },
    };
    match (kind, &mail.servers) {
        (Some(("sendmail", _)) | None, None) => {
            let path = match &mail.sendmail_path {
                Some(v) => check::absolute_path("sendmail_path", v)?,
                None => PathBuf::from(DEFAULT_SENDMAIL_PATH),
            };
            Ok((MailTransport::Sendmail { path }, Vec::new()))
        }
        (Some(("sendmail", span)), Some(_)) => Err(Invalid::new(
            span,
            "transport = \"sendmail\" does not use [[mail.servers]]; remove them or set transport = \"smtp\"",
        )),
        (_, servers) => {
            if let Some(v) = &mail.sendmail_path {
                return Err(Invalid::new(
                    v.span(),
                    "sendmail_path is only used with transport = \"sendmail\"",
                ));
            }
            let Some(servers) = servers else {
                return Err(Invalid::new(
                    raw.span(),
                    "transport = \"smtp\" needs at least one [[mail.servers]] entry",
                ));
            };
            Ok((MailTransport::Smtp, smtp_servers(servers, text)?))
        }
    }
}

fn smtp_servers(
    servers: &Spanned<Vec<Spanned<super::raw::RawServer>>>,
    text: &str,
) -> Result<Vec<SmtpServer>, Invalid> {
    if servers.get_ref().is_empty() {
        return Err(Invalid::new(
            servers.span(),
            "mail.servers is empty; list at least one [[mail.servers]] entry, or leave mail.servers out to hand mail to the local sendmail",
        ));
    }
    // Name -> byte offset of its first use, to point back at it.
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut checked = Vec::with_capacity(servers.get_ref().len());
    for raw_server in servers.get_ref() {
        let (server, name_span) = SmtpServer::from_raw(raw_server)?;
        if let Some(&first) = seen.get(&server.name) {
            let line = Location::of_offset(text, first).line;
            return Err(Invalid::new(
                name_span,
                format!(
                    "mail server name {:?} is already used on line {line}; names must be unique",
                    server.name
                ),
            ));
        }
        seen.insert(server.name.clone(), name_span.start);
        checked.push(server);
    }
    Ok(checked)
}

fn address(key: &str, value: &Text) -> Result<EmailAddress, Invalid> {
    EmailAddress::parse(value.get_ref())
        .map_err(|why| Invalid::new(value.span(), format!("{key} is not a valid address: {why}")))
}

/// The display name: it lands in a `From:` header, so no control characters (a CR/LF would
/// start a new header), and short.
fn from_name(value: &Text) -> Result<String, Invalid> {
    let name = value.get_ref();
    let count = name.chars().count();
    if count == 0 || count > MAX_FROM_NAME || name.chars().any(char::is_control) {
        return Err(Invalid::new(
            value.span(),
            format!(
                "from_name must be 1 to {MAX_FROM_NAME} characters without control characters, got {name:?}"
            ),
        ));
    }
    Ok(name.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mail(body: &str) -> Result<MailConfig, Invalid> {
        #[derive(serde::Deserialize)]
        struct W {
            mail: Spanned<RawMail>,
        }
        let text = format!("[mail]\nfrom = \"otp@example.com\"\n{body}");
        let raw: W = toml::from_str(&text).unwrap();
        MailConfig::from_raw(&raw.mail, &text)
    }

    const SERVER: &str = "[[mail.servers]]\nname = \"s\"\nhost = \"h\"\nsecurity = \"tls\"\n";

    #[test]
    fn without_servers_mail_goes_to_the_local_sendmail() {
        let m = mail("").unwrap();
        assert_eq!(
            m.transport,
            MailTransport::Sendmail {
                path: PathBuf::from("/usr/sbin/sendmail")
            }
        );
        assert!(m.servers.is_empty());
        assert_eq!(m.total_timeout, Duration::from_secs(20));
        assert_eq!(m.message, MessageTemplates::default());
        assert_eq!((m.reply_to, m.dkim), (None, None));
        let m = mail("transport = \"sendmail\"\nsendmail_path = \"/usr/bin/msmtp\"").unwrap();
        assert_eq!(
            m.transport,
            MailTransport::Sendmail {
                path: PathBuf::from("/usr/bin/msmtp")
            }
        );
    }

    #[test]
    fn servers_mean_smtp_and_the_transport_must_agree_with_them() {
        let m = mail(SERVER).unwrap();
        assert_eq!(m.servers.len(), 1);
        assert_eq!(m.transport, MailTransport::Smtp);
        assert!(mail(&format!("transport = \"smtp\"\n{SERVER}")).is_ok());
        let e = mail("transport = \"smtp\"").unwrap_err();
        assert!(e.message.contains("needs at least one"), "{}", e.message);
        let e = mail(&format!("transport = \"sendmail\"\n{SERVER}")).unwrap_err();
        assert!(
            e.message.contains("does not use [[mail.servers]]"),
            "{}",
            e.message
        );
        let e = mail(&format!("sendmail_path = \"/usr/sbin/sendmail\"\n{SERVER}")).unwrap_err();
        assert!(e.message.contains("only used with"), "{}", e.message);
        let e = mail("transport = \"lmtp\"").unwrap_err();
        assert_eq!(
            e.message,
            "transport must be \"smtp\" or \"sendmail\", got \"lmtp\""
        );
        assert!(mail("sendmail_path = \"sendmail\"").is_err());
        let e = mail("servers = []").unwrap_err();
        assert!(e.message.contains("mail.servers is empty"), "{}", e.message);
    }

    #[test]
    fn from_name_refuses_control_characters() {
        let ok = mail(&format!("from_name = \"Login codes\"\n{SERVER}")).unwrap();
        assert_eq!(ok.from_name.as_deref(), Some("Login codes"));
        assert!(mail(&format!("from_name = \"x\\r\\nBcc: y\"\n{SERVER}")).is_err());
        assert!(mail(&format!("from_name = \"\"\n{SERVER}")).is_err());
    }

    #[test]
    fn reply_to_is_a_checked_address() {
        let m = mail("reply_to = \"helpdesk@example.com\"").unwrap();
        assert_eq!(m.reply_to.unwrap().as_str(), "helpdesk@example.com");
        let e = mail("reply_to = \"a@example.com\\nBcc: b@example.com\"").unwrap_err();
        assert!(
            e.message.starts_with("reply_to is not a valid address"),
            "{}",
            e.message
        );
    }

    #[test]
    fn the_total_timeout_is_bounded() {
        let m = mail("total_timeout_seconds = 5").unwrap();
        assert_eq!(m.total_timeout, Duration::from_secs(5));
        assert!(mail("total_timeout_seconds = 0").is_err());
        assert!(mail("total_timeout_seconds = 121").is_err());
    }

    #[test]
    fn templates_are_read_with_the_mail_section() {
        let m = mail("subject = \"Kod: {host}\"\ntext_template = \"Kodunuz {code}\"").unwrap();
        let render = |t: &MessageTemplate| t.render(|v| format!("<{}>", v.name()));
        assert_eq!(render(&m.message.subject), "Kod: <host>");
        assert_eq!(render(&m.message.text), "Kodunuz <code>");
        assert_eq!(m.message.html, MessageTemplates::default().html);
        let e = mail("html_template = \"<p>{code} {nope}</p>\"").unwrap_err();
        assert!(
            e.message.contains("unknown variable {nope}"),
            "{}",
            e.message
        );
    }

    #[test]
    fn dkim_is_read_with_the_mail_section() {
        let m = mail("[mail.dkim]\nselector = \"s1\"\ndomain = \"example.com\"\nkey_file = \"/etc/otpd/dkim.key\"\n")
            .unwrap();
        assert_eq!(m.dkim.unwrap().selector, "s1");
    }

    #[test]
    fn duplicate_server_names_point_at_the_second_and_name_the_first_line() {
        let e = mail(
            "[[mail.servers]]\nname = \"a\"\nhost = \"h\"\nsecurity = \"tls\"\n[[mail.servers]]\nname = \"a\"\nhost = \"i\"\nsecurity = \"tls\"\n",
        )
        .unwrap_err();
        assert_eq!(
            e.message,
            "mail server name \"a\" is already used on line 4; names must be unique"
        );
    }
}
