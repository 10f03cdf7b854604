//! End-to-end: real otpd, real SMTP server on loopback, real libpam loading the real module.
//! Each test reads like the behaviour it proves.

// Test code: a failed unwrap is how a test reports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use e2e_tests::libpam;
use e2e_tests::login::{login_with, mailed_code};
use e2e_tests::otpd::{Otpd, TestConfig};
use e2e_tests::smtp::{MAIL_WAIT, SmtpCapture};
use e2e_tests::stack::PamConfDir;

struct Setup {
    smtp: SmtpCapture,
    otpd: Otpd,
    pam: PamConfDir,
}

fn setup_with(config: impl FnOnce(u16) -> TestConfig, module_args: &str) -> Setup {
    let smtp = SmtpCapture::start();
    let otpd = Otpd::start(&config(smtp.port));
    let pam = PamConfDir::new();
    pam.otp_then_permit("sshd", &otpd.socket, module_args);
    pam.otp_then_permit("vsftpd", &otpd.socket, module_args);
    Setup { smtp, otpd, pam }
}

fn setup() -> Setup {
    setup_with(TestConfig::required, "")
}

#[test]
fn login_with_the_mailed_code_succeeds() {
    let s = setup();
    let result = login_with(
        &s.pam,
        "sshd",
        "alice",
        Some("192.0.2.10"),
        mailed_code(s.smtp.reader(), 1),
    );
    assert_eq!(libpam::code_name(result.code), "PAM_SUCCESS", "{result:?}");
    assert_eq!(result.prompts.len(), 1);
    assert!(
        result.prompts[0].starts_with("Code sent to a***@e***.test (valid 10 min)"),
        "{:?}",
        result.prompts
    );
    let mail = s.smtp.last();
    assert_eq!(mail.rcpt_tos, vec!["alice@example.test".to_string()]);
    assert!(mail.text.contains("user alice"), "{}", mail.text);
    assert!(
        mail.text.contains("sshd, ssh from 192.0.2.10"),
        "{}",
        mail.text
    );
    assert!(s.otpd.log().contains("event=verified user=alice"));
}

#[test]
fn wrong_code_is_denied() {
    let s = setup();
    let reader = s.smtp.reader();
    let result = login_with(&s.pam, "sshd", "bob", None, move |_| {
        let real = reader.wait_for(1, MAIL_WAIT).last().unwrap().code();
        // Change the last digit: certainly wrong, same shape.
        let mut wrong: Vec<char> = real.chars().collect();
        let last = wrong.last_mut().unwrap();
        *last = if *last == '0' { '1' } else { '0' };
        wrong.into_iter().collect()
    });
    // Three tries (the default), each wrong: the login ends as "too many tries".
    assert_eq!(libpam::code_name(result.code), "PAM_MAXTRIES", "{result:?}");
    assert_eq!(result.prompts.len(), 3);
    assert_eq!(result.errors, vec!["Wrong code.".to_string(); 3]);
    assert!(s.otpd.log().contains("event=wrong_code user=bob"));
}

#[test]
fn a_wrong_answer_then_the_right_one_succeeds_within_the_tries() {
    let s = setup();
    let reader = s.smtp.reader();
    let mut asked = 0;
    let result = login_with(&s.pam, "sshd", "bea", None, move |_| {
        asked += 1;
        if asked == 1 {
            "not-a-code".to_string()
        } else {
            reader.wait_for(1, MAIL_WAIT).last().unwrap().code()
        }
    });
    assert_eq!(libpam::code_name(result.code), "PAM_SUCCESS", "{result:?}");
    assert_eq!(result.prompts.len(), 2);
    assert_eq!(result.errors, vec!["Wrong code.".to_string()]);
}

#[test]
fn an_empty_answer_asks_for_a_resend_and_the_prompt_says_when() {
    let s = setup();
    let reader = s.smtp.reader();
    let mut asked = 0;
    let result = login_with(&s.pam, "sshd", "ben", None, move |_| {
        asked += 1;
        if asked == 1 {
            String::new()
        } else {
            reader.wait_for(1, MAIL_WAIT).last().unwrap().code()
        }
    });
    assert_eq!(libpam::code_name(result.code), "PAM_SUCCESS", "{result:?}");
    assert_eq!(result.prompts.len(), 2);
    assert!(
        result.prompts[1].starts_with("No new code yet (possible in "),
        "{:?}",
        result.prompts
    );
    // Inside the cooldown the resend mails nothing new.
    assert_eq!(s.smtp.messages().len(), 1);
}

#[test]
fn a_used_code_does_not_work_twice() {
    let s = setup();
    let first = login_with(
        &s.pam,
        "sshd",
        "carol",
        None,
        mailed_code(s.smtp.reader(), 1),
    );
    assert_eq!(libpam::code_name(first.code), "PAM_SUCCESS");
    let used = s.smtp.last().code();
    let second = login_with(&s.pam, "sshd", "carol", None, move |_| used.clone());
    assert_eq!(libpam::code_name(second.code), "PAM_MAXTRIES", "{second:?}");
    assert!(
        second.errors.iter().all(|e| e == "Wrong code."),
        "{second:?}"
    );
    // The second login was mailed a fresh code, which the old one does not match.
    assert_eq!(s.smtp.wait_for(2, MAIL_WAIT).len(), 2);
}

#[test]
fn a_disabled_protocol_gets_no_prompt_and_no_mail() {
    let s = setup_with(
        |port| {
            let mut config = TestConfig::required(port);
            config.body.push_str("\n[protocols]\nenabled = [\"ssh\"]\n");
            config
        },
        "",
    );
    let result = login_with(&s.pam, "vsftpd", "dave", None, |prompt| {
        panic!("no prompt expected, got {prompt:?}")
    });
    assert_eq!(libpam::code_name(result.code), "PAM_SUCCESS", "{result:?}");
    assert!(result.prompts.is_empty());
    std::thread::sleep(Duration::from_millis(300));
    assert!(s.smtp.messages().is_empty(), "a skipped login sent mail");
    assert!(
        s.otpd
            .log()
            .contains("event=skipped user=dave service=vsftpd protocol=ftp")
    );
}

#[test]
fn a_skipped_login_is_ignore_not_success() {
    let s = setup_with(
        |port| {
            let mut config = TestConfig::required(port);
            config.body.push_str("\n[protocols]\nenabled = [\"ssh\"]\n");
            config
        },
        "",
    );
    // With our module alone, PAM_IGNORE leaves the stack with no verdict: libpam denies.
    s.pam.service(
        "vsftpd-alone",
        &format!(
            "auth required {} socket={} protocol=ftp\n",
            e2e_tests::paths::module().display(),
            s.otpd.socket.display()
        ),
    );
    let result = login_with(&s.pam, "vsftpd-alone", "erin", None, |_| String::new());
    assert_ne!(libpam::code_name(result.code), "PAM_SUCCESS", "{result:?}");
}

#[test]
fn hourly_cap_reached_sends_no_more_mail() {
    let s = setup_with(
        |port| {
            let mut config = TestConfig::required(port);
            config.body.push_str(
                "max_sends_per_hour = 2\nmax_sends_per_day = 2\nresend_cooldown_seconds = 0\n",
            );
            config
        },
        "",
    );
    for n in 1..=2 {
        let r = login_with(
            &s.pam,
            "sshd",
            "frank",
            None,
            mailed_code(s.smtp.reader(), n),
        );
        assert_eq!(libpam::code_name(r.code), "PAM_SUCCESS", "login {n}: {r:?}");
    }
    let third = login_with(&s.pam, "sshd", "frank", None, |p| {
        panic!("no prompt expected after the cap, got {p:?}")
    });
    assert_eq!(libpam::code_name(third.code), "PAM_AUTH_ERR", "{third:?}");
    assert!(
        third.errors[0].starts_with("Too many codes were sent"),
        "{third:?}"
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(s.smtp.messages().len(), 2);
    assert!(s.otpd.log().contains("event=rate_limited user=frank"));
}

#[test]
fn a_login_inside_the_cooldown_reuses_the_mailed_code() {
    let s = setup();
    let reader = s.smtp.reader();
    // First login: the code arrives but the person only ever presses Enter.
    let first = login_with(&s.pam, "sshd", "gina", None, |_| String::new());
    assert_eq!(libpam::code_name(first.code), "PAM_MAXTRIES", "{first:?}");
    let second = login_with(&s.pam, "sshd", "gina", None, mailed_code(reader, 1));
    assert_eq!(libpam::code_name(second.code), "PAM_SUCCESS", "{second:?}");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        s.smtp.messages().len(),
        1,
        "the cooldown must not mail again"
    );
}

#[test]
fn a_non_root_caller_cannot_ask_for_another_users_code() {
    let s = setup();
    let output = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(e2e_tests::paths::binary("pam-login"))
        .arg("--confdir")
        .arg(s.pam.path())
        .args(["--service", "sshd", "--user", "alice"])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run pam-login as nobody");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success());
    assert!(stdout.contains("PAM_AUTH_ERR"), "stdout: {stdout}");
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        s.smtp.messages().is_empty(),
        "a refused caller got mail sent"
    );
    assert!(
        s.otpd.log().contains("event=refused_caller user=alice"),
        "{}",
        s.otpd.log()
    );
}

#[test]
fn a_stopped_otpd_denies_the_login_promptly() {
    let mut s = setup_with(TestConfig::required, "timeout=2");
    assert!(s.otpd.stop());
    let start = Instant::now();
    let result = login_with(&s.pam, "sshd", "hank", None, |p| {
        panic!("no prompt expected without otpd, got {p:?}")
    });
    assert_eq!(
        libpam::code_name(result.code),
        "PAM_AUTHINFO_UNAVAIL",
        "{result:?}"
    );
    // A deadline property, not a benchmark: the module must never hang a login.
    assert!(start.elapsed() < Duration::from_secs(10));
}

#[test]
fn a_frozen_otpd_times_out_instead_of_hanging_the_login() {
    let s = setup_with(TestConfig::required, "timeout=1 mail_timeout=1");
    s.otpd.signal(libc::SIGSTOP);
    let start = Instant::now();
    let result = login_with(&s.pam, "sshd", "ivan", None, |_| String::new());
    let elapsed = start.elapsed();
    s.otpd.signal(libc::SIGCONT);
    assert_eq!(
        libpam::code_name(result.code),
        "PAM_AUTHINFO_UNAVAIL",
        "{result:?}"
    );
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
}

#[test]
fn an_issued_code_survives_an_otpd_restart() {
    let mut s = setup();
    let reader = s.smtp.reader();
    let socket = s.otpd.socket.clone();
    // Begin through the wire protocol, restart, then answer.
    let login = common::wire::LoginContext {
        user: "judy".into(),
        service: "sshd".into(),
        rhost: None,
        tty: None,
        protocol: None,
    };
    let begin = s
        .otpd
        .call(&common::wire::Request::Begin {
            login: login.clone(),
            ssh_keys: Vec::new(),
        })
        .unwrap();
    let common::wire::Response::Prompt { challenge, .. } = begin else {
        panic!("expected a prompt, got {begin:?}");
    };
    let code = reader.wait_for(1, MAIL_WAIT).last().unwrap().code();
    s.otpd.restart();
    assert_eq!(s.otpd.socket, socket);
    let answer = s
        .otpd
        .call(&common::wire::Request::Answer {
            login,
            challenge,
            code: common::secret::SecretString::new(code),
        })
        .unwrap();
    assert_eq!(answer, common::wire::Response::Success);
}

/// Issue #22: `otpctl user set-language` puts one user's login texts in their language over
/// the profile's; `profile` gives them back the profile's.
#[test]
fn a_users_own_language_words_their_prompt_until_it_is_set_back_to_the_profiles() {
    let s = setup();
    let set = |language: &str| {
        let (status, _, stderr) = s
            .otpd
            .otpctl(None, &["user", "set-language", "--", "alice", language]);
        (status == 0, stderr)
    };
    assert!(set("fr").0);
    let first = login_with(
        &s.pam,
        "sshd",
        "alice",
        None,
        mailed_code(s.smtp.reader(), 1),
    );
    assert_eq!(libpam::code_name(first.code), "PAM_SUCCESS", "{first:?}");
    assert!(
        first.prompts[0].starts_with("Code envoyé à a***@e***.test (valable 10 min) : "),
        "{first:?}"
    );
    let (ok, error) = set("pt");
    assert!(!ok && error.contains("no login texts in \"pt\""), "{error}");
    assert!(set("profile").0);
    let second = login_with(
        &s.pam,
        "sshd",
        "alice",
        None,
        mailed_code(s.smtp.reader(), 2),
    );
    assert!(
        second.prompts[0].starts_with("Code sent to a***@e***.test"),
        "{second:?}"
    );
    assert!(s.otpd.log().contains("event=user_language_set user=alice"));
}
