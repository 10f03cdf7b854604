//! The login texts in Japanese.

use super::Phrase;

pub(super) fn words(phrase: Phrase<'_>) -> String {
    match phrase {
        Phrase::CodeSent { address, minutes } => {
            format!("{address} にコードを送信しました（有効期限 {minutes} 分）: ")
        }
        Phrase::CodeSentBy {
            channel,
            destination,
            minutes,
        } => format!("{channel} で {destination} にコードを送信しました（有効期限 {minutes} 分）: "),
        Phrase::NoNewCodeYet { seconds } => {
            format!("新しいコードはまだ送信できません（{seconds} 秒後に可能）。")
        }
        Phrase::RecoveryPrompt { left } => format!(
            "ログインコードをメールで送信できませんでした。代わりにリカバリーコードを入力してください（残り {left} 個）: "
        ),
        Phrase::RefusedCaller => "他のユーザーのコードを要求することは許可されていません。".into(),
        Phrase::InternalError => "ログインコードサービスで内部エラーが発生しました。".into(),
        Phrase::NotSent => {
            "ログインコードを送信できませんでした。しばらくしてから再度お試しください。".into()
        }
        Phrase::NoAddress => {
            "ログインコードの送信先アドレスが登録されていません。管理者に連絡してください。".into()
        }
        Phrase::WrongCode => "コードが正しくありません。".into(),
        Phrase::LogInAgain => "パスワードの直後にコードを続けて入力し、再度ログインしてください。".into(),
        Phrase::CodeDead => {
            "このコードは無効になりました。新しいコードを受け取るには再度ログインしてください。"
                .into()
        }
        Phrase::RecoveryAccepted { left } => format!(
            "リカバリーコードを受け付けました。このコードは再利用できません。残りのリカバリーコード: {left} 個。"
        ),
        Phrase::Locked {
            minutes,
            from_address,
        } => {
            let whose = if from_address {
                "このアドレスからの"
            } else {
                ""
            };
            format!("{whose}誤ったコードが多すぎます。{minutes} 分後に再度お試しください。")
        }
        Phrase::RateLimited { minutes } => {
            format!("送信されたコードが多すぎます。{minutes} 分後に再度お試しください。")
        }
        Phrase::LookupLate => "ログインコードサービスが時間内にアカウントを確認できませんでした。しばらくしてから再度お試しください。".into(),
        Phrase::LookupFailed => "ログインコードサービスがアカウントを確認できませんでした。しばらくしてから再度お試しください。".into(),
        Phrase::Unreachable => "ログインコードサービスに接続できません。しばらくしてから再度お試しください。".into(),
    }
}
