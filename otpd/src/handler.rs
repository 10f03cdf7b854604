//! Answers one request: decides, issues, mails and verifies.
//!
//! Database work runs on blocking threads; only the mail send is awaited on the runtime, outside
//! the store lock, so a slow mail server never holds up other logins' database work.

use std::sync::Arc;

use common::config::Settings;
use common::secret::SecretString;
use common::text::{MAX_FIELD_LEN, mask_email};
use common::wire::{DenyReason, LoginContext, Request, Response};

use crate::audit::{self, Event, Subject};
use crate::caller::{Caller, may_act_for};
use crate::mail::CodeMail;
use crate::policy::{self, CodeNeeded, Decision};
use crate::state::{Active, Shared};
use crate::store::{IssueOutcome, IssueRequest, Limits, VerifyOutcome};
use rand::TryRngCore;

/// The longest answer otpd compares; longer ones are wrong without a lookup.
pub const MAX_ANSWER_LEN: usize = 64;

/// Answers `request` from `caller`.
pub async fn handle(shared: &Arc<Shared>, caller: Caller, request: Request) -> Response {
    match request {
        Request::Ping => Response::Pong {
            version: env!("CARGO_PKG_VERSION").to_string(),
        },
        Request::Begin { login } => begin(shared, caller, login).await,
        Request::Answer {
            login,
            challenge,
            code,
        } => {
            let shared = Arc::clone(shared);
            blocking(move || answer(&shared, caller, &login, &challenge, &code)).await
        }
    }
}

/// A code issued and waiting to be mailed.
struct PendingMail {
    challenge: String,
    code: SecretString,
    issued_at: i64,
    expires_at: i64,
    needed: CodeNeeded,
}

enum BeginStep {
    Done(Response),
    Mail(Box<PendingMail>),
}

async fn begin(shared: &Arc<Shared>, caller: Caller, login: LoginContext) -> Response {
    if let Err(message) = check_fields(&login) {
        return Response::Error { message };
    }
    let active = shared.active();
    let login = Arc::new(login);
    let step = {
        let (shared, active, login) = (Arc::clone(shared), Arc::clone(&active), Arc::clone(&login));
        run_blocking(move || prepare_begin(&shared, &active, caller, &login)).await
    };
    let pending = match step {
        Ok(BeginStep::Done(response)) => return response,
        Ok(BeginStep::Mail(pending)) => pending,
        Err(response) => return response,
    };
    let mail = CodeMail {
        to: &pending.needed.address,
        user: &login.user,
        code: &pending.code,
        host: &shared.hostname,
        service: &login.service,
        protocol: pending.needed.protocol.as_str(),
        rhost: login.rhost.as_deref(),
        issued_at: pending.issued_at,
        expires_at: pending.expires_at,
    };
    let sent = active.mailer.send(&mail).await;
    let shared = Arc::clone(shared);
    blocking(move || {
        let now = shared.clock.now();
        let protocol = pending.needed.protocol.as_str();
        let subject = Subject {
            login: &login,
            protocol: Some(protocol),
            caller_uid: caller.uid,
        };
        let mut store = shared.store();
        match sent {
            Ok(server) => {
                audit::record(&mut store, now, Event::Mailed, subject, Some(&server));
                prompt(
                    &pending.needed.address,
                    pending.expires_at,
                    now,
                    &pending.challenge,
                )
            }
            Err(failure) => {
                if let Err(e) = store.invalidate(&pending.challenge) {
                    tracing::error!("cannot invalidate an unmailed code: {e}");
                }
                let detail = failure.to_string();
                audit::record(&mut store, now, Event::MailFailed, subject, Some(&detail));
                Response::Unavailable {
                    message: "The login code could not be sent. Try again later.".into(),
                }
            }
        }
    })
    .await
}

fn prepare_begin(
    shared: &Shared,
    active: &Active,
    caller: Caller,
    login: &LoginContext,
) -> BeginStep {
    let config = &active.config;
    let now = shared.clock.now();
    let mut store = shared.store();
    let subject = |protocol| Subject {
        login,
        protocol,
        caller_uid: caller.uid,
    };
    if !may_act_for(
        caller,
        &login.user,
        &config.daemon.trusted_callers,
        shared.accounts.as_ref(),
    ) {
        audit::record(&mut store, now, Event::RefusedCaller, subject(None), None);
        return BeginStep::Done(refused_caller());
    }
    let protocol = match policy::login_protocol(config, login) {
        Ok(protocol) => protocol,
        Err(e) => {
            return BeginStep::Done(Response::Error {
                message: e.to_string(),
            });
        }
    };
    let protocol_name = protocol.map(|p| p.as_str());
    let record = match store.user(&login.user) {
        Ok(record) => record,
        Err(e) => return BeginStep::Done(internal_error(&e)),
    };
    let decision = policy::decide(config, login, protocol, record.as_ref(), || {
        shared.accounts.groups_of(&login.user)
    });
    let needed = match decision {
        Decision::Skip(reason) => {
            let detail = serde_json::to_string(&reason).unwrap_or_default();
            let detail = detail.trim_matches('"');
            audit::record(
                &mut store,
                now,
                Event::Skipped,
                subject(protocol_name),
                Some(detail),
            );
            return BeginStep::Done(Response::Skip { reason });
        }
        Decision::NoUsableAddress => {
            audit::record(
                &mut store,
                now,
                Event::MailFailed,
                subject(protocol_name),
                Some("no usable address for an enrolled user"),
            );
            return BeginStep::Done(Response::Unavailable {
                message: "No address is on file for your login code. Ask your administrator."
                    .into(),
            });
        }
        Decision::Code(needed) => needed,
    };
    let limits = limits_of(&needed.settings);
    let request = IssueRequest {
        user: &login.user,
        protocol: needed.protocol.as_str(),
        service: &login.service,
        rhost: login.rhost.as_deref(),
    };
    let mut rng = rand::rngs::OsRng.unwrap_err();
    let outcome = match store.issue(&request, &limits, now, &mut rng) {
        Ok(outcome) => outcome,
        Err(e) => return BeginStep::Done(internal_error(&e)),
    };
    let subject = subject(protocol_name);
    match outcome {
        IssueOutcome::Issued {
            challenge,
            code,
            expires_at,
        } => {
            audit::record(
                &mut store,
                now,
                Event::Issued,
                subject,
                Some(&needed.profile),
            );
            BeginStep::Mail(Box::new(PendingMail {
                challenge,
                code,
                issued_at: now,
                expires_at,
                needed,
            }))
        }
        IssueOutcome::Reused {
            challenge,
            expires_at,
        } => {
            audit::record(&mut store, now, Event::Reused, subject, None);
            BeginStep::Done(prompt(&needed.address, expires_at, now, &challenge))
        }
        IssueOutcome::RateLimited { retry_after } => {
            let detail = format!("retry_after={retry_after}");
            audit::record(&mut store, now, Event::RateLimited, subject, Some(&detail));
            BeginStep::Done(Response::Denied {
                reason: DenyReason::RateLimited,
                message: format!(
                    "Too many codes were sent. Try again in {} minutes.",
                    minutes_until(retry_after, now)
                ),
            })
        }
        IssueOutcome::LockedOut { until } => {
            audit::record(&mut store, now, Event::Locked, subject, None);
            BeginStep::Done(locked(until, now))
        }
    }
}

fn answer(
    shared: &Shared,
    caller: Caller,
    login: &LoginContext,
    challenge: &str,
    code: &SecretString,
) -> Response {
    if let Err(message) = check_fields(login) {
        return Response::Error { message };
    }
    let active = shared.active();
    let config = &active.config;
    let now = shared.clock.now();
    let mut store = shared.store();
    let subject = |protocol| Subject {
        login,
        protocol,
        caller_uid: caller.uid,
    };
    if !may_act_for(
        caller,
        &login.user,
        &config.daemon.trusted_callers,
        shared.accounts.as_ref(),
    ) {
        audit::record(&mut store, now, Event::RefusedCaller, subject(None), None);
        return refused_caller();
    }
    let protocol = match policy::login_protocol(config, login) {
        Ok(Some(protocol)) => protocol,
        Ok(None) => {
            return Response::Error {
                message: "this service needs no code".into(),
            };
        }
        Err(e) => {
            return Response::Error {
                message: e.to_string(),
            };
        }
    };
    let (_, settings) = policy::settings_for(config, &login.user, protocol, || {
        shared.accounts.groups_of(&login.user)
    });
    let limits = limits_of(settings);
    // An over-long answer is wrong without being hashed; an empty one simply never matches.
    let bounded;
    let code = if code.len() > MAX_ANSWER_LEN {
        bounded = SecretString::new(String::new());
        &bounded
    } else {
        code
    };
    let outcome = store.verify(
        challenge,
        &login.user,
        protocol.as_str(),
        login.rhost.as_deref(),
        code,
        &limits,
        now,
    );
    let subject = subject(Some(protocol.as_str()));
    match outcome {
        Ok(VerifyOutcome::Success) => {
            audit::record(&mut store, now, Event::Verified, subject, None);
            Response::Success
        }
        Ok(VerifyOutcome::Wrong { attempts_left }) => {
            let detail = format!("attempts_left={attempts_left}");
            audit::record(&mut store, now, Event::WrongCode, subject, Some(&detail));
            Response::Denied {
                reason: DenyReason::WrongCode,
                message: "Wrong code.".into(),
            }
        }
        Ok(VerifyOutcome::Dead) => {
            audit::record(&mut store, now, Event::CodeDead, subject, None);
            Response::Denied {
                reason: DenyReason::CodeDead,
                message: "This code is no longer valid. Log in again for a new one.".into(),
            }
        }
        Ok(VerifyOutcome::LockedOut { until }) => {
            audit::record(&mut store, now, Event::Locked, subject, None);
            locked(until, now)
        }
        Err(e) => internal_error(&e),
    }
}

/// The store's view of a profile's settings.
pub fn limits_of(settings: &Settings) -> Limits {
    let secs = |d: std::time::Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
    Limits {
        code_length: settings.code_length,
        valid_secs: secs(settings.valid),
        max_attempts: settings.max_attempts,
        resend_cooldown_secs: secs(settings.resend_cooldown),
        max_sends_per_hour: settings.max_sends_per_hour,
        max_sends_per_day: settings.max_sends_per_day,
        max_user_failures: settings.max_user_failures,
        max_host_failures: settings.max_host_failures,
        lockout_secs: secs(settings.lockout),
    }
}

/// Refuses logins whose fields are empty or longer than [`MAX_FIELD_LEN`]; they are untrusted.
fn check_fields(login: &LoginContext) -> Result<(), String> {
    let fields = [
        ("user", Some(&login.user)),
        ("service", Some(&login.service)),
        ("rhost", login.rhost.as_ref()),
        ("tty", login.tty.as_ref()),
        ("protocol", login.protocol.as_ref()),
    ];
    for (name, value) in fields {
        if let Some(value) = value {
            if value.len() > MAX_FIELD_LEN {
                return Err(format!("{name} is longer than {MAX_FIELD_LEN} bytes"));
            }
        }
    }
    if login.user.is_empty() || login.service.is_empty() {
        return Err("user and service must not be empty".into());
    }
    Ok(())
}

fn prompt(
    address: &common::config::EmailAddress,
    expires_at: i64,
    now: i64,
    challenge: &str,
) -> Response {
    Response::Prompt {
        challenge: challenge.to_string(),
        prompt: format!(
            "Code sent to {} (valid {} min): ",
            mask_email(address.as_str()),
            minutes_until(expires_at, now)
        ),
    }
}

fn locked(until: i64, now: i64) -> Response {
    Response::Denied {
        reason: DenyReason::LockedOut,
        message: format!(
            "Too many wrong codes. Try again in {} minutes.",
            minutes_until(until, now)
        ),
    }
}

fn refused_caller() -> Response {
    Response::Denied {
        reason: DenyReason::CallerRefused,
        message: "Not allowed to ask for another user's code.".into(),
    }
}

fn internal_error(error: &dyn std::fmt::Display) -> Response {
    tracing::error!("store error: {error}");
    Response::Unavailable {
        message: "The login code service has an internal error.".into(),
    }
}

/// Whole minutes until `until`, rounded up, at least 1.
fn minutes_until(until: i64, now: i64) -> i64 {
    ((until - now + 59) / 60).max(1)
}

/// Runs store work on a blocking thread; a panic there becomes an "unavailable" answer.
async fn blocking(work: impl FnOnce() -> Response + Send + 'static) -> Response {
    match run_blocking(work).await {
        Ok(response) | Err(response) => response,
    }
}

async fn run_blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Response> {
    tokio::task::spawn_blocking(work).await.map_err(|e| {
        tracing::error!("request task failed: {e}");
        Response::Unavailable {
            message: "The login code service has an internal error.".into(),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minutes_round_up() {
        assert_eq!(minutes_until(600, 0), 10);
        assert_eq!(minutes_until(601, 0), 11);
        assert_eq!(minutes_until(0, 10), 1);
    }

    #[test]
    fn over_long_fields_are_refused() {
        let mut login = LoginContext {
            user: "a".repeat(MAX_FIELD_LEN + 1),
            service: "sshd".into(),
            rhost: None,
            tty: None,
            protocol: None,
        };
        assert!(check_fields(&login).is_err());
        login.user = "alice".into();
        assert!(check_fields(&login).is_ok());
        login.rhost = Some("h".repeat(MAX_FIELD_LEN + 1));
        assert!(check_fields(&login).is_err());
    }
}
