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

/// How many recorded rows are written together at the latest.
pub const AUDIT_BATCH: usize = 64;

/// The most rows kept waiting when writing keeps failing; older ones are dropped (their log
/// lines were written when they happened).
const MAX_PENDING_AUDIT: usize = 10_000;

/// An audit row waiting to be written.
#[derive(Debug, Clone)]
pub(super) struct PendingAudit {
    time: i64,
    event: String,
    user: Option<String>,
    service: Option<String>,
    protocol: Option<String>,
    rhost: Option<String>,
    caller_uid: Option<u32>,
    detail: Option<String>,
}

impl Store {
    /// Records one audit row. Rows are written in batches (one transaction for up to
    /// [`AUDIT_BATCH`] rows, or when [`Store::flush_audit`] runs: the daemon calls it a few times
    /// a second, and every audit read and `Drop` flushes first), because a commit per event cost
    /// a login about 140 µs. A crash loses at most the last fraction of a second of rows; every
    /// event's log line was already written when it happened.
    pub fn record_audit(&mut self, record: &AuditRecord) -> Result<(), StoreError> {
        self.pending_audit.push(PendingAudit {
            time: record.time,
            event: record.event.to_string(),
            user: record.user.map(String::from),
            service: record.service.map(String::from),
            protocol: record.protocol.map(String::from),
            rhost: record.rhost.map(String::from),
            caller_uid: record.caller_uid,
            detail: record.detail.map(String::from),
        });
        if self.pending_audit.len() >= AUDIT_BATCH {
            self.flush_audit()?;
        }
        Ok(())
    }

    /// Writes the recorded rows in one transaction. On failure they stay queued for the next
    /// flush (at most `MAX_PENDING_AUDIT` of them).
    pub fn flush_audit(&mut self) -> Result<(), StoreError> {
        if self.pending_audit.is_empty() {
            return Ok(());
        }
        let result = write_rows(&mut self.conn, &self.pending_audit);
        match result {
            Ok(()) => self.pending_audit.clear(),
            Err(_) if self.pending_audit.len() > MAX_PENDING_AUDIT => {
                let excess = self.pending_audit.len() - MAX_PENDING_AUDIT;
                self.pending_audit.drain(..excess);
            }
            Err(_) => {}
        }
        result
    }

    /// Rows at or after `since`, newest first, at most `limit` of them: the unfiltered case
    /// of [`Store::audit_filtered`].
    pub fn audit_since(&mut self, since: i64, limit: usize) -> Result<Vec<AuditRow>, StoreError> {
        self.audit_filtered(&AuditFilter {
            since,
            limit,
            ..AuditFilter::default()
        })
    }
}

fn write_rows(conn: &mut rusqlite::Connection, rows: &[PendingAudit]) -> Result<(), StoreError> {
    let tx = Store::immediate(conn)?;
    {
        let mut insert = tx.prepare_cached(
            "INSERT INTO audit (time, event, user, service, protocol, rhost, caller_uid, detail)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?;
        for row in rows {
            insert.execute(params![
                row.time,
                row.event,
                row.user,
                row.service,
                row.protocol,
                row.rhost,
                row.caller_uid,
                row.detail
            ])?;
        }
    }
    tx.commit()?;
    Ok(())
}

impl Drop for Store {
    /// Writes rows still waiting, so a clean shutdown loses none.
    fn drop(&mut self) {
        let _ = self.flush_audit();
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

    /// Rows written to the database so far; rows still pending in memory are not counted.
    fn rows_on_disk(store: &Store) -> i64 {
        store
            .conn
            .query_row("SELECT count(*) FROM audit", [], |row| row.get(0))
            .unwrap()
    }

    #[test]
    fn rows_are_written_in_batches_and_on_flush() {
        let (_dir, mut store) = open_store();
        store.record_audit(&event(T0, "issued")).unwrap();
        assert_eq!(rows_on_disk(&store), 0, "one row is not written on its own");
        store.flush_audit().unwrap();
        assert_eq!(rows_on_disk(&store), 1);
        for t in 0..AUDIT_BATCH as i64 {
            store.record_audit(&event(T0 + t, "verified")).unwrap();
        }
        assert_eq!(
            rows_on_disk(&store),
            1 + AUDIT_BATCH as i64,
            "a full batch is written"
        );
    }

    #[test]
    fn reading_the_audit_log_sees_every_recorded_row() {
        let (_dir, mut store) = open_store();
        store.record_audit(&event(T0, "issued")).unwrap();
        assert_eq!(store.audit_since(0, 10).unwrap().len(), 1);
    }

    #[test]
    fn dropping_the_store_writes_what_is_waiting() {
        let (dir, mut store) = open_store();
        store.record_audit(&event(T0, "issued")).unwrap();
        drop(store);
        let count: i64 = rusqlite::Connection::open(dir.path().join("otpd.db"))
            .unwrap()
            .query_row("SELECT count(*) FROM audit", [], |row| row.get(0))
            .unwrap();
        assert_eq!(count, 1);
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
