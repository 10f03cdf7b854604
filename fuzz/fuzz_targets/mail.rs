//! The mail templates: the code mail (and the test and recovery-notice mails) rendered from login
//! facts a local user controls (user name, remote host, service) and from the admin's subject
//! and body templates.
//!
//! The input is split on NUL into: user, host, service, protocol, rhost, subject template, text
//! template (missing fields are empty; a field that is not UTF-8 is read lossily). The templates
//! go through the config parser as a `[mail]` section would; when it refuses them the built-in
//! ones are used, so every input still renders a mail.
//!
//! Properties:
//! - nothing panics, and a code mail to a good address is always built: no user name can make
//!   its own login fail for want of a mail;
//! - the message is 7-bit ASCII with CRLF line ends only (no bare CR or LF);
//! - its header block holds exactly the headers otpd writes, each once: no value can start a
//!   header of its own (a `Bcc:`) or end the headers early;
//! - the rendered subject has no control characters, and each cleaned login value has none and
//!   is capped;
//! - `[directory] email_template` never lets a user name move the address to another domain.
#![no_main]

use common::config::{Config, EmailAddress, MessageOverrides, MessageTemplates, TemplateVar};
use common::secret::SecretString;
use libfuzzer_sys::fuzz_target;
use otpd::mail::message::{self, CodeMail, NoticeMail, Sender};
use otpd::mail::render::NoticeValues;
use otpd::mail::render::{self, Values};

const DOMAIN: &str = "example.com";

/// The headers of a code mail, as otpd writes them; with `reply_to` set, also `Reply-To`.
const CODE_MAIL_HEADERS: [&str; 8] = [
    "from",
    "to",
    "subject",
    "date",
    "message-id",
    "auto-submitted",
    "mime-version",
    "content-type",
];

/// The `[mail]` templates from `subject` and `text`, or the built-in ones when the config parser
/// refuses them (a template without `{code}`, an unknown variable, a control character...).
fn templates(subject: &str, text: &str) -> (MessageTemplates, Option<Config>) {
    let quoted = |s: &str| toml::Value::String(s.to_string()).to_string();
    let config = format!(
        "[directory]\nemail_template = \"{{user}}@{DOMAIN}\"\n\
         [mail]\nfrom = \"otp@{DOMAIN}\"\nsubject = {}\ntext_template = {}\n\
         [[mail.servers]]\nname = \"local\"\nhost = \"127.0.0.1\"\nsecurity = \"none\"\n",
        quoted(subject),
        quoted(text),
    );
    match Config::parse(&config, std::path::Path::new("fuzz.toml")) {
        Ok(config) => (config.mail.message.clone(), Some(config)),
        Err(_) => (MessageTemplates::default(), None),
    }
}

/// Checks a formatted message: ASCII, CRLF only, and exactly `expected` headers, each once.
fn check_message(bytes: &[u8], expected: &[&str]) {
    assert!(bytes.is_ascii(), "a message that is not 7-bit ASCII");
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'\n' => assert!(i > 0 && bytes[i - 1] == b'\r', "a bare LF at byte {i}"),
            b'\r' => assert!(bytes.get(i + 1) == Some(&b'\n'), "a bare CR at byte {i}"),
            _ => {}
        }
    }
    let text = std::str::from_utf8(bytes).expect("ASCII is UTF-8");
    let (head, _body) = text
        .split_once("\r\n\r\n")
        .expect("a message has a header block");
    let mut seen: Vec<String> = Vec::new();
    for line in head.split("\r\n") {
        if line.starts_with([' ', '\t']) {
            assert!(!seen.is_empty(), "a continuation line before any header");
            continue;
        }
        let (name, _) = line
            .split_once(':')
            .unwrap_or_else(|| panic!("a header line without a colon: {line:?}"));
        let name = name.to_ascii_lowercase();
        assert!(
            expected.contains(&name.as_str()),
            "an unexpected header {name:?} in {head:?}"
        );
        assert!(!seen.contains(&name), "header {name:?} twice in {head:?}");
        seen.push(name);
    }
    assert_eq!(
        seen.len(),
        expected.len(),
        "headers {seen:?}, expected {expected:?}"
    );
}

fuzz_target!(|data: &[u8]| {
    let mut fields = data.split(|&b| b == 0).map(String::from_utf8_lossy);
    let mut next = || fields.next().unwrap_or_default();
    let (user, host, service, protocol, rhost) = (next(), next(), next(), next(), next());
    let (subject, text) = (next(), next());
    let rhost = (!rhost.is_empty()).then_some(&*rhost);

    for value in [&user, &host, &service, &protocol] {
        let clean = render::clean(value);
        assert!(!clean.chars().any(char::is_control), "{clean:?}");
        assert!(clean.chars().count() <= render::MAX_VALUE_CHARS);
    }

    let (templates, config) = templates(&subject, &text);
    let default_to = EmailAddress::parse(&format!("alice@{DOMAIN}")).expect("a good address");
    // The user's own address from the directory template, when the user name makes one.
    let directory_to = config
        .as_ref()
        .and_then(|c| c.directory.email_template.as_ref())
        .and_then(|t| t.address_for(&user));
    if let Some(to) = &directory_to {
        let domain = to.as_str().rsplit_once('@').map(|(_, d)| d);
        assert_eq!(
            domain,
            Some(DOMAIN),
            "user {user:?} moved the address to {to:?}"
        );
    }

    let from = EmailAddress::parse(&format!("otp@{DOMAIN}")).expect("a good address");
    let sender = Sender::new(&from, Some("Login codes"), None, templates.clone(), None)
        .expect("the sender builds");
    let code = SecretString::new("12345678".to_string());
    let overrides = MessageOverrides::default();
    for to in std::iter::once(&default_to).chain(directory_to.as_ref()) {
        let values = Values {
            code: &code,
            to: Some(to),
            user: &user,
            host: &host,
            service: &service,
            protocol: &protocol,
            rhost,
            issued_at: 1_795_351_500,
            expires_at: 1_795_352_100,
        };
        let rendered_subject = values.render_plain(&templates.subject);
        assert!(
            !rendered_subject.chars().any(char::is_control),
            "a control character in the subject {rendered_subject:?}"
        );
        for var in TemplateVar::ALL {
            assert!(!values.plain(var).chars().any(char::is_control));
        }
        let mail = CodeMail {
            values,
            overrides: &overrides,
        };
        match message::code_mail(&sender, &mail) {
            Ok(out) => check_message(&out.bytes, &CODE_MAIL_HEADERS),
            // An address EmailAddress accepts but lettre refuses fails the login closed; only the
            // directory's address can be such an address, never the fixed one.
            Err(message::MessageError::Address(..)) if !std::ptr::eq(to, &default_to) => {}
            Err(e) => panic!("no code mail for user {user:?}: {e}"),
        }
    }

    let out =
        message::test_mail(&sender, &default_to, &host, &service).expect("the test mail builds");
    check_message(&out.bytes, &CODE_MAIL_HEADERS);
    let notifications = common::config::NotificationsConfig::default();
    for kind in common::config::NoticeKind::ALL {
        let texts = notifications.texts(kind);
        let values = NoticeValues {
            user: &user,
            to: Some(&default_to),
            host: &host,
            service: &service,
            rhost,
            when: 1_800_000_000,
            detail: &user,
        };
        let notice = NoticeMail {
            to: &default_to,
            texts: &texts,
            values: &values,
        };
        let out = message::notice_mail(&sender, &notice).expect("the notice builds");
        check_message(&out.bytes, &CODE_MAIL_HEADERS);
    }
});
