//! A login's first request, and a request for a new code: the checks, then a code issued (or
//! the live one reused, or refused) in the store, mailed, and the prompt to answer it.

use std::sync::Arc;

use common::secret::SecretString;
use common::service::Protocol;
use common::wire::{DenyReason, LoginContext, Response, SkipReason};

use super::facts::{Facts, Next, decide_with_facts};
use super::fields::{check_ssh_keys, refuse_bad_fields};
use super::needs_code::{code_request, code_subject, is_dry_run, needs_code, would_ask};
use super::verdict::{Hearers, refuse_locked};
use super::wording::{
    Phrase, SentTo, internal_error, lost, minutes_until, prompt, recovery_prompt,
};
use crate::audit::{self, Event, Subject};
use crate::caller::Caller;
use crate::delivery::{self, Delivered, OnFailure, Route, Settlement};
use crate::mail::{CodeMail, Values};
use crate::off_thread::Lost;
use crate::policy::CodeNeeded;
use crate::rules::limits_of;
use crate::state::{Active, Shared};
use crate::store::{IssueOutcome, Store, StoreError};
use common::config::{Channel, PhoneNumber};

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
pub enum Mode {
    First(Vec<String>),
    Resend,
}

enum BeginStep {
    Done(Response),
    Mail(Box<PendingMail>),
}

pub async fn begin(
    shared: &Arc<Shared>,
    caller: Caller,
    login: LoginContext,
    mode: Mode,
) -> Response {
    if let Err(refused) = refuse_bad_fields(shared, caller, &login).await {
        return refused;
    }
    if let Mode::First(ssh_keys) = &mode {
        if let Err(message) = check_ssh_keys(ssh_keys) {
            return Response::Error { message };
        }
    }
    let active = shared.active();
    let settings = Arc::clone(&active);
    let step = decide_with_facts(
        shared,
        &active,
        caller,
        login,
        Next::Issue,
        move |store, facts, now| prepare_in(store, &settings, facts, &mode, now),
    )
    .await;
    let (facts, pending) = match step {
        Ok(Ok((_, BeginStep::Done(response)))) | Err(response) => return response,
        Ok(Err(e)) => return internal_error(active.config.defaults.language, &e),
        Ok(Ok((facts, BeginStep::Mail(pending)))) => (facts, pending),
    };
    let Facts {
        asker, login, user, ..
    } = facts;
    let phone = user.phone.as_ref().map(PhoneNumber::as_str);
    let routes = routes(&active, &pending.needed, phone);
    let mail = CodeMail {
        values: Values {
            to: pending.needed.address.as_ref(),
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
        &routes,
        &pending.challenge,
        on_failure,
        move |store, now, settlement| {
            let subject = Subject {
                login: &audited,
                protocol: Some(protocol.as_str()),
                caller_uid: asker.caller.uid,
                origin: asker.origin,
                relay: asker.relay_host(),
            };
            match settlement {
                Settlement::Mailed { server } => {
                    audit::record(store, now, Event::Mailed, subject, Some(server))
                }
                Settlement::MailFailed { detail } => {
                    audit::record(store, now, Event::MailFailed, subject, Some(detail))
                }
                Settlement::RecoveryOffered { left } => {
                    let detail = format!("left={left}");
                    audit::record(store, now, Event::RecoveryOffered, subject, Some(&detail))
                }
            }
        },
    )
    .await;
    let language = pending.needed.settings.language;
    match delivered {
        Ok(Delivered::Mailed { route }) => prompt(
            language,
            sent_to(routes.get(route), &pending.needed),
            pending.expires_at,
            shared.clock.now(),
            &pending.challenge,
            None,
        ),
        Ok(Delivered::Recovery { left }) => recovery_prompt(language, &pending.challenge, left),
        Ok(Delivered::Failed) => Response::Unavailable {
            message: Phrase::NotSent.in_language(language),
        },
        Err(Lost) => lost(language),
    }
}

/// The profile's channels the user has a destination on, in order: the code mail when the user
/// has an address, and each webhook channel when the user has a phone number (otpd's table
/// first, then a directory's `phone_attribute`). Never empty for a decided code: the policy
/// asks a code only of a user one of the profile's channels reaches.
fn routes<'a>(
    active: &'a Active,
    needed: &'a CodeNeeded,
    phone: Option<&'a str>,
) -> Vec<Route<'a>> {
    needed
        .settings
        .channels
        .iter()
        .filter_map(|channel| match channel {
            Channel::Email => needed.address.as_ref().map(|_| Route::Email),
            Channel::Webhook(name) => {
                let sender = active.webhooks.iter().find(|w| w.name() == name)?;
                Some(Route::Webhook { sender, to: phone? })
            }
        })
        .collect()
}

/// Where the prompt says the code went: by `route`, or (a reused code, whose route is not
/// kept) by the first the user has; `None` when no channel reaches the user.
fn sent_to<'a>(route: Option<&Route<'a>>, needed: &'a CodeNeeded) -> Option<SentTo<'a>> {
    match route {
        Some(Route::Webhook { sender, to }) => Some(SentTo::Phone {
            channel: sender.display_name(),
            number: to,
        }),
        Some(Route::Email) | None => needed.address.as_ref().map(SentTo::Email),
    }
}

/// Begin's store work, in the login's transaction on a blocking thread: the decision over
/// `facts`, then the code issued (or reused, refused) in the store, with their audit rows; a
/// row that cannot be written takes the decision back and answers an internal error.
fn prepare_in(
    store: &mut dyn Store,
    active: &Active,
    facts: &Facts,
    mode: &Mode,
    now: i64,
) -> Result<BeginStep, StoreError> {
    let (asker, login) = (facts.asker, &facts.login);
    let needed = match needs_code(active, store, facts, now)? {
        Ok(needed) => needed,
        Err(response) => return Ok(BeginStep::Done(response)),
    };
    if let Mode::First(ssh_keys) = mode {
        let fingerprints = crate::ssh_key::fingerprints(asker.believed_keys(ssh_keys));
        if let Some(fingerprint) = active
            .config
            .exempting_fingerprint(&login.user, &fingerprints)
        {
            let subject = code_subject(login, &needed, asker);
            audit::record(store, now, Event::Exempt, subject, Some(fingerprint))?;
            return Ok(BeginStep::Done(Response::Skip {
                reason: SkipReason::Exempt,
            }));
        }
    }
    if is_dry_run(&needed) {
        return Ok(BeginStep::Done(would_ask(store, facts, &needed, now)?));
    }
    let limits = limits_of(&needed.settings);
    let outcome = match delivery::issue(store, &code_request(login, &needed, asker), &limits, now) {
        Ok(outcome) => outcome,
        Err(e) => {
            let language = needed.settings.language;
            return Ok(BeginStep::Done(internal_error(language, &e)));
        }
    };
    let subject = code_subject(login, &needed, asker);
    let step = match outcome {
        IssueOutcome::Issued {
            challenge,
            code,
            expires_at,
        } => {
            // The profile, and which source gave the address the code goes to.
            let mut detail = match &facts.user.address_source {
                Some(source) => format!("{} address_source={source}", needed.profile),
                None => needed.profile.clone(),
            };
            // And which gave the phone number, when a webhook channel may use one.
            if let Some(source) = &facts.user.phone_source {
                detail.push_str(&format!(" phone_source={source}"));
            }
            // Served from the directory's last known answer (`directory_down = "last_known"`).
            if facts.user.last_known.is_some() {
                detail.push_str(" directory=last_known");
            }
            audit::record(store, now, Event::Issued, subject, Some(&detail))?;
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
            audit::record(store, now, Event::Reused, subject, None)?;
            // Asked for a new code inside the cooldown: say when one can be sent.
            let wait = (*mode == Mode::Resend).then(|| {
                let cooldown = limits.resend_cooldown_secs;
                (issued_at.saturating_add(cooldown) - now).max(1)
            });
            let language = needed.settings.language;
            let phone = facts.user.phone.as_ref().map(PhoneNumber::as_str);
            let routes = routes(active, &needed, phone);
            let to = sent_to(routes.first(), &needed);
            let prompt = prompt(language, to, expires_at, now, &challenge, wait);
            BeginStep::Done(prompt)
        }
        IssueOutcome::RateLimited { retry_after } => {
            // Seconds from now, like every duration otpd logs: a raw unix time read as one.
            let detail = format!("retry_after_seconds={}", (retry_after - now).max(0));
            audit::record(store, now, Event::RateLimited, subject, Some(&detail))?;
            BeginStep::Done(Response::Denied {
                reason: DenyReason::RateLimited,
                message: Phrase::RateLimited {
                    minutes: minutes_until(retry_after, now),
                }
                .in_language(needed.settings.language),
            })
        }
        IssueOutcome::LockedOut { until } => {
            let hearers = Hearers {
                config: &active.config,
                phone: facts.user.phone.as_ref().map(PhoneNumber::as_str),
                needed: &needed,
            };
            BeginStep::Done(refuse_locked(store, hearers, subject, until, now)?)
        }
    };
    Ok(step)
}

/// Whether logins by `protocol` answer a prompt (keyboard-interactive, su, login), where a
/// recovery code can be typed; the others send the code appended to the password.
fn has_prompt(protocol: Protocol) -> bool {
    matches!(protocol, Protocol::Ssh | Protocol::Sftp | Protocol::Console)
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::Arc;

    use common::wire::{MAX_SSH_KEY_LEN, MAX_SSH_KEYS};

    use crate::clock::SystemClock;
    use crate::login::testing::{
        FakeClock, T0, alice, audit_down, audited, begin_as_root, breakglass_daemon, relay_down,
        ssh_login,
    };
    use crate::state::Shared;
    use crate::store::IssueRequest;
    use crate::test_support::{caller, config};
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;

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

    /// Issue #18: a failed audit row was logged and swallowed, so the code was issued (and
    /// counted as a send) with no row saying so.
    #[tokio::test]
    async fn a_begin_whose_audit_row_cannot_be_written_issues_no_code_and_is_unavailable() {
        let (_dir, shared, ()) = audit_down(|_, _| ());
        let begun = begin_as_root(&shared, alice()).await;
        assert_eq!(
            begun,
            Response::Unavailable {
                message: "The login code service has an internal error.".into()
            }
        );
        let store = shared.store();
        assert_eq!(store.count_rows("SELECT count(*) FROM codes"), 0);
        assert_eq!(store.count_rows("SELECT count(*) FROM sends"), 0);
    }

    #[tokio::test]
    async fn when_the_mail_fails_a_user_without_recovery_codes_gets_unavailable() {
        let (_dir, shared) = relay_down();
        let begun = begin_as_root(&shared, alice()).await;
        assert!(matches!(begun, Response::Unavailable { .. }), "{begun:?}");
        assert_eq!(audited(&shared, "recovery_offered"), 0);
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
        let mode = Mode::First(keys.to_vec());
        begin(shared, caller(uid), alice_from(rhost), mode).await
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

    /// Issue #22: a dry-run profile decides as `required` would, records `would_ask` naming
    /// the profile, issues and mails nothing, and skips; a user it would not ask (no address)
    /// and an exempt key are not counted as asked.
    #[tokio::test]
    async fn a_dry_run_records_would_ask_sends_nothing_and_skips() {
        let key = key_line(7);
        let fingerprint = crate::ssh_key::fingerprint(&key).unwrap();
        let (_dir, shared) = shared_with(&format!(
            "[profiles.rollout]\nmode = \"audit\"\n[[policies]]\nmatch_user = \"alice\"\n\
             profile = \"rollout\"\n[[exemptions]]\nuser = \"alice\"\nssh_key_fingerprints = [\"{fingerprint}\"]"
        ));
        let dry_run = Response::Skip {
            reason: SkipReason::DryRun,
        };
        assert_eq!(begin_as(&shared, 0, "192.0.2.7", &[]).await, dry_run);
        assert_eq!(audited(&shared, "would_ask"), 1);
        assert_eq!(audited(&shared, "issued"), 0);
        assert_eq!(audited(&shared, "mail_failed"), 0);
        // The exempt key would have skipped the code under `required` too: not "would ask".
        assert_eq!(begin_as(&shared, 0, "192.0.2.7", &[key]).await, exempt());
        assert_eq!(audited(&shared, "would_ask"), 1);
        let store = shared.store();
        assert_eq!(
            store.count_rows(
                "SELECT count(*) FROM audit WHERE event = 'would_ask' AND detail = 'rollout' \
                 AND user = 'alice' AND rhost = '192.0.2.7'"
            ),
            1
        );
        assert_eq!(
            store.count_rows("SELECT count(*) FROM codes"),
            0,
            "a dry run issued a code"
        );
    }
}
