//! The messages otpd sends: the code mail, the admin's test mail and the notifications.
//!
//! A code mail is multipart/alternative (text and HTML, both from templates) with Date,
//! Message-ID and `Auto-Submitted: auto-generated` (so vacation responders stay quiet). Both
//! bodies always carry a transfer encoding (quoted-printable, or base64 for non-ASCII text), and
//! non-ASCII headers are RFC 2047-encoded, so the whole message is 7-bit ASCII: no template or
//! login text reaches the SMTP stream as a raw line, and any server takes it without 8BITMIME.
//! Addresses go through lettre's checked parser only.

use common::config::{EmailAddress, MessageOverrides, MessageTemplates, NoticeTexts};
use lettre::message::header::{ContentTransferEncoding, ContentType, HeaderName, HeaderValue};
use lettre::message::{Body, Mailbox, MultiPart, SinglePart};
use lettre::{Address, Message};
use rand::TryRngCore;
use rand::rngs::OsRng;
use zeroize::Zeroizing;

use super::dkim::Dkim;
use super::render::{self, NoticeValues, Values};

/// What a code mail says: the facts its templates can show, and the profile's own wording.
#[derive(Debug)]
pub struct CodeMail<'a> {
    /// The recipient, the code and the login it is for: what `{variables}` become.
    pub values: Values<'a>,
    /// The subject and bodies the login's profile replaces (`Settings::message`).
    pub overrides: &'a MessageOverrides,
}

/// Why a message could not be built.
#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    /// An address did not pass lettre's checked parser.
    #[error("invalid address {0:?}: {1}")]
    Address(String, String),
    /// The user has no mail address (they are reached by phone only).
    #[error("the user has no mail address")]
    NoAddress,
    /// lettre refused to build the message.
    #[error("cannot build message: {0}")]
    Build(String),
}

/// Who mails come from and what they say, as configured.
#[derive(Debug)]
pub struct Sender {
    /// `[mail] from` with `from_name`.
    pub from: Mailbox,
    /// `[mail] reply_to`.
    pub reply_to: Option<Mailbox>,
    /// `[mail]` subject and bodies.
    pub templates: MessageTemplates,
    /// DKIM signing, when configured.
    pub dkim: Option<Dkim>,
}

/// A message ready for the wire: the envelope and the formatted bytes, which are wiped from
/// memory when dropped because a code mail's bytes hold the code.
pub struct Outgoing {
    /// The envelope sender and recipient.
    pub envelope: lettre::address::Envelope,
    /// The message as sent, CRLF line ends, 7-bit ASCII.
    pub bytes: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for Outgoing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outgoing")
            .field("envelope", &self.envelope)
            .field("bytes", &self.bytes.len())
            .finish_non_exhaustive()
    }
}

impl Sender {
    /// The sender from the config's checked addresses.
    pub fn new(
        from: &EmailAddress,
        from_name: Option<&str>,
        reply_to: Option<&EmailAddress>,
        templates: MessageTemplates,
        dkim: Option<Dkim>,
    ) -> Result<Sender, MessageError> {
        Ok(Sender {
            from: Mailbox::new(from_name.map(str::to_string), address(from)?),
            reply_to: reply_to
                .map(|a| address(a).map(|a| Mailbox::new(None, a)))
                .transpose()?,
            templates,
            dkim,
        })
    }
}

/// Builds the code mail.
pub fn code_mail(sender: &Sender, mail: &CodeMail<'_>) -> Result<Outgoing, MessageError> {
    let templates = sender.templates.with(mail.overrides);
    let values = &mail.values;
    // The policy routes no mail to a user reached by phone only; were one asked for, it fails.
    let to = values.to.ok_or(MessageError::NoAddress)?;
    let subject = values.render_plain(&templates.subject);
    let text = Zeroizing::new(values.render_plain(&templates.text));
    let html = Zeroizing::new(values.render_html(&templates.html));
    let body = MultiPart::alternative()
        .singlepart(part(ContentType::TEXT_PLAIN, &text)?)
        .singlepart(part(ContentType::TEXT_HTML, &html)?);
    finish(sender, to, subject, body)
}

/// Builds the admin's test message for the server `server` on host `host`.
pub fn test_mail(
    sender: &Sender,
    to: &EmailAddress,
    host: &str,
    server: &str,
) -> Result<Outgoing, MessageError> {
    let host = render::clean(host);
    let text = format!(
        "This is a test message from otpd on {host}, sent through the mail server \"{server}\".\n\n\
         It carries no login code. If it arrived, login codes from {host} can reach this mailbox.\n"
    );
    let html = format!(
        "<p>{}</p>",
        render::escape_html(&text).replace("\n\n", "</p><p>")
    );
    let body = MultiPart::alternative()
        .singlepart(part(ContentType::TEXT_PLAIN, &text)?)
        .singlepart(part(ContentType::TEXT_HTML, &html)?);
    finish(sender, to, format!("otpd test message from {host}"), body)
}

/// What a notification says: its texts and the facts they can show. It never holds a code.
#[derive(Debug, Clone, Copy)]
pub struct NoticeMail<'a> {
    /// Where it goes.
    pub to: &'a EmailAddress,
    /// The subject and text of its kind.
    pub texts: &'a NoticeTexts,
    /// The facts.
    pub values: &'a NoticeValues<'a>,
}

/// Builds a notification: the text template as text/plain and, escaped, as HTML.
pub fn notice_mail(sender: &Sender, notice: &NoticeMail<'_>) -> Result<Outgoing, MessageError> {
    let subject = notice.values.render(&notice.texts.subject);
    let text = notice.values.render(&notice.texts.text);
    let html = format!(
        "<p>{}</p>",
        render::escape_html(&text)
            .replace("\n\n", "</p><p>")
            .replace('\n', "<br>\n")
    );
    let body = MultiPart::alternative()
        .singlepart(part(ContentType::TEXT_PLAIN, &text)?)
        .singlepart(part(ContentType::TEXT_HTML, &html)?);
    finish(sender, notice.to, subject, body)
}

fn finish(
    sender: &Sender,
    to: &EmailAddress,
    subject: String,
    body: MultiPart,
) -> Result<Outgoing, MessageError> {
    let mut builder = Message::builder()
        .from(sender.from.clone())
        .to(Mailbox::new(None, address(to)?))
        .subject(subject)
        .date_now()
        .message_id(Some(message_id(&sender.from.email)?))
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("Auto-Submitted"),
            "auto-generated".to_string(),
        ));
    if let Some(reply_to) = &sender.reply_to {
        builder = builder.reply_to(reply_to.clone());
    }
    let mut message = builder
        .multipart(body)
        .map_err(|e| MessageError::Build(e.to_string()))?;
    if let Some(dkim) = &sender.dkim {
        dkim.sign(&mut message);
    }
    let bytes = Zeroizing::new(message.formatted());
    if !bytes.is_ascii() {
        // Cannot happen with encoded bodies and headers; refusing keeps the promise that no
        // raw 8-bit text reaches a server.
        return Err(MessageError::Build(
            "the formatted message is not 7-bit ASCII".into(),
        ));
    }
    Ok(Outgoing {
        envelope: message.envelope().clone(),
        bytes,
    })
}

/// Random bits in a Message-ID: unique without any record of the ones used before.
const MESSAGE_ID_RANDOM_BYTES: usize = 16;

/// A fresh Message-ID in the sender's domain, `<32 hex digits@domain>`. lettre's own uses the
/// short host name (`@vm`), which names no domain and makes spam filters score the mail down;
/// the sender's domain is one the sender controls, so the id is unique there (RFC 5322 3.6.4).
fn message_id(from: &Address) -> Result<String, MessageError> {
    let mut random = [0u8; MESSAGE_ID_RANDOM_BYTES];
    OsRng
        .try_fill_bytes(&mut random)
        .map_err(|e| MessageError::Build(format!("no OS randomness for the Message-ID: {e}")))?;
    Ok(message_id_from(&random, from.domain()))
}

/// [`message_id`] from given random bytes. A domain that cannot stand in a Message-ID as it is
/// (an international name, an address literal) gives way to this machine's name, so the
/// message stays 7-bit ASCII.
fn message_id_from(random: &[u8], domain: &str) -> String {
    let hex: String = random.iter().map(|b| format!("{b:02x}")).collect();
    let domain = if fits_message_id(domain) {
        domain.to_string()
    } else {
        nix::unistd::gethostname()
            .ok()
            .and_then(|name| name.into_string().ok())
            .filter(|name| fits_message_id(name))
            .unwrap_or_else(|| "localhost".to_string())
    };
    format!("<{hex}@{domain}>")
}

/// True for a name that stands in a Message-ID as it is: ASCII letters, digits, '-' and '.'.
fn fits_message_id(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
}

/// One body part, always with a transfer encoding: quoted-printable keeps ASCII text readable
/// in the raw message; base64 is shorter for other scripts.
fn part(content_type: ContentType, text: &str) -> Result<SinglePart, MessageError> {
    let encoding = if text.is_ascii() {
        ContentTransferEncoding::QuotedPrintable
    } else {
        ContentTransferEncoding::Base64
    };
    let body = Body::new_with_encoding(text.to_string(), encoding)
        .map_err(|_| MessageError::Build(format!("cannot encode a body as {encoding:?}")))?;
    Ok(SinglePart::builder().header(content_type).body(body))
}

/// An address through lettre's checked parser (never an unchecked constructor).
fn address(address: &EmailAddress) -> Result<Address, MessageError> {
    address
        .as_str()
        .parse()
        .map_err(|e: lettre::address::AddressError| {
            MessageError::Address(address.as_str().to_string(), e.to_string())
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::config::{MessageTemplate, MessageTemplates};
    use std::sync::Arc;

    fn sender(templates: MessageTemplates) -> Sender {
        Sender::new(
            &EmailAddress::parse("otp@example.com").unwrap(),
            Some("Giriş kodları"),
            None,
            templates,
            None,
        )
        .unwrap()
    }

    fn send(user: &str, rhost: Option<&str>, overrides: &MessageOverrides) -> String {
        render::tests::with(user, rhost, |values| {
            let mail = CodeMail { values, overrides };
            let out = code_mail(&sender(MessageTemplates::default()), &mail).unwrap();
            String::from_utf8(out.bytes.to_vec()).unwrap()
        })
    }

    /// The decoded text of every quoted-printable part.
    fn decoded_qp(raw: &str) -> String {
        raw.replace("=\r\n", "").replace("=3D", "=")
    }

    #[test]
    fn the_message_has_both_parts_and_the_required_headers() {
        let raw = send("alice", Some("192.0.2.7"), &MessageOverrides::default());
        assert!(raw.contains("Content-Type: multipart/alternative"));
        assert!(raw.contains("Content-Type: text/plain; charset=utf-8"));
        assert!(raw.contains("Content-Type: text/html; charset=utf-8"));
        assert!(raw.contains("Auto-Submitted: auto-generated\r\n"));
        assert!(raw.contains("Message-ID: <"));
        assert!(raw.contains("Date: "));
        assert!(raw.contains("To: alice@example.com\r\n"));
        let text = decoded_qp(&raw);
        assert!(text.contains("Your login code is: 123456"), "{text}");
        assert!(text.contains("alice on box1 (sshd, ssh from 192.0.2.7)"));
        assert!(text.contains("Expires: 2026-11-22 12:55:00 UTC (10 minutes)"));
    }

    #[test]
    fn every_body_has_a_transfer_encoding_and_the_message_is_ascii() {
        let raw = send("alice", None, &MessageOverrides::default());
        assert_eq!(
            raw.matches("Content-Transfer-Encoding: quoted-printable")
                .count(),
            2
        );
        assert!(!raw.contains("Content-Transfer-Encoding: 7bit"));
        assert!(!raw.contains("Content-Transfer-Encoding: 8bit"));
        assert!(raw.is_ascii());
    }

    #[test]
    fn control_characters_in_untrusted_fields_cannot_inject() {
        let raw = send(
            "eve\r\nBcc: victim@example.com\r\n.\r\nMAIL FROM:<x@y>",
            Some("h\r\nX-Evil: 1"),
            &MessageOverrides::default(),
        );
        assert!(!raw.contains("\r\nBcc:"));
        assert!(!raw.contains("\r\nX-Evil"));
        assert!(!raw.contains("\r\n.\r\n"));
        assert!(!raw.contains("\r\nMAIL FROM"));
        assert!(decoded_qp(&raw).contains("eveBcc: victim@example.com.MAIL FROM:<x@y>"));
    }

    #[test]
    fn utf8_subjects_and_bodies_are_encoded_not_sent_raw() {
        let overrides = MessageOverrides {
            subject: Some(template(
                "subject = \"Giriş kodunuz / ログインコード {host}\"",
            )),
            text: Some(template("text_template = \"Kodunuz: {code} — ログイン\"")),
            html: None,
        };
        let raw = send("ayşe", None, &overrides);
        assert!(raw.is_ascii(), "{raw}");
        assert!(raw.contains("Subject: =?utf-8?"), "{raw}");
        assert!(raw.contains("Content-Transfer-Encoding: base64"));
        assert!(!raw.contains("Giriş"));
    }

    #[test]
    fn a_profile_override_replaces_only_its_part() {
        let overrides = MessageOverrides {
            subject: Some(template("subject = \"Admin code for {user}\"")),
            text: None,
            html: None,
        };
        let raw = send("root", None, &overrides);
        assert!(raw.contains("Subject: Admin code for root\r\n"), "{raw}");
        assert!(decoded_qp(&raw).contains("Your login code is: 123456"));
    }

    #[test]
    fn the_test_mail_names_the_server_and_carries_no_code() {
        let to = EmailAddress::parse("admin@example.com").unwrap();
        let out = test_mail(&sender(MessageTemplates::default()), &to, "box1", "relay").unwrap();
        let raw = decoded_qp(std::str::from_utf8(&out.bytes).unwrap());
        assert!(
            raw.contains("sent through the mail server \"relay\""),
            "{raw}"
        );
        assert_eq!(out.envelope.to().len(), 1);
        assert_eq!(out.envelope.from().unwrap().to_string(), "otp@example.com");
    }

    /// The value of the one Message-ID header in `raw`.
    fn message_id_of(raw: &str) -> String {
        let ids: Vec<&str> = raw
            .split("\r\n")
            .filter_map(|line| line.strip_prefix("Message-ID: "))
            .collect();
        assert_eq!(ids.len(), 1, "{raw}");
        ids[0].to_string()
    }

    #[test]
    fn the_message_id_is_random_hex_at_the_senders_domain_not_the_host_name() {
        let first = message_id_of(&send("alice", None, &MessageOverrides::default()));
        let second = message_id_of(&send("alice", None, &MessageOverrides::default()));
        for id in [&first, &second] {
            let random = id
                .strip_prefix('<')
                .and_then(|id| id.strip_suffix("@example.com>"))
                .unwrap_or_else(|| panic!("{id}"));
            assert_eq!(random.len(), 2 * MESSAGE_ID_RANDOM_BYTES, "{id}");
            assert!(random.chars().all(|c| c.is_ascii_hexdigit()), "{id}");
        }
        assert_ne!(first, second);
    }

    #[test]
    fn a_sender_domain_that_cannot_stand_in_a_message_id_gives_way_to_the_host_name() {
        let random = [0xab; MESSAGE_ID_RANDOM_BYTES];
        let hex = "ab".repeat(MESSAGE_ID_RANDOM_BYTES);
        assert_eq!(
            message_id_from(&random, "mail.example.com"),
            format!("<{hex}@mail.example.com>")
        );
        for domain in ["bücher.example", "[192.0.2.1]", ""] {
            let id = message_id_from(&random, domain);
            let right = id
                .strip_prefix(&format!("<{hex}@"))
                .and_then(|rest| rest.strip_suffix('>'))
                .unwrap();
            assert!(fits_message_id(right) && right != domain, "{domain}: {id}");
        }
    }

    #[test]
    fn dkim_signs_the_message_id_the_mail_carries() {
        let dir = tempfile::tempdir().unwrap();
        let key_file = dir.path().join("dkim.key");
        // 32 zero bytes in base64: a valid (if silly) Ed25519 seed.
        std::fs::write(&key_file, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n").unwrap();
        std::fs::set_permissions(
            &key_file,
            <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o600),
        )
        .unwrap();
        let settings = common::config::DkimSettings {
            selector: "s1".into(),
            domain: "example.com".into(),
            key_file,
        };
        let mut signing = sender(MessageTemplates::default());
        signing.dkim = Some(Dkim::load(&settings, false).unwrap());
        let to = EmailAddress::parse("admin@example.com").unwrap();
        let out = test_mail(&signing, &to, "box1", "relay").unwrap();
        let raw = std::str::from_utf8(&out.bytes).unwrap();
        assert!(message_id_of(raw).ends_with("@example.com>"), "{raw}");
        let signature = raw
            .split("\r\n")
            .skip_while(|line| !line.starts_with("DKIM-Signature:"))
            .take_while(|line| line.starts_with("DKIM-Signature:") || line.starts_with([' ', '\t']))
            .collect::<String>()
            .replace([' ', '\t'], "");
        let signed = signature
            .split(';')
            .find_map(|tag| tag.strip_prefix("h="))
            .unwrap_or_else(|| panic!("{signature}"));
        assert!(
            signed
                .split(':')
                .any(|h| h.eq_ignore_ascii_case("Message-ID")),
            "{signature}"
        );
    }

    /// A template through the real config parser, so tests use only what a config can say.
    fn template(line: &str) -> Arc<MessageTemplate> {
        let text = format!("[mail]\nfrom = \"otp@example.com\"\n{line}\n");
        let config = common::config::Config::parse(&text, std::path::Path::new("/t.toml")).unwrap();
        let m = config.mail.message;
        if line.starts_with("subject") {
            m.subject
        } else if line.starts_with("text") {
            m.text
        } else {
            m.html
        }
    }
}
