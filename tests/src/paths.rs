//! Where the built artifacts are: the tests run the real `otpd` binary and load the real module.
//!
//! Test binaries live in `target/<profile>/deps/`, so the artifacts are one directory up. The
//! test command builds the workspace first (see README).

use std::path::PathBuf;
use std::process::Command;

/// `target/<profile>/`, found from the running test binary.
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let deps = exe.parent().expect("test binary has a directory");
    let dir = if deps.ends_with("deps") {
        deps.parent().expect("deps has a parent")
    } else {
        deps
    };
    dir.to_path_buf()
}

/// A built binary of the workspace, e.g. `otpd`; panics with a hint when it was not built.
pub fn binary(name: &str) -> PathBuf {
    let path = target_dir().join(name);
    assert!(
        path.exists(),
        "{} is missing: build the workspace first (cargo build --workspace)",
        path.display()
    );
    path
}

/// The PAM module as built.
pub fn module() -> PathBuf {
    binary("libpam_otp_email.so")
}

/// The SMTP capture server script.
pub fn capture_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("smtp/capture.py")
}

/// The built `otpctl`, run as root (`None`) or as the uid:gid `who` through `setpriv` with no
/// supplementary groups, as an unprivileged user would run it.
pub fn otpctl_as(who: Option<(u32, u32)>) -> Command {
    match who {
        None => Command::new(binary("otpctl")),
        Some((uid, gid)) => {
            let mut command = Command::new("setpriv");
            command
                .arg(format!("--reuid={uid}"))
                .arg(format!("--regid={gid}"))
                .args(["--clear-groups", "--"])
                .arg(binary("otpctl"));
            command
        }
    }
}
