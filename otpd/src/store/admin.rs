//! What `otpctl` needs beyond a single login: listing users, clearing a lockout, counts for
//! the status, bulk changes in one transaction, and filtered audit rows.

use common::wire_admin::AuditRow;
use rusqlite::{OptionalExtension, params};

use super::{SqliteStore, StoreError, UserRecord};

/// Numbers for `otpctl status`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UserCounts {
    /// Records in the user table.
    pub users: u64,
    /// Records with the code turned on.
    pub enabled: u64,
    /// Users locked out now (whether or not they have a record).
    pub locked: u64,
}

/// Which audit rows to read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Only this user.
    pub user: Option<String>,
    /// Only this event.
    pub event: Option<String>,
    /// Only rows at or after this time.
    pub since: i64,
    /// At most this many rows.
    pub limit: usize,
    /// Only rows older than this `(time, id)`, for paging.
    pub before: Option<(i64, i64)>,
}

/// The last thing a mail server did, read back from the audit rows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MailHistory {
    /// When it last accepted a message.
    pub last_ok_at: Option<i64>,
    /// When it last failed, and the error.
    pub last_failure: Option<(i64, String)>,
}

/// How often one event happened since a time, and to whom: for `otpctl status`'s summary of a
/// dry run (`would_ask`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventTally {
    /// Rows of the event.
    pub rows: u64,
    /// Distinct users they name.
    pub users: u64,
    /// The users with the most rows, most first (then by name), at most the limit asked for.
    pub top: Vec<(String, u64)>,
}

fn count(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

impl SqliteStore {
    /// Every user record, sorted by name.
    pub fn list_users(&self) -> Result<Vec<UserRecord>, StoreError> {
        let names: Vec<String> = self
            .conn
            .prepare_cached("SELECT name FROM users ORDER BY name")?
            .query_map([], |row| row.get(0))?
            .collect::<Result<_, _>>()?;
        let mut records = Vec::with_capacity(names.len());
        for name in names {
            if let Some(record) = self.user(&name)? {
                records.push(record);
            }
        }
        Ok(records)
    }

    /// Users locked out at `now` with the end of their lock, sorted by name.
    pub fn locked_users(&self, now: i64) -> Result<Vec<(String, i64)>, StoreError> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT subject, locked_until FROM lockouts
                 WHERE kind = 'user' AND locked_until > ?1 ORDER BY subject",
            )?
            .query_map(params![now], |row| Ok((row.get(0)?, row.get(1)?)))?
            .collect::<Result<_, _>>()?)
    }

    /// Until when `user` is locked out at `now`, if they are.
    pub fn user_locked_until(&self, user: &str, now: i64) -> Result<Option<i64>, StoreError> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT locked_until FROM lockouts
                 WHERE kind = 'user' AND subject = ?1 AND locked_until > ?2",
            )?
            .query_row(params![user, now], |row| row.get(0))
            .optional()?)
    }

    /// Clears the user's lock and failure count; true when there was a lock in force at `now`
    /// or failures counted. Host lockouts are left alone: a host hammering codes is not
    /// forgiven because one of its targets was.
    pub fn unlock_user(&mut self, user: &str, now: i64) -> Result<bool, StoreError> {
        let tx = Self::immediate(&mut self.conn)?;
        let was: bool = tx
            .prepare_cached(
                "SELECT count(*) > 0 FROM lockouts WHERE kind = 'user' AND subject = ?1
                 AND (failures > 0 OR locked_until > ?2)",
            )?
            .query_row(params![user, now], |row| row.get(0))?;
        tx.prepare_cached("DELETE FROM lockouts WHERE kind = 'user' AND subject = ?1")?
            .execute(params![user])?;
        tx.commit()?;
        Ok(was)
    }

    /// Counts for the status output.
    pub fn user_counts(&self, now: i64) -> Result<UserCounts, StoreError> {
        let (users, enabled): (i64, i64) = self
            .conn
            .prepare_cached("SELECT count(*), coalesce(sum(enabled), 0) FROM users")?
            .query_row([], |row| Ok((row.get(0)?, row.get(1)?)))?;
        let locked: i64 = self
            .conn
            .prepare_cached(
                "SELECT count(*) FROM lockouts WHERE kind = 'user' AND locked_until > ?1",
            )?
            .query_row(params![now], |row| row.get(0))?;
        Ok(UserCounts {
            users: count(users),
            enabled: count(enabled),
            locked: count(locked),
        })
    }

    /// Creates or replaces every record in one transaction: all of them, or (on any error,
    /// such as an invalid record) none. Inside [`SqliteStore::in_one_transaction`] it is a
    /// savepoint of that transaction.
    pub fn upsert_users(&mut self, records: &[UserRecord]) -> Result<(), StoreError> {
        let (begin, commit, rollback) = if self.conn.is_autocommit() {
            ("BEGIN IMMEDIATE", "COMMIT", "ROLLBACK")
        } else {
            (
                "SAVEPOINT upsert_users",
                "RELEASE upsert_users",
                "ROLLBACK TO upsert_users; RELEASE upsert_users",
            )
        };
        self.conn.execute_batch(begin)?;
        let result = records.iter().try_for_each(|r| self.upsert_user(r));
        match result {
            Ok(()) => {
                self.conn.execute_batch(commit)?;
                Ok(())
            }
            Err(e) => {
                if let Err(rollback) = self.conn.execute_batch(rollback) {
                    tracing::error!(
                        "rollback after a failed bulk change: {}",
                        common::text::escape_for_log(&rollback.to_string())
                    );
                }
                Err(e)
            }
        }
    }

    /// Audit rows matching `filter`, newest first.
    pub fn audit_filtered(&mut self, filter: &AuditFilter) -> Result<Vec<AuditRow>, StoreError> {
        let limit = i64::try_from(filter.limit).unwrap_or(i64::MAX);
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, time, event, user, service, protocol, rhost, caller_uid, detail
             FROM audit
             WHERE time >= ?1 AND (?2 IS NULL OR user = ?2) AND (?3 IS NULL OR event = ?3)
               AND (?5 IS NULL OR time < ?5 OR (time = ?5 AND id < ?6))
             ORDER BY time DESC, id DESC LIMIT ?4",
        )?;
        let (before_time, before_id) = filter.before.unzip();
        let rows = stmt.query_map(
            params![
                filter.since,
                filter.user,
                filter.event,
                limit,
                before_time,
                before_id
            ],
            |row| {
                Ok(AuditRow {
                    id: row.get(0)?,
                    time: row.get(1)?,
                    event: row.get(2)?,
                    user: row.get(3)?,
                    service: row.get(4)?,
                    protocol: row.get(5)?,
                    rhost: row.get(6)?,
                    caller_uid: row.get(7)?,
                    detail: row.get(8)?,
                })
            },
        )?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// What the server `name` last did, from the `mailed` and `mail_failed` audit rows (a
    /// failure's detail names each server it tried as `NAME: error`).
    pub fn event_tally(
        &mut self,
        event: &str,
        since: i64,
        limit: usize,
    ) -> Result<EventTally, StoreError> {
        let (rows, users): (i64, i64) = self
            .conn
            .prepare_cached(
                "SELECT count(*), count(DISTINCT user) FROM audit WHERE event = ?1 AND time >= ?2",
            )?
            .query_row(params![event, since], |row| Ok((row.get(0)?, row.get(1)?)))?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut stmt = self.conn.prepare_cached(
            "SELECT user, count(*) AS n FROM audit
             WHERE event = ?1 AND time >= ?2 AND user IS NOT NULL
             GROUP BY user ORDER BY n DESC, user LIMIT ?3",
        )?;
        let top = stmt
            .query_map(params![event, since, limit], |row| {
                Ok((row.get::<_, String>(0)?, count(row.get(1)?)))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(EventTally {
            rows: count(rows),
            users: count(users),
            top,
        })
    }

    pub fn mail_history(&mut self, name: &str) -> Result<MailHistory, StoreError> {
        // A success after failover reads `NAME after OTHER: error; ...`; the failures before it
        // are in that same row.
        let after = format!("{} after %", escape_like(name));
        let last_ok_at: Option<i64> = self
            .conn
            .prepare_cached(
                "SELECT max(time) FROM audit
                 WHERE event IN ('mailed', 'test_mail_ok')
                   AND (detail = ?1 OR detail LIKE ?2 ESCAPE '\\')",
            )?
            .query_row(params![name, after], |row| row.get(0))?;
        let pattern = format!("%{}: %", escape_like(name));
        let last_failure: Option<(i64, String)> = self
            .conn
            .prepare_cached(
                "SELECT time, detail FROM audit
                 WHERE event IN ('mail_failed', 'test_mail_failed', 'mailed')
                   AND detail LIKE ?1 ESCAPE '\\'
                 ORDER BY time DESC, id DESC LIMIT 1",
            )?
            .query_row(params![pattern], |row| Ok((row.get(0)?, row.get(1)?)))
            .optional()?;
        Ok(MailHistory {
            last_ok_at,
            last_failure,
        })
    }
}

/// Escapes `%`, `_` and `\` for a LIKE pattern with `ESCAPE '\'`.
pub(super) fn escape_like(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::super::{AuditRecord, VerifyOutcome};
    use super::*;
    use common::secret::SecretString;

    fn lock(store: &mut SqliteStore, user: &str) {
        let limits = super::super::Limits {
            max_user_failures: 1,
            ..limits()
        };
        let wrong = SecretString::new("x".into());
        let outcome = store
            .verify("nope", user, "ssh", None, &wrong, &limits, T0)
            .unwrap();
        assert!(matches!(outcome, VerifyOutcome::LockedOut { .. }));
    }

    #[test]
    fn users_are_listed_by_name() {
        let (_dir, mut store) = open_store();
        for name in ["carol", "alice", "bob"] {
            store.upsert_user(&user_record(name)).unwrap();
        }
        let names: Vec<String> = store
            .list_users()
            .unwrap()
            .into_iter()
            .map(|r| r.name)
            .collect();
        assert_eq!(names, ["alice", "bob", "carol"]);
    }

    #[test]
    fn unlocking_clears_the_users_lock_and_says_whether_there_was_one() {
        let (_dir, mut store) = open_store();
        lock(&mut store, "alice");
        assert!(store.user_locked_until("alice", T0).unwrap().is_some());
        assert_eq!(store.locked_users(T0).unwrap().len(), 1);
        assert!(store.unlock_user("alice", T0).unwrap());
        assert_eq!(store.user_locked_until("alice", T0).unwrap(), None);
        assert!(!store.unlock_user("alice", T0).unwrap());
    }

    #[test]
    fn counts_cover_records_enabled_records_and_locks() {
        let (_dir, mut store) = open_store();
        store.upsert_user(&user_record("alice")).unwrap();
        store
            .upsert_user(&UserRecord {
                enabled: false,
                ..user_record("bob")
            })
            .unwrap();
        lock(&mut store, "mallory");
        assert_eq!(
            store.user_counts(T0).unwrap(),
            UserCounts {
                users: 2,
                enabled: 1,
                locked: 1
            }
        );
    }

    #[test]
    fn a_bulk_upsert_with_one_bad_record_changes_nothing() {
        let (_dir, mut store) = open_store();
        let bad = UserRecord {
            protocols: Some(vec!["shh".into()]),
            ..user_record("bob")
        };
        assert!(store.upsert_users(&[user_record("alice"), bad]).is_err());
        assert!(store.list_users().unwrap().is_empty());
        store
            .upsert_users(&[user_record("alice"), user_record("bob")])
            .unwrap();
        assert_eq!(store.list_users().unwrap().len(), 2);
    }

    #[test]
    fn audit_rows_are_filtered_by_user_event_time_and_limit() {
        let (_dir, mut store) = open_store();
        let row = |time, event, user| AuditRecord {
            time,
            event,
            user: Some(user),
            service: None,
            protocol: None,
            rhost: None,
            caller_uid: None,
            detail: None,
        };
        store.record_audit(&row(T0, "issued", "alice")).unwrap();
        store
            .record_audit(&row(T0 + 1, "verified", "alice"))
            .unwrap();
        store.record_audit(&row(T0 + 2, "issued", "bob")).unwrap();
        let filter = |user: Option<&str>, event: Option<&str>, since, limit| AuditFilter {
            user: user.map(String::from),
            event: event.map(String::from),
            since,
            limit,
            before: None,
        };
        let events = |store: &mut SqliteStore, f: AuditFilter| -> Vec<(i64, String)> {
            store
                .audit_filtered(&f)
                .unwrap()
                .into_iter()
                .map(|r| (r.time, r.event))
                .collect()
        };
        assert_eq!(
            events(&mut store, filter(Some("alice"), None, 0, 10)).len(),
            2
        );
        assert_eq!(
            events(&mut store, filter(None, Some("issued"), 0, 10)),
            [(T0 + 2, "issued".to_string()), (T0, "issued".to_string())]
        );
        assert_eq!(events(&mut store, filter(None, None, T0 + 1, 10)).len(), 2);
        assert_eq!(events(&mut store, filter(None, None, 0, 1)).len(), 1);
        let first = store.audit_filtered(&filter(None, None, 0, 1)).unwrap();
        let next = AuditFilter {
            before: Some((first[0].time, first[0].id)),
            ..filter(None, None, 0, 10)
        };
        assert_eq!(
            events(&mut store, next),
            [(T0 + 1, "verified".to_string()), (T0, "issued".to_string())]
        );
    }

    #[test]
    fn mail_history_finds_the_last_success_and_failure_of_a_server() {
        let (_dir, mut store) = open_store();
        let row = |time, event, detail| AuditRecord {
            time,
            event,
            user: None,
            service: None,
            protocol: None,
            rhost: None,
            caller_uid: None,
            detail: Some(detail),
        };
        store.record_audit(&row(T0, "mailed", "main")).unwrap();
        store
            .record_audit(&row(
                T0 + 5,
                "mail_failed",
                "no mail server accepted the message: main: connection refused; backup: 451",
            ))
            .unwrap();
        let main = store.mail_history("main").unwrap();
        assert_eq!(main.last_ok_at, Some(T0));
        assert_eq!(main.last_failure.map(|f| f.0), Some(T0 + 5));
        let other = store.mail_history("ma_n").unwrap();
        assert_eq!(other, MailHistory::default());
    }
}
