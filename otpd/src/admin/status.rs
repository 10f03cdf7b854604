//! `status` and `audit`: admins see the daemon and every row; a user sees their own account
//! and their own rows.

use common::config::{Config, Mode};
use common::wire_admin::{
    AdminResponse, DaemonStatus, DryRunSummary, MailServerStatus, RefuseReason, SelfStatus,
    WebhookEndpointStatus,
};

use super::authz::caller_is_admin;
use super::self_service::{caller_name, may_disable};
use super::view::{self, Address};
use super::{Ctx, refused, store_failed};
use crate::audit::Event;
use crate::store::{AuditFilter, Store, StoreError};

/// The most audit rows one request asks for (pages of them come back).
pub const MAX_AUDIT_ROWS: usize = 100_000;

/// `status`.
pub fn status(ctx: &Ctx<'_>) -> AdminResponse {
    if caller_is_admin(ctx) {
        daemon_status(ctx)
    } else {
        self_status(ctx)
    }
}

fn daemon_status(ctx: &Ctx<'_>) -> AdminResponse {
    let mut store = ctx.shared.store();
    let (counts, live) = match (store.user_counts(ctx.now), store.live_codes(ctx.now)) {
        (Ok(counts), Ok(live)) => (counts, live),
        (Err(e), _) | (_, Err(e)) => return store_failed(&e),
    };
    let locked_hosts = match store.locked_hosts(ctx.now) {
        Ok(hosts) => hosts,
        Err(e) => return store_failed(&e),
    };
    let config = &ctx.active.config;
    let health = ctx.active.mailer.server_health();
    let mut mail_servers = Vec::with_capacity(config.mail.servers.len());
    for server in &config.mail.servers {
        // The audit rows remember across restarts; the mailer knows the breaker's state.
        let history = match store.mail_history(&server.name) {
            Ok(history) => history,
            Err(e) => return store_failed(&e),
        };
        let live = health.iter().find(|h| h.name == server.name);
        let (mut last_ok_at, mut last_failure) = (history.last_ok_at, history.last_failure);
        match live.and_then(|h| h.last.clone()) {
            Some((at, Ok(()))) => last_ok_at = last_ok_at.max(Some(at)),
            Some((at, Err(error))) if last_failure.as_ref().is_none_or(|(t, _)| *t <= at) => {
                last_failure = Some((at, error));
            }
            _ => {}
        }
        let (last_failure_at, last_error) = match last_failure {
            Some((at, error)) => (Some(at), Some(error)),
            None => (None, None),
        };
        mail_servers.push(MailServerStatus {
            name: server.name.clone(),
            address: format!("{}:{}", server.host, server.port),
            security: server.security.as_str().to_string(),
            last_ok_at,
            last_failure_at,
            last_error,
            failures_in_a_row: live.map_or(0, |h| h.failures_in_a_row),
            skipped_until: live.and_then(|h| h.skipped_until),
        });
    }
    let mut webhook_endpoints = Vec::new();
    for channel in &config.webhooks {
        for (index, endpoint) in channel.endpoints.iter().enumerate() {
            let label = crate::webhook::endpoint_label(&channel.name, index, endpoint);
            let history = match store.mail_history(&label) {
                Ok(history) => history,
                Err(e) => return store_failed(&e),
            };
            let (last_failure_at, last_error) = history.last_failure.unzip();
            webhook_endpoints.push(WebhookEndpointStatus {
                channel: channel.name.clone(),
                endpoint: label,
                last_ok_at: history.last_ok_at,
                last_failure_at,
                last_error,
            });
        }
    }
    let dry_run = match dry_run_summary(&mut store, config, ctx.now) {
        Ok(summary) => summary,
        Err(e) => return store_failed(&e),
    };
    let backend = store.backend();
    drop(store);
    let breakglass = match super::breakglass::views(ctx) {
        Ok(views) => views,
        Err(refusal) => return refusal,
    };
    AdminResponse::Status {
        status: Box::new(DaemonStatus {
            version: env!("CARGO_PKG_VERSION").to_string(),
            now: ctx.now,
            started_at: ctx.shared.started_at,
            config_file: config.source.display().to_string(),
            config_loaded_at: ctx.shared.config_loaded_at(),
            users: counts.users,
            enabled: counts.enabled,
            locked: counts.locked,
            live_codes: live,
            mail_servers,
            breakglass,
            locked_hosts,
            dry_run,
            webhook_endpoints,
            store: backend,
        }),
    }
}

/// Days back that `otpctl status` sums a dry run over.
const DRY_RUN_DAYS: u32 = 7;

/// Users named in the dry-run summary, at most.
const DRY_RUN_TOP: usize = 10;

/// The `would_ask` rows of the last [`DRY_RUN_DAYS`] days: shown when a profile is a dry run
/// now, or was one lately.
fn dry_run_summary(
    store: &mut dyn Store,
    config: &Config,
    now: i64,
) -> Result<Option<DryRunSummary>, StoreError> {
    let since = now - i64::from(DRY_RUN_DAYS) * 86_400;
    let tally = store.event_tally(Event::WouldAsk.as_str(), since, DRY_RUN_TOP)?;
    let configured = std::iter::once(&config.defaults)
        .chain(config.profiles.values())
        .any(|settings| settings.mode == Mode::Audit);
    Ok((configured || tally.rows > 0).then_some(DryRunSummary {
        days: DRY_RUN_DAYS,
        logins: tally.rows,
        users: tally.users,
        top: tally.top,
    }))
}

/// `metrics` (admins, checked by the caller): the counters and gauges, from memory.
pub fn metrics(ctx: &Ctx<'_>) -> AdminResponse {
    AdminResponse::Metrics {
        text: crate::metrics::exposition(ctx.shared, &ctx.active),
    }
}

fn self_status(ctx: &Ctx<'_>) -> AdminResponse {
    let name = match caller_name(ctx) {
        Ok(name) => name,
        Err(refusal) => return refusal,
    };
    let read = {
        let store = ctx.shared.store();
        (store.user(&name), store.user_locked_until(&name, ctx.now))
    };
    let (record, locked) = match read {
        (Ok(record), Ok(locked)) => (record, locked),
        (Err(e), _) | (_, Err(e)) => return store_failed(&e),
    };
    // The store is unlocked again: the view and the policy may ask NSS for groups.
    let config = &ctx.active.config;
    let accounts = ctx.accounts;
    AdminResponse::SelfStatus {
        status: Box::new(SelfStatus {
            user: view::user_view(
                config,
                accounts,
                &name,
                record.as_ref(),
                locked,
                Address::Masked,
            ),
            may_disable: may_disable(config, accounts, &name),
        }),
    }
}

/// `audit`: a non-admin may read only rows about themselves. One page at most: rows beyond
/// what fits in one answer are left for the next request.
pub fn audit(ctx: &Ctx<'_>, mut filter: AuditFilter) -> AdminResponse {
    if !caller_is_admin(ctx) {
        let own = match caller_name(ctx) {
            Ok(name) => name,
            Err(refusal) => return refusal,
        };
        if filter.user.as_ref().is_some_and(|other| *other != own) {
            return refused(
                RefuseReason::NotAllowed,
                format!(
                    "you may read audit rows only about yourself ({own}); admins may read everyone's"
                ),
            );
        }
        filter.user = Some(own);
    }
    filter.limit = filter.limit.min(MAX_AUDIT_ROWS);
    let rows = match ctx.shared.store().audit_filtered(&filter) {
        Ok(rows) => rows,
        Err(e) => return store_failed(&e),
    };
    let (rows, more) = super::page(rows);
    let more_before = if more {
        rows.last().map(|r| (r.time, r.id))
    } else {
        None
    };
    AdminResponse::Audit { rows, more_before }
}
