//! Recovery codes, as on SQLite (see `store::recovery`): a set of single-use codes per user,
//! stored as MACs, each answering one login prompt once.

use common::secret::SecretString;
use rand::{CryptoRng, RngCore};

use super::super::StoreError;
use super::super::recovery::{CODE_CHARS, SET_SIZE, generate, label, normalize};
use super::sends;
use super::sql::{count, exec, maybe, one, rows};
use super::unit::Conn;
use crate::code;
use crate::server_key::ServerKey;

/// See [`super::super::Store::new_recovery_codes`]. Callers hold the user's lock.
pub(super) async fn new_set<R: CryptoRng + RngCore>(
    db: &Conn,
    key: &ServerKey,
    user: &str,
    now: i64,
    rng: &mut R,
) -> Result<Vec<SecretString>, StoreError> {
    exec(
        db,
        "DELETE FROM recovery_codes WHERE username = $1",
        &[&user],
    )
    .await?;
    let mut codes = Vec::with_capacity(SET_SIZE);
    for slot in (0_i64..).take(SET_SIZE) {
        let plain = generate(rng);
        let salt = code::new_salt(rng);
        let mac = code::code_mac(key, &salt, &label(user), &plain)?;
        exec(
            db,
            "INSERT INTO recovery_codes (username, slot, salt, mac, created_at)
             VALUES ($1, $2, $3, $4, $5)",
            &[&user, &slot, &&salt[..], &&mac[..], &now],
        )
        .await?;
        codes.push(SecretString::new(format!(
            "{}-{}",
            &plain[..CODE_CHARS / 2],
            &plain[CODE_CHARS / 2..]
        )));
    }
    Ok(codes)
}

/// See [`super::super::Store::recovery_fallback`]. The code row is locked first, so a racing
/// answer is decided wholly before or after.
pub(super) async fn fallback(db: &Conn, challenge: &str) -> Result<Option<u32>, StoreError> {
    let row = maybe(
        db,
        "SELECT username FROM codes WHERE challenge = $1 AND state = 'live' FOR UPDATE",
        &[&challenge],
    )
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let user: String = row.try_get(0)?;
    let left = left(db, &user).await?;
    if left > 0 {
        exec(
            db,
            "UPDATE codes SET recovery_only = true WHERE challenge = $1 AND state = 'live'",
            &[&challenge],
        )
        .await?;
    } else {
        exec(
            db,
            "UPDATE codes SET state = 'dead', closed_at = issued_at
             WHERE challenge = $1 AND state = 'live'",
            &[&challenge],
        )
        .await?;
    }
    sends::forget(db, challenge).await?;
    Ok((left > 0).then_some(left))
}

/// Inside the caller's transaction (holding the user's lock): when `typed` is one of `user`'s
/// unused recovery codes, marks it used and returns how many are left. Every unused code's MAC
/// is computed and compared, without stopping at a match.
pub(super) async fn consume(
    db: &Conn,
    key: &ServerKey,
    user: &str,
    typed: &SecretString,
    now: i64,
) -> Result<Option<u32>, StoreError> {
    let Some(candidate) = normalize(typed) else {
        return Ok(None);
    };
    let unused = rows(
        db,
        "SELECT slot, salt, mac FROM recovery_codes WHERE username = $1 AND used_at IS NULL",
        &[&user],
    )
    .await?;
    let mut matched = None;
    for row in &unused {
        let (slot, salt, mac): (i64, Vec<u8>, Vec<u8>) =
            (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
        if code::mac_matches(key, &salt, &label(user), &candidate, &mac)? {
            matched = Some(slot);
        }
    }
    let Some(slot) = matched else {
        return Ok(None);
    };
    let marked = exec(
        db,
        "UPDATE recovery_codes SET used_at = $3
         WHERE username = $1 AND slot = $2 AND used_at IS NULL",
        &[&user, &slot, &now],
    )
    .await?;
    if marked == 0 {
        return Ok(None);
    }
    Ok(Some(left(db, user).await?))
}

/// How many of `user`'s recovery codes are unused.
pub(super) async fn left(db: &Conn, user: &str) -> Result<u32, StoreError> {
    let n: i64 = one(
        db,
        "SELECT count(*) FROM recovery_codes WHERE username = $1 AND used_at IS NULL",
        &[&user],
    )
    .await?
    .try_get(0)?;
    Ok(count(n))
}
