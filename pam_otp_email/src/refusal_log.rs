//! The one syslog line (LOG_AUTHPRIV, through pam_syslog) for a login this module refused or
//! could not check.
//!
//! sshd only logs `Connection closed by authenticating user` for a login that failed in PAM, and
//! otpd's log is in another place (its journal), so without this line /var/log/auth.log does not
//! say why. Exactly one line per refused or unchecked login, naming who (user, service, remote
//! host) and why in plain words, with otpd's or the client's own words as detail. Never a code:
//! the detail is otpd's message for the person (which never holds one) or a client error.

use common::text::escape_for_log;
use common::wire::DenyReason;

use crate::flow::LogLevel;
use crate::outcome::Outcome;

/// Who was logging in, as far as PAM told us before the login ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Who {
    /// PAM_USER, if there was one.
    pub user: Option<String>,
    /// PAM_SERVICE.
    pub service: Option<String>,
    /// PAM_RHOST, if the application set it.
    pub rhost: Option<String>,
}

/// The line for `outcome`, or `None` when the login went on (success, a skip, the split role):
/// those are not refusals and stay out of syslog unless `debug` is set. `detail` is what otpd or
/// the client said, `tries` the `tries=` setting (for "no right code in N tries").
pub fn line(
    outcome: Outcome,
    who: &Who,
    detail: Option<&str>,
    tries: u8,
) -> Option<(LogLevel, String)> {
    let (level, reason) = reason(outcome, tries)?;
    let verb = match level {
        LogLevel::Notice => "login refused",
        LogLevel::Error | LogLevel::Debug => "login not checked, refused",
    };
    let mut text = format!(
        "{verb}: user={} service={} rhost={}: {reason}",
        shown(who.user.as_deref()),
        shown(who.service.as_deref()),
        shown(who.rhost.as_deref()),
    );
    if let Some(detail) = detail.filter(|d| !d.is_empty()) {
        text.push_str(" (");
        text.push_str(&escape_for_log(detail));
        text.push(')');
    }
    Some((level, text))
}

/// An item for the line: escaped, `-` when absent or empty.
fn shown(item: Option<&str>) -> String {
    match item.filter(|i| !i.is_empty()) {
        Some(item) => escape_for_log(item),
        None => "-".to_owned(),
    }
}

/// How important the refusal is and why it happened, in words an admin reading auth.log
/// understands. A refusal of the person (wrong code, lockout) is a notice, as pam_unix logs a
/// wrong password; a login that could not be checked at all is an error the admin must fix.
fn reason(outcome: Outcome, tries: u8) -> Option<(LogLevel, String)> {
    use LogLevel::{Error, Notice};
    let (level, text) = match outcome {
        Outcome::Skipped(_) | Outcome::Success | Outcome::SecretSplit => return None,
        Outcome::Denied(DenyReason::WrongCode) => (Notice, "wrong code"),
        Outcome::Denied(DenyReason::CodeDead) => (
            Notice,
            "the code is no longer valid (expired, used, or too many wrong answers)",
        ),
        Outcome::Denied(DenyReason::LockedOut) => (Notice, "locked out after too many wrong codes"),
        Outcome::Denied(DenyReason::RateLimited) => {
            (Notice, "too many codes mailed recently, no code sent")
        }
        Outcome::Denied(DenyReason::CallerRefused) => {
            (Error, "otpd does not let this process ask for this user")
        }
        Outcome::TriesExhausted => {
            return Some((Notice, format!("no right code in {} tries", tries.max(1))));
        }
        Outcome::CodeMailed => (
            Notice,
            "the password came without a code; a code was mailed for the next login",
        ),
        Outcome::SecretTooLong => (
            Notice,
            "the secret is longer than a password and code can be",
        ),
        Outcome::ConversationFailed => (
            Notice,
            "the application's conversation failed; the client may have gone away",
        ),
        Outcome::NoUser => (Notice, "PAM has no user name"),
        Outcome::NoService => (Error, "PAM has no service name"),
        Outcome::PamStoreFailed => (Error, "libpam could not store what the next line needs"),
        Outcome::DaemonUnreachable => (Error, "otpd unreachable"),
        Outcome::DaemonTimeout => (Error, "otpd did not answer in time"),
        Outcome::UntrustedDaemon => (
            Error,
            "the process on otpd's socket is not root or the daemon user",
        ),
        Outcome::ProtocolError => (Error, "otpd's answer made no sense"),
        Outcome::DaemonError => (Error, "otpd rejected the request"),
        Outcome::Unavailable => (Error, "otpd cannot check codes now"),
        Outcome::BadArguments => (Error, "the module arguments in pam.d are wrong"),
    };
    Some((level, text.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::wire::SkipReason;

    fn alice() -> Who {
        Who {
            user: Some("alice".into()),
            service: Some("sshd".into()),
            rhost: Some("192.0.2.7".into()),
        }
    }

    #[test]
    fn a_wrong_code_is_a_notice_naming_who_and_why() {
        let (level, text) = line(
            Outcome::Denied(DenyReason::WrongCode),
            &alice(),
            Some("Wrong code."),
            3,
        )
        .expect("a refusal has a line");
        assert_eq!(level, LogLevel::Notice);
        assert_eq!(
            text,
            "login refused: user=alice service=sshd rhost=192.0.2.7: wrong code (Wrong code.)"
        );
    }

    #[test]
    fn a_lockout_carries_otpds_minutes() {
        let (_, text) = line(
            Outcome::Denied(DenyReason::LockedOut),
            &alice(),
            Some("Too many wrong codes. Try again in 15 minutes."),
            3,
        )
        .expect("a refusal has a line");
        assert!(text.contains("locked out"), "{text}");
        assert!(text.contains("Try again in 15 minutes."), "{text}");
    }

    #[test]
    fn an_outage_is_an_error_with_the_clients_words() {
        let (level, text) = line(
            Outcome::DaemonUnreachable,
            &Who {
                rhost: None,
                ..alice()
            },
            Some("cannot connect to /run/otpd/otpd.sock: No such file or directory"),
            3,
        )
        .expect("an outage has a line");
        assert_eq!(level, LogLevel::Error);
        assert_eq!(
            text,
            "login not checked, refused: user=alice service=sshd rhost=-: otpd unreachable \
             (cannot connect to /run/otpd/otpd.sock: No such file or directory)"
        );
    }

    #[test]
    fn mail_that_could_not_be_sent_says_so() {
        let (level, text) = line(
            Outcome::Unavailable,
            &alice(),
            Some("The login code could not be sent. Try again later."),
            3,
        )
        .expect("an outage has a line");
        assert_eq!(level, LogLevel::Error);
        assert!(text.contains("could not be sent"), "{text}");
    }

    #[test]
    fn used_up_tries_say_how_many() {
        let (_, text) =
            line(Outcome::TriesExhausted, &alice(), None, 3).expect("a refusal has a line");
        assert!(text.ends_with(": no right code in 3 tries"), "{text}");
    }

    #[test]
    fn logins_that_go_on_get_no_line() {
        for outcome in [
            Outcome::Success,
            Outcome::SecretSplit,
            Outcome::Skipped(SkipReason::NotEnrolled),
        ] {
            assert_eq!(line(outcome, &alice(), Some("x"), 3), None, "{outcome:?}");
        }
    }

    #[test]
    fn outside_text_cannot_forge_a_line_or_a_key() {
        let who = Who {
            user: Some("eve\nroot".into()),
            service: Some("sshd".into()),
            rhost: Some("h rhost=10.0.0.1".into()),
        };
        let (_, text) = line(
            Outcome::Denied(DenyReason::WrongCode),
            &who,
            Some("x\nuser=root"),
            3,
        )
        .expect("a refusal has a line");
        assert!(!text.contains('\n'), "{text}");
        assert_eq!(text.matches("rhost=").count(), 1, "{text}");
        assert_eq!(text.matches("user=").count(), 1, "{text}");
    }

    #[test]
    fn every_refusal_and_outage_has_a_line() {
        let refusals = [
            Outcome::Denied(DenyReason::WrongCode),
            Outcome::Denied(DenyReason::CodeDead),
            Outcome::Denied(DenyReason::LockedOut),
            Outcome::Denied(DenyReason::RateLimited),
            Outcome::Denied(DenyReason::CallerRefused),
            Outcome::TriesExhausted,
            Outcome::CodeMailed,
            Outcome::SecretTooLong,
            Outcome::PamStoreFailed,
            Outcome::DaemonUnreachable,
            Outcome::DaemonTimeout,
            Outcome::UntrustedDaemon,
            Outcome::ProtocolError,
            Outcome::DaemonError,
            Outcome::Unavailable,
            Outcome::ConversationFailed,
            Outcome::BadArguments,
            Outcome::NoUser,
            Outcome::NoService,
        ];
        for outcome in refusals {
            assert!(
                line(outcome, &Who::default(), None, 3).is_some(),
                "{outcome:?}"
            );
        }
    }
}
