//! Running a statement: prepared once per connection (the pool keeps each connection's
//! statements), then executed with its parameters.

use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::super::StoreError;
use super::unit::Conn;

/// A statement's parameters.
pub(super) type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// Runs `sql` and returns how many rows it wrote.
pub(super) async fn exec(db: &Conn, sql: &str, params: Params<'_>) -> Result<u64, StoreError> {
    let statement = db.prepare_cached(sql).await?;
    Ok(db.execute(&statement, params).await?)
}

/// Runs `sql`, which returns exactly one row.
pub(super) async fn one(db: &Conn, sql: &str, params: Params<'_>) -> Result<Row, StoreError> {
    let statement = db.prepare_cached(sql).await?;
    Ok(db.query_one(&statement, params).await?)
}

/// Runs `sql`, which returns at most one row.
pub(super) async fn maybe(
    db: &Conn,
    sql: &str,
    params: Params<'_>,
) -> Result<Option<Row>, StoreError> {
    let statement = db.prepare_cached(sql).await?;
    Ok(db.query_opt(&statement, params).await?)
}

/// Runs `sql` and returns its rows.
pub(super) async fn rows(db: &Conn, sql: &str, params: Params<'_>) -> Result<Vec<Row>, StoreError> {
    let statement = db.prepare_cached(sql).await?;
    Ok(db.query(&statement, params).await?)
}

/// A count or a stored counter as `u64`, `u32` or `usize`: never negative in these tables
/// (a negative one reads as 0, one too large as 0 too, which no caller takes for "allowed").
pub(super) fn count<T: TryFrom<i64> + Default>(value: i64) -> T {
    T::try_from(value).unwrap_or_default()
}
