//! Audit rows: one per auth event, kept for the configured retention and shown by `otpctl`.
//! The caller decides what an event is; no code ever reaches this table. Rows are read back as
//! the wire's [`AuditRow`], which `otpctl audit` shows as it is.

use std::sync::Arc;

use common::wire_admin::AuditRow;
use rusqlite::params;

use super::audit_rate::{Admission, RateKey, Suppressed};
use super::{AuditFilter, SqliteStore, StoreError};
use crate::metrics::Metrics;

/// Counts the audit rows this store writes into otpd's [`Metrics`]: a row written by itself at
/// once, a row written inside [`SqliteStore::in_one_transaction`] when that commits (a rollback
/// drops it), so the counters say what the table holds.
#[derive(Debug, Default)]
pub(super) struct Counter {
    /// Where rows are counted (a store's own until otpd hands it the daemon's).
    pub(super) metrics: Arc<Metrics>,
    /// The event and detail of each row of the open transaction.
    uncommitted: Vec<(String, Option<String>)>,
}

impl Counter {
    /// Counts `record`'s row now when it is `committed`, else when its transaction settles.
    pub(super) fn row(&mut self, record: &AuditRecord<'_>, committed: bool) {
        if committed {
            self.metrics.count_row(record.event, record.detail);
        } else {
            self.uncommitted
                .push((record.event.to_string(), record.detail.map(str::to_string)));
        }
    }

    /// The open transaction ended: its rows count when it `committed`, else they are dropped.
    pub(super) fn settle(&mut self, committed: bool) {
        for (event, detail) in self.uncommitted.drain(..) {
            if committed {
                self.metrics.count_row(&event, detail.as_deref());
            }
        }
    }
}

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

/// Rows deleted by [`SqliteStore::trim_audit`] to bring the table back under its cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trimmed {
    /// How many rows were deleted, oldest first.
    pub deleted: usize,
    /// The time of the oldest row kept (unix seconds).
    pub oldest_kept: i64,
}

impl SqliteStore {
    /// Writes one audit row, in its own transaction, before the caller answers: a crash or a
    /// `kill -9` after the answer has gone out cannot lose the row of what was answered.
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
        // Counted now when the row committed by itself, else when its transaction commits.
        let committed = self.conn.is_autocommit();
        self.audit_counter.row(record, committed);
        Ok(())
    }

    /// Counts this store's audit rows into `metrics` from now on (otpd's one [`Metrics`],
    /// which outlives reloads).
    pub fn count_audit_into(&mut self, metrics: Arc<Metrics>) {
        self.audit_counter.metrics = metrics;
    }

    /// Counts one event of `key` at `now` against its rate (see `audit_rate`): whether to write
    /// it, and the summary of the key's previous window if that ended with events counted.
    pub fn admit_audit(&mut self, key: RateKey, now: i64) -> (Admission, Option<Suppressed>) {
        self.audit_rate.admit(key, now)
    }

    /// The summaries of rate windows that ended by `now`; with `all`, of every window (at
    /// shutdown).
    pub fn ended_audit_windows(&mut self, now: i64, all: bool) -> Vec<Suppressed> {
        if all {
            self.audit_rate.close_all()
        } else {
            self.audit_rate.ended(now)
        }
    }

    /// Keeps at most `max_rows` audit rows: when there are more, deletes the oldest down to
    /// nine tenths of the cap (so trimming, and its log line, happens once per tenth of the
    /// cap, not once per settle).
    ///
    /// Rows are counted by their ids: they are only ever deleted oldest first (here and by the
    /// retention purge), so the id span is an upper bound of the count, found in two index
    /// lookups instead of a scan.
    pub fn trim_audit(&mut self, max_rows: u64) -> Result<Option<Trimmed>, StoreError> {
        let max_rows = i64::try_from(max_rows).unwrap_or(i64::MAX);
        // A plain read first: this runs a few times a second and almost always finds nothing
        // to do, so it takes no write lock for that. Only otpd writes the table, and it holds
        // the store for this whole call, so the span cannot change before the delete.
        let (first, last): (Option<i64>, Option<i64>) =
            self.conn
                .query_row("SELECT min(id), max(id) FROM audit", [], |row| {
                    Ok((row.get(0)?, row.get(1)?))
                })?;
        let (Some(first), Some(last)) = (first, last) else {
            return Ok(None);
        };
        // The span holds `last - first + 1` ids.
        if last - first < max_rows {
            return Ok(None);
        }
        let keep = (max_rows / 10 * 9).max(1);
        let tx = Self::immediate(&mut self.conn)?;
        let deleted = tx.execute("DELETE FROM audit WHERE id <= ?1", params![last - keep])?;
        let oldest_kept: i64 = tx.query_row(
            "SELECT coalesce(min(time), 0) FROM audit WHERE id > ?1",
            params![last - keep],
            |row| row.get(0),
        )?;
        tx.commit()?;
        Ok(Some(Trimmed {
            deleted,
            oldest_kept,
        }))
    }

    /// Rows at or after `since`, newest first, at most `limit` of them: the unfiltered case
    /// of [`SqliteStore::audit_filtered`].
    pub fn audit_since(&mut self, since: i64, limit: usize) -> Result<Vec<AuditRow>, StoreError> {
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

    /// Rows in the database file, as another connection sees them.
    fn rows_on_disk(store: &SqliteStore) -> i64 {
        store
            .conn
            .query_row("SELECT count(*) FROM audit", [], |row| row.get(0))
            .unwrap()
    }

    /// `otpctl metrics`' count of `name` rows.
    fn counted(metrics: &Metrics, name: &str) -> u64 {
        let text = metrics.render(&crate::metrics::Gauges {
            start_time: 0,
            servers: Vec::new(),
            directories: Vec::new(),
        });
        let prefix = format!("otpd_audit_events_total{{event=\"{name}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .unwrap()
            .parse()
            .unwrap()
    }

    #[test]
    fn rows_are_counted_when_committed_and_not_when_taken_back() {
        use crate::store::{Store, atomically};
        let (_dir, mut store) = open_store();
        let metrics = Arc::new(Metrics::default());
        Store::count_audit_into(&mut store, Arc::clone(&metrics));
        store.record_audit(&event(T0, "verified")).unwrap();
        assert_eq!(counted(&metrics, "verified"), 1);
        let kept = atomically(&mut store, |store| {
            store.record_audit(&event(T0, "issued"))?;
            store.record_audit(&event(T0, "mailed"))
        });
        assert!(kept.is_ok());
        let taken_back: Result<(), StoreError> = atomically(&mut store, |store| {
            store.record_audit(&event(T0, "issued"))?;
            Err(StoreError::WorkNotRun)
        });
        assert!(taken_back.is_err());
        assert_eq!(rows_on_disk(&store), 3);
        assert_eq!(counted(&metrics, "issued"), 1);
        assert_eq!(counted(&metrics, "mailed"), 1);
        assert_eq!(counted(&metrics, "verified"), 1);
    }

    #[test]
    fn a_recorded_row_is_committed_at_once() {
        let (_dir, mut store) = open_store();
        store.record_audit(&event(T0, "verified")).unwrap();
        assert_eq!(rows_on_disk(&store), 1);
        assert!(store.conn.is_autocommit(), "no transaction is left open");
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
    fn trimming_keeps_at_most_the_cap_deleting_the_oldest_first() {
        let (_dir, mut store) = open_store();
        for t in 0..1000 {
            store.record_audit(&event(T0 + t, "issued")).unwrap();
        }
        assert_eq!(
            store.trim_audit(1000).unwrap(),
            None,
            "at the cap: nothing to do"
        );
        store.record_audit(&event(T0 + 1000, "issued")).unwrap();
        let trimmed = store.trim_audit(1000).unwrap().unwrap();
        assert_eq!(trimmed.deleted, 1001 - 900);
        assert_eq!(trimmed.oldest_kept, T0 + 101);
        assert_eq!(rows_on_disk(&store), 900);
        let newest = store.audit_since(0, 1).unwrap();
        assert_eq!(newest[0].time, T0 + 1000, "the newest rows are kept");
        assert_eq!(store.trim_audit(1000).unwrap(), None);
    }

    #[test]
    fn trimming_an_empty_table_does_nothing() {
        let (_dir, mut store) = open_store();
        assert_eq!(store.trim_audit(1000).unwrap(), None);
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
