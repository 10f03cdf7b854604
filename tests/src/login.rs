//! One PAM login through libpam (loading the built module from a [`PamConfDir`]), recording
//! what the person was shown, and the answers a person gives: the code from the newest mail, or
//! nothing at all.

use std::sync::{Arc, Mutex};

use crate::libpam::{self, Message, MessageStyle, Transaction};
use crate::programs::answers;
use crate::smtp::MailReader;
use crate::stack::PamConfDir;

/// What a login showed and how it ended.
#[derive(Debug)]
pub struct LoginResult {
    /// What `pam_authenticate` returned.
    pub code: i32,
    /// The prompts, in order.
    pub prompts: Vec<String>,
    /// The error and info messages, in order.
    pub errors: Vec<String>,
}

impl LoginResult {
    /// The return code's name, e.g. `PAM_SUCCESS`.
    pub fn name(&self) -> &'static str {
        libpam::code_name(self.code)
    }

    /// Whether the login ended on a lockout (after its wrong answers, or before any prompt):
    /// PAM_MAXTRIES, and the last message says there were too many wrong codes.
    pub fn locked_out(&self) -> bool {
        self.name() == "PAM_MAXTRIES"
            && self
                .errors
                .last()
                .is_some_and(|e| e.starts_with("Too many wrong codes"))
    }
}

/// Runs one login through `service` in `pam` as `user` from `rhost`; `answer` replies to each
/// prompt (echo on or off).
pub fn login_with(
    pam: &PamConfDir,
    service: &str,
    user: &str,
    rhost: Option<&str>,
    mut answer: impl FnMut(&str) -> String + 'static,
) -> LoginResult {
    let seen = Arc::new(Mutex::new((Vec::new(), Vec::new())));
    let record = Arc::clone(&seen);
    let conv = move |message: &Message| {
        let mut seen = record.lock().unwrap();
        match message.style {
            MessageStyle::PromptEchoOff | MessageStyle::PromptEchoOn => {
                seen.0.push(message.text.clone());
                Some(answer(&message.text))
            }
            MessageStyle::ErrorMsg | MessageStyle::TextInfo => {
                seen.1.push(message.text.clone());
                None
            }
        }
    };
    let mut tx = Transaction::start(service, user, pam.path(), conv).expect("pam_start");
    if let Some(rhost) = rhost {
        tx.set_rhost(rhost).expect("set rhost");
    }
    let code = tx.authenticate();
    drop(tx);
    let (prompts, errors) = seen.lock().unwrap().clone();
    LoginResult {
        code,
        prompts,
        errors,
    }
}

/// Answers every prompt with the code of the newest mail, once at least `count` mails arrived.
pub fn mailed_code(reader: MailReader, count: usize) -> impl FnMut(&str) -> String {
    move |_| answers::mailed_code(&reader, count)
}

/// For a login that must not prompt: fails the test if it does.
pub fn never_prompted(prompt: &str) -> String {
    panic!("no prompt expected, got {prompt:?}")
}
