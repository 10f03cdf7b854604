//! Single-secret protocols: the code that came appended to the password, checked.

use std::sync::Arc;

use common::secret::SecretString;
use common::wire::{LoginContext, Response};

use super::facts::Next;
use super::needs_code::{OnSkip, code_request, code_subject, for_needed_code};
use super::verdict::verdict;
use crate::caller::Caller;
use crate::rules::{bounded, limits_of, secs};
use crate::state::Shared;

/// Single-secret protocols: checks the code that came appended to the password.
pub async fn verify_appended(
    shared: &Arc<Shared>,
    caller: Caller,
    login: LoginContext,
    code: SecretString,
) -> Response {
    for_needed_code(
        shared,
        caller,
        login,
        (OnSkip::Refuse, Next::Other),
        move |store, facts, hearers, now| {
            let (login, asker, needed) = (&facts.login, facts.asker, hearers.needed);
            let mut rng = crate::code::os_rng();
            let outcome = store.verify_appended(
                &code_request(login, needed, asker),
                &bounded(&code),
                &limits_of(&needed.settings),
                secs(needed.settings.reuse_window),
                now,
                &mut rng,
            );
            verdict(
                store,
                now,
                hearers,
                code_subject(login, needed, asker),
                outcome,
            )
        },
    )
    .await
}
