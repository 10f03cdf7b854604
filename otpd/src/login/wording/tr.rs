//! The login texts in Turkish.

use super::Phrase;

pub(super) fn words(phrase: Phrase<'_>) -> String {
    match phrase {
        Phrase::CodeSent { address, minutes } => {
            format!("Kod {address} adresine gönderildi ({minutes} dk geçerli): ")
        }
        Phrase::CodeSentBy {
            channel,
            destination,
            minutes,
        } => format!(
            "Kod {channel} ile {destination} numarasına gönderildi ({minutes} dk geçerli): "
        ),
        Phrase::NoNewCodeYet { seconds } => {
            format!("Henüz yeni kod yok ({seconds} sn sonra mümkün). ")
        }
        Phrase::RecoveryPrompt { left } => format!(
            "Giriş kodu gönderilemedi. Bunun yerine bir kurtarma kodu girin ({left} kaldı): "
        ),
        Phrase::RefusedCaller => "Başka bir kullanıcının kodunu isteme izniniz yok.".into(),
        Phrase::InternalError => "Giriş kodu hizmetinde dahili bir hata oluştu.".into(),
        Phrase::NotSent => "Giriş kodu gönderilemedi. Daha sonra tekrar deneyin.".into(),
        Phrase::NoAddress => {
            "Giriş kodunuz için kayıtlı bir adres yok. Yöneticinize başvurun.".into()
        }
        Phrase::WrongCode => "Yanlış kod.".into(),
        Phrase::LogInAgain => "Parolanızın hemen ardından kodu yazarak tekrar giriş yapın.".into(),
        Phrase::CodeDead => {
            "Bu kod artık geçerli değil. Yeni bir kod için tekrar giriş yapın.".into()
        }
        Phrase::RecoveryAccepted { left } => {
            format!("Kurtarma kodu kabul edildi; tekrar kullanılamaz. {left} kurtarma kodu kaldı.")
        }
        Phrase::Locked {
            minutes,
            from_address,
        } => {
            let whose = if from_address { "Bu adresten ç" } else { "Ç" };
            format!("{whose}ok fazla yanlış kod girildi. {minutes} dakika sonra tekrar deneyin.")
        }
        Phrase::RateLimited { minutes } => {
            format!("Çok fazla kod gönderildi. {minutes} dakika sonra tekrar deneyin.")
        }
        Phrase::LookupLate => {
            "Giriş kodu hizmeti hesabınızı zamanında bulamadı. Daha sonra tekrar deneyin.".into()
        }
        Phrase::LookupFailed => {
            "Giriş kodu hizmeti hesabınızı bulamadı. Daha sonra tekrar deneyin.".into()
        }
        Phrase::Unreachable => {
            "Giriş kodu hizmetine ulaşılamıyor. Daha sonra tekrar deneyin.".into()
        }
    }
}
