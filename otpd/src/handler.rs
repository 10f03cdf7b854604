//! Dispatches one request (admin requests to [`crate::admin`]) and answers the login ones: one
//! forward path, facts -> policy -> store -> delivery -> answer.
//!
//! The login's facts (may the caller act for the user, the user's row and groups) are resolved
//! first, on a blocking thread and within [`directory::DEADLINE`], with no store transaction
//! open; the decision over them is pure ([`policy`]); the store work then runs in short
//! transactions, also on a blocking thread; only the mail send is awaited, outside the store
//! lock. The runtime's thread only reads and answers connections, so neither a slow directory,
//! a busy store nor a slow mail server holds up other logins.

use std::sync::Arc;

use common::secret::SecretString;
use common::service::Protocol;
use common::text::{MAX_FIELD_LEN, escape_for_log, mask_email};
use common::wire::{
    DenyReason, LoginContext, MAX_SSH_KEY_LEN, MAX_SSH_KEYS, Request, Response, SkipReason,
};

use crate::audit::{self, Event, Subject};
use crate::caller::{self, Caller, Origin, may_act_for};
use crate::delivery::{self, Delivered, OnFailure, Settlement};
use crate::directory::{
    self, AddressTemplate, Directory, DirectoryError, LocalTable, Nss, Unresolved, UserFacts,
    Wanted,
};
use crate::mail::{CodeMail, Values};
use crate::off_thread::{self, Lost};
use crate::policy::{self, CodeNeeded, Decision};
use crate::rules::{bounded, limits_of, secs};
use crate::state::{Active, Shared};
use crate::store::{IssueOutcome, IssueRequest, NoticeTo, Store, StoreError, VerifyOutcome};

/// Answers `request` from `caller`.
pub async fn handle(shared: &Arc<Shared>, caller: Caller, request: Request) -> Response {
    match request {
        Request::Ping => Response::Pong {
            version: env!("CARGO_PKG_VERSION").to_string(),
        },
        Request::Begin { login, ssh_keys } => {
            begin(shared, caller, login, Mode::First(ssh_keys)).await
        }
        Request::Resend { login } => begin(shared, caller, login, Mode::Resend).await,
        Request::Probe { login } => probe(shared, caller, login).await,
        Request::Verify { login, code } => verify_appended(shared, caller, login, code).await,
        Request::Admin { request } => Response::Admin {
            response: crate::admin::handle(shared, caller, request).await,
        },
        Request::Answer {
            login,
            challenge,
            code,
        } => {
            let response = answer(shared, caller, login, challenge, code).await;
            if matches!(response, Response::SuccessWithNotice { .. }) {
                // A recovery code was used: its notice is queued; wake the deliverer.
                shared.notices_queued.notify_one();
            }
            response
        }
    }
}

/// Who asked for a login request, and whether otpd believes the origin it reported.
#[derive(Debug, Clone, Copy)]
struct Asker {
    caller: Caller,
    origin: Origin,
}

impl Asker {
    /// The asker of `login`, and the login with its `rhost` and `tty` as otpd believes them
    /// (see [`caller::believed`]): everything after this sees only the believed ones.
    fn of(
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

    /// The remote host the store counts failures against and binds grants to: the reported
    /// one, or none for a local caller (its `local` never counts as a host).
    fn remote_host<'a>(&self, login: &'a LoginContext) -> Option<&'a str> {
        match self.origin {
            Origin::Reported => login.rhost.as_deref(),
            Origin::Local => None,
        }
    }

    /// The remote host as an address, for `match_rhost`: only a believed one.
    fn remote_address(&self, login: &LoginContext) -> Option<std::net::IpAddr> {
        self.remote_host(login).and_then(|host| host.parse().ok())
    }

    /// The SSH keys of a begin as otpd believes them: those root or a trusted caller reported
    /// (sshd's `SSH_AUTH_INFO_0`), none from anyone else, whose word vouches for nothing.
    fn believed_keys<'k>(&self, ssh_keys: &'k [String]) -> &'k [String] {
        match self.origin {
            Origin::Reported => ssh_keys,
            Origin::Local => &[],
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

/// Whether a begin is the login's first request (with the SSH keys the module reported) or the
/// person asked for a new code.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Mode {
    First(Vec<String>),
    Resend,
}

enum BeginStep {
    Done(Response),
    Mail(Box<PendingMail>),
}

async fn begin(shared: &Arc<Shared>, caller: Caller, login: LoginContext, mode: Mode) -> Response {
    if let Err(message) = check_fields(&login) {
        return Response::Error { message };
    }
    if let Mode::First(ssh_keys) = &mode {
        if let Err(message) = check_ssh_keys(ssh_keys) {
            return Response::Error { message };
        }
    }
    let active = shared.active();
    let facts = match resolve_facts(shared, &active, caller, login).await {
        Ok(facts) => facts,
        Err(response) => return response,
    };
    let step = {
        let (shared, active, facts) = (Arc::clone(shared), Arc::clone(&active), facts.clone());
        off_thread::run(move || prepare_begin(&shared, &active, &facts, &mode)).await
    };
    let pending = match step {
        Ok(BeginStep::Done(response)) => return response,
        Ok(BeginStep::Mail(pending)) => pending,
        Err(Lost) => return lost(),
    };
    let Facts { asker, login, .. } = facts;
    let mail = CodeMail {
        values: Values {
            to: &pending.needed.address,
            user: &login.user,
            code: &pending.code,
            host: &shared.hostname,
            service: &login.service,
            protocol: pending.needed.protocol.as_str(),
            rhost: login.rhost.as_deref(),
            issued_at: pending.issued_at,
            expires_at: pending.expires_at,
        },
        overrides: &pending.needed.settings.message,
    };
    // The unmailed code dies, unless the login has a prompt and the user has recovery codes:
    // then its challenge answers to one of them only (fail closed without them). Single-secret
    // protocols have no prompt to type one at.
    let on_failure = if has_prompt(pending.needed.protocol) {
        OnFailure::OfferRecovery
    } else {
        OnFailure::Invalidate
    };
    let protocol = pending.needed.protocol;
    let audited = login.clone();
    let delivered = delivery::deliver(
        shared,
        &active.mailer,
        &mail,
        &pending.challenge,
        on_failure,
        move |store, now, settlement| {
            let subject = Subject {
                login: &audited,
                protocol: Some(protocol.as_str()),
                caller_uid: asker.caller.uid,
                origin: asker.origin,
            };
            match settlement {
                Settlement::Mailed { server } => {
                    audit::record(store, now, Event::Mailed, subject, Some(server));
                }
                Settlement::MailFailed { detail } => {
                    audit::record(store, now, Event::MailFailed, subject, Some(detail));
                }
                Settlement::RecoveryOffered { left } => {
                    let detail = format!("left={left}");
                    audit::record(store, now, Event::RecoveryOffered, subject, Some(&detail));
                }
            }
        },
    )
    .await;
    match delivered {
        Ok(Delivered::Mailed) => prompt(
            &pending.needed.address,
            pending.expires_at,
            shared.clock.now(),
            &pending.challenge,
            None,
        ),
        Ok(Delivered::Recovery { left }) => recovery_prompt(&pending.challenge, left),
        Ok(Delivered::Failed) => Response::Unavailable {
            message: "The login code could not be sent. Try again later.".into(),
        },
        Err(Lost) => lost(),
    }
}

/// Begin's store work, on a blocking thread: the decision over `facts`, then the code issued
/// (or reused, refused) in the store.
fn prepare_begin(shared: &Shared, active: &Active, facts: &Facts, mode: &Mode) -> BeginStep {
    let (asker, login) = (facts.asker, &facts.login);
    let now = shared.clock.now();
    let mut store = shared.store();
    let needed = match needs_code(active, &mut store, facts, now) {
        Ok(needed) => needed,
        Err(response) => return BeginStep::Done(response),
    };
    if let Mode::First(ssh_keys) = mode {
        let fingerprints = crate::ssh_key::fingerprints(asker.believed_keys(ssh_keys));
        if let Some(fingerprint) = active
            .config
            .exempting_fingerprint(&login.user, &fingerprints)
        {
            let subject = code_subject(login, &needed, asker);
            audit::record(&mut store, now, Event::Exempt, subject, Some(fingerprint));
            return BeginStep::Done(Response::Skip {
                reason: SkipReason::Exempt,
            });
        }
    }
    let limits = limits_of(&needed.settings);
    let outcome = match delivery::issue(
        &mut **store,
        &code_request(login, &needed, asker),
        &limits,
        now,
    ) {
        Ok(outcome) => outcome,
        Err(e) => return BeginStep::Done(internal_error(&e)),
    };
    let subject = code_subject(login, &needed, asker);
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
            issued_at,
            expires_at,
        } => {
            audit::record(&mut store, now, Event::Reused, subject, None);
            // Asked for a new code inside the cooldown: say when one can be sent.
            let wait = (*mode == Mode::Resend).then(|| {
                let cooldown = limits.resend_cooldown_secs;
                (issued_at.saturating_add(cooldown) - now).max(1)
            });
            BeginStep::Done(prompt(&needed.address, expires_at, now, &challenge, wait))
        }
        IssueOutcome::RateLimited { retry_after } => {
            // Seconds from now, like every duration otpd logs: a raw unix time read as one.
            let detail = format!("retry_after_seconds={}", (retry_after - now).max(0));
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
            BeginStep::Done(refuse_locked(&mut store, subject, until, now))
        }
    }
}

/// The checks every code request starts with, over its resolved `facts`: the caller may act
/// for the user, the login's protocol, the policy. `Ok` when a code is needed; otherwise the
/// response to give (skip, refusal, error), already audited. No lookup happens here.
fn needs_code(
    active: &Active,
    store: &mut dyn Store,
    facts: &Facts,
    now: i64,
) -> Result<CodeNeeded, Response> {
    let (asker, login) = (facts.asker, &facts.login);
    let config = &active.config;
    let subject = |protocol| Subject {
        login,
        protocol,
        caller_uid: asker.caller.uid,
        origin: asker.origin,
    };
    if !facts.may_act {
        audit::record(store, now, Event::RefusedCaller, subject(None), None);
        return Err(refused_caller());
    }
    let protocol = policy::login_protocol(config, login).map_err(|e| Response::Error {
        message: e.to_string(),
    })?;
    let protocol_name = protocol.map(|p| p.as_str());
    let rhost = asker.remote_address(login);
    let decision = policy::decide(
        config,
        login,
        rhost,
        protocol,
        facts.user.record.as_ref(),
        facts.user.address.clone(),
        || facts.user.groups.clone(),
    );
    match decision {
        Decision::Skip(reason) => {
            let detail = serde_json::to_string(&reason).unwrap_or_default();
            let detail = detail.trim_matches('"');
            audit::record(
                store,
                now,
                Event::Skipped,
                subject(protocol_name),
                Some(detail),
            );
            Err(Response::Skip { reason })
        }
        Decision::NoUsableAddress | Decision::Code(_)
            if crate::breakglass::check_login(
                store,
                now,
                login,
                protocol_name,
                asker.caller.uid,
                asker.origin,
            ) =>
        {
            Err(Response::Skip {
                reason: SkipReason::BreakGlass,
            })
        }
        Decision::NoUsableAddress => {
            audit::record(
                store,
                now,
                Event::MailFailed,
                subject(protocol_name),
                Some("no usable address for an enrolled user"),
            );
            Err(Response::Unavailable {
                message: "No address is on file for your login code. Ask your administrator."
                    .into(),
            })
        }
        Decision::Code(needed) => Ok(needed),
    }
}

/// What a request that checks or looks up a code does with a skipped login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OnSkip {
    /// Pass the skip on: the module answers PAM_IGNORE (probe).
    Answer,
    /// A login that needs no code has nothing to verify: an error, never a success.
    Refuse,
}

/// Runs `work` for a login that needs a code, after the common checks (fields, facts, caller,
/// protocol, policy), in one store transaction on a blocking thread; otherwise answers what
/// those checks said.
async fn for_needed_code(
    shared: &Arc<Shared>,
    caller: Caller,
    login: LoginContext,
    on_skip: OnSkip,
    work: impl FnOnce(&mut dyn Store, &Facts, &CodeNeeded, i64) -> Response + Send + 'static,
) -> Response {
    if let Err(message) = check_fields(&login) {
        return Response::Error { message };
    }
    let active = shared.active();
    let facts = match resolve_facts(shared, &active, caller, login).await {
        Ok(facts) => facts,
        Err(response) => return response,
    };
    let shared = Arc::clone(shared);
    let done = off_thread::run(move || {
        let now = shared.clock.now();
        let mut store = shared.store();
        match needs_code(&active, &mut store, &facts, now) {
            Ok(needed) => work(&mut store, &facts, &needed, now),
            Err(Response::Skip { .. }) if on_skip == OnSkip::Refuse => Response::Error {
                message: "this login needs no code".into(),
            },
            Err(response) => response,
        }
    })
    .await;
    done.unwrap_or_else(|Lost| lost())
}

/// What a login request is decided on, resolved before any store transaction.
#[derive(Debug, Clone)]
struct Facts {
    /// Who asked.
    asker: Asker,
    /// The login, with its origin as otpd believes it.
    login: LoginContext,
    /// Whether the asker may act for the login's user.
    may_act: bool,
    /// What the directories know of the user (only what the decision will read).
    user: UserFacts,
}

/// Resolves a login's facts on a blocking thread within [`directory::DEADLINE`]: past it, or on
/// a directory error, the login is unavailable (fail closed).
async fn resolve_facts(
    shared: &Arc<Shared>,
    active: &Arc<Active>,
    caller: Caller,
    login: LoginContext,
) -> Result<Facts, Response> {
    let user = login.user.clone();
    let (shared, active) = (Arc::clone(shared), Arc::clone(active));
    let resolved = directory::within_deadline(directory::DEADLINE, &user, move || {
        look_up_facts(&shared, &active, caller, login)
    })
    .await;
    match resolved {
        Ok(Ok(facts)) => Ok(facts),
        Ok(Err(e)) => Err(internal_error(&e)),
        Err(Unresolved::Lost) => Err(lost()),
        Err(Unresolved::Late) => Err(Response::Unavailable {
            message:
                "The login code service could not look up your account in time. Try again later."
                    .into(),
        }),
    }
}

/// The lookups behind [`resolve_facts`]; they block.
fn look_up_facts(
    shared: &Shared,
    active: &Active,
    caller: Caller,
    login: LoginContext,
) -> Result<Facts, DirectoryError> {
    let config = &active.config;
    let accounts = shared.accounts.as_ref();
    let (asker, login) = Asker::of(shared, active, caller, login);
    let may_act = may_act_for(
        caller,
        &login.user,
        &config.daemon.trusted_callers,
        accounts,
    );
    // Only a login the decision gets as far as the user for needs the user's facts.
    let protocol = policy::login_protocol(config, &login).ok().flatten();
    let reaches_user = may_act && policy::enabled_protocol(config, protocol).is_ok();
    let wanted = Wanted {
        record: reaches_user,
        groups: reaches_user && config.policies_need_groups(),
    };
    let sources: [&dyn Directory; 3] = [
        &LocalTable(shared),
        &AddressTemplate(config),
        &Nss(accounts),
    ];
    let user = directory::look_up(&sources, &login.user, wanted)?;
    Ok(Facts {
        asker,
        login,
        may_act,
        user,
    })
}

/// The store's view of a login that needs a code.
fn code_request<'a>(
    login: &'a LoginContext,
    needed: &CodeNeeded,
    asker: Asker,
) -> IssueRequest<'a> {
    IssueRequest {
        user: &login.user,
        protocol: needed.protocol.as_str(),
        service: &login.service,
        rhost: asker.remote_host(login),
    }
}

/// Single-secret protocols: does the login need a code, and does its secret carry one?
async fn probe(shared: &Arc<Shared>, caller: Caller, login: LoginContext) -> Response {
    for_needed_code(
        shared,
        caller,
        login,
        OnSkip::Answer,
        |store, facts, needed, now| {
            let limits = limits_of(&needed.settings);
            let request = code_request(&facts.login, needed, facts.asker);
            match store.expects_code(&request, &limits, now) {
                Ok(expects_code) => Response::Probe {
                    code_length: needed.settings.code_length,
                    expects_code,
                },
                Err(e) => internal_error(&e),
            }
        },
    )
    .await
}

/// Single-secret protocols: checks the code that came appended to the password.
async fn verify_appended(
    shared: &Arc<Shared>,
    caller: Caller,
    login: LoginContext,
    code: SecretString,
) -> Response {
    for_needed_code(
        shared,
        caller,
        login,
        OnSkip::Refuse,
        move |store, facts, needed, now| {
            let (login, asker) = (&facts.login, facts.asker);
            let mut rng = crate::code::os_rng();
            let outcome = store.verify_appended(
                &code_request(login, needed, asker),
                &bounded(&code),
                &limits_of(&needed.settings),
                secs(needed.settings.reuse_window),
                now,
                &mut rng,
            );
            verdict(store, now, code_subject(login, needed, asker), outcome)
        },
    )
    .await
}

/// Checks an interactive answer to `challenge`. A recovery code that answers it queues the
/// notice mail to the user's address in the same transaction (see [`crate::notices`]).
async fn answer(
    shared: &Arc<Shared>,
    caller: Caller,
    login: LoginContext,
    challenge: String,
    code: SecretString,
) -> Response {
    for_needed_code(
        shared,
        caller,
        login,
        OnSkip::Refuse,
        move |store, facts, needed, now| {
            let (login, asker) = (&facts.login, facts.asker);
            let outcome = store.verify_answer(
                &challenge,
                &login.user,
                needed.protocol.as_str(),
                asker.remote_host(login),
                &bounded(&code),
                &limits_of(&needed.settings),
                now,
                &NoticeTo {
                    address: needed.address.as_str(),
                    service: &login.service,
                },
            );
            verdict(store, now, code_subject(login, needed, asker), outcome)
        },
    )
    .await
}

/// The audit subject of a login whose code is issued, mailed or checked.
fn code_subject<'a>(login: &'a LoginContext, needed: &'a CodeNeeded, asker: Asker) -> Subject<'a> {
    Subject {
        login,
        protocol: Some(needed.protocol.as_str()),
        caller_uid: asker.caller.uid,
        origin: asker.origin,
    }
}

/// Audits a verification and words the answer for the person.
fn verdict(
    store: &mut dyn Store,
    now: i64,
    subject: Subject<'_>,
    outcome: Result<VerifyOutcome, StoreError>,
) -> Response {
    match outcome {
        Ok(VerifyOutcome::Success) => {
            audit::record(store, now, Event::Verified, subject, None);
            Response::Success
        }
        Ok(VerifyOutcome::Wrong { attempts_left }) => {
            let detail = format!("attempts_left={attempts_left}");
            audit::record(store, now, Event::WrongCode, subject, Some(&detail));
            Response::Denied {
                reason: DenyReason::WrongCode,
                message: "Wrong code.".into(),
            }
        }
        Ok(VerifyOutcome::Dead) => {
            audit::record(store, now, Event::CodeDead, subject, None);
            Response::Denied {
                reason: DenyReason::CodeDead,
                message: "This code is no longer valid. Log in again for a new one.".into(),
            }
        }
        Ok(VerifyOutcome::LockedOut { until }) => refuse_locked(store, subject, until, now),
        Ok(VerifyOutcome::RecoveryUsed { left }) => {
            let detail = format!("left={left}");
            audit::record(store, now, Event::RecoveryUsed, subject, Some(&detail));
            Response::SuccessWithNotice {
                message: format!(
                    "Recovery code accepted; it cannot be used again. {left} recovery codes left."
                ),
            }
        }
        Err(e) => internal_error(&e),
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

/// Refuses more SSH keys than [`MAX_SSH_KEYS`] or longer ones than [`MAX_SSH_KEY_LEN`]; the
/// module never sends such a list.
fn check_ssh_keys(ssh_keys: &[String]) -> Result<(), String> {
    if ssh_keys.len() > MAX_SSH_KEYS {
        return Err(format!("more than {MAX_SSH_KEYS} ssh_keys"));
    }
    if ssh_keys.iter().any(|k| k.len() > MAX_SSH_KEY_LEN) {
        return Err(format!("an ssh key is longer than {MAX_SSH_KEY_LEN} bytes"));
    }
    Ok(())
}

/// The prompt for a code mailed to `address`. With `wait` (seconds until a new code may be
/// sent), it tells a person who asked for a new code too early to use the one already sent.
fn prompt(
    address: &common::config::EmailAddress,
    expires_at: i64,
    now: i64,
    challenge: &str,
    wait: Option<i64>,
) -> Response {
    let notice = wait
        .map(|secs| format!("No new code yet (possible in {secs} s). "))
        .unwrap_or_default();
    Response::Prompt {
        challenge: challenge.to_string(),
        prompt: format!(
            "{notice}Code sent to {} (valid {} min): ",
            mask_email(address.as_str()),
            minutes_until(expires_at, now)
        ),
    }
}

/// Whether logins by `protocol` answer a prompt (keyboard-interactive, su, login), where a
/// recovery code can be typed; the others send the code appended to the password.
fn has_prompt(protocol: Protocol) -> bool {
    matches!(protocol, Protocol::Ssh | Protocol::Sftp | Protocol::Console)
}

/// The prompt of a login whose code mail failed, for a user with `left` recovery codes: the
/// challenge now answers only to one of them.
fn recovery_prompt(challenge: &str, left: u32) -> Response {
    Response::Prompt {
        challenge: challenge.to_string(),
        prompt: format!(
            "The login code could not be mailed. Enter a recovery code instead ({left} left): "
        ),
    }
}

/// Audits a login refused by a lockout, ending at `until`, and answers it. The audit says which
/// lock holds (`by=user`, `by=host`, or `by=user,host` when the address's outlasts the user's)
/// and for how many seconds; the message tells a user refused for their address's failures
/// that it was not their own typing, so they ask an admin for `otpctl host unlock`.
fn refuse_locked(store: &mut dyn Store, subject: Subject<'_>, until: i64, now: i64) -> Response {
    let by = match store.user_locked_until(&subject.login.user, now) {
        Ok(Some(user_until)) if user_until >= until => "user",
        Ok(Some(_)) => "user,host",
        Ok(None) => "host",
        Err(_) => "unknown",
    };
    let detail = format!("by={by} locked_seconds_left={}", (until - now).max(0));
    audit::record(store, now, Event::Locked, subject, Some(&detail));
    let whose = if by == "host" {
        " from this address"
    } else {
        ""
    };
    Response::Denied {
        reason: DenyReason::LockedOut,
        message: format!(
            "Too many wrong codes{whose}. Try again in {} minutes.",
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
    tracing::error!("store error: {}", escape_for_log(&error.to_string()));
    Response::Unavailable {
        message: "The login code service has an internal error.".into(),
    }
}

/// Whole minutes until `until`, rounded up, at least 1.
fn minutes_until(until: i64, now: i64) -> i64 {
    ((until - now + 59) / 60).max(1)
}

/// The answer to a request whose work was lost to a panic.
fn lost() -> Response {
    Response::Unavailable {
        message: "The login code service has an internal error.".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::Arc;

    use common::wire::Request;

    use crate::clock::SystemClock;

    use crate::state::Shared;
    use crate::test_support::caller;

    /// otpd requiring a code of everyone, its only mail server on a loopback port where
    /// nothing listens: every code mail fails.
    fn relay_down() -> (tempfile::TempDir, Arc<Shared>) {
        let dir = tempfile::tempdir().unwrap();
        let text = "[directory]\nemail_template = \"{user}@example.test\"\n\
                    [defaults]\nmode = \"required\"\n\
                    [mail]\nfrom = \"otp@example.com\"\n\
                    [[mail.servers]]\nname = \"dead\"\nhost = \"127.0.0.1\"\nport = 1\n\
                    security = \"none\"\ntimeout_seconds = 2\n";
        let config = common::config::Config::parse(text, std::path::Path::new("t.toml")).unwrap();
        let shared = Arc::new(crate::test_support::shared(
            dir.path(),
            config,
            Arc::new(SystemClock),
        ));
        (dir, shared)
    }

    fn alice() -> LoginContext {
        LoginContext {
            user: "alice".into(),
            service: "sshd".into(),
            rhost: Some("192.0.2.1".into()),
            tty: None,
            protocol: None,
        }
    }

    fn audited(shared: &Shared, event: &str) -> i64 {
        let store = shared.store();
        store.count_rows(&format!(
            "SELECT count(*) FROM audit WHERE event = '{event}' AND user = 'alice'"
        ))
    }

    /// A Begin for `login` as sshd (root) sends it, with no SSH keys.
    async fn begin_as_root(shared: &Arc<Shared>, login: LoginContext) -> Response {
        let request = Request::Begin {
            login,
            ssh_keys: Vec::new(),
        };
        handle(shared, caller(0), request).await
    }

    #[tokio::test]
    async fn when_the_mail_fails_a_user_with_recovery_codes_is_prompted_for_one_and_it_logs_in() {
        let (_dir, shared) = relay_down();
        let codes = shared
            .store()
            .new_recovery_codes("alice", shared.clock.now(), &mut rand::rng())
            .unwrap();
        let begun = begin_as_root(&shared, alice()).await;
        let Response::Prompt { challenge, prompt } = begun else {
            panic!("not a prompt: {begun:?}");
        };
        assert_eq!(
            prompt,
            "The login code could not be mailed. Enter a recovery code instead (10 left): "
        );
        let answered = handle(
            &shared,
            caller(0),
            Request::Answer {
                login: alice(),
                challenge,
                code: codes[2].clone(),
            },
        )
        .await;
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

    #[tokio::test]
    async fn when_the_mail_fails_a_single_secret_login_is_not_offered_a_recovery_prompt() {
        let (_dir, shared) = relay_down();
        shared
            .store()
            .new_recovery_codes("alice", shared.clock.now(), &mut rand::rng())
            .unwrap();
        let ftp = LoginContext {
            service: "vsftpd".into(),
            protocol: Some("ftp".into()),
            ..alice()
        };
        let begun = begin_as_root(&shared, ftp).await;
        assert!(matches!(begun, Response::Unavailable { .. }), "{begun:?}");
        assert_eq!(audited(&shared, "recovery_offered"), 0);
    }

    #[tokio::test]
    async fn when_the_mail_fails_a_user_without_recovery_codes_gets_unavailable() {
        let (_dir, shared) = relay_down();
        let begun = begin_as_root(&shared, alice()).await;
        assert!(matches!(begun, Response::Unavailable { .. }), "{begun:?}");
        assert_eq!(audited(&shared, "recovery_offered"), 0);
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
        let wrong = handle(
            &shared,
            caller(0),
            Request::Answer {
                login: alice(),
                challenge: challenge.clone(),
                code: SecretString::new("zzzzz-zzzzz".into()),
            },
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
        let right = handle(
            &shared,
            caller(0),
            Request::Answer {
                login: alice(),
                challenge,
                code: codes[0].clone(),
            },
        )
        .await;
        assert!(
            matches!(right, Response::SuccessWithNotice { .. }),
            "{right:?}"
        );
    }

    /// NSS whose group lookup for `stuck` does not return until the test lets it.
    #[derive(Debug)]
    struct StuckLookup(std::sync::Mutex<std::sync::mpsc::Receiver<()>>);

    impl crate::accounts::Accounts for StuckLookup {
        fn user_name(&self, uid: u32) -> Option<String> {
            crate::test_support::FakeAccounts.user_name(uid)
        }
        fn uid_of(&self, name: &str) -> Option<u32> {
            crate::test_support::FakeAccounts.uid_of(name)
        }
        fn groups_of(&self, user: &str) -> Vec<String> {
            if user == "stuck" {
                let _ = self.0.lock().unwrap().recv();
            }
            crate::test_support::FakeAccounts.groups_of(user)
        }
    }

    /// Issue #18: a lookup that never answers must not keep the login waiting, nor let it in.
    #[tokio::test(start_paused = true)]
    async fn a_login_whose_directory_misses_the_deadline_is_unavailable() {
        let dir = tempfile::tempdir().unwrap();
        let config = crate::test_support::config(
            "[defaults]\nmode = \"required\"\n[directory]\nemail_template = \"{user}@example.com\"\n\
             [profiles.wheel]\nmode = \"off\"\n[[policies]]\nmatch_group = \"wheel\"\nprofile = \"wheel\"",
        );
        let (release, stuck) = std::sync::mpsc::channel();
        let shared = Arc::new(crate::test_support::shared_with_accounts(
            dir.path(),
            config,
            Arc::new(SystemClock),
            Arc::new(StuckLookup(std::sync::Mutex::new(stuck))),
        ));
        let login = LoginContext {
            user: "stuck".into(),
            ..alice()
        };
        let begun = tokio::spawn(async move { begin_as_root(&shared, login).await });
        tokio::task::yield_now().await;
        tokio::time::advance(crate::directory::DEADLINE + std::time::Duration::from_secs(1)).await;
        for _ in 0..100 {
            if begun.is_finished() {
                break;
            }
            tokio::task::yield_now().await;
        }
        let answered_in_time = begun.is_finished();
        release.send(()).unwrap();
        assert!(answered_in_time, "the login still waits for its lookup");
        let answer = begun.await.unwrap();
        assert!(
            matches!(&answer, Response::Unavailable { message } if message.contains("in time")),
            "{answer:?}"
        );
    }

    #[test]
    fn minutes_round_up() {
        assert_eq!(minutes_until(600, 0), 10);
        assert_eq!(minutes_until(601, 0), 11);
        assert_eq!(minutes_until(0, 10), 1);
    }

    /// Break-glass (issue #16): a clock the test moves.
    #[derive(Debug, Default)]
    struct FakeClock(std::sync::atomic::AtomicI64);

    impl crate::clock::Clock for FakeClock {
        fn now(&self) -> i64 {
            self.0.load(std::sync::atomic::Ordering::SeqCst)
        }
    }

    const T0: i64 = 1_700_000_000;

    /// A daemon whose sshd logins need a code (every user has an address), on `clock`.
    fn breakglass_daemon(clock: Arc<FakeClock>) -> (tempfile::TempDir, Arc<Shared>) {
        let dir = tempfile::tempdir().unwrap();
        let config = crate::test_support::config(
            "[protocols]\nenabled = [\"ssh\"]\n[defaults]\nmode = \"required\"\n[directory]\nemail_template = \"{user}@example.com\"",
        );
        let shared = Arc::new(crate::test_support::shared(dir.path(), config, clock));
        (dir, shared)
    }

    fn ssh_login(user: &str, rhost: &str) -> LoginContext {
        LoginContext {
            user: user.into(),
            service: "sshd".into(),
            rhost: Some(rhost.into()),
            tty: None,
            protocol: None,
        }
    }

    /// What begin's checks answer for `login` asked by `uid`: `None` when a code would be
    /// mailed, else the answer.
    fn checks(shared: &Shared, uid: u32, login: LoginContext) -> Option<Response> {
        let active = shared.active();
        let facts =
            look_up_facts(shared, &active, crate::test_support::caller(uid), login).unwrap();
        let now = shared.clock.now();
        let mut store = shared.store();
        needs_code(&active, &mut store, &facts, now).err()
    }

    fn grant(shared: &Shared, user: &str, minutes: i64, cidr: Option<&str>) {
        let now = shared.clock.now();
        let grant = crate::store::BreakGlass {
            user: user.into(),
            cidr: cidr.map(str::to_string),
            granted_by: 0,
            granted_at: now,
            expires_at: now + minutes * 60,
        };
        shared.store().grant_breakglass(&grant).unwrap();
    }

    fn audit_count(shared: &Shared, event: &str) -> usize {
        let mut store = shared.store();
        let filter = crate::store::AuditFilter {
            user: None,
            event: Some(event.into()),
            since: 0,
            limit: 100,
            before: None,
        };
        store.audit_filtered(&filter).unwrap().len()
    }

    const BREAK_GLASS: Option<Response> = Some(Response::Skip {
        reason: SkipReason::BreakGlass,
    });

    #[test]
    fn a_live_grant_skips_the_code_step_with_break_glass_and_audits_each_use() {
        let clock = Arc::new(FakeClock::default());
        clock.0.store(T0, std::sync::atomic::Ordering::SeqCst);
        let (_dir, shared) = breakglass_daemon(Arc::clone(&clock));
        assert_eq!(checks(&shared, 0, ssh_login("root", "192.0.2.1")), None);
        grant(&shared, "root", 5, None);
        assert_eq!(
            checks(&shared, 0, ssh_login("root", "192.0.2.1")),
            BREAK_GLASS
        );
        assert_eq!(
            checks(&shared, 0, ssh_login("root", "198.51.100.1")),
            BREAK_GLASS
        );
        // Only the granted user.
        assert_eq!(checks(&shared, 0, ssh_login("alice", "192.0.2.1")), None);
        assert_eq!(audit_count(&shared, "breakglass_used"), 2);
    }

    #[test]
    fn a_grant_ends_at_its_expiry_and_the_expiry_is_audited_once() {
        let clock = Arc::new(FakeClock::default());
        clock.0.store(T0, std::sync::atomic::Ordering::SeqCst);
        let (_dir, shared) = breakglass_daemon(Arc::clone(&clock));
        grant(&shared, "root", 1, None);
        clock.0.store(T0 + 59, std::sync::atomic::Ordering::SeqCst);
        assert_eq!(
            checks(&shared, 0, ssh_login("root", "192.0.2.1")),
            BREAK_GLASS
        );
        clock.0.store(T0 + 60, std::sync::atomic::Ordering::SeqCst);
        assert_eq!(checks(&shared, 0, ssh_login("root", "192.0.2.1")), None);
        assert_eq!(checks(&shared, 0, ssh_login("root", "192.0.2.1")), None);
        crate::breakglass::expire_all(&mut shared.store(), T0 + 120);
        assert_eq!(audit_count(&shared, "breakglass_expired"), 1);
    }

    #[test]
    fn a_restricted_grant_needs_a_believed_rhost_inside_its_network() {
        let clock = Arc::new(FakeClock::default());
        clock.0.store(T0, std::sync::atomic::Ordering::SeqCst);
        let (_dir, shared) = breakglass_daemon(Arc::clone(&clock));
        grant(&shared, "bob", 5, Some("192.0.2.0/24"));
        assert_eq!(
            checks(&shared, 0, ssh_login("bob", "192.0.2.9")),
            BREAK_GLASS
        );
        assert_eq!(checks(&shared, 0, ssh_login("bob", "198.51.100.1")), None);
        // bob himself (uid 1001) is a local caller: his reported rhost is not believed.
        assert_eq!(checks(&shared, 1001, ssh_login("bob", "192.0.2.9")), None);
        assert_eq!(audit_count(&shared, "breakglass_used"), 1);
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

    /// Issue #17: the audit line said `retry_after=1796461369`, a unix time read as a wait.
    #[tokio::test]
    async fn a_rate_limited_login_is_audited_with_the_seconds_to_wait_not_a_timestamp() {
        let clock = Arc::new(FakeClock::default());
        clock.0.store(T0, std::sync::atomic::Ordering::SeqCst);
        let (_dir, shared) = breakglass_daemon(Arc::clone(&clock));
        let limits = limits_of(&shared.active().config.defaults);
        // The hourly cap (5) filled by logins a minute apart, the oldest 300 s ago.
        for minute in 0..5 {
            let request = IssueRequest {
                user: "alice",
                protocol: "ssh",
                service: "sshd",
                rhost: None,
            };
            let at = T0 - 300 + 60 * minute;
            shared
                .store()
                .issue(&request, &limits, at, &mut rand::rng())
                .unwrap();
        }
        let answer = begin_as_root(&shared, ssh_login("alice", "192.0.2.1")).await;
        assert!(
            matches!(
                answer,
                Response::Denied {
                    reason: DenyReason::RateLimited,
                    ..
                }
            ),
            "{answer:?}"
        );
        let store = shared.store();
        assert_eq!(
            store.count_rows(
                "SELECT count(*) FROM audit
                 WHERE event = 'rate_limited' AND detail = 'retry_after_seconds=3300'"
            ),
            1
        );
    }

    // --- exemptions and trusted networks (issue #16), through `handle` in-process ---

    use crate::test_support::config;
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use common::wire::SkipReason;

    /// An ed25519 public key line whose 32 key bytes are all `byte`.
    fn key_line(byte: u8) -> String {
        let mut blob = Vec::new();
        blob.extend_from_slice(&11u32.to_be_bytes());
        blob.extend_from_slice(b"ssh-ed25519");
        blob.extend_from_slice(&32u32.to_be_bytes());
        blob.extend_from_slice(&[byte; 32]);
        format!("ssh-ed25519 {}", STANDARD.encode(blob))
    }

    /// otpd with `extra` in its config, every login required to give a code mailed to
    /// `USER@example.com` through a server that refuses connections, and `www-data` trusted.
    fn shared_with(extra: &str) -> (tempfile::TempDir, Arc<Shared>) {
        let dir = tempfile::tempdir().unwrap();
        let config = config(&format!(
            "[daemon]\ntrusted_callers = [\"www-data\"]\n[defaults]\nmode = \"required\"\n[directory]\nemail_template = \"{{user}}@example.com\"\n{extra}"
        ));
        let shared = Arc::new(crate::test_support::shared(
            dir.path(),
            config,
            Arc::new(SystemClock),
        ));
        (dir, shared)
    }

    fn alice_from(rhost: &str) -> LoginContext {
        LoginContext {
            user: "alice".into(),
            service: "sshd".into(),
            rhost: Some(rhost.into()),
            tty: Some("ssh".into()),
            protocol: None,
        }
    }

    async fn begin_as(shared: &Arc<Shared>, uid: u32, rhost: &str, keys: &[String]) -> Response {
        let request = Request::Begin {
            login: alice_from(rhost),
            ssh_keys: keys.to_vec(),
        };
        handle(shared, caller(uid), request).await
    }

    fn exempt() -> Response {
        Response::Skip {
            reason: SkipReason::Exempt,
        }
    }

    #[tokio::test]
    async fn a_listed_key_skips_the_code_only_when_root_or_a_trusted_caller_reports_it() {
        let listed = key_line(0xa1);
        let fingerprint = crate::ssh_key::fingerprint(&listed).unwrap();
        let (_dir, shared) = shared_with(&format!(
            "[[exemptions]]\nuser = \"alice\"\nssh_key_fingerprints = [\"{fingerprint}\"]"
        ));
        let other = key_line(0xb2);
        for uid in [0, 33] {
            assert_eq!(
                begin_as(&shared, uid, "192.0.2.7", std::slice::from_ref(&listed)).await,
                exempt()
            );
            assert_eq!(
                begin_as(&shared, uid, "192.0.2.7", &[other.clone(), listed.clone()]).await,
                exempt(),
                "any key that authenticated"
            );
            let not_listed =
                begin_as(&shared, uid, "192.0.2.7", std::slice::from_ref(&other)).await;
            assert!(
                !matches!(not_listed, Response::Skip { .. }),
                "{not_listed:?}"
            );
            let none = begin_as(&shared, uid, "192.0.2.7", &[]).await;
            assert!(!matches!(none, Response::Skip { .. }), "{none:?}");
        }
        // alice herself, through the socket: her word vouches for nothing.
        let claimed = begin_as(&shared, 1000, "192.0.2.7", std::slice::from_ref(&listed)).await;
        assert!(!matches!(claimed, Response::Skip { .. }), "{claimed:?}");
        let mut store = shared.store();
        let rows: Vec<_> = store
            .audit_since(0, 1000)
            .unwrap()
            .into_iter()
            .filter(|r| r.event == "exempt")
            .collect();
        assert_eq!(rows.len(), 4, "{rows:?}");
        assert!(
            rows.iter()
                .all(|r| r.detail.as_deref() == Some(fingerprint.as_str())),
            "{rows:?}"
        );
    }

    #[tokio::test]
    async fn an_exemption_is_for_its_user_only() {
        let listed = key_line(0xa1);
        let fingerprint = crate::ssh_key::fingerprint(&listed).unwrap();
        let (_dir, shared) = shared_with(&format!(
            "[[exemptions]]\nuser = \"deploy\"\nssh_key_fingerprints = [\"{fingerprint}\"]"
        ));
        let reply = begin_as(&shared, 0, "192.0.2.7", &[listed]).await;
        assert!(!matches!(reply, Response::Skip { .. }), "{reply:?}");
    }

    #[tokio::test]
    async fn too_many_or_too_long_ssh_keys_are_a_bad_request() {
        let (_dir, shared) = shared_with("");
        let many = vec![key_line(1); MAX_SSH_KEYS + 1];
        assert!(matches!(
            begin_as(&shared, 0, "192.0.2.7", &many).await,
            Response::Error { .. }
        ));
        let long = vec!["x".repeat(MAX_SSH_KEY_LEN + 1)];
        assert!(matches!(
            begin_as(&shared, 0, "192.0.2.7", &long).await,
            Response::Error { .. }
        ));
    }

    #[tokio::test]
    async fn a_trusted_network_skips_the_code_only_for_a_host_root_or_a_trusted_caller_reports() {
        let (_dir, shared) = shared_with(
            "[profiles.mgmt]\nmode = \"off\"\n[[policies]]\nmatch_rhost = [\"10.0.0.0/8\"]\nprofile = \"mgmt\"",
        );
        let mode_off = Response::Skip {
            reason: SkipReason::ModeOff,
        };
        assert_eq!(begin_as(&shared, 0, "10.1.2.3", &[]).await, mode_off);
        assert_eq!(begin_as(&shared, 33, "10.1.2.3", &[]).await, mode_off);
        assert_eq!(begin_as(&shared, 0, "::ffff:10.1.2.3", &[]).await, mode_off);
        let outside = begin_as(&shared, 0, "192.0.2.7", &[]).await;
        assert!(!matches!(outside, Response::Skip { .. }), "{outside:?}");
        // The same host claimed by alice through the socket is not believed.
        let claimed = begin_as(&shared, 1000, "10.1.2.3", &[]).await;
        assert!(!matches!(claimed, Response::Skip { .. }), "{claimed:?}");
    }
}
