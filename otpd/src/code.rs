//! One-time codes, challenge ids, salts, and the MAC that is stored instead of the code.
//!
//! The randomness is passed in (`R: CryptoRng + RngCore`): production passes the OS generator,
//! tests a seeded one. The stored value is `HMAC-SHA256(server_key, salt || challenge || code)`.
//! The concatenation is unambiguous because the salt has a fixed length and the challenge id is
//! always [`CHALLENGE_HEX_LEN`] hex characters, so the code is exactly what remains.

use common::secret::SecretString;
use hmac::{Hmac, Mac};
use rand::rngs::OsRng;
use rand::{CryptoRng, RngCore, TryRngCore, rand_core::UnwrapErr};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::server_key::ServerKey;

/// Shortest code the daemon issues: 6 digits leave a guesser 1 in a million per attempt.
pub const MIN_CODE_LENGTH: u8 = 6;
/// Longest code: more digits only make typing harder.
pub const MAX_CODE_LENGTH: u8 = 10;
/// Salt bytes stored beside each MAC, so equal codes never produce equal rows.
pub const SALT_LEN: usize = 16;
/// HMAC-SHA256 output length.
pub const MAC_LEN: usize = 32;
/// Random bytes in a challenge id: 128 bits, unguessable.
pub const CHALLENGE_BYTES: usize = 16;
/// Hex digits of the time prefix of a challenge id: milliseconds since 1970 in 48 bits.
const TIME_PREFIX_HEX_LEN: usize = 12;
/// Length of a challenge id as lower-case hex: the time prefix, then the random part.
pub const CHALLENGE_HEX_LEN: usize = TIME_PREFIX_HEX_LEN + CHALLENGE_BYTES * 2;

/// The generator production passes to the functions here: every code, salt and challenge id
/// comes straight from the OS (`getrandom`). It panics, as `rand`'s own generators do, when the
/// OS cannot give randomness: there is no safe code to issue then, and a login's handler
/// catches the panic and answers "unavailable".
pub fn os_rng() -> UnwrapErr<OsRng> {
    OsRng.unwrap_err()
}

/// Bytes at or above this are redrawn: 250 is the largest multiple of 10 that fits in a byte,
/// so `byte % 10` over `0..250` gives every digit exactly 25 times. `random_range` would do
/// too, but its default single-sample method allows a (tiny) bias; rejection has none.
const DIGIT_REJECTION_BOUND: u8 = 250;

/// Why a code or MAC could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum CodeError {
    /// A code length outside [`MIN_CODE_LENGTH`]`..=`[`MAX_CODE_LENGTH`] reached the generator;
    /// the config validation should have refused it.
    #[error("code length {0} is outside {MIN_CODE_LENGTH}..={MAX_CODE_LENGTH}")]
    Length(u8),
    /// The HMAC refused the key. HMAC accepts keys of any length, so this cannot happen; it is
    /// an error rather than a panic so that even the impossible fails closed.
    #[error("the HMAC refused the server key")]
    MacKey,
}

/// A fresh code of `length` decimal digits, each uniform over `0..=9`.
pub fn generate_code<R: CryptoRng + RngCore>(
    rng: &mut R,
    length: u8,
) -> Result<SecretString, CodeError> {
    if !(MIN_CODE_LENGTH..=MAX_CODE_LENGTH).contains(&length) {
        return Err(CodeError::Length(length));
    }
    // Sized up front so the string never reallocates and leaves an unwiped copy behind.
    let mut code = String::with_capacity(usize::from(length));
    for _ in 0..length {
        code.push(char::from(b'0' + random_digit(rng)));
    }
    Ok(SecretString::new(code))
}

/// One uniformly random digit, by rejection sampling on bytes (see [`DIGIT_REJECTION_BOUND`]).
fn random_digit<R: CryptoRng + RngCore>(rng: &mut R) -> u8 {
    let mut byte = Zeroizing::new([0u8; 1]);
    loop {
        rng.fill_bytes(byte.as_mut());
        if byte[0] < DIGIT_REJECTION_BOUND {
            return byte[0] % 10;
        }
    }
}

/// A fresh challenge id: the time of issue in milliseconds (12 hex digits), then 128 random
/// bits, all lower-case hex. It names a code in the store and travels to the module and back;
/// it is not secret, but it must not be guessable, or someone could answer (and burn) another
/// login's code: the random part sees to that.
///
/// The time prefix is there for the database: ids issued one after another sort next to each
/// other, so the index pages a login writes are the last few instead of one anywhere in the
/// index. A checkpoint then copies a handful of pages, not one per login (bench/README.md). The
/// issue time it reveals is no secret: the prompt shows when the code expires.
pub fn new_challenge_id<R: CryptoRng + RngCore>(rng: &mut R, issued_ms: u64) -> String {
    let mut hex = String::with_capacity(CHALLENGE_HEX_LEN);
    for shift in (0..TIME_PREFIX_HEX_LEN).rev() {
        // Masked to one nibble, so the cast keeps every bit that matters.
        hex.push(hex_digit((issued_ms >> (shift * 4) & 0x0f) as u8));
    }
    let mut bytes = [0u8; CHALLENGE_BYTES];
    rng.fill_bytes(&mut bytes);
    for b in bytes {
        hex.push(hex_digit(b >> 4));
        hex.push(hex_digit(b & 0x0f));
    }
    hex
}

/// Milliseconds since 1970 by the system clock, for the order of challenge ids only (no rule
/// depends on it; a clock set back only costs locality). 0 if the clock is before 1970.
pub fn millis_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn hex_digit(nibble: u8) -> char {
    char::from(if nibble < 10 {
        b'0' + nibble
    } else {
        b'a' + nibble - 10
    })
}

/// A fresh random salt for one stored MAC.
pub fn new_salt<R: CryptoRng + RngCore>(rng: &mut R) -> [u8; SALT_LEN] {
    let mut salt = [0u8; SALT_LEN];
    rng.fill_bytes(&mut salt);
    salt
}

/// `HMAC-SHA256(key, salt || challenge || code)`: the only trace of a code that is stored.
pub fn code_mac(
    key: &ServerKey,
    salt: &[u8],
    challenge: &str,
    code: &str,
) -> Result<[u8; MAC_LEN], CodeError> {
    let mac = keyed(key, salt, challenge, code)?;
    Ok(mac.finalize().into_bytes().into())
}

/// True when `code` is the code whose MAC is `stored`. The comparison is constant-time
/// (`verify_slice` compares with `subtle`), so timing reveals nothing about how much matched.
/// An empty answer never matches, whatever is stored.
pub fn mac_matches(
    key: &ServerKey,
    salt: &[u8],
    challenge: &str,
    code: &SecretString,
    stored: &[u8],
) -> Result<bool, CodeError> {
    if code.is_empty() {
        return Ok(false);
    }
    let mac = keyed(key, salt, challenge, code.expose())?;
    Ok(mac.verify_slice(stored).is_ok())
}

fn keyed(
    key: &ServerKey,
    salt: &[u8],
    challenge: &str,
    code: &str,
) -> Result<Hmac<Sha256>, CodeError> {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(key.expose()).map_err(|_| CodeError::MacKey)?;
    mac.update(salt);
    mac.update(challenge.as_bytes());
    mac.update(code.as_bytes());
    Ok(mac)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn rng() -> StdRng {
        StdRng::seed_from_u64(0x5eed)
    }

    fn key() -> ServerKey {
        ServerKey::from_bytes([3u8; 32])
    }

    #[test]
    fn a_six_digit_code_has_six_decimal_digits() {
        let code = generate_code(&mut rng(), 6).unwrap();
        assert_eq!(code.len(), 6);
        assert!(code.expose().bytes().all(|b| b.is_ascii_digit()));
    }

    #[test]
    fn a_ten_digit_code_has_ten_decimal_digits() {
        let mut rng = rng();
        for _ in 0..1000 {
            let code = generate_code(&mut rng, 10).unwrap();
            assert_eq!(code.len(), 10);
            assert!(code.expose().bytes().all(|b| b.is_ascii_digit()));
        }
    }

    #[test]
    fn lengths_outside_six_to_ten_are_refused() {
        assert!(matches!(
            generate_code(&mut rng(), 5),
            Err(CodeError::Length(5))
        ));
        assert!(matches!(
            generate_code(&mut rng(), 11),
            Err(CodeError::Length(11))
        ));
        assert!(matches!(
            generate_code(&mut rng(), 0),
            Err(CodeError::Length(0))
        ));
    }

    #[test]
    fn digits_are_roughly_uniform_over_many_draws() {
        let mut rng = rng();
        let mut counts = [0u64; 10];
        let draws = 20_000;
        for _ in 0..draws {
            let code = generate_code(&mut rng, 10).unwrap();
            for b in code.expose().bytes() {
                counts[usize::from(b - b'0')] += 1;
            }
        }
        let total = draws * 10;
        let expected = total as f64 / 10.0;
        let chi2: f64 = counts
            .iter()
            .map(|&c| (c as f64 - expected).powi(2) / expected)
            .sum();
        // 27.88 is the 0.999 quantile of chi-square with 9 degrees of freedom.
        assert!(chi2 < 27.88, "chi2 {chi2} counts {counts:?}");
        for c in counts {
            assert!((c as f64 - expected).abs() < expected * 0.02, "{counts:?}");
        }
    }

    /// Yields a scripted sequence of bytes, to show which ones the digit sampler rejects.
    struct Script(Vec<u8>);

    impl RngCore for Script {
        fn next_u32(&mut self) -> u32 {
            unimplemented!("the digit sampler draws bytes")
        }
        fn next_u64(&mut self) -> u64 {
            unimplemented!("the digit sampler draws bytes")
        }
        fn fill_bytes(&mut self, dst: &mut [u8]) {
            for d in dst {
                *d = self.0.remove(0);
            }
        }
    }

    impl CryptoRng for Script {}

    #[test]
    fn bytes_250_to_255_are_redrawn_so_no_digit_is_favoured() {
        let mut script = Script(vec![250, 255, 251, 7, 249, 0, 199, 245, 252, 13]);
        let code = generate_code(&mut script, 6).unwrap();
        assert_eq!(code.expose(), "790953");
        assert!(script.0.is_empty());
    }

    #[test]
    fn challenge_ids_are_44_lower_hex_chars_and_distinct_in_the_same_millisecond() {
        let mut rng = rng();
        let a = new_challenge_id(&mut rng, 1_700_000_000_000);
        let b = new_challenge_id(&mut rng, 1_700_000_000_000);
        assert_eq!(CHALLENGE_HEX_LEN, 44);
        assert_eq!(a.len(), CHALLENGE_HEX_LEN);
        assert!(a.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')));
        assert_ne!(a, b);
    }

    #[test]
    fn challenge_ids_start_with_the_time_and_hex_encode_every_nibble() {
        let mut script = Script((0u8..16).map(|i| i * 0x11).collect());
        assert_eq!(
            new_challenge_id(&mut script, 0x0123_4567_89ab),
            "0123456789ab00112233445566778899aabbccddeeff"
        );
    }

    #[test]
    fn later_challenge_ids_sort_after_earlier_ones_whatever_their_random_part() {
        let earlier = new_challenge_id(&mut Script(vec![0xff; CHALLENGE_BYTES]), 1_000);
        let later = new_challenge_id(&mut Script(vec![0x00; CHALLENGE_BYTES]), 1_001);
        assert!(earlier < later, "{earlier} vs {later}");
    }

    #[test]
    fn the_clock_gives_milliseconds_since_1970() {
        // 2023-11-14 and 2100-01-01, in milliseconds: a seconds or microseconds clock fails.
        let now = millis_now();
        assert!(
            (1_700_000_000_000..4_102_444_800_000).contains(&now),
            "{now}"
        );
    }

    #[test]
    fn the_same_code_with_another_salt_gives_another_mac() {
        let a = code_mac(&key(), &[1u8; SALT_LEN], "c", "123456").unwrap();
        let b = code_mac(&key(), &[2u8; SALT_LEN], "c", "123456").unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn the_mac_depends_on_key_challenge_and_code() {
        let base = code_mac(&key(), &[1u8; SALT_LEN], "c1", "123456").unwrap();
        let other_key = code_mac(
            &ServerKey::from_bytes([4u8; 32]),
            &[1u8; SALT_LEN],
            "c1",
            "123456",
        )
        .unwrap();
        let other_challenge = code_mac(&key(), &[1u8; SALT_LEN], "c2", "123456").unwrap();
        let other_code = code_mac(&key(), &[1u8; SALT_LEN], "c1", "123457").unwrap();
        assert_ne!(base, other_key);
        assert_ne!(base, other_challenge);
        assert_ne!(base, other_code);
    }

    #[test]
    fn the_mac_is_hmac_sha256_over_salt_challenge_and_code() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?". Split the data
        // across salt, challenge and code to show they are simply concatenated.
        let mut key_bytes = [0u8; 32];
        key_bytes[..4].copy_from_slice(b"Jefe");
        // HMAC zero-pads short keys to the block size, so "Jefe" and "Jefe" + 28 zero bytes
        // are the same key.
        let mac = code_mac(
            &ServerKey::from_bytes(key_bytes),
            b"what do ",
            "ya want ",
            "for nothing?",
        )
        .unwrap();
        let expected = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
        let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, expected);
    }

    #[test]
    fn the_right_code_matches_and_others_do_not() {
        let salt = [5u8; SALT_LEN];
        let stored = code_mac(&key(), &salt, "c", "123456").unwrap();
        let right = SecretString::new("123456".into());
        let wrong = SecretString::new("123457".into());
        assert!(mac_matches(&key(), &salt, "c", &right, &stored).unwrap());
        assert!(!mac_matches(&key(), &salt, "c", &wrong, &stored).unwrap());
        assert!(!mac_matches(&key(), &salt, "c", &right, &stored[..31]).unwrap());
    }

    #[test]
    fn an_empty_answer_never_matches() {
        let salt = [5u8; SALT_LEN];
        let stored = code_mac(&key(), &salt, "c", "").unwrap();
        let empty = SecretString::new(String::new());
        assert!(!mac_matches(&key(), &salt, "c", &empty, &stored).unwrap());
    }
}
