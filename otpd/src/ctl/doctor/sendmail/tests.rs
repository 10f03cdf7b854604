//! Each verdict of the sendmail checks, against a planted machine.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::super::Level;
use super::*;

/// The unit otpd's packages install.
const PACKAGED_UNIT: &str = include_str!("../../../../../packaging/systemd/otpd.service");

const FROM: &str = "otp@example.com";

/// A machine made of planted commands, files, links and groups.
#[derive(Debug, Default)]
struct Planted {
    commands: HashMap<String, String>,
    files: HashMap<PathBuf, String>,
    modes: HashMap<PathBuf, u32>,
    links: HashMap<PathBuf, PathBuf>,
    groups: HashMap<String, Vec<String>>,
}

impl Planted {
    fn command(mut self, line: &str, output: &str) -> Planted {
        self.commands.insert(line.to_string(), output.to_string());
        self
    }

    fn file(mut self, path: &str, text: &str) -> Planted {
        self.files.insert(PathBuf::from(path), text.to_string());
        self
    }

    fn mode(mut self, path: &str, mode: u32) -> Planted {
        self.modes.insert(PathBuf::from(path), mode);
        self
    }

    fn link(mut self, path: &str, target: &str) -> Planted {
        self.links
            .insert(PathBuf::from(path), PathBuf::from(target));
        self
    }

    /// Debian's Postfix: `sendmail` and a setgid `postdrop` in /usr/sbin.
    fn postfix() -> Planted {
        Planted::default()
            .command("postconf -h command_directory", "/usr/sbin\n")
            .mode("/usr/sbin/postdrop", 0o102555)
    }

    /// Debian's Exim: `sendmail` a link to `exim4`, trusting `uucp` only.
    fn exim(trusted_users: &str, trusted_groups: &str) -> Planted {
        Planted::default()
            .link("/usr/sbin/sendmail", "/usr/sbin/exim4")
            .command(
                "/usr/sbin/exim4 -bP trusted_users trusted_groups",
                &format!("trusted_users = {trusted_users}\ntrusted_groups = {trusted_groups}\n"),
            )
    }
}

impl Host for Planted {
    fn run(&self, program: &str, args: &[&str]) -> Option<String> {
        self.commands
            .get(&format!("{program} {}", args.join(" ")))
            .cloned()
    }

    fn mode(&self, path: &Path) -> Option<u32> {
        self.modes.get(path).copied()
    }

    fn read(&self, path: &Path) -> Option<String> {
        self.files.get(path).cloned()
    }

    fn list(&self, dir: &Path) -> Vec<String> {
        self.files
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| p.file_name()?.to_str().map(str::to_string))
            .collect()
    }

    fn resolve(&self, path: &Path) -> Option<PathBuf> {
        Some(self.links.get(path).cloned().unwrap_or(path.to_path_buf()))
    }

    fn groups_of(&self, user: &str) -> Vec<String> {
        self.groups.get(user).cloned().unwrap_or_default()
    }
}

fn one(host: &Planted) -> Finding {
    let mut findings = check(Path::new("/usr/sbin/sendmail"), FROM, host);
    assert_eq!(findings.len(), 1, "{findings:?}");
    findings.remove(0)
}

#[test]
fn postfix_with_a_setgid_postdrop_under_the_packaged_unit_is_a_problem_recommending_smtp_on_the_loopback()
 {
    let host = Planted::postfix().file("/usr/lib/systemd/system/otpd.service", PACKAGED_UNIT);
    let f = one(&host);
    assert_eq!(f.level, Level::Problem, "{f:?}");
    assert!(f.message.contains("/usr/sbin/postdrop"), "{f:?}");
    assert!(f.message.contains("NoNewPrivileges=yes"), "{f:?}");
    let fix = f.fix.unwrap_or_default();
    assert!(
        fix.starts_with("recommended: send through Postfix over SMTP"),
        "{fix}"
    );
    assert!(fix.contains("host = \"127.0.0.1\", port = 25"), "{fix}");
    assert!(
        fix.contains("ReadWritePaths=/var/spool/postfix/maildrop"),
        "{fix}"
    );
}

#[test]
fn a_drop_in_turning_no_new_privileges_off_does_not_help_while_a_setting_implies_it() {
    let host = Planted::postfix()
        .file(
            "/usr/lib/systemd/system/otpd.service",
            "[Service]\nUser=otpd\nNoNewPrivileges=yes\nSystemCallFilter=@system-service\n",
        )
        .file(
            "/etc/systemd/system/otpd.service.d/postfix.conf",
            "[Service]\nNoNewPrivileges=no\n",
        );
    let f = one(&host);
    assert_eq!(f.level, Level::Problem, "{f:?}");
    assert!(
        f.message.contains("sets SystemCallFilter=@system-service"),
        "{f:?}"
    );
    assert!(!f.message.contains("NoNewPrivileges"), "{f:?}");
    assert!(
        f.message.contains(
            "/usr/lib/systemd/system/otpd.service, /etc/systemd/system/otpd.service.d/postfix.conf"
        ),
        "{f:?}"
    );
}

#[test]
fn postfix_under_a_unit_without_no_new_privs_is_fine() {
    let host = Planted::postfix()
        .file(
            "/usr/lib/systemd/system/otpd.service",
            "[Service]\nNoNewPrivileges=yes\nSystemCallFilter=@system-service\n",
        )
        .file(
            "/etc/systemd/system/otpd.service.d/postfix.conf",
            "[Service]\nNoNewPrivileges=no\nSystemCallFilter=\n",
        );
    assert_eq!(one(&host).level, Level::Ok);
}

#[test]
fn the_running_otpds_own_flag_decides_over_its_unit() {
    let show = "LoadState=loaded\nMainPID=4242\nNoNewPrivileges=no\nUser=otpd\n";
    let set = Planted::postfix()
        .command("systemctl show otpd.service", show)
        .file("/proc/4242/status", "Name:\totpd\nNoNewPrivs:\t1\n");
    let f = one(&set);
    assert_eq!(f.level, Level::Problem, "{f:?}");
    assert!(f.message.contains("the running otpd (pid 4242)"), "{f:?}");
    let unset = Planted::postfix()
        .command("systemctl show otpd.service", show)
        .file("/proc/4242/status", "Name:\totpd\nNoNewPrivs:\t0\n");
    assert_eq!(one(&unset).level, Level::Ok);
}

#[test]
fn systemd_settings_are_read_when_otpd_is_stopped_and_a_not_found_unit_falls_back_to_files() {
    let stopped = Planted::postfix().command(
        "systemctl show otpd.service",
        "LoadState=loaded\nMainPID=0\nNoNewPrivileges=no\nLockPersonality=yes\nSystemCallFilter=\n",
    );
    let f = one(&stopped);
    assert_eq!(f.level, Level::Problem, "{f:?}");
    assert!(
        f.message
            .contains("`systemctl show otpd.service` sets LockPersonality=yes"),
        "{f:?}"
    );
    let not_found = Planted::postfix()
        .command(
            "systemctl show otpd.service",
            "LoadState=not-found\nMainPID=0\n",
        )
        .file(
            "/lib/systemd/system/otpd.service",
            "[Service]\nNoNewPrivileges=true\n",
        );
    assert!(
        one(&not_found)
            .message
            .contains("/lib/systemd/system/otpd.service sets NoNewPrivileges=true")
    );
}

#[test]
fn a_postdrop_without_setgid_is_fine_whatever_the_unit_says() {
    let host = Planted::default()
        .command("postconf -h command_directory", "/usr/libexec/postfix\n")
        .mode("/usr/libexec/postfix/postdrop", 0o100755)
        .file("/usr/lib/systemd/system/otpd.service", PACKAGED_UNIT);
    assert_eq!(one(&host).level, Level::Ok);
}

#[test]
fn postfix_without_an_otpd_unit_is_skipped_not_guessed() {
    let f = one(&Planted::postfix());
    assert_eq!(f.level, Level::Skipped, "{f:?}");
    assert!(f.message.contains("no otpd.service is installed"), "{f:?}");
}

#[test]
fn exim_that_does_not_trust_otpd_is_a_warning_about_the_sender_header() {
    let f = one(&Planted::exim("uucp", ""));
    assert_eq!(f.level, Level::Warning, "{f:?}");
    assert!(
        f.message.contains("Exim ignores `-f otp@example.com`"),
        "{f:?}"
    );
    assert!(f.message.contains("`Sender: otpd@...`"), "{f:?}");
    let fix = f.fix.unwrap_or_default();
    assert!(fix.contains("host = \"127.0.0.1\", port = 25"), "{fix}");
    assert!(fix.contains("MAIN_TRUSTED_USERS = uucp : otpd"), "{fix}");
}

#[test]
fn exim_trusting_otpd_by_user_or_by_group_is_fine() {
    assert_eq!(one(&Planted::exim("uucp : otpd", "")).level, Level::Ok);
    assert_eq!(one(&Planted::exim("<; uucp; otpd", "")).level, Level::Ok);
    let mut by_group = Planted::exim("uucp", "mailers");
    by_group
        .groups
        .insert("otpd".into(), vec!["otpd".into(), "mailers".into()]);
    let f = one(&by_group);
    assert_eq!(f.level, Level::Ok, "{f:?}");
    assert!(f.message.contains("trusted_groups: mailers"), "{f:?}");
}

#[test]
fn the_user_checked_against_exim_is_the_one_the_unit_runs_otpd_as() {
    let host = Planted::exim("uucp : otpd", "").file(
        "/etc/systemd/system/otpd.service",
        "[Service]\nUser=mailotp\n",
    );
    let f = one(&host);
    assert_eq!(f.level, Level::Warning, "{f:?}");
    assert!(f.message.contains("otpd's user mailotp"), "{f:?}");
}

#[test]
fn exim_is_recognised_by_its_version_when_sendmail_is_no_link() {
    let host = Planted::default()
        .command("exim4 -bV", "Exim version 4.96 #2 built 20-Jan-2024\n")
        .command(
            "exim4 -bP trusted_users trusted_groups",
            "trusted_users = uucp\ntrusted_groups =\n",
        );
    assert_eq!(one(&host).level, Level::Warning);
}

#[test]
fn exim_whose_configuration_cannot_be_read_is_skipped() {
    let host = Planted::default().link("/usr/sbin/sendmail", "/usr/sbin/exim4");
    let f = one(&host);
    assert_eq!(f.level, Level::Skipped, "{f:?}");
    assert!(f.message.contains("run doctor as root"), "{f:?}");
}

#[test]
fn another_mtas_sendmail_gets_no_postfix_or_exim_verdict() {
    let host = Planted::postfix()
        .link("/usr/sbin/sendmail", "/usr/bin/msmtp")
        .command("exim4 -bV", "Exim version 4.96\n");
    assert!(check(Path::new("/usr/sbin/sendmail"), FROM, &host).is_empty());
    assert!(check(Path::new("/usr/sbin/sendmail"), FROM, &Planted::default()).is_empty());
}
