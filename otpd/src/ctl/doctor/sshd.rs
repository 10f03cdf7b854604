//! sshd's effective settings (`sshd -T`): the code is asked through keyboard-interactive
//! authentication, so sshd must use PAM, allow that method, and require it.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};

use super::Finding;

/// Runs `command` (through `sh -c`) and checks what it printed.
pub fn check(command: &str) -> Vec<Finding> {
    let output = match Command::new("/bin/sh")
        .arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .output()
    {
        Ok(output) => output,
        Err(e) => {
            return vec![Finding::skipped(
                "sshd",
                format!("cannot run `{command}`: {e}; skipped the sshd checks"),
            )];
        }
    };
    if output.status.code() == Some(127) {
        return vec![Finding::skipped(
            "sshd",
            format!("`{command}`: not found; sshd is not installed, skipped the sshd checks"),
        )];
    }
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return vec![Finding::problem(
            "sshd",
            format!("`{command}` failed ({}): {}", output.status, stderr.trim()),
            "fix /etc/ssh/sshd_config until `sshd -t` is silent; sshd refuses to restart with it",
        )];
    }
    judge(&settings(&String::from_utf8_lossy(&output.stdout)))
}

/// `key value` lines, keys lower-cased; a repeated key keeps its first value, as sshd does.
fn settings(text: &str) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if let Some((key, value)) = line.split_once(char::is_whitespace) {
            map.entry(key.to_ascii_lowercase())
                .or_insert_with(|| value.trim().to_string());
        }
    }
    map
}

fn judge(s: &BTreeMap<String, String>) -> Vec<Finding> {
    let mut out = Vec::new();
    let get = |key: &str| s.get(key).map(|v| v.to_ascii_lowercase());
    match get("usepam").as_deref() {
        Some("yes") => out.push(Finding::ok("sshd", "UsePAM yes")),
        other => out.push(Finding::problem(
            "sshd",
            format!(
                "UsePAM is {}: sshd never runs the PAM stack, so no login asks for a code",
                other.unwrap_or("not set")
            ),
            "set `UsePAM yes` in /etc/ssh/sshd_config and restart sshd",
        )),
    }
    let kbd =
        get("kbdinteractiveauthentication").or_else(|| get("challengeresponseauthentication"));
    match kbd.as_deref() {
        Some("yes") => out.push(Finding::ok("sshd", "KbdInteractiveAuthentication yes")),
        other => out.push(Finding::problem(
            "sshd",
            format!(
                "KbdInteractiveAuthentication is {}: sshd cannot show the code prompt, so logins needing a code fail",
                other.unwrap_or("not set")
            ),
            "set `KbdInteractiveAuthentication yes` in /etc/ssh/sshd_config and restart sshd",
        )),
    }
    let methods = get("authenticationmethods").unwrap_or_else(|| "any".into());
    if methods == "any" {
        out.push(Finding::warning(
            "sshd",
            "AuthenticationMethods any: a public-key login succeeds without PAM's auth stack and is never asked for a code",
            "set `AuthenticationMethods publickey,keyboard-interactive keyboard-interactive` (keys plus code, or password plus code)",
        ));
    } else {
        let lacking: Vec<&str> = methods
            .split_whitespace()
            .filter(|list| {
                !list
                    .split(',')
                    .any(|m| m.starts_with("keyboard-interactive"))
            })
            .collect();
        if lacking.is_empty() {
            out.push(Finding::ok(
                "sshd",
                format!(
                    "AuthenticationMethods {methods}: every way in includes keyboard-interactive"
                ),
            ));
        } else {
            out.push(Finding::problem(
                "sshd",
                format!(
                    "AuthenticationMethods {methods}: {} never asks for the code",
                    lacking.join(" and ")
                ),
                "add keyboard-interactive to every list, e.g. `AuthenticationMethods publickey,keyboard-interactive`",
            ));
        }
    }
    if get("passwordauthentication").as_deref() == Some("yes") {
        out.push(Finding::warning(
            "sshd",
            "PasswordAuthentication yes: the password method runs PAM without showing prompts, so it cannot ask for a code and such logins fail",
            "set `PasswordAuthentication no`; keyboard-interactive asks for the password and then the code",
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::Level;
    use super::*;

    fn levels(findings: &[Finding]) -> Vec<Level> {
        findings.iter().map(|f| f.level).collect()
    }

    #[test]
    fn a_good_sshd_passes() {
        let f = check(
            "printf 'usepam yes\\nkbdinteractiveauthentication yes\\nauthenticationmethods publickey,keyboard-interactive keyboard-interactive:pam\\npasswordauthentication no\\n'",
        );
        assert_eq!(levels(&f), [Level::Ok; 3], "{f:?}");
    }

    #[test]
    fn sshd_without_keyboard_interactive_is_a_problem() {
        let f = check(
            "printf 'usepam yes\\nkbdinteractiveauthentication no\\nauthenticationmethods any\\n'",
        );
        assert_eq!(
            levels(&f),
            [Level::Ok, Level::Problem, Level::Warning],
            "{f:?}"
        );
        assert!(
            f[1].fix
                .as_deref()
                .unwrap()
                .contains("KbdInteractiveAuthentication yes")
        );
    }

    #[test]
    fn a_method_list_without_keyboard_interactive_is_a_problem() {
        let f = check(
            "printf 'usepam yes\\nkbdinteractiveauthentication yes\\nauthenticationmethods publickey password,keyboard-interactive\\n'",
        );
        assert_eq!(levels(&f), [Level::Ok, Level::Ok, Level::Problem], "{f:?}");
        assert!(f[2].message.contains("publickey never asks"), "{f:?}");
    }

    #[test]
    fn a_missing_sshd_is_skipped_and_a_failing_one_is_a_problem() {
        assert_eq!(levels(&check("no-such-sshd-command -T")), [Level::Skipped]);
        assert_eq!(
            levels(&check("echo bad config >&2; exit 255")),
            [Level::Problem]
        );
    }
}
