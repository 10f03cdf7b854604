//! `[directory] email_template`: where to mail a user who has no address in otpd's own table.

use super::address::EmailAddress;
use super::error::Invalid;
use super::raw::Text;

/// The one variable a template may use.
const USER: &str = "{user}";

/// A user name the template is tried with when the config is loaded, so a template that can
/// never give an address (`{user}@`, `{user}@example..com`) is refused up front.
const SAMPLE_USER: &str = "user";

/// An address pattern such as `{user}@example.com`. It contains `{user}` at least once and no
/// other braces, and renders to a valid address for an ordinary user name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailTemplate {
    /// The text between the `{user}` markers: `parts.join(user)` is the address.
    parts: Vec<String>,
}

impl EmailTemplate {
    /// The address for `user`, or `None` when the result is not a valid address (a user name
    /// holding `@`, spaces or other characters an address cannot have). `None` means "no
    /// address": it must never be papered over with a guess.
    pub fn address_for(&self, user: &str) -> Option<EmailAddress> {
        EmailAddress::parse(&self.parts.join(user)).ok()
    }

    /// Checks the template as written in the config.
    pub(super) fn from_raw(value: &Text) -> Result<EmailTemplate, Invalid> {
        let text = value.get_ref();
        let fail = |why: String| Invalid::new(value.span(), format!("email_template {why}"));
        let parts: Vec<String> = text.split(USER).map(str::to_string).collect();
        if parts.len() < 2 {
            return Err(fail(format!(
                "must contain {USER}, or every user's code would go to the same mailbox; got {text:?}"
            )));
        }
        if parts.iter().any(|p| p.contains(['{', '}'])) {
            return Err(fail(format!(
                "may only use the variable {USER}; other braces are not allowed, got {text:?}"
            )));
        }
        let template = EmailTemplate { parts };
        let sample = template.parts.join(SAMPLE_USER);
        if let Err(why) = EmailAddress::parse(&sample) {
            return Err(fail(format!(
                "gives {sample:?} for user {SAMPLE_USER:?}, which is not a valid address: {why}"
            )));
        }
        Ok(template)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(text: &str) -> Result<EmailTemplate, Invalid> {
        #[derive(serde::Deserialize)]
        struct W {
            t: Text,
        }
        let raw: W = toml::from_str(&format!("t = {text:?}")).unwrap();
        EmailTemplate::from_raw(&raw.t)
    }

    #[test]
    fn renders_the_user_into_the_address() {
        let t = template("{user}@example.com").unwrap();
        assert_eq!(
            t.address_for("alice").unwrap().as_str(),
            "alice@example.com"
        );
        let t = template("otp+{user}@{user}.example.com").unwrap();
        assert_eq!(
            t.address_for("bob").unwrap().as_str(),
            "otp+bob@bob.example.com"
        );
    }

    #[test]
    fn user_names_that_make_a_bad_address_give_none() {
        let t = template("{user}@example.com").unwrap();
        for odd in ["", "a b", "bob@evil.example", "x\r\nBcc: y", ".dot"] {
            assert_eq!(t.address_for(odd), None, "{odd:?}");
        }
    }

    #[test]
    fn a_template_without_the_user_is_refused() {
        let e = template("otp@example.com").unwrap_err();
        assert!(e.message.contains("must contain {user}"), "{}", e.message);
    }

    #[test]
    fn other_variables_are_refused() {
        for bad in [
            "{user}@{domain}",
            "{User}@example.com{user}",
            "{user}@example.com}",
        ] {
            let e = template(bad).unwrap_err();
            assert!(
                e.message.contains("only use the variable {user}"),
                "{bad}: {}",
                e.message
            );
        }
    }

    #[test]
    fn a_template_that_cannot_render_an_address_is_refused() {
        let e = template("{user}@example..com").unwrap_err();
        assert!(e.message.contains("not a valid address"), "{}", e.message);
        assert!(template("{user}\r\n@example.com").is_err());
    }
}
