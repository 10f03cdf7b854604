//! Recovery codes: a user's way in when no code can be mailed (the relay is down).
//!
//! An admin creates a set of [`SET_SIZE`] codes for a user; they are shown once and the store
//! keeps only `HMAC-SHA256(server key, salt || "recovery\0" user || code)` per code, like the
//! mailed codes. Each code answers one login prompt, once: using it marks it used in the same
//! transaction that closes the login's challenge. A new set replaces the old one whole.

use common::secret::SecretString;
use rand::{CryptoRng, RngCore};
use rusqlite::{Connection, params};
use zeroize::Zeroizing;

use super::{SqliteStore, StoreError, sends};
use crate::code;
use crate::server_key::ServerKey;

/// Codes in a set.
pub const SET_SIZE: usize = 10;

/// Characters of a code, shown in two groups of five (`abcde-fghjk`).
pub const CODE_CHARS: usize = 10;

/// Lower-case letters and digits that cannot be mistaken for one another: no `0 o 1 i l`.
/// 31 symbols, so a code carries 10 * log2(31), about 49.5 bits: at the lockout rules' tens
/// of wrong answers per user and lock period, guessing one of ten codes is hopeless.
pub const ALPHABET: &[u8; 31] = b"abcdefghjkmnpqrstuvwxyz23456789";

/// Bytes at or above this are redrawn: 248 is the largest multiple of 31 in a byte, so every
/// symbol is equally likely.
const REJECTION_BOUND: u8 = 248;

impl SqliteStore {
    /// Replaces `user`'s recovery codes with a new set and returns the codes, formatted for
    /// the person (`abcde-fghjk`). The only copies: the store keeps MACs.
    pub fn new_recovery_codes<R: CryptoRng + RngCore>(
        &mut self,
        user: &str,
        now: i64,
        rng: &mut R,
    ) -> Result<Vec<SecretString>, StoreError> {
        let tx = Self::immediate(&mut self.conn)?;
        tx.prepare_cached("DELETE FROM recovery_codes WHERE user = ?1")?
            .execute(params![user])?;
        let mut codes = Vec::with_capacity(SET_SIZE);
        for slot in 0..SET_SIZE {
            let plain = generate(rng);
            let salt = code::new_salt(rng);
            let mac = code::code_mac(&self.key, &salt, &label(user), &plain)?;
            tx.prepare_cached(
                "INSERT INTO recovery_codes (user, slot, salt, mac, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![user, slot as i64, &salt[..], &mac[..], now])?;
            codes.push(SecretString::new(format!(
                "{}-{}",
                &plain[..CODE_CHARS / 2],
                &plain[CODE_CHARS / 2..]
            )));
        }
        tx.commit()?;
        Ok(codes)
    }

    /// How many of `user`'s recovery codes are unused.
    pub fn recovery_codes_left(&self, user: &str) -> Result<u32, StoreError> {
        left(&self.conn, user)
    }

    /// Mail of the code issued as `challenge` failed. When its user has unused recovery codes,
    /// the challenge stays live but now answers only to a recovery code (the mailed code never
    /// reached anyone), and the number left is returned; otherwise the code dies, as
    /// [`SqliteStore::invalidate`] does. Either way its send is taken back.
    pub fn recovery_fallback(&mut self, challenge: &str) -> Result<Option<u32>, StoreError> {
        let tx = Self::immediate(&mut self.conn)?;
        let user: Option<String> = rusqlite::OptionalExtension::optional(
            tx.prepare_cached("SELECT user FROM codes WHERE challenge = ?1 AND state = 'live'")?
                .query_row(params![challenge], |row| row.get(0)),
        )?;
        let Some(user) = user else {
            tx.commit()?;
            return Ok(None);
        };
        let left = left(&tx, &user)?;
        if left > 0 {
            tx.prepare_cached(
                "UPDATE codes SET recovery_only = 1 WHERE challenge = ?1 AND state = 'live'",
            )?
            .execute(params![challenge])?;
        } else {
            tx.prepare_cached(
                "UPDATE codes SET state = 'dead', closed_at = issued_at
                 WHERE challenge = ?1 AND state = 'live'",
            )?
            .execute(params![challenge])?;
        }
        sends::forget(&tx, challenge)?;
        tx.commit()?;
        Ok((left > 0).then_some(left))
    }
}

/// Inside the caller's transaction: when `typed` is one of `user`'s unused recovery codes,
/// marks it used and returns how many are left. Every unused code's MAC is computed and
/// compared in constant time, without stopping at a match, so the time says nothing about
/// which code (if any) matched.
pub(super) fn consume(
    tx: &Connection,
    key: &ServerKey,
    user: &str,
    typed: &SecretString,
    now: i64,
) -> Result<Option<u32>, StoreError> {
    let Some(candidate) = normalize(typed) else {
        return Ok(None);
    };
    let rows: Vec<(i64, Vec<u8>, Vec<u8>)> = tx
        .prepare_cached(
            "SELECT slot, salt, mac FROM recovery_codes WHERE user = ?1 AND used_at IS NULL",
        )?
        .query_map(params![user], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        })?
        .collect::<Result<_, _>>()?;
    let mut matched = None;
    for (slot, salt, mac) in &rows {
        if code::mac_matches(key, salt, &label(user), &candidate, mac)? {
            matched = Some(*slot);
        }
    }
    let Some(slot) = matched else {
        return Ok(None);
    };
    // `used_at IS NULL` again: a racing use of the same code cannot also win (the immediate
    // transaction already serializes them; this keeps single use a property of the row).
    let marked = tx
        .prepare_cached(
            "UPDATE recovery_codes SET used_at = ?3
             WHERE user = ?1 AND slot = ?2 AND used_at IS NULL",
        )?
        .execute(params![user, slot, now])?;
    if marked == 0 {
        return Ok(None);
    }
    Ok(Some(left(tx, user)?))
}

/// What a person typed, as a recovery code: lower case, without dashes and white space.
/// `None` when that is not [`CODE_CHARS`] characters of [`ALPHABET`], so no MAC is computed.
pub(super) fn normalize(typed: &SecretString) -> Option<SecretString> {
    let mut plain = Zeroizing::new(String::with_capacity(CODE_CHARS));
    for c in typed.expose().chars() {
        if c == '-' || c.is_whitespace() {
            continue;
        }
        let c = c.to_ascii_lowercase();
        if !c.is_ascii() || !ALPHABET.contains(&(c as u8)) || plain.len() == CODE_CHARS {
            return None;
        }
        plain.push(c);
    }
    (plain.len() == CODE_CHARS).then(|| SecretString::new(plain.as_str().to_string()))
}

fn left(conn: &Connection, user: &str) -> Result<u32, StoreError> {
    let n: i64 = conn
        .prepare_cached("SELECT count(*) FROM recovery_codes WHERE user = ?1 AND used_at IS NULL")?
        .query_row(params![user], |row| row.get(0))?;
    Ok(u32::try_from(n).unwrap_or(0))
}

/// What the MAC binds a recovery code to: its purpose and its user, so a row copied to another
/// user, or a mailed code's MAC, never matches.
pub(super) fn label(user: &str) -> String {
    format!("recovery\0{user}")
}

/// A new code of [`CODE_CHARS`] symbols of [`ALPHABET`], without dashes.
pub(super) fn generate<R: CryptoRng + RngCore>(rng: &mut R) -> Zeroizing<String> {
    let mut plain = Zeroizing::new(String::with_capacity(CODE_CHARS));
    let mut byte = Zeroizing::new([0u8; 1]);
    while plain.len() < CODE_CHARS {
        rng.fill_bytes(byte.as_mut());
        if byte[0] < REJECTION_BOUND {
            plain.push(char::from(ALPHABET[usize::from(byte[0] % 31)]));
        }
    }
    plain
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::super::{IssueOutcome, Limits, NoticeTo, VerifyOutcome};
    use super::*;

    fn relaxed() -> Limits {
        Limits {
            resend_cooldown_secs: 0,
            max_user_failures: 1000,
            max_host_failures: 1000,
            ..limits()
        }
    }

    fn issued(store: &mut SqliteStore, limits: &Limits, now: i64) -> IssueOutcome {
        store
            .issue(&request("alice", "ssh"), limits, now, &mut rng())
            .unwrap()
    }

    fn answer(
        store: &mut SqliteStore,
        challenge: &str,
        typed: &str,
        limits: &Limits,
        now: i64,
    ) -> VerifyOutcome {
        store
            .verify_answer(
                challenge,
                "alice",
                "ssh",
                None,
                &SecretString::new(typed.into()),
                limits,
                now,
                &NoticeTo {
                    address: "alice@example.test",
                    service: "sshd",
                    tell: true,
                },
            )
            .unwrap()
    }

    fn new_set(store: &mut SqliteStore) -> Vec<String> {
        store
            .new_recovery_codes("alice", T0, &mut rng())
            .unwrap()
            .iter()
            .map(|c| c.expose().to_string())
            .collect()
    }

    #[test]
    fn a_set_is_ten_distinct_codes_of_two_groups_of_five_unambiguous_characters() {
        let (_dir, mut store) = open_store();
        let codes = new_set(&mut store);
        assert_eq!(codes.len(), SET_SIZE);
        for code in &codes {
            let (a, b) = code.split_once('-').unwrap();
            assert_eq!((a.len(), b.len()), (5, 5), "{code}");
            assert!(
                a.bytes().chain(b.bytes()).all(|c| ALPHABET.contains(&c)),
                "{code}"
            );
        }
        let mut unique = codes.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), SET_SIZE);
        assert_eq!(store.recovery_codes_left("alice").unwrap(), 10);
        assert_eq!(store.recovery_codes_left("bob").unwrap(), 0);
    }

    #[test]
    fn the_store_keeps_macs_and_never_the_codes() {
        let (dir, mut store) = open_store();
        let codes = new_set(&mut store);
        drop(store);
        let bytes = std::fs::read(dir.path().join("otpd.db")).unwrap();
        let wal = std::fs::read(dir.path().join("otpd.db-wal")).unwrap_or_default();
        for code in &codes {
            let plain = code.replace('-', "");
            for haystack in [&bytes, &wal] {
                assert!(
                    !haystack.windows(plain.len()).any(|w| w == plain.as_bytes()),
                    "a recovery code is in the database file"
                );
            }
        }
    }

    #[test]
    fn a_used_recovery_code_queues_its_notice_and_a_wrong_answer_queues_none() {
        let (_dir, mut store) = open_store();
        let limits = relaxed();
        let codes = new_set(&mut store);
        let challenge = challenge_of(&issued(&mut store, &limits, T0));
        answer(&mut store, &challenge, "WRONG-WRONG", &limits, T0 + 1);
        assert_eq!(store.queued_notices().unwrap(), 0);
        answer(&mut store, &challenge, &codes[0], &limits, T0 + 2);
        let queued = store.due_notices(T0 + 2, i64::MIN, 10).unwrap();
        assert_eq!(queued.len(), 1);
        assert_eq!(
            (queued[0].user.as_str(), queued[0].address.as_str()),
            ("alice", "alice@example.test")
        );
        assert_eq!(
            (queued[0].detail.as_str(), queued[0].created_at),
            ("9 recovery codes are left", T0 + 2)
        );
    }

    #[test]
    fn a_recovery_code_answers_a_login_prompt_once_and_its_replay_is_a_wrong_code() {
        let (_dir, mut store) = open_store();
        let limits = relaxed();
        let codes = new_set(&mut store);
        let first = challenge_of(&issued(&mut store, &limits, T0));
        assert_eq!(
            answer(&mut store, &first, &codes[3], &limits, T0 + 1),
            VerifyOutcome::RecoveryUsed { left: 9 }
        );
        // The challenge is used too.
        assert_eq!(
            answer(&mut store, &first, &codes[4], &limits, T0 + 2),
            VerifyOutcome::Dead
        );
        let second = challenge_of(&issued(&mut store, &limits, T0 + 3));
        assert!(matches!(
            answer(&mut store, &second, &codes[3], &limits, T0 + 4),
            VerifyOutcome::Wrong { .. }
        ));
        assert_eq!(store.recovery_codes_left("alice").unwrap(), 9);
    }

    #[test]
    fn case_dashes_and_spaces_do_not_matter() {
        let (_dir, mut store) = open_store();
        let limits = relaxed();
        let codes = new_set(&mut store);
        let typed = format!(" {} ", codes[0].to_uppercase().replace('-', " - "));
        let challenge = challenge_of(&issued(&mut store, &limits, T0));
        assert_eq!(
            answer(&mut store, &challenge, &typed, &limits, T0 + 1),
            VerifyOutcome::RecoveryUsed { left: 9 }
        );
    }

    #[test]
    fn a_new_set_replaces_the_old_one() {
        let (_dir, mut store) = open_store();
        let limits = relaxed();
        let old = new_set(&mut store);
        let new = new_set(&mut store);
        let challenge = challenge_of(&issued(&mut store, &limits, T0));
        assert!(matches!(
            answer(&mut store, &challenge, &old[0], &limits, T0 + 1),
            VerifyOutcome::Wrong { .. }
        ));
        assert_eq!(
            answer(&mut store, &challenge, &new[0], &limits, T0 + 2),
            VerifyOutcome::RecoveryUsed { left: 9 }
        );
    }

    #[test]
    fn another_users_recovery_code_is_wrong() {
        let (_dir, mut store) = open_store();
        let limits = relaxed();
        let bobs: Vec<String> = store
            .new_recovery_codes("bob", T0, &mut rng())
            .unwrap()
            .iter()
            .map(|c| c.expose().to_string())
            .collect();
        let challenge = challenge_of(&issued(&mut store, &limits, T0));
        assert!(matches!(
            answer(&mut store, &challenge, &bobs[0], &limits, T0 + 1),
            VerifyOutcome::Wrong { .. }
        ));
        assert_eq!(store.recovery_codes_left("bob").unwrap(), 10);
    }

    #[test]
    fn wrong_recovery_codes_count_toward_the_user_lockout() {
        let (_dir, mut store) = open_store();
        let limits = Limits {
            max_user_failures: 3,
            max_attempts: 10,
            ..relaxed()
        };
        let codes = new_set(&mut store);
        let challenge = challenge_of(&issued(&mut store, &limits, T0));
        for _ in 0..2 {
            assert!(matches!(
                answer(&mut store, &challenge, "abcde-fghjk", &limits, T0 + 1),
                VerifyOutcome::Wrong { .. }
            ));
        }
        assert!(matches!(
            answer(&mut store, &challenge, "abcde-fghjk", &limits, T0 + 1),
            VerifyOutcome::LockedOut { .. }
        ));
        // Locked: even a right recovery code is not looked at, and stays unused.
        assert!(matches!(
            answer(&mut store, &challenge, &codes[0], &limits, T0 + 2),
            VerifyOutcome::LockedOut { .. }
        ));
        assert_eq!(store.recovery_codes_left("alice").unwrap(), 10);
    }

    #[test]
    fn a_self_service_confirmation_takes_no_recovery_code() {
        let (_dir, mut store) = open_store();
        let limits = relaxed();
        let codes = new_set(&mut store);
        let challenge = challenge_of(&issued(&mut store, &limits, T0));
        let outcome = store
            .verify(
                &challenge,
                "alice",
                "ssh",
                None,
                &SecretString::new(codes[0].clone()),
                &limits,
                T0 + 1,
            )
            .unwrap();
        assert!(
            matches!(outcome, VerifyOutcome::Wrong { .. }),
            "{outcome:?}"
        );
        assert_eq!(store.recovery_codes_left("alice").unwrap(), 10);
    }

    #[test]
    fn after_a_failed_mail_the_challenge_takes_a_recovery_code_and_not_the_unmailed_code() {
        let (_dir, mut store) = open_store();
        let limits = relaxed();
        let codes = new_set(&mut store);
        let outcome = issued(&mut store, &limits, T0);
        let challenge = challenge_of(&outcome);
        let unmailed = issued_code(&outcome);
        assert_eq!(store.recovery_fallback(&challenge).unwrap(), Some(10));
        assert_eq!(
            store.count_rows("SELECT count(*) FROM sends"),
            0,
            "the failed send is taken back"
        );
        assert!(matches!(
            answer(&mut store, &challenge, &unmailed, &limits, T0 + 1),
            VerifyOutcome::Wrong { .. }
        ));
        assert_eq!(
            answer(&mut store, &challenge, &codes[0], &limits, T0 + 2),
            VerifyOutcome::RecoveryUsed { left: 9 }
        );
    }

    #[test]
    fn a_recovery_only_challenge_is_never_handed_out_again_as_the_code_already_sent() {
        let (_dir, mut store) = open_store();
        let limits = Limits {
            resend_cooldown_secs: 300,
            ..relaxed()
        };
        new_set(&mut store);
        let challenge = challenge_of(&issued(&mut store, &limits, T0));
        store.recovery_fallback(&challenge).unwrap();
        let again = issued(&mut store, &limits, T0 + 1);
        assert!(matches!(again, IssueOutcome::Issued { .. }), "{again:?}");
    }

    #[test]
    fn without_recovery_codes_a_failed_mail_kills_the_code() {
        let (_dir, mut store) = open_store();
        let limits = relaxed();
        let outcome = issued(&mut store, &limits, T0);
        let challenge = challenge_of(&outcome);
        assert_eq!(store.recovery_fallback(&challenge).unwrap(), None);
        assert_eq!(
            answer(
                &mut store,
                &challenge,
                &issued_code(&outcome),
                &limits,
                T0 + 1
            ),
            VerifyOutcome::Dead
        );
    }

    #[test]
    fn removing_a_users_record_removes_their_recovery_codes() {
        let (_dir, mut store) = open_store();
        store.upsert_user(&user_record("alice")).unwrap();
        new_set(&mut store);
        assert!(store.remove_user("alice").unwrap());
        assert_eq!(store.recovery_codes_left("alice").unwrap(), 0);
    }

    #[test]
    fn normalizing_refuses_what_cannot_be_a_recovery_code() {
        for typed in [
            "",
            "123456",
            "abcde-fghj",
            "abcde-fghjkm",
            "abcde-fghjo",
            "ABCDE_FGHJK",
        ] {
            assert!(
                normalize(&SecretString::new(typed.into())).is_none(),
                "{typed}"
            );
        }
        let n = normalize(&SecretString::new("ABCDE - fghjk".into())).unwrap();
        assert_eq!(n.expose(), "abcdefghjk");
    }
}
