//! `otpctl host list` and `otpctl host unlock`: the per-address failure counters.
//!
//! A host lock refuses every user logging in from that address, so an admin must be able to
//! see which addresses are counted or locked, and lift a lock, without waiting it out.

use std::net::IpAddr;

use common::timefmt;
use common::wire_admin::{AdminResponse, HostView, RefuseReason};

use super::{Ctx, record, refused, store_failed};
use crate::audit::Event;
use crate::store::{self, Lockout};

/// `host list`.
pub fn list(ctx: &Ctx<'_>) -> AdminResponse {
    let store = ctx.shared.store();
    match store.host_lockouts(ctx.now) {
        Ok(rows) => {
            let total = rows.len();
            let (hosts, _) = super::page(rows.iter().map(|row| view(row, ctx.now)));
            let left_out = u64::try_from(total - hosts.len()).unwrap_or(u64::MAX);
            AdminResponse::Hosts { hosts, left_out }
        }
        Err(e) => store_failed(&e),
    }
}

/// `host unlock ADDRESS`: audited as `host_unlocked` whether or not there was a lock, so the
/// log shows every attempt to lift one.
pub fn unlock(ctx: &Ctx<'_>, address: &str) -> AdminResponse {
    let Ok(ip) = address.trim().parse::<IpAddr>() else {
        return refused(
            RefuseReason::Invalid,
            format!(
                "{address:?} is not an IP address; only addresses are counted and locked (see `otpctl host list`)"
            ),
        );
    };
    let shown = ip.to_canonical().to_string();
    let mut store = ctx.shared.store();
    let unlocked = store::atomically(&mut store, |store| {
        let was = store.unlock_host(&shown, ctx.now)?;
        let detail = match &was {
            Some(lockout) => cleared(lockout, ctx.now),
            None => "nothing".to_string(),
        };
        let event = Event::HostUnlocked;
        record::note_host(store, ctx.now, event, &shown, ctx.caller, Some(&detail))?;
        Ok(was)
    });
    let was = match unlocked {
        Ok(was) => was,
        Err(e) => return store_failed(&e),
    };
    let message = match was {
        Some(Lockout {
            locked_until: Some(until),
            failures,
            ..
        }) => format!(
            "Cleared the lockout of {shown} ({} left) and {failures} failure(s) counted; its users can log in again.",
            timefmt::duration(until - ctx.now)
        ),
        Some(Lockout { failures, .. }) => {
            format!("{shown} was not locked out; cleared the {failures} failure(s) counted.")
        }
        None => format!("{shown} was not locked out and had no failures counted."),
    };
    AdminResponse::Done {
        message,
        user: None,
    }
}

/// The audit detail of a cleared counter, durations in seconds.
fn cleared(lockout: &Lockout, now: i64) -> String {
    match lockout.locked_until {
        Some(until) => format!(
            "failures={} locked_seconds_left={}",
            lockout.failures,
            (until - now).max(0)
        ),
        None => format!("failures={}", lockout.failures),
    }
}

fn view(row: &Lockout, now: i64) -> HostView {
    HostView {
        address: row.subject.clone(),
        failures: row.failures,
        locked_until: row.locked_until,
        locked_seconds_left: row.locked_until.map(|until| (until - now).max(0)),
        updated_at: row.updated_at,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use common::secret::SecretString;
    use common::wire_admin::{AdminRequest, AdminResponse, RefuseReason};

    use crate::clock::SystemClock;
    use crate::state::Shared;
    use crate::store::Limits;
    use crate::test_support::{caller, config, shared};

    fn daemon() -> (tempfile::TempDir, Arc<Shared>) {
        let dir = tempfile::tempdir().unwrap();
        let shared = Arc::new(shared(dir.path(), config(""), Arc::new(SystemClock)));
        (dir, shared)
    }

    /// One wrong answer from `rhost`, with limits that lock the address at once.
    fn lock_host(shared: &Shared, rhost: &str) {
        let limits = Limits {
            max_host_failures: 1,
            ..crate::rules::limits_of(&shared.active().config.defaults)
        };
        let now = shared.clock.now();
        let wrong = SecretString::new("x".into());
        shared
            .store()
            .verify("nope", "alice", "ssh", Some(rhost), &wrong, &limits, now)
            .unwrap();
    }

    fn rows(shared: &Shared, sql: &str) -> i64 {
        let store = shared.store();
        store.count_rows(sql)
    }

    #[tokio::test]
    async fn an_admin_lists_a_locked_address_and_unlocking_it_is_audited_with_the_address() {
        let (_dir, shared) = daemon();
        lock_host(&shared, "192.0.2.7");
        let listed = super::super::handle(&shared, caller(0), AdminRequest::HostList).await;
        let AdminResponse::Hosts { hosts, left_out } = listed else {
            panic!("{listed:?}");
        };
        assert_eq!((hosts.len(), left_out), (1, 0));
        assert_eq!(hosts[0].address, "192.0.2.7");
        let left = hosts[0].locked_seconds_left.unwrap();
        assert!((890..=900).contains(&left), "{left}");

        let unlock = |address: &str| {
            super::super::handle(
                &shared,
                caller(0),
                AdminRequest::HostUnlock {
                    address: address.into(),
                },
            )
        };
        let AdminResponse::Done { message, .. } = unlock("::ffff:192.0.2.7").await else {
            panic!("not done");
        };
        // 15 minutes, or a second less when the clock ticked since the lock.
        assert!(
            message.starts_with("Cleared the lockout of 192.0.2.7 (1")
                && message.contains("m ")
                && message
                    .ends_with("s left) and 0 failure(s) counted; its users can log in again."),
            "{message}"
        );
        assert_eq!(
            rows(
                &shared,
                "SELECT count(*) FROM audit WHERE event = 'host_unlocked'
                 AND rhost = '192.0.2.7' AND detail LIKE 'failures=0 locked_seconds_left=%'"
            ),
            1
        );
        let AdminResponse::Done { message, .. } = unlock("192.0.2.7").await else {
            panic!("not done");
        };
        assert_eq!(
            message,
            "192.0.2.7 was not locked out and had no failures counted."
        );
        let named = unlock("office.example").await;
        assert!(
            matches!(
                named,
                AdminResponse::Refused {
                    reason: RefuseReason::Invalid,
                    ..
                }
            ),
            "{named:?}"
        );
    }

    #[tokio::test]
    async fn a_non_admin_can_neither_list_nor_unlock_addresses() {
        let (_dir, shared) = daemon();
        lock_host(&shared, "192.0.2.7");
        for request in [
            AdminRequest::HostList,
            AdminRequest::HostUnlock {
                address: "192.0.2.7".into(),
            },
        ] {
            let answer = super::super::handle(&shared, caller(1001), request).await;
            assert!(
                matches!(
                    answer,
                    AdminResponse::Refused {
                        reason: RefuseReason::NotAllowed,
                        ..
                    }
                ),
                "{answer:?}"
            );
        }
        assert_eq!(
            shared
                .store()
                .host_lockouts(shared.clock.now())
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            rows(
                &shared,
                "SELECT count(*) FROM audit WHERE event = 'admin_refused' AND detail LIKE 'host %'"
            ),
            2
        );
    }
}
