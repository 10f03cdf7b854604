//! A streaming hot standby of a test [`Postgres`], for the failover tests (issue #20): otpd is
//! given both servers, primary first, and must write only to the one that takes writes, fail
//! closed while neither does, and follow a promoted standby without a restart.
//!
//! The standby is a `pg_basebackup -R` copy of the primary (taken over the primary's private
//! Unix socket, where a `local replication` entry trusts the `postgres` user) in a directory
//! of its own, on its own port, with the same TLS certificate, so otpd verifies it as it does
//! the primary. PostgreSQL 15's defaults (`wal_level = replica`, `max_wal_senders = 10`,
//! `hot_standby = on`) already allow it; only pg_hba needs the entry. Like the primary it runs
//! as `postgres`, is stopped when dropped, and is asked questions with `psql`.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use super::{BIN, Postgres, check, free_port, install};

/// How long a standby may take to replay what the primary wrote.
const CATCH_UP: Duration = Duration::from_secs(30);

impl Postgres {
    /// Starts a hot standby of this server (the primary), streaming its WAL, and waits until
    /// it has replayed everything written so far.
    pub fn start_standby(&self) -> Postgres {
        // Replication over the Unix socket only, for the test's own `postgres` user.
        let hba = self.data().join("pg_hba.conf");
        let mut entries = fs::read_to_string(&hba).expect("read pg_hba.conf");
        entries.push_str("local replication postgres trust\n");
        fs::write(&hba, entries).expect("write pg_hba.conf");
        self.psql("postgres", "SELECT pg_reload_conf()");

        let dir = tempfile::Builder::new()
            .prefix("e2e-pg-standby-")
            .tempdir()
            .expect("tempdir");
        let d = dir.path();
        std::os::unix::fs::chown(d, Some(self.uid), Some(self.gid)).expect("chown");
        fs::set_permissions(d, fs::Permissions::from_mode(0o700)).expect("chmod");
        // The primary's certificate: issued for 127.0.0.1 and localhost, so it fits here too.
        for (name, mode) in [("server.pem", 0o644), ("server.key", 0o600)] {
            install(
                &self.dir().join(name),
                &d.join(name),
                mode,
                (self.uid, self.gid),
            );
        }
        let standby = Postgres {
            dir,
            port: free_port(),
            uid: self.uid,
            gid: self.gid,
        };
        let data = standby.data();
        check(
            "pg_basebackup",
            standby
                .command(&format!("{BIN}/pg_basebackup"))
                .arg("-h")
                .arg(self.dir())
                .args(["-p", &self.port.to_string(), "-U", "postgres", "-D"])
                .arg(&data)
                // -R: standby.signal and primary_conninfo, so it starts as this one's standby.
                .args(["-R", "-X", "stream", "-c", "fast", "--no-sync"])
                .output()
                .expect("run pg_basebackup"),
        );
        // The copied postgresql.conf names the primary's port, socket and certificate; the
        // later lines win.
        let mut conf = fs::read_to_string(data.join("postgresql.conf")).expect("read conf");
        let d = standby.dir();
        conf.push_str(&format!(
            "\n# the standby's own\nport = {}\nunix_socket_directories = '{}'\n\
             ssl_cert_file = '{}'\nssl_key_file = '{}'\n",
            standby.port,
            d.display(),
            d.join("server.pem").display(),
            d.join("server.key").display()
        ));
        fs::write(data.join("postgresql.conf"), conf).expect("write conf");
        standby.start();
        assert!(standby.in_recovery(), "the copy did not start as a standby");
        standby.catch_up_with(self);
        standby
    }

    /// Whether this server is a standby (in recovery), not taking writes.
    pub fn in_recovery(&self) -> bool {
        self.psql("postgres", "SELECT pg_is_in_recovery()").trim() == "t"
    }

    /// Waits until this standby has replayed everything `primary` has written so far.
    pub fn catch_up_with(&self, primary: &Postgres) {
        let written = primary.psql("postgres", "SELECT pg_current_wal_lsn()");
        let replayed = format!(
            "SELECT pg_last_wal_replay_lsn() >= '{}'::pg_lsn",
            written.trim()
        );
        let deadline = Instant::now() + CATCH_UP;
        while self.psql("postgres", &replayed).trim() != "t" {
            assert!(
                Instant::now() < deadline,
                "the standby did not replay up to {} within {CATCH_UP:?}:\n{}",
                written.trim(),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Promotes this standby to a primary that takes writes, and waits until it does.
    pub fn promote(&self) {
        check(
            "pg_ctl promote",
            self.pg_ctl()
                .args(["-w", "-t", "30", "promote"])
                .output()
                .expect("run pg_ctl"),
        );
        assert!(!self.in_recovery(), "still a standby after promotion");
    }
}
