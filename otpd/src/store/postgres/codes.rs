//! Issuing, verifying and invalidating codes: the per-login rules, as on SQLite (see
//! `store::codes`), each decided under the user's advisory lock (and the host's, for answers).

use common::secret::SecretString;
use rand::{CryptoRng, RngCore};

use super::super::codes::{LiveCode, Recovery, host};
use super::super::{IssueOutcome, IssueRequest, Limits, NoticeTo, StoreError, VerifyOutcome};
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

/// See [`super::super::Store::issue`]. Callers hold the user's lock.
pub(super) async fn issue<R: CryptoRng + RngCore>(
    db: &Conn,
    key: &ServerKey,
    req: &IssueRequest<'_>,
    limits: &Limits,
    now: i64,
    rng: &mut R,
) -> Result<IssueOutcome, StoreError> {
    let rhost = host(req.rhost);
    if let Some(until) = lockouts::locked_until(db, req.user, rhost, now).await? {
        return Ok(IssueOutcome::LockedOut { until });
    }
    let reusable = latest_live(db, req.user, limits, now)
        .await?
        .filter(|live| {
            live.protocol == req.protocol
                && now < live.issued_at.saturating_add(limits.resend_cooldown_secs)
        });
    if let Some(live) = reusable {
        return Ok(IssueOutcome::Reused {
            challenge: live.challenge,
            issued_at: live.issued_at,
            expires_at: live.expires_at,
        });
    }
    if let Some(retry_after) = sends::blocked_until(db, req.user, limits, now).await? {
        return Ok(IssueOutcome::RateLimited { retry_after });
    }
    exec(
        db,
        "UPDATE codes SET state = 'superseded', closed_at = $2
         WHERE username = $1 AND state = 'live'",
        &[&req.user, &now],
    )
    .await?;

    let challenge = code::new_challenge_id(rng, code::millis_now());
    let secret = code::generate_code(rng, limits.code_length)?;
    let salt = code::new_salt(rng);
    let mac = code::code_mac(key, &salt, &challenge, secret.expose())?;
    let expires_at = now.saturating_add(limits.valid_secs);
    exec(
        db,
        "INSERT INTO codes (challenge, username, protocol, service, rhost, salt, mac,
                            issued_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        &[
            &challenge,
            &req.user,
            &req.protocol,
            &req.service,
            &rhost,
            &&salt[..],
            &&mac[..],
            &now,
            &expires_at,
        ],
    )
    .await?;
    sends::record(db, req.user, &challenge, now).await?;
    Ok(IssueOutcome::Issued {
        challenge,
        code: secret,
        expires_at,
    })
}

/// One login's facts for an answer: challenge, user, protocol, remote host.
pub(super) type Login<'a> = (&'a str, &'a str, &'a str, Option<&'a str>);

/// See [`super::super::Store::verify`] and [`super::super::Store::verify_answer`]: recovery
/// codes answer only when there is somewhere to `notice` the user of their use. Returns
/// whether a notice was queued too. Callers hold the user's lock, then the host's.
pub(super) async fn verify(
    db: &Conn,
    key: &ServerKey,
    login: Login<'_>,
    code: &SecretString,
    limits: &Limits,
    now: i64,
    notice: Option<&NoticeTo<'_>>,
) -> Result<(VerifyOutcome, bool), StoreError> {
    let (_, user, _, rhost) = login;
    let recovery = match notice {
        Some(_) => Recovery::Accepted,
        None => Recovery::Refused,
    };
    let outcome = verify_in(db, key, login, code, limits, now, recovery).await?;
    if let (VerifyOutcome::RecoveryUsed { left }, Some(to)) = (outcome, notice) {
        let queued = notices::queue_recovery_used_in(db, to, (user, rhost), left, now).await?;
        return Ok((outcome, queued));
    }
    Ok((outcome, false))
}

/// The rules of an answer, inside a transaction that holds the user's and host's locks: a
/// lockout answers first; anything but a success counts as a failure for the user and the
/// host; a success uses the code up and clears both counts.
pub(super) async fn verify_in(
    db: &Conn,
    key: &ServerKey,
    (challenge, user, protocol, rhost): Login<'_>,
    code: &SecretString,
    limits: &Limits,
    now: i64,
    recovery: Recovery,
) -> Result<VerifyOutcome, StoreError> {
    let rhost = host(rhost);
    if let Some(until) = lockouts::locked_until(db, user, rhost, now).await? {
        return Ok(VerifyOutcome::LockedOut { until });
    }
    let max_attempts = i64::from(limits.max_attempts);
    let outcome = match find(db, challenge).await? {
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
                close(db, challenge, "used", now).await?;
                lockouts::reset(db, user, rhost).await?;
                VerifyOutcome::Success
            } else if let Some(left) = recovered {
                close(db, challenge, "used", now).await?;
                lockouts::reset(db, user, rhost).await?;
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
        return Ok(outcome);
    }
    Ok(
        match lockouts::record_failure(db, user, rhost, limits, now).await? {
            Some(until) => VerifyOutcome::LockedOut { until },
            None => outcome,
        },
    )
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

/// The code row of `challenge`, locked until the transaction ends.
async fn find(db: &Conn, challenge: &str) -> Result<Option<CodeRow>, StoreError> {
    let row = maybe(
        db,
        "SELECT username, protocol, salt, mac, issued_at, expires_at, attempts,
                state = 'live', recovery_only
         FROM codes WHERE challenge = $1 FOR UPDATE",
        &[&challenge],
    )
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    Ok(Some(CodeRow {
        username: row.try_get(0)?,
        protocol: row.try_get(1)?,
        salt: row.try_get(2)?,
        mac: row.try_get(3)?,
        issued_at: row.try_get(4)?,
        expires_at: row.try_get(5)?,
        attempts: row.try_get(6)?,
        live: row.try_get(7)?,
        recovery_only: row.try_get(8)?,
    }))
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
