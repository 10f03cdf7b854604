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

/// Version 3: fewer index pages per login.
///
/// Of the WAL pages a login wrote, four were for indexes no login reads (bench/README.md,
/// "Schema version 3"):
/// - `codes_by_close` served only the purge, which now removes a code an hour after it
///   expires, used or not (a used code's row stays at most its validity longer);
/// - `codes_by_user` held every code of the user, with its state; only live codes are looked
///   up by user (to reuse or supersede them), so the index now holds only those, and a used or
///   superseded code leaves it (a user's used codes, up to a day's send cap of them, are never
///   walked);
/// - `sends_by_challenge` served the foreign key that cleared a purged code's challenge from
///   its send. The send keeps the challenge as a plain value now, and taking back a send of an
///   unmailed code finds it through the user's sends.
///
/// SQLite cannot drop a foreign key in place, so `sends` is rebuilt with its rows and ids.
const V3: &str = "
DROP INDEX codes_by_close;
DROP INDEX codes_by_user;
CREATE INDEX codes_live_by_user ON codes (user) WHERE state = 'live';

CREATE TABLE sends_v3 (
    id        INTEGER PRIMARY KEY,
    user      TEXT NOT NULL,
    sent_at   INTEGER NOT NULL,
    challenge TEXT
);
INSERT INTO sends_v3 (id, user, sent_at, challenge) SELECT id, user, sent_at, challenge FROM sends;
DROP TABLE sends;
ALTER TABLE sends_v3 RENAME TO sends;
CREATE INDEX sends_by_user ON sends (user, sent_at);
";

/// Version 4: recovery codes (issue #16).
///
/// - `recovery_codes` holds a user's set of single-use codes as salted MACs, never the codes;
///   `used_at` is set when one answers a login. A new set replaces the user's rows.
/// - `codes.recovery_only` marks a challenge whose mail failed for a user with recovery codes:
///   it stays live for its validity but answers only to a recovery code, and is never handed
///   out again as "the code already sent".
const V4: &str = "
CREATE TABLE recovery_codes (
    user       TEXT NOT NULL,
    slot       INTEGER NOT NULL,
    salt       BLOB NOT NULL CHECK (length(salt) = 16),
    mac        BLOB NOT NULL CHECK (length(mac) = 32),
    created_at INTEGER NOT NULL,
    used_at    INTEGER,
    PRIMARY KEY (user, slot)
) WITHOUT ROWID;
ALTER TABLE codes ADD COLUMN recovery_only INTEGER NOT NULL DEFAULT 0
    CHECK (recovery_only IN (0, 1));
";

/// Version 5 (break-glass, issue #16): grants that let a user's logins pass the code step
/// while mail is down.
///
/// One row per user: a new grant replaces the old one. `cidr` is NULL for a grant from
/// anywhere, else the network the reported remote host must be in. A row is deleted when it is
/// revoked, or when it is found expired (by a login's check or the periodic purge), which is
/// when its expiry is logged: once, since the row is gone after.
const V5_BREAKGLASS: &str = "
CREATE TABLE breakglass (
    user       TEXT PRIMARY KEY NOT NULL CHECK (user <> ''),
    cidr       TEXT,
    granted_by INTEGER NOT NULL,
    granted_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL CHECK (expires_at > granted_at)
) WITHOUT ROWID;
";

/// Version 6 (issue #16): mails owed to users, kept until a server accepts them.
///
/// A notice (today: one of the user's recovery codes was used) is queued in the same
/// transaction as the event it tells of, and deleted once a server accepted it, so a mail
/// outage or a restart delays it and never drops it. `next_try_at` is when the deliverer tries
/// it next and `tries` counts its failed tries; `kind` names what it tells of.
const V6_NOTICES: &str = "
CREATE TABLE notices (
    id            INTEGER PRIMARY KEY,
    kind          TEXT NOT NULL CHECK (kind IN ('recovery_used')),
    user          TEXT NOT NULL,
    address       TEXT NOT NULL,
    service       TEXT NOT NULL,
    rhost         TEXT,
    recovery_left INTEGER NOT NULL CHECK (recovery_left >= 0),
    created_at    INTEGER NOT NULL,
    next_try_at   INTEGER NOT NULL,
    tries         INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX notices_due ON notices (next_try_at);
";

/// Version 7 (issue #22): the language of a user's login texts (`otpctl user set-language`),
/// an ISO 639-1 code otpd has texts in; NULL leaves it to the user's profile.
const V7_LANGUAGE: &str = "
ALTER TABLE users ADD COLUMN language TEXT;
";

/// Version 8 (issue #21): the phone number webhook channels send codes to
/// (`otpctl user set-phone`), E.164; NULL: none.
const V8_PHONE: &str = "
ALTER TABLE users ADD COLUMN phone TEXT;
";

/// Version 9 (issue #21): notices of every kind, to the user or the admin, with the event's
/// facts in `detail`, by mail or (`channel`, `address` then a phone number) a webhook channel. A delivered notice is kept with `sent_at` set (the per-hour caps count
/// it, and `event_key` says an event was told already) until the purge removes it; `seen_rhosts`
/// holds when each user last logged in from each remote address, for the `new_address` notice.
const V9_NOTIFICATIONS: &str = "
CREATE TABLE notices_v9 (
    id          INTEGER PRIMARY KEY,
    kind        TEXT NOT NULL,
    user        TEXT NOT NULL,
    address     TEXT NOT NULL,
    to_admin    INTEGER NOT NULL DEFAULT 0 CHECK (to_admin IN (0, 1)),
    channel     TEXT,
    service     TEXT NOT NULL,
    rhost       TEXT,
    detail      TEXT NOT NULL DEFAULT '',
    event_key   TEXT,
    created_at  INTEGER NOT NULL,
    next_try_at INTEGER NOT NULL,
    tries       INTEGER NOT NULL DEFAULT 0,
    sent_at     INTEGER
);
INSERT INTO notices_v9
    (id, kind, user, address, service, rhost, detail, created_at, next_try_at, tries)
SELECT id, kind, user, address, service, rhost,
       recovery_left || ' recovery codes are left', created_at, next_try_at, tries
FROM notices;
DROP TABLE notices;
ALTER TABLE notices_v9 RENAME TO notices;
CREATE INDEX notices_due ON notices (next_try_at) WHERE sent_at IS NULL;
CREATE INDEX notices_by_time ON notices (created_at);
CREATE UNIQUE INDEX notices_once ON notices (kind, user, to_admin, event_key)
    WHERE event_key IS NOT NULL;
CREATE TABLE seen_rhosts (
    user      TEXT NOT NULL,
    rhost     TEXT NOT NULL,
    last_seen INTEGER NOT NULL,
    PRIMARY KEY (user, rhost)
) WITHOUT ROWID;
CREATE INDEX seen_rhosts_by_time ON seen_rhosts (last_seen);
";

/// The migrations, oldest first. Append only: a shipped migration never changes.
const MIGRATIONS: &[&str] = &[
    V1,
    V2,
    V3,
    V4,
    V5_BREAKGLASS,
    V6_NOTICES,
    V7_LANGUAGE,
    V8_PHONE,
    V9_NOTIFICATIONS,
];

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
    use super::super::{SqliteStore, StoreError};
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
        assert_eq!(CURRENT_VERSION, 9);
        assert_eq!(version_of(&dir.path().join("otpd.db")), CURRENT_VERSION);
    }

    #[test]
    fn reopening_keeps_the_version_and_the_data() {
        let (dir, mut store) = open_store();
        store.upsert_user(&user_record("alice")).unwrap();
        drop(store);
        let store = SqliteStore::open(&dir.path().join("otpd.db"), key()).unwrap();
        assert!(store.user("alice").unwrap().is_some());
        drop(store);
        assert_eq!(version_of(&dir.path().join("otpd.db")), CURRENT_VERSION);
    }

    /// A version 2 file, as otpd left it before version 3, with one code and its send.
    fn version_2_database(path: &std::path::Path) {
        let conn = Connection::open(path).unwrap();
        std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        conn.execute_batch(&format!("{V1}{V2}PRAGMA user_version = 2;"))
            .unwrap();
        conn.execute_batch(
            "INSERT INTO codes (challenge, user, protocol, service, salt, mac, issued_at, expires_at)
             VALUES ('c1', 'alice', 'ssh', 'sshd', zeroblob(16), zeroblob(32), 100, 400);
             INSERT INTO sends (id, user, sent_at, challenge) VALUES (7, 'alice', 100, 'c1');",
        )
        .unwrap();
    }

    #[test]
    fn version_3_keeps_every_code_and_send_and_drops_the_indexes_no_login_reads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("otpd.db");
        version_2_database(&path);
        let store = SqliteStore::open(&path, key()).unwrap();
        assert_eq!(
            store.count_rows("SELECT count(*) FROM codes WHERE challenge = 'c1'"),
            1
        );
        assert_eq!(
            store.count_rows(
                "SELECT count(*) FROM sends WHERE id = 7 AND user = 'alice' AND challenge = 'c1'"
            ),
            1
        );
        let indexes: Vec<String> = store
            .conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL ORDER BY name")
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            indexes,
            [
                "audit_by_time",
                "codes_by_expiry",
                "codes_live_by_user",
                "notices_by_time",
                "notices_due",
                "notices_once",
                "reuse_grants_by_expiry",
                "seen_rhosts_by_time",
                "sends_by_user"
            ]
        );
        let foreign_keys =
            store.count_rows("SELECT count(*) FROM pragma_foreign_key_list('sends')");
        assert_eq!(foreign_keys, 0);
        drop(store);
        assert_eq!(version_of(&path), CURRENT_VERSION);
    }

    /// What SQLite plans for `sql`, one line per step.
    fn plan(store: &SqliteStore, sql: &str) -> String {
        store
            .conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .unwrap()
            .query_map([], |row| row.get::<_, String>(3))
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap()
            .join("; ")
    }

    #[test]
    fn what_a_login_and_the_purge_look_up_is_found_through_the_right_index() {
        let (_dir, store) = open_store();
        for (sql, index) in [
            // Issue: the live code to reuse or supersede (live codes only, not every code the
            // user had that day), the send caps.
            (
                "SELECT challenge FROM codes WHERE user = 'a' AND state = 'live' AND expires_at > 1
                 ORDER BY issued_at DESC, rowid DESC LIMIT 1",
                "codes_live_by_user",
            ),
            (
                "UPDATE codes SET state = 'superseded', closed_at = 1
                 WHERE user = 'a' AND state = 'live'",
                "codes_live_by_user",
            ),
            (
                "SELECT count(*) FROM sends WHERE user = 'a' AND sent_at > 1",
                "sends_by_user",
            ),
            // Answer, and taking back the send of an unmailed code.
            (
                "SELECT salt, mac FROM codes WHERE challenge = 'c'",
                "sqlite_autoindex_codes_1",
            ),
            (
                "DELETE FROM sends WHERE user = (SELECT user FROM codes WHERE challenge = 'c')
                 AND challenge = 'c'",
                "sends_by_user",
            ),
            // Purge. (Its sweep of sends scans them: they hold one day of mails, and it runs
            // once per purge interval, not per login.)
            ("DELETE FROM codes WHERE expires_at < 1", "codes_by_expiry"),
        ] {
            let plan = plan(&store, sql);
            assert!(
                plan.contains(&format!("USING INDEX {index}"))
                    || plan.contains(&format!("USING COVERING INDEX {index}")),
                "{sql}\n  planned as: {plan}"
            );
            assert!(!plan.contains("SCAN"), "{sql}\n  planned as: {plan}");
        }
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
        let err = SqliteStore::open(&path, key()).unwrap_err();
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
        let err = SqliteStore::open(&path, key()).unwrap_err();
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
        drop(SqliteStore::open(&store_path, key()).unwrap());
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
        assert!(SqliteStore::open(&path, key()).is_err());
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
