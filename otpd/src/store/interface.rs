//! The store interface: the product's rules as operations, for any backend to implement.
//!
//! Each operation is one atomic decision: what it reads and what it writes happen together or
//! not at all, and two requests racing on the same code, user or host see each other's effects
//! whole (two answers to one code never both succeed, a cap is never exceeded by a race). How a
//! backend gets that is its own affair: [`SqliteStore`](super::SqliteStore) runs one
//! `BEGIN IMMEDIATE` transaction per operation; a shared database would use its transactions
//! and row locks, never state kept in one otpd's memory.
//!
//! Time is a parameter (`now`, unix seconds): the caller's clock is the only clock, so the
//! rules are the same on every backend and are tested without sleeping (see
//! `conformance`). Randomness is a parameter too, as `&mut dyn CryptoRng`: a trait with generic
//! methods could not be used as `dyn Store`, and letting each backend take OS randomness itself
//! would make its codes impossible to reproduce in tests. `CryptoRng` (a subtrait of `RngCore`
//! in rand 0.9) keeps a non-cryptographic generator out at compile time.
//!
//! The trait is object safe: the daemon holds `Box<dyn Store + Send>` and chooses the backend
//! at start. `Send` is asked for there, not by the trait, so that a lock guard over the box is
//! itself a `Store` (see the forwarding impl at the end): callers pass `&mut guard` where
//! `&mut dyn Store` is wanted, as they passed `&mut Store` before there was an interface.

use std::ops::DerefMut;
use std::sync::Arc;

use common::secret::SecretString;
use common::wire_admin::AuditRow;
use rand::CryptoRng;

use super::{
    AddressSeen, Admission, AuditFilter, AuditRecord, BreakGlass, BreakGlassLookup, EventTally,
    IssueOutcome, IssueRequest, Limits, Lockout, MailHistory, NewNotice, NoticeTo, PurgeCounts,
    Queued, QueuedNotice, RateKey, SendCounts, StoreError, Suppressed, Trimmed, UserCounts,
    UserRecord, UserReset, VerifyOutcome,
};
use crate::metrics::Metrics;

/// What [`Store::user_and_grant`] reads: the user's record, and their grant row or why it
/// could not be read.
pub type UserAndGrant = (Option<UserRecord>, Result<Option<BreakGlass>, StoreError>);

/// The operation a login goes on to after its facts, in the same transaction, told to
/// [`Store::user_and_grant_then`] with the parameters that operation will be called with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadAhead<'a> {
    /// [`Store::issue`] for the user from `rhost` at `now`, under limits whose
    /// `max_attempts` is this.
    Issue {
        /// The remote host, as the issue will be told it.
        rhost: Option<&'a str>,
        /// The limits' `max_attempts`.
        max_attempts: u32,
        /// The time the issue will be told.
        now: i64,
    },
    /// [`Store::verify_answer`] or [`Store::verify`] of an answer to `challenge` by the user
    /// from `rhost` at `now`.
    Answer {
        /// The challenge answered.
        challenge: &'a str,
        /// The remote host, as the answer will be told it.
        rhost: Option<&'a str>,
        /// The time the answer will be told.
        now: i64,
    },
}

/// The daemon's state behind its rules: codes, sends, lockouts, enrolment, recovery codes,
/// break-glass grants, notices and audit rows. Every error fails the login closed.
///
/// A backend is held to these rules by the conformance suite (`store::conformance`, built for
/// tests and with the `conformance` feature): `store_conformance_tests!` and
/// `store_conformance_race_tests!` give it one test per rule.
pub trait Store: std::fmt::Debug {
    /// Which backend this is and where, for `otpctl status`: `sqlite`, or `postgresql` with
    /// the database, its hosts and whether TLS is used. Never a password.
    fn backend(&self) -> String;

    // --- One decision, one transaction ---

    /// Runs `work` as one transaction: every operation it calls and every audit row it
    /// records commit together, or (when `work` returns `Err`, after a crash, or a panic in
    /// `work`) not at all, so no decision is ever stored without the row that records it. An
    /// operation that fails inside it takes back only its own writes; the rest still commits
    /// unless `work` passes the error on. `work`'s `Err` is returned. Called inside another
    /// `in_one_transaction`, `work` simply joins the outer one.
    fn in_one_transaction(
        &mut self,
        work: &mut dyn FnMut(&mut dyn Store) -> Result<(), StoreError>,
    ) -> Result<(), StoreError>;

    // --- Codes: issue, verify, resend, invalidate ---

    /// Issues a code for a login, or says why not. In order: a lockout of the user or of the
    /// remote address refuses; a live code for the same user and protocol issued less than
    /// `resend_cooldown_secs` ago is reused (nothing mailed); a reached hourly or daily send
    /// cap refuses; otherwise the user's older codes die and a new one, valid in
    /// `[now, now + valid_secs)`, is issued and counted as a send.
    fn issue(
        &mut self,
        req: &IssueRequest<'_>,
        limits: &Limits,
        now: i64,
        rng: &mut dyn CryptoRng,
    ) -> Result<IssueOutcome, StoreError>;

    /// Checks an answer to `challenge`. A lockout answers first, without looking at the code.
    /// Anything but a success counts as a failure for the user and (an IP address only) the
    /// host, and uses up one of the code's `max_attempts`; a success uses the code up and
    /// clears both failure counts. Recovery codes do not answer here.
    #[allow(clippy::too_many_arguments)] // One login's facts plus the rules that apply.
    fn verify(
        &mut self,
        challenge: &str,
        user: &str,
        protocol: &str,
        rhost: Option<&str>,
        code: &SecretString,
        limits: &Limits,
        now: i64,
    ) -> Result<VerifyOutcome, StoreError>;

    /// [`Store::verify`] at a login prompt: one of the user's unused recovery codes also
    /// answers (once), queuing in the same operation the notice of its use to `notice`; a
    /// challenge whose mail failed answers only to a recovery code.
    #[allow(clippy::too_many_arguments)] // The same login facts as `verify`.
    fn verify_answer(
        &mut self,
        challenge: &str,
        user: &str,
        protocol: &str,
        rhost: Option<&str>,
        code: &SecretString,
        limits: &Limits,
        now: i64,
        notice: &NoticeTo<'_>,
    ) -> Result<VerifyOutcome, StoreError>;

    /// Kills a code whose mail could not be sent and takes back its send. Unknown or used
    /// challenges are left alone.
    fn invalidate(&mut self, challenge: &str) -> Result<(), StoreError>;

    /// How many codes can still be answered at `now` (status).
    fn live_codes(&self, now: i64) -> Result<u64, StoreError>;

    // --- Single-secret protocols (code appended to the password) ---

    /// True when this login's secret is expected to end with a code: a live code for the
    /// user and protocol, or a reuse grant for user, service and host. Changes nothing.
    fn expects_code(
        &self,
        login: &IssueRequest<'_>,
        limits: &Limits,
        now: i64,
    ) -> Result<bool, StoreError>;

    /// Checks a code appended to the password: a matching reuse grant succeeds without
    /// touching counters; otherwise the user's live code for the protocol is answered under
    /// the usual rules, and a success leaves a grant for `reuse_secs` (none when 0).
    fn verify_appended(
        &mut self,
        login: &IssueRequest<'_>,
        code: &SecretString,
        limits: &Limits,
        reuse_secs: i64,
        now: i64,
        rng: &mut dyn CryptoRng,
    ) -> Result<VerifyOutcome, StoreError>;

    // --- Recovery codes ---

    /// Replaces `user`'s recovery codes with a new set and returns it (the only copies).
    fn new_recovery_codes(
        &mut self,
        user: &str,
        now: i64,
        rng: &mut dyn CryptoRng,
    ) -> Result<Vec<SecretString>, StoreError>;

    /// How many of `user`'s recovery codes are unused.
    fn recovery_codes_left(&self, user: &str) -> Result<u32, StoreError>;

    /// The mail of `challenge` failed: with recovery codes left, the challenge stays live but
    /// answers only to one (their number is returned); otherwise it dies as by
    /// [`Store::invalidate`]. Either way its send is taken back.
    fn recovery_fallback(&mut self, challenge: &str) -> Result<Option<u32>, StoreError>;

    // --- Sends and caps ---

    /// The sends to `user` that count against the hourly and daily caps at `now`.
    fn sends_counted(&self, user: &str, now: i64) -> Result<SendCounts, StoreError>;

    // --- Lockouts ---

    /// Users locked out at `now` with the end of their lock, by name.
    fn locked_users(&self, now: i64) -> Result<Vec<(String, i64)>, StoreError>;

    /// Until when `user` is locked out at `now`, if they are.
    fn user_locked_until(&self, user: &str, now: i64) -> Result<Option<i64>, StoreError>;

    /// Clears the user's lock and failure count (not the hosts'); true when there was
    /// anything to clear.
    fn unlock_user(&mut self, user: &str, now: i64) -> Result<bool, StoreError>;

    /// Every remote address with failures counted or a lock in force at `now`, locked ones
    /// first (longest lock first), then by failures.
    fn host_lockouts(&self, now: i64) -> Result<Vec<Lockout>, StoreError>;

    /// How many remote addresses are locked out at `now`; agrees with
    /// [`Store::host_lockouts`].
    fn locked_hosts(&self, now: i64) -> Result<u64, StoreError>;

    /// Clears the lock and failure count of `address` (any spelling of it); what there was,
    /// or `None`.
    fn unlock_host(&mut self, address: &str, now: i64) -> Result<Option<Lockout>, StoreError>;

    /// An admin's reset of `user`: forgets their sends, closes their unused codes, clears
    /// their lockout, all or nothing. Audit rows and recovery codes stay.
    fn reset_user(&mut self, user: &str, now: i64) -> Result<UserReset, StoreError>;

    // --- Enrolment ---

    /// The record for `name`, if there is one.
    fn user(&self, name: &str) -> Result<Option<UserRecord>, StoreError>;

    /// [`Store::user`] and the user's break-glass grant row (live or expired, or none), read
    /// together for a login's facts: on PostgreSQL in one round trip instead of two. Nothing
    /// is decided or deleted here: the login's decision judges the row at its own time and
    /// deletes an expired one through [`Store::breakglass_for`]. A failure to read the grant
    /// alone is the inner `Err`, which the decision counts as no grant (failing closed).
    fn user_and_grant(&self, name: &str) -> Result<UserAndGrant, StoreError>;

    /// [`Store::user_and_grant`] for a login whose next operation in the same transaction is
    /// `ahead`. A store that pays for each round trip (PostgreSQL) takes that operation's
    /// locks and sends its first read along with the facts' reads, and keeps what it read for
    /// it: the operation then needs no round trip of its own for it. The answer is the same
    /// as [`Store::user_and_grant`]'s; `ahead` is a hint, and an operation it does not match
    /// (another one, other parameters, another operation sent in between) reads as ever.
    fn user_and_grant_then(
        &self,
        name: &str,
        ahead: &ReadAhead<'_>,
    ) -> Result<UserAndGrant, StoreError> {
        let _ = ahead;
        self.user_and_grant(name)
    }

    /// Creates or replaces the record for `record.name`; an invalid record is refused.
    fn upsert_user(&mut self, record: &UserRecord) -> Result<(), StoreError>;

    /// Creates or replaces every record: all of them, or (on any error) none.
    fn upsert_users(&mut self, records: &[UserRecord]) -> Result<(), StoreError>;

    /// Deletes the record for `name` and the user's recovery codes; true if there was one.
    fn remove_user(&mut self, name: &str) -> Result<bool, StoreError>;

    /// Every user record, sorted by name.
    fn list_users(&self) -> Result<Vec<UserRecord>, StoreError>;

    /// Counts for the status output.
    fn user_counts(&self, now: i64) -> Result<UserCounts, StoreError>;

    // --- Break-glass grants ---

    /// Stores `grant`, replacing the user's previous one; returns the replaced grant when it
    /// still held at `grant.granted_at`.
    fn grant_breakglass(&mut self, grant: &BreakGlass) -> Result<Option<BreakGlass>, StoreError>;

    /// Deletes the user's grant; returns it, live or not, when there was one.
    fn revoke_breakglass(&mut self, user: &str) -> Result<Option<BreakGlass>, StoreError>;

    /// The user's grant at `now` (it holds while `now < expires_at`). An expired one is
    /// deleted and returned as [`BreakGlassLookup::Expired`], once.
    fn breakglass_for(&mut self, user: &str, now: i64) -> Result<BreakGlassLookup, StoreError>;

    /// Deletes every grant expired at `now` and returns them, each once.
    fn expire_breakglass(&mut self, now: i64) -> Result<Vec<BreakGlass>, StoreError>;

    /// The grants that hold at `now`, by user name.
    fn live_breakglass(&self, now: i64) -> Result<Vec<BreakGlass>, StoreError>;

    // --- Notices owed to users and the admin ---

    /// Queues `notice`, due at once, unless a notice of its event (`event_key`) was queued
    /// before, or (with `per_hour`) its recipient (the user, or the admin for all users) had
    /// that many notices queued in the hour before `now`.
    fn queue_notice(
        &mut self,
        notice: &NewNotice<'_>,
        per_hour: Option<u32>,
        now: i64,
    ) -> Result<Queued, StoreError>;

    /// Records that `user` logged in from `rhost` at `now`, and says whether they had within
    /// `window` seconds before (or never logged in from anywhere).
    fn note_login_address(
        &mut self,
        user: &str,
        rhost: &str,
        now: i64,
        window: i64,
    ) -> Result<AddressSeen, StoreError>;

    /// Up to `limit` notices due at `now` with an id above `after_id`, oldest first.
    fn due_notices(
        &mut self,
        now: i64,
        after_id: i64,
        limit: usize,
    ) -> Result<Vec<QueuedNotice>, StoreError>;

    /// Takes up to `limit` notices due at `now` with an id above `after_id`, oldest first, for
    /// this deliverer alone: each is made due again only at `lease_until`, so the deliverer of
    /// another host sharing the store does not send it too (a host that dies while sending
    /// leaves it to the others once the lease ends). Closing or putting off a notice ends its
    /// lease.
    fn claim_notices(
        &mut self,
        now: i64,
        after_id: i64,
        limit: usize,
        lease_until: i64,
    ) -> Result<Vec<QueuedNotice>, StoreError>;

    /// Closes a notice at `now` (delivered or given up); it is no longer due.
    fn close_notice(&mut self, id: i64, now: i64) -> Result<(), StoreError>;

    /// Counts a failed try and makes the notice due again at `next_try_at`.
    fn put_off_notice(&mut self, id: i64, next_try_at: i64) -> Result<(), StoreError>;

    /// How many notices wait, due or not.
    fn queued_notices(&mut self) -> Result<u64, StoreError>;

    // --- Audit ---

    /// Records one audit row (never a code), committed before it returns: a crash right after
    /// keeps it. It is readable by [`Store::audit_filtered`] and [`Store::audit_since`] from
    /// then on.
    fn record_audit(&mut self, record: &AuditRecord<'_>) -> Result<(), StoreError>;

    /// Counts every audit row stored from now on into `metrics` (`otpctl metrics`), each once
    /// it is committed: a row taken back with its transaction is not counted.
    fn count_audit_into(&mut self, metrics: Arc<Metrics>);

    /// Wakes `wake` whenever a notice is queued, so the deliverer sends it at once.
    fn wake_on_notices(&mut self, wake: Arc<tokio::sync::Notify>);

    /// Counts one event of `key` at `now` against its rate: whether to write it, and the
    /// summary of the key's previous window if that ended with events counted.
    fn admit_audit(&mut self, key: RateKey, now: i64) -> (Admission, Option<Suppressed>);

    /// The summaries of rate windows ended by `now`; with `all`, of every window (shutdown).
    fn ended_audit_windows(&mut self, now: i64, all: bool) -> Vec<Suppressed>;

    /// Keeps at most about `max_rows` audit rows, deleting the oldest.
    fn trim_audit(&mut self, max_rows: u64) -> Result<Option<Trimmed>, StoreError>;

    /// Rows at or after `since`, newest first, at most `limit`.
    fn audit_since(&mut self, since: i64, limit: usize) -> Result<Vec<AuditRow>, StoreError>;

    /// Audit rows matching `filter`, newest first.
    fn audit_filtered(&mut self, filter: &AuditFilter) -> Result<Vec<AuditRow>, StoreError>;

    /// What the mail server `name` last did, read back from the audit rows.
    fn mail_history(&mut self, name: &str) -> Result<MailHistory, StoreError>;

    /// How many rows of `event` there are at or after `since`, for how many users, and the
    /// `limit` users with the most.
    fn event_tally(
        &mut self,
        event: &str,
        since: i64,
        limit: usize,
    ) -> Result<EventTally, StoreError>;

    // --- Retention ---

    /// Deletes what no rule needs any more at `now`: codes expired over an hour ago, sends
    /// out of the daily window, empty lockout rows, audit rows older than
    /// `audit_retention_secs`, expired reuse grants. Nothing a rule still counts.
    fn purge(&mut self, now: i64, audit_retention_secs: i64) -> Result<PurgeCounts, StoreError>;

    /// Test hook for the daemon's in-process tests, which look at rows: the single integer
    /// `sql` returns. Not part of the rules; only an SQL backend can answer it.
    #[cfg(test)]
    fn count_rows(&self, sql: &str) -> i64;
}

/// Runs `work` as one transaction ([`Store::in_one_transaction`]) and returns what it
/// returned: a request's decision and the audit rows that record it are stored together or not
/// at all. `Err` when `work` returned one (a row that could not be written, say) or the
/// transaction could not be committed: nothing `work` did was kept.
pub fn atomically<R>(
    store: &mut dyn Store,
    work: impl FnOnce(&mut dyn Store) -> Result<R, StoreError>,
) -> Result<R, StoreError> {
    let mut work = Some(work);
    let mut result = None;
    store.in_one_transaction(&mut |store| {
        if let Some(work) = work.take() {
            result = Some(work(store)?);
        }
        Ok(())
    })?;
    result.ok_or(StoreError::WorkNotRun)
}

/// A box or a lock guard over a store is a store: `&mut guard` (a `MutexGuard<Box<dyn Store +
/// Send>>`) passes where `&mut dyn Store` is wanted. Every operation goes to the store inside.
impl<T> Store for T
where
    T: DerefMut + std::fmt::Debug,
    T::Target: Store,
{
    fn backend(&self) -> String {
        (**self).backend()
    }

    fn in_one_transaction(
        &mut self,
        work: &mut dyn FnMut(&mut dyn Store) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        (**self).in_one_transaction(work)
    }

    fn issue(
        &mut self,
        req: &IssueRequest<'_>,
        limits: &Limits,
        now: i64,
        rng: &mut dyn CryptoRng,
    ) -> Result<IssueOutcome, StoreError> {
        (**self).issue(req, limits, now, rng)
    }

    #[allow(clippy::too_many_arguments)] // One login's facts plus the rules that apply.
    fn verify(
        &mut self,
        challenge: &str,
        user: &str,
        protocol: &str,
        rhost: Option<&str>,
        code: &SecretString,
        limits: &Limits,
        now: i64,
    ) -> Result<VerifyOutcome, StoreError> {
        (**self).verify(challenge, user, protocol, rhost, code, limits, now)
    }

    #[allow(clippy::too_many_arguments)] // The same login facts as `verify`.
    fn verify_answer(
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
        (**self).verify_answer(challenge, user, protocol, rhost, code, limits, now, notice)
    }

    fn invalidate(&mut self, challenge: &str) -> Result<(), StoreError> {
        (**self).invalidate(challenge)
    }

    fn live_codes(&self, now: i64) -> Result<u64, StoreError> {
        (**self).live_codes(now)
    }

    fn expects_code(
        &self,
        login: &IssueRequest<'_>,
        limits: &Limits,
        now: i64,
    ) -> Result<bool, StoreError> {
        (**self).expects_code(login, limits, now)
    }

    fn verify_appended(
        &mut self,
        login: &IssueRequest<'_>,
        code: &SecretString,
        limits: &Limits,
        reuse_secs: i64,
        now: i64,
        rng: &mut dyn CryptoRng,
    ) -> Result<VerifyOutcome, StoreError> {
        (**self).verify_appended(login, code, limits, reuse_secs, now, rng)
    }

    fn new_recovery_codes(
        &mut self,
        user: &str,
        now: i64,
        rng: &mut dyn CryptoRng,
    ) -> Result<Vec<SecretString>, StoreError> {
        (**self).new_recovery_codes(user, now, rng)
    }

    fn recovery_codes_left(&self, user: &str) -> Result<u32, StoreError> {
        (**self).recovery_codes_left(user)
    }

    fn recovery_fallback(&mut self, challenge: &str) -> Result<Option<u32>, StoreError> {
        (**self).recovery_fallback(challenge)
    }

    fn sends_counted(&self, user: &str, now: i64) -> Result<SendCounts, StoreError> {
        (**self).sends_counted(user, now)
    }

    fn locked_users(&self, now: i64) -> Result<Vec<(String, i64)>, StoreError> {
        (**self).locked_users(now)
    }

    fn user_locked_until(&self, user: &str, now: i64) -> Result<Option<i64>, StoreError> {
        (**self).user_locked_until(user, now)
    }

    fn unlock_user(&mut self, user: &str, now: i64) -> Result<bool, StoreError> {
        (**self).unlock_user(user, now)
    }

    fn host_lockouts(&self, now: i64) -> Result<Vec<Lockout>, StoreError> {
        (**self).host_lockouts(now)
    }

    fn locked_hosts(&self, now: i64) -> Result<u64, StoreError> {
        (**self).locked_hosts(now)
    }

    fn unlock_host(&mut self, address: &str, now: i64) -> Result<Option<Lockout>, StoreError> {
        (**self).unlock_host(address, now)
    }

    fn reset_user(&mut self, user: &str, now: i64) -> Result<UserReset, StoreError> {
        (**self).reset_user(user, now)
    }

    fn user(&self, name: &str) -> Result<Option<UserRecord>, StoreError> {
        (**self).user(name)
    }

    fn user_and_grant(&self, name: &str) -> Result<UserAndGrant, StoreError> {
        (**self).user_and_grant(name)
    }

    fn user_and_grant_then(
        &self,
        name: &str,
        ahead: &ReadAhead<'_>,
    ) -> Result<UserAndGrant, StoreError> {
        (**self).user_and_grant_then(name, ahead)
    }

    fn upsert_user(&mut self, record: &UserRecord) -> Result<(), StoreError> {
        (**self).upsert_user(record)
    }

    fn upsert_users(&mut self, records: &[UserRecord]) -> Result<(), StoreError> {
        (**self).upsert_users(records)
    }

    fn remove_user(&mut self, name: &str) -> Result<bool, StoreError> {
        (**self).remove_user(name)
    }

    fn list_users(&self) -> Result<Vec<UserRecord>, StoreError> {
        (**self).list_users()
    }

    fn user_counts(&self, now: i64) -> Result<UserCounts, StoreError> {
        (**self).user_counts(now)
    }

    fn grant_breakglass(&mut self, grant: &BreakGlass) -> Result<Option<BreakGlass>, StoreError> {
        (**self).grant_breakglass(grant)
    }

    fn revoke_breakglass(&mut self, user: &str) -> Result<Option<BreakGlass>, StoreError> {
        (**self).revoke_breakglass(user)
    }

    fn breakglass_for(&mut self, user: &str, now: i64) -> Result<BreakGlassLookup, StoreError> {
        (**self).breakglass_for(user, now)
    }

    fn expire_breakglass(&mut self, now: i64) -> Result<Vec<BreakGlass>, StoreError> {
        (**self).expire_breakglass(now)
    }

    fn live_breakglass(&self, now: i64) -> Result<Vec<BreakGlass>, StoreError> {
        (**self).live_breakglass(now)
    }

    fn due_notices(
        &mut self,
        now: i64,
        after_id: i64,
        limit: usize,
    ) -> Result<Vec<QueuedNotice>, StoreError> {
        (**self).due_notices(now, after_id, limit)
    }

    fn close_notice(&mut self, id: i64, now: i64) -> Result<(), StoreError> {
        (**self).close_notice(id, now)
    }

    fn claim_notices(
        &mut self,
        now: i64,
        after_id: i64,
        limit: usize,
        lease_until: i64,
    ) -> Result<Vec<QueuedNotice>, StoreError> {
        (**self).claim_notices(now, after_id, limit, lease_until)
    }

    fn queue_notice(
        &mut self,
        notice: &NewNotice<'_>,
        per_hour: Option<u32>,
        now: i64,
    ) -> Result<Queued, StoreError> {
        (**self).queue_notice(notice, per_hour, now)
    }

    fn note_login_address(
        &mut self,
        user: &str,
        rhost: &str,
        now: i64,
        window: i64,
    ) -> Result<AddressSeen, StoreError> {
        (**self).note_login_address(user, rhost, now, window)
    }

    fn put_off_notice(&mut self, id: i64, next_try_at: i64) -> Result<(), StoreError> {
        (**self).put_off_notice(id, next_try_at)
    }

    fn queued_notices(&mut self) -> Result<u64, StoreError> {
        (**self).queued_notices()
    }

    fn record_audit(&mut self, record: &AuditRecord<'_>) -> Result<(), StoreError> {
        (**self).record_audit(record)
    }

    fn count_audit_into(&mut self, metrics: Arc<Metrics>) {
        (**self).count_audit_into(metrics)
    }

    fn wake_on_notices(&mut self, wake: Arc<tokio::sync::Notify>) {
        (**self).wake_on_notices(wake)
    }

    fn admit_audit(&mut self, key: RateKey, now: i64) -> (Admission, Option<Suppressed>) {
        (**self).admit_audit(key, now)
    }

    fn ended_audit_windows(&mut self, now: i64, all: bool) -> Vec<Suppressed> {
        (**self).ended_audit_windows(now, all)
    }

    fn trim_audit(&mut self, max_rows: u64) -> Result<Option<Trimmed>, StoreError> {
        (**self).trim_audit(max_rows)
    }

    fn audit_since(&mut self, since: i64, limit: usize) -> Result<Vec<AuditRow>, StoreError> {
        (**self).audit_since(since, limit)
    }

    fn audit_filtered(&mut self, filter: &AuditFilter) -> Result<Vec<AuditRow>, StoreError> {
        (**self).audit_filtered(filter)
    }

    fn mail_history(&mut self, name: &str) -> Result<MailHistory, StoreError> {
        (**self).mail_history(name)
    }

    fn event_tally(
        &mut self,
        event: &str,
        since: i64,
        limit: usize,
    ) -> Result<EventTally, StoreError> {
        (**self).event_tally(event, since, limit)
    }

    fn purge(&mut self, now: i64, audit_retention_secs: i64) -> Result<PurgeCounts, StoreError> {
        (**self).purge(now, audit_retention_secs)
    }

    #[cfg(test)]
    fn count_rows(&self, sql: &str) -> i64 {
        (**self).count_rows(sql)
    }
}
