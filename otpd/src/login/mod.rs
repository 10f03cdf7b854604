//! The login handler: answers the module's requests (begin, resend, probe, verify, answer) on
//! one forward path, facts -> policy -> store -> delivery -> answer.
//!
//! The login's facts (may the caller act for the user, the user's row and groups) are resolved
//! first, on a blocking thread and within [`crate::directory::DEADLINE`], with no store
//! transaction open, unless they come from otpd's own table alone: those are read in the
//! login's transaction, with the first read of the store work that follows (`facts`); the
//! decision over them is pure ([`crate::policy`], asked by `needs_code`); the store work then
//! runs in short transactions, also on a blocking thread;
//! only the mail send is awaited, outside the store lock (`begin`, through
//! [`crate::delivery`]). The runtime's thread only reads and answers connections, so neither a
//! slow directory, a busy store nor a slow mail server holds up other logins.
//!
//! One file per request (`begin`, `answer`, `probe`, `verify_appended`) and per step
//! they share: `fields` (the untrusted fields checked), `asker` (whose word is believed),
//! `facts`, `needs_code` (the checks every code request starts with), `verdict` (a
//! checked code's outcome, audited and worded) and `wording` (the texts of the answers).
//! Only [`crate::dispatch`] calls in here; nothing in here reaches admin or dispatch.

mod answer;
mod asker;
mod begin;
mod facts;
mod fields;
mod needs_code;
mod probe;
mod relayed;
mod verdict;
mod verify_appended;
mod wording;

pub use answer::answer;
pub use begin::{Mode, begin};
pub use probe::probe;
pub use relayed::relayed;
pub use verify_appended::verify_appended;

#[cfg(test)]
mod testing;
