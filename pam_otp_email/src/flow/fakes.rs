//! Scripted fakes of PAM and otpd for the flow's tests. Both fail the test when the flow strays
//! from the script: an unexpected prompt or request panics, and [`run_scripted`] fails when a
//! scripted prompt or request never came.

use std::cell::RefCell;
use std::collections::VecDeque;

use common::client::ClientError;
use common::secret::SecretString;
use common::wire::{DenyReason, LoginContext, Request, Response};

use super::{ConvError, Daemon, LogLevel, LoginHandle, PamItemError, Settings, Stash, run};
use crate::outcome::Outcome;
use crate::secret::SecretBytes;

/// The challenge of [`prompt`].
pub(super) const CHALLENGE: &str = "ch-7f3a";
/// The prompt text of [`prompt`].
pub(super) const PROMPT: &str = "Code sent to a***@e***.com (valid 10 min): ";

/// What the fake conversation answers to one prompt.
pub(super) type Answer = Result<Option<SecretBytes>, ConvError>;

/// A PAM handle whose conversation follows a script, with PAM_AUTHTOK and the stash as plain
/// fields the tests set and inspect.
#[derive(Default)]
pub(super) struct FakeHandle {
    pub(super) user: Option<String>,
    pub(super) service: Option<String>,
    pub(super) rhost: Option<String>,
    pub(super) tty: Option<String>,
    /// `SSH_AUTH_INFO_0` in the PAM environment.
    pub(super) ssh_auth_info: Option<String>,
    /// Answers to the prompts still to come, in order.
    pub(super) prompts: VecDeque<Answer>,
    /// Every prompt text shown.
    pub(super) prompts_shown: Vec<String>,
    /// Whether each prompt asked for echo.
    pub(super) echoes: Vec<bool>,
    /// Every error message shown.
    pub(super) errors_shown: Vec<String>,
    pub(super) logs: RefCell<Vec<(LogLevel, String)>>,
    /// PAM_AUTHTOK.
    pub(super) authtok: Option<Vec<u8>>,
    /// How many times the flow set PAM_AUTHTOK.
    pub(super) authtok_sets: usize,
    /// The module data under the stash key.
    pub(super) stash: Option<Stash>,
    /// libpam fails `take_stash`.
    pub(super) refuse_take: bool,
    /// libpam fails `stash`.
    pub(super) refuse_stash: bool,
    /// libpam fails `set_authtok`.
    pub(super) refuse_authtok: bool,
}

impl FakeHandle {
    /// An sshd login as [`ssh_context`] describes it.
    pub(super) fn ssh_login() -> FakeHandle {
        FakeHandle {
            user: Some("alice".into()),
            service: Some("sshd".into()),
            rhost: Some("192.0.2.7".into()),
            tty: Some("ssh".into()),
            ..FakeHandle::default()
        }
    }

    /// An FTP login as [`ftp_context`] describes it, without PAM_AUTHTOK (vsftpd answers the
    /// password prompt instead).
    pub(super) fn ftp_login() -> FakeHandle {
        FakeHandle {
            user: Some("alice".into()),
            service: Some("vsftpd".into()),
            rhost: Some("198.51.100.4".into()),
            tty: None,
            ..FakeHandle::default()
        }
    }

    /// Adds the answer to the next prompt.
    pub(super) fn answering(mut self, answer: Answer) -> FakeHandle {
        self.prompts.push_back(answer);
        self
    }

    /// Sets PAM_AUTHTOK as an application that passes the password itself would.
    pub(super) fn with_authtok(mut self, secret: &[u8]) -> FakeHandle {
        self.authtok = Some(secret.to_vec());
        self
    }

    /// Leaves `stash` as the split role would have.
    pub(super) fn stashed(mut self, stash: Stash) -> FakeHandle {
        self.stash = Some(stash);
        self
    }

    pub(super) fn assert_script_done(&self) {
        assert!(
            self.prompts.is_empty(),
            "{} scripted prompt(s) were never shown",
            self.prompts.len()
        );
    }

    pub(super) fn logged(&self, level: LogLevel) -> Vec<String> {
        self.logs
            .borrow()
            .iter()
            .filter(|(l, _)| *l == level)
            .map(|(_, t)| t.clone())
            .collect()
    }

    /// Fails if any log line, at any level, contains one of `secrets`.
    pub(super) fn assert_logs_never_contain(&self, secrets: &[&str]) {
        for (_, line) in self.logs.borrow().iter() {
            for secret in secrets {
                assert!(!line.contains(secret), "{secret:?} leaked into {line:?}");
            }
        }
    }

    /// The stashed code, or `None` for "no code"; fails when nothing is stashed.
    pub(super) fn stashed_code(&self) -> Option<String> {
        match self.stash.as_ref().expect("something was stashed") {
            Stash::Code(code) => Some(code.expose().to_owned()),
            Stash::NoCode => None,
        }
    }
}

fn refused(item: &'static str) -> PamItemError {
    PamItemError {
        item,
        code: 5, // PAM_BUF_ERR
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
    fn ssh_auth_info(&self) -> Option<String> {
        self.ssh_auth_info.clone()
    }
    fn prompt(&mut self, text: &str, echo: bool) -> Result<Option<SecretBytes>, ConvError> {
        let answer = self
            .prompts
            .pop_front()
            .unwrap_or_else(|| panic!("unexpected prompt {text:?}"));
        self.prompts_shown.push(text.to_owned());
        self.echoes.push(echo);
        answer
    }
    fn error_message(&mut self, text: &str) {
        self.errors_shown.push(text.to_owned());
    }
    fn log(&self, level: LogLevel, text: &str) {
        self.logs.borrow_mut().push((level, text.to_owned()));
    }
    fn authtok(&self) -> Option<SecretBytes> {
        self.authtok.as_deref().map(SecretBytes::from_slice)
    }
    fn set_authtok(&mut self, secret: &[u8]) -> Result<(), PamItemError> {
        if self.refuse_authtok {
            return Err(refused("password"));
        }
        self.authtok = Some(secret.to_vec());
        self.authtok_sets += 1;
        Ok(())
    }
    fn stash(&mut self, stash: Stash) -> Result<(), PamItemError> {
        if self.refuse_stash {
            return Err(refused("stash"));
        }
        self.stash = Some(stash);
        Ok(())
    }
    fn take_stash(&mut self) -> Result<Option<Stash>, PamItemError> {
        if self.refuse_take {
            return Err(refused("stash"));
        }
        Ok(self.stash.take())
    }
}

type Step = Box<dyn FnOnce(&Request) -> Result<Response, ClientError>>;

/// otpd following a script: each step checks the request it gets; a request beyond the script
/// panics.
pub(super) struct FakeDaemon {
    steps: RefCell<VecDeque<Step>>,
    /// The login every scripted request must carry.
    login: LoginContext,
}

impl Default for FakeDaemon {
    /// Expects the login of [`FakeHandle::ssh_login`].
    fn default() -> Self {
        FakeDaemon::for_login(ssh_context(None))
    }
}

impl FakeDaemon {
    pub(super) fn for_login(login: LoginContext) -> Self {
        FakeDaemon {
            steps: RefCell::default(),
            login,
        }
    }

    /// Expects the login of [`FakeHandle::ftp_login`].
    pub(super) fn ftp() -> Self {
        FakeDaemon::for_login(ftp_context())
    }

    /// A step that checks the request itself.
    pub(super) fn then(
        self,
        step: impl FnOnce(&Request) -> Result<Response, ClientError> + 'static,
    ) -> Self {
        self.steps.borrow_mut().push_back(Box::new(step));
        self
    }

    /// Expects a `Begin` and answers `response`.
    pub(super) fn begin(self, response: Response) -> Self {
        let expected = self.login.clone();
        self.then(move |request| match request {
            Request::Begin { login, .. } => {
                assert_eq!(login, &expected);
                Ok(response)
            }
            other => panic!("expected begin, got {other:?}"),
        })
    }

    /// Expects an `Answer` carrying `challenge` and exactly `code`.
    pub(super) fn answer_to(
        self,
        challenge: &'static str,
        code: &'static str,
        response: Response,
    ) -> Self {
        let expected = self.login.clone();
        self.then(move |request| match request {
            Request::Answer {
                login,
                challenge: sent_challenge,
                code: sent,
            } => {
                assert_eq!(login, &expected);
                assert_eq!(sent_challenge, challenge);
                assert_eq!(sent.expose(), code, "the typed code must be sent unchanged");
                Ok(response)
            }
            other => panic!("expected answer, got {other:?}"),
        })
    }

    /// Expects an `Answer` carrying the challenge of [`prompt`] and exactly `code`.
    pub(super) fn answer(self, code: &'static str, response: Response) -> Self {
        self.answer_to(CHALLENGE, code, response)
    }

    /// Expects a `Resend` and answers `response`.
    pub(super) fn resend(self, response: Response) -> Self {
        let expected = self.login.clone();
        self.then(move |request| match request {
            Request::Resend { login } => {
                assert_eq!(login, &expected);
                Ok(response)
            }
            other => panic!("expected resend, got {other:?}"),
        })
    }

    /// Expects a `Probe` and answers `response`.
    pub(super) fn probe(self, response: Response) -> Self {
        let expected = self.login.clone();
        self.then(move |request| match request {
            Request::Probe { login } => {
                assert_eq!(login, &expected);
                Ok(response)
            }
            other => panic!("expected probe, got {other:?}"),
        })
    }

    /// Expects a `Verify` carrying exactly `code` and answers `response`.
    pub(super) fn verify(self, code: &'static str, response: Response) -> Self {
        let expected = self.login.clone();
        self.then(move |request| match request {
            Request::Verify { login, code: sent } => {
                assert_eq!(login, &expected);
                assert_eq!(sent.expose(), code);
                Ok(response)
            }
            other => panic!("expected verify, got {other:?}"),
        })
    }

    pub(super) fn assert_script_done(&self) {
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

/// The login of [`FakeHandle::ssh_login`], with the `protocol=` argument's value.
pub(super) fn ssh_context(protocol: Option<&str>) -> LoginContext {
    LoginContext {
        user: "alice".into(),
        service: "sshd".into(),
        rhost: Some("192.0.2.7".into()),
        tty: Some("ssh".into()),
        protocol: protocol.map(str::to_owned),
    }
}

/// The login of [`FakeHandle::ftp_login`].
pub(super) fn ftp_context() -> LoginContext {
    LoginContext {
        user: "alice".into(),
        service: "vsftpd".into(),
        rhost: Some("198.51.100.4".into()),
        tty: None,
        protocol: None,
    }
}

/// otpd's usual prompt.
pub(super) fn prompt() -> Response {
    Response::Prompt {
        challenge: CHALLENGE.into(),
        prompt: PROMPT.into(),
        wrong_code: None,
        log_in_again: None,
    }
}

/// The conversation answers `text`.
pub(super) fn typed(text: &str) -> Answer {
    typed_bytes(text.as_bytes())
}

/// The conversation answers `bytes`, which need not be UTF-8.
pub(super) fn typed_bytes(bytes: &[u8]) -> Answer {
    Ok(Some(SecretBytes::from_slice(bytes)))
}

pub(super) fn denied(reason: DenyReason, message: &str) -> Response {
    Response::Denied {
        reason,
        message: message.into(),
    }
}

/// Settings of the `split` line.
pub(super) fn split_role() -> Settings {
    Settings {
        split: true,
        ..Settings::default()
    }
}

/// A stashed code.
pub(super) fn stashed_code(code: &str) -> Stash {
    Stash::Code(SecretString::new(code.into()))
}

/// Runs the flow and checks that both scripts were followed to the end.
pub(super) fn run_scripted(
    handle: &mut FakeHandle,
    daemon: &FakeDaemon,
    settings: &Settings,
) -> Outcome {
    let outcome = run(handle, daemon, settings);
    handle.assert_script_done();
    daemon.assert_script_done();
    outcome
}
