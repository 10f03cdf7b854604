//! otpctl's exit statuses: one table, used by the code, `--help` and the man page.

use std::process::ExitCode;

use common::wire_admin::RefuseReason;

/// How otpctl ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Done; for doctor and check-config: nothing is wrong.
    Ok,
    /// Refused or failed (wrong code, invalid input, bad import lines, problems found).
    Failed,
    /// The command line was wrong.
    Usage,
    /// otpd could not be reached.
    Unreachable,
    /// Not allowed: not an admin, or the policy forbids it.
    NotAllowed,
    /// No such user or group.
    NotFound,
}

impl Exit {
    /// The process exit status.
    pub fn code(self) -> u8 {
        match self {
            Exit::Ok => 0,
            Exit::Failed => 1,
            Exit::Usage => 2,
            Exit::Unreachable => 3,
            Exit::NotAllowed => 4,
            Exit::NotFound => 5,
        }
    }

    /// The status for a refusal from otpd.
    pub fn of_refusal(reason: RefuseReason) -> Exit {
        match reason {
            RefuseReason::NotAllowed | RefuseReason::Policy => Exit::NotAllowed,
            RefuseReason::NotFound => Exit::NotFound,
            RefuseReason::Exists
            | RefuseReason::Invalid
            | RefuseReason::WrongCode
            | RefuseReason::LockedOut
            | RefuseReason::RateLimited
            | RefuseReason::NoAddress
            | RefuseReason::Failed => Exit::Failed,
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> ExitCode {
        ExitCode::from(exit.code())
    }
}

/// The exit status table for `--help`; the man page has the same text.
pub const EXIT_STATUS_HELP: &str = "\
Exit status:
  0  done; for doctor and check-config: nothing is wrong
  1  refused or failed (wrong code, invalid input, bad import lines, problems found)
  2  the command line was wrong
  3  otpd could not be reached
  4  not allowed: not root or in admin_group, or the policy forbids it
  5  no such user or group";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_help_text_lists_every_status_with_its_number() {
        for exit in [
            Exit::Ok,
            Exit::Failed,
            Exit::Usage,
            Exit::Unreachable,
            Exit::NotAllowed,
            Exit::NotFound,
        ] {
            assert!(
                EXIT_STATUS_HELP.contains(&format!("\n  {}  ", exit.code())),
                "{exit:?}"
            );
        }
    }

    #[test]
    fn refusals_map_to_not_allowed_not_found_or_failed() {
        assert_eq!(Exit::of_refusal(RefuseReason::NotAllowed), Exit::NotAllowed);
        assert_eq!(Exit::of_refusal(RefuseReason::Policy), Exit::NotAllowed);
        assert_eq!(Exit::of_refusal(RefuseReason::NotFound), Exit::NotFound);
        assert_eq!(Exit::of_refusal(RefuseReason::WrongCode), Exit::Failed);
    }
}
