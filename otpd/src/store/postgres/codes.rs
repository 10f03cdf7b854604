//! Issuing, verifying and invalidating codes: the per-login rules, as on SQLite (see
//! `store::codes`), each decided under the user's advisory lock (and the host's, for answers).

use std::sync::LazyLock;

use common::secret::SecretString;
use rand::{CryptoRng, RngCore};

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
/// in force, the user's newest answerable code, and the sends in the hour and the day.
const ISSUE_FACTS: &str = "
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

/// See [`super::super::Store::issue`]. Callers hold the user's lock. The rules are SQLite's,
/// in three round trips with the `BEGIN` and the `COMMIT` (more when a cap is reached): the
/// writes of a new code are left for [`Later`], to go out with the `COMMIT`.
pub(super) async fn issue<R: CryptoRng + RngCore>(
    db: &Conn,
    key: &ServerKey,
    req: &IssueRequest<'_>,
    limits: &Limits,
    now: i64,
    rng: &mut R,
) -> Result<(IssueOutcome, Later), StoreError> {
    let decided = |outcome| Ok((outcome, Later::default()));
    let rhost = host(req.rhost);
    let facts = one(
        db,
        ISSUE_FACTS,
        &[
            &req.user,
            &lockouts::host_key(rhost),
            &now,
            &i64::from(limits.max_attempts),
            &now.saturating_sub(HOUR),
            &now.saturating_sub(DAY),
        ],
    )
    .await?;
    if let Some(until) = facts.try_get::<_, Option<i64>>(0)? {
        return decided(IssueOutcome::LockedOut { until });
    }
    let live = match facts.try_get::<_, Option<String>>(1)? {
        Some(challenge) => Some(LiveCode {
            challenge,
            protocol: facts.try_get(2)?,
            issued_at: facts.try_get(3)?,
            expires_at: facts.try_get(4)?,
        }),
        None => None,
    };
    let reusable = live.filter(|live| {
        live.protocol == req.protocol
            && now < live.issued_at.saturating_add(limits.resend_cooldown_secs)
    });
    if let Some(live) = reusable {
        return decided(IssueOutcome::Reused {
            challenge: live.challenge,
            issued_at: live.issued_at,
            expires_at: live.expires_at,
        });
    }
    let sent = SendCounts {
        hour: count(facts.try_get(5)?),
        day: count(facts.try_get(6)?),
    };
    if let Some(retry_after) = sends::blocked_until(db, req.user, sent, limits, now).await? {
        return decided(IssueOutcome::RateLimited { retry_after });
    }

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
            Box::new(rhost.map(str::to_string)),
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
    (challenge, user, protocol, rhost): Login<'_>,
    code: &SecretString,
    limits: &Limits,
    now: i64,
    recovery: Recovery,
) -> Result<(Answered, Later), StoreError> {
    let rhost = host(rhost);
    let mut later = Later::default();
    let Found {
        locked_until,
        code: found,
        seen,
    } = find(db, challenge, user, rhost, now).await?;
    let answered = |outcome, later| Ok((Answered { outcome, seen }, later));
    if let Some(until) = locked_until {
        return answered(VerifyOutcome::LockedOut { until }, later);
    }
    let max_attempts = i64::from(limits.max_attempts);
    let outcome = match found {
        None => VerifyOutcome::Dead,
        Some(row)
            if !row.live
                || !(row.issued_at..row.expires_at).contains(&now)
                || row.attempts >= max_attempts =>
        {
            if row.live {
                close(db, challenge, "dead", now).await?;
            }
            VerifyOutcome::Dead
        }
        Some(row) => {
            let bound = row.username == user && row.protocol == protocol;
            let right = bound
                && !row.recovery_only
                && code::mac_matches(key, &row.salt, challenge, code, &row.mac)?;
            let recovered = if bound && !right && recovery == Recovery::Accepted {
                recovery::consume(db, key, user, code, now).await?
            } else {
                None
            };
            if right {
                use_up(&mut later, challenge, user, rhost, now);
                VerifyOutcome::Success
            } else if let Some(left) = recovered {
                use_up(&mut later, challenge, user, rhost, now);
                VerifyOutcome::RecoveryUsed { left }
            } else {
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
        }
    };
    if matches!(
        outcome,
        VerifyOutcome::Success | VerifyOutcome::RecoveryUsed { .. }
    ) {
        return answered(outcome, later);
    }
    let outcome = match lockouts::record_failure(db, user, rhost, limits, now).await? {
        Some(until) => VerifyOutcome::LockedOut { until },
        None => outcome,
    };
    answered(outcome, later)
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
/// (columns 10 and 11).
static FIND: LazyLock<String> = LazyLock::new(|| {
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
struct Found {
    /// The later lock in force of the user and the host.
    locked_until: Option<i64>,
    /// The code row of `challenge`, if there is one.
    code: Option<CodeRow>,
    /// The user's addresses as they were, when the answer came from a remote host.
    seen: Option<SeenBefore>,
}

/// The later lock in force of the user and the host, the code row of `challenge` (locked
/// until the transaction ends) and, with a remote host, what `seen_rhosts` holds of the user
/// and it, in one statement.
async fn find(
    db: &Conn,
    challenge: &str,
    user: &str,
    rhost: Option<&str>,
    now: i64,
) -> Result<Found, StoreError> {
    let row = one(
        db,
        &FIND,
        &[&challenge, &user, &lockouts::host_key(rhost), &now, &rhost],
    )
    .await?;
    let seen = match rhost {
        Some(rhost) => Some(SeenBefore::of_row(&row, 10, user, rhost)?),
        None => None,
    };
    let locked_until: Option<i64> = row.try_get(0)?;
    let Some(username) = row.try_get::<_, Option<String>>(1)? else {
        return Ok(Found {
            locked_until,
            code: None,
            seen,
        });
    };
    let code = CodeRow {
        username,
        protocol: row.try_get(2)?,
        salt: row.try_get(3)?,
        mac: row.try_get(4)?,
        issued_at: row.try_get(5)?,
        expires_at: row.try_get(6)?,
        attempts: row.try_get(7)?,
        live: row.try_get(8)?,
        recovery_only: row.try_get(9)?,
    };
    Ok(Found {
        locked_until,
        code: Some(code),
        seen,
    })
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
