//! The normal role after a split: this module's line below the password module in a
//! single-secret stack, reading what the split line stashed.
//!
//! Nobody can answer a prompt here, so none is shown. A stashed code is verified. A secret that
//! was the password alone has just been accepted by the password module (`requisite` stops the
//! stack before us otherwise), so now, and only now, may a code be mailed: nobody can make otpd
//! mail a user by guessing a user name. That login fails with a message saying to log in again
//! with the password followed by the code.

use common::secret::SecretString;
use common::wire::{LoginContext, Request, Response};

use super::{Daemon, Flow, LoginHandle};
use crate::outcome::Outcome;

/// What the module adds when otpd gave no words of its own (an older otpd).
const LOG_IN_AGAIN: &str = "Log in again with your password followed by the code.";

/// What a single-secret client is told after a code was mailed, built from otpd's prompt text
/// (which names the masked address and the validity): `Code sent to a***@e***.com (valid 10
/// min): ` becomes `Code sent to a***@e***.com (valid 10 min). Log in again with your password
/// followed by the code.` The last sentence is otpd's `again`, in the prompt's language.
pub fn mailed_message(prompt: &str, again: Option<&str>) -> String {
    let again = again.unwrap_or(LOG_IN_AGAIN);
    let notice = prompt.trim_end().trim_end_matches(':').trim_end();
    if notice.is_empty() {
        format!("A login code was sent by mail. {again}")
    } else if notice.ends_with(['.', '!', '?']) {
        format!("{notice} {again}")
    } else {
        format!("{notice}. {again}")
    }
}

impl<H: LoginHandle, D: Daemon> Flow<'_, H, D> {
    /// The secret ended with a code: otpd checks it against the live code or a reuse grant.
    pub(super) fn verify_stashed(&mut self, login: LoginContext, code: SecretString) -> Outcome {
        self.debug(|| "a code came with the password: asking otpd to verify it".to_owned());
        match self.call("verify", &Request::Verify { login, code }) {
            Ok(Response::Success) => Outcome::Success,
            Ok(other) => self.refused("verify", other),
            Err(outcome) => outcome,
        }
    }

    /// The secret was the password alone, and the password module accepted it: begin, which
    /// mails a code when one is needed, and fail this login telling the person so.
    pub(super) fn begin_after_password(&mut self, login: LoginContext) -> Outcome {
        self.debug(|| "the password came without a code: beginning".to_owned());
        match self.call(
            "begin",
            &Request::Begin {
                login,
                ssh_keys: Vec::new(),
            },
        ) {
            Ok(Response::Prompt {
                prompt,
                log_in_again,
                ..
            }) => {
                let message = mailed_message(&prompt, log_in_again.as_deref());
                self.handle.error_message(&message);
                Outcome::CodeMailed
            }
            Ok(Response::Skip { reason }) => Outcome::Skipped(reason),
            Ok(Response::Success) => Outcome::Success,
            Ok(other) => self.refused("begin", other),
            Err(outcome) => outcome,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::fakes::*;
    use super::super::{LogLevel, Settings, Stash};
    use super::*;
    use common::wire::{DenyReason, SkipReason};
    use pam::constants::PamResultCode;

    use crate::outcome::pam_code;

    #[test]
    fn the_mailed_message_is_otpds_notice_and_what_to_do() {
        assert_eq!(
            mailed_message("Code sent to a***@e***.test (valid 10 min): ", None),
            "Code sent to a***@e***.test (valid 10 min). Log in again with your password \
             followed by the code."
        );
        assert_eq!(
            mailed_message("No new code yet (possible in 42 s). Enter the code: ", None),
            "No new code yet (possible in 42 s). Enter the code. Log in again with your \
             password followed by the code."
        );
        assert_eq!(
            mailed_message("Code sent.", None),
            "Code sent. Log in again with your password followed by the code."
        );
        assert_eq!(
            mailed_message(" : ", None),
            "A login code was sent by mail. Log in again with your password followed by the code."
        );
    }

    #[test]
    fn a_stashed_code_is_verified_without_any_prompt() {
        let mut handle = FakeHandle::ftp_login().stashed(stashed_code("482913"));
        let daemon = FakeDaemon::ftp().verify("482913", Response::Success);
        let outcome = run_scripted(&mut handle, &daemon, &Settings::default());
        assert_eq!(outcome, Outcome::Success);
        assert!(handle.prompts_shown.is_empty());
        assert!(handle.stash.is_none(), "the stash serves one login only");
    }

    #[test]
    fn a_wrong_stashed_code_is_denied_without_a_second_chance() {
        let mut handle = FakeHandle::ftp_login().stashed(stashed_code("000000"));
        let daemon =
            FakeDaemon::ftp().verify("000000", denied(DenyReason::WrongCode, "Wrong code."));
        let outcome = run_scripted(&mut handle, &daemon, &Settings::default());
        assert_eq!(outcome, Outcome::Denied(DenyReason::WrongCode));
        assert_eq!(pam_code(outcome), PamResultCode::PAM_AUTH_ERR);
        assert!(handle.prompts_shown.is_empty());
        assert_eq!(handle.errors_shown, vec!["Wrong code.".to_owned()]);
    }

    #[test]
    fn every_refusal_of_a_stashed_code_keeps_its_reason() {
        for (response, outcome) in [
            (
                denied(DenyReason::CodeDead, "Expired."),
                Outcome::Denied(DenyReason::CodeDead),
            ),
            (
                denied(DenyReason::LockedOut, "Locked."),
                Outcome::Denied(DenyReason::LockedOut),
            ),
            (
                Response::Unavailable {
                    message: "Later.".into(),
                },
                Outcome::Unavailable,
            ),
            (
                Response::Error {
                    message: "bad".into(),
                },
                Outcome::DaemonError,
            ),
        ] {
            let mut handle = FakeHandle::ftp_login().stashed(stashed_code("482913"));
            let daemon = FakeDaemon::ftp().verify("482913", response);
            assert_eq!(
                run_scripted(&mut handle, &daemon, &Settings::default()),
                outcome
            );
        }
    }

    #[test]
    fn a_skip_or_prompt_in_answer_to_verify_is_a_protocol_error() {
        for response in [
            Response::Skip {
                reason: SkipReason::ModeOff,
            },
            prompt(),
        ] {
            let mut handle = FakeHandle::ftp_login().stashed(stashed_code("482913"));
            let daemon = FakeDaemon::ftp().verify("482913", response);
            assert_eq!(
                run_scripted(&mut handle, &daemon, &Settings::default()),
                Outcome::ProtocolError
            );
            assert!(handle.prompts_shown.is_empty());
        }
    }

    /// Issue #22: the sentence after the notice is otpd's, in the prompt's language.
    #[test]
    fn the_mailed_message_says_what_to_do_in_otpds_words_when_it_gave_them() {
        let mut handle = FakeHandle::ftp_login().stashed(Stash::NoCode);
        let daemon = FakeDaemon::ftp().begin(Response::Prompt {
            challenge: CHALLENGE.into(),
            prompt: "Code gesendet an a***@e***.test (gültig 10 Min.): ".into(),
            wrong_code: None,
            log_in_again: Some("Melden Sie sich erneut an.".into()),
        });
        assert_eq!(
            run_scripted(&mut handle, &daemon, &Settings::default()),
            Outcome::CodeMailed
        );
        assert_eq!(
            handle.errors_shown,
            vec![
                "Code gesendet an a***@e***.test (gültig 10 Min.). Melden Sie sich erneut an."
                    .to_owned()
            ]
        );
    }

    #[test]
    fn the_password_alone_begins_shows_the_mailed_message_and_fails_without_a_prompt() {
        let mut handle = FakeHandle::ftp_login().stashed(Stash::NoCode);
        let daemon = FakeDaemon::ftp().begin(Response::Prompt {
            challenge: CHALLENGE.into(),
            prompt: "Code sent to a***@e***.test (valid 10 min): ".into(),
            wrong_code: None,
            log_in_again: None,
        });
        let outcome = run_scripted(&mut handle, &daemon, &Settings::default());
        assert_eq!(outcome, Outcome::CodeMailed);
        assert_eq!(pam_code(outcome), PamResultCode::PAM_AUTH_ERR);
        assert!(handle.prompts_shown.is_empty());
        assert_eq!(
            handle.errors_shown,
            vec![
                "Code sent to a***@e***.test (valid 10 min). Log in again with your password \
                 followed by the code."
                    .to_owned()
            ]
        );
        assert!(handle.stash.is_none());
    }

    #[test]
    fn the_password_alone_with_no_code_needed_is_ignore_never_success() {
        let mut handle = FakeHandle::ftp_login().stashed(Stash::NoCode);
        let daemon = FakeDaemon::ftp().begin(Response::Skip {
            reason: SkipReason::NotEnrolled,
        });
        let outcome = run_scripted(&mut handle, &daemon, &Settings::default());
        assert_eq!(outcome, Outcome::Skipped(SkipReason::NotEnrolled));
        assert_eq!(pam_code(outcome), PamResultCode::PAM_IGNORE);
        assert!(handle.errors_shown.is_empty());
    }

    #[test]
    fn a_refusal_after_the_password_alone_is_shown() {
        let mut handle = FakeHandle::ftp_login().stashed(Stash::NoCode);
        let daemon =
            FakeDaemon::ftp().begin(denied(DenyReason::RateLimited, "Too many codes sent."));
        let outcome = run_scripted(&mut handle, &daemon, &Settings::default());
        assert_eq!(outcome, Outcome::Denied(DenyReason::RateLimited));
        assert_eq!(handle.errors_shown, vec!["Too many codes sent.".to_owned()]);
        assert!(handle.prompts_shown.is_empty());
    }

    #[test]
    fn without_a_stash_the_normal_role_prompts() {
        let mut handle = FakeHandle::ftp_login().answering(typed("482913"));
        let daemon = FakeDaemon::ftp()
            .begin(prompt())
            .answer("482913", Response::Success);
        assert_eq!(
            run_scripted(&mut handle, &daemon, &Settings::default()),
            Outcome::Success
        );
        assert_eq!(handle.prompts_shown, vec![PROMPT.to_owned()]);
    }

    #[test]
    fn a_stash_is_used_once_then_the_next_login_prompts() {
        let mut handle = FakeHandle::ftp_login().stashed(stashed_code("482913"));
        let daemon = FakeDaemon::ftp().verify("482913", Response::Success);
        run_scripted(&mut handle, &daemon, &Settings::default());

        handle.prompts.push_back(typed("771204"));
        let daemon = FakeDaemon::ftp()
            .begin(prompt())
            .answer("771204", Response::Success);
        assert_eq!(
            run_scripted(&mut handle, &daemon, &Settings::default()),
            Outcome::Success
        );
    }

    #[test]
    fn the_whole_two_line_stack_hands_the_code_from_split_to_verify() {
        let mut handle = FakeHandle::ftp_login().answering(typed("hunter2482913"));
        let daemon = FakeDaemon::ftp()
            .probe(Response::Probe {
                code_length: 6,
                expects_code: true,
            })
            .verify("482913", Response::Success);
        let settings = Settings {
            debug: true,
            ..Settings::default()
        };
        let split = Settings {
            split: true,
            ..settings.clone()
        };
        assert_eq!(
            crate::flow::run(&mut handle, &daemon, &split),
            Outcome::SecretSplit
        );
        // pam_unix use_first_pass would read this.
        assert_eq!(handle.authtok.as_deref(), Some(&b"hunter2"[..]));
        assert_eq!(
            run_scripted(&mut handle, &daemon, &settings),
            Outcome::Success
        );
        handle.assert_logs_never_contain(&["482913", "hunter2"]);
        assert!(!handle.logged(LogLevel::Debug).is_empty());
    }

    #[test]
    fn the_whole_two_line_stack_with_the_password_alone_mails_and_fails() {
        let mut handle = FakeHandle::ftp_login().answering(typed("hunter2"));
        let daemon = FakeDaemon::ftp()
            .probe(Response::Probe {
                code_length: 6,
                expects_code: false,
            })
            .begin(prompt());
        assert_eq!(
            crate::flow::run(&mut handle, &daemon, &split_role()),
            Outcome::SecretSplit
        );
        assert_eq!(
            run_scripted(&mut handle, &daemon, &Settings::default()),
            Outcome::CodeMailed
        );
        assert_eq!(
            handle.prompts_shown,
            vec![crate::flow::PASSWORD_PROMPT.to_owned()]
        );
    }
}
