//! A server process the test started: its log, readiness on a port, and a clean stop on drop.

use std::fs::{self, File};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::free_port;

/// How long a server may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a server may take to exit after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// A running server; stopped with SIGTERM (then SIGKILL) on drop.
#[derive(Debug)]
pub struct ServerProcess {
    name: String,
    child: Option<Child>,
    log: PathBuf,
}

impl ServerProcess {
    /// Starts `command` with stdout and stderr appended to `log`.
    pub fn spawn(name: &str, mut command: Command, log: &Path) -> ServerProcess {
        let out = File::options()
            .create(true)
            .append(true)
            .open(log)
            .expect("open the server log");
        let err = out.try_clone().expect("clone the log handle");
        let child = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("start {name}: {e} (is it installed? tests/install-deps)"));
        ServerProcess {
            name: name.to_string(),
            child: Some(child),
            log: log.to_path_buf(),
        }
    }

    /// Waits until 127.0.0.1:`port` accepts a connection. False when the process exited first
    /// (e.g. the port was taken after all) or did not listen in time.
    pub fn wait_listening(&mut self, port: u16) -> bool {
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            if !self.is_running() {
                return false;
            }
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Whether the process is still alive: a server that crashed on a login fails this.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Everything the server wrote to its log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Stops the server: SIGTERM, then SIGKILL if it does not exit in time.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = libc::pid_t::try_from(child.id()).expect("pid fits pid_t");
        // SAFETY: kill(2) on the pid of a child this struct spawned and has not reaped yet.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!("{} did not stop on SIGTERM; killing it", self.name);
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts a server on a free port, trying a few ports: `start` builds the command for a port and
/// names its log. Panics with the last log when no attempt listened.
pub fn start_on_free_port(
    name: &str,
    mut start: impl FnMut(u16) -> (Command, PathBuf),
) -> (ServerProcess, u16) {
    let mut last_log = String::new();
    for _ in 0..3 {
        let port = free_port();
        let (command, log) = start(port);
        let mut process = ServerProcess::spawn(name, command, &log);
        if process.wait_listening(port) {
            return (process, port);
        }
        last_log = process.log();
        process.stop();
    }
    panic!("{name} did not start listening; its log:\n{last_log}");
}
