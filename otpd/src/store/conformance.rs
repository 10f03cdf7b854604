//! The store conformance suite: the product's rules, checked through [`Store`] alone.
//!
//! Every backend must pass it. Each rule is a function over a fresh, empty `&mut dyn Store`,
//! with every time given explicitly (the injected clock is the `now` argument), and a seeded
//! random generator; it panics when the backend breaks the rule.
//! [`store_conformance_tests!`](crate::store_conformance_tests)
//! turns the whole list into one `#[test]` per rule for a backend, given a function that
//! opens an empty store:
//!
//! ```ignore
//! #[cfg(test)]
//! mod conformance {
//!     fn fresh() -> (tempfile::TempDir, SqliteStore) { /* an empty store */ }
//!     crate::store_conformance_tests!(fresh); // otpd::... from another crate
//! }
//! ```
//!
//! The first value `fresh` returns is kept alive for the test (a temp dir, a database
//! schema); the second is the store. The suite is compiled for tests and with the
//! `conformance` feature, never into the release binary.
//!
//! Atomicity is checked by racing: the `racing_*` rules take several [`Handle`]s on one
//! backing store (for SQLite, the one connection behind a mutex, as otpd shares it; for a
//! shared database, one connection each, as several otpd would have) and start the same
//! operation on all of them at once; [`store_conformance_race_tests!`](crate::store_conformance_race_tests)
//! makes their `#[test]`s. Not checked here: the audit rate throttle, which is memory, not
//! storage.

// Test code: a failed assertion is how a rule reports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Barrier;

use common::config::NoticeKind;
use common::secret::SecretString;
use common::wire_admin::AuditRow;
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::{
    AddressSeen, AuditFilter, AuditRecord, BreakGlass, BreakGlassLookup, IssueOutcome,
    IssueRequest, Limits, NewNotice, NoticeTo, Queued, RECOVERY_SET_SIZE, ReadAhead, SendCounts,
    Store, StoreError, UserRecord, VerifyOutcome,
};

/// A fixed "now" far from zero.
pub const T0: i64 = 1_700_000_000;
const HOUR: i64 = 3600;
const DAY: i64 = 24 * HOUR;

/// Limits with every rule on and room to exercise it; rules change what they test.
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

/// The same sequence of codes on every run.
fn rng() -> StdRng {
    StdRng::seed_from_u64(18)
}

fn login<'a>(user: &'a str, rhost: Option<&'a str>) -> IssueRequest<'a> {
    IssueRequest {
        user,
        protocol: "ssh",
        service: "sshd",
        rhost,
    }
}

/// Issues a code that must be issued; its challenge and code.
fn issued(
    store: &mut dyn Store,
    req: &IssueRequest<'_>,
    limits: &Limits,
    now: i64,
    rng: &mut StdRng,
) -> (String, SecretString) {
    match store.issue(req, limits, now, rng).unwrap() {
        IssueOutcome::Issued {
            challenge, code, ..
        } => (challenge, code),
        other => panic!("expected a new code at {now}, got {other:?}"),
    }
}

/// Another code of the same length: every digit moved by one.
fn wrong(code: &SecretString) -> SecretString {
    let other = code
        .expose()
        .chars()
        .map(|c| match c.to_digit(10) {
            Some(d) => char::from_digit((d + 1) % 10, 10).unwrap(),
            None => c,
        })
        .collect();
    SecretString::new(other)
}

/// Answers `challenge` as `req`'s user, protocol and host.
fn answer(
    store: &mut dyn Store,
    challenge: &str,
    req: &IssueRequest<'_>,
    code: &SecretString,
    limits: &Limits,
    now: i64,
) -> VerifyOutcome {
    store
        .verify(
            challenge,
            req.user,
            req.protocol,
            req.rhost,
            code,
            limits,
            now,
        )
        .unwrap()
}

/// Issues a code for `req` and answers it wrongly at `now`.
fn fail_once(
    store: &mut dyn Store,
    req: &IssueRequest<'_>,
    limits: &Limits,
    now: i64,
    rng: &mut StdRng,
) -> VerifyOutcome {
    let (challenge, code) = issued(store, req, limits, now, rng);
    answer(store, &challenge, req, &wrong(&code), limits, now)
}

const NOTICE: NoticeTo<'static> = NoticeTo {
    address: "alice@example.org",
    service: "sshd",
    tell: true,
};

/// A right code answers once; the second answer finds the code dead.
pub fn a_code_answers_once(store: &mut dyn Store) {
    let (limits, mut rng, alice) = (limits(), rng(), login("alice", None));
    let (challenge, code) = issued(store, &alice, &limits, T0, &mut rng);
    assert_eq!(
        answer(store, &challenge, &alice, &code, &limits, T0 + 1),
        VerifyOutcome::Success
    );
    assert_eq!(
        answer(store, &challenge, &alice, &code, &limits, T0 + 2),
        VerifyOutcome::Dead,
        "a used code is dead"
    );
    assert_eq!(
        answer(store, "no-such-challenge", &alice, &code, &limits, T0 + 3),
        VerifyOutcome::Dead
    );
}

/// A code answers from its issue time up to, not including, `issued_at + valid_secs`.
pub fn a_code_is_valid_from_its_issue_until_its_expiry(store: &mut dyn Store) {
    let (limits, mut rng) = (limits(), rng());
    let expires = T0 + limits.valid_secs;
    for (user, at, expected) in [
        ("alice", T0, VerifyOutcome::Success),
        ("bob", expires - 1, VerifyOutcome::Success),
        ("carol", expires, VerifyOutcome::Dead),
        ("dave", T0 - 1, VerifyOutcome::Dead),
    ] {
        let req = login(user, None);
        match store.issue(&req, &limits, T0, &mut rng).unwrap() {
            IssueOutcome::Issued {
                challenge,
                code,
                expires_at,
            } => {
                assert_eq!(expires_at, expires);
                let got = answer(store, &challenge, &req, &code, &limits, at);
                assert_eq!(got, expected, "{user} answering at {at}");
            }
            other => panic!("{other:?}"),
        }
    }
}

/// Each wrong answer uses up one of `max_attempts`; the last one kills the code.
pub fn a_code_takes_at_most_max_attempts_answers(store: &mut dyn Store) {
    let limits = Limits {
        max_attempts: 3,
        ..limits()
    };
    let (mut rng, alice) = (rng(), login("alice", None));
    let (challenge, code) = issued(store, &alice, &limits, T0, &mut rng);
    for left in [2, 1, 0] {
        assert_eq!(
            answer(store, &challenge, &alice, &wrong(&code), &limits, T0 + 1),
            VerifyOutcome::Wrong {
                attempts_left: left
            }
        );
    }
    assert_eq!(
        answer(store, &challenge, &alice, &code, &limits, T0 + 2),
        VerifyOutcome::Dead,
        "the right code after the last attempt"
    );
}

/// A code answers only its own user and protocol; another's answer is wrong and costs an
/// attempt.
pub fn a_code_answers_only_its_user_and_protocol(store: &mut dyn Store) {
    let (limits, mut rng, alice) = (limits(), rng(), login("alice", None));
    let (challenge, code) = issued(store, &alice, &limits, T0, &mut rng);
    let bob = login("bob", None);
    assert_eq!(
        answer(store, &challenge, &bob, &code, &limits, T0 + 1),
        VerifyOutcome::Wrong { attempts_left: 4 }
    );
    let by_ftp = IssueRequest {
        protocol: "ftp",
        ..alice
    };
    assert_eq!(
        answer(store, &challenge, &by_ftp, &code, &limits, T0 + 1),
        VerifyOutcome::Wrong { attempts_left: 3 }
    );
    assert_eq!(
        answer(store, &challenge, &alice, &code, &limits, T0 + 2),
        VerifyOutcome::Success
    );
}

/// A new code for a user kills the user's older ones.
pub fn a_new_code_supersedes_the_old_one(store: &mut dyn Store) {
    let (limits, mut rng, alice) = (limits(), rng(), login("alice", None));
    let (old, old_code) = issued(store, &alice, &limits, T0, &mut rng);
    let after_cooldown = T0 + limits.resend_cooldown_secs;
    let (new, new_code) = issued(store, &alice, &limits, after_cooldown, &mut rng);
    assert_ne!(old, new);
    assert_eq!(
        answer(store, &old, &alice, &old_code, &limits, after_cooldown + 1),
        VerifyOutcome::Dead
    );
    assert_eq!(
        answer(store, &new, &alice, &new_code, &limits, after_cooldown + 2),
        VerifyOutcome::Success
    );
}

/// Within the resend cooldown a login gets the live code again and nothing is sent; from its
/// end on, a new code. Another protocol does not reuse it.
pub fn within_the_cooldown_the_mailed_code_is_reused(store: &mut dyn Store) {
    let (limits, mut rng, alice) = (limits(), rng(), login("alice", None));
    let (challenge, code) = issued(store, &alice, &limits, T0, &mut rng);
    let last = T0 + limits.resend_cooldown_secs - 1;
    match store.issue(&alice, &limits, last, &mut rng).unwrap() {
        IssueOutcome::Reused {
            challenge: again,
            issued_at,
            expires_at,
        } => {
            assert_eq!(again, challenge);
            assert_eq!(issued_at, T0);
            assert_eq!(expires_at, T0 + limits.valid_secs);
        }
        other => panic!("expected the code again, got {other:?}"),
    }
    assert_eq!(
        store.sends_counted("alice", last).unwrap(),
        SendCounts { hour: 1, day: 1 },
        "a reuse sends nothing"
    );
    let (fresh, _) = issued(store, &alice, &limits, last + 1, &mut rng);
    assert_ne!(fresh, challenge);
    assert_eq!(
        answer(store, &challenge, &alice, &code, &limits, last + 2),
        VerifyOutcome::Dead
    );
    let by_ftp = IssueRequest {
        protocol: "ftp",
        ..alice
    };
    issued(store, &by_ftp, &limits, last + 3, &mut rng);
}

/// Sends count in a sliding hour and a sliding day; a reached cap refuses until the send
/// that must leave the window has left it.
pub fn the_hourly_and_daily_send_caps_hold(store: &mut dyn Store) {
    let limits = Limits {
        resend_cooldown_secs: 0,
        max_sends_per_hour: 3,
        max_sends_per_day: 5,
        ..limits()
    };
    let (mut rng, alice) = (rng(), login("alice", None));
    for at in [T0, T0 + 1, T0 + 2] {
        issued(store, &alice, &limits, at, &mut rng);
    }
    assert!(matches!(
        store.issue(&alice, &limits, T0 + 3, &mut rng).unwrap(),
        IssueOutcome::RateLimited { retry_after } if retry_after == T0 + HOUR
    ));
    issued(store, &alice, &limits, T0 + HOUR, &mut rng);
    issued(store, &alice, &limits, T0 + HOUR + 1, &mut rng);
    assert_eq!(
        store.sends_counted("alice", T0 + HOUR + 2).unwrap(),
        SendCounts { hour: 2, day: 5 }
    );
    assert!(matches!(
        store.issue(&alice, &limits, T0 + HOUR + 2, &mut rng).unwrap(),
        IssueOutcome::RateLimited { retry_after } if retry_after == T0 + DAY
    ));
    issued(store, &alice, &limits, T0 + DAY, &mut rng);
    // Caps are per user.
    issued(store, &login("bob", None), &limits, T0 + 3, &mut rng);
}

/// A code whose mail failed is dead and its send no longer counts.
pub fn a_failed_mail_kills_the_code_and_gives_back_its_send(store: &mut dyn Store) {
    let (limits, mut rng, alice) = (limits(), rng(), login("alice", None));
    let (challenge, code) = issued(store, &alice, &limits, T0, &mut rng);
    store.invalidate(&challenge).unwrap();
    assert_eq!(
        store.sends_counted("alice", T0 + 1).unwrap(),
        SendCounts::default()
    );
    assert_eq!(
        answer(store, &challenge, &alice, &code, &limits, T0 + 1),
        VerifyOutcome::Dead
    );
    assert_eq!(store.live_codes(T0 + 1).unwrap(), 0);
    // Not reused within the cooldown either: nobody received it.
    issued(store, &alice, &limits, T0 + 2, &mut rng);
}

/// `max_user_failures` wrong answers in a row lock the user out for `lockout_secs`: no code
/// is issued or accepted, the right one included, until the lock ends.
pub fn wrong_answers_lock_the_user_out_until_the_lock_ends(store: &mut dyn Store) {
    let limits = Limits {
        max_user_failures: 3,
        max_attempts: 10,
        ..limits()
    };
    let (mut rng, alice) = (rng(), login("alice", None));
    let (challenge, code) = issued(store, &alice, &limits, T0, &mut rng);
    for at in [T0 + 1, T0 + 2] {
        assert!(matches!(
            answer(store, &challenge, &alice, &wrong(&code), &limits, at),
            VerifyOutcome::Wrong { .. }
        ));
    }
    let until = T0 + 3 + limits.lockout_secs;
    assert_eq!(
        answer(store, &challenge, &alice, &wrong(&code), &limits, T0 + 3),
        VerifyOutcome::LockedOut { until }
    );
    assert_eq!(
        answer(store, &challenge, &alice, &code, &limits, T0 + 4),
        VerifyOutcome::LockedOut { until },
        "not even the right code"
    );
    assert!(matches!(
        store.issue(&alice, &limits, T0 + 4, &mut rng).unwrap(),
        IssueOutcome::LockedOut { until: u } if u == until
    ));
    assert_eq!(
        store.user_locked_until("alice", T0 + 4).unwrap(),
        Some(until)
    );
    assert_eq!(
        store.locked_users(T0 + 4).unwrap(),
        vec![("alice".to_string(), until)]
    );
    assert_eq!(store.user_counts(T0 + 4).unwrap().locked, 1);
    assert_eq!(store.user_locked_until("bob", T0 + 4).unwrap(), None);
    // The lock ends by itself.
    assert_eq!(store.user_locked_until("alice", until).unwrap(), None);
    let (challenge, code) = issued(store, &alice, &limits, until, &mut rng);
    assert_eq!(
        answer(store, &challenge, &alice, &code, &limits, until + 1),
        VerifyOutcome::Success
    );
}

/// A success clears the user's count of failures; a new code does not.
pub fn a_success_clears_the_users_failures_and_a_new_code_does_not(store: &mut dyn Store) {
    let limits = Limits {
        max_user_failures: 3,
        resend_cooldown_secs: 0,
        ..limits()
    };
    let (mut rng, alice) = (rng(), login("alice", None));
    fail_once(store, &alice, &limits, T0, &mut rng);
    fail_once(store, &alice, &limits, T0 + 1, &mut rng);
    let (challenge, code) = issued(store, &alice, &limits, T0 + 2, &mut rng);
    assert_eq!(
        answer(store, &challenge, &alice, &code, &limits, T0 + 2),
        VerifyOutcome::Success
    );
    assert!(matches!(
        fail_once(store, &alice, &limits, T0 + 3, &mut rng),
        VerifyOutcome::Wrong { .. }
    ));
    assert!(matches!(
        fail_once(store, &alice, &limits, T0 + 4, &mut rng),
        VerifyOutcome::Wrong { .. }
    ));
    assert!(
        matches!(
            fail_once(store, &alice, &limits, T0 + 5, &mut rng),
            VerifyOutcome::LockedOut { .. }
        ),
        "new codes in between did not reset the count"
    );
}

/// Wrong answers from one IP address, whatever the user, lock the address out (in any
/// spelling of it), and nothing else; a remote host that is not an IP address never locks.
pub fn wrong_answers_lock_out_an_ip_address_and_only_an_ip_address(store: &mut dyn Store) {
    let limits = Limits {
        max_host_failures: 3,
        max_user_failures: 100,
        resend_cooldown_secs: 0,
        ..limits()
    };
    let mut rng = rng();
    let from = Some("192.0.2.7");
    for (user, at) in [("u1", T0), ("u2", T0 + 1)] {
        assert!(matches!(
            fail_once(store, &login(user, from), &limits, at, &mut rng),
            VerifyOutcome::Wrong { .. }
        ));
    }
    let until = T0 + 2 + limits.lockout_secs;
    assert_eq!(
        fail_once(store, &login("u3", from), &limits, T0 + 2, &mut rng),
        VerifyOutcome::LockedOut { until }
    );
    for spelling in ["192.0.2.7", "::ffff:192.0.2.7"] {
        assert!(
            matches!(
                store.issue(&login("u4", Some(spelling)), &limits, T0 + 3, &mut rng).unwrap(),
                IssueOutcome::LockedOut { until: u } if u == until
            ),
            "{spelling}"
        );
    }
    issued(
        store,
        &login("u4", Some("2001:db8::1")),
        &limits,
        T0 + 3,
        &mut rng,
    );
    issued(store, &login("u5", None), &limits, T0 + 3, &mut rng);
    assert_eq!(store.locked_hosts(T0 + 3).unwrap(), 1);
    let hosts = store.host_lockouts(T0 + 3).unwrap();
    assert_eq!(hosts.len(), 1, "{hosts:?}");
    assert_eq!(hosts[0].subject, "192.0.2.7");
    assert_eq!(hosts[0].locked_until, Some(until));
    assert_eq!(store.locked_users(T0 + 3).unwrap(), vec![]);
    assert_eq!(store.locked_hosts(until).unwrap(), 0, "the lock ends");

    for (i, user) in ["n1", "n2", "n3", "n4", "n5"].into_iter().enumerate() {
        let at = T0 + 10 + i64::try_from(i).unwrap();
        for rhost in [Some("attacker.example"), Some(""), None] {
            assert!(
                matches!(
                    fail_once(store, &login(user, rhost), &limits, at, &mut rng),
                    VerifyOutcome::Wrong { .. }
                ),
                "{rhost:?}"
            );
        }
    }
    assert_eq!(
        store.host_lockouts(T0 + 20).unwrap().len(),
        1,
        "still only one"
    );
}

/// A success from an address clears that address's count of failures.
pub fn a_success_clears_the_hosts_failures(store: &mut dyn Store) {
    let limits = Limits {
        max_host_failures: 3,
        ..limits()
    };
    let mut rng = rng();
    let from = Some("198.51.100.4");
    fail_once(store, &login("u1", from), &limits, T0, &mut rng);
    fail_once(store, &login("u2", from), &limits, T0 + 1, &mut rng);
    let u3 = login("u3", from);
    let (challenge, code) = issued(store, &u3, &limits, T0 + 2, &mut rng);
    assert_eq!(
        answer(store, &challenge, &u3, &code, &limits, T0 + 2),
        VerifyOutcome::Success
    );
    for (user, at) in [("u4", T0 + 3), ("u5", T0 + 4)] {
        assert!(matches!(
            fail_once(store, &login(user, from), &limits, at, &mut rng),
            VerifyOutcome::Wrong { .. }
        ));
    }
}

/// An admin's unlock of a user leaves the hosts locked, and the other way round; each says
/// whether there was anything to clear.
pub fn an_admin_unlocks_users_and_hosts_separately(store: &mut dyn Store) {
    let limits = Limits {
        max_host_failures: 1,
        max_user_failures: 1,
        resend_cooldown_secs: 0,
        ..limits()
    };
    let mut rng = rng();
    let alice = login("alice", Some("203.0.113.9"));
    assert!(matches!(
        fail_once(store, &alice, &limits, T0, &mut rng),
        VerifyOutcome::LockedOut { .. }
    ));
    assert!(store.unlock_user("alice", T0 + 1).unwrap());
    assert!(!store.unlock_user("alice", T0 + 1).unwrap(), "nothing left");
    assert_eq!(store.user_locked_until("alice", T0 + 1).unwrap(), None);
    assert!(
        matches!(
            store.issue(&alice, &limits, T0 + 1, &mut rng).unwrap(),
            IssueOutcome::LockedOut { .. }
        ),
        "the host is still locked"
    );
    issued(store, &login("alice", None), &limits, T0 + 1, &mut rng);

    let cleared = store.unlock_host("203.0.113.9", T0 + 2).unwrap().unwrap();
    assert_eq!(cleared.subject, "203.0.113.9");
    assert_eq!(cleared.locked_until, Some(T0 + limits.lockout_secs));
    assert_eq!(store.unlock_host("203.0.113.9", T0 + 2).unwrap(), None);
    assert_eq!(store.locked_hosts(T0 + 2).unwrap(), 0);
    issued(
        store,
        &login("bob", Some("203.0.113.9")),
        &limits,
        T0 + 2,
        &mut rng,
    );
}

/// An admin's reset forgets the user's sends, closes their live code and clears their
/// failures, and reports exactly that; recovery codes stay.
pub fn an_admin_reset_forgets_sends_closes_codes_and_clears_failures(store: &mut dyn Store) {
    let limits = Limits {
        resend_cooldown_secs: 600,
        max_sends_per_hour: 2,
        ..limits()
    };
    let (mut rng, alice) = (rng(), login("alice", None));
    store.new_recovery_codes("alice", T0, &mut rng).unwrap();
    let (challenge, code) = issued(store, &alice, &limits, T0, &mut rng);
    answer(store, &challenge, &alice, &wrong(&code), &limits, T0 + 1);

    let reset = store.reset_user("alice", T0 + 2).unwrap();
    assert_eq!(reset.sends, SendCounts { hour: 1, day: 1 });
    assert_eq!(reset.codes_closed, 1);
    let lockout = reset.lockout.expect("the failure was counted");
    assert_eq!(lockout.failures, 1);
    assert_eq!(
        store.sends_counted("alice", T0 + 2).unwrap(),
        SendCounts::default()
    );
    assert_eq!(
        answer(store, &challenge, &alice, &code, &limits, T0 + 3),
        VerifyOutcome::Dead
    );
    // A new code, not the old one again, although the cooldown has not passed.
    issued(store, &alice, &limits, T0 + 4, &mut rng);
    assert_eq!(
        store.recovery_codes_left("alice").unwrap(),
        u32::try_from(RECOVERY_SET_SIZE).unwrap()
    );
    assert!(store.reset_user("nobody", T0 + 5).unwrap().is_empty());
}

fn record(name: &str) -> UserRecord {
    UserRecord {
        name: name.to_string(),
        email: Some(format!("{name}@example.org")),
        enabled: true,
        protocols: None,
        language: None,
        phone: None,
    }
}

/// User records are created, read, replaced, listed by name and removed; an invalid record is
/// refused, and a batch with one is written not at all.
pub fn enrolment_records_are_kept_as_given(store: &mut dyn Store) {
    assert_eq!(store.user("alice").unwrap(), None);
    store.upsert_user(&record("bob")).unwrap();
    store.upsert_user(&record("alice")).unwrap();
    assert_eq!(store.user("alice").unwrap(), Some(record("alice")));

    let changed = UserRecord {
        email: None,
        enabled: false,
        protocols: Some(vec![]),
        language: Some(common::config::Language::German),
        phone: Some("+441234567890".into()),
        ..record("alice")
    };
    store.upsert_user(&changed).unwrap();
    assert_eq!(
        store.user("alice").unwrap(),
        Some(changed.clone()),
        "no protocols is not all protocols"
    );
    let listed = store.list_users().unwrap();
    assert_eq!(listed, vec![changed, record("bob")]);
    let counts = store.user_counts(T0).unwrap();
    assert_eq!((counts.users, counts.enabled), (2, 1));

    assert!(store.upsert_user(&record("")).is_err());
    let typo = UserRecord {
        protocols: Some(vec!["shh".into()]),
        ..record("carol")
    };
    assert!(store.upsert_user(&typo).is_err());
    assert!(store.upsert_users(&[record("dave"), typo]).is_err());
    assert_eq!(store.user("dave").unwrap(), None, "all or nothing");
    store
        .upsert_users(&[record("dave"), record("erin")])
        .unwrap();
    assert_eq!(store.list_users().unwrap().len(), 4);

    assert!(store.remove_user("bob").unwrap());
    assert!(!store.remove_user("bob").unwrap());
    assert_eq!(store.user("bob").unwrap(), None);
}

/// A recovery code answers a login prompt once, queues a notice of its use, and is never
/// taken where a mailed code alone is meant; a new set replaces the old.
pub fn recovery_codes_answer_once(store: &mut dyn Store) {
    let (limits, mut rng, alice) = (
        Limits {
            resend_cooldown_secs: 0,
            ..limits()
        },
        rng(),
        login("alice", None),
    );
    let old_set = store.new_recovery_codes("alice", T0, &mut rng).unwrap();
    let set = store.new_recovery_codes("alice", T0, &mut rng).unwrap();
    let full = u32::try_from(RECOVERY_SET_SIZE).unwrap();
    assert_eq!(set.len(), RECOVERY_SET_SIZE);
    assert_eq!(store.recovery_codes_left("alice").unwrap(), full);

    let prompt = |store: &mut dyn Store, challenge: &str, code: &SecretString, now| {
        store
            .verify_answer(challenge, "alice", "ssh", None, code, &limits, now, &NOTICE)
            .unwrap()
    };
    let (challenge, _) = issued(store, &alice, &limits, T0 + 1, &mut rng);
    assert!(matches!(
        prompt(store, &challenge, &old_set[0], T0 + 1),
        VerifyOutcome::Wrong { .. }
    ));
    assert!(
        matches!(
            answer(store, &challenge, &alice, &set[0], &limits, T0 + 1),
            VerifyOutcome::Wrong { .. }
        ),
        "verify takes no recovery code"
    );
    assert_eq!(
        prompt(store, &challenge, &set[0], T0 + 2),
        VerifyOutcome::RecoveryUsed { left: full - 1 }
    );
    assert_eq!(store.queued_notices().unwrap(), 1);
    assert_eq!(store.recovery_codes_left("alice").unwrap(), full - 1);

    let (challenge, _) = issued(store, &alice, &limits, T0 + 3, &mut rng);
    assert!(
        matches!(
            prompt(store, &challenge, &set[0], T0 + 3),
            VerifyOutcome::Wrong { .. }
        ),
        "a used recovery code"
    );
    assert_eq!(
        prompt(store, &challenge, &set[1], T0 + 4),
        VerifyOutcome::RecoveryUsed { left: full - 2 }
    );
}

/// When a code's mail fails and the user has recovery codes, the challenge answers only to a
/// recovery code; without any, the code dies. Either way the send is given back.
pub fn a_failed_mail_leaves_the_challenge_to_recovery_codes(store: &mut dyn Store) {
    let (limits, mut rng) = (limits(), rng());
    let alice = login("alice", None);
    let set = store.new_recovery_codes("alice", T0, &mut rng).unwrap();
    let (challenge, code) = issued(store, &alice, &limits, T0, &mut rng);
    let full = u32::try_from(RECOVERY_SET_SIZE).unwrap();
    assert_eq!(store.recovery_fallback(&challenge).unwrap(), Some(full));
    assert_eq!(
        store.sends_counted("alice", T0).unwrap(),
        SendCounts::default()
    );
    let prompt = |store: &mut dyn Store, code: &SecretString, now| {
        store
            .verify_answer(
                &challenge, "alice", "ssh", None, code, &limits, now, &NOTICE,
            )
            .unwrap()
    };
    assert!(
        matches!(prompt(store, &code, T0 + 1), VerifyOutcome::Wrong { .. }),
        "nobody received the mailed code"
    );
    assert_eq!(
        prompt(store, &set[3], T0 + 2),
        VerifyOutcome::RecoveryUsed { left: full - 1 }
    );

    let bob = login("bob", None);
    let (challenge, code) = issued(store, &bob, &limits, T0, &mut rng);
    assert_eq!(store.recovery_fallback(&challenge).unwrap(), None);
    assert_eq!(
        answer(store, &challenge, &bob, &code, &limits, T0 + 1),
        VerifyOutcome::Dead
    );
}

/// A notice waits until it is due, can be put off, and is gone once forgotten.
pub fn a_notice_waits_until_it_is_delivered(store: &mut dyn Store) {
    let (limits, mut rng, alice) = (limits(), rng(), login("alice", None));
    let set = store.new_recovery_codes("alice", T0, &mut rng).unwrap();
    let (challenge, _) = issued(store, &alice, &limits, T0, &mut rng);
    store
        .verify_answer(
            &challenge,
            "alice",
            "ssh",
            None,
            &set[0],
            &limits,
            T0 + 1,
            &NOTICE,
        )
        .unwrap();
    let due = store.due_notices(T0 + 1, 0, 10).unwrap();
    assert_eq!(due.len(), 1);
    let notice = &due[0];
    assert_eq!(
        (notice.user.as_str(), notice.address.as_str(), notice.tries),
        ("alice", "alice@example.org", 0)
    );
    assert_eq!(
        notice.detail,
        format!("{} recovery codes are left", RECOVERY_SET_SIZE - 1)
    );
    store.put_off_notice(notice.id, T0 + 100).unwrap();
    assert!(store.due_notices(T0 + 99, 0, 10).unwrap().is_empty());
    let again = store.due_notices(T0 + 100, 0, 10).unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].tries, 1);
    assert!(
        store
            .due_notices(T0 + 100, notice.id, 10)
            .unwrap()
            .is_empty()
    );
    store.close_notice(notice.id, T0 + 100).unwrap();
    assert_eq!(store.queued_notices().unwrap(), 0);
}

/// A notice of an event with a key is queued once, delivered or not; a recipient's notices
/// of the last hour count against the cap, the admin's for all users together.
pub fn a_notice_is_told_once_and_capped_per_hour(store: &mut dyn Store) {
    let lockout = |user, key, to_admin| NewNotice {
        kind: NoticeKind::Lockout,
        user,
        address: "x@example.org",
        channel: None,
        to_admin,
        service: "sshd",
        rhost: None,
        detail: "until later",
        event_key: Some(key),
    };
    let q = |store: &mut dyn Store, user, key, to_admin, now| {
        store
            .queue_notice(&lockout(user, key, to_admin), Some(2), now)
            .unwrap()
    };
    assert_eq!(q(store, "alice", "1", false, T0), Queued::Queued);
    assert_eq!(q(store, "alice", "1", false, T0 + 1), Queued::AlreadyTold);
    assert_eq!(
        q(store, "alice", "1", true, T0 + 1),
        Queued::Queued,
        "the admin's own"
    );
    assert_eq!(q(store, "alice", "2", false, T0 + 2), Queued::Queued);
    assert_eq!(q(store, "alice", "3", false, T0 + 3), Queued::OverCap);
    assert_eq!(q(store, "bob", "3", false, T0 + 3), Queued::Queued);
    assert_eq!(q(store, "bob", "4", true, T0 + 3), Queued::Queued);
    assert_eq!(q(store, "carol", "5", true, T0 + 4), Queued::OverCap);
    assert_eq!(q(store, "alice", "3", false, T0 + 3601), Queued::Queued);
    let due = store.due_notices(T0 + 3601, i64::MIN, 20).unwrap();
    assert_eq!(due.len(), 6);
    store.close_notice(due[0].id, T0 + 3601).unwrap();
    assert_eq!(
        q(store, "alice", "1", false, T0 + 3602),
        Queued::AlreadyTold
    );
}

/// A notice to queue for `user`, no cap, due at once.
fn queue_for(store: &mut dyn Store, user: &str, now: i64) {
    let notice = NewNotice {
        kind: NoticeKind::Lockout,
        user,
        address: "x@example.org",
        channel: None,
        to_admin: false,
        service: "sshd",
        rhost: None,
        detail: "",
        event_key: None,
    };
    store.queue_notice(&notice, None, now).unwrap();
}

/// A claimed notice is not due again until its lease ends (or it is put off); a closed one
/// never.
pub fn a_claimed_notice_waits_for_its_lease(store: &mut dyn Store) {
    queue_for(store, "alice", T0);
    queue_for(store, "bob", T0);
    let claimed = store.claim_notices(T0, i64::MIN, 1, T0 + 600).unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].user, "alice", "the oldest first");
    let rest = store.claim_notices(T0 + 1, i64::MIN, 10, T0 + 601).unwrap();
    let users: Vec<&str> = rest.iter().map(|n| n.user.as_str()).collect();
    assert_eq!(users, ["bob"], "alice's is leased");
    assert!(
        store
            .claim_notices(T0 + 599, i64::MIN, 10, T0 + 1200)
            .unwrap()
            .is_empty()
    );
    let again = store
        .claim_notices(T0 + 600, i64::MIN, 10, T0 + 1200)
        .unwrap();
    assert_eq!(again.len(), 1, "alice's lease ended");
    // Put off, it is due at its new time, before the lease would have ended.
    store.put_off_notice(again[0].id, T0 + 700).unwrap();
    let due = store
        .claim_notices(T0 + 700, i64::MIN, 10, T0 + 1300)
        .unwrap();
    let users: Vec<&str> = due.iter().map(|n| n.user.as_str()).collect();
    assert_eq!(users, ["alice", "bob"]);
    // Closed, never again.
    store.close_notice(due[0].id, T0 + 700).unwrap();
    let later = store
        .claim_notices(T0 + 5000, i64::MIN, 10, T0 + 6000)
        .unwrap();
    let users: Vec<&str> = later.iter().map(|n| n.user.as_str()).collect();
    assert_eq!(users, ["bob"]);
}

/// A login address is new only for a user who logged in before, and only once it has not
/// been seen for the window.
pub fn a_login_address_is_known_for_its_window(store: &mut dyn Store) {
    let mut seen = |user, rhost, now| store.note_login_address(user, rhost, now, 100).unwrap();
    assert_eq!(seen("alice", "192.0.2.1", T0), AddressSeen::FirstEver);
    assert_eq!(seen("alice", "192.0.2.1", T0 + 50), AddressSeen::Known);
    assert_eq!(seen("alice", "192.0.2.2", T0 + 50), AddressSeen::New);
    assert_eq!(seen("alice", "192.0.2.1", T0 + 151), AddressSeen::New);
    assert_eq!(seen("bob", "192.0.2.1", T0 + 151), AddressSeen::FirstEver);
}

/// The same when each noting follows a right answer in one transaction, as a login's does:
/// the answered address noted twice in it (the second time it is known), another address
/// noted in it too, and the windows across transactions.
pub fn a_login_address_noted_after_its_answer_is_known_for_its_window(store: &mut dyn Store) {
    let (limits, mut rng) = (limits(), rng());
    let mut answered_then_noted = |user, rhost, now, notings: &[(&str, i64)]| {
        let req = login(user, Some(rhost));
        let (challenge, code) = issued(store, &req, &limits, now, &mut rng);
        let mut seen = Vec::new();
        store
            .in_one_transaction(&mut |store| {
                let outcome = store.verify_answer(
                    &challenge,
                    user,
                    "ssh",
                    Some(rhost),
                    &code,
                    &limits,
                    now,
                    &NOTICE,
                )?;
                assert_eq!(outcome, VerifyOutcome::Success);
                for (noted, at) in notings {
                    seen.push(store.note_login_address(user, noted, *at, 100)?);
                }
                Ok(())
            })
            .unwrap();
        seen
    };
    let (one, two) = ("192.0.2.1", "192.0.2.2");
    use AddressSeen::{FirstEver, Known, New};
    assert_eq!(
        answered_then_noted("alice", one, T0, &[(one, T0), (one, T0)]),
        [FirstEver, Known]
    );
    assert_eq!(
        answered_then_noted("alice", one, T0 + 50, &[(one, T0 + 50), (two, T0 + 50)]),
        [Known, New]
    );
    assert_eq!(
        answered_then_noted("alice", two, T0 + 151, &[(two, T0 + 151), (one, T0 + 151)]),
        [New, New]
    );
    assert_eq!(
        answered_then_noted("alice", one, T0 + 200, &[(one, T0 + 200)]),
        [Known]
    );
    assert_eq!(
        answered_then_noted("bob", one, T0 + 200, &[(one, T0 + 200)]),
        [FirstEver]
    );
}

/// A code appended to the password answers once under the usual rules, and a success leaves
/// a grant that takes the same code again for `reuse_secs` from the same host and service.
pub fn an_appended_code_answers_once_and_leaves_a_reuse_grant(store: &mut dyn Store) {
    let (limits, mut rng) = (limits(), rng());
    let ftp = IssueRequest {
        user: "alice",
        protocol: "ftp",
        service: "vsftpd",
        rhost: Some("192.0.2.1"),
    };
    assert!(!store.expects_code(&ftp, &limits, T0).unwrap());
    let (_, code) = issued(store, &ftp, &limits, T0, &mut rng);
    assert!(store.expects_code(&ftp, &limits, T0).unwrap());
    let appended = |store: &mut dyn Store,
                    req: &IssueRequest<'_>,
                    code: &SecretString,
                    now,
                    rng: &mut StdRng| {
        store
            .verify_appended(req, code, &limits, 60, now, rng)
            .unwrap()
    };
    assert_eq!(
        appended(store, &ftp, &wrong(&code), T0 + 1, &mut rng),
        VerifyOutcome::Wrong { attempts_left: 4 }
    );
    assert_eq!(
        appended(store, &ftp, &code, T0 + 2, &mut rng),
        VerifyOutcome::Success
    );
    assert_eq!(
        appended(store, &ftp, &code, T0 + 61, &mut rng),
        VerifyOutcome::Success,
        "the grant"
    );
    let elsewhere = IssueRequest {
        rhost: Some("192.0.2.2"),
        ..ftp
    };
    assert_eq!(
        appended(store, &elsewhere, &code, T0 + 3, &mut rng),
        VerifyOutcome::Dead,
        "a grant holds for its host only"
    );
    assert!(!store.expects_code(&ftp, &limits, T0 + 62).unwrap());
    assert_eq!(
        appended(store, &ftp, &code, T0 + 62, &mut rng),
        VerifyOutcome::Dead,
        "used, and the grant is over"
    );
}

fn grant(user: &str, granted_at: i64, expires_at: i64) -> BreakGlass {
    BreakGlass {
        user: user.to_string(),
        cidr: Some("192.0.2.0/24".into()),
        granted_by: 0,
        granted_at,
        expires_at,
    }
}

/// A login's facts read the user's record and grant row together; the row is read as it is,
/// live or expired, and reading it deletes nothing (the expiry is the decision's to report).
pub fn a_users_record_and_grant_row_are_read_together_and_unchanged(store: &mut dyn Store) {
    let alice = record("alice");
    store.upsert_user(&alice).unwrap();
    let (record, row) = store.user_and_grant("alice").unwrap();
    assert_eq!((record, row.unwrap()), (Some(alice.clone()), None));

    let expired = grant("alice", T0, T0 + 300);
    store.grant_breakglass(&expired).unwrap();
    let (record, row) = store.user_and_grant("alice").unwrap();
    assert_eq!((record, row.unwrap()), (Some(alice), Some(expired.clone())));
    // Read again, it is still there: only the decision's lookup deletes it, once.
    let (_, row) = store.user_and_grant("alice").unwrap();
    assert_eq!(row.unwrap(), Some(expired.clone()));
    assert_eq!(
        store.breakglass_for("alice", T0 + 300).unwrap(),
        BreakGlassLookup::Expired(expired)
    );

    // A grant without a record: an admin may grant a user otpd's table does not list.
    let bob = grant("bob", T0, T0 + 300);
    store.grant_breakglass(&bob).unwrap();
    let (record, row) = store.user_and_grant("bob").unwrap();
    assert_eq!((record, row.unwrap()), (None, Some(bob)));
}

/// One login's transaction with the operation that follows its facts told to the store
/// ([`Store::user_and_grant_then`]): the facts it read, and what `then` did.
fn told<T>(
    store: &mut dyn Store,
    user: &str,
    ahead: ReadAhead<'_>,
    mut then: impl FnMut(&mut dyn Store) -> Result<T, StoreError>,
) -> (Option<UserRecord>, T) {
    let mut done = None;
    store
        .in_one_transaction(&mut |store| {
            let (record, grant) = store.user_and_grant_then(user, &ahead)?;
            assert_eq!(grant.unwrap(), None);
            done = Some((record, then(store)?));
            Ok(())
        })
        .unwrap();
    done.unwrap()
}

/// An issue told with the facts, as a login's begin is.
fn issue_told(
    store: &mut dyn Store,
    req: &IssueRequest<'_>,
    limits: &Limits,
    now: i64,
    rng: &mut StdRng,
) -> IssueOutcome {
    let ahead = ReadAhead::Issue {
        rhost: req.rhost,
        max_attempts: limits.max_attempts,
        now,
    };
    told(store, req.user, ahead, |store| {
        store.issue(req, limits, now, &mut *rng)
    })
    .1
}

/// An answer told with the facts, as a login's answer is.
fn answer_told(
    store: &mut dyn Store,
    challenge: &str,
    req: &IssueRequest<'_>,
    code: &SecretString,
    limits: &Limits,
    now: i64,
) -> VerifyOutcome {
    let ahead = ReadAhead::Answer {
        challenge,
        rhost: req.rhost,
        now,
    };
    told(store, req.user, ahead, |store| {
        store.verify_answer(
            challenge,
            req.user,
            req.protocol,
            req.rhost,
            code,
            limits,
            now,
            &NOTICE,
        )
    })
    .1
}

/// Facts read with the operation that follows told are the facts, and the operation decides
/// as it would untold, in each of its outcomes (a new code, the code again, a cap; a wrong,
/// right and dead answer; a lockout), also when something between the read and the operation
/// changed what it reads, when it was told other parameters, or another operation follows.
pub fn an_operation_told_with_the_facts_decides_as_untold(store: &mut dyn Store) {
    let limits = Limits {
        max_sends_per_hour: 2,
        max_user_failures: 2,
        ..limits()
    };
    let mut rng = rng();
    let alice = login("alice", Some("192.0.2.1"));
    store.upsert_user(&record("alice")).unwrap();
    let untold = store.user_and_grant("alice").unwrap().0;
    let (facts, first) = told(
        store,
        "alice",
        ReadAhead::Issue {
            rhost: alice.rhost,
            max_attempts: limits.max_attempts,
            now: T0,
        },
        |store| store.issue(&alice, &limits, T0, &mut rng),
    );
    assert_eq!(facts, untold);
    let IssueOutcome::Issued {
        challenge, code, ..
    } = first
    else {
        panic!("expected a new code, got {first:?}");
    };
    assert!(matches!(
        issue_told(store, &alice, &limits, T0 + 1, &mut rng),
        IssueOutcome::Reused { challenge: again, .. } if again == challenge
    ));
    let answered = |store: &mut dyn Store, code: &SecretString, now| {
        answer_told(store, &challenge, &alice, code, &limits, now)
    };
    assert_eq!(
        answered(store, &wrong(&code), T0 + 2),
        VerifyOutcome::Wrong { attempts_left: 4 }
    );
    assert_eq!(answered(store, &code, T0 + 3), VerifyOutcome::Success);
    assert_eq!(answered(store, &code, T0 + 4), VerifyOutcome::Dead);
    let (challenge, code) = issued(store, &alice, &limits, T0 + 40, &mut rng);
    let capped = issue_told(store, &alice, &limits, T0 + 80, &mut rng);
    assert!(
        matches!(capped, IssueOutcome::RateLimited { retry_after } if retry_after == T0 + HOUR),
        "{capped:?}"
    );
    let locked = VerifyOutcome::LockedOut {
        until: T0 + 81 + 900,
    };
    assert_eq!(
        answer_told(store, &challenge, &alice, &wrong(&code), &limits, T0 + 81),
        locked
    );
    assert_eq!(
        answer_told(store, &challenge, &alice, &code, &limits, T0 + 82),
        locked
    );

    // Between the read and the issue, the live code is invalidated: no code to reuse.
    let bob = login("bob", None);
    let (first, _) = issued(store, &bob, &limits, T0, &mut rng);
    let ahead = ReadAhead::Issue {
        rhost: None,
        max_attempts: limits.max_attempts,
        now: T0 + 1,
    };
    let (_, again) = told(store, "bob", ahead, |store| {
        store.invalidate(&first)?;
        store.issue(&bob, &limits, T0 + 1, &mut rng)
    });
    assert!(matches!(again, IssueOutcome::Issued { .. }), "{again:?}");

    // Told other parameters, or another operation: it decides as ever.
    let carol = login("carol", None);
    let ahead = ReadAhead::Issue {
        rhost: None,
        max_attempts: limits.max_attempts + 1,
        now: T0,
    };
    let (_, first) = told(store, "carol", ahead, |store| {
        store.issue(&carol, &limits, T0, &mut rng)
    });
    let IssueOutcome::Issued {
        challenge, code, ..
    } = first
    else {
        panic!("expected a new code, got {first:?}");
    };
    let ahead = ReadAhead::Answer {
        challenge: &challenge,
        rhost: None,
        now: T0 + 1,
    };
    let (_, reused) = told(store, "carol", ahead, |store| {
        store.issue(&carol, &limits, T0 + 1, &mut rng)
    });
    assert!(matches!(reused, IssueOutcome::Reused { .. }), "{reused:?}");
    assert_eq!(
        answer(store, &challenge, &carol, &code, &limits, T0 + 2),
        VerifyOutcome::Success
    );
}

/// A break-glass grant holds until its expiry, then is reported expired exactly once; a new
/// grant replaces the old, and a revoked one is gone.
pub fn a_break_glass_grant_holds_until_it_expires(store: &mut dyn Store) {
    let alice = grant("alice", T0, T0 + 300);
    assert_eq!(store.grant_breakglass(&alice).unwrap(), None);
    assert_eq!(
        store.breakglass_for("alice", T0 + 299).unwrap(),
        BreakGlassLookup::Live(alice.clone())
    );
    assert_eq!(
        store.live_breakglass(T0 + 299).unwrap(),
        vec![alice.clone()]
    );
    assert_eq!(
        store.breakglass_for("alice", T0 + 300).unwrap(),
        BreakGlassLookup::Expired(alice.clone())
    );
    assert_eq!(
        store.breakglass_for("alice", T0 + 301).unwrap(),
        BreakGlassLookup::None,
        "reported once"
    );

    let bob = grant("bob", T0, T0 + 100);
    store.grant_breakglass(&bob).unwrap();
    let longer = grant("bob", T0 + 50, T0 + 500);
    assert_eq!(store.grant_breakglass(&longer).unwrap(), Some(bob));
    let carol = grant("carol", T0, T0 + 200);
    store.grant_breakglass(&carol).unwrap();
    assert_eq!(store.expire_breakglass(T0 + 200).unwrap(), vec![carol]);
    assert_eq!(store.expire_breakglass(T0 + 200).unwrap(), vec![]);
    assert_eq!(
        store.live_breakglass(T0 + 200).unwrap(),
        vec![longer.clone()]
    );
    assert_eq!(store.revoke_breakglass("bob").unwrap(), Some(longer));
    assert_eq!(store.revoke_breakglass("bob").unwrap(), None);
    assert_eq!(
        store.breakglass_for("bob", T0 + 201).unwrap(),
        BreakGlassLookup::None
    );
}

fn audit<'a>(time: i64, event: &'a str, user: &'a str) -> AuditRecord<'a> {
    AuditRecord {
        time,
        event,
        user: Some(user),
        service: Some("sshd"),
        protocol: Some("ssh"),
        rhost: Some("192.0.2.1"),
        caller_uid: Some(0),
        detail: Some("why"),
    }
}

/// A decision and its audit row made in one transaction are both kept, and an operation that
/// fails inside it (here a refused enrolment) takes back only its own writes.
pub fn a_decision_and_its_audit_row_commit_together(store: &mut dyn Store) {
    let (limits, mut rng, alice) = (limits(), rng(), login("alice", None));
    let mut challenge = None;
    store
        .in_one_transaction(&mut |store| {
            challenge = Some(issued(store, &alice, &limits, T0, &mut rng).0);
            store.record_audit(&audit(T0, "issued", "alice")).unwrap();
            let bad = UserRecord {
                name: String::new(),
                ..record("nobody")
            };
            assert!(store.upsert_user(&bad).is_err());
            Ok(())
        })
        .unwrap();
    assert!(challenge.is_some());
    assert_eq!(store.live_codes(T0).unwrap(), 1);
    assert_eq!(store.audit_since(T0, 10).unwrap().len(), 1);
}

/// What an operation of a transaction wrote (a code issued, a code used, audit rows) is there
/// for the transaction's later operations, audit rows in the order recorded, and a
/// transaction whose only work is its rows commits them.
pub fn writes_of_a_transaction_are_seen_by_its_later_operations_and_kept(store: &mut dyn Store) {
    let (limits, mut rng, alice) = (limits(), rng(), login("alice", None));
    let (mut live, mut seen) = (Vec::new(), Vec::new());
    store
        .in_one_transaction(&mut |store| {
            let (challenge, code) = issued(store, &alice, &limits, T0, &mut rng);
            live.push(store.live_codes(T0)?);
            store.record_audit(&audit(T0, "issued", "alice"))?;
            store.record_audit(&audit(T0, "mailed", "alice"))?;
            seen = store.audit_since(0, 10)?;
            let outcome = answer(store, &challenge, &alice, &code, &limits, T0 + 1);
            assert_eq!(outcome, VerifyOutcome::Success);
            live.push(store.live_codes(T0 + 1)?);
            store.record_audit(&audit(T0 + 1, "verified", "alice"))?;
            Ok(())
        })
        .unwrap();
    assert_eq!(live, [1, 0], "the issue, then the use, seen inside");
    let events = |rows: &[AuditRow]| rows.iter().map(|r| r.event.clone()).collect::<Vec<_>>();
    // Newest first.
    assert_eq!(events(&seen), ["mailed", "issued"]);
    store
        .in_one_transaction(&mut |store| store.record_audit(&audit(T0 + 2, "mailed", "bob")))
        .unwrap();
    let kept = store.audit_since(0, 10).unwrap();
    assert_eq!(events(&kept), ["mailed", "verified", "mailed", "issued"]);
    assert!(
        kept.windows(2).all(|pair| pair[0].id > pair[1].id),
        "{kept:?}"
    );
    assert_eq!(store.live_codes(T0 + 1).unwrap(), 0, "the use was kept");
}

/// When the work of one transaction dies half-way (a panic; for a crash the database's own
/// journal does the same), neither the decision nor its audit row is kept, and the store
/// still works after.
pub fn a_transaction_that_dies_keeps_neither_the_decision_nor_its_row(store: &mut dyn Store) {
    let (limits, mut rng, alice) = (limits(), rng(), login("alice", None));
    let died = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = store.in_one_transaction(&mut |store| {
            issued(store, &alice, &limits, T0, &mut rng);
            store.record_audit(&audit(T0, "issued", "alice")).unwrap();
            panic!("the work dies before its end");
        });
    }));
    assert!(died.is_err());
    assert_eq!(store.live_codes(T0).unwrap(), 0, "the code was taken back");
    assert!(
        store.audit_since(0, 10).unwrap().is_empty(),
        "so was its row"
    );
    issued(store, &alice, &limits, T0 + 1, &mut rng);
    assert_eq!(store.live_codes(T0 + 1).unwrap(), 1);
}

/// When the work of one transaction fails (an audit row that could not be written, say),
/// neither the decision nor its row is kept, and the failure is what the transaction returns.
pub fn a_transaction_whose_work_fails_keeps_neither_the_decision_nor_its_row(
    store: &mut dyn Store,
) {
    let (limits, mut rng, alice) = (limits(), rng(), login("alice", None));
    let failed = store.in_one_transaction(&mut |store| {
        issued(store, &alice, &limits, T0, &mut rng);
        store.record_audit(&audit(T0, "issued", "alice"))?;
        Err(StoreError::InvalidLimits(
            "the work fails after its decision",
        ))
    });
    assert!(
        matches!(failed, Err(StoreError::InvalidLimits(_))),
        "{failed:?}"
    );
    assert_eq!(store.live_codes(T0).unwrap(), 0, "the code was taken back");
    assert!(
        store.audit_since(0, 10).unwrap().is_empty(),
        "so was its row"
    );
    issued(store, &alice, &limits, T0 + 1, &mut rng);
    assert_eq!(store.live_codes(T0 + 1).unwrap(), 1);
}

/// Audit rows are kept as recorded and read back newest first, by time, user and event.
pub fn audit_rows_are_kept_and_read_back(store: &mut dyn Store) {
    store.record_audit(&audit(T0, "issued", "alice")).unwrap();
    store
        .record_audit(&audit(T0 + 1, "verified", "alice"))
        .unwrap();
    store
        .record_audit(&audit(T0 + 2, "wrong_code", "bob"))
        .unwrap();

    let rows = store.audit_since(T0 + 1, 10).unwrap();
    let seen: Vec<_> = rows.iter().map(|r| (r.time, r.event.as_str())).collect();
    assert_eq!(seen, vec![(T0 + 2, "wrong_code"), (T0 + 1, "verified")]);
    let row = &rows[1];
    assert_eq!(row.user.as_deref(), Some("alice"));
    assert_eq!(row.service.as_deref(), Some("sshd"));
    assert_eq!(row.protocol.as_deref(), Some("ssh"));
    assert_eq!(row.rhost.as_deref(), Some("192.0.2.1"));
    assert_eq!(row.caller_uid, Some(0));
    assert_eq!(row.detail.as_deref(), Some("why"));
    assert!(rows[0].id > rows[1].id, "ids grow with insertion");
    assert_eq!(store.audit_since(0, 1).unwrap().len(), 1, "the limit");

    let filtered = |store: &mut dyn Store, user: Option<&str>, event: Option<&str>| {
        store
            .audit_filtered(&AuditFilter {
                user: user.map(String::from),
                event: event.map(String::from),
                since: 0,
                limit: 10,
                before: None,
            })
            .unwrap()
            .into_iter()
            .map(|r| r.time)
            .collect::<Vec<_>>()
    };
    assert_eq!(filtered(store, Some("alice"), None), vec![T0 + 1, T0]);
    assert_eq!(filtered(store, None, Some("wrong_code")), vec![T0 + 2]);
    assert_eq!(
        filtered(store, Some("bob"), Some("issued")),
        Vec::<i64>::new()
    );

    // Paging: the rows older than the last one shown.
    let newest = &store.audit_since(0, 1).unwrap()[0];
    let page = store
        .audit_filtered(&AuditFilter {
            since: 0,
            limit: 10,
            before: Some((newest.time, newest.id)),
            ..AuditFilter::default()
        })
        .unwrap();
    let times: Vec<_> = page.iter().map(|r| r.time).collect();
    assert_eq!(times, vec![T0 + 1, T0]);
}

/// A mail server's (or webhook endpoint's) last success and last failure are read back from the
/// audit rows: a success names the server in its detail (`NAME`, or `NAME after ...` after
/// failover), a failure names each server tried as `NAME: error`.
pub fn a_mail_servers_history_is_read_back_from_the_audit_rows(store: &mut dyn Store) {
    let row = |time, event, detail| AuditRecord {
        detail: Some(detail),
        ..audit(time, event, "alice")
    };
    store.record_audit(&row(T0, "mailed", "relay_1")).unwrap();
    store
        .record_audit(&row(T0 + 1, "mailed", "relayX1"))
        .unwrap();
    store
        .record_audit(&row(
            T0 + 2,
            "mail_failed",
            "relay_1: refused; backup: timeout",
        ))
        .unwrap();
    store
        .record_audit(&row(T0 + 3, "mail_failed", "relayX1: refused"))
        .unwrap();
    let history = store.mail_history("relay_1").unwrap();
    assert_eq!(history.last_ok_at, Some(T0));
    assert_eq!(
        history.last_failure,
        Some((T0 + 2, "relay_1: refused; backup: timeout".to_string())),
        "not relayX1's failure: the name is matched as it is"
    );
    let backup = store.mail_history("backup").unwrap();
    assert_eq!(backup.last_ok_at, None);
    assert_eq!(backup.last_failure.map(|(time, _)| time), Some(T0 + 2));
    assert_eq!(
        store.mail_history("unknown").unwrap(),
        super::MailHistory::default()
    );
    // After failover, the success names the route that took it and the failures before it.
    store
        .record_audit(&row(
            T0 + 4,
            "mailed",
            "webhook:sms endpoint 2 (b.example) after webhook:sms endpoint 1 (a.example): HTTP 500",
        ))
        .unwrap();
    let second = store
        .mail_history("webhook:sms endpoint 2 (b.example)")
        .unwrap();
    assert_eq!(
        (second.last_ok_at, second.last_failure),
        (Some(T0 + 4), None)
    );
    let first = store
        .mail_history("webhook:sms endpoint 1 (a.example)")
        .unwrap();
    assert_eq!(first.last_ok_at, None);
    assert_eq!(first.last_failure.map(|(time, _)| time), Some(T0 + 4));
}

/// A tally counts one event's rows since a time, the distinct users, and ranks the users.
pub fn an_event_is_tallied_since_a_time_by_user(store: &mut dyn Store) {
    for (time, event, user) in [
        (T0 - 10, "would_ask", "old"),
        (T0, "would_ask", "bob"),
        (T0 + 1, "would_ask", "alice"),
        (T0 + 2, "would_ask", "bob"),
        (T0 + 3, "verified", "carol"),
        (T0 + 4, "would_ask", "dave"),
    ] {
        store.record_audit(&audit(time, event, user)).unwrap();
    }
    let tally = store.event_tally("would_ask", T0, 2).unwrap();
    assert_eq!(tally.rows, 4);
    assert_eq!(tally.users, 3);
    assert_eq!(
        tally.top,
        vec![("bob".to_string(), 2), ("alice".to_string(), 1)],
        "most first, then by name, at most the limit"
    );
    assert_eq!(
        store.event_tally("exempt", T0, 2).unwrap(),
        super::EventTally::default()
    );
}

/// Trimming keeps at most the cap, deleting the oldest rows.
pub fn trimming_the_audit_deletes_the_oldest_rows(store: &mut dyn Store) {
    for i in 0..20 {
        store
            .record_audit(&audit(T0 + i, "issued", "alice"))
            .unwrap();
    }
    let trimmed = store.trim_audit(10).unwrap().expect("over the cap");
    let kept = store.audit_since(0, 100).unwrap();
    assert!(kept.len() <= 10, "{}", kept.len());
    assert_eq!(trimmed.deleted, 20 - kept.len());
    assert_eq!(kept[0].time, T0 + 19, "the newest stays");
    assert_eq!(trimmed.oldest_kept, kept[kept.len() - 1].time);
    assert_eq!(store.trim_audit(10).unwrap(), None);
}

/// Purge deletes codes long expired, sends out of the daily window, empty lockout rows and
/// audit rows past retention, and nothing a rule still needs.
pub fn purge_deletes_only_what_is_old(store: &mut dyn Store) {
    let limits = Limits {
        max_user_failures: 1,
        max_host_failures: 5,
        ..limits()
    };
    let mut rng = rng();
    let now = T0 + 2 * DAY;
    // Old: alice's code and send; eve's ended lock.
    issued(store, &login("alice", None), &limits, T0, &mut rng);
    assert!(matches!(
        fail_once(store, &login("eve", None), &limits, T0, &mut rng),
        VerifyOutcome::LockedOut { .. }
    ));
    // Still needed: bob's code and send, carol's lock in force, a host's failure count.
    let bob = login("bob", None);
    let (challenge, code) = issued(store, &bob, &limits, now - 10, &mut rng);
    assert!(matches!(
        fail_once(
            store,
            &login("carol", Some("192.0.2.50")),
            &limits,
            now - 5,
            &mut rng
        ),
        VerifyOutcome::LockedOut { .. }
    ));
    store
        .record_audit(&audit(now - 5000, "issued", "alice"))
        .unwrap();
    store
        .record_audit(&audit(now - 10, "issued", "bob"))
        .unwrap();

    let purged = store.purge(now, 1000).unwrap();
    assert_eq!(purged.codes, 2, "alice's and eve's codes");
    assert_eq!(purged.sends, 2, "alice's and eve's sends");
    assert_eq!(purged.lockouts, 1, "eve's ended lock");
    assert_eq!(purged.audit, 1);

    assert_eq!(
        store.sends_counted("bob", now).unwrap(),
        SendCounts { hour: 1, day: 1 }
    );
    assert!(store.user_locked_until("carol", now).unwrap().is_some());
    let hosts = store.host_lockouts(now).unwrap();
    assert_eq!(hosts.len(), 1, "{hosts:?}");
    assert_eq!(hosts[0].failures, 1);
    assert_eq!(store.audit_since(0, 10).unwrap().len(), 1);
    assert_eq!(
        answer(store, &challenge, &bob, &code, &limits, now),
        VerifyOutcome::Success
    );
    assert_eq!(store.purge(now, 1000).unwrap().audit, 0);
}

/// One handle on the backing store under test: runs the work it is given on a `Store` that
/// shares its state with every other handle from the same factory.
pub type Handle = Box<dyn FnMut(&mut dyn FnMut(&mut dyn Store)) + Send>;

/// Runs `work` on `handle` and returns what it returned.
fn on<T>(handle: &mut Handle, work: impl FnOnce(&mut dyn Store) -> T) -> T {
    let mut work = Some(work);
    let mut out = None;
    handle(&mut |store| {
        if let Some(work) = work.take() {
            out = Some(work(store));
        }
    });
    out.expect("the handle ran the work")
}

/// Starts `work` on every handle at once, one thread each, telling it its number; the
/// results in handle order.
fn race<T: Send>(handles: Vec<Handle>, work: &(dyn Fn(&mut dyn Store, u64) -> T + Sync)) -> Vec<T> {
    let barrier = Barrier::new(handles.len());
    std::thread::scope(|scope| {
        let threads: Vec<_> = handles
            .into_iter()
            .zip(0..)
            .map(|(mut handle, racer)| {
                let barrier = &barrier;
                scope.spawn(move || {
                    barrier.wait();
                    on(&mut handle, |store| work(store, racer))
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|thread| thread.join().expect("a racing thread panicked"))
            .collect()
    })
}

/// How many racers each `racing_*` rule starts.
pub const RACERS: usize = 16;

/// Sixteen answers with the right code at once: exactly one succeeds.
pub fn racing_answers_to_one_code_give_exactly_one_success(mut handles: Vec<Handle>) {
    let limits = Limits {
        max_user_failures: 100,
        ..limits()
    };
    let alice = login("alice", None);
    let (challenge, code) = on(&mut handles[0], |store| {
        issued(store, &alice, &limits, T0, &mut rng())
    });
    let outcomes = race(handles, &|store, _| {
        answer(store, &challenge, &alice, &code, &limits, T0 + 1)
    });
    let successes = outcomes
        .iter()
        .filter(|o| **o == VerifyOutcome::Success)
        .count();
    assert_eq!(successes, 1, "{outcomes:?}");
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, VerifyOutcome::Success | VerifyOutcome::Dead)),
        "{outcomes:?}"
    );
}

/// Sixteen deliverers (as on sixteen hosts) claim forty due notices at once, five at a time
/// each: every notice is taken by exactly one.
pub fn racing_claims_take_each_notice_once(mut handles: Vec<Handle>) {
    on(&mut handles[0], |store| {
        for n in 0..40 {
            queue_for(store, &format!("user{n}"), T0);
        }
    });
    let claims = race(handles, &|store, _| {
        store
            .claim_notices(T0, i64::MIN, 5, T0 + 600)
            .unwrap()
            .into_iter()
            .map(|n| n.id)
            .collect::<Vec<_>>()
    });
    let mut ids: Vec<i64> = claims.into_iter().flatten().collect();
    let taken = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), taken, "a notice was claimed twice");
    assert!(taken >= 5, "only {taken} claimed");
}

/// Sixteen logins at once for a user with five sends left this hour: exactly five codes.
pub fn racing_issues_never_exceed_the_send_cap(handles: Vec<Handle>) {
    let limits = Limits {
        resend_cooldown_secs: 0,
        max_sends_per_hour: 5,
        ..limits()
    };
    let alice = login("alice", None);
    // Each racer its own seed: the same seed would draw the same challenge id.
    let outcomes = race(handles, &|store, racer| {
        let mut rng = StdRng::seed_from_u64(racer);
        store.issue(&alice, &limits, T0, &mut rng).unwrap()
    });
    let issued = outcomes
        .iter()
        .filter(|o| matches!(o, IssueOutcome::Issued { .. }))
        .count();
    let limited = outcomes
        .iter()
        .filter(|o| matches!(o, IssueOutcome::RateLimited { .. }))
        .count();
    assert_eq!((issued, limited), (5, RACERS - 5), "{outcomes:?}");
}

/// Sixteen wrong answers at once for a user locked at five failures: exactly four are told
/// "wrong", and the rest find the user locked out.
pub fn racing_wrong_answers_lock_at_exactly_the_limit(mut handles: Vec<Handle>) {
    let limits = Limits {
        max_user_failures: 5,
        max_attempts: 100,
        ..limits()
    };
    let alice = login("alice", None);
    let (challenge, code) = on(&mut handles[0], |store| {
        issued(store, &alice, &limits, T0, &mut rng())
    });
    let bad = wrong(&code);
    let outcomes = race(handles, &|store, _| {
        answer(store, &challenge, &alice, &bad, &limits, T0 + 1)
    });
    let wrongs = outcomes
        .iter()
        .filter(|o| matches!(o, VerifyOutcome::Wrong { .. }))
        .count();
    let until = T0 + 1 + limits.lockout_secs;
    let locked = outcomes
        .iter()
        .filter(|o| **o == VerifyOutcome::LockedOut { until })
        .count();
    assert_eq!((wrongs, locked), (4, RACERS - 4), "{outcomes:?}");
}

/// One `#[test]` per `racing_*` rule for a backend. `$handles` is a function (or closure)
/// taking a number `n` and returning `(keep, handles)`: `n` [`Handle`]s on one new, empty
/// backing store, and what must live as long as the test.
#[macro_export]
macro_rules! store_conformance_race_tests {
    ($handles:expr) => {
        $crate::store_conformance_race_tests!(@rules $handles;
            racing_answers_to_one_code_give_exactly_one_success,
            racing_issues_never_exceed_the_send_cap,
            racing_wrong_answers_lock_at_exactly_the_limit,
            racing_claims_take_each_notice_once,
        );
    };
    (@rules $handles:expr; $($rule:ident),* $(,)?) => {
        $(
            #[test]
            fn $rule() {
                let (_keep, handles) = ($handles)($crate::store::conformance::RACERS);
                $crate::store::conformance::$rule(handles);
            }
        )*
    };
}

/// One `#[test]` per conformance rule for a backend. `$fresh` is a function (or closure)
/// returning `(keep, store)`: `keep` lives as long as the test (a temp dir, say), `store` is an
/// empty store of the backend.
#[macro_export]
macro_rules! store_conformance_tests {
    ($fresh:expr) => {
        $crate::store_conformance_tests!(@rules $fresh;
            a_code_answers_once,
            an_event_is_tallied_since_a_time_by_user,
            a_code_is_valid_from_its_issue_until_its_expiry,
            a_code_takes_at_most_max_attempts_answers,
            a_code_answers_only_its_user_and_protocol,
            a_new_code_supersedes_the_old_one,
            within_the_cooldown_the_mailed_code_is_reused,
            the_hourly_and_daily_send_caps_hold,
            a_failed_mail_kills_the_code_and_gives_back_its_send,
            wrong_answers_lock_the_user_out_until_the_lock_ends,
            a_success_clears_the_users_failures_and_a_new_code_does_not,
            wrong_answers_lock_out_an_ip_address_and_only_an_ip_address,
            a_success_clears_the_hosts_failures,
            an_admin_unlocks_users_and_hosts_separately,
            an_admin_reset_forgets_sends_closes_codes_and_clears_failures,
            enrolment_records_are_kept_as_given,
            recovery_codes_answer_once,
            a_failed_mail_leaves_the_challenge_to_recovery_codes,
            a_notice_waits_until_it_is_delivered,
            a_notice_is_told_once_and_capped_per_hour,
            a_login_address_is_known_for_its_window,
            a_login_address_noted_after_its_answer_is_known_for_its_window,
            a_claimed_notice_waits_for_its_lease,
            an_appended_code_answers_once_and_leaves_a_reuse_grant,
            a_break_glass_grant_holds_until_it_expires,
            a_users_record_and_grant_row_are_read_together_and_unchanged,
            an_operation_told_with_the_facts_decides_as_untold,
            a_decision_and_its_audit_row_commit_together,
            writes_of_a_transaction_are_seen_by_its_later_operations_and_kept,
            a_transaction_that_dies_keeps_neither_the_decision_nor_its_row,
            a_transaction_whose_work_fails_keeps_neither_the_decision_nor_its_row,
            audit_rows_are_kept_and_read_back,
            a_mail_servers_history_is_read_back_from_the_audit_rows,
            trimming_the_audit_deletes_the_oldest_rows,
            purge_deletes_only_what_is_old,
        );
    };
    (@rules $fresh:expr; $($rule:ident),* $(,)?) => {
        $(
            #[test]
            fn $rule() {
                let (_keep, mut store) = ($fresh)();
                $crate::store::conformance::$rule(&mut store);
            }
        )*
    };
}
