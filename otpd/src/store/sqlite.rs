//! SQLite behind the [`Store`] interface: the embedded default backend.
//!
//! Each operation is one of [`SqliteStore`]'s methods (in `codes`, `lockouts`, `users`, ...),
//! each one `BEGIN IMMEDIATE` transaction; this file only maps the interface onto them, so the
//! SQLite code reads the same whether it is called through `dyn Store` or directly (its own
//! unit tests do that, and look at its tables).

use common::secret::SecretString;
use common::wire_admin::AuditRow;
use rand::CryptoRng;

use super::{
    AddressSeen, Admission, AuditFilter, AuditRecord, BreakGlass, BreakGlassLookup, EventTally,
    IssueOutcome, IssueRequest, Limits, Lockout, MailHistory, NewNotice, NoticeTo, PurgeCounts,
    Queued, QueuedNotice, RateKey, SendCounts, SqliteStore, Store, StoreError, Suppressed, Trimmed,
    UserAndGrant, UserCounts, UserRecord, UserReset, VerifyOutcome,
};

impl Store for SqliteStore {
    fn backend(&self) -> String {
        "sqlite".into()
    }

    fn in_one_transaction(
        &mut self,
        work: &mut dyn FnMut(&mut dyn Store) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        SqliteStore::in_one_transaction(self, work)
    }

    fn issue(
        &mut self,
        req: &IssueRequest<'_>,
        limits: &Limits,
        now: i64,
        mut rng: &mut dyn CryptoRng,
    ) -> Result<IssueOutcome, StoreError> {
        SqliteStore::issue(self, req, limits, now, &mut rng)
    }

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
        SqliteStore::verify(self, challenge, user, protocol, rhost, code, limits, now)
    }

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
        SqliteStore::verify_answer(
            self, challenge, user, protocol, rhost, code, limits, now, notice,
        )
    }

    fn invalidate(&mut self, challenge: &str) -> Result<(), StoreError> {
        SqliteStore::invalidate(self, challenge)
    }

    fn live_codes(&self, now: i64) -> Result<u64, StoreError> {
        SqliteStore::live_codes(self, now)
    }

    fn expects_code(
        &self,
        login: &IssueRequest<'_>,
        limits: &Limits,
        now: i64,
    ) -> Result<bool, StoreError> {
        SqliteStore::expects_code(self, login, limits, now)
    }

    fn verify_appended(
        &mut self,
        login: &IssueRequest<'_>,
        code: &SecretString,
        limits: &Limits,
        reuse_secs: i64,
        now: i64,
        mut rng: &mut dyn CryptoRng,
    ) -> Result<VerifyOutcome, StoreError> {
        SqliteStore::verify_appended(self, login, code, limits, reuse_secs, now, &mut rng)
    }

    fn new_recovery_codes(
        &mut self,
        user: &str,
        now: i64,
        mut rng: &mut dyn CryptoRng,
    ) -> Result<Vec<SecretString>, StoreError> {
        SqliteStore::new_recovery_codes(self, user, now, &mut rng)
    }

    fn recovery_codes_left(&self, user: &str) -> Result<u32, StoreError> {
        SqliteStore::recovery_codes_left(self, user)
    }

    fn recovery_fallback(&mut self, challenge: &str) -> Result<Option<u32>, StoreError> {
        SqliteStore::recovery_fallback(self, challenge)
    }

    fn sends_counted(&self, user: &str, now: i64) -> Result<SendCounts, StoreError> {
        SqliteStore::sends_counted(self, user, now)
    }

    fn locked_users(&self, now: i64) -> Result<Vec<(String, i64)>, StoreError> {
        SqliteStore::locked_users(self, now)
    }

    fn user_locked_until(&self, user: &str, now: i64) -> Result<Option<i64>, StoreError> {
        SqliteStore::user_locked_until(self, user, now)
    }

    fn unlock_user(&mut self, user: &str, now: i64) -> Result<bool, StoreError> {
        SqliteStore::unlock_user(self, user, now)
    }

    fn host_lockouts(&self, now: i64) -> Result<Vec<Lockout>, StoreError> {
        SqliteStore::host_lockouts(self, now)
    }

    fn locked_hosts(&self, now: i64) -> Result<u64, StoreError> {
        SqliteStore::locked_hosts(self, now)
    }

    fn unlock_host(&mut self, address: &str, now: i64) -> Result<Option<Lockout>, StoreError> {
        SqliteStore::unlock_host(self, address, now)
    }

    fn reset_user(&mut self, user: &str, now: i64) -> Result<UserReset, StoreError> {
        SqliteStore::reset_user(self, user, now)
    }

    fn user(&self, name: &str) -> Result<Option<UserRecord>, StoreError> {
        SqliteStore::user(self, name)
    }

    fn user_and_grant(&self, name: &str) -> Result<UserAndGrant, StoreError> {
        Ok((SqliteStore::user(self, name)?, self.breakglass_row(name)))
    }

    fn upsert_user(&mut self, record: &UserRecord) -> Result<(), StoreError> {
        SqliteStore::upsert_user(self, record)
    }

    fn upsert_users(&mut self, records: &[UserRecord]) -> Result<(), StoreError> {
        SqliteStore::upsert_users(self, records)
    }

    fn remove_user(&mut self, name: &str) -> Result<bool, StoreError> {
        SqliteStore::remove_user(self, name)
    }

    fn list_users(&self) -> Result<Vec<UserRecord>, StoreError> {
        SqliteStore::list_users(self)
    }

    fn user_counts(&self, now: i64) -> Result<UserCounts, StoreError> {
        SqliteStore::user_counts(self, now)
    }

    fn grant_breakglass(&mut self, grant: &BreakGlass) -> Result<Option<BreakGlass>, StoreError> {
        SqliteStore::grant_breakglass(self, grant)
    }

    fn revoke_breakglass(&mut self, user: &str) -> Result<Option<BreakGlass>, StoreError> {
        SqliteStore::revoke_breakglass(self, user)
    }

    fn breakglass_for(&mut self, user: &str, now: i64) -> Result<BreakGlassLookup, StoreError> {
        SqliteStore::breakglass_for(self, user, now)
    }

    fn expire_breakglass(&mut self, now: i64) -> Result<Vec<BreakGlass>, StoreError> {
        SqliteStore::expire_breakglass(self, now)
    }

    fn live_breakglass(&self, now: i64) -> Result<Vec<BreakGlass>, StoreError> {
        SqliteStore::live_breakglass(self, now)
    }

    fn due_notices(
        &mut self,
        now: i64,
        after_id: i64,
        limit: usize,
    ) -> Result<Vec<QueuedNotice>, StoreError> {
        SqliteStore::due_notices(self, now, after_id, limit)
    }

    fn close_notice(&mut self, id: i64, now: i64) -> Result<(), StoreError> {
        SqliteStore::close_notice(self, id, now)
    }

    fn claim_notices(
        &mut self,
        now: i64,
        after_id: i64,
        limit: usize,
        lease_until: i64,
    ) -> Result<Vec<QueuedNotice>, StoreError> {
        SqliteStore::claim_notices(self, now, after_id, limit, lease_until)
    }

    fn queue_notice(
        &mut self,
        notice: &NewNotice<'_>,
        per_hour: Option<u32>,
        now: i64,
    ) -> Result<Queued, StoreError> {
        SqliteStore::queue_notice(self, notice, per_hour, now)
    }

    fn note_login_address(
        &mut self,
        user: &str,
        rhost: &str,
        now: i64,
        window: i64,
    ) -> Result<AddressSeen, StoreError> {
        SqliteStore::note_login_address(self, user, rhost, now, window)
    }

    fn put_off_notice(&mut self, id: i64, next_try_at: i64) -> Result<(), StoreError> {
        SqliteStore::put_off_notice(self, id, next_try_at)
    }

    fn queued_notices(&mut self) -> Result<u64, StoreError> {
        SqliteStore::queued_notices(self)
    }

    fn record_audit(&mut self, record: &AuditRecord<'_>) -> Result<(), StoreError> {
        SqliteStore::record_audit(self, record)
    }

    fn count_audit_into(&mut self, metrics: std::sync::Arc<crate::metrics::Metrics>) {
        SqliteStore::count_audit_into(self, metrics)
    }

    fn wake_on_notices(&mut self, wake: std::sync::Arc<tokio::sync::Notify>) {
        self.notices_wake = Some(wake);
    }

    fn admit_audit(&mut self, key: RateKey, now: i64) -> (Admission, Option<Suppressed>) {
        SqliteStore::admit_audit(self, key, now)
    }

    fn ended_audit_windows(&mut self, now: i64, all: bool) -> Vec<Suppressed> {
        SqliteStore::ended_audit_windows(self, now, all)
    }

    fn trim_audit(&mut self, max_rows: u64) -> Result<Option<Trimmed>, StoreError> {
        SqliteStore::trim_audit(self, max_rows)
    }

    fn audit_since(&mut self, since: i64, limit: usize) -> Result<Vec<AuditRow>, StoreError> {
        SqliteStore::audit_since(self, since, limit)
    }

    fn audit_filtered(&mut self, filter: &AuditFilter) -> Result<Vec<AuditRow>, StoreError> {
        SqliteStore::audit_filtered(self, filter)
    }

    fn mail_history(&mut self, name: &str) -> Result<MailHistory, StoreError> {
        SqliteStore::mail_history(self, name)
    }

    fn event_tally(
        &mut self,
        event: &str,
        since: i64,
        limit: usize,
    ) -> Result<EventTally, StoreError> {
        SqliteStore::event_tally(self, event, since, limit)
    }

    fn purge(&mut self, now: i64, audit_retention_secs: i64) -> Result<PurgeCounts, StoreError> {
        SqliteStore::purge(self, now, audit_retention_secs)
    }

    #[cfg(test)]
    fn count_rows(&self, sql: &str) -> i64 {
        SqliteStore::count_rows(self, sql)
    }
}

#[cfg(test)]
mod conformance {
    use std::sync::{Arc, Mutex};

    use super::super::conformance::Handle;
    use super::super::test_support::key;
    use super::{SqliteStore, Store};

    /// An empty store in a new temporary directory.
    fn fresh() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SqliteStore::open(&dir.path().join("otpd.db"), key()).expect("open store");
        (dir, store)
    }

    crate::store_conformance_tests!(fresh);

    /// `n` handles on one new store: its one connection behind a mutex, as otpd shares it.
    fn handles(n: usize) -> (tempfile::TempDir, Vec<Handle>) {
        let (dir, store) = fresh();
        let shared = Arc::new(Mutex::new(store));
        let handles = (0..n)
            .map(|_| {
                let shared = Arc::clone(&shared);
                Box::new(move |work: &mut dyn FnMut(&mut dyn Store)| {
                    work(&mut *shared.lock().expect("not poisoned"))
                }) as Handle
            })
            .collect();
        (dir, handles)
    }

    crate::store_conformance_race_tests!(handles);
}
