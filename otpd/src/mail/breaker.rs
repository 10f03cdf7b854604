//! Skipping a server that keeps failing (a circuit breaker), per server.
//!
//! After [`FAILURES_TO_SKIP`] failures in a row a server is skipped for [`FIRST_SKIP_SECS`];
//! when that time is over it gets one attempt, and each further failure doubles the pause up to
//! [`MAX_SKIP_SECS`]. One success closes the breaker. Without this, every login would wait out
//! a dead server's timeout before the next server is tried. Time is passed in (Unix seconds)
//! so the rules are tested without sleeping.

/// Failures in a row after which a server is skipped.
pub const FAILURES_TO_SKIP: u32 = 3;

/// The first pause, in seconds.
pub const FIRST_SKIP_SECS: i64 = 60;

/// The longest pause, in seconds.
pub const MAX_SKIP_SECS: i64 = 600;

/// One server's recent history.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Breaker {
    failures_in_a_row: u32,
    skip_until: Option<i64>,
    last: Option<(i64, Result<(), String>)>,
}

impl Breaker {
    /// When the server is being skipped at `now`, until when.
    pub fn skipped_until(&self, now: i64) -> Option<i64> {
        self.skip_until.filter(|&until| now < until)
    }

    /// Failures in a row so far.
    pub fn failures_in_a_row(&self) -> u32 {
        self.failures_in_a_row
    }

    /// The last result and when it happened.
    pub fn last(&self) -> Option<&(i64, Result<(), String>)> {
        self.last.as_ref()
    }

    /// The server accepted a message (or answered properly): it is healthy.
    pub fn success(&mut self, now: i64) {
        self.failures_in_a_row = 0;
        self.skip_until = None;
        self.last = Some((now, Ok(())));
    }

    /// The server failed at `now` with `error`.
    pub fn failure(&mut self, now: i64, error: &str) {
        self.failures_in_a_row = self.failures_in_a_row.saturating_add(1);
        self.last = Some((now, Err(error.to_string())));
        if self.failures_in_a_row >= FAILURES_TO_SKIP {
            let doublings = (self.failures_in_a_row - FAILURES_TO_SKIP).min(10);
            let pause = (FIRST_SKIP_SECS << doublings).min(MAX_SKIP_SECS);
            self.skip_until = Some(now.saturating_add(pause));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_is_skipped_only_after_three_failures_in_a_row() {
        let mut b = Breaker::default();
        b.failure(1000, "refused");
        b.failure(1001, "refused");
        assert_eq!(b.skipped_until(1002), None);
        b.failure(1002, "refused");
        assert_eq!(b.skipped_until(1003), Some(1062));
        assert_eq!(b.skipped_until(1061), Some(1062));
        assert_eq!(
            b.skipped_until(1062),
            None,
            "one attempt once the pause is over"
        );
    }

    #[test]
    fn each_further_failure_doubles_the_pause_up_to_ten_minutes() {
        let mut b = Breaker::default();
        for t in 0..3 {
            b.failure(t, "x");
        }
        let mut pauses = Vec::new();
        for t in [100, 300, 700, 1500, 3000] {
            b.failure(t, "x");
            pauses.push(b.skipped_until(t).unwrap() - t);
        }
        assert_eq!(pauses, [120, 240, 480, 600, 600]);
    }

    #[test]
    fn a_success_closes_the_breaker_and_is_remembered() {
        let mut b = Breaker::default();
        for t in 0..5 {
            b.failure(t, "451 try later");
        }
        assert_eq!(b.last(), Some(&(4, Err("451 try later".to_string()))));
        b.success(500);
        assert_eq!(b.skipped_until(500), None);
        assert_eq!(b.failures_in_a_row(), 0);
        assert_eq!(b.last(), Some(&(500, Ok(()))));
        b.failure(501, "x");
        assert_eq!(b.skipped_until(501), None, "the count starts again");
    }
}
