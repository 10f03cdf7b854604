//! The least a login's durable state can cost: two SQLite transactions, one that stores a code
//! and one that uses it up, in a WAL database with otpd's pragmas (one connection holding the
//! file exclusively, `synchronous=NORMAL`, the same checkpoint interval). The table has only
//! what a check needs: the challenge as its key, the user, a MAC, an expiry and whether the
//! code was used. No rate limits, lockouts, sends, indexes by user or audit rows.

use std::sync::{Mutex, MutexGuard};

use rusqlite::{Connection, params};

use crate::error::BenchError;

/// otpd's `wal_autocheckpoint` (otpd/src/store/mod.rs).
const WAL_CHECKPOINT_PAGES: i64 = 3000;

/// A database of its own, shared by every loop through one connection as otpd shares its.
#[derive(Debug)]
pub struct BareStore {
    conn: Mutex<Connection>,
    _dir: tempfile::TempDir,
}

impl BareStore {
    /// Creates the database in a fresh temporary directory.
    pub fn open() -> Result<BareStore, BenchError> {
        let dir = tempfile::tempdir().map_err(BenchError::io("tempdir"))?;
        let conn = Connection::open(dir.path().join("floor.db")).map_err(sql)?;
        conn.pragma_update(None, "locking_mode", "EXCLUSIVE")
            .map_err(sql)?;
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
            .map_err(sql)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(BenchError::Setup(format!("floor database in {mode} mode")));
        }
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(sql)?;
        conn.pragma_update(None, "wal_autocheckpoint", WAL_CHECKPOINT_PAGES)
            .map_err(sql)?;
        conn.execute_batch(
            "CREATE TABLE codes (
                 challenge TEXT PRIMARY KEY,
                 user TEXT NOT NULL,
                 mac BLOB NOT NULL,
                 expires_at INTEGER NOT NULL,
                 used INTEGER NOT NULL DEFAULT 0
             );",
        )
        .map_err(sql)?;
        Ok(BareStore {
            conn: Mutex::new(conn),
            _dir: dir,
        })
    }

    /// A login's two transactions for `challenge`: store the code, then use it up. Fails when
    /// the second finds no live code to use, so a floor run also checks it did the work.
    pub fn login(&self, challenge: &str, user: &str) -> Result<(), BenchError> {
        {
            let mut conn = self.lock();
            let tx = conn.transaction().map_err(sql)?;
            tx.prepare_cached(
                "INSERT INTO codes (challenge, user, mac, expires_at) VALUES (?1, ?2, ?3, ?4)",
            )
            .and_then(|mut insert| insert.execute(params![challenge, user, &[0u8; 32][..], 0]))
            .map_err(sql)?;
            tx.commit().map_err(sql)?;
        }
        let mut conn = self.lock();
        let tx = conn.transaction().map_err(sql)?;
        let used = tx
            .prepare_cached("UPDATE codes SET used = 1 WHERE challenge = ?1 AND used = 0")
            .and_then(|mut update| update.execute([challenge]))
            .map_err(sql)?;
        tx.commit().map_err(sql)?;
        match used {
            1 => Ok(()),
            n => Err(BenchError::Check(format!(
                "floor store: {n} codes used for {challenge}"
            ))),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        self.conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn sql(error: rusqlite::Error) -> BenchError {
    BenchError::Check(format!("floor store: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_is_stored_and_used_once() {
        let store = BareStore::open().unwrap();
        store.login("c1", "alice").unwrap();
        store.login("c2", "alice").unwrap();
        let used: i64 = store
            .lock()
            .query_row("SELECT count(*) FROM codes WHERE used = 1", [], |row| {
                row.get(0)
            })
            .unwrap();
        assert_eq!(used, 2);
    }

    #[test]
    fn a_challenge_stored_twice_is_refused() {
        let store = BareStore::open().unwrap();
        store.login("c1", "alice").unwrap();
        assert!(store.login("c1", "alice").is_err());
    }

    #[test]
    fn the_database_runs_in_wal_mode() {
        let store = BareStore::open().unwrap();
        let mode: String = store
            .lock()
            .query_row("PRAGMA journal_mode", [], |row| row.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
    }
}
