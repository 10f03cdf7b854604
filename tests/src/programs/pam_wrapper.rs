//! pam_wrapper (Debian's `libpam-wrapper`): a preloaded library that makes the real libpam of an
//! unmodified program read its service files from a directory of the test's choosing.
//!
//! A server started through [`wrap`] with service directory D reads `D/<service>` where it would
//! read `/etc/pam.d/<service>`; modules named without a path still load from the system's
//! module directory, so `pam_unix.so` is the real one. pam_wrapper copies D when the process
//! starts: sshd re-executes itself for every connection and so sees a changed file at the next
//! login, vsftpd and nginx only after a restart.

use std::path::Path;
use std::process::Command;

use crate::stack::PamConfDir;

/// The preload library, found by the dynamic linker's default path.
pub const LIBRARY: &str = "libpam_wrapper.so";

/// A service directory for a wrapped server, with an `other` service that denies everything, so
/// a service name the test did not write fails closed instead of reaching any default.
pub fn service_dir() -> PamConfDir {
    let dir = PamConfDir::new();
    dir.service(
        "other",
        "auth required pam_deny.so\naccount required pam_deny.so\n\
         password required pam_deny.so\nsession required pam_deny.so\n",
    );
    dir
}

/// Makes `command` (and the processes it forks or re-executes) use the service files in `dir`.
pub fn wrap(command: &mut Command, dir: &Path) {
    command
        .env("LD_PRELOAD", LIBRARY)
        .env("PAM_WRAPPER", "1")
        .env("PAM_WRAPPER_SERVICE_DIR", dir);
}
