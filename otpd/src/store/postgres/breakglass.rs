//! Break-glass grants, as on SQLite (see `store::breakglass`): one row per user until it is
//! revoked or found expired; whoever deletes an expired one gets it back to log, once, on
//! whichever host that happens (`DELETE .. RETURNING` hands a row to one deleter only).

use tokio_postgres::Row;

use super::super::{BreakGlass, BreakGlassLookup, StoreError};
use super::sql::{exec, maybe, rows};
use super::unit::Conn;

pub(super) const COLUMNS: &str = "username, cidr, granted_by, granted_at, expires_at";

fn of_row(row: &Row) -> Result<BreakGlass, StoreError> {
    of_row_at(row, 0)
}

fn of_row_at(row: &Row, first: usize) -> Result<BreakGlass, StoreError> {
    Ok(BreakGlass {
        user: row.try_get(first)?,
        cidr: row.try_get(first + 1)?,
        granted_by: u32::try_from(row.try_get::<_, i64>(first + 2)?).unwrap_or(u32::MAX),
        granted_at: row.try_get(first + 3)?,
        expires_at: row.try_get(first + 4)?,
    })
}

/// The grant in `row`'s columns from `first` on ([`COLUMNS`]), if there is one there (a left
/// join's columns are all null without one).
pub(super) fn maybe_at(row: &Row, first: usize) -> Result<Option<BreakGlass>, StoreError> {
    match row.try_get::<_, Option<String>>(first)? {
        Some(_) => of_row_at(row, first).map(Some),
        None => Ok(None),
    }
}

fn all_of(found: &[Row]) -> Result<Vec<BreakGlass>, StoreError> {
    found.iter().map(of_row).collect()
}

/// See [`super::super::Store::grant_breakglass`]. Callers hold the user's lock, so the grant
/// it reports as replaced is the one it replaced.
pub(super) async fn grant(db: &Conn, grant: &BreakGlass) -> Result<Option<BreakGlass>, StoreError> {
    let previous = match maybe(
        db,
        &format!("SELECT {COLUMNS} FROM breakglass WHERE username = $1"),
        &[&grant.user],
    )
    .await?
    {
        Some(row) => Some(of_row(&row)?).filter(|p| p.expires_at > grant.granted_at),
        None => None,
    };
    exec(
        db,
        "INSERT INTO breakglass (username, cidr, granted_by, granted_at, expires_at)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (username) DO UPDATE SET
             cidr = excluded.cidr, granted_by = excluded.granted_by,
             granted_at = excluded.granted_at, expires_at = excluded.expires_at",
        &[
            &grant.user,
            &grant.cidr,
            &i64::from(grant.granted_by),
            &grant.granted_at,
            &grant.expires_at,
        ],
    )
    .await?;
    Ok(previous)
}

/// See [`super::super::Store::revoke_breakglass`].
pub(super) async fn revoke(db: &Conn, user: &str) -> Result<Option<BreakGlass>, StoreError> {
    match maybe(
        db,
        &format!("DELETE FROM breakglass WHERE username = $1 RETURNING {COLUMNS}"),
        &[&user],
    )
    .await?
    {
        Some(row) => Ok(Some(of_row(&row)?)),
        None => Ok(None),
    }
}

/// The user's grant row, live or not; reads only (see
/// [`super::super::Store::user_and_grant`]).
pub(super) async fn row(db: &Conn, user: &str) -> Result<Option<BreakGlass>, StoreError> {
    let found = maybe(
        db,
        &format!("SELECT {COLUMNS} FROM breakglass WHERE username = $1"),
        &[&user],
    )
    .await?;
    found.as_ref().map(of_row).transpose()
}

/// See [`super::super::Store::breakglass_for`].
pub(super) async fn lookup(
    db: &Conn,
    user: &str,
    now: i64,
) -> Result<BreakGlassLookup, StoreError> {
    let Some(grant) = row(db, user).await? else {
        return Ok(BreakGlassLookup::None);
    };
    if grant.expires_at > now {
        return Ok(BreakGlassLookup::Live(grant));
    }
    let deleted = maybe(
        db,
        &format!(
            "DELETE FROM breakglass WHERE username = $1 AND expires_at <= $2 RETURNING {COLUMNS}"
        ),
        &[&user, &now],
    )
    .await?;
    match deleted {
        Some(row) => Ok(BreakGlassLookup::Expired(of_row(&row)?)),
        None => Ok(BreakGlassLookup::None),
    }
}

/// See [`super::super::Store::expire_breakglass`].
pub(super) async fn expire(db: &Conn, now: i64) -> Result<Vec<BreakGlass>, StoreError> {
    let found = rows(
        db,
        &format!("DELETE FROM breakglass WHERE expires_at <= $1 RETURNING {COLUMNS}"),
        &[&now],
    )
    .await?;
    let mut expired = all_of(&found)?;
    expired.sort_by(|a, b| a.user.cmp(&b.user));
    Ok(expired)
}

/// See [`super::super::Store::live_breakglass`].
pub(super) async fn live(db: &Conn, now: i64) -> Result<Vec<BreakGlass>, StoreError> {
    let found = rows(
        db,
        &format!("SELECT {COLUMNS} FROM breakglass WHERE expires_at > $1 ORDER BY username"),
        &[&now],
    )
    .await?;
    all_of(&found)
}
