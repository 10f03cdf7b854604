//! Issuing, verifying and invalidating codes: the per-login rules, as on SQLite (see
//! `store::codes`), each decided under the user's advisory lock (and the host's, for answers).

use std::sync::LazyLock;

use common::secret::SecretString;
use rand::{CryptoRng, RngCore};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::super::codes::{LiveCode, Recovery, host};
use super::super::sends::{DAY, HOUR};
use super::super::{
    IssueOutcome, IssueRequest, Limits, NoticeTo, SendCounts, StoreError, VerifyOutcome,
};
use super::later::Later;
use super::seen::{self, SeenBefore};
use super::sql::{count, exec, maybe, one};
use super::unit::Conn;
use super::{lockouts, notices, recovery, sends};
use crate::code;
use crate::server_key::ServerKey;

/// The columns of a code row that verification needs.
struct CodeRow {
    username: String,
    protocol: String,
    salt: Vec<u8>,
    mac: Vec<u8>,
    issued_at: i64,
    expires_at: i64,
    attempts: i64,
    live: bool,
    recovery_only: bool,
}

/// What an issue decides on, read in one statement: the later lock of the user and the host
/// in force, the user's newest answerable code, and the sends in the hour and the day. The
/// user is `$1`; the parameters are [`IssueKey::params`].
pub(super) const ISSUE_FACTS: &str = "
SELECT (SELECT max(locked_until) FROM lockouts
        WHERE locked_until > $3
          AND ((kind = 'user' AND subject = $1) OR (kind = 'host' AND subject = $2))),
       live.challenge, live.protocol, live.issued_at, live.expires_at,
       (SELECT count(*) FROM sends WHERE username = $1 AND sent_at > $5),
       (SELECT count(*) FROM sends WHERE username = $1 AND sent_at > $6)
FROM (SELECT) AS one
LEFT JOIN LATERAL (
    SELECT challenge, protocol, issued_at, expires_at FROM codes
    WHERE username = $1 AND state = 'live' AND issued_at <= $3 AND expires_at > $3
      AND attempts < $4 AND NOT recovery_only
    ORDER BY issued_at DESC, id DESC LIMIT 1
) AS live ON true";

/// What an issue writes, in one statement: the user's live codes superseded, the new code,
/// and its send. (The sub-statements share one snapshot, so the update does not see the new
/// code.)
const ISSUE_WRITES: &str = "
WITH superseded AS (
    UPDATE codes SET state = 'superseded', closed_at = $8
    WHERE username = $2 AND state = 'live'
), issued AS (
    INSERT INTO codes (challenge, username, protocol, service, rhost, salt, mac,
                       issued_at, expires_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
)
INSERT INTO sends (username, sent_at, challenge) VALUES ($2, $8, $1)";

/// The parameters of [`ISSUE_FACTS`] for one issue: a row read ahead for an issue
/// (`ahead`) serves it only when they are the same.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct IssueKey {
    user: String,
    host: Option<String>,
    now: i64,
    max_attempts: i64,
    hour_ago: i64,
    day_ago: i64,
}

impl IssueKey {
    /// The key of an issue for `user` from `rhost` at `now`, under limits whose
    /// `max_attempts` is `max_attempts`.
    pub(super) fn new(user: &str, rhost: Option<&str>, now: i64, max_attempts: u32) -> IssueKey {
        IssueKey {
            user: user.to_string(),
            host: lockouts::host_key(host(rhost)),
            now,
            max_attempts: i64::from(max_attempts),
            hour_ago: now.saturating_sub(HOUR),
            day_ago: now.saturating_sub(DAY),
        }
    }

    /// [`ISSUE_FACTS`]' parameters, in order.
    pub(super) fn params(&self) -> [&(dyn ToSql + Sync); 6] {
        [
            &self.user,
            &self.host,
            &self.now,
            &self.max_attempts,
            &self.hour_ago,
            &self.day_ago,
        ]
    }

    fn of(req: &IssueRequest<'_>, limits: &Limits, now: i64) -> IssueKey {
        IssueKey::new(req.user, req.rhost, now, limits.max_attempts)
    }
}

/// What an issue decides on ([`ISSUE_FACTS`]' row).
pub(super) struct IssueFacts {
    locked_until: Option<i64>,
    live: Option<LiveCode>,
    sent: SendCounts,
}

impl IssueFacts {
    /// Reads them, in one statement.
    async fn read(db: &Conn, key: &IssueKey) -> Result<IssueFacts, StoreError> {
        IssueFacts::of_row(&one(db, ISSUE_FACTS, &key.params()).await?, 0)
    }

    /// Read from `row`, whose columns from `first` on are [`ISSUE_FACTS`]'.
    pub(super) fn of_row(row: &Row, first: usize) -> Result<IssueFacts, StoreError> {
        let live = match row.try_get::<_, Option<String>>(first + 1)? {
            Some(challenge) => Some(LiveCode {
                challenge,
                protocol: row.try_get(first + 2)?,
                issued_at: row.try_get(first + 3)?,
                expires_at: row.try_get(first + 4)?,
            }),
            None => None,
        };
        Ok(IssueFacts {
            locked_until: row.try_get(first)?,
            live,
            sent: SendCounts {
                hour: count(row.try_get(first + 5)?),
                day: count(row.try_get(first + 6)?),
            },
        })
    }

    /// What they decide of `req`: a lockout, the live code again, or a new code, unless a cap
    /// of sends is reached, which needs the sends themselves to say until when.
    fn decide(self, req: &IssueRequest<'_>, limits: &Limits, now: i64) -> IssueStep {
        if let Some(until) = self.locked_until {
            return IssueStep::Decided(IssueOutcome::LockedOut { until });
        }
        let reusable = self.live.filter(|live| {
            live.protocol == req.protocol
                && now < live.issued_at.saturating_add(limits.resend_cooldown_secs)
        });
        if let Some(live) = reusable {
            return IssueStep::Decided(IssueOutcome::Reused {
                challenge: live.challenge,
                issued_at: live.issued_at,
                expires_at: live.expires_at,
            });
        }
        if sends::under_caps(self.sent, limits) {
            IssueStep::New
        } else {
            IssueStep::AtACap(self.sent)
        }
    }
}

/// What an issue's facts decide.
enum IssueStep {
    /// Its outcome, with nothing to write.
    Decided(IssueOutcome),
    /// A new code.
    New,
    /// A cap of sends is reached: until when needs the sends rows ([`sends::blocked_until`]).
    AtACap(SendCounts),
}

/// An issue's outcome with its writes left for [`Later`].
type Issued = Result<(IssueOutcome, Later), StoreError>;

impl IssueStep {
    /// The outcome, when it needs nothing more from the server; the sends counted at a cap.
    fn settled<R: CryptoRng + RngCore>(
        self,
        key: &ServerKey,
        req: &IssueRequest<'_>,
        limits: &Limits,
        (now, rng): (i64, &mut R),
    ) -> Result<Issued, SendCounts> {
        match self {
            IssueStep::Decided(outcome) => Ok(Ok((outcome, Later::default()))),
            IssueStep::New => Ok(new_code(key, req, limits, now, rng)),
            IssueStep::AtACap(sent) => Err(sent),
        }
    }
}

/// See [`super::super::Store::issue`]. Callers hold the user's lock. The rules are SQLite's,
/// in three round trips with the `BEGIN` and the `COMMIT` (two in a unit, whose `BEGIN` goes
/// with the first statement; one when the facts were read ahead, see `ahead`; more when a cap
/// is reached): the writes of a new code are left for [`Later`], to go out with the `COMMIT`.
pub(super) async fn issue<R: CryptoRng + RngCore>(
    db: &Conn,
    key: &ServerKey,
    req: &IssueRequest<'_>,
    limits: &Limits,
    now: i64,
    rng: &mut R,
) -> Issued {
    let facts = IssueFacts::read(db, &IssueKey::of(req, limits, now)).await?;
    let sent = match facts
        .decide(req, limits, now)
        .settled(key, req, limits, (now, rng))
    {
        Ok(issued) => return issued,
        Err(sent) => sent,
    };
    match sends::blocked_until(db, req.user, sent, limits, now).await? {
        Some(retry_after) => Ok((IssueOutcome::RateLimited { retry_after }, Later::default())),
        None => new_code(key, req, limits, now, rng),
    }
}

/// [`issue`] from `facts` read ahead for `ahead_key`, with no statement: `None` when they were
/// read for another issue, or a cap is reached (the server is asked then, as ever).
pub(super) fn issue_from<R: CryptoRng + RngCore>(
    (ahead_key, facts): (&IssueKey, IssueFacts),
    key: &ServerKey,
    req: &IssueRequest<'_>,
    limits: &Limits,
    now: i64,
    rng: &mut R,
) -> Option<Issued> {
    if *ahead_key != IssueKey::of(req, limits, now) {
        return None;
    }
    let step = facts.decide(req, limits, now);
    step.settled(key, req, limits, (now, rng)).ok()
}

/// A new code for `req`: its writes (the user's live codes superseded, the code, its send)
/// left for [`Later`].
fn new_code<R: CryptoRng + RngCore>(
    key: &ServerKey,
    req: &IssueRequest<'_>,
    limits: &Limits,
    now: i64,
    rng: &mut R,
) -> Issued {
    let challenge = code::new_challenge_id(rng, code::millis_now());
    let secret = code::generate_code(rng, limits.code_length)?;
    let salt = code::new_salt(rng);
    let mac = code::code_mac(key, &salt, &challenge, secret.expose())?;
    let expires_at = now.saturating_add(limits.valid_secs);
    let mut later = Later::default();
    later.push(
        ISSUE_WRITES,
        vec![
            Box::new(challenge.clone()),
            Box::new(req.user.to_string()),
            Box::new(req.protocol.to_string()),
            Box::new(req.service.to_string()),
            Box::new(host(req.rhost).map(str::to_string)),
            Box::new(salt.to_vec()),
            Box::new(mac.to_vec()),
            Box::new(now),
            Box::new(expires_at),
        ],
    );
    let issued = IssueOutcome::Issued {
        challenge,
        code: secret,
        expires_at,
    };
    Ok((issued, later))
}

/// One login's facts for an answer: challenge, user, protocol, remote host.
pub(super) type Login<'a> = (&'a str, &'a str, &'a str, Option<&'a str>);

/// See [`super::super::Store::verify`] and [`super::super::Store::verify_answer`]: recovery
/// codes answer only when there is somewhere to `notice` the user of their use. Returns
/// whether a notice was queued too, and the code's use left for [`Later`]. Callers hold the
/// user's lock, then the host's.
pub(super) async fn verify(
    db: &Conn,
    key: &ServerKey,
    login: Login<'_>,
    code: &SecretString,
    limits: &Limits,
    now: i64,
    notice: Option<&NoticeTo<'_>>,
) -> Result<((Answered, bool), Later), StoreError> {
    let (_, user, _, rhost) = login;
    let recovery = match notice {
        Some(_) => Recovery::Accepted,
        None => Recovery::Refused,
    };
    let (answered, later) = verify_in(db, key, login, code, limits, now, recovery).await?;
    if let (VerifyOutcome::RecoveryUsed { left }, Some(to)) = (answered.outcome, notice) {
        let queued = notices::queue_recovery_used_in(db, to, (user, rhost), left, now).await?;
        return Ok(((answered, queued), later));
    }
    Ok(((answered, false), later))
}

/// An answer's outcome, and what its statement read of the user's addresses when it came from
/// a remote host: the noting that follows a success in the same transaction is decided from
/// it (see `seen`).
pub(super) struct Answered {
    pub(super) outcome: VerifyOutcome,
    pub(super) seen: Option<SeenBefore>,
}

/// The rules of an answer, inside a transaction that holds the user's and host's locks: a
/// lockout answers first; anything but a success counts as a failure for the user and the
/// host; a success uses the code up and clears both counts (a write left for [`Later`]: the
/// outcome is decided by then).
pub(super) async fn verify_in(
    db: &Conn,
    key: &ServerKey,
    login: Login<'_>,
    code: &SecretString,
    limits: &Limits,
    now: i64,
    recovery: Recovery,
) -> Result<(Answered, Later), StoreError> {
    let (challenge, user, _, rhost) = login;
    let found = find(db, &FindKey::new(challenge, user, rhost, now)).await?;
    let answer = Answer {
        login,
        code,
        limits,
        now,
    };
    if let Some(outcome) = answer.settled_by(key, &found)? {
        return Ok(outcome.with(found.seen));
    }
    let unsettled = answer.unsettled(db, key, found.code, recovery).await?;
    Ok(unsettled.with(found.seen))
}

/// [`verify_in`] from the code row `found` read ahead for `ahead_key`, with no statement:
/// `None` when it was read for another answer, or the answer is not a lockout or a right code
/// (a failure is counted by statements; the server is asked then, as ever).
pub(super) fn verify_from(
    (ahead_key, found): (&FindKey, Found),
    key: &ServerKey,
    login: Login<'_>,
    code: &SecretString,
    limits: &Limits,
    now: i64,
) -> Option<Result<(Answered, Later), StoreError>> {
    let (challenge, user, _, rhost) = login;
    if *ahead_key != FindKey::new(challenge, user, rhost, now) {
        return None;
    }
    let answer = Answer {
        login,
        code,
        limits,
        now,
    };
    match answer.settled_by(key, &found) {
        Ok(Some(outcome)) => Some(Ok(outcome.with(found.seen))),
        Ok(None) => None,
        Err(failed) => Some(Err(failed)),
    }
}

/// An answer being checked.
struct Answer<'a> {
    login: Login<'a>,
    code: &'a SecretString,
    limits: &'a Limits,
    now: i64,
}

/// What [`Answer::settled_by`] decides.
struct Settled(VerifyOutcome, Later);

impl Settled {
    fn with(self, seen: Option<SeenBefore>) -> (Answered, Later) {
        let Settled(outcome, later) = self;
        (Answered { outcome, seen }, later)
    }
}

impl Answer<'_> {
    /// The outcomes the read alone decides: a lockout, or a right code (its use left for
    /// [`Later`]). `None` for any other.
    fn settled_by(&self, key: &ServerKey, found: &Found) -> Result<Option<Settled>, StoreError> {
        let (challenge, user, protocol, rhost) = self.login;
        if let Some(until) = found.locked_until {
            return Ok(Some(Settled(
                VerifyOutcome::LockedOut { until },
                Later::default(),
            )));
        }
        let Some(row) = found.code.as_ref().filter(|row| self.answerable(row)) else {
            return Ok(None);
        };
        let right = row.username == user
            && row.protocol == protocol
            && !row.recovery_only
            && code::mac_matches(key, &row.salt, challenge, self.code, &row.mac)?;
        if !right {
            return Ok(None);
        }
        let mut later = Later::default();
        use_up(&mut later, challenge, user, host(rhost), self.now);
        Ok(Some(Settled(VerifyOutcome::Success, later)))
    }

    /// Whether `row` can still be answered.
    fn answerable(&self, row: &CodeRow) -> bool {
        row.live
            && (row.issued_at..row.expires_at).contains(&self.now)
            && row.attempts < i64::from(self.limits.max_attempts)
    }

    /// The outcome of an answer [`Answer::settled_by`] did not settle: a recovery code (its
    /// use left for [`Later`]), or a failure counted for the user and the host.
    async fn unsettled(
        &self,
        db: &Conn,
        key: &ServerKey,
        found: Option<CodeRow>,
        recovery: Recovery,
    ) -> Result<Settled, StoreError> {
        let (challenge, user, protocol, rhost) = self.login;
        let (limits, now) = (self.limits, self.now);
        let max_attempts = i64::from(limits.max_attempts);
        let outcome = match found {
            None => VerifyOutcome::Dead,
            Some(row) if !self.answerable(&row) => {
                if row.live {
                    close(db, challenge, "dead", now).await?;
                }
                VerifyOutcome::Dead
            }
            Some(row) => {
                // Not a right code: `settled_by` would have taken it.
                let bound = row.username == user && row.protocol == protocol;
                let recovered = if bound && recovery == Recovery::Accepted {
                    recovery::consume(db, key, user, self.code, now).await?
                } else {
                    None
                };
                if let Some(left) = recovered {
                    let mut later = Later::default();
                    use_up(&mut later, challenge, user, host(rhost), now);
                    return Ok(Settled(VerifyOutcome::RecoveryUsed { left }, later));
                }
                let attempts = row.attempts.saturating_add(1);
                exec(
                    db,
                    "UPDATE codes SET attempts = $2 WHERE challenge = $1",
                    &[&challenge, &attempts],
                )
                .await?;
                if attempts >= max_attempts {
                    close(db, challenge, "dead", now).await?;
                }
                VerifyOutcome::Wrong {
                    attempts_left: count(max_attempts.saturating_sub(attempts).max(0)),
                }
            }
        };
        let outcome = match lockouts::record_failure(db, user, host(rhost), limits, now).await? {
            Some(until) => VerifyOutcome::LockedOut { until },
            None => outcome,
        };
        Ok(Settled(outcome, Later::default()))
    }
}

/// See [`super::super::Store::invalidate`]. The update takes the code row's lock, so an answer
/// racing with it is decided wholly before or wholly after.
pub(super) async fn invalidate(db: &Conn, challenge: &str) -> Result<(), StoreError> {
    let killed = exec(
        db,
        "UPDATE codes SET state = 'dead', closed_at = coalesce(closed_at, issued_at)
         WHERE challenge = $1 AND state <> 'used'",
        &[&challenge],
    )
    .await?;
    if killed > 0 {
        sends::forget(db, challenge).await?;
    }
    Ok(())
}

/// See [`super::super::Store::live_codes`].
pub(super) async fn live_codes(db: &Conn, now: i64) -> Result<u64, StoreError> {
    let n: i64 = one(
        db,
        "SELECT count(*) FROM codes
         WHERE state = 'live' AND issued_at <= $1 AND expires_at > $1",
        &[&now],
    )
    .await?
    .try_get(0)?;
    Ok(count(n))
}

/// The user's newest code that can still be answered.
pub(super) async fn latest_live(
    db: &Conn,
    user: &str,
    limits: &Limits,
    now: i64,
) -> Result<Option<LiveCode>, StoreError> {
    let row = maybe(
        db,
        "SELECT challenge, protocol, issued_at, expires_at FROM codes
         WHERE username = $1 AND state = 'live' AND issued_at <= $2 AND expires_at > $2
           AND attempts < $3 AND NOT recovery_only
         ORDER BY issued_at DESC, id DESC LIMIT 1",
        &[&user, &now, &i64::from(limits.max_attempts)],
    )
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    Ok(Some(LiveCode {
        challenge: row.try_get(0)?,
        protocol: row.try_get(1)?,
        issued_at: row.try_get(2)?,
        expires_at: row.try_get(3)?,
    }))
}

/// [`find`]'s statement: with the columns of [`SeenBefore`] for the user and the remote host
/// (columns 10 and 11). The user is `$2`; the parameters are [`FindKey::params`].
pub(super) static FIND: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT lock.until, c.username, c.protocol, c.salt, c.mac, c.issued_at, c.expires_at,
                c.attempts, c.state = 'live', c.recovery_only, {}
         FROM (SELECT max(locked_until) AS until FROM lockouts
               WHERE locked_until > $4
                 AND ((kind = 'user' AND subject = $2) OR (kind = 'host' AND subject = $3)))
              AS lock
         LEFT JOIN LATERAL (SELECT * FROM codes WHERE challenge = $1 FOR UPDATE) AS c ON true",
        seen::columns("$2", "$5")
    )
});

/// What [`find`] reads.
pub(super) struct Found {
    /// The later lock in force of the user and the host.
    locked_until: Option<i64>,
    /// The code row of `challenge`, if there is one.
    code: Option<CodeRow>,
    /// The user's addresses as they were, when the answer came from a remote host.
    seen: Option<SeenBefore>,
}

/// The parameters of [`FIND`] for one answer: a row read ahead for an answer (`ahead`)
/// serves it only when they are the same.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct FindKey {
    challenge: String,
    user: String,
    host: Option<String>,
    now: i64,
    rhost: Option<String>,
}

impl FindKey {
    /// The key of an answer to `challenge` by `user` from `rhost` at `now`.
    pub(super) fn new(challenge: &str, user: &str, rhost: Option<&str>, now: i64) -> FindKey {
        let rhost = host(rhost);
        FindKey {
            challenge: challenge.to_string(),
            user: user.to_string(),
            host: lockouts::host_key(rhost),
            now,
            rhost: rhost.map(str::to_string),
        }
    }

    /// [`FIND`]'s parameters, in order.
    pub(super) fn params(&self) -> [&(dyn ToSql + Sync); 5] {
        [
            &self.challenge,
            &self.user,
            &self.host,
            &self.now,
            &self.rhost,
        ]
    }
}

/// The later lock in force of the user and the host, the code row of `challenge` (locked
/// until the transaction ends) and, with a remote host, what `seen_rhosts` holds of the user
/// and it, in one statement.
async fn find(db: &Conn, key: &FindKey) -> Result<Found, StoreError> {
    Found::of_row(&one(db, &FIND, &key.params()).await?, 0, key)
}

impl Found {
    /// Read from `row`, whose columns from `first` on are [`FIND`]'s for `key`.
    pub(super) fn of_row(row: &Row, first: usize, key: &FindKey) -> Result<Found, StoreError> {
        let seen = match &key.rhost {
            Some(rhost) => Some(SeenBefore::of_row(row, first + 10, &key.user, rhost)?),
            None => None,
        };
        let locked_until: Option<i64> = row.try_get(first)?;
        let Some(username) = row.try_get::<_, Option<String>>(first + 1)? else {
            return Ok(Found {
                locked_until,
                code: None,
                seen,
            });
        };
        let code = CodeRow {
            username,
            protocol: row.try_get(first + 2)?,
            salt: row.try_get(first + 3)?,
            mac: row.try_get(first + 4)?,
            issued_at: row.try_get(first + 5)?,
            expires_at: row.try_get(first + 6)?,
            attempts: row.try_get(first + 7)?,
            live: row.try_get(first + 8)?,
            recovery_only: row.try_get(first + 9)?,
        };
        Ok(Found {
            locked_until,
            code: Some(code),
            seen,
        })
    }
}

/// A right answer: the code is used, and the user's and the host's failures are cleared (in
/// one statement, left for `later`).
fn use_up(later: &mut Later, challenge: &str, user: &str, rhost: Option<&str>, now: i64) {
    later.push(
        "WITH used AS (
             UPDATE codes SET state = 'used', closed_at = $2
             WHERE challenge = $1 AND state = 'live'
         )
         DELETE FROM lockouts
         WHERE (kind = 'user' AND subject = $3) OR (kind = 'host' AND subject = $4)",
        vec![
            Box::new(challenge.to_string()),
            Box::new(now),
            Box::new(user.to_string()),
            Box::new(lockouts::host_key(rhost)),
        ],
    );
}

async fn close(db: &Conn, challenge: &str, state: &str, now: i64) -> Result<(), StoreError> {
    exec(
        db,
        "UPDATE codes SET state = $2, closed_at = $3 WHERE challenge = $1 AND state = 'live'",
        &[&challenge, &state, &now],
    )
    .await?;
    Ok(())
}
