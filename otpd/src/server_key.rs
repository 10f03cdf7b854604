//! The server key: 32 random bytes that key the HMAC over every stored code.
//!
//! The database holds only `HMAC(server_key, salt || challenge || code)`, so a copy of the
//! database alone does not let anyone test guesses offline; the key is what makes the stored
//! MACs useless to a thief. It therefore lives in its own file (`<state_dir>/secret.key`), is
//! created once from the OS generator, and is trusted only when it is a regular file owned by
//! the daemon's uid with no group or other access: whoever can read it can brute-force codes
//! from a stolen database, and whoever can replace it can make the daemon accept their MACs.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::libc;
use rand::TryRngCore;
use rand::rngs::OsRng;
use zeroize::Zeroizing;

/// The key file's name inside the state directory.
pub const KEY_FILE: &str = "secret.key";

/// Length of the key in bytes: the output size of SHA-256, so the key is as strong as the MAC.
pub const KEY_LEN: usize = 32;

/// Flags added to every open of the key file. `O_NOFOLLOW` refuses a planted symlink (the
/// open fails with `ELOOP`); `O_NONBLOCK` keeps a planted FIFO from hanging the daemon before
/// the regular-file check can refuse it; `O_NOCTTY` keeps a planted terminal device from
/// becoming our controlling terminal.
const OPEN_FLAGS: i32 = libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY;

/// The HMAC key for stored codes. Wiped from memory on drop; its `Debug` never shows it.
///
/// `Clone` exists so a second `Store` (another connection to the same database) can share the
/// key; every copy is zeroized on drop as well.
#[derive(Clone)]
pub struct ServerKey(Zeroizing<[u8; KEY_LEN]>);

/// Why the server key could not be loaded or created. Each refusal names the file and what to
/// fix, because the daemon refuses to start on any of them.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The OS refused to read, create or write the file.
    #[error("server key {path}: {source}")]
    Io {
        /// The key file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The key path is a symbolic link; following it could read or overwrite another file.
    #[error("server key {path} is a symbolic link; refusing to follow it")]
    Symlink {
        /// The key file.
        path: PathBuf,
    },
    /// The key path is a directory, device, FIFO or socket.
    #[error("server key {path} is not a regular file")]
    NotRegular {
        /// The key file.
        path: PathBuf,
    },
    /// Group or others have some access to the file.
    #[error(
        "server key {path} has mode {mode:04o}; group and others must have no access (chmod 600)"
    )]
    Permissions {
        /// The key file.
        path: PathBuf,
        /// The permission bits found.
        mode: u32,
    },
    /// The file belongs to another user, who could replace the key.
    #[error("server key {path} is owned by uid {owner}, but otpd runs as uid {expected}")]
    Owner {
        /// The key file.
        path: PathBuf,
        /// The file's owner.
        owner: u32,
        /// The uid otpd runs as.
        expected: u32,
    },
    /// The file does not hold exactly [`KEY_LEN`] bytes: truncated, or not our key.
    #[error("server key {path} holds {len} bytes, expected {KEY_LEN}")]
    Length {
        /// The key file.
        path: PathBuf,
        /// The size found.
        len: u64,
    },
    /// The OS random generator failed while creating a new key.
    #[error("cannot create the server key: the OS random generator failed: {0}")]
    Random(#[source] rand::rand_core::OsError),
}

impl ServerKey {
    /// Loads `<state_dir>/secret.key`, or creates it with 32 OS-random bytes, mode 0600, on
    /// first start.
    ///
    /// The file is opened without following symlinks and created with `O_EXCL`, so a link
    /// planted in the state directory is refused rather than followed. An existing file is
    /// refused unless it is a regular file owned by the effective uid, with no group or other
    /// permission bits, holding exactly 32 bytes.
    pub fn load_or_create(state_dir: &Path) -> Result<ServerKey, KeyError> {
        let path = state_dir.join(KEY_FILE);
        // Two rounds: if another process creates the file between our failed open and our
        // create, the second round loads what it wrote. A planted symlink also makes the create
        // fail with "exists", and the second open then reports it as a symlink.
        for _ in 0..2 {
            match open_existing(&path) {
                Ok(file) => return read_key(file, &path, nix::unistd::geteuid().as_raw()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(open_error(e, &path)),
            }
            match create_new(&path) {
                Ok(key) => return Ok(key),
                Err(KeyError::Io { source, .. })
                    if source.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
        }
        // Still neither loadable nor creatable: report what is there now.
        open_existing(&path)
            .map_err(|e| open_error(e, &path))
            .and_then(|file| read_key(file, &path, nix::unistd::geteuid().as_raw()))
    }

    /// Loads `<state_dir>/secret.key` for an admin tool run as root (`otpctl store migrate`):
    /// never creates one (a new key would match no stored MAC), and expects the file to belong
    /// to the state directory's owner, the uid otpd runs as, with the same checks as
    /// [`ServerKey::load_or_create`] otherwise.
    pub fn load_existing(state_dir: &Path) -> Result<ServerKey, KeyError> {
        let path = state_dir.join(KEY_FILE);
        let owner = fs::symlink_metadata(state_dir)
            .map_err(io_error(state_dir))?
            .uid();
        let file = open_existing(&path).map_err(|e| open_error(e, &path))?;
        read_key(file, &path, owner)
    }

    /// A key from known bytes, for tests and tools that manage the key themselves.
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> ServerKey {
        ServerKey(Zeroizing::new(bytes))
    }

    /// The key bytes, for keying the HMAC; never log or persist them.
    pub(crate) fn expose(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// Names this key without revealing it: `HMAC-SHA256(key, KEY_ID_LABEL)` in hex. A shared
    /// database stores it when it is created, so a host started with another key file is
    /// refused instead of failing every code the other hosts issued (and issuing codes they
    /// cannot check). Knowing it helps no one guess the key or a code.
    pub fn key_id(&self) -> String {
        use hmac::{Hmac, Mac};
        let Ok(mut mac) = <Hmac<sha2::Sha256> as Mac>::new_from_slice(self.expose()) else {
            // HMAC takes keys of any length; this arm is never taken.
            return String::new();
        };
        mac.update(KEY_ID_LABEL);
        mac.finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// The fixed text [`ServerKey::key_id`] MACs. Changing it would make every shared database
/// look as if it were made with another key.
const KEY_ID_LABEL: &[u8] = b"pam_otp_email store key id v1";

impl std::fmt::Debug for ServerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerKey([redacted])")
    }
}

fn open_existing(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(OPEN_FLAGS)
        .open(path)
}

/// Maps an open failure, naming the symlink case so the admin sees what was planted.
fn open_error(e: io::Error, path: &Path) -> KeyError {
    if e.raw_os_error() == Some(libc::ELOOP) {
        KeyError::Symlink {
            path: path.to_path_buf(),
        }
    } else {
        io_error(path)(e)
    }
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> KeyError + '_ {
    move |source| KeyError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Checks the open file (by descriptor, so the checks apply to what we read), owned by
/// `expected` (otpd's uid), and reads it.
fn read_key(mut file: File, path: &Path, expected: u32) -> Result<ServerKey, KeyError> {
    let meta = file.metadata().map_err(io_error(path))?;
    if !meta.file_type().is_file() {
        return Err(KeyError::NotRegular {
            path: path.to_path_buf(),
        });
    }
    if meta.uid() != expected {
        return Err(KeyError::Owner {
            path: path.to_path_buf(),
            owner: meta.uid(),
            expected,
        });
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(KeyError::Permissions {
            path: path.to_path_buf(),
            mode,
        });
    }
    if meta.len() != KEY_LEN as u64 {
        return Err(KeyError::Length {
            path: path.to_path_buf(),
            len: meta.len(),
        });
    }
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    file.read_exact(key.as_mut()).map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            // Shrunk between the size check and the read.
            KeyError::Length {
                path: path.to_path_buf(),
                len: 0,
            }
        } else {
            io_error(path)(e)
        }
    })?;
    Ok(ServerKey(key))
}

/// Creates a new key file exclusively. On a failed write the partial file is removed so the
/// next start creates a whole key instead of refusing a short one forever.
fn create_new(path: &Path) -> Result<ServerKey, KeyError> {
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    OsRng
        .try_fill_bytes(key.as_mut())
        .map_err(KeyError::Random)?;
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(OPEN_FLAGS)
        .open(path)
        .map_err(io_error(path))?;
    let written = file.write_all(key.as_ref()).and_then(|()| file.sync_all());
    if let Err(e) = written {
        drop(file);
        // Best effort: the write error is the one worth reporting.
        let _ = fs::remove_file(path);
        return Err(io_error(path)(e));
    }
    // Make the new directory entry durable too, so a crash cannot lose a key already in use.
    if let Some(dir) = path.parent() {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_error(path))?;
    }
    Ok(ServerKey(key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode_of(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn first_start_creates_a_private_32_byte_key() {
        let dir = tempfile::tempdir().unwrap();
        ServerKey::load_or_create(dir.path()).unwrap();
        let path = dir.path().join(KEY_FILE);
        assert_eq!(mode_of(&path), 0o600);
        assert_eq!(fs::read(&path).unwrap().len(), KEY_LEN);
    }

    #[test]
    fn a_restart_loads_the_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let first = ServerKey::load_or_create(dir.path()).unwrap();
        let second = ServerKey::load_or_create(dir.path()).unwrap();
        assert_eq!(first.expose(), second.expose());
        assert_eq!(
            &fs::read(dir.path().join(KEY_FILE)).unwrap()[..],
            first.expose()
        );
    }

    #[test]
    fn two_state_dirs_get_different_keys() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let ka = ServerKey::load_or_create(a.path()).unwrap();
        let kb = ServerKey::load_or_create(b.path()).unwrap();
        assert_ne!(ka.expose(), kb.expose());
    }

    #[test]
    fn a_key_readable_by_others_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        ServerKey::load_or_create(dir.path()).unwrap();
        let path = dir.path().join(KEY_FILE);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = ServerKey::load_or_create(dir.path()).unwrap_err();
        assert!(
            matches!(err, KeyError::Permissions { mode: 0o644, .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("chmod 600"), "{err}");
    }

    #[test]
    fn a_key_writable_by_the_group_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        ServerKey::load_or_create(dir.path()).unwrap();
        let path = dir.path().join(KEY_FILE);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o620)).unwrap();
        let err = ServerKey::load_or_create(dir.path()).unwrap_err();
        assert!(matches!(err, KeyError::Permissions { .. }), "{err:?}");
    }

    #[test]
    fn a_symlink_to_a_valid_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        ServerKey::load_or_create(elsewhere.path()).unwrap();
        std::os::unix::fs::symlink(elsewhere.path().join(KEY_FILE), dir.path().join(KEY_FILE))
            .unwrap();
        let err = ServerKey::load_or_create(dir.path()).unwrap_err();
        assert!(matches!(err, KeyError::Symlink { .. }), "{err:?}");
    }

    #[test]
    fn a_dangling_symlink_is_refused_and_its_target_never_created() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("planted-target");
        std::os::unix::fs::symlink(&target, dir.path().join(KEY_FILE)).unwrap();
        let err = ServerKey::load_or_create(dir.path()).unwrap_err();
        assert!(matches!(err, KeyError::Symlink { .. }), "{err:?}");
        assert!(!target.exists());
    }

    #[test]
    fn a_short_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KEY_FILE);
        write_private(&path, &[1u8; KEY_LEN - 1]);
        let err = ServerKey::load_or_create(dir.path()).unwrap_err();
        assert!(matches!(err, KeyError::Length { len: 31, .. }), "{err:?}");
    }

    #[test]
    fn a_long_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KEY_FILE);
        write_private(&path, &[1u8; KEY_LEN + 1]);
        let err = ServerKey::load_or_create(dir.path()).unwrap_err();
        assert!(matches!(err, KeyError::Length { len: 33, .. }), "{err:?}");
    }

    #[test]
    fn an_existing_valid_key_file_is_used_as_is() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KEY_FILE);
        write_private(&path, &[9u8; KEY_LEN]);
        let key = ServerKey::load_or_create(dir.path()).unwrap();
        assert_eq!(key.expose(), &[9u8; KEY_LEN]);
    }

    #[test]
    fn a_directory_in_place_of_the_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join(KEY_FILE)).unwrap();
        let err = ServerKey::load_or_create(dir.path()).unwrap_err();
        assert!(matches!(err, KeyError::NotRegular { .. }), "{err:?}");
    }

    #[test]
    fn a_fifo_in_place_of_the_key_is_refused_without_hanging() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KEY_FILE);
        nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let err = ServerKey::load_or_create(dir.path()).unwrap_err();
        assert!(matches!(err, KeyError::NotRegular { .. }), "{err:?}");
    }

    #[test]
    fn a_key_owned_by_another_user_is_refused() {
        // Only root can give a file away; as another user this case cannot be set up.
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        ServerKey::load_or_create(dir.path()).unwrap();
        let path = dir.path().join(KEY_FILE);
        nix::unistd::chown(&path, Some(nix::unistd::Uid::from_raw(4242)), None).unwrap();
        let err = ServerKey::load_or_create(dir.path()).unwrap_err();
        assert!(
            matches!(err, KeyError::Owner { owner: 4242, .. }),
            "{err:?}"
        );
    }

    #[test]
    fn an_admin_tool_never_creates_a_key_and_reads_the_one_owned_like_the_state_dir() {
        let dir = tempfile::tempdir().unwrap();
        let err = ServerKey::load_existing(dir.path()).unwrap_err();
        assert!(matches!(err, KeyError::Io { .. }), "{err:?}");
        assert!(!dir.path().join(KEY_FILE).exists(), "a key was created");
        let made = ServerKey::load_or_create(dir.path()).unwrap();
        let read = ServerKey::load_existing(dir.path()).unwrap();
        assert_eq!(read.key_id(), made.key_id());
        // Owned by otpd's uid (the state directory's owner), read by root.
        if nix::unistd::geteuid().is_root() {
            let otpd = Some(nix::unistd::Uid::from_raw(4242));
            nix::unistd::chown(dir.path(), otpd, None).unwrap();
            nix::unistd::chown(&dir.path().join(KEY_FILE), otpd, None).unwrap();
            assert_eq!(
                ServerKey::load_existing(dir.path()).unwrap().key_id(),
                made.key_id()
            );
            // A key file of another owner than the directory's is refused.
            nix::unistd::chown(
                &dir.path().join(KEY_FILE),
                Some(nix::unistd::Uid::from_raw(0)),
                None,
            )
            .unwrap();
            let err = ServerKey::load_existing(dir.path()).unwrap_err();
            assert!(
                matches!(
                    err,
                    KeyError::Owner {
                        owner: 0,
                        expected: 4242,
                        ..
                    }
                ),
                "{err:?}"
            );
        }
    }

    #[test]
    fn debug_never_shows_the_key() {
        let key = ServerKey::from_bytes([0xab; KEY_LEN]);
        let shown = format!("{key:?}");
        assert!(!shown.to_lowercase().contains("ab"), "{shown}");
        assert!(!shown.contains("171"), "{shown}");
    }

    fn write_private(path: &Path, bytes: &[u8]) {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .unwrap();
        f.write_all(bytes).unwrap();
    }
}
