//! Issuing, verifying and invalidating codes: where all the per-login rules meet.
//!
//! Each public method is one `BEGIN IMMEDIATE` transaction: the checks (lockout, cooldown,
//! caps, attempts, expiry) and the updates they lead to are atomic, so concurrent logins on
//! other connections see either all of a request's effects or none.

use common::secret::SecretString;
use rand::{CryptoRng, RngCore};
use rusqlite::{Connection, OptionalExtension, params};

use super::{Limits, NoticeTo, SqliteStore, StoreError, lockouts, sends};
use crate::code;
use crate::server_key::ServerKey;

/// A login a code is issued for, or (single-secret protocols) checked against: who, by which
/// protocol, through which PAM service, from where.
#[derive(Debug, Clone, Copy)]
pub struct IssueRequest<'a> {
    /// The login name.
    pub user: &'a str,
    /// The login protocol (`ssh`, `sftp`, ...); the code only answers logins by this protocol.
    pub protocol: &'a str,
    /// The PAM service name, kept with the code for the record.
    pub service: &'a str,
    /// The remote host PAM reported, if any; counts toward the host's lockout.
    pub rhost: Option<&'a str>,
}

/// What an issue request led to.
#[derive(Debug)]
pub enum IssueOutcome {
    /// A new code to mail. Older unused codes of the user are dead.
    Issued {
        /// Names the code in the verify request.
        challenge: String,
        /// The code to mail; the only copy, the store keeps a MAC.
        code: SecretString,
        /// Unix time after which the code no longer works.
        expires_at: i64,
    },
    /// The code mailed moments ago (within the resend cooldown) is still live: ask for it
    /// again, mail nothing.
    Reused {
        /// The live code's challenge.
        challenge: String,
        /// When it was issued; a new one can be mailed once the cooldown after this is over.
        issued_at: i64,
        /// When it expires.
        expires_at: i64,
    },
    /// The user's hourly or daily send cap is reached.
    RateLimited {
        /// Unix time when a send is allowed again.
        retry_after: i64,
    },
    /// The user or the remote host is locked out; nothing was issued.
    LockedOut {
        /// Unix time when the lock ends.
        until: i64,
    },
}

/// What a verify request led to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyOutcome {
    /// The right code, in time, for this user and protocol: the login may proceed. The code
    /// is now used.
    Success,
    /// The answer was wrong (or the code belongs to another user or protocol).
    Wrong {
        /// Further answers this code accepts; 0 means it just died.
        attempts_left: u32,
    },
    /// No live code by that challenge: unknown, used, superseded, expired, out of attempts or
    /// invalidated. A new code is needed.
    Dead,
    /// The user or the remote host is locked out. Returned without looking at the answer, and
    /// also for the wrong answer that started the lock.
    LockedOut {
        /// Unix time when the lock ends.
        until: i64,
    },
    /// One of the user's unused recovery codes answered the challenge: the login may proceed,
    /// the recovery code and the challenge are now used.
    RecoveryUsed {
        /// The user's recovery codes still unused.
        left: u32,
    },
}

/// Whether an answer may be one of the user's recovery codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Recovery {
    /// A login prompt: a recovery code stands in for the mailed code.
    Accepted,
    /// Anything else (a self-service confirmation, a code appended to a password): only the
    /// mailed code.
    Refused,
}

/// The columns of a code row that verification needs.
struct CodeRow {
    user: String,
    protocol: String,
    salt: Vec<u8>,
    mac: Vec<u8>,
    issued_at: i64,
    expires_at: i64,
    attempts: i64,
    live: bool,
    /// The mail failed: only a recovery code answers this challenge.
    recovery_only: bool,
}

/// The user's newest code that can still be answered.
pub(super) struct LiveCode {
    pub(super) challenge: String,
    pub(super) protocol: String,
    pub(super) issued_at: i64,
    pub(super) expires_at: i64,
}

/// PAM reports a local login's remote host as absent or empty; both mean "no host".
pub(super) fn host(rhost: Option<&str>) -> Option<&str> {
    rhost.filter(|h| !h.is_empty())
}

impl SqliteStore {
    /// Issues a code for a login, or says why not.
    ///
    /// In order: a lockout of the user or host refuses; a live code for the same user and
    /// protocol issued within the cooldown is reused; a reached send cap refuses; otherwise
    /// the user's older codes are superseded and a new one is issued and counted as a send.
    pub fn issue<R: CryptoRng + RngCore>(
        &mut self,
        req: &IssueRequest,
        limits: &Limits,
        now: i64,
        rng: &mut R,
    ) -> Result<IssueOutcome, StoreError> {
        limits.check()?;
        let rhost = host(req.rhost);
        let tx = Self::immediate(&mut self.conn)?;
        if let Some(until) = lockouts::locked_until(&tx, req.user, rhost, now)? {
            return Ok(IssueOutcome::LockedOut { until });
        }
        let reusable = latest_live(&tx, req.user, limits, now)?.filter(|live| {
            live.protocol == req.protocol
                && now < live.issued_at.saturating_add(limits.resend_cooldown_secs)
        });
        if let Some(live) = reusable {
            return Ok(IssueOutcome::Reused {
                challenge: live.challenge,
                issued_at: live.issued_at,
                expires_at: live.expires_at,
            });
        }
        if let Some(retry_after) = sends::blocked_until(&tx, req.user, limits, now)? {
            return Ok(IssueOutcome::RateLimited { retry_after });
        }

        tx.prepare_cached(
            "UPDATE codes SET state = 'superseded', closed_at = ?2
             WHERE user = ?1 AND state = 'live'",
        )?
        .execute(params![req.user, now])?;

        let challenge = code::new_challenge_id(rng, code::millis_now());
        let secret = code::generate_code(rng, limits.code_length)?;
        let salt = code::new_salt(rng);
        let mac = code::code_mac(&self.key, &salt, &challenge, secret.expose())?;
        let expires_at = now.saturating_add(limits.valid_secs);
        tx.prepare_cached(
            "INSERT INTO codes (challenge, user, protocol, service, rhost, salt, mac,
                                issued_at, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )?
        .execute(params![
            challenge,
            req.user,
            req.protocol,
            req.service,
            rhost,
            &salt[..],
            &mac[..],
            now,
            expires_at
        ])?;
        sends::record(&tx, req.user, &challenge, now)?;
        tx.commit()?;
        Ok(IssueOutcome::Issued {
            challenge,
            code: secret,
            expires_at,
        })
    }

    /// Checks an answer to `challenge` for `user` logging in by `protocol` from `rhost`.
    ///
    /// A lockout answers first, without looking at the code. Otherwise anything but a success
    /// counts as a failure for the user and the host: a wrong code, a code of another user or
    /// protocol (which also uses up one of that code's attempts), and any answer to a dead or
    /// unknown challenge. A success uses the code up and clears both failure counts.
    #[allow(clippy::too_many_arguments)] // The shape the request handler is written against.
    pub fn verify(
        &mut self,
        challenge: &str,
        user: &str,
        protocol: &str,
        rhost: Option<&str>,
        code: &SecretString,
        limits: &Limits,
        now: i64,
    ) -> Result<VerifyOutcome, StoreError> {
        let login = (challenge, user, protocol, rhost);
        self.verify_with(login, code, limits, now, None)
    }

    /// [`SqliteStore::verify`] for an answer at a login prompt: when the answer is not the mailed
    /// code, one of the user's unused recovery codes also answers the challenge
    /// ([`VerifyOutcome::RecoveryUsed`]), and a challenge whose mail failed answers only to
    /// one. A wrong recovery code is a wrong code: it uses up an attempt and counts toward the
    /// lockouts. A used recovery code queues, in the same transaction, the notice that tells
    /// the user of it at `notice` (see `notices`).
    #[allow(clippy::too_many_arguments)] // The same login facts as `verify`.
    pub fn verify_answer(
        &mut self,
        challenge: &str,
        user: &str,
        protocol: &str,
        rhost: Option<&str>,
        code: &SecretString,
        limits: &Limits,
        now: i64,
        notice: &NoticeTo<'_>,
    ) -> Result<VerifyOutcome, StoreError> {
        let login = (challenge, user, protocol, rhost);
        self.verify_with(login, code, limits, now, Some(notice))
    }

    /// One verify transaction; `login` is (challenge, user, protocol, rhost). Recovery codes
    /// answer only when there is somewhere to `notice` the user of their use.
    fn verify_with(
        &mut self,
        (challenge, user, protocol, rhost): (&str, &str, &str, Option<&str>),
        code: &SecretString,
        limits: &Limits,
        now: i64,
        notice: Option<&NoticeTo<'_>>,
    ) -> Result<VerifyOutcome, StoreError> {
        limits.check()?;
        let recovery = match notice {
            Some(_) => Recovery::Accepted,
            None => Recovery::Refused,
        };
        let tx = Self::immediate(&mut self.conn)?;
        let outcome = verify_in(
            &tx, &self.key, challenge, user, protocol, rhost, code, limits, now, recovery,
        )?;
        if let (VerifyOutcome::RecoveryUsed { left }, Some(to)) = (outcome, notice) {
            super::notices::queue_recovery_used_in(&tx, to, (user, rhost), left, now)?;
            tx.commit()?;
            self.wake_notice_deliverer();
            return Ok(outcome);
        }
        tx.commit()?;
        Ok(outcome)
    }

    /// Kills a code whose mail could not be sent, and takes back its send: a later login must
    /// not "reuse" a code nobody received, and a failed mail must not use up the user's caps.
    /// Unknown or already used challenges are left alone.
    pub fn invalidate(&mut self, challenge: &str) -> Result<(), StoreError> {
        let tx = Self::immediate(&mut self.conn)?;
        // There is no `now` here; the issue time stands in as the close time, which is at
        // most the mail timeout earlier and only decides when purge removes the row.
        let killed = tx
            .prepare_cached(
                "UPDATE codes SET state = 'dead', closed_at = coalesce(closed_at, issued_at)
                 WHERE challenge = ?1 AND state <> 'used'",
            )?
            .execute(params![challenge])?;
        if killed > 0 {
            sends::forget(&tx, challenge)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// How many codes can still be answered at `now`, for status output.
    pub fn live_codes(&self, now: i64) -> Result<u64, StoreError> {
        let count: i64 = self
            .conn
            .prepare_cached(
                "SELECT count(*) FROM codes
                 WHERE state = 'live' AND issued_at <= ?1 AND expires_at > ?1",
            )?
            .query_row(params![now], |row| row.get(0))?;
        Ok(u64::try_from(count).unwrap_or(0))
    }
}

/// [`SqliteStore::verify`] inside a transaction the caller commits, so single-secret verification can
/// run the same rules after finding the challenge itself.
#[allow(clippy::too_many_arguments)] // One login's facts; grouping them would only rename them.
pub(super) fn verify_in(
    tx: &Connection,
    key: &ServerKey,
    challenge: &str,
    user: &str,
    protocol: &str,
    rhost: Option<&str>,
    code: &SecretString,
    limits: &Limits,
    now: i64,
    recovery: Recovery,
) -> Result<VerifyOutcome, StoreError> {
    let rhost = host(rhost);
    if let Some(until) = lockouts::locked_until(tx, user, rhost, now)? {
        return Ok(VerifyOutcome::LockedOut { until });
    }
    let max_attempts = i64::from(limits.max_attempts);
    let outcome = match find(tx, challenge)? {
        None => VerifyOutcome::Dead,
        Some(row) if !row.live || !within_validity(&row, now) || row.attempts >= max_attempts => {
            if row.live {
                close(tx, challenge, "dead", now)?;
            }
            VerifyOutcome::Dead
        }
        Some(row) => {
            let bound = row.user == user && row.protocol == protocol;
            // A code of another user or protocol is wrong whatever was typed. A challenge whose
            // mail failed takes no mailed code: nobody received it.
            let right = bound
                && !row.recovery_only
                && code::mac_matches(key, &row.salt, challenge, code, &row.mac)?;
            let recovered = if bound && !right && recovery == Recovery::Accepted {
                super::recovery::consume(tx, key, user, code, now)?
            } else {
                None
            };
            if right {
                close(tx, challenge, "used", now)?;
                lockouts::reset(tx, user, rhost)?;
                VerifyOutcome::Success
            } else if let Some(left) = recovered {
                close(tx, challenge, "used", now)?;
                lockouts::reset(tx, user, rhost)?;
                VerifyOutcome::RecoveryUsed { left }
            } else {
                let attempts = row.attempts.saturating_add(1);
                tx.prepare_cached("UPDATE codes SET attempts = ?2 WHERE challenge = ?1")?
                    .execute(params![challenge, attempts])?;
                if attempts >= max_attempts {
                    close(tx, challenge, "dead", now)?;
                }
                let left = max_attempts.saturating_sub(attempts).max(0);
                VerifyOutcome::Wrong {
                    attempts_left: u32::try_from(left).unwrap_or(0),
                }
            }
        }
    };
    let outcome = if matches!(
        outcome,
        VerifyOutcome::Success | VerifyOutcome::RecoveryUsed { .. }
    ) {
        outcome
    } else {
        match lockouts::record_failure(tx, user, rhost, limits, now)? {
            Some(until) => VerifyOutcome::LockedOut { until },
            None => outcome,
        }
    };
    Ok(outcome)
}

pub(super) fn latest_live(
    conn: &Connection,
    user: &str,
    limits: &Limits,
    now: i64,
) -> Result<Option<LiveCode>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT challenge, protocol, issued_at, expires_at FROM codes
             WHERE user = ?1 AND state = 'live' AND issued_at <= ?2 AND expires_at > ?2
               AND attempts < ?3 AND recovery_only = 0
             ORDER BY issued_at DESC, rowid DESC LIMIT 1",
        )?
        .query_row(params![user, now, i64::from(limits.max_attempts)], |row| {
            Ok(LiveCode {
                challenge: row.get(0)?,
                protocol: row.get(1)?,
                issued_at: row.get(2)?,
                expires_at: row.get(3)?,
            })
        })
        .optional()?)
}

/// A code is valid from its issue time up to, not including, its expiry. Checking only the
/// expiry let a clock stepped back stretch a code: one issued at 10:00 for 10 minutes was
/// accepted at 10:11 after the clock was stepped back an hour. A code issued "in the future" of
/// `now` is one the clock was stepped back across, and is refused (the user asks for another).
fn within_validity(row: &CodeRow, now: i64) -> bool {
    (row.issued_at..row.expires_at).contains(&now)
}

fn find(conn: &Connection, challenge: &str) -> Result<Option<CodeRow>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT user, protocol, salt, mac, issued_at, expires_at, attempts, state = 'live',
                    recovery_only
             FROM codes WHERE challenge = ?1",
        )?
        .query_row(params![challenge], |row| {
            Ok(CodeRow {
                user: row.get(0)?,
                protocol: row.get(1)?,
                salt: row.get(2)?,
                mac: row.get(3)?,
                issued_at: row.get(4)?,
                expires_at: row.get(5)?,
                attempts: row.get(6)?,
                live: row.get(7)?,
                recovery_only: row.get(8)?,
            })
        })
        .optional()?)
}

fn close(conn: &Connection, challenge: &str, state: &str, now: i64) -> Result<(), StoreError> {
    conn.prepare_cached(
        "UPDATE codes SET state = ?2, closed_at = ?3 WHERE challenge = ?1 AND state = 'live'",
    )?
    .execute(params![challenge, state, now])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    fn answer(
        store: &mut SqliteStore,
        outcome: &IssueOutcome,
        user: &str,
        protocol: &str,
        limits: &Limits,
        now: i64,
    ) -> VerifyOutcome {
        store
            .verify(
                &challenge_of(outcome),
                user,
                protocol,
                None,
                &secret_of(outcome),
                limits,
                now,
            )
            .unwrap()
    }

    fn wrong_answer(
        store: &mut SqliteStore,
        challenge: &str,
        limits: &Limits,
        now: i64,
    ) -> VerifyOutcome {
        store
            .verify(
                challenge,
                "alice",
                "ssh",
                None,
                &SecretString::new("000000000000".into()),
                limits,
                now,
            )
            .unwrap()
    }

    fn issue(
        store: &mut SqliteStore,
        user: &str,
        protocol: &str,
        limits: &Limits,
        now: i64,
    ) -> IssueOutcome {
        store
            .issue(&request(user, protocol), limits, now, &mut rng())
            .unwrap()
    }

    fn relaxed() -> Limits {
        Limits {
            resend_cooldown_secs: 0,
            max_user_failures: 1000,
            max_host_failures: 1000,
            ..limits()
        }
    }

    #[test]
    fn the_right_code_succeeds_once_and_a_replay_is_dead() {
        let (_dir, mut store) = open_store();
        let limits = relaxed();
        let o = issue(&mut store, "alice", "ssh", &limits, T0);
        assert!(
            matches!(&o, IssueOutcome::Issued { expires_at, .. } if *expires_at == T0 + limits.valid_secs)
        );
        assert_eq!(
            answer(&mut store, &o, "alice", "ssh", &limits, T0 + 1),
            VerifyOutcome::Success
        );
        assert_eq!(
            answer(&mut store, &o, "alice", "ssh", &limits, T0 + 2),
            VerifyOutcome::Dead
        );
    }

    #[test]
    fn a_code_is_refused_after_the_clock_is_stepped_back_past_its_issue_time() {
        // The issue's report: 11 minutes after a 10-minute code was issued, the clock was
        // stepped back an hour, and the code was accepted.
        let (_dir, mut store) = open_store();
        let limits = relaxed();
        let o = issue(&mut store, "alice", "ssh", &limits, T0);
        let stepped_back = T0 + 11 * 60 - 3600;
        assert_eq!(
            answer(&mut store, &o, "alice", "ssh", &limits, stepped_back),
            VerifyOutcome::Dead
        );
        // Dead for good: the clock coming back does not revive it.
        assert_eq!(
            answer(&mut store, &o, "alice", "ssh", &limits, T0 + 1),
            VerifyOutcome::Dead
        );
    }

    #[test]
    fn a_code_issued_after_now_is_neither_reused_nor_counted_live() {
        let (_dir, mut store) = open_store();
        let limits = Limits {
            resend_cooldown_secs: 300,
            ..relaxed()
        };
        issue(&mut store, "alice", "ssh", &limits, T0);
        assert_eq!(store.live_codes(T0 - 1).unwrap(), 0);
        // Inside the cooldown the live code would be handed out again; before its issue time
        // it must not be.
        let again = issue(&mut store, "alice", "ssh", &limits, T0 - 3600);
        assert!(!matches!(again, IssueOutcome::Reused { .. }), "{again:?}");
    }

    #[test]
    fn a_code_works_until_the_second_before_expiry_and_not_at_it() {
        let (_dir, mut store) = open_store();
        let limits = relaxed();
        let o = issue(&mut store, "alice", "ssh", &limits, T0);
        let expires_at = T0 + limits.valid_secs;
        assert_eq!(
            answer(&mut store, &o, "alice", "ssh", &limits, expires_at),
            VerifyOutcome::Dead
        );
        let o = issue(&mut store, "alice", "ssh", &limits, T0);
        assert_eq!(
            answer(&mut store, &o, "alice", "ssh", &limits, expires_at - 1),
            VerifyOutcome::Success
        );
    }

    #[test]
    fn a_new_code_supersedes_older_unused_codes_of_any_protocol() {
        let (_dir, mut store) = open_store();
        let limits = relaxed();
        let ssh = issue(&mut store, "alice", "ssh", &limits, T0);
        let sftp = issue(&mut store, "alice", "sftp", &limits, T0 + 1);
        let ssh2 = issue(&mut store, "alice", "ssh", &limits, T0 + 2);
        assert_eq!(
            answer(&mut store, &ssh, "alice", "ssh", &limits, T0 + 3),
            VerifyOutcome::Dead
        );
        assert_eq!(
            answer(&mut store, &sftp, "alice", "sftp", &limits, T0 + 3),
            VerifyOutcome::Dead
        );
        assert_eq!(
            answer(&mut store, &ssh2, "alice", "ssh", &limits, T0 + 3),
            VerifyOutcome::Success
        );
    }

    #[test]
    fn another_users_new_code_does_not_supersede() {
        let (_dir, mut store) = open_store();
        let limits = relaxed();
        let alice = issue(&mut store, "alice", "ssh", &limits, T0);
        let _bob = issue(&mut store, "bob", "ssh", &limits, T0);
        assert_eq!(
            answer(&mut store, &alice, "alice", "ssh", &limits, T0 + 1),
            VerifyOutcome::Success
        );
    }

    #[test]
    fn after_max_attempts_wrong_answers_even_the_right_code_is_dead() {
        let (_dir, mut store) = open_store();
        let limits = Limits {
            max_attempts: 3,
            ..relaxed()
        };
        let o = issue(&mut store, "alice", "ssh", &limits, T0);
        let c = challenge_of(&o);
        assert_eq!(
            wrong_answer(&mut store, &c, &limits, T0),
            VerifyOutcome::Wrong { attempts_left: 2 }
        );
        assert_eq!(
            wrong_answer(&mut store, &c, &limits, T0),
            VerifyOutcome::Wrong { attempts_left: 1 }
        );
        assert_eq!(
            wrong_answer(&mut store, &c, &limits, T0),
            VerifyOutcome::Wrong { attempts_left: 0 }
        );
        assert_eq!(
            answer(&mut store, &o, "alice", "ssh", &limits, T0),
            VerifyOutcome::Dead
        );
        assert_eq!(store.live_codes(T0).unwrap(), 0);
    }

    #[test]
    fn a_wrong_answer_leaves_the_code_answerable() {
        let (_dir, mut store) = open_store();
        let limits = relaxed();
        let o = issue(&mut store, "alice", "ssh", &limits, T0);
        wrong_answer(&mut store, &challenge_of(&o), &limits, T0);
        assert_eq!(
            answer(&mut store, &o, "alice", "ssh", &limits, T0),
            VerifyOutcome::Success
        );
    }

    #[test]
    fn an_empty_answer_is_wrong() {
        let (_dir, mut store) = open_store();
        let limits = relaxed();
        let o = issue(&mut store, "alice", "ssh", &limits, T0);
        let outcome = store
            .verify(
                &challenge_of(&o),
                "alice",
                "ssh",
                None,
                &SecretString::new(String::new()),
                &limits,
                T0,
            )
            .unwrap();
        assert!(
            matches!(outcome, VerifyOutcome::Wrong { .. }),
            "{outcome:?}"
        );
    }

    #[test]
    fn a_code_answers_only_the_user_and_protocol_it_was_issued_for() {
        let (_dir, mut store) = open_store();
        let limits = Limits {
            max_attempts: 5,
            ..relaxed()
        };
        let o = issue(&mut store, "alice", "ssh", &limits, T0);
        assert_eq!(
            answer(&mut store, &o, "bob", "ssh", &limits, T0),
            VerifyOutcome::Wrong { attempts_left: 4 }
        );
        assert_eq!(
            answer(&mut store, &o, "alice", "sftp", &limits, T0),
            VerifyOutcome::Wrong { attempts_left: 3 }
        );
        // Both count as failures of the user who tried.
        assert_eq!(
            store.count_rows(
                "SELECT failures FROM lockouts WHERE kind = 'user' AND subject = 'bob'"
            ),
            1
        );
        assert_eq!(
            store.count_rows(
                "SELECT failures FROM lockouts WHERE kind = 'user' AND subject = 'alice'"
            ),
            1
        );
        assert_eq!(
            answer(&mut store, &o, "alice", "ssh", &limits, T0),
            VerifyOutcome::Success
        );
    }

    #[test]
    fn within_the_cooldown_the_same_protocol_reuses_the_live_code() {
        let (_dir, mut store) = open_store();
        let limits = Limits {
            resend_cooldown_secs: 60,
            ..relaxed()
        };
        let first = issue(&mut store, "alice", "ssh", &limits, T0);
        let again = issue(&mut store, "alice", "ssh", &limits, T0 + 59);
        match &again {
            IssueOutcome::Reused {
                challenge,
                issued_at,
                expires_at,
            } => {
                assert_eq!(challenge, &challenge_of(&first));
                assert_eq!(*issued_at, T0);
                assert_eq!(*expires_at, T0 + limits.valid_secs);
            }
            other => panic!("expected Reused, got {other:?}"),
        }
        assert_eq!(
            answer(&mut store, &first, "alice", "ssh", &limits, T0 + 59),
            VerifyOutcome::Success
        );
    }

    #[test]
    fn after_the_cooldown_a_new_code_is_issued_and_the_old_one_dies() {
        let (_dir, mut store) = open_store();
        let limits = Limits {
            resend_cooldown_secs: 60,
            ..relaxed()
        };
        let first = issue(&mut store, "alice", "ssh", &limits, T0);
        let second = issue(&mut store, "alice", "ssh", &limits, T0 + 60);
        assert!(matches!(second, IssueOutcome::Issued { .. }), "{second:?}");
        assert_ne!(challenge_of(&first), challenge_of(&second));
        assert_eq!(
            answer(&mut store, &first, "alice", "ssh", &limits, T0 + 61),
            VerifyOutcome::Dead
        );
    }

    #[test]
    fn within_the_cooldown_another_protocol_gets_a_new_code_that_supersedes() {
        let (_dir, mut store) = open_store();
        let limits = Limits {
            resend_cooldown_secs: 60,
            ..relaxed()
        };
        let ssh = issue(&mut store, "alice", "ssh", &limits, T0);
        let sftp = issue(&mut store, "alice", "sftp", &limits, T0 + 1);
        assert!(matches!(sftp, IssueOutcome::Issued { .. }), "{sftp:?}");
        assert_eq!(
            answer(&mut store, &ssh, "alice", "ssh", &limits, T0 + 2),
            VerifyOutcome::Dead
        );
        // And ssh within the cooldown of the sftp code is not a reuse of the dead ssh code.
        let ssh2 = issue(&mut store, "alice", "ssh", &limits, T0 + 3);
        assert!(matches!(ssh2, IssueOutcome::Issued { .. }), "{ssh2:?}");
    }

    #[test]
    fn a_used_code_is_not_reused_within_the_cooldown() {
        let (_dir, mut store) = open_store();
        let limits = Limits {
            resend_cooldown_secs: 60,
            ..relaxed()
        };
        let first = issue(&mut store, "alice", "ssh", &limits, T0);
        answer(&mut store, &first, "alice", "ssh", &limits, T0 + 1);
        assert!(matches!(
            issue(&mut store, "alice", "ssh", &limits, T0 + 2),
            IssueOutcome::Issued { .. }
        ));
    }

    #[test]
    fn an_invalidated_code_is_dead_not_reused_and_not_counted_as_a_send() {
        let (_dir, mut store) = open_store();
        let limits = Limits {
            resend_cooldown_secs: 60,
            max_sends_per_hour: 1,
            ..relaxed()
        };
        let first = issue(&mut store, "alice", "ssh", &limits, T0);
        store.invalidate(&challenge_of(&first)).unwrap();
        let second = issue(&mut store, "alice", "ssh", &limits, T0 + 1);
        assert!(matches!(second, IssueOutcome::Issued { .. }), "{second:?}");
        assert_eq!(
            answer(&mut store, &first, "alice", "ssh", &limits, T0 + 2),
            VerifyOutcome::Dead
        );
        assert_eq!(
            answer(&mut store, &second, "alice", "ssh", &limits, T0 + 2),
            VerifyOutcome::Success
        );
    }

    #[test]
    fn invalidating_an_unknown_or_used_code_changes_nothing() {
        let (_dir, mut store) = open_store();
        let limits = Limits {
            max_sends_per_hour: 1,
            ..relaxed()
        };
        store
            .invalidate("0123456789abcdef0123456789abcdef")
            .unwrap();
        let o = issue(&mut store, "alice", "ssh", &limits, T0);
        answer(&mut store, &o, "alice", "ssh", &limits, T0);
        store.invalidate(&challenge_of(&o)).unwrap();
        // The used code's send still counts.
        assert!(matches!(
            issue(&mut store, "alice", "ssh", &limits, T0 + 1),
            IssueOutcome::RateLimited { .. }
        ));
    }

    #[test]
    fn live_codes_counts_only_answerable_codes() {
        let (_dir, mut store) = open_store();
        let limits = relaxed();
        issue(&mut store, "alice", "ssh", &limits, T0);
        let bob = issue(&mut store, "bob", "ssh", &limits, T0);
        issue(&mut store, "carol", "ssh", &limits, T0);
        assert_eq!(store.live_codes(T0).unwrap(), 3);
        answer(&mut store, &bob, "bob", "ssh", &limits, T0);
        assert_eq!(store.live_codes(T0).unwrap(), 2);
        assert_eq!(store.live_codes(T0 + limits.valid_secs).unwrap(), 0);
    }

    #[test]
    fn the_stored_row_holds_a_mac_and_never_the_code() {
        let (dir, mut store) = open_store();
        let limits = Limits {
            code_length: 10,
            ..relaxed()
        };
        let o = issue(&mut store, "alice", "ssh", &limits, T0);
        let (challenge, code) = (challenge_of(&o), secret_of(&o));
        let code = code.expose().to_string();

        let (salt, mac): (Vec<u8>, Vec<u8>) = store
            .conn
            .query_row(
                "SELECT salt, mac FROM codes WHERE challenge = ?1",
                [&challenge],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(salt.len(), 16);
        assert_eq!(
            mac.to_vec(),
            code::code_mac(&store.key, &salt, &challenge, &code).unwrap()
        );

        // No column of the row, read as text, contains the code.
        let columns: Vec<String> = store
            .conn
            .query_row(
                "SELECT * FROM codes WHERE challenge = ?1",
                [&challenge],
                |r| {
                    (0..r.as_ref().column_count())
                        .map(|i| {
                            r.get::<_, rusqlite::types::Value>(i)
                                .map(|v| format!("{v:?}"))
                        })
                        .collect()
                },
            )
            .unwrap();
        for column in &columns {
            if column.contains(&challenge) {
                continue;
            }
            assert!(!column.contains(&code), "{column}");
        }

        // Nor do the files on disk, outside the challenge id (whose hex may hold digit runs).
        let mut bytes = Vec::new();
        for file in ["otpd.db", "otpd.db-wal"] {
            if let Ok(b) = std::fs::read(dir.path().join(file)) {
                bytes.extend(b);
            }
        }
        assert!(
            contains(&bytes, &mac),
            "the MAC is on disk, so this is where rows live"
        );
        let blanked = blank(&bytes, challenge.as_bytes());
        assert!(!contains(&blanked, code.as_bytes()), "the code is on disk");
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    fn blank(haystack: &[u8], needle: &[u8]) -> Vec<u8> {
        let mut out = haystack.to_vec();
        let mut i = 0;
        while i + needle.len() <= out.len() {
            if &out[i..i + needle.len()] == needle {
                out[i..i + needle.len()].fill(0);
                i += needle.len();
            } else {
                i += 1;
            }
        }
        out
    }

    #[test]
    fn two_codes_get_different_salts() {
        let (_dir, mut store) = open_store();
        let limits = relaxed();
        issue(&mut store, "alice", "ssh", &limits, T0);
        issue(&mut store, "bob", "ssh", &limits, T0);
        assert_eq!(
            store.count_rows("SELECT count(DISTINCT salt) FROM codes"),
            2
        );
    }

    #[test]
    fn invalid_limits_fail_closed_without_touching_the_database() {
        let (_dir, mut store) = open_store();
        let bad = Limits {
            code_length: 4,
            ..relaxed()
        };
        assert!(matches!(
            store.issue(&request("alice", "ssh"), &bad, T0, &mut rng()),
            Err(StoreError::InvalidLimits(_))
        ));
        assert_eq!(store.count_rows("SELECT count(*) FROM sends"), 0);
    }
}
