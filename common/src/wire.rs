//! The messages between the PAM module (or otpctl) and otpd.
//!
//! The module sends [`Request::Begin`] and then does what the answer says: skip, prompt with this
//! text, success, denied, unavailable. It never decides policy itself.

use serde::{Deserialize, Serialize};

use crate::secret::SecretString;

/// The most SSH keys a begin request carries; a module drops the rest (fewer keys can only
/// exempt fewer logins).
pub const MAX_SSH_KEYS: usize = 8;

/// The longest `TYPE BASE64` key line a begin request carries: room for a 16384-bit RSA key.
pub const MAX_SSH_KEY_LEN: usize = 4096;

/// Who is logging in, as the PAM module read it from the PAM items. All of it is untrusted: otpd
/// caps lengths and escapes it before logging.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginContext {
    /// PAM_USER.
    pub user: String,
    /// PAM_SERVICE, e.g. `sshd`.
    pub service: String,
    /// PAM_RHOST, where the login comes from, when the application set it.
    pub rhost: Option<String>,
    /// PAM_TTY, when the application set it.
    pub tty: Option<String>,
    /// The module's `protocol=` argument, which overrides otpd's service mapping.
    pub protocol: Option<String>,
}

/// What a client asks otpd.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// A login starts: otpd decides whether a code is needed, issues and mails it.
    Begin {
        /// The login.
        login: LoginContext,
        /// The public keys sshd says the login authenticated with, as `TYPE BASE64` (the
        /// `publickey` lines of `SSH_AUTH_INFO_0` from the PAM environment). otpd believes them
        /// only from root or a trusted caller, and checks them against `[[exemptions]]`. Absent
        /// from modules that predate it, and left out when empty.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        ssh_keys: Vec<String>,
    },
    /// The person typed an answer to the prompt of `challenge`.
    Answer {
        /// The same login as in `Begin`; the challenge is bound to its user and protocol.
        login: LoginContext,
        /// The opaque id from [`Response::Prompt`].
        challenge: String,
        /// What was typed. Never logged.
        code: SecretString,
    },
    /// The person answered the prompt with nothing: mail a new code if the resend cooldown
    /// allows, otherwise ask again for the code already sent.
    Resend {
        /// The login.
        login: LoginContext,
    },
    /// Single-secret protocols (FTP, HTTP Basic, WebDAV): does this login need a code, and is
    /// one expected inside the password (a code is live, or a reuse grant holds)? Mails nothing.
    Probe {
        /// The login.
        login: LoginContext,
    },
    /// Single-secret protocols: check a code that came appended to the password, against the
    /// user's live code for this protocol or a reuse grant for this user, service and host.
    Verify {
        /// The login.
        login: LoginContext,
        /// The code part of the secret. Never logged.
        code: SecretString,
    },
    /// An otpctl command (admin or the caller's own account); see [`crate::wire_admin`].
    Admin {
        /// The command.
        request: crate::wire_admin::AdminRequest,
    },
    /// Liveness check; answers [`Response::Pong`].
    Ping,
}

/// Why a login needs no code. The module answers PAM_IGNORE for all of them, never PAM_SUCCESS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// The service's protocol is not in `[protocols] enabled`.
    ProtocolNotEnabled,
    /// The PAM service is not mapped to a protocol and no `default_protocol` is set.
    UnknownService,
    /// The matching profile has `mode = "off"`.
    ModeOff,
    /// `mode = "optional"` and the user has not enabled codes for this protocol.
    NotEnrolled,
    /// No address is known for the user (`mode = "required"` covers users who have one).
    NoAddress,
    /// Root armed a break-glass grant for the user (`otpctl breakglass grant`, issue #16): the
    /// code step is passed over while mail is down. Like every skip it is PAM_IGNORE, so the
    /// password (or whatever else the stack asks) still decides alone.
    BreakGlass,
    /// The login authenticated with an SSH key listed in `[[exemptions]]` for the user.
    Exempt,
    /// The profile's `mode = "audit"` (a dry run): the login would have been asked for a code;
    /// otpd recorded `would_ask` and sent nothing.
    DryRun,
}

/// Why an answer or a login was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DenyReason {
    /// The code does not match; the challenge may take more answers.
    WrongCode,
    /// The code expired, was used, superseded or took too many wrong answers.
    CodeDead,
    /// Too many wrong answers for this user or remote host: locked for a while.
    LockedOut,
    /// Hourly or daily mail caps reached: no code was sent.
    RateLimited,
    /// The caller may not act for this user (peer credentials).
    CallerRefused,
}

/// otpd's answer to one request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case", deny_unknown_fields)]
pub enum Response {
    /// No code is needed for this login.
    Skip {
        /// Why.
        reason: SkipReason,
    },
    /// Ask the person for the code, showing `prompt`.
    Prompt {
        /// Opaque id to send back with the answer.
        challenge: String,
        /// The prompt text, with the notice inside it (sshd shows info messages late), e.g.
        /// `Code sent to a***@e***.com (valid 10 min): `.
        prompt: String,
        /// What the module shows, in the prompt's language, when the answer typed cannot be a
        /// code at all (it says so without asking otpd); absent from an older otpd, when the
        /// module shows its own English text.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        wrong_code: Option<String>,
        /// What the module adds, in the prompt's language, when a login that sends the code
        /// after the password (FTP, HTTP) came with the password alone: how to log in now.
        /// Absent from an older otpd, when the module adds its own English text.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        log_in_again: Option<String>,
    },
    /// The code was right; the login may go on.
    Success,
    /// Refused; `message` is shown to the person.
    Denied {
        /// Why.
        reason: DenyReason,
        /// For the person at the prompt; never contains the code or the full address.
        message: String,
    },
    /// otpd cannot do its job now (e.g. the mail could not be sent); the login fails closed.
    Unavailable {
        /// For the person at the prompt.
        message: String,
    },
    /// The request was malformed or not understood; nothing was done.
    Error {
        /// What was wrong with the request.
        message: String,
    },
    /// Answer to [`Request::Probe`] when the login needs a code.
    Probe {
        /// How many digits a code has, so the module can split `password || code`.
        code_length: u8,
        /// True when the secret is expected to end with a code: a code was mailed and is
        /// live, or a reuse grant holds. False: the secret is the password alone.
        expects_code: bool,
    },
    /// Answer to [`Request::Admin`].
    Admin {
        /// The answer.
        response: crate::wire_admin::AdminResponse,
    },
    /// Answer to [`Request::Ping`].
    Pong {
        /// otpd's version.
        version: String,
    },
    /// Like [`Response::Success`], with a notice for the person, e.g. how many recovery codes
    /// are left after one was used.
    SuccessWithNotice {
        /// For the person; never contains a code.
        message: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn login() -> LoginContext {
        LoginContext {
            user: "alice".into(),
            service: "sshd".into(),
            rhost: Some("192.0.2.1".into()),
            tty: None,
            protocol: None,
        }
    }

    #[test]
    fn requests_round_trip_through_json() {
        let req = Request::Answer {
            login: login(),
            challenge: "abc".into(),
            code: SecretString::new("123456".into()),
        };
        let bytes = serde_json::to_vec(&req).unwrap();
        let back: Request = serde_json::from_slice(&bytes).unwrap();
        match back {
            Request::Answer { code, login: l, .. } => {
                assert_eq!(code.expose(), "123456");
                assert_eq!(l, login());
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn request_debug_hides_the_code() {
        let req = Request::Answer {
            login: login(),
            challenge: "abc".into(),
            code: SecretString::new("987654".into()),
        };
        assert!(!format!("{req:?}").contains("987654"));
    }

    #[test]
    fn unknown_fields_are_refused() {
        let bad = br#"{"op":"begin","login":{"user":"a","service":"s","rhost":null,"tty":null,"protocol":null},"extra":1}"#;
        assert!(serde_json::from_slice::<Request>(bad).is_err());
        let bad_login = br#"{"op":"begin","login":{"user":"a","service":"s","rhost":null,"tty":null,"protocol":null,"uid":0}}"#;
        assert!(serde_json::from_slice::<Request>(bad_login).is_err());
        let good = br#"{"op":"begin","login":{"user":"a","service":"s","rhost":null,"tty":null,"protocol":null}}"#;
        assert!(serde_json::from_slice::<Request>(good).is_ok());
    }

    #[test]
    fn responses_round_trip_through_json() {
        let resp = Response::Denied {
            reason: DenyReason::LockedOut,
            message: "locked".into(),
        };
        let bytes = serde_json::to_vec(&resp).unwrap();
        assert_eq!(serde_json::from_slice::<Response>(&bytes).unwrap(), resp);
    }

    #[test]
    fn a_begin_without_ssh_keys_is_what_older_modules_send() {
        let old = br#"{"op":"begin","login":{"user":"a","service":"s","rhost":null,"tty":null,"protocol":null}}"#;
        match serde_json::from_slice::<Request>(old).unwrap() {
            Request::Begin { ssh_keys, .. } => assert!(ssh_keys.is_empty()),
            other => panic!("unexpected {other:?}"),
        }
        let none = Request::Begin {
            login: login(),
            ssh_keys: Vec::new(),
        };
        let text = serde_json::to_string(&none).unwrap();
        assert!(!text.contains("ssh_keys"), "{text}");
        let some = Request::Begin {
            login: login(),
            ssh_keys: vec!["ssh-ed25519 AAAA".into()],
        };
        let back: Request = serde_json::from_slice(&serde_json::to_vec(&some).unwrap()).unwrap();
        assert!(
            matches!(back, Request::Begin { ssh_keys, .. } if ssh_keys == ["ssh-ed25519 AAAA"])
        );
    }
}
