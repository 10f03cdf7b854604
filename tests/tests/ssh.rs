//! End-to-end over SSH: Debian's sshd on loopback loads the module through its PAM stack, and the
//! real OpenSSH `ssh` and `sftp` clients log in over keyboard-interactive, answering with the
//! code from the captured mail. Covers the two sshd setups the README documents (password then
//! code, key then code), SFTP through a second sshd with its own PAM service, the `tries`
//! limit and the empty answer that asks for a resend.

// Test code: a failed unwrap is how a test reports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::ops::Deref;

use common::text::mask_email;
use e2e_tests::programs::answers::{
    is_code_prompt, is_password_prompt, mailed_code, person, wrong, wrong_codes,
};
use e2e_tests::programs::lab::LabBase;
use e2e_tests::programs::ssh_client::{Method, SshClient, SshOutcome};
use e2e_tests::programs::sshd::{self, Sshd};
use e2e_tests::programs::stacks;

/// A remote command whose output proves the shell ran as the user.
const WHOAMI: &str = "echo logged-in-as-$(id -un)";

/// One sshd with its otpd, mail capture, user and client. Fields drop in order: the client and
/// sshd stop before the user is deleted.
struct Lab {
    client: SshClient,
    sshd: Sshd,
    base: LabBase,
}

impl Deref for Lab {
    type Target = LabBase;

    fn deref(&self) -> &LabBase {
        &self.base
    }
}

/// What a lab differs in.
struct Setup<'a> {
    /// PAM service name (the name sshd runs as).
    service: &'a str,
    /// Builds the PAM stack around our module's line.
    stack: fn(&str) -> String,
    /// Extra module arguments (e.g. `tries=2`).
    module_args: &'a str,
    /// sshd_config lines (the setup: password or key, then code).
    sshd_config: &'a str,
    /// Lines added to otpd's `[defaults]`.
    defaults: &'a str,
}

const PASSWORD_THEN_CODE: Setup<'static> = Setup {
    service: "sshd",
    stack: stacks::password_then_code,
    module_args: "",
    sshd_config: sshd::PASSWORD_THEN_CODE,
    defaults: "",
};

const KEY_THEN_CODE: Setup<'static> = Setup {
    service: "sshd",
    stack: stacks::code_only,
    module_args: "",
    sshd_config: sshd::KEY_THEN_CODE,
    defaults: "",
};

fn lab(setup: Setup<'_>) -> Lab {
    let base = LabBase::start(setup.defaults);
    let stack = (setup.stack)(&stacks::otp(&base.otpd.socket, setup.module_args));
    let sshd = Sshd::start(setup.service, &stack, setup.sshd_config);
    let client = SshClient::new(&sshd);
    Lab { client, sshd, base }
}

impl Lab {
    fn ssh(&self, method: Method, answer: impl FnMut(&str) -> String) -> SshOutcome {
        self.client.ssh(&self.user.name, method, WHOAMI, answer)
    }

    fn expected_prompt(&self) -> String {
        format!(
            "Code sent to {} (valid 10 min): ",
            mask_email(&self.user.email())
        )
    }

    fn logged_in(&self, out: &SshOutcome) -> bool {
        out.succeeded() && out.stdout.trim() == format!("logged-in-as-{}", self.user.name)
    }

    /// Everything worth seeing when an assertion fails.
    fn report(&self, out: &SshOutcome) -> String {
        self.base.report(out, "sshd", &self.sshd.log())
    }
}

fn code_prompts(out: &SshOutcome) -> usize {
    out.prompts.iter().filter(|p| is_code_prompt(p)).count()
}

#[test]
fn password_and_the_mailed_code_log_in_over_keyboard_interactive() {
    let lab = lab(PASSWORD_THEN_CODE);
    let out = lab.ssh(
        Method::KeyboardInteractive,
        person(&lab.user.password, lab.smtp.reader(), 1),
    );
    assert!(lab.logged_in(&out), "{}", lab.report(&out));
    assert_eq!(out.prompts.len(), 2, "{}", lab.report(&out));
    assert!(is_password_prompt(&out.prompts[0]), "{:?}", out.prompts);
    assert!(
        out.prompts[1].ends_with(&lab.expected_prompt()),
        "{:?}",
        out.prompts
    );
    let mail = lab.smtp.last();
    assert_eq!(mail.rcpt_tos, vec![lab.user.email()]);
    assert!(
        mail.text.contains("sshd, ssh from 127.0.0.1"),
        "{}",
        mail.text
    );
    assert!(lab.logged("verified"), "{}", lab.report(&out));
}

#[test]
fn a_key_and_the_mailed_code_log_in_without_a_password_prompt() {
    let lab = lab(KEY_THEN_CODE);
    lab.user.authorize_key(&lab.client.public_key());
    let reader = lab.smtp.reader();
    let out = lab.ssh(Method::KeyThenKeyboardInteractive, |prompt| {
        assert!(is_code_prompt(prompt), "only the code is asked: {prompt:?}");
        mailed_code(&reader, 1)
    });
    assert!(lab.logged_in(&out), "{}", lab.report(&out));
    assert_eq!(out.prompts.len(), 1, "{}", lab.report(&out));
    assert!(out.prompts[0].ends_with(&lab.expected_prompt()));
    let log = lab.sshd.log();
    assert!(
        log.contains(&format!("Partial publickey for {}", lab.user.name)),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "Accepted keyboard-interactive/pam for {}",
            lab.user.name
        )),
        "{log}"
    );
}

#[test]
fn a_key_with_a_wrong_code_is_refused() {
    let lab = lab(KEY_THEN_CODE);
    lab.user.authorize_key(&lab.client.public_key());
    let reader = lab.smtp.reader();
    let out = lab.ssh(Method::KeyThenKeyboardInteractive, move |_| {
        wrong(&mailed_code(&reader, 1))
    });
    assert!(!out.succeeded(), "{}", lab.report(&out));
    assert!(out.stdout.is_empty(), "{}", lab.report(&out));
    assert!(out.stderr.contains("Permission denied"), "{}", out.stderr);
    assert!(lab.logged("wrong_code"), "{}", lab.report(&out));
}

#[test]
fn a_wrong_password_is_refused_before_any_code_is_mailed() {
    let lab = lab(PASSWORD_THEN_CODE);
    let out = lab.ssh(Method::KeyboardInteractive, |prompt| {
        assert!(is_password_prompt(prompt), "no code prompt: {prompt:?}");
        "not-the-password".into()
    });
    assert!(!out.succeeded(), "{}", lab.report(&out));
    assert_eq!(code_prompts(&out), 0, "{}", lab.report(&out));
    lab.assert_no_code_was_mailed();
}

#[test]
fn a_wrong_code_after_the_right_password_is_refused() {
    let lab = lab(PASSWORD_THEN_CODE);
    let out = lab.ssh(
        Method::KeyboardInteractive,
        wrong_codes(&lab.user.password, lab.smtp.reader()),
    );
    assert!(!out.succeeded(), "{}", lab.report(&out));
    assert!(out.stdout.is_empty(), "{}", lab.report(&out));
    assert!(code_prompts(&out) >= 1, "{}", lab.report(&out));
    // The module's message reaches the person through sshd's keyboard-interactive exchange.
    assert!(out.stderr.contains("Wrong code."), "{}", lab.report(&out));
    assert!(lab.logged("wrong_code"), "{}", lab.report(&out));
}

#[test]
fn by_default_one_login_takes_three_answers() {
    let lab = lab(PASSWORD_THEN_CODE);
    let out = lab.ssh(
        Method::KeyboardInteractive,
        wrong_codes(&lab.user.password, lab.smtp.reader()),
    );
    assert!(!out.succeeded(), "{}", lab.report(&out));
    assert_eq!(code_prompts(&out), 3, "{}", lab.report(&out));
}

#[test]
fn a_wrong_code_then_the_right_one_logs_in_within_the_tries() {
    let lab = lab(PASSWORD_THEN_CODE);
    let reader = lab.smtp.reader();
    let password = lab.user.password.clone();
    let mut codes_asked = 0;
    let out = lab.ssh(Method::KeyboardInteractive, move |prompt| {
        if is_password_prompt(prompt) {
            return password.clone();
        }
        codes_asked += 1;
        let code = mailed_code(&reader, 1);
        if codes_asked == 1 { wrong(&code) } else { code }
    });
    assert!(lab.logged_in(&out), "{}", lab.report(&out));
    assert_eq!(code_prompts(&out), 2, "{}", lab.report(&out));
    assert_eq!(lab.settled_mail_count(), 1, "a re-prompt mails nothing");
}

#[test]
fn the_tries_argument_limits_the_answers_of_one_login() {
    let lab = lab(Setup {
        module_args: "tries=2",
        ..PASSWORD_THEN_CODE
    });
    let out = lab.ssh(
        Method::KeyboardInteractive,
        wrong_codes(&lab.user.password, lab.smtp.reader()),
    );
    assert!(!out.succeeded(), "{}", lab.report(&out));
    assert_eq!(code_prompts(&out), 2, "{}", lab.report(&out));
}

#[test]
fn an_empty_answer_mails_a_new_code_when_the_cooldown_allows() {
    let lab = lab(Setup {
        defaults: "resend_cooldown_seconds = 0\n",
        ..PASSWORD_THEN_CODE
    });
    let reader = lab.smtp.reader();
    let password = lab.user.password.clone();
    let mut codes_asked = 0;
    let out = lab.ssh(Method::KeyboardInteractive, move |prompt| {
        if is_password_prompt(prompt) {
            return password.clone();
        }
        codes_asked += 1;
        if codes_asked == 1 {
            mailed_code(&reader, 1);
            String::new()
        } else {
            mailed_code(&reader, 2)
        }
    });
    assert!(lab.logged_in(&out), "{}", lab.report(&out));
    assert_eq!(code_prompts(&out), 2, "{}", lab.report(&out));
    assert_eq!(lab.settled_mail_count(), 2, "{}", lab.report(&out));
}

#[test]
fn an_empty_answer_inside_the_cooldown_mails_nothing_and_says_when() {
    let lab = lab(PASSWORD_THEN_CODE);
    let reader = lab.smtp.reader();
    let password = lab.user.password.clone();
    let mut codes_asked = 0;
    let out = lab.ssh(Method::KeyboardInteractive, move |prompt| {
        if is_password_prompt(prompt) {
            return password.clone();
        }
        codes_asked += 1;
        let code = mailed_code(&reader, 1);
        if codes_asked == 1 {
            String::new()
        } else {
            code
        }
    });
    assert!(lab.logged_in(&out), "{}", lab.report(&out));
    assert_eq!(code_prompts(&out), 2, "{}", lab.report(&out));
    assert_ne!(
        out.prompts[1], out.prompts[2],
        "the second prompt says when a new code can be sent"
    );
    assert_eq!(lab.settled_mail_count(), 1, "{}", lab.report(&out));
}

#[test]
fn with_the_password_method_alone_sshd_answers_the_code_prompt_with_the_password_and_fails() {
    let lab = lab(Setup {
        sshd_config: sshd::PASSWORD_ONLY,
        ..PASSWORD_THEN_CODE
    });
    let password = lab.user.password.clone();
    let out = lab.ssh(Method::Password, move |_| password.clone());
    assert!(!out.succeeded(), "{}", lab.report(&out));
    assert_eq!(out.prompts.len(), 1, "{}", lab.report(&out));
    assert!(
        out.prompts[0].contains("password"),
        "only ssh's own password prompt: {:?}",
        out.prompts
    );
    // The module did ask, and got the password where the code belongs: refused, not skipped.
    assert!(lab.logged("wrong_code"), "{}", lab.report(&out));
}

/// The README's way to tell SFTP from SSH: a second sshd started as `sshd-sftp`, with its own
/// PAM service file, which otpd maps to the sftp protocol.
const SFTP: Setup<'static> = Setup {
    service: "sshd-sftp",
    stack: stacks::password_then_code,
    module_args: "",
    sshd_config: sshd::SFTP_ONLY,
    defaults: "",
};

#[test]
fn sftp_after_the_password_and_the_code_lists_and_fetches_a_file() {
    let lab = lab(SFTP);
    lab.user.write_file("report.txt", b"quarterly numbers\n");
    let fetched = lab.client.download_dir().join("report.txt");
    let batch = format!("ls -1\nget report.txt {}\n", fetched.display());
    let out = lab.client.sftp(
        &lab.user.name,
        Method::KeyboardInteractive,
        &batch,
        person(&lab.user.password, lab.smtp.reader(), 1),
    );
    assert!(out.succeeded(), "{}", lab.report(&out));
    assert!(out.stdout.contains("report.txt"), "{}", lab.report(&out));
    assert_eq!(fs::read(&fetched).unwrap(), b"quarterly numbers\n");
    assert_eq!(code_prompts(&out), 1, "{}", lab.report(&out));
    let mail = lab.smtp.last();
    assert!(
        mail.text.contains("sshd-sftp, sftp from 127.0.0.1"),
        "{}",
        mail.text
    );
}

#[test]
fn sftp_with_a_wrong_code_fetches_nothing() {
    let lab = lab(SFTP);
    lab.user.write_file("report.txt", b"quarterly numbers\n");
    let fetched = lab.client.download_dir().join("report.txt");
    let batch = format!("get report.txt {}\n", fetched.display());
    let out = lab.client.sftp(
        &lab.user.name,
        Method::KeyboardInteractive,
        &batch,
        wrong_codes(&lab.user.password, lab.smtp.reader()),
    );
    assert!(!out.succeeded(), "{}", lab.report(&out));
    assert!(!fetched.exists(), "a file was fetched without the code");
}

/// Creates a set of recovery codes for `user` as root would with `otpctl user recovery-codes`.
fn recovery_codes(lab: &Lab, user: &str) -> Vec<String> {
    let response = lab
        .otpd
        .call(&common::wire::Request::Admin {
            request: common::wire_admin::AdminRequest::UserRecoveryCodes { user: user.into() },
        })
        .unwrap();
    match response {
        common::wire::Response::Admin {
            response: common::wire_admin::AdminResponse::RecoveryCodes { codes, .. },
        } => codes.iter().map(|c| c.expose().to_string()).collect(),
        other => panic!("no recovery codes: {other:?}"),
    }
}

/// Points every mail server of otpd at a port where nothing listens: no code can be mailed.
fn kill_the_mail_relay(lab: &Lab) {
    let text = lab.otpd.config_text();
    let live = format!("port = {}", lab.smtp.port);
    assert!(text.contains(&live), "{text}");
    lab.otpd.reload_with(&text.replace(&live, "port = 1"));
}

/// Answers the password prompt with `password` and the code prompt with `code`.
fn password_then(password: &str, code: &str) -> impl FnMut(&str) -> String {
    let (password, code) = (password.to_string(), code.to_string());
    move |prompt| {
        if is_password_prompt(prompt) {
            password.clone()
        } else {
            code.clone()
        }
    }
}

#[test]
fn with_the_mail_relay_down_a_recovery_code_logs_in_once_over_keyboard_interactive() {
    let lab = lab(PASSWORD_THEN_CODE);
    let codes = recovery_codes(&lab, &lab.user.name);
    kill_the_mail_relay(&lab);

    let out = lab.ssh(
        Method::KeyboardInteractive,
        password_then(&lab.user.password, &codes[0]),
    );
    assert!(lab.logged_in(&out), "{}", lab.report(&out));
    assert_eq!(out.prompts.len(), 2, "{}", lab.report(&out));
    assert!(
        out.prompts[1].ends_with(
            "The login code could not be mailed. Enter a recovery code instead (10 left): "
        ),
        "{}",
        lab.report(&out)
    );
    assert!(lab.logged("mail_failed"), "{}", lab.report(&out));
    assert!(
        lab.otpd
            .log()
            .contains(&format!("event=recovery_used user={}", lab.user.name)),
        "{}",
        lab.report(&out)
    );
    assert_eq!(lab.smtp.messages().len(), 0);

    // The same code again: refused at every try, while the prompt offers the 9 others.
    let again = lab.ssh(
        Method::KeyboardInteractive,
        password_then(&lab.user.password, &codes[0]),
    );
    assert!(!again.succeeded(), "{}", lab.report(&again));
    assert!(
        again.prompts[1].contains("could not be mailed") && again.prompts[1].contains("(9 left)"),
        "{}",
        lab.report(&again)
    );
    assert!(lab.logged("wrong_code"), "{}", lab.report(&again));
}

#[test]
fn with_the_mail_relay_down_a_user_without_recovery_codes_is_refused_without_a_code_prompt() {
    let lab = lab(PASSWORD_THEN_CODE);
    kill_the_mail_relay(&lab);
    let out = lab.ssh(
        Method::KeyboardInteractive,
        password_then(&lab.user.password, "abcde-fghjk"),
    );
    assert!(!out.succeeded(), "{}", lab.report(&out));
    assert!(
        out.prompts
            .iter()
            .all(|p| !is_code_prompt(p) && !p.contains("recovery")),
        "{}",
        lab.report(&out)
    );
    assert!(lab.logged("mail_failed"), "{}", lab.report(&out));
}
