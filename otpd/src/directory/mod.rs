//! Where otpd learns about a user: the places an admin keeps users, behind one interface.
//!
//! The sources, in the order a login asks them: otpd's own user table ([`LocalTable`]:
//! enrolment, protocols, address, phone number; an admin's explicit choice), the
//! `[[directory.ldap]]` sources ([`LdapDirectory`]: address, phone number and groups), the `[directory] email_template`
//! ([`AddressTemplate`]: an address for users no source before it had one for) and NSS ([`Nss`]:
//! groups). Lookups block (NSS may ask sssd or LDAP), so a login resolves its facts
//! with [`within_deadline`]: on a blocking thread, before any store transaction, and for at most
//! [`DEADLINE`]. A slow source delays only the login that asked it. A login whose facts come
//! from otpd's table and the template alone (no LDAP source, no policy on groups) has nothing
//! slow to ask: it reads the table inside its own store transaction instead ([`TableIn`]).

use std::time::Duration;

use common::config::{Attributes, Config, EmailAddress, Language, PhoneNumber};
use common::text::escape_for_log;

use crate::accounts::Accounts;
use crate::off_thread::{self, Lost};
use crate::state::{Active, Shared};
use crate::store::{GrantRead, ReadAhead, Store, StoreError, UserAndGrant, UserRecord};

mod cache;
mod ldap;

pub use self::cache::{Cache, Entry};
pub use self::ldap::LdapDirectory;

/// [`UserFacts::address_source`] (and [`UserFacts::phone_source`]) for an address (a phone
/// number) from otpd's own table.
pub const FROM_TABLE: &str = "table";
/// [`UserFacts::address_source`] for an address from the `email_template`.
pub const FROM_TEMPLATE: &str = "template";

/// How long a login waits for its facts. Past it the login is "unavailable" (fail closed), and
/// the log says which user's lookup was slow.
pub const DEADLINE: Duration = Duration::from_secs(5);

/// What the directories know about a user.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserFacts {
    /// The user's row in otpd's own table, if it has one.
    pub record: Option<UserRecord>,
    /// Where the user's codes go, from the first source that has one.
    pub address: Option<EmailAddress>,
    /// Which source gave [`UserFacts::address`] ([`FROM_TABLE`], `ldap:NAME`,
    /// [`FROM_TEMPLATE`]), for the audit row of the code mailed there.
    pub address_source: Option<String>,
    /// The user's groups, when asked for (only policies that match groups need them).
    pub groups: Vec<String>,
    /// The directory attributes policies match (`match_attribute`), lower-case names, when
    /// asked for; the first source that has an attribute gives it.
    pub attributes: Attributes,
    /// Set when an LDAP source could not be asked and its last known answer, past its TTL,
    /// stands in: why, and how old. A profile decides whether that may serve
    /// (`directory_down`); by default the login is unavailable.
    pub last_known: Option<String>,
    /// The user's language from a directory (`language_attribute`), when it is one otpd has
    /// texts in; otpd's own table (`otpctl user set-language`) still comes first.
    pub language: Option<Language>,
    /// Where webhook channels send the user's codes, from the first source that has a valid
    /// one: otpd's table (`otpctl user set-phone`), then the LDAP sources (`phone_attribute`).
    pub phone: Option<PhoneNumber>,
    /// Which source gave [`UserFacts::phone`] ([`FROM_TABLE`] or `ldap:NAME`).
    pub phone_source: Option<String>,
    /// The user's break-glass grant row, read with the record from otpd's table
    /// ([`Store::user_and_grant`]), for the decision to judge without reading it again.
    pub grant: GrantRead,
}

/// Which facts a lookup needs: each costs a lookup, so a login asks only for what its
/// decision will read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Wanted {
    /// The user's row in otpd's table and their address.
    pub record: bool,
    /// The user's groups.
    pub groups: bool,
    /// The directory attributes that policies match.
    pub attributes: bool,
    /// The user's phone number from a directory (with `record`), when some webhook channel
    /// could use it: a user whose table row has no number costs an LDAP lookup then.
    pub phone: bool,
}

/// A directory could not answer; the login fails closed.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    /// otpd's own table could not be read.
    #[error("otpd's user table: {0}")]
    Table(#[from] StoreError),
    /// No server of an LDAP source answered usably, and the cache held nothing fresh.
    #[error("LDAP source {name}: {reason}")]
    Ldap {
        /// The source's name.
        name: String,
        /// What failed, server by server.
        reason: String,
    },
}

/// One source of facts about users. Lookups may block; they run off the runtime's thread.
pub trait Directory {
    /// Adds to `facts` what this source knows of `user` among `wanted`.
    fn look_up(
        &self,
        user: &str,
        wanted: Wanted,
        facts: &mut UserFacts,
    ) -> Result<(), DirectoryError>;
}

/// otpd's own user table (`otpctl user ...`), read in its own short store transaction.
#[derive(Debug, Clone, Copy)]
pub struct LocalTable<'a>(pub &'a Shared);

impl Directory for LocalTable<'_> {
    fn look_up(
        &self,
        user: &str,
        wanted: Wanted,
        facts: &mut UserFacts,
    ) -> Result<(), DirectoryError> {
        if wanted.record {
            add_from_table(self.0.store().user_and_grant(user)?, facts);
        }
        Ok(())
    }
}

/// otpd's own user table read in a store transaction the caller holds, which goes on to
/// `ahead` (see [`Store::user_and_grant_then`]): a login whose facts are all local reads them
/// in its own transaction, with the first read of the operation that follows.
#[derive(Debug, Clone, Copy)]
pub struct TableIn<'a> {
    /// The store, inside the login's transaction.
    pub store: &'a dyn Store,
    /// The operation the login goes on to, if it is known.
    pub ahead: Option<ReadAhead<'a>>,
}

impl Directory for TableIn<'_> {
    fn look_up(
        &self,
        user: &str,
        wanted: Wanted,
        facts: &mut UserFacts,
    ) -> Result<(), DirectoryError> {
        if wanted.record {
            let read = match &self.ahead {
                Some(ahead) => self.store.user_and_grant_then(user, ahead)?,
                None => self.store.user_and_grant(user)?,
            };
            add_from_table(read, facts);
        }
        Ok(())
    }
}

/// What otpd's table holds of a user, added to `facts`: the row and grant, and the address
/// and phone number when no source before it gave them.
fn add_from_table((record, grant): UserAndGrant, facts: &mut UserFacts) {
    facts.record = record;
    facts.grant = match grant {
        Ok(row) => GrantRead::Row(row),
        Err(e) => GrantRead::Failed(e.to_string()),
    };
    let record = facts.record.as_ref();
    let address = record.and_then(|r| EmailAddress::parse(r.email.as_deref()?).ok());
    // Checked when `otpctl user set-phone` stored it.
    let phone = record.and_then(|r| PhoneNumber::parse(r.phone.as_deref()?).ok());
    from_table_unless_known(&mut facts.address, &mut facts.address_source, address);
    from_table_unless_known(&mut facts.phone, &mut facts.phone_source, phone);
}

/// `found` in `slot`, with otpd's table as its source, when no source before gave one.
fn from_table_unless_known<T>(slot: &mut Option<T>, source: &mut Option<String>, found: Option<T>) {
    if slot.is_none() && found.is_some() {
        *slot = found;
        *source = Some(FROM_TABLE.into());
    }
}

/// The `[directory] email_template`: an address for every user name, for users no source
/// before it had one for.
#[derive(Debug, Clone, Copy)]
pub struct AddressTemplate<'a>(pub &'a Config);

impl Directory for AddressTemplate<'_> {
    fn look_up(
        &self,
        user: &str,
        wanted: Wanted,
        facts: &mut UserFacts,
    ) -> Result<(), DirectoryError> {
        if wanted.record && facts.address.is_none() {
            facts.address = self
                .0
                .directory
                .email_template
                .as_ref()
                .and_then(|t| t.address_for(user));
            if facts.address.is_some() {
                facts.address_source = Some(FROM_TEMPLATE.into());
            }
        }
        Ok(())
    }
}

/// The system's accounts (NSS: passwd, group, and whatever sssd serves through them).
#[derive(Debug, Clone, Copy)]
pub struct Nss<'a>(pub &'a dyn Accounts);

impl Directory for Nss<'_> {
    fn look_up(
        &self,
        user: &str,
        wanted: Wanted,
        facts: &mut UserFacts,
    ) -> Result<(), DirectoryError> {
        if wanted.groups {
            // Added to the groups a directory before it found, not in their place.
            for group in self.0.groups_of(user) {
                if !facts.groups.contains(&group) {
                    facts.groups.push(group);
                }
            }
        }
        Ok(())
    }
}

/// NSS with one user's groups looked up in advance, for work that then runs under the store
/// lock: asking it for that user's groups costs no lookup (anything else is asked of NSS).
#[derive(Debug)]
pub struct GroupsKnown<'a> {
    accounts: &'a dyn Accounts,
    user: String,
    groups: Vec<String>,
}

impl<'a> GroupsKnown<'a> {
    /// Looks `user`'s groups up now when `needed` (some policy matches groups), else knows
    /// them as none.
    pub fn look_up(accounts: &'a dyn Accounts, user: &str, needed: bool) -> GroupsKnown<'a> {
        let groups = if needed {
            accounts.groups_of(user)
        } else {
            Vec::new()
        };
        GroupsKnown {
            accounts,
            user: user.to_string(),
            groups,
        }
    }
}

impl Accounts for GroupsKnown<'_> {
    fn user_name(&self, uid: u32) -> Option<String> {
        self.accounts.user_name(uid)
    }
    fn uid_of(&self, name: &str) -> Option<u32> {
        self.accounts.uid_of(name)
    }
    fn groups_of(&self, user: &str) -> Vec<String> {
        if user == self.user {
            self.groups.clone()
        } else {
            self.accounts.groups_of(user)
        }
    }
}

/// The facts `sources` know of `user`, asked in order.
pub fn look_up(
    sources: &[&dyn Directory],
    user: &str,
    wanted: Wanted,
) -> Result<UserFacts, DirectoryError> {
    let mut facts = UserFacts::default();
    for source in sources {
        source.look_up(user, wanted, &mut facts)?;
    }
    Ok(facts)
}

/// What every source knows of `user` among `wanted`, asked in a login's order: otpd's table
/// (an admin's explicit choice), the LDAP sources of `active`, the template, then NSS. Every
/// path that needs a user's address goes through here, so none can mail the template's address
/// to a user the directory knows. Blocks: run it off the runtime's thread, before any lock.
pub fn look_up_all(
    shared: &Shared,
    active: &Active,
    user: &str,
    wanted: Wanted,
) -> Result<UserFacts, DirectoryError> {
    look_up_all_with(&LocalTable(shared), shared, active, user, wanted)
}

/// [`look_up_all`] with `table` for otpd's table ([`LocalTable`] or [`TableIn`]).
pub fn look_up_all_with(
    table: &dyn Directory,
    shared: &Shared,
    active: &Active,
    user: &str,
    wanted: Wanted,
) -> Result<UserFacts, DirectoryError> {
    let template = AddressTemplate(&active.config);
    let nss = Nss(shared.accounts.as_ref());
    let mut sources: Vec<&dyn Directory> = vec![table];
    sources.extend(active.ldap.iter().map(|l| l as &dyn Directory));
    sources.push(&template);
    sources.push(&nss);
    look_up(&sources, user, wanted)
}

/// Why facts were not resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unresolved {
    /// Past [`DEADLINE`].
    Late,
    /// The lookup panicked.
    Lost,
}

/// Directory lookups running at once, late ones included. A blocking lookup cannot be
/// cancelled, so a hung NSS (sssd or LDAP down) keeps each late lookup's thread until it
/// returns; without a bound, a local user asking in a loop would fill tokio's blocking pool with
/// them and every login's store work would wait behind them. Past the bound a lookup waits for
/// a free slot within its own deadline, and is late (the login unavailable) when none frees up.
pub const MAX_LOOKUPS: usize = 16;

/// The slots of [`MAX_LOOKUPS`], for the whole daemon.
static LOOKUPS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(MAX_LOOKUPS);

/// Runs the lookups of `work` on a blocking thread and waits at most `deadline` for them; the
/// runtime's thread serves other connections meanwhile. A late lookup is logged with `user`
/// and left to finish on its own (a blocking call cannot be cancelled): its answer is dropped.
/// At most [`MAX_LOOKUPS`] run at once.
pub async fn within_deadline<T, F>(deadline: Duration, user: &str, work: F) -> Result<T, Unresolved>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let resolved = within_deadline_of(&LOOKUPS, deadline, work).await;
    if matches!(resolved, Err(Unresolved::Late)) {
        tracing::error!(
            "looking up user={} took longer than {} s; the login is unavailable",
            escape_for_log(user),
            deadline.as_secs()
        );
    }
    resolved
}

/// [`within_deadline`] for a lookup that is no login's (a caller's standing, say), sharing
/// its slots: the caller logs what a late answer means for it.
pub async fn lookup_within<T, F>(deadline: Duration, work: F) -> Result<T, Unresolved>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    within_deadline_of(&LOOKUPS, deadline, work).await
}

/// [`lookup_within`] with the slots of `lookups`.
async fn within_deadline_of<T, F>(
    lookups: &'static tokio::sync::Semaphore,
    deadline: Duration,
    work: F,
) -> Result<T, Unresolved>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let lookup = async {
        let slot = lookups.acquire().await.map_err(|_| Lost)?;
        // The slot goes with the thread: a late lookup holds it until it really ends.
        off_thread::run(move || {
            let _slot = slot;
            work()
        })
        .await
    };
    match tokio::time::timeout(deadline, lookup).await {
        Ok(Ok(facts)) => Ok(facts),
        Ok(Err(Lost)) => Err(Unresolved::Lost),
        Err(_) => Err(Unresolved::Late),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::FakeAccounts;

    #[test]
    fn nss_answers_groups_only_when_they_are_wanted() {
        let nss = Nss(&FakeAccounts);
        let none = look_up(&[&nss], "alice", Wanted::default()).unwrap();
        assert!(none.groups.is_empty());
        let wanted = Wanted {
            groups: true,
            ..Wanted::default()
        };
        let some = look_up(&[&nss], "alice", wanted).unwrap();
        assert_eq!(some.groups, ["alice", "otpadmin"]);
    }

    #[test]
    fn the_template_gives_an_address_only_to_users_without_one() {
        let config =
            crate::test_support::config("[directory]\nemail_template = \"{user}@example.com\"");
        let wanted = Wanted {
            record: true,
            ..Wanted::default()
        };
        let template = AddressTemplate(&config);
        let from_template = look_up(&[&template], "alice", wanted).unwrap();
        assert_eq!(
            from_template.address.as_ref().map(EmailAddress::as_str),
            Some("alice@example.com")
        );
        let mut on_file = UserFacts {
            address: Some(EmailAddress::parse("a@corp.example").unwrap()),
            ..UserFacts::default()
        };
        template.look_up("alice", wanted, &mut on_file).unwrap();
        assert_eq!(
            on_file.address.as_ref().map(EmailAddress::as_str),
            Some("a@corp.example")
        );
    }

    #[test]
    fn known_groups_are_those_looked_up_before() {
        let known = GroupsKnown::look_up(&FakeAccounts, "bob", true);
        assert_eq!(known.groups_of("bob"), ["bob", "webdav"]);
        assert_eq!(known.groups_of("alice"), ["alice", "otpadmin"]);
        let unneeded = GroupsKnown::look_up(&FakeAccounts, "bob", false);
        assert!(unneeded.groups_of("bob").is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_lookup_past_the_deadline_is_unresolved_and_the_runtime_is_not_held() {
        let (release, held) = std::sync::mpsc::channel::<()>();
        let late = tokio::spawn(within_deadline(DEADLINE, "slow", move || {
            let _ = held.recv();
        }));
        tokio::task::yield_now().await;
        tokio::time::advance(DEADLINE + Duration::from_millis(1)).await;
        assert_eq!(late.await.unwrap(), Err(Unresolved::Late));
        release.send(()).unwrap();
    }

    /// Lookups that hang hold their slots; once all are taken, a further lookup is late at its
    /// deadline instead of starting another stuck thread, and other blocking work still runs.
    #[tokio::test(start_paused = true)]
    async fn hung_lookups_take_at_most_their_slots_of_the_blocking_pool() {
        static SLOTS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);
        let started = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (release, held) = std::sync::mpsc::channel::<()>();
        let held = std::sync::Arc::new(std::sync::Mutex::new(held));
        let mut hung = Vec::new();
        for _ in 0..3 {
            let (started, held) = (
                std::sync::Arc::clone(&started),
                std::sync::Arc::clone(&held),
            );
            hung.push(tokio::spawn(within_deadline_of(
                &SLOTS,
                DEADLINE,
                move || {
                    started.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let _ = held.lock().unwrap().recv();
                },
            )));
        }
        // The two with a slot are on their threads before the clock moves.
        while started.load(std::sync::atomic::Ordering::SeqCst) < 2 {
            tokio::task::yield_now().await;
            std::thread::sleep(Duration::from_millis(1));
        }
        tokio::time::advance(DEADLINE + Duration::from_millis(1)).await;
        let mut answers = Vec::new();
        for lookup in hung {
            answers.push(lookup.await.unwrap());
        }
        let other_work = off_thread::run(|| 7).await;
        let threads_started = started.load(std::sync::atomic::Ordering::SeqCst);
        // Let the hung threads end before any assertion, so a failure cannot hang the test.
        for _ in 0..2 {
            release.send(()).unwrap();
        }
        assert_eq!(answers, vec![Err(Unresolved::Late); 3]);
        assert_eq!(threads_started, 2, "the third lookup never got a thread");
        assert_eq!(other_work, Ok(7), "other blocking work still runs");
    }
}
