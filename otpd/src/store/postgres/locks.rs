//! The advisory locks that make each rule atomic across hosts.
//!
//! Transaction-scoped (`pg_advisory_xact_lock`): released by `COMMIT` or `ROLLBACK`, and by the
//! server when a connection dies, so a crashed host never leaves one behind. Each kind of
//! subject has its own class (the first key); the second is the first 32 bits of a SHA-256 of
//! the subject, computed here, so a lock is written as two integers: it goes out in the same
//! message as the `BEGIN` (one round trip for both, see `unit`) with nothing of the subject's
//! text in the SQL. Two subjects with the same 32 bits only wait for each other; they never
//! share a decision. The schema's migration lock is a single 64-bit key, which PostgreSQL keeps
//! apart from every two-key lock.
//!
//! Order: a unit takes its locks in the order given, and every unit that takes several gives
//! them as user, then host: no two transactions wait on each other in a cycle.

use sha2::{Digest, Sha256};

/// One advisory lock a unit takes before its first statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Lock {
    /// A subject of a class: `pg_advisory_xact_lock(class, key)`.
    Subject {
        /// What kind of subject.
        class: i32,
        /// Which one.
        key: i32,
    },
    /// A lock of its own: `pg_advisory_xact_lock(key)`.
    Single(i64),
}

/// Everything decided about one user: codes, sends, failures, recovery codes, grants.
const USER: i32 = 1;
/// A remote address's failure count and lock.
const HOST: i32 = 2;
/// The notices to one user, for the per-hour cap and the once-per-event key.
const NOTICES: i32 = 3;
/// The notices to the admin (every user's).
const ADMIN_NOTICES: i32 = 4;

impl Lock {
    /// The lock on `user`.
    pub(super) fn user(user: &str) -> Lock {
        subject(USER, user)
    }

    /// The lock on the host key `host` (a canonical IP address).
    pub(super) fn host(host: &str) -> Lock {
        subject(HOST, host)
    }

    /// The lock on the notices to `user`, or to the admin when `to_admin`.
    pub(super) fn notices(user: &str, to_admin: bool) -> Lock {
        if to_admin {
            subject(ADMIN_NOTICES, "")
        } else {
            subject(NOTICES, user)
        }
    }

    fn sql(self) -> String {
        match self {
            Lock::Subject { class, key } => format!("SELECT pg_advisory_xact_lock({class}, {key})"),
            Lock::Single(key) => format!("SELECT pg_advisory_xact_lock({key})"),
        }
    }
}

/// The user's lock and then, for an IP address, the host's: what an answer decides about.
pub(super) fn user_and_host(user: &str, rhost: Option<&str>) -> Vec<Lock> {
    let mut locks = vec![Lock::user(user)];
    if let Some(host) = super::lockouts::host_key(rhost) {
        locks.push(Lock::host(&host));
    }
    locks
}

fn subject(class: i32, subject: &str) -> Lock {
    let digest = Sha256::digest(subject.as_bytes());
    let key = i32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]);
    Lock::Subject { class, key }
}

/// `first` (`BEGIN ..` or `SAVEPOINT ..`) and then each lock in order, as one simple query: if
/// any of it fails, the rest is not run.
pub(super) fn batch(first: &str, locks: &[Lock]) -> String {
    let mut sql = first.to_string();
    for lock in locks {
        sql.push_str("; ");
        sql.push_str(&lock.sql());
    }
    sql
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_are_integers_named_by_class_and_subject() {
        assert_eq!(Lock::user("alice"), Lock::user("alice"));
        assert_ne!(Lock::user("alice"), Lock::user("bob"));
        assert_ne!(Lock::user("x"), Lock::notices("x", false));
        assert_eq!(Lock::notices("alice", true), Lock::notices("bob", true));
        let sql = batch(
            "BEGIN",
            &[Lock::user("a'; DROP TABLE codes; --"), Lock::Single(7)],
        );
        assert!(!sql.contains("DROP"), "{sql}");
        assert!(
            sql.starts_with("BEGIN; SELECT pg_advisory_xact_lock(1, "),
            "{sql}"
        );
        assert!(sql.ends_with("; SELECT pg_advisory_xact_lock(7)"), "{sql}");
    }
}
