//! Files holding mail secrets (the SMTP password, the DKIM key): read once at start, refused
//! unless only their owner (root or otpd itself) can read them.
//!
//! The main config may be world-readable; these files must not be. A password file that other
//! users can read is a password other users have, so otpd stops rather than use it.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use common::secret::SecretString;
use zeroize::Zeroizing;

/// The largest secret file read (a 4096-bit RSA key in PEM is about 3.3 KiB).
const MAX_SECRET_FILE: u64 = 16 * 1024;

/// Why a secret file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct SecretFileError {
    /// The file.
    pub path: String,
    /// What is wrong with it.
    pub reason: String,
}

/// Reads the whole file at `path` after checking, on the opened file itself (so the check and
/// the read see the same file), that it is a regular file owned by root or by this process's
/// user, with no permission bits for group or others.
pub fn read_private(path: &Path) -> Result<SecretString, SecretFileError> {
    let fail = |reason: String| SecretFileError {
        path: path.display().to_string(),
        reason,
    };
    let mut file = File::open(path).map_err(|e| fail(format!("cannot open: {e}")))?;
    let meta = file
        .metadata()
        .map_err(|e| fail(format!("cannot stat: {e}")))?;
    if !meta.is_file() {
        return Err(fail("not a regular file".into()));
    }
    let me = nix::unistd::geteuid().as_raw();
    if meta.uid() != 0 && meta.uid() != me {
        return Err(fail(format!(
            "owned by uid {}; it must belong to root or to otpd's user (uid {me})",
            meta.uid()
        )));
    }
    if meta.mode() & 0o077 != 0 {
        return Err(fail(format!(
            "mode {:o} lets group or others in; it holds a secret, so use chmod 600 (or 400)",
            meta.mode() & 0o7777
        )));
    }
    let mut bytes = Zeroizing::new(Vec::new());
    file.by_ref()
        .take(MAX_SECRET_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| fail(format!("cannot read: {e}")))?;
    if bytes.len() as u64 > MAX_SECRET_FILE {
        return Err(fail(format!("longer than {MAX_SECRET_FILE} bytes")));
    }
    let text = std::str::from_utf8(&bytes).map_err(|_| fail("not UTF-8 text".into()))?;
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
