//! Whether a peer uid is root or a trusted caller, for the fair share at accept time.
//!
//! Root needs no lookup. Other uids need one only when `trusted_callers` is set, and the answer
//! is kept for a minute: an unprivileged user opening connections in a loop must not turn each
//! one into an NSS lookup (LDAP, sssd) on the thread that serves everyone.

use std::collections::HashMap;
use std::time::Duration;

use common::config::TrustedCaller;
use tokio::time::Instant;

use super::fair_share::Standing;
use crate::accounts::Accounts;
use crate::caller;

/// How long a looked-up standing is trusted; a change of group membership counts after this.
const KEEP_FOR: Duration = Duration::from_secs(60);

/// Standings looked up recently, for the `trusted_callers` they were looked up under.
#[derive(Debug, Default)]
pub(crate) struct Standings {
    trusted: Vec<TrustedCaller>,
    known: HashMap<u32, (Standing, Instant)>,
}

impl Standings {
    /// The standing of `uid` under `trusted`.
    pub(crate) fn of(
        &mut self,
        uid: u32,
        trusted: &[TrustedCaller],
        accounts: &dyn Accounts,
        now: Instant,
    ) -> Standing {
        if uid == 0 {
            return Standing::Privileged;
        }
        if trusted.is_empty() {
            return Standing::Unprivileged;
        }
        if self.trusted != trusted {
            // A reload changed the list: nothing looked up before still holds.
            self.trusted = trusted.to_vec();
            self.known.clear();
        }
        if let Some((standing, at)) = self.known.get(&uid) {
            if now.saturating_duration_since(*at) < KEEP_FOR {
                return *standing;
            }
        }
        let standing = if caller::is_trusted(uid, trusted, accounts) {
            Standing::Privileged
        } else {
            Standing::Unprivileged
        };
        self.known.insert(uid, (standing, now));
        standing
    }

    /// Drops answers too old to be used again.
    pub(crate) fn forget_old(&mut self, now: Instant) {
        self.known
            .retain(|_, (_, at)| now.saturating_duration_since(*at) < KEEP_FOR);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::test_support::FakeAccounts;

    /// [`FakeAccounts`] that counts its lookups.
    #[derive(Debug, Default)]
    struct Counting(AtomicUsize);

    impl Accounts for Counting {
        fn user_name(&self, uid: u32) -> Option<String> {
            self.0.fetch_add(1, Ordering::Relaxed);
            FakeAccounts.user_name(uid)
        }
        fn uid_of(&self, name: &str) -> Option<u32> {
            self.0.fetch_add(1, Ordering::Relaxed);
            FakeAccounts.uid_of(name)
        }
        fn groups_of(&self, user: &str) -> Vec<String> {
            self.0.fetch_add(1, Ordering::Relaxed);
            FakeAccounts.groups_of(user)
        }
    }

    #[test]
    fn root_and_trusted_callers_are_privileged_and_others_not() {
        let trusted = [
            TrustedCaller::User("www-data".into()),
            TrustedCaller::Group("webdav".into()),
        ];
        let mut standings = Standings::default();
        let now = Instant::now();
        let of = |s: &mut Standings, uid| s.of(uid, &trusted, &FakeAccounts, now);
        assert_eq!(of(&mut standings, 0), Standing::Privileged);
        assert_eq!(of(&mut standings, 33), Standing::Privileged);
        assert_eq!(of(&mut standings, 1001), Standing::Privileged);
        assert_eq!(of(&mut standings, 1000), Standing::Unprivileged);
        assert_eq!(of(&mut standings, 65534), Standing::Unprivileged);
    }

    #[test]
    fn a_uid_is_looked_up_once_a_minute_however_often_it_connects() {
        let trusted = [TrustedCaller::User("www-data".into())];
        let accounts = Counting::default();
        let mut standings = Standings::default();
        let t0 = Instant::now();
        for _ in 0..100 {
            standings.of(1000, &trusted, &accounts, t0);
        }
        let after_one_minute = accounts.0.load(Ordering::Relaxed);
        assert!(after_one_minute <= 3, "{after_one_minute} lookups");
        standings.of(1000, &trusted, &accounts, t0 + KEEP_FOR);
        assert!(accounts.0.load(Ordering::Relaxed) > after_one_minute);
    }

    #[test]
    fn root_and_an_empty_trusted_list_need_no_lookup() {
        let accounts = Counting::default();
        let mut standings = Standings::default();
        let now = Instant::now();
        standings.of(0, &[TrustedCaller::User("www-data".into())], &accounts, now);
        standings.of(1000, &[], &accounts, now);
        assert_eq!(accounts.0.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_changed_trusted_list_is_looked_up_again() {
        let mut standings = Standings::default();
        let now = Instant::now();
        let before = [TrustedCaller::User("bob".into())];
        let after = [TrustedCaller::User("alice".into())];
        assert_eq!(
            standings.of(1000, &before, &FakeAccounts, now),
            Standing::Unprivileged
        );
        assert_eq!(
            standings.of(1000, &after, &FakeAccounts, now),
            Standing::Privileged
        );
    }
}
