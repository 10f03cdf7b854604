//! Break-glass grants (issue #16): while mail is down, root lets one user's logins pass the code
//! step for a few minutes, optionally only from one network.
//!
//! A grant is a row until it is revoked or found expired; whoever finds it expired (a login's
//! check, or the periodic purge) deletes it and gets it back to log, so each expiry is logged
//! exactly once.

use rusqlite::{OptionalExtension, Row, params};

use super::{SqliteStore, StoreError};

/// One grant, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakGlass {
    /// The user whose logins pass the code step.
    pub user: String,
    /// The network the reported remote host must be in (`192.0.2.0/24`); `None`: anywhere.
    pub cidr: Option<String>,
    /// Who granted it.
    pub granted_by: u32,
    /// When (unix seconds).
    pub granted_at: i64,
    /// When it stops holding (unix seconds); at this second it no longer holds.
    pub expires_at: i64,
}

/// What a login's check found for its user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BreakGlassLookup {
    /// No grant.
    None,
    /// A grant that holds now.
    Live(BreakGlass),
    /// A grant that had expired; it was deleted now, and its expiry is for the caller to log.
    Expired(BreakGlass),
}

/// The user's grant row as a login's facts read it, before any decision (see
/// [`super::Store::user_and_grant`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum GrantRead {
    /// Not read with the facts: the decision reads it itself.
    #[default]
    NotRead,
    /// The row, live or expired, or none.
    Row(Option<BreakGlass>),
    /// Reading it failed: why (the decision counts it as no grant, failing closed).
    Failed(String),
}

const COLUMNS: &str = "user, cidr, granted_by, granted_at, expires_at";

fn of_row(row: &Row<'_>) -> rusqlite::Result<BreakGlass> {
    Ok(BreakGlass {
        user: row.get(0)?,
        cidr: row.get(1)?,
        granted_by: row.get(2)?,
        granted_at: row.get(3)?,
        expires_at: row.get(4)?,
    })
}

impl SqliteStore {
    /// Stores `grant`, replacing the user's previous one. Returns the replaced grant when it
    /// still held.
    pub fn grant_breakglass(
        &mut self,
        grant: &BreakGlass,
    ) -> Result<Option<BreakGlass>, StoreError> {
        let tx = Self::immediate(&mut self.conn)?;
        let previous = tx
            .query_row(
                &format!("SELECT {COLUMNS} FROM breakglass WHERE user = ?1"),
                params![grant.user],
                of_row,
            )
            .optional()?
            .filter(|p| p.expires_at > grant.granted_at);
        tx.execute(
            "INSERT OR REPLACE INTO breakglass (user, cidr, granted_by, granted_at, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                grant.user,
                grant.cidr,
                grant.granted_by,
                grant.granted_at,
                grant.expires_at
            ],
        )?;
        tx.commit()?;
        Ok(previous)
    }

    /// Deletes the user's grant; returns it, live or not, when there was one.
    pub fn revoke_breakglass(&mut self, user: &str) -> Result<Option<BreakGlass>, StoreError> {
        let tx = Self::immediate(&mut self.conn)?;
        let found = tx
            .query_row(
                &format!("DELETE FROM breakglass WHERE user = ?1 RETURNING {COLUMNS}"),
                params![user],
                of_row,
            )
            .optional()?;
        tx.commit()?;
        Ok(found)
    }

    /// The user's grant row, live or not; reads only.
    pub fn breakglass_row(&self, user: &str) -> Result<Option<BreakGlass>, StoreError> {
        Ok(self
            .conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM breakglass WHERE user = ?1"),
                params![user],
                of_row,
            )
            .optional()?)
    }

    /// The user's grant at `now`. An expired one is deleted in the same transaction and
    /// returned as [`BreakGlassLookup::Expired`], once. Writes nothing for a user without a row.
    pub fn breakglass_for(&mut self, user: &str, now: i64) -> Result<BreakGlassLookup, StoreError> {
        let Some(grant) = self.breakglass_row(user)? else {
            return Ok(BreakGlassLookup::None);
        };
        if grant.expires_at > now {
            return Ok(BreakGlassLookup::Live(grant));
        }
        let tx = Self::immediate(&mut self.conn)?;
        let deleted = tx
            .query_row(
                &format!(
                    "DELETE FROM breakglass WHERE user = ?1 AND expires_at <= ?2 RETURNING {COLUMNS}"
                ),
                params![user, now],
                of_row,
            )
            .optional()?;
        tx.commit()?;
        Ok(deleted.map_or(BreakGlassLookup::None, BreakGlassLookup::Expired))
    }

    /// Deletes every grant expired at `now` and returns them, for their expiry to be logged.
    pub fn expire_breakglass(&mut self, now: i64) -> Result<Vec<BreakGlass>, StoreError> {
        let tx = Self::immediate(&mut self.conn)?;
        let expired = {
            let mut stmt = tx.prepare(&format!(
                "DELETE FROM breakglass WHERE expires_at <= ?1 RETURNING {COLUMNS}"
            ))?;
            stmt.query_map(params![now], of_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?
        };
        tx.commit()?;
        Ok(expired)
    }

    /// The grants that hold at `now`, by user name.
    pub fn live_breakglass(&self, now: i64) -> Result<Vec<BreakGlass>, StoreError> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {COLUMNS} FROM breakglass WHERE expires_at > ?1 ORDER BY user"
        ))?;
        let rows = stmt
            .query_map(params![now], of_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    fn grant(user: &str, minutes: i64) -> BreakGlass {
        BreakGlass {
            user: user.into(),
            cidr: Some("192.0.2.0/24".into()),
            granted_by: 0,
            granted_at: T0,
            expires_at: T0 + minutes * 60,
        }
    }

    #[test]
    fn a_grant_holds_until_its_expiry_and_is_reported_expired_exactly_once() {
        let (_dir, mut store) = open_store();
        store.grant_breakglass(&grant("root", 5)).unwrap();
        assert_eq!(
            store.breakglass_for("root", T0 + 299).unwrap(),
            BreakGlassLookup::Live(grant("root", 5))
        );
        assert_eq!(
            store.breakglass_for("root", T0 + 300).unwrap(),
            BreakGlassLookup::Expired(grant("root", 5))
        );
        assert_eq!(
            store.breakglass_for("root", T0 + 301).unwrap(),
            BreakGlassLookup::None
        );
        assert!(store.expire_breakglass(T0 + 400).unwrap().is_empty());
    }

    #[test]
    fn a_revoked_grant_no_longer_holds() {
        let (_dir, mut store) = open_store();
        store.grant_breakglass(&grant("root", 5)).unwrap();
        assert_eq!(
            store.revoke_breakglass("root").unwrap(),
            Some(grant("root", 5))
        );
        assert_eq!(
            store.breakglass_for("root", T0).unwrap(),
            BreakGlassLookup::None
        );
        assert_eq!(store.revoke_breakglass("root").unwrap(), None);
    }

    #[test]
    fn the_purge_step_expires_each_grant_once_and_keeps_live_ones() {
        let (_dir, mut store) = open_store();
        store.grant_breakglass(&grant("root", 1)).unwrap();
        store.grant_breakglass(&grant("alice", 10)).unwrap();
        let expired = store.expire_breakglass(T0 + 60).unwrap();
        assert_eq!(expired, vec![grant("root", 1)]);
        assert!(store.expire_breakglass(T0 + 60).unwrap().is_empty());
        assert_eq!(
            store.live_breakglass(T0 + 60).unwrap(),
            vec![grant("alice", 10)]
        );
    }

    #[test]
    fn a_new_grant_replaces_the_users_previous_one() {
        let (_dir, mut store) = open_store();
        store.grant_breakglass(&grant("root", 1)).unwrap();
        let wider = BreakGlass {
            cidr: None,
            ..grant("root", 30)
        };
        assert_eq!(
            store.grant_breakglass(&wider).unwrap(),
            Some(grant("root", 1))
        );
        assert_eq!(store.live_breakglass(T0).unwrap(), vec![wider]);
    }

    #[test]
    fn grants_survive_reopening_the_database() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("otpd.db");
        {
            let mut store = SqliteStore::open(&path, key()).unwrap();
            store.grant_breakglass(&grant("root", 5)).unwrap();
        }
        let mut store = SqliteStore::open(&path, key()).unwrap();
        assert_eq!(
            store.breakglass_for("root", T0 + 1).unwrap(),
            BreakGlassLookup::Live(grant("root", 5))
        );
    }
}
