//! An interactive login's answer to its prompt: a mailed code, or a recovery code.

use std::sync::Arc;

use common::config::NoticeKind;
use common::secret::SecretString;
use common::wire::{LoginContext, Response};

use super::facts::Next;
use super::fields::refuse_nul_challenge;
use super::needs_code::{OnSkip, code_subject, for_needed_code};
use super::verdict::verdict;
use crate::caller::Caller;
use crate::rules::{bounded, limits_of};
use crate::state::Shared;
use crate::store::NoticeTo;

/// Checks an interactive answer to `challenge`. A recovery code that answers it queues the
/// notice mail to the user's address in the same transaction (see [`crate::notices`]).
pub async fn answer(
    shared: &Arc<Shared>,
    caller: Caller,
    login: LoginContext,
    challenge: String,
    code: SecretString,
) -> Response {
    if let Err(refused) = refuse_nul_challenge(shared, caller, &login, &challenge).await {
        return refused;
    }
    for_needed_code(
        shared,
        caller,
        login,
        (OnSkip::Refuse, Next::Answer(challenge.clone())),
        move |store, facts, hearers, now| {
            let (login, asker, needed) = (&facts.login, facts.asker, hearers.needed);
            let outcome = store.verify_answer(
                &challenge,
                &login.user,
                needed.protocol.as_str(),
                asker.remote_host(login),
                &bounded(&code),
                &limits_of(&needed.settings),
                now,
                &NoticeTo {
                    // A user reached by phone only has no address to tell: the notice is not
                    // queued, and the recovery code still answers.
                    address: needed.address.as_ref().map_or("", |a| a.as_str()),
                    service: &login.service,
                    tell: needed.address.is_some()
                        && needed.settings.notify.contains(&NoticeKind::RecoveryUsed),
                },
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

#[cfg(test)]
mod tests {
    use super::*;

    use common::wire::DenyReason;

    use crate::login::testing::{alice, audit_down, audited, begin_as_root, relay_down};
    use crate::test_support::caller;

    #[tokio::test]
    async fn when_the_mail_fails_a_user_with_recovery_codes_is_prompted_for_one_and_it_logs_in() {
        let (_dir, shared) = relay_down();
        let codes = shared
            .store()
            .new_recovery_codes("alice", shared.clock.now(), &mut rand::rng())
            .unwrap();
        let begun = begin_as_root(&shared, alice()).await;
        let Response::Prompt {
            challenge, prompt, ..
        } = begun
        else {
            panic!("not a prompt: {begun:?}");
        };
        assert_eq!(
            prompt,
            "The login code could not be mailed. Enter a recovery code instead (10 left): "
        );
        let answered = answer(&shared, caller(0), alice(), challenge, codes[2].clone()).await;
        assert_eq!(
            answered,
            Response::SuccessWithNotice {
                message: "Recovery code accepted; it cannot be used again. 9 recovery codes left."
                    .into()
            }
        );
        assert_eq!(audited(&shared, "mail_failed"), 1);
        assert_eq!(audited(&shared, "recovery_offered"), 1);
        assert_eq!(audited(&shared, "recovery_used"), 1);
        assert_eq!(audited(&shared, "verified"), 0);
    }

    /// Issue #18: a failed audit row was logged and swallowed, so the code was used up and the
    /// login let in with no row saying so.
    #[tokio::test]
    async fn an_answer_whose_audit_row_cannot_be_written_uses_up_no_code_and_is_unavailable() {
        let (_dir, shared, issued) = audit_down(|store, limits| {
            let request = crate::store::IssueRequest {
                user: "alice",
                protocol: "ssh",
                service: "sshd",
                rhost: Some("192.0.2.1"),
            };
            let now = crate::clock::Clock::now(&crate::clock::SystemClock);
            store
                .issue(&request, limits, now, &mut rand::rng())
                .unwrap()
        });
        let crate::store::IssueOutcome::Issued {
            challenge, code, ..
        } = issued
        else {
            panic!("no code issued: {issued:?}");
        };
        let answered = answer(&shared, caller(0), alice(), challenge, code).await;
        assert_eq!(
            answered,
            Response::Unavailable {
                message: "The login code service has an internal error.".into()
            }
        );
        let now = shared.clock.now();
        assert_eq!(shared.store().live_codes(now).unwrap(), 1, "not used up");
    }

    #[tokio::test]
    async fn a_wrong_recovery_code_is_a_wrong_code_and_the_prompt_still_takes_a_right_one() {
        let (_dir, shared) = relay_down();
        let codes = shared
            .store()
            .new_recovery_codes("alice", shared.clock.now(), &mut rand::rng())
            .unwrap();
        let Response::Prompt { challenge, .. } = begin_as_root(&shared, alice()).await else {
            panic!("no prompt");
        };
        let wrong = answer(
            &shared,
            caller(0),
            alice(),
            challenge.clone(),
            SecretString::new("zzzzz-zzzzz".into()),
        )
        .await;
        assert!(
            matches!(
                wrong,
                Response::Denied {
                    reason: DenyReason::WrongCode,
                    ..
                }
            ),
            "{wrong:?}"
        );
        assert_eq!(audited(&shared, "wrong_code"), 1);
        let right = answer(&shared, caller(0), alice(), challenge, codes[0].clone()).await;
        assert!(
            matches!(right, Response::SuccessWithNotice { .. }),
            "{right:?}"
        );
    }
}
