//! The untrusted fields of a login request, checked before anything else is done with them.

use common::text::MAX_FIELD_LEN;
use common::wire::{LoginContext, MAX_SSH_KEY_LEN, MAX_SSH_KEYS};

/// Refuses logins whose fields are empty or longer than [`MAX_FIELD_LEN`]; they are untrusted.
pub(super) fn check_fields(login: &LoginContext) -> Result<(), String> {
    let fields = [
        ("user", Some(&login.user)),
        ("service", Some(&login.service)),
        ("rhost", login.rhost.as_ref()),
        ("tty", login.tty.as_ref()),
        ("protocol", login.protocol.as_ref()),
    ];
    for (name, value) in fields {
        if let Some(value) = value {
            if value.len() > MAX_FIELD_LEN {
                return Err(format!("{name} is longer than {MAX_FIELD_LEN} bytes"));
            }
        }
    }
    if login.user.is_empty() || login.service.is_empty() {
        return Err("user and service must not be empty".into());
    }
    Ok(())
}

/// Refuses more SSH keys than [`MAX_SSH_KEYS`] or longer ones than [`MAX_SSH_KEY_LEN`]; the
/// module never sends such a list.
pub(super) fn check_ssh_keys(ssh_keys: &[String]) -> Result<(), String> {
    if ssh_keys.len() > MAX_SSH_KEYS {
        return Err(format!("more than {MAX_SSH_KEYS} ssh_keys"));
    }
    if ssh_keys.iter().any(|k| k.len() > MAX_SSH_KEY_LEN) {
        return Err(format!("an ssh key is longer than {MAX_SSH_KEY_LEN} bytes"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn over_long_fields_are_refused() {
        let mut login = LoginContext {
            user: "a".repeat(MAX_FIELD_LEN + 1),
            service: "sshd".into(),
            rhost: None,
            tty: None,
            protocol: None,
        };
        assert!(check_fields(&login).is_err());
        login.user = "alice".into();
        assert!(check_fields(&login).is_ok());
        login.rhost = Some("h".repeat(MAX_FIELD_LEN + 1));
        assert!(check_fields(&login).is_err());
    }
}
