//! A Prometheus histogram: counts per upper bound (cumulative, as the format wants them), the
//! sum and the count.

use std::time::Duration;

use super::sample;

/// Observations of one duration, in seconds.
#[derive(Debug, Clone)]
pub struct Histogram {
    bounds: &'static [f64],
    /// Observations at or below each bound.
    buckets: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    /// An empty histogram with these upper bounds (seconds, ascending); `+Inf` follows them.
    pub fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            buckets: vec![0; bounds.len()],
            sum: 0.0,
            count: 0,
        }
    }

    /// Notes one observation.
    pub fn observe(&mut self, took: Duration) {
        let seconds = took.as_secs_f64();
        for (bound, count) in self.bounds.iter().zip(self.buckets.iter_mut()) {
            if seconds <= *bound {
                *count += 1;
            }
        }
        self.sum += seconds;
        self.count += 1;
    }

    /// The `_bucket`, `_sum` and `_count` lines of `name`, each with `labels` (before `le`).
    pub fn render(&self, out: &mut String, name: &str, labels: &[(&str, &str)]) {
        let bucket = format!("{name}_bucket");
        for (bound, n) in self.bounds.iter().zip(&self.buckets) {
            let le = bound.to_string();
            let mut with_le = labels.to_vec();
            with_le.push(("le", &le));
            sample(out, &bucket, &with_le, n);
        }
        let mut with_inf = labels.to_vec();
        with_inf.push(("le", "+Inf"));
        sample(out, &bucket, &with_inf, self.count);
        sample(out, &format!("{name}_sum"), labels, self.sum);
        sample(out, &format!("{name}_count"), labels, self.count);
    }
}
