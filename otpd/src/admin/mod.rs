//! Answers `otpctl`'s requests: admin commands and a user's changes to their own account.
//!
//! Every request is authorized here, from the peer's credentials, before anything is read or
//! changed: admin requests need root or a member of `[daemon] admin_group`; self-service
//! requests act only on the account whose uid is calling. Store work runs on blocking threads;
//! mail sends are awaited outside the store lock, as in [`crate::login`].

pub(crate) mod authz;
mod breakglass;
mod bulk;
mod hosts;
mod mail_test;
mod nul;
mod record;
mod reset;
mod self_service;
mod status;
mod told;
mod users;
mod view;

use std::sync::Arc;

use common::wire_admin::{AdminRequest, AdminResponse, PAGE_BYTES, RefuseReason};
use serde::Serialize;

use crate::accounts::Accounts;
use crate::caller::Caller;
use crate::state::{Active, Shared};
use crate::store::AuditFilter;

pub use authz::is_admin;
pub use record::SERVICE;

/// Answers `request` from `caller`. A request with a NUL byte in any of its text is refused,
/// naming the field, before anything else ([`nul`]).
pub async fn handle(shared: &Arc<Shared>, caller: Caller, request: AdminRequest) -> AdminResponse {
    if let Some(field) = nul::nul_field(&request) {
        return refused(RefuseReason::Invalid, format!("{field} holds a NUL byte"));
    }
    match request {
        AdminRequest::TestMail { to, server } => {
            mail_test::run(shared, caller, &to, server.as_deref()).await
        }
        AdminRequest::SelfStart { action } => self_service::start(shared, caller, action).await,
        AdminRequest::SelfConfirm {
            action,
            challenge,
            code,
        } => {
            let shared = Arc::clone(shared);
            blocking(move || self_service::confirm(&shared, caller, &action, &challenge, &code))
                .await
        }
        other => {
            let shared = Arc::clone(shared);
            blocking(move || answer(&shared, caller, other)).await
        }
    }
}

/// What every synchronous request works with.
pub(crate) struct Ctx<'a> {
    /// The daemon's state.
    pub shared: &'a Shared,
    /// The config and mailer this request started with.
    pub active: Arc<Active>,
    /// Who is asking (SO_PEERCRED).
    pub caller: Caller,
    /// Account lookups: NSS, or what was looked up before the store lock was taken.
    pub accounts: &'a dyn Accounts,
    /// The request's time (unix seconds), read once from the injected clock.
    pub now: i64,
}

impl<'a> Ctx<'a> {
    /// A request from `caller`, starting now with the config in force now.
    pub(crate) fn new(shared: &'a Shared, caller: Caller) -> Ctx<'a> {
        Ctx {
            shared,
            active: shared.active(),
            caller,
            accounts: shared.accounts.as_ref(),
            now: shared.clock.now(),
        }
    }

    /// This request with `known` as its accounts: a user's account looked up before any store
    /// lock is taken ([`view::LookedUp`]), so what runs under the lock asks `ctx.accounts` and
    /// waits for no directory.
    pub(crate) fn looking_up<'b>(&self, known: &'b view::LookedUp<'b>) -> Ctx<'b>
    where
        'a: 'b,
    {
        Ctx {
            shared: self.shared,
            active: Arc::clone(&self.active),
            caller: self.caller,
            accounts: known,
            now: self.now,
        }
    }
}

fn answer(shared: &Shared, caller: Caller, request: AdminRequest) -> AdminResponse {
    let ctx = Ctx::new(shared, caller);
    // Requests a user may make about their own account.
    match request {
        AdminRequest::Status => return status::status(&ctx),
        AdminRequest::Audit {
            user,
            event,
            since,
            limit,
            before,
        } => {
            let filter = AuditFilter {
                user,
                event,
                since: since.unwrap_or(0),
                limit: usize::try_from(limit).unwrap_or(usize::MAX),
                before,
            };
            return status::audit(&ctx, filter);
        }
        // Root only, checked inside.
        AdminRequest::BreakGlassGrant {
            user,
            minutes,
            from,
        } => return breakglass::grant(&ctx, &user, minutes, from.as_deref()),
        AdminRequest::BreakGlassRevoke { user } => return breakglass::revoke(&ctx, &user),
        _ => {}
    }
    if let Err(refusal) = authz::require_admin(&ctx, request_name(&request)) {
        return refusal;
    }
    match request {
        AdminRequest::UserAdd {
            user,
            email,
            enabled,
            protocols,
            no_account,
        } => users::add(&ctx, &user, &email, enabled, protocols, no_account),
        AdminRequest::UserSetEmail { user, email } => users::set_email(&ctx, &user, &email),
        AdminRequest::UserSetProtocols { user, protocols } => {
            users::set_protocols(&ctx, &user, protocols)
        }
        AdminRequest::UserSetLanguage { user, language } => {
            users::set_language(&ctx, &user, language.as_deref())
        }
        AdminRequest::UserSetPhone { user, phone } => {
            users::set_phone(&ctx, &user, phone.as_deref())
        }
        AdminRequest::UserEnable { user } => users::set_enabled(&ctx, &user, true),
        AdminRequest::UserDisable { user } => users::set_enabled(&ctx, &user, false),
        AdminRequest::UserUnlock { user } => users::unlock(&ctx, &user),
        AdminRequest::UserRemove { user } => users::remove(&ctx, &user),
        AdminRequest::UserShow { user } => users::show(&ctx, &user),
        AdminRequest::UserList {
            enabled_only,
            locked_only,
            after,
        } => users::list(&ctx, enabled_only, locked_only, after.as_deref()),
        AdminRequest::Import {
            rows,
            partial,
            dry_run,
        } => bulk::import(&ctx, &rows, partial, dry_run),
        AdminRequest::EnableAll { group } => bulk::enable_all(&ctx, group.as_deref()),
        AdminRequest::BreakGlassList => breakglass::list(&ctx),
        AdminRequest::UserRecoveryCodes { user } => users::recovery_codes(&ctx, &user),
        AdminRequest::HostList => hosts::list(&ctx),
        AdminRequest::HostUnlock { address } => hosts::unlock(&ctx, &address),
        AdminRequest::UserReset { user } => reset::reset(&ctx, &user),
        AdminRequest::Metrics => status::metrics(&ctx),
        AdminRequest::Status
        | AdminRequest::BreakGlassGrant { .. }
        | AdminRequest::BreakGlassRevoke { .. }
        | AdminRequest::Audit { .. }
        | AdminRequest::TestMail { .. }
        | AdminRequest::SelfStart { .. }
        | AdminRequest::SelfConfirm { .. } => refused(
            RefuseReason::Failed,
            "this request is not handled here (internal error)".into(),
        ),
    }
}

/// The command name, for the refusal message and the audit row.
fn request_name(request: &AdminRequest) -> &'static str {
    match request {
        AdminRequest::UserAdd { .. } => "user add",
        AdminRequest::UserSetEmail { .. } => "user set-email",
        AdminRequest::UserSetProtocols { .. } => "user set-protocols",
        AdminRequest::UserSetLanguage { .. } => "user set-language",
        AdminRequest::UserSetPhone { .. } => "user set-phone",
        AdminRequest::UserEnable { .. } => "user enable",
        AdminRequest::UserDisable { .. } => "user disable",
        AdminRequest::UserUnlock { .. } => "user unlock",
        AdminRequest::UserRemove { .. } => "user remove",
        AdminRequest::UserShow { .. } => "user show",
        AdminRequest::UserList { .. } => "user list",
        AdminRequest::Import { .. } => "import",
        AdminRequest::EnableAll { .. } => "enable --all",
        AdminRequest::Audit { .. } => "audit",
        AdminRequest::Status => "status",
        AdminRequest::Metrics => "metrics",
        AdminRequest::TestMail { .. } => "test-mail",
        AdminRequest::SelfStart { .. } | AdminRequest::SelfConfirm { .. } => "self-service",
        AdminRequest::BreakGlassGrant { .. } => "breakglass grant",
        AdminRequest::BreakGlassRevoke { .. } => "breakglass revoke",
        AdminRequest::BreakGlassList => "breakglass list",
        AdminRequest::UserRecoveryCodes { .. } => "user recovery-codes",
        AdminRequest::HostList => "host list",
        AdminRequest::HostUnlock { .. } => "host unlock",
        AdminRequest::UserReset { .. } => "user reset",
    }
}

/// The first items that fit in one answer ([`PAGE_BYTES`] of JSON), and whether any were
/// left out.
pub(crate) fn page<T: Serialize>(items: impl IntoIterator<Item = T>) -> (Vec<T>, bool) {
    let mut out = Vec::new();
    let mut bytes = 0usize;
    for item in items {
        let size = serde_json::to_vec(&item).map_or(PAGE_BYTES, |v| v.len() + 1);
        if bytes + size > PAGE_BYTES && !out.is_empty() {
            return (out, true);
        }
        bytes += size;
        out.push(item);
    }
    (out, false)
}

/// A refusal.
pub(crate) fn refused(reason: RefuseReason, message: String) -> AdminResponse {
    AdminResponse::Refused { reason, message }
}

/// A store failure: logged here, a generic message for the person.
pub(crate) fn store_failed(error: &dyn std::fmt::Display) -> AdminResponse {
    tracing::error!(
        "store error in an otpctl request: {}",
        common::text::escape_for_log(&error.to_string())
    );
    refused(
        RefuseReason::Failed,
        "otpd's database failed; see otpd's log (journalctl -u otpd)".into(),
    )
}

/// Runs store work on a blocking thread; a panic there becomes a refusal.
async fn blocking(work: impl FnOnce() -> AdminResponse + Send + 'static) -> AdminResponse {
    tokio::task::spawn_blocking(work).await.unwrap_or_else(|e| {
        tracing::error!(
            "otpctl request task failed: {}",
            common::text::escape_for_log(&e.to_string())
        );
        refused(RefuseReason::Failed, "otpd had an internal error".into())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_holds_what_fits_and_says_when_more_is_left() {
        let items: Vec<String> = (0..10_000).map(|i| format!("item-{i:05}")).collect();
        let (first, more) = page(items.clone());
        assert!(more);
        assert!(serde_json::to_vec(&first).unwrap().len() <= PAGE_BYTES + 2);
        assert_eq!(first[..], items[..first.len()]);
        let (all, more) = page(items[..10].to_vec());
        assert!(!more);
        assert_eq!(all.len(), 10);
    }

    #[test]
    fn a_single_item_larger_than_a_page_is_still_returned() {
        let (items, more) = page(vec!["x".repeat(PAGE_BYTES * 2)]);
        assert_eq!((items.len(), more), (1, false));
    }
}
