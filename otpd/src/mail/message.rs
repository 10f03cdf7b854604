//! The message that carries a code: who it is for, the host and service, and when it expires.
//!
//! Every value that came from outside (user name, service, remote host) is stripped of control
//! characters and capped before it reaches a header or body, so a user name carrying CR/LF cannot
//! add headers or SMTP commands.

use common::config::EmailAddress;
use common::secret::SecretString;
use common::text::strip_for_mail;
use lettre::Message;
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Mailbox, SinglePart};

use crate::timefmt;

/// The longest user name, service or host that is written into a mail.
const MAX_MAIL_FIELD: usize = 128;

/// What a code mail says.
#[derive(Debug)]
pub struct CodeMail<'a> {
    /// Recipient.
    pub to: &'a EmailAddress,
    /// The login's user name.
    pub user: &'a str,
    /// The code itself.
    pub code: &'a SecretString,
    /// This machine's name.
    pub host: &'a str,
    /// The PAM service.
    pub service: &'a str,
    /// The protocol the code is for.
    pub protocol: &'a str,
    /// Where the login comes from, if known.
    pub rhost: Option<&'a str>,
    /// When the code was issued (Unix seconds).
    pub issued_at: i64,
    /// When it expires (Unix seconds).
    pub expires_at: i64,
}

/// Why a message could not be built.
#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    /// An address did not pass lettre's checked parser.
    #[error("invalid address {0:?}: {1}")]
    Address(String, String),
    /// lettre refused to build the message.
    #[error("cannot build message: {0}")]
    Build(String),
}

/// The sender, as configured.
#[derive(Debug, Clone)]
pub struct Sender {
    /// `[mail] from`.
    pub from: EmailAddress,
    /// `[mail] from_name`.
    pub from_name: Option<String>,
}

/// Builds the message for `mail`.
pub fn build(sender: &Sender, mail: &CodeMail<'_>) -> Result<Message, MessageError> {
    let from = mailbox(sender.from_name.clone(), &sender.from)?;
    let to = mailbox(None, mail.to)?;
    let user = strip_for_mail(mail.user, MAX_MAIL_FIELD);
    let host = strip_for_mail(mail.host, MAX_MAIL_FIELD);
    let valid_minutes = (mail.expires_at - mail.issued_at).max(0) / 60;
    Message::builder()
        .from(from)
        .to(to)
        .subject(format!("Your login code for {host}"))
        .message_id(None)
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("Auto-Submitted"),
            "auto-generated".to_string(),
        ))
        .singlepart(
            SinglePart::builder()
                .header(ContentType::TEXT_PLAIN)
                .body(text_body(mail, &user, &host, valid_minutes)),
        )
        .map_err(|e| MessageError::Build(e.to_string()))
}

fn text_body(mail: &CodeMail<'_>, user: &str, host: &str, valid_minutes: i64) -> String {
    let service = strip_for_mail(mail.service, MAX_MAIL_FIELD);
    let from = mail
        .rhost
        .map(|r| format!(" from {}", strip_for_mail(r, MAX_MAIL_FIELD)))
        .unwrap_or_default();
    format!(
        "Your login code is: {code}\n\n\
         It is for user {user} on {host} ({service}, {protocol}{from}).\n\
         Issued: {issued}\n\
         Expires: {expires} ({valid_minutes} minutes).\n\n\
         If you did not try to log in, do not share this code and tell your administrator:\n\
         somebody may know your password.\n",
        code = mail.code.expose(),
        protocol = mail.protocol,
        issued = timefmt::utc(mail.issued_at),
        expires = timefmt::utc(mail.expires_at),
    )
}

fn mailbox(name: Option<String>, address: &EmailAddress) -> Result<Mailbox, MessageError> {
    let parsed: lettre::Address =
        address
            .as_str()
            .parse()
            .map_err(|e: lettre::address::AddressError| {
                MessageError::Address(address.as_str().to_string(), e.to_string())
            })?;
    Ok(Mailbox::new(name, parsed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sender() -> Sender {
        Sender {
            from: EmailAddress::parse("otp@example.com").unwrap(),
            from_name: Some("Login codes".into()),
        }
    }

    #[test]
    fn message_carries_code_user_host_service_and_expiry() {
        let to = EmailAddress::parse("alice@example.com").unwrap();
        let code = SecretString::new("123456".into());
        let mail = CodeMail {
            to: &to,
            user: "alice",
            code: &code,
            host: "box1",
            service: "sshd",
            protocol: "ssh",
            rhost: Some("192.0.2.7"),
            issued_at: 1_795_351_500,
            expires_at: 1_795_352_100,
        };
        let text = String::from_utf8(build(&sender(), &mail).unwrap().formatted()).unwrap();
        assert!(text.contains("123456"));
        assert!(text.contains("alice on box1 (sshd, ssh from 192.0.2.7)"));
        assert!(text.contains("Expires: 2026-11-22 12:55:00 UTC (10 minutes)"));
        assert!(text.contains("Auto-Submitted: auto-generated"));
        assert!(text.contains("Message-ID:"));
        assert!(text.contains("Date:"));
    }

    #[test]
    fn control_characters_in_untrusted_fields_cannot_inject() {
        let to = EmailAddress::parse("alice@example.com").unwrap();
        let code = SecretString::new("123456".into());
        let mail = CodeMail {
            to: &to,
            user: "eve\r\nBcc: victim@example.com",
            code: &code,
            host: "box1",
            service: "sshd\n.\nMAIL FROM:<x@y>",
            protocol: "ssh",
            rhost: Some("h\r\nX-Evil: 1"),
            issued_at: 0,
            expires_at: 600,
        };
        let text = String::from_utf8(build(&sender(), &mail).unwrap().formatted()).unwrap();
        assert!(!text.contains("\r\nBcc:"));
        assert!(!text.contains("\r\nX-Evil"));
        assert!(!text.contains("\n.\n"));
        assert!(text.contains("eveBcc: victim@example.com"));
    }
}
