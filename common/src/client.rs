//! The blocking client of otpd, used by the PAM module and otpctl.
//!
//! Every step has a deadline: the module runs inside sshd's auth child, and a hung daemon must
//! turn into PAM_AUTHINFO_UNAVAIL within seconds, never a hung login. The daemon's peer
//! credentials are checked before anything is sent, so a local user cannot stand up a fake otpd
//! on a socket path it managed to take over.

use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{self, AddressFamily, SockFlag, SockType, UnixAddr, sockopt};
use zeroize::Zeroizing;

use crate::frame::{self, FrameError};
use crate::wire::{Request, Response};

/// Where otpd listens unless told otherwise.
pub const DEFAULT_SOCKET: &str = "/run/otpd/otpd.sock";

/// How to reach otpd.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// otpd's socket.
    pub socket: PathBuf,
    /// The whole exchange (connect, send, receive) must finish within this.
    pub timeout: Duration,
    /// Uids, besides root, that may be the daemon at the other end of the socket.
    pub trusted_daemon_uids: Vec<u32>,
}

/// Why a call to otpd failed. Every variant means "otpd unavailable" to the module.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Connecting failed (no daemon, no socket, permission).
    #[error("cannot connect to otpd at {path}: {source}")]
    Connect {
        /// The socket path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The deadline passed.
    #[error("otpd did not answer within {0:?}")]
    Timeout(Duration),
    /// The process on the socket is not root or the daemon user.
    #[error("the process on {path} runs as uid {uid}, which is not trusted to be otpd")]
    UntrustedDaemon {
        /// The socket path.
        path: PathBuf,
        /// The peer's uid.
        uid: u32,
    },
    /// The exchange broke off or the answer was not a valid frame.
    #[error("talking to otpd: {0}")]
    Frame(#[from] FrameError),
}

/// Sends one request and returns otpd's answer, all within `options.timeout`.
pub fn call(options: &ClientOptions, request: &Request) -> Result<Response, ClientError> {
    let deadline = Instant::now() + options.timeout;
    let stream = connect_before(&options.socket, deadline, options.timeout)?;
    check_daemon_peer(&stream, options)?;
    let mut conn = DeadlineStream {
        stream,
        deadline,
        timeout: options.timeout,
    };
    let frame = frame::encode(request)?;
    conn.write_all(&frame)?;
    conn.read_response()
}

/// Connects without blocking past the deadline: a Unix socket whose backlog is full makes a
/// blocking `connect` wait indefinitely, so the socket is non-blocking and EAGAIN is retried.
fn connect_before(
    path: &Path,
    deadline: Instant,
    timeout: Duration,
) -> Result<UnixStream, ClientError> {
    let connect_error = |source: std::io::Error| ClientError::Connect {
        path: path.to_path_buf(),
        source,
    };
    let addr = UnixAddr::new(path).map_err(|e| connect_error(e.into()))?;
    let fd: OwnedFd = socket::socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|e| connect_error(e.into()))?;
    loop {
        use std::os::fd::AsRawFd;
        match socket::connect(fd.as_raw_fd(), &addr) {
            Ok(()) => break,
            Err(Errno::EAGAIN) | Err(Errno::EINTR) => {
                if Instant::now() >= deadline {
                    return Err(ClientError::Timeout(timeout));
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(connect_error(e.into())),
        }
    }
    // The socket stays non-blocking: reads and writes wait in poll(2) for what is left of the
    // deadline, so a call costs no timeout setup per read.
    Ok(UnixStream::from(fd))
}

fn check_daemon_peer(stream: &UnixStream, options: &ClientOptions) -> Result<(), ClientError> {
    let creds =
        socket::getsockopt(stream, sockopt::PeerCredentials).map_err(|e| ClientError::Connect {
            path: options.socket.clone(),
            source: e.into(),
        })?;
    let uid = creds.uid();
    if uid == 0 || options.trusted_daemon_uids.contains(&uid) {
        Ok(())
    } else {
        Err(ClientError::UntrustedDaemon {
            path: options.socket.clone(),
            uid,
        })
    }
}

/// A non-blocking stream whose every wait is bounded by what is left of one overall deadline.
struct DeadlineStream {
    stream: UnixStream,
    deadline: Instant,
    timeout: Duration,
}

/// Bytes read per `read` call; most responses fit in one.
const READ_CHUNK: usize = 4096;

impl DeadlineStream {
    /// Waits until the socket is ready for `events` or the deadline passes.
    fn wait_for(&self, events: PollFlags) -> Result<(), ClientError> {
        loop {
            let left = self.deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(ClientError::Timeout(self.timeout));
            }
            // Rounded up, so a wait never ends just before the deadline and spins.
            let millis = u16::try_from(left.as_millis().saturating_add(1)).unwrap_or(u16::MAX);
            let mut fds = [PollFd::new(self.stream.as_fd(), events)];
            match poll(&mut fds, PollTimeout::from(millis)) {
                Ok(0) | Err(Errno::EINTR) => continue,
                Ok(_) => return Ok(()),
                Err(e) => return Err(ClientError::Frame(FrameError::Io(e.into()))),
            }
        }
    }

    fn write_all(&mut self, mut bytes: &[u8]) -> Result<(), ClientError> {
        while !bytes.is_empty() {
            match self.stream.write(bytes) {
                Ok(0) => return Err(ClientError::Frame(FrameError::Closed)),
                Ok(n) => bytes = &bytes[n..],
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    self.wait_for(PollFlags::POLLOUT)?;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(ClientError::Frame(FrameError::Io(e))),
            }
        }
        Ok(())
    }

    /// Reads until one whole response frame is in; usually one wait and a single `read`. The
    /// wait comes first: otpd has rarely answered yet when the request has just gone out.
    fn read_response(&mut self) -> Result<Response, ClientError> {
        let mut received = Zeroizing::new(Vec::with_capacity(READ_CHUNK));
        let mut chunk = Zeroizing::new([0u8; READ_CHUNK]);
        loop {
            if let Some((response, _)) = frame::try_decode(&received)? {
                return Ok(response);
            }
            self.wait_for(PollFlags::POLLIN)?;
            match self.stream.read(chunk.as_mut()) {
                Ok(0) => return Err(ClientError::Frame(FrameError::Closed)),
                Ok(n) => received.extend_from_slice(&chunk[..n]),
                // Readiness without data (a spurious wake-up): wait again.
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(ClientError::Frame(FrameError::Io(e))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    fn options(socket: PathBuf, timeout_ms: u64) -> ClientOptions {
        ClientOptions {
            socket,
            timeout: Duration::from_millis(timeout_ms),
            trusted_daemon_uids: vec![nix::unistd::getuid().as_raw()],
        }
    }

    #[test]
    fn missing_socket_is_a_connect_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = call(&options(dir.path().join("none.sock"), 500), &Request::Ping).unwrap_err();
        assert!(matches!(err, ClientError::Connect { .. }), "{err}");
    }

    #[test]
    fn silent_daemon_times_out_promptly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("silent.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let holder = std::thread::spawn(move || {
            let (conn, _) = listener.accept().unwrap();
            std::thread::sleep(Duration::from_millis(1500));
            drop(conn);
        });
        let start = Instant::now();
        let err = call(&options(path, 300), &Request::Ping).unwrap_err();
        assert!(matches!(err, ClientError::Timeout(_)), "{err}");
        assert!(start.elapsed() < Duration::from_millis(1200));
        holder.join().unwrap();
    }

    /// The environment variable that makes [`impostor_daemon`] listen, at the path it holds.
    const IMPOSTOR_SOCKET: &str = "OTP_IMPOSTOR_SOCKET";

    /// The impostor daemon of the test below, run by it as a process of its own so that it can
    /// have another uid than the test: listens at `$OTP_IMPOSTOR_SOCKET`, writes `ready`, then
    /// `received N` with the bytes its first connection sent before closing.
    #[test]
    #[ignore = "the impostor daemon that a_daemon_run_by_an_untrusted_user_is_refused_... runs"]
    fn impostor_daemon() {
        use std::io::{Read, Write};
        let path = std::env::var_os(IMPOSTOR_SOCKET).expect("OTP_IMPOSTOR_SOCKET");
        let listener = UnixListener::bind(path).unwrap();
        let mut out = std::io::stdout();
        writeln!(out, "ready").unwrap();
        out.flush().unwrap();
        let (mut conn, _) = listener.accept().unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut received = Vec::new();
        let _ = conn.read_to_end(&mut received);
        writeln!(out, "received {}", received.len()).unwrap();
    }

    /// The test binary running [`impostor_daemon`] at `socket` as `uid`.
    fn start_impostor(socket: &std::path::Path, uid: u32) -> std::process::Child {
        use std::os::unix::process::CommandExt;
        let mut command = std::process::Command::new(std::env::current_exe().unwrap());
        command
            .args(["--exact", "client::tests::impostor_daemon", "--ignored"])
            .args(["--nocapture", "--test-threads=1", "--quiet"])
            .env(IMPOSTOR_SOCKET, socket)
            .stdout(std::process::Stdio::piped());
        if uid != nix::unistd::getuid().as_raw() {
            command.uid(uid).gid(uid);
        }
        command.spawn().unwrap()
    }

    /// Reads the impostor's output up to a line starting with `prefix`; returns that line.
    fn impostor_says(out: &mut impl std::io::BufRead, prefix: &str) -> String {
        let mut line = String::new();
        loop {
            line.clear();
            assert!(out.read_line(&mut line).unwrap() > 0, "the impostor ended");
            if line.starts_with(prefix) {
                return line.trim().to_string();
            }
        }
    }

    /// The module's client must not talk to a daemon it does not trust. In CI the test runs as
    /// root, which the client always trusts, so the impostor runs as `nobody`.
    #[test]
    fn a_daemon_run_by_an_untrusted_user_is_refused_before_anything_is_sent() {
        let dir = tempfile::tempdir().unwrap();
        let root = nix::unistd::geteuid().is_root();
        let impostor = if root {
            65534
        } else {
            nix::unistd::getuid().as_raw()
        };
        if root {
            let nobody = nix::unistd::Uid::from_raw(impostor);
            let nogroup = nix::unistd::Gid::from_raw(impostor);
            nix::unistd::chown(dir.path(), Some(nobody), Some(nogroup)).unwrap();
        }
        let path = dir.path().join("impostor.sock");
        let mut child = start_impostor(&path, impostor);
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        impostor_says(&mut out, "ready");

        let mut opts = options(path, 3_000);
        opts.trusted_daemon_uids = vec![impostor.wrapping_add(1)];
        let started = Instant::now();
        let result = call(&opts, &Request::Ping);
        assert!(
            matches!(result, Err(ClientError::UntrustedDaemon { uid, .. }) if uid == impostor),
            "{result:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "refused at once"
        );
        assert_eq!(impostor_says(&mut out, "received"), "received 0");
        assert!(child.wait().unwrap().success());
    }

    #[test]
    fn answers_are_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ok.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let server = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let req: Request = frame::read_frame(&mut conn).unwrap();
            assert!(matches!(req, Request::Ping));
            frame::write_frame(
                &mut conn,
                &Response::Pong {
                    version: "t".into(),
                },
            )
            .unwrap();
        });
        let resp = call(&options(path, 2000), &Request::Ping).unwrap();
        assert_eq!(
            resp,
            Response::Pong {
                version: "t".into()
            }
        );
        server.join().unwrap();
    }
}
