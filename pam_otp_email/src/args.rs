//! The module arguments written on the pam.d line, parsed into one value that cannot be wrong.
//!
//! Parsing fails closed: an unknown, repeated or malformed argument makes the module answer
//! PAM_SERVICE_ERR instead of running with a default the admin did not ask for. A typo such as
//! `timout=2` or `protocol=shh` in pam.d must never silently change what a login requires.

use std::ffi::CStr;
use std::path::PathBuf;
use std::time::Duration;

use common::client::DEFAULT_SOCKET;
use common::service::Protocol;

/// Seconds each call to otpd may take unless `timeout=` says otherwise.
pub const DEFAULT_TIMEOUT_SECS: u64 = 5;
/// The shortest `timeout=`: below a second a busy daemon would fail logins for no reason.
pub const MIN_TIMEOUT_SECS: u64 = 1;
/// The longest `timeout=`: sshd's LoginGraceTime must not be eaten by a hung daemon.
pub const MAX_TIMEOUT_SECS: u64 = 30;
/// Seconds to wait for otpd's answer to a request that mails a code, unless `mail_timeout=` says
/// otherwise. otpd gives a mail 20 s over all its servers by default (`[mail]
/// total_timeout_seconds`) and then answers "unavailable", so the module waits a little longer
/// than that to hear the answer instead of cutting it off.
pub const DEFAULT_MAIL_TIMEOUT_SECS: u64 = 25;
/// The longest `mail_timeout=`.
pub const MAX_MAIL_TIMEOUT_SECS: u64 = 60;
/// The account otpd runs as on a packaged system; the only uid besides root trusted on the socket.
pub const DEFAULT_DAEMON_USER: &str = "otpd";
/// Answers per login unless `tries=` says otherwise, like pam_unix's retry habit.
pub const DEFAULT_TRIES: u8 = 3;
/// The most `tries=`: otpd limits wrong answers per code anyway; more prompts only keep a
/// guesser on the line longer.
pub const MAX_TRIES: u8 = 10;

/// The validated module arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    /// otpd's socket (`socket=`), always an absolute path so it cannot depend on the
    /// application's working directory.
    pub socket: PathBuf,
    /// `protocol=`: overrides otpd's mapping of the PAM service to a protocol, e.g. for a second
    /// sshd that only serves SFTP.
    pub protocol: Option<Protocol>,
    /// `timeout=`: the deadline of each call to otpd that does not mail.
    pub timeout: Duration,
    /// `mail_timeout=`: the deadline of a call that may mail a code (begin, resend), which
    /// includes otpd's delivery to the mail server.
    pub mail_timeout: Duration,
    /// `daemon_user=`: the account, besides root, that may own the process behind the socket.
    pub daemon_user: String,
    /// `debug`: log the steps of each login (never the code) to syslog.
    pub debug: bool,
    /// `tries=`: how many answers one login may give, from 1 to [`MAX_TRIES`].
    pub tries: u8,
    /// `echo`: show the code as it is typed (PAM_PROMPT_ECHO_ON). A code serves one login for a
    /// few minutes, so a site may prefer fewer typos to hiding it from someone looking on.
    pub echo: bool,
    /// `split`: the first of two lines in a single-secret stack (FTP, HTTP Basic, WebDAV). It
    /// cuts `password || code` in two, hands the password on in PAM_AUTHTOK and keeps the code
    /// for the line after the password module. It never prompts for a code, so `tries=` and
    /// `echo` do not apply to it.
    pub split: bool,
    /// `test_panic` (only with the `test-panic` feature): make the flow panic.
    #[cfg(feature = "test-panic")]
    pub test_panic: bool,
}

impl Default for Args {
    fn default() -> Self {
        Args {
            socket: PathBuf::from(DEFAULT_SOCKET),
            protocol: None,
            timeout: Duration::from_secs(DEFAULT_TIMEOUT_SECS),
            mail_timeout: Duration::from_secs(DEFAULT_MAIL_TIMEOUT_SECS),
            daemon_user: DEFAULT_DAEMON_USER.to_owned(),
            debug: false,
            tries: DEFAULT_TRIES,
            echo: false,
            split: false,
            #[cfg(feature = "test-panic")]
            test_panic: false,
        }
    }
}

/// Why the module arguments were refused. The offending text is kept so syslog can say which
/// argument to fix; it is escaped when logged because pam.d is not trusted to be printable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArgError {
    /// An argument that is not valid UTF-8.
    #[error("module argument #{0} is not valid UTF-8")]
    NotUtf8(usize),
    /// A name this module does not know (a typo, or an option of another module).
    #[error("unknown module argument {0:?}")]
    Unknown(String),
    /// The same option twice: which one the admin meant is unclear.
    #[error("module argument {0:?} is given more than once")]
    Repeated(String),
    /// `name=` with nothing after it, or `name` without `=` for an option that needs a value.
    #[error("module argument {0:?} needs a value")]
    MissingValue(String),
    /// A flag such as `debug` written with a value.
    #[error("module argument {0:?} takes no value")]
    UnexpectedValue(String),
    /// `socket=` with a relative path.
    #[error("socket={0:?} is not an absolute path")]
    RelativeSocket(String),
    /// `protocol=` with a name that is not a known protocol.
    #[error("protocol={0:?} is not a known protocol")]
    UnknownProtocol(String),
    /// `timeout=` that is not a whole number of seconds in range.
    #[error(
        "timeout={0:?} is not a whole number of seconds from {MIN_TIMEOUT_SECS} to {MAX_TIMEOUT_SECS}"
    )]
    BadTimeout(String),
    /// `mail_timeout=` that is not a whole number of seconds in range.
    #[error(
        "mail_timeout={0:?} is not a whole number of seconds from {MIN_TIMEOUT_SECS} to {MAX_MAIL_TIMEOUT_SECS}"
    )]
    BadMailTimeout(String),
    /// `tries=` that is not a whole number in range.
    #[error("tries={0:?} is not a whole number from 1 to {MAX_TRIES}")]
    BadTries(String),
}

impl Args {
    /// Parses the arguments libpam hands to the module, in pam.d order.
    pub fn parse(raw: &[&CStr]) -> Result<Args, ArgError> {
        let mut args = Args::default();
        let mut seen: Vec<&str> = Vec::new();
        for (index, arg) in raw.iter().enumerate() {
            let arg = arg.to_str().map_err(|_| ArgError::NotUtf8(index))?;
            let (name, value) = match arg.split_once('=') {
                Some((name, value)) => (name, Some(value)),
                None => (arg, None),
            };
            if seen.contains(&name) {
                return Err(ArgError::Repeated(name.to_owned()));
            }
            args.apply(name, value)?;
            seen.push(name);
        }
        Ok(args)
    }

    /// Sets one option; `value` is what followed the first `=`, if there was one.
    fn apply(&mut self, name: &str, value: Option<&str>) -> Result<(), ArgError> {
        match name {
            "socket" => {
                let value = required(name, value)?;
                if !value.starts_with('/') {
                    return Err(ArgError::RelativeSocket(value.to_owned()));
                }
                self.socket = PathBuf::from(value);
            }
            "protocol" => {
                let value = required(name, value)?;
                let protocol = Protocol::parse(value)
                    .ok_or_else(|| ArgError::UnknownProtocol(value.to_owned()))?;
                self.protocol = Some(protocol);
            }
            "timeout" => {
                let value = required(name, value)?;
                self.timeout = parse_seconds(value, MAX_TIMEOUT_SECS)
                    .ok_or_else(|| ArgError::BadTimeout(value.to_owned()))?;
            }
            "mail_timeout" => {
                let value = required(name, value)?;
                self.mail_timeout = parse_seconds(value, MAX_MAIL_TIMEOUT_SECS)
                    .ok_or_else(|| ArgError::BadMailTimeout(value.to_owned()))?;
            }
            "daemon_user" => {
                self.daemon_user = required(name, value)?.to_owned();
            }
            "debug" => {
                flag(name, value)?;
                self.debug = true;
            }
            "tries" => {
                let value = required(name, value)?;
                self.tries = parse_tries(value)?;
            }
            "echo" => {
                flag(name, value)?;
                self.echo = true;
            }
            "split" => {
                flag(name, value)?;
                self.split = true;
            }
            #[cfg(feature = "test-panic")]
            "test_panic" => {
                flag(name, value)?;
                self.test_panic = true;
            }
            _ => return Err(ArgError::Unknown(name.to_owned())),
        }
        Ok(())
    }
}

/// The value of an option that needs one.
fn required<'a>(name: &str, value: Option<&'a str>) -> Result<&'a str, ArgError> {
    match value {
        Some(value) if !value.is_empty() => Ok(value),
        _ => Err(ArgError::MissingValue(name.to_owned())),
    }
}

/// Checks that a flag came without `=`.
fn flag(name: &str, value: Option<&str>) -> Result<(), ArgError> {
    match value {
        None => Ok(()),
        Some(_) => Err(ArgError::UnexpectedValue(name.to_owned())),
    }
}

/// Whole seconds from [`MIN_TIMEOUT_SECS`] to `max`, digits only: `u64::from_str` would also
/// take `+5`, which is not how pam.d is documented.
fn parse_seconds(value: &str, max: u64) -> Option<Duration> {
    if !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secs: u64 = value.parse().ok()?;
    (MIN_TIMEOUT_SECS..=max)
        .contains(&secs)
        .then(|| Duration::from_secs(secs))
}

/// Digits only, like `timeout=`.
fn parse_tries(value: &str) -> Result<u8, ArgError> {
    let bad = || ArgError::BadTries(value.to_owned());
    if !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let tries: u8 = value.parse().map_err(|_| bad())?;
    if (1..=MAX_TRIES).contains(&tries) {
        Ok(tries)
    } else {
        Err(bad())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CString;

    fn parse(args: &[&str]) -> Result<Args, ArgError> {
        let owned: Vec<CString> = args.iter().map(|a| CString::new(*a).unwrap()).collect();
        let borrowed: Vec<&CStr> = owned.iter().map(|c| c.as_c_str()).collect();
        Args::parse(&borrowed)
    }

    #[test]
    fn no_arguments_give_the_documented_defaults() {
        let args = parse(&[]).unwrap();
        assert_eq!(args.socket, PathBuf::from("/run/otpd/otpd.sock"));
        assert_eq!(args.protocol, None);
        assert_eq!(args.timeout, Duration::from_secs(5));
        assert_eq!(args.daemon_user, "otpd");
        assert!(!args.debug);
        assert_eq!(args.tries, 3);
        assert!(!args.echo);
        assert!(!args.split);
    }

    #[test]
    fn every_option_is_read() {
        let args = parse(&[
            "socket=/tmp/x=y.sock",
            "protocol=sftp",
            "timeout=30",
            "daemon_user=otp-daemon",
            "debug",
            "tries=10",
            "echo",
            "split",
        ])
        .unwrap();
        assert_eq!(args.socket, PathBuf::from("/tmp/x=y.sock"));
        assert_eq!(args.protocol, Some(Protocol::Sftp));
        assert_eq!(args.timeout, Duration::from_secs(30));
        assert_eq!(args.daemon_user, "otp-daemon");
        assert!(args.debug);
        assert_eq!(args.tries, 10);
        assert!(args.echo);
        assert!(args.split);
    }

    #[test]
    fn every_protocol_name_is_accepted() {
        for protocol in Protocol::ALL {
            let arg = format!("protocol={protocol}");
            assert_eq!(parse(&[&arg]).unwrap().protocol, Some(protocol));
        }
    }

    #[test]
    fn a_typo_in_an_option_name_is_refused() {
        assert_eq!(
            parse(&["timout=2"]),
            Err(ArgError::Unknown("timout".into()))
        );
        assert_eq!(parse(&["Debug"]), Err(ArgError::Unknown("Debug".into())));
        assert_eq!(parse(&[""]), Err(ArgError::Unknown(String::new())));
    }

    #[test]
    fn an_unknown_protocol_is_refused() {
        assert_eq!(
            parse(&["protocol=shh"]),
            Err(ArgError::UnknownProtocol("shh".into()))
        );
        assert_eq!(
            parse(&["protocol=SSH"]),
            Err(ArgError::UnknownProtocol("SSH".into()))
        );
    }

    #[test]
    fn mail_timeout_defaults_to_25_and_is_bounded() {
        assert_eq!(parse(&[]).unwrap().mail_timeout, Duration::from_secs(25));
        assert_eq!(
            parse(&["mail_timeout=60"]).unwrap().mail_timeout,
            Duration::from_secs(60)
        );
        for bad in ["0", "61", "+5", "x", ""] {
            assert!(
                parse(&[&format!("mail_timeout={bad}")]).is_err(),
                "mail_timeout={bad}"
            );
        }
    }

    #[test]
    fn timeouts_outside_one_to_thirty_seconds_are_refused() {
        for bad in [
            "0",
            "31",
            "-1",
            "+5",
            "5s",
            "1.5",
            " 5",
            "99999999999999999999999",
        ] {
            assert_eq!(
                parse(&[&format!("timeout={bad}")]),
                Err(ArgError::BadTimeout(bad.into())),
                "timeout={bad}"
            );
        }
        assert_eq!(
            parse(&["timeout=1"]).unwrap().timeout,
            Duration::from_secs(1)
        );
    }

    #[test]
    fn tries_outside_one_to_ten_are_refused() {
        for bad in [
            "0",
            "11",
            "256",
            "-1",
            "+3",
            "3x",
            " 3",
            "2.0",
            "99999999999999999999",
        ] {
            assert_eq!(
                parse(&[&format!("tries={bad}")]),
                Err(ArgError::BadTries(bad.into())),
                "tries={bad}"
            );
        }
        assert_eq!(parse(&["tries=1"]).unwrap().tries, 1);
    }

    #[test]
    fn options_that_need_a_value_refuse_to_go_without() {
        for name in ["socket", "protocol", "timeout", "daemon_user", "tries"] {
            assert_eq!(
                parse(&[name]),
                Err(ArgError::MissingValue(name.into())),
                "{name}"
            );
            assert_eq!(
                parse(&[&format!("{name}=")]),
                Err(ArgError::MissingValue(name.into())),
                "{name}="
            );
        }
    }

    #[test]
    fn flags_take_no_value() {
        for name in ["debug", "echo", "split"] {
            for value in ["0", "", "yes"] {
                assert_eq!(
                    parse(&[&format!("{name}={value}")]),
                    Err(ArgError::UnexpectedValue(name.into())),
                    "{name}={value}"
                );
            }
        }
    }

    #[test]
    fn a_relative_socket_path_is_refused() {
        assert_eq!(
            parse(&["socket=otpd.sock"]),
            Err(ArgError::RelativeSocket("otpd.sock".into()))
        );
    }

    #[test]
    fn a_repeated_option_is_refused_even_with_the_same_value() {
        assert_eq!(
            parse(&["debug", "debug"]),
            Err(ArgError::Repeated("debug".into()))
        );
        assert_eq!(
            parse(&["timeout=5", "timeout=5"]),
            Err(ArgError::Repeated("timeout".into()))
        );
        assert_eq!(
            parse(&["split", "tries=2", "split"]),
            Err(ArgError::Repeated("split".into()))
        );
    }

    #[test]
    fn a_non_utf8_argument_is_refused() {
        let bad = CString::new(vec![b's', 0xff]).unwrap();
        let good = CString::new("debug").unwrap();
        assert_eq!(
            Args::parse(&[good.as_c_str(), bad.as_c_str()]),
            Err(ArgError::NotUtf8(1))
        );
    }

    #[cfg(not(feature = "test-panic"))]
    #[test]
    fn test_panic_is_an_unknown_argument_without_the_test_feature() {
        assert_eq!(
            parse(&["test_panic"]),
            Err(ArgError::Unknown("test_panic".into()))
        );
    }

    #[cfg(feature = "test-panic")]
    #[test]
    fn test_panic_is_a_flag_with_the_test_feature() {
        assert!(parse(&["test_panic"]).unwrap().test_panic);
        assert!(!parse(&[]).unwrap().test_panic);
    }
}
