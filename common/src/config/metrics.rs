//! `[metrics]`: where otpd writes its counters for Prometheus's node_exporter, and how often.

use std::path::PathBuf;
use std::time::Duration;

use super::check::{self, SECOND};
use super::error::Invalid;
use super::raw::RawMetrics;

/// How often the textfile is written when `interval_seconds` is not set.
pub const DEFAULT_METRICS_INTERVAL: Duration = Duration::from_secs(60);

/// `[metrics]`. Without it otpd writes no file; `otpctl metrics` prints the counters either way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsConfig {
    /// `textfile`: the file node_exporter's textfile collector reads (it reads only names ending
    /// in `.prom`, so others are refused). Written whole each time: a temporary file beside it,
    /// then renamed over it.
    pub textfile: Option<PathBuf>,
    /// `interval_seconds`: how often the file is written again.
    pub interval: Duration,
}

impl Default for MetricsConfig {
    fn default() -> MetricsConfig {
        MetricsConfig {
            textfile: None,
            interval: DEFAULT_METRICS_INTERVAL,
        }
    }
}

impl MetricsConfig {
    /// Checks `[metrics]`; a missing section writes no file.
    pub(super) fn from_raw(raw: &RawMetrics) -> Result<MetricsConfig, Invalid> {
        let textfile = match &raw.textfile {
            Some(value) => {
                let path = check::absolute_path("textfile", value)?;
                if path.extension().is_none_or(|e| e != "prom") {
                    return Err(Invalid::new(
                        value.span(),
                        format!(
                            "textfile must end in .prom (node_exporter reads no other file), got {:?}",
                            value.get_ref()
                        ),
                    ));
                }
                Some(path)
            }
            None => None,
        };
        Ok(MetricsConfig {
            textfile,
            interval: match &raw.interval_seconds {
                Some(v) => check::duration("interval_seconds", v, 1, 3600, SECOND)?,
                None => DEFAULT_METRICS_INTERVAL,
            },
        })
    }
}
