//! A real SMTP server on loopback (aiosmtpd, from Debian's python3-aiosmtpd) that captures every
//! message it accepts, so tests read the code out of the mail exactly as a person would.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::paths;

/// How long a mail may take to arrive at the capture server.
pub const MAIL_WAIT: Duration = Duration::from_secs(10);

/// A running capture server.
#[derive(Debug)]
pub struct SmtpCapture {
    child: Child,
    /// The port it listens on (127.0.0.1).
    pub port: u16,
    dir: tempfile::TempDir,
}

/// One captured message, decoded.
#[derive(Debug, Clone)]
pub struct CapturedMail {
    /// Envelope recipients.
    pub rcpt_tos: Vec<String>,
    /// Decoded subject.
    pub subject: String,
    /// Decoded text/plain part.
    pub text: String,
    /// All headers, decoded.
    pub headers: Value,
    /// Raw bytes as received.
    pub raw: Vec<u8>,
}

impl CapturedMail {
    /// Whether this is a code mail (it has the line the built-in text puts the code on).
    pub fn has_code(&self) -> bool {
        self.text.contains("code is: ")
    }

    /// The code in the message (the digits after "code is: ").
    pub fn code(&self) -> String {
        let marker = "code is: ";
        let start = self.text.find(marker).expect("mail has no code line") + marker.len();
        self.text[start..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect()
    }
}

impl SmtpCapture {
    /// Starts a capture server on a free loopback port.
    pub fn start() -> SmtpCapture {
        SmtpCapture::start_with(&[])
    }

    /// Starts one with extra capture.py flags (e.g. `--reply-code 451`).
    pub fn start_with(flags: &[&str]) -> SmtpCapture {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut child = Command::new("/usr/bin/python3")
            .arg(paths::capture_script())
            .arg(dir.path().join("mail"))
            .args(flags)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start capture.py (is python3-aiosmtpd installed?)");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read READY line");
        let port = line
            .trim()
            .strip_prefix("READY ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("capture.py did not start: {line:?}"));
        SmtpCapture { child, port, dir }
    }

    /// Where the server writes: accepted messages, `refused/` (with `--keep-refused`) and
    /// `commands.log` (each command verb received, with whether TLS was on).
    pub fn mail_dir(&self) -> PathBuf {
        self.dir.path().join("mail")
    }

    /// A handle that reads this server's mail from any thread or closure.
    pub fn reader(&self) -> MailReader {
        MailReader {
            dir: self.dir.path().join("mail"),
        }
    }

    /// Every message captured so far, oldest first.
    pub fn messages(&self) -> Vec<CapturedMail> {
        self.reader().messages()
    }

    /// Waits up to `timeout` until at least `count` messages arrived, then returns them all.
    pub fn wait_for(&self, count: usize, timeout: Duration) -> Vec<CapturedMail> {
        self.reader().wait_for(count, timeout)
    }

    /// The newest message; panics when there is none.
    pub fn last(&self) -> CapturedMail {
        self.messages().pop().expect("no mail captured")
    }

    /// The code mails so far (no notifications), oldest first.
    pub fn code_mails(&self) -> Vec<CapturedMail> {
        self.reader().code_mails()
    }

    /// The newest code mail; panics when there is none.
    pub fn last_code_mail(&self) -> CapturedMail {
        self.code_mails().pop().expect("no code mail captured")
    }

    /// Waits up to `timeout` until at least `count` code mails arrived, then returns them.
    pub fn wait_for_codes(&self, count: usize, timeout: Duration) -> Vec<CapturedMail> {
        self.reader().wait_for_codes(count, timeout)
    }

    /// The notifications so far (every mail without a code), oldest first.
    pub fn notices(&self) -> Vec<CapturedMail> {
        self.reader().notices()
    }
}

/// Reads the captured mail of one server; cheap to clone into a PAM conversation closure.
#[derive(Debug, Clone)]
pub struct MailReader {
    dir: PathBuf,
}

impl MailReader {
    /// Every message captured so far, oldest first.
    pub fn messages(&self) -> Vec<CapturedMail> {
        crate::recorded::json_files_in(&self.dir)
            .iter()
            .map(|p| read_mail(p))
            .collect()
    }

    /// Waits up to `timeout` until at least `count` messages arrived, then returns them all.
    pub fn wait_for(&self, count: usize, timeout: Duration) -> Vec<CapturedMail> {
        crate::recorded::wait_for(count, timeout, || self.messages())
    }

    /// The code mails captured so far, oldest first: not the notifications, which arrive in
    /// their own time beside them.
    pub fn code_mails(&self) -> Vec<CapturedMail> {
        let mut mails = self.messages();
        mails.retain(CapturedMail::has_code);
        mails
    }

    /// Waits up to `timeout` until at least `count` code mails arrived, then returns them.
    pub fn wait_for_codes(&self, count: usize, timeout: Duration) -> Vec<CapturedMail> {
        crate::recorded::wait_for(count, timeout, || self.code_mails())
    }

    /// The notifications captured so far (every mail without a code), oldest first.
    pub fn notices(&self) -> Vec<CapturedMail> {
        let mut mails = self.messages();
        mails.retain(|m| !m.has_code());
        mails
    }
}

fn read_mail(json_path: &Path) -> CapturedMail {
    let value: Value =
        serde_json::from_slice(&std::fs::read(json_path).expect("read mail")).expect("mail json");
    let raw = std::fs::read(json_path.with_extension("eml")).unwrap_or_default();
    let text_of = |key: &str| value[key].as_str().unwrap_or_default().to_string();
    CapturedMail {
        rcpt_tos: value["rcpt_tos"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default(),
        subject: text_of("subject"),
        text: text_of("text"),
        headers: value["headers"].clone(),
        raw,
    }
}

impl Drop for SmtpCapture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
