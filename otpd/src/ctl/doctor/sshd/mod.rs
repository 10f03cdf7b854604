//! sshd's effective settings, asked of sshd itself (`sshd -T -C ...`) once for an ordinary user
//! and once for root: `Match` blocks can make the two differ, and root is where they usually do.
//! Once more without `-C`, for the global settings a Match block may override.
//! This file only runs the command; what its output means is decided in the files below, over
//! plain text, so the tests need no sshd.

mod everyone;
mod root;
mod settings;

use std::process::{Command, Stdio};

use super::Finding;
use settings::Settings;

/// The connection doctor asks sshd about: a login from the local host, which no `Match
/// Address` block meant for a remote network catches.
const CONNECTION: &str = "host=localhost,addr=127.0.0.1";

/// Runs `command` (through `sh -c`, with `-C user=...,host=localhost,addr=127.0.0.1` appended)
/// for an ordinary user and for root, and without `-C`, and checks what it printed.
pub fn check(command: &str) -> Vec<Finding> {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let user = ordinary_user(&passwd);
    let asked = effective(command, Some(&user)).and_then(|everyone| {
        let root = effective(command, Some("root"))?;
        let global = effective(command, None)?;
        Ok((everyone, root, global))
    });
    let (everyone, root, global) = match asked {
        Ok(settings) => settings,
        Err(finding) => return vec![finding],
    };
    let mut findings = everyone::judge(&everyone);
    findings.extend(root::judge(&root, &everyone));
    findings.extend(root::overrides(&root, &global));
    findings
}

/// The settings sshd applies to `user`'s connection from [`CONNECTION`] (the global settings
/// when `None`), or the finding that says why there are none.
fn effective(command: &str, user: Option<&str>) -> Result<Settings, Finding> {
    let full = match user {
        Some(user) => format!("{command} -C user={user},{CONNECTION}"),
        None => command.to_string(),
    };
    let output = Command::new("/bin/sh")
        .arg("-c")
        .arg(&full)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| {
            Finding::skipped(
                "sshd",
                format!("cannot run `{full}`: {e}; skipped the sshd checks"),
            )
        })?;
    if output.status.code() == Some(127) {
        return Err(Finding::skipped(
            "sshd",
            format!("`{command}`: not found; sshd is not installed, skipped the sshd checks"),
        ));
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    if stderr.contains("Missing privilege separation directory") {
        // Debian's ssh service creates /run/sshd when it starts: sshd does not run here.
        return Err(Finding::skipped(
            "sshd",
            format!(
                "`{full}`: {}; sshd is not running, skipped the sshd checks",
                stderr.trim()
            ),
        ));
    }
    if !output.status.success() {
        return Err(Finding::problem(
            "sshd",
            format!("`{full}` failed ({}): {}", output.status, stderr.trim()),
            "fix /etc/ssh/sshd_config until `sshd -t` is silent; sshd refuses to restart with it",
        ));
    }
    Ok(Settings::parse(&String::from_utf8_lossy(&output.stdout)))
}

/// The first account in `passwd` (the text of /etc/passwd) that looks like a person's (uid
/// 1000 to 59999, a plain name), so a `Match Group` block that applies to people is seen; else
/// `nobody`, which no Match block is written for.
fn ordinary_user(passwd: &str) -> String {
    passwd
        .lines()
        .filter_map(|line| {
            let mut fields = line.split(':');
            let name = fields.next()?;
            let uid: u32 = fields.nth(1)?.parse().ok()?;
            let plain = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
                && !name.starts_with('-');
            ((1000..60000).contains(&uid) && plain).then(|| name.to_string())
        })
        .next()
        .unwrap_or_else(|| "nobody".to_string())
}

#[cfg(test)]
mod tests {
    use super::super::Level;
    use super::*;

    fn levels(findings: &[Finding]) -> Vec<Level> {
        findings.iter().map(|f| f.level).collect()
    }

    #[test]
    fn sshd_is_asked_once_for_an_ordinary_user_and_once_for_root() {
        // A stand-in for sshd that prints root's settings only when asked about root.
        let command = r#"f() { echo usepam yes; echo kbdinteractiveauthentication yes; echo authenticationmethods publickey,keyboard-interactive:pam; case "$*" in *user=root,host=localhost,addr=127.0.0.1*) echo permitrootlogin yes;; *) echo permitrootlogin without-password;; esac; }; f"#;
        let f = check(command);
        assert_eq!(levels(&f), [Level::Ok; 4], "{f:?}");
        assert!(f[3].message.contains("root gives the code too"), "{f:?}");
        let locked = check(&command.replace(
            "echo permitrootlogin yes",
            "echo permitrootlogin without-password",
        ));
        assert_eq!(
            locked.last().map(|f| f.level),
            Some(Level::Problem),
            "{locked:?}"
        );
    }

    #[test]
    fn a_missing_sshd_is_skipped_and_a_failing_one_is_a_problem() {
        assert_eq!(levels(&check("no-such-sshd-command -T")), [Level::Skipped]);
        assert_eq!(
            levels(&check("echo bad config >&2; exit 255; :")),
            [Level::Problem]
        );
        assert_eq!(
            levels(&check(
                "echo 'Missing privilege separation directory: /run/sshd' >&2; exit 255; :"
            )),
            [Level::Skipped]
        );
    }

    #[test]
    fn the_ordinary_user_is_the_first_person_in_passwd() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534::/:/usr/sbin/nologin\nsystemd-network:x:998:998::/:/usr/sbin/nologin\nalice:x:1000:1000::/home/alice:/bin/bash\nbob:x:1001:1001::/home/bob:/bin/bash\n";
        assert_eq!(ordinary_user(passwd), "alice");
        assert_eq!(ordinary_user("root:x:0:0::/root:/bin/sh\n"), "nobody");
        assert_eq!(ordinary_user("a b;rm:x:1000:1000::/:/bin/sh\n"), "nobody");
    }
}
