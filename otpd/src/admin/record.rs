//! Audit rows and log lines for otpctl's changes, in the same `key=value` shape as the login
//! events, so fail2ban filters and `otpctl audit` see admin actions too.

use crate::audit::value;
use crate::caller::Caller;
use crate::store::{AuditRecord, Store};

/// The service name otpctl's rows carry.
pub const SERVICE: &str = "otpctl";

/// Records `event` about `user` by `caller`, in the database and the log. A failed row is
/// logged, never fatal: the change itself already happened (or was refused).
pub fn note(
    store: &mut Store,
    now: i64,
    event: &str,
    user: Option<&str>,
    caller: Caller,
    detail: Option<&str>,
) {
    let mut line = format!(
        "event={event} user={} service={SERVICE} caller_uid={}",
        value(user.unwrap_or("-")),
        caller.uid
    );
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
        rhost: None,
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
