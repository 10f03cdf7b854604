//! Stacking safety: the module's return codes give the right verdict in every common pam.d
//! stack, through real libpam with a real otpd. pam_permit and pam_deny stand in for a password
//! module that accepts or refuses. A login that needs no code must never pass a stack by our
//! module alone: it returns PAM_IGNORE, never PAM_SUCCESS.

// Test code: a failed unwrap is how a test reports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use e2e_tests::libpam;
use e2e_tests::login::login_with;
use e2e_tests::otpd::{Otpd, TestConfig};
use e2e_tests::paths;
use e2e_tests::programs::answers;
use e2e_tests::smtp::{MailReader, SmtpCapture};
use e2e_tests::stack::PamConfDir;

/// What the person does at the code prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    RightCode,
    WrongCode,
}

/// Whether the password step (pam_permit / pam_deny) accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Password {
    Right,
    Wrong,
}

struct World {
    smtp: SmtpCapture,
    otpd: Otpd,
    pam: PamConfDir,
}

fn world() -> World {
    let smtp = SmtpCapture::start();
    let mut config = TestConfig::required(smtp.port);
    // ftp is not protected: logins through vsftpd-* services are skipped.
    config.body.push_str("\n[protocols]\nenabled = [\"ssh\"]\n");
    let otpd = Otpd::start(&config);
    World {
        smtp,
        otpd,
        pam: PamConfDir::new(),
    }
}

/// Writes `stack` (with `PASSWORD` and `OTP` placeholders) as a service and runs one login.
fn run(world: &World, stack: &str, protocol: &str, password: Password, answer: Answer) -> i32 {
    let password_module = match password {
        Password::Right => "pam_permit.so",
        Password::Wrong => "pam_deny.so",
    };
    let otp = format!(
        "{} socket={} protocol={protocol} tries=1",
        paths::module().display(),
        world.otpd.socket.display()
    );
    let text = stack
        .replace("PASSWORD", password_module)
        .replace("OTP", &otp);
    let service = format!("stack-{}", world.smtp.messages().len());
    world.pam.service(&service, &text);
    let reader: MailReader = world.smtp.reader();
    let before = reader.messages().len();
    let user = format!("stacker{before}");
    let result = login_with(&world.pam, &service, &user, None, move |_| match answer {
        Answer::RightCode => answers::mailed_code(&reader, before + 1),
        Answer::WrongCode => "not-the-code".to_string(),
    });
    result.code
}

fn passes(code: i32) -> bool {
    libpam::code_name(code) == "PAM_SUCCESS"
}

/// For one stack: (password, protocol, answer) -> whether the login must pass.
fn check(stack: &str, expectations: &[(Password, &str, Answer, bool)]) {
    let world = world();
    for &(password, protocol, answer, expected) in expectations {
        let code = run(&world, stack, protocol, password, answer);
        assert_eq!(
            passes(code),
            expected,
            "stack:\n{stack}\npassword {password:?}, protocol {protocol}, {answer:?}: got {}",
            libpam::code_name(code)
        );
    }
}

use Answer::{RightCode, WrongCode};
use Password::{Right, Wrong};

#[test]
fn required_after_the_password() {
    check(
        "auth required PASSWORD\nauth required OTP\n",
        &[
            (Right, "ssh", RightCode, true),
            (Right, "ssh", WrongCode, false),
            (Wrong, "ssh", RightCode, false),
            (Right, "ftp", RightCode, true),
            (Wrong, "ftp", RightCode, false),
        ],
    );
}

#[test]
fn requisite_after_the_password() {
    check(
        "auth requisite PASSWORD\nauth requisite OTP\nauth required pam_permit.so\n",
        &[
            (Right, "ssh", RightCode, true),
            (Right, "ssh", WrongCode, false),
            (Wrong, "ssh", RightCode, false),
            (Right, "ftp", RightCode, true),
            (Wrong, "ftp", RightCode, false),
        ],
    );
}

#[test]
fn sufficient_never_lets_a_skipped_login_through_by_itself() {
    // A skipped login must fall through to pam_deny; only a right code is sufficient.
    check(
        "auth sufficient OTP\nauth required pam_deny.so\n",
        &[
            (Right, "ssh", RightCode, true),
            (Right, "ssh", WrongCode, false),
            (Right, "ftp", RightCode, false),
        ],
    );
}

#[test]
fn success_done_default_die_needs_the_code() {
    check(
        "auth required PASSWORD\nauth [success=done default=die] OTP\nauth required pam_deny.so\n",
        &[
            (Right, "ssh", RightCode, true),
            (Right, "ssh", WrongCode, false),
            (Wrong, "ssh", RightCode, false),
            // default=die covers PAM_IGNORE too: in this stack every login must give a code.
            (Right, "ftp", RightCode, false),
        ],
    );
}

#[test]
fn the_pam_auth_update_profile_in_common_auth() {
    // Debian's common-auth with our profile in the Additional block, as pam-auth-update writes it
    // (the primary block's `success=end` becomes a jump over pam_deny).
    let profile = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/pam-configs/otp-email"),
    )
    .unwrap();
    let control = profile
        .lines()
        .skip_while(|l| !l.starts_with("Auth:"))
        .nth(1)
        .map(|l| {
            let l = l.trim();
            match l.find(']') {
                Some(end) if l.starts_with('[') => l[..=end].to_string(),
                _ => l.split_whitespace().next().unwrap_or_default().to_string(),
            }
        })
        .unwrap();
    let stack = format!(
        "auth [success=1 default=ignore] PASSWORD\nauth requisite pam_deny.so\nauth required pam_permit.so\nauth {control} OTP\n"
    );
    check(
        &stack,
        &[
            (Right, "ssh", RightCode, true),
            (Right, "ssh", WrongCode, false),
            (Wrong, "ssh", RightCode, false),
            (Right, "ftp", RightCode, true),
            (Wrong, "ftp", RightCode, false),
        ],
    );
}

#[test]
fn a_wrong_password_in_a_requisite_step_mails_nothing() {
    let world = world();
    let code = run(
        &world,
        "auth requisite PASSWORD\nauth required OTP\n",
        "ssh",
        Wrong,
        WrongCode,
    );
    assert!(!passes(code));
    std::thread::sleep(Duration::from_millis(300));
    assert!(world.smtp.messages().is_empty());
}
