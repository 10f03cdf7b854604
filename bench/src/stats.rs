//! Latency summaries: nearest-rank percentiles over every measured login.

use std::time::Duration;

/// What a set of latencies comes down to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// How many were measured.
    pub count: usize,
    /// Median.
    pub p50: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// The slowest.
    pub max: Duration,
    /// Arithmetic mean.
    pub mean: Duration,
}

impl Summary {
    /// Summarizes `samples` (sorted in place); `None` when there are none.
    pub fn of(samples: &mut [Duration]) -> Option<Summary> {
        if samples.is_empty() {
            return None;
        }
        samples.sort_unstable();
        let total: Duration = samples.iter().sum();
        let count = samples.len();
        Some(Summary {
            count,
            p50: percentile(samples, 50),
            p99: percentile(samples, 99),
            max: samples[count - 1],
            mean: total / u32::try_from(count).unwrap_or(u32::MAX),
        })
    }
}

/// The nearest-rank `pct` percentile of sorted, non-empty `samples`: the smallest value with at
/// least `pct` percent of the samples at or below it.
fn percentile(sorted: &[Duration], pct: usize) -> Duration {
    let rank = (sorted.len() * pct).div_ceil(100).max(1);
    sorted[rank.min(sorted.len()) - 1]
}

/// Microseconds with one decimal, for tables.
pub fn micros(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us(values: &[u64]) -> Vec<Duration> {
        values.iter().map(|v| Duration::from_micros(*v)).collect()
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let mut samples = us(&(1..=100).rev().collect::<Vec<_>>());
        let s = Summary::of(&mut samples).unwrap();
        assert_eq!(s.count, 100);
        assert_eq!(s.p50, Duration::from_micros(50));
        assert_eq!(s.p99, Duration::from_micros(99));
        assert_eq!(s.max, Duration::from_micros(100));
        assert_eq!(s.mean, Duration::from_nanos(50_500));
    }

    #[test]
    fn a_single_sample_is_every_percentile() {
        let s = Summary::of(&mut us(&[7])).unwrap();
        assert_eq!(
            (s.p50, s.p99, s.max),
            (s.max, s.max, Duration::from_micros(7))
        );
    }

    #[test]
    fn no_samples_give_no_summary() {
        assert_eq!(Summary::of(&mut []), None);
    }
}
