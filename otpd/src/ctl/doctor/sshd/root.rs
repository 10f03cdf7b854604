//! The checks on root's effective sshd settings, which differ from everyone else's in one way
//! that bites: sshd refuses keyboard-interactive to root unless `PermitRootLogin yes`. It hands
//! PAM a bogus answer in place of each one root types, so root's right code is refused, and
//! when PAM says yes all the same (a stack that needs no code from root) it logs `Internal
//! error: PAM auth succeeded when it should have failed`. Debian's default is
//! `prohibit-password`, so a setup that makes everyone answer keyboard-interactive locks root
//! out, and the usual cure (a `Match User root` block) can as easily let root in with its key
//! alone.

use super::super::Finding;
use super::settings::{RootLogin, Settings, has_keyboard_interactive};

/// The `Match` block the shipped sshd drop-in ends with: root gives its key and the code.
pub const ROOT_MATCH_BLOCK: &str = "`Match User root` / `PermitRootLogin yes` / `AuthenticationMethods publickey,keyboard-interactive:pam`";

/// Findings for the settings sshd applies to root, next to those of an ordinary user.
pub fn judge(root: &Settings, user: &Settings) -> Vec<Finding> {
    let Some(login) = root.root_login() else {
        return vec![Finding::skipped(
            "sshd",
            "the sshd command printed no permitrootlogin: skipped the checks for root",
        )];
    };
    let methods = root.methods_text();
    let value = match &login {
        RootLogin::No => {
            return vec![Finding::ok(
                "sshd",
                "root: PermitRootLogin no, root never logs in over ssh",
            )];
        }
        RootLogin::Yes => "yes".to_string(),
        RootLogin::KeysOnly(value) => value.clone(),
    };
    if root.requires_keyboard_interactive() {
        if login == RootLogin::Yes {
            return vec![Finding::ok(
                "sshd",
                format!(
                    "root: AuthenticationMethods {methods} with PermitRootLogin yes: root gives the code too"
                ),
            )];
        }
        return vec![Finding::problem(
            "sshd",
            format!(
                "root cannot log in over ssh: AuthenticationMethods {methods} makes root answer keyboard-interactive, which sshd refuses to root while PermitRootLogin is {value}: it hands PAM a bogus answer in place of root's, so root's right code counts as a wrong one (and a stack that needs no code from root ends with `Internal error: PAM auth succeeded when it should have failed`)"
            ),
            format!(
                "end /etc/ssh/sshd_config.d/otp-email.conf with the block of the shipped drop-in, {ROOT_MATCH_BLOCK}: root then needs its key and the code, and a password alone never logs root in"
            ),
        )];
    }
    let free = ways_without_code(root, &login);
    if free.is_empty() || !user.requires_keyboard_interactive() {
        // Either root has no way in that skips the code, or nobody must give the code, which
        // the checks for every user already report.
        return Vec::new();
    }
    vec![Finding::warning(
        "sshd",
        format!(
            "root logs in without the code ({}): for root AuthenticationMethods is {methods}, while other users must answer keyboard-interactive ({}); a Match block that applies to root (such as `Match User root` with `AuthenticationMethods publickey`) does this",
            free.join(" or "),
            user.methods_text()
        ),
        format!(
            "if root should give the code too, make that Match block {ROOT_MATCH_BLOCK}; keep it only if root is meant to log in with its key alone"
        ),
    )]
}

/// A warning when a Match block lets root in although the global settings say
/// `PermitRootLogin no`: the shipped drop-in's root block does exactly that, and an admin who
/// meant to keep root out should know.
pub fn overrides(root: &Settings, global: &Settings) -> Vec<Finding> {
    if global.root_login() != Some(RootLogin::No) || root.root_login() == Some(RootLogin::No) {
        return Vec::new();
    }
    vec![Finding::warning(
        "sshd",
        format!(
            "root may log in over ssh (AuthenticationMethods {}) although sshd_config says PermitRootLogin no: a Match block that applies to root (such as the shipped drop-in's `Match User root`) overrides it",
            root.methods_text()
        ),
        "to keep root out, delete that Match block; to let root in with its key and the code, set the global PermitRootLogin to prohibit-password so the file says what happens",
    )]
}

/// The ways root may complete a login that never pass through keyboard-interactive.
fn ways_without_code(root: &Settings, login: &RootLogin) -> Vec<String> {
    let usable = |method: &str| {
        let enabled = match method {
            "publickey" => root.get("pubkeyauthentication").as_deref() != Some("no"),
            "password" => root.yes("passwordauthentication"),
            "hostbased" => root.yes("hostbasedauthentication"),
            _ => true,
        };
        // With keys only, sshd refuses every password-like method to root.
        enabled && (*login == RootLogin::Yes || method != "password")
    };
    match root.method_lists() {
        None => ["publickey", "password", "hostbased"]
            .into_iter()
            .filter(|m| usable(m))
            .map(str::to_string)
            .collect(),
        Some(lists) => lists
            .iter()
            .filter(|list| !has_keyboard_interactive(list))
            .filter(|list| list.iter().all(|m| usable(m)))
            .map(|list| list.join(","))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::super::Level;
    use super::*;

    /// What the shipped drop-in gives an ordinary user in the key-then-code setup.
    const USER: &str = "usepam yes\nkbdinteractiveauthentication yes\npubkeyauthentication yes\npasswordauthentication no\npermitrootlogin without-password\nauthenticationmethods publickey,keyboard-interactive:pam\n";

    fn root_with(permit: &str, methods: &str) -> Settings {
        Settings::parse(&format!(
            "usepam yes\nkbdinteractiveauthentication yes\npubkeyauthentication yes\npasswordauthentication no\npermitrootlogin {permit}\nauthenticationmethods {methods}\n"
        ))
    }

    fn judged(root: &Settings) -> Vec<Finding> {
        judge(root, &Settings::parse(USER))
    }

    #[test]
    fn keyboard_interactive_for_root_under_prohibit_password_locks_root_out() {
        let f = judged(&root_with(
            "without-password",
            "publickey,keyboard-interactive:pam",
        ));
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].level, Level::Problem);
        assert!(
            f[0].message.contains("PermitRootLogin is without-password")
                && f[0].message.contains("Internal error: PAM auth succeeded"),
            "{f:?}"
        );
        assert!(
            f[0].fix.as_deref().unwrap().contains("Match User root"),
            "{f:?}"
        );
    }

    #[test]
    fn the_password_then_code_setup_locks_root_out_too() {
        let f = judged(&root_with(
            "forced-commands-only",
            "keyboard-interactive:pam",
        ));
        assert_eq!(f[0].level, Level::Problem, "{f:?}");
    }

    #[test]
    fn the_shipped_match_block_passes() {
        let f = judged(&root_with("yes", "publickey,keyboard-interactive:pam"));
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].level, Level::Ok);
        assert!(f[0].message.contains("root gives the code too"), "{f:?}");
    }

    #[test]
    fn root_with_its_key_alone_is_a_warning_naming_the_match_block() {
        let f = judged(&root_with("without-password", "publickey"));
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].level, Level::Warning);
        assert!(
            f[0].message.contains("without the code (publickey)")
                && f[0].message.contains("Match User root"),
            "{f:?}"
        );
    }

    #[test]
    fn root_with_any_method_skips_the_code_while_users_must_give_it() {
        let f = judged(&root_with("yes", "any"));
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].level, Level::Warning);
        assert!(f[0].message.contains("(publickey)"), "{f:?}");
    }

    #[test]
    fn when_nobody_must_give_the_code_root_is_not_singled_out() {
        let user = Settings::parse("permitrootlogin without-password\nauthenticationmethods any\n");
        assert!(judge(&root_with("without-password", "any"), &user).is_empty());
    }

    #[test]
    fn root_refused_altogether_is_fine() {
        let f = judged(&root_with("no", "publickey,keyboard-interactive:pam"));
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].level, Level::Ok);
    }

    #[test]
    fn a_match_block_letting_root_in_past_a_global_no_is_a_warning() {
        let global = Settings::parse("permitrootlogin no\n");
        let shipped = root_with("yes", "publickey,keyboard-interactive:pam");
        let f = overrides(&shipped, &global);
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].level, Level::Warning);
        assert!(f[0].message.contains("PermitRootLogin no"), "{f:?}");
        assert!(overrides(&root_with("no", "any"), &global).is_empty());
        let debian = Settings::parse("permitrootlogin without-password\n");
        assert!(overrides(&shipped, &debian).is_empty());
    }

    #[test]
    fn a_command_that_prints_no_permitrootlogin_skips_the_root_checks() {
        let f = judged(&Settings::parse("usepam yes\n"));
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].level, Level::Skipped);
    }
}
