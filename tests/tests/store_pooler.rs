//! End-to-end: otpd hosts reaching PostgreSQL through a real PgBouncer in transaction mode
//! (Debian 12's 1.18), as a fleet too large for a connection per host's pool must (issue #20,
//! bench/README.md's paper estimate). With `[store] behind_pooler = true` two hosts whose
//! pools together hold more connections than PgBouncer's two server connections log users in
//! through PAM, and 40 parallel answers of one code over both give exactly one success; a role
//! without a `statement_timeout` of its own is warned of. Without it, otpd refuses to start
//! (nothing serves logins: fail closed) and says what to set. Two SQLite hosts move in through
//! it, by a copy and a merge. With a PgBouncer in front of a primary and one in front of its
//! standby, otpd follows the promoted standby. And behind PgBouncer 1.24.1 (Debian 13's),
//! which keeps prepared statements in transaction mode, `pooler_keeps_prepared_statements`
//! has otpd prepare its statements, and the same logins and race hold.

// Test code: a failed unwrap is how a test reports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use common::wire::{Request, Response};
use e2e_tests::libpam;
use e2e_tests::login::{login_with, mailed_code};
use e2e_tests::otpd::Otpd;
use e2e_tests::pg_hosts::{DB, HostConfig, PASSWORD, ROLE, create_otp_database, with_key};
use e2e_tests::pgbouncer::{PgBouncer, Release};
use e2e_tests::postgres::Postgres;
use e2e_tests::programs::answers;
use e2e_tests::race::{self, http};
use e2e_tests::smtp::{MAIL_WAIT, SmtpCapture};
use e2e_tests::stack::PamConfDir;
use e2e_tests::tls::TestCa;

/// The cluster, PgBouncer in front of it with two server connections, and a mail capture.
struct Pooled {
    smtp: SmtpCapture,
    bouncer: PgBouncer,
    pg: Postgres,
    ca: TestCa,
}

fn pooled() -> Pooled {
    pooled_by(Release::Debian12)
}

fn pooled_by(release: Release) -> Pooled {
    let ca = TestCa::new("pg-ca");
    let pg = Postgres::start_with_tls(&ca);
    create_otp_database(&pg);
    let bouncer = PgBouncer::start_release(release, &pg, &ca, (DB, ROLE, PASSWORD), 2);
    Pooled {
        smtp: SmtpCapture::start(),
        bouncer,
        pg,
        ca,
    }
}

impl Pooled {
    /// otpd's config for a host reaching the database through PgBouncer, with `store_extra`
    /// in `[store]` and a pool of 4 connections.
    fn config(&self, store_extra: &str) -> HostConfig {
        let mut config = HostConfig::loopback(&self.pg, &self.ca.ca_cert(), self.smtp.port, "");
        config.pg_hosts = vec![("127.0.0.1".into(), self.bouncer.port)];
        config.store_extra = format!("{store_extra}pool_size = 4\n");
        config
    }

    /// An otpd through PgBouncer, with `key` as its server key when given.
    fn host(&self, store_extra: &str, key: Option<&[u8]>) -> Otpd {
        let config = self.config(store_extra);
        Otpd::start_with_text(|socket, state| {
            if let Some(key) = key {
                with_key(state, key);
            }
            config.render(socket, state)
        })
    }
}

#[test]
fn two_hosts_behind_pgbouncer_in_transaction_mode_log_users_in_and_one_code_answers_once() {
    let setup = pooled();
    let (a, _b) = two_hosts_log_in_and_one_code_answers_once(&setup, "behind_pooler = true\n");
    // The admin sees where the store is and that a pooler stands in front.
    let (code, status, _) = a.otpctl(None, &["status"]);
    assert_eq!(code, 0);
    let line = format!(
        "postgresql: otp on 127.0.0.1:{} (TLS verify-full, behind a pooler)",
        setup.bouncer.port
    );
    assert!(status.contains(&line), "{status}");
}

/// PgBouncer 1.24.1 keeps each client's prepared statements in transaction mode: told so,
/// otpd prepares its statements (PgBouncer shows them prepared on its server connections,
/// where 1.18 needs them unnamed), and the logins and the race hold as before.
#[test]
fn behind_a_pgbouncer_that_keeps_prepared_statements_otpd_prepares_them_and_the_rules_hold() {
    let setup = pooled_by(Release::KeepsPreparedStatements);
    let (a, _b) = two_hosts_log_in_and_one_code_answers_once(
        &setup,
        "behind_pooler = true\npooler_keeps_prepared_statements = true\n",
    );
    let prepared: u32 = setup
        .bouncer
        .show("SERVERS", "prepared_statements", (ROLE, PASSWORD))
        .iter()
        .map(|n| n.parse::<u32>().unwrap())
        .sum();
    assert!(prepared > 0, "no statement prepared on a server connection");
    let (code, status, _) = a.otpctl(None, &["status"]);
    assert_eq!(code, 0);
    assert!(
        status.contains("behind a pooler that keeps prepared statements)"),
        "{status}"
    );
}

/// Two hosts with `store_extra` in `[store]`, behind `setup`'s PgBouncer: four PAM logins
/// taking turns, then 40 answers of one code over both at once, exactly one of them right.
fn two_hosts_log_in_and_one_code_answers_once(setup: &Pooled, store_extra: &str) -> (Otpd, Otpd) {
    let a = setup.host(store_extra, None);
    let key = std::fs::read(a.state_dir().join("secret.key")).unwrap();
    let b = setup.host(store_extra, Some(&key));

    // Real PAM logins on each host, one after the other and each on a fresh server
    // connection's turn: every statement of a transaction went to the server that began it.
    for (n, host) in [&a, &b, &a, &b].into_iter().enumerate() {
        let pam = PamConfDir::new();
        pam.otp_then_permit("sshd", &host.socket, "");
        let user = format!("user{n}");
        let result = login_with(
            &pam,
            "sshd",
            &user,
            Some("192.0.2.7"),
            mailed_code(setup.smtp.reader(), n + 1),
        );
        assert_eq!(result.code, libpam::PAM_SUCCESS, "{n}: {result:?}");
    }

    // One code, 40 answers at once over both hosts (the single-secret flow: any host may get
    // it): each host's pool of 4 shares PgBouncer's two server connections with the other's.
    let issued = begin(&a, "carol", "198.51.100.250");
    assert!(matches!(issued, Response::Prompt { .. }), "{issued:?}");
    let code = answers::mailed_code(&setup.smtp.reader(), 5);
    let replies = race::answer_at_once(&[&a, &b], "carol", &code, 40);
    race::exactly_one_success(&replies);
    let verified = a.events("verified").len() + b.events("verified").len();
    assert_eq!(verified, 5, "four PAM logins and one answer");

    // PgBouncer, not otpd, held the server connections: never more than its two.
    let sessions = setup.pg.psql(
        "postgres",
        &format!("SELECT count(*) FROM pg_stat_activity WHERE usename = '{ROLE}'"),
    );
    assert!(sessions.trim().parse::<u32>().unwrap() <= 2, "{sessions}");
    for host in [&a, &b] {
        assert!(!host.log().contains(" ERROR "), "{}", host.log());
        // The test's role has no statement_timeout of its own: the admin is told to set one.
        assert!(
            host.log()
                .contains("role otpd has none; set one (ALTER ROLE otpd SET"),
            "{}",
            host.log()
        );
    }
    (a, b)
}

/// `user`'s HTTP Basic login begun on `otpd` from `rhost`.
fn begin(otpd: &Otpd, user: &str, rhost: &str) -> Response {
    otpd.call(&Request::Begin {
        login: http(user, rhost),
        ssh_keys: Vec::new(),
    })
    .unwrap()
}

/// `text` without its `[store]` section: the host as it ran on SQLite before the move.
fn on_sqlite(text: &str) -> String {
    let start = text.find("[store]\n").expect("a [store] section");
    let end = text[start..]
        .find("\n\n")
        .map_or(text.len(), |e| start + e + 2);
    format!("{}{}", &text[..start], &text[end..])
}

/// Two hosts on SQLite move into the database through PgBouncer, the first by a copy and the
/// second by a merge (`otpctl store migrate`): the table locks, the merge's temporary tables
/// and the many-row inserts all within one transaction of one server connection.
#[test]
fn two_sqlite_hosts_move_in_through_pgbouncer_by_a_copy_then_a_merge() {
    let setup = pooled();
    let config = setup.config("behind_pooler = true\n");
    let mut key: Option<Vec<u8>> = None;
    let mut moved = Vec::new();
    for (user, how) in [("alice", None), ("bob", Some("--merge"))] {
        let mut pg_text = String::new();
        let mut otpd = Otpd::start_with_text(|socket, state| {
            if let Some(key) = &key {
                with_key(state, key);
            }
            pg_text = config.render(socket, state);
            on_sqlite(&pg_text)
        });
        otpd.enrol(user, &format!("{user}@corp.test"));
        key.get_or_insert_with(|| std::fs::read(otpd.state_dir().join("secret.key")).unwrap());
        assert!(otpd.stop(), "{}", otpd.log());
        otpd.write_config(&pg_text);
        let migrate: Vec<&str> = ["store", "migrate", "--to", "postgresql"]
            .into_iter()
            .chain(how)
            .collect();
        let (rc, out, err) = otpd.otpctl(None, &migrate);
        assert_eq!(rc, 0, "{migrate:?}: {out}{err}");
        moved.push(otpd);
    }
    let users = setup.pg.psql(DB, "SELECT name FROM users ORDER BY name");
    assert_eq!(users.trim(), "alice\nbob");
    // The first host runs on the database through PgBouncer and serves the merged user.
    moved[0].restart();
    let begun = begin(&moved[0], "bob", "198.51.100.9");
    assert!(matches!(begun, Response::Prompt { .. }), "{begun:?}");
    assert_eq!(setup.smtp.wait_for(1, MAIL_WAIT).len(), 1);
}

/// Failover behind poolers: a PgBouncer in front of the primary and one in front of its
/// streaming standby, both in `hosts`. otpd writes through the first; with the primary stopped
/// logins are unavailable (the standby takes no writes); once the standby is promoted the same
/// otpd, not restarted, logs users in through the second.
#[test]
fn with_a_pooler_in_front_of_each_server_otpd_follows_a_promoted_standby() {
    let ca = TestCa::new("pg-ca");
    let primary = Postgres::start_with_tls(&ca);
    create_otp_database(&primary);
    let standby = primary.start_standby();
    let smtp = SmtpCapture::start();
    let login = (DB, ROLE, PASSWORD);
    let before_primary = PgBouncer::start_in_transaction_mode(&primary, &ca, login, 2);
    let before_standby = PgBouncer::start_in_transaction_mode(&standby, &ca, login, 2);
    let mut config = HostConfig::loopback(&primary, &ca.ca_cert(), smtp.port, "");
    config.pg_hosts = vec![
        ("127.0.0.1".into(), before_primary.port),
        ("127.0.0.1".into(), before_standby.port),
    ];
    config.store_extra = "behind_pooler = true\n".into();
    let otpd = Otpd::start_with_text(|socket, state| config.render(socket, state));
    let pid = otpd.pid();
    let first = begin(&otpd, "alice", "198.51.100.9");
    assert!(matches!(first, Response::Prompt { .. }), "{first:?}");

    primary.stop();
    let between = begin(&otpd, "bob", "198.51.100.9");
    assert!(
        matches!(between, Response::Unavailable { .. }),
        "{between:?}"
    );
    let again = begin(&otpd, "bob", "198.51.100.9");
    assert!(matches!(again, Response::Unavailable { .. }), "{again:?}");

    standby.promote();
    let after = begin(&otpd, "carol", "198.51.100.9");
    assert!(
        matches!(after, Response::Prompt { .. }),
        "{after:?}\n{}",
        otpd.log()
    );
    assert_eq!(
        smtp.wait_for(2, MAIL_WAIT).len(),
        2,
        "alice's and carol's codes"
    );
    let carols = standby.psql(DB, "SELECT count(*) FROM codes WHERE username = 'carol'");
    assert_eq!(carols.trim(), "1", "carol's code is on the promoted server");
    assert_eq!(otpd.pid(), pid, "otpd was restarted");
}

#[test]
fn a_role_with_its_own_statement_timeout_gets_no_warning() {
    let setup = pooled();
    setup.pg.psql(
        "postgres",
        &format!("ALTER ROLE {ROLE} SET statement_timeout = '3s'"),
    );
    let otpd = setup.host("behind_pooler = true\n", None);
    let begun = begin(&otpd, "erin", "198.51.100.9");
    assert!(matches!(begun, Response::Prompt { .. }), "{begun:?}");
    assert!(otpd.log().contains("behind a pooler"), "{}", otpd.log());
    assert!(!otpd.log().contains("statement_timeout"), "{}", otpd.log());
}

#[test]
fn without_behind_pooler_otpd_refuses_to_start_through_pgbouncer_and_says_what_to_set() {
    let setup = pooled();
    let config = setup.config("");
    let log = Otpd::refused_at_start(|socket, state| config.render(socket, state)).log;
    assert!(log.contains("unsupported startup parameter"), "{log}");
    assert!(
        log.contains("set behind_pooler to true in [store]"),
        "{log}"
    );
    assert!(setup.smtp.messages().is_empty(), "no code may be mailed");
}
