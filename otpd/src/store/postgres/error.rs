//! PostgreSQL's failures as [`StoreError`]s, with text that is safe to log and show.
//!
//! Only the error's class and PostgreSQL's primary message are kept: its DETAIL can quote a
//! row's values (a unique violation names the key), and none of it is needed to see that the
//! database failed. The login fails closed whatever the text says.

use std::time::Duration;

use super::super::StoreError;

impl From<tokio_postgres::Error> for StoreError {
    fn from(error: tokio_postgres::Error) -> StoreError {
        StoreError::Postgres(describe(&error))
    }
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(error: deadpool_postgres::PoolError) -> StoreError {
        use deadpool_postgres::PoolError;
        StoreError::Postgres(match error {
            PoolError::Backend(error) => describe(&error),
            PoolError::Timeout(kind) => format!("no connection in time ({kind:?})"),
            PoolError::Closed => "the connection pool is closed".into(),
            PoolError::NoRuntimeSpecified => "the connection pool has no runtime".into(),
            PoolError::PostCreateHook(_) => "a new connection could not be set up".into(),
        })
    }
}

/// An operation that did not finish within its deadline.
pub(super) fn late(deadline: Duration) -> StoreError {
    StoreError::Postgres(format!(
        "no answer within {} ms; the operation was abandoned",
        deadline.as_millis()
    ))
}

/// `error` as one line: `SQLSTATE: message` for an error PostgreSQL reported, else the
/// driver's description and its cause (`error connecting to server: Connection refused`).
pub(super) fn describe(error: &tokio_postgres::Error) -> String {
    let text = match error.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => match std::error::Error::source(error) {
            Some(cause) => format!("{error}: {cause}"),
            None => error.to_string(),
        },
    };
    common::text::escape_for_log(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_late_operation_says_how_long_it_was_given() {
        let text = late(Duration::from_millis(1500)).to_string();
        assert!(text.contains("1500 ms"), "{text}");
        assert!(text.starts_with("database (PostgreSQL)"), "{text}");
    }
}
