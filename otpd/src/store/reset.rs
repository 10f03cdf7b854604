//! An admin's reset of one user (`otpctl user reset`): the mail caps, the unused codes and the
//! user's lockout, in one transaction.
//!
//! It exists because a user who reached `max_sends_per_hour` (say after a few test logins) was
//! stuck for up to a day, and `user unlock` clears only the failure counter. The host counters
//! are left alone: other users share the address, and `otpctl host unlock` is its own, audited
//! decision.

use rusqlite::params;

use super::lockouts::{self, Lockout};
use super::sends::{self, SendCounts};
use super::{SqliteStore, StoreError};

/// What a reset cleared, so the admin is told exactly that.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserReset {
    /// The sends that no longer count against the caps.
    pub sends: SendCounts,
    /// Unused codes closed: within the resend cooldown the next login would otherwise be
    /// handed the old code again, which may be the one that never arrived.
    pub codes_closed: u32,
    /// The user's failure counter and lock as they were, if there was anything to clear.
    pub lockout: Option<Lockout>,
}

impl UserReset {
    /// True when the reset changed nothing.
    pub fn is_empty(&self) -> bool {
        self.sends.day == 0 && self.codes_closed == 0 && self.lockout.is_none()
    }
}

impl SqliteStore {
    /// Forgets `user`'s sends, closes their unused codes and clears their lockout, all or
    /// nothing. The audit rows and the recovery codes stay as they are.
    pub fn reset_user(&mut self, user: &str, now: i64) -> Result<UserReset, StoreError> {
        let tx = Self::immediate(&mut self.conn)?;
        let sends = sends::forget_user(&tx, user, now)?;
        let closed = tx
            .prepare_cached(
                "UPDATE codes SET state = 'superseded', closed_at = ?2
                 WHERE user = ?1 AND state = 'live'",
            )?
            .execute(params![user, now])?;
        let lockout = lockouts::clear_user(&tx, user, now)?;
        tx.commit()?;
        Ok(UserReset {
            sends,
            codes_closed: u32::try_from(closed).unwrap_or(u32::MAX),
            lockout,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::super::{IssueOutcome, Limits};
    use super::*;
    use common::secret::SecretString;

    fn capped() -> Limits {
        Limits {
            resend_cooldown_secs: 60,
            max_sends_per_hour: 2,
            max_sends_per_day: 3,
            max_user_failures: 2,
            ..limits()
        }
    }

    fn issue(store: &mut SqliteStore, user: &str, now: i64) -> IssueOutcome {
        store
            .issue(&request(user, "ssh"), &capped(), now, &mut rng())
            .unwrap()
    }

    #[test]
    fn a_capped_user_gets_a_new_code_right_after_a_reset() {
        let (_dir, mut store) = open_store();
        issue(&mut store, "alice", T0);
        issue(&mut store, "alice", T0 + 100);
        assert!(matches!(
            issue(&mut store, "alice", T0 + 200),
            IssueOutcome::RateLimited { .. }
        ));
        let reset = store.reset_user("alice", T0 + 200).unwrap();
        assert_eq!(reset.sends, SendCounts { hour: 2, day: 2 });
        assert_eq!(reset.codes_closed, 1);
        assert_eq!(reset.lockout, None);
        assert!(matches!(
            issue(&mut store, "alice", T0 + 201),
            IssueOutcome::Issued { .. }
        ));
    }

    #[test]
    fn a_reset_inside_the_cooldown_mails_a_fresh_code_instead_of_reusing_the_old_one() {
        let (_dir, mut store) = open_store();
        let first = issue(&mut store, "alice", T0);
        store.reset_user("alice", T0 + 1).unwrap();
        let second = issue(&mut store, "alice", T0 + 2);
        assert!(matches!(second, IssueOutcome::Issued { .. }), "{second:?}");
        assert_ne!(challenge_of(&first), challenge_of(&second));
    }

    #[test]
    fn a_reset_clears_the_users_lockout_but_not_another_users_caps() {
        let (_dir, mut store) = open_store();
        issue(&mut store, "bob", T0);
        let wrong = SecretString::new("x".into());
        for t in 0..2 {
            store
                .verify("nope", "alice", "ssh", None, &wrong, &capped(), T0 + t)
                .unwrap();
        }
        assert!(matches!(
            issue(&mut store, "alice", T0 + 5),
            IssueOutcome::LockedOut { .. }
        ));
        let reset = store.reset_user("alice", T0 + 5).unwrap();
        let lockout = reset.lockout.unwrap();
        assert_eq!(lockout.locked_until, Some(T0 + 1 + capped().lockout_secs));
        assert!(matches!(
            issue(&mut store, "alice", T0 + 6),
            IssueOutcome::Issued { .. }
        ));
        // bob's send still counts.
        assert_eq!(
            store.count_rows("SELECT count(*) FROM sends WHERE user = 'bob'"),
            1
        );
    }

    #[test]
    fn resetting_a_user_with_nothing_to_clear_says_so() {
        let (_dir, mut store) = open_store();
        let reset = store.reset_user("nobody", T0).unwrap();
        assert!(reset.is_empty(), "{reset:?}");
    }
}
