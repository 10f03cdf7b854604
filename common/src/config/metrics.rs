//! `[metrics]`: where otpd writes its counters for Prometheus's node_exporter, and how often.

use std::net::SocketAddr;
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
    /// `listen`: a loopback address and port where otpd serves `GET /metrics` over HTTP (read
    /// at start; off when unset).
    pub listen: Option<SocketAddr>,
}

impl Default for MetricsConfig {
    fn default() -> MetricsConfig {
        MetricsConfig {
            textfile: None,
            interval: DEFAULT_METRICS_INTERVAL,
            listen: None,
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
        let listen = match &raw.listen {
            Some(value) => Some(loopback_address(value)?),
            None => None,
        };
        Ok(MetricsConfig {
            textfile,
            listen,
            interval: match &raw.interval_seconds {
                Some(v) => check::duration("interval_seconds", v, 1, 3600, SECOND)?,
                None => DEFAULT_METRICS_INTERVAL,
            },
        })
    }
}

/// `listen`: an IP address and port on loopback only (127.0.0.0/8 or ::1): the counters are
/// for the host's own Prometheus or a tunnel to it, never for the network.
fn loopback_address(value: &super::raw::Text) -> Result<SocketAddr, Invalid> {
    let address: SocketAddr = value.get_ref().parse().map_err(|_| {
        Invalid::new(
            value.span(),
            format!(
                "listen must be an IP address and port, such as \"127.0.0.1:9839\" or \"[::1]:9839\", got {:?}",
                value.get_ref()
            ),
        )
    })?;
    if !address.ip().is_loopback() {
        return Err(Invalid::new(
            value.span(),
            format!(
                "listen must be a loopback address (127.0.0.1, ::1), got {address}: otpd serves its counters to this host only"
            ),
        ));
    }
    Ok(address)
}
