//! Files holding mail secrets (the SMTP password, the DKIM key): read once at start, refused
//! unless only their owner (root or otpd itself) can read them.
//!
//! The main config may be world-readable; these files must not be. A password file that other
//! users can read is a password other users have, so otpd stops rather than use it.

use std::path::Path;

use common::config::admin_file::{self, AdminFileKind};
use common::secret::SecretString;

/// Why a secret file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct SecretFileError {
    /// The file.
    pub path: String,
    /// What is wrong with it.
    pub reason: String,
}

/// Reads the whole file at `path` through [`admin_file::read`]: a regular file (never a FIFO or
/// device, which would hang or exhaust otpd), checked on the opened file itself, owned by root
/// or by otpd's user, with no permission bits for group or others, at most 16 KiB.
pub fn read_private(path: &Path) -> Result<SecretString, SecretFileError> {
    let bytes = admin_file::read(path, AdminFileKind::Secret).map_err(|e| SecretFileError {
        path: e.path,
        reason: e.reason,
    })?;
    let text = std::str::from_utf8(&bytes).map_err(|_| SecretFileError {
        path: path.display().to_string(),
        reason: "not UTF-8 text".into(),
    })?;
    Ok(SecretString::new(text.to_string()))
}

/// The password in a password file: its first line, without the line end. Empty is refused.
pub fn read_password(path: &Path) -> Result<SecretString, SecretFileError> {
    let whole = read_private(path)?;
    let first = whole
        .expose()
        .split(['\n', '\r'])
        .next()
        .unwrap_or_default();
    if first.is_empty() {
        return Err(SecretFileError {
            path: path.display().to_string(),
            reason: "the first line (the password) is empty".into(),
        });
    }
    Ok(SecretString::new(first.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn file(content: &str, mode: u32) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, content).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        (dir, path)
    }

    #[test]
    fn an_owner_only_file_gives_its_first_line() {
        let (_dir, path) = file("s3cret pass\nignored\n", 0o600);
        assert_eq!(read_password(&path).unwrap().expose(), "s3cret pass");
        let (_dir, path) = file("crlf\r\n", 0o400);
        assert_eq!(read_password(&path).unwrap().expose(), "crlf");
    }

    #[test]
    fn a_file_group_or_others_can_read_is_refused() {
        for mode in [0o640, 0o604, 0o644, 0o660, 0o610] {
            let (_dir, path) = file("pw\n", mode);
            let e = read_password(&path).unwrap_err();
            assert!(e.reason.contains("chmod 600"), "{mode:o}: {e}");
        }
    }

    #[test]
    fn empty_missing_and_non_regular_files_are_refused() {
        let (_dir, path) = file("\nsecond\n", 0o600);
        assert!(read_password(&path).unwrap_err().reason.contains("empty"));
        assert!(read_password(Path::new("/nonexistent/otpd/pw")).is_err());
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        assert!(
            read_private(dir.path())
                .unwrap_err()
                .reason
                .contains("regular")
        );
    }
}
