//! End-to-end, at the wire level: what otpd does for single-secret protocols (FTP, HTTP Basic,
//! WebDAV), whose clients send the code appended to the password, and for resend requests.
//! The module's side of the same flows runs through real libpam in `protocols.rs`.

// Test code: a failed unwrap is how a test reports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use common::secret::SecretString;
use common::wire::{DenyReason, LoginContext, Request, Response};
use e2e_tests::otpd::{Otpd, TestConfig};
use e2e_tests::smtp::{MAIL_WAIT, SmtpCapture};

fn ftp(user: &str, rhost: &str) -> LoginContext {
    LoginContext {
        user: user.into(),
        service: "vsftpd".into(),
        rhost: Some(rhost.into()),
        tty: None,
        protocol: None,
    }
}

fn probe(otpd: &Otpd, login: &LoginContext) -> Response {
    otpd.call(&Request::Probe {
        login: login.clone(),
    })
    .unwrap()
}

fn verify(otpd: &Otpd, login: &LoginContext, code: &str) -> Response {
    otpd.call(&Request::Verify {
        login: login.clone(),
        code: SecretString::new(code.into()),
    })
    .unwrap()
}

#[test]
fn a_probe_expects_a_code_only_after_one_was_mailed_and_mails_nothing() {
    let smtp = SmtpCapture::start();
    let otpd = Otpd::start(&TestConfig::required(smtp.port));
    let login = ftp("olga", "192.0.2.20");
    assert_eq!(
        probe(&otpd, &login),
        Response::Probe {
            code_length: 6,
            expects_code: false
        }
    );
    std::thread::sleep(Duration::from_millis(200));
    assert!(smtp.messages().is_empty(), "a probe sent mail");

    let begin = otpd
        .call(&Request::Begin {
            login: login.clone(),
            ssh_keys: Vec::new(),
        })
        .unwrap();
    assert!(matches!(begin, Response::Prompt { .. }), "{begin:?}");
    assert_eq!(smtp.wait_for(1, MAIL_WAIT).len(), 1);
    assert_eq!(
        probe(&otpd, &login),
        Response::Probe {
            code_length: 6,
            expects_code: true
        }
    );
}

#[test]
fn an_appended_code_is_verified_and_then_reused_within_the_window_by_the_same_client_only() {
    let smtp = SmtpCapture::start();
    let otpd = Otpd::start(&TestConfig::required(smtp.port));
    let login = ftp("pete", "192.0.2.21");
    otpd.call(&Request::Begin {
        login: login.clone(),
        ssh_keys: Vec::new(),
    })
    .unwrap();
    let code = smtp.wait_for(1, MAIL_WAIT).last().unwrap().code();

    assert_eq!(verify(&otpd, &login, &code), Response::Success);
    // The same client sends the same credentials again: the reuse grant carries them.
    assert_eq!(
        probe(&otpd, &login),
        Response::Probe {
            code_length: 6,
            expects_code: true
        }
    );
    assert_eq!(verify(&otpd, &login, &code), Response::Success);
    // Another host with the same code gets nothing.
    let elsewhere = ftp("pete", "198.51.100.50");
    assert!(matches!(
        verify(&otpd, &elsewhere, &code),
        Response::Denied { .. }
    ));
    assert!(
        otpd.log()
            .contains("event=verified user=pete service=vsftpd protocol=ftp")
    );
}

#[test]
fn a_wrong_appended_code_is_denied() {
    let smtp = SmtpCapture::start();
    let otpd = Otpd::start(&TestConfig::required(smtp.port));
    let login = ftp("quinn", "192.0.2.22");
    otpd.call(&Request::Begin {
        login: login.clone(),
        ssh_keys: Vec::new(),
    })
    .unwrap();
    let code = smtp.wait_for(1, MAIL_WAIT).last().unwrap().code();
    let wrong = if code == "000000" { "111111" } else { "000000" };
    assert!(matches!(
        verify(&otpd, &login, wrong),
        Response::Denied {
            reason: DenyReason::WrongCode,
            ..
        }
    ));
}

#[test]
fn a_window_of_zero_leaves_no_reuse() {
    let smtp = SmtpCapture::start();
    let mut config = TestConfig::required(smtp.port);
    config.body.push_str("reuse_window_seconds = 0\n");
    let otpd = Otpd::start(&config);
    let login = ftp("rita", "192.0.2.23");
    otpd.call(&Request::Begin {
        login: login.clone(),
        ssh_keys: Vec::new(),
    })
    .unwrap();
    let code = smtp.wait_for(1, MAIL_WAIT).last().unwrap().code();
    assert_eq!(verify(&otpd, &login, &code), Response::Success);
    assert!(matches!(
        verify(&otpd, &login, &code),
        Response::Denied {
            reason: DenyReason::CodeDead,
            ..
        }
    ));
}

#[test]
fn a_resend_inside_the_cooldown_mails_nothing_and_says_when_a_new_code_can_come() {
    let smtp = SmtpCapture::start();
    let otpd = Otpd::start(&TestConfig::required(smtp.port));
    let login = LoginContext {
        service: "sshd".into(),
        ..ftp("sam", "192.0.2.24")
    };
    let first = otpd
        .call(&Request::Begin {
            login: login.clone(),
            ssh_keys: Vec::new(),
        })
        .unwrap();
    let Response::Prompt { challenge, .. } = first else {
        panic!("expected a prompt, got {first:?}");
    };
    assert_eq!(smtp.wait_for(1, MAIL_WAIT).len(), 1);
    let again = otpd
        .call(&Request::Resend {
            login: login.clone(),
        })
        .unwrap();
    match again {
        Response::Prompt {
            challenge: same,
            prompt,
            ..
        } => {
            assert_eq!(same, challenge);
            assert!(
                prompt.starts_with("No new code yet (possible in "),
                "{prompt}"
            );
        }
        other => panic!("expected a prompt, got {other:?}"),
    }
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        smtp.messages().len(),
        1,
        "a resend inside the cooldown mailed"
    );
}

#[test]
fn a_resend_after_the_cooldown_mails_a_new_code() {
    let smtp = SmtpCapture::start();
    let mut config = TestConfig::required(smtp.port);
    config.body.push_str("resend_cooldown_seconds = 0\n");
    let otpd = Otpd::start(&config);
    let login = LoginContext {
        service: "sshd".into(),
        ..ftp("tina", "192.0.2.25")
    };
    otpd.call(&Request::Begin {
        login: login.clone(),
        ssh_keys: Vec::new(),
    })
    .unwrap();
    let again = otpd.call(&Request::Resend { login }).unwrap();
    assert!(matches!(again, Response::Prompt { .. }), "{again:?}");
    assert_eq!(smtp.wait_for(2, MAIL_WAIT).len(), 2);
}

#[test]
fn a_probe_for_a_disabled_protocol_is_a_skip() {
    let smtp = SmtpCapture::start();
    let mut config = TestConfig::required(smtp.port);
    config.body.push_str("\n[protocols]\nenabled = [\"ssh\"]\n");
    let otpd = Otpd::start(&config);
    let reply = probe(&otpd, &ftp("uma", "192.0.2.26"));
    assert!(matches!(reply, Response::Skip { .. }), "{reply:?}");
}
