//! Trying the SMTP servers in order until one accepts the message, within a total deadline.
//!
//! A server that is being skipped (see [`super::breaker`]) is passed over. Each attempt gets
//! the server's own timeout, cut to what is left of the total deadline, so the whole send never
//! outlasts it. Which failures move on and which stop is decided by
//! [`AttemptError::ends_failover`].
//!
//! "Try later" is backpressure, not an outage: a server that answered 4xx (too many
//! connections, a rate limit, greylisting) before it had the message, or whose connections
//! all stayed busy, is tried again after a short pause, while the deadline allows, once every
//! other server has had its turn. The pauses are jittered so that a burst of logins does not
//! come back all at once. A message is never offered again once a server may have taken it.

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rand::Rng as _;

use super::breaker::Breaker;
use super::message::Outgoing;
use super::smtp::{AttemptError, Failure, SmtpTarget};
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
        let era = self.breaker().era();
        let result = self.target.deliver(out, budget, pooled).await;
        let now = clock.now();
        match &result {
            Ok(()) => self.breaker().success(now),
            Err(e) if e.blames_server() => self.breaker().failure(era, now, &e.text),
            // otpd's own connections were all busy: the server was not even asked.
            Err(e) if e.failure == Failure::Busy => {}
            // The server answered: it is up, whatever it said.
            Err(e) => self.breaker().answered(now, &e.text),
        }
        result
    }
}

/// The first pause before a server that pushed back is tried again; each round doubles it up
/// to [`MAX_RETRY_PAUSE`].
const FIRST_RETRY_PAUSE: Duration = Duration::from_millis(200);

/// The longest pause between two rounds.
const MAX_RETRY_PAUSE: Duration = Duration::from_secs(2);

/// The pause before round `round` (1 for the first retry), between half and all of the
/// doubled pause, so that a burst of sends spreads out.
fn retry_pause(round: u32) -> Duration {
    let full = FIRST_RETRY_PAUSE
        .saturating_mul(1 << round.saturating_sub(1).min(8))
        .min(MAX_RETRY_PAUSE);
    let half = full / 2;
    half + full.mul_f64(rand::rng().random_range(0.0..0.5))
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
    // Every server in the first round; afterwards only those that pushed back.
    let mut round: Vec<&Server> = servers.iter().collect();
    let mut rounds = 0;
    loop {
        let mut pushed_back = Vec::new();
        for &server in &round {
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
                    if e.is_backpressure() && !stop {
                        pushed_back.push(server);
                    }
                    attempts.push(Attempt {
                        server: name.clone(),
                        error: e.text,
                    });
                    if stop {
                        return Err(MailFailure { attempts });
                    }
                }
            }
        }
        rounds += 1;
        let pause = retry_pause(rounds);
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if pushed_back.is_empty() || left <= pause {
            return Err(MailFailure { attempts });
        }
        tokio::time::sleep(pause).await;
        round = pushed_back;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_pauses_grow_with_jitter_up_to_two_seconds() {
        for _ in 0..100 {
            let first = retry_pause(1);
            assert!(
                first >= Duration::from_millis(100) && first < Duration::from_millis(200),
                "{first:?}"
            );
            let late = retry_pause(30);
            assert!(
                late >= Duration::from_secs(1) && late < MAX_RETRY_PAUSE,
                "{late:?}"
            );
        }
    }
}
