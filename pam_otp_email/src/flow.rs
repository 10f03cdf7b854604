//! The login flow: ask otpd what to do, then do exactly that.
//!
//! It is written against two small traits, [`LoginHandle`] (what the module needs from PAM) and
//! [`Daemon`] (one request to otpd), so every path is unit tested with scripted fakes, without
//! libpam or a running daemon. The module never decides policy: it asks otpd and follows the
//! answer (skip, prompt, success, denied, unavailable).
//!
//! One module, three jobs, chosen by the pam.d line and by what an earlier line left behind:
//! - `interactive`: sshd, su, login. Begin, then prompt for the code up to `tries=` times; an
//!   empty answer asks for a new code.
//! - `split` (`split` argument): the first line of a single-secret stack (FTP, HTTP Basic,
//!   WebDAV). It cuts `password || code` in two, hands the password on in PAM_AUTHTOK and stashes
//!   the code.
//! - `stashed`: the line after the password module in that stack. It verifies the stashed code,
//!   or, when only the password came, has a code mailed and fails this login saying so.

mod interactive;
mod split;
mod stashed;

#[cfg(test)]
mod fakes;

use common::client::ClientError;
use common::secret::SecretString;
use common::service::Protocol;
use common::text::escape_for_log;
use common::wire::{LoginContext, MAX_SSH_KEY_LEN, MAX_SSH_KEYS, Request, Response};

use crate::args::DEFAULT_TRIES;
use crate::outcome::Outcome;
use crate::refusal_log::{self, Who};
use crate::secret::SecretBytes;

pub use split::{MAX_SECRET_LEN, PASSWORD_PROMPT, split_secret};
pub use stashed::mailed_message;

/// The longest answer sent to otpd. Codes are a few digits; anything longer is refused as a wrong
/// code without contacting otpd, so a pasted blob never reaches the socket.
pub const MAX_ANSWER_LEN: usize = 64;

/// Shown when the module refuses an answer itself (too long, not UTF-8). otpd words every other
/// refusal.
pub const WRONG_CODE_MESSAGE: &str = "Wrong code.";

/// Why a prompt got no answer at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ConvError {
    /// The application's conversation function failed or is missing: nobody is there to answer.
    #[error("the conversation with the application failed")]
    Failed,
}

/// libpam would not keep something the next lines of the stack need.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("libpam could not store the {item} (PAM error {code})")]
pub struct PamItemError {
    /// What could not be stored, for syslog.
    pub item: &'static str,
    /// libpam's return code.
    pub code: i32,
}

/// How important a log line is; the PAM adapter maps it to a syslog priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    /// Something the admin must fix (otpd unreachable, a confused daemon). Always logged.
    Error,
    /// The person was refused (wrong code, locked out). Always logged, as pam_unix logs a wrong
    /// password.
    Notice,
    /// A step of the flow, logged only with the `debug` module argument.
    Debug,
}

/// What the split role found in the secret, left for this module's line after the password
/// module in the same transaction.
#[derive(Debug, Clone)]
pub enum Stash {
    /// The secret ended with a code: verify it, never prompt (nobody could answer).
    Code(SecretString),
    /// The secret was the password alone, which the password module has checked by the time the
    /// stash is read: a code may be mailed now.
    NoCode,
}

/// What the flow needs from PAM: the login's items, the conversation, syslog, and the two
/// things the lines of a single-secret stack pass on (PAM_AUTHTOK and the stash).
pub trait LoginHandle {
    /// PAM_USER, asking the application for it if it is not set yet.
    fn user(&mut self) -> Option<String>;
    /// PAM_SERVICE.
    fn service(&self) -> Option<String>;
    /// PAM_RHOST, if the application set it.
    fn rhost(&self) -> Option<String>;
    /// PAM_TTY, if the application set it.
    fn tty(&self) -> Option<String>;
    /// `SSH_AUTH_INFO_0` of the PAM environment, which sshd with `ExposeAuthInfo yes` sets to
    /// the methods that authenticated the login so far. Never read from the process
    /// environment: a client's `SetEnv` can put anything there.
    fn ssh_auth_info(&self) -> Option<String>;
    /// Shows `text` as a prompt and returns what was typed, as bytes (a password need not be
    /// UTF-8); `Ok(None)` when the application answered without any text.
    fn prompt(&mut self, text: &str, echo: bool) -> Result<Option<SecretBytes>, ConvError>;
    /// Shows `text` as an error message. Failure is ignored: the login fails anyway.
    fn error_message(&mut self, text: &str);
    /// Writes one line to syslog (LOG_AUTHPRIV). `text` is already escaped and never contains a
    /// code.
    fn log(&self, level: LogLevel, text: &str);
    /// PAM_AUTHTOK, when the application or an earlier module set it.
    fn authtok(&self) -> Option<SecretBytes>;
    /// Sets PAM_AUTHTOK, for a password module after us (`use_first_pass`).
    fn set_authtok(&mut self, secret: &[u8]) -> Result<(), PamItemError>;
    /// Leaves `stash` for a later line of this module in the same transaction, replacing any.
    fn stash(&mut self, stash: Stash) -> Result<(), PamItemError>;
    /// Takes what an earlier line stashed and clears it, so one stash serves one login only.
    fn take_stash(&mut self) -> Result<Option<Stash>, PamItemError>;
}

/// The public keys in sshd's `SSH_AUTH_INFO_0`, as `TYPE BASE64`: one per `publickey` line
/// (`publickey ssh-ed25519 AAAA...`). Other methods are left out, and so are lines too long to
/// send and keys beyond [`MAX_SSH_KEYS`]: fewer keys can only exempt fewer logins.
pub fn ssh_keys(auth_info: &str) -> Vec<String> {
    auth_info
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_ascii_whitespace();
            if fields.next() != Some("publickey") {
                return None;
            }
            let key = format!("{} {}", fields.next()?, fields.next()?);
            (key.len() <= MAX_SSH_KEY_LEN).then_some(key)
        })
        .take(MAX_SSH_KEYS)
        .collect()
}

/// One request to otpd and its answer.
pub trait Daemon {
    /// Sends `request` and waits (within the configured deadline) for the answer.
    fn call(&self, request: &Request) -> Result<Response, ClientError>;
}

/// The parts of the module arguments the flow uses.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `protocol=`, passed to otpd so it overrides the service mapping.
    pub protocol: Option<Protocol>,
    /// `debug`: log each step.
    pub debug: bool,
    /// `tries=`: answers per login (at least one is always allowed).
    pub tries: u8,
    /// `echo`: show the code as it is typed.
    pub echo: bool,
    /// `split`: this line is the split role of a single-secret stack.
    pub split: bool,
    /// `test_panic`: panic at the start of the flow.
    #[cfg(feature = "test-panic")]
    pub test_panic: bool,
}

impl Default for Settings {
    /// The settings of a pam.d line without arguments.
    fn default() -> Self {
        Settings {
            protocol: None,
            debug: false,
            tries: DEFAULT_TRIES,
            echo: false,
            split: false,
            #[cfg(feature = "test-panic")]
            test_panic: false,
        }
    }
}

/// Runs one login in the role the settings and the stash choose, and says how it ended.
pub fn run<H: LoginHandle, D: Daemon>(handle: &mut H, daemon: &D, settings: &Settings) -> Outcome {
    #[cfg(feature = "test-panic")]
    if settings.test_panic {
        test_fault();
    }
    let mut flow = Flow {
        handle,
        daemon,
        settings,
        who: Who::default(),
        detail: None,
    };
    let outcome = if settings.split {
        flow.split()
    } else {
        flow.login()
    };
    flow.debug(|| format!("outcome: {outcome:?}"));
    if let Some((level, line)) =
        refusal_log::line(outcome, &flow.who, flow.detail.as_deref(), settings.tries)
    {
        flow.handle.log(level, &line);
    }
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

/// One login in progress. The roles add their steps in the submodules.
struct Flow<'a, H, D> {
    handle: &'a mut H,
    daemon: &'a D,
    settings: &'a Settings,
    /// Who is logging in, for the one line a refusal logs ([`refusal_log`]).
    who: Who,
    /// What otpd or the client said when the login could not go on, for that same line. Kept
    /// here instead of logged at once so that a refusal is one line, not two.
    detail: Option<String>,
}

impl<H: LoginHandle, D: Daemon> Flow<'_, H, D> {
    /// The normal role: what the split role stashed decides the way, else the prompt.
    fn login(&mut self) -> Outcome {
        // Taken first, whatever happens next: a stash serves the login it was made for only.
        let stash = match self.handle.take_stash() {
            Ok(stash) => stash,
            Err(error) => return self.store_failed(error),
        };
        let login = match self.context() {
            Ok(login) => login,
            Err(outcome) => return outcome,
        };
        match stash {
            Some(Stash::Code(code)) => self.verify_stashed(login, code),
            Some(Stash::NoCode) => self.begin_after_password(login),
            None => self.interactive(login),
        }
    }

    /// Who is logging in, from the PAM items and the `protocol=` argument.
    fn context(&mut self) -> Result<LoginContext, Outcome> {
        let user = self.handle.user().filter(|u| !u.is_empty());
        self.who = Who {
            user: user.clone(),
            service: self.handle.service(),
            rhost: self.handle.rhost(),
        };
        let Some(user) = user else {
            self.debug(|| "no user name: refusing".to_owned());
            return Err(Outcome::NoUser);
        };
        let Some(service) = self.who.service.clone() else {
            return Err(Outcome::NoService);
        };
        let login = LoginContext {
            user,
            service,
            rhost: self.who.rhost.clone(),
            tty: self.handle.tty(),
            protocol: self.settings.protocol.map(|p| p.as_str().to_owned()),
        };
        self.debug(|| {
            format!(
                "login: user={} service={} rhost={} tty={} protocol={}",
                escape_for_log(&login.user),
                escape_for_log(&login.service),
                escape_for_log(login.rhost.as_deref().unwrap_or("-")),
                escape_for_log(login.tty.as_deref().unwrap_or("-")),
                login.protocol.as_deref().unwrap_or("-"),
            )
        });
        Ok(login)
    }

    /// Every answer that is not a way forward: shows otpd's message where there is one, and
    /// keeps it for the refusal's log line (it never holds a code). Anything unexpected (e.g. a
    /// skip after a prompt was shown) is a protocol error, never a skip.
    fn refused(&mut self, step: &str, response: Response) -> Outcome {
        match response {
            Response::Denied { reason, message } => {
                self.handle.error_message(&message);
                self.detail = Some(format!("otpd: {message}"));
                Outcome::Denied(reason)
            }
            Response::Unavailable { message } => {
                self.handle.error_message(&message);
                self.detail = Some(format!("otpd: {message}"));
                Outcome::Unavailable
            }
            Response::Error { message } => {
                self.detail = Some(format!("otpd refused the {step} request: {message}"));
                Outcome::DaemonError
            }
            other => {
                self.detail = Some(format!(
                    "otpd answered {step} with {}, which does not fit",
                    kind(&other)
                ));
                Outcome::ProtocolError
            }
        }
    }

    /// One call to otpd; a failure becomes the outcome, and its cause the detail of the
    /// refusal's log line (the admin must know). The name of the request is logged with
    /// `debug`, never its fields.
    fn call(&mut self, step: &str, request: &Request) -> Result<Response, Outcome> {
        let response = match self.daemon.call(request) {
            Ok(response) => response,
            Err(error) => {
                self.detail = Some(format!("cannot ask otpd ({step}): {error}"));
                return Err(Outcome::from_client_error(&error));
            }
        };
        self.debug(|| format!("otpd answered {step} with {}", kind(&response)));
        Ok(response)
    }

    /// libpam would not keep PAM_AUTHTOK or the stash: the admin must know, the login fails.
    fn store_failed(&mut self, error: PamItemError) -> Outcome {
        self.detail = Some(error.to_string());
        Outcome::PamStoreFailed
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
        Response::Probe { .. } => "probe",
        Response::Admin { .. } => "admin",
        Response::Pong { .. } => "pong",
        Response::SuccessWithNotice { .. } => "success_with_notice",
    }
}

#[cfg(test)]
mod tests {
    use super::fakes::*;
    use super::*;
    use common::frame::FrameError;
    use common::wire::{DenyReason, SkipReason};
    use std::path::PathBuf;
    use std::time::Duration;

    #[test]
    fn the_protocol_argument_is_sent_with_the_login() {
        let mut handle = FakeHandle::ssh_login();
        let daemon = FakeDaemon::for_login(ssh_context(Some("sftp"))).begin(Response::Skip {
            reason: SkipReason::ModeOff,
        });
        let settings = Settings {
            protocol: Some(Protocol::Sftp),
            ..Settings::default()
        };
        let outcome = run_scripted(&mut handle, &daemon, &settings);
        assert_eq!(outcome, Outcome::Skipped(SkipReason::ModeOff));
    }

    #[test]
    fn the_default_settings_are_those_of_a_line_without_arguments() {
        let settings = Settings::default();
        assert_eq!(settings.tries, 3);
        assert!(!settings.echo && !settings.split && !settings.debug);
        assert_eq!(settings.protocol, None);
    }

    #[test]
    fn no_user_fails_without_contacting_otpd_in_either_role() {
        for split in [false, true] {
            for user in [None, Some(String::new())] {
                let mut handle = FakeHandle {
                    user,
                    ..FakeHandle::ssh_login()
                };
                let settings = Settings {
                    split,
                    ..Settings::default()
                };
                let outcome = run_scripted(&mut handle, &FakeDaemon::default(), &settings);
                assert_eq!(outcome, Outcome::NoUser);
            }
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

    fn client_errors() -> Vec<(fn() -> ClientError, Outcome)> {
        vec![
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
        ]
    }

    #[test]
    fn client_errors_end_the_interactive_flow_at_every_step() {
        for (error, outcome) in client_errors() {
            // At begin.
            let mut handle = FakeHandle::ssh_login();
            let daemon = FakeDaemon::default().then(move |_| Err(error()));
            assert_eq!(
                run_scripted(&mut handle, &daemon, &Settings::default()),
                outcome
            );
            assert!(handle.prompts_shown.is_empty());
            assert_eq!(handle.logged(LogLevel::Error).len(), 1, "{outcome:?}");

            // At the answer.
            let mut handle = FakeHandle::ssh_login().answering(typed("123456"));
            let daemon = FakeDaemon::default()
                .begin(prompt())
                .then(move |_| Err(error()));
            assert_eq!(
                run_scripted(&mut handle, &daemon, &Settings::default()),
                outcome
            );

            // At a resend.
            let mut handle = FakeHandle::ssh_login().answering(typed(""));
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
    fn client_errors_fail_closed_in_both_single_secret_lines() {
        for (error, outcome) in client_errors() {
            // The split role at the probe: nothing handed on, nothing stashed.
            let mut handle = FakeHandle::ftp_login().answering(typed("hunter2"));
            let daemon = FakeDaemon::ftp().then(move |_| Err(error()));
            assert_eq!(run_scripted(&mut handle, &daemon, &split_role()), outcome);
            assert!(handle.authtok.is_none());
            assert!(handle.stash.is_none());

            // The normal role at verify and at begin.
            for stash in [
                Stash::Code(SecretString::new("123456".into())),
                Stash::NoCode,
            ] {
                let mut handle = FakeHandle::ftp_login().stashed(stash);
                let daemon = FakeDaemon::ftp().then(move |_| Err(error()));
                assert_eq!(
                    run_scripted(&mut handle, &daemon, &Settings::default()),
                    outcome
                );
                assert!(handle.prompts_shown.is_empty());
            }
        }
    }

    #[test]
    fn every_failure_to_reach_otpd_is_unavailable_to_pam() {
        for (_, outcome) in client_errors() {
            assert_eq!(
                crate::outcome::pam_code(outcome),
                pam::constants::PamResultCode::PAM_AUTHINFO_UNAVAIL
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
        handle.assert_logs_never_contain(&["482913", CHALLENGE]);
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

    /// Regression: a refused login left no line in auth.log, only sshd's "Connection closed by
    /// authenticating user"; the reason was in otpd's journal alone.
    #[test]
    fn a_wrong_code_logs_one_notice_naming_the_login_but_never_the_code() {
        let mut handle = FakeHandle::ssh_login()
            .answering(typed("111111"))
            .answering(typed("222222"))
            .answering(typed("333333"));
        let wrong = || denied(DenyReason::WrongCode, "Wrong code.");
        let daemon = FakeDaemon::default()
            .begin(prompt())
            .answer("111111", wrong())
            .answer("222222", wrong())
            .answer("333333", wrong());
        let outcome = run_scripted(&mut handle, &daemon, &Settings::default());
        assert_eq!(outcome, Outcome::TriesExhausted);
        let lines = handle.logs.borrow().clone();
        assert_eq!(
            lines.len(),
            1,
            "one line per login, not per answer: {lines:?}"
        );
        let (level, line) = &lines[0];
        assert_eq!(*level, LogLevel::Notice);
        assert_eq!(
            line,
            "login refused: user=alice service=sshd rhost=192.0.2.7: no right code in 3 tries"
        );
        handle.assert_logs_never_contain(&["111111", "222222", "333333", CHALLENGE]);
    }

    #[test]
    fn a_lockout_is_logged_with_otpds_minutes() {
        let mut handle = FakeHandle::ssh_login();
        let daemon = FakeDaemon::default().begin(denied(
            DenyReason::LockedOut,
            "Too many wrong codes. Try again in 15 minutes.",
        ));
        run_scripted(&mut handle, &daemon, &Settings::default());
        let lines = handle.logged(LogLevel::Notice);
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].contains("user=alice"), "{lines:?}");
        assert!(lines[0].contains("locked out"), "{lines:?}");
        assert!(lines[0].contains("Try again in 15 minutes."), "{lines:?}");
    }

    #[test]
    fn an_unreachable_otpd_is_one_error_line_naming_the_login_and_the_cause() {
        let mut handle = FakeHandle::ssh_login();
        let daemon = FakeDaemon::default().then(|_| Err(client_errors()[0].0()));
        assert_eq!(
            run_scripted(&mut handle, &daemon, &Settings::default()),
            Outcome::DaemonUnreachable
        );
        let lines = handle.logs.borrow().clone();
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert_eq!(lines[0].0, LogLevel::Error);
        assert!(
            lines[0]
                .1
                .starts_with("login not checked, refused: user=alice service=sshd rhost=192.0.2.7: otpd unreachable ("),
            "{lines:?}"
        );
        assert!(lines[0].1.contains("/run/otpd/otpd.sock"), "{lines:?}");
    }

    #[test]
    fn mail_that_could_not_be_sent_is_logged_in_otpds_words() {
        let mut handle = FakeHandle::ssh_login();
        let daemon = FakeDaemon::default().begin(Response::Unavailable {
            message: "The login code could not be sent. Try again later.".into(),
        });
        assert_eq!(
            run_scripted(&mut handle, &daemon, &Settings::default()),
            Outcome::Unavailable
        );
        let lines = handle.logged(LogLevel::Error);
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].contains("could not be sent"), "{lines:?}");
    }

    #[test]
    fn a_stash_that_cannot_be_read_back_fails_the_login_without_otpd() {
        let mut handle = FakeHandle {
            refuse_take: true,
            ..FakeHandle::ssh_login()
        }
        .stashed(Stash::NoCode);
        let outcome = run_scripted(&mut handle, &FakeDaemon::default(), &Settings::default());
        assert_eq!(outcome, Outcome::PamStoreFailed);
        assert_eq!(handle.logged(LogLevel::Error).len(), 1);
        assert!(handle.prompts_shown.is_empty());
    }

    #[test]
    fn a_denial_reason_at_begin_is_kept_for_the_pam_code() {
        let mut handle = FakeHandle::ssh_login();
        let daemon = FakeDaemon::default().begin(denied(DenyReason::LockedOut, "Locked."));
        assert_eq!(
            run_scripted(&mut handle, &daemon, &Settings::default()),
            Outcome::Denied(DenyReason::LockedOut)
        );
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

    #[test]
    fn ssh_keys_are_the_publickey_lines_of_ssh_auth_info() {
        let info = "publickey ssh-ed25519 AAAAkeyA\npassword\nkeyboard-interactive\npublickey ssh-ed25519-cert-v01@openssh.com AAAAcert extra fields\npublickey\npublickey ssh-rsa\n  publickey ecdsa-sha2-nistp256 AAAAkeyC  \n";
        assert_eq!(
            ssh_keys(info),
            [
                "ssh-ed25519 AAAAkeyA",
                "ssh-ed25519-cert-v01@openssh.com AAAAcert",
                "ecdsa-sha2-nistp256 AAAAkeyC",
            ]
        );
        assert!(ssh_keys("").is_empty());
        assert!(ssh_keys("publickeyx ssh-ed25519 AAAA").is_empty());
    }

    #[test]
    fn ssh_keys_leaves_out_keys_too_long_or_too_many_to_send() {
        let long = format!(
            "publickey ssh-rsa {}\npublickey ssh-ed25519 AAAAok",
            "A".repeat(MAX_SSH_KEY_LEN)
        );
        assert_eq!(ssh_keys(&long), ["ssh-ed25519 AAAAok"]);
        let many: String = (0..MAX_SSH_KEYS + 3)
            .map(|n| format!("publickey ssh-ed25519 AAAA{n}\n"))
            .collect();
        let keys = ssh_keys(&many);
        assert_eq!(keys.len(), MAX_SSH_KEYS);
        assert_eq!(keys[0], "ssh-ed25519 AAAA0");
    }
}
