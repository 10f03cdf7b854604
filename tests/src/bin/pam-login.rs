//! `pam-login`: one real PAM authentication from the command line, through the tests' libpam
//! driver. Used by the README's demo and by tests that must log in as another uid.
//!
//! ```text
//! pam-login --confdir DIR --service NAME --user USER [--rhost HOST] [--tty TTY]
//! ```
//!
//! Messages and prompts go to stderr, each answer is one line of stdin (end of input answers
//! nothing, which fails the conversation), and the result's name, e.g. `PAM_SUCCESS`, goes to
//! stdout. Exits 0 on PAM_SUCCESS, 1 on any other result, 2 on bad usage.

use std::ffi::OsString;
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use e2e_tests::libpam::{self, Message, Transaction};

const USAGE: &str =
    "usage: pam-login --confdir DIR --service NAME --user USER [--rhost HOST] [--tty TTY]";

/// The parsed command line.
#[derive(Debug, Default)]
struct Options {
    confdir: Option<PathBuf>,
    service: Option<String>,
    user: Option<String>,
    rhost: Option<String>,
    tty: Option<String>,
}

fn main() -> ExitCode {
    let (confdir, service, user, options) = match parse(std::env::args_os().skip(1)) {
        Ok(Options {
            confdir: Some(confdir),
            service: Some(service),
            user: Some(user),
            rhost,
            tty,
        }) => (confdir, service, user, (rhost, tty)),
        Ok(_) => return usage("--confdir, --service and --user are required"),
        Err(message) => return usage(&message),
    };
    let (rhost, tty) = options;
    let mut tx = match Transaction::start(&service, &user, &confdir, converse) {
        Ok(tx) => tx,
        Err(error) => {
            eprintln!("pam-login: pam_start_confdir: {error}");
            return finish(error.code);
        }
    };
    let items = [(rhost, "rhost"), (tty, "tty")];
    for (value, what) in items {
        let Some(value) = value else { continue };
        let set = if what == "rhost" {
            tx.set_rhost(&value)
        } else {
            tx.set_tty(&value)
        };
        if let Err(error) = set {
            eprintln!("pam-login: setting {what}: {error}");
            return finish(error.code);
        }
    }
    let code = tx.authenticate();
    drop(tx);
    finish(code)
}

/// Shows a message on stderr; answers a prompt with the next line of stdin.
fn converse(message: &Message) -> Option<String> {
    let mut stderr = std::io::stderr();
    if !message.style.is_prompt() {
        let _ = writeln!(stderr, "{}", message.text);
        return None;
    }
    let _ = write!(stderr, "{}", message.text);
    let _ = stderr.flush();
    let mut line = String::new();
    match std::io::stdin().lock().read_line(&mut line) {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(line.trim_end_matches(['\n', '\r']).to_owned()),
    }
}

/// Prints the result's name and turns it into the exit status.
fn finish(code: i32) -> ExitCode {
    let _ = writeln!(std::io::stdout(), "{}", libpam::code_name(code));
    if code == libpam::PAM_SUCCESS {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn usage(problem: &str) -> ExitCode {
    eprintln!("pam-login: {problem}\n{USAGE}");
    ExitCode::from(2)
}

/// Reads `--name VALUE` pairs; every option is known, given once, and has a value.
fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Options, String> {
    let mut options = Options::default();
    let mut args = args.into_iter();
    while let Some(name) = args.next() {
        let name = name
            .into_string()
            .map_err(|n| format!("bad option {}", n.to_string_lossy()))?;
        if name == "--help" || name == "-h" {
            return Err("help requested".into());
        }
        let value = args.next().ok_or_else(|| format!("{name} needs a value"))?;
        let text = || {
            value
                .clone()
                .into_string()
                .map_err(|_| format!("the value of {name} is not UTF-8"))
        };
        let slot_taken = match name.as_str() {
            "--confdir" => options.confdir.replace(PathBuf::from(&value)).is_some(),
            "--service" => options.service.replace(text()?).is_some(),
            "--user" => options.user.replace(text()?).is_some(),
            "--rhost" => options.rhost.replace(text()?).is_some(),
            "--tty" => options.tty.replace(text()?).is_some(),
            _ => return Err(format!("unknown option {name}")),
        };
        if slot_taken {
            return Err(format!("{name} is given twice"));
        }
    }
    Ok(options)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    #[test]
    fn every_option_is_read() {
        let o = parse(args(&[
            "--confdir",
            "/tmp/pam",
            "--service",
            "sshd",
            "--user",
            "alice",
            "--rhost",
            "192.0.2.1",
            "--tty",
            "pts/1",
        ]))
        .unwrap();
        assert_eq!(o.confdir, Some(PathBuf::from("/tmp/pam")));
        assert_eq!(o.service.as_deref(), Some("sshd"));
        assert_eq!(o.user.as_deref(), Some("alice"));
        assert_eq!(o.rhost.as_deref(), Some("192.0.2.1"));
        assert_eq!(o.tty.as_deref(), Some("pts/1"));
    }

    #[test]
    fn unknown_repeated_or_valueless_options_are_refused() {
        assert!(parse(args(&["--usr", "alice"])).is_err());
        assert!(parse(args(&["--user", "a", "--user", "b"])).is_err());
        assert!(parse(args(&["--user"])).is_err());
    }
}
