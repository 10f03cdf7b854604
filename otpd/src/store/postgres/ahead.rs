//! Reading ahead: a login's facts read in the same statement as the first read of the
//! operation that follows them.
//!
//! A login on PostgreSQL pays for each round trip and each statement (bench/README.md). In
//! its transaction it reads its facts (the user's row and break-glass grant), decides over
//! them, then issues a code or checks an answer, whose first read ([`codes::ISSUE_FACTS`],
//! [`codes::FIND`]) needs nothing from the facts to be sent, only to be acted on. Told which
//! operation follows and with what ([`ReadAhead`]),
//! [`Store::user_and_grant_then`](super::super::Store) takes that operation's locks with the
//! `BEGIN` and reads the facts and the operation's first read in one statement (the facts by
//! left joins, the read joined in as a subquery), in one round trip, and the open unit keeps
//! the row ([`Ahead`], in `Held::ahead`). Without an operation told, the facts are still one
//! statement ([`PgStore::facts`]).
//!
//! The operation then uses the row instead of reading, when all of these hold, and otherwise
//! reads as ever (the row is dropped):
//! - it is the operation told, with the same parameters: the statement would be the same;
//! - nothing went to the server in between (every operation that does drops the row), and
//!   nothing was left for later but audit rows, which the row does not read;
//! - the unit holds the operation's locks and is not broken;
//! - the row decides the outcome alone: an issue under its caps of sends, an answer that is a
//!   lockout or a right code. A failure, counted by statements of its own, reads anew.
//!
//! The row is as true as one read by the operation itself: it was read after the same locks
//! (taken by a statement of their own before it, so its snapshot sees what the previous holder
//! committed), in the same transaction, with nothing of the unit's written in between; what
//! the locks do not cover (another host's lockout) could change between the two reads as it
//! can between the operation's read and its `COMMIT`. So a login makes two round trips and four
//! statements fewer: a round trip and two statements for the issue, the same for the answer.
//!
//! One difference from reading the facts apart: a grant row that cannot be decoded is still
//! the facts' inner `Err` (counted as no grant), but a statement the server fails now fails the
//! facts whole, and the login is unavailable (fail closed either way).

use std::sync::LazyLock;

use common::secret::SecretString;
use rand::CryptoRng;
use tokio_postgres::Row;

use super::super::{
    IssueOutcome, IssueRequest, Limits, ReadAhead, StoreError, UserAndGrant, VerifyOutcome,
};
use super::codes::{self, FindKey, Found, IssueFacts, IssueKey, Login};
use super::locks::{self, Lock};
use super::sql::one;
use super::unit::{Conn, Held};
use super::{PgStore, breakglass, users};

/// What the operation told of reads first, with its parameters.
enum Next {
    Issue(IssueKey),
    Answer(FindKey),
}

/// A row read ahead, kept in the open unit for the operation it was read for.
pub(super) enum Ahead {
    Issue(IssueKey, IssueFacts),
    Answer(FindKey, Found),
}

impl Next {
    /// The first read of the operation `ahead` tells of, for `user`, and the locks the
    /// operation takes (the user's; for an answer, then the host's).
    fn of(user: &str, ahead: &ReadAhead<'_>) -> (Next, Vec<Lock>) {
        match *ahead {
            ReadAhead::Issue {
                rhost,
                max_attempts,
                now,
            } => (
                Next::Issue(IssueKey::new(user, rhost, now, max_attempts)),
                vec![Lock::user(user)],
            ),
            ReadAhead::Answer {
                challenge,
                rhost,
                now,
            } => (
                Next::Answer(FindKey::new(challenge, user, rhost, now)),
                locks::user_and_host(user, rhost),
            ),
        }
    }

    /// The facts and the operation's first read, in one statement.
    async fn read_with_facts(self, db: &Conn) -> Result<(UserAndGrant, Ahead), StoreError> {
        let first = *FACT_COLUMNS;
        Ok(match self {
            Next::Issue(key) => {
                let row = one(db, &FACTS_THEN_ISSUE, &key.params()).await?;
                let facts = IssueFacts::of_row(&row, first)?;
                (facts_of(&row)?, Ahead::Issue(key, facts))
            }
            Next::Answer(key) => {
                let row = one(db, &FACTS_THEN_FIND, &key.params()).await?;
                let found = Found::of_row(&row, first, &key)?;
                (facts_of(&row)?, Ahead::Answer(key, found))
            }
        })
    }
}

/// The facts' statement: the user's row and grant, by left joins on the user's name, the
/// parameter `user`; then, when `then` is given, that statement's columns, the one row it
/// reads joined in as a subquery. One statement instead of two or three: each costs the server
/// a parse, a snapshot and a flush of its own.
fn facts_sql(user: &str, then: Option<&str>) -> String {
    let qualified = |alias: &str, columns: &str| {
        columns
            .split(", ")
            .map(|column| format!("{alias}.{column}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let (columns, join) = match then {
        Some(sql) => (", ahead.*", format!("\nCROSS JOIN ({sql}) AS ahead")),
        None => ("", String::new()),
    };
    format!(
        "SELECT {}, {}{columns}\nFROM (SELECT) AS one\n\
         LEFT JOIN users AS u ON u.name = {user}\n\
         LEFT JOIN breakglass AS b ON b.username = {user}{join}",
        qualified("u", users::COLUMNS),
        qualified("b", breakglass::COLUMNS),
    )
}

/// The facts alone; the user is `$1`.
static FACTS: LazyLock<String> = LazyLock::new(|| facts_sql("$1", None));
/// The facts and an issue's first read ([`codes::ISSUE_FACTS`], whose user is `$1`).
static FACTS_THEN_ISSUE: LazyLock<String> =
    LazyLock::new(|| facts_sql("$1", Some(codes::ISSUE_FACTS)));
/// The facts and an answer's first read ([`codes::FIND`], whose user is `$2`).
static FACTS_THEN_FIND: LazyLock<String> = LazyLock::new(|| facts_sql("$2", Some(&codes::FIND)));
/// How many columns the user's row takes, first in the facts.
static USER_COLUMNS: LazyLock<usize> = LazyLock::new(|| users::COLUMNS.split(", ").count());
/// How many columns the facts take, before those of the read after them.
static FACT_COLUMNS: LazyLock<usize> =
    LazyLock::new(|| *USER_COLUMNS + breakglass::COLUMNS.split(", ").count());

/// The facts in `row`'s first columns. A grant that cannot be read is the inner `Err`, which
/// the decision counts as no grant (see `Store::user_and_grant`).
fn facts_of(row: &Row) -> Result<UserAndGrant, StoreError> {
    let record = users::maybe_at(row, 0)?;
    let grant = breakglass::maybe_at(row, *USER_COLUMNS);
    Ok((record, grant))
}

impl PgStore {
    /// See [`Store::user_and_grant_then`](super::super::Store::user_and_grant_then). Outside a
    /// unit there is no transaction to keep a row in: the facts are read alone.
    pub(super) fn facts_then(
        &self,
        name: &str,
        ahead: &ReadAhead<'_>,
    ) -> Result<UserAndGrant, StoreError> {
        let Some(held) = &self.held else {
            return self.facts(name);
        };
        let (next, locks) = Next::of(name, ahead);
        // One statement, sent with the `BEGIN` (or the savepoint) and the locks.
        let (facts, read) =
            self.in_savepoint(held, &locks, async |db, _| next.read_with_facts(db).await)?;
        *held.ahead.borrow_mut() = Some(read);
        Ok(facts)
    }

    /// The user's row and grant, in one statement.
    pub(super) fn facts(&self, name: &str) -> Result<UserAndGrant, StoreError> {
        self.plain(async |db, _| facts_of(&one(db, &FACTS, &[&name]).await?))
    }

    /// The row read ahead, taken out of the open unit (it serves once), with the unit, when
    /// `pick` takes it and the unit holds `locks` and is not broken.
    fn take_ahead<T>(
        &self,
        locks: &[Lock],
        pick: impl FnOnce(Ahead) -> Option<T>,
    ) -> Option<(&Held, T)> {
        let held = self.held.as_ref()?;
        let ahead = held.ahead.take()?;
        if held.broken.get() || !held.holds(locks) {
            return None;
        }
        Some((held, pick(ahead)?))
    }

    /// [`Store::issue`](super::super::Store::issue) from the facts read ahead for it, with
    /// no round trip; `None` when there are none for it or they do not decide it.
    pub(super) fn issue_ahead(
        &self,
        req: &IssueRequest<'_>,
        limits: &Limits,
        now: i64,
        rng: &mut impl CryptoRng,
    ) -> Option<Result<IssueOutcome, StoreError>> {
        let (held, read) = self.take_ahead(&[Lock::user(req.user)], |ahead| match ahead {
            Ahead::Issue(key, facts) => Some((key, facts)),
            Ahead::Answer(..) => None,
        })?;
        let (key, facts) = read;
        Some(
            codes::issue_from((&key, facts), &self.key, req, limits, now, rng)?.map(
                |(outcome, later)| {
                    held.later.borrow_mut().append(later);
                    outcome
                },
            ),
        )
    }

    /// An answer checked against the code row read ahead for it, with no round trip; `None`
    /// when there is none for it or it does not decide the answer.
    pub(super) fn answer_ahead(
        &self,
        login: Login<'_>,
        code: &SecretString,
        limits: &Limits,
        now: i64,
    ) -> Option<Result<VerifyOutcome, StoreError>> {
        let (_, user, _, rhost) = login;
        let (held, read) =
            self.take_ahead(&locks::user_and_host(user, rhost), |ahead| match ahead {
                Ahead::Answer(key, found) => Some((key, found)),
                Ahead::Issue(..) => None,
            })?;
        let (key, found) = read;
        Some(
            codes::verify_from((&key, found), &self.key, login, code, limits, now)?.map(
                |(answered, later)| {
                    held.later.borrow_mut().append(later);
                    self.kept_seen(answered)
                },
            ),
        )
    }
}
