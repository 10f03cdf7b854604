//! The one check every otpctl request gets before it is answered: no text in it holds a NUL
//! byte. No name, address, network, filter or challenge has one; SQLite would store it as
//! given, and PostgreSQL's text columns refuse it, which used to surface as an internal error.
//! Refused here by the field's name, a hand-made request gets the same clear answer on both
//! backends, and nothing of it reaches the store.

use common::wire_admin::AdminRequest;
use serde::Serialize;
use serde_json::Value;

/// The name of the first field of `request` whose text holds a NUL byte, if any.
///
/// The request is looked at through its serialized form, so a request added later is covered
/// without a list of fields to keep up to date. A confirmation's code is left out: it is never
/// stored as text (only its MAC is compared), and a secret is not copied into a value that is
/// not zeroized.
pub(super) fn nul_field(request: &AdminRequest) -> Option<String> {
    match request {
        AdminRequest::SelfConfirm {
            action, challenge, ..
        } => in_text("challenge", challenge).or_else(|| in_serialized(action)),
        other => in_serialized(other),
    }
}

fn in_text(name: &str, text: &str) -> Option<String> {
    text.contains('\0').then(|| name.to_string())
}

/// The field holding a NUL in `value`'s serialized form. A value that cannot be serialized
/// (none of the requests' types can fail) is let through to its handler, as before this check.
fn in_serialized(value: &impl Serialize) -> Option<String> {
    let value = serde_json::to_value(value).ok()?;
    in_value("request", &value)
}

/// `name`, or the name of the field inside `value` that holds a NUL; in a list, the list's.
fn in_value(name: &str, value: &Value) -> Option<String> {
    match value {
        Value::String(text) => in_text(name, text),
        Value::Array(items) => items.iter().find_map(|item| in_value(name, item)),
        Value::Object(fields) => fields
            .iter()
            .find_map(|(field, inner)| in_text(field, field).or_else(|| in_value(field, inner))),
        Value::Null | Value::Bool(_) | Value::Number(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use common::secret::SecretString;
    use common::wire_admin::SelfAction;

    #[test]
    fn a_nul_in_any_text_field_is_found_by_the_fields_name() {
        let email = AdminRequest::UserSetEmail {
            user: "alice".into(),
            email: "alice@exa\0mple.org".into(),
        };
        assert_eq!(nul_field(&email).as_deref(), Some("email"));
        let filter = AdminRequest::Audit {
            user: Some("ali\0ce".into()),
            event: None,
            since: None,
            limit: 10,
            before: None,
        };
        assert_eq!(nul_field(&filter).as_deref(), Some("user"));
        let listed = AdminRequest::UserSetProtocols {
            user: "alice".into(),
            protocols: Some(vec!["sftp".into(), "ss\0h".into()]),
        };
        assert_eq!(nul_field(&listed).as_deref(), Some("protocols"));
        let confirm = AdminRequest::SelfConfirm {
            action: SelfAction::Enable,
            challenge: "c\0".into(),
            code: SecretString::new("424242".into()),
        };
        assert_eq!(nul_field(&confirm).as_deref(), Some("challenge"));
    }

    #[test]
    fn requests_without_a_nul_pass_and_a_codes_text_is_not_looked_at() {
        let clean = AdminRequest::UserSetEmail {
            user: "alice".into(),
            email: "alice@example.org".into(),
        };
        assert_eq!(nul_field(&clean), None);
        assert_eq!(nul_field(&AdminRequest::Status), None);
        let confirm = AdminRequest::SelfConfirm {
            action: SelfAction::Enable,
            challenge: "c".into(),
            code: SecretString::new("42\x004242".into()),
        };
        assert_eq!(nul_field(&confirm), None);
    }
}
