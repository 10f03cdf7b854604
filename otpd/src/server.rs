//! The socket server: admits each connection by its peer's fair share, serves admitted ones
//! (one framed request each, read with a deadline), and drains in-flight requests on shutdown.
//!
//! The socket is open to every local user, so admission is decided at accept time from the
//! peer's uid (SO_PEERCRED), before a byte is read: see [`fair_share`]. A refused connection
//! gets a short error reply and is closed at once; refusals are counted and summed up in the
//! log ([`refusal_log`]), never logged one by one.

mod connection;
mod fair_share;
mod refusal_log;
mod standing;
mod token_bucket;

#[cfg(test)]
mod tests;

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{UnixListener, UnixStream};
use tokio::task::JoinSet;
use tokio::time::Instant;

use self::fair_share::{Ledger, Limits};
use self::refusal_log::RefusalLog;
use self::standing::Standings;
use crate::caller::Caller;
use crate::state::Shared;

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
    Ok(Caller {
        uid: cred.uid(),
        gid: cred.gid(),
    })
}

/// [`serve`] with the peer lookup injected, so tests can connect as several uids from one
/// process.
async fn serve_with(
    listener: UnixListener,
    shared: Arc<Shared>,
    shutdown: impl Future<Output = ()>,
    peer_of: impl Fn(&UnixStream) -> io::Result<Caller>,
) {
    let mut gate = Gate {
        ledger: Ledger::default(),
        standings: Standings::default(),
        refusals: RefusalLog::new(HOUSEKEEPING_INTERVAL),
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
                    Ok(caller) => gate.admit(stream, caller, &shared, &mut connections),
                    Err(e) => tracing::warn!("cannot read peer credentials, closing: {e}"),
                },
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    // Out of file descriptors and the like: back off instead of spinning.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
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

/// What the accept loop keeps between connections to decide who gets in.
struct Gate {
    ledger: Ledger,
    standings: Standings,
    refusals: RefusalLog,
}

impl Gate {
    /// Serves `stream` if `caller` is within their share; otherwise answers it with a short
    /// error and closes it.
    fn admit(
        &mut self,
        stream: UnixStream,
        caller: Caller,
        shared: &Arc<Shared>,
        connections: &mut JoinSet<()>,
    ) {
        let now = Instant::now();
        let active = shared.active();
        let daemon = &active.config.daemon;
        let standing = self.standings.of(caller, daemon, &*shared.accounts, now);
        match self
            .ledger
            .admit(caller.uid, standing, &Limits::of(daemon), now)
        {
            Ok(slot) => {
                let shared = Arc::clone(shared);
                connections.spawn(async move {
                    connection::serve(stream, caller, shared).await;
                    drop(slot);
                });
            }
            Err(refusal) => {
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
