//! The outbox: mails owed to users, kept until a server accepts them (issue #16).
//!
//! A notice is queued inside the transaction of the event it tells of (today: a recovery code
//! was used, which happens when mail is down), so it exists exactly when the event does. The
//! deliverer (`crate::notices`) takes the due ones, and deletes each once a server accepted it,
//! or puts it off with [`SqliteStore::put_off_notice`]. Nothing about it lives only in otpd's memory:
//! a restart while mail is down delays the notice, it does not drop it.

use rusqlite::{Connection, Row, params};

use super::{SqliteStore, StoreError};

/// Where a notice of a login goes: the user's address and the login's PAM service.
#[derive(Debug, Clone, Copy)]
pub struct NoticeTo<'a> {
    /// The address the login's code would have gone to.
    pub address: &'a str,
    /// The PAM service of the login.
    pub service: &'a str,
}

/// One queued notice that one of the user's recovery codes was used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedNotice {
    /// The row's id, to delete or put off it.
    pub id: i64,
    /// The login name.
    pub user: String,
    /// The address it goes to.
    pub address: String,
    /// The PAM service of the login.
    pub service: String,
    /// Where the login came from, when known.
    pub rhost: Option<String>,
    /// The user's recovery codes left after this use.
    pub recovery_left: u32,
    /// When the code was used (unix seconds).
    pub created_at: i64,
    /// How many tries failed so far.
    pub tries: u32,
}

const COLUMNS: &str = "id, user, address, service, rhost, recovery_left, created_at, tries";

fn of_row(row: &Row<'_>) -> rusqlite::Result<QueuedNotice> {
    Ok(QueuedNotice {
        id: row.get(0)?,
        user: row.get(1)?,
        address: row.get(2)?,
        service: row.get(3)?,
        rhost: row.get(4)?,
        recovery_left: row.get(5)?,
        created_at: row.get(6)?,
        tries: row.get(7)?,
    })
}

/// Queues, inside the caller's transaction, the notice that one of `user`'s recovery codes was
/// used at `now` by a login from `rhost`, with `left` codes left. It is due at once.
pub(super) fn queue_recovery_used_in(
    tx: &Connection,
    to: &NoticeTo<'_>,
    (user, rhost): (&str, Option<&str>),
    left: u32,
    now: i64,
) -> Result<(), StoreError> {
    tx.prepare_cached(
        "INSERT INTO notices \
         (kind, user, address, service, rhost, recovery_left, created_at, next_try_at) \
         VALUES ('recovery_used', ?1, ?2, ?3, ?4, ?5, ?6, ?6)",
    )?
    .execute(params![user, to.address, to.service, rhost, left, now])?;
    Ok(())
}

impl SqliteStore {
    /// Up to `limit` notices due at `now` whose id is above `after_id`, oldest first.
    pub fn due_notices(
        &mut self,
        now: i64,
        after_id: i64,
        limit: usize,
    ) -> Result<Vec<QueuedNotice>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut statement = self.conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM notices WHERE next_try_at <= ?1 AND id > ?2 \
             ORDER BY id LIMIT ?3"
        ))?;
        let rows = statement.query_map(params![now, after_id, limit], of_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Deletes a notice: a server accepted it, or the deliverer gave it up.
    pub fn forget_notice(&mut self, id: i64) -> Result<(), StoreError> {
        self.conn
            .prepare_cached("DELETE FROM notices WHERE id = ?1")?
            .execute(params![id])?;
        Ok(())
    }

    /// Counts a failed try of a notice and makes it due again at `next_try_at`.
    pub fn put_off_notice(&mut self, id: i64, next_try_at: i64) -> Result<(), StoreError> {
        self.conn
            .prepare_cached("UPDATE notices SET tries = tries + 1, next_try_at = ?2 WHERE id = ?1")?
            .execute(params![id, next_try_at])?;
        Ok(())
    }

    /// How many notices wait, due or not (for `otpctl status` and the tests).
    pub fn queued_notices(&mut self) -> Result<u64, StoreError> {
        let count: i64 = self
            .conn
            .query_row("SELECT count(*) FROM notices", [], |row| row.get(0))?;
        Ok(u64::try_from(count).unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    const TO: NoticeTo<'static> = NoticeTo {
        address: "alice@example.test",
        service: "sshd",
    };

    fn queue(store: &mut SqliteStore, user: &str, now: i64) {
        let tx = SqliteStore::immediate(&mut store.conn).unwrap();
        queue_recovery_used_in(&tx, &TO, (user, Some("192.0.2.1")), 7, now).unwrap();
        tx.commit().unwrap();
    }

    #[test]
    fn a_queued_notice_is_due_at_once_and_stays_until_forgotten() {
        let (_dir, mut store) = open_store();
        queue(&mut store, "alice", T0);
        let due = store.due_notices(T0, i64::MIN, 10).unwrap();
        assert_eq!(
            due,
            vec![QueuedNotice {
                id: due[0].id,
                user: "alice".into(),
                address: "alice@example.test".into(),
                service: "sshd".into(),
                rhost: Some("192.0.2.1".into()),
                recovery_left: 7,
                created_at: T0,
                tries: 0,
            }]
        );
        // Reading it does not take it: a crash before delivery keeps it.
        assert_eq!(store.due_notices(T0, i64::MIN, 10).unwrap().len(), 1);
        store.forget_notice(due[0].id).unwrap();
        assert_eq!(store.queued_notices().unwrap(), 0);
    }

    #[test]
    fn a_put_off_notice_counts_the_try_and_is_due_again_only_at_its_time() {
        let (_dir, mut store) = open_store();
        queue(&mut store, "alice", T0);
        let id = store.due_notices(T0, i64::MIN, 10).unwrap()[0].id;
        store.put_off_notice(id, T0 + 60).unwrap();
        assert!(store.due_notices(T0 + 59, i64::MIN, 10).unwrap().is_empty());
        let due = store.due_notices(T0 + 60, i64::MIN, 10).unwrap();
        assert_eq!((due.len(), due[0].tries), (1, 1));
    }

    #[test]
    fn due_notices_come_in_queue_order_up_to_the_limit_and_after_the_cursor() {
        let (_dir, mut store) = open_store();
        queue(&mut store, "bob", T0 + 1);
        queue(&mut store, "alice", T0);
        queue(&mut store, "carol", T0 + 2);
        let first = store.due_notices(T0 + 5, i64::MIN, 2).unwrap();
        let users: Vec<_> = first.iter().map(|n| n.user.as_str()).collect();
        assert_eq!(users, ["bob", "alice"]);
        let rest = store.due_notices(T0 + 5, first[1].id, 2).unwrap();
        let users: Vec<_> = rest.iter().map(|n| n.user.as_str()).collect();
        assert_eq!(users, ["carol"]);
        assert_eq!(store.queued_notices().unwrap(), 3);
    }

    #[test]
    fn the_notice_survives_reopening_the_database() {
        let (dir, mut store) = open_store();
        queue(&mut store, "alice", T0);
        drop(store);
        let mut store = SqliteStore::open(&dir.path().join("otpd.db"), key()).unwrap();
        assert_eq!(store.due_notices(T0, i64::MIN, 10).unwrap().len(), 1);
    }
}
