//! What a test server (the SMTP capture, the webhook gateway) received: one JSON file per
//! message or request in a directory, named in the order they came. Read back oldest first, and
//! waited for.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The JSON files in `dir`, oldest first (their names sort in arrival order).
pub fn json_files_in(dir: &Path) -> Vec<PathBuf> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Reads with `read_all` until it returns at least `count` items or `timeout` passes; returns
/// the last read.
pub fn wait_for<T>(count: usize, timeout: Duration, read_all: impl Fn() -> Vec<T>) -> Vec<T> {
    let deadline = Instant::now() + timeout;
    loop {
        let items = read_all();
        if items.len() >= count || Instant::now() >= deadline {
            return items;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
