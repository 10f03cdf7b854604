//! Unix account lookups (NSS), behind a trait so caller checks and group policies are tested
//! without real accounts.

use std::ffi::CString;

use nix::unistd::{Gid, Group, Uid, User, getgrouplist};

/// The account facts otpd needs.
pub trait Accounts: Send + Sync + std::fmt::Debug {
    /// The user name of `uid`, if it has one.
    fn user_name(&self, uid: u32) -> Option<String>;
    /// The uid of the user `name`.
    fn uid_of(&self, name: &str) -> Option<u32>;
    /// Names of every group `user` belongs to (primary and supplementary).
    fn groups_of(&self, user: &str) -> Vec<String>;
}

/// The system's accounts, through NSS (passwd, group).
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemAccounts;

impl Accounts for SystemAccounts {
    fn user_name(&self, uid: u32) -> Option<String> {
        User::from_uid(Uid::from_raw(uid))
            .ok()
            .flatten()
            .map(|u| u.name)
    }

    fn uid_of(&self, name: &str) -> Option<u32> {
        User::from_name(name).ok().flatten().map(|u| u.uid.as_raw())
    }

    fn groups_of(&self, user: &str) -> Vec<String> {
        let Some(account) = User::from_name(user).ok().flatten() else {
            return Vec::new();
        };
        let Ok(c_name) = CString::new(user) else {
            return Vec::new();
        };
        let gids = getgrouplist(&c_name, account.gid).unwrap_or_else(|_| vec![account.gid]);
        gids.into_iter()
            .filter_map(|gid: Gid| Group::from_gid(gid).ok().flatten().map(|g| g.name))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_found_both_ways() {
        let accounts = SystemAccounts;
        assert_eq!(accounts.user_name(0).as_deref(), Some("root"));
        assert_eq!(accounts.uid_of("root"), Some(0));
        assert!(accounts.groups_of("root").iter().any(|g| g == "root"));
    }

    #[test]
    fn unknown_user_has_no_groups() {
        assert!(SystemAccounts.groups_of("no-such-user-otpd").is_empty());
        assert_eq!(SystemAccounts.uid_of("no-such-user-otpd"), None);
    }
}
