//! HOTP (RFC 4226), so the pam_oath side of the benchmark answers its prompt with a code computed
//! in-process, the way our side reads its code out of a mail in-process: neither pays for a
//! subprocess the other does not.

use hmac::{Hmac, Mac};
use sha1::Sha1;

/// The HOTP value of `key` at `counter`, as a zero-padded decimal string of `digits` digits
/// (6 to 9, as pam_oath accepts).
pub fn hotp(key: &[u8], counter: u64, digits: u32) -> String {
    // HMAC accepts keys of any length, so this cannot fail; an empty code would simply be wrong.
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(key) else {
        return String::new();
    };
    mac.update(&counter.to_be_bytes());
    let hash = mac.finalize().into_bytes();
    // Dynamic truncation (RFC 4226 section 5.3): the low nibble of the last byte picks 4 bytes.
    let offset = usize::from(hash[19] & 0x0f);
    let binary = u32::from_be_bytes([
        hash[offset] & 0x7f,
        hash[offset + 1],
        hash[offset + 2],
        hash[offset + 3],
    ]);
    let value = binary % 10u32.pow(digits);
    format!("{value:0width$}", width = digits as usize)
}

/// `bytes` as lowercase hex, the form pam_oath's usersfile takes a key in.
pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 4226 appendix D: the secret "12345678901234567890" at counters 0 to 9.
    #[test]
    fn matches_the_rfc_4226_test_vectors() {
        let expected = [
            "755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583",
            "399871", "520489",
        ];
        for (counter, want) in expected.iter().enumerate() {
            assert_eq!(hotp(b"12345678901234567890", counter as u64, 6), *want);
        }
    }

    /// The same vectors' 31-bit values (RFC 4226 appendix D, "Truncated"), cut to 8 and 9
    /// digits: counter 7 is 82162583, so its 9-digit code keeps a leading zero.
    #[test]
    fn longer_codes_are_cut_from_the_same_value_and_zero_padded() {
        assert_eq!(hotp(b"12345678901234567890", 0, 8), "84755224");
        assert_eq!(hotp(b"12345678901234567890", 7, 9), "082162583");
    }

    #[test]
    fn hex_is_lowercase_and_two_digits_per_byte() {
        assert_eq!(to_hex(&[0x00, 0x0a, 0xff]), "000aff");
    }
}
