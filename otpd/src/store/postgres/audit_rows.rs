//! Audit rows, as on SQLite (see `store::audit_rows` and `store::admin`): one per auth event,
//! never a code, read back as the wire's [`AuditRow`]. Ids come from an identity column, so
//! they grow with insertion whichever host wrote the row.

use common::wire_admin::AuditRow;
use tokio_postgres::Row;

use super::super::{AuditFilter, AuditRecord, EventTally, MailHistory, StoreError, Trimmed};
use super::later::{Later, Param};
use super::sql::{count, exec, maybe, one, rows};
use super::unit::Conn;
use crate::store::admin::escape_like;

/// How an audit row is stored.
const INSERT: &str = "INSERT INTO audit
         (logged_at, event, username, service, protocol, rhost, caller_uid, detail)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";

/// See [`super::super::Store::record_audit`], outside a unit: committed by itself.
pub(super) async fn record(db: &Conn, record: &AuditRecord<'_>) -> Result<(), StoreError> {
    let mut one = Later::default();
    let (sql, params) = insert(record);
    one.push(sql, params);
    one.prepare(db).await?.send(db).await
}

/// `record`'s insert with values of its own: sent by itself, or [`Later`] by a unit.
pub(super) fn insert(record: &AuditRecord<'_>) -> (&'static str, Vec<Param>) {
    let owned = |text: Option<&str>| Box::new(text.map(str::to_string)) as Param;
    let params = vec![
        Box::new(record.time) as Param,
        Box::new(record.event.to_string()),
        owned(record.user),
        owned(record.service),
        owned(record.protocol),
        owned(record.rhost),
        Box::new(record.caller_uid.map(i64::from)),
        owned(record.detail),
    ];
    (INSERT, params)
}

/// See [`super::super::Store::trim_audit`]: rows are only ever deleted oldest first, so the id
/// span bounds the count from above.
pub(super) async fn trim(db: &Conn, max_rows: u64) -> Result<Option<Trimmed>, StoreError> {
    let max_rows = i64::try_from(max_rows).unwrap_or(i64::MAX);
    let span = one(db, "SELECT min(id), max(id) FROM audit", &[]).await?;
    let (first, last): (Option<i64>, Option<i64>) = (span.try_get(0)?, span.try_get(1)?);
    let (Some(first), Some(last)) = (first, last) else {
        return Ok(None);
    };
    if last - first < max_rows {
        return Ok(None);
    }
    let keep = (max_rows / 10 * 9).max(1);
    let deleted = exec(db, "DELETE FROM audit WHERE id <= $1", &[&(last - keep)]).await?;
    let oldest_kept: i64 = one(
        db,
        "SELECT coalesce(min(logged_at), 0) FROM audit WHERE id > $1",
        &[&(last - keep)],
    )
    .await?
    .try_get(0)?;
    Ok(Some(Trimmed {
        deleted: count(i64::try_from(deleted).unwrap_or(i64::MAX)),
        oldest_kept,
    }))
}

fn of_row(row: &Row) -> Result<AuditRow, StoreError> {
    let caller_uid: Option<i64> = row.try_get(7)?;
    Ok(AuditRow {
        id: row.try_get(0)?,
        time: row.try_get(1)?,
        event: row.try_get(2)?,
        user: row.try_get(3)?,
        service: row.try_get(4)?,
        protocol: row.try_get(5)?,
        rhost: row.try_get(6)?,
        caller_uid: caller_uid.and_then(|uid| u32::try_from(uid).ok()),
        detail: row.try_get(8)?,
    })
}

/// See [`super::super::Store::audit_filtered`].
pub(super) async fn filtered(db: &Conn, filter: &AuditFilter) -> Result<Vec<AuditRow>, StoreError> {
    let limit = i64::try_from(filter.limit).unwrap_or(i64::MAX);
    let (before_time, before_id) = filter.before.unzip();
    let found = rows(
        db,
        "SELECT id, logged_at, event, username, service, protocol, rhost, caller_uid, detail
         FROM audit
         WHERE logged_at >= $1
           AND ($2::text IS NULL OR username = $2)
           AND ($3::text IS NULL OR event = $3)
           AND ($5::bigint IS NULL OR logged_at < $5 OR (logged_at = $5 AND id < $6))
         ORDER BY logged_at DESC, id DESC LIMIT $4",
        &[
            &filter.since,
            &filter.user,
            &filter.event,
            &limit,
            &before_time,
            &before_id,
        ],
    )
    .await?;
    found.iter().map(of_row).collect()
}

/// See [`super::super::Store::mail_history`]: a success names the server in its detail (after
/// failover, `NAME after OTHER: error; ...`, so the failures before it are in that same row),
/// a failure names each server it tried as `NAME: error`.
pub(super) async fn mail_history(db: &Conn, name: &str) -> Result<MailHistory, StoreError> {
    let after = format!("{} after %", escape_like(name));
    let last_ok_at: Option<i64> = one(
        db,
        "SELECT max(logged_at) FROM audit
         WHERE event IN ('mailed', 'test_mail_ok')
           AND (detail = $1 OR detail LIKE $2 ESCAPE '\\')",
        &[&name, &after],
    )
    .await?
    .try_get(0)?;
    let pattern = format!("%{}: %", escape_like(name));
    let last_failure = match maybe(
        db,
        "SELECT logged_at, detail FROM audit
         WHERE event IN ('mail_failed', 'test_mail_failed', 'mailed')
           AND detail LIKE $1 ESCAPE '\\'
         ORDER BY logged_at DESC, id DESC LIMIT 1",
        &[&pattern],
    )
    .await?
    {
        Some(row) => Some((row.try_get(0)?, row.try_get(1)?)),
        None => None,
    };
    Ok(MailHistory {
        last_ok_at,
        last_failure,
    })
}

/// See [`super::super::Store::event_tally`].
pub(super) async fn event_tally(
    db: &Conn,
    event: &str,
    since: i64,
    limit: usize,
) -> Result<EventTally, StoreError> {
    let totals = one(
        db,
        "SELECT count(*), count(DISTINCT username) FROM audit
         WHERE event = $1 AND logged_at >= $2",
        &[&event, &since],
    )
    .await?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let found = rows(
        db,
        "SELECT username, count(*) AS n FROM audit
         WHERE event = $1 AND logged_at >= $2 AND username IS NOT NULL
         GROUP BY username ORDER BY n DESC, username LIMIT $3",
        &[&event, &since, &limit],
    )
    .await?;
    let top = found
        .iter()
        .map(|row| Ok((row.try_get::<_, String>(0)?, count(row.try_get(1)?))))
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok(EventTally {
        rows: count(totals.try_get(0)?),
        users: count(totals.try_get(1)?),
        top,
    })
}
