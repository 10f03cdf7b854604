//! How many events of one kind from one local uid are written one by one: the first
//! [`PER_WINDOW`] in a [`WINDOW_SECS`] window, and then only counted until the window ends,
//! when one summary says how many more there were.
//!
//! Without it every refusal was a row and a line: uid nobody sent 111,409 requests in 15 s and
//! added 89 MiB to the state directory and 96 MiB of log. The counting is per uid and kind, so
//! one flooding user never hides another user's events, nor other kinds of their own. It keeps
//! no more than one small entry per (uid, kind) with a window open.

use std::collections::HashMap;

/// Events of one kind from one uid written one by one per window.
pub const PER_WINDOW: u64 = 10;

/// The window's length in seconds.
pub const WINDOW_SECS: i64 = 60;

/// What is counted together: events named `kind` (an audit event name, or `bad_request`)
/// caused by `caller_uid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RateKey {
    /// The uid of the process that caused them.
    pub caller_uid: u32,
    /// The event name.
    pub kind: &'static str,
}

/// Whether one event is written on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Written as a row and a line, as always.
    Individually,
    /// Over the rate: only counted; the window's summary will include it.
    Counted,
}

/// Events that were counted and not written, for the summary row and line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Suppressed {
    /// Whose and which.
    pub key: RateKey,
    /// How many were not written one by one.
    pub count: u64,
    /// When their window started (unix seconds).
    pub since: i64,
}

/// One open window.
#[derive(Debug, Clone, Copy)]
struct Window {
    start: i64,
    seen: u64,
}

impl Window {
    fn suppressed(self, key: RateKey) -> Option<Suppressed> {
        (self.seen > PER_WINDOW).then(|| Suppressed {
            key,
            count: self.seen - PER_WINDOW,
            since: self.start,
        })
    }
}

/// The open windows.
#[derive(Debug, Default)]
pub struct Throttle {
    windows: HashMap<RateKey, Window>,
}

impl Throttle {
    /// Counts one event at `now`. Also returns the summary of the key's previous window if it
    /// ended (so a steady flood gets one summary a window even without [`Throttle::ended`]).
    pub fn admit(&mut self, key: RateKey, now: i64) -> (Admission, Option<Suppressed>) {
        let fresh = Window {
            start: now,
            seen: 1,
        };
        match self.windows.get_mut(&key) {
            Some(window) if now < window.start.saturating_add(WINDOW_SECS) => {
                window.seen = window.seen.saturating_add(1);
                let admission = if window.seen <= PER_WINDOW {
                    Admission::Individually
                } else {
                    Admission::Counted
                };
                (admission, None)
            }
            Some(window) => {
                let ended = std::mem::replace(window, fresh).suppressed(key);
                (Admission::Individually, ended)
            }
            None => {
                self.windows.insert(key, fresh);
                (Admission::Individually, None)
            }
        }
    }

    /// Closes the windows that ended by `now` and returns the summaries of those that counted
    /// events without writing them.
    pub fn ended(&mut self, now: i64) -> Vec<Suppressed> {
        let mut summaries = Vec::new();
        self.windows.retain(|key, window| {
            let open = now < window.start.saturating_add(WINDOW_SECS);
            if !open {
                summaries.extend(window.suppressed(*key));
            }
            open
        });
        summaries
    }

    /// Closes every window (at shutdown), returning every pending summary.
    pub fn close_all(&mut self) -> Vec<Suppressed> {
        self.windows
            .drain()
            .filter_map(|(key, window)| window.suppressed(key))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOBODY: RateKey = RateKey {
        caller_uid: 65534,
        kind: "refused_caller",
    };

    fn admit_n(throttle: &mut Throttle, key: RateKey, n: u64, now: i64) -> Vec<Admission> {
        (0..n).map(|_| throttle.admit(key, now).0).collect()
    }

    #[test]
    fn the_first_events_of_a_window_are_written_and_the_rest_counted() {
        let mut throttle = Throttle::default();
        let admissions = admit_n(&mut throttle, NOBODY, 1000, 100);
        let written = admissions
            .iter()
            .filter(|a| **a == Admission::Individually)
            .count();
        assert_eq!(written as u64, PER_WINDOW);
        assert!(
            throttle.ended(100 + WINDOW_SECS - 1).is_empty(),
            "still open"
        );
        assert_eq!(
            throttle.ended(100 + WINDOW_SECS),
            [Suppressed {
                key: NOBODY,
                count: 1000 - PER_WINDOW,
                since: 100
            }]
        );
        assert!(throttle.ended(1_000_000).is_empty(), "summarised once");
    }

    #[test]
    fn a_window_within_the_rate_has_no_summary() {
        let mut throttle = Throttle::default();
        admit_n(&mut throttle, NOBODY, PER_WINDOW, 100);
        assert!(throttle.ended(100 + WINDOW_SECS).is_empty());
        assert!(throttle.windows.is_empty(), "closed windows are forgotten");
    }

    #[test]
    fn other_uids_and_other_kinds_are_counted_apart() {
        let mut throttle = Throttle::default();
        admit_n(&mut throttle, NOBODY, 100, 100);
        let other_uid = RateKey {
            caller_uid: 1000,
            ..NOBODY
        };
        let other_kind = RateKey {
            kind: "wrong_code",
            ..NOBODY
        };
        for key in [other_uid, other_kind] {
            assert_eq!(throttle.admit(key, 101).0, Admission::Individually);
        }
    }

    #[test]
    fn the_next_event_after_a_window_writes_its_summary_and_opens_another() {
        let mut throttle = Throttle::default();
        admit_n(&mut throttle, NOBODY, PER_WINDOW + 5, 100);
        let (admission, ended) = throttle.admit(NOBODY, 100 + WINDOW_SECS);
        assert_eq!(admission, Admission::Individually);
        assert_eq!(ended.map(|s| s.count), Some(5));
        assert_eq!(throttle.close_all(), []);
    }

    #[test]
    fn closing_at_shutdown_returns_every_pending_summary() {
        let mut throttle = Throttle::default();
        admit_n(&mut throttle, NOBODY, PER_WINDOW + 3, 100);
        assert_eq!(throttle.close_all().first().map(|s| s.count), Some(3));
        assert!(throttle.windows.is_empty());
    }
}
