//! Shared fixtures for the store's unit tests: a fresh database, sane limits, a seeded RNG.

use std::cell::Cell;

use common::secret::SecretString;
use rand::SeedableRng;
use rand::rngs::StdRng;
use tempfile::TempDir;

use super::{AuditRecord, IssueOutcome, IssueRequest, Limits, SqliteStore, UserRecord};
use crate::server_key::ServerKey;

/// A fixed "now" far from zero, so `now - window` never goes negative in the tests.
pub const T0: i64 = 1_700_000_000;

/// The server key every test store uses (bytes 0x4d = 77).
pub fn key() -> ServerKey {
    ServerKey::from_bytes([0x4d; 32])
}

/// A store on a new file `otpd.db` in a temporary directory.
pub fn open_store() -> (TempDir, SqliteStore) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(&dir.path().join("otpd.db"), key()).expect("open store");
    (dir, store)
}

/// Limits with every rule on and room to exercise it.
pub fn limits() -> Limits {
    Limits {
        code_length: 6,
        valid_secs: 600,
        max_attempts: 5,
        resend_cooldown_secs: 30,
        max_sends_per_hour: 10,
        max_sends_per_day: 50,
        max_user_failures: 10,
        max_host_failures: 50,
        lockout_secs: 900,
    }
}

thread_local! {
    /// Each test runs on its own thread, so each gets the same deterministic sequence of seeds.
    static NEXT_SEED: Cell<u64> = const { Cell::new(1) };
}

/// A seeded RNG, different on every call within a test (so challenge ids never collide) and
/// the same sequence on every run.
pub fn rng() -> StdRng {
    let seed = NEXT_SEED.with(|s| {
        let seed = s.get();
        s.set(seed + 1);
        seed
    });
    StdRng::seed_from_u64(seed)
}

/// An issue request from no remote host.
pub fn request<'a>(user: &'a str, protocol: &'a str) -> IssueRequest<'a> {
    IssueRequest {
        user,
        protocol,
        service: "sshd",
        rhost: None,
    }
}

/// The challenge of an issued or reused code.
pub fn challenge_of(outcome: &IssueOutcome) -> String {
    match outcome {
        IssueOutcome::Issued { challenge, .. } | IssueOutcome::Reused { challenge, .. } => {
            challenge.clone()
        }
        other => panic!("no code: {other:?}"),
    }
}

/// The code of an issued outcome.
pub fn secret_of(outcome: &IssueOutcome) -> SecretString {
    match outcome {
        IssueOutcome::Issued { code, .. } => code.clone(),
        other => panic!("not issued: {other:?}"),
    }
}

/// The code of an issued outcome, as plain text.
pub fn issued_code(outcome: &IssueOutcome) -> String {
    secret_of(outcome).expose().to_string()
}

/// A user record with an email and all protocols.
pub fn user_record(name: &str) -> UserRecord {
    UserRecord {
        name: name.to_string(),
        email: Some(format!("{name}@example.org")),
        enabled: true,
        protocols: None,
        language: None,
        phone: None,
    }
}

impl SqliteStore {
    /// The single integer a test query returns.
    pub fn count_rows(&self, sql: &str) -> i64 {
        self.conn
            .query_row(sql, [], |row| row.get(0))
            .expect("test query")
    }

    /// Runs `sql` on the file, as a hand edit would (times SQLite's own clock set).
    pub fn run_sql(&self, sql: &str) {
        self.conn.execute_batch(sql).expect("test statement");
    }
}

/// Root's "user_added" audit row for alice at [`T0`], with `detail` to find it by.
pub fn user_added(detail: &str) -> AuditRecord<'_> {
    AuditRecord {
        time: T0,
        event: "user_added",
        user: Some("alice"),
        service: None,
        protocol: None,
        rhost: None,
        caller_uid: Some(0),
        detail: Some(detail),
    }
}
