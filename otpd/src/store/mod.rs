//! The daemon's state: codes (as MACs), sends, failure counters, users and audit rows.
//!
//! [`Store`] (in `interface`) is what the rest of otpd sees: the product's rules as operations,
//! each atomic, with time and randomness passed in. [`SqliteStore`] is the embedded default
//! behind it (`sqlite` maps the interface onto its methods); another backend implements the same
//! trait and is held to the same rules by the conformance suite.
//!
//! In SQLite every rule (single use, expiry, attempts, cooldown, send caps, lockouts) is checked
//! and updated inside one `BEGIN IMMEDIATE` transaction per request, so the rules hold across
//! concurrent requests and restarts: two logins racing on the same code cannot both win, and a
//! restart forgets nothing. Time is passed in as unix seconds so the rules are tested
//! without sleeping.
//!
//! The SQLite work is split by job: [`schema`] (versioned migrations), `codes` (issue, verify,
//! invalidate), `sends` (the hourly and daily windows), `lockouts` (consecutive failures),
//! `notices` (mails owed to users), `reset` (an admin's reset of one user), `users`,
//! `audit_rows` and `purge`. [`migrate`] moves a host's SQLite state into PostgreSQL.

mod admin;
mod audit_rate;
mod audit_rows;
mod breakglass;
mod codes;
#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
mod interface;
mod limits;
mod lockouts;
pub mod migrate;
mod notices;
mod postgres;
mod purge;
mod recovery;
mod reset;
pub mod schema;
mod sends;
mod single_secret;
mod sqlite;
mod users;

#[cfg(test)]
mod test_support;

use std::fs::OpenOptions;
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::libc;
use rusqlite::{Connection, OpenFlags, Savepoint, Transaction, TransactionBehavior};

use crate::code::CodeError;
use crate::server_key::ServerKey;

pub use admin::{AuditFilter, EventTally, MailHistory, UserCounts};
pub use audit_rate::{Admission, RateKey, Suppressed};
pub use audit_rows::{AuditRecord, Trimmed};
pub use breakglass::{BreakGlass, BreakGlassLookup, GrantRead};
pub use codes::{IssueOutcome, IssueRequest, VerifyOutcome};
pub use interface::{ReadAhead, Store, UserAndGrant, atomically};
pub use limits::Limits;
pub use lockouts::Lockout;
pub use notices::{AddressSeen, NewNotice, NoticeTo, Queued, QueuedNotice};
pub use postgres::{Conflict, Imported, Merged, PgOptions, PgStore};
pub use purge::PurgeCounts;
pub use recovery::{ALPHABET as RECOVERY_ALPHABET, SET_SIZE as RECOVERY_SET_SIZE};
pub use reset::UserReset;
pub use sends::SendCounts;
pub use users::UserRecord;

/// How long a request waits for another connection's transaction before giving up. Requests
/// queue behind each other instead of failing a login because someone else was writing.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// WAL pages after which SQLite checkpoints (see [`SqliteStore::open`]).
const WAL_CHECKPOINT_PAGES: i64 = 3_000;

/// Why a store operation failed. Every one of them fails the login closed ("unavailable").
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed (I/O, corruption, busy past the timeout, a constraint).
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The database was written by a newer otpd; an older build must not guess at its tables.
    #[error(
        "database schema version {found} is newer than this otpd knows ({known}); upgrade otpd or restore a matching database"
    )]
    NewerSchema {
        /// `PRAGMA user_version` found in the file.
        found: i64,
        /// The newest version this build can migrate to.
        known: i64,
    },
    /// `PRAGMA user_version` is negative: the file was not written by otpd.
    #[error("database schema version {found} is not one otpd writes; is this otpd's database?")]
    ForeignSchema {
        /// `PRAGMA user_version` found in the file.
        found: i64,
    },
    /// SQLite would not switch to write-ahead logging (e.g. on a file system without shared
    /// memory), which the concurrency rules rely on.
    #[error("database could not use WAL journaling (journal_mode is {0})")]
    JournalMode(String),
    /// The OS refused to create or inspect the database file.
    #[error("database {path}: {source}")]
    Io {
        /// The database file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The database file is not safe to trust (a symlink, not a regular file, another owner,
    /// or open to group or others): whoever can write it can reset lockouts and caps.
    #[error("database {path}: {reason}")]
    UnsafeFile {
        /// The database file.
        path: PathBuf,
        /// What is wrong, and what to fix.
        reason: String,
    },
    /// A backend's `in_one_transaction` returned without running the work it was given.
    #[error("the store did not run a transaction's work")]
    WorkNotRun,
    /// The limits passed in cannot be enforced safely (e.g. a code length outside 6..=10).
    #[error("invalid limits: {0}")]
    InvalidLimits(&'static str),
    /// A user record that must not be stored (empty name, unknown protocol).
    #[error("invalid user record: {0}")]
    InvalidUser(String),
    /// A code or its MAC could not be produced.
    #[error("code: {0}")]
    Code(#[from] CodeError),
    /// PostgreSQL failed, refused, or did not answer within the deadline. The text is built
    /// by `postgres::error` from the error's class and primary message only: never a query's
    /// parameters, a row's values (PostgreSQL's DETAIL) or the connection's password.
    #[error("database (PostgreSQL): {0}")]
    Postgres(String),
    /// The shared database holds rows made under another server key: codes issued by the
    /// other hosts would never verify here, and codes issued here would not verify there.
    #[error(
        "the database was made with another server key (key id {found}..., this otpd's is {ours}...); give every host the same key file"
    )]
    OtherServerKey {
        /// The start of the key id stored in the database.
        found: String,
        /// The start of this otpd's key id.
        ours: String,
    },
}

/// One connection to the state database, holding the server key that MACs codes.
///
/// Each `SqliteStore` is one SQLite connection, and it holds the file for itself while it is open
/// (see [`SqliteStore::open`]): a second `SqliteStore` on the same file, in this or another process, waits
/// for it to close. Every check-and-update is one immediate transaction.
pub struct SqliteStore {
    conn: Connection,
    key: ServerKey,
    path: PathBuf,
    /// Which events of local callers are written one by one; see `audit_rate`.
    audit_rate: audit_rate::Throttle,
    /// Where stored audit rows are counted, once committed; see `audit_rows`.
    audit_counter: audit_rows::Counter,
    /// Woken when a notice is queued; see `notices`.
    notices_wake: Option<std::sync::Arc<tokio::sync::Notify>>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating with mode 0600 if missing) the database at `path`, takes it for this
    /// connection alone (`locking_mode=EXCLUSIVE`), sets WAL journaling, `synchronous=NORMAL`,
    /// a 5 s busy timeout and foreign keys, and migrates the schema.
    ///
    /// An existing file is refused if it is a symlink, not a regular file, owned by another
    /// uid, or has any group or other permission bit; a schema newer than this build knows is
    /// refused with [`StoreError::NewerSchema`].
    pub fn open(path: &Path, key: ServerKey) -> Result<SqliteStore, StoreError> {
        prepare_file(path)?;
        // SQLITE_OPEN_NOFOLLOW: a symlink swapped in after our check is still refused.
        // No SQLITE_OPEN_CREATE: the file was created (or checked) above.
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_NOFOLLOW;
        let mut conn = Connection::open_with_flags(path, flags)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        // otpd is the database's only user, so it holds the file lock for as long as it runs:
        // SQLite then takes no POSIX lock per transaction and keeps the WAL index in memory
        // instead of a -shm file. A second otpd on the same file is refused (SQLITE_BUSY)
        // instead of sharing it.
        conn.pragma_update(None, "locking_mode", "EXCLUSIVE")?;
        let mode = retry_while_busy(|| {
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get::<_, String>(0))
        })?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::JournalMode(mode));
        }
        // NORMAL is durable across application crashes in WAL mode; a power cut may lose the
        // last transactions, which at worst forgets a send or a failure count.
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        // Deleted MACs, emails and audit rows are overwritten, not left in free pages.
        conn.pragma_update(None, "secure_delete", "ON")?;
        // Copy the WAL back into the database every 3,000 pages (12 MiB of WAL) rather than
        // SQLite's 1,000: a login writes about ten pages, and the checkpoint runs inside a
        // login's commit, so fewer checkpoints mean fewer logins that wait for one. Much more
        // would make that one wait long, since its fsync then flushes all the WAL written since
        // the last one (bench/README.md, "WAL checkpoints", has the measurements). Nothing else
        // flushes the WAL: at the rate people log in, the kernel's own writeback has put the
        // WAL on disk long before the next checkpoint, whose fsync then finds little to write.
        conn.pragma_update(None, "wal_autocheckpoint", WAL_CHECKPOINT_PAGES)?;
        schema::migrate(&mut conn)?;
        Ok(SqliteStore {
            conn,
            key,
            path: path.to_path_buf(),
            audit_rate: audit_rate::Throttle::default(),
            audit_counter: audit_rows::Counter::default(),
            notices_wake: None,
        })
    }

    /// A database in memory, gone when otpd stops, for a relay (DMZ) host: it stores no code,
    /// user or audit row (every login is forwarded), and holds only what the socket server
    /// keeps of misbehaving peers. Nothing is written to disk.
    pub fn in_memory(key: ServerKey) -> Result<SqliteStore, StoreError> {
        let mut conn = Connection::open_in_memory()?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        schema::migrate(&mut conn)?;
        Ok(SqliteStore {
            conn,
            key,
            path: PathBuf::from(":memory:"),
            audit_rate: audit_rate::Throttle::default(),
            audit_counter: audit_rows::Counter::default(),
            notices_wake: None,
        })
    }

    /// Starts the one transaction a request runs in. `IMMEDIATE` takes the write lock at the
    /// start, so what the request reads cannot change before it writes; other connections wait
    /// up to [`BUSY_TIMEOUT`] for it.
    ///
    /// Inside [`SqliteStore::in_one_transaction`] it is a savepoint of that transaction
    /// instead: the operation's writes then commit with the others, and its failure takes back
    /// only its own.
    fn immediate(conn: &mut Connection) -> Result<Unit<'_>, StoreError> {
        if conn.is_autocommit() {
            Ok(Unit::Own(conn.transaction_with_behavior(
                TransactionBehavior::Immediate,
            )?))
        } else {
            Ok(Unit::Nested(conn.savepoint()?))
        }
    }

    /// See [`Store::in_one_transaction`]. SQLite: `BEGIN IMMEDIATE`, `work`, `COMMIT`; an
    /// `Err` from `work` rolls back and is returned, a panic in `work` rolls back and goes on
    /// unwinding.
    pub fn in_one_transaction(
        &mut self,
        work: &mut dyn FnMut(&mut dyn Store) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        if !self.conn.is_autocommit() {
            return work(self);
        }
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        let worked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(&mut *self)));
        match worked {
            Ok(Ok(())) => {
                let committed = self.conn.execute_batch("COMMIT");
                if committed.is_err() {
                    let _ = self.conn.execute_batch("ROLLBACK");
                }
                self.audit_counter.settle(committed.is_ok());
                Ok(committed?)
            }
            Ok(Err(failed)) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                self.audit_counter.settle(false);
                Err(failed)
            }
            Err(panic) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                self.audit_counter.settle(false);
                std::panic::resume_unwind(panic)
            }
        }
    }
}

/// One operation's unit of work: a transaction of its own, or a savepoint inside the
/// transaction [`SqliteStore::in_one_transaction`] opened. Either reads and writes as the
/// connection and commits (or, dropped, rolls back) the operation's writes.
pub(super) enum Unit<'c> {
    Own(Transaction<'c>),
    Nested(Savepoint<'c>),
}

impl std::ops::Deref for Unit<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        match self {
            Unit::Own(tx) => tx,
            Unit::Nested(savepoint) => savepoint,
        }
    }
}

impl Unit<'_> {
    /// Commits the operation's writes (into the outer transaction, when nested).
    pub(super) fn commit(self) -> Result<(), StoreError> {
        match self {
            Unit::Own(tx) => tx.commit()?,
            Unit::Nested(savepoint) => savepoint.commit()?,
        }
        Ok(())
    }
}

/// Retries `step` while SQLite answers SQLITE_BUSY, for up to [`BUSY_TIMEOUT`]. Switching a
/// fresh file to WAL needs an exclusive lock, and SQLite reports a clash there at once instead of
/// calling the busy handler, so two connections opening a new database together would otherwise
/// fail for no reason.
fn retry_while_busy<T>(mut step: impl FnMut() -> rusqlite::Result<T>) -> Result<T, StoreError> {
    let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
    loop {
        match step() {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            other => return Ok(other?),
        }
    }
}

/// Creates the database file with mode 0600 (before SQLite would create it with the umask's
/// mode), or checks an existing one: never through a symlink, and only a regular file owned
/// by us with no group or other access. SQLite gives the `-wal` and `-shm` files the same
/// mode as the database.
fn prepare_file(path: &Path) -> Result<(), StoreError> {
    let unsafe_file = |reason: String| StoreError::UnsafeFile {
        path: path.to_path_buf(),
        reason,
    };
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|source| {
            if source.raw_os_error() == Some(libc::ELOOP) {
                unsafe_file("is a symbolic link; refusing to follow it".into())
            } else {
                StoreError::Io {
                    path: path.to_path_buf(),
                    source,
                }
            }
        })?;
    let meta = file.metadata().map_err(|source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if !meta.file_type().is_file() {
        return Err(unsafe_file("is not a regular file".into()));
    }
    let euid = nix::unistd::geteuid().as_raw();
    if meta.uid() != euid {
        return Err(unsafe_file(format!(
            "is owned by uid {}, but otpd runs as uid {euid}",
            meta.uid()
        )));
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(unsafe_file(format!(
            "has mode {mode:04o}; group and others must have no access (chmod 600)"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::test_support::*;
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::sync::{Arc, Barrier};

    #[test]
    fn a_new_database_file_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("otpd.db");
        let mut store = SqliteStore::open(&path, key()).unwrap();
        // Write something so the -wal file exists too.
        store
            .issue(&request("alice", "ssh"), &limits(), T0, &mut rng())
            .unwrap();
        for file in ["otpd.db", "otpd.db-wal"] {
            let mode = std::fs::metadata(dir.path().join(file))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{file}");
        }
        assert!(
            !dir.path().join("otpd.db-shm").exists(),
            "the WAL index stays in memory"
        );
    }

    #[test]
    fn a_second_process_cannot_share_an_open_database() {
        let (dir, mut store) = open_store();
        store
            .issue(&request("alice", "ssh"), &limits(), T0, &mut rng())
            .unwrap();
        let other = rusqlite::Connection::open(dir.path().join("otpd.db")).unwrap();
        other.busy_timeout(Duration::from_millis(50)).unwrap();
        let read = other.query_row("SELECT count(*) FROM codes", [], |row| row.get::<_, i64>(0));
        assert!(read.is_err(), "the file is otpd's alone: {read:?}");
        drop(store);
        let read = other.query_row("SELECT count(*) FROM codes", [], |row| row.get::<_, i64>(0));
        assert_eq!(read.unwrap(), 1, "released when otpd closes it");
    }

    #[test]
    fn connections_use_exclusive_wal_normal_sync_busy_timeout_and_foreign_keys() {
        let (_dir, store) = open_store();
        let get = |name: &str| -> String {
            store
                .conn
                .query_row(&format!("PRAGMA {name}"), [], |row| {
                    row.get::<_, rusqlite::types::Value>(0)
                })
                .map(|v| match v {
                    rusqlite::types::Value::Integer(i) => i.to_string(),
                    rusqlite::types::Value::Text(t) => t,
                    other => format!("{other:?}"),
                })
                .unwrap()
        };
        assert_eq!(get("journal_mode"), "wal");
        assert_eq!(get("locking_mode"), "exclusive");
        assert_eq!(get("wal_autocheckpoint"), WAL_CHECKPOINT_PAGES.to_string());
        assert_eq!(get("synchronous"), "1");
        assert_eq!(get("busy_timeout"), "5000");
        assert_eq!(get("foreign_keys"), "1");
    }

    #[test]
    fn a_database_readable_by_others_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("otpd.db");
        drop(SqliteStore::open(&path, key()).unwrap());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = SqliteStore::open(&path, key()).unwrap_err();
        assert!(matches!(err, StoreError::UnsafeFile { .. }), "{err:?}");
        assert!(err.to_string().contains("chmod 600"), "{err}");
    }

    #[test]
    fn a_symlinked_database_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.db");
        drop(SqliteStore::open(&real, key()).unwrap());
        let link = dir.path().join("otpd.db");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let err = SqliteStore::open(&link, key()).unwrap_err();
        assert!(matches!(err, StoreError::UnsafeFile { .. }), "{err:?}");
    }

    #[test]
    fn a_directory_in_place_of_the_database_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("otpd.db");
        std::fs::create_dir(&path).unwrap();
        assert!(SqliteStore::open(&path, key()).is_err());
    }

    #[test]
    fn debug_shows_neither_key_nor_codes() {
        let (_dir, mut store) = open_store();
        let shown = format!("{store:?}");
        assert!(shown.contains("[redacted]"), "{shown}");
        assert!(!shown.contains("77, 77"), "{shown}");
        let outcome = store
            .issue(&request("alice", "ssh"), &limits(), T0, &mut rng())
            .unwrap();
        let code = issued_code(&outcome);
        let shown = format!("{outcome:?}");
        assert!(!shown.contains(&code), "{shown}");
    }

    #[test]
    fn a_hundred_threads_answering_one_code_at_once_give_exactly_one_success() {
        let (_dir, mut store) = open_store();
        let limits = limits();
        let outcome = store
            .issue(&request("alice", "ssh"), &limits, T0, &mut rng())
            .unwrap();
        let (challenge, code) = (challenge_of(&outcome), issued_code(&outcome));
        // One store shared behind a lock, as the daemon shares it.
        let store = Arc::new(std::sync::Mutex::new(store));

        let threads = 100;
        let barrier = Arc::new(Barrier::new(threads));
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let (store, barrier) = (Arc::clone(&store), Arc::clone(&barrier));
                let (challenge, code) = (challenge.clone(), code.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    store
                        .lock()
                        .unwrap()
                        .verify(
                            &challenge,
                            "alice",
                            "ssh",
                            Some("192.0.2.1"),
                            &common::secret::SecretString::new(code),
                            &limits,
                            T0 + 1,
                        )
                        .unwrap()
                })
            })
            .collect();
        let outcomes: Vec<VerifyOutcome> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let successes = outcomes
            .iter()
            .filter(|o| matches!(o, VerifyOutcome::Success))
            .count();
        assert_eq!(successes, 1, "{outcomes:?}");
        assert!(
            outcomes.iter().all(|o| matches!(
                o,
                VerifyOutcome::Success | VerifyOutcome::Dead | VerifyOutcome::LockedOut { .. }
            )),
            "{outcomes:?}"
        );
    }

    #[test]
    fn a_database_is_opened_again_after_its_store_closed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("otpd.db");
        for user in ["alice", "bob"] {
            let mut store = SqliteStore::open(&path, key()).unwrap();
            store
                .issue(&request(user, "ssh"), &limits(), T0, &mut rng())
                .unwrap();
        }
        let store = SqliteStore::open(&path, key()).unwrap();
        let codes: i64 = store
            .conn
            .query_row("SELECT count(*) FROM codes", [], |row| row.get(0))
            .unwrap();
        assert_eq!(codes, 2);
    }
}
