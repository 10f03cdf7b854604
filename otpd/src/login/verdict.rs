//! What a checked code comes to: each outcome audited, worded for the person, and told (a
//! login from a new address, a lockout) as the profile asks.

use common::config::{Config, NoticeKind};
use common::timefmt;
use common::wire::{DenyReason, Response};

use super::wording::{Phrase, internal_error, minutes_until};
use crate::audit::{self, Event, Subject};
use crate::caller::Origin;
use crate::notify::{self, Told, UserTo};
use crate::policy::CodeNeeded;
use crate::store::{Store, StoreError, VerifyOutcome};

/// Who hears of a login's outcome: the user, by their profile, address and phone, and the
/// admin.
#[derive(Debug, Clone, Copy)]
pub(super) struct Hearers<'a> {
    /// The config in force (`[notifications]`, the webhook channels).
    pub config: &'a Config,
    /// The login's profile and the user's address.
    pub needed: &'a CodeNeeded,
    /// The user's phone number, if they have one.
    pub phone: Option<&'a str>,
}

impl<'a> Hearers<'a> {
    /// The login's user as notifications reach them.
    fn user_to(&self, addresses: &'a [&'a str]) -> UserTo<'a> {
        let settings = &self.needed.settings;
        let has_address = self.needed.address.is_some();
        UserTo {
            settings,
            addresses,
            phone: notify::by_phone(&self.config.webhooks, settings, has_address, self.phone),
        }
    }
}

/// Audits a verification and words the answer for the person. `Err` when its audit row (or a
/// notice) could not be written: the verification must then not be kept either.
pub(super) fn verdict(
    store: &mut dyn Store,
    now: i64,
    hearers: Hearers<'_>,
    subject: Subject<'_>,
    outcome: Result<VerifyOutcome, StoreError>,
) -> Result<Response, StoreError> {
    let language = hearers.needed.settings.language;
    let response = match outcome {
        Ok(VerifyOutcome::Success) => {
            audit::record(store, now, Event::Verified, subject, None)?;
            let address = hearers.needed.addresses();
            let login = subject.login;
            notify::after_login(
                store,
                &hearers.config.notifications,
                hearers.user_to(&address),
                (&login.user, &login.service, believed_rhost(subject)),
                now,
            )?;
            Response::Success
        }
        Ok(VerifyOutcome::Wrong { attempts_left }) => {
            let detail = format!("attempts_left={attempts_left}");
            audit::record(store, now, Event::WrongCode, subject, Some(&detail))?;
            Response::Denied {
                reason: DenyReason::WrongCode,
                message: Phrase::WrongCode.in_language(language),
            }
        }
        Ok(VerifyOutcome::Dead) => {
            audit::record(store, now, Event::CodeDead, subject, None)?;
            Response::Denied {
                reason: DenyReason::CodeDead,
                message: Phrase::CodeDead.in_language(language),
            }
        }
        Ok(VerifyOutcome::LockedOut { until }) => {
            refuse_locked(store, hearers, subject, until, now)?
        }
        Ok(VerifyOutcome::RecoveryUsed { left }) => {
            let detail = format!("left={left}");
            audit::record(store, now, Event::RecoveryUsed, subject, Some(&detail))?;
            Response::SuccessWithNotice {
                message: Phrase::RecoveryAccepted { left }.in_language(language),
            }
        }
        Err(e) => internal_error(language, &e),
    };
    Ok(response)
}

/// Audits a login refused by a lockout, ending at `until`, and answers it. The audit says which
/// lock holds (`by=user`, `by=host`, or `by=user,host` when the address's outlasts the user's)
/// and for how many seconds; the message tells a user refused for their address's failures
/// that it was not their own typing, so they ask an admin for `otpctl host unlock`. A lock of
/// the user is told (once per lock) to the user and the admin. `Err` when the audit row (or the
/// notice) could not be written.
pub(super) fn refuse_locked(
    store: &mut dyn Store,
    hearers: Hearers<'_>,
    subject: Subject<'_>,
    until: i64,
    now: i64,
) -> Result<Response, StoreError> {
    let language = hearers.needed.settings.language;
    let user_until = store.user_locked_until(&subject.login.user, now);
    let by = match user_until {
        Ok(Some(user_until)) if user_until >= until => "user",
        Ok(Some(_)) => "user,host",
        Ok(None) => "host",
        Err(_) => "unknown",
    };
    let detail = format!("by={by} locked_seconds_left={}", (until - now).max(0));
    audit::record(store, now, Event::Locked, subject, Some(&detail))?;
    if let Ok(Some(user_until)) = user_until {
        tell_lockout(store, hearers, subject, user_until, now)?;
    }
    let locked = Phrase::Locked {
        minutes: minutes_until(until, now),
        from_address: by == "host",
    };
    Ok(Response::Denied {
        reason: DenyReason::LockedOut,
        message: locked.in_language(language),
    })
}
/// The login's remote host when otpd believes it (root or a trusted caller reported it).
fn believed_rhost<'a>(subject: Subject<'a>) -> Option<&'a str> {
    match subject.origin {
        Origin::Reported => subject.login.rhost.as_deref(),
        Origin::Local => None,
    }
}

/// Tells the user and the admin that the user is locked until `until`, once per lock (the
/// lock's end names it).
fn tell_lockout(
    store: &mut dyn Store,
    hearers: Hearers<'_>,
    subject: Subject<'_>,
    until: i64,
    now: i64,
) -> Result<(), StoreError> {
    let detail = format!(
        "until {} ({} minutes)",
        timefmt::utc(until),
        minutes_until(until, now)
    );
    let key = until.to_string();
    let login = subject.login;
    let told = Told {
        kind: NoticeKind::Lockout,
        user: &login.user,
        service: &login.service,
        rhost: believed_rhost(subject),
        detail: &detail,
        event_key: Some(&key),
        by_local_caller: subject.origin == Origin::Local,
    };
    let address = hearers.needed.addresses();
    notify::tell(
        store,
        &hearers.config.notifications,
        Some(hearers.user_to(&address)),
        &told,
        now,
    )
}
