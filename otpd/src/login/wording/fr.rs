//! The login texts in French (with the space French puts before ":").

use super::Phrase;

pub(super) fn words(phrase: Phrase<'_>) -> String {
    match phrase {
        Phrase::CodeSent { address, minutes } => {
            format!("Code envoyé à {address} (valable {minutes} min) : ")
        }
        Phrase::CodeSentBy {
            channel,
            destination,
            minutes,
        } => format!("Code envoyé par {channel} à {destination} (valable {minutes} min) : "),
        Phrase::NoNewCodeYet { seconds } => {
            format!("Pas encore de nouveau code (possible dans {seconds} s). ")
        }
        Phrase::RecoveryPrompt { left } => format!(
            "Le code de connexion n'a pas pu être envoyé. Saisissez plutôt un code de secours \
             (il en reste {left}) : "
        ),
        Phrase::RefusedCaller => {
            "Vous n'êtes pas autorisé à demander le code d'un autre utilisateur.".into()
        }
        Phrase::InternalError => {
            "Le service des codes de connexion a rencontré une erreur interne.".into()
        }
        Phrase::NotSent => {
            "Le code de connexion n'a pas pu être envoyé. Réessayez plus tard.".into()
        }
        Phrase::NoAddress => "Aucune adresse n'est enregistrée pour votre code de connexion. \
                              Contactez votre administrateur."
            .into(),
        Phrase::WrongCode => "Code incorrect.".into(),
        Phrase::LogInAgain => "Reconnectez-vous avec votre mot de passe suivi du code.".into(),
        Phrase::CodeDead => {
            "Ce code n'est plus valable. Reconnectez-vous pour en recevoir un nouveau.".into()
        }
        Phrase::RecoveryAccepted { left } => format!(
            "Code de secours accepté ; il ne peut plus être utilisé. \
             Il reste {left} codes de secours."
        ),
        Phrase::Locked {
            minutes,
            from_address,
        } => {
            let whose = if from_address {
                " depuis cette adresse"
            } else {
                ""
            };
            format!("Trop de codes incorrects{whose}. Réessayez dans {minutes} minutes.")
        }
        Phrase::RateLimited { minutes } => {
            format!("Trop de codes ont été envoyés. Réessayez dans {minutes} minutes.")
        }
        Phrase::LookupLate => "Le service des codes de connexion n'a pas pu trouver votre \
                               compte à temps. Réessayez plus tard."
            .into(),
        Phrase::LookupFailed => "Le service des codes de connexion n'a pas pu trouver votre \
                                 compte. Réessayez plus tard."
            .into(),
        Phrase::Unreachable => {
            "Le service des codes de connexion est injoignable. Réessayez plus tard.".into()
        }
    }
}
