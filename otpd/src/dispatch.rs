//! Sends each request where it belongs: the module's login requests to [`crate::login`],
//! otpctl's to [`crate::admin`]. Nothing else happens here, and nothing below calls back up:
//! this is the only module that reaches both (see [`crate::layering`]).

use std::sync::Arc;

use common::wire::{Request, Response};

use crate::caller::Caller;
use crate::login::{self, Mode};
use crate::state::Shared;

/// Answers `request` from `caller`.
pub async fn handle(shared: &Arc<Shared>, caller: Caller, request: Request) -> Response {
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
        } => {
            let response = login::answer(shared, caller, login, challenge, code).await;
            if matches!(response, Response::SuccessWithNotice { .. }) {
                // A recovery code was used: its notice is queued; wake the deliverer.
                shared.notices_queued.notify_one();
            }
            response
        }
    }
}

