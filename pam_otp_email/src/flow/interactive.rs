//! Interactive logins (sshd keyboard-interactive, su, login): begin, then prompt for the code.
//!
//! Up to `tries=` answers per login. An empty answer asks otpd for a new code (otpd applies the
//! resend cooldown and words the next prompt); a wrong code shows otpd's message and asks again
//! for the same challenge. Each prompt, whatever its answer, uses one try.

use common::secret::SecretString;
use common::wire::{DenyReason, LoginContext, Request, Response};

use super::{ConvError, Daemon, Flow, LoginHandle, MAX_ANSWER_LEN, WRONG_CODE_MESSAGE};
use crate::outcome::Outcome;
use crate::secret::SecretBytes;

/// What one prompt got.
enum Typed {
    /// Nothing: the person wants a new code.
    Nothing,
    /// Something that cannot be a code (too long, not UTF-8): a wrong try, otpd is not asked.
    Unusable(&'static str),
    /// A code to send.
    Code(SecretString),
}

/// Where one answer leaves the login.
enum Next {
    /// Ask again, if a try is left.
    Retry,
    /// The login is decided.
    Done(Outcome),
}

/// The challenge being answered and the text that asks for it.
struct Challenge {
    id: String,
    prompt: String,
    /// otpd's words for an answer that cannot be a code, in the prompt's language.
    wrong_code: Option<String>,
}

impl Challenge {
    fn new(id: String, prompt: String, wrong_code: Option<String>) -> Challenge {
        Challenge {
            id,
            prompt,
            wrong_code,
        }
    }
}

impl<H: LoginHandle, D: Daemon> Flow<'_, H, D> {
    /// Begins the login and, when otpd asks for a code, prompts for it.
    pub(super) fn interactive(&mut self, login: LoginContext) -> Outcome {
        let ssh_keys = super::ssh_keys(&self.handle.ssh_auth_info().unwrap_or_default());
        self.debug(|| format!("ssh keys from SSH_AUTH_INFO_0: {}", ssh_keys.len()));
        let request = Request::Begin {
            login: login.clone(),
            ssh_keys,
        };
        match self.call("begin", &request) {
            Ok(Response::Skip { reason }) => Outcome::Skipped(reason),
            Ok(Response::Success) => Outcome::Success,
            Ok(Response::Prompt {
                challenge,
                prompt,
                wrong_code,
                ..
            }) => self.prompts(&login, Challenge::new(challenge, prompt, wrong_code)),
            Ok(other) => self.refused("begin", other),
            Err(outcome) => outcome,
        }
    }

    /// Prompts up to `tries=` times.
    fn prompts(&mut self, login: &LoginContext, mut challenge: Challenge) -> Outcome {
        let tries = self.settings.tries.max(1);
        // Wrong answers so far, for the log line when the person gives up (sshd's client closes
        // the connection): "the conversation failed" alone hides that a wrong code came first.
        let mut wrong: u8 = 0;
        for try_number in 1..=tries {
            let last = try_number == tries;
            let typed = match self.handle.prompt(&challenge.prompt, self.settings.echo) {
                Ok(typed) => typed,
                Err(ConvError::Failed) => {
                    self.debug(|| "the conversation failed at the prompt".to_owned());
                    if wrong > 0 {
                        let plural = if wrong == 1 { "" } else { "s" };
                        self.detail = Some(format!("after {wrong} wrong code{plural}"));
                    }
                    return Outcome::ConversationFailed;
                }
            };
            let typed = read(typed);
            let answered = !matches!(typed, Typed::Nothing);
            let next = match typed {
                // On the last try a new code could never be typed: none is mailed.
                Typed::Nothing if last => {
                    self.debug(|| "empty answer on the last try: no new code".to_owned());
                    Next::Retry
                }
                Typed::Nothing => match self.resend(login) {
                    Ok(next) => {
                        challenge = next;
                        Next::Retry
                    }
                    Err(outcome) => Next::Done(outcome),
                },
                Typed::Unusable(why) => {
                    self.debug(|| format!("the answer {why}: a wrong try, otpd is not asked"));
                    let message = challenge
                        .wrong_code
                        .as_deref()
                        .unwrap_or(WRONG_CODE_MESSAGE);
                    self.handle.error_message(message);
                    Next::Retry
                }
                Typed::Code(code) => self.answer(login, &challenge.id, code),
            };
            match next {
                Next::Done(outcome) => return outcome,
                // An answer that did not end the login was a wrong one.
                Next::Retry if answered => wrong = wrong.saturating_add(1),
                Next::Retry => {}
            }
        }
        self.debug(|| format!("all {tries} tries used"));
        Outcome::TriesExhausted
    }

    /// Asks otpd for a new code; its answer is the challenge to prompt for next.
    fn resend(&mut self, login: &LoginContext) -> Result<Challenge, Outcome> {
        self.debug(|| "empty answer: asking otpd for a new code".to_owned());
        let request = Request::Resend {
            login: login.clone(),
        };
        match self.call("resend", &request)? {
            Response::Prompt {
                challenge,
                prompt,
                wrong_code,
                ..
            } => Ok(Challenge::new(challenge, prompt, wrong_code)),
            other => Err(self.refused("resend", other)),
        }
    }

    /// Sends one typed code.
    fn answer(&mut self, login: &LoginContext, challenge: &str, code: SecretString) -> Next {
        self.debug(|| format!("sending the answer ({} bytes) to otpd", code.len()));
        let request = Request::Answer {
            login: login.clone(),
            challenge: challenge.to_owned(),
            code,
        };
        match self.call("answer", &request) {
            Ok(Response::Success) => Next::Done(Outcome::Success),
            Ok(Response::SuccessWithNotice { message }) => {
                self.handle.error_message(&message);
                Next::Done(Outcome::Success)
            }
            Ok(Response::Denied {
                reason: DenyReason::WrongCode,
                message,
            }) => {
                self.handle.error_message(&message);
                Next::Retry
            }
            Ok(other) => Next::Done(self.refused("answer", other)),
            Err(outcome) => Next::Done(outcome),
        }
    }
}

/// Sorts what was typed. The length is checked before anything else looks at it.
fn read(typed: Option<SecretBytes>) -> Typed {
    let Some(typed) = typed.filter(|t| !t.is_empty()) else {
        return Typed::Nothing;
    };
    if typed.len() > MAX_ANSWER_LEN {
        return Typed::Unusable("is too long");
    }
    match typed.to_secret_string() {
        Some(code) => Typed::Code(code),
        None => Typed::Unusable("is not UTF-8"),
    }
}

#[cfg(test)]
mod tests {
    use super::super::fakes::*;
    use super::super::{LogLevel, Settings};
    use super::*;
    use common::wire::SkipReason;

    const RESENT_CHALLENGE: &str = "ch-9b21";
    const RESENT_PROMPT: &str = "New code sent to a***@e***.com (valid 10 min): ";
    const TOO_EARLY_PROMPT: &str =
        "No new code yet (possible in 42 s). Code sent to a***@e***.com (valid 10 min): ";

    fn resent() -> Response {
        Response::Prompt {
            challenge: RESENT_CHALLENGE.into(),
            prompt: RESENT_PROMPT.into(),
            wrong_code: None,
            log_in_again: None,
        }
    }

    fn wrong() -> Response {
        denied(DenyReason::WrongCode, "Wrong code.")
    }

    fn tries(tries: u8) -> Settings {
        Settings {
            tries,
            ..Settings::default()
        }
    }

    #[test]
    fn the_right_code_sends_the_same_challenge_and_the_typed_code() {
        let mut handle = FakeHandle::ssh_login().answering(typed("482913"));
        let daemon = FakeDaemon::default()
            .begin(prompt())
            .answer("482913", Response::Success);
        let outcome = run_scripted(&mut handle, &daemon, &Settings::default());
        assert_eq!(outcome, Outcome::Success);
        assert_eq!(handle.prompts_shown, vec![PROMPT.to_owned()]);
        assert!(handle.errors_shown.is_empty());
    }

    #[test]
    fn a_success_with_a_notice_logs_in_and_shows_the_notice() {
        let notice = "Recovery code accepted; it cannot be used again. 9 recovery codes left.";
        let mut handle = FakeHandle::ssh_login().answering(typed("abcde-fghjk"));
        let daemon = FakeDaemon::default().begin(prompt()).answer(
            "abcde-fghjk",
            Response::SuccessWithNotice {
                message: notice.into(),
            },
        );
        let outcome = run_scripted(&mut handle, &daemon, &Settings::default());
        assert_eq!(outcome, Outcome::Success);
        assert_eq!(handle.errors_shown, vec![notice.to_owned()]);
    }

    #[test]
    fn the_code_prompt_hides_what_is_typed_unless_echo_is_set() {
        for echo in [false, true] {
            let mut handle = FakeHandle::ssh_login()
                .answering(typed(""))
                .answering(typed("482913"));
            let daemon = FakeDaemon::default()
                .begin(prompt())
                .resend(prompt())
                .answer("482913", Response::Success);
            let settings = Settings {
                echo,
                ..Settings::default()
            };
            assert_eq!(
                run_scripted(&mut handle, &daemon, &settings),
                Outcome::Success
            );
            assert_eq!(handle.echoes, vec![echo, echo]);
        }
    }

    #[test]
    fn every_skip_shows_no_prompt_and_sends_no_answer() {
        for reason in [
            SkipReason::ProtocolNotEnabled,
            SkipReason::UnknownService,
            SkipReason::ModeOff,
            SkipReason::NotEnrolled,
            SkipReason::NoAddress,
            SkipReason::Exempt,
            SkipReason::DryRun,
        ] {
            let mut handle = FakeHandle::ssh_login();
            let daemon = FakeDaemon::default().begin(Response::Skip { reason });
            let outcome = run_scripted(&mut handle, &daemon, &Settings::default());
            assert_eq!(outcome, Outcome::Skipped(reason));
            assert!(handle.prompts_shown.is_empty());
            assert!(handle.errors_shown.is_empty());
        }
    }

    #[test]
    fn an_empty_answer_asks_for_a_new_code_and_shows_the_new_prompt() {
        for empty in [typed(""), Ok(None)] {
            let mut handle = FakeHandle::ssh_login()
                .answering(empty)
                .answering(typed("771204"));
            let daemon = FakeDaemon::default()
                .begin(prompt())
                .resend(resent())
                .answer_to(RESENT_CHALLENGE, "771204", Response::Success);
            let outcome = run_scripted(&mut handle, &daemon, &Settings::default());
            assert_eq!(outcome, Outcome::Success);
            assert_eq!(
                handle.prompts_shown,
                vec![PROMPT.to_owned(), RESENT_PROMPT.to_owned()]
            );
            assert!(handle.errors_shown.is_empty());
        }
    }

    #[test]
    fn a_resend_within_the_cooldown_shows_otpds_wait_and_keeps_the_challenge() {
        let too_early = Response::Prompt {
            challenge: CHALLENGE.into(),
            prompt: TOO_EARLY_PROMPT.into(),
            wrong_code: None,
            log_in_again: None,
        };
        let mut handle = FakeHandle::ssh_login()
            .answering(typed(""))
            .answering(typed("482913"));
        let daemon = FakeDaemon::default()
            .begin(prompt())
            .resend(too_early)
            .answer("482913", Response::Success);
        let outcome = run_scripted(&mut handle, &daemon, &Settings::default());
        assert_eq!(outcome, Outcome::Success);
        assert_eq!(handle.prompts_shown[1], TOO_EARLY_PROMPT);
    }

    #[test]
    fn an_empty_answer_uses_a_try() {
        let mut handle = FakeHandle::ssh_login()
            .answering(typed(""))
            .answering(typed("000000"));
        let daemon = FakeDaemon::default()
            .begin(prompt())
            .resend(resent())
            .answer_to(RESENT_CHALLENGE, "000000", wrong());
        let outcome = run_scripted(&mut handle, &daemon, &tries(2));
        assert_eq!(outcome, Outcome::TriesExhausted);
        assert_eq!(handle.prompts_shown.len(), 2);
    }

    #[test]
    fn an_empty_answer_on_the_last_try_mails_nothing() {
        let mut handle = FakeHandle::ssh_login().answering(Ok(None));
        let daemon = FakeDaemon::default().begin(prompt());
        let outcome = run_scripted(&mut handle, &daemon, &tries(1));
        assert_eq!(outcome, Outcome::TriesExhausted);
    }

    #[test]
    fn a_refused_resend_ends_the_login_with_otpds_message() {
        let mut handle = FakeHandle::ssh_login().answering(typed(""));
        let daemon = FakeDaemon::default()
            .begin(prompt())
            .resend(denied(DenyReason::RateLimited, "Too many codes sent."));
        let outcome = run_scripted(&mut handle, &daemon, &Settings::default());
        assert_eq!(outcome, Outcome::Denied(DenyReason::RateLimited));
        assert_eq!(handle.errors_shown, vec!["Too many codes sent.".to_owned()]);
        assert_eq!(handle.prompts_shown.len(), 1);
    }

    #[test]
    fn a_success_or_skip_in_answer_to_a_resend_is_a_protocol_error() {
        for answer in [
            Response::Success,
            Response::Skip {
                reason: SkipReason::ModeOff,
            },
        ] {
            let mut handle = FakeHandle::ssh_login().answering(typed(""));
            let daemon = FakeDaemon::default().begin(prompt()).resend(answer);
            let outcome = run_scripted(&mut handle, &daemon, &Settings::default());
            assert_eq!(outcome, Outcome::ProtocolError);
            assert_eq!(handle.logged(LogLevel::Error).len(), 1);
        }
    }

    #[test]
    fn three_wrong_answers_end_in_max_tries_after_exactly_three_answers() {
        let mut handle = FakeHandle::ssh_login()
            .answering(typed("000001"))
            .answering(typed("000002"))
            .answering(typed("000003"));
        let daemon = FakeDaemon::default()
            .begin(prompt())
            .answer("000001", wrong())
            .answer("000002", wrong())
            .answer("000003", wrong());
        let outcome = run_scripted(&mut handle, &daemon, &Settings::default());
        assert_eq!(outcome, Outcome::TriesExhausted);
        assert_eq!(
            crate::outcome::pam_code(outcome),
            pam::constants::PamResultCode::PAM_MAXTRIES
        );
        assert_eq!(handle.prompts_shown, vec![PROMPT.to_owned(); 3]);
        assert_eq!(handle.errors_shown, vec!["Wrong code.".to_owned(); 3]);
    }

    #[test]
    fn a_wrong_code_shows_otpds_message_and_asks_again_for_the_same_challenge() {
        let mut handle = FakeHandle::ssh_login()
            .answering(typed("000000"))
            .answering(typed("482913"));
        let daemon = FakeDaemon::default()
            .begin(prompt())
            .answer(
                "000000",
                denied(DenyReason::WrongCode, "Wrong code. 2 tries left."),
            )
            .answer("482913", Response::Success);
        let outcome = run_scripted(&mut handle, &daemon, &Settings::default());
        assert_eq!(outcome, Outcome::Success);
        assert_eq!(
            handle.errors_shown,
            vec!["Wrong code. 2 tries left.".to_owned()]
        );
        assert_eq!(handle.prompts_shown, vec![PROMPT.to_owned(); 2]);
    }

    #[test]
    fn tries_one_allows_exactly_one_answer() {
        let mut handle = FakeHandle::ssh_login().answering(typed("000000"));
        let daemon = FakeDaemon::default()
            .begin(prompt())
            .answer("000000", wrong());
        let outcome = run_scripted(&mut handle, &daemon, &tries(1));
        assert_eq!(outcome, Outcome::TriesExhausted);
    }

    #[test]
    fn tries_zero_still_allows_one_answer() {
        // Args never produces 0; the flow must still not skip the prompt.
        let mut handle = FakeHandle::ssh_login().answering(typed("482913"));
        let daemon = FakeDaemon::default()
            .begin(prompt())
            .answer("482913", Response::Success);
        assert_eq!(
            run_scripted(&mut handle, &daemon, &tries(0)),
            Outcome::Success
        );
    }

    #[test]
    fn a_dead_code_ends_the_login_even_with_tries_left() {
        let mut handle = FakeHandle::ssh_login().answering(typed("000000"));
        let daemon = FakeDaemon::default().begin(prompt()).answer(
            "000000",
            denied(DenyReason::CodeDead, "The code expired. Log in again."),
        );
        let outcome = run_scripted(&mut handle, &daemon, &Settings::default());
        assert_eq!(outcome, Outcome::Denied(DenyReason::CodeDead));
        assert_eq!(
            handle.errors_shown,
            vec!["The code expired. Log in again.".to_owned()]
        );
    }

    #[test]
    fn a_lockout_after_the_answer_is_reported_as_such() {
        let mut handle = FakeHandle::ssh_login().answering(typed("000000"));
        let daemon = FakeDaemon::default().begin(prompt()).answer(
            "000000",
            denied(DenyReason::LockedOut, "Too many wrong codes."),
        );
        let outcome = run_scripted(&mut handle, &daemon, &Settings::default());
        assert_eq!(outcome, Outcome::Denied(DenyReason::LockedOut));
        assert_eq!(
            handle.errors_shown,
            vec!["Too many wrong codes.".to_owned()]
        );
    }

    #[test]
    fn an_answer_over_64_bytes_is_a_wrong_try_that_never_reaches_otpd() {
        let long = "1".repeat(MAX_ANSWER_LEN + 1);
        let mut handle = FakeHandle::ssh_login()
            .answering(typed(&long))
            .answering(typed("482913"));
        let daemon = FakeDaemon::default()
            .begin(prompt())
            .answer("482913", Response::Success);
        let outcome = run_scripted(&mut handle, &daemon, &Settings::default());
        assert_eq!(outcome, Outcome::Success);
        assert_eq!(handle.errors_shown, vec![WRONG_CODE_MESSAGE.to_owned()]);
    }

    #[test]
    fn an_answer_of_exactly_64_bytes_is_sent() {
        let exact: &'static str =
            "7777777777777777777777777777777777777777777777777777777777777777";
        assert_eq!(exact.len(), MAX_ANSWER_LEN);
        let mut handle = FakeHandle::ssh_login().answering(typed(exact));
        let daemon = FakeDaemon::default().begin(prompt()).answer(exact, wrong());
        let outcome = run_scripted(&mut handle, &daemon, &tries(1));
        assert_eq!(outcome, Outcome::TriesExhausted);
    }

    /// Issue #22: an answer that cannot be a code is refused in otpd's words (the prompt's
    /// language) when otpd gave them.
    #[test]
    fn an_unusable_answer_is_refused_in_the_words_otpd_gave_with_the_prompt() {
        let mut handle = FakeHandle::ssh_login().answering(typed_bytes(b"\xc3"));
        let german = Response::Prompt {
            challenge: CHALLENGE.into(),
            prompt: "Code gesendet an a***@e***.com (gültig 10 Min.): ".into(),
            wrong_code: Some("Falscher Code.".into()),
            log_in_again: None,
        };
        let daemon = FakeDaemon::default().begin(german);
        let outcome = run_scripted(&mut handle, &daemon, &tries(1));
        assert_eq!(outcome, Outcome::TriesExhausted);
        assert_eq!(handle.errors_shown, vec!["Falscher Code.".to_owned()]);
    }

    #[test]
    fn a_non_utf8_answer_is_a_wrong_try_that_never_reaches_otpd() {
        let mut handle = FakeHandle::ssh_login()
            .answering(typed_bytes(b"48\xff913"))
            .answering(typed_bytes(b"\xc3"));
        let daemon = FakeDaemon::default().begin(prompt());
        let outcome = run_scripted(&mut handle, &daemon, &tries(2));
        assert_eq!(outcome, Outcome::TriesExhausted);
        assert_eq!(handle.errors_shown, vec![WRONG_CODE_MESSAGE.to_owned(); 2]);
    }

    #[test]
    fn unusable_answers_alone_use_up_the_tries() {
        let long = "9".repeat(MAX_ANSWER_LEN + 1);
        let mut handle = FakeHandle::ssh_login()
            .answering(typed(&long))
            .answering(typed_bytes(b"\xff"))
            .answering(typed(&long));
        let daemon = FakeDaemon::default().begin(prompt());
        let outcome = run_scripted(&mut handle, &daemon, &Settings::default());
        assert_eq!(outcome, Outcome::TriesExhausted);
    }

    #[test]
    fn a_failed_conversation_sends_no_answer() {
        let mut handle = FakeHandle::ssh_login().answering(Err(ConvError::Failed));
        let daemon = FakeDaemon::default().begin(prompt());
        let outcome = run_scripted(&mut handle, &daemon, &Settings::default());
        assert_eq!(outcome, Outcome::ConversationFailed);
    }

    #[test]
    fn a_failed_conversation_after_a_wrong_code_sends_nothing_more() {
        let mut handle = FakeHandle::ssh_login()
            .answering(typed("000000"))
            .answering(Err(ConvError::Failed));
        let daemon = FakeDaemon::default()
            .begin(prompt())
            .answer("000000", wrong());
        let outcome = run_scripted(&mut handle, &daemon, &Settings::default());
        assert_eq!(outcome, Outcome::ConversationFailed);
    }

    /// What sshd shows when a person types a wrong code and then closes the connection: the
    /// log line says the wrong code came first, not only that the conversation failed.
    #[test]
    fn giving_up_after_wrong_codes_is_logged_with_how_many() {
        let mut handle = FakeHandle::ssh_login()
            .answering(typed("000000"))
            .answering(typed(""))
            .answering(typed("111111"))
            .answering(Err(ConvError::Failed));
        let daemon = FakeDaemon::default()
            .begin(prompt())
            .answer("000000", wrong())
            .resend(prompt())
            .answer("111111", wrong());
        let outcome = run_scripted(&mut handle, &daemon, &tries(4));
        assert_eq!(outcome, Outcome::ConversationFailed);
        let lines = handle.logged(LogLevel::Notice);
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(
            lines[0].ends_with("the client may have gone away (after 2 wrong codes)"),
            "{lines:?}"
        );
        handle.assert_logs_never_contain(&["000000", "111111"]);
    }

    #[test]
    fn giving_up_at_the_first_prompt_mentions_no_wrong_code() {
        let mut handle = FakeHandle::ssh_login().answering(Err(ConvError::Failed));
        let daemon = FakeDaemon::default().begin(prompt());
        run_scripted(&mut handle, &daemon, &Settings::default());
        let lines = handle.logged(LogLevel::Notice);
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(!lines[0].contains("wrong"), "{lines:?}");
    }

    #[test]
    fn a_refusal_at_begin_shows_the_message_and_no_prompt() {
        let mut handle = FakeHandle::ssh_login();
        let daemon =
            FakeDaemon::default().begin(denied(DenyReason::RateLimited, "Too many codes sent."));
        let outcome = run_scripted(&mut handle, &daemon, &Settings::default());
        assert_eq!(outcome, Outcome::Denied(DenyReason::RateLimited));
        assert!(handle.prompts_shown.is_empty());
        assert_eq!(handle.errors_shown, vec!["Too many codes sent.".to_owned()]);
    }

    #[test]
    fn unavailable_shows_the_message_at_either_step() {
        let message = "The code could not be sent. Try again later.";
        let unavailable = || Response::Unavailable {
            message: message.into(),
        };
        let mut handle = FakeHandle::ssh_login();
        let daemon = FakeDaemon::default().begin(unavailable());
        assert_eq!(
            run_scripted(&mut handle, &daemon, &Settings::default()),
            Outcome::Unavailable
        );
        assert_eq!(handle.errors_shown, vec![message.to_owned()]);

        let mut handle = FakeHandle::ssh_login().answering(typed("1"));
        let daemon = FakeDaemon::default()
            .begin(prompt())
            .answer("1", unavailable());
        assert_eq!(
            run_scripted(&mut handle, &daemon, &Settings::default()),
            Outcome::Unavailable
        );
        assert_eq!(handle.errors_shown, vec![message.to_owned()]);
    }

    #[test]
    fn success_at_begin_needs_no_prompt() {
        let mut handle = FakeHandle::ssh_login();
        let daemon = FakeDaemon::default().begin(Response::Success);
        assert_eq!(
            run_scripted(&mut handle, &daemon, &Settings::default()),
            Outcome::Success
        );
        assert!(handle.prompts_shown.is_empty());
    }

    #[test]
    fn a_skip_after_the_prompt_is_a_protocol_error_not_a_skip() {
        let mut handle = FakeHandle::ssh_login().answering(typed("123456"));
        let daemon = FakeDaemon::default().begin(prompt()).answer(
            "123456",
            Response::Skip {
                reason: SkipReason::ModeOff,
            },
        );
        assert_eq!(
            run_scripted(&mut handle, &daemon, &Settings::default()),
            Outcome::ProtocolError
        );
        assert_eq!(handle.logged(LogLevel::Error).len(), 1);
    }

    #[test]
    fn a_prompt_in_answer_to_an_answer_is_a_protocol_error() {
        let mut handle = FakeHandle::ssh_login().answering(typed("123456"));
        let daemon = FakeDaemon::default()
            .begin(prompt())
            .answer("123456", prompt());
        assert_eq!(
            run_scripted(&mut handle, &daemon, &Settings::default()),
            Outcome::ProtocolError
        );
        assert_eq!(handle.prompts_shown.len(), 1);
    }

    #[test]
    fn the_interactive_flow_leaves_pam_authtok_alone() {
        let mut handle = FakeHandle::ssh_login()
            .with_authtok(b"hunter2")
            .answering(typed("482913"));
        let daemon = FakeDaemon::default()
            .begin(prompt())
            .answer("482913", Response::Success);
        run_scripted(&mut handle, &daemon, &Settings::default());
        assert_eq!(handle.authtok_sets, 0);
        assert_eq!(handle.authtok.as_deref(), Some(&b"hunter2"[..]));
    }

    const KEY_A: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKeyA";
    const KEY_B: &str = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYKeyB";

    #[test]
    fn the_keys_sshd_put_in_the_pam_environment_go_with_begin() {
        let mut handle = FakeHandle {
            ssh_auth_info: Some(format!("publickey {KEY_A}\npublickey {KEY_B}\n")),
            ..FakeHandle::ssh_login()
        };
        let daemon = FakeDaemon::default().then(|request| match request {
            Request::Begin { ssh_keys, .. } => {
                assert_eq!(ssh_keys, &[KEY_A, KEY_B]);
                Ok(Response::Skip {
                    reason: SkipReason::Exempt,
                })
            }
            other => panic!("expected begin, got {other:?}"),
        });
        let outcome = run_scripted(&mut handle, &daemon, &Settings::default());
        assert_eq!(outcome, Outcome::Skipped(SkipReason::Exempt));
        assert!(handle.prompts_shown.is_empty());
    }

    #[test]
    fn without_ssh_auth_info_begin_carries_no_keys() {
        for info in [None, Some("password\n"), Some("keyboard-interactive\n")] {
            let mut handle = FakeHandle {
                ssh_auth_info: info.map(String::from),
                ..FakeHandle::ssh_login()
            };
            let daemon = FakeDaemon::default().then(|request| match request {
                Request::Begin { ssh_keys, .. } => {
                    assert!(ssh_keys.is_empty(), "{ssh_keys:?}");
                    Ok(Response::Skip {
                        reason: SkipReason::ModeOff,
                    })
                }
                other => panic!("expected begin, got {other:?}"),
            });
            run_scripted(&mut handle, &daemon, &Settings::default());
        }
    }
}
