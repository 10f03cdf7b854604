//! Who asked for a login request, and which of what it reported otpd believes.

use common::wire::LoginContext;

use crate::caller::{self, Caller, Origin};
use crate::state::{Active, Shared};

/// Who asked for a login request, and whether otpd believes the origin it reported.
#[derive(Debug, Clone, Copy)]
pub(super) struct Asker {
    pub(super) caller: Caller,
    pub(super) origin: Origin,
}

impl Asker {
    /// The asker of `login`, and the login with its `rhost` and `tty` as otpd believes them
    /// (see [`caller::believed`]): everything after this sees only the believed ones.
    pub(super) fn of(
        shared: &Shared,
        active: &Active,
        caller: Caller,
        login: LoginContext,
    ) -> (Asker, LoginContext) {
        let (login, origin) = caller::believed(
            caller,
            login,
            &active.config.daemon.trusted_callers,
            shared.accounts.as_ref(),
        );
        (Asker { caller, origin }, login)
    }

    /// The DMZ host that relayed the request, if one did.
    pub(super) fn relay_host(&self) -> Option<crate::caller::RelayHost> {
        self.caller.relay.map(|relayed| relayed.host)
    }

    /// The remote host the store counts failures against and binds grants to: the reported
    /// one, or none for a local caller (its `local` never counts as a host).
    pub(super) fn remote_host<'a>(&self, login: &'a LoginContext) -> Option<&'a str> {
        match self.origin {
            Origin::Reported => login.rhost.as_deref(),
            Origin::Local => None,
        }
    }

    /// The remote host as an address, for `match_rhost`: only a believed one.
    pub(super) fn remote_address(&self, login: &LoginContext) -> Option<std::net::IpAddr> {
        self.remote_host(login).and_then(|host| host.parse().ok())
    }

    /// The SSH keys of a begin as otpd believes them: those root or a trusted caller reported
    /// (sshd's `SSH_AUTH_INFO_0`), none from anyone else, whose word vouches for nothing.
    pub(super) fn believed_keys<'k>(&self, ssh_keys: &'k [String]) -> &'k [String] {
        match self.origin {
            Origin::Reported => ssh_keys,
            Origin::Local => &[],
        }
    }
}
