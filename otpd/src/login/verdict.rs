//! What a checked code comes to: each outcome audited, and worded for the person.

use common::wire::{DenyReason, Response};

use super::wording::{Phrase, internal_error, minutes_until};
use crate::audit::{self, Event, Subject};
use crate::store::{Store, StoreError, VerifyOutcome};
use common::config::Language;

/// Audits a verification and words the answer for the person. `Err` when its audit row could
/// not be written: the verification must then not be kept either.
pub(super) fn verdict(
    store: &mut dyn Store,
    now: i64,
    language: Language,
    subject: Subject<'_>,
    outcome: Result<VerifyOutcome, StoreError>,
) -> Result<Response, StoreError> {
    let response = match outcome {
        Ok(VerifyOutcome::Success) => {
            audit::record(store, now, Event::Verified, subject, None)?;
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
            refuse_locked(store, language, subject, until, now)?
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
/// that it was not their own typing, so they ask an admin for `otpctl host unlock`. `Err` when
/// the audit row could not be written.
pub(super) fn refuse_locked(
    store: &mut dyn Store,
    language: Language,
    subject: Subject<'_>,
    until: i64,
    now: i64,
) -> Result<Response, StoreError> {
    let by = match store.user_locked_until(&subject.login.user, now) {
        Ok(Some(user_until)) if user_until >= until => "user",
        Ok(Some(_)) => "user,host",
        Ok(None) => "host",
        Err(_) => "unknown",
    };
    let detail = format!("by={by} locked_seconds_left={}", (until - now).max(0));
    audit::record(store, now, Event::Locked, subject, Some(&detail))?;
    let locked = Phrase::Locked {
        minutes: minutes_until(until, now),
        from_address: by == "host",
    };
    Ok(Response::Denied {
        reason: DenyReason::LockedOut,
        message: locked.in_language(language),
    })
}
