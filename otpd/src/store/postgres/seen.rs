//! The addresses each user logged in from (`seen_rhosts`), as on SQLite (see
//! `store::notices`): what tells a login from a new address.
//!
//! A successful answer notes its address in the same transaction, right after the code was
//! checked. The answer's statement already reads the user's rows of this table (under the
//! user's lock), so the noting needs no round trip of its own: it is decided from that read
//! ([`SeenBefore`]) and its write is left [`Later`], to go out with the `COMMIT`. That saves
//! one of a login's round trips on PostgreSQL (bench/README.md).

use tokio_postgres::Row;

use super::super::{AddressSeen, StoreError};
use super::later::Later;
use super::sql::one;
use super::unit::Conn;

/// The address noted: its row made, or its time moved on (never back: two hosts may note the
/// same address out of order).
const NOTE: &str = "
INSERT INTO seen_rhosts (username, rhost, last_seen) VALUES ($1, $2, $3)
ON CONFLICT (username, rhost)
DO UPDATE SET last_seen = greatest(seen_rhosts.last_seen, excluded.last_seen)";

/// The columns a statement adds to read [`SeenBefore`] for user `$user` and address `$rhost`
/// (placeholders it names): when the address was last seen, and whether any address was.
pub(super) fn columns(user: &str, rhost: &str) -> String {
    format!(
        "(SELECT last_seen FROM seen_rhosts WHERE username = {user} AND rhost = {rhost}),
         EXISTS (SELECT 1 FROM seen_rhosts WHERE username = {user})"
    )
}

/// What `seen_rhosts` held for one user and address, read under the user's lock in the open
/// transaction. Nothing else writes the user's rows while that lock is held, so it stays
/// true until the transaction ends, as long as each noting in it goes through
/// [`SeenBefore::note`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SeenBefore {
    user: String,
    rhost: String,
    last_seen: Option<i64>,
    any: bool,
}

impl SeenBefore {
    /// Read from `row`, whose columns from `first` on are [`columns`]' for `user` and `rhost`.
    pub(super) fn of_row(
        row: &Row,
        first: usize,
        user: &str,
        rhost: &str,
    ) -> Result<SeenBefore, StoreError> {
        Ok(SeenBefore {
            user: user.to_string(),
            rhost: rhost.to_string(),
            last_seen: row.try_get(first)?,
            any: row.try_get(first + 1)?,
        })
    }

    /// Whether it was read for this user and address.
    pub(super) fn is_for(&self, user: &str, rhost: &str) -> bool {
        self.user == user && self.rhost == rhost
    }

    /// Notes a login from the address at `now`: what the address is within `window`, with
    /// the write left in `later`. It then holds what the write makes of the rows.
    pub(super) fn note(&mut self, now: i64, window: i64, later: &mut Later) -> AddressSeen {
        let seen = seen_within(self.last_seen, self.any, now, window);
        later.push(
            NOTE,
            vec![
                Box::new(self.user.clone()),
                Box::new(self.rhost.clone()),
                Box::new(now),
            ],
        );
        self.last_seen = Some(self.last_seen.map_or(now, |at| at.max(now)));
        self.any = true;
        seen
    }
}

/// What an address last seen at `last` is at `now` within `window`, `any` saying whether the
/// user was seen from any address.
fn seen_within(last: Option<i64>, any: bool, now: i64, window: i64) -> AddressSeen {
    match last {
        Some(at) if at > now - window => AddressSeen::Known,
        Some(_) => AddressSeen::New,
        None if any => AddressSeen::New,
        None => AddressSeen::FirstEver,
    }
}

/// See [`super::super::Store::note_login_address`], with no earlier read to decide from: the
/// noting and the read in one statement. Callers hold the user's lock.
pub(super) async fn note_login_address(
    db: &Conn,
    user: &str,
    rhost: &str,
    now: i64,
    window: i64,
) -> Result<AddressSeen, StoreError> {
    // Every part of one statement sees the rows as they were before its insert.
    let sql = format!("WITH noted AS ({NOTE}) SELECT {}", columns("$1", "$2"));
    let before = one(db, &sql, &[&user, &rhost, &now]).await?;
    let (last, any): (Option<i64>, bool) = (before.try_get(0)?, before.try_get(1)?);
    Ok(seen_within(last, any, now, window))
}
