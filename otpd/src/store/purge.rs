//! Purge: removes rows no rule needs any more, so the database stays small.
//!
//! Each deletion is bounded by what the rules read: sends stay for the whole daily window,
//! lockout rows stay while they lock or count, codes stay an hour after they expire (for status
//! and investigation; a code stops working at its expiry at the latest), audit rows for the
//! configured retention.

use rusqlite::params;

use super::sends::DAY;
use super::{SqliteStore, StoreError, notices};

/// How long a code row is kept after it expired. One used, superseded or killed earlier stays as
/// long: purging by expiry alone needs no index on the close time, which every login would
/// write (schema version 3).
pub const CODE_KEEP_SECS: i64 = 3600;

/// How many rows each purge step removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PurgeCounts {
    /// Code rows.
    pub codes: usize,
    /// Send rows.
    pub sends: usize,
    /// Lockout rows.
    pub lockouts: usize,
    /// Audit rows.
    pub audit: usize,
    /// Expired reuse grants.
    pub grants: usize,
    /// Closed notices past [`notices::CLOSED_NOTICES_KEPT`].
    pub notices: usize,
    /// Login addresses not seen for [`notices::SEEN_RHOSTS_KEPT`].
    pub seen_rhosts: usize,
}

impl SqliteStore {
    /// Deletes, in one transaction: codes that expired more than an hour before `now`; sends
    /// that have left the daily window; lockout rows with no failures counted and no lock in
    /// force; audit rows older than `audit_retention_secs`; expired reuse grants; closed
    /// notices and login addresses past their keeping.
    pub fn purge(
        &mut self,
        now: i64,
        audit_retention_secs: i64,
    ) -> Result<PurgeCounts, StoreError> {
        let tx = Self::immediate(&mut self.conn)?;
        let code_cutoff = now.saturating_sub(CODE_KEEP_SECS);
        let codes = tx.execute(
            "DELETE FROM codes WHERE expires_at < ?1",
            params![code_cutoff],
        )?;
        // Matches the window: a send at `t` counts while `now - t < DAY`.
        let sends = tx.execute(
            "DELETE FROM sends WHERE sent_at <= ?1",
            params![now.saturating_sub(DAY)],
        )?;
        let lockouts = tx.execute(
            "DELETE FROM lockouts
             WHERE failures = 0 AND (locked_until IS NULL OR locked_until <= ?1)",
            params![now],
        )?;
        let audit = tx.execute(
            "DELETE FROM audit WHERE time < ?1",
            params![now.saturating_sub(audit_retention_secs.max(0))],
        )?;
        let grants = tx.execute(
            "DELETE FROM reuse_grants WHERE expires_at <= ?1",
            params![now],
        )?;
        let notices = tx.execute(
            "DELETE FROM notices WHERE sent_at IS NOT NULL AND sent_at < ?1",
            params![now.saturating_sub(notices::CLOSED_NOTICES_KEPT)],
        )?;
        let seen_rhosts = tx.execute(
            "DELETE FROM seen_rhosts WHERE last_seen < ?1",
            params![now.saturating_sub(notices::SEEN_RHOSTS_KEPT)],
        )?;
        tx.commit()?;
        Ok(PurgeCounts {
            codes,
            sends,
            lockouts,
            audit,
            grants,
            notices,
            seen_rhosts,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::super::{AuditRecord, IssueOutcome, Limits, VerifyOutcome};
    use super::*;
    use common::secret::SecretString;

    #[test]
    fn purge_keeps_the_sends_the_daily_window_still_needs() {
        let (_dir, mut store) = open_store();
        let limits = Limits {
            resend_cooldown_secs: 0,
            max_sends_per_hour: 10,
            max_sends_per_day: 2,
            ..limits()
        };
        let issue = |store: &mut super::super::SqliteStore, now| {
            store
                .issue(&request("alice", "ssh"), &limits, now, &mut rng())
                .unwrap()
        };
        issue(&mut store, T0);
        issue(&mut store, T0 + 1);
        // One second before the first send leaves the window: nothing may go.
        let counts = store.purge(T0 + DAY - 1, 86400).unwrap();
        assert_eq!(counts.sends, 0);
        assert!(matches!(
            issue(&mut store, T0 + DAY - 1),
            IssueOutcome::RateLimited { .. }
        ));
        // At the moment it leaves, purge may drop it, and the cap agrees that it no longer counts.
        let counts = store.purge(T0 + DAY, 86400).unwrap();
        assert_eq!(counts.sends, 1);
        assert!(matches!(
            issue(&mut store, T0 + DAY),
            IssueOutcome::Issued { .. }
        ));
        assert!(matches!(
            issue(&mut store, T0 + DAY),
            IssueOutcome::RateLimited { .. }
        ));
    }

    #[test]
    fn purge_removes_codes_an_hour_after_they_expire_used_or_not_and_keeps_sends() {
        let (_dir, mut store) = open_store();
        let limits = Limits {
            resend_cooldown_secs: 0,
            valid_secs: 300,
            ..limits()
        };
        let used = store
            .issue(&request("alice", "ssh"), &limits, T0, &mut rng())
            .unwrap();
        let outcome = store
            .verify(
                &challenge_of(&used),
                "alice",
                "ssh",
                None,
                &secret_of(&used),
                &limits,
                T0 + 10,
            )
            .unwrap();
        assert_eq!(outcome, VerifyOutcome::Success);
        let _expiring = store
            .issue(&request("bob", "ssh"), &limits, T0 + 100, &mut rng())
            .unwrap();
        let live = store
            .issue(&request("carol", "ssh"), &limits, T0 + 3700, &mut rng())
            .unwrap();

        // Used at T0+10, expires at T0+300: goes after T0+3900. Bob's expires at T0+400: goes
        // after T0+4000.
        assert_eq!(store.purge(T0 + 3900, 86400).unwrap().codes, 0);
        assert_eq!(store.purge(T0 + 3901, 86400).unwrap().codes, 1);
        assert_eq!(store.purge(T0 + 4000, 86400).unwrap().codes, 0);
        assert_eq!(store.purge(T0 + 4001, 86400).unwrap().codes, 1);
        assert_eq!(store.count_rows("SELECT count(*) FROM codes"), 1);
        // The sends of purged codes survive for the daily window.
        assert_eq!(store.count_rows("SELECT count(*) FROM sends"), 3);
        // Carol's code is still answerable.
        let outcome = store
            .verify(
                &challenge_of(&live),
                "carol",
                "ssh",
                None,
                &secret_of(&live),
                &limits,
                T0 + 3701,
            )
            .unwrap();
        assert_eq!(outcome, VerifyOutcome::Success);
    }

    #[test]
    fn purge_removes_only_lockout_rows_that_neither_lock_nor_count() {
        let (_dir, mut store) = open_store();
        let limits = Limits {
            max_user_failures: 2,
            lockout_secs: 100,
            ..limits()
        };
        let wrong = SecretString::new("x".into());
        // alice: locked until T0+100 (count back to zero). bob: one failure counted.
        for _ in 0..2 {
            store
                .verify("c", "alice", "ssh", None, &wrong, &limits, T0)
                .unwrap();
        }
        store
            .verify("c", "bob", "ssh", None, &wrong, &limits, T0)
            .unwrap();
        assert_eq!(store.purge(T0 + 99, 86400).unwrap().lockouts, 0);
        let outcome = store
            .verify("c", "alice", "ssh", None, &wrong, &limits, T0 + 99)
            .unwrap();
        assert!(matches!(outcome, VerifyOutcome::LockedOut { .. }));
        assert_eq!(store.purge(T0 + 100, 86400).unwrap().lockouts, 1);
        assert_eq!(
            store.count_rows("SELECT count(*) FROM lockouts WHERE subject = 'bob'"),
            1
        );
    }

    #[test]
    fn purge_removes_audit_rows_older_than_the_retention() {
        let (_dir, mut store) = open_store();
        for time in [T0, T0 + 10, T0 + 20] {
            store
                .record_audit(&AuditRecord {
                    time,
                    event: "issued",
                    user: None,
                    service: None,
                    protocol: None,
                    rhost: None,
                    caller_uid: None,
                    detail: None,
                })
                .unwrap();
        }
        assert_eq!(store.purge(T0 + 110, 100).unwrap().audit, 1);
        let left: Vec<i64> = store
            .audit_since(0, 10)
            .unwrap()
            .iter()
            .map(|r| r.time)
            .collect();
        assert_eq!(left, [T0 + 20, T0 + 10]);
    }

    #[test]
    fn purging_an_empty_database_removes_nothing() {
        let (_dir, mut store) = open_store();
        assert_eq!(store.purge(T0, 86400).unwrap(), PurgeCounts::default());
    }

    #[test]
    fn purge_removes_closed_notices_after_two_days_and_addresses_after_a_year() {
        use super::super::NewNotice;
        use common::config::NoticeKind;
        let (_dir, mut store) = open_store();
        for user in ["alice", "bob"] {
            let notice = NewNotice {
                kind: NoticeKind::Lockout,
                user,
                address: "x@example.test",
                channel: None,
                to_admin: false,
                service: "sshd",
                rhost: None,
                detail: "",
                event_key: None,
            };
            store.queue_notice(&notice, None, T0).unwrap();
        }
        let alice = store.due_notices(T0, i64::MIN, 1).unwrap()[0].id;
        store.close_notice(alice, T0).unwrap();
        store
            .note_login_address("alice", "192.0.2.1", T0, 60)
            .unwrap();
        let kept = store
            .purge(T0 + notices::CLOSED_NOTICES_KEPT, 86400)
            .unwrap();
        assert_eq!((kept.notices, kept.seen_rhosts), (0, 0));
        let later = T0 + notices::SEEN_RHOSTS_KEPT + 1;
        let purged = store.purge(later, 86400).unwrap();
        assert_eq!((purged.notices, purged.seen_rhosts), (1, 1));
        assert_eq!(store.queued_notices().unwrap(), 1, "bob's is still owed");
    }
}
