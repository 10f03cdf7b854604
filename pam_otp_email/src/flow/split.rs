//! The split role (`split` argument): the first line of a single-secret stack.
//!
//! FTP, HTTP Basic and WebDAV clients send one password and cannot answer a second prompt, so
//! the code rides along at the end of the password. This line takes the secret, asks otpd
//! whether a code is expected in it (mailing nothing), hands the password part on in PAM_AUTHTOK
//! for the password module (`use_first_pass`), and stashes the code part for this module's line
//! after the password module. It decides nothing: it answers PAM_IGNORE unless otpd is
//! unreachable (fail closed) or the secret cannot be a password.
//!
//! The password part never goes to otpd; the code part never goes to the logs.

use common::secret::SecretString;
use common::wire::{Request, Response};

use super::{ConvError, Daemon, Flow, LoginHandle, MAX_ANSWER_LEN, Stash};
use crate::outcome::Outcome;
use crate::secret::SecretBytes;

/// The longest secret (password and code) accepted, checked before anything looks inside it.
/// Longer ones are refused: no real password is that long, and the bound keeps a pasted blob
/// away from otpd and the password module alike.
pub const MAX_SECRET_LEN: usize = 512;

/// Asked when the application did not set PAM_AUTHTOK; FTP and HTTP servers answer it with the
/// one password they have.
pub const PASSWORD_PROMPT: &str = "Password: ";

/// Cuts `secret` into the password and the code when a code is expected: the last `code_length`
/// bytes, if they are ASCII digits and something comes before them. Otherwise the whole secret is
/// the password. A password that happens to end in digits is only cut while otpd expects a code.
pub fn split_secret(
    secret: &[u8],
    code_length: usize,
    expects_code: bool,
) -> (&[u8], Option<&str>) {
    if !expects_code || code_length == 0 || secret.len() <= code_length {
        return (secret, None);
    }
    let (password, code) = secret.split_at(secret.len() - code_length);
    if !code.iter().all(u8::is_ascii_digit) {
        return (secret, None);
    }
    // ASCII digits are UTF-8, so this never falls back to the whole secret.
    match std::str::from_utf8(code) {
        Ok(code) => (password, Some(code)),
        Err(_) => (secret, None),
    }
}

impl<H: LoginHandle, D: Daemon> Flow<'_, H, D> {
    /// Takes the secret, probes otpd, hands the password on and stashes the code.
    pub(super) fn split(&mut self) -> Outcome {
        // A stash from an earlier round of this transaction must not serve this one, whatever
        // happens below (a skip, a refusal, otpd down).
        if let Err(error) = self.handle.take_stash() {
            return self.store_failed(error);
        }
        let login = match self.context() {
            Ok(login) => login,
            Err(outcome) => return outcome,
        };
        let (secret, prompted) = match self.handle.authtok() {
            Some(secret) => (secret, false),
            None => match self.handle.prompt(PASSWORD_PROMPT, false) {
                Ok(secret) => (secret.unwrap_or_default(), true),
                Err(ConvError::Failed) => {
                    self.debug(|| "the conversation failed at the password prompt".to_owned());
                    return Outcome::ConversationFailed;
                }
            },
        };
        if secret.len() > MAX_SECRET_LEN {
            self.debug(|| format!("the secret is over {MAX_SECRET_LEN} bytes: refused"));
            return Outcome::SecretTooLong;
        }
        match self.call("probe", &Request::Probe { login }) {
            Ok(Response::Skip { reason }) => {
                // An authtok the application set is the whole secret already.
                if prompted {
                    if let Err(error) = self.handle.set_authtok(secret.as_bytes()) {
                        return self.store_failed(error);
                    }
                }
                Outcome::Skipped(reason)
            }
            Ok(Response::Probe {
                code_length,
                expects_code,
            }) => self.hand_on(&secret, usize::from(code_length), expects_code),
            Ok(other) => self.refused("probe", other),
            Err(outcome) => outcome,
        }
    }

    /// Splits the secret as otpd's probe says, sets PAM_AUTHTOK and stashes the code part.
    fn hand_on(&mut self, secret: &SecretBytes, code_length: usize, expects_code: bool) -> Outcome {
        if !(1..=MAX_ANSWER_LEN).contains(&code_length) {
            self.detail = Some(format!(
                "otpd's probe says codes have {code_length} digits, which cannot be"
            ));
            return Outcome::ProtocolError;
        }
        let (password, code) = split_secret(secret.as_bytes(), code_length, expects_code);
        let stash = match code {
            Some(code) => Stash::Code(SecretString::new(code.to_owned())),
            None => Stash::NoCode,
        };
        self.debug(|| {
            match (&stash, expects_code) {
                (Stash::Code(_), _) => "the secret ends with a code: stashed for verification",
                (Stash::NoCode, true) => "a code is expected but the secret does not end with one",
                (Stash::NoCode, false) => "no code expected: the secret is the password",
            }
            .to_owned()
        });
        if let Err(error) = self.handle.set_authtok(password) {
            return self.store_failed(error);
        }
        if let Err(error) = self.handle.stash(stash) {
            return self.store_failed(error);
        }
        Outcome::SecretSplit
    }
}

#[cfg(test)]
mod tests {
    use super::super::fakes::*;
    use super::super::{LogLevel, Settings};
    use super::*;
    use common::wire::{DenyReason, SkipReason};

    fn probe(code_length: u8, expects_code: bool) -> Response {
        Response::Probe {
            code_length,
            expects_code,
        }
    }

    fn skip() -> Response {
        Response::Skip {
            reason: SkipReason::ProtocolNotEnabled,
        }
    }

    #[test]
    fn split_secret_cuts_exactly_the_last_code_length_digits() {
        assert_eq!(
            split_secret(b"hunter2482913", 6, true),
            (&b"hunter2"[..], Some("482913"))
        );
        assert_eq!(split_secret(b"p1234", 4, true), (&b"p"[..], Some("1234")));
    }

    #[test]
    fn split_secret_keeps_the_whole_secret_when_no_code_is_expected() {
        assert_eq!(
            split_secret(b"hunter2482913", 6, false),
            (&b"hunter2482913"[..], None)
        );
    }

    #[test]
    fn split_secret_keeps_a_secret_that_does_not_end_in_enough_digits() {
        assert_eq!(
            split_secret(b"hunter24829x3", 6, true),
            (&b"hunter24829x3"[..], None)
        );
        assert_eq!(split_secret(b"hunter", 6, true), (&b"hunter"[..], None));
        // Only digits, as long as a code: there would be no password left.
        assert_eq!(split_secret(b"482913", 6, true), (&b"482913"[..], None));
        assert_eq!(split_secret(b"", 6, true), (&b""[..], None));
        // Unicode digits are not ASCII digits.
        let arabic = "pw٤٨٢٩١٣".as_bytes();
        assert_eq!(split_secret(arabic, 6, true), (arabic, None));
        assert_eq!(split_secret(b"pw123", 0, true), (&b"pw123"[..], None));
    }

    #[test]
    fn split_secret_leaves_a_non_utf8_password_as_bytes() {
        assert_eq!(
            split_secret(b"p\xe4ss123456", 6, true),
            (&b"p\xe4ss"[..], Some("123456"))
        );
    }

    #[test]
    fn without_an_expected_code_the_whole_secret_is_the_password() {
        let mut handle = FakeHandle::ftp_login().answering(typed("hunter2"));
        let daemon = FakeDaemon::ftp().probe(probe(6, false));
        let outcome = run_scripted(&mut handle, &daemon, &split_role());
        assert_eq!(outcome, Outcome::SecretSplit);
        assert_eq!(handle.authtok.as_deref(), Some(&b"hunter2"[..]));
        assert_eq!(handle.stashed_code(), None);
        assert_eq!(handle.prompts_shown, vec![PASSWORD_PROMPT.to_owned()]);
        assert_eq!(handle.echoes, vec![false], "a password is never echoed");
    }

    #[test]
    fn a_password_ending_in_digits_is_not_split_while_no_code_is_expected() {
        let mut handle = FakeHandle::ftp_login().answering(typed("summer2024123456"));
        let daemon = FakeDaemon::ftp().probe(probe(6, false));
        assert_eq!(
            run_scripted(&mut handle, &daemon, &split_role()),
            Outcome::SecretSplit
        );
        assert_eq!(handle.authtok.as_deref(), Some(&b"summer2024123456"[..]));
        assert_eq!(handle.stashed_code(), None);
    }

    #[test]
    fn an_expected_code_is_cut_off_exactly_and_stashed() {
        let mut handle = FakeHandle::ftp_login().answering(typed("hunter2482913"));
        let daemon = FakeDaemon::ftp().probe(probe(6, true));
        assert_eq!(
            run_scripted(&mut handle, &daemon, &split_role()),
            Outcome::SecretSplit
        );
        assert_eq!(handle.authtok.as_deref(), Some(&b"hunter2"[..]));
        assert_eq!(handle.stashed_code().as_deref(), Some("482913"));
    }

    #[test]
    fn the_code_length_comes_from_otpd() {
        let mut handle = FakeHandle::ftp_login().answering(typed("hunter12482913"));
        let daemon = FakeDaemon::ftp().probe(probe(8, true));
        run_scripted(&mut handle, &daemon, &split_role());
        assert_eq!(handle.authtok.as_deref(), Some(&b"hunter"[..]));
        assert_eq!(handle.stashed_code().as_deref(), Some("12482913"));
    }

    #[test]
    fn an_expected_code_that_is_missing_leaves_the_password_whole() {
        let mut handle = FakeHandle::ftp_login().answering(typed("hunter2"));
        let daemon = FakeDaemon::ftp().probe(probe(6, true));
        run_scripted(&mut handle, &daemon, &split_role());
        assert_eq!(handle.authtok.as_deref(), Some(&b"hunter2"[..]));
        assert_eq!(handle.stashed_code(), None);
    }

    #[test]
    fn the_secret_is_taken_from_pam_authtok_without_a_prompt() {
        let mut handle = FakeHandle::ftp_login().with_authtok(b"hunter2482913");
        let daemon = FakeDaemon::ftp().probe(probe(6, true));
        assert_eq!(
            run_scripted(&mut handle, &daemon, &split_role()),
            Outcome::SecretSplit
        );
        assert!(handle.prompts_shown.is_empty());
        assert_eq!(handle.authtok.as_deref(), Some(&b"hunter2"[..]));
        assert_eq!(handle.stashed_code().as_deref(), Some("482913"));
    }

    #[test]
    fn a_skip_hands_the_prompted_secret_on_whole_stashes_nothing_and_is_ignore() {
        let mut handle = FakeHandle::ftp_login().answering(typed("hunter2482913"));
        let daemon = FakeDaemon::ftp().probe(skip());
        let outcome = run_scripted(&mut handle, &daemon, &split_role());
        assert_eq!(outcome, Outcome::Skipped(SkipReason::ProtocolNotEnabled));
        assert_eq!(
            crate::outcome::pam_code(outcome),
            pam::constants::PamResultCode::PAM_IGNORE
        );
        assert_eq!(handle.authtok.as_deref(), Some(&b"hunter2482913"[..]));
        assert!(handle.stash.is_none());
    }

    #[test]
    fn a_skip_leaves_an_application_set_authtok_untouched() {
        let mut handle = FakeHandle::ftp_login().with_authtok(b"hunter2");
        let daemon = FakeDaemon::ftp().probe(skip());
        run_scripted(&mut handle, &daemon, &split_role());
        assert_eq!(handle.authtok_sets, 0);
        assert_eq!(handle.authtok.as_deref(), Some(&b"hunter2"[..]));
    }

    #[test]
    fn the_split_role_never_succeeds_whatever_otpd_says() {
        for response in [probe(6, true), probe(6, false), skip()] {
            let mut handle = FakeHandle::ftp_login().answering(typed("hunter2482913"));
            let daemon = FakeDaemon::ftp().probe(response);
            let outcome = run_scripted(&mut handle, &daemon, &split_role());
            assert_eq!(
                crate::outcome::pam_code(outcome),
                pam::constants::PamResultCode::PAM_IGNORE,
                "{outcome:?}"
            );
        }
        // Success is not an answer to a probe: a confused otpd fails the login.
        let mut handle = FakeHandle::ftp_login().answering(typed("hunter2482913"));
        let daemon = FakeDaemon::ftp().probe(Response::Success);
        assert_eq!(
            run_scripted(&mut handle, &daemon, &split_role()),
            Outcome::ProtocolError
        );
        assert!(handle.stash.is_none());
    }

    #[test]
    fn an_oversized_secret_is_refused_without_asking_otpd() {
        let long = "x".repeat(MAX_SECRET_LEN + 1);
        let mut handle = FakeHandle::ftp_login().answering(typed(&long));
        let outcome = run_scripted(&mut handle, &FakeDaemon::ftp(), &split_role());
        assert_eq!(outcome, Outcome::SecretTooLong);
        assert_eq!(
            crate::outcome::pam_code(outcome),
            pam::constants::PamResultCode::PAM_AUTH_ERR
        );
        assert!(handle.authtok.is_none());
        assert!(handle.stash.is_none());

        let mut handle = FakeHandle::ftp_login().with_authtok(long.as_bytes());
        let outcome = run_scripted(&mut handle, &FakeDaemon::ftp(), &split_role());
        assert_eq!(outcome, Outcome::SecretTooLong);
    }

    #[test]
    fn a_secret_of_exactly_512_bytes_is_accepted() {
        let exact = format!("{}123456", "p".repeat(MAX_SECRET_LEN - 6));
        let mut handle = FakeHandle::ftp_login().answering(typed(&exact));
        let daemon = FakeDaemon::ftp().probe(probe(6, true));
        assert_eq!(
            run_scripted(&mut handle, &daemon, &split_role()),
            Outcome::SecretSplit
        );
        assert_eq!(
            handle.authtok.as_ref().map(Vec::len),
            Some(MAX_SECRET_LEN - 6)
        );
    }

    #[test]
    fn a_stale_stash_is_cleared_even_when_otpd_says_skip_or_is_down() {
        let mut handle = FakeHandle::ftp_login()
            .stashed(stashed_code("111111"))
            .answering(typed("hunter2"));
        let daemon = FakeDaemon::ftp().probe(skip());
        run_scripted(&mut handle, &daemon, &split_role());
        assert!(handle.stash.is_none());

        let mut handle = FakeHandle::ftp_login()
            .stashed(stashed_code("111111"))
            .answering(typed("hunter2"));
        let daemon = FakeDaemon::ftp().probe(Response::Unavailable {
            message: "down".into(),
        });
        assert_eq!(
            run_scripted(&mut handle, &daemon, &split_role()),
            Outcome::Unavailable
        );
        assert!(handle.stash.is_none());
    }

    #[test]
    fn no_answer_to_the_password_prompt_is_an_empty_secret() {
        let mut handle = FakeHandle::ftp_login().answering(Ok(None));
        let daemon = FakeDaemon::ftp().probe(probe(6, true));
        run_scripted(&mut handle, &daemon, &split_role());
        assert_eq!(handle.authtok.as_deref(), Some(&b""[..]));
        assert_eq!(handle.stashed_code(), None);
    }

    #[test]
    fn a_failed_password_prompt_asks_otpd_nothing() {
        let mut handle = FakeHandle::ftp_login().answering(Err(ConvError::Failed));
        let outcome = run_scripted(&mut handle, &FakeDaemon::ftp(), &split_role());
        assert_eq!(outcome, Outcome::ConversationFailed);
    }

    #[test]
    fn a_refusal_at_the_probe_is_shown_and_kept() {
        let mut handle = FakeHandle::ftp_login().answering(typed("hunter2"));
        let daemon = FakeDaemon::ftp().probe(denied(DenyReason::LockedOut, "Locked for 15 min."));
        let outcome = run_scripted(&mut handle, &daemon, &split_role());
        assert_eq!(outcome, Outcome::Denied(DenyReason::LockedOut));
        assert_eq!(handle.errors_shown, vec!["Locked for 15 min.".to_owned()]);
        assert!(handle.stash.is_none());
    }

    #[test]
    fn an_impossible_code_length_is_a_protocol_error() {
        for length in [0, 65, 255] {
            let mut handle = FakeHandle::ftp_login().answering(typed("hunter2482913"));
            let daemon = FakeDaemon::ftp().probe(probe(length, true));
            assert_eq!(
                run_scripted(&mut handle, &daemon, &split_role()),
                Outcome::ProtocolError,
                "{length}"
            );
            assert!(handle.authtok.is_none());
            assert!(handle.stash.is_none());
        }
    }

    #[test]
    fn libpam_refusing_the_authtok_or_the_stash_fails_the_login() {
        let mut handle = FakeHandle {
            refuse_authtok: true,
            ..FakeHandle::ftp_login()
        }
        .answering(typed("hunter2482913"));
        let daemon = FakeDaemon::ftp().probe(probe(6, true));
        assert_eq!(
            run_scripted(&mut handle, &daemon, &split_role()),
            Outcome::PamStoreFailed
        );
        assert!(handle.stash.is_none());

        let mut handle = FakeHandle {
            refuse_stash: true,
            ..FakeHandle::ftp_login()
        }
        .answering(typed("hunter2482913"));
        let daemon = FakeDaemon::ftp().probe(probe(6, true));
        assert_eq!(
            run_scripted(&mut handle, &daemon, &split_role()),
            Outcome::PamStoreFailed
        );
        assert_eq!(handle.logged(LogLevel::Error).len(), 1);

        let mut handle = FakeHandle {
            refuse_take: true,
            ..FakeHandle::ftp_login()
        };
        assert_eq!(
            run_scripted(&mut handle, &FakeDaemon::ftp(), &split_role()),
            Outcome::PamStoreFailed
        );
    }

    #[test]
    fn the_probe_carries_the_login_but_never_the_secret() {
        let mut handle = FakeHandle::ftp_login().answering(typed("hunter2482913"));
        let daemon = FakeDaemon::ftp().then(|request| {
            let shown = format!("{request:?}");
            assert!(!shown.contains("hunter2"), "{shown}");
            assert!(!shown.contains("482913"), "{shown}");
            match request {
                Request::Probe { login } => assert_eq!(login, &ftp_context()),
                other => panic!("expected probe, got {other:?}"),
            }
            Ok(probe(6, true))
        });
        run_scripted(&mut handle, &daemon, &split_role());
    }

    #[test]
    fn debug_logs_never_contain_the_password_or_the_code() {
        for expects_code in [true, false] {
            let mut handle = FakeHandle::ftp_login().answering(typed("hunter2482913"));
            let daemon = FakeDaemon::ftp().probe(probe(6, expects_code));
            let settings = Settings {
                debug: true,
                ..split_role()
            };
            run_scripted(&mut handle, &daemon, &settings);
            assert!(handle.logged(LogLevel::Debug).len() >= 3);
            handle.assert_logs_never_contain(&["hunter2", "482913"]);
        }
    }
}
