//! The module's arguments: the words after `pam_otp_email.so` on a pam.d line, as libpam hands
//! them over (C strings: any bytes but NUL). The input is split on NUL into those words.
//!
//! Properties:
//! - `Args::parse` never panics (it runs inside sshd's auth child);
//! - what it accepts is in range: an absolute socket path, timeouts and tries within their
//!   documented bounds, a daemon user that is not empty;
//! - accepted arguments mean the same written out again, in any order: writing every option
//!   back as `name=value` parses to the same `Args`, forwards and backwards;
//! - a refusal reaches syslog as one line without control characters.
#![no_main]

use std::ffi::{CStr, CString};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use pam_otp_email::args::{
    Args, MAX_MAIL_TIMEOUT_SECS, MAX_TIMEOUT_SECS, MAX_TRIES, MIN_TIMEOUT_SECS,
};

fn parse(words: &[CString]) -> Result<Args, pam_otp_email::args::ArgError> {
    let borrowed: Vec<&CStr> = words.iter().map(CString::as_c_str).collect();
    Args::parse(&borrowed)
}

/// `args` written back as pam.d words, every option explicit.
fn written_out(args: &Args) -> Vec<CString> {
    let socket = args
        .socket
        .to_str()
        .expect("an accepted socket path is UTF-8");
    let mut words = vec![
        format!("socket={socket}"),
        format!("timeout={}", args.timeout.as_secs()),
        format!("mail_timeout={}", args.mail_timeout.as_secs()),
        format!("daemon_user={}", args.daemon_user),
        format!("tries={}", args.tries),
    ];
    if let Some(protocol) = args.protocol {
        words.push(format!("protocol={}", protocol.as_str()));
    }
    for (set, flag) in [
        (args.debug, "debug"),
        (args.echo, "echo"),
        (args.split, "split"),
    ] {
        if set {
            words.push(flag.to_string());
        }
    }
    words
        .into_iter()
        .map(|w| CString::new(w).expect("no NUL in an accepted argument"))
        .collect()
}

fn seconds_within(d: Duration, max: u64) -> bool {
    d.subsec_nanos() == 0 && (MIN_TIMEOUT_SECS..=max).contains(&d.as_secs())
}

fuzz_target!(|data: &[u8]| {
    let words: Vec<CString> = if data.is_empty() {
        Vec::new()
    } else {
        data.split(|&b| b == 0)
            .map(|w| CString::new(w).expect("split on NUL"))
            .collect()
    };
    match parse(&words) {
        Ok(args) => {
            assert!(args.socket.is_absolute(), "{:?}", args.socket);
            assert!(seconds_within(args.timeout, MAX_TIMEOUT_SECS));
            assert!(seconds_within(args.mail_timeout, MAX_MAIL_TIMEOUT_SECS));
            assert!((1..=MAX_TRIES).contains(&args.tries));
            assert!(!args.daemon_user.is_empty());
            let mut again = written_out(&args);
            assert_eq!(parse(&again).as_ref(), Ok(&args));
            again.reverse();
            assert_eq!(parse(&again).as_ref(), Ok(&args));
        }
        Err(error) => {
            // What the module logs, as lib.rs writes it.
            let logged = common::text::escape_for_log(&format!("refusing to run: {error}"));
            assert!(
                !logged.chars().any(char::is_control),
                "a control character reaches syslog: {logged:?}"
            );
        }
    }
});
