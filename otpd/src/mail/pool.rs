//! The connections otpd holds to one SMTP server: never more than the server's
//! `max_connections`, busy and idle together; idle ones reused newest first and closed properly
//! by a timer once idle too long; each retired after `max_messages_per_connection` messages.
//!
//! Local MTAs count their clients' connections and messages: Exim refuses connections past its
//! `smtp_accept_max` (20 by default) with a 421, and queues, instead of delivering, every
//! message past `smtp_accept_queue_per_connection` (10) on one connection. A burst of logins
//! must therefore queue here for a free connection, inside its deadline, rather than open more.
//!
//! Generic over the connection so that the accounting is tested with paused time and no
//! network; `smtp.rs` uses it with SMTP sessions.

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// What the pool needs of a connection.
pub trait Connection: Send + 'static {
    /// False once the connection cannot carry another message (it broke, or the server said it
    /// is closing).
    fn reusable(&self) -> bool;

    /// Ends the connection politely (QUIT, TLS close_notify); bounded in time by the caller.
    fn close(self) -> impl Future<Output = ()> + Send;
}

/// How long a polite close may take before the connection is simply dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// The limits of one pool.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections open at once, busy and idle together (at least 1).
    pub max_open: usize,
    /// Messages one connection carries before it is closed.
    pub max_messages: u32,
    /// How long a connection may stay idle before the timer closes it.
    pub idle_time: Duration,
}

/// The connections to one server.
pub struct Pool<C> {
    inner: Arc<Inner<C>>,
}

impl<C> std::fmt::Debug for Pool<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.inner.lock();
        f.debug_struct("Pool")
            .field("limits", &self.inner.limits)
            .field("open", &state.open)
            .field("idle", &state.idle.len())
            .finish()
    }
}

struct Inner<C> {
    limits: Limits,
    state: Mutex<State<C>>,
    /// Woken when a slot is freed or a connection comes back idle.
    freed: Notify,
}

struct State<C> {
    /// Connections open, or being opened, or being closed: each holds a [`Slot`].
    open: usize,
    /// Connections waiting for the next message, the newest last.
    idle: Vec<Idle<C>>,
    /// True while the idle timer's task runs.
    reaper: bool,
}

struct Idle<C> {
    conn: Leased<C>,
    since: Instant,
}

/// The right to hold one connection open; given back when dropped.
pub struct Slot<C> {
    inner: Arc<Inner<C>>,
}

impl<C> std::fmt::Debug for Slot<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Slot")
    }
}

impl<C> Drop for Slot<C> {
    fn drop(&mut self) {
        let mut state = self.inner.lock();
        state.open = state.open.saturating_sub(1);
        drop(state);
        self.inner.freed.notify_one();
    }
}

/// A connection taken from the pool, with its slot and how many messages it carried.
#[derive(Debug)]
pub struct Leased<C> {
    /// The connection.
    pub conn: C,
    /// Messages it has carried.
    pub sent: u32,
    slot: Slot<C>,
}

impl<C> Leased<C> {
    /// A connection just opened in `slot`.
    pub fn new(conn: C, slot: Slot<C>) -> Leased<C> {
        Leased {
            conn,
            sent: 0,
            slot,
        }
    }
}

/// What one look at the pool found.
enum Look<C> {
    /// A lease.
    Got(Lease<C>),
    /// An idle connection past its idle time, which the timer has not closed yet: close it and
    /// look again at once.
    Expired(Leased<C>),
    /// Nothing free: wait for a slot, after closing `make_room` (an idle connection given up
    /// for a fresh one) if set.
    Wait { make_room: Option<Leased<C>> },
}

/// What a send gets from the pool.
#[derive(Debug)]
pub enum Lease<C> {
    /// An idle connection, ready for the next message.
    Reused(Leased<C>),
    /// A free slot in which to open a new connection.
    Fresh(Slot<C>),
}

impl<C: Connection> Pool<C> {
    /// An empty pool.
    pub fn new(limits: Limits) -> Pool<C> {
        let limits = Limits {
            max_open: limits.max_open.max(1),
            ..limits
        };
        Pool {
            inner: Arc::new(Inner {
                limits,
                state: Mutex::new(State {
                    open: 0,
                    idle: Vec::new(),
                    reaper: false,
                }),
                freed: Notify::new(),
            }),
        }
    }

    /// Waits until an idle connection (when `reuse`) or a free slot is there. It waits as long
    /// as it takes: the caller bounds it with its deadline. Without `reuse` (a test mail that
    /// must really connect), an idle connection is closed to make room when every slot is
    /// taken.
    pub async fn lease(&self, reuse: bool) -> Lease<C> {
        loop {
            let freed = self.inner.freed.notified();
            tokio::pin!(freed);
            // Registered before the state is read, so a slot freed in between still wakes us.
            freed.as_mut().enable();
            match self.look(reuse) {
                Look::Got(lease) => return lease,
                Look::Expired(conn) => close_in_background(conn),
                Look::Wait { make_room } => {
                    if let Some(conn) = make_room {
                        close_in_background(conn);
                    }
                    freed.await;
                }
            }
        }
    }

    /// One look at the pool, under its lock.
    fn look(&self, reuse: bool) -> Look<C> {
        let mut state = self.inner.lock();
        if reuse {
            if let Some(idle) = state.idle.pop() {
                if idle.since.elapsed() < self.inner.limits.idle_time {
                    return Look::Got(Lease::Reused(idle.conn));
                }
                return Look::Expired(idle.conn);
            }
        }
        if state.open < self.inner.limits.max_open {
            state.open += 1;
            let slot = Slot {
                inner: Arc::clone(&self.inner),
            };
            return Look::Got(Lease::Fresh(slot));
        }
        let make_room = if reuse { None } else { state.idle.pop() };
        Look::Wait {
            make_room: make_room.map(|idle| idle.conn),
        }
    }

    /// Takes back a connection after a message (or a refusal that left it in step): kept for
    /// the next message when `keep` and it may carry one more, else closed.
    pub fn give_back(&self, conn: Leased<C>, keep: bool) {
        let worn_out = conn.sent >= self.inner.limits.max_messages;
        if !keep || worn_out || !conn.conn.reusable() {
            close_in_background(conn);
            return;
        }
        let mut state = self.inner.lock();
        state.idle.push(Idle {
            conn,
            since: Instant::now(),
        });
        let start_reaper = !std::mem::replace(&mut state.reaper, true);
        drop(state);
        self.inner.freed.notify_one();
        if start_reaper {
            tokio::spawn(reap(Arc::clone(&self.inner)));
        }
    }

    /// Closes every idle connection now and waits until each has said goodbye (or given up
    /// after a second): at shutdown, so the server logs clean ends rather than lost
    /// connections.
    pub async fn close_idle(&self) {
        let idle = std::mem::take(&mut self.inner.lock().idle);
        let mut closing = tokio::task::JoinSet::new();
        for idle in idle {
            closing.spawn(close(idle.conn));
        }
        while closing.join_next().await.is_some() {}
    }

    /// Connections idle now.
    pub fn idle(&self) -> usize {
        self.inner.lock().idle.len()
    }

    /// Connections open now (busy, idle, being opened or closed).
    pub fn open(&self) -> usize {
        self.inner.lock().open
    }
}

impl<C> Inner<C> {
    fn lock(&self) -> MutexGuard<'_, State<C>> {
        // A panic elsewhere while holding the lock leaves plain counts and a list, still usable.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Closes `conn` as its own task, holding its slot until the server has had its goodbye, so a
/// new connection never pushes the count past the limit while an old one is closing. No
/// login waits for it.
fn close_in_background<C: Connection>(leased: Leased<C>) {
    tokio::spawn(close(leased));
}

/// Closes `leased` within [`CLOSE_TIMEOUT`], then frees its slot.
async fn close<C: Connection>(leased: Leased<C>) {
    let Leased { conn, slot, .. } = leased;
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, conn.close()).await;
    drop(slot);
}

/// The idle timer: sleeps until the oldest idle connection has been idle for `idle_time`,
/// closes every connection that has, and stops when none is idle. It holds the pool, so a pool
/// dropped by a reload still closes its connections properly.
async fn reap<C: Connection>(inner: Arc<Inner<C>>) {
    loop {
        let oldest = {
            let mut state = inner.lock();
            match state.idle.iter().map(|i| i.since).min() {
                Some(oldest) => oldest,
                None => {
                    state.reaper = false;
                    return;
                }
            }
        };
        tokio::time::sleep_until(oldest + inner.limits.idle_time).await;
        let expired: Vec<Idle<C>> = {
            let mut state = inner.lock();
            let idle_time = inner.limits.idle_time;
            let (expired, kept) = std::mem::take(&mut state.idle)
                .into_iter()
                .partition(|i| i.since.elapsed() >= idle_time);
            state.idle = kept;
            expired
        };
        for idle in expired {
            close_in_background(idle.conn);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A connection that counts its polite closes.
    #[derive(Debug)]
    struct Fake {
        id: usize,
        closed: Arc<AtomicUsize>,
        broken: bool,
    }

    impl Connection for Fake {
        fn reusable(&self) -> bool {
            !self.broken
        }

        async fn close(self) {
            self.closed.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn limits(max_open: usize, max_messages: u32) -> Limits {
        Limits {
            max_open,
            max_messages,
            idle_time: Duration::from_secs(10),
        }
    }

    /// Leases a connection, opening a fake one in a fresh slot.
    async fn take(pool: &Pool<Fake>, closed: &Arc<AtomicUsize>, id: usize) -> Leased<Fake> {
        match pool.lease(true).await {
            Lease::Reused(conn) => conn,
            Lease::Fresh(slot) => Leased::new(
                Fake {
                    id,
                    closed: Arc::clone(closed),
                    broken: false,
                },
                slot,
            ),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_waits_for_a_free_connection_instead_of_opening_more() {
        let pool = Pool::new(limits(2, 100));
        let closed = Arc::new(AtomicUsize::new(0));
        let a = take(&pool, &closed, 1).await;
        let _b = take(&pool, &closed, 2).await;
        assert_eq!(pool.open(), 2);
        let waiting = tokio::time::timeout(Duration::from_secs(5), pool.lease(true)).await;
        assert!(waiting.is_err(), "a third lease waited instead of opening");
        assert_eq!(pool.open(), 2);
        pool.give_back(a, true);
        let again = tokio::time::timeout(Duration::from_secs(1), pool.lease(true)).await;
        match &again {
            Ok(Lease::Reused(conn)) => assert_eq!(conn.conn.id, 1),
            other => panic!("expected the returned connection, got {other:?}"),
        }
        assert_eq!(pool.open(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiting_send_gets_the_slot_of_a_closed_connection() {
        let pool = Pool::new(limits(1, 100));
        let closed = Arc::new(AtomicUsize::new(0));
        let mut a = take(&pool, &closed, 1).await;
        a.conn.broken = true;
        let waiter = tokio::spawn({
            let pool = Pool {
                inner: Arc::clone(&pool.inner),
            };
            async move { matches!(pool.lease(true).await, Lease::Fresh(_)) }
        });
        tokio::task::yield_now().await;
        pool.give_back(a, true);
        assert!(
            waiter.await.unwrap(),
            "a broken connection is closed, not reused"
        );
        assert_eq!(closed.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_is_closed_after_its_message_cap() {
        let pool = Pool::new(limits(1, 3));
        let closed = Arc::new(AtomicUsize::new(0));
        let mut ids = Vec::new();
        for _ in 0..7 {
            let mut conn = take(&pool, &closed, ids.len()).await;
            ids.push(conn.conn.id);
            conn.sent += 1;
            pool.give_back(conn, true);
        }
        assert_eq!(ids, [0, 0, 0, 3, 3, 3, 6], "three messages a connection");
        tokio::task::yield_now().await;
        assert_eq!(closed.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn idle_connections_are_closed_by_the_timer_without_another_send() {
        let pool = Pool::new(limits(4, 100));
        let closed = Arc::new(AtomicUsize::new(0));
        let a = take(&pool, &closed, 1).await;
        let b = take(&pool, &closed, 2).await;
        pool.give_back(a, true);
        tokio::time::sleep(Duration::from_secs(5)).await;
        pool.give_back(b, true);
        tokio::time::sleep(Duration::from_secs(6)).await;
        assert_eq!(closed.load(Ordering::SeqCst), 1, "the older one after 10 s");
        assert_eq!(pool.idle(), 1);
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(closed.load(Ordering::SeqCst), 2);
        assert_eq!((pool.idle(), pool.open()), (0, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn a_fresh_connection_asked_for_at_the_limit_closes_an_idle_one() {
        let pool = Pool::new(limits(1, 100));
        let closed = Arc::new(AtomicUsize::new(0));
        let a = take(&pool, &closed, 1).await;
        pool.give_back(a, true);
        let lease = tokio::time::timeout(Duration::from_secs(2), pool.lease(false)).await;
        assert!(matches!(lease, Ok(Lease::Fresh(_))), "{lease:?}");
        assert_eq!((closed.load(Ordering::SeqCst), pool.open()), (1, 1));
    }

    #[tokio::test(start_paused = true)]
    async fn at_shutdown_every_idle_connection_is_closed_before_it_returns() {
        let pool = Pool::new(limits(4, 100));
        let closed = Arc::new(AtomicUsize::new(0));
        let a = take(&pool, &closed, 1).await;
        let b = take(&pool, &closed, 2).await;
        pool.give_back(a, true);
        pool.give_back(b, true);
        pool.close_idle().await;
        assert_eq!(closed.load(Ordering::SeqCst), 2);
        assert_eq!((pool.idle(), pool.open()), (0, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_not_kept_is_closed_and_frees_its_slot() {
        let pool = Pool::new(limits(1, 100));
        let closed = Arc::new(AtomicUsize::new(0));
        let a = take(&pool, &closed, 1).await;
        pool.give_back(a, false);
        tokio::task::yield_now().await;
        assert_eq!((closed.load(Ordering::SeqCst), pool.open()), (1, 0));
    }
}
