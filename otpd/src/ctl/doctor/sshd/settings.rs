//! What `sshd -T` prints, read into the few settings doctor judges. Pure: the tests feed it
//! fixture texts, the runner feeds it sshd's output.

use std::collections::BTreeMap;

/// The effective settings of one connection (`sshd -T -C user=...`): `key value` lines, keys
/// lower-cased as sshd prints them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings(BTreeMap<String, String>);

/// Who may log in as root, as `PermitRootLogin` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootLogin {
    /// `yes`: every method, keyboard-interactive included.
    Yes,
    /// `prohibit-password` (printed `without-password`), Debian's default, or
    /// `forced-commands-only`: keys only. sshd refuses keyboard-interactive and password for root
    /// then, even after PAM said yes.
    KeysOnly(String),
    /// `no`: root never logs in over ssh.
    No,
}

impl Settings {
    /// Reads `sshd -T` output; a repeated key keeps its first value, as sshd does.
    pub fn parse(text: &str) -> Settings {
        let mut map = BTreeMap::new();
        for line in text.lines() {
            if let Some((key, value)) = line.trim().split_once(char::is_whitespace) {
                map.entry(key.to_ascii_lowercase())
                    .or_insert_with(|| value.trim().to_string());
            }
        }
        Settings(map)
    }

    /// A setting's value, lower-cased (sshd's keywords and yes/no values are case-blind).
    pub fn get(&self, key: &str) -> Option<String> {
        self.0.get(key).map(|v| v.to_ascii_lowercase())
    }

    /// Whether a yes/no setting is `yes`.
    pub fn yes(&self, key: &str) -> bool {
        self.get(key).as_deref() == Some("yes")
    }

    /// `AuthenticationMethods` as printed (`any` when sshd printed none).
    pub fn methods_text(&self) -> String {
        self.get("authenticationmethods")
            .unwrap_or_else(|| "any".into())
    }

    /// The method lists a login may complete, each a list of methods that must all succeed;
    /// `None` for `any` (a single enabled method is enough).
    pub fn method_lists(&self) -> Option<Vec<Vec<String>>> {
        let text = self.methods_text();
        if text == "any" {
            return None;
        }
        Some(
            text.split_whitespace()
                .map(|list| list.split(',').map(str::to_string).collect())
                .collect(),
        )
    }

    /// `PermitRootLogin`; `None` when the command printed none (not a real `sshd -T`).
    pub fn root_login(&self) -> Option<RootLogin> {
        let value = self.get("permitrootlogin")?;
        Some(match value.as_str() {
            "yes" => RootLogin::Yes,
            "no" => RootLogin::No,
            _ => RootLogin::KeysOnly(value),
        })
    }

    /// Whether every way in goes through keyboard-interactive, where the code is asked.
    pub fn requires_keyboard_interactive(&self) -> bool {
        self.method_lists()
            .is_some_and(|lists| lists.iter().all(|list| has_keyboard_interactive(list)))
    }
}

/// Whether a method list includes keyboard-interactive (with or without `:pam`).
pub fn has_keyboard_interactive(list: &[String]) -> bool {
    list.iter().any(|m| m.starts_with("keyboard-interactive"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_value_of_a_key_wins_and_case_does_not_matter() {
        let s = Settings::parse("UsePAM yes\nusepam no\npermitrootlogin without-password\n");
        assert!(s.yes("usepam"));
        assert_eq!(
            s.root_login(),
            Some(RootLogin::KeysOnly("without-password".into()))
        );
    }

    #[test]
    fn method_lists_are_split_by_space_then_comma() {
        let s = Settings::parse(
            "authenticationmethods publickey,keyboard-interactive:pam keyboard-interactive\n",
        );
        assert_eq!(
            s.method_lists(),
            Some(vec![
                vec![
                    "publickey".to_string(),
                    "keyboard-interactive:pam".to_string()
                ],
                vec!["keyboard-interactive".to_string()],
            ])
        );
        assert!(s.requires_keyboard_interactive());
    }

    #[test]
    fn any_and_a_missing_list_require_nothing() {
        assert_eq!(
            Settings::parse("authenticationmethods any\n").method_lists(),
            None
        );
        assert!(!Settings::parse("").requires_keyboard_interactive());
        assert!(
            !Settings::parse("authenticationmethods publickey keyboard-interactive\n")
                .requires_keyboard_interactive()
        );
    }

    #[test]
    fn a_text_without_permitrootlogin_says_nothing_about_root() {
        assert_eq!(Settings::parse("usepam yes\n").root_login(), None);
        assert_eq!(
            Settings::parse("permitrootlogin no\n").root_login(),
            Some(RootLogin::No)
        );
    }
}
