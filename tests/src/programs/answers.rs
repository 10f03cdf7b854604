//! Answering prompts the way a person does: the password, then the code from the newest mail.

use crate::smtp::{MAIL_WAIT, MailReader};

/// Whether `prompt` asks for the password (pam_unix's `Password: `).
pub fn is_password_prompt(prompt: &str) -> bool {
    prompt.contains("Password")
}

/// Whether `prompt` asks for the code (the module's `Code sent to ...`).
pub fn is_code_prompt(prompt: &str) -> bool {
    prompt.contains("Code")
}

/// The code of the newest code mail once at least `count` code mails arrived (notifications
/// do not count); panics when they do not.
pub fn mailed_code(reader: &MailReader, count: usize) -> String {
    let mails = reader.wait_for_codes(count, MAIL_WAIT);
    assert!(
        mails.len() >= count,
        "expected {count} code mails, got {}",
        mails.len()
    );
    mails.last().expect("a mail").code()
}

/// `code` with its last digit changed: certainly wrong, same shape.
pub fn wrong(code: &str) -> String {
    let mut digits: Vec<char> = code.chars().collect();
    if let Some(last) = digits.last_mut() {
        *last = if *last == '0' { '1' } else { '0' };
    }
    digits.into_iter().collect()
}

/// Answers the password prompt with `password` and each code prompt with the code of the newest
/// mail (waiting for mail number `mail`); panics on any other prompt.
pub fn person(password: &str, reader: MailReader, mail: usize) -> impl FnMut(&str) -> String {
    let password = password.to_string();
    move |prompt| {
        if is_password_prompt(prompt) {
            password.clone()
        } else if is_code_prompt(prompt) {
            mailed_code(&reader, mail)
        } else {
            panic!("unexpected prompt {prompt:?}")
        }
    }
}

/// Answers the password prompt with `password` and every code prompt with a wrong code (after
/// the code arrived, so the wrong answer is checked against a live code).
pub fn wrong_codes(password: &str, reader: MailReader) -> impl FnMut(&str) -> String {
    let password = password.to_string();
    move |prompt| {
        if is_password_prompt(prompt) {
            password.clone()
        } else if is_code_prompt(prompt) {
            wrong(&mailed_code(&reader, 1))
        } else {
            panic!("unexpected prompt {prompt:?}")
        }
    }
}
