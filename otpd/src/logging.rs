//! Logs go to stderr (the journal under systemd), one line per event, without colour codes.

use tracing_subscriber::EnvFilter;

/// Installs the stderr logger; `RUST_LOG` may narrow or widen it (default `info`).
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
}
