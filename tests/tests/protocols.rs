//! End-to-end across programs: the per-protocol switch (`[protocols] enabled`) holds in the real
//! servers, and a panic inside the module never takes the server hosting it down.

// Test code: a failed unwrap is how a test reports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use e2e_tests::otpd::{Otpd, TestConfig};
use e2e_tests::programs::answers::{is_code_prompt, person};
use e2e_tests::programs::nginx::{HttpRequest, Nginx};
use e2e_tests::programs::ssh_client::{Method, SshClient};
use e2e_tests::programs::sshd::{self, Sshd};
use e2e_tests::programs::users::TestUser;
use e2e_tests::programs::vsftpd::Vsftpd;
use e2e_tests::programs::{self, panic_module, stacks};
use e2e_tests::smtp::{MAIL_WAIT, SmtpCapture};

fn mail_count_after_a_moment(smtp: &SmtpCapture) -> usize {
    std::thread::sleep(Duration::from_millis(500));
    smtp.messages().len()
}

#[test]
fn without_ftp_in_the_enabled_list_ftp_needs_only_the_password_while_ssh_still_needs_the_code() {
    let _serial = programs::serial();
    let smtp = SmtpCapture::start();
    let mut config = TestConfig::required(smtp.port);
    config.body.push_str("\n[protocols]\nenabled = [\"ssh\"]\n");
    let otpd = Otpd::start(&config);
    let user = TestUser::create();
    user.write_file("notes.txt", b"ftp file\n");
    let otp = stacks::otp(&otpd.socket, "");

    let vsftpd = Vsftpd::start(&stacks::single_secret(&otp));
    let ftp = vsftpd.list(&user.name, &user.password);
    assert!(ftp.listed(), "{ftp:#?}\n{}\n{}", vsftpd.log(), otpd.log());
    assert!(ftp.listing.contains("notes.txt"), "{}", ftp.listing);
    assert_eq!(mail_count_after_a_moment(&smtp), 0, "ftp mailed a code");
    assert!(
        otpd.log().contains(&format!(
            "event=skipped user={} service=vsftpd protocol=ftp",
            user.name
        )),
        "{}",
        otpd.log()
    );

    let sshd = Sshd::start(
        "sshd",
        &stacks::password_then_code(&otp),
        sshd::PASSWORD_THEN_CODE,
    );
    let client = SshClient::new(&sshd);
    let ssh = client.ssh(
        &user.name,
        Method::KeyboardInteractive,
        "true",
        person(&user.password, smtp.reader(), 1),
    );
    assert!(ssh.succeeded(), "{ssh:#?}\n{}\n{}", sshd.log(), otpd.log());
    assert_eq!(
        ssh.prompts.iter().filter(|p| is_code_prompt(p)).count(),
        1,
        "{ssh:#?}"
    );
    assert_eq!(smtp.wait_for(1, MAIL_WAIT).len(), 1);
}

/// The stack of a server where only `victim` goes through the panicking module, and everyone
/// else through the password alone: the same server process must refuse the one and then serve
/// the other.
fn panic_stack(victim: &str, socket: &std::path::Path) -> String {
    let faulty = stacks::otp_from(&panic_module::path(), socket, "test_panic");
    stacks::only_for_user(
        victim,
        &format!("auth required {faulty}"),
        &stacks::password_only(),
    )
}

/// Whether the server's log shows the module panicked (Rust's panic message on the server's
/// stderr), so a refusal for another reason (say, a build without the fault, which refuses the
/// unknown `test_panic` argument) cannot pass for a survived panic. vsftpd does not keep its
/// session processes' stderr, so its test relies on the other two for this.
fn fault_fired(log: &str) -> bool {
    log.contains("panicked at")
}

#[test]
fn a_panic_in_the_module_refuses_the_ssh_login_and_sshd_keeps_serving() {
    let _serial = programs::serial();
    let smtp = SmtpCapture::start();
    let otpd = Otpd::start(&TestConfig::required(smtp.port));
    let victim = TestUser::create();
    let other = TestUser::create();
    let mut sshd = Sshd::start(
        "sshd",
        &panic_stack(&victim.name, &otpd.socket),
        sshd::PASSWORD_THEN_CODE,
    );
    let client = SshClient::new(&sshd);
    let password = victim.password.clone();
    let refused = client.ssh(
        &victim.name,
        Method::KeyboardInteractive,
        "true",
        move |_| password.clone(),
    );
    assert!(!refused.succeeded(), "{refused:#?}\n{}", sshd.log());
    assert!(
        refused.stderr.contains("Permission denied"),
        "a clean refusal, not a dropped connection: {refused:#?}\n{}",
        sshd.log()
    );
    assert!(sshd.is_running(), "{}", sshd.log());
    assert!(fault_fired(&sshd.log()), "{}", sshd.log());
    let password = other.password.clone();
    let served = client.ssh(
        &other.name,
        Method::KeyboardInteractive,
        "true",
        move |_| password.clone(),
    );
    assert!(served.succeeded(), "{served:#?}\n{}", sshd.log());
}

#[test]
fn a_panic_in_the_module_refuses_the_ftp_login_and_vsftpd_keeps_serving() {
    let _serial = programs::serial();
    let smtp = SmtpCapture::start();
    let otpd = Otpd::start(&TestConfig::required(smtp.port));
    let victim = TestUser::create();
    let other = TestUser::create();
    let mut vsftpd = Vsftpd::start(&panic_stack(&victim.name, &otpd.socket));
    let refused = vsftpd.list(&victim.name, &victim.password);
    assert!(
        refused.refused(),
        "a 530, not a dropped connection: {refused:#?}\n{}",
        vsftpd.log()
    );
    assert!(vsftpd.is_running(), "{}", vsftpd.log());
    let served = vsftpd.list(&other.name, &other.password);
    assert!(served.listed(), "{served:#?}\n{}", vsftpd.log());
}

#[test]
fn a_panic_in_the_module_answers_401_and_the_nginx_worker_keeps_serving() {
    let _serial = programs::serial();
    let smtp = SmtpCapture::start();
    let otpd = Otpd::start(&TestConfig::required(smtp.port));
    let victim = TestUser::create();
    let other = TestUser::create();
    let stack = panic_stack(&victim.name, &otpd.socket);
    let mut nginx = Nginx::start(&stack, &stack);
    std::fs::write(nginx.files_dir().join("page.txt"), "a page\n").unwrap();
    let url = nginx.url("/files/page.txt");
    let refused = HttpRequest::new("GET", &url)
        .basic(&victim.name, &victim.password)
        .send();
    assert_eq!(refused.status, 401, "{refused:#?}\n{}", nginx.log());
    assert!(fault_fired(&nginx.log()), "{}", nginx.log());
    let served = HttpRequest::new("GET", &url)
        .basic(&other.name, &other.password)
        .send();
    assert_eq!(served.status, 200, "{served:#?}\n{}", nginx.log());
    assert!(nginx.is_running(), "{}", nginx.log());
    // A panic that escaped into nginx would have killed the worker; the master logs that.
    assert!(!nginx.log().contains("exited on signal"), "{}", nginx.log());
}
