//! End-to-end: otpd with `[store] backend = "postgresql"` against a real PostgreSQL 15 of the
//! test's own, over TLS verified against the test CA (issue #20): a real PAM login stores its
//! code in PostgreSQL; an untrusted server certificate is refused; an outage makes logins
//! unavailable within the module's deadline and otpd recovers by itself; two otpd hosts on one
//! database share a send cap, and a code mailed by one verifies on the other; a promoted
//! standby takes over from a stopped primary without otpd restarting.

// Test code: a failed unwrap is how a test reports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use common::secret::SecretString;
use common::wire::{DenyReason, LoginContext, Request, Response};
use common::wire_admin::{AdminRequest, AdminResponse, RefuseReason};
use e2e_tests::libpam;
use e2e_tests::login::{login_with, mailed_code, never_prompted};
use e2e_tests::otpd::Otpd;
use e2e_tests::pg_hosts::{DB, HostConfig, ROLE, create_otp_database, with_key};
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

/// One otpd on its own PostgreSQL, mailing to a capture, with `sshd` asking it for the code.
/// Fields drop in order: the PAM directory and otpd before the servers they use.
struct OneHost {
    pam: PamConfDir,
    otpd: Otpd,
    smtp: SmtpCapture,
    pg: Postgres,
    _ca: TestCa,
}

fn one_host() -> OneHost {
    let ca = TestCa::new("pg-ca");
    let pg = database(&ca);
    let smtp = SmtpCapture::start();
    let otpd = Otpd::start_with_text(|socket, state| {
        HostConfig::loopback(&pg, &ca.ca_cert(), smtp.port, "").render(socket, state)
    });
    let pam = PamConfDir::new();
    pam.otp_then_permit("sshd", &otpd.socket, "");
    OneHost {
        pam,
        otpd,
        smtp,
        pg,
        _ca: ca,
    }
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
    let OneHost {
        pam,
        otpd,
        smtp,
        pg,
        ..
    } = &one_host();

    let result = login_with(
        pam,
        "sshd",
        "alice",
        Some("192.0.2.10"),
        mailed_code(smtp.reader(), 1),
    );
    assert_eq!(libpam::code_name(result.code), "PAM_SUCCESS", "{result:?}");
    assert_eq!(code_rows(pg, "alice"), "1");
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
    let config = HostConfig::loopback(&pg, &other.ca_cert(), 9, "");
    let refused = Otpd::refused_at_start(|socket, state| config.render(socket, state));
    let log = &refused.log;
    eprintln!("otpd said: {log}");
    assert!(
        log.contains("PostgreSQL database otp on 127.0.0.1:"),
        "{log}"
    );
    assert!(log.to_lowercase().contains("certificate"), "{log}");
    // Nothing serves logins, so the module finds no otpd: unavailable.
    let pam = PamConfDir::new();
    pam.otp_then_permit("sshd", &refused.socket, "");
    let result = login_with(&pam, "sshd", "carol", None, |_| "000000".into());
    assert_eq!(
        libpam::code_name(result.code),
        "PAM_AUTHINFO_UNAVAIL",
        "{result:?}"
    );
}

#[test]
fn postgresql_stopped_mid_run_makes_logins_unavailable_in_time_and_otpd_recovers_by_itself() {
    let OneHost {
        pam,
        otpd,
        smtp,
        pg,
        ..
    } = &one_host();
    let first = login_with(pam, "sshd", "dave", None, mailed_code(smtp.reader(), 1));
    assert_eq!(libpam::code_name(first.code), "PAM_SUCCESS", "{first:?}");
    // While the database runs: a break-glass grant passes ivan over the code step, and a
    // service otpd has no protocol for is skipped.
    let (rc, _, err) = otpd.otpctl(None, &["breakglass", "grant", "ivan", "--minutes", "30"]);
    assert_eq!(rc, 0, "{err}");
    pam.otp_then_permit("cron", &otpd.socket, "");
    for (service, user) in [("sshd", "ivan"), ("cron", "dave")] {
        let passed = login_with(pam, service, user, None, never_prompted);
        assert_eq!(libpam::code_name(passed.code), "PAM_SUCCESS", "{passed:?}");
    }

    pg.stop();
    let started = Instant::now();
    let down = login_with(pam, "sshd", "dave", None, |_| "000000".into());
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
    // Nothing is decided without the database, whose transaction also holds the decision's
    // audit row: neither the grant (stored there) nor the skip lets a login through; both
    // fail closed until it is back (the operator docs say so).
    for (service, user) in [("sshd", "ivan"), ("cron", "dave")] {
        let refused = login_with(pam, service, user, None, never_prompted);
        assert_eq!(
            libpam::code_name(refused.code),
            "PAM_AUTHINFO_UNAVAIL",
            "{service} {user}: {refused:?}"
        );
    }
    // Nor can a grant be armed or listed.
    for args in [
        &["breakglass", "grant", "dave", "--minutes", "5"][..],
        &["breakglass", "list"],
    ] {
        let (rc, out, err) = otpd.otpctl(None, args);
        assert_ne!(rc, 0, "otpctl {args:?} with no database: {out}{err}");
    }

    pg.start();
    let again = login_with(pam, "sshd", "dave", None, mailed_code(smtp.reader(), 2));
    assert_eq!(libpam::code_name(again.code), "PAM_SUCCESS", "{again:?}");
    let ivan = login_with(pam, "sshd", "ivan", None, never_prompted);
    assert_eq!(libpam::code_name(ivan.code), "PAM_SUCCESS", "{ivan:?}");
}

#[test]
fn a_hung_postgresql_makes_logins_unavailable_within_the_deadline_and_otpd_recovers() {
    let OneHost { pam, smtp, pg, .. } = &one_host();
    let first = login_with(pam, "sshd", "gina", None, mailed_code(smtp.reader(), 1));
    assert_eq!(libpam::code_name(first.code), "PAM_SUCCESS", "{first:?}");

    pg.freeze();
    let started = Instant::now();
    let hung = login_with(pam, "sshd", "gina", None, |_| "000000".into());
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

    let again = login_with(pam, "sshd", "gina", None, mailed_code(smtp.reader(), 2));
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

/// A login field holding a NUL byte: PostgreSQL's text columns cannot store one, so such a
/// request failed here as an internal error with no audit row (SQLite audited it as usual).
/// Now it is refused by name, as an over-long field is, with its `refused_caller` row in
/// PostgreSQL, the text escaped; otpd goes on serving logins.
#[test]
fn a_nul_byte_in_user_or_rhost_is_refused_by_name_and_audited_in_postgresql() {
    let OneHost { otpd, pg, .. } = &one_host();
    let user = LoginContext {
        user: "ali\0ce".into(),
        ..ssh("alice")
    };
    let refused = |field: &str| Response::Error {
        message: format!("{field} holds a NUL byte"),
    };
    assert_eq!(begin(otpd, &user), refused("user"));
    let rhost = LoginContext {
        rhost: Some("192.0.2.80\0x".into()),
        ..ssh("bob")
    };
    assert_eq!(begin(otpd, &rhost), refused("rhost"));
    let rows = pg.psql(
        DB,
        "SELECT username, service, rhost, caller_uid, detail FROM audit \
         WHERE event = 'refused_caller' ORDER BY id",
    );
    assert_eq!(
        rows.trim(),
        "ali\\x00ce|sshd|192.0.2.80|0|user holds a NUL byte\n\
         bob|sshd|192.0.2.80\\x00x|0|rhost holds a NUL byte"
    );
    assert_eq!(code_rows(pg, "alice"), "0");
    assert!(!otpd.log().contains("store error"), "{}", otpd.log());
    assert!(matches!(
        begin(otpd, &ssh("alice")),
        Response::Prompt { .. }
    ));
}

/// An answer whose challenge holds a NUL byte: otpd's challenges never do, so only a hand-made
/// request sends one, and PostgreSQL cannot take it as a parameter (it failed as a store
/// error). It is refused by name and audited, as a login field with a NUL is, and the right
/// answer to alice's real prompt still logs her in.
#[test]
fn an_answer_whose_challenge_holds_a_nul_byte_is_refused_by_name_and_audited() {
    let OneHost { otpd, pg, smtp, .. } = &one_host();
    let Response::Prompt { challenge, .. } = begin(otpd, &ssh("alice")) else {
        panic!("alice was not prompted");
    };
    let answer = |challenge: &str, code: &str| {
        otpd.call(&Request::Answer {
            login: ssh("alice"),
            challenge: challenge.into(),
            code: SecretString::new(code.into()),
        })
        .unwrap()
    };
    assert_eq!(
        answer(&format!("{challenge}\0"), "000000"),
        Response::Error {
            message: "challenge holds a NUL byte".into()
        }
    );
    let rows = pg.psql(
        DB,
        "SELECT username, detail FROM audit WHERE event = 'refused_caller' ORDER BY id",
    );
    assert_eq!(rows.trim(), "alice|challenge holds a NUL byte");
    assert!(!otpd.log().contains("store error"), "{}", otpd.log());
    let code = smtp.wait_for_codes(1, MAIL_WAIT)[0].code();
    assert_eq!(answer(&challenge, &code), Response::Success);
}

/// An otpctl request with a NUL byte in a text: PostgreSQL cannot take it as a parameter, and
/// such a request (an audit filter, an address) failed as an internal error, logged as a store
/// error. Now it is refused naming the field, before the store is asked, and nothing changes.
#[test]
fn an_otpctl_request_with_a_nul_byte_is_refused_by_name_before_the_store() {
    let OneHost { otpd, pg, .. } = &one_host();
    let admin = |request: AdminRequest| match otpd.call(&Request::Admin { request }).unwrap() {
        Response::Admin { response } => response,
        other => panic!("not an admin answer: {other:?}"),
    };
    let refused = |field: &str| AdminResponse::Refused {
        reason: RefuseReason::Invalid,
        message: format!("{field} holds a NUL byte"),
    };
    let filter = AdminRequest::Audit {
        user: Some("ali\0ce".into()),
        event: None,
        since: None,
        limit: 10,
        before: None,
    };
    let users = || pg.psql(DB, "SELECT name, email FROM users ORDER BY name");
    let before = users();
    assert_eq!(admin(filter), refused("user"));
    let address = AdminRequest::UserSetEmail {
        user: "alice".into(),
        email: "alice@exa\0mple.org".into(),
    };
    assert_eq!(admin(address), refused("email"));
    assert_eq!(users(), before);
    assert!(!otpd.log().contains("store error"), "{}", otpd.log());
}

/// The audit table on PostgreSQL is the whole fleet's, and every host trims it to its own
/// `audit_max_rows`: SQLite's default of 500,000 rows would delete the fleet's trail within
/// hours. Unset there, no row cap applies (only the retention in days), so a table past
/// SQLite's default is left whole by the upkeep, which runs every second and at the stop.
#[test]
fn the_fleets_audit_table_is_not_trimmed_to_a_single_hosts_default_row_cap() {
    let mut host = one_host();
    let (otpd, pg) = (&mut host.otpd, &host.pg);
    pg.psql(
        DB,
        "INSERT INTO audit (logged_at, event, username, service, caller_uid) \
         SELECT extract(epoch FROM now())::bigint, 'verified', 'user' || n, 'sshd', 0 \
         FROM generate_series(1, 500100) AS n",
    );
    let rows = || pg.psql(DB, "SELECT count(*) >= 500100 FROM audit");
    std::thread::sleep(Duration::from_millis(2500));
    assert!(otpd.stop(), "{}", otpd.log());
    assert_eq!(rows().trim(), "t");
    assert!(!otpd.log().contains("audit_max_rows"), "{}", otpd.log());
}

/// How many code rows `user` has on `pg`.
fn code_rows(pg: &Postgres, user: &str) -> String {
    pg.psql(
        DB,
        &format!("SELECT count(*) FROM codes WHERE username = '{user}'"),
    )
    .trim()
    .to_string()
}

/// How many sessions otpd has open on `pg`.
fn otpd_sessions(pg: &Postgres) -> String {
    pg.psql(
        "postgres",
        &format!("SELECT count(*) FROM pg_stat_activity WHERE usename = '{ROLE}'"),
    )
    .trim()
    .to_string()
}

/// Failover (issue #20): otpd is given the primary and its streaming standby. It writes only
/// to the primary; with the primary stopped and the standby not yet promoted no server takes
/// writes, and logins are unavailable, a right code included; once the standby is promoted,
/// the same otpd process logs users in again on it, and what was written before the stop
/// (a code mailed then) is there and answers.
#[test]
fn a_promoted_standby_takes_over_without_restarting_otpd_and_logins_fail_closed_in_between() {
    let ca = TestCa::new("pg-ca");
    let primary = database(&ca);
    let standby = primary.start_standby();
    let smtp = SmtpCapture::start();
    let otpd = Otpd::start_with_text(|socket, state| {
        let mut config = HostConfig::loopback(&primary, &ca.ca_cert(), smtp.port, "");
        config.pg_hosts.push(("127.0.0.1".into(), standby.port));
        config.render(socket, state)
    });
    let pid = otpd.pid();
    let pam = PamConfDir::new();
    pam.otp_then_permit("sshd", &otpd.socket, "");

    let first = login_with(&pam, "sshd", "alice", None, mailed_code(smtp.reader(), 1));
    assert_eq!(libpam::code_name(first.code), "PAM_SUCCESS", "{first:?}");
    assert_eq!(code_rows(&primary, "alice"), "1");
    // A code mailed now, answered only after the failover.
    assert!(matches!(
        begin(&otpd, &ssh("hana")),
        Response::Prompt { .. }
    ));
    let hanas_code = smtp.wait_for(2, MAIL_WAIT).last().unwrap().code();
    // While both run, everything goes to the primary: otpd has no session on the standby,
    // which still replays (and so could take no write).
    standby.catch_up_with(&primary);
    assert!(standby.in_recovery());
    assert_ne!(otpd_sessions(&primary), "0");
    assert_eq!(
        otpd_sessions(&standby),
        "0",
        "otpd connected to the standby"
    );
    assert_eq!(code_rows(&standby, "alice"), "1", "not replicated");
    assert_eq!(code_rows(&standby, "hana"), "1", "not replicated");

    primary.stop();
    // Only a standby is left, which takes no writes: fail closed.
    let between = login_with(&pam, "sshd", "alice", None, |_| "000000".into());
    assert_eq!(
        libpam::code_name(between.code),
        "PAM_AUTHINFO_UNAVAIL",
        "{between:?}"
    );
    let verify_hana = || {
        otpd.call(&Request::Verify {
            login: ssh("hana"),
            code: SecretString::new(hanas_code.clone()),
        })
        .unwrap()
    };
    let early = verify_hana();
    assert!(matches!(early, Response::Unavailable { .. }), "{early:?}");
    assert_eq!(smtp.messages().len(), 2, "a mail went out with no store");

    standby.promote();
    // The same otpd, not restarted, follows: the code mailed before the stop answers (it was
    // replicated), and a new login passes with its row on the promoted server.
    assert_eq!(verify_hana(), Response::Success);
    let after = login_with(&pam, "sshd", "alice", None, mailed_code(smtp.reader(), 3));
    assert_eq!(libpam::code_name(after.code), "PAM_SUCCESS", "{after:?}");
    assert_eq!(code_rows(&standby, "alice"), "2");
    assert_ne!(otpd_sessions(&standby), "0");
    assert_eq!(otpd.pid(), pid, "otpd was restarted");
}
