//! How a login ended, and the one place that turns it into a PAM return code.
//!
//! Keeping the mapping in a single tested function means no code path can return PAM_SUCCESS by
//! accident: only [`Outcome::Success`] maps to it, which the tests below check for every variant.

use common::client::ClientError;
use common::wire::{DenyReason, SkipReason};
use pam::constants::PamResultCode;

/// How one run of the login flow ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// otpd says no code is needed for this login. The rest of the stack decides.
    Skipped(SkipReason),
    /// The person typed the right code.
    Success,
    /// otpd refused the login or the answer.
    Denied(DenyReason),
    /// Every one of the `tries=` answers was wrong (or empty, too long, not UTF-8).
    TriesExhausted,
    /// Split role: the secret was cut into password (now PAM_AUTHTOK) and code (stashed for the
    /// normal role). Nothing is decided yet: the password module and our second line decide.
    SecretSplit,
    /// Single-secret stack, password alone: a code was mailed now or shortly before, and the
    /// person was told to log in again with the password followed by the code.
    CodeMailed,
    /// Split role: the secret is longer than any password and code could be; refused without
    /// asking otpd or splitting it.
    SecretTooLong,
    /// libpam would not store PAM_AUTHTOK or the stash, so the two lines of a single-secret
    /// stack cannot work together.
    PamStoreFailed,
    /// otpd's socket could not be reached.
    DaemonUnreachable,
    /// otpd did not answer within the deadline.
    DaemonTimeout,
    /// The process behind the socket is not root or the daemon user.
    UntrustedDaemon,
    /// otpd's answer was not a valid frame, or not an answer that fits the request.
    ProtocolError,
    /// otpd said our request was malformed ([`common::wire::Response::Error`]).
    DaemonError,
    /// otpd cannot do its job now, e.g. the mail could not be sent.
    Unavailable,
    /// The application's conversation function failed or is missing.
    ConversationFailed,
    /// The module arguments in pam.d are wrong.
    BadArguments,
    /// PAM has no user name (or not a UTF-8 one) for this login.
    NoUser,
    /// PAM has no service name for this login; libpam always sets one, so this is a broken
    /// application.
    NoService,
}

impl Outcome {
    /// Why a call to otpd failed. Every cause means "otpd unavailable" to PAM; they are kept apart
    /// so syslog says which one it was.
    pub fn from_client_error(error: &ClientError) -> Outcome {
        match error {
            ClientError::Connect { .. } => Outcome::DaemonUnreachable,
            ClientError::Timeout(_) => Outcome::DaemonTimeout,
            ClientError::UntrustedDaemon { .. } => Outcome::UntrustedDaemon,
            ClientError::Frame(_) => Outcome::ProtocolError,
        }
    }
}

/// The PAM return code for an outcome. Skips and the split role are PAM_IGNORE so that a module
/// that needs no code never authenticates anyone by itself: the rest of the stack still has to.
pub fn pam_code(outcome: Outcome) -> PamResultCode {
    match outcome {
        Outcome::Skipped(_) | Outcome::SecretSplit => PamResultCode::PAM_IGNORE,
        Outcome::Success => PamResultCode::PAM_SUCCESS,
        Outcome::Denied(DenyReason::LockedOut) | Outcome::TriesExhausted => {
            PamResultCode::PAM_MAXTRIES
        }
        Outcome::Denied(
            DenyReason::WrongCode
            | DenyReason::CodeDead
            | DenyReason::RateLimited
            | DenyReason::CallerRefused,
        )
        | Outcome::CodeMailed
        | Outcome::SecretTooLong => PamResultCode::PAM_AUTH_ERR,
        Outcome::DaemonUnreachable
        | Outcome::DaemonTimeout
        | Outcome::UntrustedDaemon
        | Outcome::ProtocolError
        | Outcome::DaemonError
        | Outcome::Unavailable => PamResultCode::PAM_AUTHINFO_UNAVAIL,
        Outcome::ConversationFailed => PamResultCode::PAM_CONV_ERR,
        Outcome::PamStoreFailed => PamResultCode::PAM_SYSTEM_ERR,
        Outcome::BadArguments | Outcome::NoService => PamResultCode::PAM_SERVICE_ERR,
        Outcome::NoUser => PamResultCode::PAM_USER_UNKNOWN,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::frame::FrameError;
    use std::path::PathBuf;
    use std::time::Duration;

    const EVERY_SKIP: [SkipReason; 8] = [
        SkipReason::ProtocolNotEnabled,
        SkipReason::UnknownService,
        SkipReason::ModeOff,
        SkipReason::NotEnrolled,
        SkipReason::NoAddress,
        SkipReason::BreakGlass,
        SkipReason::Exempt,
        SkipReason::DryRun,
    ];

    /// Every outcome with the code it must give. The `match` in the test makes adding a variant
    /// without adding it here a compile error.
    fn expected_table() -> Vec<(Outcome, PamResultCode)> {
        let mut table: Vec<(Outcome, PamResultCode)> = EVERY_SKIP
            .into_iter()
            .map(|r| (Outcome::Skipped(r), PamResultCode::PAM_IGNORE))
            .collect();
        table.extend([
            (Outcome::Success, PamResultCode::PAM_SUCCESS),
            (
                Outcome::Denied(DenyReason::WrongCode),
                PamResultCode::PAM_AUTH_ERR,
            ),
            (
                Outcome::Denied(DenyReason::CodeDead),
                PamResultCode::PAM_AUTH_ERR,
            ),
            (
                Outcome::Denied(DenyReason::RateLimited),
                PamResultCode::PAM_AUTH_ERR,
            ),
            (
                Outcome::Denied(DenyReason::CallerRefused),
                PamResultCode::PAM_AUTH_ERR,
            ),
            (
                Outcome::Denied(DenyReason::LockedOut),
                PamResultCode::PAM_MAXTRIES,
            ),
            (Outcome::TriesExhausted, PamResultCode::PAM_MAXTRIES),
            (Outcome::SecretSplit, PamResultCode::PAM_IGNORE),
            (Outcome::CodeMailed, PamResultCode::PAM_AUTH_ERR),
            (Outcome::SecretTooLong, PamResultCode::PAM_AUTH_ERR),
            (Outcome::PamStoreFailed, PamResultCode::PAM_SYSTEM_ERR),
            (
                Outcome::DaemonUnreachable,
                PamResultCode::PAM_AUTHINFO_UNAVAIL,
            ),
            (Outcome::DaemonTimeout, PamResultCode::PAM_AUTHINFO_UNAVAIL),
            (
                Outcome::UntrustedDaemon,
                PamResultCode::PAM_AUTHINFO_UNAVAIL,
            ),
            (Outcome::ProtocolError, PamResultCode::PAM_AUTHINFO_UNAVAIL),
            (Outcome::DaemonError, PamResultCode::PAM_AUTHINFO_UNAVAIL),
            (Outcome::Unavailable, PamResultCode::PAM_AUTHINFO_UNAVAIL),
            (Outcome::ConversationFailed, PamResultCode::PAM_CONV_ERR),
            (Outcome::BadArguments, PamResultCode::PAM_SERVICE_ERR),
            (Outcome::NoService, PamResultCode::PAM_SERVICE_ERR),
            (Outcome::NoUser, PamResultCode::PAM_USER_UNKNOWN),
        ]);
        table
    }

    /// Fails to compile when a variant is added, pointing here to extend the table.
    fn covered(outcome: Outcome) -> bool {
        match outcome {
            Outcome::Skipped(_)
            | Outcome::Success
            | Outcome::Denied(_)
            | Outcome::TriesExhausted
            | Outcome::SecretSplit
            | Outcome::CodeMailed
            | Outcome::SecretTooLong
            | Outcome::PamStoreFailed
            | Outcome::DaemonUnreachable
            | Outcome::DaemonTimeout
            | Outcome::UntrustedDaemon
            | Outcome::ProtocolError
            | Outcome::DaemonError
            | Outcome::Unavailable
            | Outcome::ConversationFailed
            | Outcome::BadArguments
            | Outcome::NoUser
            | Outcome::NoService => true,
        }
    }

    #[test]
    fn every_outcome_maps_to_its_documented_pam_code() {
        let table = expected_table();
        assert_eq!(table.len(), 29, "one row per outcome and reason");
        for (outcome, code) in table {
            assert!(covered(outcome));
            assert_eq!(pam_code(outcome), code, "{outcome:?}");
        }
    }

    #[test]
    fn only_success_maps_to_pam_success() {
        for (outcome, _) in expected_table() {
            let is_success = pam_code(outcome) == PamResultCode::PAM_SUCCESS;
            assert_eq!(is_success, outcome == Outcome::Success, "{outcome:?}");
        }
    }

    #[test]
    fn the_split_role_never_decides_a_login_by_itself() {
        // PAM_IGNORE: in `auth required pam_otp_email.so split` the line adds nothing to the
        // stack's verdict; the password module and the second line decide.
        assert_eq!(pam_code(Outcome::SecretSplit), PamResultCode::PAM_IGNORE);
    }

    #[test]
    fn a_mailed_code_fails_this_login_so_the_next_one_brings_the_code() {
        assert_eq!(pam_code(Outcome::CodeMailed), PamResultCode::PAM_AUTH_ERR);
    }

    #[test]
    fn no_skip_reason_ever_maps_to_success() {
        for reason in EVERY_SKIP {
            assert_eq!(
                pam_code(Outcome::Skipped(reason)),
                PamResultCode::PAM_IGNORE
            );
        }
    }

    #[test]
    fn every_client_error_means_otpd_is_unavailable() {
        let path = PathBuf::from("/run/otpd/otpd.sock");
        let errors = [
            (
                ClientError::Connect {
                    path: path.clone(),
                    source: std::io::ErrorKind::NotFound.into(),
                },
                Outcome::DaemonUnreachable,
            ),
            (
                ClientError::Timeout(Duration::from_secs(5)),
                Outcome::DaemonTimeout,
            ),
            (
                ClientError::UntrustedDaemon { path, uid: 1000 },
                Outcome::UntrustedDaemon,
            ),
            (
                ClientError::Frame(FrameError::BadMagic),
                Outcome::ProtocolError,
            ),
        ];
        for (error, outcome) in errors {
            assert_eq!(Outcome::from_client_error(&error), outcome, "{error}");
            assert_eq!(pam_code(outcome), PamResultCode::PAM_AUTHINFO_UNAVAIL);
        }
    }
}
