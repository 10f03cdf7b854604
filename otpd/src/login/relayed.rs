//! A relay (DMZ) otpd's answer to a login request: decide here only who the caller is and what it
//! may ask (the rules of [`crate::caller`], as for a login decided here), then forward the
//! request to the main otpd, which decides everything else, and pass its answer on.
//!
//! Nothing about the user is looked up or stored here, and nothing is mailed: a DMZ host holds
//! no mail or database credentials and no server key. When the main otpd cannot be reached in
//! time the login is "unavailable" (fail closed).

use std::sync::Arc;

use common::text::escape_for_log;
use common::wire::{LoginContext, Request, Response};
use common::wire_relay::{RelayVerdict, RelayedRequest};

use super::wording::{Phrase, refused_caller};
use crate::caller::{self, Caller, Origin};
use crate::directory;
use crate::relay::Upstream;
use crate::state::Shared;

/// Forwards the login request `request` from `caller` to the main otpd through `upstream`.
pub async fn relayed(
    shared: &Arc<Shared>,
    upstream: &Upstream,
    caller: Caller,
    request: Request,
) -> Response {
    let active = shared.active();
    let language = active.config.defaults.language;
    let Some(login) = login_of(&request).cloned() else {
        return Response::Error {
            message: "not a login request".into(),
        };
    };
    let trusted = active.config.daemon.trusted_callers.clone();
    let accounts = Arc::clone(&shared.accounts);
    // Account lookups (NSS) block: on a blocking thread, within the directories' deadline.
    let judged = directory::lookup_within(directory::DEADLINE, move || {
        let may_act = caller::may_act_for(caller, &login.user, &trusted, accounts.as_ref());
        let (login, origin) = caller::believed(caller, login, &trusted, accounts.as_ref());
        (may_act, login, origin)
    })
    .await;
    let Ok((may_act, login, origin)) = judged else {
        return Response::Unavailable {
            message: Phrase::LookupLate.in_language(language),
        };
    };
    if !may_act {
        tracing::warn!(
            "refused here, not relayed: uid {} asked for a login of user={}, not its own",
            caller.uid,
            escape_for_log(&login.user)
        );
        return refused_caller(language);
    }
    let verdict = match origin {
        Origin::Reported => RelayVerdict::Reported,
        Origin::Local => RelayVerdict::Local,
    };
    let envelope = RelayedRequest {
        host: upstream.host_name.clone(),
        verdict,
        caller_uid: caller.uid,
        request: with_login(request, login, origin),
    };
    match upstream.forward(&envelope).await {
        Ok(Response::Error { message }) => {
            // A refusal of this relay (its certificate, its host name) is answered so: said
            // here too, where this host's admin looks first.
            tracing::error!(
                "relay: the main otpd at {} answered: {}",
                escape_for_log(&upstream.address()),
                escape_for_log(&message)
            );
            Response::Error { message }
        }
        Ok(response) => response,
        Err(e) => {
            tracing::error!(
                "relay: {}; the login is unavailable",
                escape_for_log(&e.to_string())
            );
            Response::Unavailable {
                message: Phrase::Unreachable.in_language(language),
            }
        }
    }
}

/// The login a login request is about; `None` for a ping or an admin request.
fn login_of(request: &Request) -> Option<&LoginContext> {
    match request {
        Request::Begin { login, .. }
        | Request::Resend { login }
        | Request::Probe { login }
        | Request::Verify { login, .. }
        | Request::Answer { login, .. } => Some(login),
        Request::Ping | Request::Admin { .. } => None,
    }
}

/// `request` with its login replaced by `believed`; a local caller's SSH keys are dropped, since
/// its word vouches for nothing (the main otpd would ignore them anyway).
fn with_login(request: Request, believed: LoginContext, origin: Origin) -> Request {
    match request {
        Request::Begin { ssh_keys, .. } => Request::Begin {
            login: believed,
            ssh_keys: match origin {
                Origin::Reported => ssh_keys,
                Origin::Local => Vec::new(),
            },
        },
        Request::Resend { .. } => Request::Resend { login: believed },
        Request::Probe { .. } => Request::Probe { login: believed },
        Request::Verify { code, .. } => Request::Verify {
            login: believed,
            code,
        },
        Request::Answer {
            challenge, code, ..
        } => Request::Answer {
            login: believed,
            challenge,
            code,
        },
        other @ (Request::Ping | Request::Admin { .. }) => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn login(rhost: &str) -> LoginContext {
        LoginContext {
            user: "alice".into(),
            service: "sshd".into(),
            rhost: Some(rhost.into()),
            tty: Some("pts/1".into()),
            protocol: None,
        }
    }

    #[test]
    fn a_local_callers_ssh_keys_are_not_relayed_and_roots_are() {
        let begin = || Request::Begin {
            login: login("192.0.2.7"),
            ssh_keys: vec!["ssh-ed25519 AAAA".into()],
        };
        let Request::Begin { ssh_keys, .. } = with_login(begin(), login("local"), Origin::Local)
        else {
            panic!("not a begin");
        };
        assert!(ssh_keys.is_empty());
        let Request::Begin { ssh_keys, login } =
            with_login(begin(), login("192.0.2.7"), Origin::Reported)
        else {
            panic!("not a begin");
        };
        assert_eq!(ssh_keys.len(), 1);
        assert_eq!(login.rhost.as_deref(), Some("192.0.2.7"));
    }
}
