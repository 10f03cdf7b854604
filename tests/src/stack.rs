//! PAM service files in a temporary config directory, loaded by libpam's `pam_start_confdir`, so
//! the tests never touch /etc/pam.d.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::paths;

/// A directory of PAM service files.
#[derive(Debug)]
pub struct PamConfDir {
    dir: tempfile::TempDir,
}

impl PamConfDir {
    /// An empty directory (readable by every uid, for the caller tests).
    pub fn new() -> PamConfDir {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
        PamConfDir { dir }
    }

    /// The directory to pass as confdir.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes the service file `service` with `lines`.
    pub fn service(&self, service: &str, lines: &str) -> PathBuf {
        let path = self.dir.path().join(service);
        fs::write(&path, lines).expect("write service file");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
        path
    }

    /// The usual test stack: our module `required` with `args`, then pam_permit, so the result
    /// is our module's verdict (PAM_SUCCESS when it succeeds or is skipped).
    pub fn otp_then_permit(&self, service: &str, socket: &Path, args: &str) -> PathBuf {
        self.service(
            service,
            &format!(
                "auth required {} socket={} {args}\nauth required pam_permit.so\n",
                paths::module().display(),
                socket.display()
            ),
        )
    }
}

impl Default for PamConfDir {
    fn default() -> Self {
        PamConfDir::new()
    }
}
