//! The socket server: admits each connection by its peer's fair share, serves admitted ones
//! (one framed request each, read with a deadline), and drains in-flight requests on shutdown.
//!
//! The socket is open to every local user, so admission is decided at accept time from the
//! peer's uid (SO_PEERCRED), before a byte is read: see [`fair_share`]. A refused connection
//! gets a short error reply and is closed at once; refusals are counted and summed up in the
//! log ([`refusal_log`]), never logged one by one.
//!
//! A non-root peer's standing (trusted caller, admin) may need an NSS lookup (`standing`):
//! it runs on a blocking thread with a deadline while the accept loop goes on serving others,
//! and the peer's connections wait for it.

mod connection;
mod fair_share;
mod refusal_log;
mod standing;
mod token_bucket;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use common::config::DaemonConfig;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

use self::fair_share::{Ledger, Limits, Standing};
use self::refusal_log::RefusalLog;
use self::standing::Standings;
use crate::caller::Caller;
use crate::directory;
use crate::state::{Active, Shared};

/// How long shutdown waits for requests in flight (a mail send may take up to its deadline).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(25);

/// How often refusals are summed up in the log, and idle per-uid state is forgotten.
const HOUSEKEEPING_INTERVAL: Duration = Duration::from_secs(60);

/// Serves `listener` until `shutdown` completes, then drains.
pub async fn serve(
    listener: UnixListener,
    shared: Arc<Shared>,
    shutdown: impl Future<Output = ()>,
) {
    serve_with(listener, shared, shutdown, peer_credentials).await;
}

/// The peer's credentials, as the kernel recorded them when it connected.
fn peer_credentials(stream: &UnixStream) -> io::Result<Caller> {
    let cred = stream.peer_cred()?;
    Ok(Caller::local(cred.uid(), cred.gid()))
}

/// [`serve`] with the peer lookup injected, so tests can connect as several uids from one
/// process.
async fn serve_with(
    listener: UnixListener,
    shared: Arc<Shared>,
    shutdown: impl Future<Output = ()>,
    peer_of: impl Fn(&UnixStream) -> io::Result<Caller>,
) {
    let (found, mut standings_found) = mpsc::unbounded_channel();
    let mut gate = Gate {
        ledger: Ledger::default(),
        standings: Standings::default(),
        refusals: RefusalLog::new(HOUSEKEEPING_INTERVAL),
        waiting: HashMap::new(),
        found,
    };
    let mut housekeeping = tokio::time::interval(HOUSEKEEPING_INTERVAL);
    housekeeping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => match peer_of(&stream) {
                    Ok(caller) => gate.arrive(stream, caller, &shared, &mut connections),
                    Err(e) => tracing::warn!("cannot read peer credentials, closing: {e}"),
                },
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    // Out of file descriptors and the like: back off instead of spinning.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(found) = standings_found.recv() => gate.settle(found, &shared, &mut connections),
            _ = housekeeping.tick() => gate.housekeeping(&shared),
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    gate.housekeeping(&shared);
    tracing::info!(
        "shutting down: draining {} connection(s)",
        connections.len()
    );
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!("drain timed out; aborting the remaining connections");
        connections.abort_all();
    }
}

/// An admitted connection being served: counted open in the metrics until it is dropped, however
/// its task ends.
struct OpenConnection(Arc<Shared>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.metrics.connection_closed();
    }
}

/// What the accept loop keeps between connections to decide who gets in.
struct Gate {
    ledger: Ledger,
    standings: Standings,
    refusals: RefusalLog,
    /// Connections waiting for their uid's standing, by uid: one lookup per uid at a time.
    waiting: HashMap<u32, Vec<(UnixStream, Caller)>>,
    /// Where the lookups of standings send their answers, back to the accept loop.
    found: mpsc::UnboundedSender<StandingFound>,
}

/// A standing looked up off the runtime's thread.
struct StandingFound {
    caller: Caller,
    standing: Standing,
    /// The config it was looked up under.
    active: Arc<Active>,
}

impl Gate {
    /// A new connection from `caller`: admitted (or refused) now when its standing is known
    /// without a lookup; otherwise it waits for the lookup, which starts unless one for the
    /// same uid is under way. With `max_connections` waiting already (a bound on descriptors,
    /// like the ledger's), more are judged at once as an unprivileged user's, the least
    /// standing there is.
    fn arrive(
        &mut self,
        stream: UnixStream,
        caller: Caller,
        shared: &Arc<Shared>,
        connections: &mut JoinSet<()>,
    ) {
        let now = Instant::now();
        let active = shared.active();
        let daemon = &active.config.daemon;
        if let Some(standing) = self.standings.known(caller, daemon, now) {
            self.admit(stream, caller, standing, daemon, shared, connections);
            return;
        }
        if self.waiting.values().map(Vec::len).sum::<usize>() >= daemon.max_connections {
            self.admit(
                stream,
                caller,
                Standing::Unprivileged,
                daemon,
                shared,
                connections,
            );
            return;
        }
        let waiting = self.waiting.entry(caller.uid).or_default();
        waiting.push((stream, caller));
        if waiting.len() == 1 {
            self.look_up(caller, Arc::clone(&active), shared);
        }
    }

    /// Looks up the standing of `caller` on a blocking thread, for at most the directory's
    /// deadline, and sends it to the accept loop. A late (or lost) lookup counts as an
    /// unprivileged user's, and is kept as such for a minute like any answer, so a hung NSS
    /// costs one lookup per uid a minute.
    fn look_up(&self, caller: Caller, active: Arc<Active>, shared: &Shared) {
        let accounts = Arc::clone(&shared.accounts);
        let found = self.found.clone();
        tokio::spawn(async move {
            let config = Arc::clone(&active);
            let looked_up = directory::lookup_within(directory::DEADLINE, move || {
                standing::look_up(caller, &config.config.daemon, &*accounts)
            })
            .await;
            let standing = looked_up.unwrap_or_else(|unresolved| {
                tracing::warn!(
                    "looking up the standing of uid {} failed ({unresolved:?} after at most {} s); it counts as an unprivileged user's for a minute",
                    caller.uid,
                    directory::DEADLINE.as_secs()
                );
                Standing::Unprivileged
            });
            // The accept loop holds the receiver for as long as it runs.
            let _ = found.send(StandingFound {
                caller,
                standing,
                active,
            });
        });
    }

    /// Keeps a looked-up standing and admits (or refuses) the connections that waited for it.
    fn settle(
        &mut self,
        found: StandingFound,
        shared: &Arc<Shared>,
        connections: &mut JoinSet<()>,
    ) {
        let now = Instant::now();
        let uid = found.caller.uid;
        let looked_up_under = &found.active.config.daemon;
        self.standings
            .remember(uid, found.standing, looked_up_under, now);
        let active = shared.active();
        for (stream, caller) in self.waiting.remove(&uid).unwrap_or_default() {
            let daemon = &active.config.daemon;
            self.admit(stream, caller, found.standing, daemon, shared, connections);
        }
    }

    /// Serves `stream` if `caller` is within their share; otherwise answers it with a short
    /// error and closes it.
    fn admit(
        &mut self,
        stream: UnixStream,
        caller: Caller,
        standing: Standing,
        daemon: &DaemonConfig,
        shared: &Arc<Shared>,
        connections: &mut JoinSet<()>,
    ) {
        let now = Instant::now();
        match self
            .ledger
            .admit(caller.uid, standing, &Limits::of(daemon), now)
        {
            Ok(slot) => {
                let shared = Arc::clone(shared);
                shared.metrics.connection(true);
                connections.spawn(async move {
                    let _open = OpenConnection(Arc::clone(&shared));
                    connection::serve(stream, caller, shared).await;
                    drop(slot);
                });
            }
            Err(refusal) => {
                shared.metrics.connection(false);
                connection::refuse(&stream, refusal.message());
                if let Some(line) = self.refusals.record(caller.uid, refusal, now) {
                    warn_refusals(&line);
                }
            }
        }
    }

    /// Sums up refusals not yet reported and forgets per-uid state nobody needs any more.
    fn housekeeping(&mut self, shared: &Shared) {
        let now = Instant::now();
        if let Some(line) = self.refusals.flush(now) {
            warn_refusals(&line);
        }
        self.ledger
            .forget_idle(&Limits::of(&shared.active().config.daemon), now);
        self.standings.forget_old(now);
    }
}

fn warn_refusals(line: &str) {
    // Only numbers and fixed words, escaped all the same like every logged text.
    tracing::warn!("{}", common::text::escape_for_log(line));
}
