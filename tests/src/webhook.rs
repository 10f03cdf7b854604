//! An HTTPS SMS gateway on loopback (`tests/webhook/gateway.py`, Python's `http.server` and
//! `ssl`) that answers as Twilio's Messages API does and records every request, so tests read
//! the code out of the request exactly as the gateway would send it on.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::tls::TestCa;

/// How long a request may take to arrive.
pub const REQUEST_WAIT: Duration = Duration::from_secs(10);

/// A running gateway.
#[derive(Debug)]
pub struct Gateway {
    child: Child,
    /// The port it listens on (127.0.0.1).
    pub port: u16,
    dir: tempfile::TempDir,
}

/// One recorded request.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// `POST`, `PUT`.
    pub method: String,
    /// The path and query, as sent.
    pub path: String,
    /// The headers, names in lower case.
    pub headers: Value,
    /// The body as sent.
    pub body: String,
    /// The body's form fields, decoded by Python's `urllib.parse.parse_qsl`.
    pub form: Vec<(String, String)>,
}

impl Recorded {
    /// The value of form field `name`.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.form
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers[name].as_str()
    }

    /// The code: the first run of digits after "code is ".
    pub fn code(&self) -> String {
        let body = self.field("Body").unwrap_or(&self.body);
        let start = body.find("code is ").expect("no code in the request") + "code is ".len();
        body[start..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect()
    }
}

impl Gateway {
    /// Starts a gateway serving `ca`'s server certificate and answering every request with
    /// `status` (201 as Twilio on success; 400, 429 or 500 with Twilio's error body).
    pub fn start(ca: &TestCa, status: u16) -> Gateway {
        Gateway::start_slow(ca, status, Duration::ZERO)
    }

    /// [`Gateway::start`], answering each request `delay` after it was recorded.
    pub fn start_slow(ca: &TestCa, status: u16, delay: Duration) -> Gateway {
        let dir = tempfile::tempdir().expect("tempdir");
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("webhook/gateway.py");
        let mut child = Command::new("/usr/bin/python3")
            .arg(script)
            .arg(dir.path().join("requests"))
            .arg("--cert")
            .arg(ca.server_cert())
            .arg("--key")
            .arg(ca.server_key())
            .arg("--status")
            .arg(status.to_string())
            .arg("--delay")
            .arg(delay.as_secs_f64().to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start gateway.py");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read READY line");
        let port = line
            .trim()
            .strip_prefix("READY ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("gateway.py did not start: {line:?}"));
        Gateway { child, port, dir }
    }

    /// A handle that reads this gateway's requests from any thread or closure.
    pub fn reader(&self) -> RequestReader {
        RequestReader {
            dir: self.dir.path().join("requests"),
        }
    }

    /// Every request so far, oldest first.
    pub fn requests(&self) -> Vec<Recorded> {
        self.reader().requests()
    }
}

/// Reads one gateway's requests; cheap to clone into a PAM conversation closure.
#[derive(Debug, Clone)]
pub struct RequestReader {
    dir: PathBuf,
}

impl RequestReader {
    /// Every request so far, oldest first.
    pub fn requests(&self) -> Vec<Recorded> {
        crate::recorded::json_files_in(&self.dir)
            .iter()
            .map(|p| read(p))
            .collect()
    }

    /// Waits up to `timeout` until at least `count` requests arrived, then returns them all.
    pub fn wait_for(&self, count: usize, timeout: Duration) -> Vec<Recorded> {
        crate::recorded::wait_for(count, timeout, || self.requests())
    }
}

fn read(path: &std::path::Path) -> Recorded {
    let value: Value =
        serde_json::from_slice(&std::fs::read(path).expect("read request")).expect("json");
    let text = |key: &str| value[key].as_str().unwrap_or_default().to_string();
    let form = value["form"]
        .as_array()
        .map(|pairs| {
            pairs
                .iter()
                .map(|p| {
                    (
                        p[0].as_str().unwrap_or_default().to_string(),
                        p[1].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    Recorded {
        method: text("method"),
        path: text("path"),
        headers: value["headers"].clone(),
        body: text("body"),
        form,
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
