//! File checks: the socket and its directory, the state directory, database and secret, and
//! the installed module. Each says what is wrong and the command that fixes it.

use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use super::Finding;
use crate::ctl::connect::DAEMON_USER;
use crate::lifecycle::DATABASE_FILE;
use crate::server_key::KEY_FILE;

/// The uids that may own otpd's files and socket: root and the `otpd` account.
fn daemon_uids() -> Vec<u32> {
    let mut uids = vec![0];
    if let Ok(Some(user)) = nix::unistd::User::from_name(DAEMON_USER) {
        uids.push(user.uid.as_raw());
    }
    uids
}

fn mode(meta: &fs::Metadata) -> u32 {
    meta.mode() & 0o7777
}

/// The socket: a socket owned by otpd's uid, mode 0666 (otpd authorizes every request by the
/// caller's uid), in a directory nobody else can write to.
pub fn socket(path: &Path) -> Vec<Finding> {
    let mut out = Vec::new();
    match fs::symlink_metadata(path) {
        Err(e) => out.push(Finding::problem(
            "socket",
            format!("{}: {e}", path.display()),
            "start otpd (systemctl start otpd); it creates the socket. If it runs elsewhere, point --socket or [daemon] socket at it",
        )),
        Ok(meta) if !meta.file_type().is_socket() => out.push(Finding::problem(
            "socket",
            format!("{} is not a socket", path.display()),
            format!("remove it (rm {}) and restart otpd", path.display()),
        )),
        Ok(meta) => {
            let m = mode(&meta);
            if m & 0o666 != 0o666 {
                out.push(Finding::problem(
                    "socket",
                    format!(
                        "{} has mode {m:04o}: PAM services running as other users and users' otpctl cannot connect, so their logins fail",
                        path.display()
                    ),
                    "restart otpd (systemctl restart otpd), which creates it with mode 0666; every request is authorized by the caller's uid, so the mode must not be narrowed",
                ));
            } else if !daemon_uids().contains(&meta.uid()) {
                out.push(Finding::problem(
                    "socket",
                    format!(
                        "{} is owned by uid {}, neither root nor {DAEMON_USER}: PAM and otpctl refuse to talk to it",
                        path.display(),
                        meta.uid()
                    ),
                    "find out which process made it (ss -xlp), stop it, and restart otpd",
                ));
            } else {
                out.push(Finding::ok(
                    "socket",
                    format!("{} is a socket, mode {m:04o}, owner uid {}", path.display(), meta.uid()),
                ));
            }
        }
    }
    if let Some(dir) = path.parent() {
        if let Ok(meta) = fs::metadata(dir) {
            let m = mode(&meta);
            let sticky = m & 0o1000 != 0;
            if m & 0o022 != 0 && !sticky {
                out.push(Finding::problem(
                    "socket",
                    format!(
                        "{} has mode {m:04o}: other users can replace the socket with their own",
                        dir.display()
                    ),
                    format!("chmod 755 {}", dir.display()),
                ));
            }
        }
    }
    out
}

/// The state directory, database and server secret: private to otpd.
pub fn state(dir: &Path) -> Vec<Finding> {
    let mut out = Vec::new();
    let meta = match fs::symlink_metadata(dir) {
        Ok(meta) => meta,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            out.push(Finding::warning(
                "state",
                format!("{} does not exist yet", dir.display()),
                "otpd creates it (mode 0700) when it starts; start otpd",
            ));
            return out;
        }
        Err(e) => {
            out.push(Finding::skipped(
                "state",
                format!("cannot inspect {}: {e} (run doctor as root)", dir.display()),
            ));
            return out;
        }
    };
    if !meta.is_dir() {
        out.push(Finding::problem(
            "state",
            format!(
                "{} is not a directory (symlinks are refused)",
                dir.display()
            ),
            "point [daemon] state_dir at a real directory owned by otpd",
        ));
        return out;
    }
    let m = mode(&meta);
    if m & 0o022 != 0 {
        out.push(Finding::problem(
            "state",
            format!(
                "{} has mode {m:04o}: others could replace the database or the secret (otpd refuses to start)",
                dir.display()
            ),
            format!("chmod 700 {}", dir.display()),
        ));
    } else if m & 0o077 != 0 {
        out.push(Finding::warning(
            "state",
            format!("{} has mode {m:04o}: others can list it", dir.display()),
            format!("chmod 700 {}", dir.display()),
        ));
    } else {
        out.push(Finding::ok(
            "state",
            format!("{} has mode {m:04o}", dir.display()),
        ));
    }
    out.extend(private_file(&dir.join(DATABASE_FILE), "the database"));
    out.extend(private_file(&dir.join(KEY_FILE), "the secret key"));
    out
}

/// A file only otpd may read: mode 0600 or stricter, not a symlink.
fn private_file(path: &Path, what: &str) -> Vec<Finding> {
    match fs::symlink_metadata(path) {
        Err(e) if e.kind() == ErrorKind::NotFound => vec![Finding::warning(
            "state",
            format!("{what} {} does not exist yet", path.display()),
            "otpd creates it (mode 0600) when it starts; start otpd",
        )],
        Err(e) => vec![Finding::skipped(
            "state",
            format!(
                "cannot inspect {}: {e} (run doctor as root)",
                path.display()
            ),
        )],
        Ok(meta) if !meta.file_type().is_file() => vec![Finding::problem(
            "state",
            format!(
                "{what} {} is not a regular file (symlinks are refused)",
                path.display()
            ),
            "stop otpd, move it aside, and let otpd create a new one",
        )],
        Ok(meta) if mode(&meta) & 0o077 != 0 => vec![Finding::problem(
            "state",
            format!(
                "{what} {} has mode {:04o}: other users may read it (otpd refuses to start)",
                path.display(),
                mode(&meta)
            ),
            format!("chmod 600 {}", path.display()),
        )],
        Ok(meta) => vec![Finding::ok(
            "state",
            format!("{what} {} has mode {:04o}", path.display(), mode(&meta)),
        )],
    }
}

/// The module: a regular file owned by root that nobody else can write.
pub fn module(path: &Path) -> Vec<Finding> {
    match fs::metadata(path) {
        Err(e) => vec![Finding::problem(
            "module",
            format!("the PAM module is not at {}: {e}", path.display()),
            format!(
                "install it (apt install pam-otp-email, or copy libpam_otp_email.so to {}); PAM fails every login whose stack names a missing module",
                path.display()
            ),
        )],
        Ok(meta) if !meta.is_file() => vec![Finding::problem(
            "module",
            format!("{} is not a regular file", path.display()),
            "reinstall the module",
        )],
        Ok(meta) if meta.uid() != 0 || mode(&meta) & 0o022 != 0 => vec![Finding::problem(
            "module",
            format!(
                "{} is owned by uid {} with mode {:04o}: whoever can write it runs code inside every login",
                path.display(),
                meta.uid(),
                mode(&meta)
            ),
            format!("chown root:root {0} && chmod 644 {0}", path.display()),
        )],
        Ok(meta) => vec![Finding::ok(
            "module",
            format!(
                "{} is present (mode {:04o}, owned by root)",
                path.display(),
                mode(&meta)
            ),
        )],
    }
}

#[cfg(test)]
mod tests {
    use super::super::Level;
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn levels(findings: &[Finding]) -> Vec<Level> {
        findings.iter().map(|f| f.level).collect()
    }

    #[test]
    fn a_missing_module_is_a_problem_with_an_install_hint() {
        let dir = tempfile::tempdir().unwrap();
        let f = module(&dir.path().join("pam_otp_email.so"));
        assert_eq!(levels(&f), [Level::Problem]);
        assert!(f[0].fix.as_deref().unwrap().contains("install"), "{f:?}");
    }

    #[test]
    fn a_group_writable_module_is_a_problem() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pam_otp_email.so");
        fs::write(&path, b"x").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o664)).unwrap();
        let f = module(&path);
        assert_eq!(levels(&f), [Level::Problem], "{f:?}");
    }

    #[test]
    fn a_readable_secret_is_a_problem_and_a_private_one_is_fine() {
        let dir = tempfile::tempdir().unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700)).unwrap();
        let key = dir.path().join(KEY_FILE);
        fs::write(&key, [0u8; 32]).unwrap();
        fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
        fs::write(dir.path().join(DATABASE_FILE), b"").unwrap();
        fs::set_permissions(
            dir.path().join(DATABASE_FILE),
            fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        let f = state(dir.path());
        assert_eq!(levels(&f), [Level::Ok, Level::Ok, Level::Problem], "{f:?}");
        assert!(f[2].fix.as_deref().unwrap().starts_with("chmod 600"));
        fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(levels(&state(dir.path())), [Level::Ok; 3]);
    }

    #[test]
    fn a_narrowed_socket_mode_is_a_problem() {
        let dir = tempfile::tempdir().unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let path = dir.path().join("otpd.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o666)).unwrap();
        if nix::unistd::geteuid().is_root() {
            assert_eq!(levels(&socket(&path)), [Level::Ok]);
        }
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        let f = socket(&path);
        assert_eq!(levels(&f), [Level::Problem], "{f:?}");
        assert!(f[0].message.contains("mode 0600"));
    }

    #[test]
    fn a_world_writable_socket_directory_is_a_problem() {
        let dir = tempfile::tempdir().unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).unwrap();
        let f = socket(&dir.path().join("otpd.sock"));
        assert!(
            f.iter().any(|f| f.level == Level::Problem
                && f.fix.as_deref().is_some_and(|x| x.starts_with("chmod 755"))),
            "{f:?}"
        );
    }
}
