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

/// `deadlock_detected`: the server chose this transaction to end a lock cycle; run again, it
/// waits for the other and goes through.
const DEADLOCK_DETECTED: &str = "40P01";
/// `serialization_failure`: the transaction could not be ordered with a concurrent one; it
/// was rolled back whole and may be run again.
const SERIALIZATION_FAILURE: &str = "40001";
/// `read_only_sql_transaction`: a write reached a server (or session) that takes no writes,
/// such as a primary demoted to standby while the connection stayed open.
const READ_ONLY_SQL_TRANSACTION: &str = "25006";

/// The SQLSTATE PostgreSQL gave for `error`, if it was PostgreSQL that refused. Read back
/// from the `SQLSTATE: message` text [`describe`] makes, the only place that text is made:
/// by then the driver's error is gone, and the store's error type is shared with SQLite.
fn sqlstate(error: &StoreError) -> Option<&str> {
    let StoreError::Postgres(text) = error else {
        return None;
    };
    let (code, _message) = text.split_once(": ")?;
    let is_code = code.len() == 5
        && code
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase());
    is_code.then_some(code)
}

/// Whether `error` ended the transaction in a way that running it again can mend: the
/// server rolled it back whole to break a deadlock or a serialization conflict.
pub(super) fn worth_retrying(error: &StoreError) -> bool {
    matches!(
        sqlstate(error),
        Some(DEADLOCK_DETECTED | SERIALIZATION_FAILURE)
    )
}

/// Whether `error` says the connection's server takes no writes (any more): the connection
/// must not be handed out again, so that the next operation connects anew and finds the
/// read-write host.
pub(super) fn server_is_read_only(error: &StoreError) -> bool {
    sqlstate(error) == Some(READ_ONLY_SQL_TRANSACTION)
}

/// `error` as one line: `SQLSTATE: message` for an error PostgreSQL reported, else the
/// driver's description and its cause (`error connecting to server: Connection refused`).
pub(super) fn describe(error: &tokio_postgres::Error) -> String {
    let text = match error.as_db_error() {
        Some(db) => format!(
            "{}: {}{}",
            db.code().code(),
            db.message(),
            pooler_hint(db).unwrap_or_default()
        ),
        None => match std::error::Error::source(error) {
            Some(cause) => format!("{error}: {cause}"),
            None => error.to_string(),
        },
    };
    common::text::escape_for_log(&text)
}

/// What to set when a pooler in transaction mode stands between otpd and the server without
/// `behind_pooler`: PgBouncer refuses the startup option that carries otpd's session settings
/// (`08P01`, "unsupported startup parameter"), and a pooler that lets it through hands otpd's
/// prepared statements to other server connections than the ones they were made on: one is
/// not there (`26000`), or another client's of the same name is (`42P05`). The last two also
/// come from a pooler said to keep prepared statements that does not (PgBouncer before 1.21,
/// or with `max_prepared_statements = 0`). Without the hint the admin sees a protocol error
/// and no way on.
fn pooler_hint(db: &tokio_postgres::error::DbError) -> Option<&'static str> {
    use tokio_postgres::error::SqlState;
    let refused_option =
        *db.code() == SqlState::PROTOCOL_VIOLATION && db.message().contains("startup parameter");
    let statement_elsewhere = *db.code() == SqlState::INVALID_SQL_STATEMENT_NAME
        || *db.code() == SqlState::DUPLICATE_PSTATEMENT;
    (refused_option || statement_elsewhere).then_some(
        " (a connection pooler in transaction mode, such as PgBouncer, stands between otpd \
         and PostgreSQL: set behind_pooler to true in [store], and leave out \
         pooler_keeps_prepared_statements unless the pooler keeps prepared statements: \
         PgBouncer 1.21 or later with max_prepared_statements above 0)",
    )
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

    #[test]
    fn only_a_sqlstate_at_the_start_of_the_text_counts() {
        let error = |text: &str| StoreError::Postgres(text.into());
        assert!(worth_retrying(&error("40P01: deadlock detected")));
        assert!(worth_retrying(&error("40001: could not serialize access")));
        assert!(server_is_read_only(&error(
            "25006: cannot execute UPDATE in a read-only transaction"
        )));
        for other in [
            "23505: duplicate key value violates unique constraint",
            "error connecting to server: 40P01: not from the server",
            "no answer within 5000 ms; the operation was abandoned",
            "40p01: lower case is not a SQLSTATE",
        ] {
            assert!(!worth_retrying(&error(other)), "{other}");
            assert!(!server_is_read_only(&error(other)), "{other}");
        }
        assert!(!worth_retrying(&StoreError::WorkNotRun));
    }
}
