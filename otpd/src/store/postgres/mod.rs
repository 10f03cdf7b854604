//! PostgreSQL behind the [`Store`](super::Store) interface: one database shared by many otpd
//! hosts, so enrolment is done once and every cap and lockout counts across all of them.
//!
//! # How it runs
//!
//! The trait is synchronous (otpd calls the store from blocking threads, behind one mutex per
//! otpd), and the driver, `tokio-postgres`, is asynchronous. A [`PgStore`] therefore owns a
//! small tokio runtime of its own, which drives the connections of its bounded
//! `deadpool-postgres` pool, and each operation blocks on its work there with a deadline
//! ([`PgOptions::deadline`]): a database that is gone or stuck makes the operation fail with
//! [`StoreError::Postgres`](super::StoreError::Postgres) once the deadline has passed, never
//! hang or panic, and the next operation connects again by itself. The server enforces the
//! same deadline (`statement_timeout`, `lock_timeout`, set per connection in `connect`).
//!
//! The runtime is a current-thread one: the thread that waits for an answer is the one that
//! reads it, instead of a worker thread reading it and waking the waiter. A login makes five
//! round trips (its facts are read with the or the answer's first statement, see
//! `ahead`, and a right answer's address is noted from what the answer read, see `seen`), and
//! with a worker thread the hand-overs between threads took about as
//! long as the round trips themselves. Nothing has to run between operations (otpd does not
//! LISTEN); a connection the server closed meanwhile is noticed when the pool hands it out
//! again (see `connect`). (The design asked for a one-worker multi-thread
//! runtime; this is the deviation, for the latency.)
//!
//! # Atomic across hosts
//!
//! No rule relies on anything in one otpd's memory. Each operation that decides is one
//! transaction (READ COMMITTED; reads and one-statement writes run without one) that first
//! takes transaction-scoped advisory locks (`locks`) on what it decides about: the user, and
//! then the remote host for the rules that count host failures (always user before host, so
//! two hosts never wait on each other in a cycle), sent with the `BEGIN` in one round trip.
//! After the locks every statement sees what the previous holder committed, so two
//! answers to one code, two issues against one cap or two wrong answers at the limit are
//! decided one after the other, whichever otpd they reached. A code row is also read
//! `FOR UPDATE`, since another user may answer it (a wrong answer that uses up its attempts).
//!
//! [`Store::in_one_transaction`](super::Store::in_one_transaction) holds one connection with
//! `BEGIN` .. `COMMIT` for its whole unit; each operation inside it after the first is a
//! savepoint, so a failing operation takes back only its own writes (the first one's failure
//! rolls back the transaction, which holds only it). An operation that ran past its deadline
//! leaves the connection in an unknown state: the unit then refuses to commit, and the
//! connection is closed rather than handed out again (`unit`).
//!
//! # Layout
//!
//! As on the SQLite side, one file per concern: `schema` (versioned migrations and the key
//! id), `codes`, `sends`, `lockouts`, `recovery`, `single_secret`, `breakglass`, `notices`,
//! `users`, `admin`, `audit_rows`, `reset`, `purge`, `import` (`otpctl store migrate`'s copy)
//! and `merge` (its `--merge`);
//! `unit` runs the transactions, `later` holds the writes they send with their next round
//! trip, `ahead` reads a login's facts with its next operation's first statement, `locks`
//! names the advisory locks, `sql` holds the query helpers, `connect` makes the connections,
//! `error` maps failures, `interface` maps the trait onto it all.
//!
//! # Differences from the SQLite schema
//!
//! The tables are those of SQLite's version 9, written for PostgreSQL: `BIGINT` times and
//! counters, `BYTEA` salts and MACs, `BOOLEAN` flags, identity columns for ids. The column
//! SQLite calls `user` is `username` (`user` is reserved in PostgreSQL), the audit's `time` is
//! `logged_at`, and codes have an identity `id` to order codes issued in the same second
//! (SQLite used its rowid). Versions count from 1 for PostgreSQL; they are not SQLite's.

mod admin;
mod ahead;
mod audit_rows;
mod breakglass;
mod codes;
mod connect;
mod error;
mod import;
mod interface;
mod later;
mod lockouts;
mod locks;
mod merge;
mod notices;
mod purge;
mod recovery;
mod reset;
pub mod schema;
mod seen;
mod sends;
mod single_secret;
mod sql;
mod unit;
mod users;

#[cfg(test)]
mod test_server;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;

pub use import::Imported;
pub use merge::{Conflict, Merged};

use super::{StoreError, audit_rate, audit_rows as audit_counter};
use crate::server_key::ServerKey;

/// How a [`PgStore`] connects and how long it waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PgOptions {
    /// Connections the pool keeps at most. One otpd uses one at a time (the store is behind
    /// one mutex), plus one while another is being replaced.
    pub pool_size: usize,
    /// How long one operation may take in all, waiting for locks included; also the
    /// server's `statement_timeout` and `lock_timeout`. Past it the operation fails.
    pub deadline: Duration,
    /// How long making a new connection may take (unless the config sets its own).
    pub connect_timeout: Duration,
    /// A pooler in transaction mode stands in front of the servers (`[store] behind_pooler`):
    /// statements are unnamed and the deadlines go with each transaction (see `connect`).
    pub behind_pooler: bool,
    /// That pooler keeps prepared statements across its server connections
    /// (`[store] pooler_keeps_prepared_statements`): statements are prepared as when
    /// connected directly; the rest of `behind_pooler` holds.
    pub pooler_keeps_prepared_statements: bool,
}

impl PgOptions {
    /// Whether every statement is sent unnamed: behind a pooler that would lose or mix up
    /// prepared ones.
    pub(super) fn unnamed_statements(&self) -> bool {
        self.behind_pooler && !self.pooler_keeps_prepared_statements
    }

    /// What `otpctl status` and the start log add after the TLS mode: `, behind a pooler`
    /// (`that keeps prepared statements`), or nothing when connected directly.
    pub fn pooler_note(&self) -> &'static str {
        match (self.behind_pooler, self.pooler_keeps_prepared_statements) {
            (true, true) => ", behind a pooler that keeps prepared statements",
            (true, false) => ", behind a pooler",
            (false, _) => "",
        }
    }
}

impl Default for PgOptions {
    /// A login waits at most 5 s for the database, as it waits for SQLite's lock.
    fn default() -> PgOptions {
        PgOptions {
            pool_size: 4,
            deadline: super::BUSY_TIMEOUT,
            connect_timeout: super::BUSY_TIMEOUT,
            behind_pooler: false,
            pooler_keeps_prepared_statements: false,
        }
    }
}

/// The store on a PostgreSQL database shared by any number of otpd hosts.
///
/// Fields drop in order: the open unit's connection and the pool before the runtime that
/// drives them.
pub struct PgStore {
    /// The connection of the open
    /// [`Store::in_one_transaction`](super::Store::in_one_transaction), if one is open.
    held: Option<unit::Held>,
    pool: Pool,
    options: PgOptions,
    /// What starts a transaction ([`unit::BEGIN`], with the deadlines behind a pooler).
    begin: String,
    key: ServerKey,
    /// Which events of local callers are written one by one (memory, per otpd).
    audit_rate: audit_rate::Throttle,
    /// Where stored audit rows are counted, once committed.
    audit_counter: audit_counter::Counter,
    /// Woken when a notice is queued.
    notices_wake: Option<Arc<tokio::sync::Notify>>,
    /// Drives the pool's connections; every operation blocks on it.
    runtime: Driver,
    /// What `otpctl status` shows: the database, its hosts, TLS or not.
    backend: String,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the connection config: it may hold a password.
        f.debug_struct("PgStore")
            .field("options", &self.options)
            .field("key", &self.key)
            .field("in_transaction", &self.held.is_some())
            .finish_non_exhaustive()
    }
}

impl PgStore {
    /// Connects to the database `config` names, brings its schema to this build's version
    /// (or refuses a newer one), and checks that it was made with `key` (or, new, marks it
    /// as made with it). Fails within about `options.deadline` when the database cannot be
    /// reached.
    pub fn open(
        config: tokio_postgres::Config,
        options: PgOptions,
        key: ServerKey,
    ) -> Result<PgStore, StoreError> {
        PgStore::open_with_tls(config, options, key, None)
    }

    /// [`PgStore::open`] over TLS when `tls` is given: every connection is TLS, the server's
    /// certificate verified by `tls` and its name against the host connected to
    /// (`verify-full`). Without, plain (loopback only, as the config allows).
    pub fn open_with_tls(
        config: tokio_postgres::Config,
        options: PgOptions,
        key: ServerKey,
        tls: Option<Arc<rustls::ClientConfig>>,
    ) -> Result<PgStore, StoreError> {
        let backend = describe(&config, tls.is_some(), &options);
        let runtime = Driver::new()?;
        // The pool spawns its connections' tasks, so it is made inside the runtime.
        let pool = {
            let _inside = runtime.enter();
            connect::connect(config, &options, tls)?
        };
        let store = PgStore {
            backend,
            runtime,
            pool,
            begin: connect::begin_with_deadlines(unit::BEGIN, &options),
            options,
            key,
            held: None,
            audit_rate: audit_rate::Throttle::default(),
            audit_counter: audit_counter::Counter::default(),
            notices_wake: None,
        };
        store.migrate()?;
        Ok(store)
    }

    /// The server's `statement_timeout` for a statement outside a transaction, as PostgreSQL
    /// shows it (`0`: none). Behind a pooler otpd sets its deadlines per transaction only, so
    /// this is what bounds its reads there: the role's own setting.
    pub fn statement_timeout_outside_transactions(&self) -> Result<String, StoreError> {
        self.plain(async |db, _| {
            let row = sql::one(db, "SELECT current_setting('statement_timeout')", &[]).await?;
            Ok(row.try_get(0)?)
        })
    }

    /// Wakes the deliverer, if one is listening, after a notice was queued and committed (or,
    /// inside a unit, queued: a unit rolled back only wakes it for nothing).
    fn wake_notice_deliverer(&self) {
        if let Some(wake) = &self.notices_wake {
            wake.notify_one();
        }
    }
}

/// `postgresql: DBNAME on HOST:PORT, ... (TLS verify-full)`: the database and where, never
/// the user or password; `, behind a pooler` when the hosts are a pooler in transaction mode.
fn describe(config: &tokio_postgres::Config, tls: bool, options: &PgOptions) -> String {
    let ports = config.get_ports();
    let hosts = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let name = match host {
                tokio_postgres::config::Host::Tcp(name) => name.clone(),
                tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
            };
            match ports.get(i).or(ports.first()) {
                Some(port) => format!("{name}:{port}"),
                None => name,
            }
        })
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "postgresql: {} on {hosts} ({}{})",
        config.get_dbname().unwrap_or("?"),
        if tls { "TLS verify-full" } else { "no TLS" },
        options.pooler_note()
    )
}

/// The store's own runtime (current-thread, with timers and I/O): the caller's thread drives
/// the connections while it waits. Shut down without waiting when the store is dropped, so
/// dropping a store inside another runtime (a reload) neither panics nor blocks.
struct Driver(Option<tokio::runtime::Runtime>);

impl Driver {
    fn new() -> Result<Driver, StoreError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| StoreError::Postgres(format!("cannot start its runtime: {e}")))?;
        Ok(Driver(Some(runtime)))
    }

    /// Enters the runtime (for making the pool).
    fn enter(&self) -> Option<tokio::runtime::EnterGuard<'_>> {
        self.0.as_ref().map(tokio::runtime::Runtime::enter)
    }

    /// Runs `work` to its end on the calling thread, giving up after `deadline`.
    fn block_on<T>(
        &self,
        deadline: Duration,
        work: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let Some(runtime) = &self.0 else {
            return Err(StoreError::Postgres("the store is shut down".into()));
        };
        // The timer is made inside the runtime: it needs the runtime's clock. (The
        // connections' tasks run only while some caller blocks here; a connection the server
        // closed meanwhile is found out when the pool hands it out, see `connect`.)
        let work = async { tokio::time::timeout(deadline, work).await };
        match runtime.block_on(work) {
            Ok(done) => done,
            Err(_elapsed) => Err(error::late(deadline)),
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}
