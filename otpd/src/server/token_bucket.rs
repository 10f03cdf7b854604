//! A token bucket: the request rate one unprivileged uid may keep up, with a small burst on top.
//!
//! Time is passed in, so the bucket is tested without sleeping.

use tokio::time::Instant;

/// Tokens refill continuously at `rate` a second, up to `burst`; each request takes one.
#[derive(Debug, Clone, Copy)]
pub(super) struct TokenBucket {
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A bucket as after a quiet spell: a newcomer may burst at once.
    pub(super) fn full(burst: u32, now: Instant) -> TokenBucket {
        TokenBucket {
            tokens: f64::from(burst),
            last: now,
        }
    }

    /// Takes a token when one is there; `false` (and nothing taken) otherwise.
    pub(super) fn take(&mut self, rate: u32, burst: u32, now: Instant) -> bool {
        self.refill(rate, burst, now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// True when the bucket would be full by `now`: forgetting it changes nothing.
    pub(super) fn is_full(&self, rate: u32, burst: u32, now: Instant) -> bool {
        let mut copy = *self;
        copy.refill(rate, burst, now);
        copy.tokens >= f64::from(burst)
    }

    fn refill(&mut self, rate: u32, burst: u32, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * f64::from(rate)).min(f64::from(burst));
        self.last = now;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_full_bucket_allows_the_burst_and_then_refuses() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::full(3, t0);
        assert!(bucket.take(20, 3, t0));
        assert!(bucket.take(20, 3, t0));
        assert!(bucket.take(20, 3, t0));
        assert!(!bucket.take(20, 3, t0));
    }

    #[test]
    fn tokens_come_back_at_the_rate_and_never_above_the_burst() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::full(2, t0);
        assert!(bucket.take(10, 2, t0));
        assert!(bucket.take(10, 2, t0));
        assert!(!bucket.take(10, 2, t0));
        // 10 a second: one token after 100 ms, not two.
        let t1 = t0 + Duration::from_millis(100);
        assert!(bucket.take(10, 2, t1));
        assert!(!bucket.take(10, 2, t1));
        // A long rest fills it to the burst only.
        let t2 = t1 + Duration::from_secs(60);
        assert!(bucket.is_full(10, 2, t2));
        assert!(bucket.take(10, 2, t2));
        assert!(bucket.take(10, 2, t2));
        assert!(!bucket.take(10, 2, t2));
    }
}
