//! Units of work: every operation runs here, as one transaction of its own or as a savepoint
//! of the unit [`Store::in_one_transaction`] holds open, always within the deadline.
//!
//! A connection is handed back to the pool only after its transaction ended cleanly (`COMMIT`
//! or `ROLLBACK` answered). One whose work failed half-way, whose rollback failed, or whose
//! operation was abandoned at the deadline (the future dropped mid-query) is taken out of the
//! pool and closed ([`Lease`]): the server then rolls its transaction back, and nobody else
//! can find themselves inside it. So is one whose server refused a write as read-only
//! (SQLSTATE 25006: a primary turned standby, or set read-only, under an open connection):
//! kept, it would refuse every write after; closed, the next operation connects anew, and the
//! connection's `target_session_attrs=read-write` finds the host that takes writes.
//!
//! An operation that is a transaction of its own is run again when the server rolled it back
//! to break a deadlock (40P01) or a serialization conflict (40001): nothing of it was kept,
//! and the next attempt waits for the other transaction instead of failing a login that
//! merely met another host's. At most [`ATTEMPTS`] times, all within the one deadline. Inside
//! a held unit it is not: the whole unit was rolled back, which only its caller can redo.
//!
//! Round trips, which are what a login on PostgreSQL pays for (bench/README.md): nothing waits
//! for an answer it does not need. A unit's `BEGIN` goes out with its first operation, which
//! takes no savepoint; each later operation's `RELEASE` of the one before, `SAVEPOINT` and
//! locks go out with its first statement; an operation's last write, whose answer decides
//! nothing, and the audit rows a unit records are left [`Later`] and go out with the next
//! round trip, or ahead of the `COMMIT`. So a unit costs a round trip per statement whose
//! answer is read, and one for the `COMMIT`.

use std::cell::{Cell, RefCell};

use deadpool_postgres::{ClientWrapper, Object};

use super::super::{AddressSeen, Store, StoreError, VerifyOutcome};
use super::PgStore;
use super::ahead::Ahead;
use super::audit_rows;
use super::codes::Answered;
use super::error;
use super::later::Later;
use super::locks::{self, Lock};
use super::seen::SeenBefore;
use crate::server_key::ServerKey;
use crate::store::AuditRecord;

/// What operations run their SQL on: a pooled connection, with its statement cache, and
/// whether its statements are sent unnamed (a pooler in transaction mode that keeps no
/// prepared statements stands between it and the server, see `sql`).
///
/// It gives no direct access to the client's statement methods: a statement run straight on
/// the client is prepared under a name, which a pooler in transaction mode loses or hands to
/// another client. Statements with parameters go through `sql`'s helpers (and `later`'s),
/// which choose by `unnamed_statements`; plain SQL through [`Conn::batch_execute`].
pub(super) struct Conn {
    client: Object,
    pub(super) unnamed_statements: bool,
}

impl Conn {
    /// The client, for `sql`'s and `later`'s helpers only (see above).
    pub(super) fn client(&self) -> &ClientWrapper {
        &self.client
    }

    /// Runs `sql`, one or more statements without parameters, as one simple query: nothing
    /// is prepared, so it is the same behind a pooler.
    pub(super) async fn batch_execute(&self, sql: &str) -> Result<(), tokio_postgres::Error> {
        self.client.batch_execute(sql).await
    }
}

/// A pooled connection that goes back to the pool only when marked clean.
pub(super) struct Lease {
    conn: Option<Conn>,
    clean: bool,
}

impl Lease {
    fn new(client: Object, unnamed_statements: bool) -> Lease {
        Lease {
            conn: Some(Conn {
                client,
                unnamed_statements,
            }),
            clean: false,
        }
    }

    fn conn(&self) -> Result<&Conn, StoreError> {
        match &self.conn {
            Some(conn) => Ok(conn),
            None => Err(StoreError::Postgres("the connection was closed".into())),
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            if !self.clean {
                // Out of the pool and dropped: the connection closes.
                drop(Object::take(conn.client));
            }
        }
    }
}

/// The connection of an open [`Store::in_one_transaction`].
pub(super) struct Held {
    lease: Lease,
    /// The `BEGIN` went out. It is sent in the same round trip as the unit's first operation,
    /// not on its own: a unit that runs nothing sends nothing.
    begun: Cell<bool>,
    /// Writes the unit's operations left (their last writes, the audit rows recorded), not yet
    /// sent. They go out in the same round trip as the unit's next operation, ahead of its
    /// savepoint (so taking that operation back keeps them), or with the `COMMIT`.
    pub(super) later: RefCell<Later>,
    /// An operation inside the unit was abandoned, or its savepoint could not be closed: what
    /// the transaction holds is unknown, so it must not commit.
    pub(super) broken: Cell<bool>,
    /// The last operation succeeded and its savepoint is still open: it is released in the
    /// same round trip as the next operation's `SAVEPOINT`, or by the `COMMIT`.
    release_pending: Cell<bool>,
    /// The advisory locks the transaction holds, taken by operations that succeeded: an
    /// operation after them does not ask for them again.
    locked: RefCell<Vec<Lock>>,
    /// What the last answer read of its user's addresses, under the user's lock: a noting of
    /// the same address after it is decided from this, with no round trip (see `seen`).
    seen: RefCell<Option<SeenBefore>>,
    /// A row read ahead with the login's facts for the operation that follows them (see
    /// `ahead`); dropped by any operation that goes to the server before it.
    pub(super) ahead: RefCell<Option<Ahead>>,
}

impl Held {
    /// Those of `locks` the transaction does not hold yet, in their order.
    fn not_yet_held(&self, locks: &[Lock]) -> Vec<Lock> {
        let held = self.locked.borrow();
        locks
            .iter()
            .filter(|lock| !held.contains(lock))
            .copied()
            .collect()
    }

    /// Whether the transaction holds every one of `locks`: what was read under them stays
    /// true until it ends.
    pub(super) fn holds(&self, locks: &[Lock]) -> bool {
        self.not_yet_held(locks).is_empty()
    }

    /// `locks` were taken by an operation that succeeded: held until the transaction ends (a
    /// savepoint released hands its locks to the transaction).
    fn took(&self, locks: &[Lock]) {
        let mut held = self.locked.borrow_mut();
        for lock in locks {
            if !held.contains(lock) {
                held.push(*lock);
            }
        }
    }
}

/// Every transaction's start: READ COMMITTED (PostgreSQL's default, said here so that a
/// changed server default cannot change the rules): each statement sees what was committed
/// when it started, which is what makes a lock taken by an earlier statement enough. Behind a
/// pooler the deadlines follow it in the same batch (`connect::begin_with_deadlines`).
pub(super) const BEGIN: &str = "BEGIN ISOLATION LEVEL READ COMMITTED";

/// One savepoint name serves every operation: operations never nest, and `RELEASE` and
/// `ROLLBACK TO` act on the newest savepoint of the name.
const SAVEPOINT: &str = "SAVEPOINT otpd_op";
/// The previous operation's savepoint released, before the next one's is made.
const RELEASE: &str = "RELEASE SAVEPOINT otpd_op";
const ROLLBACK_TO: &str = "ROLLBACK TO SAVEPOINT otpd_op; RELEASE SAVEPOINT otpd_op";

/// Whether `failed` is a lock not had in time (`lock_timeout`): only the advisory locks at the
/// end of an opening batch wait for a lock, so everything before them in the batch ran.
fn at_a_lock(failed: &tokio_postgres::Error) -> bool {
    failed.code() == Some(&tokio_postgres::error::SqlState::LOCK_NOT_AVAILABLE)
}

/// `COMMIT`, with `later`'s writes sent ahead of it in the same round trip (and the `BEGIN`
/// ahead of them, when given). A transaction yet to begin whose only work is one write (a
/// unit that recorded one audit row, such as a code's "mailed") is that write alone: the
/// server runs a single statement atomically by itself, so `BEGIN` and `COMMIT` would only
/// add two statements to parse and answer.
async fn commit_with(db: &Conn, begin: Option<&str>, later: Later) -> Result<(), StoreError> {
    let writes = later.prepare(db).await?;
    if begin.is_some() && writes.len() == 1 {
        return writes.send(db).await;
    }
    let (begun, written, committed) = tokio::join!(
        biased;
        batch_if(db, begin),
        writes.send(db),
        db.batch_execute("COMMIT")
    );
    // After a failed statement the server answers `COMMIT` by rolling back, without an error:
    // the first failure is the one to report.
    begun?;
    written?;
    committed?;
    Ok(())
}

/// `sql` as one simple query when there is one: a place in a pipeline that may stay empty.
async fn batch_if(db: &Conn, sql: Option<&str>) -> Result<(), tokio_postgres::Error> {
    match sql {
        Some(sql) => db.batch_execute(sql).await,
        None => Ok(()),
    }
}

/// What an operation in a unit gets once an earlier one broke it.
fn broken_earlier() -> StoreError {
    StoreError::Postgres("an earlier operation of this transaction failed past recovery".into())
}

/// How many times an operation of its own is tried when the server rolls it back as a
/// deadlock's or serialization conflict's loser: a second try meets the winner committed; a
/// third covers meeting a new one.
const ATTEMPTS: u32 = 3;

/// Runs `attempt` until it succeeds, fails for a reason running it again cannot mend, or
/// has been tried [`ATTEMPTS`] times. The caller's deadline bounds all attempts together.
async fn retrying<T>(
    mut attempt: impl AsyncFnMut() -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let mut tried = 1;
    loop {
        match attempt().await {
            Err(failed) if tried < ATTEMPTS && error::worth_retrying(&failed) => tried += 1,
            done => return done,
        }
    }
}

impl PgStore {
    /// Runs `work` as one transaction (READ COMMITTED), or as a savepoint of the open unit:
    /// all its writes or none. `locks` are taken first, in order, in the same round trip as
    /// the `BEGIN`; every statement of `work` starts after them, so it sees what the previous
    /// holder committed. `work` gets the connection and the server key. Outside a held unit,
    /// `work` may run more than once: when the server rolled it back to break a deadlock.
    pub(super) fn unit<T>(
        &self,
        locks: &[Lock],
        mut work: impl AsyncFnMut(&Conn, &ServerKey) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.unit_then(locks, async |db, key| {
            Ok((work(db, key).await?, Later::default()))
        })
    }

    /// [`PgStore::unit`] for `work` that leaves writes to be sent [`Later`]: with the `COMMIT`
    /// of its own transaction, or with the open unit's next round trip.
    pub(super) fn unit_then<T>(
        &self,
        locks: &[Lock],
        mut work: impl AsyncFnMut(&Conn, &ServerKey) -> Result<(T, Later), StoreError>,
    ) -> Result<T, StoreError> {
        if let Some(held) = &self.held {
            let (value, later) = self.in_savepoint(held, locks, work)?;
            held.later.borrow_mut().append(later);
            return Ok(value);
        }
        self.runtime.block_on(
            self.options.deadline,
            retrying(async || self.own_transaction(locks, &mut work).await),
        )
    }

    /// One attempt at [`PgStore::unit`] outside a held unit: `BEGIN` with the locks, `work`,
    /// `COMMIT`, on a connection of the pool.
    async fn own_transaction<T>(
        &self,
        locks: &[Lock],
        work: &mut impl AsyncFnMut(&Conn, &ServerKey) -> Result<(T, Later), StoreError>,
    ) -> Result<T, StoreError> {
        let mut lease = self.lease().await?;
        let db = lease.conn()?;
        let worked = match db.batch_execute(&locks::batch(&self.begin, locks)).await {
            Ok(()) => work(db, &self.key).await,
            Err(failed) => Err(failed.into()),
        };
        let worked = match worked {
            Ok((value, later)) => commit_with(db, None, later).await.map(|()| value),
            Err(failed) => Err(failed),
        };
        match worked {
            Ok(value) => {
                lease.clean = true;
                Ok(value)
            }
            Err(failed) => {
                // Also when the `BEGIN` batch failed half-way (a lock not had in time);
                // with no transaction open it is only a warning.
                if db.batch_execute("ROLLBACK").await.is_ok() {
                    lease.clean = !error::server_is_read_only(&failed);
                }
                Err(failed)
            }
        }
    }

    /// Runs `work` without a transaction of its own: for reads (each statement sees what was
    /// committed when it started), and for writes of one statement, which is atomic by
    /// itself; it saves the `BEGIN` and `COMMIT` round trips. Inside a unit it runs as any
    /// operation of the unit (it sees the unit's writes, and its failure does not end the unit).
    /// A statement the server rolled back as a deadlock's loser is run again, as in `unit`.
    pub(super) fn plain<T>(
        &self,
        mut work: impl AsyncFnMut(&Conn, &ServerKey) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        if let Some(held) = &self.held {
            return self.in_savepoint(held, &[], work);
        }
        self.runtime.block_on(
            self.options.deadline,
            retrying(async || {
                let mut lease = self.lease().await?;
                let value = work(lease.conn()?, &self.key).await;
                // A failed statement outside a transaction leaves nothing open; but a
                // connection to a server that refuses writes is not kept.
                lease.clean = !matches!(&value, Err(failed) if error::server_is_read_only(failed));
                value
            }),
        )
    }

    pub(super) fn in_savepoint<T>(
        &self,
        held: &Held,
        locks: &[Lock],
        work: impl AsyncFnOnce(&Conn, &ServerKey) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        // A row read ahead is for the operation right after it, with nothing in between.
        held.ahead.take();
        if held.broken.get() {
            return Err(broken_earlier());
        }
        // Broken until the operation ended cleanly, whichever way.
        held.broken.set(true);
        let later = held.later.take();
        // The unit's first operation needs no savepoint: if it fails, the whole transaction so
        // far is its own and is rolled back, and the next operation begins anew. (Writes left
        // for later exist only after an operation, or as audit rows recorded before any.)
        let first = !held.begun.replace(true);
        if first && later.is_empty() {
            return self.first_of_unit(held, locks, work);
        }
        // What must run before this operation's savepoint: the unit's `BEGIN` (first
        // operation), or the previous operation's `RELEASE`, then the writes left for later.
        let before = if first {
            Some(self.begin.as_str())
        } else if held.release_pending.replace(false) {
            Some(RELEASE)
        } else {
            None
        };
        let locks = held.not_yet_held(locks);
        self.runtime.block_on(self.options.deadline, async {
            let db = held.lease.conn()?;
            let writes = later.prepare(db).await?;
            // Without writes, what comes before rides in the savepoint's own batch.
            let carried = before.is_some() && writes.is_empty();
            let (before, opening) = match before {
                Some(first) if carried => {
                    (None, locks::batch(&format!("{first}; {SAVEPOINT}"), &locks))
                }
                before => (before, locks::batch(SAVEPOINT, &locks)),
            };
            // Everything goes out in one round trip, in order: tokio-postgres sends requests in
            // the order their futures are first polled, and `biased` polls them in the order
            // written, so the server runs what comes before, the writes, the savepoint and its
            // locks, then the work. In a transaction block a failure makes every later
            // statement fail until the rollback: nothing of the work takes effect if anything
            // before it failed.
            let (ran_before, written, opened, worked) = tokio::join!(
                biased;
                batch_if(db, before),
                writes.send(db),
                db.batch_execute(&opening),
                work(db, &self.key)
            );
            // What ran before the savepoint cannot be taken back alone: had the `RELEASE` not
            // run, the previous operation's savepoint would still be open, and rolling back to
            // it would take back writes reported done; so would a write left for later that
            // failed. The unit stays broken and cannot commit.
            ran_before?;
            written?;
            let failed = match (opened, worked) {
                (Ok(()), Ok(value)) => {
                    held.took(&locks);
                    held.broken.set(false);
                    held.release_pending.set(true);
                    return Ok(value);
                }
                // The same, when what comes before rode in the opening batch. (A lock not had
                // in time failed after the `RELEASE` and the `SAVEPOINT`, which take no locks:
                // that one is rolled back as always.)
                (Err(failed), _) if carried && !at_a_lock(&failed) => {
                    return Err(failed.into());
                }
                (Err(failed), _) => StoreError::from(failed),
                (Ok(()), Err(failed)) => failed,
            };
            // A unit on a server that refuses writes cannot commit anything: left broken, it
            // rolls back and its connection is closed.
            if !error::server_is_read_only(&failed) && db.batch_execute(ROLLBACK_TO).await.is_ok() {
                held.broken.set(false);
            }
            Err(failed)
        })
    }

    /// [`PgStore::in_savepoint`] for the unit's first operation, with nothing sent before it:
    /// `BEGIN` and the locks in one batch, then the work, in one round trip. A failure rolls
    /// the transaction back whole, which holds only this operation, and the next operation
    /// begins anew.
    fn first_of_unit<T>(
        &self,
        held: &Held,
        locks: &[Lock],
        work: impl AsyncFnOnce(&Conn, &ServerKey) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.runtime.block_on(self.options.deadline, async {
            let db = held.lease.conn()?;
            let opening = locks::batch(&self.begin, locks);
            let (opened, worked) = tokio::join!(
                biased;
                db.batch_execute(&opening),
                work(db, &self.key)
            );
            let failed = match (opened, worked) {
                (Ok(()), Ok(value)) => {
                    held.took(locks);
                    held.broken.set(false);
                    return Ok(value);
                }
                (Err(failed), _) => StoreError::from(failed),
                (Ok(()), Err(failed)) => failed,
            };
            // Also when the `BEGIN` batch failed half-way; with no transaction open the
            // `ROLLBACK` is only a warning.
            if !error::server_is_read_only(&failed) && db.batch_execute("ROLLBACK").await.is_ok() {
                held.begun.set(false);
                held.broken.set(false);
            }
            Err(failed)
        })
    }

    /// An answer's outcome. What it read of the user's addresses is kept in the open unit, if
    /// there is one, for a noting after it ([`PgStore::note_from_seen`]).
    pub(super) fn kept_seen(&self, answered: Answered) -> VerifyOutcome {
        if let Some(held) = &self.held {
            *held.seen.borrow_mut() = answered.seen;
        }
        answered.outcome
    }

    /// A login from `rhost` noted in the open unit without a round trip: decided from what
    /// an answer in the unit read of the user's addresses, the write left for later. `None`
    /// when there is no such read, or the unit does not hold the user's lock (which keeps
    /// the read true): the noting then goes to the server.
    pub(super) fn note_from_seen(
        &self,
        user: &str,
        rhost: &str,
        now: i64,
        window: i64,
    ) -> Option<Result<AddressSeen, StoreError>> {
        let held = self.held.as_ref()?;
        // The noting writes what a row read ahead may have read.
        held.ahead.take();
        let mut seen = held.seen.borrow_mut();
        let before = seen.as_mut().filter(|before| before.is_for(user, rhost))?;
        if !held.holds(&[Lock::user(user)]) {
            return None;
        }
        if held.broken.get() {
            return Some(Err(broken_earlier()));
        }
        Some(Ok(before.note(now, window, &mut held.later.borrow_mut())))
    }

    /// Records `record` in the open unit `held`: sent with the unit's next round trip.
    pub(super) fn defer_audit(held: &Held, record: &AuditRecord<'_>) -> Result<(), StoreError> {
        if held.broken.get() {
            return Err(broken_earlier());
        }
        let (sql, params) = audit_rows::insert(record);
        held.later.borrow_mut().push(sql, params);
        Ok(())
    }

    /// See [`Store::in_one_transaction`]: `BEGIN`, `work` with every operation after the first
    /// a savepoint, `COMMIT`; an `Err` from `work` rolls back and is returned, a panic rolls
    /// back and goes on unwinding. Nested, `work` joins the open unit.
    pub(super) fn in_one_transaction(
        &mut self,
        work: &mut dyn FnMut(&mut dyn Store) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        if self.held.is_some() {
            return work(self);
        }
        // The `BEGIN` waits for the unit's first round trip (see `Held::begun`).
        let lease = self.runtime.block_on(self.options.deadline, self.lease())?;
        self.held = Some(Held {
            lease,
            begun: Cell::new(false),
            later: RefCell::default(),
            broken: Cell::new(false),
            release_pending: Cell::new(false),
            locked: RefCell::default(),
            seen: RefCell::default(),
            ahead: RefCell::default(),
        });
        let worked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(&mut *self)));
        let Some(held) = self.held.take() else {
            // `held` is only ever taken here.
            return Err(StoreError::WorkNotRun);
        };
        match worked {
            Ok(Ok(())) => {
                let committed = self.end(held, true);
                self.audit_counter.settle(committed.is_ok());
                committed
            }
            Ok(Err(failed)) => {
                let _ = self.end(held, false);
                self.audit_counter.settle(false);
                Err(failed)
            }
            Err(panic) => {
                let _ = self.end(held, false);
                self.audit_counter.settle(false);
                std::panic::resume_unwind(panic)
            }
        }
    }

    /// Commits (`commit`) or rolls back the unit's transaction, the writes left for later
    /// sent in the same round trip as the `COMMIT`. A broken unit never commits, and its
    /// connection, in a state nobody knows (or on a server that refuses writes), is closed
    /// rather than handed out again.
    fn end(&self, held: Held, commit: bool) -> Result<(), StoreError> {
        // An open savepoint is released by the `COMMIT` and taken back by the `ROLLBACK`.
        let Held {
            mut lease,
            broken,
            begun,
            later,
            ..
        } = held;
        if broken.get() {
            // Dropping the lease closes the connection, which rolls back.
            drop(lease);
            return if commit {
                Err(StoreError::Postgres(
                    "an operation of this transaction failed past recovery; nothing was kept"
                        .into(),
                ))
            } else {
                Ok(())
            };
        }
        let later = later.into_inner();
        if !begun.get() && (!commit || later.is_empty()) {
            // Nothing was sent: there is no transaction to end.
            lease.clean = true;
            return Ok(());
        }
        self.runtime.block_on(self.options.deadline, async {
            let db = lease.conn()?;
            if commit {
                // Not begun: only writes left for later (audit rows), a transaction of their own.
                commit_with(db, (!begun.get()).then_some(&self.begin), later).await?;
            } else {
                db.batch_execute("ROLLBACK").await?;
            }
            lease.clean = true;
            Ok(())
        })
    }

    /// A connection of the pool, lent until the [`Lease`] drops.
    async fn lease(&self) -> Result<Lease, StoreError> {
        Ok(Lease::new(
            self.pool.get().await?,
            self.options.unnamed_statements(),
        ))
    }

    /// Whether an operation's writes are committed when it returns (no unit is open).
    pub(super) fn outside_unit(&self) -> bool {
        self.held.is_none()
    }
}
