//! One SMS segment for a webhook channel's message: `sms_field = "Body"` names the form field (or
//! the top-level JSON key) that a gateway sends as the text message, and otpd keeps that text
//! within one segment, 160 GSM-7 characters (the escape table's `^{}\[~]|€` count two), or 70
//! UCS-2 code units as soon as one character is outside GSM-7. A longer text is split by the
//! network into parts that may arrive late, out of order or not at all, and each is billed.
//!
//! How, in two steps, so that neither the admin's template nor a login's values can push the
//! code out of the message:
//! - At config load, the text is rendered with the worst values otpd itself chooses (the
//!   longest code, the longest E.164 number, `60` minutes) and the untrusted values (`{user}`,
//!   `{host}`) empty: a template whose fixed text cannot fit even so is refused, at its line.
//! - At send time, when the text with the real values is too long, `{user}` and `{host}` are cut
//!   in the body (the same number of characters kept of each, as many as fit; URLs keep them
//!   whole), never the code, the number or the admin's text. With both empty the text is the
//!   one checked at load, so it always fits.
//!   Cutting is chosen over refusing: a login by a long user name still gets its code.
//!
//! A gateway that is no SMS gateway (a push or chat webhook) leaves `sms_field` unset: no limit.

use super::webhook_template::{BodyTemplate, WebhookValues, WebhookVar};

/// GSM 03.38's basic character set (the escape character excluded): one septet each.
const GSM7_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?\
                          ¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";

/// GSM 03.38's extension table: an escape and the character, two septets each.
const GSM7_EXTENSION: &str = "\u{c}^{}\\[~]|€";

/// Septets in one GSM-7 segment.
pub const GSM7_SEGMENT: usize = 160;

/// UCS-2 code units in one segment.
pub const UCS2_SEGMENT: usize = 70;

/// How a text is encoded in an SMS and its length in that encoding's units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmsLength {
    /// Every character is in GSM-7: septets.
    Gsm7(usize),
    /// Some character is not: UTF-16 code units.
    Ucs2(usize),
}

impl SmsLength {
    /// The length of `text` as an SMS carries it.
    pub fn of(text: &str) -> SmsLength {
        let mut septets = 0;
        for c in text.chars() {
            if GSM7_BASIC.contains(c) {
                septets += 1;
            } else if GSM7_EXTENSION.contains(c) {
                septets += 2;
            } else {
                return SmsLength::Ucs2(text.encode_utf16().count());
            }
        }
        SmsLength::Gsm7(septets)
    }

    /// True when the text fits one segment.
    pub fn fits_one_segment(self) -> bool {
        match self {
            SmsLength::Gsm7(n) => n <= GSM7_SEGMENT,
            SmsLength::Ucs2(n) => n <= UCS2_SEGMENT,
        }
    }
}

impl std::fmt::Display for SmsLength {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SmsLength::Gsm7(n) => {
                write!(f, "{n} GSM-7 characters (one segment holds {GSM7_SEGMENT})")
            }
            SmsLength::Ucs2(n) => write!(
                f,
                "{n} UCS-2 characters, as some character is not in GSM-7 (one segment holds {UCS2_SEGMENT})"
            ),
        }
    }
}

/// The longest values otpd chooses itself, and the untrusted ones empty.
struct Shortest;

impl WebhookValues for Shortest {
    fn value(&self, var: WebhookVar) -> &str {
        match var {
            WebhookVar::To => "+999999999999999",
            WebhookVar::Code => "9999999999",
            WebhookVar::Minutes => "60",
            WebhookVar::User | WebhookVar::Host | WebhookVar::Message => "",
        }
    }
}

/// Checks at config load that `field` of `body` is the message and fits one segment with
/// otpd's longest values and no user or host.
pub fn check_template(body: &BodyTemplate, field: &str) -> Result<(), String> {
    let text = body.field_text(field, &Shortest).ok_or_else(|| {
        format!("sms_field {field:?} is not a field of the body (a form field, or a top-level JSON key whose value is a string)")
    })?;
    let length = SmsLength::of(&text);
    if !length.fits_one_segment() {
        return Err(format!(
            "the SMS text {text:?} is {length} with a 10-digit code and without {{user}} or {{host}}; shorten it or leave sms_field unset"
        ));
    }
    Ok(())
}

/// The values of one message with `{user}` and `{host}` cut so that `field` fits one segment.
pub struct Fitted<'a> {
    values: &'a dyn WebhookValues,
    user: String,
    host: String,
}

impl std::fmt::Debug for Fitted<'_> {
    /// Without the values: they hold the code.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fitted").finish_non_exhaustive()
    }
}

impl WebhookValues for Fitted<'_> {
    fn value(&self, var: WebhookVar) -> &str {
        match var {
            WebhookVar::User => &self.user,
            WebhookVar::Host => &self.host,
            other => self.values.value(other),
        }
    }
}

impl Fitted<'_> {
    /// True when `{user}` or `{host}` was cut.
    pub fn was_cut(&self) -> bool {
        self.user != self.values.value(WebhookVar::User)
            || self.host != self.values.value(WebhookVar::Host)
    }
}

/// `values` with `{user}` and `{host}` cut to the longest prefixes (the same number of
/// characters of each, at most) with which `field` of `body` fits one segment.
pub fn fit<'a>(body: &BodyTemplate, field: &str, values: &'a dyn WebhookValues) -> Fitted<'a> {
    let user: Vec<char> = values.value(WebhookVar::User).chars().collect();
    let host: Vec<char> = values.value(WebhookVar::Host).chars().collect();
    let cut = |keep: usize| Fitted {
        values,
        user: user.iter().take(keep).collect(),
        host: host.iter().take(keep).collect(),
    };
    let fits = |fitted: &Fitted<'_>| {
        body.field_text(field, fitted)
            .is_none_or(|text| SmsLength::of(&text).fits_one_segment())
    };
    let whole = user.len().max(host.len());
    cut(longest_fitting(whole, |keep| fits(&cut(keep))))
}

/// The longest `keep` up to `whole` for which `fits(keep)` holds (0 when none does), for a
/// text that never gets shorter as more is kept: `whole` itself, or found by bisection.
pub fn longest_fitting(whole: usize, fits: impl Fn(usize) -> bool) -> usize {
    if fits(whole) {
        return whole;
    }
    let (mut fitting, mut too_long) = (0, whole);
    while too_long - fitting > 1 {
        let middle = fitting + (too_long - fitting) / 2;
        if fits(middle) {
            fitting = middle;
        } else {
            too_long = middle;
        }
    }
    fitting
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::webhook_template::BodyFormat;

    struct Login<'a> {
        user: &'a str,
        host: &'a str,
    }

    impl WebhookValues for Login<'_> {
        fn value(&self, var: WebhookVar) -> &str {
            match var {
                WebhookVar::To => "+441234567890",
                WebhookVar::Code => "123456",
                WebhookVar::Minutes => "10",
                WebhookVar::Message => "",
                WebhookVar::User => self.user,
                WebhookVar::Host => self.host,
            }
        }
    }

    fn twilio(text: &str) -> BodyTemplate {
        BodyTemplate::parse(
            &format!("To={{to}}&From=+15005550006&Body={text}"),
            BodyFormat::Form,
        )
        .unwrap()
    }

    #[test]
    fn gsm7_counts_septets_and_anything_else_makes_it_ucs2() {
        assert_eq!(SmsLength::of("Your code is 123456"), SmsLength::Gsm7(19));
        assert_eq!(SmsLength::of("Grüße, Ærø"), SmsLength::Gsm7(10));
        // The escape table's characters take two septets.
        assert_eq!(SmsLength::of("{€}"), SmsLength::Gsm7(6));
        // One character outside GSM-7 turns the whole text into UCS-2, emoji as two units.
        assert_eq!(SmsLength::of("code É"), SmsLength::Gsm7(6));
        assert_eq!(SmsLength::of("code ś"), SmsLength::Ucs2(6));
        assert_eq!(SmsLength::of("🔑 1"), SmsLength::Ucs2(4));
        assert!(SmsLength::of(&"a".repeat(160)).fits_one_segment());
        assert!(!SmsLength::of(&"a".repeat(161)).fits_one_segment());
        assert!(!SmsLength::of(&"^".repeat(81)).fits_one_segment());
        assert!(SmsLength::of(&"ś".repeat(70)).fits_one_segment());
        assert!(!SmsLength::of(&"ś".repeat(71)).fits_one_segment());
    }

    #[test]
    fn a_template_whose_own_text_cannot_fit_is_refused() {
        assert!(
            check_template(&twilio("Your code is {code} for {user} on {host}"), "Body").is_ok()
        );
        // 150 characters of text and a 10-digit code: 160 fits.
        assert!(check_template(&twilio(&format!("{}{{code}}", "a".repeat(150))), "Body").is_ok());
        let e =
            check_template(&twilio(&format!("{}{{code}}", "a".repeat(151))), "Body").unwrap_err();
        assert!(e.contains("161 GSM-7 characters"), "{e}");
        // Outside GSM-7 the segment is 70.
        let e = check_template(&twilio(&format!("Kod {{code}} {}", "ś".repeat(60))), "Body")
            .unwrap_err();
        assert!(e.contains("UCS-2"), "{e}");
        let e = check_template(&twilio("{code}"), "Text").unwrap_err();
        assert!(e.contains("not a field of the body"), "{e}");
    }

    #[test]
    fn a_json_message_is_the_top_level_string_the_field_names() {
        let body = BodyTemplate::parse(
            r#"{"to": "{to}", "message": "Code {code} for {user}", "n": 1}"#,
            BodyFormat::Json,
        )
        .unwrap();
        assert!(check_template(&body, "message").is_ok());
        assert!(check_template(&body, "n").is_err());
        assert!(check_template(&body, "missing").is_err());
    }

    #[test]
    fn long_untrusted_values_are_cut_and_the_code_is_kept() {
        let body = twilio("Your code is {code} for {user} on {host}");
        let (user, host) = ("u".repeat(128), "h".repeat(128));
        let login = Login {
            user: &user,
            host: &host,
        };
        let fitted = fit(&body, "Body", &login);
        assert!(fitted.was_cut());
        let text = body.field_text("Body", &fitted).unwrap();
        assert_eq!(SmsLength::of(&text), SmsLength::Gsm7(160), "{text}");
        assert!(text.starts_with("Your code is 123456 for uuu"), "{text}");
        assert_eq!(fitted.value(WebhookVar::Code), "123456");
        assert_eq!(fitted.value(WebhookVar::To), "+441234567890");

        // A user name outside GSM-7 makes the text UCS-2: cut to fit 70.
        let user = "żółć".repeat(10);
        let login = Login {
            user: &user,
            host: "web1",
        };
        let fitted = fit(&body, "Body", &login);
        let text = body.field_text("Body", &fitted).unwrap();
        assert!(SmsLength::of(&text).fits_one_segment(), "{text}");
        assert!(text.contains("123456"), "{text}");

        // Short values are left alone.
        let login = Login {
            user: "alice",
            host: "web1",
        };
        let fitted = fit(&body, "Body", &login);
        assert!(!fitted.was_cut());
        assert_eq!(
            body.field_text("Body", &fitted).unwrap(),
            "Your code is 123456 for alice on web1"
        );
    }
}
