//! Codes for single-secret protocols (FTP, HTTP Basic, WebDAV), as on SQLite (see
//! `store::single_secret`): the code appended to the password answers the user's live code for
//! the protocol, and a success leaves a reuse grant.

use common::secret::SecretString;
use rand::{CryptoRng, RngCore};

use super::super::codes::{Recovery, host};
use super::super::single_secret::grant_label;
use super::super::{IssueRequest, Limits, StoreError, VerifyOutcome};
use super::codes::{Answered, latest_live, verify_in};
use super::later::Later;
use super::lockouts;
use super::sql::{exec, maybe};
use super::unit::Conn;
use crate::code;
use crate::server_key::ServerKey;

/// See [`super::super::Store::expects_code`].
pub(super) async fn expects_code(
    db: &Conn,
    login: &IssueRequest<'_>,
    limits: &Limits,
    now: i64,
) -> Result<bool, StoreError> {
    let live = latest_live(db, login.user, limits, now)
        .await?
        .is_some_and(|live| live.protocol == login.protocol);
    Ok(live || grant(db, login, now).await?.is_some())
}

/// See [`super::super::Store::verify_appended`]. Callers hold the user's lock, then the
/// host's. A code's use is left for [`Later`], as in `codes::verify_in`.
pub(super) async fn verify_appended<R: CryptoRng + RngCore>(
    db: &Conn,
    key: &ServerKey,
    login: &IssueRequest<'_>,
    code: &SecretString,
    (limits, reuse_secs): (&Limits, i64),
    now: i64,
    rng: &mut R,
) -> Result<(Answered, Later), StoreError> {
    let rhost = host(login.rhost);
    let decided = |outcome| {
        Ok((
            Answered {
                outcome,
                seen: None,
            },
            Later::default(),
        ))
    };
    if let Some(until) = lockouts::locked_until(db, login.user, rhost, now).await? {
        return decided(VerifyOutcome::LockedOut { until });
    }
    if let Some((salt, mac)) = grant(db, login, now).await? {
        if code::mac_matches(key, &salt, &grant_label(login), code, &mac)? {
            return decided(VerifyOutcome::Success);
        }
    }
    // No live code for this protocol: the unknown challenge "" gives Dead and counts the
    // failure, like any answer to a dead code.
    let challenge = latest_live(db, login.user, limits, now)
        .await?
        .filter(|live| live.protocol == login.protocol)
        .map(|live| live.challenge)
        .unwrap_or_default();
    let (answered, later) = verify_in(
        db,
        key,
        (&challenge, login.user, login.protocol, rhost),
        code,
        limits,
        now,
        Recovery::Refused,
    )
    .await?;
    if answered.outcome == VerifyOutcome::Success && reuse_secs > 0 {
        let salt = code::new_salt(rng);
        let mac = code::code_mac(key, &salt, &grant_label(login), code.expose())?;
        exec(
            db,
            "INSERT INTO reuse_grants (username, service, rhost, salt, mac, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (username, service, rhost) DO UPDATE SET
                 salt = excluded.salt, mac = excluded.mac, expires_at = excluded.expires_at",
            &[
                &login.user,
                &login.service,
                &rhost.unwrap_or(""),
                &&salt[..],
                &&mac[..],
                &now.saturating_add(reuse_secs),
            ],
        )
        .await?;
    }
    Ok((answered, later))
}

/// The salt and MAC of the grant in force for this login, if any.
async fn grant(
    db: &Conn,
    login: &IssueRequest<'_>,
    now: i64,
) -> Result<Option<(Vec<u8>, Vec<u8>)>, StoreError> {
    let row = maybe(
        db,
        "SELECT salt, mac FROM reuse_grants
         WHERE username = $1 AND service = $2 AND rhost = $3 AND expires_at > $4",
        &[
            &login.user,
            &login.service,
            &host(login.rhost).unwrap_or(""),
            &now,
        ],
    )
    .await?;
    match row {
        Some(row) => Ok(Some((row.try_get(0)?, row.try_get(1)?))),
        None => Ok(None),
    }
}
