//! A PgBouncer of the test's own in front of a [`Postgres`], in transaction mode: what a fleet
//! puts between its hosts and one primary so that thousands of hosts do not each hold their
//! own server connections (bench/README.md's paper estimate). Two releases ([`Release`]):
//! Debian 12's package (1.18), which keeps no prepared statements in transaction mode, and
//! Debian 13's 1.24.1, built from its source by tests/install-deps, which keeps each client's.
//!
//! It listens on 127.0.0.1 with the same [`TestCa`] server certificate as the cluster (otpd
//! verifies it as it would the server), takes SCRAM passwords from its own `userlist.txt`, and
//! reaches the cluster over TLS verified against the CA. Its server pool is kept smaller than
//! the clients' pools, so clients' transactions really do share server connections. It runs in
//! the foreground as the `postgres` user (it refuses root) and is killed when dropped.

use std::fs;
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::postgres::Postgres;
use crate::tls::TestCa;

/// Which PgBouncer runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    /// Debian 12's package, 1.18: in transaction mode a prepared statement stays on the server
    /// connection it was made on.
    Debian12,
    /// 1.24.1, Debian 13's, built by tests/install-deps: with `max_prepared_statements` it
    /// prepares each client's statements on whichever server connection runs them.
    KeepsPreparedStatements,
}

impl Release {
    /// Every release, the one Debian 12 ships first.
    pub const ALL: [Release; 2] = [Release::Debian12, Release::KeepsPreparedStatements];

    /// How a report names it.
    pub fn name(self) -> &'static str {
        match self {
            Release::Debian12 => "PgBouncer 1.18",
            Release::KeepsPreparedStatements => "PgBouncer 1.24.1, prepared statements kept",
        }
    }

    /// What otpd's `[store]` says behind it.
    pub fn otpd_settings(self) -> &'static str {
        match self {
            Release::Debian12 => "behind_pooler = true\n",
            Release::KeepsPreparedStatements => {
                "behind_pooler = true\npooler_keeps_prepared_statements = true\n"
            }
        }
    }

    fn program(self) -> &'static str {
        match self {
            Release::Debian12 => "/usr/sbin/pgbouncer",
            Release::KeepsPreparedStatements => "/var/cache/otp-tests/pgbouncer-1.24.1/pgbouncer",
        }
    }

    fn settings(self) -> &'static str {
        match self {
            Release::Debian12 => "",
            Release::KeepsPreparedStatements => "max_prepared_statements = 200\n",
        }
    }
}

/// A running PgBouncer, killed when dropped.
#[derive(Debug)]
pub struct PgBouncer {
    child: Child,
    dir: tempfile::TempDir,
    /// The port it listens on, on 127.0.0.1.
    pub port: u16,
}

impl PgBouncer {
    /// Starts Debian 12's PgBouncer for `pg`'s database `dbname` in `pool_mode = transaction`,
    /// letting in `user` with `password` (also to its admin console) and logging in to the
    /// cluster as them, with at most `server_connections` server connections; waits until it
    /// takes connections.
    pub fn start_in_transaction_mode(
        pg: &Postgres,
        ca: &TestCa,
        login: (&str, &str, &str),
        server_connections: u32,
    ) -> PgBouncer {
        PgBouncer::start_release(Release::Debian12, pg, ca, login, server_connections)
    }

    /// [`PgBouncer::start_in_transaction_mode`] with the given release.
    pub fn start_release(
        release: Release,
        pg: &Postgres,
        ca: &TestCa,
        (dbname, user, password): (&str, &str, &str),
        server_connections: u32,
    ) -> PgBouncer {
        let (uid, gid) = pg.owner();
        let dir = tempfile::Builder::new()
            .prefix("e2e-pgbouncer-")
            .tempdir()
            .expect("tempdir");
        let d = dir.path();
        let owned = |path: &Path, mode: u32| {
            std::os::unix::fs::chown(path, Some(uid), Some(gid)).expect("chown");
            fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
        };
        owned(d, 0o700);
        for (from, to, mode) in [
            (ca.server_cert(), "server.pem", 0o644),
            (ca.server_key(), "server.key", 0o600),
            (ca.ca_cert(), "ca.pem", 0o644),
        ] {
            fs::copy(&from, d.join(to)).expect("copy a certificate");
            owned(&d.join(to), mode);
        }
        fs::write(
            d.join("userlist.txt"),
            format!("\"{user}\" \"{password}\"\n"),
        )
        .expect("write userlist.txt");
        owned(&d.join("userlist.txt"), 0o600);
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let ini = format!(
            "[databases]\n{dbname} = host=127.0.0.1 port={pg_port} dbname={dbname}\n\n\
             [pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n\
             auth_type = scram-sha-256\nauth_file = {d}/userlist.txt\n\
             pool_mode = transaction\ndefault_pool_size = {server_connections}\n\
             max_client_conn = 200\nadmin_users = {user}\n{release_settings}\
             client_tls_sslmode = require\nclient_tls_cert_file = {d}/server.pem\n\
             client_tls_key_file = {d}/server.key\n\
             server_tls_sslmode = verify-ca\nserver_tls_ca_file = {d}/ca.pem\n\
             logfile = {d}/pgbouncer.log\npidfile = {d}/pgbouncer.pid\n",
            pg_port = pg.port,
            d = d.display(),
            release_settings = release.settings(),
        );
        fs::write(d.join("pgbouncer.ini"), ini).expect("write pgbouncer.ini");
        owned(&d.join("pgbouncer.ini"), 0o600);
        let child = Command::new(release.program())
            .arg(d.join("pgbouncer.ini"))
            .uid(uid)
            .gid(gid)
            .current_dir(d)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run pgbouncer (tests/install-deps installs both releases)");
        let bouncer = PgBouncer { child, dir, port };
        bouncer.wait_until_listening();
        bouncer
    }

    fn wait_until_listening(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "pgbouncer did not listen: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A column of one of its admin console's `SHOW` lists, one value per row, asked as
    /// `user` with `password` (an admin: [`PgBouncer::start_release`]).
    pub fn show(&self, list: &str, column: &str, (user, password): (&str, &str)) -> Vec<String> {
        let output = Command::new("/usr/lib/postgresql/15/bin/psql")
            .arg(format!(
                "host=127.0.0.1 port={} dbname=pgbouncer user={user} sslmode=require",
                self.port
            ))
            .args(["-X", "-A", "-c", &format!("SHOW {list}")])
            .env("PGPASSWORD", password)
            .output()
            .expect("run psql");
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "SHOW {list}: {text}");
        let mut lines = text.lines();
        let header: Vec<&str> = lines.next().unwrap_or_default().split('|').collect();
        let at = header
            .iter()
            .position(|name| *name == column)
            .unwrap_or_else(|| panic!("SHOW {list} has no column {column}: {header:?}"));
        lines
            .filter(|line| line.contains('|'))
            .map(|line| line.split('|').nth(at).unwrap_or_default().to_string())
            .collect()
    }

    /// Its log.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("pgbouncer.log")).unwrap_or_default()
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
