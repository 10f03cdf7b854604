//! [`PgStore`] behind the [`Store`] interface: each operation is one unit of work (`unit`)
//! running the SQL of its concern's file. Only this file knows the trait.

use std::sync::Arc;

use common::secret::SecretString;
use common::wire_admin::AuditRow;
use rand::CryptoRng;

use super::super::{
    AddressSeen, Admission, AuditFilter, AuditRecord, BreakGlass, BreakGlassLookup, EventTally,
    IssueOutcome, IssueRequest, Limits, Lockout, MailHistory, NewNotice, NoticeTo, PurgeCounts,
    Queued, QueuedNotice, RateKey, ReadAhead, SendCounts, Store, StoreError, Suppressed, Trimmed,
    UserAndGrant, UserCounts, UserRecord, UserReset, VerifyOutcome,
};
use super::locks::{self, Lock};
use super::{
    PgStore, admin, audit_rows, breakglass, codes, lockouts, notices, purge, recovery, reset, seen,
    sends, single_secret, users,
};
use crate::metrics::Metrics;

impl Store for PgStore {
    fn backend(&self) -> String {
        self.backend.clone()
    }

    fn in_one_transaction(
        &mut self,
        work: &mut dyn FnMut(&mut dyn Store) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        PgStore::in_one_transaction(self, work)
    }

    fn issue(
        &mut self,
        req: &IssueRequest<'_>,
        limits: &Limits,
        now: i64,
        mut rng: &mut dyn CryptoRng,
    ) -> Result<IssueOutcome, StoreError> {
        limits.check()?;
        if let Some(issued) = self.issue_ahead(req, limits, now, &mut rng) {
            return issued;
        }
        self.unit_then(&[Lock::user(req.user)], async |db, key| {
            codes::issue(db, key, req, limits, now, &mut rng).await
        })
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
        limits.check()?;
        let login = (challenge, user, protocol, rhost);
        if let Some(answered) = self.answer_ahead(login, code, limits, now) {
            return answered;
        }
        let (answered, _) = self
            .unit_then(&locks::user_and_host(user, rhost), async |db, key| {
                codes::verify(db, key, login, code, limits, now, None).await
            })?;
        Ok(self.kept_seen(answered))
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
        limits.check()?;
        let login = (challenge, user, protocol, rhost);
        if let Some(answered) = self.answer_ahead(login, code, limits, now) {
            return answered;
        }
        let (answered, queued) = self
            .unit_then(&locks::user_and_host(user, rhost), async |db, key| {
                codes::verify(db, key, login, code, limits, now, Some(notice)).await
            })?;
        if queued {
            self.wake_notice_deliverer();
        }
        Ok(self.kept_seen(answered))
    }

    fn invalidate(&mut self, challenge: &str) -> Result<(), StoreError> {
        self.unit(&[], async |db, _| codes::invalidate(db, challenge).await)
    }

    fn live_codes(&self, now: i64) -> Result<u64, StoreError> {
        self.plain(async |db, _| codes::live_codes(db, now).await)
    }

    fn expects_code(
        &self,
        login: &IssueRequest<'_>,
        limits: &Limits,
        now: i64,
    ) -> Result<bool, StoreError> {
        self.plain(async |db, _| single_secret::expects_code(db, login, limits, now).await)
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
        limits.check()?;
        let answered = self.unit_then(
            &locks::user_and_host(login.user, login.rhost),
            async |db, key| {
                single_secret::verify_appended(
                    db,
                    key,
                    login,
                    code,
                    (limits, reuse_secs),
                    now,
                    &mut rng,
                )
                .await
            },
        )?;
        Ok(self.kept_seen(answered))
    }

    fn new_recovery_codes(
        &mut self,
        user: &str,
        now: i64,
        mut rng: &mut dyn CryptoRng,
    ) -> Result<Vec<SecretString>, StoreError> {
        self.unit(&[Lock::user(user)], async |db, key| {
            recovery::new_set(db, key, user, now, &mut rng).await
        })
    }

    fn recovery_codes_left(&self, user: &str) -> Result<u32, StoreError> {
        self.plain(async |db, _| recovery::left(db, user).await)
    }

    fn recovery_fallback(&mut self, challenge: &str) -> Result<Option<u32>, StoreError> {
        self.unit(&[], async |db, _| recovery::fallback(db, challenge).await)
    }

    fn sends_counted(&self, user: &str, now: i64) -> Result<SendCounts, StoreError> {
        self.plain(async |db, _| sends::counts(db, user, now).await)
    }

    fn locked_users(&self, now: i64) -> Result<Vec<(String, i64)>, StoreError> {
        self.plain(async |db, _| admin::locked_users(db, now).await)
    }

    fn user_locked_until(&self, user: &str, now: i64) -> Result<Option<i64>, StoreError> {
        self.plain(async |db, _| admin::user_locked_until(db, user, now).await)
    }

    fn unlock_user(&mut self, user: &str, now: i64) -> Result<bool, StoreError> {
        self.unit(&[Lock::user(user)], async |db, _| {
            admin::unlock_user(db, user, now).await
        })
    }

    fn host_lockouts(&self, now: i64) -> Result<Vec<Lockout>, StoreError> {
        self.plain(async |db, _| lockouts::host_lockouts(db, now).await)
    }

    fn locked_hosts(&self, now: i64) -> Result<u64, StoreError> {
        // From the same rows as `host_lockouts`, so the two always agree.
        let locked = self
            .host_lockouts(now)?
            .iter()
            .filter(|row| row.locked_until.is_some())
            .count();
        Ok(u64::try_from(locked).unwrap_or(u64::MAX))
    }

    fn unlock_host(&mut self, address: &str, now: i64) -> Result<Option<Lockout>, StoreError> {
        let Some(host) = lockouts::host_key(Some(address)) else {
            return Ok(None);
        };
        self.unit(&[Lock::host(&host)], async |db, _| {
            lockouts::clear_host(db, &host, now).await
        })
    }

    fn reset_user(&mut self, user: &str, now: i64) -> Result<UserReset, StoreError> {
        self.unit(&[Lock::user(user)], async |db, _| {
            reset::reset_user(db, user, now).await
        })
    }

    fn user(&self, name: &str) -> Result<Option<UserRecord>, StoreError> {
        self.plain(async |db, _| users::user(db, name).await)
    }

    fn user_and_grant(&self, name: &str) -> Result<UserAndGrant, StoreError> {
        self.facts(name)
    }

    fn user_and_grant_then(
        &self,
        name: &str,
        ahead: &ReadAhead<'_>,
    ) -> Result<UserAndGrant, StoreError> {
        self.facts_then(name, ahead)
    }

    fn upsert_user(&mut self, record: &UserRecord) -> Result<(), StoreError> {
        record.check()?;
        self.unit(&[], async |db, _| users::upsert(db, record).await)
    }

    fn upsert_users(&mut self, records: &[UserRecord]) -> Result<(), StoreError> {
        for record in records {
            record.check()?;
        }
        self.unit(&[], async |db, _| users::upsert_all(db, records).await)
    }

    fn remove_user(&mut self, name: &str) -> Result<bool, StoreError> {
        self.unit(&[], async |db, _| users::remove(db, name).await)
    }

    fn list_users(&self) -> Result<Vec<UserRecord>, StoreError> {
        self.plain(async |db, _| users::list(db).await)
    }

    fn user_counts(&self, now: i64) -> Result<UserCounts, StoreError> {
        self.plain(async |db, _| admin::user_counts(db, now).await)
    }

    fn grant_breakglass(&mut self, grant: &BreakGlass) -> Result<Option<BreakGlass>, StoreError> {
        self.unit(&[Lock::user(&grant.user)], async |db, _| {
            breakglass::grant(db, grant).await
        })
    }

    fn revoke_breakglass(&mut self, user: &str) -> Result<Option<BreakGlass>, StoreError> {
        self.plain(async |db, _| breakglass::revoke(db, user).await)
    }

    fn breakglass_for(&mut self, user: &str, now: i64) -> Result<BreakGlassLookup, StoreError> {
        self.unit(&[], async |db, _| breakglass::lookup(db, user, now).await)
    }

    fn expire_breakglass(&mut self, now: i64) -> Result<Vec<BreakGlass>, StoreError> {
        self.plain(async |db, _| breakglass::expire(db, now).await)
    }

    fn live_breakglass(&self, now: i64) -> Result<Vec<BreakGlass>, StoreError> {
        self.plain(async |db, _| breakglass::live(db, now).await)
    }

    fn queue_notice(
        &mut self,
        notice: &NewNotice<'_>,
        per_hour: Option<u32>,
        now: i64,
    ) -> Result<Queued, StoreError> {
        let queued = self.unit(
            &[Lock::notices(notice.user, notice.to_admin)],
            async |db, _| notices::queue_in(db, notice, per_hour, now).await,
        )?;
        if queued == Queued::Queued {
            self.wake_notice_deliverer();
        }
        Ok(queued)
    }

    fn note_login_address(
        &mut self,
        user: &str,
        rhost: &str,
        now: i64,
        window: i64,
    ) -> Result<AddressSeen, StoreError> {
        if let Some(noted) = self.note_from_seen(user, rhost, now, window) {
            return noted;
        }
        self.unit(&[Lock::user(user)], async |db, _| {
            seen::note_login_address(db, user, rhost, now, window).await
        })
    }

    fn due_notices(
        &mut self,
        now: i64,
        after_id: i64,
        limit: usize,
    ) -> Result<Vec<QueuedNotice>, StoreError> {
        self.plain(async |db, _| notices::due(db, now, after_id, limit).await)
    }

    fn claim_notices(
        &mut self,
        now: i64,
        after_id: i64,
        limit: usize,
        lease_until: i64,
    ) -> Result<Vec<QueuedNotice>, StoreError> {
        self.plain(async |db, _| notices::claim(db, now, after_id, limit, lease_until).await)
    }

    fn close_notice(&mut self, id: i64, now: i64) -> Result<(), StoreError> {
        self.plain(async |db, _| notices::close(db, id, now).await)
    }

    fn put_off_notice(&mut self, id: i64, next_try_at: i64) -> Result<(), StoreError> {
        self.plain(async |db, _| notices::put_off(db, id, next_try_at).await)
    }

    fn queued_notices(&mut self) -> Result<u64, StoreError> {
        self.plain(async |db, _| notices::waiting(db).await)
    }

    fn record_audit(&mut self, record: &AuditRecord<'_>) -> Result<(), StoreError> {
        match &self.held {
            Some(held) => PgStore::defer_audit(held, record)?,
            None => self.plain(async |db, _| audit_rows::record(db, record).await)?,
        }
        // Counted now when it committed by itself, else when its unit commits.
        let committed = self.outside_unit();
        self.audit_counter.row(record, committed);
        Ok(())
    }

    fn count_audit_into(&mut self, metrics: Arc<Metrics>) {
        self.audit_counter.metrics = metrics;
    }

    fn wake_on_notices(&mut self, wake: Arc<tokio::sync::Notify>) {
        self.notices_wake = Some(wake);
    }

    fn admit_audit(&mut self, key: RateKey, now: i64) -> (Admission, Option<Suppressed>) {
        self.audit_rate.admit(key, now)
    }

    fn ended_audit_windows(&mut self, now: i64, all: bool) -> Vec<Suppressed> {
        if all {
            self.audit_rate.close_all()
        } else {
            self.audit_rate.ended(now)
        }
    }

    fn trim_audit(&mut self, max_rows: u64) -> Result<Option<Trimmed>, StoreError> {
        self.unit(&[], async |db, _| audit_rows::trim(db, max_rows).await)
    }

    fn audit_since(&mut self, since: i64, limit: usize) -> Result<Vec<AuditRow>, StoreError> {
        self.audit_filtered(&AuditFilter {
            since,
            limit,
            ..AuditFilter::default()
        })
    }

    fn audit_filtered(&mut self, filter: &AuditFilter) -> Result<Vec<AuditRow>, StoreError> {
        self.plain(async |db, _| audit_rows::filtered(db, filter).await)
    }

    fn mail_history(&mut self, name: &str) -> Result<MailHistory, StoreError> {
        self.plain(async |db, _| audit_rows::mail_history(db, name).await)
    }

    fn event_tally(
        &mut self,
        event: &str,
        since: i64,
        limit: usize,
    ) -> Result<EventTally, StoreError> {
        self.plain(async |db, _| audit_rows::event_tally(db, event, since, limit).await)
    }

    fn purge(&mut self, now: i64, audit_retention_secs: i64) -> Result<PurgeCounts, StoreError> {
        self.unit(&[], async |db, _| {
            purge::purge(db, now, audit_retention_secs).await
        })
    }

    #[cfg(test)]
    fn count_rows(&self, sql: &str) -> i64 {
        self.plain(async |db, _| Ok(super::sql::one(db, sql, &[]).await?.try_get::<_, i64>(0)?))
            .expect("test query")
    }
}
