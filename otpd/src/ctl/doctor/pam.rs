//! Which PAM services use the module, and where it sits relative to the password module.
//!
//! The module belongs after the password check: placed before it, anyone who knows a user
//! name can make otpd mail that user codes, and learns whether the name exists. `optional`
//! makes a wrong code harmless to the login, which turns the second factor off.

use std::fs;
use std::path::{Path, PathBuf};

use super::Finding;

/// The module's file name, as stacks name it.
const MODULE: &str = "pam_otp_email.so";

/// Modules that check a password.
const PASSWORD_MODULES: &[&str] = &[
    "pam_unix.so",
    "pam_sss.so",
    "pam_ldap.so",
    "pam_krb5.so",
    "pam_winbind.so",
    "pam_pwdfile.so",
    "pam_userdb.so",
];

/// How deep includes are followed (they can loop).
const MAX_INCLUDE_DEPTH: usize = 8;

/// One `auth` line, as far as doctor cares.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    /// Our module, with its control.
    Ours { control: String },
    /// A password module, directly or through an include.
    Password { via: String },
    /// An include whose stack uses our module.
    IncludesOurs { file: String },
    /// Anything else.
    Other,
}

/// An `auth` line of a service file: its number and what it is.
#[derive(Debug, Clone)]
struct Line {
    number: usize,
    entry: Entry,
}

/// Checks every service file in `dir`.
pub fn check(dir: &Path) -> Vec<Finding> {
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
        let lines = auth_lines(dir, path, 0);
        let direct = lines.iter().any(|l| matches!(l.entry, Entry::Ours { .. }));
        if direct {
            users.push(service.clone());
            findings.extend(judge(&service, &lines));
        } else if let Some(via) = lines.iter().find_map(|l| match &l.entry {
            Entry::IncludesOurs { file } => Some(file.clone()),
            _ => None,
        }) {
            users.push(service.clone());
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
                "add `auth required {MODULE}` after the password module (after `@include common-auth`) in /etc/pam.d/sshd, or run `pam-auth-update --enable otp-email`"
            ),
        ));
    }
    findings
}

/// Findings for a service file that names the module itself.
fn judge(service: &str, lines: &[Line]) -> Vec<Finding> {
    let mut out = Vec::new();
    let Some((ours_at, control)) = lines.iter().find_map(|l| match &l.entry {
        Entry::Ours { control } => Some((l.number, control.clone())),
        _ => None,
    }) else {
        return out;
    };
    let password_before = lines
        .iter()
        .find(|l| l.number < ours_at && matches!(l.entry, Entry::Password { .. }));
    let password_after = lines
        .iter()
        .find(|l| l.number > ours_at && matches!(l.entry, Entry::Password { .. }));
    let via = |l: &Line| match &l.entry {
        Entry::Password { via } => via.clone(),
        _ => String::new(),
    };
    match (password_before, password_after) {
        (Some(before), _) => out.push(Finding::ok(
            "pam",
            format!(
                "{service}: {MODULE} (line {ours_at}, {control}) comes after the password module ({}, line {})",
                via(before),
                before.number
            ),
        )),
        (None, Some(after)) => out.push(Finding::problem(
            "pam",
            format!(
                "{service}: {MODULE} (line {ours_at}) comes before the password module ({}, line {}): anyone who knows a user name can make otpd mail that user codes",
                via(after),
                after.number
            ),
            format!("move line {ours_at} below line {} in the {service} file", after.number),
        )),
        (None, None) => out.push(Finding::warning(
            "pam",
            format!(
                "{service}: no password module comes before {MODULE} (line {ours_at}); fine for SSH keys plus a code, but otherwise the code is the only factor"
            ),
            format!("put `@include common-auth` (or your password module) before line {ours_at}, unless keys are the first factor"),
        )),
    }
    if control == "optional" || control == "sufficient" {
        out.push(Finding::problem(
            "pam",
            format!(
                "{service}: {MODULE} is `{control}` (line {ours_at}): {}",
                if control == "optional" {
                    "a wrong code does not stop the login"
                } else {
                    "a right code alone ends the stack, skipping what follows"
                }
            ),
            format!(
                "use `required` (or `[success=ok ignore=ignore default=die]`) on line {ours_at}"
            ),
        ));
    }
    out
}

/// The `auth` lines of the service file `path`, following includes into `dir`.
fn auth_lines(dir: &Path, path: &Path, depth: usize) -> Vec<Line> {
    let Ok(text) = fs::read_to_string(path) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let number = index + 1;
        let line = raw.split('#').next().unwrap_or("").trim();
        if let Some(target) = line.strip_prefix("@include") {
            let target = target.trim();
            out.push(Line {
                number,
                entry: included(dir, target, depth),
            });
            continue;
        }
        let Some((kind, control, module)) = fields(line) else {
            continue;
        };
        if kind.trim_start_matches('-') != "auth" {
            continue;
        }
        let entry = if control == "include" || control == "substack" {
            included(dir, &module, depth)
        } else if base(&module) == MODULE {
            Entry::Ours { control }
        } else if PASSWORD_MODULES.contains(&base(&module)) {
            Entry::Password {
                via: base(&module).to_string(),
            }
        } else {
            Entry::Other
        };
        out.push(Line { number, entry });
    }
    out
}

/// What an included stack amounts to: ours wins (the service uses the module), else a
/// password module.
fn included(dir: &Path, target: &str, depth: usize) -> Entry {
    if depth >= MAX_INCLUDE_DEPTH
        || target.is_empty()
        || target.contains('/') && !target.starts_with('/')
    {
        return Entry::Other;
    }
    let path = if target.starts_with('/') {
        PathBuf::from(target)
    } else {
        dir.join(target)
    };
    let lines = auth_lines(dir, &path, depth + 1);
    let ours = lines
        .iter()
        .any(|l| matches!(l.entry, Entry::Ours { .. } | Entry::IncludesOurs { .. }));
    if ours {
        return Entry::IncludesOurs {
            file: target.to_string(),
        };
    }
    if lines
        .iter()
        .any(|l| matches!(l.entry, Entry::Password { .. }))
    {
        return Entry::Password {
            via: format!("@include {target}"),
        };
    }
    Entry::Other
}

/// `type control module`, with a `[...]` control that may contain spaces.
fn fields(line: &str) -> Option<(String, String, String)> {
    let (kind, rest) = line.split_once(char::is_whitespace)?;
    let rest = rest.trim_start();
    let (control, rest) = if rest.starts_with('[') {
        let end = rest.find(']')?;
        (rest[..=end].to_string(), &rest[end + 1..])
    } else {
        let (c, r) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
        (c.to_string(), r)
    };
    let module = rest.split_whitespace().next()?.to_string();
    Some((kind.to_string(), control, module))
}

fn base(module: &str) -> &str {
    module.rsplit('/').next().unwrap_or(module)
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
        let f = check(dir.path());
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
        let f = check(dir.path());
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
        let f = check(dir.path());
        assert_eq!(levels(&f), [Level::Ok, Level::Problem], "{f:?}");
    }

    #[test]
    fn services_using_a_shared_stack_that_holds_the_module_are_listed() {
        let common =
            format!("{COMMON_AUTH}auth [success=ok ignore=ignore default=die] pam_otp_email.so\n");
        let dir = dir_with(&[("common-auth", &common), ("sshd", "@include common-auth\n")]);
        let f = check(dir.path());
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
        assert_eq!(levels(&check(dir.path())), [Level::Problem]);
    }

    #[test]
    fn include_loops_end() {
        let dir = dir_with(&[("a", "@include b\n"), ("b", "@include a\n")]);
        assert_eq!(levels(&check(dir.path())), [Level::Problem]);
    }
}
