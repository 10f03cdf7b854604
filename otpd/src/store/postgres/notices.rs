//! The outbox of notices to users and the admin, as on SQLite (see `store::notices`). The
//! per-hour cap and the once-per-event key are decided under the recipient's advisory lock,
//! so two hosts queuing at once never both pass a cap with one place left.

use common::config::NoticeKind;
use tokio_postgres::Row;

use super::super::{NewNotice, NoticeTo, Queued, QueuedNotice, StoreError};
use super::sql::{count, exec, maybe, one, rows};
use super::unit::Conn;

const COLUMNS: &str =
    "id, kind, username, address, to_admin, service, rhost, detail, created_at, tries, channel";

fn of_row(row: &Row) -> Result<QueuedNotice, StoreError> {
    let kind: String = row.try_get(1)?;
    let kind = NoticeKind::of_name(&kind).ok_or_else(|| {
        StoreError::Postgres(format!(
            "unknown notice kind {}",
            common::text::escape_for_log(&kind)
        ))
    })?;
    Ok(QueuedNotice {
        id: row.try_get(0)?,
        kind,
        user: row.try_get(2)?,
        address: row.try_get(3)?,
        to_admin: row.try_get(4)?,
        service: row.try_get(5)?,
        rhost: row.try_get(6)?,
        detail: row.try_get(7)?,
        created_at: row.try_get(8)?,
        tries: count(row.try_get(9)?),
        channel: row.try_get(10)?,
    })
}

/// Queues `notice` unless its event was told already or, with `per_hour`, its recipient had
/// that many notices in the hour before `now`. With either, callers hold the recipient's
/// notices lock ([`Lock::notices`](super::locks::Lock::notices)).
pub(super) async fn queue_in(
    db: &Conn,
    notice: &NewNotice<'_>,
    per_hour: Option<u32>,
    now: i64,
) -> Result<Queued, StoreError> {
    if let Some(key) = notice.event_key {
        let told = maybe(
            db,
            "SELECT 1 FROM notices
             WHERE kind = $1 AND username = $2 AND to_admin = $3 AND event_key = $4",
            &[&notice.kind.name(), &notice.user, &notice.to_admin, &key],
        )
        .await?;
        if told.is_some() {
            return Ok(Queued::AlreadyTold);
        }
    }
    if let Some(cap) = per_hour {
        let recent: i64 = one(
            db,
            "SELECT count(*) FROM notices
             WHERE created_at > $1 AND to_admin = $2 AND (to_admin OR username = $3)",
            &[&(now - 3600), &notice.to_admin, &notice.user],
        )
        .await?
        .try_get(0)?;
        if recent >= i64::from(cap) {
            return Ok(Queued::OverCap);
        }
    }
    exec(
        db,
        "INSERT INTO notices
         (kind, username, address, to_admin, service, rhost, detail, event_key, created_at,
          next_try_at, channel)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10)",
        &[
            &notice.kind.name(),
            &notice.user,
            &notice.address,
            &notice.to_admin,
            &notice.service,
            &notice.rhost,
            &notice.detail,
            &notice.event_key,
            &now,
            &notice.channel,
        ],
    )
    .await?;
    Ok(Queued::Queued)
}

/// Queues the notice that one of `user`'s recovery codes was used, when the user is to be
/// told; true when it was queued. Not capped.
pub(super) async fn queue_recovery_used_in(
    db: &Conn,
    to: &NoticeTo<'_>,
    (user, rhost): (&str, Option<&str>),
    left: u32,
    now: i64,
) -> Result<bool, StoreError> {
    if !to.tell {
        return Ok(false);
    }
    let detail = format!("{left} recovery codes are left");
    let notice = NewNotice {
        kind: NoticeKind::RecoveryUsed,
        user,
        address: to.address,
        channel: None,
        to_admin: false,
        service: to.service,
        rhost,
        detail: &detail,
        event_key: None,
    };
    Ok(queue_in(db, &notice, None, now).await? == Queued::Queued)
}

/// See [`super::super::Store::due_notices`].
pub(super) async fn due(
    db: &Conn,
    now: i64,
    after_id: i64,
    limit: usize,
) -> Result<Vec<QueuedNotice>, StoreError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let found = rows(
        db,
        &format!(
            "SELECT {COLUMNS} FROM notices
             WHERE sent_at IS NULL AND next_try_at <= $1 AND id > $2
             ORDER BY id LIMIT $3"
        ),
        &[&now, &after_id, &limit],
    )
    .await?;
    found.iter().map(of_row).collect()
}

/// See [`super::super::Store::claim_notices`]: one statement, whose rows other hosts' claims
/// skip (`SKIP LOCKED`) rather than wait for, so two hosts never take the same notice.
pub(super) async fn claim(
    db: &Conn,
    now: i64,
    after_id: i64,
    limit: usize,
    lease_until: i64,
) -> Result<Vec<QueuedNotice>, StoreError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let found = rows(
        db,
        &format!(
            "UPDATE notices SET next_try_at = $4
             WHERE id IN (SELECT id FROM notices
                          WHERE sent_at IS NULL AND next_try_at <= $1 AND id > $2
                          ORDER BY id LIMIT $3
                          FOR UPDATE SKIP LOCKED)
             RETURNING {COLUMNS}"
        ),
        &[&now, &after_id, &limit, &lease_until],
    )
    .await?;
    let mut claimed = found.iter().map(of_row).collect::<Result<Vec<_>, _>>()?;
    claimed.sort_by_key(|n| n.id);
    Ok(claimed)
}

/// See [`super::super::Store::close_notice`].
pub(super) async fn close(db: &Conn, id: i64, now: i64) -> Result<(), StoreError> {
    exec(
        db,
        "UPDATE notices SET sent_at = $2 WHERE id = $1",
        &[&id, &now],
    )
    .await?;
    Ok(())
}

/// See [`super::super::Store::put_off_notice`].
pub(super) async fn put_off(db: &Conn, id: i64, next_try_at: i64) -> Result<(), StoreError> {
    exec(
        db,
        "UPDATE notices SET tries = tries + 1, next_try_at = $2 WHERE id = $1",
        &[&id, &next_try_at],
    )
    .await?;
    Ok(())
}

/// See [`super::super::Store::queued_notices`].
pub(super) async fn waiting(db: &Conn) -> Result<u64, StoreError> {
    let n: i64 = one(
        db,
        "SELECT count(*) FROM notices WHERE sent_at IS NULL",
        &[],
    )
    .await?
    .try_get(0)?;
    Ok(count(n))
}
