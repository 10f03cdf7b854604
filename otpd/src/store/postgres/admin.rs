//! What `otpctl` reads and clears beyond a single login, as on SQLite (see `store::admin`):
//! locked users, counts for the status, unlocking.

use super::super::{StoreError, UserCounts};
use super::sql::{count, exec, maybe, one, rows};
use super::unit::Conn;

/// See [`super::super::Store::locked_users`].
pub(super) async fn locked_users(db: &Conn, now: i64) -> Result<Vec<(String, i64)>, StoreError> {
    let found = rows(
        db,
        "SELECT subject, locked_until FROM lockouts
         WHERE kind = 'user' AND locked_until > $1 ORDER BY subject",
        &[&now],
    )
    .await?;
    found
        .iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
        .collect()
}

/// See [`super::super::Store::user_locked_until`].
pub(super) async fn user_locked_until(
    db: &Conn,
    user: &str,
    now: i64,
) -> Result<Option<i64>, StoreError> {
    match maybe(
        db,
        "SELECT locked_until FROM lockouts
         WHERE kind = 'user' AND subject = $1 AND locked_until > $2",
        &[&user, &now],
    )
    .await?
    {
        Some(row) => Ok(row.try_get(0)?),
        None => Ok(None),
    }
}

/// See [`super::super::Store::unlock_user`]. Callers hold the user's lock.
pub(super) async fn unlock_user(db: &Conn, user: &str, now: i64) -> Result<bool, StoreError> {
    let was: bool = one(
        db,
        "SELECT count(*) > 0 FROM lockouts WHERE kind = 'user' AND subject = $1
         AND (failures > 0 OR locked_until > $2)",
        &[&user, &now],
    )
    .await?
    .try_get(0)?;
    exec(
        db,
        "DELETE FROM lockouts WHERE kind = 'user' AND subject = $1",
        &[&user],
    )
    .await?;
    Ok(was)
}

/// See [`super::super::Store::user_counts`].
pub(super) async fn user_counts(db: &Conn, now: i64) -> Result<UserCounts, StoreError> {
    let users = one(
        db,
        "SELECT count(*), count(*) FILTER (WHERE enabled) FROM users",
        &[],
    )
    .await?;
    let locked: i64 = one(
        db,
        "SELECT count(*) FROM lockouts WHERE kind = 'user' AND locked_until > $1",
        &[&now],
    )
    .await?
    .try_get(0)?;
    Ok(UserCounts {
        users: count(users.try_get(0)?),
        enabled: count(users.try_get(1)?),
        locked: count(locked),
    })
}
