//! End-to-end: `otpctl store migrate --to postgresql` (issue #20). A host runs otpd on SQLite,
//! its admin enrols users and they log in; then, as the operator docs say, the admin writes
//! `[store] backend = "postgresql"`, stops otpd, migrates and starts otpd again, which now runs
//! on a real PostgreSQL 15 (TLS, verified against the test CA): the enrolled user logs in
//! through real libpam with a mailed code, a recovery code made before the move works, and the
//! audit from before is there. Refused, changing nothing: a migration while otpd runs, one into
//! a database that holds rows, and one into a database made with another server key. A second
//! host merges into the database the first moved into (`--merge`): refused while the two hold
//! a user differently, then its users log in on the first host.

// Test code: a failed unwrap is how a test reports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use e2e_tests::libpam;
use e2e_tests::login::{login_with, mailed_code};
use e2e_tests::otpd::Otpd;
use e2e_tests::postgres::Postgres;
use e2e_tests::smtp::{MAIL_WAIT, SmtpCapture};
use e2e_tests::stack::PamConfDir;
use e2e_tests::tls::TestCa;
use serde_json::Value;

const ROLE: &str = "otpd";
const DB: &str = "otp";
const PASSWORD: &str = "pg-Secret-42";
const MIGRATE: &[&str] = &["store", "migrate", "--to", "postgresql"];

/// A PostgreSQL with TLS from `ca`, a role and an empty database for otpd.
fn database(ca: &TestCa) -> Postgres {
    let pg = Postgres::start_with_tls(ca);
    pg.create_role_and_database(ROLE, PASSWORD, DB);
    pg
}

/// otpd on SQLite: mail to the capture, codes for enrolled users only (so a login that gets
/// a code after the move shows the enrolment moved).
fn sqlite_config(socket: &Path, state_dir: &Path, smtp_port: u16) -> String {
    format!(
        "[daemon]\nsocket = \"{}\"\nstate_dir = \"{}\"\n\n\
         [defaults]\nmode = \"optional\"\nresend_cooldown_seconds = 0\n\n\
         [mail]\nfrom = \"otp@example.test\"\n\n[[mail.servers]]\nname = \"capture\"\n\
         host = \"127.0.0.1\"\nport = {smtp_port}\nsecurity = \"none\"\ntimeout_seconds = 5\n",
        socket.display(),
        state_dir.display(),
    )
}

/// The same config with the `[store]` section for `pg` added, as the admin writes it before
/// migrating.
fn postgres_config(sqlite: &str, dir: &Path, pg: &Postgres, ca_file: &Path) -> String {
    let password_file = dir.join("pg.password");
    std::fs::write(&password_file, format!("{PASSWORD}\n")).unwrap();
    std::fs::set_permissions(&password_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    format!(
        "{sqlite}\n[store]\nbackend = \"postgresql\"\nhosts = [\"127.0.0.1:{}\"]\n\
         dbname = \"{DB}\"\nuser = \"{ROLE}\"\npassword_file = \"{}\"\nca_file = \"{}\"\n\
         connect_timeout_seconds = 2\nstatement_timeout_seconds = 2\n",
        pg.port,
        password_file.display(),
        ca_file.display(),
    )
}

/// `otpctl ARGS` as root against `otpd`, expected to succeed; its stdout.
fn ctl(otpd: &Otpd, args: &[&str]) -> String {
    let (rc, out, err) = otpd.otpctl(None, args);
    assert_eq!(rc, 0, "otpctl {args:?}: {out}{err}");
    out
}

fn json(otpd: &Otpd, args: &[&str]) -> Value {
    let mut args = args.to_vec();
    args.push("--json");
    let out = ctl(otpd, &args);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

/// Every audit row as (time, event, user, detail), oldest first.
fn audit(otpd: &Otpd) -> Vec<(i64, String, String, String)> {
    let rows = json(otpd, &["audit", "--limit", "10000"]);
    let mut rows: Vec<_> = rows["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            (
                row["time"].as_i64().unwrap(),
                row["event"].as_str().unwrap_or("").to_string(),
                row["user"].as_str().unwrap_or("").to_string(),
                row["detail"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    rows.reverse();
    rows
}

/// The row count of `table` in the test database, read by the superuser; 0 when otpd has
/// not made its tables yet.
fn rows(pg: &Postgres, table: &str) -> i64 {
    let exists = pg.psql(DB, &format!("SELECT to_regclass('{table}') IS NOT NULL"));
    if exists.trim() != "t" {
        return 0;
    }
    pg.psql(DB, &format!("SELECT count(*) FROM {table}"))
        .trim()
        .parse()
        .unwrap()
}

/// Enrols alice (address, phone, a recovery code set) and bob (disabled) on `otpd`; alice
/// logs in once. Returns alice's recovery codes.
fn enrol_and_log_in(otpd: &Otpd, smtp: &SmtpCapture, pam: &PamConfDir) -> Vec<String> {
    ctl(
        otpd,
        &[
            "user",
            "add",
            "alice",
            "--no-account",
            "--email",
            "alice@corp.test",
            "--enable",
        ],
    );
    ctl(otpd, &["user", "set-phone", "alice", "+441234567890"]);
    ctl(
        otpd,
        &[
            "user",
            "add",
            "bob",
            "--no-account",
            "--email",
            "bob@corp.test",
        ],
    );
    let codes = json(otpd, &["user", "recovery-codes", "alice"]);
    let codes: Vec<String> = codes["codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    assert_eq!(codes.len(), 10);
    let login = login_with(
        pam,
        "sshd",
        "alice",
        Some("192.0.2.10"),
        mailed_code(smtp.reader(), 1),
    );
    assert_eq!(libpam::code_name(login.code), "PAM_SUCCESS", "{login:?}");
    codes
}

#[test]
fn a_sqlite_hosts_users_recovery_codes_and_audit_work_on_postgresql_after_the_migration() {
    let ca = TestCa::new("pg-ca");
    let pg = database(&ca);
    let smtp = SmtpCapture::start();
    let mut otpd = Otpd::start_with_text(|socket, state| sqlite_config(socket, state, smtp.port));
    let pam = PamConfDir::new();
    pam.otp_then_permit("sshd", &otpd.socket, "");
    let recovery = enrol_and_log_in(&otpd, &smtp, &pam);
    let before = audit(&otpd);
    assert!(
        before
            .iter()
            .any(|(_, event, user, _)| event == "verified" && user == "alice"),
        "{before:?}"
    );

    // The admin writes [store]; otpd, still running on SQLite, keeps it until restarted.
    let config = postgres_config(&otpd.config_text(), otpd.dir(), &pg, &ca.ca_cert());
    otpd.write_config(&config);
    let (rc, out, err) = otpd.otpctl(None, MIGRATE);
    assert_eq!(rc, 1, "migrated while otpd ran: {out}{err}");
    assert!(err.contains("otpd is running"), "{err}");
    assert_eq!(rows(&pg, "users"), 0, "rows were copied while otpd ran");

    assert!(otpd.stop(), "otpd did not stop cleanly: {}", otpd.log());
    let (rc, out, err) = otpd.otpctl(None, MIGRATE);
    assert_eq!(rc, 0, "{out}{err}");
    eprintln!("otpctl store migrate printed:\n{out}{err}");
    let copied = |table: &str| {
        out.lines()
            .find(|line| line.split_whitespace().next() == Some(table))
            .and_then(|line| line.split_whitespace().nth(1))
            .and_then(|n| n.parse::<usize>().ok())
    };
    assert_eq!(copied("users"), Some(2), "{out}");
    assert_eq!(copied("recovery_codes"), Some(10), "{out}");
    assert_eq!(copied("audit"), Some(before.len()), "{out}");
    for code in &recovery {
        assert!(
            !out.contains(code) && !err.contains(code),
            "a code was printed"
        );
    }
    assert_eq!(rows(&pg, "users"), 2);

    otpd.restart();
    let status = ctl(&otpd, &["status"]);
    assert!(
        status.contains(&format!("postgresql: otp on 127.0.0.1:{}", pg.port)),
        "{status}"
    );
    // The enrolment moved: alice still gets her code, at her address; bob is still off.
    let login = login_with(
        &pam,
        "sshd",
        "alice",
        Some("192.0.2.10"),
        mailed_code(smtp.reader(), 2),
    );
    assert_eq!(libpam::code_name(login.code), "PAM_SUCCESS", "{login:?}");
    let mails = smtp.wait_for_codes(2, MAIL_WAIT);
    assert_eq!(mails[1].rcpt_tos, ["alice@corp.test"]);
    let alice = json(&otpd, &["user", "show", "alice"]);
    assert_eq!(alice["user"]["phone"], "+441234567890", "{alice}");
    assert_eq!(alice["user"]["recovery_codes_left"], 10, "{alice}");
    let bob = json(&otpd, &["user", "show", "bob"]);
    assert_eq!(bob["user"]["enabled"], false, "{bob}");

    // A recovery code made on SQLite answers on PostgreSQL, once.
    let code = recovery[0].clone();
    let used = login_with(&pam, "sshd", "alice", Some("192.0.2.10"), move |_| {
        code.clone()
    });
    assert_eq!(libpam::code_name(used.code), "PAM_SUCCESS", "{used:?}");
    let code = recovery[0].clone();
    let replay = login_with(&pam, "sshd", "alice", Some("192.0.2.10"), move |_| {
        code.clone()
    });
    assert_ne!(libpam::code_name(replay.code), "PAM_SUCCESS", "{replay:?}");

    // The audit from before is all there, in order, before what happened since.
    let after = audit(&otpd);
    assert_eq!(after[..before.len()], before[..], "{after:?}");
    assert!(after.len() > before.len());

    // A second migration into the database otpd now uses: refused, nothing changed.
    let (users, audit_rows) = (rows(&pg, "users"), rows(&pg, "audit"));
    assert!(otpd.stop());
    let (rc, out, err) = otpd.otpctl(None, MIGRATE);
    assert_eq!(rc, 1, "{out}{err}");
    assert!(
        err.contains("is not empty") && err.contains("users (2 rows)"),
        "{err}"
    );
    assert!(err.contains("Nothing was copied"), "{err}");
    assert_eq!(
        (rows(&pg, "users"), rows(&pg, "audit")),
        (users, audit_rows)
    );
}

#[test]
fn a_database_made_with_another_server_key_is_refused_and_nothing_is_copied() {
    let ca = TestCa::new("pg-ca");
    let pg = database(&ca);
    let smtp = SmtpCapture::start();
    // Another host made the database with its own key, then its rows were removed: only the
    // key id is left, so the key check is what refuses.
    let mut other = Otpd::start_with_text(|socket, state| {
        let config = sqlite_config(socket, state, smtp.port);
        postgres_config(&config, state.parent().unwrap(), &pg, &ca.ca_cert())
    });
    assert!(other.stop(), "{}", other.log());
    pg.psql(
        DB,
        "TRUNCATE users, recovery_codes, breakglass, audit, lockouts, sends, codes, \
         reuse_grants, notices, seen_rhosts",
    );
    assert_eq!(rows(&pg, "otpd_meta"), 1);

    let mut otpd = Otpd::start_with_text(|socket, state| sqlite_config(socket, state, smtp.port));
    ctl(
        &otpd,
        &[
            "user",
            "add",
            "carol",
            "--no-account",
            "--email",
            "carol@corp.test",
            "--enable",
        ],
    );
    assert!(otpd.stop());
    otpd.write_config(&postgres_config(
        &otpd.config_text(),
        otpd.dir(),
        &pg,
        &ca.ca_cert(),
    ));
    let (rc, out, err) = otpd.otpctl(None, MIGRATE);
    assert_eq!(rc, 1, "{out}{err}");
    assert!(err.contains("another server key"), "{err}");
    assert_eq!(rows(&pg, "users"), 0);
    assert_eq!(rows(&pg, "audit"), 0);
    assert!(!out.contains("copied"), "{out}");
}

/// Host A moves into a new database; host B, with other users and a different address for
/// alice, is merged in once the admin settles alice; carol, enrolled only on B, logs in on A.
/// B merged again as it was is refused; B back on SQLite for a while brings only what it
/// wrote since.
#[test]
fn a_second_host_merges_into_the_database_the_first_moved_into_and_its_users_log_in_on_the_first() {
    let ca = TestCa::new("pg-ca");
    let pg = database(&ca);
    let smtp = SmtpCapture::start();

    // Host A moves first, into the empty database, and runs on it.
    let mut a = Otpd::start_with_text(|socket, state| sqlite_config(socket, state, smtp.port));
    let pam_a = PamConfDir::new();
    pam_a.otp_then_permit("sshd", &a.socket, "");
    enrol_and_log_in(&a, &smtp, &pam_a);
    assert!(a.stop());
    a.write_config(&postgres_config(
        &a.config_text(),
        a.dir(),
        &pg,
        &ca.ca_cert(),
    ));
    let (rc, out, err) = a.otpctl(None, MIGRATE);
    assert_eq!(rc, 0, "{out}{err}");
    a.restart();

    // Host B, with the fleet's key, enrolled alice at another address, and carol.
    let key = std::fs::read(a.state_dir().join("secret.key")).unwrap();
    let mut b = Otpd::start_with_text(|socket, state| {
        e2e_tests::pg_hosts::with_key(state, &key);
        sqlite_config(socket, state, smtp.port)
    });
    let on_sqlite = b.config_text();
    b.enrol("alice", "alice@other.test");
    b.enrol("carol", "carol@corp.test");
    assert!(b.stop());
    let on_postgresql = postgres_config(&on_sqlite, b.dir(), &pg, &ca.ca_cert());
    b.write_config(&on_postgresql);

    // A plain copy into the used database is refused, pointing at --merge.
    let (rc, out, err) = b.otpctl(None, MIGRATE);
    assert_eq!(rc, 1, "{out}{err}");
    assert!(err.contains("--merge"), "{err}");
    // The merge names alice, whose address the hosts disagree on, and writes nothing.
    let merge: Vec<&str> = MIGRATE.iter().copied().chain(["--merge"]).collect();
    let (users, audit_rows) = (rows(&pg, "users"), rows(&pg, "audit"));
    let (rc, out, err) = b.otpctl(None, &merge);
    assert_eq!(rc, 1, "{out}{err}");
    assert!(err.contains("users: alice (email, phone)"), "{err}");
    assert!(err.contains("Nothing was copied"), "{err}");
    assert_eq!(
        (rows(&pg, "users"), rows(&pg, "audit")),
        (users, audit_rows)
    );

    // The admin settles alice's address on B and merges again.
    b.write_config(&on_sqlite);
    b.restart();
    ctl(&b, &["user", "set-email", "alice", "alice@corp.test"]);
    ctl(&b, &["user", "set-phone", "alice", "+441234567890"]);
    assert!(b.stop());
    b.write_config(&on_postgresql);
    let (rc, out, err) = b.otpctl(None, &merge);
    assert_eq!(rc, 0, "{out}{err}");
    eprintln!("otpctl store migrate --merge printed:\n{out}{err}");
    assert!(out.starts_with("merged "), "{out}");
    assert_eq!(rows(&pg, "users"), 3, "alice, bob and carol");

    // carol, enrolled only on B, gets her code on A.
    let login = login_with(
        &pam_a,
        "sshd",
        "carol",
        Some("192.0.2.11"),
        mailed_code(smtp.reader(), 2),
    );
    assert_eq!(libpam::code_name(login.code), "PAM_SUCCESS", "{login:?}");
    let mails = smtp.wait_for_codes(2, MAIL_WAIT);
    assert_eq!(mails[1].rcpt_tos, ["carol@corp.test"]);

    // B's state again: refused, it would count twice.
    let (rc, out, err) = b.otpctl(None, &merge);
    assert_eq!(rc, 1, "{out}{err}");
    assert!(err.contains("already copied or merged"), "{err}");

    // B went back to SQLite for a while and enrolled dave there; merged again, it brings only
    // what it wrote since: carol's enrolment is not audited twice, and dave comes in.
    b.write_config(&on_sqlite);
    b.restart();
    b.enrol("dave", "dave@corp.test");
    assert!(b.stop());
    b.write_config(&on_postgresql);
    let (rc, out, err) = b.otpctl(None, &merge);
    assert_eq!(rc, 0, "{out}{err}");
    assert!(
        out.contains("This host was copied or merged before"),
        "{out}"
    );
    assert_eq!(rows(&pg, "users"), 4, "alice, bob, carol and dave");
    let added = |user: &str| {
        pg.psql(
            DB,
            &format!(
                "SELECT count(*) FROM audit WHERE event = 'user_added' AND detail LIKE '%{user}%'"
            ),
        )
        .trim()
        .to_string()
    };
    assert_eq!((added("carol"), added("dave")), ("1".into(), "1".into()));
}
