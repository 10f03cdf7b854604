//! The login flow: ask otpd what to do, then do exactly that.
//!
//! It is written against two small traits, [`LoginHandle`] (what the module needs from PAM) and
//! [`Daemon`] (one request to otpd), so every path is unit tested with scripted fakes, without
//! libpam or a running daemon. The module never decides policy: it sends [`Request::Begin`] and
//! follows the answer (skip, prompt, success, denied, unavailable).

use common::client::ClientError;
use common::secret::SecretString;
use common::service::Protocol;
use common::text::escape_for_log;
use common::wire::{LoginContext, Request, Response};

use crate::outcome::Outcome;

/// The longest answer sent to otpd. Codes are a few digits; anything longer is refused as a wrong
/// code without contacting otpd, so a pasted blob never reaches the socket.
pub const MAX_ANSWER_LEN: usize = 64;

/// Shown when the module refuses an answer itself (too long, not UTF-8). otpd words every other
/// refusal.
pub const WRONG_CODE_MESSAGE: &str = "Wrong code.";

/// Why a prompt got no usable answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ConvError {
    /// The application's conversation function failed or is missing: nobody is there to answer.
    #[error("the conversation with the application failed")]
    Failed,
    /// Something was typed, but it is not UTF-8 and so cannot be a code.
    #[error("the answer is not valid UTF-8")]
    NotUtf8,
}

/// How important a log line is; the PAM adapter maps it to a syslog priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    /// Something the admin must fix (otpd unreachable, a confused daemon). Always logged.
    Error,
    /// A step of the flow, logged only with the `debug` module argument.
    Debug,
}

/// What the flow needs from PAM: the login's items, the conversation and syslog.
pub trait LoginHandle {
    /// PAM_USER, asking the application for it if it is not set yet.
    fn user(&mut self) -> Option<String>;
    /// PAM_SERVICE.
    fn service(&self) -> Option<String>;
    /// PAM_RHOST, if the application set it.
    fn rhost(&self) -> Option<String>;
    /// PAM_TTY, if the application set it.
    fn tty(&self) -> Option<String>;
    /// Shows `text` as a prompt and returns what was typed; `Ok(None)` when the application
    /// answered without any text.
    fn prompt(&mut self, text: &str, echo: bool) -> Result<Option<SecretString>, ConvError>;
    /// Shows `text` as an error message. Failure is ignored: the login fails anyway.
    fn error_message(&mut self, text: &str);
    /// Writes one line to syslog. `text` is already escaped and never contains a code.
    fn log(&self, level: LogLevel, text: &str);
}

/// One request to otpd and its answer.
pub trait Daemon {
    /// Sends `request` and waits (within the configured deadline) for the answer.
    fn call(&self, request: &Request) -> Result<Response, ClientError>;
}

/// The parts of the module arguments the flow uses.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// `protocol=`, passed to otpd so it overrides the service mapping.
    pub protocol: Option<Protocol>,
    /// `debug`: log each step.
    pub debug: bool,
    /// `test_panic`: panic at the start of the flow.
    #[cfg(feature = "test-panic")]
    pub test_panic: bool,
}

/// Runs one login: begin, maybe prompt and answer, and says how it ended.
pub fn run<H: LoginHandle, D: Daemon>(handle: &mut H, daemon: &D, settings: &Settings) -> Outcome {
    #[cfg(feature = "test-panic")]
    if settings.test_panic {
        test_fault();
    }
    let mut flow = Flow {
        handle,
        daemon,
        settings,
    };
    let outcome = flow.login();
    flow.debug(|| format!("outcome: {outcome:?}"));
    outcome
}

/// The test-only fault behind the `test_panic` argument.
#[cfg(feature = "test-panic")]
#[expect(
    clippy::panic,
    reason = "the test-panic feature exists to make the flow panic"
)]
fn test_fault() {
    panic!("test_panic: deliberate panic in the login flow");
}

/// One login in progress.
struct Flow<'a, H, D> {
    handle: &'a mut H,
    daemon: &'a D,
    settings: &'a Settings,
}

impl<H: LoginHandle, D: Daemon> Flow<'_, H, D> {
    fn login(&mut self) -> Outcome {
        let Some(user) = self.handle.user().filter(|u| !u.is_empty()) else {
            self.debug(|| "no user name: refusing".to_owned());
            return Outcome::NoUser;
        };
        let Some(service) = self.handle.service() else {
            self.handle
                .log(LogLevel::Error, "PAM gave no service name: refusing");
            return Outcome::NoService;
        };
        let login = LoginContext {
            user,
            service,
            rhost: self.handle.rhost(),
            tty: self.handle.tty(),
            protocol: self.settings.protocol.map(|p| p.as_str().to_owned()),
        };
        self.debug(|| {
            format!(
                "begin: user={} service={} rhost={} tty={} protocol={}",
                escape_for_log(&login.user),
                escape_for_log(&login.service),
                escape_for_log(login.rhost.as_deref().unwrap_or("-")),
                escape_for_log(login.tty.as_deref().unwrap_or("-")),
                login.protocol.as_deref().unwrap_or("-"),
            )
        });
        let request = Request::Begin {
            login: login.clone(),
        };
        let response = match self.call(&request) {
            Ok(response) => response,
            Err(outcome) => return outcome,
        };
        self.debug(|| format!("otpd answered begin with {}", kind(&response)));
        match response {
            Response::Skip { reason } => Outcome::Skipped(reason),
            Response::Success => Outcome::Success,
            Response::Prompt { challenge, prompt } => self.ask(login, challenge, &prompt),
            other => self.refused("begin", other),
        }
    }

    /// Prompts for the code and sends the answer.
    fn ask(&mut self, login: LoginContext, challenge: String, prompt: &str) -> Outcome {
        // Echo off: the notice is inside the prompt text because sshd shows info messages late.
        let code = match self.handle.prompt(prompt, false) {
            Ok(Some(code)) => code,
            // Sent like any other answer: otpd never matches an empty code, and counts the try.
            Ok(None) => SecretString::default(),
            Err(ConvError::Failed) => {
                self.debug(|| "the conversation failed at the prompt".to_owned());
                return Outcome::ConversationFailed;
            }
            Err(ConvError::NotUtf8) => {
                self.debug(|| "the answer is not UTF-8: refused without asking otpd".to_owned());
                self.handle.error_message(WRONG_CODE_MESSAGE);
                return Outcome::AnswerNotUtf8;
            }
        };
        if code.len() > MAX_ANSWER_LEN {
            self.debug(|| {
                format!(
                    "the answer is {} bytes, over {MAX_ANSWER_LEN}: refused without asking otpd",
                    code.len()
                )
            });
            self.handle.error_message(WRONG_CODE_MESSAGE);
            return Outcome::AnswerTooLong;
        }
        self.debug(|| format!("sending the answer ({} bytes) to otpd", code.len()));
        let request = Request::Answer {
            login,
            challenge,
            code,
        };
        let response = match self.call(&request) {
            Ok(response) => response,
            Err(outcome) => return outcome,
        };
        self.debug(|| format!("otpd answered the answer with {}", kind(&response)));
        match response {
            Response::Success => Outcome::Success,
            other => self.refused("answer", other),
        }
    }

    /// Every answer that is not a way forward: shows otpd's message where there is one. Anything
    /// unexpected (e.g. a skip after a prompt was shown) is a protocol error, never a skip.
    fn refused(&mut self, step: &str, response: Response) -> Outcome {
        match response {
            Response::Denied { reason, message } => {
                self.handle.error_message(&message);
                Outcome::Denied(reason)
            }
            Response::Unavailable { message } => {
                self.handle.error_message(&message);
                Outcome::Unavailable
            }
            Response::Error { message } => {
                self.handle.log(
                    LogLevel::Error,
                    &format!(
                        "otpd refused the {step} request: {}",
                        escape_for_log(&message)
                    ),
                );
                Outcome::DaemonError
            }
            other => {
                self.handle.log(
                    LogLevel::Error,
                    &format!(
                        "otpd answered {step} with {}, which does not fit",
                        kind(&other)
                    ),
                );
                Outcome::ProtocolError
            }
        }
    }

    /// One call to otpd; a failure is logged (the admin must know) and becomes the outcome.
    fn call(&self, request: &Request) -> Result<Response, Outcome> {
        self.daemon.call(request).map_err(|error| {
            self.handle.log(
                LogLevel::Error,
                &escape_for_log(&format!("cannot ask otpd: {error}")),
            );
            Outcome::from_client_error(&error)
        })
    }

    /// Logs a step when the `debug` argument is set; the text is only built then.
    fn debug(&self, text: impl FnOnce() -> String) {
        if self.settings.debug {
            self.handle.log(LogLevel::Debug, &text());
        }
    }
}

/// The name of a response, for logs: the prompt text and challenge stay out of them.
fn kind(response: &Response) -> &'static str {
    match response {
        Response::Skip { .. } => "skip",
        Response::Prompt { .. } => "prompt",
        Response::Success => "success",
        Response::Denied { .. } => "denied",
        Response::Unavailable { .. } => "unavailable",
        Response::Error { .. } => "error",
        Response::Pong { .. } => "pong",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::frame::FrameError;
    use common::wire::{DenyReason, SkipReason};
    use std::cell::RefCell;
    use std::collections::VecDeque;
    use std::path::PathBuf;
    use std::time::Duration;

    const CHALLENGE: &str = "ch-7f3a";
    const PROMPT: &str = "Code sent to a***@e***.com (valid 10 min): ";

    /// A PAM handle whose conversation follows a script: an unexpected prompt panics, and
    /// [`FakeHandle::assert_script_done`] fails if a scripted prompt never came.
    #[derive(Default)]
    struct FakeHandle {
        user: Option<String>,
        service: Option<String>,
        rhost: Option<String>,
        tty: Option<String>,
        prompts: VecDeque<Result<Option<SecretString>, ConvError>>,
        prompts_shown: Vec<String>,
        errors_shown: Vec<String>,
        logs: RefCell<Vec<(LogLevel, String)>>,
    }

    impl FakeHandle {
        fn ssh_login() -> FakeHandle {
            FakeHandle {
                user: Some("alice".into()),
                service: Some("sshd".into()),
                rhost: Some("192.0.2.7".into()),
                tty: Some("ssh".into()),
                ..FakeHandle::default()
            }
        }

        fn answering(mut self, answer: Result<Option<SecretString>, ConvError>) -> FakeHandle {
            self.prompts.push_back(answer);
            self
        }

        fn assert_script_done(&self) {
            assert!(
                self.prompts.is_empty(),
                "{} scripted prompt(s) were never shown",
                self.prompts.len()
            );
        }

        fn logged(&self, level: LogLevel) -> Vec<String> {
            self.logs
                .borrow()
                .iter()
                .filter(|(l, _)| *l == level)
                .map(|(_, t)| t.clone())
                .collect()
        }
    }

    impl LoginHandle for FakeHandle {
        fn user(&mut self) -> Option<String> {
            self.user.clone()
        }
        fn service(&self) -> Option<String> {
            self.service.clone()
        }
        fn rhost(&self) -> Option<String> {
            self.rhost.clone()
        }
        fn tty(&self) -> Option<String> {
            self.tty.clone()
        }
        fn prompt(&mut self, text: &str, echo: bool) -> Result<Option<SecretString>, ConvError> {
            assert!(!echo, "the code prompt must not echo");
            let answer = self
                .prompts
                .pop_front()
                .unwrap_or_else(|| panic!("unexpected prompt {text:?}"));
            self.prompts_shown.push(text.to_owned());
            answer
        }
        fn error_message(&mut self, text: &str) {
            self.errors_shown.push(text.to_owned());
        }
        fn log(&self, level: LogLevel, text: &str) {
            self.logs.borrow_mut().push((level, text.to_owned()));
        }
    }

    type Step = Box<dyn FnOnce(&Request) -> Result<Response, ClientError>>;

    /// otpd following a script: each step checks the request it gets; a request beyond the
    /// script panics, and [`FakeDaemon::assert_script_done`] fails if a step was never reached.
    #[derive(Default)]
    struct FakeDaemon {
        steps: RefCell<VecDeque<Step>>,
    }

    impl FakeDaemon {
        fn then(
            self,
            step: impl FnOnce(&Request) -> Result<Response, ClientError> + 'static,
        ) -> Self {
            self.steps.borrow_mut().push_back(Box::new(step));
            self
        }

        /// Expects a `Begin` for the login of [`FakeHandle::ssh_login`] and answers `response`.
        fn begin(self, response: Response) -> Self {
            self.then(move |request| match request {
                Request::Begin { login } => {
                    assert_eq!(login, &ssh_context(None));
                    Ok(response)
                }
                other => panic!("expected begin, got {other:?}"),
            })
        }

        /// Expects an `Answer` carrying the challenge of [`prompt`] and exactly `code`.
        fn answer(self, code: &'static str, response: Response) -> Self {
            self.then(move |request| match request {
                Request::Answer {
                    login,
                    challenge,
                    code: sent,
                } => {
                    assert_eq!(login, &ssh_context(None));
                    assert_eq!(challenge, CHALLENGE);
                    assert_eq!(sent.expose(), code, "the typed code must be sent unchanged");
                    Ok(response)
                }
                other => panic!("expected answer, got {other:?}"),
            })
        }

        fn assert_script_done(&self) {
            let left = self.steps.borrow().len();
            assert_eq!(left, 0, "{left} scripted request(s) were never sent");
        }
    }

    impl Daemon for FakeDaemon {
        fn call(&self, request: &Request) -> Result<Response, ClientError> {
            let step = self
                .steps
                .borrow_mut()
                .pop_front()
                .unwrap_or_else(|| panic!("unexpected request {request:?}"));
            step(request)
        }
    }

    fn ssh_context(protocol: Option<&str>) -> LoginContext {
        LoginContext {
            user: "alice".into(),
            service: "sshd".into(),
            rhost: Some("192.0.2.7".into()),
            tty: Some("ssh".into()),
            protocol: protocol.map(str::to_owned),
        }
    }

    fn prompt() -> Response {
        Response::Prompt {
            challenge: CHALLENGE.into(),
            prompt: PROMPT.into(),
        }
    }

    fn typed(code: &str) -> Result<Option<SecretString>, ConvError> {
        Ok(Some(SecretString::new(code.into())))
    }

    fn denied(reason: DenyReason, message: &str) -> Response {
        Response::Denied {
            reason,
            message: message.into(),
        }
    }

    /// Runs the flow and checks that both scripts were followed to the end.
    fn run_scripted(handle: &mut FakeHandle, daemon: &FakeDaemon, settings: &Settings) -> Outcome {
        let outcome = run(handle, daemon, settings);
        handle.assert_script_done();
        daemon.assert_script_done();
        outcome
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
    fn the_protocol_argument_is_sent_with_the_login() {
        let mut handle = FakeHandle::ssh_login();
        let daemon = FakeDaemon::default().then(|request| match request {
            Request::Begin { login } => {
                assert_eq!(login, &ssh_context(Some("sftp")));
                Ok(Response::Skip {
                    reason: SkipReason::ModeOff,
                })
            }
            other => panic!("expected begin, got {other:?}"),
        });
        let settings = Settings {
            protocol: Some(Protocol::Sftp),
            ..Settings::default()
        };
        let outcome = run_scripted(&mut handle, &daemon, &settings);
        assert_eq!(outcome, Outcome::Skipped(SkipReason::ModeOff));
    }

    #[test]
    fn every_skip_shows_no_prompt_and_sends_no_answer() {
        for reason in [
            SkipReason::ProtocolNotEnabled,
            SkipReason::UnknownService,
            SkipReason::ModeOff,
            SkipReason::NotEnrolled,
            SkipReason::NoAddress,
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
    fn no_user_fails_without_contacting_otpd() {
        for user in [None, Some(String::new())] {
            let mut handle = FakeHandle {
                user,
                ..FakeHandle::ssh_login()
            };
            let daemon = FakeDaemon::default();
            let outcome = run_scripted(&mut handle, &daemon, &Settings::default());
            assert_eq!(outcome, Outcome::NoUser);
        }
    }

    #[test]
    fn no_service_fails_without_contacting_otpd() {
        let mut handle = FakeHandle {
            service: None,
            ..FakeHandle::ssh_login()
        };
        let outcome = run_scripted(&mut handle, &FakeDaemon::default(), &Settings::default());
        assert_eq!(outcome, Outcome::NoService);
    }

    #[test]
    fn an_answer_over_64_bytes_is_a_wrong_code_and_never_reaches_otpd() {
        let long = "1".repeat(MAX_ANSWER_LEN + 1);
        let mut handle = FakeHandle::ssh_login().answering(typed(&long));
        let daemon = FakeDaemon::default().begin(prompt());
        let outcome = run_scripted(&mut handle, &daemon, &Settings::default());
        assert_eq!(outcome, Outcome::AnswerTooLong);
        assert_eq!(handle.errors_shown, vec![WRONG_CODE_MESSAGE.to_owned()]);
    }

    #[test]
    fn an_answer_of_exactly_64_bytes_is_sent() {
        let exact: &'static str =
            "7777777777777777777777777777777777777777777777777777777777777777";
        assert_eq!(exact.len(), MAX_ANSWER_LEN);
        let mut handle = FakeHandle::ssh_login().answering(typed(exact));
        let daemon = FakeDaemon::default()
            .begin(prompt())
            .answer(exact, denied(DenyReason::WrongCode, "Wrong code."));
        let outcome = run_scripted(&mut handle, &daemon, &Settings::default());
        assert_eq!(outcome, Outcome::Denied(DenyReason::WrongCode));
    }

    #[test]
    fn an_empty_or_absent_answer_is_sent_as_an_empty_code() {
        for answer in [typed(""), Ok(None)] {
            let mut handle = FakeHandle::ssh_login().answering(answer);
            let daemon = FakeDaemon::default()
                .begin(prompt())
                .answer("", denied(DenyReason::WrongCode, "Wrong code."));
            let outcome = run_scripted(&mut handle, &daemon, &Settings::default());
            assert_eq!(outcome, Outcome::Denied(DenyReason::WrongCode));
        }
    }

    #[test]
    fn a_non_utf8_answer_is_a_wrong_code_and_never_reaches_otpd() {
        let mut handle = FakeHandle::ssh_login().answering(Err(ConvError::NotUtf8));
        let daemon = FakeDaemon::default().begin(prompt());
        let outcome = run_scripted(&mut handle, &daemon, &Settings::default());
        assert_eq!(outcome, Outcome::AnswerNotUtf8);
        assert_eq!(handle.errors_shown, vec![WRONG_CODE_MESSAGE.to_owned()]);
    }

    #[test]
    fn a_failed_conversation_sends_no_answer() {
        let mut handle = FakeHandle::ssh_login().answering(Err(ConvError::Failed));
        let daemon = FakeDaemon::default().begin(prompt());
        let outcome = run_scripted(&mut handle, &daemon, &Settings::default());
        assert_eq!(outcome, Outcome::ConversationFailed);
    }

    #[test]
    fn a_wrong_code_shows_otpds_message() {
        let mut handle = FakeHandle::ssh_login().answering(typed("000000"));
        let daemon = FakeDaemon::default()
            .begin(prompt())
            .answer("000000", denied(DenyReason::WrongCode, "Wrong code."));
        let outcome = run_scripted(&mut handle, &daemon, &Settings::default());
        assert_eq!(outcome, Outcome::Denied(DenyReason::WrongCode));
        assert_eq!(handle.errors_shown, vec!["Wrong code.".to_owned()]);
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
    fn a_second_prompt_is_a_protocol_error_while_one_prompt_is_allowed() {
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
    fn a_pong_to_begin_is_a_protocol_error() {
        let mut handle = FakeHandle::ssh_login();
        let daemon = FakeDaemon::default().begin(Response::Pong {
            version: "1".into(),
        });
        assert_eq!(
            run_scripted(&mut handle, &daemon, &Settings::default()),
            Outcome::ProtocolError
        );
    }

    #[test]
    fn an_error_response_is_logged_and_means_unavailable() {
        let mut handle = FakeHandle::ssh_login();
        let daemon = FakeDaemon::default().begin(Response::Error {
            message: "bad\nrequest".into(),
        });
        assert_eq!(
            run_scripted(&mut handle, &daemon, &Settings::default()),
            Outcome::DaemonError
        );
        let errors = handle.logged(LogLevel::Error);
        assert_eq!(errors.len(), 1);
        assert!(errors[0].contains("bad\\x0arequest"), "{errors:?}");
        assert!(handle.errors_shown.is_empty());
    }

    #[test]
    fn client_errors_end_the_flow_at_either_step() {
        let errors: Vec<(fn() -> ClientError, Outcome)> = vec![
            (
                || ClientError::Connect {
                    path: PathBuf::from("/run/otpd/otpd.sock"),
                    source: std::io::ErrorKind::NotFound.into(),
                },
                Outcome::DaemonUnreachable,
            ),
            (
                || ClientError::Timeout(Duration::from_secs(5)),
                Outcome::DaemonTimeout,
            ),
            (
                || ClientError::UntrustedDaemon {
                    path: PathBuf::from("/run/otpd/otpd.sock"),
                    uid: 1000,
                },
                Outcome::UntrustedDaemon,
            ),
            (
                || ClientError::Frame(FrameError::Closed),
                Outcome::ProtocolError,
            ),
        ];
        for (error, outcome) in errors {
            let mut handle = FakeHandle::ssh_login();
            let daemon = FakeDaemon::default().then(move |_| Err(error()));
            assert_eq!(
                run_scripted(&mut handle, &daemon, &Settings::default()),
                outcome
            );
            assert!(handle.prompts_shown.is_empty());
            assert_eq!(handle.logged(LogLevel::Error).len(), 1, "{outcome:?}");

            let mut handle = FakeHandle::ssh_login().answering(typed("123456"));
            let daemon = FakeDaemon::default()
                .begin(prompt())
                .then(move |_| Err(error()));
            assert_eq!(
                run_scripted(&mut handle, &daemon, &Settings::default()),
                outcome
            );
        }
    }

    #[test]
    fn debug_logs_every_step_but_never_the_code() {
        let mut handle = FakeHandle::ssh_login().answering(typed("482913"));
        let daemon = FakeDaemon::default()
            .begin(prompt())
            .answer("482913", Response::Success);
        let settings = Settings {
            debug: true,
            ..Settings::default()
        };
        assert_eq!(
            run_scripted(&mut handle, &daemon, &settings),
            Outcome::Success
        );
        let lines = handle.logged(LogLevel::Debug);
        assert!(lines.len() >= 4, "{lines:?}");
        assert!(lines.iter().any(|l| l.contains("user=alice")), "{lines:?}");
        for line in handle.logs.borrow().iter() {
            assert!(!line.1.contains("482913"), "code leaked into {line:?}");
            assert!(
                !line.1.contains(CHALLENGE),
                "challenge leaked into {line:?}"
            );
        }
    }

    #[test]
    fn without_debug_a_normal_login_logs_nothing() {
        let mut handle = FakeHandle::ssh_login().answering(typed("482913"));
        let daemon = FakeDaemon::default()
            .begin(prompt())
            .answer("482913", Response::Success);
        run_scripted(&mut handle, &daemon, &Settings::default());
        assert!(handle.logs.borrow().is_empty());
    }

    #[test]
    fn logged_user_names_cannot_forge_log_lines() {
        let mut handle = FakeHandle {
            user: Some("eve\nroot logged in".into()),
            ..FakeHandle::ssh_login()
        };
        let daemon = FakeDaemon::default().then(|_| {
            Ok(Response::Skip {
                reason: SkipReason::NotEnrolled,
            })
        });
        let settings = Settings {
            debug: true,
            ..Settings::default()
        };
        run_scripted(&mut handle, &daemon, &settings);
        for (_, line) in handle.logs.borrow().iter() {
            assert!(!line.contains('\n'), "{line:?}");
        }
    }

    #[cfg(feature = "test-panic")]
    #[test]
    #[should_panic(expected = "test_panic")]
    fn the_test_panic_setting_makes_the_flow_panic() {
        let settings = Settings {
            test_panic: true,
            ..Settings::default()
        };
        run(
            &mut FakeHandle::ssh_login(),
            &FakeDaemon::default(),
            &settings,
        );
    }
}
