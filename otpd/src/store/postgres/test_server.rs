//! One real PostgreSQL 15 per test process, started on first use, and a fresh database for
//! each test.
//!
//! The cluster lives in a temporary directory: `initdb` (trust for the Unix socket, SCRAM
//! with a random password for TCP, so the tests log in as otpd would), then `postgres`
//! listening on 127.0.0.1 at a free port with its socket in the same directory. PostgreSQL
//! refuses to run as root, so under root (as the tests run) both run as the `postgres` system
//! user, who owns the directory. fsync is off: the tests check rules, not durability.
//!
//! The server runs under a small shell that waits for its standard input to close: the test
//! process holds the other end, which the kernel closes when the process exits however it
//! ends, so the shell then stops the server and deletes the directory. Nothing is skipped: if
//! the server cannot start, every test that needs it fails with the reason.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Where Debian's PostgreSQL 15 server programs are.
const BIN: &str = "/usr/lib/postgresql/15/bin";
/// The superuser `initdb` makes, whom the tests connect as.
const USER: &str = "otpd_test";

/// The running server.
#[derive(Debug)]
pub(super) struct Server {
    port: u16,
    password: String,
    /// The shell that stops the server when this end closes (at exit).
    _watchdog: Mutex<(Child, ChildStdin)>,
}

/// One test's own database on the shared server; dropped with the cluster at exit.
#[derive(Debug)]
pub(super) struct TestDb {
    /// The database's name (`t_N`).
    pub(super) name: String,
}

impl TestDb {
    /// A connection config for this database, as otpd would be given one.
    pub(super) fn config(&self) -> tokio_postgres::Config {
        server().config(&self.name)
    }

    /// A store on this database with the tests' key and a 30 s deadline, room for a copy or a
    /// merge of a whole snapshot (`otpctl store migrate` gives its own 10 minutes).
    pub(super) fn open_for_copy(&self) -> super::PgStore {
        self.open_for_copy_with(false)
    }

    /// [`TestDb::open_for_copy`] as otpd opens it behind a pooler in transaction mode.
    pub(super) fn open_for_copy_behind_pooler(&self) -> super::PgStore {
        self.open_for_copy_with(true)
    }

    fn open_for_copy_with(&self, behind_pooler: bool) -> super::PgStore {
        let options = super::PgOptions {
            deadline: Duration::from_secs(30),
            behind_pooler,
            ..super::PgOptions::default()
        };
        super::PgStore::open(self.config(), options, super::super::test_support::key())
            .expect("open")
    }
}

static SERVER: OnceLock<Result<Server, String>> = OnceLock::new();
static NEXT_DB: AtomicU64 = AtomicU64::new(1);

/// The server, started on first use. Panics with the reason when it cannot start.
pub(super) fn server() -> &'static Server {
    match SERVER.get_or_init(start) {
        Ok(server) => server,
        Err(reason) => panic!("the PostgreSQL 15 test server could not start: {reason}"),
    }
}

/// A new, empty database on the server.
pub(super) fn fresh_database() -> TestDb {
    let name = format!("t_{}", NEXT_DB.fetch_add(1, Ordering::Relaxed));
    server()
        .admin(&format!("CREATE DATABASE {name}"))
        .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
    TestDb { name }
}

impl Server {
    /// A config for database `dbname` over TCP with the password.
    pub(super) fn config(&self, dbname: &str) -> tokio_postgres::Config {
        let mut config = tokio_postgres::Config::new();
        config
            .host("127.0.0.1")
            .port(self.port)
            .user(USER)
            .password(&self.password)
            .dbname(dbname);
        config
    }

    /// Runs `sql` as the superuser on the `postgres` database.
    pub(super) fn admin(&self, sql: &str) -> Result<(), String> {
        self.run_in("postgres", sql)
    }

    /// Runs `sql` (any statements) as the superuser on database `dbname`.
    pub(super) fn run_in(&self, dbname: &str, sql: &str) -> Result<(), String> {
        let config = self.config(dbname);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        runtime.block_on(async {
            let (client, connection) = config
                .connect(tokio_postgres::NoTls)
                .await
                .map_err(|e| format!("{e}: {e:?}"))?;
            let driver = tokio::spawn(connection);
            let done = client
                .batch_execute(sql)
                .await
                .map_err(|e| format!("{e}: {e:?}"));
            drop(client);
            let _ = driver.await;
            done
        })
    }

    /// The superuser's password, to check that nothing shows it.
    pub(super) fn password_for_tests(&self) -> String {
        self.password.clone()
    }
}

fn start() -> Result<Server, String> {
    let dir = tempfile::Builder::new()
        .prefix("otpd-pg-")
        .tempdir()
        .map_err(|e| format!("temp dir: {e}"))?
        .keep();
    let owner = owner()?;
    if let Some((uid, gid)) = owner {
        nix::unistd::chown(&dir, Some(uid), Some(gid))
            .map_err(|e| format!("chown {}: {e}", dir.display()))?;
    }
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| format!("chmod {}: {e}", dir.display()))?;
    let password = format!("{:032x}", rand::random::<u128>());
    let pwfile = dir.join("pw");
    write_private(&pwfile, &password, owner)?;

    let data = dir.join("data");
    let initdb = as_owner(Command::new(format!("{BIN}/initdb")), owner, &dir)
        .arg("-D")
        .arg(&data)
        .args([
            "-U",
            USER,
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
        ])
        .arg(format!("--pwfile={}", pwfile.display()))
        .args(["--encoding=UTF8", "--locale=C", "--no-sync"])
        .output()
        .map_err(|e| format!("{BIN}/initdb: {e}"))?;
    if !initdb.status.success() {
        return Err(format!(
            "initdb failed ({}): {}{}",
            initdb.status,
            String::from_utf8_lossy(&initdb.stdout),
            String::from_utf8_lossy(&initdb.stderr)
        ));
    }

    let port = free_port()?;
    let log = dir.join("postgres.log");
    let script = r#"
        "$1/postgres" -D "$2" -p "$3" -k "$4" -c listen_addresses=127.0.0.1 \
            -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
            -c max_connections=400 >"$5" 2>&1 &
        pid=$!
        read _ignored
        kill -INT "$pid"
        wait "$pid"
        rm -rf "$4"
    "#;
    let mut watchdog = as_owner(Command::new("/bin/sh"), owner, &dir)
        .arg("-c")
        .arg(script)
        .arg("sh")
        .arg(BIN)
        .arg(&data)
        .arg(port.to_string())
        .arg(&dir)
        .arg(&log)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("/bin/sh: {e}"))?;
    let stdin = watchdog
        .stdin
        .take()
        .ok_or_else(|| "no pipe to the watchdog".to_string())?;
    let server = Server {
        port,
        password,
        _watchdog: Mutex::new((watchdog, stdin)),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match server.admin("SELECT 1") {
            Ok(()) => return Ok(server),
            Err(e) if Instant::now() > deadline => {
                let log = std::fs::read_to_string(&log).unwrap_or_default();
                return Err(format!(
                    "not ready within 30 s on port {port}: {e}\n--- postgres.log ---\n{log}"
                ));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// The uid and gid to run PostgreSQL as: `postgres` when we are root, else ourselves.
fn owner() -> Result<Option<(nix::unistd::Uid, nix::unistd::Gid)>, String> {
    if !nix::unistd::geteuid().is_root() {
        return Ok(None);
    }
    match nix::unistd::User::from_name("postgres") {
        Ok(Some(user)) => Ok(Some((user.uid, user.gid))),
        Ok(None) => Err(
            "running as root, and there is no `postgres` user to run PostgreSQL as \
             (install postgresql-15)"
                .into(),
        ),
        Err(e) => Err(format!("looking up the postgres user: {e}")),
    }
}

/// `command` set to run as `owner` (if any) in `dir`, with a plain environment.
fn as_owner(
    mut command: Command,
    owner: Option<(nix::unistd::Uid, nix::unistd::Gid)>,
    dir: &Path,
) -> Command {
    command
        .current_dir(dir)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("LC_ALL", "C");
    if let Some((uid, gid)) = owner {
        command.uid(uid.as_raw()).gid(gid.as_raw());
    }
    command
}

fn write_private(
    path: &Path,
    text: &str,
    owner: Option<(nix::unistd::Uid, nix::unistd::Gid)>,
) -> Result<(), String> {
    let mut file = std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    file.write_all(text.as_bytes())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if let Some((uid, gid)) = owner {
        nix::unistd::chown(path, Some(uid), Some(gid))
            .map_err(|e| format!("chown {}: {e}", path.display()))?;
    }
    Ok(())
}

/// A port nothing listens on now (the kernel's pick; freed again before PostgreSQL binds it).
fn free_port() -> Result<u16, String> {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("free port: {e}"))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("free port: {e}"))
}
