//! `test-mail`: admins send a test message through the configured servers and see each
//! server's answer.

use std::sync::Arc;

use common::wire_admin::{AdminResponse, MailTestResult, RefuseReason};

use super::{Ctx, authz, record, refused};
use crate::audit::Event;
use crate::caller::Caller;
use crate::state::Shared;

/// Sends the test message and records each server's result (for `status`).
pub async fn run(
    shared: &Arc<Shared>,
    caller: Caller,
    to: &str,
    server: Option<&str>,
) -> AdminResponse {
    let active = shared.active();
    // The check looks the caller's groups up and may audit a refusal: off the runtime's thread.
    let checked = {
        let (shared, active) = (Arc::clone(shared), Arc::clone(&active));
        crate::off_thread::run(move || {
            let ctx = Ctx {
                shared: &shared,
                active,
                caller,
                accounts: shared.accounts.as_ref(),
                now: shared.clock.now(),
            };
            authz::require_admin(&ctx, "test-mail")
        })
        .await
    };
    match checked {
        Ok(Ok(())) => {}
        Ok(Err(refusal)) => return refusal,
        Err(crate::off_thread::Lost) => {
            return refused(RefuseReason::Failed, "otpd had an internal error".into());
        }
    }
    let to = match super::view::check_email(to) {
        Ok(to) => to,
        Err(message) => return refused(RefuseReason::Invalid, message),
    };
    let results = active.mailer.send_test(&to, server).await;
    let shared = Arc::clone(shared);
    let to_text = to.as_str().to_string();
    let recorded = tokio::task::spawn_blocking(move || {
        let now = shared.clock.now();
        let mut store = shared.store();
        for result in &results {
            let (event, detail) = match &result.outcome {
                Ok(()) => (Event::TestMailOk, result.server.clone()),
                Err(error) => (Event::TestMailFailed, format!("{}: {error}", result.server)),
            };
            // The mail went out or failed already: a row that cannot be written is logged,
            // and the results are still shown.
            let _ = record::note(&mut store, now, event, None, caller, Some(&detail));
        }
        tracing::info!(
            "test mail to {} sent through {} server(s)",
            common::text::escape_for_log(&to_text),
            results.len()
        );
        results
    })
    .await;
    match recorded {
        Ok(results) => AdminResponse::MailTest {
            results: results
                .into_iter()
                .map(|r| MailTestResult {
                    server: r.server,
                    error: r.outcome.err(),
                })
                .collect(),
        },
        Err(e) => {
            tracing::error!(
                "test-mail task failed: {}",
                common::text::escape_for_log(&e.to_string())
            );
            refused(RefuseReason::Failed, "otpd had an internal error".into())
        }
    }
}
