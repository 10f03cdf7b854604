//! Audit events: a row in the database and a `key=value` line in the log for each.
//!
//! The log line is written for fail2ban and friends (`event=wrong_code ... rhost=<HOST>`); every
//! value is escaped so an attacker-chosen user name or host cannot forge a second line or a
//! second key. Neither the row nor the line ever contains a code.

use common::text::escape_for_log;
use common::wire::LoginContext;

use crate::caller::Origin;
use crate::store::{AuditRecord, Store};

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A code was issued.
    Issued,
    /// A login inside the resend cooldown reused the live code; nothing was mailed.
    Reused,
    /// A mail server accepted the code mail.
    Mailed,
    /// No server accepted it (or there was no usable address); the code was invalidated.
    MailFailed,
    /// The right code was given.
    Verified,
    /// A wrong code was given.
    WrongCode,
    /// An answer to an expired, used, superseded or exhausted code.
    CodeDead,
    /// The user or remote host is locked out.
    Locked,
    /// Mail caps reached; no code sent.
    RateLimited,
    /// The login needs no code.
    Skipped,
    /// The caller may not act for the user it named.
    RefusedCaller,
}

impl Event {
    /// The name used in audit rows and log lines.
    pub fn as_str(self) -> &'static str {
        match self {
            Event::Issued => "issued",
            Event::Reused => "reused",
            Event::Mailed => "mailed",
            Event::MailFailed => "mail_failed",
            Event::Verified => "verified",
            Event::WrongCode => "wrong_code",
            Event::CodeDead => "code_dead",
            Event::Locked => "locked",
            Event::RateLimited => "rate_limited",
            Event::Skipped => "skipped",
            Event::RefusedCaller => "refused_caller",
        }
    }
}

/// The facts every audit event carries.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    /// The login, as the module reported it.
    pub login: &'a LoginContext,
    /// The protocol it resolved to, when known.
    pub protocol: Option<&'a str>,
    /// The uid of the process that asked.
    pub caller_uid: u32,
    /// Whether the login's `rhost` is the caller's report or `local`.
    pub origin: Origin,
}

/// Records `event` in the database and the log. A failure to write the row is logged, never
/// fatal to the login's outcome: the log line has been written already.
pub fn record(
    store: &mut Store,
    now: i64,
    event: Event,
    subject: Subject<'_>,
    detail: Option<&str>,
) {
    tracing::info!(target: "otpd::audit", "{}", log_line(event, subject, detail));
    let row = AuditRecord {
        time: now,
        event: event.as_str(),
        user: Some(&subject.login.user),
        service: Some(&subject.login.service),
        protocol: subject.protocol,
        rhost: subject.login.rhost.as_deref(),
        caller_uid: Some(subject.caller_uid),
        detail,
    };
    if let Err(e) = store.record_audit(&row) {
        tracing::error!(
            "cannot write audit row for {}: {}",
            event.as_str(),
            escape_for_log(&e.to_string())
        );
    }
}

/// The `key=value` line for an event.
pub fn log_line(event: Event, subject: Subject<'_>, detail: Option<&str>) -> String {
    let mut line = format!(
        "event={} user={} service={} protocol={} rhost={} caller_uid={}",
        event.as_str(),
        value(&subject.login.user),
        value(&subject.login.service),
        value(subject.protocol.unwrap_or("-")),
        value(subject.login.rhost.as_deref().unwrap_or("-")),
        subject.caller_uid,
    );
    if let Some(detail) = detail {
        line.push_str(" detail=");
        line.push_str(&value(detail));
    }
    line
}

/// A value as one token: [`escape_for_log`] (which leaves no line break, control, hidden
/// character or `=`), and spaces written `\x20`. An empty value is written `-`. Every audit
/// log line, otpctl's included, uses it.
pub(crate) fn value(raw: &str) -> String {
    if raw.is_empty() {
        return "-".to_string();
    }
    escape_for_log(raw).replace(' ', "\\x20")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_stay_one_token() {
        assert_eq!(value("a b=c\nd"), "a\\x20b\\x3dc\\x0ad");
        assert_eq!(value(""), "-");
    }

    #[test]
    fn log_line_stays_one_line_with_hostile_values() {
        let login = LoginContext {
            user: "eve\nevent=verified user=root".into(),
            service: "sshd".into(),
            rhost: Some("10.0.0.1 x".into()),
            tty: None,
            protocol: None,
        };
        let line = log_line(
            Event::WrongCode,
            Subject {
                login: &login,
                protocol: Some("ssh"),
                caller_uid: 0,
                origin: Origin::Reported,
            },
            None,
        );
        assert!(!line.contains('\n'));
        assert_eq!(line.matches("event=").count(), 1);
        assert!(line.contains("rhost=10.0.0.1\\x20x"));
        assert!(line.starts_with("event=wrong_code user=eve\\x0aevent\\x3dverified"));
    }
}
