//! The untrusted fields of a login request, checked before anything else is done with them.

use common::text::MAX_FIELD_LEN;
use common::wire::{LoginContext, MAX_SSH_KEY_LEN, MAX_SSH_KEYS};

/// Refuses logins whose fields are empty, longer than [`MAX_FIELD_LEN`] or hold a NUL byte;
/// they are untrusted. libpam's items are C strings, so the module never sends a NUL; a text
/// with one cannot be stored on PostgreSQL, where it would fail the request as an internal
/// error instead of saying what is wrong with it.
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
            if value.contains('\0') {
                return Err(format!("{name} holds a NUL byte"));
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

    #[test]
    fn a_field_with_a_nul_byte_is_refused_by_name() {
        let mut login = LoginContext {
            user: "alice".into(),
            service: "sshd\0x".into(),
            rhost: None,
            tty: None,
            protocol: None,
        };
        assert_eq!(
            check_fields(&login),
            Err("service holds a NUL byte".to_string())
        );
        login.service = "sshd".into();
        login.rhost = Some("192.0.2.1\0".into());
        assert_eq!(
            check_fields(&login),
            Err("rhost holds a NUL byte".to_string())
        );
        login.rhost = Some("192.0.2.1".into());
        assert!(check_fields(&login).is_ok());
    }
}
