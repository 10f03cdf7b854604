//! The product's rules as the store counts them: a profile's settings in whole seconds, and the
//! bound on an answer's length. Used by the login handler and by admin alike, so it sits below
//! both (see [`crate::layering`]): neither imports it from the other.

use common::config::Settings;
use common::secret::SecretString;

use crate::store::Limits;

/// The PAM service name otpctl's own events carry (self-service codes, admin changes,
/// break-glass grants): no PAM stack uses it.
pub const OTPCTL_SERVICE: &str = "otpctl";

/// The longest answer otpd compares; longer ones are wrong without a lookup.
pub const MAX_ANSWER_LEN: usize = 64;

/// An over-long answer is wrong without being hashed (an empty one simply never matches).
pub fn bounded(code: &SecretString) -> SecretString {
    if code.len() > MAX_ANSWER_LEN {
        SecretString::default()
    } else {
        code.clone()
    }
}

/// The store's view of a profile's settings.
pub fn limits_of(settings: &Settings) -> Limits {
    Limits {
        code_length: settings.code_length,
        valid_secs: secs(settings.valid),
        max_attempts: settings.max_attempts,
        resend_cooldown_secs: secs(settings.resend_cooldown),
        max_sends_per_hour: settings.max_sends_per_hour,
        max_sends_per_day: settings.max_sends_per_day,
        max_user_failures: settings.max_user_failures,
        max_host_failures: settings.max_host_failures,
        lockout_secs: secs(settings.lockout),
    }
}

/// Whole seconds of a configured duration, as the store counts time.
pub fn secs(duration: std::time::Duration) -> i64 {
    i64::try_from(duration.as_secs()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_over_long_answer_becomes_one_that_never_matches() {
        let long = SecretString::new("1".repeat(MAX_ANSWER_LEN + 1));
        assert!(bounded(&long).is_empty());
        let fine = SecretString::new("123456".into());
        assert_eq!(bounded(&fine).len(), 6);
    }
}
