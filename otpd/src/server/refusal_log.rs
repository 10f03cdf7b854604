//! Refusals at accept time are counted, not logged one by one: a user who opens thousands of
//! connections a second must not be able to flood the journal with otpd's answers to them.
//!
//! The first refusal after a quiet interval is logged at once, so an admin sees an attack
//! start; after that at most one summary line per interval says how many, why, and which uid
//! caused most of them.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use super::fair_share::Refusal;

/// Uids counted separately in one interval; past this the rest are only in the totals, so the
/// table cannot grow without bound.
const MAX_UIDS: usize = 1024;

/// Refusals since the last line.
#[derive(Debug)]
pub(crate) struct RefusalLog {
    interval: Duration,
    last_line: Option<Instant>,
    by_kind: [u64; Refusal::ALL.len()],
    by_uid: HashMap<u32, u64>,
}

impl RefusalLog {
    /// Logs at most one line per `interval`.
    pub(crate) fn new(interval: Duration) -> RefusalLog {
        RefusalLog {
            interval,
            last_line: None,
            by_kind: [0; Refusal::ALL.len()],
            by_uid: HashMap::new(),
        }
    }

    /// Counts one refusal; returns a line to log when one is due.
    pub(crate) fn record(&mut self, uid: u32, refusal: Refusal, now: Instant) -> Option<String> {
        let kind = Refusal::ALL.iter().position(|k| *k == refusal).unwrap_or(0);
        self.by_kind[kind] = self.by_kind[kind].saturating_add(1);
        if self.by_uid.len() < MAX_UIDS || self.by_uid.contains_key(&uid) {
            let count = self.by_uid.entry(uid).or_insert(0);
            *count = count.saturating_add(1);
        }
        self.flush(now)
    }

    /// The summary of what was counted, when there is any and the last line is an interval
    /// old; called on the server's housekeeping tick so the last refusals of an attack are
    /// reported too.
    pub(crate) fn flush(&mut self, now: Instant) -> Option<String> {
        let total: u64 = self.by_kind.iter().sum();
        if total == 0 {
            return None;
        }
        let since = self.last_line.map(|at| now.saturating_duration_since(at));
        if since.is_some_and(|since| since < self.interval) {
            return None;
        }
        let reasons: Vec<String> = Refusal::ALL
            .iter()
            .zip(self.by_kind)
            .filter(|(_, n)| *n > 0)
            .map(|(kind, n)| format!("{n} {}", kind.label()))
            .collect();
        let (top_uid, top_count) = self
            .by_uid
            .iter()
            .max_by_key(|(uid, count)| (**count, std::cmp::Reverse(**uid)))
            .map(|(uid, count)| (*uid, *count))
            .unwrap_or_default();
        let period = match since {
            Some(since) => format!(" in the {} s since the last report", since.as_secs()),
            None => String::new(),
        };
        let line = format!(
            "refused {total} connection(s){period}: {}; most from uid {top_uid} ({top_count}); \
             further refusals are summed up once every {} s",
            reasons.join(", "),
            self.interval.as_secs()
        );
        self.last_line = Some(now);
        self.by_kind = [0; Refusal::ALL.len()];
        self.by_uid.clear();
        Some(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn the_first_refusal_is_logged_at_once_and_the_rest_once_per_interval() {
        let mut log = RefusalLog::new(MINUTE);
        let t0 = Instant::now();
        let first = log.record(65534, Refusal::UserCap, t0).unwrap();
        assert!(first.starts_with("refused 1 connection(s):"), "{first}");
        assert!(first.contains("most from uid 65534 (1)"), "{first}");
        let mut lines = 0;
        for i in 0..10_000u32 {
            let at = t0 + Duration::from_millis(u64::from(i));
            lines += usize::from(log.record(65534, Refusal::UserRate, at).is_some());
        }
        assert_eq!(lines, 0, "nothing more inside the first minute");
        let summary = log.flush(t0 + MINUTE).unwrap();
        assert!(
            summary.starts_with("refused 10000 connection(s) in the 60 s since the last report: 10000 over user_requests_per_second"),
            "{summary}"
        );
        assert_eq!(
            log.flush(t0 + MINUTE * 5),
            None,
            "nothing new, nothing said"
        );
    }

    #[test]
    fn the_summary_names_every_reason_and_the_uid_with_most() {
        let mut log = RefusalLog::new(MINUTE);
        let t0 = Instant::now();
        log.record(1, Refusal::Full, t0);
        log.record(1000, Refusal::UserCap, t0);
        log.record(1000, Refusal::UserCap, t0);
        log.record(1001, Refusal::SharedFull, t0);
        let summary = log.flush(t0 + MINUTE).unwrap();
        assert_eq!(
            summary,
            "refused 3 connection(s) in the 60 s since the last report: 2 at max_connections_per_user, 1 past the \
             unprivileged share; most from uid 1000 (2); further refusals are summed up once \
             every 60 s"
        );
    }

    #[test]
    fn the_uid_table_stays_bounded() {
        let mut log = RefusalLog::new(MINUTE);
        let t0 = Instant::now();
        log.record(0, Refusal::Full, t0);
        for uid in 0..(MAX_UIDS as u32 * 4) {
            log.record(uid, Refusal::UserCap, t0);
        }
        assert_eq!(log.by_uid.len(), MAX_UIDS);
    }
}
