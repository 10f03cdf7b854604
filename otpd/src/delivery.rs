//! The one issue -> deliver -> settle sequence, for login codes and self-service codes alike:
//! the code is issued in a store transaction, sent with no lock held (by mail or a webhook
//! channel, the user's routes tried in order until one takes it), and the outcome settled in a
//! second transaction (audited as mailed or failed, naming the channel; a failed code is
//! invalidated, or turned into a recovery-code prompt when the caller allows that). The caps,
//! cooldowns and lockouts are the issue's, so they are the same whichever channel carries it.

use std::sync::Arc;

use common::text::escape_for_log;

use crate::mail::{CodeMail, Mailer};
use crate::off_thread::{self, Lost};
use crate::state::Shared;
use crate::store::{self, IssueOutcome, IssueRequest, Limits, Store, StoreError};
use crate::webhook::{CodeValues, WebhookSender};

/// Issues (or reuses) a code for `request` under `limits`, from the OS random generator.
pub fn issue(
    store: &mut dyn Store,
    request: &IssueRequest<'_>,
    limits: &Limits,
    now: i64,
) -> Result<IssueOutcome, StoreError> {
    store.issue(request, limits, now, &mut crate::code::os_rng())
}

/// What becomes of a code whose mail failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFailure {
    /// It dies.
    Invalidate,
    /// Its challenge answers to one of the user's recovery codes, if they have any (the login
    /// has a prompt to type one at); otherwise it dies.
    OfferRecovery,
}

/// A step of the settlement, for the caller to audit in its own vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settlement<'a> {
    /// A server accepted the mail.
    Mailed {
        /// Which one.
        server: &'a str,
    },
    /// No server accepted it.
    MailFailed {
        /// Why, for the audit.
        detail: &'a str,
    },
    /// After a failure, the challenge now answers to a recovery code.
    RecoveryOffered {
        /// How many the user has left.
        left: u32,
    },
}

/// One way to the user: a channel and the destination it sends to.
#[derive(Debug, Clone, Copy)]
pub enum Route<'a> {
    /// The code mail, to the mail's address.
    Email,
    /// A webhook channel, to the user's phone number.
    Webhook {
        /// The channel.
        sender: &'a WebhookSender,
        /// The phone number (E.164).
        to: &'a str,
    },
}

/// How a delivery ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivered {
    /// The code is on its way, by the route at this index.
    Mailed {
        /// Which of the routes took it.
        route: usize,
    },
    /// The mail failed; the challenge answers to one of `left` recovery codes.
    Recovery {
        /// Recovery codes left.
        left: u32,
    },
    /// The mail failed and the code is dead (or could not be killed: logged).
    Failed,
}

/// Sends the code of `mail` (which answers `challenge`) by each of `routes` in turn until one
/// takes it, with no lock held, then settles the outcome in one store transaction off the
/// runtime's thread, calling `audit` for each step. An audit row that cannot be written takes
/// the settlement back, and the delivery counts as failed.
pub async fn deliver<A>(
    shared: &Arc<Shared>,
    mailer: &Mailer,
    mail: &CodeMail<'_>,
    routes: &[Route<'_>],
    challenge: &str,
    on_failure: OnFailure,
    audit: A,
) -> Result<Delivered, Lost>
where
    A: FnMut(&mut dyn Store, i64, Settlement<'_>) -> Result<(), StoreError> + Send + 'static,
{
    let started = std::time::Instant::now();
    let sent = send(mailer, mail, routes).await;
    shared.metrics.observe_delivery(started.elapsed());
    let shared = Arc::clone(shared);
    let challenge = challenge.to_string();
    off_thread::run(move || {
        let now = shared.clock.now();
        let mut store = shared.store();
        // The send's audit rows and what becomes of the code are stored together.
        let settled = store::atomically(&mut store, |store| {
            settle(store, now, sent, &challenge, on_failure, audit)
        });
        settled.unwrap_or_else(|e| {
            tracing::error!(
                "cannot store what became of a code mail: {}",
                escape_for_log(&e.to_string())
            );
            Delivered::Failed
        })
    })
    .await
}

/// The first route that takes the code: its index and what the audit says of it (after the
/// routes that failed, if any); or every failure. All the routes together have the mail's
/// `total_timeout` (what the module's `mail_timeout` is set above): a route still sending when
/// it runs out fails, and the ones after it are not tried, so a slow gateway before the mail
/// cannot make the whole delivery outlast the login waiting for it.
async fn send(
    mailer: &Mailer,
    mail: &CodeMail<'_>,
    routes: &[Route<'_>],
) -> Result<(usize, String), String> {
    let deadline = tokio::time::Instant::now() + mailer.total_timeout();
    let mut failures = Vec::new();
    for (index, route) in routes.iter().enumerate() {
        let ran_out = || {
            format!(
                "{}: the delivery's {} s ran out",
                route_name(route),
                mailer.total_timeout().as_secs()
            )
        };
        if tokio::time::Instant::now() >= deadline {
            failures.push(ran_out());
            break;
        }
        let sending = async {
            match route {
                // The mail keeps its own deadline (and its own account of a timeout), cut to
                // what the routes before it left.
                Route::Email => {
                    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                    mailer
                        .send_within(mail, left)
                        .await
                        .map_err(|f| f.to_string())
                }
                Route::Webhook { sender, to } => {
                    let values = CodeValues {
                        to,
                        code: mail.values.code,
                        user: mail.values.user,
                        host: mail.values.host,
                        minutes: valid_minutes(mail.values.issued_at, mail.values.expires_at)
                            .to_string(),
                    };
                    sender.send(&values).await
                }
            }
        };
        // A grace second over the deadline lets the mail report its own timeout first.
        let cut_off = match route {
            Route::Email => deadline + std::time::Duration::from_secs(1),
            Route::Webhook { .. } => deadline,
        };
        let Ok(outcome) = tokio::time::timeout_at(cut_off, sending).await else {
            failures.push(ran_out());
            break;
        };
        match outcome {
            Ok(server) if failures.is_empty() => return Ok((index, server)),
            Ok(server) => {
                return Ok((index, format!("{server} after {}", failures.join("; "))));
            }
            Err(failure) => failures.push(failure),
        }
    }
    if failures.is_empty() {
        return Err(
            "no channel: the user has no destination on any of the profile's channels".into(),
        );
    }
    Err(failures.join("; "))
}

/// How the audit names a route.
fn route_name(route: &Route<'_>) -> String {
    match route {
        Route::Email => "email".to_string(),
        Route::Webhook { sender, .. } => format!("webhook:{}", sender.name()),
    }
}

/// Whole minutes from `issued_at` to `expires_at`, rounded up.
fn valid_minutes(issued_at: i64, expires_at: i64) -> i64 {
    ((expires_at - issued_at + 59) / 60).max(1)
}

/// Audits a send's outcome and, after a failure, kills the code or offers recovery.
fn settle(
    store: &mut dyn Store,
    now: i64,
    sent: Result<(usize, String), String>,
    challenge: &str,
    on_failure: OnFailure,
    mut audit: impl FnMut(&mut dyn Store, i64, Settlement<'_>) -> Result<(), StoreError>,
) -> Result<Delivered, StoreError> {
    let detail = match sent {
        Ok((route, server)) => {
            audit(store, now, Settlement::Mailed { server: &server })?;
            return Ok(Delivered::Mailed { route });
        }
        Err(detail) => detail,
    };
    audit(store, now, Settlement::MailFailed { detail: &detail })?;
    let fallback = match on_failure {
        OnFailure::OfferRecovery => store.recovery_fallback(challenge),
        OnFailure::Invalidate => store.invalidate(challenge).map(|()| None),
    };
    match fallback {
        Ok(Some(left)) => {
            audit(store, now, Settlement::RecoveryOffered { left })?;
            Ok(Delivered::Recovery { left })
        }
        Ok(None) => Ok(Delivered::Failed),
        Err(e) => {
            tracing::error!(
                "cannot invalidate an unmailed code: {}",
                escape_for_log(&e.to_string())
            );
            Ok(Delivered::Failed)
        }
    }
}
