//! pam_otp_email: asks for a one-time code that otpd mails, as a second factor.
//!
//! This file is only the shim libpam sees. [`pam::pam_hooks!`] generates the exported
//! `pam_sm_*` functions, and every one of them checks the handle and argument pointers for null
//! and runs our hook inside `catch_unwind`, answering PAM_ABORT if it panics: a panic never
//! unwinds into sshd or any other application. The login itself is [`flow::run`], ordinary Rust
//! tested with fakes; its end is turned into a PAM code by [`outcome::pam_code`] alone.
//!
//! The module never generates, stores or compares codes, prints nothing, and opens no file or
//! connection besides otpd's socket. It writes one syslog line (LOG_AUTHPRIV, so auth.log) for
//! each login it refuses or cannot check, saying who and why ([`refusal_log`]); with `debug`,
//! one per step.
//!
//! # Interactive logins (sshd keyboard-interactive, su, login)
//!
//! After the password step:
//!
//! ```text
//! auth required pam_otp_email.so [tries=N] [echo]
//! ```
//!
//! Up to `tries=` answers (default 3) before PAM_MAXTRIES; an empty answer asks otpd for a new
//! code (otpd's cooldown applies and its prompt says when a new one can be sent).
//!
//! # Single-secret protocols (FTP, HTTP Basic, WebDAV)
//!
//! These clients send one password and cannot answer a second prompt, so the code is typed
//! after the password, with no separator: `hunter2` then `482913` is sent as `hunter2482913`.
//!
//! ```text
//! auth required   pam_otp_email.so split
//! auth requisite  pam_unix.so use_first_pass
//! auth required   pam_otp_email.so
//! ```
//!
//! The `split` line takes the secret (PAM_AUTHTOK, or a `Password: ` prompt the server answers
//! with the password it has), asks otpd whether a code is expected in it, puts the password part
//! in PAM_AUTHTOK for pam_unix and keeps the last N digits to itself (module data). It returns
//! PAM_IGNORE: it decides nothing. pam_unix must be `requisite`, so that a wrong password ends
//! the stack before the last line: that line is the only one that can make otpd mail, so nobody
//! can have a user mailed by guessing the user name. The last line verifies the kept code, or,
//! when the password came alone, has a code mailed and fails this login with a message saying to
//! log in again with the password followed by the code. A skipped or not-enrolled user gets
//! PAM_IGNORE from both lines, never PAM_SUCCESS: pam_unix alone decides for them.

pub mod args;
mod ffi;
pub mod flow;
mod handle;
pub mod otpd_client;
pub mod outcome;
mod quiet_panic;
pub mod refusal_log;
pub mod secret;

use std::ffi::CStr;

use pam::constants::{PAM_SILENT, PamFlag, PamResultCode};
use pam::module::{PamHandle, PamHooks};

use crate::args::Args;
use crate::flow::{LogLevel, Settings};
use crate::handle::PamLogin;
use crate::otpd_client::Otpd;
use crate::outcome::{Outcome, pam_code};

/// The module, as registered with pam-bindings.
#[derive(Debug)]
pub struct OtpEmail;

pam::pam_hooks!(OtpEmail);

impl PamHooks for OtpEmail {
    fn sm_authenticate(pamh: &mut PamHandle, args: Vec<&CStr>, flags: PamFlag) -> PamResultCode {
        quiet_panic::install();
        let args = match Args::parse(&args) {
            Ok(args) => args,
            Err(error) => {
                let text = common::text::escape_for_log(&format!("refusing to run: {error}"));
                ffi::syslog(pamh, LogLevel::Error, &text);
                return pam_code(Outcome::BadArguments);
            }
        };
        let daemon = Otpd::new(&args);
        let mut handle = PamLogin::new(pamh, flags & PAM_SILENT != 0);
        pam_code(flow::run(&mut handle, &daemon, &settings(&args)))
    }

    /// Nothing to set, but PAM_SUCCESS rather than the default PAM_IGNORE: a stack such as
    /// `auth [success=done default=die] pam_otp_email.so` fails pam_setcred when every module
    /// in it ignores the call.
    fn sm_setcred(_pamh: &mut PamHandle, _args: Vec<&CStr>, _flags: PamFlag) -> PamResultCode {
        PamResultCode::PAM_SUCCESS
    }
}

/// The parts of the arguments the flow needs.
fn settings(args: &Args) -> Settings {
    Settings {
        protocol: args.protocol,
        debug: args.debug,
        tries: args.tries,
        echo: args.echo,
        split: args.split,
        #[cfg(feature = "test-panic")]
        test_panic: args.test_panic,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setcred_succeeds_so_done_or_die_stacks_work() {
        // The handle is never dereferenced by sm_setcred.
        let mut handle = std::ptr::NonNull::<PamHandle>::dangling();
        // SAFETY: PamHandle is a zero-sized opaque type, so a dangling, aligned, non-null pointer
        // is a valid reference to it; sm_setcred does not pass it to libpam.
        let pamh = unsafe { handle.as_mut() };
        assert_eq!(
            OtpEmail::sm_setcred(pamh, Vec::new(), 0),
            PamResultCode::PAM_SUCCESS
        );
    }

    #[test]
    fn the_settings_carry_every_argument_the_flow_uses() {
        let args = Args {
            protocol: Some(common::service::Protocol::Ftps),
            debug: true,
            tries: 7,
            echo: true,
            split: true,
            ..Args::default()
        };
        let settings = settings(&args);
        assert_eq!(settings.protocol, Some(common::service::Protocol::Ftps));
        assert!(settings.debug);
        assert_eq!(settings.tries, 7);
        assert!(settings.echo);
        assert!(settings.split);
    }

    #[test]
    fn a_line_without_arguments_gets_the_flows_default_settings() {
        let from_args = settings(&Args::default());
        let default = Settings::default();
        assert_eq!(from_args.tries, default.tries);
        assert_eq!(from_args.echo, default.echo);
        assert_eq!(from_args.split, default.split);
    }

    /// Goes through the real exported entry point, as libpam would call it, with a handle that
    /// must never be touched: the `test_panic` flow panics before using it.
    #[cfg(feature = "test-panic")]
    #[test]
    fn a_panicking_flow_gives_pam_abort_not_success_or_ignore() {
        let pamh = std::ptr::NonNull::<PamHandle>::dangling().as_ptr();
        let argv = [c"test_panic".as_ptr()];
        // SAFETY: argc matches argv, whose entry is a static NUL-terminated string. The handle
        // is dangling but non-null; the flow panics before anything dereferences it or hands it
        // to libpam (argument parsing and the daemon client do not use it).
        let code = unsafe { pam_sm_authenticate(pamh, 0, 1, argv.as_ptr()) };
        assert_eq!(code, PamResultCode::PAM_ABORT);
    }
}
