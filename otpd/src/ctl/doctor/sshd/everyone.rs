//! The checks on an ordinary user's effective sshd settings: the code is asked through
//! keyboard-interactive authentication, so sshd must use PAM, allow that method, and require it.

use super::super::Finding;
use super::settings::{Settings, has_keyboard_interactive};

/// What a fix that makes everyone answer keyboard-interactive must add, or root is locked out
/// (see `root.rs`).
const ROOT_TOO: &str = "root then needs the `Match User root` block that ends the shipped drop-in (/usr/share/doc/pam-otp-email/examples/sshd_config.d/otp-email.conf)";

/// Findings for the settings sshd applies to an ordinary user.
pub fn judge(s: &Settings) -> Vec<Finding> {
    let mut out = Vec::new();
    match s.get("usepam").as_deref() {
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
    let kbd = s
        .get("kbdinteractiveauthentication")
        .or_else(|| s.get("challengeresponseauthentication"));
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
    let methods = s.methods_text();
    match s.method_lists() {
        None => out.push(Finding::warning(
            "sshd",
            "AuthenticationMethods any: a public-key login succeeds without PAM's auth stack and is never asked for a code",
            format!("set `AuthenticationMethods publickey,keyboard-interactive keyboard-interactive` (keys plus code, or password plus code); {ROOT_TOO}"),
        )),
        Some(lists) => {
            let lacking: Vec<String> = lists
                .iter()
                .filter(|list| !has_keyboard_interactive(list))
                .map(|list| list.join(","))
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
                    format!("add keyboard-interactive to every list, e.g. `AuthenticationMethods publickey,keyboard-interactive`; {ROOT_TOO}"),
                ));
            }
        }
    }
    if s.yes("passwordauthentication") {
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
    use super::super::super::Level;
    use super::*;

    fn levels(text: &str) -> (Vec<Level>, Vec<Finding>) {
        let f = judge(&Settings::parse(text));
        (f.iter().map(|f| f.level).collect(), f)
    }

    #[test]
    fn a_good_sshd_passes() {
        let (l, f) = levels(
            "usepam yes\nkbdinteractiveauthentication yes\nauthenticationmethods publickey,keyboard-interactive keyboard-interactive:pam\npasswordauthentication no\n",
        );
        assert_eq!(l, [Level::Ok; 3], "{f:?}");
    }

    #[test]
    fn sshd_without_keyboard_interactive_is_a_problem() {
        let (l, f) =
            levels("usepam yes\nkbdinteractiveauthentication no\nauthenticationmethods any\n");
        assert_eq!(l, [Level::Ok, Level::Problem, Level::Warning], "{f:?}");
        assert!(
            f[1].fix
                .as_deref()
                .unwrap()
                .contains("KbdInteractiveAuthentication yes")
        );
    }

    #[test]
    fn a_method_list_without_keyboard_interactive_is_a_problem() {
        let (l, f) = levels(
            "usepam yes\nkbdinteractiveauthentication yes\nauthenticationmethods publickey password,keyboard-interactive\n",
        );
        assert_eq!(l, [Level::Ok, Level::Ok, Level::Problem], "{f:?}");
        assert!(f[2].message.contains("publickey never asks"), "{f:?}");
    }

    #[test]
    fn the_password_method_is_a_warning() {
        let (l, f) = levels(
            "usepam yes\nkbdinteractiveauthentication yes\nauthenticationmethods keyboard-interactive:pam\npasswordauthentication yes\n",
        );
        assert_eq!(
            l,
            [Level::Ok, Level::Ok, Level::Ok, Level::Warning],
            "{f:?}"
        );
    }
}
