//! What a change to a user's record tells the user (issue #21): their login code turned off,
//! or the address their codes go to changed, told at the old address and at the new one (the
//! old one is where the real owner still reads mail if somebody else made the change).
//!
//! Queued in the change's own transaction, so the notice exists exactly when the change does.
//! The user's profile is the one their logins by the first enabled protocol get (the admin
//! side asks no directory, so `match_attribute` policies do not match here).

use common::config::{EmailAddress, NoticeKind, Settings};

use super::Ctx;
use crate::notify::{self, Told, UserTo};
use crate::policy;
use crate::store::{Store, StoreError, UserRecord};

/// Queues the notices of the change from `before` to `after`, made `by` (the detail: who
/// changed it, and how). A new user (`before` is `None`) is told nothing: nothing of theirs
/// changed.
pub fn change(
    store: &mut dyn Store,
    ctx: &Ctx<'_>,
    before: Option<&UserRecord>,
    after: &UserRecord,
    by: &str,
) -> Result<(), StoreError> {
    if before.is_none() {
        return Ok(());
    }
    let config = &ctx.active.config;
    let name = after.name.as_str();
    let old = policy::address_for(config, name, before);
    let new = policy::address_for(config, name, Some(after));
    let phone = after.phone.as_deref();
    let tell = |store: &mut dyn Store, kind, addresses: &[&str], detail: &str| {
        tell_user(store, ctx, (name, phone), kind, addresses, detail)
    };
    if before.is_some_and(|r| r.enabled) && !after.enabled {
        let to: Vec<&str> = new.iter().map(EmailAddress::as_str).collect();
        tell(store, NoticeKind::FactorOff, &to, by)?;
    }
    if let (Some(old), Some(new)) = (&old, &new) {
        if old != new {
            let detail = format!(
                "{}, {by}",
                notify::address_change_detail(old.as_str(), new.as_str())
            );
            tell(
                store,
                NoticeKind::AddressChanged,
                &[old.as_str(), new.as_str()],
                &detail,
            )?;
        }
    }
    Ok(())
}

/// Queues the notice of a removed record: a user whose code was on is told it is off, at the
/// address their codes went to.
pub fn removed(
    store: &mut dyn Store,
    ctx: &Ctx<'_>,
    before: &UserRecord,
    by: &str,
) -> Result<(), StoreError> {
    let config = &ctx.active.config;
    let name = before.name.as_str();
    let address = policy::address_for(config, name, Some(before));
    if !before.enabled {
        return Ok(());
    }
    let to: Vec<&str> = address.iter().map(EmailAddress::as_str).collect();
    tell_user(
        store,
        ctx,
        (name, before.phone.as_deref()),
        NoticeKind::FactorOff,
        &to,
        by,
    )
}

/// Queues `kind`'s notice of `name`'s record to `addresses`, by the user's profile.
fn tell_user(
    store: &mut dyn Store,
    ctx: &Ctx<'_>,
    (name, phone): (&str, Option<&str>),
    kind: NoticeKind,
    addresses: &[&str],
    detail: &str,
) -> Result<(), StoreError> {
    let told = Told {
        kind,
        user: name,
        service: "otpctl",
        rhost: None,
        detail,
        event_key: None,
        by_local_caller: false,
    };
    let config = &ctx.active.config;
    let settings = settings_of(ctx, name);
    let user = UserTo {
        settings,
        addresses,
        phone: notify::by_phone(&config.webhooks, settings, !addresses.is_empty(), phone),
    };
    notify::tell(store, &config.notifications, Some(user), &told, ctx.now)
}

/// The settings of `name`'s profile: those of the first enabled protocol's policy, or the
/// defaults.
fn settings_of<'c>(ctx: &'c Ctx<'_>, name: &str) -> &'c Settings {
    let config = &ctx.active.config;
    let Some(protocol) = config.enabled_protocols.iter().next() else {
        return &config.defaults;
    };
    let (_, settings) = policy::settings_for_account(
        config,
        name,
        None,
        *protocol,
        || ctx.accounts.groups_of(name),
        &common::config::Attributes::new(),
    );
    settings
}
