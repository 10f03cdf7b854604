//! The login texts in Spanish.

use super::Phrase;

pub(super) fn words(phrase: Phrase<'_>) -> String {
    match phrase {
        Phrase::CodeSent { address, minutes } => {
            format!("Código enviado a {address} (válido {minutes} min): ")
        }
        Phrase::CodeSentBy {
            channel,
            destination,
            minutes,
        } => format!("Código enviado por {channel} a {destination} (válido {minutes} min): "),
        Phrase::NoNewCodeYet { seconds } => {
            format!("Aún no hay un código nuevo (posible en {seconds} s). ")
        }
        Phrase::RecoveryPrompt { left } => format!(
            "No se pudo enviar el código de inicio de sesión. Introduzca un código de \
             recuperación (quedan {left}): "
        ),
        Phrase::RefusedCaller => "No se permite solicitar el código de otro usuario.".into(),
        Phrase::InternalError => {
            "El servicio de códigos de inicio de sesión tiene un error interno.".into()
        }
        Phrase::NotSent => {
            "No se pudo enviar el código de inicio de sesión. Inténtelo más tarde.".into()
        }
        Phrase::NoAddress => "No hay ninguna dirección registrada para su código de inicio de \
                              sesión. Consulte a su administrador."
            .into(),
        Phrase::WrongCode => "Código incorrecto.".into(),
        Phrase::LogInAgain => {
            "Vuelva a iniciar sesión con su contraseña seguida del código.".into()
        }
        Phrase::CodeDead => {
            "Este código ya no es válido. Inicie sesión de nuevo para recibir uno nuevo.".into()
        }
        Phrase::RecoveryAccepted { left } => format!(
            "Código de recuperación aceptado; no se puede volver a usar. \
             Quedan {left} códigos de recuperación."
        ),
        Phrase::Locked {
            minutes,
            from_address,
        } => {
            let whose = if from_address {
                " desde esta dirección"
            } else {
                ""
            };
            format!(
                "Demasiados códigos incorrectos{whose}. Inténtelo de nuevo en {minutes} minutos."
            )
        }
        Phrase::RateLimited { minutes } => {
            format!("Se enviaron demasiados códigos. Inténtelo de nuevo en {minutes} minutos.")
        }
        Phrase::LookupLate => "El servicio de códigos de inicio de sesión no pudo encontrar su \
                               cuenta a tiempo. Inténtelo más tarde."
            .into(),
        Phrase::LookupFailed => "El servicio de códigos de inicio de sesión no pudo encontrar \
                                 su cuenta. Inténtelo más tarde."
            .into(),
        Phrase::Unreachable => "No se puede contactar con el servicio de códigos de inicio de sesión. Inténtelo más tarde.".into(),
    }
}
