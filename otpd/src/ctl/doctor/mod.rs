//! `otpctl doctor`: checks a machine the way a careful admin would, and prints each finding
//! with its fix. Exit status 0 only when no check found a problem; warnings are advice about a
//! setup that works but is weaker than it could be.
//!
//! Every path it inspects can be pointed elsewhere (flags, or `OTPCTL_*` variables), so the
//! tests plant faults in temporary directories.

mod files;
mod ldap;
mod mail;
mod networks;
mod pam;
mod sendmail;
mod sshd;
mod webhook;

use std::path::{Path, PathBuf};

use common::client::DEFAULT_SOCKET;
use common::config::DEFAULT_STATE_DIR;
use common::wire::{Request, Response};
use common::wire_admin::{AdminRequest, AdminResponse};
use serde::Serialize;

use super::cli::{Cli, DoctorArgs};
use super::connect::Conn;
use super::{Exit, Io, output};

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Checked and fine.
    Ok,
    /// Not checked, and why (e.g. sshd is not installed).
    Skipped,
    /// Works, but weaker than it could be.
    Warning,
    /// Broken or unsafe: doctor exits 1.
    Problem,
}

impl Level {
    fn label(self) -> &'static str {
        match self {
            Level::Ok => "ok",
            Level::Skipped => "skipped",
            Level::Warning => "WARNING",
            Level::Problem => "PROBLEM",
        }
    }
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Which check: `config`, `otpd`, `socket`, `state`, `mail`, `ldap`, `webhook`, `module`,
    /// `pam`, `sshd`.
    pub check: &'static str,
    /// How bad.
    pub level: Level,
    /// What was found.
    pub message: String,
    /// What to do about it.
    pub fix: Option<String>,
}

impl Finding {
    /// A finding that needs no fix.
    pub fn ok(check: &'static str, message: impl Into<String>) -> Finding {
        Finding {
            check,
            level: Level::Ok,
            message: message.into(),
            fix: None,
        }
    }

    /// A check that did not run.
    pub fn skipped(check: &'static str, message: impl Into<String>) -> Finding {
        Finding {
            check,
            level: Level::Skipped,
            message: message.into(),
            fix: None,
        }
    }

    /// A warning with its fix.
    pub fn warning(
        check: &'static str,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> Finding {
        Finding {
            check,
            level: Level::Warning,
            message: message.into(),
            fix: Some(fix.into()),
        }
    }

    /// A problem with its fix.
    pub fn problem(
        check: &'static str,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> Finding {
        Finding {
            check,
            level: Level::Problem,
            message: message.into(),
            fix: Some(fix.into()),
        }
    }
}

/// The paths doctor looks at.
#[derive(Debug, Clone)]
pub struct Paths {
    /// The config file.
    pub config: PathBuf,
    /// The PAM service directory.
    pub pam_dir: PathBuf,
    /// The installed module.
    pub module: PathBuf,
    /// The command printing sshd's effective config.
    pub sshd_command: String,
}

impl Paths {
    /// Flags first, then `OTPCTL_*` variables, then the standard places.
    pub fn from_args(cli: &Cli, args: &DoctorArgs) -> Paths {
        let env = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
        Paths {
            config: cli.config.clone(),
            pam_dir: args
                .pam_dir
                .clone()
                .or_else(|| env("OTPCTL_PAM_DIR").map(PathBuf::from))
                .unwrap_or_else(|| PathBuf::from("/etc/pam.d")),
            module: args
                .module
                .clone()
                .or_else(|| env("OTPCTL_PAM_MODULE").map(PathBuf::from))
                .unwrap_or_else(default_module_path),
            sshd_command: args
                .sshd_command
                .clone()
                .or_else(|| env("OTPCTL_SSHD_COMMAND").and_then(|v| v.into_string().ok()))
                .unwrap_or_else(|| "sshd -T".to_string()),
        }
    }
}

/// The module's file name in a PAM module directory.
const MODULE_FILE: &str = "pam_otp_email.so";

/// The directories PAM modules live in, relative to `/`, in the order doctor looks: Debian's
/// multiarch directory (`/lib`, and `/usr/lib` where `/usr` is not merged), then the `lib64`
/// directories of Fedora, RHEL and SUSE.
pub fn module_dirs() -> [String; 4] {
    let arch = std::env::consts::ARCH;
    [
        format!("lib/{arch}-linux-gnu/security"),
        format!("usr/lib/{arch}-linux-gnu/security"),
        "usr/lib64/security".to_string(),
        "lib64/security".to_string(),
    ]
}

/// Where the module is installed on the system under `root` (`/` but in tests): the first of
/// [`module_dirs`] that holds it. When none does, the first of those directories that exists
/// (or Debian's when none does), so the finding names the place the module belongs in.
pub fn find_module(root: &Path) -> PathBuf {
    let dirs = module_dirs().map(|dir| root.join(dir));
    let installed = dirs
        .iter()
        .map(|dir| dir.join(MODULE_FILE))
        .find(|p| p.exists());
    installed.unwrap_or_else(|| {
        let dir = dirs.iter().find(|dir| dir.is_dir()).unwrap_or(&dirs[0]);
        dir.join(MODULE_FILE)
    })
}

/// Where the module is installed on this machine (see [`find_module`]).
pub fn default_module_path() -> PathBuf {
    find_module(Path::new("/"))
}

/// Runs every check and prints the findings.
pub fn run(cli: &Cli, args: &DoctorArgs, io: &mut Io<'_>) -> Exit {
    let paths = Paths::from_args(cli, args);
    let findings = check_all(cli, args, &paths);
    if cli.json {
        io.out(&output::json(&findings));
    } else {
        for f in &findings {
            io.out(&format!(
                "{:<8} {:<7} {}",
                f.level.label(),
                f.check,
                f.message
            ));
            if let Some(fix) = &f.fix {
                io.out(&format!("{:<8} {:<7} fix: {fix}", "", ""));
            }
        }
        let problems = findings
            .iter()
            .filter(|f| f.level == Level::Problem)
            .count();
        let warnings = findings
            .iter()
            .filter(|f| f.level == Level::Warning)
            .count();
        io.out(&format!("\n{problems} problem(s), {warnings} warning(s)."));
    }
    if findings.iter().any(|f| f.level == Level::Problem) {
        Exit::Failed
    } else {
        Exit::Ok
    }
}

/// Every check, in the order an admin would go.
pub fn check_all(cli: &Cli, args: &DoctorArgs, paths: &Paths) -> Vec<Finding> {
    let mut findings = Vec::new();
    let config = match super::check_config::load(&paths.config) {
        Ok(config) => {
            findings.push(Finding::ok(
                "config",
                format!("{} is valid", paths.config.display()),
            ));
            Some(config)
        }
        Err(e) => {
            findings.push(Finding::problem(
                "config",
                e.to_string(),
                format!(
                    "correct the file at the line and column shown; `otpctl check-config {}` checks it again",
                    paths.config.display()
                ),
            ));
            None
        }
    };
    let socket = cli
        .socket
        .clone()
        .or_else(|| config.as_ref().map(|c| c.daemon.socket.clone()))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET));
    let state_dir = config.as_ref().map_or_else(
        || PathBuf::from(DEFAULT_STATE_DIR),
        |c| c.daemon.state_dir.clone(),
    );
    let conn = Conn::at(
        socket.clone(),
        std::time::Duration::from_secs(cli.timeout.max(1)),
    );
    let reachable = daemon(&conn, &mut findings);
    findings.extend(files::socket(&socket));
    findings.extend(files::state(&state_dir));
    if let Some(config) = &config {
        findings.extend(mail::check(&config.mail));
        findings.extend(ldap::check(config, args.ldap_user.as_deref()));
        findings.extend(webhook::check(&config.webhooks));
        findings.extend(webhook::deadlines(config));
        findings.extend(networks::check(config));
    }
    if let Some(to) = &args.send_to {
        findings.extend(send_test(&conn, reachable, to));
    }
    findings.extend(files::module(&paths.module));
    let protocol_of = |service: &str| match &config {
        Some(config) => config.mapped_protocol(service),
        None => pam::builtin_protocol(service),
    };
    findings.extend(pam::check(&paths.pam_dir, &protocol_of));
    findings.extend(sshd::check(&paths.sshd_command));
    findings
}

/// Whether otpd answers a ping on the socket.
fn daemon(conn: &Conn, findings: &mut Vec<Finding>) -> bool {
    match conn.call(&Request::Ping) {
        Ok(Response::Pong { version }) => {
            findings.push(Finding::ok(
                "otpd",
                format!("otpd {version} answers on {}", conn.socket().display()),
            ));
            true
        }
        Ok(other) => {
            findings.push(Finding::problem(
                "otpd",
                format!(
                    "the process on {} answered a ping with {other:?}",
                    conn.socket().display()
                ),
                "check that the socket belongs to otpd (systemctl status otpd)",
            ));
            false
        }
        Err(e) => {
            findings.push(Finding::problem(
                "otpd",
                format!("otpd does not answer: {e}"),
                "start it (systemctl start otpd) and read why it stopped (journalctl -u otpd); logins that need a code fail until it runs",
            ));
            false
        }
    }
}

/// `--send-to`: a real message through each server, by otpd.
fn send_test(conn: &Conn, reachable: bool, to: &str) -> Vec<Finding> {
    if !reachable {
        return vec![Finding::problem(
            "mail",
            format!("cannot send a test message to {to}: otpd does not answer"),
            "start otpd, then run doctor again",
        )];
    }
    let request = AdminRequest::TestMail {
        to: to.to_string(),
        server: None,
    };
    match conn.admin(request) {
        Ok(AdminResponse::MailTest { results }) => results
            .into_iter()
            .map(|r| match r.error {
                None => Finding::ok(
                    "mail",
                    format!("{} accepted a test message to {to}", r.server),
                ),
                Some(error) => Finding::problem(
                    "mail",
                    format!("{} refused a test message to {to}: {error}", r.server),
                    "fix the server settings in [[mail.servers]] or the server itself; otpctl test-mail tries again",
                ),
            })
            .collect(),
        Ok(AdminResponse::Refused { message, .. }) => vec![Finding::problem(
            "mail",
            format!("otpd refused the test message: {message}"),
            "run doctor as root or as a member of admin_group",
        )],
        Ok(other) => vec![Finding::problem(
            "mail",
            format!("unexpected answer to the test message: {other:?}"),
            "check that otpd and otpctl are the same version",
        )],
        Err(e) => vec![Finding::problem(
            "mail",
            format!("cannot send a test message: {e}"),
            "start otpd, then run doctor again",
        )],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    /// `root` with the module installed in `dir` (one of [`module_dirs`]).
    fn install(root: &Path, dir: &str) -> PathBuf {
        fs::create_dir_all(root.join(dir)).unwrap();
        let path = root.join(dir).join(MODULE_FILE);
        fs::write(&path, b"module").unwrap();
        path
    }

    #[test]
    fn the_module_is_found_in_each_pam_directory() {
        for dir in module_dirs() {
            let root = tempfile::tempdir().unwrap();
            let path = install(root.path(), &dir);
            assert_eq!(find_module(root.path()), path, "{dir}");
        }
    }

    #[test]
    fn the_first_directory_that_holds_the_module_wins() {
        let root = tempfile::tempdir().unwrap();
        let [debian, usr_multiarch, usr_lib64, lib64] = module_dirs();
        install(root.path(), &lib64);
        let usr = install(root.path(), &usr_lib64);
        assert_eq!(find_module(root.path()), usr);
        let multiarch = install(root.path(), &usr_multiarch);
        assert_eq!(find_module(root.path()), multiarch);
        let first = install(root.path(), &debian);
        assert_eq!(find_module(root.path()), first);
    }

    #[test]
    fn a_missing_module_is_looked_for_in_the_pam_directory_the_system_has() {
        let root = tempfile::tempdir().unwrap();
        let [debian, _, usr_lib64, _] = module_dirs();
        assert_eq!(
            find_module(root.path()),
            root.path().join(&debian).join(MODULE_FILE)
        );
        fs::create_dir_all(root.path().join(&usr_lib64)).unwrap();
        assert_eq!(
            find_module(root.path()),
            root.path().join(&usr_lib64).join(MODULE_FILE)
        );
    }
}
