//! The PostgreSQL schema, versioned in a table, and the key id that ties a database to one
//! server key.
//!
//! Migration `n` (1-based) takes a database from version `n - 1` to `n`; `otpd_schema` holds
//! one row per version applied. The pending migrations, their rows and the key check run in
//! one transaction under one advisory lock ([`MIGRATION_LOCK`]), so two otpd starting at once,
//! of the same or of different versions, never migrate together: the second waits, then finds
//! the work done (or a version newer than it knows, and refuses). A failed migration leaves
//! the database as it was. A database newer than [`CURRENT_VERSION`] is refused: this build
//! cannot know what the newer tables mean, and guessing could weaken a rule.
//!
//! Versions count from 1 for PostgreSQL: version 1 holds what SQLite's version 9 holds (see
//! the module docs of `postgres` for the few names that differ).

use super::super::StoreError;
use super::PgStore;
use super::locks::Lock;
use super::sql::{exec, maybe, one};
use super::unit::Conn;
use crate::server_key::ServerKey;

/// The one 64-bit advisory lock migrations run under ("otpd" "mig" in ASCII).
pub const MIGRATION_LOCK: i64 = 0x6f74_7064_006d_6967;

/// Version 1: SQLite's version 9, for PostgreSQL.
///
/// - `codes` holds a salted MAC per code, never the code; `state` is `live` until the code is
///   used, superseded, or dies, and `closed_at` says when. `recovery_only` marks a challenge
///   whose mail failed: it answers only to a recovery code. `id` orders codes issued in the
///   same second.
/// - `sends` keeps one row per mailed code for the hourly and daily windows.
/// - `lockouts` counts consecutive failures per user and per remote address.
/// - `users`, `recovery_codes`, `reuse_grants`, `breakglass`, `notices`, `seen_rhosts` and
///   `audit` as in SQLite.
/// - `otpd_meta` holds the key id ([`ServerKey::key_id`]), never the key.
const V1: &str = "
CREATE TABLE codes (
    id            BIGINT GENERATED ALWAYS AS IDENTITY,
    challenge     TEXT PRIMARY KEY,
    username      TEXT NOT NULL,
    protocol      TEXT NOT NULL,
    service       TEXT NOT NULL,
    rhost         TEXT,
    salt          BYTEA NOT NULL CHECK (length(salt) = 16),
    mac           BYTEA NOT NULL CHECK (length(mac) = 32),
    issued_at     BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL,
    attempts      BIGINT NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    state         TEXT NOT NULL DEFAULT 'live'
                  CHECK (state IN ('live', 'used', 'superseded', 'dead')),
    closed_at     BIGINT,
    recovery_only BOOLEAN NOT NULL DEFAULT false,
    CHECK ((state = 'live') = (closed_at IS NULL))
);
CREATE INDEX codes_live_by_user ON codes (username) WHERE state = 'live';
CREATE INDEX codes_by_expiry ON codes (expires_at);

CREATE TABLE sends (
    id        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username  TEXT NOT NULL,
    sent_at   BIGINT NOT NULL,
    challenge TEXT
);
CREATE INDEX sends_by_user ON sends (username, sent_at);

CREATE TABLE lockouts (
    kind         TEXT NOT NULL CHECK (kind IN ('user', 'host')),
    subject      TEXT NOT NULL,
    failures     BIGINT NOT NULL DEFAULT 0 CHECK (failures >= 0),
    locked_until BIGINT,
    updated_at   BIGINT NOT NULL,
    PRIMARY KEY (kind, subject)
);

CREATE TABLE users (
    name       TEXT PRIMARY KEY CHECK (name <> ''),
    email      TEXT,
    enabled    BOOLEAN NOT NULL,
    protocols  TEXT,
    language   TEXT,
    phone      TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE audit (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    logged_at  BIGINT NOT NULL,
    event      TEXT NOT NULL,
    username   TEXT,
    service    TEXT,
    protocol   TEXT,
    rhost      TEXT,
    caller_uid BIGINT,
    detail     TEXT
);
CREATE INDEX audit_by_time ON audit (logged_at);

CREATE TABLE reuse_grants (
    username   TEXT NOT NULL,
    service    TEXT NOT NULL,
    rhost      TEXT NOT NULL,
    salt       BYTEA NOT NULL CHECK (length(salt) = 16),
    mac        BYTEA NOT NULL CHECK (length(mac) = 32),
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (username, service, rhost)
);
CREATE INDEX reuse_grants_by_expiry ON reuse_grants (expires_at);

CREATE TABLE recovery_codes (
    username   TEXT NOT NULL,
    slot       BIGINT NOT NULL,
    salt       BYTEA NOT NULL CHECK (length(salt) = 16),
    mac        BYTEA NOT NULL CHECK (length(mac) = 32),
    created_at BIGINT NOT NULL,
    used_at    BIGINT,
    PRIMARY KEY (username, slot)
);

CREATE TABLE breakglass (
    username   TEXT PRIMARY KEY CHECK (username <> ''),
    cidr       TEXT,
    granted_by BIGINT NOT NULL,
    granted_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL CHECK (expires_at > granted_at)
);

CREATE TABLE notices (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind        TEXT NOT NULL,
    username    TEXT NOT NULL,
    address     TEXT NOT NULL,
    to_admin    BOOLEAN NOT NULL DEFAULT false,
    channel     TEXT,
    service     TEXT NOT NULL,
    rhost       TEXT,
    detail      TEXT NOT NULL DEFAULT '',
    event_key   TEXT,
    created_at  BIGINT NOT NULL,
    next_try_at BIGINT NOT NULL,
    tries       BIGINT NOT NULL DEFAULT 0,
    sent_at     BIGINT
);
CREATE INDEX notices_due ON notices (next_try_at) WHERE sent_at IS NULL;
CREATE INDEX notices_by_time ON notices (created_at);
CREATE UNIQUE INDEX notices_once ON notices (kind, username, to_admin, event_key)
    WHERE event_key IS NOT NULL;

CREATE TABLE seen_rhosts (
    username  TEXT NOT NULL,
    rhost     TEXT NOT NULL,
    last_seen BIGINT NOT NULL,
    PRIMARY KEY (username, rhost)
);
CREATE INDEX seen_rhosts_by_time ON seen_rhosts (last_seen);

CREATE TABLE otpd_meta (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
";

/// The migrations, oldest first. Append only: a shipped migration never changes.
const MIGRATIONS: &[&str] = &[V1];

/// The schema version this build creates and understands.
pub const CURRENT_VERSION: i64 = MIGRATIONS.len() as i64;

/// The versions table, made before anything else (it is how a version is read).
const VERSIONS_TABLE: &str = "
CREATE TABLE IF NOT EXISTS otpd_schema (
    version    BIGINT PRIMARY KEY CHECK (version > 0),
    applied_at BIGINT NOT NULL
)";

impl PgStore {
    /// Brings the database to [`CURRENT_VERSION`] and checks its key id, all under
    /// [`MIGRATION_LOCK`] in one transaction.
    pub(super) fn migrate(&self) -> Result<(), StoreError> {
        self.unit(&[Lock::Single(MIGRATION_LOCK)], async |db, key| {
            migrate_in(db, key).await
        })
    }
}

async fn migrate_in(db: &Conn, key: &ServerKey) -> Result<(), StoreError> {
    db.batch_execute(VERSIONS_TABLE).await?;
    let found: i64 = one(db, "SELECT coalesce(max(version), 0) FROM otpd_schema", &[])
        .await?
        .try_get(0)?;
    if found > CURRENT_VERSION {
        return Err(StoreError::NewerSchema {
            found,
            known: CURRENT_VERSION,
        });
    }
    for (version, sql) in (1..).zip(MIGRATIONS) {
        if version <= found {
            continue;
        }
        db.batch_execute(sql).await?;
        exec(
            db,
            "INSERT INTO otpd_schema (version, applied_at)
             VALUES ($1, extract(epoch FROM now())::bigint)",
            &[&version],
        )
        .await?;
    }
    check_key(db, key).await
}

/// Stores the key id in a new database, or refuses one made with another key.
async fn check_key(db: &Conn, key: &ServerKey) -> Result<(), StoreError> {
    let ours = key.key_id();
    let stored = maybe(db, "SELECT value FROM otpd_meta WHERE name = 'key_id'", &[]).await?;
    match stored {
        None => {
            exec(
                db,
                "INSERT INTO otpd_meta (name, value) VALUES ('key_id', $1)",
                &[&ours],
            )
            .await?;
            Ok(())
        }
        Some(row) => {
            let found: String = row.try_get(0)?;
            if found == ours {
                Ok(())
            } else {
                Err(StoreError::OtherServerKey {
                    found: common::text::escape_for_log(&prefix(&found)),
                    ours: prefix(&ours),
                })
            }
        }
    }
}

/// The first 12 characters of a key id: enough to tell keys apart in a message.
fn prefix(key_id: &str) -> String {
    key_id.chars().take(12).collect()
}
