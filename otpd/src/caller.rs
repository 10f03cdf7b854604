//! Who may ask otpd to act for which user, decided from the socket peer's credentials on every
//! request (the socket file's mode is not trusted to do this).
//!
//! Root and the `[daemon] trusted_callers` (users, or `@groups`, such as a web server that runs PAM
//! for HTTP logins) may act for any user. Anyone else may act only for their own user name, so a
//! local user cannot make otpd mail codes to, or guess codes of, somebody else.

use common::config::TrustedCaller;

use crate::accounts::Accounts;

/// The peer of a connection, from SO_PEERCRED.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    /// The peer process's uid.
    pub uid: u32,
    /// The peer process's gid.
    pub gid: u32,
}

/// True when `caller` may act for the user `user`.
pub fn may_act_for(
    caller: Caller,
    user: &str,
    trusted: &[TrustedCaller],
    accounts: &dyn Accounts,
) -> bool {
    if caller.uid == 0 {
        return true;
    }
    let caller_name = accounts.user_name(caller.uid);
    if caller_name.as_deref() == Some(user) {
        return true;
    }
    let Some(caller_name) = caller_name else {
        return false;
    };
    is_listed(caller.uid, &caller_name, trusted, accounts)
}

/// True when `uid` is root or one of the `trusted_callers`: such callers act for other users,
/// so the socket's fair share never holds them to one user's part.
pub fn is_trusted(uid: u32, trusted: &[TrustedCaller], accounts: &dyn Accounts) -> bool {
    if uid == 0 {
        return true;
    }
    match accounts.user_name(uid) {
        Some(name) => is_listed(uid, &name, trusted, accounts),
        None => false,
    }
}

/// True when the user `name` (uid `uid`) is in `trusted`, by name or by group.
fn is_listed(uid: u32, name: &str, trusted: &[TrustedCaller], accounts: &dyn Accounts) -> bool {
    trusted.iter().any(|entry| match entry {
        TrustedCaller::User(user) => accounts.uid_of(user) == Some(uid),
        TrustedCaller::Group(group) => accounts.groups_of(name).iter().any(|g| g == group),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{FakeAccounts, caller};

    #[test]
    fn root_may_act_for_anyone() {
        assert!(may_act_for(caller(0), "alice", &[], &FakeAccounts));
    }

    #[test]
    fn a_user_may_act_only_for_themselves() {
        assert!(may_act_for(caller(1000), "alice", &[], &FakeAccounts));
        assert!(!may_act_for(caller(1000), "bob", &[], &FakeAccounts));
        assert!(!may_act_for(caller(1000), "root", &[], &FakeAccounts));
    }

    #[test]
    fn trusted_users_and_groups_may_act_for_anyone() {
        let trusted = [
            TrustedCaller::User("www-data".into()),
            TrustedCaller::Group("webdav".into()),
        ];
        assert!(may_act_for(caller(33), "alice", &trusted, &FakeAccounts));
        assert!(may_act_for(caller(1001), "alice", &trusted, &FakeAccounts));
        assert!(!may_act_for(caller(1000), "bob", &trusted, &FakeAccounts));
    }

    #[test]
    fn trusted_means_root_or_listed_by_name_or_group() {
        let trusted = [
            TrustedCaller::User("www-data".into()),
            TrustedCaller::Group("webdav".into()),
        ];
        assert!(is_trusted(0, &[], &FakeAccounts));
        assert!(is_trusted(33, &trusted, &FakeAccounts));
        assert!(is_trusted(1001, &trusted, &FakeAccounts));
        assert!(!is_trusted(1000, &trusted, &FakeAccounts));
        assert!(!is_trusted(4242, &trusted, &FakeAccounts));
    }

    #[test]
    fn a_uid_without_a_name_may_act_for_nobody() {
        let trusted = [TrustedCaller::Group("webdav".into())];
        assert!(!may_act_for(caller(4242), "alice", &trusted, &FakeAccounts));
    }
}
