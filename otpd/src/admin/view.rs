//! A user as otpctl shows it, and the checks on what admins type: names, addresses, protocols.

use common::config::{Config, EmailAddress};
use common::service::Protocol;
use common::text::{MAX_FIELD_LEN, mask_email};
use common::wire::LoginContext;
use common::wire_admin::UserView;

use crate::accounts::Accounts;
use crate::policy::{self, Decision};
use crate::store::UserRecord;

/// Whether the full address is shown (admins) or masked (the user themselves, whose screen may
/// be shared; the address is the admin's to manage).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Address {
    /// The whole address.
    Full,
    /// `a***@e***.com`.
    Masked,
}

/// One user's account facts (NSS), looked up before the store is locked: a slow directory
/// (LDAP, SSSD) then holds up only this request, never the store that every login needs.
/// Asked about that user, it answers from what it looked up; about anyone else, it asks the
/// accounts it was made from.
#[derive(Debug)]
pub struct LookedUp<'a> {
    accounts: &'a dyn Accounts,
    user: String,
    uid: Option<u32>,
    /// Looked up only when some policy matches groups; known as none otherwise.
    groups: Vec<String>,
}

impl<'a> LookedUp<'a> {
    /// Looks up `user`'s uid, and their groups when a policy of `config` matches groups.
    pub fn now(config: &Config, accounts: &'a dyn Accounts, user: &str) -> LookedUp<'a> {
        let groups = if config.policies_need_groups() {
            accounts.groups_of(user)
        } else {
            Vec::new()
        };
        LookedUp {
            accounts,
            user: user.to_string(),
            uid: accounts.uid_of(user),
            groups,
        }
    }
}

impl Accounts for LookedUp<'_> {
    fn user_name(&self, uid: u32) -> Option<String> {
        match self.uid {
            Some(known) if known == uid => Some(self.user.clone()),
            _ => self.accounts.user_name(uid),
        }
    }
    fn uid_of(&self, name: &str) -> Option<u32> {
        if name == self.user {
            self.uid
        } else {
            self.accounts.uid_of(name)
        }
    }
    fn groups_of(&self, user: &str) -> Vec<String> {
        if user == self.user {
            self.groups.clone()
        } else {
            self.accounts.groups_of(user)
        }
    }
}

/// Builds the view of `name` from its record (if any) and the config.
pub fn user_view(
    config: &Config,
    accounts: &dyn Accounts,
    name: &str,
    record: Option<&UserRecord>,
    locked_until: Option<i64>,
    show: Address,
) -> UserView {
    let from_table = record
        .and_then(|r| r.email.as_deref())
        .and_then(|e| EmailAddress::parse(e).ok());
    let (address, source) = match policy::address_for(config, name, record) {
        Some(a) if from_table.is_some() => (Some(a), "table"),
        Some(a) => (Some(a), "template"),
        None => (None, "none"),
    };
    let address = address.map(|a| match show {
        Address::Full => a.as_str().to_string(),
        Address::Masked => mask_email(a.as_str()),
    });
    let phone = record.and_then(|r| r.phone.as_deref()).map(|p| match show {
        Address::Full => p.to_string(),
        Address::Masked => common::config::mask_phone(p),
    });
    UserView {
        name: name.to_string(),
        in_table: record.is_some(),
        address,
        phone_source: phone
            .as_ref()
            .map(|_| crate::directory::FROM_TABLE.to_string()),
        phone,
        address_source: source.to_string(),
        enabled: record.is_some_and(|r| r.enabled),
        protocols: record.and_then(|r| r.protocols.clone()),
        code_required_for: code_required_for(config, accounts, name, record),
        locked_until,
        recovery_codes_left: None,
        mailed: None,
        directory_groups: Vec::new(),
        directory_attributes: Default::default(),
    }
}

/// The enabled protocols for which a login by `name` would need a code now (or fail closed
/// for want of an address).
pub fn code_required_for(
    config: &Config,
    accounts: &dyn Accounts,
    name: &str,
    record: Option<&UserRecord>,
) -> Vec<String> {
    let mut groups: Option<Vec<String>> = None;
    let mut out = Vec::new();
    for protocol in &config.enabled_protocols {
        let login = LoginContext {
            user: name.to_string(),
            service: "otpctl".to_string(),
            rhost: None,
            tty: None,
            protocol: Some(protocol.as_str().to_string()),
        };
        let address = policy::address_for(config, name, record);
        let decision = policy::decide(
            config,
            &login,
            None,
            Some(*protocol),
            record,
            policy::Destinations {
                address,
                phone: record.is_some_and(|r| r.phone.is_some()),
            },
            policy::Membership {
                groups: || {
                    groups
                        .get_or_insert_with(|| accounts.groups_of(name))
                        .clone()
                },
                // otpctl's view asks no LDAP server: `match_attribute` policies do not match.
                attributes: &common::config::Attributes::new(),
            },
        );
        if matches!(decision, Decision::Code(_) | Decision::NoUsableAddress) {
            out.push(protocol.as_str().to_string());
        }
    }
    out
}

/// Checks a user name typed by an admin or read from an import file.
pub fn check_user_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the user name is empty".into());
    }
    if name.len() > MAX_FIELD_LEN {
        return Err(format!(
            "the user name is longer than {MAX_FIELD_LEN} bytes"
        ));
    }
    if name
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == ',' || c == ':')
    {
        return Err(format!(
            "the user name {name:?} contains a space, control character, ',' or ':'"
        ));
    }
    Ok(())
}

/// Checks an address.
pub fn check_email(email: &str) -> Result<EmailAddress, String> {
    EmailAddress::parse(email).map_err(|e| format!("{email:?} is not a valid address: {e}"))
}

/// Checks protocol names; `enabled` limits them to the protocols `[protocols] enabled` lists.
pub fn check_protocols(list: &[String], enabled: Option<&Config>) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::with_capacity(list.len());
    for name in list {
        let Some(protocol) = Protocol::parse(name) else {
            let known: Vec<&str> = Protocol::ALL.iter().map(|p| p.as_str()).collect();
            return Err(format!(
                "unknown protocol {name:?}; known protocols: {}",
                known.join(", ")
            ));
        };
        if let Some(config) = enabled {
            if !config.enabled_protocols.contains(&protocol) {
                return Err(format!(
                    "the protocol {name:?} is not enabled on this machine ([protocols] enabled)"
                ));
            }
        }
        if !out.iter().any(|p| p == name) {
            out.push(name.clone());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{NoAccounts, config};

    fn record(enabled: bool, protocols: Option<Vec<&str>>) -> UserRecord {
        UserRecord {
            name: "alice".into(),
            email: Some("alice@corp.example".into()),
            enabled,
            protocols: protocols.map(|v| v.into_iter().map(String::from).collect()),
            language: None,
            phone: None,
        }
    }

    #[test]
    fn an_enabled_user_needs_codes_for_their_protocols_only() {
        let c = config("[protocols]\nenabled = [\"ssh\", \"sftp\", \"ftp\"]");
        let r = record(true, Some(vec!["ssh", "ftp"]));
        let v = user_view(&c, &NoAccounts, "alice", Some(&r), None, Address::Full);
        assert_eq!(v.code_required_for, ["ssh", "ftp"]);
        assert_eq!(v.address.as_deref(), Some("alice@corp.example"));
        assert_eq!(v.address_source, "table");
    }

    #[test]
    fn a_disabled_user_under_optional_mode_needs_no_code() {
        let c = config("");
        let r = record(false, None);
        let v = user_view(&c, &NoAccounts, "alice", Some(&r), None, Address::Masked);
        assert!(v.code_required_for.is_empty());
        assert_eq!(v.address.as_deref(), Some("a***@c***.example"));
    }

    #[test]
    fn a_template_address_is_reported_as_such() {
        let c = config("[directory]\nemail_template = \"{user}@example.org\"");
        let v = user_view(&c, &NoAccounts, "bob", None, None, Address::Full);
        assert_eq!(v.address_source, "template");
        assert!(!v.in_table);
    }

    #[test]
    fn names_with_separators_and_unknown_protocols_are_refused() {
        assert!(check_user_name("alice").is_ok());
        assert!(check_user_name("a b").is_err());
        assert!(check_user_name("a,b").is_err());
        assert!(check_user_name("").is_err());
        assert!(check_protocols(&["shh".into()], None).is_err());
        let c = config("[protocols]\nenabled = [\"ssh\"]");
        assert!(check_protocols(&["ftp".into()], Some(&c)).is_err());
        assert_eq!(
            check_protocols(&["ssh".into(), "ssh".into()], Some(&c)).unwrap(),
            ["ssh"]
        );
    }
}
