//! Purge, as on SQLite (see `store::purge`): deletes what no rule needs any more, in one
//! transaction. Two hosts purging at once delete each row once between them.

use super::super::notices::{CLOSED_NOTICES_KEPT, SEEN_RHOSTS_KEPT};
use super::super::purge::CODE_KEEP_SECS;
use super::super::sends::DAY;
use super::super::{PurgeCounts, StoreError};
use super::sql::exec;
use super::unit::Conn;

/// See [`super::super::Store::purge`].
pub(super) async fn purge(
    db: &Conn,
    now: i64,
    audit_retention_secs: i64,
) -> Result<PurgeCounts, StoreError> {
    let deleted = async |sql: &str, cutoff: i64| -> Result<usize, StoreError> {
        let n = exec(db, sql, &[&cutoff]).await?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    };
    Ok(PurgeCounts {
        codes: deleted(
            "DELETE FROM codes WHERE expires_at < $1",
            now.saturating_sub(CODE_KEEP_SECS),
        )
        .await?,
        // Matches the window: a send at `t` counts while `now - t < DAY`.
        sends: deleted(
            "DELETE FROM sends WHERE sent_at <= $1",
            now.saturating_sub(DAY),
        )
        .await?,
        lockouts: deleted(
            "DELETE FROM lockouts
             WHERE failures = 0 AND (locked_until IS NULL OR locked_until <= $1)",
            now,
        )
        .await?,
        audit: deleted(
            "DELETE FROM audit WHERE logged_at < $1",
            now.saturating_sub(audit_retention_secs.max(0)),
        )
        .await?,
        grants: deleted("DELETE FROM reuse_grants WHERE expires_at <= $1", now).await?,
        notices: deleted(
            "DELETE FROM notices WHERE sent_at IS NOT NULL AND sent_at < $1",
            now.saturating_sub(CLOSED_NOTICES_KEPT),
        )
        .await?,
        seen_rhosts: deleted(
            "DELETE FROM seen_rhosts WHERE last_seen < $1",
            now.saturating_sub(SEEN_RHOSTS_KEPT),
        )
        .await?,
    })
}
