//! Which PAM services use the module, and whether each uses it the way its clients can answer:
//! after the password for services that can prompt twice ([`order`]), through the `split` stack
//! for services whose clients send one secret ([`single_secret`]).

mod order;
mod single_secret;
mod stack;

use std::fs;
use std::path::{Path, PathBuf};

use common::service::{DEFAULT_SERVICES, Protocol};

use super::Finding;
use stack::{Entry, MODULE};

/// The protocol otpd gives a PAM service: the config's map, or the built-in one.
pub type ProtocolOf<'a> = &'a dyn Fn(&str) -> Option<Protocol>;

/// The built-in service map, for when the config cannot be read.
pub fn builtin_protocol(service: &str) -> Option<Protocol> {
    DEFAULT_SERVICES
        .iter()
        .find(|(name, _)| *name == service)
        .map(|&(_, protocol)| protocol)
}

/// Checks every service file in `dir`; `protocol_of` says which protocol each service speaks.
pub fn check(dir: &Path, protocol_of: ProtocolOf<'_>) -> Vec<Finding> {
    let mut names: Vec<PathBuf> = match fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .filter(|p| {
                p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                    !n.starts_with('.') && !n.ends_with('~') && !n.contains(".dpkg-")
                })
            })
            .collect(),
        Err(e) => {
            return vec![Finding::problem(
                "pam",
                format!("cannot read {}: {e}", dir.display()),
                "point --pam-dir at the PAM service directory",
            )];
        }
    };
    names.sort();
    let mut findings = Vec::new();
    let mut users = Vec::new();
    for path in &names {
        let service = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let lines = stack::auth_lines(dir, path);
        let Some(first) = lines.iter().find(|l| l.is_ours()) else {
            continue;
        };
        users.push(service.clone());
        // A `protocol=` argument on the first line that reaches the module wins, as in the
        // module itself.
        let protocol = match &first.entry {
            Entry::Ours {
                protocol: Some(name),
                ..
            } => Protocol::parse(name),
            _ => protocol_of(&service),
        };
        if let Some(protocol) = protocol.filter(|p| single_secret::is_single_secret(*p)) {
            findings.extend(single_secret::judge(&service, protocol, &lines));
        } else if lines.iter().any(|l| l.is_ours() && l.include.is_none()) {
            findings.extend(order::judge(&service, &lines));
        } else if let Some(via) = &first.include {
            findings.push(Finding::ok(
                "pam",
                format!("{service} uses {MODULE} through {via}"),
            ));
        }
    }
    if users.is_empty() {
        findings.push(Finding::problem(
            "pam",
            format!("no PAM service in {} uses {MODULE}: no login asks for a code", dir.display()),
            format!(
                "add `auth [success=ok ignore=ignore default=die] {MODULE}` after the password module (after `@include common-auth`) in /etc/pam.d/sshd, or run `pam-auth-update --enable otp-email`"
            ),
        ));
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::super::Level;
    use super::*;

    fn dir_with(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            fs::write(dir.path().join(name), text).unwrap();
        }
        dir
    }

    fn levels(findings: &[Finding]) -> Vec<Level> {
        findings.iter().map(|f| f.level).collect()
    }

    const COMMON_AUTH: &str = "auth [success=1 default=ignore] pam_unix.so nullok\nauth requisite pam_deny.so\nauth required pam_permit.so\n";

    #[test]
    fn the_module_after_an_included_password_stack_is_fine() {
        let dir = dir_with(&[
            ("common-auth", COMMON_AUTH),
            (
                "sshd",
                "# sshd\n@include common-auth\nauth required pam_otp_email.so\naccount include common-account\n",
            ),
        ]);
        let f = check(dir.path(), &builtin_protocol);
        assert_eq!(levels(&f), [Level::Ok], "{f:?}");
        assert!(
            f[0].message
                .contains("after the password module (@include common-auth, line 2)"),
            "{f:?}"
        );
    }

    #[test]
    fn the_module_before_the_password_module_is_a_problem_naming_both_lines() {
        let dir = dir_with(&[(
            "sshd",
            "auth [success=ok ignore=ignore default=die] /lib/security/pam_otp_email.so\nauth required pam_unix.so\n",
        )]);
        let f = check(dir.path(), &builtin_protocol);
        assert_eq!(levels(&f), [Level::Problem], "{f:?}");
        assert_eq!(
            f[0].fix.as_deref(),
            Some("move line 1 below line 2 in the sshd file")
        );
    }

    #[test]
    fn an_optional_module_is_a_problem() {
        let dir = dir_with(&[(
            "login",
            "auth required pam_unix.so\nauth optional pam_otp_email.so\n",
        )]);
        let f = check(dir.path(), &builtin_protocol);
        assert_eq!(levels(&f), [Level::Ok, Level::Problem], "{f:?}");
    }

    #[test]
    fn services_using_a_shared_stack_that_holds_the_module_are_listed() {
        let common =
            format!("{COMMON_AUTH}auth [success=ok ignore=ignore default=die] pam_otp_email.so\n");
        let dir = dir_with(&[("common-auth", &common), ("sshd", "@include common-auth\n")]);
        let f = check(dir.path(), &builtin_protocol);
        assert_eq!(levels(&f), [Level::Ok, Level::Ok], "{f:?}");
        assert!(
            f[1].message
                .contains("sshd uses pam_otp_email.so through common-auth"),
            "{f:?}"
        );
    }

    #[test]
    fn no_service_using_the_module_is_a_problem() {
        let dir = dir_with(&[
            ("sshd", "@include common-auth\n"),
            ("common-auth", COMMON_AUTH),
        ]);
        assert_eq!(
            levels(&check(dir.path(), &builtin_protocol)),
            [Level::Problem]
        );
    }

    #[test]
    fn include_loops_end() {
        let dir = dir_with(&[("a", "@include b\n"), ("b", "@include a\n")]);
        assert_eq!(
            levels(&check(dir.path(), &builtin_protocol)),
            [Level::Problem]
        );
    }

    /// Debian's own /etc/pam.d/vsftpd.
    const DEBIAN_VSFTPD: &str = "# Standard behaviour for ftpd(8).\nauth\trequired\tpam_listfile.so item=user sense=deny file=/etc/ftpusers onerr=succeed\n\n@include common-account\n@include common-session\n@include common-auth\nauth\trequired\tpam_shells.so\n";

    /// common-auth after `pam-auth-update --enable otp-email`.
    fn common_auth_with_the_profile() -> String {
        format!("{COMMON_AUTH}auth [success=ok ignore=ignore default=die] pam_otp_email.so\n")
    }

    #[test]
    fn vsftpd_reaching_the_module_through_common_auth_is_a_problem_with_the_split_stack_as_fix() {
        let common = common_auth_with_the_profile();
        let dir = dir_with(&[("common-auth", &common), ("vsftpd", DEBIAN_VSFTPD)]);
        let f = check(dir.path(), &builtin_protocol);
        assert_eq!(levels(&f), [Level::Ok, Level::Problem], "{f:?}");
        assert!(
            f[1].message.starts_with("vsftpd speaks ftp")
                && f[1]
                    .message
                    .contains("without `split` (@include common-auth, line 6)"),
            "{f:?}"
        );
        let fix = f[1].fix.as_deref().unwrap();
        assert!(
            fix.contains("replace `@include common-auth` (line 6)")
                && fix.contains("pam_otp_email.so split")
                && fix.contains("auth requisite pam_unix.so use_first_pass"),
            "{fix}"
        );
    }

    #[test]
    fn the_documented_vsftpd_stack_is_accepted() {
        let shipped = include_str!("../../../../../packaging/doc/examples/pam.d/vsftpd");
        let common = common_auth_with_the_profile();
        let dir = dir_with(&[("common-auth", &common), ("vsftpd", shipped)]);
        let f = check(dir.path(), &builtin_protocol);
        assert_eq!(levels(&f), [Level::Ok, Level::Ok], "{f:?}");
        assert!(
            f[1].message
                .starts_with("vsftpd (ftp, one secret): pam_otp_email.so split"),
            "{f:?}"
        );
    }

    #[test]
    fn a_service_the_config_maps_to_webdav_is_held_to_the_split_stack() {
        let common = common_auth_with_the_profile();
        let dir = dir_with(&[("common-auth", &common), ("dav", "@include common-auth\n")]);
        assert_eq!(
            levels(&check(dir.path(), &builtin_protocol)),
            [Level::Ok, Level::Ok]
        );
        let webdav = |s: &str| (s == "dav").then_some(Protocol::Webdav);
        let f = check(dir.path(), &webdav);
        assert_eq!(levels(&f), [Level::Ok, Level::Problem], "{f:?}");
        assert!(f[1].message.starts_with("dav speaks webdav"), "{f:?}");
    }

    #[test]
    fn a_protocol_argument_overrides_the_service_map() {
        let dir = dir_with(&[(
            "myftp",
            "auth required pam_unix.so\nauth required pam_otp_email.so protocol=ftps\n",
        )]);
        let f = check(dir.path(), &builtin_protocol);
        assert_eq!(levels(&f), [Level::Problem], "{f:?}");
        assert!(f[0].message.contains("without `split` (line 2)"), "{f:?}");
    }

    #[test]
    fn a_split_stack_whose_password_module_is_not_requisite_is_a_problem() {
        let dir = dir_with(&[(
            "nginx",
            "auth required pam_otp_email.so split\nauth required pam_unix.so use_first_pass\nauth required pam_otp_email.so\n",
        )]);
        let f = check(dir.path(), &builtin_protocol);
        assert_eq!(levels(&f), [Level::Problem], "{f:?}");
        assert!(f[0].message.contains("not `requisite`"), "{f:?}");
    }

    #[test]
    fn a_password_check_before_the_split_line_is_a_problem() {
        let dir = dir_with(&[
            ("common-auth", COMMON_AUTH),
            (
                "vsftpd",
                "@include common-auth\nauth required pam_otp_email.so split\nauth requisite pam_unix.so use_first_pass\nauth required pam_otp_email.so\n",
            ),
        ]);
        let f = check(dir.path(), &builtin_protocol);
        assert_eq!(levels(&f), [Level::Problem], "{f:?}");
        assert!(
            f[0].message
                .contains("checks the password and code together"),
            "{f:?}"
        );
    }

    #[test]
    fn a_split_line_alone_is_a_problem() {
        let dir = dir_with(&[("apache2", "auth required pam_otp_email.so split\n")]);
        assert_eq!(
            levels(&check(dir.path(), &builtin_protocol)),
            [Level::Problem]
        );
    }
}
