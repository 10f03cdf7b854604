//! Writes the database's WAL to disk in the background, so a checkpoint's fsync finds little
//! left to write.
//!
//! With `synchronous=NORMAL` SQLite never syncs the WAL until it checkpoints, and then fsyncs
//! everything written since (up to 12 MiB, see `Store::open`) inside one login's commit, while
//! the whole one-thread runtime waits. bench/ measured that as the 4-loop p99 (11 ms). A thread
//! here calls `fdatasync` on its own descriptor of the WAL every `EVERY`: data reaches the
//! disk sooner than SQLite asks, which is always safe, and the checkpoint's own fsync is short.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How often the WAL is flushed.
const EVERY: Duration = Duration::from_millis(100);

/// Starts the flushing thread for the database at `database`; it runs until the process ends.
pub fn spawn(database: &Path) -> std::io::Result<()> {
    let mut wal_path = database.as_os_str().to_owned();
    wal_path.push("-wal");
    let wal_path = PathBuf::from(wal_path);
    std::thread::Builder::new()
        .name("wal-flush".into())
        .spawn(move || flush_forever(&wal_path))
        .map(|_| ())
}

fn flush_forever(wal_path: &Path) {
    let mut wal: Option<File> = None;
    loop {
        std::thread::sleep(EVERY);
        if wal.is_none() {
            // Absent until the first write; read access is enough to flush it.
            wal = File::open(wal_path).ok();
        }
        if let Some(file) = &wal {
            if let Err(e) = file.sync_data() {
                tracing::debug!(
                    "cannot flush {}: {}",
                    common::text::escape_for_log(&wal_path.display().to_string()),
                    common::text::escape_for_log(&e.to_string())
                );
                wal = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Names of this process's threads.
    fn thread_names() -> Vec<String> {
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
            .map(|name| name.trim().to_string())
            .collect()
    }

    #[test]
    fn the_flusher_keeps_running_while_the_wal_is_missing_and_once_it_exists() {
        let dir = tempfile::tempdir().unwrap();
        let database = dir.path().join("otpd.db");
        spawn(&database).unwrap();
        std::thread::sleep(EVERY * 3);
        assert!(
            thread_names().iter().any(|n| n == "wal-flush"),
            "no WAL yet"
        );
        std::fs::write(dir.path().join("otpd.db-wal"), b"frames").unwrap();
        std::thread::sleep(EVERY * 3);
        assert!(
            thread_names().iter().any(|n| n == "wal-flush"),
            "WAL flushed"
        );
    }
}
