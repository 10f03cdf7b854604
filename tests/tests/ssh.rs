//! End-to-end over SSH: Debian's sshd on loopback loads the module through its PAM stack, and the
//! real OpenSSH `ssh` and `sftp` clients log in over keyboard-interactive, answering with the
//! code from the captured mail. Covers the two sshd setups the README documents (password then
//! code, key then code), SFTP through a second sshd with its own PAM service, the `tries`
//! limit and the empty answer that asks for a resend; and `[[exemptions]]`: a listed key logs in
//! without a code, no other key, password or forged environment does.

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

/// Issue #22: a dry run (`mode = "audit"` for everyone, through a catch-all policy) asks no
/// code and mails nothing: the password alone logs in, and the audit says who would have been
/// asked; `otpctl status` sums it up.
#[test]
fn a_dry_run_logs_in_with_the_password_alone_and_records_who_would_have_been_asked() {
    let lab = lab(Setup {
        defaults: "[profiles.rollout]\nmode = \"audit\"\n[[policies]]\nprofile = \"rollout\"\n",
        ..PASSWORD_THEN_CODE
    });
    let out = lab.ssh(Method::KeyboardInteractive, |prompt| {
        assert!(is_password_prompt(prompt), "only the password: {prompt:?}");
        lab.user.password.clone()
    });
    assert!(lab.logged_in(&out), "{}", lab.report(&out));
    assert_eq!(out.prompts.len(), 1, "{}", lab.report(&out));
    assert_eq!(lab.settled_mail_count(), 0, "a dry run mailed a code");
    let would_ask = format!(
        "event=would_ask user={} service=sshd protocol=ssh rhost=127.0.0.1 caller_uid=0 detail=rollout",
        lab.user.name
    );
    assert!(lab.otpd.log().contains(&would_ask), "{}", lab.otpd.log());
    let (_, status, _) = lab.otpd.otpctl(None, &["status"]);
    assert!(
        status.contains("last 7 days: 1 logins of 1 users would have been asked for a code"),
        "{status}"
    );
    assert!(status.contains(&lab.user.name), "{status}");
}

/// Issue #22: a profile in German: the prompt and the refusal arrive in German, their UTF-8
/// intact, through sshd's keyboard-interactive and the real ssh client.
#[test]
fn a_german_profile_prompts_and_refuses_in_german() {
    let lab = lab(Setup {
        defaults: "language = \"de\"\n",
        ..PASSWORD_THEN_CODE
    });
    let out = lab.ssh(
        Method::KeyboardInteractive,
        wrong_codes(&lab.user.password, lab.smtp.reader()),
    );
    assert!(!out.succeeded(), "{}", lab.report(&out));
    let expected = format!(
        "Code gesendet an {} (gültig 10 Min.): ",
        mask_email(&lab.user.email())
    );
    assert!(
        out.prompts.iter().any(|p| p.ends_with(&expected)),
        "{:?}\n{}",
        out.prompts,
        lab.report(&out)
    );
    assert!(
        out.stderr.contains("Falscher Code."),
        "{}",
        lab.report(&out)
    );
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

// Break-glass (issue #16): root arms a time-boxed grant while mail is down. Each lab points otpd
// at a dead SMTP port, so without a grant every login fails at the code step; otpd runs under
// libfaketime (offset +0 until a test moves it) so a grant can be expired for real.

const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

/// sshd and otpd with no mail server. Fields drop in order: the client and sshd stop before the
/// user is deleted; the serial lock goes last.
struct GlassLab {
    client: SshClient,
    sshd: Sshd,
    otpd: e2e_tests::otpd::Otpd,
    user: e2e_tests::programs::users::TestUser,
    offset_file: std::path::PathBuf,
    _dir: tempfile::TempDir,
    _serial: std::sync::MutexGuard<'static, ()>,
}

/// A TCP port on loopback that nothing listens on.
fn dead_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn glass_lab(stack: fn(&str) -> String) -> GlassLab {
    glass_lab_with(stack, sshd::PASSWORD_THEN_CODE)
}

fn glass_lab_with(stack: fn(&str) -> String, sshd_config: &str) -> GlassLab {
    assert!(
        std::path::Path::new(LIBFAKETIME).exists(),
        "{LIBFAKETIME} is missing: run tests/install-deps (package faketime)"
    );
    let serial = e2e_tests::programs::serial();
    let dir = tempfile::tempdir().unwrap();
    let offset_file = dir.path().join("faketime");
    fs::write(&offset_file, "+0").unwrap();
    let file = offset_file.display().to_string();
    let env = [
        ("LD_PRELOAD", LIBFAKETIME),
        ("FAKETIME_TIMESTAMP_FILE", file.as_str()),
        ("FAKETIME_NO_CACHE", "1"),
        ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
    ];
    let config = e2e_tests::otpd::TestConfig::required(dead_port());
    let otpd = e2e_tests::otpd::Otpd::start_with_env(&config, &env);
    let user = e2e_tests::programs::users::TestUser::create();
    let sshd = Sshd::start("sshd", &stack(&stacks::otp(&otpd.socket, "")), sshd_config);
    let client = SshClient::new(&sshd);
    GlassLab {
        client,
        sshd,
        otpd,
        user,
        offset_file,
        _dir: dir,
        _serial: serial,
    }
}

impl GlassLab {
    /// `otpctl ARGS` as root, or as `who` (uid, gid) through setpriv; its status and output.
    fn ctl_as(&self, who: Option<(u32, u32)>, args: &[&str]) -> (i32, String) {
        let mut cmd = match who {
            None => std::process::Command::new(e2e_tests::paths::binary("otpctl")),
            Some((uid, gid)) => {
                let mut c = std::process::Command::new("setpriv");
                c.arg(format!("--reuid={uid}"))
                    .arg(format!("--regid={gid}"))
                    .args(["--clear-groups", "--"])
                    .arg(e2e_tests::paths::binary("otpctl"));
                c
            }
        };
        let out = cmd
            .arg("--socket")
            .arg(&self.otpd.socket)
            .arg("--config")
            .arg(&self.otpd.config_path)
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code().unwrap_or(-1), text)
    }

    fn ctl(&self, args: &[&str]) {
        let (status, text) = self.ctl_as(None, args);
        assert_eq!(status, 0, "otpctl {args:?}: {text}");
    }

    /// A login over keyboard-interactive answering the password prompt with `password`; any
    /// other prompt (a code prompt) gets a wrong answer.
    fn login(&self, password: &str) -> SshOutcome {
        self.client
            .ssh(&self.user.name, Method::KeyboardInteractive, WHOAMI, |p| {
                if is_password_prompt(p) {
                    password.to_string()
                } else {
                    "000000".into()
                }
            })
    }

    fn logged_in(&self, out: &SshOutcome) -> bool {
        out.succeeded() && out.stdout.trim() == format!("logged-in-as-{}", self.user.name)
    }

    fn events(&self, event: &str) -> usize {
        self.otpd
            .log()
            .matches(&format!("event={event} user={}", self.user.name))
            .count()
    }

    fn report(&self, out: &SshOutcome) -> String {
        format!(
            "{out:#?}\n--- sshd log ---\n{}\n--- otpd log ---\n{}",
            self.sshd.log(),
            self.otpd.log()
        )
    }
}

#[test]
fn while_mail_is_down_a_break_glass_grant_lets_the_password_alone_log_in_until_revoked() {
    let lab = glass_lab(stacks::password_then_code);
    let out = lab.login(&lab.user.password);
    assert!(!out.succeeded(), "mail is down: {}", lab.report(&out));

    lab.ctl(&["breakglass", "grant", &lab.user.name, "--minutes", "5"]);
    let out = lab.login(&lab.user.password);
    assert!(lab.logged_in(&out), "{}", lab.report(&out));
    assert_eq!(code_prompts(&out), 0, "{}", lab.report(&out));
    assert_eq!(lab.events("breakglass_granted"), 1, "{}", lab.otpd.log());
    assert_eq!(lab.events("breakglass_used"), 1, "{}", lab.otpd.log());
    assert!(lab.otpd.log().contains("WARN"), "{}", lab.otpd.log());
    let (_, status) = lab.ctl_as(None, &["status"]);
    assert!(status.contains(&lab.user.name), "{status}");

    lab.ctl(&["breakglass", "revoke", &lab.user.name]);
    let out = lab.login(&lab.user.password);
    assert!(!out.succeeded(), "revoked: {}", lab.report(&out));
    assert_eq!(lab.events("breakglass_revoked"), 1, "{}", lab.otpd.log());
}

/// pam_unix `optional` instead of `requisite`: the stack goes on to our module after a wrong
/// password, and libpam counts the password only when nothing else answered. The grant's skip
/// (PAM_IGNORE) answers nothing, so the password alone still decides; a success from the code
/// step would have let a wrong password in.
fn password_optional_then_code(otp: &str) -> String {
    let documented = stacks::password_then_code(otp);
    documented.replacen("auth requisite pam_unix.so", "auth optional pam_unix.so", 1)
}

#[test]
fn a_break_glass_grant_never_makes_a_wrong_password_right_even_when_the_password_line_is_optional()
{
    let lab = glass_lab(password_optional_then_code);
    lab.ctl(&["breakglass", "grant", &lab.user.name, "--minutes", "5"]);
    let out = lab.login("not-the-password");
    assert!(!out.succeeded(), "{}", lab.report(&out));
    let out = lab.login(&lab.user.password);
    assert!(lab.logged_in(&out), "{}", lab.report(&out));
}

#[test]
fn a_break_glass_grant_from_another_network_does_not_apply_and_one_from_loopback_does() {
    let lab = glass_lab(stacks::password_then_code);
    lab.ctl(&[
        "breakglass",
        "grant",
        &lab.user.name,
        "--minutes",
        "5",
        "--from",
        "192.0.2.0/24",
    ]);
    let out = lab.login(&lab.user.password);
    assert!(!out.succeeded(), "{}", lab.report(&out));
    assert_eq!(lab.events("breakglass_used"), 0, "{}", lab.otpd.log());
    lab.ctl(&[
        "breakglass",
        "grant",
        &lab.user.name,
        "--minutes",
        "5",
        "--from",
        "127.0.0.0/8",
    ]);
    let out = lab.login(&lab.user.password);
    assert!(lab.logged_in(&out), "{}", lab.report(&out));
}

#[test]
fn a_break_glass_grant_survives_an_otpd_restart_and_ends_at_its_expiry_logged_once() {
    let mut lab = glass_lab(stacks::password_then_code);
    lab.ctl(&["breakglass", "grant", &lab.user.name, "--minutes", "1"]);
    lab.otpd.restart();
    let out = lab.login(&lab.user.password);
    assert!(lab.logged_in(&out), "{}", lab.report(&out));
    // Two minutes later (otpd counts from the wall clock it starts on: restart it there).
    fs::write(&lab.offset_file, "+120").unwrap();
    lab.otpd.restart();
    let out = lab.login(&lab.user.password);
    assert!(!out.succeeded(), "expired: {}", lab.report(&out));
    let out = lab.login(&lab.user.password);
    assert!(!out.succeeded(), "expired: {}", lab.report(&out));
    assert_eq!(lab.events("breakglass_expired"), 1, "{}", lab.otpd.log());
}

#[test]
fn an_unprivileged_user_cannot_grant_a_break_glass() {
    let lab = glass_lab(stacks::password_then_code);
    let (status, text) = lab.ctl_as(
        Some((65534, 65534)),
        &["breakglass", "grant", &lab.user.name, "--minutes", "5"],
    );
    assert_ne!(status, 0, "{text}");
    assert!(text.contains("root only"), "{text}");
    let out = lab.login(&lab.user.password);
    assert!(!out.succeeded(), "{}", lab.report(&out));
    assert!(
        lab.otpd.log().contains("event=admin_refused"),
        "{}",
        lab.otpd.log()
    );
    let (_, list) = lab.ctl_as(None, &["breakglass", "list"]);
    assert!(list.contains("No break-glass grant holds."), "{list}");
}

/// Key then code with the code-only stack: the grant's skip is the stack's only answer, and
/// libpam fails a stack in which nothing answered. A break-glass never authenticates anyone by
/// itself; this setup needs another way in while mail is down (a password method, the console).
#[test]
fn a_break_glass_grant_does_not_open_a_stack_in_which_the_code_is_the_only_line() {
    let lab = glass_lab_with(stacks::code_only, sshd::KEY_THEN_CODE);
    lab.user.authorize_key(&lab.client.public_key());
    lab.ctl(&["breakglass", "grant", &lab.user.name, "--minutes", "5"]);
    let out = lab.client.ssh(
        &lab.user.name,
        Method::KeyThenKeyboardInteractive,
        WHOAMI,
        |_| "000000".into(),
    );
    assert!(!out.succeeded(), "{}", lab.report(&out));
    assert_eq!(lab.events("breakglass_used"), 1, "{}", lab.otpd.log());
}

// --- [[exemptions]]: automation bound to a key (issue #16) ---

/// The README's key-then-code setup for exemptions: sshd exposes the key to PAM, and the stack
/// lets a login our module skips stand on the key.
const KEY_THEN_CODE_EXPOSED: Setup<'static> = Setup {
    stack: stacks::code_after_key,
    sshd_config: sshd::KEY_THEN_CODE_EXPOSED,
    ..KEY_THEN_CODE
};

/// Lists `fingerprint` in `[[exemptions]]` for the lab's user, through a reload.
fn exempt(lab: &Lab, fingerprint: &str) {
    let text = format!(
        "{}\n[[exemptions]]\nuser = \"{}\"\nssh_key_fingerprints = [\"{fingerprint}\"]\n",
        lab.otpd.config_text(),
        lab.user.name
    );
    lab.otpd.reload_with(&text);
    assert!(
        !lab.otpd.log().contains("reload refused"),
        "{}",
        lab.otpd.log()
    );
}

#[test]
fn a_key_listed_in_exemptions_logs_in_without_a_code_or_a_mail() {
    let lab = lab(KEY_THEN_CODE_EXPOSED);
    lab.user.authorize_key(&lab.client.public_key());
    let fingerprint = lab.client.key_fingerprint();
    exempt(&lab, &fingerprint);
    let out = lab.ssh(Method::KeyThenKeyboardInteractive, |prompt| {
        panic!("an exempt key is asked nothing: {prompt:?}")
    });
    assert!(lab.logged_in(&out), "{}", lab.report(&out));
    assert!(out.prompts.is_empty(), "{}", lab.report(&out));
    lab.assert_no_code_was_mailed();
    assert!(lab.logged("exempt"), "{}", lab.report(&out));
    assert!(lab.otpd.log().contains(&fingerprint), "{}", lab.otpd.log());
}

#[test]
fn another_key_of_the_same_user_is_asked_for_the_code() {
    let lab = lab(KEY_THEN_CODE_EXPOSED);
    let listed = &lab.client;
    let other = SshClient::new(&lab.sshd);
    lab.user
        .authorize_keys(&[&listed.public_key(), &other.public_key()]);
    exempt(&lab, &listed.key_fingerprint());
    let reader = lab.smtp.reader();
    let out = other.ssh(
        &lab.user.name,
        Method::KeyThenKeyboardInteractive,
        WHOAMI,
        |prompt| {
            assert!(is_code_prompt(prompt), "{prompt:?}");
            mailed_code(&reader, 1)
        },
    );
    assert!(lab.logged_in(&out), "{}", lab.report(&out));
    assert_eq!(code_prompts(&out), 1, "{}", lab.report(&out));
    assert!(!lab.logged("exempt"), "{}", lab.report(&out));
}

#[test]
fn a_password_login_of_a_user_with_an_exempt_key_is_asked_for_the_code() {
    let lab = lab(Setup {
        sshd_config: sshd::PASSWORD_THEN_CODE_EXPOSED,
        ..PASSWORD_THEN_CODE
    });
    lab.user.authorize_key(&lab.client.public_key());
    exempt(&lab, &lab.client.key_fingerprint());
    let out = lab.ssh(
        Method::KeyboardInteractive,
        person(&lab.user.password, lab.smtp.reader(), 1),
    );
    assert!(lab.logged_in(&out), "{}", lab.report(&out));
    assert_eq!(code_prompts(&out), 1, "{}", lab.report(&out));
    assert!(!lab.logged("exempt"), "{}", lab.report(&out));
}

#[test]
fn a_client_setting_ssh_auth_info_with_setenv_changes_nothing() {
    let lab = lab(KEY_THEN_CODE_EXPOSED);
    let listed = &lab.client;
    let other = SshClient::new(&lab.sshd);
    lab.user
        .authorize_keys(&[&listed.public_key(), &other.public_key()]);
    exempt(&lab, &listed.key_fingerprint());
    // The exempt key's line, as sshd would have written it had that key authenticated.
    let listed_line = listed.public_key();
    let listed_key: Vec<&str> = listed_line.split_whitespace().take(2).collect();
    let forged = format!(
        "SetEnv=SSH_AUTH_INFO_0=\"publickey {}\"",
        listed_key.join(" ")
    );
    let reader = lab.smtp.reader();
    let out = other.ssh_with_options(
        &lab.user.name,
        Method::KeyThenKeyboardInteractive,
        &[&forged],
        "echo \"forged=$SSH_AUTH_INFO_0\"",
        |prompt| {
            assert!(is_code_prompt(prompt), "{prompt:?}");
            mailed_code(&reader, 1)
        },
    );
    assert!(out.succeeded(), "{}", lab.report(&out));
    assert!(
        out.stdout
            .contains(&format!("forged=publickey {}", listed_key.join(" "))),
        "sshd accepted the variable into the session: {}",
        lab.report(&out)
    );
    assert_eq!(code_prompts(&out), 1, "{}", lab.report(&out));
    assert!(!lab.logged("exempt"), "{}", lab.report(&out));
}

// --- trusted networks (issue #16), with real source addresses: 127.0.0.2 is loopback too ---

#[test]
fn a_trusted_network_logs_in_with_the_password_alone_and_other_hosts_need_the_code() {
    let lab = lab(Setup {
        defaults: "\n[profiles.mgmt]\nmode = \"off\"\n\n[[policies]]\nmatch_rhost = [\"127.0.0.2/32\"]\nprofile = \"mgmt\"\n",
        ..PASSWORD_THEN_CODE
    });
    let password = lab.user.password.clone();
    let inside = lab.client.ssh_with_options(
        &lab.user.name,
        Method::KeyboardInteractive,
        &["BindAddress=127.0.0.2"],
        WHOAMI,
        move |prompt| {
            assert!(is_password_prompt(prompt), "only the password: {prompt:?}");
            password.clone()
        },
    );
    assert!(lab.logged_in(&inside), "{}", lab.report(&inside));
    assert_eq!(code_prompts(&inside), 0, "{}", lab.report(&inside));
    assert!(
        lab.sshd.log().contains("from 127.0.0.2"),
        "{}",
        lab.report(&inside)
    );
    lab.assert_no_code_was_mailed();

    let outside = lab.ssh(
        Method::KeyboardInteractive,
        person(&lab.user.password, lab.smtp.reader(), 1),
    );
    assert!(lab.logged_in(&outside), "{}", lab.report(&outside));
    assert_eq!(code_prompts(&outside), 1, "{}", lab.report(&outside));
}

#[test]
fn offering_the_exempt_public_key_without_its_private_key_exempts_nothing() {
    let lab = lab(KEY_THEN_CODE_EXPOSED);
    let listed = &lab.client;
    let other = SshClient::new(&lab.sshd);
    lab.user
        .authorize_keys(&[&listed.public_key(), &other.public_key()]);
    exempt(&lab, &listed.key_fingerprint());
    // The listed key is public: anyone may offer it. Offered first, without its private key, it
    // is accepted as a candidate by sshd but never signs; the other key authenticates.
    let dir = tempfile::tempdir().unwrap();
    let public_only = dir.path().join("listed.pub");
    fs::write(&public_only, listed.public_key()).unwrap();
    let identity = format!("IdentityFile={}", public_only.display());
    let reader = lab.smtp.reader();
    let out = other.ssh_with_options(
        &lab.user.name,
        Method::KeyThenKeyboardInteractive,
        &[&identity],
        WHOAMI,
        |prompt| {
            assert!(is_code_prompt(prompt), "{prompt:?}");
            mailed_code(&reader, 1)
        },
    );
    assert!(lab.logged_in(&out), "{}", lab.report(&out));
    assert_eq!(code_prompts(&out), 1, "{}", lab.report(&out));
    assert!(!lab.logged("exempt"), "{}", lab.report(&out));
    let fingerprint = listed.key_fingerprint();
    let log = lab.sshd.log();
    assert!(
        log.contains(&format!("Accepted key ED25519 {fingerprint}")),
        "the listed key was offered: {}",
        lab.report(&out)
    );
    assert!(
        !log.lines()
            .any(|l| l.contains("Partial publickey") && l.contains(&fingerprint)),
        "the listed key never authenticated: {log}"
    );
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
fn the_notice_of_a_recovery_code_used_while_mail_was_down_is_mailed_after_a_restart() {
    let mut lab = lab(PASSWORD_THEN_CODE);
    let codes = recovery_codes(&lab, &lab.user.name);
    let live_config = lab.otpd.config_text();
    kill_the_mail_relay(&lab);
    let out = lab.ssh(
        Method::KeyboardInteractive,
        password_then(&lab.user.password, &codes[0]),
    );
    assert!(lab.logged_in(&out), "{}", lab.report(&out));
    // The first try fails in the background, after the login.
    let failed = format!("cannot mail {} the notice", lab.user.name);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while !lab.otpd.log().contains(&failed) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(lab.otpd.log().contains(&failed), "{}", lab.otpd.log());

    // otpd restarts with the relay back: the queued notice is mailed, once.
    lab.base.otpd.stop();
    lab.base.otpd.write_config(&live_config);
    lab.base.otpd.restart();
    let mails = lab.smtp.wait_for(1, e2e_tests::smtp::MAIL_WAIT);
    assert_eq!(mails.len(), 1, "{}", lab.otpd.log());
    assert_eq!(mails[0].rcpt_tos, vec![lab.user.email()]);
    assert!(
        mails[0].text.contains("9 recovery codes are left"),
        "{}",
        mails[0].text
    );
    assert!(
        !mails[0].text.contains(&codes[0]),
        "the notice holds no code"
    );
    assert_eq!(lab.settled_mail_count(), 1);
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

/// Root logging in with a key under Debian's `PermitRootLogin prohibit-password`, and
/// `match_block` (the shipped drop-in's, or none) at the end of sshd_config. Root's keys are read
/// from the returned directory, never from root's home.
fn root_lab(match_block: &str) -> (Lab, tempfile::TempDir) {
    root_lab_with(match_block, stacks::code_only, "")
}

/// [`root_lab`] with another PAM stack and lines added to otpd's config.
fn root_lab_with(
    match_block: &str,
    stack: fn(&str) -> String,
    otpd_lines: &str,
) -> (Lab, tempfile::TempDir) {
    let base = LabBase::start(otpd_lines);
    let keys = tempfile::tempdir().unwrap();
    let config = format!(
        "{}{}{}{match_block}",
        sshd::KEY_THEN_CODE,
        sshd::DEBIAN_ROOT_DEFAULT,
        sshd::authorized_keys_in(keys.path())
    );
    let stack = stack(&stacks::otp(&base.otpd.socket, ""));
    let sshd = Sshd::start("sshd", &stack, &config);
    let client = SshClient::new(&sshd);
    fs::write(
        keys.path().join("authorized_keys_root"),
        client.public_key(),
    )
    .unwrap();
    (Lab { client, sshd, base }, keys)
}

#[test]
fn root_logs_in_with_its_key_and_the_mailed_code_through_the_shipped_match_block() {
    let (lab, _keys) = root_lab(sshd::ROOT_KEY_AND_CODE);
    let reader = lab.smtp.reader();
    let out = lab.client.ssh(
        "root",
        Method::KeyThenKeyboardInteractive,
        WHOAMI,
        |prompt| {
            assert!(is_code_prompt(prompt), "only the code is asked: {prompt:?}");
            mailed_code(&reader, 1)
        },
    );
    assert!(
        out.succeeded() && out.stdout.trim() == "logged-in-as-root",
        "{}",
        lab.report(&out)
    );
    assert_eq!(code_prompts(&out), 1, "{}", lab.report(&out));
    assert_eq!(lab.smtp.last().rcpt_tos, vec!["root@example.test"]);
    let log = lab.sshd.log();
    assert!(log.contains("Partial publickey for root"), "{log}");
    assert!(
        log.contains("Accepted keyboard-interactive/pam for root"),
        "{log}"
    );
}

#[test]
fn without_the_match_block_prohibit_password_refuses_roots_right_code() {
    // Issue 17: the drop-in without its Match block, under Debian's default for root. sshd
    // refuses keyboard-interactive to root: it hands PAM a bogus answer in place of each one
    // root types, so the right code counts as a wrong one.
    let (lab, _keys) = root_lab("");
    let reader = lab.smtp.reader();
    let out = lab
        .client
        .ssh("root", Method::KeyThenKeyboardInteractive, WHOAMI, |_| {
            mailed_code(&reader, 1)
        });
    assert!(!out.succeeded(), "{}", lab.report(&out));
    assert!(out.stdout.is_empty(), "{}", lab.report(&out));
    let otpd = lab.otpd.log();
    assert!(
        otpd.contains("event=wrong_code user=root") && !otpd.contains("event=verified"),
        "{}",
        lab.report(&out)
    );
    assert!(
        lab.sshd
            .log()
            .contains("Failed keyboard-interactive/pam for root"),
        "{}",
        lab.report(&out)
    );
}

#[test]
fn without_the_match_block_root_needing_no_code_ends_in_sshds_internal_error() {
    // Issue 17 as reported: PAM says yes for root without a prompt (ssh needs no code here, and
    // pam_permit lets the key stand), and sshd, which refuses keyboard-interactive to root under
    // prohibit-password, ends the connection.
    let (lab, _keys) = root_lab_with(
        "",
        stacks::code_after_key,
        "\n[protocols]\nenabled = [\"ftp\"]\n",
    );
    let out = lab
        .client
        .ssh("root", Method::KeyThenKeyboardInteractive, WHOAMI, |p| {
            panic!("no prompt expected: {p:?}")
        });
    assert!(!out.succeeded(), "{}", lab.report(&out));
    assert!(
        lab.sshd
            .log()
            .contains("Internal error: PAM auth succeeded when it should have failed"),
        "{}",
        lab.report(&out)
    );
    assert!(
        lab.otpd.log().contains("event=skipped user=root"),
        "{}",
        lab.report(&out)
    );

    // The same with the shipped Match block: root's key is enough when no code is needed.
    drop(lab);
    let (lab, _keys) = root_lab_with(
        sshd::ROOT_KEY_AND_CODE,
        stacks::code_after_key,
        "\n[protocols]\nenabled = [\"ftp\"]\n",
    );
    let out = lab
        .client
        .ssh("root", Method::KeyThenKeyboardInteractive, WHOAMI, |p| {
            panic!("no prompt expected: {p:?}")
        });
    assert!(
        out.succeeded() && out.stdout.trim() == "logged-in-as-root",
        "{}",
        lab.report(&out)
    );
}

/// Issue #16's first promise: with every mail server dead, root still gets in, with its key and
/// a recovery code, through real sshd and the shipped Match block; the same code never again.
#[test]
fn with_every_mail_server_dead_root_logs_in_with_its_key_and_a_recovery_code_once() {
    let (lab, _keys) = root_lab(sshd::ROOT_KEY_AND_CODE);
    let codes = recovery_codes(&lab, "root");
    kill_the_mail_relay(&lab);

    let out = lab
        .client
        .ssh("root", Method::KeyThenKeyboardInteractive, WHOAMI, |_| {
            codes[0].clone()
        });
    assert!(
        out.succeeded() && out.stdout.trim() == "logged-in-as-root",
        "{}",
        lab.report(&out)
    );
    assert_eq!(out.prompts.len(), 1, "{}", lab.report(&out));
    assert!(
        out.prompts[0].ends_with(
            "The login code could not be mailed. Enter a recovery code instead (10 left): "
        ),
        "{}",
        lab.report(&out)
    );
    assert!(
        lab.otpd.log().contains("event=recovery_used user=root"),
        "{}",
        lab.report(&out)
    );

    let again = lab
        .client
        .ssh("root", Method::KeyThenKeyboardInteractive, WHOAMI, |_| {
            codes[0].clone()
        });
    assert!(!again.succeeded(), "{}", lab.report(&again));
    assert!(
        again.prompts[0].contains("could not be mailed") && again.prompts[0].contains("(9 left)"),
        "{}",
        lab.report(&again)
    );
    assert!(
        lab.otpd.log().contains("event=wrong_code user=root"),
        "{}",
        lab.report(&again)
    );
    assert_eq!(lab.smtp.messages().len(), 0);
}
