//! Reading a file the admin names in the config (a template given as `@/path`, `password_file`,
//! `ca_file`, the DKIM `key_file`): a regular file, owned by root or otpd's user, that neither
//! group nor others can change, and small.
//!
//! An admin's slip must not hang or exhaust otpd: a FIFO blocks `open` and `read` until someone
//! writes to it (and a reload reading one stalls every login), `/dev/zero` never ends, and a
//! file another user owns or can write lets that user change what otpd trusts or tells users.
//! So the file is opened with `O_NONBLOCK` (a FIFO opens at once), every check is made on the
//! opened descriptor, which is the file a symlink leads to (no window between check and read),
//! and the read stops one byte past the limit. A symlink to a good file is fine (Debian's
//! `/etc/ssl/certs` is made of them); a symlink to a FIFO or a device is refused like the FIFO or
//! device itself.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

use zeroize::Zeroizing;

/// The service user the packages create; a file it owns is accepted also when otpd (or
/// `otpd --check-config`) runs as root, so that the check agrees with the running service.
const SERVICE_USER: &str = "otpd";

/// What a file is for, which sets its size limit and how private it must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminFileKind {
    /// A message template: what every user is told, so nobody else may change it.
    Template,
    /// A password or private key: nobody else may even read it.
    Secret,
    /// A PEM bundle of CA certificates: public, but whoever changes it picks whom otpd trusts.
    CaBundle,
}

impl AdminFileKind {
    /// The largest file accepted. A template is at most 64 KiB (the template limit itself); a
    /// secret at most 16 KiB (a 4096-bit RSA key in PEM is about 3.3 KiB); a CA bundle at most
    /// 1 MiB (Debian's whole system bundle is about 220 KiB, so naming it still works).
    pub const fn max_bytes(self) -> u64 {
        match self {
            AdminFileKind::Template => 64 * 1024,
            AdminFileKind::Secret => 16 * 1024,
            AdminFileKind::CaBundle => 1024 * 1024,
        }
    }

    /// The permission bits that must be clear.
    const fn forbidden_mode(self) -> u32 {
        match self {
            AdminFileKind::Secret => 0o077,
            AdminFileKind::Template | AdminFileKind::CaBundle => 0o022,
        }
    }

    const fn mode_advice(self) -> &'static str {
        match self {
            AdminFileKind::Secret => "it holds a secret, so use chmod 600 (or 400)",
            AdminFileKind::Template | AdminFileKind::CaBundle => "use chmod 644 or stricter",
        }
    }
}

/// Why a named file was refused. The message starts with the path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct AdminFileError {
    /// The file as named.
    pub path: String,
    /// What is wrong with it.
    pub reason: String,
}

/// Opens, checks and reads the file at `path` for `kind`; see the module comment.
pub fn read(path: &Path, kind: AdminFileKind) -> Result<Zeroizing<Vec<u8>>, AdminFileError> {
    let fail = |reason: String| AdminFileError {
        path: path.display().to_string(),
        reason,
    };
    let mut file = open(path).map_err(fail)?;
    let meta = file
        .metadata()
        .map_err(|e| fail(format!("cannot stat: {e}")))?;
    let file_type = meta.file_type();
    if !file_type.is_file() {
        let what = if file_type.is_fifo() {
            "a FIFO"
        } else if file_type.is_char_device() || file_type.is_block_device() {
            "a device"
        } else if file_type.is_dir() {
            "a directory"
        } else if file_type.is_socket() {
            "a socket"
        } else {
            "not a plain file"
        };
        return Err(fail(format!("is {what}; it must be a regular file")));
    }
    if !trusted_owner(meta.uid()) {
        return Err(fail(format!(
            "is owned by uid {}; it must belong to root or to otpd's user (uid {})",
            meta.uid(),
            nix::unistd::geteuid()
        )));
    }
    if meta.mode() & kind.forbidden_mode() != 0 {
        return Err(fail(format!(
            "has mode {:o}, which lets group or others {}; {}",
            meta.mode() & 0o7777,
            if kind == AdminFileKind::Secret {
                "in"
            } else {
                "change it"
            },
            kind.mode_advice()
        )));
    }
    let max = kind.max_bytes();
    let too_long = || {
        fail(format!(
            "is longer than {max} bytes, the limit for this file"
        ))
    };
    if meta.len() > max {
        return Err(too_long());
    }
    // The size was checked, but the file may grow between fstat and read: the read is bounded.
    let mut bytes = Zeroizing::new(Vec::new());
    file.by_ref()
        .take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| fail(format!("cannot read: {e}")))?;
    if bytes.len() as u64 > max {
        return Err(too_long());
    }
    Ok(bytes)
}

/// Opens without blocking on a FIFO or device.
fn open(path: &Path) -> Result<File, String> {
    OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(nix::libc::ENXIO) => "is a socket; it must be a regular file".into(),
            _ => format!("cannot open: {e}"),
        })
}

/// Root, the user otpd runs as, or the packaged service user.
fn trusted_owner(uid: u32) -> bool {
    if uid == 0 || uid == nix::unistd::geteuid().as_raw() {
        return true;
    }
    matches!(
        nix::unistd::User::from_name(SERVICE_USER),
        Ok(Some(user)) if user.uid.as_raw() == uid
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::time::{Duration, Instant};

    fn file(bytes: &[u8], mode: u32) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, bytes).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        (dir, path)
    }

    #[test]
    fn a_private_regular_file_is_read_whole() {
        let (_dir, path) = file(b"hello\n", 0o600);
        for kind in [
            AdminFileKind::Template,
            AdminFileKind::Secret,
            AdminFileKind::CaBundle,
        ] {
            assert_eq!(&read(&path, kind).unwrap()[..], b"hello\n");
        }
    }

    #[test]
    fn a_fifo_is_refused_at_once_instead_of_waiting_for_a_writer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fifo");
        nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
        let started = Instant::now();
        let e = read(&path, AdminFileKind::Template).unwrap_err();
        assert!(e.reason.contains("a FIFO"), "{e}");
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn a_device_that_never_ends_is_refused() {
        let e = read(Path::new("/dev/zero"), AdminFileKind::CaBundle).unwrap_err();
        assert!(e.reason.contains("a device"), "{e}");
    }

    #[test]
    fn a_directory_and_a_socket_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let e = read(dir.path(), AdminFileKind::Template).unwrap_err();
        assert!(e.reason.contains("a directory"), "{e}");
        let sock = dir.path().join("s");
        let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let e = read(&sock, AdminFileKind::Template).unwrap_err();
        assert!(e.reason.contains("a socket"), "{e}");
    }

    #[test]
    fn a_symlink_to_a_good_file_is_read_and_one_to_a_device_or_fifo_is_refused() {
        let (dir, path) = file(b"x", 0o644);
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        assert_eq!(
            read(&link, AdminFileKind::Template).unwrap().as_slice(),
            b"x"
        );
        let device_link = dir.path().join("device-link");
        std::os::unix::fs::symlink("/dev/zero", &device_link).unwrap();
        let e = read(&device_link, AdminFileKind::CaBundle).unwrap_err();
        assert!(e.reason.contains("device"), "{e}");
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let fifo_link = dir.path().join("fifo-link");
        std::os::unix::fs::symlink(&fifo, &fifo_link).unwrap();
        let e = read(&fifo_link, AdminFileKind::Template).unwrap_err();
        assert!(e.reason.contains("FIFO"), "{e}");
    }

    #[test]
    fn a_file_over_the_limit_is_refused_and_one_at_it_is_read() {
        let max = AdminFileKind::Template.max_bytes() as usize;
        let (_dir, path) = file(&vec![b'a'; max], 0o644);
        assert_eq!(read(&path, AdminFileKind::Template).unwrap().len(), max);
        let (_dir, path) = file(&vec![b'a'; max + 1], 0o644);
        let e = read(&path, AdminFileKind::Template).unwrap_err();
        assert!(e.reason.contains("longer than"), "{e}");
    }

    #[test]
    fn a_file_group_or_others_can_change_is_refused() {
        for mode in [0o664, 0o646, 0o666] {
            let (_dir, path) = file(b"x", mode);
            let e = read(&path, AdminFileKind::CaBundle).unwrap_err();
            assert!(e.reason.contains("change it"), "{mode:o}: {e}");
        }
    }

    #[test]
    fn a_secret_group_or_others_can_read_is_refused() {
        let (_dir, path) = file(b"x", 0o640);
        assert!(read(&path, AdminFileKind::Template).is_ok());
        let e = read(&path, AdminFileKind::Secret).unwrap_err();
        assert!(e.reason.contains("chmod 600"), "{e}");
    }

    #[test]
    fn a_file_owned_by_another_user_is_refused() {
        if !nix::unistd::geteuid().is_root() {
            return; // Only root can give a file away.
        }
        let (_dir, path) = file(b"x", 0o644);
        let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
        nix::unistd::chown(&path, Some(nobody.uid), None).unwrap();
        let e = read(&path, AdminFileKind::Template).unwrap_err();
        assert!(e.reason.contains("owned by uid"), "{e}");
    }
}
