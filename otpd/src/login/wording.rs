//! The texts a login's answers carry that more than one request gives: prompts, refusals,
//! errors, and the minutes they count.

use common::text::{escape_for_log, mask_email};
use common::wire::{DenyReason, Response};

/// The prompt for a code mailed to `address`. With `wait` (seconds until a new code may be
/// sent), it tells a person who asked for a new code too early to use the one already sent.
pub(super) fn prompt(
    address: &common::config::EmailAddress,
    expires_at: i64,
    now: i64,
    challenge: &str,
    wait: Option<i64>,
) -> Response {
    let notice = wait
        .map(|secs| format!("No new code yet (possible in {secs} s). "))
        .unwrap_or_default();
    Response::Prompt {
        challenge: challenge.to_string(),
        prompt: format!(
            "{notice}Code sent to {} (valid {} min): ",
            mask_email(address.as_str()),
            minutes_until(expires_at, now)
        ),
    }
}

/// The prompt of a login whose code mail failed, for a user with `left` recovery codes: the
/// challenge now answers only to one of them.
pub(super) fn recovery_prompt(challenge: &str, left: u32) -> Response {
    Response::Prompt {
        challenge: challenge.to_string(),
        prompt: format!(
            "The login code could not be mailed. Enter a recovery code instead ({left} left): "
        ),
    }
}

pub(super) fn refused_caller() -> Response {
    Response::Denied {
        reason: DenyReason::CallerRefused,
        message: "Not allowed to ask for another user's code.".into(),
    }
}

pub(super) fn internal_error(error: &dyn std::fmt::Display) -> Response {
    tracing::error!("store error: {}", escape_for_log(&error.to_string()));
    Response::Unavailable {
        message: "The login code service has an internal error.".into(),
    }
}

/// Whole minutes until `until`, rounded up, at least 1.
pub(super) fn minutes_until(until: i64, now: i64) -> i64 {
    ((until - now + 59) / 60).max(1)
}

/// The answer to a request whose work was lost to a panic.
pub(super) fn lost() -> Response {
    Response::Unavailable {
        message: "The login code service has an internal error.".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minutes_round_up() {
        assert_eq!(minutes_until(600, 0), 10);
        assert_eq!(minutes_until(601, 0), 11);
        assert_eq!(minutes_until(0, 10), 1);
    }
}
