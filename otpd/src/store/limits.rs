//! The numbers the rules are enforced with, passed in per request.
//!
//! The store takes its own struct instead of the config type so it depends on nothing but
//! these numbers; the handler builds one from the profile that applies to the login.

use super::StoreError;
use crate::code::{MAX_CODE_LENGTH, MIN_CODE_LENGTH};

/// Limits for one request. Zero caps never mean "unlimited": a zero send cap allows no sends,
/// zero attempts make every code dead, zero failures lock on the first wrong answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Digits per code, 6..=10.
    pub code_length: u8,
    /// Seconds a code stays valid after it is issued; must be positive.
    pub valid_secs: i64,
    /// Wrong answers a code survives; the last one kills it.
    pub max_attempts: u32,
    /// Seconds after an issue during which a new login for the same user and protocol reuses
    /// the code already mailed instead of mailing another.
    pub resend_cooldown_secs: i64,
    /// Codes mailed to one user in any sliding hour.
    pub max_sends_per_hour: u32,
    /// Codes mailed to one user in any sliding 24 hours.
    pub max_sends_per_day: u32,
    /// Consecutive wrong answers by one user before the user is locked out.
    pub max_user_failures: u32,
    /// Consecutive wrong answers from one remote host before the host is locked out.
    pub max_host_failures: u32,
    /// Seconds a lockout lasts; must be positive.
    pub lockout_secs: i64,
}

impl Limits {
    /// Refuses limits the rules cannot be enforced with. Config validation should already have
    /// refused them; this is the last line, so a bad value fails the login instead of
    /// silently disabling a rule.
    pub fn check(&self) -> Result<(), StoreError> {
        if !(MIN_CODE_LENGTH..=MAX_CODE_LENGTH).contains(&self.code_length) {
            return Err(StoreError::InvalidLimits("code_length must be 6..=10"));
        }
        if self.valid_secs <= 0 {
            return Err(StoreError::InvalidLimits("valid_secs must be positive"));
        }
        if self.resend_cooldown_secs < 0 {
            return Err(StoreError::InvalidLimits(
                "resend_cooldown_secs must not be negative",
            ));
        }
        if self.lockout_secs <= 0 {
            return Err(StoreError::InvalidLimits("lockout_secs must be positive"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::limits;
    use super::*;

    #[test]
    fn sane_limits_pass() {
        limits().check().unwrap();
    }

    #[test]
    fn limits_that_would_disable_a_rule_are_refused() {
        let cases = [
            Limits {
                code_length: 5,
                ..limits()
            },
            Limits {
                code_length: 11,
                ..limits()
            },
            Limits {
                valid_secs: 0,
                ..limits()
            },
            Limits {
                resend_cooldown_secs: -1,
                ..limits()
            },
            Limits {
                lockout_secs: 0,
                ..limits()
            },
        ];
        for case in cases {
            assert!(
                matches!(case.check(), Err(StoreError::InvalidLimits(_))),
                "{case:?}"
            );
        }
    }
}
