//! End-to-end: otpd with `[store] backend = "postgresql"` against a real PostgreSQL 15 of the
//! test's own, over TLS verified against the test CA (issue #20): a real PAM login stores its
//! code in PostgreSQL; an untrusted server certificate is refused; an outage makes logins
//! unavailable within the module's deadline and otpd recovers by itself; two otpd hosts on one
//! database share a send cap, and a code mailed by one verifies on the other.

// Test code: a failed unwrap is how a test reports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use common::secret::SecretString;
use common::wire::{DenyReason, LoginContext, Request, Response};
use e2e_tests::libpam;
use e2e_tests::login::{login_with, mailed_code};
use e2e_tests::otpd::Otpd;
use e2e_tests::paths;
use e2e_tests::pg_hosts::{DB, HostConfig, create_otp_database, with_key};
use e2e_tests::postgres::Postgres;
use e2e_tests::smtp::{MAIL_WAIT, SmtpCapture};
use e2e_tests::stack::PamConfDir;
use e2e_tests::tls::TestCa;

/// A PostgreSQL with TLS from `ca`, a role and database for otpd.
fn database(ca: &TestCa) -> Postgres {
    let pg = Postgres::start_with_tls(ca);
    create_otp_database(&pg);
    pg
}

fn ssh(user: &str) -> LoginContext {
    LoginContext {
        user: user.into(),
        service: "sshd".into(),
        rhost: Some("192.0.2.80".into()),
        tty: None,
        protocol: None,
    }
}

fn ftp(user: &str) -> LoginContext {
    LoginContext {
        user: user.into(),
        service: "vsftpd".into(),
        rhost: Some("192.0.2.81".into()),
        tty: None,
        protocol: None,
    }
}

fn begin(otpd: &Otpd, login: &LoginContext) -> Response {
    otpd.call(&Request::Begin {
        login: login.clone(),
        ssh_keys: Vec::new(),
    })
    .unwrap()
}

#[test]
fn a_pam_login_over_verified_tls_succeeds_and_its_code_row_is_in_postgresql() {
    let ca = TestCa::new("pg-ca");
    let pg = database(&ca);
    let smtp = SmtpCapture::start();
    let otpd = Otpd::start_with_text(|socket, state| {
        HostConfig::loopback(&pg, &ca.ca_cert(), smtp.port, "").render(socket, state)
    });
    let pam = PamConfDir::new();
    pam.otp_then_permit("sshd", &otpd.socket, "");

    let result = login_with(
        &pam,
        "sshd",
        "alice",
        Some("192.0.2.10"),
        mailed_code(smtp.reader(), 1),
    );
    assert_eq!(libpam::code_name(result.code), "PAM_SUCCESS", "{result:?}");
    assert_eq!(
        pg.psql(DB, "SELECT count(*) FROM codes WHERE username = 'alice'")
            .trim(),
        "1"
    );
    // Over TLS: the server's view of otpd's sessions.
    let ssl = pg.psql(
        "postgres",
        "SELECT bool_and(s.ssl) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
         WHERE a.usename = 'otpd'",
    );
    assert_eq!(ssl.trim(), "t", "otpd's sessions are not all TLS");
    assert!(otpd.log().contains("event=verified user=alice"));
    // otpctl status names the store in use.
    let (rc, out, err) = otpd.otpctl(None, &["status"]);
    assert_eq!(rc, 0, "{err}");
    let line = format!("postgresql: otp on 127.0.0.1:{} (TLS verify-full)", pg.port);
    assert!(out.contains(&line), "{out}");
}

#[test]
fn a_server_certificate_from_another_ca_is_refused_and_the_log_says_why() {
    let ca = TestCa::new("pg-ca");
    let other = TestCa::new("not-the-pg-ca");
    let pg = database(&ca);
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("otpd.sock");
    let state = dir.path().join("state");
    let config_path = dir.path().join("otpd.toml");
    std::fs::write(
        &config_path,
        HostConfig::loopback(&pg, &other.ca_cert(), 9, "").render(&socket, &state),
    )
    .unwrap();
    let out = std::process::Command::new(paths::binary("otpd"))
        .arg("--config")
        .arg(&config_path)
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "otpd started: {log}");
    eprintln!("otpd said: {log}");
    assert!(
        log.contains("PostgreSQL database otp on 127.0.0.1:"),
        "{log}"
    );
    assert!(log.to_lowercase().contains("certificate"), "{log}");
    // Nothing serves logins, so the module finds no otpd: unavailable.
    let pam = PamConfDir::new();
    pam.otp_then_permit("sshd", &socket, "");
    let result = login_with(&pam, "sshd", "carol", None, |_| "000000".into());
    assert_eq!(
        libpam::code_name(result.code),
        "PAM_AUTHINFO_UNAVAIL",
        "{result:?}"
    );
}

#[test]
fn postgresql_stopped_mid_run_makes_logins_unavailable_in_time_and_otpd_recovers_by_itself() {
    let ca = TestCa::new("pg-ca");
    let pg = database(&ca);
    let smtp = SmtpCapture::start();
    let otpd = Otpd::start_with_text(|socket, state| {
        HostConfig::loopback(&pg, &ca.ca_cert(), smtp.port, "").render(socket, state)
    });
    let pam = PamConfDir::new();
    pam.otp_then_permit("sshd", &otpd.socket, "");
    let first = login_with(&pam, "sshd", "dave", None, mailed_code(smtp.reader(), 1));
    assert_eq!(libpam::code_name(first.code), "PAM_SUCCESS", "{first:?}");

    pg.stop();
    let started = Instant::now();
    let down = login_with(&pam, "sshd", "dave", None, |_| "000000".into());
    let took = started.elapsed();
    assert_eq!(
        libpam::code_name(down.code),
        "PAM_AUTHINFO_UNAVAIL",
        "{down:?}"
    );
    eprintln!("a login with PostgreSQL down was unavailable after {took:?}");
    // The module's deadline is 5 s.
    assert!(took < Duration::from_secs(5), "took {took:?}");
    // A code answered while the database is down never passes either.
    let direct = otpd
        .call(&Request::Verify {
            login: ssh("dave"),
            code: SecretString::new("123456".into()),
        })
        .unwrap();
    assert!(matches!(direct, Response::Unavailable { .. }), "{direct:?}");
    assert!(
        otpd.log().contains("PostgreSQL") || otpd.log().contains("database"),
        "{}",
        otpd.log()
    );

    pg.start();
    let again = login_with(&pam, "sshd", "dave", None, mailed_code(smtp.reader(), 2));
    assert_eq!(libpam::code_name(again.code), "PAM_SUCCESS", "{again:?}");
}

#[test]
fn a_hung_postgresql_makes_logins_unavailable_within_the_deadline_and_otpd_recovers() {
    let ca = TestCa::new("pg-ca");
    let pg = database(&ca);
    let smtp = SmtpCapture::start();
    let otpd = Otpd::start_with_text(|socket, state| {
        HostConfig::loopback(&pg, &ca.ca_cert(), smtp.port, "").render(socket, state)
    });
    let pam = PamConfDir::new();
    pam.otp_then_permit("sshd", &otpd.socket, "");
    let first = login_with(&pam, "sshd", "gina", None, mailed_code(smtp.reader(), 1));
    assert_eq!(libpam::code_name(first.code), "PAM_SUCCESS", "{first:?}");

    pg.freeze();
    let started = Instant::now();
    let hung = login_with(&pam, "sshd", "gina", None, |_| "000000".into());
    let took = started.elapsed();
    pg.thaw();
    eprintln!("a login with PostgreSQL hung was unavailable after {took:?}");
    assert_eq!(
        libpam::code_name(hung.code),
        "PAM_AUTHINFO_UNAVAIL",
        "{hung:?}"
    );
    // statement_timeout_seconds = 2, within the module's 5 s.
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert_eq!(
        smtp.messages().len(),
        1,
        "a code was mailed while the store hung"
    );

    let again = login_with(&pam, "sshd", "gina", None, mailed_code(smtp.reader(), 2));
    assert_eq!(libpam::code_name(again.code), "PAM_SUCCESS", "{again:?}");
}

#[test]
fn two_hosts_on_one_database_share_the_send_cap_and_each_others_codes() {
    let ca = TestCa::new("pg-ca");
    let pg = database(&ca);
    let smtp = SmtpCapture::start();
    let extra = "max_sends_per_hour = 2\nresend_cooldown_seconds = 0";
    let a = Otpd::start_with_text(|socket, state| {
        HostConfig::loopback(&pg, &ca.ca_cert(), smtp.port, extra).render(socket, state)
    });
    let key = std::fs::read(a.state_dir().join("secret.key")).unwrap();
    let b = Otpd::start_with_text(|socket, state| {
        with_key(state, &key);
        HostConfig::loopback(&pg, &ca.ca_cert(), smtp.port, extra).render(socket, state)
    });

    // The cap: one mail from each host, then the third begin is refused on either.
    assert!(matches!(begin(&a, &ssh("erin")), Response::Prompt { .. }));
    assert!(matches!(begin(&b, &ssh("erin")), Response::Prompt { .. }));
    assert_eq!(smtp.wait_for(2, MAIL_WAIT).len(), 2);
    for host in [&a, &b] {
        let third = begin(host, &ssh("erin"));
        assert!(
            matches!(
                third,
                Response::Denied {
                    reason: DenyReason::RateLimited,
                    ..
                }
            ),
            "{third:?}"
        );
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(smtp.messages().len(), 2, "a third mail was sent");

    // Single-secret (HTTP behind a load balancer): host A mails, host B verifies.
    let login = ftp("frank");
    assert!(matches!(begin(&a, &login), Response::Prompt { .. }));
    let code = smtp.wait_for(3, MAIL_WAIT).last().unwrap().code();
    let verified = b
        .call(&Request::Verify {
            login: login.clone(),
            code: SecretString::new(code),
        })
        .unwrap();
    assert_eq!(verified, Response::Success);
    assert!(b.log().contains("event=verified user=frank"), "{}", b.log());
}
