//! Our logins with otpd on the PostgreSQL store (issue #20), in the same run as the SQLite
//! ones: a PostgreSQL 15 of the run's own (the end-to-end tests' harness, `tests/src/postgres.rs`:
//! a temporary cluster that takes only TLS connections with a SCRAM password), one otpd on
//! loopback for the single-host scenarios beside SQLite's, and [`HOSTS`] otpd for the
//! multi-host one, each in a network namespace of its own on a bridge, as hosts sharing one
//! database run (issue #20's "three hosts in namespaces at once"). Every otpd has its own state
//! directory and socket and the same server key.
//!
//! The network is the end-to-end tests' fleet's (`tests/src/fleet.rs`): a bridge on
//! `198.18.`[`SUBNET`]`.0/24` in the root namespace, whose address `.1` PostgreSQL and a second
//! sink of this run listen on, and the hosts at `.2`, `.3`, ... The cluster listens on
//! 127.0.0.1 and the bridge's address with one certificate naming both, so every otpd verifies
//! it by IP (`verify-full`). otpd mails in plain text to loopback only, so the hosts' sink
//! speaks STARTTLS with a certificate of the same CA ([`SmtpSink::start_tls`]) and both sinks
//! deliver into the run's one mailbox. The hosts' sockets are files: this process, in the root
//! namespace, drives PAM logins against each as against the loopback one. The bridge and the
//! namespaces are removed when [`PgHosts`] drops, also when the run stops on an error.
//!
//! Two more otpd on loopback each reach the cluster through a PgBouncer of the run's own
//! (`pool_mode = transaction`, `tests/src/pgbouncer.rs`) with `[store] behind_pooler = true`:
//! what a fleet too large for a connection per host's pool runs, set against the loopback otpd
//! that connects directly. One is Debian 12's PgBouncer (1.18), which keeps no prepared
//! statements, the other 1.24.1 (Debian 13's), which does, with
//! `pooler_keeps_prepared_statements = true`.
//!
//! The cluster is set to SQLite's durability (`otpd` runs SQLite in WAL with
//! `synchronous=NORMAL`): `fsync` and full-page writes on, `synchronous_commit = off`, so a
//! commit does not wait for its WAL flush on either side. `pg_stat_statements` is loaded to
//! count statements and rows per login ([`crate::pg_cost`]).

use std::fs;
use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use e2e_tests::bridge::Bridge;
use e2e_tests::otpd::Otpd;
use e2e_tests::pgbouncer::{PgBouncer, Release};
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
use crate::sink::SmtpSink;

/// otpd hosts on the one database in the multi-host scenario, each in its own namespace.
pub const HOSTS: usize = 3;
/// The bridge's subnet, `198.18.60.0/24`: apart from the end-to-end tests' (41 to 44), so a
/// run does not collide with tests on the same machine.
pub const SUBNET: u8 = 60;
/// PgBouncer's server connections: one per loop of the gated scenario, so the pooler's
/// scenario measures its cost, not a queue for too few connections.
pub const POOLER_SERVER_CONNECTIONS: u32 = 4;
/// otpd's database, role and password: those of the end-to-end tests' hosts (the cluster and
/// its password live and die with the run).
pub use e2e_tests::pg_hosts::DB;
use e2e_tests::pg_hosts::{PASSWORD, ROLE, capture_server, create_otp_database, store_section};

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

/// An otpd on loopback that reaches the cluster through a PgBouncer of the run's own. Fields
/// drop in order: otpd stops before its PgBouncer.
#[derive(Debug)]
pub struct Pooler {
    /// The otpd.
    pub host: Host,
    /// PgBouncer in transaction mode in front of the server.
    pub bouncer: PgBouncer,
    /// Which PgBouncer, and so what otpd's `[store]` says.
    pub release: Release,
}

/// Which hosts a scenario's loops ask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum On {
    /// The otpd on loopback, like the SQLite side's: the single-host scenarios set against
    /// SQLite.
    Loopback,
    /// The otpd on loopback that reaches the cluster through the `n`th of [`PgHosts::poolers`].
    Pooled(usize),
    /// The first `n` otpd in namespaces on the bridge, at once.
    Bridge(usize),
}

/// The cluster, the otpd hosts on it and their network. Fields drop in order: the hosts stop
/// before the sink and the cluster, and the bridge with its namespaces goes last.
#[derive(Debug)]
pub struct PgHosts {
    /// The host of the single-host scenarios, on loopback, mailing to the run's plain sink.
    pub local: Host,
    /// The hosts in namespaces on the bridge, `.2` first.
    pub hosts: Vec<Host>,
    /// The hosts on loopback whose database connections go through a PgBouncer, one of each
    /// [`Release`].
    pub poolers: Vec<Pooler>,
    /// The STARTTLS sink on the bridge's address the namespaced hosts mail to.
    _sink: SmtpSink,
    /// The database server.
    pub pg: Postgres,
    /// Whether the timed scenarios wait for the backends' row counts ([`STATS_DELAY`]).
    count_rows: bool,
    // The CA of the server's certificates, and the password file: kept for the run.
    _ca: TestCa,
    _secrets: tempfile::TempDir,
    /// The segment and the hosts' namespaces.
    bridge: Bridge,
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
    /// Makes the bridge with `hosts` namespaces, starts the cluster, the hosts' STARTTLS sink,
    /// the loopback otpd (mailing to `setup`'s sink) and one otpd in each namespace. With
    /// `count_rows`, each timed scenario waits [`STATS_DELAY`] at its end to report the rows
    /// written per login; without (the smoke run), it reports none. Errs, and does not fall
    /// back to loopback, when network namespaces cannot be made here.
    pub fn start(setup: &Setup, hosts: usize, count_rows: bool) -> Result<PgHosts, BenchError> {
        if !Path::new("/usr/lib/postgresql/15/bin/initdb").exists() {
            return Err(BenchError::Setup(
                "PostgreSQL 15 is missing: tests/install-deps installs postgresql-15".into(),
            ));
        }
        // Made first, so that it is dropped last when anything after it fails.
        let bridge = make_bridge(hosts)?;
        let ca = TestCa::with_server_ips("bench-pg-ca", &[bridge.addr]);
        let pg = Postgres::start_with_tls_for_network(&ca, bridge.addr, &bridge.cidr());
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
        let sink = SmtpSink::start_tls(bridge.addr, &ca, Arc::clone(&setup.mailbox))?;

        let secrets = tempfile::tempdir().map_err(BenchError::io("tempdir"))?;
        let password_file = secrets.path().join("pg.password");
        write_private(&password_file, format!("{PASSWORD}\n").as_bytes())?;
        let store = |host: Ipv4Addr| {
            store_section(
                &[(host.to_string(), pg.port)],
                &password_file,
                &ca.ca_cert(),
            )
        };

        // The loopback host makes the server key; each namespaced one starts with a copy.
        let local_store = store(Ipv4Addr::LOCALHOST);
        let local_mail = capture_server("127.0.0.1", setup.sink_port(), None);
        let otpd =
            Otpd::start_with_text(|socket, state| config(socket, state, &local_store, &local_mail));
        let key_path = otpd.state_dir().join("secret.key");
        let key = fs::read(&key_path).map_err(BenchError::io(&key_path))?;
        let local = Host {
            pam: setup.our_service_for(&otpd),
            otpd,
        };

        let mut poolers = Vec::new();
        for release in Release::ALL {
            let bouncer = PgBouncer::start_release(
                release,
                &pg,
                &ca,
                (DB, ROLE, PASSWORD),
                POOLER_SERVER_CONNECTIONS,
            );
            let pooled_store = format!(
                "{}{}",
                store_section(
                    &[("127.0.0.1".into(), bouncer.port)],
                    &password_file,
                    &ca.ca_cert(),
                ),
                release.otpd_settings()
            );
            let mut failed = None;
            let otpd = Otpd::start_with_text(|socket, state| {
                failed = with_key(state, &key).err();
                config(socket, state, &pooled_store, &local_mail)
            });
            if let Some(error) = failed {
                return Err(error);
            }
            let host = Host {
                pam: setup.our_service_for(&otpd),
                otpd,
            };
            poolers.push(Pooler {
                host,
                bouncer,
                release,
            });
        }

        let bridge_store = store(bridge.addr);
        let bridge_mail =
            capture_server(&bridge.addr.to_string(), sink.port(), Some(&ca.ca_cert()));
        let mut started: Vec<Host> = Vec::new();
        for (letter, namespace) in ('a'..='z').zip(&bridge.hosts) {
            let mut failed = None;
            let name = format!("bench-{letter}.test");
            let otpd = Otpd::start_in_namespace_as(&namespace.name, &name, |socket, state| {
                failed = with_key(state, &key).err();
                config(socket, state, &bridge_store, &bridge_mail)
            });
            if let Some(error) = failed {
                return Err(error);
            }
            let pam = setup.our_service_for(&otpd);
            started.push(Host { otpd, pam });
        }
        Ok(PgHosts {
            local,
            hosts: started,
            poolers,
            _sink: sink,
            pg,
            count_rows,
            _ca: ca,
            _secrets: secrets,
            bridge,
        })
    }

    /// The server's counters now.
    pub fn snapshot(&self) -> Result<Snapshot, BenchError> {
        Snapshot::take(&self.pg, DB, ROLE)
    }

    /// The hosts' addresses on the bridge, `.2` first.
    pub fn bridge_addresses(&self) -> Vec<Ipv4Addr> {
        self.bridge.hosts.iter().map(|h| h.client_addr).collect()
    }

    /// Runs our login in `loops` loops on each host `on` names at once (loop `i` asks host
    /// `i / loops`), users tagged `tag`, and checks from the sinks' mailbox and the hosts'
    /// audit logs that each login (warm-up included) issued, mailed and verified exactly one
    /// code. CPU is watched for this process and every host's otpd.
    pub fn run(
        &self,
        mailbox: &Arc<Mailbox>,
        tag: &str,
        on: On,
        loops: usize,
        warmup: u64,
        until: Until,
    ) -> Result<PgRun, BenchError> {
        let used: Vec<&Host> = match on {
            On::Loopback => vec![&self.local],
            On::Pooled(n) => match self.poolers.get(n) {
                Some(pooler) => vec![&pooler.host],
                None => return Err(BenchError::Setup(format!("no pooler {n}"))),
            },
            On::Bridge(n) => {
                if n == 0 || n > self.hosts.len() {
                    return Err(BenchError::Setup(format!(
                        "{n} hosts asked for, {} started in namespaces",
                        self.hosts.len()
                    )));
                }
                self.hosts.iter().take(n).collect()
            }
        };
        if loops == 0 {
            return Err(BenchError::Setup("a scenario of 0 loops".into()));
        }
        let hosts = used.len();
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
        let place = match on {
            On::Loopback => "on loopback".to_string(),
            On::Pooled(n) => format!(
                "on loopback through {} in transaction mode",
                self.poolers.get(n).map_or("?", |p| p.release.name())
            ),
            On::Bridge(_) => format!("each in its own network namespace on 198.18.{SUBNET}.0/24"),
        };
        Ok(PgRun {
            check: format!(
                "PostgreSQL, {hosts} host(s) {place} × {loops} loop(s): {logins} logins, {logins} \
                 codes issued, mailed and verified, each exactly once"
            ),
            run,
            cost,
        })
    }
}

/// The bridge on [`SUBNET`] with `hosts` namespaces, or why it cannot be made.
fn make_bridge(hosts: usize) -> Result<Bridge, BenchError> {
    let count = u8::try_from(hosts)
        .ok()
        .filter(|n| (1..=26).contains(n))
        .ok_or_else(|| BenchError::Setup(format!("{hosts} hosts: 1 to 26 fit on the bridge")))?;
    let ip = Command::new("ip").arg("-V").output();
    if !ip.is_ok_and(|out| out.status.success()) {
        return Err(BenchError::Setup(
            "the multi-host PostgreSQL scenario puts each otpd in a network namespace, and `ip` \
             (iproute2) is missing: apt-get install iproute2, or leave PostgreSQL out with \
             --no-postgres"
                .into(),
        ));
    }
    Bridge::create(SUBNET, count).map_err(|refused| {
        BenchError::Setup(format!(
            "the multi-host PostgreSQL scenario puts each otpd in a network namespace of its own \
             on a bridge, and {refused}: run as root (bench/run does), or leave PostgreSQL out \
             with --no-postgres"
        ))
    })
}

/// otpd's whole config: the benchmark's (every user required, caps that never decide) with
/// the `[store]` section `store`, mailing to the `[[mail.servers]]` entry `server` (both as
/// the end-to-end tests' `HostConfig` writes them).
fn config(socket: &Path, state_dir: &Path, store: &str, server: &str) -> String {
    format!(
        "[daemon]\nsocket = \"{}\"\nstate_dir = \"{}\"\n\n{store}\n{}\n\n\
         [mail]\nfrom = \"otp@example.test\"\n\n{server}",
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
