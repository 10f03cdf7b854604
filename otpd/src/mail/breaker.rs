//! Skipping a server that is unreachable or broken (a circuit breaker), per server.
//!
//! After [`FAILURES_TO_SKIP`] failures in a row a server is skipped for [`FIRST_SKIP_SECS`];
//! when that time is over it gets one attempt, and each further failure doubles the pause up to
//! [`MAX_SKIP_SECS`]. One success closes the breaker. Without this, every login would wait out
//! a dead server's timeout before the next server is tried.
//!
//! Only real failures count (see `AttemptError::blames_server`): "try later" from a busy or
//! rate-limiting server is backpressure, not a reason to shut it out. And one failure counts
//! once: when a burst of sends all fail against the same dead server at the same moment, only
//! the first of them counts; the others started before it was recorded (see [`Breaker::era`]).
//! The pauses are short, because while every server is skipped nobody gets a code. Time is
//! passed in (Unix seconds) so the rules are tested without sleeping.

/// Failures in a row after which a server is skipped.
pub const FAILURES_TO_SKIP: u32 = 3;

/// The first pause, in seconds.
pub const FIRST_SKIP_SECS: i64 = 10;

/// The longest pause, in seconds.
pub const MAX_SKIP_SECS: i64 = 60;

/// One server's recent history.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Breaker {
    failures_in_a_row: u32,
    skip_until: Option<i64>,
    last: Option<(i64, Result<(), String>)>,
    era: u64,
}

impl Breaker {
    /// A number that changes with every result recorded. An attempt reads it when it starts
    /// and hands it back with its failure: a failure whose era has passed overlapped with one
    /// already counted (or with a success) and is not counted again.
    pub fn era(&self) -> u64 {
        self.era
    }

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
        self.era = self.era.wrapping_add(1);
    }

    /// The server answered at `now` but did not take the message: it said "try later", or
    /// refused this recipient. It is up, so the count starts again, and `error` is shown as
    /// its last result.
    pub fn answered(&mut self, now: i64, error: &str) {
        self.success(now);
        self.last = Some((now, Err(error.to_string())));
    }

    /// An attempt that started in `era` failed at `now` with `error`.
    pub fn failure(&mut self, era: u64, now: i64, error: &str) {
        if era != self.era {
            return;
        }
        self.era = self.era.wrapping_add(1);
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

    /// A failure of an attempt that started now.
    fn fail(b: &mut Breaker, now: i64, error: &str) {
        b.failure(b.era(), now, error);
    }

    #[test]
    fn a_server_is_skipped_only_after_three_failures_in_a_row() {
        let mut b = Breaker::default();
        fail(&mut b, 1000, "refused");
        fail(&mut b, 1001, "refused");
        assert_eq!(b.skipped_until(1002), None);
        fail(&mut b, 1002, "refused");
        assert_eq!(b.skipped_until(1003), Some(1012));
        assert_eq!(b.skipped_until(1011), Some(1012));
        assert_eq!(
            b.skipped_until(1012),
            None,
            "one attempt once the pause is over"
        );
    }

    #[test]
    fn each_further_failure_doubles_the_pause_up_to_a_minute() {
        let mut b = Breaker::default();
        for t in 0..3 {
            fail(&mut b, t, "x");
        }
        let mut pauses = Vec::new();
        for t in [100, 300, 700, 1500, 3000] {
            fail(&mut b, t, "x");
            pauses.push(b.skipped_until(t).unwrap() - t);
        }
        assert_eq!(pauses, [20, 40, 60, 60, 60]);
    }

    #[test]
    fn failures_of_sends_in_flight_together_count_once() {
        let mut b = Breaker::default();
        // A burst: fifty sends start before any of them fails.
        let started = b.era();
        for _ in 0..50 {
            b.failure(started, 1000, "connection refused");
        }
        assert_eq!(b.failures_in_a_row(), 1);
        assert_eq!(b.skipped_until(1000), None);
        // Sends that start after a failure was recorded count again, one each.
        fail(&mut b, 1001, "connection refused");
        fail(&mut b, 1002, "connection refused");
        assert_eq!(b.failures_in_a_row(), 3);
    }

    #[test]
    fn a_failure_that_overlapped_a_success_is_not_counted() {
        let mut b = Breaker::default();
        let started = b.era();
        b.success(1000);
        b.failure(started, 1000, "connection reset");
        assert_eq!(b.failures_in_a_row(), 0);
        assert_eq!(b.last(), Some(&(1000, Ok(()))));
    }

    #[test]
    fn an_answer_that_refuses_closes_the_breaker_and_is_shown() {
        let mut b = Breaker::default();
        for t in 0..3 {
            fail(&mut b, t, "connection refused");
        }
        b.answered(10, "421 4.3.2 too many connections");
        assert_eq!((b.failures_in_a_row(), b.skipped_until(10)), (0, None));
        assert_eq!(
            b.last(),
            Some(&(10, Err("421 4.3.2 too many connections".to_string())))
        );
    }

    #[test]
    fn a_success_closes_the_breaker_and_is_remembered() {
        let mut b = Breaker::default();
        for t in 0..5 {
            fail(&mut b, t, "connection refused");
        }
        assert_eq!(b.last(), Some(&(4, Err("connection refused".to_string()))));
        b.success(500);
        assert_eq!(b.skipped_until(500), None);
        assert_eq!(b.failures_in_a_row(), 0);
        assert_eq!(b.last(), Some(&(500, Ok(()))));
        fail(&mut b, 501, "x");
        assert_eq!(b.skipped_until(501), None, "the count starts again");
    }
}
