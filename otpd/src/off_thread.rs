//! Work that must not run on the runtime's thread: store transactions (they wait for the store's
//! mutex, and a purge or an import may hold it for a while) and blocking directory lookups (NSS,
//! and later a network directory). The runtime's one thread keeps reading and answering other
//! connections meanwhile.

use common::text::escape_for_log;

/// The work panicked (or its thread was lost): the request answers "internal error".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lost;

/// Runs `work` on tokio's blocking pool and waits for it without holding up the runtime. A panic
/// in `work` is caught there and comes back as [`Lost`], never crossing into the server.
pub async fn run<T, F>(work: F) -> Result<T, Lost>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    tokio::task::spawn_blocking(work).await.map_err(|e| {
        tracing::error!(
            "request work failed on its thread: {}",
            escape_for_log(&e.to_string())
        );
        Lost
    })
}
