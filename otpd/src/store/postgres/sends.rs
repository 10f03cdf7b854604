//! Send caps: codes mailed per user in a sliding hour and a sliding day, as on SQLite (see
//! `store::sends`). Callers hold the user's advisory lock, so two hosts issuing at once count
//! each other's sends.

use super::super::sends::{DAY, HOUR, SendCounts};
use super::super::{Limits, StoreError};
use super::sql::{count, exec, maybe, one};
use super::unit::Conn;

/// When `user`, with `sent` sends in the hour and the day before `now`, may be sent a code
/// again, or `None` if a send is allowed now; with both caps reached, the later time.
pub(super) async fn blocked_until(
    db: &Conn,
    user: &str,
    sent: SendCounts,
    limits: &Limits,
    now: i64,
) -> Result<Option<i64>, StoreError> {
    let mut until: Option<i64> = None;
    for (window, cap, sent) in [
        (HOUR, limits.max_sends_per_hour, sent.hour),
        (DAY, limits.max_sends_per_day, sent.day),
    ] {
        until = until.max(window_blocked_until(db, user, (window, cap, sent), now).await?);
    }
    Ok(until)
}

/// Whether `sent` is under both caps of `limits`: a send is allowed now, which is what
/// [`blocked_until`] says then without reading a row.
pub(super) fn under_caps(sent: SendCounts, limits: &Limits) -> bool {
    sent.hour < limits.max_sends_per_hour && sent.day < limits.max_sends_per_day
}

async fn window_blocked_until(
    db: &Conn,
    user: &str,
    (window, cap, sent): (i64, u32, u32),
    now: i64,
) -> Result<Option<i64>, StoreError> {
    if cap == 0 {
        return Ok(Some(now.saturating_add(window)));
    }
    if sent < cap {
        return Ok(None);
    }
    // Allowed again once `sent - cap + 1` sends have left the window.
    let oldest_that_must_leave: Option<i64> = match maybe(
        db,
        "SELECT sent_at FROM sends WHERE username = $1 AND sent_at > $2
         ORDER BY sent_at ASC, id ASC LIMIT 1 OFFSET $3",
        &[&user, &now.saturating_sub(window), &i64::from(sent - cap)],
    )
    .await?
    {
        Some(row) => Some(row.try_get(0)?),
        None => None,
    };
    Ok(Some(
        oldest_that_must_leave.unwrap_or(now).saturating_add(window),
    ))
}

/// Forgets the send of `challenge`: its mail failed.
pub(super) async fn forget(db: &Conn, challenge: &str) -> Result<(), StoreError> {
    exec(
        db,
        "DELETE FROM sends
         WHERE username = (SELECT username FROM codes WHERE challenge = $1) AND challenge = $1",
        &[&challenge],
    )
    .await?;
    Ok(())
}

/// Forgets every send to `user`; what counted at `now`.
pub(super) async fn forget_user(db: &Conn, user: &str, now: i64) -> Result<SendCounts, StoreError> {
    let counted = counts(db, user, now).await?;
    exec(db, "DELETE FROM sends WHERE username = $1", &[&user]).await?;
    Ok(counted)
}

/// The sends to `user` in the hour and the day before `now`.
pub(super) async fn counts(db: &Conn, user: &str, now: i64) -> Result<SendCounts, StoreError> {
    let row = one(
        db,
        "SELECT count(*) FILTER (WHERE sent_at > $2), count(*) FILTER (WHERE sent_at > $3)
         FROM sends WHERE username = $1",
        &[&user, &now.saturating_sub(HOUR), &now.saturating_sub(DAY)],
    )
    .await?;
    Ok(SendCounts {
        hour: count(row.try_get(0)?),
        day: count(row.try_get(1)?),
    })
}
