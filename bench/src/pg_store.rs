//! Our logins with otpd on the PostgreSQL store (issue #20), in the same run as the SQLite
//! ones: a PostgreSQL 15 of the run's own (the end-to-end tests' harness, `tests/src/postgres.rs`:
//! a temporary cluster on loopback that takes only TLS connections with a SCRAM password), and
//! up to [`HOSTS`] otpd on it, each with its own state directory and socket and the same
//! server key, as hosts sharing one database run. All mail to the run's sink.
//!
//! The cluster is set to SQLite's durability (`otpd` runs SQLite in WAL with
//! `synchronous=NORMAL`): `fsync` and full-page writes on, `synchronous_commit = off`, so a
//! commit does not wait for its WAL flush on either side. `pg_stat_statements` is loaded to
//! count statements and rows per login ([`crate::pg_cost`]).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use e2e_tests::otpd::Otpd;
use e2e_tests::postgres::Postgres;
use e2e_tests::stack::PamConfDir;
use e2e_tests::tls::TestCa;

use crate::error::BenchError;
use crate::loops::{self, Run, Until};
use crate::mailbox::Mailbox;
use crate::memory::Process;
use crate::pg_cost::{LoginCost, STATS_DELAY, Snapshot};
use crate::scenarios::{self, Tally};
use crate::setup::{self, Setup};

/// otpd hosts on the one database in the multi-host scenario.
pub const HOSTS: usize = 3;
/// otpd's database, role and password: those of the end-to-end tests' hosts (the cluster and
/// its password live and die with the run).
pub use e2e_tests::pg_hosts::DB;
use e2e_tests::pg_hosts::{PASSWORD, ROLE, create_otp_database};

/// Settings appended to the harness's cluster config (later lines win): SQLite's durability,
/// and the statistics module.
const SERVER_SETTINGS: &str = "\n# otp-bench\nfsync = on\nfull_page_writes = on\n\
synchronous_commit = off\nshared_preload_libraries = 'pg_stat_statements'\n\
pg_stat_statements.track = all\n";

/// One otpd on the database and the PAM stack that asks it.
#[derive(Debug)]
pub struct Host {
    /// The running otpd.
    pub otpd: Otpd,
    /// Its PAM config directory (`sshd`: our module on this otpd's socket).
    pub pam: PamConfDir,
}

/// The cluster and the otpd hosts on it. Fields drop in order: the hosts stop before the
/// cluster does.
#[derive(Debug)]
pub struct PgHosts {
    /// The hosts; the first is the one of the single-host scenarios.
    pub hosts: Vec<Host>,
    /// The database server.
    pub pg: Postgres,
    /// Whether the timed scenarios wait for the backends' row counts ([`STATS_DELAY`]).
    count_rows: bool,
    // The CA of the server's certificate, and the password file: kept for the run.
    _ca: TestCa,
    _secrets: tempfile::TempDir,
}

/// A scenario's logins on the PostgreSQL store, and what they cost the server.
#[derive(Debug, Clone)]
pub struct PgRun {
    /// The timed logins.
    pub run: Run,
    /// Server cost per login, over every login of the scenario (warm-up included).
    pub cost: LoginCost,
    /// What was checked, for the report.
    pub check: String,
}

impl PgHosts {
    /// Starts the cluster and `hosts` otpd on it, mailing to `setup`'s sink. With
    /// `count_rows`, each timed scenario waits [`STATS_DELAY`] at its end to report the rows
    /// written per login; without (the smoke run), it reports none.
    pub fn start(setup: &Setup, hosts: usize, count_rows: bool) -> Result<PgHosts, BenchError> {
        if !Path::new("/usr/lib/postgresql/15/bin/initdb").exists() {
            return Err(BenchError::Setup(
                "PostgreSQL 15 is missing: tests/install-deps installs postgresql-15".into(),
            ));
        }
        let ca = TestCa::new("bench-pg-ca");
        let pg = Postgres::start_with_tls(&ca);
        let conf = pg.dir().join("data/postgresql.conf");
        let mut text = fs::read_to_string(&conf).map_err(BenchError::io(&conf))?;
        text.push_str(SERVER_SETTINGS);
        fs::write(&conf, text).map_err(BenchError::io(&conf))?;
        pg.stop();
        pg.start();
        pg.psql(
            "postgres",
            "CREATE EXTENSION IF NOT EXISTS pg_stat_statements",
        );
        create_otp_database(&pg);

        let secrets = tempfile::tempdir().map_err(BenchError::io("tempdir"))?;
        let password_file = secrets.path().join("pg.password");
        write_private(&password_file, format!("{PASSWORD}\n").as_bytes())?;
        let store = format!(
            "[store]\nbackend = \"postgresql\"\nhosts = [\"127.0.0.1:{}\"]\ndbname = \"{DB}\"\n\
             user = \"{ROLE}\"\npassword_file = \"{}\"\nca_file = \"{}\"\n",
            pg.port,
            password_file.display(),
            ca.ca_cert().display()
        );
        let mut started: Vec<Host> = Vec::new();
        for _ in 0..hosts {
            // Every host after the first gets the first one's server key before it starts.
            let key = match started.first() {
                Some(first) => {
                    let path = first.otpd.state_dir().join("secret.key");
                    Some(fs::read(&path).map_err(BenchError::io(&path))?)
                }
                None => None,
            };
            let mut failed = None;
            let otpd = Otpd::start_with_text(|socket, state| {
                if let Some(key) = &key {
                    failed = with_key(state, key).err();
                }
                config(socket, state, &store, setup.sink_port())
            });
            if let Some(error) = failed {
                return Err(error);
            }
            let pam = setup.our_service_for(&otpd);
            started.push(Host { otpd, pam });
        }
        Ok(PgHosts {
            hosts: started,
            pg,
            count_rows,
            _ca: ca,
            _secrets: secrets,
        })
    }

    /// The server's counters now.
    pub fn snapshot(&self) -> Result<Snapshot, BenchError> {
        Snapshot::take(&self.pg, DB, ROLE)
    }

    /// Runs our login in `loops` loops on each of the first `hosts` hosts at once (loop `i`
    /// asks host `i / loops`), users tagged `tag`, and checks from the sink and the hosts'
    /// audit logs that each login (warm-up included) issued, mailed and verified exactly one
    /// code. CPU is watched for this process and every host's otpd.
    pub fn run(
        &self,
        mailbox: &Arc<Mailbox>,
        tag: &str,
        hosts: usize,
        loops: usize,
        warmup: u64,
        until: Until,
    ) -> Result<PgRun, BenchError> {
        let used: Vec<&Host> = self.hosts.iter().take(hosts).collect();
        if used.len() != hosts || loops == 0 {
            return Err(BenchError::Setup(format!(
                "{hosts} hosts asked for, {} started",
                self.hosts.len()
            )));
        }
        let otpds: Vec<&Otpd> = used.iter().map(|h| &h.otpd).collect();
        let mut watched = vec![Process::Current];
        watched.extend(
            otpds
                .iter()
                .map(|o| Process::Pid(u32::try_from(o.pid()).unwrap_or_default())),
        );
        let before = Tally::of_hosts(mailbox, &otpds);
        let server_before = self.snapshot()?;
        let run = loops::run_loops(
            hosts * loops,
            warmup,
            until,
            &watched,
            &|index, iteration| {
                let host = used
                    .get(index / loops)
                    .ok_or_else(|| BenchError::Setup(format!("no host for loop {index}")))?;
                scenarios::our_login_on(host.pam.path(), mailbox, tag, index, iteration)
            },
        )?;
        let logins = run.logins() + run.warmups;
        // The timed scenarios report rows written: wait until the backends reported them.
        // (The serial blocks, counted, report no server cost and need not wait.)
        let count_rows = self.count_rows && matches!(until, Until::Time(_));
        if count_rows {
            std::thread::sleep(STATS_DELAY);
        }
        let mut cost = self.snapshot()?.cost_since(&server_before, logins);
        if !count_rows {
            cost.rows_written = None;
        }
        before.check_hosts(mailbox, &otpds, tag, logins)?;
        Ok(PgRun {
            check: format!(
                "PostgreSQL, {hosts} host(s) × {loops} loop(s): {logins} logins, {logins} codes \
                 issued, mailed and verified, each exactly once"
            ),
            run,
            cost,
        })
    }
}

/// otpd's whole config: the benchmark's (every user required, caps that never decide) on the
/// store `store`, mailing to the sink on `smtp_port`.
fn config(socket: &Path, state_dir: &Path, store: &str, smtp_port: u16) -> String {
    format!(
        "[daemon]\nsocket = \"{}\"\nstate_dir = \"{}\"\n\n{store}\n{}\n\n\
         [mail]\nfrom = \"otp@example.test\"\n\n[[mail.servers]]\nname = \"capture\"\n\
         host = \"127.0.0.1\"\nport = {smtp_port}\nsecurity = \"none\"\ntimeout_seconds = 5\n",
        socket.display(),
        state_dir.display(),
        setup::otpd_body(),
    )
}

/// Puts `key` (another host's server key) in the state directory `state` before otpd starts.
fn with_key(state: &Path, key: &[u8]) -> Result<(), BenchError> {
    fs::create_dir_all(state).map_err(BenchError::io(state))?;
    fs::set_permissions(state, fs::Permissions::from_mode(0o700)).map_err(BenchError::io(state))?;
    write_private(&state.join("secret.key"), key)
}

/// Writes a file only its owner may read.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), BenchError> {
    fs::write(path, bytes).map_err(BenchError::io(path))?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).map_err(BenchError::io(path))
}
