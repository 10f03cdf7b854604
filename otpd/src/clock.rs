//! The time source, injected so that expiry, cooldowns and lockouts are tested without sleeping.
//!
//! The daemon counts time with [`SteadyClock`]: the wall clock read once at start, plus the
//! monotonic clock's elapsed time since. A wall clock stepped back (NTP, a VM restored from a
//! snapshot, an admin's `date -s`) would otherwise stretch a live code, and one stepped forward
//! would cut lockouts, send caps and cooldowns short; while otpd runs, neither happens. A step
//! is logged once. Across a restart the wall clock is read again, and a code issued "in the
//! future" of the new clock is refused by the store (a code is valid only from its issue time
//! to its expiry).

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Tells the current time as Unix seconds.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Seconds since the Unix epoch.
    fn now(&self) -> i64;
}

/// The system's wall clock, for `otpctl`'s one-off reads (a listing's `--since`, minutes left).
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> i64 {
        wall_millis().div_euclid(1000)
    }
}

/// How far the wall clock may drift from otpd's steady time before it counts as a step and is
/// logged. Slewing by NTP moves both clocks alike; 5 s is far above any rounding and far below
/// any step that matters to a 1-minute-or-longer code validity.
pub const STEP_TOLERANCE_SECS: i64 = 5;

/// The daemon's clock: the wall clock at start plus monotonic time elapsed. See the module
/// comment for why; the price is that, after a step, otpd's times (audit rows, "valid until"
/// in mails) differ from the wall clock by the step until otpd restarts, which the log says.
#[derive(Debug)]
pub struct SteadyClock {
    /// Wall-clock milliseconds since 1970 at [`SteadyClock::anchor_instant`].
    anchor_wall_ms: i64,
    /// The monotonic reading taken together with `anchor_wall_ms`.
    anchor_instant: Instant,
    /// The wall clock's offset from steady time (ms) when last reported, so that a step is
    /// logged once rather than on every request.
    reported_offset_ms: AtomicI64,
    /// Reads the wall clock; replaced in tests.
    wall: fn() -> i64,
}

impl SteadyClock {
    /// Anchors to the wall clock now.
    pub fn new() -> SteadyClock {
        SteadyClock::with_wall(wall_millis)
    }

    fn with_wall(wall: fn() -> i64) -> SteadyClock {
        SteadyClock {
            anchor_wall_ms: wall(),
            anchor_instant: Instant::now(),
            reported_offset_ms: AtomicI64::new(0),
            wall,
        }
    }

    /// Steady time in milliseconds. The monotonic elapsed time is signed: a monotonic clock
    /// that goes back (libfaketime fakes it) moves steady time back rather than saturating.
    fn steady_millis(&self) -> i64 {
        let now = Instant::now();
        let elapsed = match now.checked_duration_since(self.anchor_instant) {
            Some(forward) => millis(forward),
            None => millis(self.anchor_instant.duration_since(now)).saturating_neg(),
        };
        self.anchor_wall_ms.saturating_add(elapsed)
    }

    /// Logs a wall clock that left steady time by more than the tolerance since the last report.
    fn report_step(&self, steady_ms: i64) {
        let offset = (self.wall)().saturating_sub(steady_ms);
        let reported = self.reported_offset_ms.load(Ordering::Relaxed);
        if offset.saturating_sub(reported).abs() <= STEP_TOLERANCE_SECS * 1000 {
            return;
        }
        // Only the thread that swaps the value logs, so a step is reported once.
        if self
            .reported_offset_ms
            .compare_exchange(reported, offset, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            return;
        }
        let seconds = offset.saturating_sub(reported) / 1000;
        if seconds < 0 {
            tracing::warn!(
                "the wall clock stepped back by {} s; otpd keeps counting time by the monotonic clock, so live codes are not stretched (restart otpd to follow the wall clock)",
                seconds.saturating_neg()
            );
        } else {
            tracing::warn!(
                "the wall clock stepped forward by {seconds} s; otpd keeps counting time by the monotonic clock, so lockouts and caps are not cut short (restart otpd to follow the wall clock)"
            );
        }
    }
}

impl Default for SteadyClock {
    fn default() -> SteadyClock {
        SteadyClock::new()
    }
}

impl Clock for SteadyClock {
    fn now(&self) -> i64 {
        let steady = self.steady_millis();
        self.report_step(steady);
        steady.div_euclid(1000)
    }
}

/// Wall-clock milliseconds since 1970. A clock before 1970 is a broken machine; 0 then makes
/// every code look expired, which fails closed.
fn wall_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(millis)
        .unwrap_or(0)
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicI64;

    /// The fake wall clock the tests step (ms); each test that steps it holds [`WALL_LOCK`].
    static WALL: AtomicI64 = AtomicI64::new(1_700_000_000_000);
    static WALL_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

    fn fake_wall() -> i64 {
        WALL.load(Ordering::SeqCst)
    }

    fn step(by_ms: i64) {
        WALL.fetch_add(by_ms, Ordering::SeqCst);
    }

    #[test]
    fn stepping_the_wall_clock_back_does_not_move_otpd_time_back() {
        let _guard = WALL_LOCK.lock().unwrap();
        let clock = SteadyClock::with_wall(fake_wall);
        let before = clock.now();
        step(-3_600_000);
        assert!(
            clock.now() >= before,
            "steady time went back with the wall clock"
        );
        assert_eq!(clock.reported_offset_ms.load(Ordering::SeqCst), -3_600_000);
        step(3_600_000);
    }

    #[test]
    fn stepping_the_wall_clock_forward_does_not_move_otpd_time_forward() {
        let _guard = WALL_LOCK.lock().unwrap();
        let clock = SteadyClock::with_wall(fake_wall);
        let before = clock.now();
        step(900_000);
        assert!(
            clock.now() < before + 60,
            "steady time jumped with the wall clock"
        );
        step(-900_000);
    }

    #[test]
    fn a_step_is_reported_once_and_drift_within_the_tolerance_not_at_all() {
        let _guard = WALL_LOCK.lock().unwrap();
        let clock = SteadyClock::with_wall(fake_wall);
        step(-(STEP_TOLERANCE_SECS * 1000));
        clock.now();
        assert_eq!(clock.reported_offset_ms.load(Ordering::SeqCst), 0);
        step(-60_000);
        clock.now();
        let reported = clock.reported_offset_ms.load(Ordering::SeqCst);
        assert!(reported <= -60_000, "{reported}");
        for _ in 0..3 {
            clock.now();
            assert_eq!(clock.reported_offset_ms.load(Ordering::SeqCst), reported);
        }
        step(60_000 + STEP_TOLERANCE_SECS * 1000);
    }

    #[test]
    fn steady_time_starts_at_the_wall_clock() {
        let clock = SteadyClock::new();
        assert!((clock.now() - SystemClock.now()).abs() <= 1);
    }
}
