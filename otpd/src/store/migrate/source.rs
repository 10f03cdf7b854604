//! Reading the SQLite side: every row of [`TABLES`] in one transaction that also keeps any
//! otpd off the file until the copy is over.
//!
//! The file is opened read-write (never created, never migrated, never written): only a
//! writer can hold the lock that keeps otpd from starting on the file meanwhile, and only a
//! read-write connection can replay the write-ahead log an otpd that crashed left behind,
//! which holds its last transactions.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, Row};
use sha2::{Digest, Sha256};

use super::super::schema::CURRENT_VERSION;
use super::{Kind, TABLES, Table, Value};

/// How long to wait for SQLite's lock. A running otpd holds it for as long as it runs, so
/// waiting longer would only delay the same answer.
const LOCK_WAIT: Duration = Duration::from_secs(2);

/// Why the SQLite side cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// No database file where the config says.
    #[error("{path}: no otpd database there ({source}); is state_dir right?")]
    Missing {
        /// The file looked for.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A symlink or not a regular file.
    #[error("{0}: not a regular file (symlinks are refused)")]
    NotRegular(PathBuf),
    /// Someone holds the lock: otpd runs on this state directory.
    #[error(
        "{0} is in use, most likely by a running otpd: stop it first (systemctl stop otpd), so no login is written after the copy"
    )]
    InUse(PathBuf),
    /// A schema this build does not copy.
    #[error(
        "{path} has schema version {found}, this otpctl copies version {CURRENT_VERSION}: {advice}"
    )]
    Version {
        /// The file.
        path: PathBuf,
        /// Its `user_version`.
        found: i64,
        /// What to do.
        advice: &'static str,
    },
    /// A flag column held something other than 0 or 1.
    #[error("{table}.{column} holds a value that is neither 0 nor 1; nothing was copied")]
    BadFlag {
        /// The table.
        table: &'static str,
        /// The column.
        column: &'static str,
    },
    /// SQLite failed.
    #[error("{path}: {source}")]
    Sqlite {
        /// The file.
        path: PathBuf,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
}

/// Every row of every copied table, read in one transaction, which stays open (holding the
/// file's lock) until the snapshot is dropped.
pub struct Snapshot {
    /// Each table with its rows, in [`TABLES`]' order.
    pub tables: Vec<(&'static Table, Vec<Vec<Value>>)>,
    /// The name of the host the state is of ([`Snapshot::of_host`]), part of its audit
    /// trail's name.
    host: String,
    /// The connection whose open transaction holds the lock; dropping it rolls back (nothing
    /// was written) and lets go of the file.
    _lock: Connection,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Counts only: rows hold addresses and MACs.
        let counts: Vec<(&str, usize)> = self
            .tables
            .iter()
            .map(|(table, rows)| (table.name, rows.len()))
            .collect();
        f.debug_struct("Snapshot").field("rows", &counts).finish()
    }
}

impl Snapshot {
    /// Reads the database at `path` (otpd's `otpd.db`), or fails without having changed it.
    pub fn read(path: &Path) -> Result<Snapshot, SourceError> {
        let meta = std::fs::symlink_metadata(path).map_err(|source| SourceError::Missing {
            path: path.to_path_buf(),
            source,
        })?;
        if !meta.file_type().is_file() {
            return Err(SourceError::NotRegular(path.to_path_buf()));
        }
        let sqlite = |source| SourceError::Sqlite {
            path: path.to_path_buf(),
            source,
        };
        // No SQLITE_OPEN_CREATE; NOFOLLOW refuses a symlink swapped in after the check.
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_NOFOLLOW;
        let conn = Connection::open_with_flags(path, flags).map_err(sqlite)?;
        conn.busy_timeout(LOCK_WAIT).map_err(sqlite)?;
        // Like otpd: the lock, once had, is kept until the connection closes.
        conn.pragma_update(None, "locking_mode", "EXCLUSIVE")
            .map_err(sqlite)?;
        let in_use = |e: rusqlite::Error| match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
                SourceError::InUse(path.to_path_buf())
            }
            _ => sqlite(e),
        };
        // The write lock (no write follows): otpd cannot start on the file while it is held.
        conn.execute_batch("BEGIN IMMEDIATE").map_err(in_use)?;
        let found: i64 = conn
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .map_err(in_use)?;
        if found != CURRENT_VERSION {
            return Err(SourceError::Version {
                path: path.to_path_buf(),
                found,
                advice: if found < CURRENT_VERSION {
                    "start this version of otpd on it once (it upgrades the file), stop it, and migrate again"
                } else {
                    "use the otpctl of the otpd that wrote it"
                },
            });
        }
        let mut tables = Vec::with_capacity(TABLES.len());
        for table in TABLES {
            let rows = read_table(&conn, table).map_err(|e| match e {
                ReadError::Sqlite(e) => in_use(e),
                ReadError::Flag(column) => SourceError::BadFlag {
                    table: table.name,
                    column,
                },
            })?;
            tables.push((table, rows));
        }
        Ok(Snapshot {
            tables,
            host: String::new(),
            _lock: conn,
        })
    }

    /// A SHA-256 of every row, in hex: the same state read twice gives the same text. The
    /// target keeps it, so the same state is never merged in twice (its audit rows and sends
    /// would count double); it names no value.
    pub fn fingerprint(&self) -> String {
        let mut hash = Sha256::new();
        for (table, rows) in &self.tables {
            hash.update(table.name.as_bytes());
            hash.update((rows.len() as u64).to_be_bytes());
            for value in rows.iter().flatten() {
                hash_value(&mut hash, value);
            }
        }
        hex(hash)
    }

    /// This snapshot, as the state of the host named `host`: two hosts whose last audit rows
    /// happen to be the same (set up by the same script in the same second) are not taken for
    /// one host merged twice ([`Snapshot::audit_tail`]).
    pub fn of_host(mut self, host: &str) -> Snapshot {
        self.host = host.to_string();
        self
    }

    /// The audit rows, in the order otpd wrote them.
    pub fn audit(&self) -> &[Vec<Value>] {
        self.tables
            .iter()
            .find(|(table, _)| table.name == "audit")
            .map_or(&[], |(_, rows)| rows.as_slice())
    }

    /// What names this host's audit trail up to its `end`th row: a SHA-256 of the host's name
    /// and the (at most) [`TAIL_ROWS`] rows before it, in hex; `None` for `end` 0 or past the
    /// rows. The target keeps the one of a whole snapshot it copied or merged. A later state of
    /// the same host (one that went back to SQLite after its move) still holds those rows, in
    /// the same order, followed by newer ones: finding the name again tells which rows the
    /// database has. Several rows rather than one, since one host may log the same event twice
    /// in a second.
    pub fn audit_tail(&self, end: usize) -> Option<String> {
        let rows = self.audit().get(end.saturating_sub(TAIL_ROWS)..end)?;
        if rows.is_empty() {
            return None;
        }
        let mut hash = Sha256::new();
        hash.update(b"audit tail");
        tagged(&mut hash, TEXT, self.host.as_bytes());
        for row in rows {
            for value in row {
                hash_value(&mut hash, value);
            }
        }
        Some(hex(hash))
    }

    /// How many rows of each table were read.
    pub fn counts(&self) -> Vec<(&'static str, u64)> {
        self.tables
            .iter()
            .map(|(table, rows)| (table.name, rows.len() as u64))
            .collect()
    }
}

/// How many audit rows name a host's trail in [`Snapshot::audit_tail`].
pub const TAIL_ROWS: usize = 3;

/// The tag of a text in [`hash_value`].
const TEXT: u8 = 2;

/// Adds `value` to `hash`, tagged and length-prefixed: no two different rows hash the same
/// bytes.
fn hash_value(hash: &mut Sha256, value: &Value) {
    match value {
        Value::Int(None) | Value::Text(None) => tagged(hash, 0, &[]),
        Value::Int(Some(v)) => tagged(hash, 1, &v.to_be_bytes()),
        Value::Text(Some(v)) => tagged(hash, TEXT, v.as_bytes()),
        Value::Blob(v) => tagged(hash, 3, v),
        Value::Bool(v) => tagged(hash, 4, &[u8::from(*v)]),
    }
}

/// Adds `tag`, the length of `bytes` and `bytes` to `hash`.
fn tagged(hash: &mut Sha256, tag: u8, bytes: &[u8]) {
    hash.update([tag]);
    hash.update((bytes.len() as u64).to_be_bytes());
    hash.update(bytes);
}

fn hex(hash: Sha256) -> String {
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

enum ReadError {
    Sqlite(rusqlite::Error),
    Flag(&'static str),
}

fn read_table(conn: &Connection, table: &Table) -> Result<Vec<Vec<Value>>, ReadError> {
    let mut statement = conn.prepare(&table.select()).map_err(ReadError::Sqlite)?;
    let mut rows = statement.query([]).map_err(ReadError::Sqlite)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(ReadError::Sqlite)? {
        let mut values = Vec::with_capacity(table.columns.len());
        for (index, (column, _, kind)) in table.columns.iter().enumerate() {
            values.push(value(row, index, *kind).map_err(|e| match e {
                ReadError::Flag(_) => ReadError::Flag(column),
                other => other,
            })?);
        }
        out.push(values);
    }
    Ok(out)
}

fn value(row: &Row<'_>, index: usize, kind: Kind) -> Result<Value, ReadError> {
    let get = |e| ReadError::Sqlite(e);
    Ok(match kind {
        Kind::Int => Value::Int(row.get(index).map_err(get)?),
        Kind::Text => Value::Text(row.get(index).map_err(get)?),
        Kind::Blob => Value::Blob(row.get(index).map_err(get)?),
        Kind::Bool => match row.get::<_, i64>(index).map_err(get)? {
            0 => Value::Bool(false),
            1 => Value::Bool(true),
            _ => return Err(ReadError::Flag("")),
        },
    })
}
