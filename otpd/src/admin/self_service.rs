//! A user's changes to their own account: `otpctl enable`, `disable` and `protocols`.
//!
//! The account is the caller's uid's name, never a name from the request. A change that turns
//! the code on, off, or narrows it needs a fresh code mailed to the address on file (which
//! proves the address works, and that whoever types at the terminal also reads that mailbox).
//! The code is issued by the store like a login code but bound to a purpose of its own,
//! `otpctl-<action>`, which no login protocol can match: it cannot complete a login, and a
//! login code cannot confirm a change. Wrong answers count towards the user's lockout.

use std::sync::Arc;

use common::config::{Config, EmailAddress, MessageOverrides, Settings};
use common::secret::SecretString;
use common::text::mask_email;
use common::wire_admin::{AdminResponse, RefuseReason, SelfAction};

use super::view::{self, Address};
use super::{Ctx, record, refused, store_failed, told};
use crate::accounts::Accounts;
use crate::audit::Event;
use crate::caller::Caller;
use crate::delivery::{self, Delivered, OnFailure, Settlement};
use crate::directory::{self, GroupsKnown, Wanted};
use crate::mail::{CodeMail, Values};
use crate::off_thread::Lost;
use crate::policy;
use crate::rules::{bounded, limits_of};
use crate::state::{Active, Shared};
use crate::store::{
    self, IssueOutcome, IssueRequest, Store, StoreError, UserRecord, VerifyOutcome,
};

/// The store "protocol" a code for `action` is bound to.
pub fn purpose(action: &SelfAction) -> String {
    format!("otpctl-{}", action.name())
}

/// The caller's user name, or a refusal when the uid has none.
pub fn caller_name(ctx: &Ctx<'_>) -> Result<String, AdminResponse> {
    ctx.shared
        .accounts
        .user_name(ctx.caller.uid)
        .ok_or_else(|| {
            refused(
                RefuseReason::NotAllowed,
                format!(
                    "your uid {} has no user name on this machine, so it has no account here",
                    ctx.caller.uid
                ),
            )
        })
}

/// Whether every profile that applies to `name` lets users turn the code off.
pub fn may_disable(config: &Config, accounts: &dyn Accounts, name: &str) -> bool {
    if config.enabled_protocols.is_empty() {
        return config.defaults.allow_user_disable;
    }
    let groups = if config.policies_need_groups() {
        accounts.groups_of(name)
    } else {
        Vec::new()
    };
    config
        .enabled_protocols
        .iter()
        .all(|p| config.settings_for(name, &groups, *p).1.allow_user_disable)
}

/// The settings self-service codes are issued and mailed under: those of the user's first
/// enabled protocol (the defaults when none is enabled).
fn settings_for<'c>(config: &'c Config, accounts: &dyn Accounts, name: &str) -> &'c Settings {
    match config.enabled_protocols.iter().next() {
        Some(protocol) => {
            policy::settings_for(config, name, *protocol, || accounts.groups_of(name)).1
        }
        None => &config.defaults,
    }
}

/// What a requested change needs.
enum Need {
    /// A mailed code first.
    Code,
    /// Nothing: this is the answer.
    Nothing(AdminResponse),
    /// It may be applied without a code (it only widens protection).
    ApplyNow,
}

/// Decides whether `action` is allowed and whether it needs a code.
fn assess(
    ctx: &Ctx<'_>,
    store: &dyn Store,
    name: &str,
    action: &SelfAction,
    record: Option<&UserRecord>,
) -> Result<Need, AdminResponse> {
    let config = &ctx.active.config;
    let accounts = ctx.accounts;
    let enabled = record.is_some_and(|r| r.enabled);
    match action {
        SelfAction::Enable if enabled => Ok(Need::Nothing(done(
            ctx,
            store,
            name,
            record,
            "The login code is already on for you.".into(),
        ))),
        SelfAction::Enable => Ok(Need::Code),
        SelfAction::Disable if !may_disable(config, accounts, name) => Err(refused(
            RefuseReason::Policy,
            "Your administrator's policy does not let you turn the login code off (allow_user_disable = false). Ask your administrator."
                .into(),
        )),
        SelfAction::Disable if !enabled => Ok(Need::Nothing(done(
            ctx,
            store,
            name,
            record,
            "The login code is already off for you.".into(),
        ))),
        SelfAction::Disable => Ok(Need::Code),
        SelfAction::Protocols { protocols } => {
            let wanted = view::check_protocols(protocols, Some(config))
                .map_err(|m| refused(RefuseReason::Invalid, m))?;
            if wanted.is_empty() {
                return Err(refused(
                    RefuseReason::Invalid,
                    "name at least one protocol; to turn the code off use `otpctl disable`".into(),
                ));
            }
            let current: Vec<String> = match record.and_then(|r| r.protocols.clone()) {
                Some(list) => list,
                None => config
                    .enabled_protocols
                    .iter()
                    .map(|p| p.as_str().to_string())
                    .collect(),
            };
            let narrows = current.iter().any(|p| !wanted.contains(p));
            if !narrows {
                Ok(Need::ApplyNow)
            } else if !may_disable(config, accounts, name) {
                Err(refused(
                    RefuseReason::Policy,
                    "Your administrator's policy does not let you opt out of protocols (allow_user_disable = false)."
                        .into(),
                ))
            } else {
                Ok(Need::Code)
            }
        }
        // Always confirmed by a mailed code: whoever holds the codes can log in without mail.
        SelfAction::RecoveryCodes => Ok(Need::Code),
    }
}

/// Makes the change and records it; for the caller to run in one transaction with the
/// confirmation that allowed it, so neither is kept without the other's row.
fn apply(
    ctx: &Ctx<'_>,
    store: &mut dyn Store,
    name: &str,
    action: &SelfAction,
    record: Option<UserRecord>,
) -> Result<AdminResponse, StoreError> {
    let before = record.unwrap_or_else(|| UserRecord {
        name: name.to_string(),
        email: None,
        enabled: false,
        protocols: None,
        language: None,
        phone: None,
    });
    let mut new = before.clone();
    let (event, message) = match action {
        SelfAction::Enable => {
            new.enabled = true;
            (
                Event::SelfEnabled,
                "The login code is now on for you.".to_string(),
            )
        }
        SelfAction::Disable => {
            new.enabled = false;
            (
                Event::SelfDisabled,
                "The login code is now off for you.".to_string(),
            )
        }
        SelfAction::Protocols { protocols } => {
            let list = view::check_protocols(protocols, None).unwrap_or_default();
            let message = format!("You are now enrolled for {}.", list.join(", "));
            new.protocols = Some(list);
            (Event::SelfProtocols, message)
        }
        SelfAction::RecoveryCodes => return new_recovery_codes(ctx, store, name),
    };
    store.upsert_user(&new)?;
    let by = "by the user (otpctl disable)";
    told::change(store, ctx, Some(&before), &new, by)?;
    let detail = new.protocols.as_ref().map(|p| p.join(","));
    record::note(
        store,
        ctx.now,
        event,
        Some(name),
        ctx.caller,
        detail.as_deref(),
    )?;
    Ok(done(ctx, store, name, Some(&new), message))
}

/// The caller's new set of recovery codes, shown once; the old set no longer works.
fn new_recovery_codes(
    ctx: &Ctx<'_>,
    store: &mut dyn Store,
    name: &str,
) -> Result<AdminResponse, StoreError> {
    let mut rng = crate::code::os_rng();
    let codes = store.new_recovery_codes(name, ctx.now, &mut rng)?;
    let detail = format!("count={}", codes.len());
    record::note(
        store,
        ctx.now,
        Event::RecoveryCodesCreated,
        Some(name),
        ctx.caller,
        Some(&detail),
    )?;
    Ok(AdminResponse::RecoveryCodes {
        user: name.to_string(),
        codes,
    })
}

fn done(
    ctx: &Ctx<'_>,
    store: &dyn Store,
    name: &str,
    record: Option<&UserRecord>,
    message: String,
) -> AdminResponse {
    let locked = store.user_locked_until(name, ctx.now).ok().flatten();
    AdminResponse::Done {
        message,
        user: Some(Box::new(view::user_view(
            &ctx.active.config,
            ctx.accounts,
            name,
            record,
            locked,
            Address::Masked,
        ))),
    }
}

/// A code issued and waiting to be mailed.
struct Pending {
    name: String,
    purpose: String,
    address: EmailAddress,
    challenge: String,
    code: SecretString,
    issued_at: i64,
    expires_at: i64,
    /// The subject and bodies of the user's profile, looked up with the limits.
    overrides: MessageOverrides,
    active: Arc<Active>,
}

enum Step {
    Done(AdminResponse),
    Mail(Box<Pending>),
}

/// Step one: checks the change, and mails a code when it needs one.
pub async fn start(shared: &Arc<Shared>, caller: Caller, action: SelfAction) -> AdminResponse {
    let step = {
        let shared = Arc::clone(shared);
        tokio::task::spawn_blocking(move || prepare(&shared, caller, &action)).await
    };
    let pending = match step {
        Ok(Step::Done(response)) => return response,
        Ok(Step::Mail(pending)) => pending,
        Err(e) => {
            tracing::error!(
                "self-service task failed: {}",
                common::text::escape_for_log(&e.to_string())
            );
            return refused(RefuseReason::Failed, "otpd had an internal error".into());
        }
    };
    let mail = CodeMail {
        values: Values {
            to: Some(&pending.address),
            user: &pending.name,
            code: &pending.code,
            host: &shared.hostname,
            service: record::SERVICE,
            protocol: &pending.purpose,
            rhost: None,
            issued_at: pending.issued_at,
            expires_at: pending.expires_at,
        },
        overrides: &pending.overrides,
    };
    let (name, purpose) = (pending.name.clone(), pending.purpose.clone());
    let delivered = delivery::deliver(
        shared,
        &pending.active.mailer,
        &mail,
        // A self-service code confirms the address: it goes by mail only.
        &[delivery::Route::Email],
        &pending.challenge,
        OnFailure::Invalidate,
        move |store, now, settlement| match settlement {
            Settlement::Mailed { server } => {
                record::note(
                    store,
                    now,
                    Event::SelfCodeSent,
                    Some(&name),
                    caller,
                    Some(&purpose),
                )?;
                record::note(store, now, Event::Mailed, Some(&name), caller, Some(server))
            }
            Settlement::MailFailed { detail } => record::note(
                store,
                now,
                Event::MailFailed,
                Some(&name),
                caller,
                Some(detail),
            ),
            // Never offered for a self-service code (see `OnFailure::Invalidate`).
            Settlement::RecoveryOffered { .. } => Ok(()),
        },
    )
    .await;
    match delivered {
        Ok(Delivered::Mailed { .. }) => AdminResponse::CodeSent {
            challenge: pending.challenge.clone(),
            sent_to: mask_email(pending.address.as_str()),
            expires_at: pending.expires_at,
        },
        Ok(Delivered::Failed | Delivered::Recovery { .. }) => refused(
            RefuseReason::Failed,
            "The code could not be mailed. Try again later, or ask your administrator (`otpctl doctor`)."
                .into(),
        ),
        Err(Lost) => refused(RefuseReason::Failed, "otpd had an internal error".into()),
    }
}

fn prepare(shared: &Shared, caller: Caller, action: &SelfAction) -> Step {
    let ctx = Ctx::new(shared, caller);
    let name = match caller_name(&ctx) {
        Ok(name) => name,
        Err(refusal) => return Step::Done(refusal),
    };
    let needs_groups = ctx.active.config.policies_need_groups();
    let known = GroupsKnown::look_up(shared.accounts.as_ref(), &name, needs_groups);
    let ctx = Ctx {
        accounts: &known,
        ..ctx
    };
    // The address as a login finds it (table, LDAP, template), looked up before the store lock.
    let wanted = Wanted {
        record: true,
        ..Wanted::default()
    };
    // A directory's last known answer (every server down) never serves a self-service code.
    let address = match directory::look_up_all(shared, &ctx.active, &name, wanted) {
        Ok(facts) if facts.last_known.is_none() => facts.address,
        unanswered => {
            let why = match unanswered {
                Err(e) => e.to_string(),
                Ok(facts) => facts.last_known.unwrap_or_default(),
            };
            tracing::error!(
                "{}; the self-service code for user={} is not sent",
                common::text::escape_for_log(&why),
                common::text::escape_for_log(&name)
            );
            return Step::Done(refused(
                RefuseReason::Failed,
                "Your address could not be looked up. Try again later.".into(),
            ));
        }
    };
    let mut store = shared.store();
    let record = match store.user(&name) {
        Ok(record) => record,
        Err(e) => return Step::Done(store_failed(&e)),
    };
    match assess(&ctx, &store, &name, action, record.as_ref()) {
        Err(refusal) => return Step::Done(refusal),
        Ok(Need::Nothing(response)) => return Step::Done(response),
        Ok(Need::ApplyNow) => {
            let applied = store::atomically(&mut store, |store| {
                apply(&ctx, store, &name, action, record)
            });
            return Step::Done(applied.unwrap_or_else(|e| store_failed(&e)));
        }
        Ok(Need::Code) => {}
    }
    let config = &ctx.active.config;
    let Some(address) = address else {
        return Step::Done(refused(
            RefuseReason::NoAddress,
            "No address is on file for you, so no code can be sent. Ask your administrator to set one (`otpctl user set-email`)."
                .into(),
        ));
    };
    let settings = settings_for(config, ctx.accounts, &name);
    let limits = limits_of(settings);
    let purpose = purpose(action);
    let request = IssueRequest {
        user: &name,
        protocol: &purpose,
        service: record::SERVICE,
        rhost: None,
    };
    let outcome = match delivery::issue(&mut **store, &request, &limits, ctx.now) {
        Ok(outcome) => outcome,
        Err(e) => return Step::Done(store_failed(&e)),
    };
    match outcome {
        IssueOutcome::Issued {
            challenge,
            code,
            expires_at,
        } => Step::Mail(Box::new(Pending {
            name,
            purpose,
            address,
            challenge,
            code,
            issued_at: ctx.now,
            expires_at,
            overrides: settings.message.clone(),
            active: Arc::clone(&ctx.active),
        })),
        IssueOutcome::Reused {
            challenge,
            expires_at,
            ..
        } => Step::Done(AdminResponse::CodeSent {
            challenge,
            sent_to: mask_email(address.as_str()),
            expires_at,
        }),
        IssueOutcome::RateLimited { retry_after } => Step::Done(refused(
            RefuseReason::RateLimited,
            format!(
                "Too many codes were sent to you. Try again in {} minutes.",
                minutes(retry_after - ctx.now)
            ),
        )),
        IssueOutcome::LockedOut { until } => Step::Done(locked(until, ctx.now)),
    }
}

/// Step two: checks the code and, only when it is right, makes the change.
pub fn confirm(
    shared: &Shared,
    caller: Caller,
    action: &SelfAction,
    challenge: &str,
    code: &SecretString,
) -> AdminResponse {
    let ctx = Ctx::new(shared, caller);
    let name = match caller_name(&ctx) {
        Ok(name) => name,
        Err(refusal) => return refusal,
    };
    let needs_groups = ctx.active.config.policies_need_groups();
    let known = GroupsKnown::look_up(shared.accounts.as_ref(), &name, needs_groups);
    let ctx = Ctx {
        accounts: &known,
        ..ctx
    };
    let mut store = shared.store();
    let record = match store.user(&name) {
        Ok(record) => record,
        Err(e) => return store_failed(&e),
    };
    // The policy may have changed since step one: check again.
    match assess(&ctx, &store, &name, action, record.as_ref()) {
        Err(refusal) => return refusal,
        Ok(Need::Nothing(response)) => return response,
        Ok(Need::ApplyNow | Need::Code) => {}
    }
    let limits = limits_of(settings_for(&ctx.active.config, ctx.accounts, &name));
    // The answer, its audit row and (when right) the change are stored together.
    let checked = store::atomically(&mut store, |store| {
        let outcome = store.verify(
            challenge,
            &name,
            &purpose(action),
            None,
            &bounded(code),
            &limits,
            ctx.now,
        );
        let note = |store: &mut dyn Store, event, detail: Option<&str>| {
            record::note(store, ctx.now, event, Some(&name), caller, detail)
        };
        Ok(match outcome {
            Ok(VerifyOutcome::Success) => apply(&ctx, store, &name, action, record)?,
            Ok(VerifyOutcome::Wrong { attempts_left }) => {
                let detail = format!("attempts_left={attempts_left}");
                note(store, Event::WrongCode, Some(&detail))?;
                refused(
                    RefuseReason::WrongCode,
                    "Wrong code; nothing was changed.".into(),
                )
            }
            Ok(VerifyOutcome::Dead) => {
                note(store, Event::CodeDead, None)?;
                refused(
                    RefuseReason::WrongCode,
                    "This code is no longer valid; nothing was changed. Run the command again for a new one."
                        .into(),
                )
            }
            Ok(VerifyOutcome::LockedOut { until }) => {
                note(store, Event::Locked, None)?;
                locked(until, ctx.now)
            }
            // `Store::verify` takes no recovery code (only login prompts do); should one ever be
            // reported here, nothing is applied.
            Ok(VerifyOutcome::RecoveryUsed { .. }) => refused(
                RefuseReason::WrongCode,
                "Wrong code; nothing was changed.".into(),
            ),
            Err(e) => store_failed(&e),
        })
    });
    checked.unwrap_or_else(|e| store_failed(&e))
}

fn locked(until: i64, now: i64) -> AdminResponse {
    refused(
        RefuseReason::LockedOut,
        format!(
            "Too many wrong codes. Try again in {} minutes, or ask your administrator (`otpctl user unlock`).",
            minutes(until - now)
        ),
    )
}

/// Whole minutes, rounded up, at least 1.
fn minutes(secs: i64) -> i64 {
    ((secs + 59) / 60).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{NoAccounts, config};

    #[test]
    fn codes_for_changes_are_bound_to_a_purpose_no_login_protocol_has() {
        for action in [
            SelfAction::Enable,
            SelfAction::Disable,
            SelfAction::Protocols { protocols: vec![] },
            SelfAction::RecoveryCodes,
        ] {
            let p = purpose(&action);
            assert!(common::service::Protocol::parse(&p).is_none(), "{p}");
        }
        assert_ne!(purpose(&SelfAction::Enable), purpose(&SelfAction::Disable));
    }

    #[test]
    fn users_may_disable_unless_a_profile_that_applies_forbids_it() {
        assert!(may_disable(&config(""), &NoAccounts, "alice"));
        let c = config("[defaults]\nallow_user_disable = false");
        assert!(!may_disable(&c, &NoAccounts, "alice"));
        let c = config(
            "[profiles.strict]\nallow_user_disable = false\n[[policies]]\nmatch_user = \"admin-*\"\nmatch_protocol = [\"ssh\"]\nprofile = \"strict\"",
        );
        assert!(may_disable(&c, &NoAccounts, "alice"));
        assert!(!may_disable(&c, &NoAccounts, "admin-bob"));
    }

    #[test]
    fn minutes_round_up() {
        assert_eq!(minutes(61), 2);
        assert_eq!(minutes(0), 1);
    }

    /// Issue #19: a self-service code goes where a login's would, so with the directory down it
    /// is refused, never mailed to the template's address.
    #[tokio::test]
    async fn with_the_ldap_servers_down_no_self_service_code_goes_to_the_template() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(&crate::test_support::ldap_down_lines());
        let shared = Arc::new(crate::test_support::shared(
            dir.path(),
            config,
            Arc::new(crate::clock::SystemClock),
        ));
        let answer = start(
            &shared,
            crate::test_support::caller(1000),
            SelfAction::Enable,
        )
        .await;
        assert!(
            matches!(&answer, AdminResponse::Refused { reason: RefuseReason::Failed, message } if message.contains("could not be looked up")),
            "{answer:?}"
        );
    }
}
