//! An admin's reset of one user, as on SQLite (see `store::reset`): sends, unused codes and
//! the user's lockout, in one transaction under the user's lock.

use super::super::{StoreError, UserReset};
use super::sql::{count, exec};
use super::unit::Conn;
use super::{lockouts, sends};

/// See [`super::super::Store::reset_user`]. Callers hold the user's lock.
pub(super) async fn reset_user(db: &Conn, user: &str, now: i64) -> Result<UserReset, StoreError> {
    let sends = sends::forget_user(db, user, now).await?;
    let closed = exec(
        db,
        "UPDATE codes SET state = 'superseded', closed_at = $2
         WHERE username = $1 AND state = 'live'",
        &[&user, &now],
    )
    .await?;
    let lockout = lockouts::clear_user(db, user, now).await?;
    Ok(UserReset {
        sends,
        codes_closed: count(i64::try_from(closed).unwrap_or(i64::MAX)),
        lockout,
    })
}
