//! The real login programs from Debian (OpenSSH's sshd, vsftpd, nginx with auth-pam and WebDAV),
//! each run as a child process on a free 127.0.0.1 port with its config in a temporary directory,
//! and the real clients that log in to them (ssh, sftp, curl).
//!
//! Hermetic by construction:
//! - PAM: every server runs under pam_wrapper (Debian's `libpam-wrapper`), which makes libpam
//!   read the service files from the test's own directory instead of /etc/pam.d. The servers keep
//!   their real PAM service names (`sshd`, `sshd-sftp`, `vsftpd`, `nginx`, `webdav`), so otpd's
//!   built-in service map is exercised exactly as on a real system, and /etc/pam.d is never read
//!   or written.
//! - Users: pam_unix checks real passwords, and sshd and vsftpd need real accounts (home
//!   directory, shell), so each test creates its own unix user with a unique name and a known
//!   password and deletes it on drop ([`users::TestUser`]).
//! - Nothing else outside temporary directories is touched, except `/run/sshd`, the privilege
//!   separation directory Debian's sshd refuses to start without (created when missing, as the
//!   ssh service would).
//!
//! pam_wrapper copies the service files into a directory of its own (`/tmp/pam.X`, one letter)
//! when each process starts, choosing the letter without a lock. Two servers starting at the
//! same moment could share one and read each other's stacks, so the tests that run servers take
//! [`serial`] first: they run one at a time, which also keeps the two cores free for the servers.

pub mod answers;
pub mod lab;
pub mod nginx;
pub mod pam_wrapper;
pub mod panic_module;
pub mod process;
pub mod ssh_client;
pub mod sshd;
pub mod stacks;
pub mod users;
pub mod vsftpd;

use std::net::TcpListener;
use std::sync::{Mutex, MutexGuard};

static SERIAL: Mutex<()> = Mutex::new(());

/// Held for the whole of a test that runs a server: see the module docs for why they take turns.
/// A test that failed while holding it does not stop the others (the poison is ignored).
pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A TCP port on 127.0.0.1 that was free a moment ago. Servers are started with a retry
/// ([`process::start_on_free_port`]) in case another process takes it in between.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("bind a free loopback port")
}
