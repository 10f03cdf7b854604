//! End-to-end behaviour of the otpd process itself: framing, config errors, reload, shutdown,
//! atomicity under parallel answers, and what reaches the disk.

// Test code: a failed unwrap is how a test reports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use common::frame::{self, HEADER_LEN, MAGIC, VERSION};
use common::secret::SecretString;
use common::wire::{LoginContext, Request, Response};
use e2e_tests::otpd::{Otpd, TestConfig};
use e2e_tests::paths;
use e2e_tests::smtp::{MAIL_WAIT, SmtpCapture};

fn login(user: &str) -> LoginContext {
    LoginContext {
        user: user.into(),
        service: "sshd".into(),
        rhost: Some("198.51.100.7".into()),
        tty: None,
        protocol: None,
    }
}

/// Sends raw bytes and reads back one framed response.
fn raw_exchange(otpd: &Otpd, bytes: &[u8]) -> Response {
    let mut stream = UnixStream::connect(&otpd.socket).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    stream.write_all(bytes).unwrap();
    frame::read_frame(&mut stream).unwrap()
}

fn header(len: u32) -> Vec<u8> {
    let mut h = Vec::with_capacity(HEADER_LEN);
    h.extend_from_slice(&MAGIC);
    h.extend_from_slice(&VERSION.to_be_bytes());
    h.extend_from_slice(&len.to_be_bytes());
    h
}

fn is_error(response: &Response) -> bool {
    matches!(response, Response::Error { .. })
}

#[test]
fn malformed_and_oversized_frames_get_an_error_and_otpd_keeps_serving() {
    let smtp = SmtpCapture::start();
    let otpd = Otpd::start(&TestConfig::required(smtp.port));

    let garbage = raw_exchange(&otpd, b"GET / HTTP/1.1\r\n\r\n");
    assert!(is_error(&garbage), "{garbage:?}");

    let oversized = raw_exchange(&otpd, &header(u32::MAX));
    assert!(is_error(&oversized), "{oversized:?}");
    assert!(format!("{oversized:?}").contains("exceeds the limit"));

    let mut bad_json = header(5);
    bad_json.extend_from_slice(b"{{{{{");
    assert!(is_error(&raw_exchange(&otpd, &bad_json)));

    let unknown_op = br#"{"op":"grant_root"}"#;
    let mut frame = header(unknown_op.len() as u32);
    frame.extend_from_slice(unknown_op);
    assert!(is_error(&raw_exchange(&otpd, &frame)));

    let mut wrong_version = header(2);
    wrong_version[2..4].copy_from_slice(&99u16.to_be_bytes());
    wrong_version.extend_from_slice(b"{}");
    assert!(is_error(&raw_exchange(&otpd, &wrong_version)));

    // A client that sends half a frame and goes quiet is cut off, not waited for forever.
    let mut stalled = UnixStream::connect(&otpd.socket).unwrap();
    stalled.write_all(&header(100)).unwrap();

    let huge_user = LoginContext {
        user: "x".repeat(10_000),
        ..login("x")
    };
    let reply = otpd
        .call(&Request::Begin {
            login: huge_user,
            ssh_keys: Vec::new(),
        })
        .unwrap();
    assert!(is_error(&reply), "{reply:?}");

    assert!(matches!(
        otpd.call(&Request::Ping).unwrap(),
        Response::Pong { .. }
    ));
    drop(stalled);
    assert!(smtp.messages().is_empty());
}

/// A Ping frame whose JSON carries `padding` spaces, so its size can be chosen.
fn padded_ping(padding: usize) -> Vec<u8> {
    let json = format!("{{\"op\":\"ping\"{}}}", " ".repeat(padding));
    let mut bytes = header(json.len() as u32);
    bytes.extend_from_slice(json.as_bytes());
    bytes
}

#[test]
fn a_large_request_arrives_whole_and_otpd_closes_after_one_answer() {
    let smtp = SmtpCapture::start();
    let otpd = Otpd::start(&TestConfig::required(smtp.port));
    // Larger than otpd's first read (4 KiB) and close to the 64 KiB limit, with a second
    // request right behind it in the same write: one request per connection.
    let mut bytes = padded_ping(60_000);
    bytes.extend_from_slice(&padded_ping(0));
    let mut stream = UnixStream::connect(&otpd.socket).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    stream.write_all(&bytes).unwrap();
    let reply: Response = frame::read_frame(&mut stream).unwrap();
    assert!(matches!(reply, Response::Pong { .. }), "{reply:?}");
    // Closed: an end of stream, or a reset because the second request was never read.
    let mut rest = Vec::new();
    match stream.read_to_end(&mut rest) {
        Ok(_) => assert!(
            rest.is_empty(),
            "the second request got an answer: {rest:?}"
        ),
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
    }
}

#[test]
fn check_config_names_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[protocols]\nenabled = [\"ssh\", \"shh\"]\n\n[mail]\nfrom = \"otp@example.test\"\n[[mail.servers]]\nname = \"a\"\nhost = \"127.0.0.1\"\nsecurity = \"none\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(paths::binary("otpd"))
        .arg("--check-config")
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with(&format!("{}:2:19:", path.display())),
        "stderr: {stderr}"
    );

    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        "[mail]\nfrom = \"otp@example.test\"\n[[mail.servers]]\nname = \"a\"\nhost = \"127.0.0.1\"\nsecurity = \"none\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(paths::binary("otpd"))
        .args(["--check-config", "--config"])
        .arg(&good)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("OK: {}\n", good.display()),
        "a valid file is confirmed, not met with silence"
    );
}

#[test]
fn otpd_refuses_to_start_with_a_bad_config() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[defaults]\nvalid_minutes = 90\n").unwrap();
    let out = std::process::Command::new(paths::binary("otpd"))
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad.toml:"));
}

#[test]
fn a_bad_config_on_reload_keeps_the_old_one_running() {
    let smtp = SmtpCapture::start();
    let otpd = Otpd::start(&TestConfig::required(smtp.port));
    let good = otpd.config_text();

    otpd.reload_with("[defaults]\nmode = \"sometimes\"\n");
    assert!(otpd.log().contains("reload refused"), "{}", otpd.log());
    // Still the old config: ssh still needs a code.
    let reply = otpd
        .call(&Request::Begin {
            login: login("kim"),
            ssh_keys: Vec::new(),
        })
        .unwrap();
    assert!(matches!(reply, Response::Prompt { .. }), "{reply:?}");

    // A good reload takes effect: ssh is no longer protected.
    let without_ssh = good.replace("[mail]", "[protocols]\nenabled = [\"ftp\"]\n\n[mail]");
    otpd.reload_with(&without_ssh);
    let reply = otpd
        .call(&Request::Begin {
            login: login("lou"),
            ssh_keys: Vec::new(),
        })
        .unwrap();
    assert!(matches!(reply, Response::Skip { .. }), "{reply:?}");
}

#[test]
fn sigterm_stops_otpd_cleanly_and_removes_its_socket() {
    let smtp = SmtpCapture::start();
    let mut otpd = Otpd::start(&TestConfig::required(smtp.port));
    let socket = otpd.socket.clone();
    assert!(otpd.stop(), "log:\n{}", otpd.log());
    assert!(!socket.exists());
    assert!(otpd.log().contains("otpd stopped"));
}

#[test]
fn a_hundred_parallel_right_answers_give_exactly_one_success() {
    let smtp = SmtpCapture::start();
    let otpd = std::sync::Arc::new(Otpd::start(&TestConfig::required(smtp.port)));
    let Response::Prompt { challenge, .. } = otpd
        .call(&Request::Begin {
            login: login("mia"),
            ssh_keys: Vec::new(),
        })
        .unwrap()
    else {
        panic!("expected a prompt");
    };
    let code = smtp.wait_for(1, MAIL_WAIT).last().unwrap().code();
    let handles: Vec<_> = (0..100)
        .map(|_| {
            let (otpd, challenge, code) = (
                std::sync::Arc::clone(&otpd),
                challenge.clone(),
                code.clone(),
            );
            std::thread::spawn(move || {
                otpd.call(&Request::Answer {
                    login: login("mia"),
                    challenge,
                    code: SecretString::new(code),
                })
                .unwrap()
            })
        })
        .collect();
    let successes = handles
        .into_iter()
        .map(|h| h.join().unwrap())
        .filter(|r| *r == Response::Success)
        .count();
    assert_eq!(successes, 1);
}

#[test]
fn no_code_reaches_the_disk() {
    let smtp = SmtpCapture::start();
    let otpd = Otpd::start(&TestConfig::required(smtp.port));
    let reply = otpd
        .call(&Request::Begin {
            login: login("ned"),
            ssh_keys: Vec::new(),
        })
        .unwrap();
    assert!(matches!(reply, Response::Prompt { .. }));
    let code = smtp.wait_for(1, MAIL_WAIT).last().unwrap().code();
    assert_eq!(code.len(), 6);
    for entry in std::fs::read_dir(otpd.state_dir()).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        assert!(
            !bytes.windows(code.len()).any(|w| w == code.as_bytes()),
            "{} contains the code",
            path.display()
        );
    }
    assert!(!otpd.log().contains(&code), "the log contains the code");
}

#[test]
fn the_state_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let smtp = SmtpCapture::start();
    let otpd = Otpd::start(&TestConfig::required(smtp.port));
    let mode = |name: &str| {
        std::fs::metadata(otpd.state_dir().join(name))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("secret.key"), 0o600);
    assert_eq!(mode("otpd.db"), 0o600);
    let mut buf = [0u8; 1];
    assert!(
        std::fs::File::open(otpd.state_dir().join("secret.key"))
            .unwrap()
            .read(&mut buf)
            .is_ok()
    );
}

/// The audit trail is what a security product exists to keep: a verify's row is on disk when
/// its answer goes out, so `kill -9` right after it loses nothing.
#[test]
fn kill_9_right_after_a_verify_keeps_its_audit_row() {
    let smtp = SmtpCapture::start();
    let mut otpd = Otpd::start(&TestConfig::required(smtp.port));
    let Response::Prompt { challenge, .. } = otpd
        .call(&Request::Begin {
            login: login("noor"),
            ssh_keys: Vec::new(),
        })
        .unwrap()
    else {
        panic!("expected a prompt");
    };
    let code = smtp.wait_for(1, MAIL_WAIT).last().unwrap().code();
    let answered = otpd
        .call(&Request::Answer {
            login: login("noor"),
            challenge,
            code: SecretString::new(code),
        })
        .unwrap();
    assert_eq!(answered, Response::Success);
    otpd.signal(libc::SIGKILL);
    assert!(!otpd.stop(), "otpd was killed, not stopped");

    otpd.restart();
    let response = otpd
        .call(&Request::Admin {
            request: common::wire_admin::AdminRequest::Audit {
                user: Some("noor".into()),
                event: Some("verified".into()),
                since: None,
                limit: 10,
                before: None,
            },
        })
        .unwrap();
    let Response::Admin {
        response: common::wire_admin::AdminResponse::Audit { rows, .. },
    } = response
    else {
        panic!("no audit rows: {response:?}");
    };
    assert_eq!(rows.len(), 1, "{rows:?}\n{}", otpd.log());
}
