//! The sendmail transport against small shell scripts standing in for `sendmail`: one that
//! hangs with a helper, one that refuses, one that records what it got.

use std::path::Path;
use std::time::{Duration, Instant};

use common::config::{EmailAddress, MessageTemplates};

use super::*;
use crate::mail::message::{self, Sender};

/// The test mail from `otp@example.com` to `admin@example.com`.
fn outgoing() -> Outgoing {
    let sender = Sender::new(
        &EmailAddress::parse("otp@example.com").unwrap(),
        None,
        None,
        MessageTemplates::default(),
        None,
    )
    .unwrap();
    let to = EmailAddress::parse("admin@example.com").unwrap();
    message::test_mail(&sender, &to, "box1", NAME).unwrap()
}

/// An executable `sendmail` in `dir` running `body` under `/bin/sh`.
fn program(dir: &Path, body: &str) -> Sendmail {
    let path = dir.join("sendmail");
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    Sendmail::new(&path).unwrap()
}

/// The pid a script wrote to `dir/name`, waiting for the script to write it.
fn pid_in(dir: &Path, name: &str) -> i32 {
    let file = dir.join(name);
    for _ in 0..100 {
        if let Some(pid) = std::fs::read_to_string(&file)
            .ok()
            .and_then(|text| text.trim().parse().ok())
        {
            return pid;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("the script never wrote {}", file.display());
}

/// Whether `pid` is a process that still runs (not gone, not a zombie waiting for its reaper).
fn running(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name in parentheses, which may itself hold spaces.
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z') && !rest.starts_with('X')),
        Err(_) => false,
    }
}

/// Whether `pid` stops running within a second (an orphaned helper is reaped by init).
fn ends_soon(pid: i32) -> bool {
    for _ in 0..50 {
        if !running(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// A sendmail that starts a helper which never ends (as postdrop retries under
/// NoNewPrivileges), says what the helper would, and then waits for it.
const HANGS_WITH_A_HELPER: &str = "sleep 1000 &\necho $! > \"$(dirname \"$0\")/helper\"\necho $$ > \"$(dirname \"$0\")/main\"\necho 'postdrop: warning: mail_queue_enter: create file maildrop/1234: Permission denied' >&2\nwait";

#[tokio::test]
async fn at_the_deadline_a_hanging_sendmail_and_the_helper_it_started_are_both_gone() {
    let dir = tempfile::tempdir().unwrap();
    let sendmail = program(dir.path(), HANGS_WITH_A_HELPER);
    let started = Instant::now();
    let e = sendmail
        .deliver(&outgoing(), Duration::from_millis(500))
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2), "{e}");
    let (main, helper) = (pid_in(dir.path(), "main"), pid_in(dir.path(), "helper"));
    assert!(
        !running(main),
        "sendmail {main} still runs or is an unreaped zombie"
    );
    assert!(ends_soon(helper), "its helper {helper} still runs");
    assert!(e.to_string().contains("did not finish within 0.5s"), "{e}");
    let SendmailError::Timeout { stderr, .. } = &e else {
        panic!("{e:?}");
    };
    assert!(stderr.contains("postdrop: warning"), "{e}");
}

#[tokio::test]
async fn an_abandoned_send_kills_the_sendmail_and_its_helper_too() {
    let dir = tempfile::tempdir().unwrap();
    let sendmail = program(dir.path(), HANGS_WITH_A_HELPER);
    let out = outgoing();
    let abandoned = tokio::time::timeout(
        Duration::from_millis(500),
        sendmail.send(&out, Duration::from_secs(60)),
    )
    .await;
    assert!(abandoned.is_err(), "{abandoned:?}");
    let (main, helper) = (pid_in(dir.path(), "main"), pid_in(dir.path(), "helper"));
    assert!(ends_soon(main), "sendmail {main} still runs");
    assert!(ends_soon(helper), "its helper {helper} still runs");
}

#[tokio::test]
async fn a_sendmail_that_exits_75_is_a_failure_quoting_its_error_output_escaped_and_capped() {
    let dir = tempfile::tempdir().unwrap();
    let sendmail = program(
        dir.path(),
        "cat > /dev/null\nprintf 'queue full\\033[31m\\n' >&2\nhead -c 5000 /dev/zero | tr '\\0' x >&2\nexit 75",
    );
    let e = sendmail
        .deliver(&outgoing(), Duration::from_secs(10))
        .await
        .unwrap_err();
    let SendmailError::Failed { detail, code, .. } = &e else {
        panic!("{e:?}");
    };
    assert_eq!(*code, Some(75));
    assert!(
        detail.starts_with("queue full\\x1b[31m\\x0axxx"),
        "{detail}"
    );
    assert_eq!(detail.chars().count(), MAX_STDERR_CHARS, "{detail}");
}

#[tokio::test]
async fn a_silent_failure_names_the_exit_status() {
    let dir = tempfile::tempdir().unwrap();
    let sendmail = program(dir.path(), "exit 69");
    let e = sendmail
        .send(&outgoing(), Duration::from_secs(10))
        .await
        .unwrap_err();
    assert!(e.ends_with("failed: exit status: 69"), "{e}");
}

#[tokio::test]
async fn the_program_reads_exactly_the_message_bytes_with_the_envelope_as_its_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let sendmail = program(
        dir.path(),
        "d=$(dirname \"$0\")\nprintf '%s\\n' \"$@\" > \"$d/args\"\ncat > \"$d/message\"",
    );
    let out = outgoing();
    sendmail.send(&out, Duration::from_secs(10)).await.unwrap();
    let args = std::fs::read_to_string(dir.path().join("args")).unwrap();
    assert_eq!(args, "-i\n-f\notp@example.com\n--\nadmin@example.com\n");
    let message = std::fs::read(dir.path().join("message")).unwrap();
    assert_eq!(message, out.bytes.to_vec());
}

#[tokio::test]
async fn a_helper_left_running_after_success_is_not_killed_and_not_waited_for() {
    // As exim does: it forks its delivery and exits; the delivery keeps error output open.
    let dir = tempfile::tempdir().unwrap();
    let sendmail = program(
        dir.path(),
        "cat > /dev/null\nsleep 1000 &\necho $! > \"$(dirname \"$0\")/helper\"\nexit 0",
    );
    let started = Instant::now();
    sendmail
        .send(&outgoing(), Duration::from_secs(10))
        .await
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(2));
    let helper = pid_in(dir.path(), "helper");
    assert!(running(helper));
    nix::sys::signal::kill(Pid::from_raw(helper), Signal::SIGKILL).unwrap();
}

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
