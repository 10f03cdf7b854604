//! Per-user records managed with `otpctl`, as on SQLite (see `store::users`).

use common::config::Language;
use tokio_postgres::Row;

use super::super::users::split_protocols;
use super::super::{StoreError, UserRecord};
use super::sql::{exec, maybe, rows};
use super::unit::Conn;

pub(super) const COLUMNS: &str = "name, email, enabled, protocols, language, phone";

fn of_row(row: &Row) -> Result<UserRecord, StoreError> {
    of_row_at(row, 0)
}

fn of_row_at(row: &Row, first: usize) -> Result<UserRecord, StoreError> {
    let protocols: Option<String> = row.try_get(first + 3)?;
    let language: Option<String> = row.try_get(first + 4)?;
    Ok(UserRecord {
        name: row.try_get(first)?,
        email: row.try_get(first + 1)?,
        enabled: row.try_get(first + 2)?,
        protocols: protocols.map(|list| split_protocols(&list)),
        // Written only from a `Language`; a code this build has no texts in reads as none.
        language: language.as_deref().and_then(Language::of),
        phone: row.try_get(first + 5)?,
    })
}

/// The record in `row`'s columns from `first` on ([`COLUMNS`]), if there is one there (a left
/// join's columns are all null without one).
pub(super) fn maybe_at(row: &Row, first: usize) -> Result<Option<UserRecord>, StoreError> {
    match row.try_get::<_, Option<String>>(first)? {
        Some(_) => of_row_at(row, first).map(Some),
        None => Ok(None),
    }
}

/// See [`super::super::Store::user`].
pub(super) async fn user(db: &Conn, name: &str) -> Result<Option<UserRecord>, StoreError> {
    match maybe(
        db,
        &format!("SELECT {COLUMNS} FROM users WHERE name = $1"),
        &[&name],
    )
    .await?
    {
        Some(row) => Ok(Some(of_row(&row)?)),
        None => Ok(None),
    }
}

/// See [`super::super::Store::list_users`].
pub(super) async fn list(db: &Conn) -> Result<Vec<UserRecord>, StoreError> {
    let found = rows(
        db,
        &format!("SELECT {COLUMNS} FROM users ORDER BY name"),
        &[],
    )
    .await?;
    found.iter().map(of_row).collect()
}

/// Creates or replaces the record, keeping its creation time; an invalid one is refused. The
/// times come from the database's clock: they inform the admin, no rule reads them.
pub(super) async fn upsert(db: &Conn, record: &UserRecord) -> Result<(), StoreError> {
    record.check()?;
    let protocols = record.protocols.as_ref().map(|list| list.join(","));
    exec(
        db,
        "INSERT INTO users
             (name, email, enabled, protocols, language, phone, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6,
                 extract(epoch FROM now())::bigint, extract(epoch FROM now())::bigint)
         ON CONFLICT (name) DO UPDATE SET
             email = excluded.email,
             enabled = excluded.enabled,
             protocols = excluded.protocols,
             language = excluded.language,
             phone = excluded.phone,
             updated_at = excluded.updated_at",
        &[
            &record.name,
            &record.email,
            &record.enabled,
            &protocols,
            &record.language.map(Language::code),
            &record.phone,
        ],
    )
    .await?;
    Ok(())
}

/// Every record or, on the first error, none (the caller's transaction rolls back).
pub(super) async fn upsert_all(db: &Conn, records: &[UserRecord]) -> Result<(), StoreError> {
    for record in records {
        upsert(db, record).await?;
    }
    Ok(())
}

/// Deletes the record and the user's recovery codes; true if there was a record.
pub(super) async fn remove(db: &Conn, name: &str) -> Result<bool, StoreError> {
    let removed = exec(db, "DELETE FROM users WHERE name = $1", &[&name]).await?;
    if removed > 0 {
        exec(
            db,
            "DELETE FROM recovery_codes WHERE username = $1",
            &[&name],
        )
        .await?;
    }
    Ok(removed > 0)
}
