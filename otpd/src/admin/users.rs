//! Admin commands on one user, and the user list.

use common::config::{Language, PhoneNumber};
use common::wire_admin::{AdminResponse, MailedCounts, RefuseReason, UserView};

use super::view::{self, Address, LookedUp};
use super::{Ctx, record, refused, store_failed, told};
use crate::audit::Event;
use crate::directory::{self, Directory, DirectoryError, UserFacts, Wanted};
use crate::store::{self, Store, StoreError, UserRecord};

/// `user add`: refused when the user already has a record, and, unless `no_account`, when the
/// name is no account on this host (NSS), so that a typo does not become a record that no login
/// ever matches while the real user goes without a code.
pub fn add(
    ctx: &Ctx<'_>,
    user: &str,
    email: &str,
    enabled: bool,
    protocols: Option<Vec<String>>,
    no_account: bool,
) -> AdminResponse {
    if let Err(message) = view::check_user_name(user) {
        return refused(RefuseReason::Invalid, message);
    }
    // Looked up before the store is locked: NSS may be slow (LDAP, SSSD).
    let looked_up = LookedUp::now(&ctx.active.config, ctx.accounts, user);
    let ctx = &ctx.looking_up(&looked_up);
    if !no_account && ctx.accounts.uid_of(user).is_none() {
        return refused(
            RefuseReason::NotFound,
            format!(
                "{user} is not an account on this host (getent passwd {user} finds nothing); check the name, or add --no-account if the user will only exist later (e.g. from a directory)"
            ),
        );
    }
    let email = match view::check_email(email) {
        Ok(email) => email,
        Err(message) => return refused(RefuseReason::Invalid, message),
    };
    let protocols = match protocols
        .map(|p| view::check_protocols(&p, None))
        .transpose()
    {
        Ok(protocols) => protocols,
        Err(message) => return refused(RefuseReason::Invalid, message),
    };
    let mut store = ctx.shared.store();
    match store.user(user) {
        Ok(Some(_)) => {
            return refused(
                RefuseReason::Exists,
                format!(
                    "{user} already has a record; change it with `otpctl user set-email`, `user enable` or `user set-protocols`"
                ),
            );
        }
        Ok(None) => {}
        Err(e) => return store_failed(&e),
    }
    let new = UserRecord {
        name: user.to_string(),
        email: Some(email.as_str().to_string()),
        enabled,
        protocols,
        language: None,
        phone: None,
    };
    save(
        ctx,
        &mut store,
        (None, &new),
        Event::UserAdded,
        format!("Added {user}."),
    )
}

/// `user set-email`.
pub fn set_email(ctx: &Ctx<'_>, user: &str, email: &str) -> AdminResponse {
    let email = match view::check_email(email) {
        Ok(email) => email,
        Err(message) => return refused(RefuseReason::Invalid, message),
    };
    change(ctx, user, Event::UserEmailSet, |r| {
        r.email = Some(email.as_str().to_string());
        format!("The address of {user} is now {}.", email.as_str())
    })
}

/// `user set-protocols`.
pub fn set_protocols(ctx: &Ctx<'_>, user: &str, protocols: Option<Vec<String>>) -> AdminResponse {
    let protocols = match protocols
        .map(|p| view::check_protocols(&p, None))
        .transpose()
    {
        Ok(protocols) => protocols,
        Err(message) => return refused(RefuseReason::Invalid, message),
    };
    change(ctx, user, Event::UserProtocolsSet, |r| {
        let shown = protocols
            .as_ref()
            .map_or("all protocols".to_string(), |p| p.join(","));
        r.protocols = protocols;
        format!("{user} is enrolled for {shown}.")
    })
}

/// `user set-language`: a code otpd has texts in, or `None` for the profile's language.
pub fn set_language(ctx: &Ctx<'_>, user: &str, language: Option<&str>) -> AdminResponse {
    let language = match language {
        None => None,
        Some(code) => match Language::of_code(code) {
            Some(language) => Some(language),
            None => {
                return refused(
                    RefuseReason::Invalid,
                    format!(
                        "no login texts in {code:?}; the languages are {}",
                        Language::codes()
                    ),
                );
            }
        },
    };
    change(ctx, user, Event::UserLanguageSet, |r| {
        r.language = language;
        match language {
            Some(language) => format!("The login texts of {user} are now in {language}."),
            None => format!("The login texts of {user} are now in the language of their profile."),
        }
    })
}

/// `user set-phone`: an E.164 number for webhook channels, or `None` to remove it.
pub fn set_phone(ctx: &Ctx<'_>, user: &str, phone: Option<&str>) -> AdminResponse {
    let phone = match phone.map(PhoneNumber::parse).transpose() {
        Ok(phone) => phone,
        Err(why) => return refused(RefuseReason::Invalid, why),
    };
    change(ctx, user, Event::UserPhoneSet, |r| {
        r.phone = phone.map(|p| p.as_str().to_string());
        match &r.phone {
            Some(phone) => format!("Codes by phone for {user} now go to {phone}."),
            None => format!("{user} has no phone number any more."),
        }
    })
}

/// `user enable` and `user disable`.
pub fn set_enabled(ctx: &Ctx<'_>, user: &str, enabled: bool) -> AdminResponse {
    let event = if enabled {
        Event::UserEnabled
    } else {
        Event::UserDisabled
    };
    change(ctx, user, event, |r| {
        r.enabled = enabled;
        if enabled {
            format!("The login code is on for {user}.")
        } else {
            format!("The login code is off for {user}.")
        }
    })
}

/// Applies `edit` to the user's record (a new one when missing) and saves it.
fn change(
    ctx: &Ctx<'_>,
    user: &str,
    event: Event,
    edit: impl FnOnce(&mut UserRecord) -> String,
) -> AdminResponse {
    if let Err(message) = view::check_user_name(user) {
        return refused(RefuseReason::Invalid, message);
    }
    let looked_up = LookedUp::now(&ctx.active.config, ctx.accounts, user);
    let ctx = &ctx.looking_up(&looked_up);
    let mut store = ctx.shared.store();
    // A user without a record is one with no address of their own and the code off.
    let before = match store.user(user) {
        Ok(record) => record.unwrap_or_else(|| UserRecord {
            name: user.to_string(),
            email: None,
            enabled: false,
            protocols: None,
            language: None,
            phone: None,
        }),
        Err(e) => return store_failed(&e),
    };
    let mut current = before.clone();
    let message = edit(&mut current);
    save(ctx, &mut store, (Some(&before), &current), event, message)
}

/// Stores `new` (the record was `before`; `None` for a new user, who is told nothing), audits
/// the change as `event` and tells the user what it changed, all in one transaction.
fn save(
    ctx: &Ctx<'_>,
    store: &mut dyn Store,
    (before, new): (Option<&UserRecord>, &UserRecord),
    event: Event,
    message: String,
) -> AdminResponse {
    let saved = store::atomically(store, |store| {
        store.upsert_user(new)?;
        let by = format!("by an administrator (otpctl, uid {})", ctx.caller.uid);
        told::change(store, ctx, before, new, &by)?;
        let detail = describe(new);
        record::note(
            store,
            ctx.now,
            event,
            Some(&new.name),
            ctx.caller,
            Some(&detail),
        )
    });
    match saved {
        Ok(()) => {}
        Err(StoreError::InvalidUser(why)) => return refused(RefuseReason::Invalid, why),
        Err(e) => return store_failed(&e),
    }
    match view_of(ctx, store, &new.name) {
        Ok(user) => AdminResponse::Done {
            message,
            user: Some(Box::new(user)),
        },
        Err(e) => store_failed(&e),
    }
}

/// The audit detail of a record: what it says now.
fn describe(r: &UserRecord) -> String {
    format!(
        "email={} enabled={} protocols={}",
        r.email.as_deref().unwrap_or("-"),
        r.enabled,
        r.protocols.as_ref().map_or("all".into(), |p| p.join(","))
    )
}

/// `user unlock`.
pub fn unlock(ctx: &Ctx<'_>, user: &str) -> AdminResponse {
    let looked_up = LookedUp::now(&ctx.active.config, ctx.accounts, user);
    let ctx = &ctx.looking_up(&looked_up);
    let mut store = ctx.shared.store();
    let unlocked = store::atomically(&mut store, |store| {
        let was = store.unlock_user(user, ctx.now)?;
        record::note(
            store,
            ctx.now,
            Event::UserUnlocked,
            Some(user),
            ctx.caller,
            None,
        )?;
        Ok(was)
    });
    let was = match unlocked {
        Ok(was) => was,
        Err(e) => return store_failed(&e),
    };
    let message = if was {
        format!("Cleared the lockout and failure count of {user}.")
    } else {
        format!(
            "{user} was not locked out and had no failures counted. If {user} is still refused, the address they log in from may be locked out (`otpctl host list`), or the mail caps reached (`otpctl user reset {user}`)."
        )
    };
    AdminResponse::Done {
        message,
        user: view_of(ctx, &store, user).ok().map(Box::new),
    }
}

/// `user remove`.
pub fn remove(ctx: &Ctx<'_>, user: &str) -> AdminResponse {
    let looked_up = LookedUp::now(&ctx.active.config, ctx.accounts, user);
    let ctx = &ctx.looking_up(&looked_up);
    let mut store = ctx.shared.store();
    let removed = store::atomically(&mut store, |store| {
        let before = store.user(user)?;
        let was = store.remove_user(user)?;
        if let Some(before) = &before {
            let by = format!(
                "by an administrator (otpctl user remove, uid {})",
                ctx.caller.uid
            );
            told::removed(store, ctx, before, &by)?;
        }
        if was {
            record::note(
                store,
                ctx.now,
                Event::UserRemoved,
                Some(user),
                ctx.caller,
                None,
            )?;
        }
        Ok(was)
    });
    match removed {
        Ok(true) => AdminResponse::Done {
            message: format!("Removed the record of {user}."),
            user: None,
        },
        Ok(false) => not_found(user),
        Err(e) => store_failed(&e),
    }
}

/// `user show`: known when the user has a record, is locked out, was mailed codes that still
/// count against the caps (a user without a record gets codes through the `[directory]`
/// template, and an admin asked to reset one should see them), or has an account here.
pub fn show(ctx: &Ctx<'_>, user: &str) -> AdminResponse {
    // NSS and the LDAP sources may be slow: asked before the store lock, as a login asks them.
    let looked_up = LookedUp::now(&ctx.active.config, ctx.accounts, user);
    let ctx = &ctx.looking_up(&looked_up);
    let directory = ldap_address(ctx, user);
    let store = ctx.shared.store();
    let known = match store.user(user) {
        Ok(record) => record.is_some(),
        Err(e) => return store_failed(&e),
    };
    let locked = store.user_locked_until(user, ctx.now).ok().flatten();
    let mailed = store
        .sends_counted(user, ctx.now)
        .is_ok_and(|sent| sent.day > 0);
    // A directory that could not be asked may know the user: shown, with why there is no
    // address, rather than "not found".
    let in_directory = match &directory {
        Some(Ok(facts)) => facts.address.is_some(),
        Some(Err(_)) => true,
        None => false,
    };
    if !known && !in_directory && locked.is_none() && !mailed && ctx.accounts.uid_of(user).is_none()
    {
        return not_found(user);
    }
    match view_of(ctx, &store, user) {
        Ok(mut view) => {
            with_ldap_address(&mut view, directory);
            AdminResponse::User {
                user: Box::new(view),
            }
        }
        Err(e) => store_failed(&e),
    }
}

/// What the `[[directory.ldap]]` sources say of `user`'s address, in order; `None` when there
/// are none.
fn ldap_address(ctx: &Ctx<'_>, user: &str) -> Option<Result<UserFacts, DirectoryError>> {
    if ctx.active.ldap.is_empty() || view::check_user_name(user).is_err() {
        return None;
    }
    let sources: Vec<&dyn Directory> = ctx
        .active
        .ldap
        .iter()
        .map(|l| l as &dyn Directory)
        .collect();
    let wanted = Wanted {
        record: true,
        groups: true,
        attributes: true,
        phone: true,
    };
    Some(directory::look_up(&sources, user, wanted))
}

/// Puts the directory's address in `view` where a login would use it: after otpd's table,
/// before the template. A directory that cannot be asked leaves no address, as a login fails
/// closed then.
fn with_ldap_address(view: &mut UserView, directory: Option<Result<UserFacts, DirectoryError>>) {
    // What the directory returned besides the address, escaped: the server's text goes to a
    // terminal.
    if let Some(Ok(facts)) = &directory {
        let escape = |text: &String| common::text::escape_for_log(text);
        view.directory_groups = facts.groups.iter().map(escape).collect();
        view.directory_attributes = facts
            .attributes
            .iter()
            .map(|(name, values)| (escape(name), values.iter().map(escape).collect()))
            .collect();
    }
    // A number in otpd's table comes first, as in a login; one a directory gives, after.
    if let (None, Some(Ok(facts))) = (&view.phone, &directory) {
        if let (Some(phone), Some(source)) = (&facts.phone, &facts.phone_source) {
            view.phone = Some(phone.as_str().to_string());
            view.phone_source = Some(source.clone());
        }
    }
    if view.address_source == crate::directory::FROM_TABLE {
        return;
    }
    match directory {
        None => {}
        Some(Ok(facts)) => {
            if let (Some(address), Some(source)) = (facts.address, facts.address_source) {
                view.address = Some(address.as_str().to_string());
                view.address_source = match facts.last_known {
                    // The reason quotes the servers' own text: escaped before a terminal.
                    Some(why) => format!(
                        "{source} (last known answer: {})",
                        common::text::escape_for_log(&why)
                    ),
                    None => source,
                };
            }
        }
        Some(Err(e)) => {
            view.address = None;
            // The reason quotes the server's own text: escaped before it reaches a terminal.
            view.address_source = format!(
                "unavailable: {}",
                common::text::escape_for_log(&e.to_string())
            );
        }
    }
}

/// `user list`: every record, plus users locked out without one; one page of them, after
/// the name `after`.
pub fn list(
    ctx: &Ctx<'_>,
    enabled_only: bool,
    locked_only: bool,
    after: Option<&str>,
) -> AdminResponse {
    let read = {
        let store = ctx.shared.store();
        (store.list_users(), store.locked_users(ctx.now))
    };
    let (records, locked) = match read {
        (Ok(records), Ok(locked)) => (records, locked),
        (Err(e), _) | (_, Err(e)) => return store_failed(&e),
    };
    // The store is unlocked again: each view may ask NSS for the user's groups.
    let config = &ctx.active.config;
    let accounts = ctx.accounts;
    let lock_of = |name: &str| locked.iter().find(|(n, _)| n == name).map(|(_, t)| *t);
    let mut users: Vec<UserView> = records
        .iter()
        .map(|r| {
            view::user_view(
                config,
                accounts,
                &r.name,
                Some(r),
                lock_of(&r.name),
                Address::Full,
            )
        })
        .collect();
    for (name, until) in &locked {
        if !records.iter().any(|r| &r.name == name) {
            users.push(view::user_view(
                config,
                accounts,
                name,
                None,
                Some(*until),
                Address::Full,
            ));
        }
    }
    users.retain(|u| {
        (!enabled_only || u.enabled)
            && (!locked_only || u.locked_until.is_some())
            && after.is_none_or(|after| u.name.as_str() > after)
    });
    users.sort_by(|a, b| a.name.cmp(&b.name));
    let (users, more) = super::page(users);
    let more_after = if more {
        users.last().map(|u| u.name.clone())
    } else {
        None
    };
    AdminResponse::Users { users, more_after }
}

/// The admin's view of `user` now. Called with the store locked, so `ctx.accounts` must know
/// `user` already ([`Ctx::looking_up`]).
pub fn view_of(ctx: &Ctx<'_>, store: &dyn Store, user: &str) -> Result<UserView, StoreError> {
    let record = store.user(user)?;
    let locked = store.user_locked_until(user, ctx.now)?;
    let mut view = view::user_view(
        &ctx.active.config,
        ctx.accounts,
        user,
        record.as_ref(),
        locked,
        Address::Full,
    );
    view.recovery_codes_left = Some(store.recovery_codes_left(user)?);
    let sent = store.sends_counted(user, ctx.now)?;
    view.mailed = Some(MailedCounts {
        last_hour: sent.hour,
        last_day: sent.day,
    });
    Ok(view)
}

/// `user recovery-codes`: a new set for a user otpd has a record of or who has an account
/// here, replacing the old set. The codes are in the answer only; the store keeps MACs.
pub fn recovery_codes(ctx: &Ctx<'_>, user: &str) -> AdminResponse {
    if let Err(message) = view::check_user_name(user) {
        return refused(RefuseReason::Invalid, message);
    }
    let has_account = ctx.accounts.uid_of(user).is_some();
    let mut store = ctx.shared.store();
    let known = match store.user(user) {
        Ok(record) => record.is_some(),
        Err(e) => return store_failed(&e),
    };
    if !known && !has_account {
        return not_found(user);
    }
    let created = store::atomically(&mut store, |store| {
        let codes = store.new_recovery_codes(user, ctx.now, &mut crate::code::os_rng())?;
        let detail = format!("count={}", codes.len());
        let event = Event::RecoveryCodesCreated;
        record::note(store, ctx.now, event, Some(user), ctx.caller, Some(&detail))?;
        Ok(codes)
    });
    let codes = match created {
        Ok(codes) => codes,
        Err(e) => return store_failed(&e),
    };
    AdminResponse::RecoveryCodes {
        user: user.to_string(),
        codes,
    }
}

fn not_found(user: &str) -> AdminResponse {
    refused(
        RefuseReason::NotFound,
        format!(
            "otpd has no record of {user}; add one with `otpctl user add {user} --email ADDRESS`"
        ),
    )
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use common::wire_admin::AdminRequest;

    use super::*;
    use crate::clock::SystemClock;
    use crate::state::Shared;
    use crate::test_support::{caller, config};

    /// An otpd whose accounts are [`crate::test_support::FakeAccounts`]: alice and bob exist,
    /// carol does not.
    fn daemon() -> (tempfile::TempDir, Shared) {
        let dir = tempfile::tempdir().unwrap();
        let shared = crate::test_support::shared(dir.path(), config(""), Arc::new(SystemClock));
        (dir, shared)
    }

    fn add_as_root(shared: &Shared, user: &str, no_account: bool) -> AdminResponse {
        let ctx = Ctx::new(shared, caller(0));
        add(&ctx, user, "x@example.com", true, None, no_account)
    }

    /// NSS whose group lookup for `stuck` says it started, then does not return until the
    /// test lets it.
    #[derive(Debug)]
    struct StuckLookup {
        started: std::sync::Mutex<std::sync::mpsc::Sender<()>>,
        release: std::sync::Mutex<std::sync::mpsc::Receiver<()>>,
    }

    impl crate::accounts::Accounts for StuckLookup {
        fn user_name(&self, uid: u32) -> Option<String> {
            crate::test_support::FakeAccounts.user_name(uid)
        }
        fn uid_of(&self, name: &str) -> Option<u32> {
            crate::test_support::FakeAccounts.uid_of(name)
        }
        fn groups_of(&self, user: &str) -> Vec<String> {
            if user == "stuck" {
                let _ = self.started.lock().unwrap().send(());
                let _ = self.release.lock().unwrap().recv();
            }
            crate::test_support::FakeAccounts.groups_of(user)
        }
    }

    /// Issue #18: `user show` (like every admin view of a user) asked NSS for the user's groups
    /// with the store locked, so a slow directory stopped every login.
    #[test]
    fn an_admin_request_waiting_for_nss_does_not_hold_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(
            "[profiles.wheel]\nmode = \"off\"\n[[policies]]\nmatch_group = \"wheel\"\nprofile = \"wheel\"",
        );
        let (started, lookup_started) = std::sync::mpsc::channel();
        let (release, released) = std::sync::mpsc::channel();
        let accounts = StuckLookup {
            started: std::sync::Mutex::new(started),
            release: std::sync::Mutex::new(released),
        };
        let shared = Arc::new(crate::test_support::shared_with_accounts(
            dir.path(),
            config,
            Arc::new(SystemClock),
            Arc::new(accounts),
        ));
        let stuck = UserRecord {
            name: "stuck".into(),
            email: Some("stuck@example.com".into()),
            enabled: true,
            protocols: None,
            language: None,
            phone: None,
        };
        shared.store().upsert_user(&stuck).unwrap();
        let admin = {
            let shared = Arc::clone(&shared);
            std::thread::spawn(move || show(&Ctx::new(&shared, caller(0)), "stuck"))
        };
        lookup_started
            .recv_timeout(std::time::Duration::from_secs(10))
            .unwrap();
        let (done, store_used) = std::sync::mpsc::channel();
        let other = {
            let shared = Arc::clone(&shared);
            std::thread::spawn(move || {
                let live = shared.store().live_codes(0).unwrap();
                let _ = done.send(live);
            })
        };
        let in_time = store_used.recv_timeout(std::time::Duration::from_secs(2));
        release.send(()).unwrap();
        assert_eq!(
            in_time,
            Ok(0),
            "the store waited for the admin's NSS lookup"
        );
        other.join().unwrap();
        let answer = admin.join().unwrap();
        assert!(matches!(answer, AdminResponse::User { .. }), "{answer:?}");
    }

    /// Issue #18: a failed audit row was logged and swallowed, so the change was kept with no
    /// row saying who made it.
    #[test]
    fn a_change_whose_audit_row_cannot_be_written_is_not_stored() {
        let (dir, shared) = daemon();
        drop(shared);
        crate::test_support::refuse_audit_rows(dir.path());
        let shared = crate::test_support::shared(dir.path(), config(""), Arc::new(SystemClock));
        let answer = add_as_root(&shared, "alice", false);
        assert!(
            matches!(
                answer,
                AdminResponse::Refused {
                    reason: RefuseReason::Failed,
                    ..
                }
            ),
            "{answer:?}"
        );
        assert!(shared.store().user("alice").unwrap().is_none());
    }

    /// Regression: `otpctl user add carol` silently made a record for a name that is no
    /// account, so a typo left the real user without a code and nobody noticed.
    #[test]
    fn a_name_that_is_no_account_is_refused_and_nothing_is_stored() {
        let (_dir, shared) = daemon();
        let answer = add_as_root(&shared, "carol", false);
        let AdminResponse::Refused { reason, message } = answer else {
            panic!("carol was added: {answer:?}");
        };
        assert_eq!(reason, RefuseReason::NotFound);
        assert!(message.contains("not an account"), "{message}");
        assert!(message.contains("--no-account"), "{message}");
        assert!(shared.store().user("carol").unwrap().is_none());
    }

    #[test]
    fn no_account_adds_a_user_that_will_only_exist_later() {
        let (_dir, shared) = daemon();
        let answer = add_as_root(&shared, "carol", true);
        assert!(matches!(answer, AdminResponse::Done { .. }), "{answer:?}");
        assert!(shared.store().user("carol").unwrap().is_some());
    }

    #[test]
    fn an_account_is_added_without_being_told() {
        let (_dir, shared) = daemon();
        let answer = add_as_root(&shared, "alice", false);
        assert!(matches!(answer, AdminResponse::Done { .. }), "{answer:?}");
    }

    #[test]
    fn set_phone_stores_an_e164_number_and_refuses_anything_else() {
        let (_dir, shared) = daemon();
        let ctx = Ctx::new(&shared, caller(0));
        let answer = set_phone(&ctx, "alice", Some("+44 1234 567890"));
        assert!(
            matches!(
                answer,
                AdminResponse::Refused {
                    reason: RefuseReason::Invalid,
                    ..
                }
            ),
            "{answer:?}"
        );
        assert!(shared.store().user("alice").unwrap().is_none());
        let answer = set_phone(&ctx, "alice", Some("+441234567890"));
        assert!(matches!(answer, AdminResponse::Done { .. }), "{answer:?}");
        let stored = shared.store().user("alice").unwrap().unwrap();
        assert_eq!(stored.phone.as_deref(), Some("+441234567890"));
        let answer = set_phone(&ctx, "alice", None);
        assert!(matches!(answer, AdminResponse::Done { .. }), "{answer:?}");
        assert_eq!(shared.store().user("alice").unwrap().unwrap().phone, None);
    }

    /// An otpd from before `no_account` refuses unknown fields: a plain `user add` must not send
    /// the field, and a request without it means "must be an account".
    #[test]
    fn no_account_is_only_on_the_wire_when_set() {
        let plain = AdminRequest::UserAdd {
            user: "alice".into(),
            email: "a@example.com".into(),
            enabled: false,
            protocols: None,
            no_account: false,
        };
        let text = serde_json::to_string(&plain).unwrap();
        assert!(!text.contains("no_account"), "{text}");
        let back: AdminRequest = serde_json::from_str(&text).unwrap();
        assert!(matches!(
            back,
            AdminRequest::UserAdd {
                no_account: false,
                ..
            }
        ));
    }
}
