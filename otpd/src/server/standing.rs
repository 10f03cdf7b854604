//! Whether a peer uid is root, a trusted caller or an admin, for the fair share at accept time.
//!
//! Root needs no lookup. Other uids need one only when `trusted_callers` or `admin_group` is
//! set, and the answer is kept for a minute: an unprivileged user opening connections in a loop
//! must not turn each one into an NSS lookup (LDAP, sssd). The lookup itself ([`look_up`])
//! blocks, so the server runs it off the runtime's thread, with a deadline.

use std::collections::HashMap;
use std::time::Duration;

use common::config::{DaemonConfig, TrustedCaller};
use tokio::time::Instant;

use super::fair_share::Standing;
use crate::accounts::Accounts;
use crate::admin::authz;
use crate::caller::{self, Caller};

/// How long a looked-up standing is trusted; a change of group membership counts after this.
const KEEP_FOR: Duration = Duration::from_secs(60);

/// Standings looked up recently, for the `trusted_callers` and `admin_group` they were looked
/// up under.
#[derive(Debug, Default)]
pub(crate) struct Standings {
    trusted: Vec<TrustedCaller>,
    admin_group: Option<String>,
    known: HashMap<u32, (Standing, Instant)>,
}

impl Standings {
    /// The standing of `caller` under `daemon`'s `trusted_callers` and `admin_group`, when it
    /// needs no lookup: root, neither list set, or looked up less than a minute ago. `None`:
    /// [`look_up`] it, then [`Standings::remember`] the answer.
    pub(crate) fn known(
        &mut self,
        caller: Caller,
        daemon: &DaemonConfig,
        now: Instant,
    ) -> Option<Standing> {
        if caller.uid == 0 {
            return Some(Standing::Privileged);
        }
        let trusted = daemon.trusted_callers.as_slice();
        let admin_group = daemon.admin_group.as_deref();
        if trusted.is_empty() && admin_group.is_none() {
            return Some(Standing::Unprivileged);
        }
        if self.trusted != trusted || self.admin_group.as_deref() != admin_group {
            // A reload changed who is trusted: nothing looked up before still holds.
            self.trusted = trusted.to_vec();
            self.admin_group = admin_group.map(str::to_string);
            self.known.clear();
        }
        match self.known.get(&caller.uid) {
            Some((standing, at)) if now.saturating_duration_since(*at) < KEEP_FOR => {
                Some(*standing)
            }
            _ => None,
        }
    }

    /// Keeps `standing`, looked up for `uid` under `daemon`, for a minute. An answer looked up
    /// under lists that a reload has changed since is not kept.
    pub(crate) fn remember(
        &mut self,
        uid: u32,
        standing: Standing,
        daemon: &DaemonConfig,
        now: Instant,
    ) {
        if self.trusted == daemon.trusted_callers
            && self.admin_group.as_deref() == daemon.admin_group.as_deref()
        {
            self.known.insert(uid, (standing, now));
        }
    }

    /// Drops answers too old to be used again.
    pub(crate) fn forget_old(&mut self, now: Instant) {
        self.known
            .retain(|_, (_, at)| now.saturating_duration_since(*at) < KEEP_FOR);
    }
}

/// Looks the standing of `caller` up under `daemon`'s `trusted_callers` and `admin_group`.
/// Blocks on NSS: run it off the runtime's thread.
pub(crate) fn look_up(caller: Caller, daemon: &DaemonConfig, accounts: &dyn Accounts) -> Standing {
    if caller::is_trusted(caller.uid, &daemon.trusted_callers, accounts) {
        Standing::Privileged
    } else if authz::is_admin(caller, daemon.admin_group.as_deref(), accounts) {
        Standing::Admin
    } else {
        Standing::Unprivileged
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::test_support::{FakeAccounts, caller, config};

    /// `[daemon]` with `lines`.
    fn daemon(lines: &str) -> DaemonConfig {
        config(&format!("[daemon]\n{lines}")).daemon
    }

    impl Standings {
        /// What the server does: the known standing, else one looked up and remembered.
        fn of(
            &mut self,
            caller: Caller,
            daemon: &DaemonConfig,
            accounts: &dyn Accounts,
            now: Instant,
        ) -> Standing {
            self.known(caller, daemon, now).unwrap_or_else(|| {
                let standing = look_up(caller, daemon, accounts);
                self.remember(caller.uid, standing, daemon, now);
                standing
            })
        }
    }

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
        let daemon = daemon("trusted_callers = [\"www-data\", \"@webdav\"]");
        let mut standings = Standings::default();
        let now = Instant::now();
        let mut of = |uid| standings.of(caller(uid), &daemon, &FakeAccounts, now);
        assert_eq!(of(0), Standing::Privileged);
        assert_eq!(of(33), Standing::Privileged);
        assert_eq!(of(1001), Standing::Privileged);
        assert_eq!(of(1000), Standing::Unprivileged);
        assert_eq!(of(65534), Standing::Unprivileged);
    }

    #[test]
    fn members_of_the_admin_group_are_admins() {
        let daemon = daemon("admin_group = \"otpadmin\"");
        let mut standings = Standings::default();
        let now = Instant::now();
        let mut of = |uid| standings.of(caller(uid), &daemon, &FakeAccounts, now);
        assert_eq!(of(1000), Standing::Admin);
        assert_eq!(of(1001), Standing::Unprivileged);
        assert_eq!(of(0), Standing::Privileged);
    }

    #[test]
    fn a_uid_is_looked_up_once_a_minute_however_often_it_connects() {
        let daemon = daemon("trusted_callers = [\"www-data\"]\nadmin_group = \"otpadmin\"");
        let accounts = Counting::default();
        let mut standings = Standings::default();
        let t0 = Instant::now();
        for _ in 0..100 {
            standings.of(caller(1001), &daemon, &accounts, t0);
        }
        let after_one_minute = accounts.0.load(Ordering::Relaxed);
        assert!(after_one_minute <= 4, "{after_one_minute} lookups");
        standings.of(caller(1001), &daemon, &accounts, t0 + KEEP_FOR);
        assert!(accounts.0.load(Ordering::Relaxed) > after_one_minute);
    }

    #[test]
    fn root_and_an_empty_trusted_list_need_no_lookup() {
        let accounts = Counting::default();
        let mut standings = Standings::default();
        let now = Instant::now();
        let listed = daemon("trusted_callers = [\"www-data\"]\nadmin_group = \"otpadmin\"");
        standings.of(caller(0), &listed, &accounts, now);
        standings.of(caller(1000), &daemon(""), &accounts, now);
        assert_eq!(accounts.0.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn an_answer_looked_up_before_a_reload_changed_the_lists_is_not_kept() {
        let mut standings = Standings::default();
        let now = Instant::now();
        let before = daemon("trusted_callers = [\"alice\"]");
        let after = daemon("trusted_callers = [\"bob\"]");
        assert_eq!(standings.known(caller(1000), &before, now), None);
        // The lookup under `before` is under way when the reload comes.
        assert_eq!(standings.known(caller(1001), &after, now), None);
        standings.remember(1000, Standing::Privileged, &before, now);
        assert_eq!(standings.known(caller(1000), &after, now), None);
        standings.remember(1000, Standing::Unprivileged, &after, now);
        assert_eq!(
            standings.known(caller(1000), &after, now),
            Some(Standing::Unprivileged)
        );
    }

    #[test]
    fn a_changed_trusted_list_is_looked_up_again() {
        let mut standings = Standings::default();
        let now = Instant::now();
        let before = daemon("trusted_callers = [\"bob\"]");
        let after = daemon("trusted_callers = [\"alice\"]");
        assert_eq!(
            standings.of(caller(1000), &before, &FakeAccounts, now),
            Standing::Unprivileged
        );
        assert_eq!(
            standings.of(caller(1000), &after, &FakeAccounts, now),
            Standing::Privileged
        );
    }
}
