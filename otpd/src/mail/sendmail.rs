//! Handing mail to the local MTA through its `sendmail` program, the default when no SMTP
//! server is configured: postfix or exim already queue, retry and relay, so otpd need not.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::text::escape_for_log;
use lettre::{AsyncSendmailTransport, AsyncTransport, Tokio1Executor};

use super::message::Outgoing;

/// The longest part of the program's error output quoted in an error.
const MAX_STDERR_CHARS: usize = 300;

/// The name used for this transport in logs, audit rows and test results.
pub const NAME: &str = "sendmail";

/// The local `sendmail` program.
pub struct Sendmail {
    path: PathBuf,
    transport: AsyncSendmailTransport<Tokio1Executor>,
}

impl std::fmt::Debug for Sendmail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sendmail")
            .field("path", &self.path)
            .finish()
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
            transport: AsyncSendmailTransport::<Tokio1Executor>::new_with_command(path),
        })
    }

    /// Hands `out` to the program (`sendmail -i -f FROM -- TO`) and waits for it to exit,
    /// at most `budget`; a program still running then is killed.
    pub async fn send(&self, out: &Outgoing, budget: Duration) -> Result<(), String> {
        let show = self.path.display();
        match tokio::time::timeout(budget, self.transport.send(out.message.clone())).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                let detail =
                    std::error::Error::source(&e).map_or_else(|| e.to_string(), |s| s.to_string());
                let detail: String = escape_for_log(detail.trim())
                    .chars()
                    .take(MAX_STDERR_CHARS)
                    .collect();
                Err(format!("{show} failed: {detail}"))
            }
            Err(_) => Err(format!(
                "{show} did not finish within {}",
                super::smtp::format_secs(budget)
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_non_executable_program_is_refused_at_start() {
        let e = Sendmail::new(Path::new("/nonexistent/sendmail")).unwrap_err();
        assert!(e.contains("install an MTA"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sendmail");
        std::fs::write(&path, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(
            Sendmail::new(&path)
                .unwrap_err()
                .contains("not an executable")
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(Sendmail::new(&path).is_ok());
        assert!(Sendmail::new(dir.path()).is_err());
    }
}
