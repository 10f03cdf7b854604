//! Handing mail to the local MTA through its `sendmail` program, the default when no SMTP
//! server is configured: postfix or exim already queue, retry and relay, so otpd need not.
//!
//! otpd runs the program itself rather than through lettre's transport, because a `sendmail`
//! can hang and leave helpers behind: Postfix's `sendmail` started under `NoNewPrivileges`
//! hands the mail to `postdrop`, whose setgid bit then has no effect, and `postdrop` retries
//! for ever. Killing only `sendmail` at the deadline leaves `postdrop` running. So the program
//! starts in a process group of its own, and at the deadline (or when the send is abandoned)
//! the whole group is killed and `sendmail` is reaped.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use common::text::escape_for_log;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin, Command};

use super::message::Outgoing;

/// The longest part of the program's error output quoted in an error.
const MAX_STDERR_CHARS: usize = 300;

/// The most error output kept from one run; the rest is read and dropped so the program never
/// blocks on a full pipe.
const MAX_STDERR_BYTES: usize = 4096;

/// How long, after the program exits, otpd still reads error output that is in the pipe. A
/// helper the program left running may hold the pipe open; otpd does not wait for it.
const STDERR_GRACE: Duration = Duration::from_millis(200);

/// How long otpd waits for a killed program to be reaped before leaving that to tokio.
const REAP_LIMIT: Duration = Duration::from_secs(2);

/// The name used for this transport in logs, audit rows and test results.
pub const NAME: &str = "sendmail";

/// The local `sendmail` program.
#[derive(Debug)]
pub struct Sendmail {
    path: PathBuf,
}

/// Why the program did not take the message. Every text in it is escaped and capped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendmailError {
    /// The program could not be started.
    #[error("{program}: cannot run it: {reason}")]
    Spawn {
        /// The program's path.
        program: String,
        /// The operating system's reason.
        reason: String,
    },
    /// The program exited unsuccessfully or was killed by a signal.
    #[error("{program} failed: {detail}")]
    Failed {
        /// The program's path.
        program: String,
        /// Its error output, or its exit status when it wrote none.
        detail: String,
        /// The exit status, when it exited rather than died of a signal.
        code: Option<i32>,
    },
    /// The program did not exit within the deadline; its process group was killed.
    #[error("{program} did not finish within {budget}{}", said(.stderr))]
    Timeout {
        /// The program's path.
        program: String,
        /// The deadline, as shown.
        budget: String,
        /// What the program (or a helper, e.g. postdrop) wrote to its error output meanwhile.
        stderr: String,
    },
}

fn said(stderr: &str) -> String {
    if stderr.is_empty() {
        String::new()
    } else {
        format!(" (it said: {stderr})")
    }
}

impl Sendmail {
    /// Checks that `path` is an executable file, so a missing MTA stops otpd at start rather
    /// than failing every login.
    pub fn new(path: &Path) -> Result<Sendmail, String> {
        let show = path.display();
        let meta = std::fs::metadata(path).map_err(|e| {
            format!("sendmail_path {show}: {e} (install an MTA such as postfix, or configure [[mail.servers]])")
        })?;
        if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
            return Err(format!("sendmail_path {show} is not an executable file"));
        }
        Ok(Sendmail {
            path: path.to_path_buf(),
        })
    }

    /// Hands `out` to the program (`sendmail -i -f FROM -- TO`) and waits for it to exit,
    /// at most `budget`; see [`Sendmail::deliver`].
    pub async fn send(&self, out: &Outgoing, budget: Duration) -> Result<(), String> {
        self.deliver(out, budget).await.map_err(|e| e.to_string())
    }

    /// Runs the program with the envelope as arguments and the message's bytes on its input.
    /// A program still running after `budget` is killed with everything it started; so is one
    /// whose send is abandoned (this future dropped).
    pub async fn deliver(&self, out: &Outgoing, budget: Duration) -> Result<(), SendmailError> {
        let program = escape_for_log(&self.path.display().to_string());
        let mut command = Command::new(&self.path);
        command.arg("-i");
        if let Some(from) = out.envelope.from() {
            command.arg("-f").arg(from);
        }
        command
            .arg("--")
            .args(out.envelope.to())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            // Its own group, so the deadline can reach the helpers it starts.
            .process_group(0)
            // tokio then reaps it in the background if this future is dropped.
            .kill_on_drop(true);
        let mut child = command.spawn().map_err(|e| SendmailError::Spawn {
            program: program.clone(),
            reason: escape_for_log(&e.to_string()),
        })?;
        // Declared after `child`, so it is dropped first: the group is killed while the
        // unreaped child still holds its id, which therefore names no other group.
        let mut group = Group::of(&child);
        let mut stderr = Vec::new();
        let ran = tokio::time::timeout(budget, exchange(&mut child, &out.bytes, &mut stderr)).await;
        match ran {
            Ok(Ok(status)) => {
                // Exited and reaped; helpers it left on purpose (exim's background delivery)
                // are not ours to kill.
                group.disarm();
                if status.success() {
                    Ok(())
                } else {
                    Err(failed(program, status, &stderr))
                }
            }
            Ok(Err(e)) => {
                group.kill();
                reap(&mut child).await;
                Err(SendmailError::Failed {
                    program,
                    detail: escape_for_log(&e.to_string()),
                    code: None,
                })
            }
            Err(_elapsed) => {
                group.kill();
                reap(&mut child).await;
                Err(SendmailError::Timeout {
                    program,
                    budget: super::smtp::format_secs(budget),
                    stderr: shown(&stderr),
                })
            }
        }
    }
}

/// Writes the message, reads error output and waits for the exit, all at once, so a program
/// that writes before it reads cannot deadlock against us.
async fn exchange(
    child: &mut Child,
    message: &[u8],
    stderr: &mut Vec<u8>,
) -> std::io::Result<ExitStatus> {
    let stdin = child.stdin.take();
    let mut errors = child.stderr.take();
    let write = write_message(stdin, message);
    tokio::pin!(write);
    let mut written = false;
    let status = loop {
        tokio::select! {
            // Only the exit matters: a program that exits without reading all of its input
            // (a broken pipe here) is judged by its exit status.
            _ = &mut write, if !written => written = true,
            more = read_some(errors.as_mut(), stderr), if errors.is_some() => {
                if !more {
                    errors = None;
                }
            }
            status = child.wait() => break status?,
        }
    };
    if let Some(rest) = errors.as_mut() {
        // Cannot fail: only the grace period ends it early, and what was read is kept.
        let _ = tokio::time::timeout(STDERR_GRACE, async {
            while read_some(Some(&mut *rest), stderr).await {}
        })
        .await;
    }
    Ok(status)
}

/// Writes `message` and closes the program's input, so it sees the end of the message.
async fn write_message(stdin: Option<ChildStdin>, message: &[u8]) -> std::io::Result<()> {
    if let Some(mut stdin) = stdin {
        stdin.write_all(message).await?;
        stdin.shutdown().await?;
    }
    Ok(())
}

/// Reads one chunk into `kept`, keeping at most [`MAX_STDERR_BYTES`]; false at the end of the
/// output or on an error.
async fn read_some<R: AsyncRead + Unpin>(from: Option<&mut R>, kept: &mut Vec<u8>) -> bool {
    let Some(from) = from else {
        return false;
    };
    let mut chunk = [0u8; 1024];
    match from.read(&mut chunk).await {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            let room = MAX_STDERR_BYTES.saturating_sub(kept.len());
            kept.extend_from_slice(&chunk[..n.min(room)]);
            true
        }
    }
}

/// Waits (briefly) for the killed program, so no zombie is left behind.
async fn reap(child: &mut Child) {
    if tokio::time::timeout(REAP_LIMIT, child.wait())
        .await
        .is_err()
    {
        // kill_on_drop hands it to tokio's background reaper when `child` is dropped.
        tracing::warn!("sendmail: the killed program did not exit within {REAP_LIMIT:?}");
    }
}

fn failed(program: String, status: ExitStatus, stderr: &[u8]) -> SendmailError {
    let text = shown(stderr);
    let detail = if text.is_empty() {
        status.to_string()
    } else {
        text
    };
    SendmailError::Failed {
        program,
        detail,
        code: status.code(),
    }
}

/// The error output as it may be shown: lossy UTF-8, trimmed, escaped, capped.
fn shown(stderr: &[u8]) -> String {
    escape_for_log(String::from_utf8_lossy(stderr).trim())
        .chars()
        .take(MAX_STDERR_CHARS)
        .collect()
}

/// The program's process group, killed as a whole unless disarmed.
struct Group {
    /// The group's id (the program's pid); `None` once disarmed or killed.
    pgid: Option<Pid>,
}

impl Group {
    fn of(child: &Child) -> Group {
        Group {
            pgid: child
                .id()
                .and_then(|id| i32::try_from(id).ok())
                .map(Pid::from_raw),
        }
    }

    /// The program exited and was reaped: its id may be reused, so never signal it again.
    fn disarm(&mut self) {
        self.pgid = None;
    }

    /// SIGKILL to every process in the group.
    fn kill(&mut self) {
        if let Some(pgid) = self.pgid.take() {
            // ESRCH (the group is already gone) is the outcome we want anyway.
            if let Err(e) = killpg(pgid, Signal::SIGKILL) {
                if e != nix::errno::Errno::ESRCH {
                    tracing::warn!(
                        "sendmail: cannot kill process group {pgid}: {}",
                        escape_for_log(&e.to_string())
                    );
                }
            }
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.kill();
    }
}

#[cfg(test)]
#[path = "sendmail_tests.rs"]
mod tests;
