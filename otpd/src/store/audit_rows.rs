//! Audit rows: one per auth event, kept for the configured retention and shown by `otpctl`.
//! The caller decides what an event is; no code ever reaches this table. Rows are read back as
//! the wire's [`AuditRow`], which `otpctl audit` shows as it is.

use common::wire_admin::AuditRow;
use rusqlite::params;

use super::{AuditFilter, Store, StoreError};

/// An event to record. Borrowed, so the handler can record without allocating.
#[derive(Debug, Clone, Copy)]
pub struct AuditRecord<'a> {
    /// Unix time of the event.
    pub time: i64,
    /// The event name (`issued`, `verified`, `locked`, ...).
    pub event: &'a str,
    /// The login name, when known.
    pub user: Option<&'a str>,
    /// The PAM service.
    pub service: Option<&'a str>,
    /// The login protocol.
    pub protocol: Option<&'a str>,
    /// The remote host.
    pub rhost: Option<&'a str>,
    /// The uid of the process that asked the daemon.
    pub caller_uid: Option<u32>,
    /// Free text (e.g. why a mail failed); never a code.
    pub detail: Option<&'a str>,
}

impl Store {
    /// Appends one audit row.
    pub fn record_audit(&mut self, record: &AuditRecord) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "INSERT INTO audit (time, event, user, service, protocol, rhost, caller_uid, detail)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![
                record.time,
                record.event,
                record.user,
                record.service,
                record.protocol,
                record.rhost,
                record.caller_uid,
                record.detail
            ])?;
        Ok(())
    }

    /// Rows at or after `since`, newest first, at most `limit` of them: the unfiltered case
    /// of [`Store::audit_filtered`].
    pub fn audit_since(&self, since: i64, limit: usize) -> Result<Vec<AuditRow>, StoreError> {
        self.audit_filtered(&AuditFilter {
            since,
            limit,
            ..AuditFilter::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    fn event(time: i64, event: &str) -> AuditRecord<'_> {
        AuditRecord {
            time,
            event,
            user: Some("alice"),
            service: Some("sshd"),
            protocol: Some("ssh"),
            rhost: Some("192.0.2.1"),
            caller_uid: Some(0),
            detail: None,
        }
    }

    #[test]
    fn rows_come_back_newest_first_with_every_field() {
        let (_dir, mut store) = open_store();
        store.record_audit(&event(T0, "issued")).unwrap();
        store
            .record_audit(&AuditRecord {
                detail: Some("smtp 451"),
                caller_uid: Some(u32::MAX),
                ..event(T0 + 5, "mail_failed")
            })
            .unwrap();
        let rows = store.audit_since(T0, 10).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].event, "mail_failed");
        assert_eq!(rows[0].detail.as_deref(), Some("smtp 451"));
        assert_eq!(rows[0].caller_uid, Some(u32::MAX));
        assert_eq!(rows[1].event, "issued");
        assert_eq!(rows[1].user.as_deref(), Some("alice"));
        assert_eq!(rows[1].service.as_deref(), Some("sshd"));
        assert_eq!(rows[1].protocol.as_deref(), Some("ssh"));
        assert_eq!(rows[1].rhost.as_deref(), Some("192.0.2.1"));
        assert_eq!(rows[1].time, T0);
    }

    #[test]
    fn since_and_limit_bound_the_result() {
        let (_dir, mut store) = open_store();
        for t in 0..5 {
            store.record_audit(&event(T0 + t, "issued")).unwrap();
        }
        let times: Vec<i64> = store
            .audit_since(T0 + 2, 10)
            .unwrap()
            .iter()
            .map(|r| r.time)
            .collect();
        assert_eq!(times, [T0 + 4, T0 + 3, T0 + 2]);
        let times: Vec<i64> = store
            .audit_since(0, 2)
            .unwrap()
            .iter()
            .map(|r| r.time)
            .collect();
        assert_eq!(times, [T0 + 4, T0 + 3]);
    }

    #[test]
    fn rows_of_the_same_second_keep_insertion_order_newest_first() {
        let (_dir, mut store) = open_store();
        store.record_audit(&event(T0, "first")).unwrap();
        store.record_audit(&event(T0, "second")).unwrap();
        let rows = store.audit_since(T0, 10).unwrap();
        assert_eq!(rows[0].event, "second");
        assert_eq!(rows[1].event, "first");
    }
}
