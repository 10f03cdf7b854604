//! The schema, versioned with `PRAGMA user_version` and an ordered list of migrations.
//!
//! Migration `n` (1-based) takes a database from version `n - 1` to `n`. All pending ones run
//! in one immediate transaction together with the version bump, so a failed upgrade leaves the
//! file exactly as it was, and two daemons starting at once cannot both migrate. A database
//! with a version newer than [`CURRENT_VERSION`] is refused: this build cannot know what the
//! newer tables mean, and guessing could weaken a rule.

use rusqlite::{Connection, TransactionBehavior};

use super::StoreError;

/// Version 1: codes, sends, lockouts, users and audit.
///
/// - `codes` holds a salted MAC per code, never the code. `state` is `live` until the code is
///   used, superseded by a newer one, or dies (attempts exhausted, mail failed); `closed_at`
///   says when, for purging.
/// - `sends` keeps one row per mailed code for the hourly and daily windows; it outlives the
///   code row (the foreign key only clears `challenge`), because the daily window needs it
///   for 24 hours while codes are purged after one.
/// - `lockouts` counts consecutive failures per user and per remote host; `locked_until` is
///   compared with the current time, so a lock ends by itself.
const V1: &str = "
CREATE TABLE codes (
    challenge  TEXT PRIMARY KEY NOT NULL,
    user       TEXT NOT NULL,
    protocol   TEXT NOT NULL,
    service    TEXT NOT NULL,
    rhost      TEXT,
    salt       BLOB NOT NULL CHECK (length(salt) = 16),
    mac        BLOB NOT NULL CHECK (length(mac) = 32),
    issued_at  INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    attempts   INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    state      TEXT NOT NULL DEFAULT 'live'
               CHECK (state IN ('live', 'used', 'superseded', 'dead')),
    closed_at  INTEGER,
    CHECK ((state = 'live') = (closed_at IS NULL))
);
CREATE INDEX codes_by_user ON codes (user, state);
CREATE INDEX codes_by_close ON codes (closed_at);
CREATE INDEX codes_by_expiry ON codes (expires_at);

CREATE TABLE sends (
    id        INTEGER PRIMARY KEY,
    user      TEXT NOT NULL,
    sent_at   INTEGER NOT NULL,
    challenge TEXT REFERENCES codes (challenge) ON DELETE SET NULL
);
CREATE INDEX sends_by_user ON sends (user, sent_at);
CREATE INDEX sends_by_challenge ON sends (challenge);

CREATE TABLE lockouts (
    kind         TEXT NOT NULL CHECK (kind IN ('user', 'host')),
    subject      TEXT NOT NULL,
    failures     INTEGER NOT NULL DEFAULT 0 CHECK (failures >= 0),
    locked_until INTEGER,
    updated_at   INTEGER NOT NULL,
    PRIMARY KEY (kind, subject)
) WITHOUT ROWID;

CREATE TABLE users (
    name       TEXT PRIMARY KEY NOT NULL CHECK (name <> ''),
    email      TEXT,
    enabled    INTEGER NOT NULL CHECK (enabled IN (0, 1)),
    protocols  TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE audit (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    time       INTEGER NOT NULL,
    event      TEXT NOT NULL,
    user       TEXT,
    service    TEXT,
    protocol   TEXT,
    rhost      TEXT,
    caller_uid INTEGER,
    detail     TEXT
);
CREATE INDEX audit_by_time ON audit (time);
";

/// Version 2: reuse grants for single-secret protocols.
///
/// HTTP and WebDAV clients send the same `password || code` on every request. After a code is
/// verified, a grant keeps a salted MAC of it, bound to the user, the PAM service and the remote
/// host, until `expires_at` (`reuse_window_seconds` later), so the next requests of that client
/// pass without a new code. `rhost` is '' for logins without a remote host.
const V2: &str = "
CREATE TABLE reuse_grants (
    user       TEXT NOT NULL,
    service    TEXT NOT NULL,
    rhost      TEXT NOT NULL,
    salt       BLOB NOT NULL CHECK (length(salt) = 16),
    mac        BLOB NOT NULL CHECK (length(mac) = 32),
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (user, service, rhost)
) WITHOUT ROWID;
CREATE INDEX reuse_grants_by_expiry ON reuse_grants (expires_at);
";

/// The migrations, oldest first. Append only: a shipped migration never changes.
const MIGRATIONS: &[&str] = &[V1, V2];

/// The schema version this build creates and understands.
pub const CURRENT_VERSION: i64 = MIGRATIONS.len() as i64;

/// Brings the database to [`CURRENT_VERSION`], or refuses a newer or foreign one.
pub(super) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let found: i64 = tx.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    if found < 0 {
        return Err(StoreError::ForeignSchema { found });
    }
    if found > CURRENT_VERSION {
        return Err(StoreError::NewerSchema {
            found,
            known: CURRENT_VERSION,
        });
    }
    if found == CURRENT_VERSION {
        return Ok(());
    }
    for (index, sql) in MIGRATIONS.iter().enumerate() {
        // Migration at index i produces version i + 1; skip those already applied.
        if (index as i64) < found {
            continue;
        }
        tx.execute_batch(sql)?;
    }
    tx.pragma_update(None, "user_version", CURRENT_VERSION)?;
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::super::{Store, StoreError};
    use super::*;

    fn version_of(path: &std::path::Path) -> i64 {
        let conn = Connection::open(path).unwrap();
        conn.query_row("PRAGMA user_version", [], |row| row.get(0))
            .unwrap()
    }

    #[test]
    fn a_fresh_database_gets_the_current_version() {
        let (dir, store) = open_store();
        drop(store);
        assert_eq!(CURRENT_VERSION, 2);
        assert_eq!(version_of(&dir.path().join("otpd.db")), CURRENT_VERSION);
    }

    #[test]
    fn reopening_keeps_the_version_and_the_data() {
        let (dir, mut store) = open_store();
        store.upsert_user(&user_record("alice")).unwrap();
        drop(store);
        let store = Store::open(&dir.path().join("otpd.db"), key()).unwrap();
        assert!(store.user("alice").unwrap().is_some());
        drop(store);
        assert_eq!(version_of(&dir.path().join("otpd.db")), CURRENT_VERSION);
    }

    #[test]
    fn a_newer_schema_version_is_refused_with_a_clear_error() {
        let (dir, store) = open_store();
        drop(store);
        let path = dir.path().join("otpd.db");
        Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", CURRENT_VERSION + 1)
            .unwrap();
        let err = Store::open(&path, key()).unwrap_err();
        match &err {
            StoreError::NewerSchema { found, known } => {
                assert_eq!((*found, *known), (CURRENT_VERSION + 1, CURRENT_VERSION));
            }
            other => panic!("expected NewerSchema, got {other:?}"),
        }
        let text = err.to_string();
        assert!(
            text.contains("newer") && text.contains("upgrade otpd"),
            "{text}"
        );
        // Refusing must not have touched the version.
        assert_eq!(version_of(&path), CURRENT_VERSION + 1);
    }

    #[test]
    fn a_negative_schema_version_is_refused() {
        let (dir, store) = open_store();
        drop(store);
        let path = dir.path().join("otpd.db");
        Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", -3)
            .unwrap();
        let err = Store::open(&path, key()).unwrap_err();
        assert!(
            matches!(err, StoreError::ForeignSchema { found: -3 }),
            "{err:?}"
        );
    }

    #[test]
    fn a_failed_migration_leaves_the_database_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("otpd.db");
        // Version 0 with a clashing table: migration 1 fails half-way through.
        let store_path = path.clone();
        drop(Store::open(&store_path, key()).unwrap());
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(
                "DROP TABLE audit; CREATE TABLE audit (x); PRAGMA user_version = 0;",
            )
            .unwrap();
            for table in ["codes", "sends", "lockouts", "users"] {
                conn.execute_batch(&format!("DROP TABLE {table};")).unwrap();
            }
        }
        assert!(Store::open(&path, key()).is_err());
        let conn = Connection::open(&path).unwrap();
        let tables: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'codes'",
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(tables, 0, "the partial migration was rolled back");
        assert_eq!(version_of(&path), 0);
    }
}
