//! What a login's answer says, before it is put into words: one variant per text, with the
//! values it shows. Each language's file words every variant (a `match` without a fallback, so
//! a text added here is a compile error until every language has it).

use common::config::Language;

use super::{de, en, es, fr, ja, tr};

/// One text a login shows the person.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phrase<'a> {
    /// The prompt for a mailed code: the masked address, whole minutes it stays valid.
    CodeSent { address: &'a str, minutes: i64 },
    /// The prompt for a code sent by a webhook channel (named as the config shows it) to a
    /// masked phone number, whole minutes it stays valid.
    CodeSentBy {
        channel: &'a str,
        destination: &'a str,
        minutes: i64,
    },
    /// Before [`Phrase::CodeSent`] when a new code was asked for too early.
    NoNewCodeYet { seconds: i64 },
    /// The prompt when the mail failed and recovery codes are left.
    RecoveryPrompt { left: u32 },
    /// A caller asked for another user's code.
    RefusedCaller,
    /// The store or a thread failed.
    InternalError,
    /// No mail server took the code.
    NotSent,
    /// An enrolled user has no usable address.
    NoAddress,
    /// A wrong answer.
    WrongCode,
    /// After a login that sends the code after the password came with the password alone.
    LogInAgain,
    /// An answer to an expired, used or superseded code.
    CodeDead,
    /// A recovery code logged the person in.
    RecoveryAccepted { left: u32 },
    /// Locked out, by the user's own failures or (`from_address`) the remote address's.
    Locked { minutes: i64, from_address: bool },
    /// The mail caps are reached.
    RateLimited { minutes: i64 },
    /// The user's facts did not come within the directory's deadline.
    LookupLate,
    /// A directory (LDAP) could not be asked and had nothing cached.
    LookupFailed,
    /// A relay (DMZ) otpd could not reach the main otpd, or it did not answer in time.
    Unreachable,
}

impl Phrase<'_> {
    /// The phrase in `language`.
    pub fn in_language(self, language: Language) -> String {
        match language {
            Language::English => en::words(self),
            Language::German => de::words(self),
            Language::French => fr::words(self),
            Language::Spanish => es::words(self),
            Language::Turkish => tr::words(self),
            Language::Japanese => ja::words(self),
        }
    }
}
