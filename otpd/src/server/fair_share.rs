//! Who gets one of the socket's connections, decided at accept time from the peer's uid
//! before a byte is read.
//!
//! The socket is open to every local user (mode 0666), and a connection may take
//! `request_timeout_seconds` to send its request, so without this one user holding a few
//! hundred slow connections denies every login on the machine. Three rules keep that user to
//! their own share:
//! - one unprivileged uid holds at most `max_connections_per_user` connections at once;
//! - unprivileged uids together never take the last `reserved_connections`, which stay free
//!   for root (sshd runs the module as root) and the trusted callers;
//! - one unprivileged uid opens at most `user_requests_per_second` connections a second (each
//!   connection is one request), plus `user_request_burst`.
//!
//! Root and trusted callers are held only to `max_connections`, the bound on memory and file
//! descriptors. Members of `admin_group` are held to the first two rules but not to the rate:
//! otpctl asks for a long audit log or user list one page per request, as fast as otpd answers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use common::config::DaemonConfig;
use tokio::time::Instant;

use super::token_bucket::TokenBucket;

/// Whether a peer is bound by the per-user rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Standing {
    /// Root or a trusted caller: only `max_connections` applies.
    Privileged,
    /// A member of `admin_group`: their own connections and the shared part apply, the
    /// request rate does not.
    Admin,
    /// Anyone else.
    Unprivileged,
}

/// Why a connection was closed at accept time, with a short error reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// `max_connections` are open.
    Full,
    /// All of `max_connections` but the reserve is held by unprivileged uids.
    SharedFull,
    /// This uid holds `max_connections_per_user`.
    UserCap,
    /// This uid is over `user_requests_per_second`.
    UserRate,
}

impl Refusal {
    /// Every kind, in the order the summary log line names them.
    pub(crate) const ALL: [Refusal; 4] = [
        Refusal::UserRate,
        Refusal::UserCap,
        Refusal::SharedFull,
        Refusal::Full,
    ];

    /// The reply's text: short, and the same one for everybody in the same case.
    pub(crate) fn message(self) -> &'static str {
        match self {
            // The text otpd has always given when full.
            Refusal::Full | Refusal::SharedFull => "otpd is at its connection limit",
            Refusal::UserCap => "too many connections to otpd from your user",
            Refusal::UserRate => "too many requests to otpd from your user; try again shortly",
        }
    }

    /// The words the summary log line counts this kind under.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Refusal::Full => "at max_connections",
            Refusal::SharedFull => "past the unprivileged share",
            Refusal::UserCap => "at max_connections_per_user",
            Refusal::UserRate => "over user_requests_per_second",
        }
    }
}

/// The limits in force for one accept, read from the config then (so a reload changes them).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    max_connections: usize,
    reserved: usize,
    per_user: usize,
    rate: u32,
    burst: u32,
}

impl Limits {
    /// The limits `[daemon]` sets.
    pub(crate) fn of(daemon: &DaemonConfig) -> Limits {
        let fair = daemon.fair_share;
        Limits {
            max_connections: daemon.max_connections,
            reserved: fair.reserved_connections,
            per_user: fair.max_connections_per_user,
            rate: fair.user_requests_per_second,
            burst: fair.user_request_burst,
        }
    }

    /// What unprivileged uids may hold together.
    fn shared(&self) -> usize {
        self.max_connections.saturating_sub(self.reserved)
    }
}

/// Open connections and request buckets; shared with each connection's [`Slot`].
#[derive(Debug, Default)]
struct Counts {
    total: usize,
    unprivileged: usize,
    per_uid: HashMap<u32, usize>,
    buckets: HashMap<u32, TokenBucket>,
}

/// The connections open now, by uid. Cheap to clone; every clone is the same ledger.
#[derive(Debug, Clone, Default)]
pub(crate) struct Ledger {
    counts: Arc<Mutex<Counts>>,
}

/// One admitted connection; its place is given back when dropped.
#[derive(Debug)]
pub(crate) struct Slot {
    counts: Arc<Mutex<Counts>>,
    uid: u32,
    standing: Standing,
}

impl Ledger {
    /// Admits a connection from `uid`, or says why not.
    pub(crate) fn admit(
        &self,
        uid: u32,
        standing: Standing,
        limits: &Limits,
        now: Instant,
    ) -> Result<Slot, Refusal> {
        let mut counts = lock(&self.counts);
        if standing == Standing::Unprivileged {
            let bucket = counts
                .buckets
                .entry(uid)
                .or_insert_with(|| TokenBucket::full(limits.burst, now));
            if !bucket.take(limits.rate, limits.burst, now) {
                return Err(Refusal::UserRate);
            }
        }
        if standing != Standing::Privileged {
            if counts.per_uid.get(&uid).copied().unwrap_or(0) >= limits.per_user {
                return Err(Refusal::UserCap);
            }
            if counts.unprivileged >= limits.shared() {
                return Err(Refusal::SharedFull);
            }
        }
        if counts.total >= limits.max_connections {
            return Err(Refusal::Full);
        }
        counts.total += 1;
        if standing != Standing::Privileged {
            counts.unprivileged += 1;
            *counts.per_uid.entry(uid).or_insert(0) += 1;
        }
        Ok(Slot {
            counts: Arc::clone(&self.counts),
            uid,
            standing,
        })
    }

    /// Drops the buckets that have filled up again, so the table holds only uids active in
    /// the last few seconds.
    pub(crate) fn forget_idle(&self, limits: &Limits, now: Instant) {
        lock(&self.counts)
            .buckets
            .retain(|_, bucket| !bucket.is_full(limits.rate, limits.burst, now));
    }

    /// Connections open now: all of them, and those of unprivileged uids.
    #[cfg(test)]
    pub(crate) fn open(&self) -> (usize, usize) {
        let counts = lock(&self.counts);
        (counts.total, counts.unprivileged)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = lock(&self.counts);
        counts.total = counts.total.saturating_sub(1);
        if self.standing != Standing::Privileged {
            counts.unprivileged = counts.unprivileged.saturating_sub(1);
            if let Some(open) = counts.per_uid.get_mut(&self.uid) {
                *open = open.saturating_sub(1);
                if *open == 0 {
                    counts.per_uid.remove(&self.uid);
                }
            }
        }
    }
}

fn lock(counts: &Mutex<Counts>) -> MutexGuard<'_, Counts> {
    // Nothing panics while holding it; if something did, the counts are still whole numbers,
    // and refusing to serve would be worse.
    match counts.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::test_support::config;

    fn limits(daemon: &str) -> Limits {
        Limits::of(&config(&format!("[daemon]\n{daemon}")).daemon)
    }

    #[test]
    fn a_uid_at_its_cap_is_refused_and_gets_its_place_back_when_one_closes() {
        let ledger = Ledger::default();
        let limits = limits("max_connections_per_user = 2");
        let now = Instant::now();
        let first = ledger.admit(1000, Standing::Unprivileged, &limits, now);
        let _second = ledger.admit(1000, Standing::Unprivileged, &limits, now);
        assert_eq!(
            ledger
                .admit(1000, Standing::Unprivileged, &limits, now)
                .unwrap_err(),
            Refusal::UserCap
        );
        assert!(
            ledger
                .admit(1001, Standing::Unprivileged, &limits, now)
                .is_ok()
        );
        drop(first);
        assert!(
            ledger
                .admit(1000, Standing::Unprivileged, &limits, now)
                .is_ok()
        );
    }

    #[test]
    fn unprivileged_uids_together_never_take_the_reserve_and_root_can() {
        let ledger = Ledger::default();
        let limits = limits("max_connections = 4\nreserved_connections = 2");
        let now = Instant::now();
        let mut held = Vec::new();
        held.push(
            ledger
                .admit(1000, Standing::Unprivileged, &limits, now)
                .unwrap(),
        );
        held.push(
            ledger
                .admit(1001, Standing::Unprivileged, &limits, now)
                .unwrap(),
        );
        assert_eq!(
            ledger
                .admit(1002, Standing::Unprivileged, &limits, now)
                .unwrap_err(),
            Refusal::SharedFull
        );
        held.push(ledger.admit(0, Standing::Privileged, &limits, now).unwrap());
        held.push(ledger.admit(0, Standing::Privileged, &limits, now).unwrap());
        assert_eq!(ledger.open(), (4, 2));
        assert_eq!(
            ledger
                .admit(0, Standing::Privileged, &limits, now)
                .unwrap_err(),
            Refusal::Full
        );
        held.clear();
        assert_eq!(ledger.open(), (0, 0));
    }

    #[test]
    fn root_is_never_held_to_the_per_user_cap_or_rate() {
        let ledger = Ledger::default();
        let limits = limits(
            "max_connections_per_user = 1\nuser_request_burst = 1\nuser_requests_per_second = 1",
        );
        let now = Instant::now();
        let held: Vec<Slot> = (0..20)
            .map(|_| ledger.admit(0, Standing::Privileged, &limits, now).unwrap())
            .collect();
        assert_eq!(ledger.open(), (20, 0));
        drop(held);
    }

    #[test]
    fn an_admin_is_held_to_its_own_connections_and_the_shared_part_but_not_the_rate() {
        let ledger = Ledger::default();
        let limits = limits(
            "max_connections = 4\nreserved_connections = 1\nmax_connections_per_user = 2\nuser_requests_per_second = 1\nuser_request_burst = 1",
        );
        let now = Instant::now();
        for _ in 0..50 {
            drop(ledger.admit(1000, Standing::Admin, &limits, now).unwrap());
        }
        let _a = ledger.admit(1000, Standing::Admin, &limits, now).unwrap();
        let _b = ledger.admit(1000, Standing::Admin, &limits, now).unwrap();
        assert_eq!(
            ledger
                .admit(1000, Standing::Admin, &limits, now)
                .unwrap_err(),
            Refusal::UserCap
        );
        let _c = ledger.admit(1001, Standing::Admin, &limits, now).unwrap();
        assert_eq!(
            ledger
                .admit(1002, Standing::Admin, &limits, now)
                .unwrap_err(),
            Refusal::SharedFull
        );
        assert!(ledger.admit(0, Standing::Privileged, &limits, now).is_ok());
    }

    #[test]
    fn a_uid_over_its_rate_is_refused_until_tokens_come_back() {
        let ledger = Ledger::default();
        let limits = limits("user_requests_per_second = 10\nuser_request_burst = 2");
        let t0 = Instant::now();
        for _ in 0..2 {
            drop(
                ledger
                    .admit(1000, Standing::Unprivileged, &limits, t0)
                    .unwrap(),
            );
        }
        assert_eq!(
            ledger
                .admit(1000, Standing::Unprivileged, &limits, t0)
                .unwrap_err(),
            Refusal::UserRate
        );
        assert!(
            ledger
                .admit(1001, Standing::Unprivileged, &limits, t0)
                .is_ok()
        );
        let t1 = t0 + Duration::from_millis(100);
        assert!(
            ledger
                .admit(1000, Standing::Unprivileged, &limits, t1)
                .is_ok()
        );
    }

    #[test]
    fn idle_buckets_are_forgotten_and_busy_ones_kept() {
        let ledger = Ledger::default();
        let limits = limits("user_requests_per_second = 1\nuser_request_burst = 1");
        let t0 = Instant::now();
        drop(
            ledger
                .admit(1000, Standing::Unprivileged, &limits, t0)
                .unwrap(),
        );
        ledger.forget_idle(&limits, t0);
        // Still empty: forgetting it now would hand the uid a fresh burst.
        assert_eq!(
            ledger
                .admit(1000, Standing::Unprivileged, &limits, t0)
                .unwrap_err(),
            Refusal::UserRate
        );
        ledger.forget_idle(&limits, t0 + Duration::from_secs(5));
        assert!(lock(&ledger.counts).buckets.is_empty());
    }
}
