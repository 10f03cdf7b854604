//! The login texts in English.

use super::Phrase;

pub(super) fn words(phrase: Phrase<'_>) -> String {
    match phrase {
        Phrase::CodeSent { address, minutes } => {
            format!("Code sent to {address} (valid {minutes} min): ")
        }
        Phrase::CodeSentBy {
            channel,
            destination,
            minutes,
        } => format!("Code sent by {channel} to {destination} (valid {minutes} min): "),
        Phrase::NoNewCodeYet { seconds } => {
            format!("No new code yet (possible in {seconds} s). ")
        }
        Phrase::RecoveryPrompt { left } => format!(
            "The login code could not be mailed. Enter a recovery code instead ({left} left): "
        ),
        Phrase::RefusedCaller => "Not allowed to ask for another user's code.".into(),
        Phrase::InternalError => "The login code service has an internal error.".into(),
        Phrase::NotSent => "The login code could not be sent. Try again later.".into(),
        Phrase::NoAddress => {
            "No address is on file for your login code. Ask your administrator.".into()
        }
        Phrase::WrongCode => "Wrong code.".into(),
        Phrase::LogInAgain => "Log in again with your password followed by the code.".into(),
        Phrase::CodeDead => "This code is no longer valid. Log in again for a new one.".into(),
        Phrase::RecoveryAccepted { left } => {
            format!("Recovery code accepted; it cannot be used again. {left} recovery codes left.")
        }
        Phrase::Locked {
            minutes,
            from_address,
        } => {
            let whose = if from_address {
                " from this address"
            } else {
                ""
            };
            format!("Too many wrong codes{whose}. Try again in {minutes} minutes.")
        }
        Phrase::RateLimited { minutes } => {
            format!("Too many codes were sent. Try again in {minutes} minutes.")
        }
        Phrase::LookupLate => {
            "The login code service could not look up your account in time. Try again later.".into()
        }
        Phrase::LookupFailed => {
            "The login code service could not look up your account. Try again later.".into()
        }
        Phrase::Unreachable => "The login code service cannot be reached. Try again later.".into(),
    }
}
