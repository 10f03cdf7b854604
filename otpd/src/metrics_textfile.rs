//! `[metrics] textfile`: otpd's counters written, every `interval_seconds`, to the file
//! node_exporter's textfile collector reads. Each write is whole: the text goes to a temporary
//! file beside the target (`NAME.prom.tmp`, a name the collector ignores), is flushed, and is
//! renamed over the target, so the collector never reads half a file.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::text::escape_for_log;

use crate::state::Shared;

/// Writes `text` to `path` atomically (see the module's doc), mode 0644 whatever the umask
/// (the unit's is 0077): node_exporter runs as its own user and must read it.
pub fn write_atomically(path: &Path, text: &str) -> io::Result<()> {
    let temporary = temporary_path(path);
    // A temporary file left by a crash, or anything else by that name, is replaced; the new one
    // is created afresh (`O_EXCL`, which follows no symbolic link).
    match fs::remove_file(&temporary) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let written = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(&temporary)
        .and_then(|mut file| {
            file.set_permissions(fs::Permissions::from_mode(0o644))?;
            file.write_all(text.as_bytes())?;
            file.sync_all()
        })
        .and_then(|()| fs::rename(&temporary, path));
    if written.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    written
}

/// `NAME.prom.tmp` beside `NAME.prom`.
fn temporary_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(".tmp");
    PathBuf::from(name)
}

/// Writes the textfile now and then every interval, as the config in force says (a reload may
/// set, move or drop it). A failure is logged when it starts or changes and when it ends, not
/// at every interval.
pub async fn write_periodically(shared: Arc<Shared>) {
    let mut failing: Option<String> = None;
    loop {
        let active = shared.active();
        let interval = active.config.metrics.interval;
        if let Some(path) = active.config.metrics.textfile.clone() {
            let text = crate::metrics::exposition(&shared, &active);
            let target = path.clone();
            let written =
                tokio::task::spawn_blocking(move || write_atomically(&target, &text)).await;
            let failure = match written {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e.to_string()),
                Err(e) => Some(format!("the write task failed: {e}")),
            };
            report(&path, &mut failing, failure);
        }
        drop(active);
        tokio::time::sleep(interval).await;
    }
}

/// Logs a write's outcome when it differs from the last one's.
fn report(path: &Path, failing: &mut Option<String>, failure: Option<String>) {
    if *failing == failure {
        return;
    }
    let shown = escape_for_log(&path.display().to_string());
    match &failure {
        Some(error) => tracing::warn!(
            "cannot write the metrics textfile {shown}: {}",
            escape_for_log(error)
        ),
        None => tracing::info!("wrote the metrics textfile {shown} again"),
    }
    *failing = failure;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_is_replaced_whole_and_no_temporary_file_stays() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("otpd.prom");
        write_atomically(&path, "a 1\n").unwrap();
        write_atomically(&path, "a 2\n").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "a 2\n");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["otpd.prom"]);
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644, "node_exporter must read it");
    }

    #[test]
    fn a_temporary_file_left_behind_or_a_link_by_its_name_is_replaced_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("otpd.prom");
        let elsewhere = dir.path().join("elsewhere");
        fs::write(&elsewhere, "keep").unwrap();
        std::os::unix::fs::symlink(&elsewhere, temporary_path(&path)).unwrap();
        write_atomically(&path, "a 1\n").unwrap();
        assert_eq!(fs::read_to_string(&elsewhere).unwrap(), "keep");
        assert_eq!(fs::read_to_string(&path).unwrap(), "a 1\n");
        assert!(!temporary_path(&path).exists());
    }

    #[test]
    fn a_directory_that_cannot_be_written_is_an_error_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing").join("otpd.prom");
        assert!(write_atomically(&path, "a 1\n").is_err());
        assert!(!path.exists());
    }
}
