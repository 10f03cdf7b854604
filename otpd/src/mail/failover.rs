//! Trying the SMTP servers in order until one accepts the message, within a total deadline.
//!
//! A server that is being skipped (see [`super::breaker`]) is passed over. Each attempt gets
//! the server's own timeout, cut to what is left of the total deadline, so the whole send never
//! outlasts it. Which failures move on and which stop is decided by
//! [`AttemptError::ends_failover`].

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use super::breaker::Breaker;
use super::message::Outgoing;
use super::smtp::{AttemptError, SmtpTarget};
use super::{Attempt, MailFailure};
use crate::clock::Clock;
use common::timefmt;

/// A server and its breaker.
#[derive(Debug)]
pub struct Server {
    /// The connection side.
    pub target: SmtpTarget,
    /// Its recent failures.
    pub breaker: Mutex<Breaker>,
}

impl Server {
    /// A server with a closed breaker.
    pub fn new(target: SmtpTarget) -> Server {
        Server {
            target,
            breaker: Mutex::new(Breaker::default()),
        }
    }

    /// The breaker, usable even if a panic poisoned its lock.
    pub fn breaker(&self) -> MutexGuard<'_, Breaker> {
        self.breaker
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Delivers `out` within `budget` and records the result in the breaker.
    pub async fn attempt(
        &self,
        out: &Outgoing,
        budget: Duration,
        pooled: bool,
        clock: &dyn Clock,
    ) -> Result<(), AttemptError> {
        let result = self.target.deliver(out, budget, pooled).await;
        let now = clock.now();
        match &result {
            Ok(()) => self.breaker().success(now),
            Err(e) if e.blames_server() => self.breaker().failure(now, &e.text),
            Err(_) => self.breaker().success(now),
        }
        result
    }
}

/// Sends `out` through the first server of `servers` that accepts it; returns its name.
pub async fn send(
    servers: &[Server],
    out: &Outgoing,
    total: Duration,
    clock: &dyn Clock,
) -> Result<String, MailFailure> {
    let deadline = tokio::time::Instant::now() + total;
    let mut attempts = Vec::new();
    for server in servers {
        let name = &server.target.name;
        let skipped = {
            let breaker = server.breaker();
            breaker
                .skipped_until(clock.now())
                .map(|until| (until, breaker.failures_in_a_row()))
        };
        if let Some((until, failures)) = skipped {
            attempts.push(Attempt {
                server: name.clone(),
                error: format!(
                    "skipped until {} after {failures} failures in a row",
                    timefmt::utc(until)
                ),
            });
            continue;
        }
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            attempts.push(Attempt {
                server: name.clone(),
                error: format!(
                    "not tried: the total deadline of {}s had passed",
                    total.as_secs()
                ),
            });
            continue;
        }
        let budget = server.target.timeout.min(left);
        match server.attempt(out, budget, true, clock).await {
            Ok(()) => return Ok(name.clone()),
            Err(e) => {
                let stop = e.ends_failover();
                attempts.push(Attempt {
                    server: name.clone(),
                    error: e.text,
                });
                if stop {
                    break;
                }
            }
        }
    }
    Err(MailFailure { attempts })
}
