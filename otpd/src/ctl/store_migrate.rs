//! `otpctl store migrate --to postgresql`: copies this host's SQLite state into the
//! PostgreSQL database its config names (`store::migrate` says what is copied and why).
//!
//! It runs on the host, as root, without otpd: it reads the config otpd reads, the state
//! directory's database and server key, and writes to PostgreSQL directly. The order an admin
//! follows is: write `[store] backend = "postgresql"` and its settings into the config (otpd
//! reads the config at start, so a running otpd stays on SQLite), stop otpd, migrate, start
//! otpd. Every check that can refuse runs before anything is written, and the write is one
//! transaction, so a refusal or a failure leaves both databases as they were.

use std::path::Path;
use std::time::Duration;

use common::client::{self, ClientError, ClientOptions};
use common::config::{Config, StoreConfig};
use common::text::escape_for_terminal;
use common::wire::Request;
use serde::Serialize;

use super::{Exit, Io};
use crate::clock::{Clock, SystemClock};
use crate::lifecycle::{DATABASE_FILE, open_postgres};
use crate::server_key::ServerKey;
use crate::store::migrate::{Snapshot, TABLES};
use crate::store::{Conflict, Imported, Merged, Store};

/// How long the whole copy may take: it is one transaction, and past this it is rolled back.
/// Also how long PostgreSQL may make it wait for a lock another host holds.
pub const COPY_DEADLINE: Duration = Duration::from_secs(600);

/// How long otpd may take to answer the check that it is stopped.
const PING_DEADLINE: Duration = Duration::from_secs(5);

/// What `--json` prints.
#[derive(Debug, Serialize)]
struct Report<'a> {
    source: String,
    target: String,
    /// `copy` (into an empty database) or `merge`.
    mode: &'static str,
    copied: Vec<Count<'a>>,
    /// Merge only: users whose recovery codes stayed the database's.
    recovery_codes_kept: Vec<String>,
    /// Merge only: when this host was copied or merged before (unix time), if it was; only
    /// what it wrote since was merged.
    merged_before: Option<i64>,
}

#[derive(Debug, Serialize)]
struct Count<'a> {
    table: &'a str,
    /// Rows read from SQLite.
    read: u64,
    /// Rows added (or, for a merge's lockouts and addresses, combined) in PostgreSQL.
    rows: u64,
}

/// Runs the migration with the config at `config_path`; `socket` (from `--socket`) overrides
/// the config's for the check that otpd is stopped. With `merge`, into a database other hosts
/// already use.
pub fn run(
    config_path: &Path,
    socket: Option<&Path>,
    merge: bool,
    json: bool,
    io: &mut Io<'_>,
) -> Exit {
    match migrate(config_path, socket, merge) {
        Ok(report) => {
            if json {
                io.out(&super::output::json(&report));
            } else {
                print(&report, io);
            }
            Exit::Ok
        }
        Err(why) => {
            // Each line escaped: the text holds paths, user names and the server's words.
            let lines: Vec<String> = why.lines().map(escape_for_terminal).collect();
            io.err(&format!("otpctl store migrate: {}", lines.join("\n")));
            io.err("Nothing was copied.");
            Exit::Failed
        }
    }
}

fn print(report: &Report<'_>, io: &mut Io<'_>) {
    let verb = if report.mode == "merge" {
        "merged"
    } else {
        "copied"
    };
    io.out(&format!(
        "{verb} {} into {}:",
        escape_for_terminal(&report.source),
        escape_for_terminal(&report.target)
    ));
    io.out(&format!("  {:<15} {:>9} {:>9}", "table", "read", "written"));
    for count in &report.copied {
        io.out(&format!(
            "  {:<15} {:>9} {:>9}",
            count.table, count.read, count.rows
        ));
    }
    if let Some(at) = report.merged_before {
        io.out(&format!(
            "This host was copied or merged before ({} UTC): only what it wrote since was \
             merged, and what the database did with the older rows stands.",
            common::timefmt::utc(at)
        ));
    }
    if !report.recovery_codes_kept.is_empty() {
        let users: Vec<String> = report
            .recovery_codes_kept
            .iter()
            .map(|u| escape_for_terminal(u))
            .collect();
        io.out(&format!(
            "Recovery codes kept as the database had them (this host's set was not copied; \
             tell these users their codes from this host no longer work): {}",
            users.join(", ")
        ));
    }
    io.err(
        "The SQLite database was left as it was. Start otpd now (systemctl start otpd): it uses PostgreSQL.",
    );
}

fn migrate(
    config_path: &Path,
    socket: Option<&Path>,
    merge: bool,
) -> Result<Report<'static>, String> {
    let config = Config::load(config_path).map_err(|e| e.to_string())?;
    if config.relay.is_some() {
        return Err(format!(
            "{} is a relay's config ([relay]): a relay keeps no state to migrate",
            config_path.display()
        ));
    }
    let StoreConfig::Postgresql(pg) = &config.store else {
        return Err(format!(
            "{} uses SQLite: write [store] backend = \"postgresql\" and its settings there first \
             (a running otpd keeps SQLite until it is restarted), stop otpd, then migrate",
            config_path.display()
        ));
    };
    let socket = socket.unwrap_or(&config.daemon.socket);
    otpd_is_stopped(socket)?;
    let state_dir = &config.daemon.state_dir;
    let database = state_dir.join(DATABASE_FILE);
    // Read (and locked) before PostgreSQL is touched: no otpd can start on the file until the
    // copy is over, and a file that cannot be copied stops it before the target is opened.
    let snapshot = Snapshot::read(&database)
        .map_err(|e| e.to_string())?
        .of_host(&crate::host_name::this_machine());
    let key = ServerKey::load_existing(state_dir).map_err(|e| e.to_string())?;
    let store = open_postgres(pg, key, COPY_DEADLINE).map_err(|e| e.to_string())?;
    let target = store.backend();
    let now = SystemClock.now();
    let report =
        |mode, written: Vec<(&'static str, u64)>, recovery_codes_kept, merged_before| Report {
            source: database.display().to_string(),
            target: target.clone(),
            mode,
            copied: snapshot
                .counts()
                .into_iter()
                .zip(written)
                .map(|((table, read), (_, rows))| Count { table, read, rows })
                .collect(),
            recovery_codes_kept,
            merged_before,
        };
    if merge {
        return match store.merge(&snapshot, now).map_err(|e| e.to_string())? {
            Merged::Done {
                written,
                recovery_kept,
                merged_before,
            } => Ok(report("merge", written, recovery_kept, merged_before)),
            Merged::Conflicts(conflicts) => Err(conflicting(&target, &conflicts)),
            Merged::AlreadyMerged(at) => Err(already(&target, at)),
        };
    }
    match store.import(&snapshot, now).map_err(|e| e.to_string())? {
        Imported::Copied(copied) => Ok(report("copy", copied, Vec::new(), None)),
        Imported::Refused(occupied) => {
            let tables: Vec<String> = occupied
                .iter()
                .map(|(table, rows)| format!("{table} ({rows} rows)"))
                .collect();
            Err(format!(
                "{target} is not empty: {}. A copy goes only into a database no otpd has used \
                 yet; to add this host to one other hosts use, run it again with --merge.",
                tables.join(", ")
            ))
        }
    }
}

/// The refusal of a merge whose users both sides hold differently, naming them per table.
fn conflicting(target: &str, conflicts: &[Conflict]) -> String {
    let mut lines = vec![format!(
        "{target} and this host hold these differently; settle each on one side (otpctl user \
         set-email, set-phone, set-language, set-protocols, enable or disable; otpctl breakglass \
         revoke) and merge again:"
    )];
    for table in TABLES {
        let users: Vec<String> = conflicts
            .iter()
            .filter(|c| c.table == table.name)
            .map(|c| format!("{} ({})", c.user, c.columns))
            .collect();
        if !users.is_empty() {
            lines.push(format!("  {}: {}", table.name, users.join(", ")));
        }
    }
    lines.join("\n")
}

/// The refusal of a state that was copied or merged before.
fn already(target: &str, at: i64) -> String {
    format!(
        "this host's state was already copied or merged into {target} ({} UTC): merging it \
         again would count its audit rows and sends twice",
        common::timefmt::utc(at)
    )
}

/// Refuses when otpd answers on `socket`: it would go on writing to SQLite after the copy.
/// No socket, or one nobody listens on, is a stopped otpd; anything else (no answer in time,
/// a stranger on the socket) cannot be told apart from a running one and is refused too.
fn otpd_is_stopped(socket: &Path) -> Result<(), String> {
    let options = ClientOptions {
        socket: socket.to_path_buf(),
        timeout: PING_DEADLINE,
        trusted_daemon_uids: super::connect::trusted_daemon_uids(),
    };
    match client::call(&options, &Request::Ping) {
        Ok(_answer) => Err(format!(
            "otpd is running (it answers on {}): stop it first (systemctl stop otpd), so no \
             login is written to SQLite after the copy",
            socket.display()
        )),
        Err(ClientError::Connect { source, .. })
            if matches!(
                source.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            Ok(())
        }
        Err(other) => Err(format!(
            "cannot tell whether otpd is stopped ({other}); stop it (systemctl stop otpd) and \
             try again"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAIL: &str = "[mail]\nfrom = \"a@example.com\"\n[[mail.servers]]\nname = \"relay\"\nhost = \"127.0.0.1\"\nsecurity = \"none\"\n";

    /// Runs the command on a config of `daemon_and_store` plus a mail section, in `dir`.
    fn migrate_with(dir: &Path, daemon_and_store: &str) -> (Exit, String, String) {
        let path = dir.join("otpd.toml");
        std::fs::write(&path, format!("{daemon_and_store}\n{MAIL}")).unwrap();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let mut input = std::io::empty();
        let mut io = Io {
            input: &mut input,
            out: &mut out,
            err: &mut err,
        };
        let exit = run(&path, None, false, false, &mut io);
        (
            exit,
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    }

    /// `[daemon]` with `socket` and a state directory in `dir`, and `[store]` on a PostgreSQL
    /// nobody listens for (the tests end before it is reached).
    fn on_postgresql(socket: &Path, dir: &Path) -> String {
        format!(
            "[daemon]\nsocket = \"{}\"\nstate_dir = \"{}/state\"\n\
             [store]\nbackend = \"postgresql\"\nhosts = [\"127.0.0.1:9\"]\ndbname = \"otp\"\n\
             user = \"otpd\"\ntls = \"none\"\n",
            socket.display(),
            dir.display()
        )
    }

    #[test]
    fn a_config_still_on_sqlite_is_refused_with_the_steps() {
        let dir = tempfile::tempdir().unwrap();
        let daemon = format!(
            "[daemon]\nsocket = \"{0}/otpd.sock\"\nstate_dir = \"{0}/state\"\n",
            dir.path().display()
        );
        let (exit, out, err) = migrate_with(dir.path(), &daemon);
        assert_eq!(exit, Exit::Failed);
        assert!(out.is_empty(), "{out}");
        assert!(
            err.contains("uses SQLite") && err.contains("[store] backend = \"postgresql\""),
            "{err}"
        );
        assert!(err.contains("Nothing was copied"), "{err}");
    }

    #[test]
    fn a_socket_nobody_listens_on_is_a_stopped_otpd_and_a_missing_database_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("otpd.sock");
        // The file an otpd that crashed leaves behind: nobody accepts on it.
        drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
        let config = on_postgresql(&socket, dir.path());
        let (exit, _, err) = migrate_with(dir.path(), &config);
        assert_eq!(exit, Exit::Failed);
        assert!(!err.contains("running"), "{err}");
        assert!(
            err.contains("state/otpd.db: no otpd database there"),
            "{err}"
        );
    }

    #[test]
    fn an_otpd_answering_on_the_socket_is_refused_before_anything_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("otpd.sock");
        let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        // A stand-in otpd that answers every ping.
        std::thread::spawn(move || {
            for mut stream in listener.incoming().flatten() {
                let _: Result<Request, _> = common::frame::read_frame(&mut stream);
                let pong = common::wire::Response::Pong {
                    version: "test".into(),
                };
                let _ = common::frame::write_frame(&mut stream, &pong);
            }
        });
        let config = on_postgresql(&socket, dir.path());
        let (exit, _, err) = migrate_with(dir.path(), &config);
        assert_eq!(exit, Exit::Failed);
        assert!(err.contains("otpd is running"), "{err}");
    }
}
