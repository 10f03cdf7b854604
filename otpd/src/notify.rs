//! What otpd tells whom (issue #21): the notifications an event queues, in the event's own
//! transaction, for the deliverer ([`crate::notices`]) to mail.
//!
//! The user is told when their profile's `notify` lists the event's kind; the admin when
//! `[notifications]` has an `admin_address` and `admin_events` lists the kind. Each recipient
//! has a cap per hour (`per_user_per_hour`, `admin_per_hour`) counted in the store, across
//! restarts: a flood of wrong codes or lockouts cannot become a flood of mail. An event that can
//! recur (the same lockout refusing login after login, the same break-glass grant letting
//! several logins pass) carries a key, so it is told once. No notification carries a code:
//! their templates cannot name one (the config refuses `{code}`).

use common::config::{NoticeKind, NotificationsConfig, Settings};
use common::text::{escape_for_log, mask_email};

use crate::store::{AddressSeen, NewNotice, Queued, Store, StoreError};

/// An event to tell of.
#[derive(Debug, Clone, Copy)]
pub struct Told<'a> {
    /// What happened.
    pub kind: NoticeKind,
    /// To whose account.
    pub user: &'a str,
    /// The PAM service of the login, or `otpctl`.
    pub service: &'a str,
    /// Where the login came from, when known.
    pub rhost: Option<&'a str>,
    /// The event's facts, one line, never a code.
    pub detail: &'a str,
    /// Names the event when it can recur: it is told once.
    pub event_key: Option<&'a str>,
}

/// Where the user hears of it: their profile's settings and their addresses (the old and the
/// new one when the address changed).
#[derive(Debug, Clone, Copy)]
pub struct UserTo<'a> {
    /// The settings of the user's profile (`notify`).
    pub settings: &'a Settings,
    /// The addresses to tell.
    pub addresses: &'a [&'a str],
}

/// Queues the notices of `told`: to the user (when `user` is known and their profile wants
/// it) and to the admin. `Err` only when the store failed, which fails the event's
/// transaction like a lost audit row.
pub fn tell(
    store: &mut dyn Store,
    config: &NotificationsConfig,
    user: Option<UserTo<'_>>,
    told: &Told<'_>,
    now: i64,
) -> Result<(), StoreError> {
    if let Some(to) = user.filter(|to| to.settings.notify.contains(&told.kind)) {
        for address in to.addresses {
            queue(store, told, address, false, config.per_user_per_hour, now)?;
        }
    }
    if let Some(admin) = config.admin_for(told.kind) {
        queue(
            store,
            told,
            admin.as_str(),
            true,
            config.admin_per_hour,
            now,
        )?;
    }
    Ok(())
}

fn queue(
    store: &mut dyn Store,
    told: &Told<'_>,
    address: &str,
    to_admin: bool,
    cap: u32,
    now: i64,
) -> Result<(), StoreError> {
    let notice = NewNotice {
        kind: told.kind,
        user: told.user,
        address,
        to_admin,
        service: told.service,
        rhost: told.rhost,
        detail: told.detail,
        event_key: told.event_key,
    };
    if store.queue_notice(&notice, Some(cap), now)? == Queued::OverCap {
        let whom = if to_admin { "the admin" } else { "the user" };
        tracing::warn!(
            "not telling {whom} of the {} of {}: {cap} notices in the last hour already",
            told.kind.name(),
            escape_for_log(told.user)
        );
    }
    Ok(())
}

/// After a successful login from `rhost` (one otpd believes: reported by root or a trusted
/// caller): records the address and, when the user logged in before but not from it within
/// the profile's `new_address_days`, tells them. Nothing is recorded for a profile that does
/// not want the notice, so a login pays for it only where it is on.
pub fn after_login(
    store: &mut dyn Store,
    config: &NotificationsConfig,
    user: UserTo<'_>,
    (name, service, rhost): (&str, &str, Option<&str>),
    now: i64,
) -> Result<(), StoreError> {
    let Some(rhost) = rhost.map(str::trim).filter(|r| !r.is_empty()) else {
        return Ok(());
    };
    if !user.settings.notify.contains(&NoticeKind::NewAddress) {
        return Ok(());
    }
    let window = i64::from(user.settings.new_address_days) * 86_400;
    if store.note_login_address(name, rhost, now, window)? != AddressSeen::New {
        return Ok(());
    }
    let told = Told {
        kind: NoticeKind::NewAddress,
        user: name,
        service,
        rhost: Some(rhost),
        detail: "",
        event_key: None,
    };
    tell(store, config, Some(user), &told, now)
}

/// The detail of an address change, masked as at the prompt: `from a***@e***.com to ...`.
pub fn address_change_detail(old: &str, new: &str) -> String {
    format!("from {} to {}", mask_email(old), mask_email(new))
}
