//! Send caps: codes mailed per user in a sliding hour and a sliding day.
//!
//! A send at time `t` counts in a window of length `w` at time `now` while `now - t < w`, and
//! leaves it at `t + w`. Purge deletes a send only once it has left the longest window.

use rusqlite::{Connection, OptionalExtension, params};

use super::{Limits, SqliteStore, StoreError};

/// The hourly window, seconds.
pub(super) const HOUR: i64 = 3600;
/// The daily window, seconds; sends are kept this long.
pub(super) const DAY: i64 = 24 * HOUR;

/// When `user` may be sent a code again, or `None` if a send is allowed now.
///
/// With both caps reached, the later of the two times. A cap of zero allows no sends at all;
/// the time given is then one window from now (and will be again then).
pub(super) fn blocked_until(
    conn: &Connection,
    user: &str,
    limits: &Limits,
    now: i64,
) -> Result<Option<i64>, StoreError> {
    let mut until: Option<i64> = None;
    for (window, cap) in [
        (HOUR, limits.max_sends_per_hour),
        (DAY, limits.max_sends_per_day),
    ] {
        // `None` orders before any `Some`: this keeps the later time of the blocking windows.
        until = until.max(window_blocked_until(conn, user, window, cap, now)?);
    }
    Ok(until)
}

fn window_blocked_until(
    conn: &Connection,
    user: &str,
    window: i64,
    cap: u32,
    now: i64,
) -> Result<Option<i64>, StoreError> {
    if cap == 0 {
        return Ok(Some(now.saturating_add(window)));
    }
    let start = now.saturating_sub(window);
    let count: i64 = conn
        .prepare_cached("SELECT count(*) FROM sends WHERE user = ?1 AND sent_at > ?2")?
        .query_row(params![user, start], |row| row.get(0))?;
    let cap = i64::from(cap);
    if count < cap {
        return Ok(None);
    }
    // Sending is allowed again once `count - cap + 1` sends have left the window: when the
    // send at (0-based) position `count - cap`, oldest first, does.
    let oldest_that_must_leave: Option<i64> = conn
        .prepare_cached(
            "SELECT sent_at FROM sends WHERE user = ?1 AND sent_at > ?2
             ORDER BY sent_at ASC, id ASC LIMIT 1 OFFSET ?3",
        )?
        .query_row(params![user, start, count - cap], |row| row.get(0))
        .optional()?;
    // The row always exists (the offset is below the count); `now` is a safe fallback.
    Ok(Some(
        oldest_that_must_leave.unwrap_or(now).saturating_add(window),
    ))
}

/// Records that `challenge` was mailed to `user` at `now`.
pub(super) fn record(
    conn: &Connection,
    user: &str,
    challenge: &str,
    now: i64,
) -> Result<(), StoreError> {
    conn.prepare_cached("INSERT INTO sends (user, sent_at, challenge) VALUES (?1, ?2, ?3)")?
        .execute(params![user, now, challenge])?;
    Ok(())
}

/// Forgets the send of `challenge`: its mail failed, so it must not use up the user's caps.
pub(super) fn forget(conn: &Connection, challenge: &str) -> Result<(), StoreError> {
    // Through the code's user, so the lookup uses the user's sends (`sends_by_user`) instead
    // of scanning them all: there is no index on the challenge (schema version 3).
    conn.prepare_cached(
        "DELETE FROM sends
         WHERE user = (SELECT user FROM codes WHERE challenge = ?1) AND challenge = ?1",
    )?
    .execute(params![challenge])?;
    Ok(())
}

/// A user's sends that count against the caps at some time: what `otpctl user show` shows
/// and what an admin's reset takes back.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SendCounts {
    /// Sends that counted against `max_sends_per_hour`.
    pub hour: u32,
    /// Sends that counted against `max_sends_per_day` (the hour's included).
    pub day: u32,
}

/// Forgets every send to `user`, so both caps start again from zero; returns what counted at
/// `now`. Used by an admin's reset, never by a login.
pub(super) fn forget_user(
    conn: &Connection,
    user: &str,
    now: i64,
) -> Result<SendCounts, StoreError> {
    let counted = counts(conn, user, now)?;
    conn.prepare_cached("DELETE FROM sends WHERE user = ?1")?
        .execute(params![user])?;
    Ok(counted)
}

/// The sends to `user` in the hour and the day before `now`.
fn counts(conn: &Connection, user: &str, now: i64) -> Result<SendCounts, StoreError> {
    let (hour, day): (i64, i64) = conn
        .prepare_cached(
            "SELECT coalesce(sum(sent_at > ?2), 0), coalesce(sum(sent_at > ?3), 0)
             FROM sends WHERE user = ?1",
        )?
        .query_row(
            params![user, now.saturating_sub(HOUR), now.saturating_sub(DAY)],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )?;
    Ok(SendCounts {
        hour: u32::try_from(hour).unwrap_or(u32::MAX),
        day: u32::try_from(day).unwrap_or(u32::MAX),
    })
}

impl SqliteStore {
    /// The codes mailed to `user` that count against the caps at `now`.
    pub fn sends_counted(&self, user: &str, now: i64) -> Result<SendCounts, StoreError> {
        counts(&self.conn, user, now)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::super::{IssueOutcome, Limits};
    use super::*;

    fn capped(per_hour: u32, per_day: u32) -> Limits {
        Limits {
            resend_cooldown_secs: 0,
            max_sends_per_hour: per_hour,
            max_sends_per_day: per_day,
            ..limits()
        }
    }

    fn issue_at(store: &mut super::super::SqliteStore, limits: &Limits, now: i64) -> IssueOutcome {
        store
            .issue(&request("alice", "ssh"), limits, now, &mut rng())
            .unwrap()
    }

    #[test]
    fn the_hourly_cap_refuses_until_the_oldest_send_leaves_the_hour() {
        let (_dir, mut store) = open_store();
        let limits = capped(3, 100);
        for t in [0, 10, 20] {
            assert!(matches!(
                issue_at(&mut store, &limits, T0 + t),
                IssueOutcome::Issued { .. }
            ));
        }
        assert!(matches!(
            issue_at(&mut store, &limits, T0 + 30),
            IssueOutcome::RateLimited { retry_after } if retry_after == T0 + HOUR
        ));
        assert!(matches!(
            issue_at(&mut store, &limits, T0 + HOUR - 1),
            IssueOutcome::RateLimited { retry_after } if retry_after == T0 + HOUR
        ));
        assert!(matches!(
            issue_at(&mut store, &limits, T0 + HOUR),
            IssueOutcome::Issued { .. }
        ));
        // Now the sends at +10, +20 and +HOUR fill the hour again; +10 leaves first.
        assert!(matches!(
            issue_at(&mut store, &limits, T0 + HOUR + 1),
            IssueOutcome::RateLimited { retry_after } if retry_after == T0 + 10 + HOUR
        ));
    }

    #[test]
    fn the_daily_cap_refuses_until_the_oldest_send_leaves_the_day() {
        let (_dir, mut store) = open_store();
        let limits = capped(2, 3);
        for t in [0, 100, 2 * HOUR] {
            assert!(matches!(
                issue_at(&mut store, &limits, T0 + t),
                IssueOutcome::Issued { .. }
            ));
        }
        // The hour holds one send, but the day holds three.
        assert!(matches!(
            issue_at(&mut store, &limits, T0 + 3 * HOUR),
            IssueOutcome::RateLimited { retry_after } if retry_after == T0 + DAY
        ));
        assert!(matches!(
            issue_at(&mut store, &limits, T0 + DAY - 1),
            IssueOutcome::RateLimited { retry_after } if retry_after == T0 + DAY
        ));
        assert!(matches!(
            issue_at(&mut store, &limits, T0 + DAY),
            IssueOutcome::Issued { .. }
        ));
    }

    #[test]
    fn when_both_caps_are_reached_the_later_time_is_given() {
        let (_dir, mut store) = open_store();
        let limits = capped(2, 2);
        issue_at(&mut store, &limits, T0);
        issue_at(&mut store, &limits, T0 + 60);
        assert!(matches!(
            issue_at(&mut store, &limits, T0 + 120),
            IssueOutcome::RateLimited { retry_after } if retry_after == T0 + DAY
        ));
    }

    #[test]
    fn caps_are_per_user() {
        let (_dir, mut store) = open_store();
        let limits = capped(1, 1);
        issue_at(&mut store, &limits, T0);
        assert!(matches!(
            issue_at(&mut store, &limits, T0 + 1),
            IssueOutcome::RateLimited { .. }
        ));
        let bob = store
            .issue(&request("bob", "ssh"), &limits, T0 + 1, &mut rng())
            .unwrap();
        assert!(matches!(bob, IssueOutcome::Issued { .. }));
    }

    #[test]
    fn a_zero_cap_allows_no_sends_at_all() {
        let (_dir, mut store) = open_store();
        for limits in [capped(0, 10), capped(10, 0)] {
            assert!(matches!(
                issue_at(&mut store, &limits, T0),
                IssueOutcome::RateLimited { retry_after } if retry_after > T0
            ));
        }
        assert_eq!(store.live_codes(T0).unwrap(), 0);
    }

    #[test]
    fn reused_codes_do_not_count_as_sends() {
        let (_dir, mut store) = open_store();
        let limits = Limits {
            resend_cooldown_secs: 60,
            ..capped(2, 10)
        };
        assert!(matches!(
            issue_at(&mut store, &limits, T0),
            IssueOutcome::Issued { .. }
        ));
        for t in 1..10 {
            assert!(matches!(
                issue_at(&mut store, &limits, T0 + t),
                IssueOutcome::Reused { .. }
            ));
        }
        assert!(matches!(
            issue_at(&mut store, &limits, T0 + 60),
            IssueOutcome::Issued { .. }
        ));
    }

    #[test]
    fn the_counts_shown_to_admins_follow_the_windows() {
        let (_dir, mut store) = open_store();
        let limits = capped(100, 100);
        for t in [0, 100, 2 * HOUR] {
            issue_at(&mut store, &limits, T0 + t);
        }
        assert_eq!(
            store.sends_counted("alice", T0 + 2 * HOUR + 1).unwrap(),
            SendCounts { hour: 1, day: 3 }
        );
        assert_eq!(
            store.sends_counted("alice", T0 + DAY + 50).unwrap(),
            SendCounts { hour: 0, day: 2 }
        );
        assert_eq!(
            store.sends_counted("bob", T0).unwrap(),
            SendCounts::default()
        );
    }
}
