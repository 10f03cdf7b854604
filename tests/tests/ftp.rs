//! End-to-end over FTP: Debian's vsftpd on loopback with the single-secret stack, and curl as
//! the client. FTP clients send one password and cannot answer a second prompt, so the first
//! login with the right password mails a code and fails; the next one with the password
//! followed by the code's digits gets in.

// Test code: a failed unwrap is how a test reports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::ops::Deref;

use e2e_tests::programs::answers::wrong;
use e2e_tests::programs::lab::LabBase;
use e2e_tests::programs::stacks;
use e2e_tests::programs::vsftpd::{FtpOutcome, Vsftpd};

/// vsftpd with its otpd, mail capture and user; the server stops before the user is deleted.
struct Lab {
    vsftpd: Vsftpd,
    base: LabBase,
}

impl Deref for Lab {
    type Target = LabBase;

    fn deref(&self) -> &LabBase {
        &self.base
    }
}

fn lab() -> Lab {
    let base = LabBase::start("");
    base.user.write_file("notes.txt", b"ftp file\n");
    let vsftpd = Vsftpd::start(&stacks::single_secret(&stacks::otp(&base.otpd.socket, "")));
    Lab { vsftpd, base }
}

impl Lab {
    fn list(&self, secret: &str) -> FtpOutcome {
        self.vsftpd.list(&self.user.name, secret)
    }

    /// The first login: the right password alone, which mails a code and is refused.
    fn first_login_mails_a_code(&self) -> String {
        let first = self.list(&self.user.password);
        assert!(first.refused(), "{}", self.report(&first));
        self.only_mailed_code(&self.report(&first))
    }

    fn report(&self, out: &FtpOutcome) -> String {
        self.base.report(out, "vsftpd", &self.vsftpd.log())
    }
}

#[test]
fn the_first_login_mails_a_code_and_fails_then_password_and_code_list_the_directory() {
    let lab = lab();
    let code = lab.first_login_mails_a_code();
    let mail = lab.smtp.last();
    assert_eq!(mail.rcpt_tos, vec![lab.user.email()]);
    assert!(
        mail.text.contains("vsftpd, ftp from 127.0.0.1"),
        "{}",
        mail.text
    );
    let second = lab.list(&format!("{}{code}", lab.user.password));
    assert!(second.listed(), "{}", lab.report(&second));
    assert!(second.listing.contains("notes.txt"), "{}", second.listing);
    assert_eq!(
        lab.settled_mail_count(),
        1,
        "the second login mails nothing"
    );
}

#[test]
fn a_wrong_password_is_refused_and_mails_nothing() {
    let lab = lab();
    let out = lab.list("not-the-password");
    assert!(out.refused(), "{}", lab.report(&out));
    let with_digits = lab.list("not-the-password123456");
    assert!(with_digits.refused(), "{}", lab.report(&with_digits));
    lab.assert_no_code_was_mailed();
}

#[test]
fn the_password_with_a_wrong_code_is_refused() {
    let lab = lab();
    let code = lab.first_login_mails_a_code();
    let out = lab.list(&format!("{}{}", lab.user.password, wrong(&code)));
    assert!(out.refused(), "{}", lab.report(&out));
    assert!(lab.logged("wrong_code"), "{}", lab.report(&out));
}

#[test]
fn the_right_code_behind_a_wrong_password_is_refused() {
    let lab = lab();
    let code = lab.first_login_mails_a_code();
    let out = lab.list(&format!("not-the-password{code}"));
    assert!(out.refused(), "{}", lab.report(&out));
    // The code was not spent on the failed login: the real owner still gets in with it.
    let owner = lab.list(&format!("{}{code}", lab.user.password));
    assert!(owner.listed(), "{}", lab.report(&owner));
}
