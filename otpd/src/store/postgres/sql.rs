//! Running a statement: prepared once per connection (the pool keeps each connection's
//! statements), then executed with its parameters.
//!
//! Behind a pooler in transaction mode (`[store] behind_pooler`) a statement prepared on one
//! server connection is not there on the next transaction's, so every statement is sent
//! unnamed instead: parsed, bound and run in the one round trip, its parameters' types said
//! with it ([`natural_type`]). The server then plans it each time, which costs it about 2.5
//! times the server CPU per login (bench/README.md). A pooler that keeps prepared statements
//! itself (`pooler_keeps_prepared_statements`: PgBouncer from 1.21 prepares each client's
//! statements on whichever server connection runs them) is sent them prepared, as a server.

use std::pin::pin;

use futures_util::TryStreamExt;
use tokio_postgres::Row;
use tokio_postgres::types::{ToSql, Type};

use super::super::StoreError;
use super::unit::Conn;

/// A statement's parameters.
pub(super) type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// Runs `sql` and returns how many rows it wrote.
pub(super) async fn exec(db: &Conn, sql: &str, params: Params<'_>) -> Result<u64, StoreError> {
    if db.unnamed_statements {
        return Ok(unnamed(db, sql, params).await?.1);
    }
    let client = db.client();
    let statement = client.prepare_cached(sql).await?;
    Ok(client.execute(&statement, params).await?)
}

/// Runs `sql`, which returns exactly one row.
pub(super) async fn one(db: &Conn, sql: &str, params: Params<'_>) -> Result<Row, StoreError> {
    if db.unnamed_statements {
        let mut rows = unnamed(db, sql, params).await?.0;
        return match rows.len() {
            1 => rows.pop().ok_or_else(|| row_count(sql, 0)),
            n => Err(row_count(sql, n)),
        };
    }
    let client = db.client();
    let statement = client.prepare_cached(sql).await?;
    Ok(client.query_one(&statement, params).await?)
}

/// Runs `sql`, which returns at most one row.
pub(super) async fn maybe(
    db: &Conn,
    sql: &str,
    params: Params<'_>,
) -> Result<Option<Row>, StoreError> {
    if db.unnamed_statements {
        let mut rows = unnamed(db, sql, params).await?.0;
        return match rows.len() {
            0 | 1 => Ok(rows.pop()),
            n => Err(row_count(sql, n)),
        };
    }
    let client = db.client();
    let statement = client.prepare_cached(sql).await?;
    Ok(client.query_opt(&statement, params).await?)
}

/// Runs `sql` and returns its rows.
pub(super) async fn rows(db: &Conn, sql: &str, params: Params<'_>) -> Result<Vec<Row>, StoreError> {
    if db.unnamed_statements {
        return Ok(unnamed(db, sql, params).await?.0);
    }
    let client = db.client();
    let statement = client.prepare_cached(sql).await?;
    Ok(client.query(&statement, params).await?)
}

/// [`exec`] for a statement run once, not kept on the connection: one that reads or writes a
/// temporary table, which the next run makes anew.
pub(super) async fn exec_once(db: &Conn, sql: &str, params: Params<'_>) -> Result<u64, StoreError> {
    if db.unnamed_statements {
        return Ok(unnamed(db, sql, params).await?.1);
    }
    Ok(db.client().execute(sql, params).await?)
}

/// [`rows`] for a statement run once (see [`exec_once`]).
pub(super) async fn rows_once(
    db: &Conn,
    sql: &str,
    params: Params<'_>,
) -> Result<Vec<Row>, StoreError> {
    if db.unnamed_statements {
        return Ok(unnamed(db, sql, params).await?.0);
    }
    Ok(db.client().query(sql, params).await?)
}

/// Runs `sql` as the unnamed statement, in one round trip: its rows, and how many rows it
/// wrote. The request goes out at the first poll, in order with what is pipelined after it.
async fn unnamed(db: &Conn, sql: &str, params: Params<'_>) -> Result<(Vec<Row>, u64), StoreError> {
    let typed = params
        .iter()
        .map(|param| Ok((*param, natural_type(*param)?)))
        .collect::<Result<Vec<_>, StoreError>>()?;
    let mut stream = pin!(db.client().query_typed_raw(sql, typed).await?);
    let mut rows = Vec::new();
    while let Some(row) = stream.try_next().await? {
        rows.push(row);
    }
    Ok((rows, stream.rows_affected().unwrap_or(0)))
}

/// The types otpd's parameters are sent as, each the first its Rust type encodes: `i64` as
/// `bigint`, `i32` as `integer`, strings as `text`, and so on. PostgreSQL casts them where a
/// column is narrower (an `integer` column compared with or set from a `bigint`).
const NATURAL_TYPES: [Type; 9] = [
    Type::INT8,
    Type::INT4,
    Type::INT2,
    Type::BOOL,
    Type::TEXT,
    Type::BYTEA,
    Type::FLOAT8,
    Type::TEXT_ARRAY,
    Type::INT8_ARRAY,
];

/// The type `param` is sent as when no prepared statement says which the server wants: the
/// first of [`NATURAL_TYPES`] it encodes to (a `None` still says which it would).
fn natural_type(param: &(dyn ToSql + Sync)) -> Result<Type, StoreError> {
    let mut scratch = bytes::BytesMut::new();
    NATURAL_TYPES
        .into_iter()
        .find(|ty| {
            scratch.clear();
            param.to_sql_checked(ty, &mut scratch).is_ok()
        })
        .ok_or_else(|| StoreError::Postgres("a parameter of no type otpd sends".into()))
}

fn row_count(sql: &str, n: usize) -> StoreError {
    let first_line = sql.trim().lines().next().unwrap_or_default();
    StoreError::Postgres(format!(
        "a statement expected to return one row returned {n}: {first_line}"
    ))
}

/// A count or a stored counter as `u64`, `u32` or `usize`: never negative in these tables
/// (a negative one reads as 0, one too large as 0 too, which no caller takes for "allowed").
pub(super) fn count<T: TryFrom<i64> + Default>(value: i64) -> T {
    T::try_from(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_of_parameter_is_sent_as_the_type_its_rust_type_encodes() {
        let cases: [(&(dyn ToSql + Sync), Type); 8] = [
            (&7_i64, Type::INT8),
            (&7_i32, Type::INT4),
            (&true, Type::BOOL),
            (&"alice", Type::TEXT),
            (&String::from("alice"), Type::TEXT),
            (&None::<String>, Type::TEXT),
            (&vec![1_u8, 2], Type::BYTEA),
            (&vec!["a".to_string()], Type::TEXT_ARRAY),
        ];
        for (param, expected) in cases {
            assert_eq!(natural_type(param).unwrap(), expected, "{param:?}");
        }
    }
}
