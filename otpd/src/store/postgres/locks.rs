//! The advisory locks that make each rule atomic across hosts.
//!
//! Transaction-scoped (`pg_advisory_xact_lock`): released by `COMMIT` or `ROLLBACK`, and by the
//! server when a connection dies, so a crashed host never leaves one behind. Each kind of
//! subject has its own class (the first key), and the subject's text hashed is the second:
//! two subjects with the same hash only wait for each other, they never share a decision.
//! The schema's migration lock is a single 64-bit key, which PostgreSQL keeps apart from
//! every two-key lock.

use super::super::StoreError;
use super::sql::exec;
use super::unit::Conn;

/// Everything decided about one user: codes, sends, failures, recovery codes, grants.
const USER: i32 = 1;
/// A remote address's failure count and lock.
const HOST: i32 = 2;
/// The notices to one user, for the per-hour cap and the once-per-event key.
const NOTICES: i32 = 3;
/// The notices to the admin (every user's): one lock, subject `''`.
const ADMIN_NOTICES: i32 = 4;

/// Locks `user` and then, if given, the host key `host`: always in this order (one statement,
/// evaluated left to right), so no two transactions wait on each other in a cycle. A `NULL`
/// host takes no lock (the function is strict).
pub(super) async fn user_and_host(
    db: &Conn,
    user: &str,
    host: Option<&str>,
) -> Result<(), StoreError> {
    exec(
        db,
        "SELECT pg_advisory_xact_lock(1, hashtext($1)), pg_advisory_xact_lock(2, hashtext($2))",
        &[&user, &host],
    )
    .await?;
    Ok(())
}

/// Locks `user` alone.
pub(super) async fn user(db: &Conn, user: &str) -> Result<(), StoreError> {
    subject(db, USER, user).await
}

/// Locks the host key `host` alone.
pub(super) async fn host(db: &Conn, host: &str) -> Result<(), StoreError> {
    subject(db, HOST, host).await
}

/// Locks the notices to `user`, or to the admin when `to_admin`.
pub(super) async fn notices(db: &Conn, user: &str, to_admin: bool) -> Result<(), StoreError> {
    if to_admin {
        subject(db, ADMIN_NOTICES, "").await
    } else {
        subject(db, NOTICES, user).await
    }
}

async fn subject(db: &Conn, class: i32, subject: &str) -> Result<(), StoreError> {
    exec(
        db,
        "SELECT pg_advisory_xact_lock($1, hashtext($2))",
        &[&class, &subject],
    )
    .await?;
    Ok(())
}
