//! Reading ahead: a login's facts read in the same round trip as the first statement of the
//! operation that follows them.
//!
//! A login on PostgreSQL pays for each round trip (bench/README.md). In its transaction it
//! reads its facts (the user's row and break-glass grant), decides over them, then issues a
//! code or checks an answer, whose first statement ([`IssueFacts::read`], [`codes::find`])
//! needs nothing from the facts to be sent, only to be acted on. Told which operation follows
//! and with what ([`ReadAhead`]), [`Store::user_and_grant_then`](super::super::Store) sends
//! that operation's locks and first statement with the facts' reads, in one round trip, and
//! the open unit keeps the row ([`Ahead`], in `Held::ahead`).
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
//! The row is as true as one read by the operation itself: it was read after the same locks,
//! in the same transaction, with nothing of the unit's written in between; what the locks do
//! not cover (another host's lockout) could change between the two reads as it can between
//! the operation's read and its `COMMIT`. So a login makes two round trips fewer: one for the
//! issue, one for the answer.

use super::super::ReadAhead;
use super::super::{IssueOutcome, IssueRequest, Limits, StoreError, UserAndGrant, VerifyOutcome};
use super::codes::{self, FindKey, Found, IssueFacts, IssueKey, Login};
use super::locks::{self, Lock};
use super::unit::{Conn, Held};
use super::{PgStore, breakglass, users};
use common::secret::SecretString;
use rand::CryptoRng;

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
                Next::Answer(FindKey::new((challenge, user, "", rhost), now)),
                locks::user_and_host(user, rhost),
            ),
        }
    }

    async fn read(self, db: &Conn) -> Result<Ahead, StoreError> {
        Ok(match self {
            Next::Issue(key) => {
                let facts = IssueFacts::read(db, &key).await?;
                Ahead::Issue(key, facts)
            }
            Next::Answer(key) => {
                let found = codes::find(db, &key).await?;
                Ahead::Answer(key, found)
            }
        })
    }
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
        let (facts, read) = self.in_savepoint(held, &locks, async |db, _| {
            // All go out at the first poll, in order, after the locks: one round trip.
            let (user, grant, read) = tokio::join!(
                biased;
                users::user(db, name),
                breakglass::row(db, name),
                next.read(db)
            );
            Ok(((user?, grant), read?))
        })?;
        *held.ahead.borrow_mut() = Some(read);
        Ok(facts)
    }

    /// The user's row and grant, read together (one round trip).
    pub(super) fn facts(&self, name: &str) -> Result<UserAndGrant, StoreError> {
        self.plain(async |db, _| {
            let (user, grant) = tokio::join!(
                biased;
                users::user(db, name),
                breakglass::row(db, name)
            );
            Ok((user?, grant))
        })
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
        if held.broken.get() || !held.not_yet_held(locks).is_empty() {
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
