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

use common::config::{Channel, NoticeKind, NotificationsConfig, Settings, WebhookChannel};
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
    /// Whether a local process caused it for its own account (its origin not believed): the
    /// user is told, the admin is not, so no local user can spend the admin's hourly cap and
    /// keep the admin from hearing of others.
    pub by_local_caller: bool,
}

/// Where the user hears of it: their profile's settings and their addresses (the old and the
/// new one when the address changed), or the webhook channel and phone number their profile
/// reaches them by first.
#[derive(Debug, Clone, Copy)]
pub struct UserTo<'a> {
    /// The settings of the user's profile (`notify`).
    pub settings: &'a Settings,
    /// The addresses to tell.
    pub addresses: &'a [&'a str],
    /// The webhook channel (with a `notice_body`) and phone number that come before the mail
    /// in the profile's `channels`, when the user has a number ([`by_phone`]).
    pub phone: Option<(&'a str, &'a str)>,
}

/// The webhook channel and phone number a user's notifications go by: the first of the
/// profile's channels that reaches the user and carries notifications (a webhook channel needs
/// a `notice_body`), when that is a webhook; `None` when it is the mail (or nothing).
pub fn by_phone<'a>(
    webhooks: &'a [WebhookChannel],
    settings: &'a Settings,
    has_address: bool,
    phone: Option<&'a str>,
) -> Option<(&'a str, &'a str)> {
    for channel in &settings.channels {
        match channel {
            Channel::Email if has_address => return None,
            Channel::Email => {}
            Channel::Webhook(name) => {
                let carries = webhooks
                    .iter()
                    .any(|w| &w.name == name && w.notice_body.is_some());
                if let (true, Some(number)) = (carries, phone) {
                    return Some((name.as_str(), number));
                }
            }
        }
    }
    None
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
        let cap = config.per_user_per_hour;
        // An address change is about the mail address: told there, old and new.
        match to.phone.filter(|_| told.kind != NoticeKind::AddressChanged) {
            Some((channel, number)) => {
                queue(store, told, (number, Some(channel)), false, cap, now)?;
            }
            None => {
                for address in to.addresses {
                    queue(store, told, (address, None), false, cap, now)?;
                }
            }
        }
    }
    if let Some(admin) = config
        .admin_for(told.kind)
        .filter(|_| !told.by_local_caller)
    {
        let to = (admin.as_str(), None);
        queue(store, told, to, true, config.admin_per_hour, now)?;
    }
    Ok(())
}

fn queue(
    store: &mut dyn Store,
    told: &Told<'_>,
    (address, channel): (&str, Option<&str>),
    to_admin: bool,
    cap: u32,
    now: i64,
) -> Result<(), StoreError> {
    let notice = NewNotice {
        kind: told.kind,
        user: told.user,
        address,
        channel,
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
        by_local_caller: false,
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
            by_local_caller: false,
        }
    }

    /// Alice, at her one address, by the defaults of `config`.
    fn alice(config: &common::config::Config) -> UserTo<'_> {
        UserTo {
            settings: &config.defaults,
            addresses: &["alice@example.com"],
            phone: None,
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
        let user = alice(&config);
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
        let user = alice(&config);
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
        let user = alice(&config);
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
        let user = alice(&config);
        let told = ("alice", "sshd", Some("192.0.2.1"));
        after_login(&mut store, &config.notifications, user, told, T0).unwrap();
        assert_eq!(store.count_rows("SELECT count(*) FROM seen_rhosts"), 0);
    }

    #[test]
    fn notifications_go_by_the_first_channel_that_reaches_the_user_and_carries_them() {
        let hook = |name: &str, notices: bool| {
            let notice_body = if notices {
                "notice_body = \"To={to}&Body={message}\"\n"
            } else {
                ""
            };
            format!(
                "[[channels.webhook]]\nname = \"{name}\"\nendpoints = [\"https://gw.example/x\"]\nbody = \"To={{to}}&Body={{code}}\"\n{notice_body}"
            )
        };
        let config = config(&format!(
            "[profiles.sms_first]\nchannels = [\"sms\", \"email\"]\n[profiles.mail_first]\nchannels = [\"email\", \"sms\"]\n[profiles.codes_only]\nchannels = [\"push\", \"email\"]\n{}{}",
            hook("sms", true),
            hook("push", false)
        ));
        let route = |profile: &str, has_address, phone| {
            by_phone(
                &config.webhooks,
                &config.profiles[profile],
                has_address,
                phone,
            )
        };
        let phone = Some("+441234567890");
        assert_eq!(
            route("sms_first", true, phone),
            Some(("sms", "+441234567890"))
        );
        assert_eq!(route("sms_first", true, None), None, "no number: by mail");
        assert_eq!(route("mail_first", true, phone), None);
        assert_eq!(
            route("mail_first", false, phone),
            Some(("sms", "+441234567890")),
            "no address: the next channel"
        );
        assert_eq!(
            route("codes_only", true, phone),
            None,
            "push has no notice_body"
        );
    }

    #[test]
    fn a_user_reached_by_phone_is_told_there_once_and_an_address_change_by_mail() {
        let config = config("");
        let (_dir, mut store) = store();
        let user = UserTo {
            settings: &config.defaults,
            addresses: &["alice@example.com", "alice@new.example"],
            phone: Some(("sms", "+441234567890")),
        };
        tell(
            &mut store,
            &config.notifications,
            Some(user),
            &lockout("1"),
            T0,
        )
        .unwrap();
        let changed = Told {
            kind: NoticeKind::AddressChanged,
            event_key: None,
            ..lockout("")
        };
        tell(&mut store, &config.notifications, Some(user), &changed, T0).unwrap();
        let due = store.due_notices(T0, i64::MIN, 10).unwrap();
        let sent: Vec<(Option<&str>, &str)> = due
            .iter()
            .map(|n| (n.channel.as_deref(), n.address.as_str()))
            .collect();
        assert_eq!(
            sent,
            [
                (Some("sms"), "+441234567890"),
                (None, "alice@example.com"),
                (None, "alice@new.example")
            ]
        );
    }

    #[test]
    fn a_local_callers_own_lockout_tells_the_user_and_not_the_admin() {
        let config = config("[notifications]\nadmin_address = \"sec@example.com\"\n");
        let (_dir, mut store) = store();
        let user = alice(&config);
        let local = Told {
            by_local_caller: true,
            ..lockout("1")
        };
        tell(&mut store, &config.notifications, Some(user), &local, T0).unwrap();
        assert_eq!(recipients(&mut store), ["alice@example.com"]);
    }
}
