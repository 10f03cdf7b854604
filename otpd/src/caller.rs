//! Who may ask otpd to act for which user, decided from the socket peer's credentials on every
//! request (the socket file's mode is not trusted to do this).
//!
//! Root and the `[daemon] trusted_callers` (users, or `@groups`, such as a web server that runs PAM
//! for HTTP logins) may act for any user. Anyone else may act only for their own user name, so a
//! local user cannot make otpd mail codes to, or guess codes of, somebody else.
//!
//! The same peers decide whose word on a login's origin is believed. Root and the trusted
//! callers run PAM for logins that come from elsewhere (sshd, a web server), so their
//! `rhost` and `tty` are what PAM reported. Anyone else is a process on this machine asking for
//! its own account: whatever remote host it names is a claim nobody checked, and believing it
//! let uid nobody lock `203.0.113.77` out for every user and write audit lines that fail2ban
//! counted against that address. Its `rhost` and `tty` are recorded as [`LOCAL_ORIGIN`].
//!
//! The other fields such a caller sends implicate nobody else: `user` must be its own name,
//! and `service` and `protocol` only choose which of its own profiles applies and are shown in
//! its own audit lines (with `rhost=local` and its `caller_uid`); its reuse grants are those of
//! a login without a remote host, so they serve only its own account.

use common::config::TrustedCaller;
use common::wire::LoginContext;

use crate::accounts::Accounts;

/// The peer of a connection, from SO_PEERCRED; or, for a request a DMZ host relayed, the caller
/// on that host as the DMZ reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    /// The peer process's uid (on the relay host, for a relayed request: shown in the audit
    /// line only, never a standing here).
    pub uid: u32,
    /// The peer process's gid.
    pub gid: u32,
    /// Set for a request a DMZ host relayed ([`crate::relay`]): which host, and what it decided
    /// about its own caller. Such a caller is that host's root or a local user of that host,
    /// never this machine's root or one of its users.
    pub relay: Option<Relayed>,
}

impl Caller {
    /// A local peer of the socket.
    pub fn local(uid: u32, gid: u32) -> Caller {
        Caller {
            uid,
            gid,
            relay: None,
        }
    }
}

/// A request a DMZ host relayed: the host (from the client certificate's mapping, which the
/// request's claim matched) and the relay's verdict on its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Relayed {
    /// The host name the relay speaks for.
    pub host: RelayHost,
    /// [`Origin::Reported`] when the relay's root or a trusted caller of it asked (its `rhost` is
    /// believed); [`Origin::Local`] for a local user of the relay acting for themselves.
    pub origin: Origin,
}

/// The longest host name (RFC 1035), the most a [`RelayHost`] holds.
const MAX_HOST_LEN: usize = 253;

/// A relay's host name held inline, so that [`Caller`] stays `Copy` and is passed around as
/// before.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct RelayHost {
    bytes: [u8; MAX_HOST_LEN],
    len: u8,
}

impl RelayHost {
    /// `name`, if it is at most 253 bytes (every valid host name is; the config checked it).
    pub fn new(name: &str) -> Option<RelayHost> {
        let len = u8::try_from(name.len())
            .ok()
            .filter(|&n| usize::from(n) <= MAX_HOST_LEN)?;
        let mut bytes = [0; MAX_HOST_LEN];
        bytes[..name.len()].copy_from_slice(name.as_bytes());
        Some(RelayHost { bytes, len })
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        // Made from a &str in `new`, so always UTF-8.
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or_default()
    }
}

impl std::fmt::Debug for RelayHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

/// The `rhost` and `tty` recorded for a login whose caller may not vouch for its origin: in the
/// audit row and line (`rhost=local`) and in the code mail. Such a login never counts against,
/// nor clears, any remote host's lockout, and its reuse grants are those of a login without a
/// remote host.
pub const LOCAL_ORIGIN: &str = "local";

/// Whether a login's reported origin is believed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Root or a trusted caller reported it: `rhost` and `tty` are PAM's.
    Reported,
    /// Anyone else: `rhost` and `tty` were replaced by [`LOCAL_ORIGIN`].
    Local,
}

/// True when `caller` may act for the user `user`.
pub fn may_act_for(
    caller: Caller,
    user: &str,
    trusted: &[TrustedCaller],
    accounts: &dyn Accounts,
) -> bool {
    if caller.relay.is_some() {
        // The relay forwards only what it found its caller may ask (root and its trusted callers
        // for anyone, a user for themselves), by the same rules: its users are not ours to look
        // up here.
        return true;
    }
    if caller.uid == 0 {
        return true;
    }
    let caller_name = accounts.user_name(caller.uid);
    match caller_name {
        Some(name) => name == user || is_listed(caller.uid, &name, trusted, accounts),
        None => false,
    }
}

/// The origin of a login from `caller`, and the login as otpd will use it: unchanged for root
/// and the trusted callers, with `rhost` and `tty` set to [`LOCAL_ORIGIN`] for anyone else
/// (whatever they claimed, or nothing).
pub fn believed(
    caller: Caller,
    mut login: LoginContext,
    trusted: &[TrustedCaller],
    accounts: &dyn Accounts,
) -> (LoginContext, Origin) {
    if let Some(relayed) = caller.relay {
        // The relay replaced a local caller's origin already; done again, so a relay cannot
        // get a `local` login's claimed rhost believed by mistake.
        if relayed.origin == Origin::Reported {
            return (login, Origin::Reported);
        }
        login.rhost = Some(LOCAL_ORIGIN.to_string());
        login.tty = Some(LOCAL_ORIGIN.to_string());
        return (login, Origin::Local);
    }
    if is_trusted(caller.uid, trusted, accounts) {
        return (login, Origin::Reported);
    }
    login.rhost = Some(LOCAL_ORIGIN.to_string());
    login.tty = Some(LOCAL_ORIGIN.to_string());
    (login, Origin::Local)
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

    fn claimed(rhost: Option<&str>) -> LoginContext {
        LoginContext {
            user: "alice".into(),
            service: "sshd".into(),
            rhost: rhost.map(String::from),
            tty: Some("pts/3".into()),
            protocol: None,
        }
    }

    #[test]
    fn a_plain_users_claimed_rhost_and_tty_are_recorded_as_local() {
        for rhost in [Some("203.0.113.77"), None, Some("")] {
            let (login, origin) = believed(caller(1000), claimed(rhost), &[], &FakeAccounts);
            assert_eq!(origin, Origin::Local);
            assert_eq!(login.rhost.as_deref(), Some(LOCAL_ORIGIN));
            assert_eq!(login.tty.as_deref(), Some(LOCAL_ORIGIN));
            assert_eq!(
                (login.user.as_str(), login.service.as_str()),
                ("alice", "sshd")
            );
        }
    }

    #[test]
    fn root_and_trusted_callers_report_the_origin_as_pam_gave_it() {
        let trusted = [
            TrustedCaller::User("www-data".into()),
            TrustedCaller::Group("webdav".into()),
        ];
        for uid in [0, 33, 1001] {
            let (login, origin) = believed(
                caller(uid),
                claimed(Some("192.0.2.7")),
                &trusted,
                &FakeAccounts,
            );
            assert_eq!(origin, Origin::Reported, "uid {uid}");
            assert_eq!(login, claimed(Some("192.0.2.7")), "uid {uid}");
        }
        let (_, origin) = believed(caller(4242), claimed(None), &trusted, &FakeAccounts);
        assert_eq!(
            origin,
            Origin::Local,
            "a uid without a name vouches for nothing"
        );
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

    fn relayed(uid: u32, origin: Origin) -> Caller {
        Caller {
            relay: Some(Relayed {
                host: RelayHost::new("dmz1.example").unwrap(),
                origin,
            }),
            ..caller(uid)
        }
    }

    #[test]
    fn a_relayed_caller_is_judged_by_the_relays_verdict_not_by_our_accounts() {
        // uid 4242 has no name here, and 1000 is alice here: neither matters for a relayed one.
        let (login, origin) = believed(
            relayed(4242, Origin::Reported),
            claimed(Some("192.0.2.7")),
            &[],
            &FakeAccounts,
        );
        assert_eq!(
            (origin, login.rhost.as_deref()),
            (Origin::Reported, Some("192.0.2.7"))
        );
        let (login, origin) = believed(
            relayed(0, Origin::Local),
            claimed(Some("192.0.2.7")),
            &[],
            &FakeAccounts,
        );
        assert_eq!(
            (origin, login.rhost.as_deref()),
            (Origin::Local, Some(LOCAL_ORIGIN))
        );
        assert!(may_act_for(
            relayed(4242, Origin::Local),
            "bob",
            &[],
            &FakeAccounts
        ));
    }

    #[test]
    fn a_relay_host_name_is_kept_whole_up_to_253_bytes() {
        let long = "a".repeat(253);
        assert_eq!(RelayHost::new(&long).unwrap().as_str(), long);
        assert!(RelayHost::new(&"a".repeat(254)).is_none());
        assert_eq!(format!("{:?}", RelayHost::new("dmz1").unwrap()), "\"dmz1\"");
    }

    #[test]
    fn a_uid_without_a_name_may_act_for_nobody() {
        let trusted = [TrustedCaller::Group("webdav".into())];
        assert!(!may_act_for(caller(4242), "alice", &trusted, &FakeAccounts));
    }
}
