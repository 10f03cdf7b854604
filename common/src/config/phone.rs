//! A phone number in E.164 form (`+` then the country code and number, 8 to 15 digits), the
//! destination of webhook channels such as SMS gateways.

use std::fmt;

/// The fewest digits accepted: a country code and a short national number.
const MIN_DIGITS: usize = 8;
/// E.164's maximum.
const MAX_DIGITS: usize = 15;

/// A checked E.164 number: `+`, then 8 to 15 ASCII digits, the first not `0`. Nothing else
/// (no spaces, dashes or brackets) so that it is one unambiguous string in every template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhoneNumber(String);

impl PhoneNumber {
    /// Checks `text`, saying what is wrong in a sentence for the admin.
    pub fn parse(text: &str) -> Result<PhoneNumber, String> {
        let digits = text.strip_prefix('+').ok_or_else(|| {
            format!("{text:?} is not an E.164 number: it must start with + and the country code")
        })?;
        let well_formed = (MIN_DIGITS..=MAX_DIGITS).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0');
        if !well_formed {
            return Err(format!(
                "{text:?} is not an E.164 number: + then {MIN_DIGITS} to {MAX_DIGITS} digits, the first not 0, nothing else"
            ));
        }
        Ok(PhoneNumber(text.to_string()))
    }

    /// The number as written, `+` included.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The number with all but the `+`, two leading and three trailing digits starred, for a
    /// prompt that says where the code went without telling a shoulder surfer the number.
    pub fn masked(&self) -> String {
        mask_phone(&self.0)
    }
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// [`PhoneNumber::masked`] for a string already checked (anything else is starred whole but for
/// its length).
pub fn mask_phone(number: &str) -> String {
    let chars: Vec<char> = number.chars().collect();
    let (head, tail) = (3, 3);
    if chars.len() <= head + tail {
        return "*".repeat(chars.len());
    }
    let mut masked: String = chars[..head].iter().collect();
    masked.extend(std::iter::repeat_n('*', chars.len() - head - tail));
    masked.extend(&chars[chars.len() - tail..]);
    masked
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e164_numbers_are_accepted_as_written() {
        let p = PhoneNumber::parse("+441234567890").unwrap();
        assert_eq!(p.as_str(), "+441234567890");
        assert!(PhoneNumber::parse("+12025550123").is_ok());
        assert!(PhoneNumber::parse("+123456789012345").is_ok());
    }

    #[test]
    fn anything_but_plus_and_digits_is_refused() {
        for bad in [
            "441234567890",
            "+44 1234 567890",
            "+44-1234567890",
            "+0441234567",
            "+1234567",
            "+1234567890123456",
            "+44123456789a",
            "+4412345678\n90",
            "",
            "+",
        ] {
            assert!(PhoneNumber::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_mask_keeps_the_country_code_and_the_last_three_digits() {
        let p = PhoneNumber::parse("+441234567890").unwrap();
        assert_eq!(p.masked(), "+44*******890");
        assert_eq!(mask_phone("+123"), "****");
    }
}
