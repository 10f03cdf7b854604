//! Sends each request where it belongs: the module's login requests to [`crate::login`],
//! otpctl's to [`crate::admin`]. Nothing else happens here, and nothing below calls back up:
//! this is the only module that reaches both (see [`crate::layering`]).

use std::sync::Arc;

use common::wire::{Request, Response};

use crate::caller::Caller;
use crate::login::{self, Mode};
use crate::state::Shared;

/// Answers `request` from `caller`; a login request's latency goes to the metrics.
pub async fn handle(shared: &Arc<Shared>, caller: Caller, request: Request) -> Response {
    let kind = login_request_kind(&request);
    let started = std::time::Instant::now();
    let response = route(shared, caller, request).await;
    if let Some(kind) = kind {
        shared.metrics.observe_request(kind, started.elapsed());
    }
    response
}

/// The `request` label of a login request ([`crate::metrics::LOGIN_REQUESTS`]); `None` for a
/// ping or an admin request.
fn login_request_kind(request: &Request) -> Option<&'static str> {
    match request {
        Request::Begin { .. } => Some("begin"),
        Request::Resend { .. } => Some("resend"),
        Request::Answer { .. } => Some("answer"),
        Request::Probe { .. } => Some("probe"),
        Request::Verify { .. } => Some("verify"),
        Request::Ping | Request::Admin { .. } => None,
    }
}

/// Sends `request` to its handler: on a relay (DMZ) host, login requests go to the main otpd.
async fn route(shared: &Arc<Shared>, caller: Caller, request: Request) -> Response {
    let is_admin = matches!(request, Request::Admin { .. });
    let active = shared.active();
    if is_admin && (caller.relay.is_some() || active.relay.is_some()) {
        // Admin requests act as this machine's root or admin group: a relayed caller is neither,
        // and a relay has no store to administer.
        return Response::Error {
            message: crate::relay::ADMIN_NOT_RELAYED.into(),
        };
    }
    if let Some(upstream) = &active.relay {
        if !matches!(request, Request::Ping) {
            return login::relayed(shared, upstream, caller, request).await;
        }
    }
    match request {
        Request::Ping => Response::Pong {
            version: env!("CARGO_PKG_VERSION").to_string(),
        },
        Request::Begin { login, ssh_keys } => {
            login::begin(shared, caller, login, Mode::First(ssh_keys)).await
        }
        Request::Resend { login } => login::begin(shared, caller, login, Mode::Resend).await,
        Request::Probe { login } => login::probe(shared, caller, login).await,
        Request::Verify { login, code } => {
            login::verify_appended(shared, caller, login, code).await
        }
        Request::Admin { request } => Response::Admin {
            response: crate::admin::handle(shared, caller, request).await,
        },
        Request::Answer {
            login,
            challenge,
            code,
        } => login::answer(shared, caller, login, challenge, code).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::time::Duration;

    use common::secret::SecretString;

    use crate::clock::SystemClock;
    use crate::test_support::caller;

    /// otpd requiring a code of everyone, its only mail server a loopback port where nothing
    /// listens, and alice with recovery codes: every begin is offered a recovery prompt.
    fn relay_down() -> (tempfile::TempDir, Arc<Shared>, Vec<SecretString>) {
        let dir = tempfile::tempdir().unwrap();
        let shared =
            crate::test_support::shared_mailing_through(dir.path(), 1, Arc::new(SystemClock));
        let codes = shared
            .store()
            .new_recovery_codes("alice", shared.clock.now(), &mut rand::rng())
            .unwrap();
        (dir, shared, codes)
    }

    use crate::test_support::alice;

    /// Whether the notice deliverer has been woken (and takes the wake-up).
    async fn deliverer_woken(shared: &Shared) -> bool {
        let wait = shared.notices_queued.notified();
        tokio::time::timeout(Duration::from_millis(50), wait)
            .await
            .is_ok()
    }

    /// Alice's answer `code` to a recovery prompt, through the dispatcher.
    async fn answer_with(shared: &Arc<Shared>, code: SecretString) -> Response {
        let begin = Request::Begin {
            login: alice(),
            ssh_keys: Vec::new(),
        };
        let Response::Prompt { challenge, .. } = handle(shared, caller(0), begin).await else {
            panic!("no recovery prompt");
        };
        let answer = Request::Answer {
            login: alice(),
            challenge,
            code,
        };
        handle(shared, caller(0), answer).await
    }

    #[tokio::test]
    async fn a_used_recovery_code_wakes_the_notice_deliverer_and_a_wrong_one_does_not() {
        let (_dir, shared, codes) = relay_down();
        let wrong = answer_with(&shared, SecretString::new("zzzzz-zzzzz".into())).await;
        assert!(matches!(wrong, Response::Denied { .. }), "{wrong:?}");
        assert!(!deliverer_woken(&shared).await);
        let used = answer_with(&shared, codes[0].clone()).await;
        assert!(
            matches!(used, Response::SuccessWithNotice { .. }),
            "{used:?}"
        );
        assert!(deliverer_woken(&shared).await);
    }

    #[tokio::test]
    async fn an_admin_request_that_came_by_relay_is_refused_even_from_the_relays_root() {
        let (_dir, shared, _) = relay_down();
        let relayed_root = Caller {
            relay: Some(crate::caller::Relayed {
                host: crate::caller::RelayHost::new("dmz1.example").unwrap(),
                origin: crate::caller::Origin::Reported,
            }),
            ..caller(0)
        };
        let status = Request::Admin {
            request: common::wire_admin::AdminRequest::Status,
        };
        assert_eq!(
            handle(&shared, relayed_root, status.clone()).await,
            Response::Error {
                message: crate::relay::ADMIN_NOT_RELAYED.into()
            }
        );
        let here = handle(&shared, caller(0), status).await;
        assert!(matches!(here, Response::Admin { .. }), "{here:?}");
    }

    #[tokio::test]
    async fn a_ping_is_answered_with_otpds_version() {
        let (_dir, shared, _) = relay_down();
        assert_eq!(
            handle(&shared, caller(1000), Request::Ping).await,
            Response::Pong {
                version: env!("CARGO_PKG_VERSION").to_string()
            }
        );
    }
}
