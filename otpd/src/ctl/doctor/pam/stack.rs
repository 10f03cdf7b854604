//! A service file's `auth` stack as doctor sees it: each line read for what matters here (our
//! module and its arguments, a password module, anything else), with included stacks
//! (`@include`, `include`, `substack`) flattened in place, because a service reaches the module
//! through common-auth as surely as by naming it.

use std::fs;
use std::path::{Path, PathBuf};

/// The module's file name, as stacks name it.
pub const MODULE: &str = "pam_otp_email.so";

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

/// What one `auth` line is, as far as doctor cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// Our module.
    Ours {
        /// Its control (`required`, `[success=ok ...]`).
        control: String,
        /// The `split` argument: the first line of the single-secret stack.
        split: bool,
        /// A `protocol=` argument, which overrides the service map.
        protocol: Option<String>,
    },
    /// A password module.
    Password {
        /// Its file name (`pam_unix.so`).
        module: String,
        /// Its control: the single-secret stack needs `requisite`.
        control: String,
    },
    /// Anything else.
    Other,
}

/// An `auth` line of a service's stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// The line number in the service file (for an included line, the include's line).
    pub number: usize,
    /// The included file it came through, when it is not in the service file itself.
    pub include: Option<String>,
    /// What it is.
    pub entry: Entry,
}

impl Line {
    /// Where an admin finds it: `line N` or `@include FILE, line N`.
    pub fn place(&self) -> String {
        match &self.include {
            Some(file) => format!("@include {file}, line {}", self.number),
            None => format!("line {}", self.number),
        }
    }

    /// Whether this is our module, with or without `split`.
    pub fn is_ours(&self) -> bool {
        matches!(self.entry, Entry::Ours { .. })
    }

    /// Whether this is our module's `split` line.
    pub fn is_split(&self) -> bool {
        matches!(self.entry, Entry::Ours { split: true, .. })
    }

    /// Whether this is a password module.
    pub fn is_password(&self) -> bool {
        matches!(self.entry, Entry::Password { .. })
    }
}

/// The `auth` stack of the service file `path`, includes resolved in `dir`.
pub fn auth_lines(dir: &Path, path: &Path) -> Vec<Line> {
    lines_at_depth(dir, path, 0)
}

fn lines_at_depth(dir: &Path, path: &Path, depth: usize) -> Vec<Line> {
    let Ok(text) = fs::read_to_string(path) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let number = index + 1;
        let line = raw.split('#').next().unwrap_or("").trim();
        if let Some(target) = line.strip_prefix("@include") {
            out.extend(included(dir, target.trim(), number, depth));
            continue;
        }
        let Some(fields) = Fields::parse(line) else {
            continue;
        };
        if fields.kind.trim_start_matches('-') != "auth" {
            continue;
        }
        if fields.control == "include" || fields.control == "substack" {
            out.extend(included(dir, fields.module, number, depth));
            continue;
        }
        let module = base(fields.module);
        let entry = if module == MODULE {
            Entry::Ours {
                control: fields.control,
                split: fields.args.contains(&"split"),
                protocol: fields
                    .args
                    .iter()
                    .find_map(|a| a.strip_prefix("protocol="))
                    .map(str::to_string),
            }
        } else if PASSWORD_MODULES.contains(&module) {
            Entry::Password {
                module: module.to_string(),
                control: fields.control,
            }
        } else {
            Entry::Other
        };
        out.push(Line {
            number,
            include: None,
            entry,
        });
    }
    out
}

/// The lines of the stack `target` includes, all placed at the including line `number`.
fn included(dir: &Path, target: &str, number: usize, depth: usize) -> Vec<Line> {
    if depth >= MAX_INCLUDE_DEPTH
        || target.is_empty()
        || target.contains('/') && !target.starts_with('/')
    {
        return Vec::new();
    }
    let path = if target.starts_with('/') {
        PathBuf::from(target)
    } else {
        dir.join(target)
    };
    lines_at_depth(dir, &path, depth + 1)
        .into_iter()
        .map(|line| Line {
            number,
            include: Some(target.to_string()),
            entry: line.entry,
        })
        .collect()
}

/// `type control module args...`, with a `[...]` control that may contain spaces.
struct Fields<'a> {
    kind: &'a str,
    control: String,
    module: &'a str,
    args: Vec<&'a str>,
}

impl<'a> Fields<'a> {
    fn parse(line: &'a str) -> Option<Fields<'a>> {
        let (kind, rest) = line.split_once(char::is_whitespace)?;
        let rest = rest.trim_start();
        let (control, rest) = if rest.starts_with('[') {
            let end = rest.find(']')?;
            (&rest[..=end], &rest[end + 1..])
        } else {
            rest.split_once(char::is_whitespace).unwrap_or((rest, ""))
        };
        let mut words = rest.split_whitespace();
        let module = words.next()?;
        Some(Fields {
            kind,
            control: control.to_string(),
            module,
            args: words.collect(),
        })
    }
}

fn base(module: &str) -> &str {
    module.rsplit('/').next().unwrap_or(module)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn includes_are_flattened_at_the_including_line() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join("common-auth"),
            "auth [success=1 default=ignore] pam_unix.so nullok\nauth requisite pam_deny.so\nauth [success=ok ignore=ignore default=die] pam_otp_email.so\n",
        )
        .unwrap();
        fs::write(
            dir.path().join("vsftpd"),
            "# FTP\n@include common-auth\nauth required /lib/security/pam_otp_email.so split protocol=ftps\n",
        )
        .unwrap();
        let lines = auth_lines(dir.path(), &dir.path().join("vsftpd"));
        let places: Vec<String> = lines.iter().map(Line::place).collect();
        assert_eq!(
            places,
            [
                "@include common-auth, line 2",
                "@include common-auth, line 2",
                "@include common-auth, line 2",
                "line 3"
            ]
        );
        assert!(lines[0].is_password() && !lines[2].is_split() && lines[3].is_split());
        assert_eq!(
            lines[3].entry,
            Entry::Ours {
                control: "required".into(),
                split: true,
                protocol: Some("ftps".into())
            }
        );
    }
}
