//! Lockouts: consecutive wrong answers per user and per remote host.
//!
//! Each failed verify adds one to the user's counter and, when the login comes from a remote
//! IP address, to that address's. Reaching the limit sets `locked_until = now + lockout_secs`
//! and starts the count again from zero; the lock ends by itself when `now` passes it, with no
//! cleanup. A success clears both counters. A new code does not: otherwise an attacker could
//! request a fresh code before every guess and never be locked out.
//!
//! Only an IP address is a host here. A missing remote host, an empty one, `localhost` or a
//! name sshd resolved (`UseDNS yes`) would otherwise be one shared counter: every console and
//! `su` login, or every client behind one name, locked out together by one user's typos.

use std::net::IpAddr;

use rusqlite::{Connection, OptionalExtension, params};

use super::{Limits, SqliteStore, StoreError};

const USER: &str = "user";
const HOST: &str = "host";

/// The host counter a login's remote host counts against: its address in canonical form
/// (`2001:DB8::1` and `2001:db8::1` are one host, `::ffff:192.0.2.7` is `192.0.2.7`), or
/// `None` when it is not an IP address.
pub(super) fn host_key(rhost: Option<&str>) -> Option<String> {
    let address: IpAddr = rhost?.trim().parse().ok()?;
    Some(address.to_canonical().to_string())
}

/// Until when the user or the host is locked out, or `None` if neither is. With both locked,
/// the later time, since the login can proceed only when both locks have ended.
pub(super) fn locked_until(
    conn: &Connection,
    user: &str,
    rhost: Option<&str>,
    now: i64,
) -> Result<Option<i64>, StoreError> {
    let until: Option<i64> = conn
        .prepare_cached(
            "SELECT max(locked_until) FROM lockouts
             WHERE locked_until > ?3
               AND ((kind = 'user' AND subject = ?1) OR (kind = 'host' AND subject = ?2))",
        )?
        .query_row(params![user, host_key(rhost), now], |row| row.get(0))?;
    Ok(until)
}

/// Counts one failure against the user and the host. Returns the lock's end if this failure
/// locked either of them out.
pub(super) fn record_failure(
    conn: &Connection,
    user: &str,
    rhost: Option<&str>,
    limits: &Limits,
    now: i64,
) -> Result<Option<i64>, StoreError> {
    let user_lock = count(conn, USER, user, limits.max_user_failures, limits, now)?;
    let host_lock = match host_key(rhost) {
        Some(host) => count(conn, HOST, &host, limits.max_host_failures, limits, now)?,
        None => None,
    };
    // `None` orders before any `Some`, so this is the later lock if either locked.
    Ok(user_lock.max(host_lock))
}

fn count(
    conn: &Connection,
    kind: &str,
    subject: &str,
    max: u32,
    limits: &Limits,
    now: i64,
) -> Result<Option<i64>, StoreError> {
    let failures: i64 = conn
        .prepare_cached(
            "INSERT INTO lockouts (kind, subject, failures, updated_at) VALUES (?1, ?2, 1, ?3)
             ON CONFLICT (kind, subject)
             DO UPDATE SET failures = failures + 1, updated_at = excluded.updated_at
             RETURNING failures",
        )?
        .query_row(params![kind, subject, now], |row| row.get(0))?;
    // A limit of zero allows no failures: the first one locks.
    if failures < i64::from(max) {
        return Ok(None);
    }
    let until = now.saturating_add(limits.lockout_secs);
    conn.prepare_cached(
        "UPDATE lockouts SET failures = 0, locked_until = ?3 WHERE kind = ?1 AND subject = ?2",
    )?
    .execute(params![kind, subject, until])?;
    Ok(Some(until))
}

/// Clears the user's and the host's counters after a success. Only called when neither is
/// locked, so deleting the rows loses nothing but expired lock times.
pub(super) fn reset(conn: &Connection, user: &str, rhost: Option<&str>) -> Result<(), StoreError> {
    conn.prepare_cached(
        "DELETE FROM lockouts
         WHERE (kind = 'user' AND subject = ?1) OR (kind = 'host' AND subject = ?2)",
    )?
    .execute(params![user, host_key(rhost)])?;
    Ok(())
}

/// One counter as an admin sees it: a host's, or a user's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lockout {
    /// The address (hosts) or login name (users).
    pub subject: String,
    /// Consecutive failures counted since the last lock or success.
    pub failures: u32,
    /// When the lock ends, if one is in force.
    pub locked_until: Option<i64>,
    /// When the counter last changed (unix seconds).
    pub updated_at: i64,
}

impl SqliteStore {
    /// Every remote address with failures counted or a lock in force at `now`, locked ones
    /// first (the longest lock first), then by failures: the order an admin reads them in.
    /// Rows an older otpd kept for host names are left out: they no longer count or lock.
    pub fn host_lockouts(&self, now: i64) -> Result<Vec<Lockout>, StoreError> {
        let rows: Vec<Lockout> = self
            .conn
            .prepare_cached(
                "SELECT subject, failures, locked_until, updated_at FROM lockouts
                 WHERE kind = 'host' AND (failures > 0 OR locked_until > ?1)
                 ORDER BY CASE WHEN locked_until > ?1 THEN locked_until ELSE 0 END DESC,
                          failures DESC, subject",
            )?
            .query_map(params![now], |row| lockout_of(row, now))?
            .collect::<Result<_, _>>()?;
        Ok(rows
            .into_iter()
            .filter(|row| host_key(Some(&row.subject)).as_deref() == Some(row.subject.as_str()))
            .collect())
    }

    /// How many remote addresses are locked out at `now`, for the status: a lock there refuses
    /// every user behind the address.
    /// Counted from the same rows as [`SqliteStore::host_lockouts`], so the two always agree.
    pub fn locked_hosts(&self, now: i64) -> Result<u64, StoreError> {
        let locked = self
            .host_lockouts(now)?
            .iter()
            .filter(|row| row.locked_until.is_some())
            .count();
        Ok(u64::try_from(locked).unwrap_or(u64::MAX))
    }

    /// Clears the lock and failure count of the host `address` (any spelling of it). Returns
    /// what there was to clear, `None` when the address had neither a lock in force nor
    /// failures counted.
    pub fn unlock_host(&mut self, address: &str, now: i64) -> Result<Option<Lockout>, StoreError> {
        let Some(key) = host_key(Some(address)) else {
            return Ok(None);
        };
        let tx = Self::immediate(&mut self.conn)?;
        let was = clear(&tx, HOST, &key, now)?;
        tx.commit()?;
        Ok(was)
    }
}

/// Deletes the counter of `kind` for `subject`, and returns it when it held failures or a lock
/// in force at `now` (an expired lock with no failures is nothing to clear).
pub(super) fn clear(
    conn: &Connection,
    kind: &str,
    subject: &str,
    now: i64,
) -> Result<Option<Lockout>, StoreError> {
    let was = conn
        .prepare_cached(
            "DELETE FROM lockouts WHERE kind = ?1 AND subject = ?2
             RETURNING subject, failures, locked_until, updated_at",
        )?
        .query_row(params![kind, subject], |row| lockout_of(row, now))
        .optional()?;
    Ok(was.filter(|l| l.failures > 0 || l.locked_until.is_some()))
}

/// Clears a user's lock and failure count; see [`clear`].
pub(super) fn clear_user(
    conn: &Connection,
    user: &str,
    now: i64,
) -> Result<Option<Lockout>, StoreError> {
    clear(conn, USER, user, now)
}

/// A row as a [`Lockout`], with a lock that ended before `now` left out.
fn lockout_of(row: &rusqlite::Row<'_>, now: i64) -> rusqlite::Result<Lockout> {
    let locked_until: Option<i64> = row.get(2)?;
    Ok(Lockout {
        subject: row.get(0)?,
        failures: u32::try_from(row.get::<_, i64>(1)?).unwrap_or(u32::MAX),
        locked_until: locked_until.filter(|&until| until > now),
        updated_at: row.get(3)?,
    })
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::super::{IssueOutcome, Limits, SqliteStore, VerifyOutcome};
    use common::secret::SecretString;

    const HOST_A: Option<&str> = Some("192.0.2.7");
    const HOST_B: Option<&str> = Some("198.51.100.9");

    fn wrong() -> SecretString {
        SecretString::new("not-a-code".into())
    }

    fn strict() -> Limits {
        Limits {
            resend_cooldown_secs: 0,
            max_attempts: 10,
            max_user_failures: 3,
            max_host_failures: 100,
            lockout_secs: 900,
            valid_secs: 3600,
            ..limits()
        }
    }

    fn verify(
        store: &mut SqliteStore,
        challenge: &str,
        user: &str,
        rhost: Option<&str>,
        code: &SecretString,
        limits: &Limits,
        now: i64,
    ) -> VerifyOutcome {
        store
            .verify(challenge, user, "ssh", rhost, code, limits, now)
            .unwrap()
    }

    fn issue(
        store: &mut SqliteStore,
        user: &str,
        rhost: Option<&str>,
        limits: &Limits,
        now: i64,
    ) -> IssueOutcome {
        let mut req = request(user, "ssh");
        req.rhost = rhost;
        store.issue(&req, limits, now, &mut rng()).unwrap()
    }

    #[test]
    fn the_user_is_locked_out_after_n_consecutive_failures_even_across_new_codes() {
        let (_dir, mut store) = open_store();
        let limits = strict();
        let first = issue(&mut store, "alice", HOST_A, &limits, T0);
        let c1 = challenge_of(&first);
        assert!(matches!(
            verify(&mut store, &c1, "alice", HOST_A, &wrong(), &limits, T0 + 1),
            VerifyOutcome::Wrong { .. }
        ));
        assert!(matches!(
            verify(&mut store, &c1, "alice", HOST_A, &wrong(), &limits, T0 + 2),
            VerifyOutcome::Wrong { .. }
        ));
        // A new code does not reset the count.
        let second = issue(&mut store, "alice", HOST_A, &limits, T0 + 3);
        let (c2, code2) = (challenge_of(&second), secret_of(&second));
        assert_eq!(
            verify(&mut store, &c2, "alice", HOST_A, &wrong(), &limits, T0 + 4),
            VerifyOutcome::LockedOut {
                until: T0 + 4 + 900
            }
        );
        // Locked: the right code is not even checked, and nothing can be issued.
        assert_eq!(
            verify(&mut store, &c2, "alice", HOST_A, &code2, &limits, T0 + 5),
            VerifyOutcome::LockedOut { until: T0 + 904 }
        );
        assert!(matches!(
            issue(&mut store, "alice", HOST_B, &limits, T0 + 6),
            IssueOutcome::LockedOut { until } if until == T0 + 904
        ));
        // The lock ends by itself, and the code it held back still works (it was not burnt).
        assert_eq!(
            verify(&mut store, &c2, "alice", HOST_A, &code2, &limits, T0 + 904),
            VerifyOutcome::Success
        );
    }

    #[test]
    fn the_lock_ends_at_its_time_without_any_cleanup() {
        let (_dir, mut store) = open_store();
        let limits = Limits {
            max_user_failures: 1,
            ..strict()
        };
        let c = challenge_of(&issue(&mut store, "alice", None, &limits, T0));
        assert_eq!(
            verify(&mut store, &c, "alice", None, &wrong(), &limits, T0),
            VerifyOutcome::LockedOut { until: T0 + 900 }
        );
        assert!(matches!(
            issue(&mut store, "alice", None, &limits, T0 + 899),
            IssueOutcome::LockedOut { .. }
        ));
        assert!(matches!(
            issue(&mut store, "alice", None, &limits, T0 + 900),
            IssueOutcome::Issued { .. }
        ));
    }

    #[test]
    fn a_success_resets_the_user_count() {
        let (_dir, mut store) = open_store();
        let limits = strict();
        let o = issue(&mut store, "alice", HOST_A, &limits, T0);
        let (c, code) = (challenge_of(&o), secret_of(&o));
        verify(&mut store, &c, "alice", HOST_A, &wrong(), &limits, T0 + 1);
        verify(&mut store, &c, "alice", HOST_A, &wrong(), &limits, T0 + 2);
        assert_eq!(
            verify(&mut store, &c, "alice", HOST_A, &code, &limits, T0 + 3),
            VerifyOutcome::Success
        );
        let c = challenge_of(&issue(&mut store, "alice", HOST_A, &limits, T0 + 4));
        assert!(matches!(
            verify(&mut store, &c, "alice", HOST_A, &wrong(), &limits, T0 + 5),
            VerifyOutcome::Wrong { .. }
        ));
        assert!(matches!(
            verify(&mut store, &c, "alice", HOST_A, &wrong(), &limits, T0 + 6),
            VerifyOutcome::Wrong { .. }
        ));
        assert!(matches!(
            verify(&mut store, &c, "alice", HOST_A, &wrong(), &limits, T0 + 7),
            VerifyOutcome::LockedOut { .. }
        ));
    }

    #[test]
    fn answers_to_unknown_or_dead_challenges_count_as_failures() {
        let (_dir, mut store) = open_store();
        let limits = strict();
        for t in 0..2 {
            assert_eq!(
                verify(
                    &mut store,
                    "ffffffffffffffffffffffffffffffff",
                    "alice",
                    None,
                    &wrong(),
                    &limits,
                    T0 + t
                ),
                VerifyOutcome::Dead
            );
        }
        assert!(matches!(
            verify(&mut store, "nope", "alice", None, &wrong(), &limits, T0 + 2),
            VerifyOutcome::LockedOut { .. }
        ));
    }

    #[test]
    fn a_host_is_locked_out_after_n_consecutive_failures_across_users() {
        let (_dir, mut store) = open_store();
        let limits = Limits {
            max_user_failures: 100,
            max_host_failures: 3,
            ..strict()
        };
        for (i, user) in ["alice", "bob", "carol"].into_iter().enumerate() {
            let c = challenge_of(&issue(&mut store, user, HOST_A, &limits, T0));
            let outcome = verify(&mut store, &c, user, HOST_A, &wrong(), &limits, T0 + 1);
            if i < 2 {
                assert!(
                    matches!(outcome, VerifyOutcome::Wrong { .. }),
                    "{outcome:?}"
                );
            } else {
                assert_eq!(outcome, VerifyOutcome::LockedOut { until: T0 + 901 });
            }
        }
        // Another user from that host is refused; the same user from elsewhere is not.
        assert!(matches!(
            issue(&mut store, "dave", HOST_A, &limits, T0 + 2),
            IssueOutcome::LockedOut { until } if until == T0 + 901
        ));
        assert!(matches!(
            issue(&mut store, "dave", HOST_B, &limits, T0 + 2),
            IssueOutcome::Issued { .. }
        ));
        // Logins without a remote host keep no host row and are not affected.
        assert!(matches!(
            issue(&mut store, "erin", None, &limits, T0 + 2),
            IssueOutcome::Issued { .. }
        ));
        assert!(matches!(
            issue(&mut store, "erin", HOST_A, &limits, T0 + 901),
            IssueOutcome::Issued { .. }
        ));
    }

    #[test]
    fn a_success_from_a_host_resets_the_host_count() {
        let (_dir, mut store) = open_store();
        let limits = Limits {
            max_user_failures: 100,
            max_host_failures: 3,
            ..strict()
        };
        let c = challenge_of(&issue(&mut store, "alice", HOST_A, &limits, T0));
        verify(&mut store, &c, "alice", HOST_A, &wrong(), &limits, T0);
        verify(&mut store, &c, "alice", HOST_A, &wrong(), &limits, T0);
        let o = issue(&mut store, "bob", HOST_A, &limits, T0);
        assert_eq!(
            verify(
                &mut store,
                &challenge_of(&o),
                "bob",
                HOST_A,
                &secret_of(&o),
                &limits,
                T0
            ),
            VerifyOutcome::Success
        );
        verify(&mut store, &c, "alice", HOST_A, &wrong(), &limits, T0);
        assert!(matches!(
            verify(&mut store, &c, "alice", HOST_A, &wrong(), &limits, T0),
            VerifyOutcome::Wrong { .. }
        ));
    }

    #[test]
    fn failures_without_a_remote_host_keep_no_host_rows() {
        let (_dir, mut store) = open_store();
        let limits = strict();
        verify(&mut store, "x", "alice", None, &wrong(), &limits, T0);
        verify(&mut store, "x", "alice", Some(""), &wrong(), &limits, T0);
        assert_eq!(
            store.count_rows("SELECT count(*) FROM lockouts WHERE kind = 'host'"),
            0
        );
        assert_eq!(
            store.count_rows("SELECT count(*) FROM lockouts WHERE kind = 'user'"),
            1
        );
    }

    #[test]
    fn a_zero_failure_limit_locks_on_the_first_failure() {
        let (_dir, mut store) = open_store();
        let limits = Limits {
            max_user_failures: 0,
            ..strict()
        };
        assert!(matches!(
            verify(&mut store, "x", "alice", None, &wrong(), &limits, T0),
            VerifyOutcome::LockedOut { .. }
        ));
    }

    #[test]
    fn only_ip_addresses_count_as_hosts_so_local_and_named_logins_share_no_counter() {
        let (_dir, mut store) = open_store();
        let limits = Limits {
            max_user_failures: 100,
            max_host_failures: 1,
            ..strict()
        };
        // One failure each would lock a host at once; none of these is one.
        for (user, rhost) in [
            ("alice", None),
            ("bob", Some("")),
            ("carol", Some("localhost")),
            ("dave", Some("office-nat.example.com")),
            ("erin", Some("local")),
        ] {
            verify(&mut store, "x", user, rhost, &wrong(), &limits, T0);
        }
        assert_eq!(
            store.count_rows("SELECT count(*) FROM lockouts WHERE kind = 'host'"),
            0
        );
        for rhost in [None, Some("localhost"), Some("office-nat.example.com")] {
            assert!(matches!(
                issue(&mut store, "frank", rhost, &limits, T0 + 1),
                IssueOutcome::Issued { .. }
            ));
        }
    }

    #[test]
    fn spellings_of_one_address_count_against_one_host() {
        assert_eq!(
            super::host_key(Some("2001:DB8::1")),
            super::host_key(Some("2001:db8:0::1"))
        );
        assert_eq!(
            super::host_key(Some("::ffff:192.0.2.7")).as_deref(),
            Some("192.0.2.7")
        );
        assert_eq!(super::host_key(Some("host.example")), None);
    }

    #[test]
    fn host_lockouts_lists_locked_addresses_first_with_their_counts() {
        let (_dir, mut store) = open_store();
        let limits = Limits {
            max_user_failures: 100,
            max_host_failures: 2,
            ..strict()
        };
        verify(&mut store, "x", "alice", HOST_A, &wrong(), &limits, T0);
        verify(&mut store, "x", "bob", HOST_A, &wrong(), &limits, T0 + 1);
        verify(&mut store, "x", "carol", HOST_B, &wrong(), &limits, T0 + 2);
        let hosts = store.host_lockouts(T0 + 3).unwrap();
        assert_eq!(
            hosts,
            vec![
                super::Lockout {
                    subject: "192.0.2.7".into(),
                    failures: 0,
                    locked_until: Some(T0 + 901),
                    updated_at: T0 + 1,
                },
                super::Lockout {
                    subject: "198.51.100.9".into(),
                    failures: 1,
                    locked_until: None,
                    updated_at: T0 + 2,
                },
            ]
        );
        // An ended lock with nothing counted is not listed.
        assert_eq!(store.host_lockouts(T0 + 901).unwrap().len(), 1);
        // Nor a host name an older otpd counted: it counts and locks nothing now.
        store
            .conn
            .execute(
                "INSERT INTO lockouts (kind, subject, failures, updated_at)
                 VALUES ('host', 'office.example', 7, ?1)",
                [T0],
            )
            .unwrap();
        assert_eq!(store.host_lockouts(T0 + 901).unwrap().len(), 1);
        assert_eq!(store.locked_hosts(T0 + 3).unwrap(), 1);
    }

    #[test]
    fn unlocked_addresses_are_listed_by_failures_whatever_their_old_lock_time() {
        let (_dir, mut store) = open_store();
        let limits = Limits {
            max_user_failures: 100,
            max_host_failures: 3,
            ..strict()
        };
        for t in 0..3 {
            verify(&mut store, "x", "alice", HOST_A, &wrong(), &limits, T0 + t);
        }
        verify(&mut store, "x", "bob", HOST_A, &wrong(), &limits, T0 + 950);
        for t in 0..2 {
            verify(&mut store, "x", "carol", HOST_B, &wrong(), &limits, T0 + t);
        }
        let order: Vec<(String, u32)> = store
            .host_lockouts(T0 + 951)
            .unwrap()
            .into_iter()
            .map(|l| (l.subject, l.failures))
            .collect();
        assert_eq!(order, [("198.51.100.9".into(), 2), ("192.0.2.7".into(), 1)]);
    }

    #[test]
    fn unlocking_a_host_lets_its_users_in_and_says_what_it_cleared() {
        let (_dir, mut store) = open_store();
        let limits = Limits {
            max_user_failures: 100,
            max_host_failures: 1,
            ..strict()
        };
        verify(&mut store, "x", "alice", HOST_A, &wrong(), &limits, T0);
        assert!(matches!(
            issue(&mut store, "bob", HOST_A, &limits, T0 + 1),
            IssueOutcome::LockedOut { .. }
        ));
        assert_eq!(store.locked_hosts(T0 + 1).unwrap(), 1);
        assert_eq!(store.locked_hosts(T0 + 900).unwrap(), 0);
        let cleared = store.unlock_host("192.0.2.7", T0 + 1).unwrap().unwrap();
        assert_eq!(cleared.locked_until, Some(T0 + 900));
        assert!(matches!(
            issue(&mut store, "bob", HOST_A, &limits, T0 + 2),
            IssueOutcome::Issued { .. }
        ));
        // Nothing left to clear, an unknown address, and a name are all "nothing".
        assert_eq!(store.unlock_host("192.0.2.7", T0 + 3).unwrap(), None);
        assert_eq!(store.unlock_host("203.0.113.1", T0 + 3).unwrap(), None);
        assert_eq!(store.unlock_host("host.example", T0 + 3).unwrap(), None);
    }
}
