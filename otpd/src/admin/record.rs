//! Audit rows and log lines for otpctl's changes, in the same `key=value` shape as the login
//! events, so fail2ban filters and `otpctl audit` see admin actions too.

use crate::audit::{record_summary, value};
use crate::caller::Caller;
use crate::store::{Admission, AuditRecord, RateKey, Store};

/// The service name otpctl's rows carry.
pub use crate::rules::OTPCTL_SERVICE as SERVICE;

/// otpctl events any local user can cause as often as they like: refused admin commands and
/// wrong or dead answers to a self-service code. From callers other than root they are rate
/// limited like login events (`store::audit_rate`). The others are changes made by root or an
/// admin, or bounded by the mail caps, and are always written one by one.
const UNBOUNDED: [&str; 4] = ["admin_refused", "wrong_code", "code_dead", "locked"];

/// Records `event` about `user` by `caller`, in the database and the log. A failed row is
/// logged, never fatal: the change itself already happened (or was refused).
pub fn note(
    store: &mut dyn Store,
    now: i64,
    event: &'static str,
    user: Option<&str>,
    caller: Caller,
    detail: Option<&str>,
) {
    write(store, now, event, user, None, caller, detail);
}

/// Records `event` about the remote address `rhost` (`otpctl host unlock`), with the address
/// in the `rhost` column and key, where `otpctl audit` and log readers look for hosts.
pub fn note_host(
    store: &mut dyn Store,
    now: i64,
    event: &'static str,
    rhost: &str,
    caller: Caller,
    detail: Option<&str>,
) {
    write(store, now, event, None, Some(rhost), caller, detail);
}

/// One row and one log line, with the keys in the order of the login events' lines.
fn write(
    store: &mut dyn Store,
    now: i64,
    event: &'static str,
    user: Option<&str>,
    rhost: Option<&str>,
    caller: Caller,
    detail: Option<&str>,
) {
    if caller.uid != 0 && UNBOUNDED.contains(&event) {
        let key = RateKey {
            caller_uid: caller.uid,
            kind: event,
        };
        let (admission, ended) = store.admit_audit(key, now);
        if let Some(summary) = ended {
            record_summary(store, now, summary);
        }
        if admission == Admission::Counted {
            return;
        }
    }
    let mut line = format!(
        "event={event} user={} service={SERVICE}",
        value(user.unwrap_or("-"))
    );
    if let Some(rhost) = rhost {
        line.push_str(" rhost=");
        line.push_str(&value(rhost));
    }
    line.push_str(&format!(" caller_uid={}", caller.uid));
    if let Some(detail) = detail {
        line.push_str(" detail=");
        line.push_str(&value(detail));
    }
    tracing::info!(target: "otpd::audit", "{line}");
    let row = AuditRecord {
        time: now,
        event,
        user,
        service: Some(SERVICE),
        protocol: None,
        rhost,
        caller_uid: Some(caller.uid),
        detail,
    };
    if let Err(e) = store.record_audit(&row) {
        tracing::error!(
            "cannot write audit row for {}: {}",
            value(event),
            common::text::escape_for_log(&e.to_string())
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server_key::ServerKey;
    use crate::test_support::caller;

    fn rows_after(events: &[(&'static str, u32)], times: usize) -> usize {
        let dir = tempfile::tempdir().unwrap();
        let key = ServerKey::from_bytes([7; 32]);
        let mut store = crate::store::SqliteStore::open(&dir.path().join("otpd.db"), key).unwrap();
        for (event, uid) in events {
            for _ in 0..times {
                note(&mut store, 1_700_000_000, event, None, caller(*uid), None);
            }
        }
        store.audit_since(0, 100_000).unwrap().len()
    }

    #[test]
    fn a_users_refused_admin_commands_beyond_the_rate_are_only_counted() {
        assert_eq!(rows_after(&[("admin_refused", 1000)], 500), 10);
        assert_eq!(rows_after(&[("wrong_code", 1000)], 500), 10);
    }

    #[test]
    fn admin_changes_and_roots_refusals_are_all_written() {
        assert_eq!(rows_after(&[("user_added", 1000)], 50), 50);
        assert_eq!(rows_after(&[("admin_refused", 0)], 50), 50);
    }
}
