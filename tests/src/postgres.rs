//! A PostgreSQL 15 server of the test's own, in a temporary directory on loopback (and, for hosts
//! in network namespaces, on a bridge's address), speaking TLS with a [`TestCa`] server
//! certificate: only `hostssl` connections with SCRAM passwords are let in over TCP, so otpd
//! cannot fall back to plain text. It runs as the `postgres` user (it refuses to run as root), is
//! stopped and started again with `pg_ctl` for the outage tests, and is asked questions with
//! `psql` over its Unix socket.

use std::fs;
use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::tls::TestCa;

pub mod standby;

const BIN: &str = "/usr/lib/postgresql/15/bin";

/// A running PostgreSQL 15, stopped when dropped.
#[derive(Debug)]
pub struct Postgres {
    dir: tempfile::TempDir,
    /// The TCP port on 127.0.0.1.
    pub port: u16,
    uid: u32,
    gid: u32,
}

fn postgres_ids() -> (u32, u32) {
    let id = |flag: &str| -> u32 {
        let out = Command::new("id")
            .args([flag, "postgres"])
            .output()
            .expect("id postgres");
        assert!(
            out.status.success(),
            "no postgres user: install postgresql-15"
        );
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("a numeric id")
    };
    (id("-u"), id("-g"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("local address")
        .port()
}

/// Copies `from` to `to`, owned by `owner` (uid, gid) with `mode`: a file the server reads.
fn install(from: &Path, to: &Path, mode: u32, owner: (u32, u32)) {
    fs::copy(from, to)
        .unwrap_or_else(|e| panic!("copy {} to {}: {e}", from.display(), to.display()));
    std::os::unix::fs::chown(to, Some(owner.0), Some(owner.1)).expect("chown");
    fs::set_permissions(to, fs::Permissions::from_mode(mode)).expect("chmod");
}

fn check(what: &str, out: Output) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl Postgres {
    /// Makes a cluster, with `ca`'s server certificate (for 127.0.0.1 and localhost), and
    /// starts it.
    pub fn start_with_tls(ca: &TestCa) -> Postgres {
        Postgres::start_with_tls_on(ca, None)
    }

    /// [`Postgres::start_with_tls`], also listening on `addr` and letting in `hostssl`
    /// connections from `clients` (CIDR): the database of hosts in network namespaces on a
    /// bridge. `ca`'s server certificate must name `addr` ([`TestCa::with_server_ips`]).
    pub fn start_with_tls_for_network(ca: &TestCa, addr: Ipv4Addr, clients: &str) -> Postgres {
        Postgres::start_with_tls_on(ca, Some((addr, clients)))
    }

    fn start_with_tls_on(ca: &TestCa, network: Option<(Ipv4Addr, &str)>) -> Postgres {
        let (uid, gid) = postgres_ids();
        let dir = tempfile::Builder::new()
            .prefix("e2e-pg-")
            .tempdir()
            .expect("tempdir");
        let d = dir.path().to_path_buf();
        let d = d.as_path();
        std::os::unix::fs::chown(d, Some(uid), Some(gid)).expect("chown");
        fs::set_permissions(d, fs::Permissions::from_mode(0o700)).expect("chmod");
        for (from, to, mode) in [
            (ca.server_cert(), "server.pem", 0o644),
            (ca.server_key(), "server.key", 0o600),
        ] {
            install(&from, &d.join(to), mode, (uid, gid));
        }
        let pg = Postgres {
            port: free_port(),
            dir,
            uid,
            gid,
        };
        let data = pg.data();
        check(
            "initdb",
            pg.command(&format!("{BIN}/initdb"))
                .arg("-D")
                .arg(&data)
                .args([
                    "-U",
                    "postgres",
                    "--auth-local=trust",
                    "--encoding=UTF8",
                    "--locale=C",
                    "--no-sync",
                ])
                .output()
                .expect("run initdb"),
        );
        // TCP only with TLS and a SCRAM password; the Unix socket (in the private dir) for the
        // test's own psql.
        let mut hba =
            "local all all trust\nhostssl all all 127.0.0.1/32 scram-sha-256\n".to_string();
        let mut listen = "127.0.0.1".to_string();
        if let Some((addr, clients)) = network {
            hba.push_str(&format!("hostssl all all {clients} scram-sha-256\n"));
            listen.push_str(&format!(",{addr}"));
        }
        fs::write(data.join("pg_hba.conf"), hba).expect("write pg_hba.conf");
        let mut conf = fs::read_to_string(data.join("postgresql.conf")).expect("read conf");
        conf.push_str(&format!(
            "\nlisten_addresses = '{listen}'\nport = {}\nunix_socket_directories = '{}'\n\
             ssl = on\nssl_cert_file = '{}'\nssl_key_file = '{}'\n\
             fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n",
            pg.port,
            d.display(),
            d.join("server.pem").display(),
            d.join("server.key").display()
        ));
        fs::write(data.join("postgresql.conf"), conf).expect("write conf");
        pg.start();
        pg
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        command
            .uid(self.uid)
            .gid(self.gid)
            .current_dir(self.dir.path())
            .env_remove("PGPASSWORD");
        command
    }

    /// `pg_ctl -D DATA`, run as the cluster's owner.
    fn pg_ctl(&self) -> Command {
        let mut command = self.command(&format!("{BIN}/pg_ctl"));
        command.arg("-D").arg(self.data());
        command
    }

    /// Starts the server (again) and waits until it takes connections.
    pub fn start(&self) {
        check(
            "pg_ctl start",
            self.pg_ctl()
                .arg("-l")
                .arg(self.dir.path().join("postgres.log"))
                .args(["-w", "-t", "30", "start"])
                .stdout(std::process::Stdio::null())
                .output()
                .expect("run pg_ctl"),
        );
    }

    /// Stops the server (fast: open sessions are ended) and waits until it is gone.
    pub fn stop(&self) {
        check(
            "pg_ctl stop",
            self.pg_ctl()
                .args(["-m", "fast", "-w", "stop"])
                .output()
                .expect("run pg_ctl"),
        );
    }

    /// The postmaster and its children (backends, background workers), by process id.
    fn processes(&self) -> Vec<i32> {
        let pidfile =
            fs::read_to_string(self.data().join("postmaster.pid")).expect("postmaster.pid");
        let postmaster: i32 = pidfile
            .lines()
            .next()
            .and_then(|l| l.trim().parse().ok())
            .expect("a pid in postmaster.pid");
        let out = Command::new("ps")
            .args(["-o", "pid=", "--ppid", &postmaster.to_string()])
            .output()
            .expect("run ps");
        let mut pids = vec![postmaster];
        pids.extend(
            String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .filter_map(|p| p.parse::<i32>().ok()),
        );
        pids
    }

    /// Freezes the server (SIGSTOP to the postmaster and each child by id): connections stay
    /// open and nothing answers, as when a database host hangs.
    pub fn freeze(&self) {
        for pid in self.processes() {
            // SAFETY: kill(2) with a pid read from the cluster's own postmaster.pid and ps.
            unsafe { libc::kill(pid, libc::SIGSTOP) };
        }
    }

    /// Lets a frozen server run again.
    pub fn thaw(&self) {
        for pid in self.processes() {
            // SAFETY: as in `freeze`.
            unsafe { libc::kill(pid, libc::SIGCONT) };
        }
    }

    /// Runs `sql` in `dbname` as the superuser over the Unix socket; the rows, `|`-separated,
    /// one a line.
    pub fn psql(&self, dbname: &str, sql: &str) -> String {
        check(
            &format!("psql {sql}"),
            self.command(&format!("{BIN}/psql"))
                .arg("-h")
                .arg(self.dir.path())
                .args(["-p", &self.port.to_string(), "-U", "postgres", "-d", dbname])
                .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql])
                .output()
                .expect("run psql"),
        )
    }

    /// A login role `role` with `password` owning a new database `dbname`: what an admin
    /// makes for otpd.
    pub fn create_role_and_database(&self, role: &str, password: &str, dbname: &str) {
        self.psql(
            "postgres",
            &format!("CREATE ROLE {role} LOGIN PASSWORD '{password}'"),
        );
        self.psql(
            "postgres",
            &format!("CREATE DATABASE {dbname} OWNER {role}"),
        );
    }

    /// The server's log.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("postgres.log")).unwrap_or_default()
    }

    /// The user and group the cluster runs as (a program beside it, such as PgBouncer, may run
    /// as them too).
    pub fn owner(&self) -> (u32, u32) {
        (self.uid, self.gid)
    }

    /// The directory of the cluster.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self
            .pg_ctl()
            .args(["-m", "immediate", "-w", "stop"])
            .output();
    }
}
