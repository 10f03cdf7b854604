//! End-to-end: the real otpd under libfaketime, its clock stepped back and forward around a
//! live code while a real libpam login waits at the prompt (issue #15, part 5).
//!
//! libfaketime reads the offset from a file on every clock read (`FAKETIME_NO_CACHE`), so the
//! test steps otpd's clock by rewriting the file. By default it fakes the monotonic clock by the
//! same offset, so otpd then sees time itself move (the case of a restart after a step, where
//! only the stored times remember the old clock); with `FAKETIME_DONT_FAKE_MONOTONIC` only the
//! wall clock steps, as NTP or `date -s` do to a running otpd. (A monotonic clock that goes back
//! happens only under libfaketime; otpd's mail timeouts then misbehave, so the tests with it do
//! not mail again after the step.)

// Test code: a failed unwrap is how a test reports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::path::{Path, PathBuf};

use common::secret::SecretString;
use common::wire::{LoginContext, Request, Response};
use e2e_tests::login::{LoginResult, login_with, mailed_code};
use e2e_tests::otpd::{Otpd, TestConfig};
use e2e_tests::programs::answers;
use e2e_tests::smtp::{MAIL_WAIT, SmtpCapture};
use e2e_tests::stack::PamConfDir;

const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

struct Setup {
    smtp: SmtpCapture,
    otpd: Otpd,
    pam: PamConfDir,
    /// libfaketime's offset file: `+0`, `-3600`, ...
    offset_file: PathBuf,
    _dir: tempfile::TempDir,
}

fn setup(fake_monotonic: bool) -> Setup {
    assert!(
        Path::new(LIBFAKETIME).exists(),
        "{LIBFAKETIME} is missing: run tests/install-deps (package faketime)"
    );
    let dir = tempfile::tempdir().unwrap();
    let offset_file = dir.path().join("faketime");
    fs::write(&offset_file, "+0").unwrap();
    let smtp = SmtpCapture::start();
    let file = offset_file.display().to_string();
    let mut env = vec![
        ("LD_PRELOAD", LIBFAKETIME),
        ("FAKETIME_TIMESTAMP_FILE", file.as_str()),
        ("FAKETIME_NO_CACHE", "1"),
    ];
    if !fake_monotonic {
        env.push(("FAKETIME_DONT_FAKE_MONOTONIC", "1"));
    }
    let otpd = Otpd::start_with_env(&TestConfig::required(smtp.port), &env);
    let pam = PamConfDir::new();
    pam.otp_then_permit("sshd", &otpd.socket, "");
    Setup {
        smtp,
        otpd,
        pam,
        offset_file,
        _dir: dir,
    }
}

impl Setup {
    /// Sets otpd's clock to the real time plus `seconds`.
    fn set_offset(&self, seconds: i64) {
        fs::write(&self.offset_file, format!("{seconds:+}")).unwrap();
    }

    /// A login as `user` that, at the code prompt, waits for mail number `mail`, steps the clock
    /// through `offsets` and then answers with the mailed code.
    fn login_stepping(&self, user: &str, mail: usize, offsets: &[i64]) -> LoginResult {
        let reader = self.smtp.reader();
        let file = self.offset_file.clone();
        let offsets = offsets.to_vec();
        let mut stepped = false;
        login_with(&self.pam, "sshd", user, None, move |_| {
            let code = answers::mailed_code(&reader, mail);
            if !stepped {
                stepped = true;
                for offset in &offsets {
                    fs::write(&file, format!("{offset:+}")).unwrap();
                }
            }
            code
        })
    }
}

/// The issue's report: 11 minutes after issue, the clock an hour back. A running otpd counts
/// real elapsed time (see below); an otpd started after the step reads the stepped wall clock,
/// so the code's issue time lies in its future, and the code must be dead, not stretched.
#[test]
fn a_live_code_is_refused_after_the_clock_is_stepped_back_past_its_issue_time() {
    let mut s = setup(false);
    let reply = s
        .otpd
        .call(&Request::Begin {
            login: alice(),
            ssh_keys: Vec::new(),
        })
        .unwrap();
    let Response::Prompt { challenge, .. } = reply else {
        panic!("{reply:?}");
    };
    let code = s.smtp.wait_for(1, MAIL_WAIT)[0].code();
    s.set_offset(660 - 3600);
    s.otpd.restart();
    let reply = s
        .otpd
        .call(&Request::Answer {
            login: alice(),
            challenge,
            code: SecretString::new(code),
        })
        .unwrap();
    assert!(!matches!(reply, Response::Success), "{reply:?}");
    let log = s.otpd.log();
    assert!(log.contains("event=code_dead user=alice"), "{log}");
}

fn alice() -> LoginContext {
    LoginContext {
        user: "alice".into(),
        service: "sshd".into(),
        rhost: None,
        tty: None,
        protocol: None,
    }
}

#[test]
fn a_live_code_is_refused_once_the_clock_passes_its_expiry() {
    let s = setup(true);
    let result = s.login_stepping("bob", 1, &[660]);
    assert_ne!(result.name(), "PAM_SUCCESS", "{result:?}");
}

#[test]
fn a_clock_stepped_back_and_restored_before_the_answer_keeps_the_code_valid() {
    let s = setup(true);
    let result = s.login_stepping("carol", 1, &[-3600, 0]);
    assert_eq!(result.name(), "PAM_SUCCESS", "{result:?}");
}

#[test]
fn a_running_otpd_counts_real_elapsed_time_when_the_wall_clock_steps_and_logs_it_once() {
    let s = setup(false);
    // Only the wall clock steps: back an hour, then forward past the code's expiry. The code
    // was issued seconds ago by any real measure, so it stays valid, and nothing else moves.
    let result = s.login_stepping("dave", 1, &[-3600]);
    assert_eq!(result.name(), "PAM_SUCCESS", "{result:?}");
    let again = login_with(
        &s.pam,
        "sshd",
        "dave",
        None,
        mailed_code(s.smtp.reader(), 2),
    );
    assert_eq!(again.name(), "PAM_SUCCESS", "{again:?}");
    let log = s.otpd.log();
    assert_eq!(
        log.matches("the wall clock stepped back by").count(),
        1,
        "{log}"
    );
    s.set_offset(660);
    let forward = s.login_stepping("erin", 3, &[]);
    assert_eq!(forward.name(), "PAM_SUCCESS", "{forward:?}");
    assert_eq!(
        s.otpd
            .log()
            .matches("the wall clock stepped forward by")
            .count(),
        1,
        "{}",
        s.otpd.log()
    );
}
