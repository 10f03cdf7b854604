//! A login's facts (who asked and whether it may act for the user, the user's row, address and
//! groups), resolved before any store transaction: on a blocking thread, within
//! [`directory::DEADLINE`], from the directories in their order. Facts that come from otpd's
//! own table alone are read in the login's transaction instead ([`decide_with_facts`]).

use std::sync::Arc;

use common::config::Language;
use common::text::escape_for_log;
use common::wire::{LoginContext, Response};

use super::asker::Asker;
use super::wording::{Phrase, internal_error, lost};
use crate::caller::{Caller, may_act_for};
use crate::directory::{self, DirectoryError, TableIn, Unresolved, UserFacts, Wanted};
use crate::off_thread::{self, Lost};
use crate::policy;
use crate::state::{Active, Shared};
use crate::store::{self, ReadAhead, Store, StoreError};
use common::config::{Attributes, Config};

/// What a login request is decided on.
#[derive(Debug, Clone)]
pub(super) struct Facts {
    /// Who asked.
    pub(super) asker: Asker,
    /// The login, with its origin as otpd believes it.
    pub(super) login: LoginContext,
    /// Whether the asker may act for the login's user.
    pub(super) may_act: bool,
    /// What the directories know of the user (only what the decision will read).
    pub(super) user: UserFacts,
}

/// Resolves a login's facts on a blocking thread within [`directory::DEADLINE`]: past it, or on
/// a directory error, the login is unavailable (fail closed).
pub(super) async fn resolve_facts(
    shared: &Arc<Shared>,
    active: &Arc<Active>,
    caller: Caller,
    login: LoginContext,
) -> Result<Facts, Response> {
    let user = login.user.clone();
    // No profile is chosen yet: its texts are in `[defaults]`' language.
    let language = active.config.defaults.language;
    let (shared, active) = (Arc::clone(shared), Arc::clone(active));
    let resolved = directory::within_deadline(directory::DEADLINE, &user, move || {
        look_up_facts(&shared, &active, caller, login)
    })
    .await;
    match resolved {
        Ok(Ok(facts)) => Ok(facts),
        Ok(Err(e)) => Err(unanswered(language, &e)),
        Err(Unresolved::Lost) => Err(lost(language)),
        Err(Unresolved::Late) => Err(Response::Unavailable {
            message: Phrase::LookupLate.in_language(language),
        }),
    }
}

/// The store operation a login goes on to after its decision, when it needs a code.
#[derive(Debug, Clone)]
pub(super) enum Next {
    /// A code issued (begin, resend).
    Issue,
    /// An answer to this challenge checked.
    Answer(String),
    /// Something else (a probe, a single-secret login).
    Other,
}

/// What [`decide_with_facts`] gives: the facts and what `decide` returned, or the store
/// error that took `decide`'s transaction back.
pub(super) type Decided<T> = Result<(Facts, T), StoreError>;

/// Resolves a login's facts, then runs `decide` over them on a blocking thread in one store
/// transaction, at one time `now`; returns both, or the response of facts that could not be
/// resolved.
///
/// When the facts need no lookup that can be slow ([`facts_are_local`]), they are read in
/// `decide`'s transaction, on the same blocking thread, and the store is told the operation
/// the login goes on to (`next`): on PostgreSQL its first read goes out with the facts', one
/// round trip fewer (see `Store::user_and_grant_then`); one handoff from the runtime instead
/// of two, which is most of what a login that needs no code costs. Otherwise they are
/// resolved first, on their own thread within [`directory::DEADLINE`] ([`resolve_facts`]),
/// and `decide` runs after.
pub(super) async fn decide_with_facts<T: Send + 'static>(
    shared: &Arc<Shared>,
    active: &Arc<Active>,
    caller: Caller,
    login: LoginContext,
    next: Next,
    decide: impl FnOnce(&mut dyn Store, &Facts, i64) -> Result<T, StoreError> + Send + 'static,
) -> Result<Decided<T>, Response> {
    let language = active.config.defaults.language;
    let (shared, active) = (Arc::clone(shared), Arc::clone(active));
    if !facts_are_local(caller, &active) {
        let facts = resolve_facts(&shared, &active, caller, login).await?;
        let decided = off_thread::run(move || {
            let now = shared.clock.now();
            let mut store = shared.store();
            store::atomically(&mut store, |store| decide(store, &facts, now)).map(|t| (facts, t))
        });
        return decided.await.map_err(|Lost| lost(language));
    }
    let done = off_thread::run(move || {
        let now = shared.clock.now();
        let mut store = shared.store();
        let decided = store::atomically(&mut store, |store| {
            let read = look_up_facts_in(&shared, &active, caller, login, (&*store, &next, now));
            let facts = match read {
                Ok(facts) => facts,
                Err(e) => return Ok(Err(e)),
            };
            let decided = decide(store, &facts, now)?;
            Ok(Ok((facts, decided)))
        });
        match decided {
            Ok(Ok(both)) => Ok(Ok(both)),
            Ok(Err(e)) => Err(e),
            Err(e) => Ok(Err(e)),
        }
    })
    .await;
    match done {
        Ok(Ok(decided)) => Ok(decided),
        Ok(Err(e)) => Err(unanswered(language, &e)),
        Err(Lost) => Err(lost(language)),
    }
}

/// The answer to a login whose directories failed: unavailable (fail closed), worded for the
/// user by what failed; the log says which source and why.
fn unanswered(language: Language, error: &DirectoryError) -> Response {
    match error {
        DirectoryError::Table(_) => internal_error(language, error),
        DirectoryError::Ldap { .. } => {
            tracing::error!(
                "{}; the login is unavailable",
                escape_for_log(&error.to_string())
            );
            Response::Unavailable {
                message: Phrase::LookupFailed.in_language(language),
            }
        }
    }
}

/// Whether a login's facts can come without any lookup that may be slow: root asked (root may
/// act for anyone and its report of the origin is believed, with no account lookup), no policy
/// matches groups and no LDAP source is configured, so only otpd's own table and the address
/// template are read.
fn facts_are_local(caller: Caller, active: &Active) -> bool {
    caller.uid == 0 && !active.config.policies_need_groups() && active.ldap.is_empty()
}

/// The lookups behind [`resolve_facts`]; they block.
pub(super) fn look_up_facts(
    shared: &Shared,
    active: &Active,
    caller: Caller,
    login: LoginContext,
) -> Result<Facts, DirectoryError> {
    let (asker, login, may_act, wanted) = standing(shared, active, caller, login);
    let user = directory::look_up_all(shared, active, &login.user, wanted)?;
    Ok(Facts {
        asker,
        login,
        may_act,
        user,
    })
}

/// [`look_up_facts`] for facts that are all local ([`facts_are_local`]), with otpd's table
/// read in `store`'s open transaction, which is told the operation `next` that follows at
/// `now`.
fn look_up_facts_in(
    shared: &Shared,
    active: &Active,
    caller: Caller,
    login: LoginContext,
    (store, next, now): (&dyn Store, &Next, i64),
) -> Result<Facts, DirectoryError> {
    let (asker, login, may_act, wanted) = standing(shared, active, caller, login);
    let user = {
        // A login that gets as far as the user's facts goes on to `next` when it needs a code.
        let ahead = match wanted.record {
            true => read_ahead(&active.config, asker, &login, next, now),
            false => None,
        };
        let table = TableIn { store, ahead };
        directory::look_up_all_with(&table, shared, active, &login.user, wanted)?
    };
    Ok(Facts {
        asker,
        login,
        may_act,
        user,
    })
}

/// Who asked, the login as otpd believes it, whether the asker may act for the user, and
/// which of the user's facts the decision will read.
fn standing(
    shared: &Shared,
    active: &Active,
    caller: Caller,
    login: LoginContext,
) -> (Asker, LoginContext, bool, Wanted) {
    let config = &active.config;
    let accounts = shared.accounts.as_ref();
    let (asker, login) = Asker::of(shared, active, caller, login);
    let may_act = may_act_for(
        caller,
        &login.user,
        &config.daemon.trusted_callers,
        accounts,
    );
    // Only a login the decision gets as far as the user for needs the user's facts.
    let protocol = policy::login_protocol(config, &login).ok().flatten();
    let reaches_user = may_act && policy::enabled_protocol(config, protocol).is_ok();
    let wanted = Wanted {
        record: reaches_user,
        groups: reaches_user && config.policies_need_groups(),
        attributes: reaches_user && config.policies_need_attributes(),
        phone: reaches_user && !config.webhooks.is_empty(),
    };
    (asker, login, may_act, wanted)
}

/// What the store is told of `next`, with the parameters the login's decision will call it
/// with. An issue's `max_attempts` is that of the profile the login gets when policies match
/// no groups or attributes, as with facts that are all local; should the decision choose
/// another, the store only finds its read unfit and reads again.
fn read_ahead<'a>(
    config: &Config,
    asker: Asker,
    login: &'a LoginContext,
    next: &'a Next,
    now: i64,
) -> Option<ReadAhead<'a>> {
    let rhost = asker.remote_host(login);
    match next {
        Next::Issue => {
            let protocol = policy::login_protocol(config, login).ok().flatten()?;
            let (_, settings) = policy::settings_for_account(
                config,
                &login.user,
                asker.remote_address(login),
                protocol,
                Vec::new,
                &Attributes::new(),
            );
            Some(ReadAhead::Issue {
                rhost,
                max_attempts: settings.max_attempts,
                now,
            })
        }
        Next::Answer(challenge) => Some(ReadAhead::Answer {
            challenge,
            rhost,
            now,
        }),
        Next::Other => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::Arc;

    use crate::clock::SystemClock;
    use crate::login::testing::{alice, begin_as_root};

    /// NSS whose group lookup for `stuck` does not return until the test lets it.
    #[derive(Debug)]
    struct StuckLookup(std::sync::Mutex<std::sync::mpsc::Receiver<()>>);

    impl crate::accounts::Accounts for StuckLookup {
        fn user_name(&self, uid: u32) -> Option<String> {
            crate::test_support::FakeAccounts.user_name(uid)
        }
        fn uid_of(&self, name: &str) -> Option<u32> {
            crate::test_support::FakeAccounts.uid_of(name)
        }
        fn groups_of(&self, user: &str) -> Vec<String> {
            if user == "stuck" {
                let _ = self.0.lock().unwrap().recv();
            }
            crate::test_support::FakeAccounts.groups_of(user)
        }
    }

    /// What a begin tells the store ahead of its issue is what the issue is then called with:
    /// the believed remote host and the max_attempts of the profile the decision chooses, also
    /// when a policy chooses another profile than the defaults.
    #[test]
    fn an_issue_told_ahead_has_the_parameters_the_issue_is_called_with() {
        let dir = tempfile::tempdir().unwrap();
        let config = crate::test_support::config(
            "[protocols]\nenabled = [\"ssh\"]\n[defaults]\nmode = \"required\"\n\
             [directory]\nemail_template = \"{user}@example.com\"\n\
             [profiles.mgmt]\nmode = \"required\"\nmax_attempts = 7\n\
             [[policies]]\nmatch_rhost = [\"10.0.0.0/8\"]\nprofile = \"mgmt\"",
        );
        let shared = crate::test_support::shared(dir.path(), config, Arc::new(SystemClock));
        let active = shared.active();
        let now = shared.clock.now();
        let mut told = Vec::new();
        for rhost in [Some("192.0.2.1"), Some("10.1.2.3"), None] {
            let login = LoginContext {
                rhost: rhost.map(str::to_string),
                ..alice()
            };
            let caller = crate::test_support::caller(0);
            let facts = look_up_facts(&shared, &active, caller, login).unwrap();
            let ahead = read_ahead(&active.config, facts.asker, &facts.login, &Next::Issue, now);
            let mut store = shared.store();
            let needed = super::super::needs_code::needs_code(&active, &mut store, &facts, now)
                .unwrap()
                .unwrap();
            let req = super::super::needs_code::code_request(&facts.login, &needed, facts.asker);
            let max_attempts = crate::rules::limits_of(&needed.settings).max_attempts;
            assert_eq!(
                ahead,
                Some(ReadAhead::Issue {
                    rhost: req.rhost,
                    max_attempts,
                    now
                })
            );
            told.push(max_attempts);
        }
        assert_eq!(told, [3, 7, 3], "both profiles were chosen");
    }

    /// Issue #18: a lookup that never answers must not keep the login waiting, nor let it in.
    #[tokio::test(start_paused = true)]
    async fn a_login_whose_directory_misses_the_deadline_is_unavailable() {
        let dir = tempfile::tempdir().unwrap();
        let config = crate::test_support::config(
            "[defaults]\nmode = \"required\"\n[directory]\nemail_template = \"{user}@example.com\"\n\
             [profiles.wheel]\nmode = \"off\"\n[[policies]]\nmatch_group = \"wheel\"\nprofile = \"wheel\"",
        );
        let (release, stuck) = std::sync::mpsc::channel();
        let shared = Arc::new(crate::test_support::shared_with_accounts(
            dir.path(),
            config,
            Arc::new(SystemClock),
            Arc::new(StuckLookup(std::sync::Mutex::new(stuck))),
        ));
        let login = LoginContext {
            user: "stuck".into(),
            ..alice()
        };
        let begun = tokio::spawn(async move { begin_as_root(&shared, login).await });
        tokio::task::yield_now().await;
        tokio::time::advance(crate::directory::DEADLINE + std::time::Duration::from_secs(1)).await;
        for _ in 0..100 {
            if begun.is_finished() {
                break;
            }
            tokio::task::yield_now().await;
        }
        let answered_in_time = begun.is_finished();
        release.send(()).unwrap();
        assert!(answered_in_time, "the login still waits for its lookup");
        let answer = begun.await.unwrap();
        assert!(
            matches!(&answer, Response::Unavailable { message } if message.contains("in time")),
            "{answer:?}"
        );
    }

    /// Issue #19: with the directory down the login fails closed; the template, asked after
    /// the LDAP sources, never gives an address for a user the directory should know.
    #[tokio::test]
    async fn a_login_whose_ldap_servers_are_all_down_is_unavailable_not_mailed_to_the_template() {
        let dir = tempfile::tempdir().unwrap();
        let config = crate::test_support::config(&format!(
            "[defaults]\nmode = \"required\"\n{}",
            crate::test_support::ldap_down_lines()
        ));
        let shared = Arc::new(crate::test_support::shared(
            dir.path(),
            config,
            Arc::new(SystemClock),
        ));
        let answer = begin_as_root(&shared, alice()).await;
        assert!(
            matches!(&answer, Response::Unavailable { message } if message.contains("could not look up your account")),
            "{answer:?}"
        );
    }
}
