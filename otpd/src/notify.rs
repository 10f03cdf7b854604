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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SqliteStore;
    use crate::test_support::config;

    const T0: i64 = 1_800_000_000;

    fn store() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let key = crate::server_key::ServerKey::from_bytes([7; 32]);
        let store = SqliteStore::open(&dir.path().join("otpd.db"), key).unwrap();
        (dir, store)
    }

    fn lockout(key: &str) -> Told<'_> {
        Told {
            kind: NoticeKind::Lockout,
            user: "alice",
            service: "sshd",
            rhost: Some("192.0.2.1"),
            detail: "until later",
            event_key: Some(key),
        }
    }

    /// The queued notices' recipients, in order.
    fn recipients(store: &mut SqliteStore) -> Vec<String> {
        let due = store.due_notices(T0 + 10, i64::MIN, 50).unwrap();
        due.into_iter().map(|n| n.address).collect()
    }

    #[test]
    fn a_profile_without_the_kind_tells_only_the_admin() {
        let config = config(
            "[defaults]\nnotify = [\"new_address\"]\n[notifications]\nadmin_address = \"sec@example.com\"\n",
        );
        let (_dir, mut store) = store();
        let user = UserTo {
            settings: &config.defaults,
            addresses: &["alice@example.com"],
        };
        tell(
            &mut store,
            &config.notifications,
            Some(user),
            &lockout("1"),
            T0,
        )
        .unwrap();
        assert_eq!(recipients(&mut store), ["sec@example.com"]);
    }

    #[test]
    fn the_admin_is_not_told_of_what_admin_events_leaves_out() {
        let config = config(
            "[notifications]\nadmin_address = \"sec@example.com\"\nadmin_events = [\"breakglass_used\"]\n",
        );
        let (_dir, mut store) = store();
        let user = UserTo {
            settings: &config.defaults,
            addresses: &["alice@example.com"],
        };
        tell(
            &mut store,
            &config.notifications,
            Some(user),
            &lockout("1"),
            T0,
        )
        .unwrap();
        assert_eq!(recipients(&mut store), ["alice@example.com"]);
    }

    #[test]
    fn a_new_address_is_told_only_after_a_first_login_and_only_for_remote_hosts() {
        let config = config("");
        let (_dir, mut store) = store();
        let user = UserTo {
            settings: &config.defaults,
            addresses: &["alice@example.com"],
        };
        let login = |store: &mut SqliteStore, rhost, now| {
            after_login(
                store,
                &config.notifications,
                user,
                ("alice", "sshd", rhost),
                now,
            )
            .unwrap();
        };
        login(&mut store, None, T0);
        login(&mut store, Some("192.0.2.1"), T0);
        login(&mut store, Some(" "), T0 + 1);
        assert!(recipients(&mut store).is_empty());
        login(&mut store, Some("192.0.2.2"), T0 + 2);
        login(&mut store, Some("192.0.2.2"), T0 + 3);
        assert_eq!(recipients(&mut store), ["alice@example.com"]);
        // The window is the profile's: 30 days by default.
        login(&mut store, Some("192.0.2.1"), T0 + 31 * 86_400);
        assert_eq!(store.queued_notices().unwrap(), 2);
    }

    #[test]
    fn a_profile_without_new_address_records_no_login_address() {
        let config = config("[defaults]\nnotify = []\n");
        let (_dir, mut store) = store();
        let user = UserTo {
            settings: &config.defaults,
            addresses: &["alice@example.com"],
        };
        let told = ("alice", "sshd", Some("192.0.2.1"));
        after_login(&mut store, &config.notifications, user, told, T0).unwrap();
        assert_eq!(store.count_rows("SELECT count(*) FROM seen_rhosts"), 0);
    }
}
