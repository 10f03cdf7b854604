//! The outbox: notifications owed to users and the admin, kept until a server accepts them
//! (issues #16 and #21).
//!
//! A notice is queued inside the transaction of the event it tells of, so it exists exactly
//! when the event does. The deliverer (`crate::notices`) takes the due ones and closes each
//! once a server accepted it (or it was given up), or puts it off with
//! [`SqliteStore::put_off_notice`]. Nothing about it lives only in otpd's memory: a restart
//! while mail is down delays the notice, it does not drop it.
//!
//! A closed notice stays until the purge: the per-hour caps count it, and its `event_key`
//! says that its event was told already (one lockout, one break-glass grant: one notice,
//! however many logins run into it).

use common::config::NoticeKind;
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::{SqliteStore, StoreError};

/// Where a notice of a recovery code used by a login goes: the user's address and the
/// login's PAM service, and whether the user's profile wants it.
#[derive(Debug, Clone, Copy)]
pub struct NoticeTo<'a> {
    /// The address the login's code would have gone to.
    pub address: &'a str,
    /// The PAM service of the login.
    pub service: &'a str,
    /// Whether the user is told (`notify` lists `recovery_used`).
    pub tell: bool,
}

/// A notice to queue.
#[derive(Debug, Clone, Copy)]
pub struct NewNotice<'a> {
    /// What it tells of.
    pub kind: NoticeKind,
    /// The user it is about.
    pub user: &'a str,
    /// The address it goes to: a mail address, or with `channel` a phone number.
    pub address: &'a str,
    /// The webhook channel it goes by; `None`: by mail.
    pub channel: Option<&'a str>,
    /// Whether it goes to the admin's address rather than the user's.
    pub to_admin: bool,
    /// The PAM service of the login, or `otpctl`.
    pub service: &'a str,
    /// Where the login came from, when known.
    pub rhost: Option<&'a str>,
    /// The event's facts, one line (the template's `{detail}`).
    pub detail: &'a str,
    /// Names the event: no second notice of the same kind, user, recipient and key is queued.
    pub event_key: Option<&'a str>,
}

/// What became of a notice to queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queued {
    /// It is queued, due at once.
    Queued,
    /// A notice of the same event was queued before: nothing more.
    AlreadyTold,
    /// Its recipient was sent the most notices an hour allows: dropped.
    OverCap,
}

/// Whether a user logged in from a remote address lately.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressSeen {
    /// No login of the user from any address is on record: nothing to compare with.
    FirstEver,
    /// The user logged in from this address within the window.
    Known,
    /// Not from this address within the window, though from others.
    New,
}

/// One queued notice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedNotice {
    /// The row's id, to close or put off it.
    pub id: i64,
    /// What it tells of.
    pub kind: NoticeKind,
    /// The user it is about.
    pub user: String,
    /// The address it goes to: a mail address, or with `channel` a phone number.
    pub address: String,
    /// The webhook channel it goes by; `None`: by mail.
    pub channel: Option<String>,
    /// Whether it goes to the admin.
    pub to_admin: bool,
    /// The PAM service of the login.
    pub service: String,
    /// Where the login came from, when known.
    pub rhost: Option<String>,
    /// The event's facts.
    pub detail: String,
    /// When the event was (unix seconds).
    pub created_at: i64,
    /// How many tries failed so far.
    pub tries: u32,
}

const COLUMNS: &str =
    "id, kind, user, address, to_admin, service, rhost, detail, created_at, tries, channel";

fn of_row(row: &Row<'_>) -> rusqlite::Result<QueuedNotice> {
    let kind: String = row.get(1)?;
    let kind = NoticeKind::of_name(&kind).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            1,
            rusqlite::types::Type::Text,
            format!("unknown notice kind {kind:?}").into(),
        )
    })?;
    Ok(QueuedNotice {
        id: row.get(0)?,
        kind,
        user: row.get(2)?,
        address: row.get(3)?,
        to_admin: row.get(4)?,
        service: row.get(5)?,
        rhost: row.get(6)?,
        detail: row.get(7)?,
        created_at: row.get(8)?,
        tries: row.get(9)?,
        channel: row.get(10)?,
    })
}

/// Queues `notice` inside the caller's transaction unless its event was told already or, with
/// `per_hour`, its recipient had that many notices in the hour before `now`.
pub(super) fn queue_in(
    tx: &Connection,
    notice: &NewNotice<'_>,
    per_hour: Option<u32>,
    now: i64,
) -> Result<Queued, StoreError> {
    if let Some(key) = notice.event_key {
        let told: Option<i64> = tx
            .prepare_cached(
                "SELECT 1 FROM notices \
                 WHERE kind = ?1 AND user = ?2 AND to_admin = ?3 AND event_key = ?4",
            )?
            .query_row(
                params![notice.kind.name(), notice.user, notice.to_admin, key],
                |row| row.get(0),
            )
            .optional()?;
        if told.is_some() {
            return Ok(Queued::AlreadyTold);
        }
    }
    if let Some(cap) = per_hour {
        let recent: i64 = tx
            .prepare_cached(
                "SELECT count(*) FROM notices \
                 WHERE created_at > ?1 AND to_admin = ?2 AND (to_admin = 1 OR user = ?3)",
            )?
            .query_row(params![now - 3600, notice.to_admin, notice.user], |row| {
                row.get(0)
            })?;
        if recent >= i64::from(cap) {
            return Ok(Queued::OverCap);
        }
    }
    tx.prepare_cached(
        "INSERT INTO notices \
         (kind, user, address, to_admin, service, rhost, detail, event_key, created_at, \
          next_try_at, channel) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9, ?10)",
    )?
    .execute(params![
        notice.kind.name(),
        notice.user,
        notice.address,
        notice.to_admin,
        notice.service,
        notice.rhost,
        notice.detail,
        notice.event_key,
        now,
        notice.channel
    ])?;
    Ok(Queued::Queued)
}

/// Queues, inside the caller's transaction, the notice that one of `user`'s recovery codes was
/// used at `now` by a login from `rhost`, with `left` codes left, when the user is to be told.
/// It is not capped: nobody can use recovery codes to spam.
pub(super) fn queue_recovery_used_in(
    tx: &Connection,
    to: &NoticeTo<'_>,
    (user, rhost): (&str, Option<&str>),
    left: u32,
    now: i64,
) -> Result<(), StoreError> {
    if !to.tell {
        return Ok(());
    }
    let detail = format!("{left} recovery codes are left");
    let notice = NewNotice {
        kind: NoticeKind::RecoveryUsed,
        user,
        address: to.address,
        channel: None,
        to_admin: false,
        service: to.service,
        rhost,
        detail: &detail,
        event_key: None,
    };
    queue_in(tx, &notice, None, now).map(|_| ())
}

/// How long a user's login addresses are kept at most (the longest `new_address_days`).
pub const SEEN_RHOSTS_KEPT: i64 = 365 * 86_400;

/// How long a closed notice is kept for the caps and `event_key` (the longest lockout is a
/// day; the caps look back an hour).
pub const CLOSED_NOTICES_KEPT: i64 = 2 * 86_400;

impl SqliteStore {
    /// See [`super::Store::queue_notice`].
    pub fn queue_notice(
        &mut self,
        notice: &NewNotice<'_>,
        per_hour: Option<u32>,
        now: i64,
    ) -> Result<Queued, StoreError> {
        let unit = Self::immediate(&mut self.conn)?;
        let queued = queue_in(&unit, notice, per_hour, now)?;
        unit.commit()?;
        if queued == Queued::Queued {
            self.wake_notice_deliverer();
        }
        Ok(queued)
    }

    /// Wakes the deliverer, if one is listening. The store is behind one lock, so it reads
    /// the queue only once the transaction that queued the notice has ended (a notice rolled
    /// back only wakes it for nothing).
    pub(super) fn wake_notice_deliverer(&self) {
        if let Some(wake) = &self.notices_wake {
            wake.notify_one();
        }
    }

    /// See [`super::Store::note_login_address`].
    pub fn note_login_address(
        &mut self,
        user: &str,
        rhost: &str,
        now: i64,
        window: i64,
    ) -> Result<AddressSeen, StoreError> {
        let unit = Self::immediate(&mut self.conn)?;
        let last: Option<i64> = unit
            .prepare_cached("SELECT last_seen FROM seen_rhosts WHERE user = ?1 AND rhost = ?2")?
            .query_row(params![user, rhost], |row| row.get(0))
            .optional()?;
        let seen = match last {
            Some(at) if at > now - window => AddressSeen::Known,
            Some(_) => AddressSeen::New,
            None => {
                let any: Option<i64> = unit
                    .prepare_cached("SELECT 1 FROM seen_rhosts WHERE user = ?1 LIMIT 1")?
                    .query_row(params![user], |row| row.get(0))
                    .optional()?;
                if any.is_some() {
                    AddressSeen::New
                } else {
                    AddressSeen::FirstEver
                }
            }
        };
        unit.prepare_cached(
            "INSERT INTO seen_rhosts (user, rhost, last_seen) VALUES (?1, ?2, ?3) \
             ON CONFLICT (user, rhost) DO UPDATE SET last_seen = max(last_seen, excluded.last_seen)",
        )?
        .execute(params![user, rhost, now])?;
        unit.commit()?;
        Ok(seen)
    }

    /// Up to `limit` notices due at `now` whose id is above `after_id`, oldest first.
    pub fn due_notices(
        &mut self,
        now: i64,
        after_id: i64,
        limit: usize,
    ) -> Result<Vec<QueuedNotice>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut statement = self.conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM notices \
             WHERE sent_at IS NULL AND next_try_at <= ?1 AND id > ?2 \
             ORDER BY id LIMIT ?3"
        ))?;
        let rows = statement.query_map(params![now, after_id, limit], of_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// See [`super::Store::claim_notices`]: the due notices, and their lease, in one unit.
    pub fn claim_notices(
        &mut self,
        now: i64,
        after_id: i64,
        limit: usize,
        lease_until: i64,
    ) -> Result<Vec<QueuedNotice>, StoreError> {
        let unit = Self::immediate(&mut self.conn)?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let due = unit
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM notices \
                 WHERE sent_at IS NULL AND next_try_at <= ?1 AND id > ?2 \
                 ORDER BY id LIMIT ?3"
            ))?
            .query_map(params![now, after_id, limit], of_row)?
            .collect::<Result<Vec<_>, _>>()?;
        for notice in &due {
            unit.prepare_cached("UPDATE notices SET next_try_at = ?2 WHERE id = ?1")?
                .execute(params![notice.id, lease_until])?;
        }
        unit.commit()?;
        Ok(due)
    }

    /// Closes a notice at `now`: a server accepted it, or the deliverer gave it up.
    pub fn close_notice(&mut self, id: i64, now: i64) -> Result<(), StoreError> {
        self.conn
            .prepare_cached("UPDATE notices SET sent_at = ?2 WHERE id = ?1")?
            .execute(params![id, now])?;
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
        let count: i64 = self.conn.query_row(
            "SELECT count(*) FROM notices WHERE sent_at IS NULL",
            [],
            |row| row.get(0),
        )?;
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
        tell: true,
    };

    fn queue(store: &mut SqliteStore, user: &str, now: i64) {
        let tx = SqliteStore::immediate(&mut store.conn).unwrap();
        queue_recovery_used_in(&tx, &TO, (user, Some("192.0.2.1")), 7, now).unwrap();
        tx.commit().unwrap();
    }

    #[test]
    fn a_queued_notice_is_due_at_once_and_stays_until_closed() {
        let (_dir, mut store) = open_store();
        queue(&mut store, "alice", T0);
        let due = store.due_notices(T0, i64::MIN, 10).unwrap();
        assert_eq!(
            due,
            vec![QueuedNotice {
                id: due[0].id,
                kind: NoticeKind::RecoveryUsed,
                user: "alice".into(),
                address: "alice@example.test".into(),
                channel: None,
                to_admin: false,
                service: "sshd".into(),
                rhost: Some("192.0.2.1".into()),
                detail: "7 recovery codes are left".into(),
                created_at: T0,
                tries: 0,
            }]
        );
        // Reading it does not take it: a crash before delivery keeps it.
        assert_eq!(store.due_notices(T0, i64::MIN, 10).unwrap().len(), 1);
        store.close_notice(due[0].id, T0 + 1).unwrap();
        assert_eq!(store.queued_notices().unwrap(), 0);
        assert!(store.due_notices(T0 + 1, i64::MIN, 10).unwrap().is_empty());
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

    fn lockout_of(user: &'static str, key: &'static str) -> NewNotice<'static> {
        NewNotice {
            kind: NoticeKind::Lockout,
            user,
            address: "alice@example.test",
            channel: None,
            to_admin: false,
            service: "sshd",
            rhost: Some("192.0.2.1"),
            detail: "for 15 minutes",
            event_key: Some(key),
        }
    }

    #[test]
    fn an_event_is_told_once_and_the_cap_counts_the_sent_notices_of_the_last_hour() {
        let (_dir, mut store) = open_store();
        let q = |store: &mut SqliteStore, key, now| {
            store
                .queue_notice(&lockout_of("alice", key), Some(2), now)
                .unwrap()
        };
        assert_eq!(q(&mut store, "lock1", T0), Queued::Queued);
        assert_eq!(q(&mut store, "lock1", T0 + 5), Queued::AlreadyTold);
        let id = store.due_notices(T0, i64::MIN, 10).unwrap()[0].id;
        store.close_notice(id, T0 + 1).unwrap();
        assert_eq!(q(&mut store, "lock1", T0 + 6), Queued::AlreadyTold);
        assert_eq!(q(&mut store, "lock2", T0 + 7), Queued::Queued);
        assert_eq!(q(&mut store, "lock3", T0 + 8), Queued::OverCap);
        // Another user has their own cap; the admin has one for all users.
        let bob = store
            .queue_notice(&lockout_of("bob", "lock3"), Some(2), T0 + 8)
            .unwrap();
        assert_eq!(bob, Queued::Queued);
        let admin = NewNotice {
            to_admin: true,
            ..lockout_of("carol", "lock4")
        };
        assert_eq!(
            store.queue_notice(&admin, Some(1), T0 + 9).unwrap(),
            Queued::Queued
        );
        let admin_again = NewNotice {
            user: "dave",
            ..admin
        };
        assert_eq!(
            store.queue_notice(&admin_again, Some(1), T0 + 9).unwrap(),
            Queued::OverCap
        );
        // An hour after the first two, alice may be told again.
        assert_eq!(q(&mut store, "lock3", T0 + 3601), Queued::Queued);
    }

    #[test]
    fn a_login_address_is_first_then_known_then_new_after_the_window() {
        let (_dir, mut store) = open_store();
        let day = 86_400;
        let seen = |store: &mut SqliteStore, rhost, now| {
            store
                .note_login_address("alice", rhost, now, 30 * day)
                .unwrap()
        };
        assert_eq!(seen(&mut store, "192.0.2.1", T0), AddressSeen::FirstEver);
        assert_eq!(seen(&mut store, "192.0.2.1", T0 + day), AddressSeen::Known);
        assert_eq!(seen(&mut store, "198.51.100.7", T0 + day), AddressSeen::New);
        assert_eq!(
            seen(&mut store, "198.51.100.7", T0 + 2 * day),
            AddressSeen::Known
        );
        assert_eq!(
            seen(&mut store, "192.0.2.1", T0 + 32 * day),
            AddressSeen::New,
            "not seen for 31 days"
        );
        assert_eq!(
            store
                .note_login_address("bob", "192.0.2.1", T0, 30 * day)
                .unwrap(),
            AddressSeen::FirstEver
        );
    }

    #[test]
    fn a_recovery_notice_the_profile_does_not_want_is_not_queued() {
        let (_dir, mut store) = open_store();
        let tx = SqliteStore::immediate(&mut store.conn).unwrap();
        let quiet = NoticeTo { tell: false, ..TO };
        queue_recovery_used_in(&tx, &quiet, ("alice", None), 7, T0).unwrap();
        tx.commit().unwrap();
        assert_eq!(store.queued_notices().unwrap(), 0);
    }

    #[test]
    fn a_version_8_notice_keeps_its_facts_through_the_migration() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("otpd.db");
        drop(SqliteStore::open(&path, key()).unwrap());
        let conn = Connection::open(&path).unwrap();
        // Back to version 8's table, as otpd left it, with one queued notice.
        conn.execute_batch(
            "DROP TABLE notices; DROP TABLE seen_rhosts;
             CREATE TABLE notices (id INTEGER PRIMARY KEY, kind TEXT NOT NULL, user TEXT NOT NULL,
                 address TEXT NOT NULL, service TEXT NOT NULL, rhost TEXT,
                 recovery_left INTEGER NOT NULL, created_at INTEGER NOT NULL,
                 next_try_at INTEGER NOT NULL, tries INTEGER NOT NULL DEFAULT 0);
             INSERT INTO notices VALUES
                 (4, 'recovery_used', 'alice', 'alice@example.test', 'sshd', NULL, 8, 100, 160, 1);
             PRAGMA user_version = 8;",
        )
        .unwrap();
        drop(conn);
        let mut store = SqliteStore::open(&path, key()).unwrap();
        let due = store.due_notices(200, i64::MIN, 10).unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!(
            (due[0].kind, due[0].detail.as_str(), due[0].tries),
            (NoticeKind::RecoveryUsed, "8 recovery codes are left", 1)
        );
    }
}
