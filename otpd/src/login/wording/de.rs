//! The login texts in German.

use super::Phrase;

pub(super) fn words(phrase: Phrase<'_>) -> String {
    match phrase {
        Phrase::CodeSent { address, minutes } => {
            format!("Code gesendet an {address} (gültig {minutes} Min.): ")
        }
        Phrase::CodeSentBy {
            channel,
            destination,
            minutes,
        } => format!("Code per {channel} gesendet an {destination} (gültig {minutes} Min.): "),
        Phrase::NoNewCodeYet { seconds } => {
            format!("Noch kein neuer Code (möglich in {seconds} s). ")
        }
        Phrase::RecoveryPrompt { left } => format!(
            "Der Anmeldecode konnte nicht gesendet werden. Geben Sie stattdessen einen \
             Wiederherstellungscode ein (noch {left}): "
        ),
        Phrase::RefusedCaller => {
            "Sie dürfen den Code eines anderen Benutzers nicht anfordern.".into()
        }
        Phrase::InternalError => "Der Dienst für Anmeldecodes hat einen internen Fehler.".into(),
        Phrase::NotSent => {
            "Der Anmeldecode konnte nicht gesendet werden. Versuchen Sie es später erneut.".into()
        }
        Phrase::NoAddress => "Für Ihren Anmeldecode ist keine Adresse hinterlegt. \
                              Wenden Sie sich an Ihren Administrator."
            .into(),
        Phrase::WrongCode => "Falscher Code.".into(),
        Phrase::LogInAgain => {
            "Melden Sie sich erneut mit Ihrem Passwort und direkt danach dem Code an.".into()
        }
        Phrase::CodeDead => "Dieser Code ist nicht mehr gültig. Melden Sie sich erneut an, \
                             um einen neuen zu erhalten."
            .into(),
        Phrase::RecoveryAccepted { left } => format!(
            "Wiederherstellungscode angenommen; er kann nicht erneut verwendet werden. \
             Noch {left} Wiederherstellungscodes."
        ),
        Phrase::Locked {
            minutes,
            from_address,
        } => {
            let whose = if from_address {
                " von dieser Adresse"
            } else {
                ""
            };
            format!("Zu viele falsche Codes{whose}. Versuchen Sie es in {minutes} Minuten erneut.")
        }
        Phrase::RateLimited { minutes } => format!(
            "Es wurden zu viele Codes gesendet. Versuchen Sie es in {minutes} Minuten erneut."
        ),
        Phrase::LookupLate => "Der Dienst für Anmeldecodes konnte Ihr Konto nicht rechtzeitig \
                               finden. Versuchen Sie es später erneut."
            .into(),
        Phrase::LookupFailed => "Der Dienst für Anmeldecodes konnte Ihr Konto nicht finden. \
                                 Versuchen Sie es später erneut."
            .into(),
        Phrase::Unreachable => {
            "Der Dienst für Anmeldecodes ist nicht erreichbar. Versuchen Sie es später erneut."
                .into()
        }
    }
}
