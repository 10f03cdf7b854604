//! `check-config`: validates a config file locally, as otpd would at start, without otpd.

use std::path::Path;

use common::config::Config;
use serde::Serialize;

use super::{Exit, Io, output};

/// What `--json` prints.
#[derive(Debug, Serialize)]
struct Report {
    file: String,
    valid: bool,
    error: Option<String>,
    mail_servers: Vec<String>,
    protocols: Vec<String>,
    /// What is valid but likely to fail at a real mail server (an EHLO name without a domain).
    warnings: Vec<String>,
}

/// The warnings about a valid config: the EHLO names strict mail servers refuse.
pub fn warnings(config: &Config) -> Vec<String> {
    let found = crate::mail::hello::fully_qualified_name();
    match config.mail.transport {
        common::config::MailTransport::Smtp => {
            crate::mail::hello::warnings(&config.mail, found.as_deref())
        }
        common::config::MailTransport::Sendmail { .. } => Vec::new(),
    }
}

/// Loads the config at `path` as far as this user can check it: as root, also the files the
/// mailer will read (a FIFO, a device, a foreign-owned or oversized file is refused at its
/// FILE:LINE:COLUMN, as `otpd --check-config` does); any other user cannot read otpd's secrets,
/// so gets the config checks alone.
pub fn load(path: &Path) -> Result<Config, common::config::ConfigError> {
    if nix::unistd::geteuid().is_root() {
        Config::load_with_files(path)
    } else {
        Config::load(path)
    }
}

/// Checks `path`: 0 when valid, 1 with `FILE:LINE:COLUMN: message` otherwise.
pub fn run(path: &Path, json: bool, io: &mut Io<'_>) -> Exit {
    let result = load(path);
    let report = match &result {
        Ok(config) => Report {
            file: path.display().to_string(),
            valid: true,
            error: None,
            mail_servers: config.mail.servers.iter().map(|s| s.name.clone()).collect(),
            protocols: config
                .enabled_protocols
                .iter()
                .map(|p| p.as_str().to_string())
                .collect(),
            warnings: warnings(config),
        },
        Err(e) => Report {
            file: path.display().to_string(),
            valid: false,
            error: Some(e.to_string()),
            mail_servers: Vec::new(),
            protocols: Vec::new(),
            warnings: Vec::new(),
        },
    };
    if json {
        io.out(&output::json(&report));
    } else if let Some(error) = &report.error {
        io.err(error);
    } else {
        for warning in &report.warnings {
            io.err(&format!("{}: warning: {warning}", report.file));
        }
        io.out(&format!(
            "{}: valid ({} mail server(s): {}; protocols needing a code: {})",
            report.file,
            report.mail_servers.len(),
            report.mail_servers.join(", "),
            if report.protocols.is_empty() {
                "none".to_string()
            } else {
                report.protocols.join(", ")
            }
        ));
    }
    if report.valid { Exit::Ok } else { Exit::Failed }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> (Exit, String, String) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("otpd.toml");
        std::fs::write(&path, text).unwrap();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let mut input = std::io::empty();
        let mut io = Io {
            input: &mut input,
            out: &mut out,
            err: &mut err,
        };
        let exit = run(&path, false, &mut io);
        (
            exit,
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    }

    #[test]
    fn a_valid_file_exits_zero_and_names_its_servers() {
        let (exit, out, _) = check(
            "[mail]\nfrom = \"a@example.com\"\n[[mail.servers]]\nname = \"relay\"\nhost = \"127.0.0.1\"\nsecurity = \"none\"\n",
        );
        assert_eq!(exit, Exit::Ok);
        assert!(out.contains("valid (1 mail server(s): relay"), "{out}");
    }

    #[test]
    fn a_hello_name_without_a_domain_is_valid_with_a_warning() {
        let (exit, _, err) = check(
            "[mail]\nfrom = \"a@example.com\"\n[[mail.servers]]\nname = \"relay\"\nhost = \"127.0.0.1\"\nsecurity = \"none\"\nhello_name = \"vm\"\n",
        );
        assert_eq!(exit, Exit::Ok);
        assert!(
            err.contains(
                "otpd.toml: warning: mail server relay: hello_name \"vm\" is not fully qualified"
            ),
            "{err}"
        );
    }

    #[test]
    fn as_root_a_fifo_named_as_ca_file_is_refused_at_its_setting() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("ca.pem");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
        let (exit, _, err) = check(&format!(
            "[mail]\nfrom = \"a@example.com\"\n[[mail.servers]]\nname = \"relay\"\nhost = \"smtp.example.com\"\nsecurity = \"tls\"\nhello_name = \"box.example.com\"\nca_file = \"{}\"\n",
            fifo.display()
        ));
        if nix::unistd::geteuid().is_root() {
            assert_eq!(exit, Exit::Failed, "{err}");
            assert!(err.contains("otpd.toml:8:"), "{err}");
            assert!(err.contains("FIFO"), "{err}");
        } else {
            // Another user cannot read otpd's files; the config alone is checked.
            assert_eq!(exit, Exit::Ok, "{err}");
        }
    }

    #[test]
    fn an_invalid_file_exits_one_with_file_line_and_column() {
        let (exit, _, err) = check("[defaults]\nmax_attemps = 3\n");
        assert_eq!(exit, Exit::Failed);
        assert!(err.contains("otpd.toml:2:"), "{err}");
    }
}
