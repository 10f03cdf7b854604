//! Why a benchmark run stopped.

use std::path::PathBuf;

/// A benchmark run that cannot go on; the run stops at the first one instead of reporting
/// numbers from a broken setup.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// Something the run needs is missing or could not be set up.
    #[error("setup: {0}")]
    Setup(String),
    /// A login did not end in PAM_SUCCESS: a benchmark of failing logins measures nothing.
    #[error("login failed: {0}")]
    Login(String),
    /// A consistency check failed (a login not counted exactly once, a lost mail).
    #[error("check failed: {0}")]
    Check(String),
    /// A file or socket operation failed.
    #[error("{path}: {source}")]
    Io {
        /// What was being read or written.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

impl BenchError {
    /// Wraps an I/O error with what it was about.
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> BenchError {
        let path = path.into();
        move |source| BenchError::Io { path, source }
    }
}
