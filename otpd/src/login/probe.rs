//! Single-secret protocols (FTP, HTTP...), before the password is checked: does the login need a
//! code, and does its secret carry one?

use std::sync::Arc;

use common::wire::{LoginContext, Response};

use super::facts::Next;
use super::needs_code::{OnSkip, code_request, for_needed_code};
use super::wording::internal_error;
use crate::caller::Caller;
use crate::rules::limits_of;
use crate::state::Shared;

/// Single-secret protocols: does the login need a code, and does its secret carry one?
pub async fn probe(shared: &Arc<Shared>, caller: Caller, login: LoginContext) -> Response {
    for_needed_code(
        shared,
        caller,
        login,
        (OnSkip::Answer, Next::Other),
        |store, facts, hearers, now| {
            let needed = hearers.needed;
            let limits = limits_of(&needed.settings);
            let request = code_request(&facts.login, needed, facts.asker);
            Ok(match store.expects_code(&request, &limits, now) {
                Ok(expects_code) => Response::Probe {
                    code_length: needed.settings.code_length,
                    expects_code,
                },
                Err(e) => internal_error(needed.settings.language, &e),
            })
        },
    )
    .await
}
