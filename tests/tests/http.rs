//! End-to-end over HTTP Basic and WebDAV: Debian's nginx with the auth-pam module on loopback,
//! the single-secret stack for both locations, and curl as the client. The first request with
//! the right password mails a code and gets 401; password followed by the code gets in, and
//! keeps working for the same user, service and remote host within `reuse_window_seconds`,
//! because HTTP clients (WebDAV mounts above all) send the credentials with every request.

// Test code: a failed unwrap is how a test reports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::ops::Deref;
use std::time::Duration;

use e2e_tests::programs::lab::LabBase;
use e2e_tests::programs::nginx::{DAV, FILES, HttpReply, HttpRequest, Nginx};
use e2e_tests::programs::stacks;

/// nginx with its otpd, mail capture and user; the server stops before the user is deleted.
struct Lab {
    nginx: Nginx,
    base: LabBase,
}

impl Deref for Lab {
    type Target = LabBase;

    fn deref(&self) -> &LabBase {
        &self.base
    }
}

fn lab_with(defaults: &str) -> Lab {
    let base = LabBase::start(defaults);
    let stack = stacks::single_secret(&stacks::otp(&base.otpd.socket, ""));
    let nginx = Nginx::start(&stack, &stack);
    fs::write(nginx.files_dir().join("page.txt"), "a protected page\n").unwrap();
    fs::write(nginx.dav_dir().join("shared.txt"), "a shared file\n").unwrap();
    Lab { nginx, base }
}

fn lab() -> Lab {
    lab_with("")
}

impl Lab {
    fn get(&self, path: &str, secret: &str) -> HttpReply {
        HttpRequest::new("GET", &self.nginx.url(path))
            .basic(&self.user.name, secret)
            .send()
    }

    fn with_code(&self, code: &str) -> String {
        format!("{}{code}", self.user.password)
    }

    /// The first request with the right password: 401, and the code is mailed.
    fn first_request_mails_a_code(&self, path: &str) -> String {
        let first = self.get(path, &self.user.password);
        assert_eq!(first.status, 401, "{}", self.report(&first));
        self.only_mailed_code(&self.report(&first))
    }

    fn report(&self, reply: &HttpReply) -> String {
        self.base.report(reply, "nginx", &self.nginx.log())
    }
}

#[test]
fn the_first_request_mails_a_code_and_gets_401_then_password_and_code_get_200() {
    let lab = lab();
    let code = lab.first_request_mails_a_code("/files/page.txt");
    let mail = lab.smtp.last();
    assert_eq!(mail.rcpt_tos, vec![lab.user.email()]);
    assert!(
        mail.text.contains("nginx, http from 127.0.0.1"),
        "{}",
        mail.text
    );
    let reply = lab.get("/files/page.txt", &lab.with_code(&code));
    assert_eq!(reply.status, 200, "{}", lab.report(&reply));
    assert_eq!(reply.body, "a protected page\n");
}

#[test]
fn within_the_reuse_window_the_same_password_and_code_keep_working() {
    let lab = lab();
    let code = lab.first_request_mails_a_code("/files/page.txt");
    for n in 1..=3 {
        let reply = lab.get("/files/page.txt", &lab.with_code(&code));
        assert_eq!(reply.status, 200, "request {n}: {}", lab.report(&reply));
    }
    assert_eq!(lab.settled_mail_count(), 1, "reuse mails nothing");
}

#[test]
fn without_the_code_every_request_gets_401_and_only_one_mail_is_sent() {
    let lab = lab();
    for n in 1..=3 {
        let reply = lab.get("/files/page.txt", &lab.user.password);
        assert_eq!(reply.status, 401, "request {n}: {}", lab.report(&reply));
    }
    assert_eq!(lab.settled_mail_count(), 1, "{}", lab.otpd.log());
}

#[test]
fn a_wrong_password_gets_401_and_mails_nothing() {
    let lab = lab();
    for secret in ["not-the-password", "not-the-password123456"] {
        let reply = lab.get("/files/page.txt", secret);
        assert_eq!(reply.status, 401, "{}", lab.report(&reply));
    }
    lab.assert_no_code_was_mailed();
}

#[test]
fn webdav_propfind_put_and_get_work_with_the_password_and_the_code() {
    let lab = lab();
    let code = lab.first_request_mails_a_code(DAV);
    let mail = lab.smtp.last();
    assert!(
        mail.text.contains("webdav, webdav from 127.0.0.1"),
        "{}",
        mail.text
    );
    let secret = lab.with_code(&code);
    let url = |path: &str| lab.nginx.url(&format!("{DAV}{path}"));
    // A WebDAV client mounting the share: every request carries the same credentials.
    let listing = HttpRequest::new("PROPFIND", &url(""))
        .basic(&lab.user.name, &secret)
        .header("Depth: 1")
        .send();
    assert_eq!(listing.status, 207, "{}", lab.report(&listing));
    assert!(listing.body.contains("shared.txt"), "{}", listing.body);
    let upload = HttpRequest::new("PUT", &url("uploaded.txt"))
        .basic(&lab.user.name, &secret)
        .body(b"written over webdav\n")
        .send();
    assert_eq!(upload.status, 201, "{}", lab.report(&upload));
    assert_eq!(
        fs::read_to_string(lab.nginx.dav_dir().join("uploaded.txt")).unwrap(),
        "written over webdav\n"
    );
    let download = HttpRequest::new("GET", &url("shared.txt"))
        .basic(&lab.user.name, &secret)
        .send();
    assert_eq!(download.status, 200, "{}", lab.report(&download));
    assert_eq!(download.body, "a shared file\n");
    assert_eq!(lab.settled_mail_count(), 1, "the mount needed one code");
}

#[test]
fn the_reuse_window_is_bound_to_the_remote_host() {
    let lab = lab();
    let code = lab.first_request_mails_a_code("/files/page.txt");
    let here = lab.get("/files/page.txt", &lab.with_code(&code));
    assert_eq!(here.status, 200, "{}", lab.report(&here));
    let elsewhere = HttpRequest::new("GET", &lab.nginx.url("/files/page.txt"))
        .basic(&lab.user.name, &lab.with_code(&code))
        .from_address("127.0.0.2")
        .send();
    assert_eq!(elsewhere.status, 401, "{}", lab.report(&elsewhere));
}

#[test]
fn the_reuse_window_is_bound_to_the_service() {
    let lab = lab();
    let code = lab.first_request_mails_a_code(FILES);
    let files = lab.get("/files/page.txt", &lab.with_code(&code));
    assert_eq!(files.status, 200, "{}", lab.report(&files));
    let dav = lab.get("/dav/shared.txt", &lab.with_code(&code));
    assert_eq!(dav.status, 401, "{}", lab.report(&dav));
}

#[test]
fn after_the_reuse_window_the_used_code_no_longer_works() {
    let lab = lab_with("reuse_window_seconds = 1\n");
    let code = lab.first_request_mails_a_code("/files/page.txt");
    let reply = lab.get("/files/page.txt", &lab.with_code(&code));
    assert_eq!(reply.status, 200, "{}", lab.report(&reply));
    std::thread::sleep(Duration::from_millis(2100));
    let late = lab.get("/files/page.txt", &lab.with_code(&code));
    assert_eq!(late.status, 401, "{}", lab.report(&late));
}
