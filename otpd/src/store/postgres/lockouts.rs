//! Lockouts: consecutive wrong answers per user and per remote IP address, as on SQLite (see
//! `store::lockouts`). Callers hold the advisory locks of the subjects they count.

use super::super::lockouts::Lockout;
use super::super::{Limits, StoreError};
use super::sql::{exec, maybe, one, rows};
use super::unit::Conn;

const USER: &str = "user";
const HOST: &str = "host";

/// The host counter a login's remote host counts against: its canonical IP address, or
/// `None` (see `store::lockouts::host_key`).
pub(super) use super::super::lockouts::host_key;

/// Until when the user or the host is locked out, or `None`; with both, the later time.
pub(super) async fn locked_until(
    db: &Conn,
    user: &str,
    rhost: Option<&str>,
    now: i64,
) -> Result<Option<i64>, StoreError> {
    let host = host_key(rhost);
    let row = maybe(
        db,
        "SELECT max(locked_until) FROM lockouts
         WHERE locked_until > $3
           AND ((kind = 'user' AND subject = $1) OR (kind = 'host' AND subject = $2))",
        &[&user, &host, &now],
    )
    .await?;
    Ok(match row {
        Some(row) => row.try_get(0)?,
        None => None,
    })
}

/// Counts one failure against the user and the host; the lock's end if this one locked
/// either of them out.
pub(super) async fn record_failure(
    db: &Conn,
    user: &str,
    rhost: Option<&str>,
    limits: &Limits,
    now: i64,
) -> Result<Option<i64>, StoreError> {
    let user_lock = add_failure(db, USER, user, limits.max_user_failures, limits, now).await?;
    let host_lock = match host_key(rhost) {
        Some(host) => add_failure(db, HOST, &host, limits.max_host_failures, limits, now).await?,
        None => None,
    };
    Ok(user_lock.max(host_lock))
}

async fn add_failure(
    db: &Conn,
    kind: &str,
    subject: &str,
    max: u32,
    limits: &Limits,
    now: i64,
) -> Result<Option<i64>, StoreError> {
    let failures: i64 = one(
        db,
        "INSERT INTO lockouts (kind, subject, failures, updated_at) VALUES ($1, $2, 1, $3)
         ON CONFLICT (kind, subject)
         DO UPDATE SET failures = lockouts.failures + 1, updated_at = excluded.updated_at
         RETURNING failures",
        &[&kind, &subject, &now],
    )
    .await?
    .try_get(0)?;
    // A limit of zero allows no failures: the first one locks.
    if failures < i64::from(max) {
        return Ok(None);
    }
    let until = now.saturating_add(limits.lockout_secs);
    exec(
        db,
        "UPDATE lockouts SET failures = 0, locked_until = $3 WHERE kind = $1 AND subject = $2",
        &[&kind, &subject, &until],
    )
    .await?;
    Ok(Some(until))
}

/// See [`super::super::Store::host_lockouts`].
pub(super) async fn host_lockouts(db: &Conn, now: i64) -> Result<Vec<Lockout>, StoreError> {
    let found = rows(
        db,
        "SELECT subject, failures, locked_until, updated_at FROM lockouts
         WHERE kind = 'host' AND (failures > 0 OR locked_until > $1)
         ORDER BY CASE WHEN locked_until > $1 THEN locked_until ELSE 0 END DESC,
                  failures DESC, subject",
        &[&now],
    )
    .await?;
    let mut out = Vec::with_capacity(found.len());
    for row in found {
        let lockout = lockout_of(&row, now)?;
        // Rows kept for host names by an older otpd no longer count or lock.
        if host_key(Some(&lockout.subject)).as_deref() == Some(lockout.subject.as_str()) {
            out.push(lockout);
        }
    }
    Ok(out)
}

/// Deletes the counter of `kind` for `subject`; what it held, when it held failures or a lock
/// in force at `now`.
pub(super) async fn clear(
    db: &Conn,
    kind: &str,
    subject: &str,
    now: i64,
) -> Result<Option<Lockout>, StoreError> {
    let row = maybe(
        db,
        "DELETE FROM lockouts WHERE kind = $1 AND subject = $2
         RETURNING subject, failures, locked_until, updated_at",
        &[&kind, &subject],
    )
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let was = lockout_of(&row, now)?;
    Ok((was.failures > 0 || was.locked_until.is_some()).then_some(was))
}

/// Clears a user's counter; see [`clear`].
pub(super) async fn clear_user(
    db: &Conn,
    user: &str,
    now: i64,
) -> Result<Option<Lockout>, StoreError> {
    clear(db, USER, user, now).await
}

/// Clears a host's counter; see [`clear`].
pub(super) async fn clear_host(
    db: &Conn,
    host: &str,
    now: i64,
) -> Result<Option<Lockout>, StoreError> {
    clear(db, HOST, host, now).await
}

/// A row as a [`Lockout`], with a lock that ended before `now` left out.
fn lockout_of(row: &tokio_postgres::Row, now: i64) -> Result<Lockout, StoreError> {
    let locked_until: Option<i64> = row.try_get(2)?;
    Ok(Lockout {
        subject: row.try_get(0)?,
        failures: u32::try_from(row.try_get::<_, i64>(1)?).unwrap_or(u32::MAX),
        locked_until: locked_until.filter(|&until| until > now),
        updated_at: row.try_get(3)?,
    })
}
