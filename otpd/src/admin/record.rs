//! Audit rows and log lines for otpctl's changes, in the same `key=value` shape as the login
//! events, so fail2ban filters and `otpctl audit` see admin actions too.

use crate::audit::{Event, record_summary, row_failed, value};
use crate::caller::Caller;
use crate::store::{Admission, AuditRecord, RateKey, Store, StoreError};

/// The service name otpctl's rows carry.
pub use crate::rules::OTPCTL_SERVICE as SERVICE;

/// Records `event` about `user` by `caller`, in the database and the log. A row that cannot
/// be written is an `Err`: callers record a change in the change's own transaction
/// ([`crate::store::atomically`]), so the change is not kept without its row.
pub fn note(
    store: &mut dyn Store,
    now: i64,
    event: Event,
    user: Option<&str>,
    caller: Caller,
    detail: Option<&str>,
) -> Result<(), StoreError> {
    write(store, now, event, user, None, caller, detail)
}

/// Records `event` about the remote address `rhost` (`otpctl host unlock`), with the address
/// in the `rhost` column and key, where `otpctl audit` and log readers look for hosts.
pub fn note_host(
    store: &mut dyn Store,
    now: i64,
    event: Event,
    rhost: &str,
    caller: Caller,
    detail: Option<&str>,
) -> Result<(), StoreError> {
    write(store, now, event, None, Some(rhost), caller, detail)
}

/// One row and one log line, with the keys in the order of the login events' lines.
fn write(
    store: &mut dyn Store,
    now: i64,
    event: Event,
    user: Option<&str>,
    rhost: Option<&str>,
    caller: Caller,
    detail: Option<&str>,
) -> Result<(), StoreError> {
    // Events a local user can cause at will (`Event::unbounded`) are rate limited from
    // anyone but root.
    if caller.uid != 0 && event.unbounded() {
        let key = RateKey {
            caller_uid: caller.uid,
            kind: event.as_str(),
        };
        let (admission, ended) = store.admit_audit(key, now);
        if let Some(summary) = ended {
            record_summary(store, now, summary)?;
        }
        if admission == Admission::Counted {
            return Ok(());
        }
    }
    let event = event.as_str();
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
    store
        .record_audit(&row)
        .inspect_err(|e| row_failed(event, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server_key::ServerKey;
    use crate::test_support::caller;

    fn rows_after(events: &[(Event, u32)], times: usize) -> usize {
        let dir = tempfile::tempdir().unwrap();
        let key = ServerKey::from_bytes([7; 32]);
        let mut store = crate::store::SqliteStore::open(&dir.path().join("otpd.db"), key).unwrap();
        for (event, uid) in events {
            for _ in 0..times {
                note(&mut store, 1_700_000_000, *event, None, caller(*uid), None).unwrap();
            }
        }
        store.audit_since(0, 100_000).unwrap().len()
    }

    #[test]
    fn a_users_refused_admin_commands_beyond_the_rate_are_only_counted() {
        assert_eq!(rows_after(&[(Event::AdminRefused, 1000)], 500), 10);
        assert_eq!(rows_after(&[(Event::WrongCode, 1000)], 500), 10);
    }

    #[test]
    fn admin_changes_and_roots_refusals_are_all_written() {
        assert_eq!(rows_after(&[(Event::UserAdded, 1000)], 50), 50);
        assert_eq!(rows_after(&[(Event::AdminRefused, 0)], 50), 50);
    }
}
