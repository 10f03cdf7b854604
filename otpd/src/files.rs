//! Checks on the files and directories otpd trusts: the state directory and the socket.
//!
//! otpd refuses a state directory that others could write to or that belongs to another user,
//! because whoever can replace the database or the key can forge codes.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::Path;

/// Why a path was refused.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The OS refused.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The OS error.
        source: io::Error,
    },
    /// The path is unsafe to trust.
    #[error("{path}: {reason}")]
    Unsafe {
        /// The path.
        path: String,
        /// Why.
        reason: String,
    },
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> FileError + '_ {
    move |source| FileError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Creates the state directory (mode 0700) if missing, and checks that it is a real directory
/// owned by this uid that neither group nor others can write.
pub fn prepare_state_dir(dir: &Path) -> Result<(), FileError> {
    if fs::symlink_metadata(dir).is_err() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io_error(dir))?;
    }
    let meta = fs::symlink_metadata(dir).map_err(io_error(dir))?;
    let unsafe_dir = |reason: &str| FileError::Unsafe {
        path: dir.display().to_string(),
        reason: reason.to_string(),
    };
    if !meta.is_dir() {
        return Err(unsafe_dir("not a directory (symlinks are refused)"));
    }
    if meta.uid() != nix::unistd::geteuid().as_raw() {
        return Err(unsafe_dir(&format!(
            "owned by uid {}, not by otpd's uid {}",
            meta.uid(),
            nix::unistd::geteuid()
        )));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(unsafe_dir(&format!(
            "mode {:o} lets group or others write; use 0700",
            meta.mode() & 0o7777
        )));
    }
    Ok(())
}

/// Removes a stale socket left by a previous run, refusing when another otpd still answers on
/// it or when the path is not a socket.
pub fn clear_stale_socket(path: &Path) -> Result<(), FileError> {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return Ok(());
    };
    use std::os::unix::fs::FileTypeExt;
    if !meta.file_type().is_socket() {
        return Err(FileError::Unsafe {
            path: path.display().to_string(),
            reason: "exists and is not a socket; refusing to replace it".into(),
        });
    }
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        return Err(FileError::Unsafe {
            path: path.display().to_string(),
            reason: "another otpd is already listening there".into(),
        });
    }
    fs::remove_file(path).map_err(io_error(path))
}

/// Creates the socket's directory if missing (0755: clients must reach the socket).
pub fn prepare_socket_dir(socket: &Path) -> Result<(), FileError> {
    match socket.parent() {
        Some(parent) if !parent.as_os_str().is_empty() && !parent.exists() => fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(parent)
            .map_err(io_error(parent)),
        _ => Ok(()),
    }
}

/// Lets every local user connect: each request is authorized by the peer's credentials, and
/// users need the socket for their own logins and for `otpctl`.
pub fn open_socket_mode(socket: &Path) -> Result<(), FileError> {
    fs::set_permissions(socket, fs::Permissions::from_mode(0o666)).map_err(io_error(socket))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_dir_is_created_private() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        prepare_state_dir(&state).unwrap();
        let mode = fs::metadata(&state).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o700);
    }

    #[test]
    fn world_writable_state_dir_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).unwrap();
        let err = prepare_state_dir(dir.path()).unwrap_err();
        assert!(
            err.to_string().contains("lets group or others write"),
            "{err}"
        );
    }

    #[test]
    fn symlinked_state_dir_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        fs::create_dir(&real).unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        assert!(prepare_state_dir(&link).is_err());
    }

    #[test]
    fn a_regular_file_at_the_socket_path_is_not_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("otpd.sock");
        fs::write(&path, b"x").unwrap();
        assert!(clear_stale_socket(&path).is_err());
        assert!(path.exists());
    }

    #[test]
    fn a_stale_socket_is_removed_but_a_live_one_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("otpd.sock");
        let live = std::os::unix::net::UnixListener::bind(&path).unwrap();
        assert!(clear_stale_socket(&path).is_err());
        drop(live);
        clear_stale_socket(&path).unwrap();
        assert!(!path.exists());
    }
}
