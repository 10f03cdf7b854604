//! The texts a login's answers carry: prompts, refusals, errors, and the minutes they count,
//! in the language of the user's profile (`language = "de"`; English by default). Each
//! language's texts are one file ([`en`], [`de`], [`fr`], [`es`], [`tr`], [`ja`]) wording every
//! [`Phrase`].

mod de;
mod en;
mod es;
mod fr;
mod ja;
mod phrase;
mod tr;

use common::config::{Language, mask_phone};
use common::text::{escape_for_log, mask_email};
use common::wire::{DenyReason, Response};

pub(super) use self::phrase::Phrase;

/// Where a code went, for the prompt.
#[derive(Debug, Clone, Copy)]
pub(super) enum SentTo<'a> {
    /// Mailed to this address.
    Email(&'a common::config::EmailAddress),
    /// Sent by a webhook channel (shown by its display name) to this phone number.
    Phone { channel: &'a str, number: &'a str },
}

/// The prompt for a code sent to `to`, its destination masked. With `wait` (seconds until a new
/// code may be sent), it tells a person who asked for a new code too early to use the one
/// already sent. With no destination to name (no channel reaches the user), "not sent".
pub(super) fn prompt(
    language: Language,
    to: Option<SentTo<'_>>,
    expires_at: i64,
    now: i64,
    challenge: &str,
    wait: Option<i64>,
) -> Response {
    let Some(to) = to else {
        return Response::Unavailable {
            message: Phrase::NotSent.in_language(language),
        };
    };
    let notice = wait
        .map(|seconds| Phrase::NoNewCodeYet { seconds }.in_language(language))
        .unwrap_or_default();
    let minutes = minutes_until(expires_at, now);
    let sent = match to {
        SentTo::Email(address) => Phrase::CodeSent {
            address: &mask_email(address.as_str()),
            minutes,
        }
        .in_language(language),
        SentTo::Phone { channel, number } => Phrase::CodeSentBy {
            channel,
            destination: &mask_phone(number),
            minutes,
        }
        .in_language(language),
    };
    Response::Prompt {
        challenge: challenge.to_string(),
        prompt: format!("{notice}{sent}"),
        wrong_code: Some(Phrase::WrongCode.in_language(language)),
        log_in_again: Some(Phrase::LogInAgain.in_language(language)),
    }
}

/// The prompt of a login whose code mail failed, for a user with `left` recovery codes: the
/// challenge now answers only to one of them.
pub(super) fn recovery_prompt(language: Language, challenge: &str, left: u32) -> Response {
    Response::Prompt {
        challenge: challenge.to_string(),
        prompt: Phrase::RecoveryPrompt { left }.in_language(language),
        wrong_code: Some(Phrase::WrongCode.in_language(language)),
        log_in_again: Some(Phrase::LogInAgain.in_language(language)),
    }
}

pub(super) fn refused_caller(language: Language) -> Response {
    Response::Denied {
        reason: DenyReason::CallerRefused,
        message: Phrase::RefusedCaller.in_language(language),
    }
}

pub(super) fn internal_error(language: Language, error: &dyn std::fmt::Display) -> Response {
    tracing::error!("store error: {}", escape_for_log(&error.to_string()));
    lost(language)
}

/// Whole minutes until `until`, rounded up, at least 1.
pub(super) fn minutes_until(until: i64, now: i64) -> i64 {
    ((until - now + 59) / 60).max(1)
}

/// The answer to a request whose work was lost to a panic.
pub(super) fn lost(language: Language) -> Response {
    Response::Unavailable {
        message: Phrase::InternalError.in_language(language),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minutes_round_up() {
        assert_eq!(minutes_until(600, 0), 10);
        assert_eq!(minutes_until(601, 0), 11);
        assert_eq!(minutes_until(0, 10), 1);
    }

    /// Every text, with its values.
    fn every_phrase() -> Vec<Phrase<'static>> {
        vec![
            Phrase::CodeSent {
                address: "a***@e***.com",
                minutes: 10,
            },
            Phrase::CodeSentBy {
                channel: "SMS",
                destination: "+44*******890",
                minutes: 10,
            },
            Phrase::NoNewCodeYet { seconds: 42 },
            Phrase::RecoveryPrompt { left: 9 },
            Phrase::RefusedCaller,
            Phrase::InternalError,
            Phrase::NotSent,
            Phrase::NoAddress,
            Phrase::WrongCode,
            Phrase::LogInAgain,
            Phrase::CodeDead,
            Phrase::RecoveryAccepted { left: 7 },
            Phrase::Locked {
                minutes: 15,
                from_address: true,
            },
            Phrase::Locked {
                minutes: 15,
                from_address: false,
            },
            Phrase::RateLimited { minutes: 33 },
            Phrase::LookupLate,
            Phrase::LookupFailed,
            Phrase::Unreachable,
        ]
    }

    /// Each language words every text on its own (none falls back to English), keeps the
    /// values, and writes one line that a terminal shows as it is.
    #[test]
    fn every_language_words_every_text_with_its_values() {
        for phrase in every_phrase() {
            let english = phrase.in_language(Language::English);
            for language in Language::ALL {
                let text = phrase.in_language(language);
                if language != Language::English {
                    assert_ne!(text, english, "{language} falls back to English");
                }
                for value in [
                    "a***@e***.com",
                    "SMS",
                    "+44*******890",
                    "42",
                    "9",
                    "7",
                    "15",
                    "33",
                ] {
                    assert_eq!(
                        english.contains(value),
                        text.contains(value),
                        "{language}: {value} in {text:?}"
                    );
                }
                assert!(!text.chars().any(char::is_control), "{language}: {text:?}");
            }
        }
    }

    #[test]
    fn a_prompt_ends_where_the_person_types() {
        for language in Language::ALL {
            let prompt = Phrase::CodeSent {
                address: "a***@e***.com",
                minutes: 10,
            }
            .in_language(language);
            assert!(prompt.ends_with(": "), "{language}: {prompt:?}");
            let prompt = Phrase::CodeSentBy {
                channel: "SMS",
                destination: "+44*******890",
                minutes: 10,
            }
            .in_language(language);
            assert!(prompt.ends_with(": "), "{language}: {prompt:?}");
        }
    }
}
