//! `otpctl user reset USER`: gives a user a clean slate after test logins or a lockout, so an
//! admin need not wait out a mail cap (up to a day) to let them in.

use common::timefmt;
use common::wire_admin::{AdminResponse, RefuseReason};

use super::users::view_of;
use super::{Ctx, record, refused, store_failed, view};
use crate::audit::Event;
use crate::store::{self, UserReset};

/// `user reset`: audited as `user_reset` with what it cleared, even when that was nothing.
pub fn reset(ctx: &Ctx<'_>, user: &str) -> AdminResponse {
    if let Err(message) = view::check_user_name(user) {
        return refused(RefuseReason::Invalid, message);
    }
    let looked_up = view::LookedUp::now(&ctx.active.config, ctx.accounts, user);
    let ctx = &ctx.looking_up(&looked_up);
    let mut store = ctx.shared.store();
    let reset = store::atomically(&mut store, |store| {
        let done = store.reset_user(user, ctx.now)?;
        let detail = detail(&done, ctx.now);
        record::note(
            store,
            ctx.now,
            Event::UserReset,
            Some(user),
            ctx.caller,
            Some(&detail),
        )?;
        Ok(done)
    });
    let done = match reset {
        Ok(done) => done,
        Err(e) => return store_failed(&e),
    };
    AdminResponse::Done {
        message: message(user, &done, ctx.now),
        user: view_of(ctx, &store, user).ok().map(Box::new),
    }
}

/// The audit detail: counts and seconds, one `key=value` each.
fn detail(done: &UserReset, now: i64) -> String {
    let mut out = format!(
        "sends_hour={} sends_day={} codes_closed={}",
        done.sends.hour, done.sends.day, done.codes_closed
    );
    if let Some(lockout) = &done.lockout {
        out.push_str(&format!(" failures={}", lockout.failures));
        if let Some(until) = lockout.locked_until {
            out.push_str(&format!(" locked_seconds_left={}", (until - now).max(0)));
        }
    }
    out
}

/// What was cleared, in a sentence the admin can repeat to the user.
fn message(user: &str, done: &UserReset, now: i64) -> String {
    if done.is_empty() {
        return format!(
            "{user} had no codes mailed in the last day, no unused code and no lockout: nothing to reset. If {user} is still refused, the address they log in from may be locked out: see `otpctl host list`."
        );
    }
    let mut parts = Vec::new();
    if done.sends.day > 0 {
        parts.push(format!(
            "forgot the {} code(s) mailed in the last day ({} in the last hour), so the mail caps start again",
            done.sends.day, done.sends.hour
        ));
    }
    if done.codes_closed > 0 {
        parts.push(format!(
            "closed {} unused code(s), so the next login mails a new one",
            done.codes_closed
        ));
    }
    if let Some(lockout) = &done.lockout {
        parts.push(match lockout.locked_until {
            Some(until) => format!(
                "cleared the lockout ({} left) and {} failure(s) counted",
                timefmt::duration(until - now),
                lockout.failures
            ),
            None => format!("cleared the {} failure(s) counted", lockout.failures),
        });
    }
    format!("Reset {user}: {}.", parts.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Lockout, SendCounts};

    #[test]
    fn the_answer_and_the_audit_say_what_was_cleared_in_seconds_not_timestamps() {
        let done = UserReset {
            sends: SendCounts { hour: 5, day: 7 },
            codes_closed: 1,
            lockout: Some(Lockout {
                subject: "bob".into(),
                failures: 0,
                locked_until: Some(1_000_840),
                updated_at: 999_000,
            }),
        };
        assert_eq!(
            message("bob", &done, 1_000_000),
            "Reset bob: forgot the 7 code(s) mailed in the last day (5 in the last hour), so the mail caps start again; closed 1 unused code(s), so the next login mails a new one; cleared the lockout (14m 0s left) and 0 failure(s) counted."
        );
        assert_eq!(
            detail(&done, 1_000_000),
            "sends_hour=5 sends_day=7 codes_closed=1 failures=0 locked_seconds_left=840"
        );
    }

    #[test]
    fn a_reset_with_nothing_to_clear_says_so_and_points_at_host_locks() {
        let message = message("bob", &UserReset::default(), 0);
        assert!(message.contains("nothing to reset"), "{message}");
        assert!(message.contains("otpctl host list"), "{message}");
    }
}

#[cfg(test)]
mod handler_tests {
    use std::sync::Arc;

    use common::wire_admin::{AdminRequest, AdminResponse, RefuseReason};

    use crate::clock::SystemClock;
    use crate::store::{IssueOutcome, IssueRequest};
    use crate::test_support::{caller, config, shared};

    #[tokio::test]
    async fn an_admins_reset_lets_a_capped_user_get_a_code_again_and_is_audited() {
        let dir = tempfile::tempdir().unwrap();
        let shared = Arc::new(shared(dir.path(), config(""), Arc::new(SystemClock)));
        let limits = crate::store::Limits {
            resend_cooldown_secs: 0,
            ..crate::rules::limits_of(&shared.active().config.defaults)
        };
        let request = IssueRequest {
            user: "bob",
            protocol: "ssh",
            service: "sshd",
            rhost: None,
        };
        let issue = || {
            let now = shared.clock.now();
            shared
                .store()
                .issue(&request, &limits, now, &mut rand::rng())
                .unwrap()
        };
        while !matches!(issue(), IssueOutcome::RateLimited { .. }) {}

        let refused = super::super::handle(
            &shared,
            caller(1001),
            AdminRequest::UserReset { user: "bob".into() },
        )
        .await;
        assert!(
            matches!(
                refused,
                AdminResponse::Refused {
                    reason: RefuseReason::NotAllowed,
                    ..
                }
            ),
            "bob may not reset himself: {refused:?}"
        );
        let done = super::super::handle(
            &shared,
            caller(0),
            AdminRequest::UserReset { user: "bob".into() },
        )
        .await;
        let AdminResponse::Done { message, .. } = done else {
            panic!("{done:?}");
        };
        assert!(
            message.starts_with("Reset bob: forgot the 5 code(s) mailed in the last day"),
            "{message}"
        );
        assert!(matches!(issue(), IssueOutcome::Issued { .. }));
        let store = shared.store();
        assert_eq!(
            store.count_rows(
                "SELECT count(*) FROM audit WHERE event = 'user_reset' AND user = 'bob'
                 AND detail = 'sends_hour=5 sends_day=5 codes_closed=1'"
            ),
            1
        );
    }
}
