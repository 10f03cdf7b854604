//! Whether a login needs a code, under which settings, and where the code goes.
//!
//! Order of questions: which protocol the login speaks (module argument, then `[services]`, then
//! `default_protocol`); whether that protocol is enabled; which profile applies (first matching
//! `[[policies]]` rule); the profile's mode; and, for users who need a code, their address, taken
//! only from admin-controlled sources (otpd's user table, the `[[directory.ldap]]` sources, then
//! `[directory] email_template`; see `directory::look_up_all`).

use std::net::IpAddr;

use common::config::{Attributes, Channel, Config, EmailAddress, Mode, Settings};
use common::service::Protocol;
use common::wire::{LoginContext, SkipReason};

use crate::store::UserRecord;

/// What to do with a login.
#[derive(Debug, Clone)]
pub enum Decision {
    /// No code: PAM_IGNORE.
    Skip(SkipReason),
    /// Send a code to `address` and ask for it.
    Code(Box<CodeNeeded>),
    /// The user must give a code but otpd has no usable address: fail closed.
    NoUsableAddress,
}

/// The facts needed to issue and mail a code.
#[derive(Debug, Clone)]
pub struct CodeNeeded {
    /// The protocol the code is bound to.
    pub protocol: Protocol,
    /// The profile that applied (`defaults` when no policy matched), for logs.
    pub profile: String,
    /// The profile's settings.
    pub settings: Settings,
    /// The user's mail address, where the code mail (and every notification) goes; `None`
    /// for a user reached only by phone through a webhook channel.
    pub address: Option<EmailAddress>,
}

impl CodeNeeded {
    /// The user's mail address as a list of none or one, for notifications.
    pub fn addresses(&self) -> Vec<&str> {
        self.address.iter().map(EmailAddress::as_str).collect()
    }
}

/// Where a user can be sent a code: their mail address, and whether they have a phone number
/// (which a profile's webhook channel can use).
#[derive(Debug, Clone, Default)]
pub struct Destinations {
    /// The address from otpd's table, the directories or the template.
    pub address: Option<EmailAddress>,
    /// Whether otpd's table or a directory gave a phone number.
    pub phone: bool,
}

/// What the directories say the user belongs to, for policies that match it: the groups
/// (looked up only when a policy matches groups) and the directory attributes.
#[derive(Debug)]
pub struct Membership<'a, G: FnOnce() -> Vec<String>> {
    /// The user's groups, asked for only when needed.
    pub groups: G,
    /// The attributes `match_attribute` policies read (empty where no directory was asked).
    pub attributes: &'a Attributes,
}

/// A `protocol=` module argument that names no protocol.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown protocol {0:?} in the module's protocol= argument")]
pub struct UnknownProtocol(pub String);

/// The protocol a login speaks, or `None` when the service is unknown and no default is set.
pub fn login_protocol(
    config: &Config,
    login: &LoginContext,
) -> Result<Option<Protocol>, UnknownProtocol> {
    match &login.protocol {
        Some(name) => Protocol::parse(name)
            .map(Some)
            .ok_or_else(|| UnknownProtocol(name.clone())),
        None => Ok(config.protocol_for_service(&login.service)),
    }
}

/// The settings that apply to `user` on `protocol`, looking up groups only when a policy needs
/// them (an NSS lookup per login is not free).
pub fn settings_for<'c>(
    config: &'c Config,
    user: &str,
    protocol: Protocol,
    groups: impl FnOnce() -> Vec<String>,
) -> (&'c str, &'c Settings) {
    settings_for_login(config, user, None, protocol, groups)
}

/// [`settings_for`] a login from `rhost`, the remote host otpd believes (never one a local
/// caller claimed): policies with `match_rhost` match only such a host.
pub fn settings_for_login<'c>(
    config: &'c Config,
    user: &str,
    rhost: Option<IpAddr>,
    protocol: Protocol,
    groups: impl FnOnce() -> Vec<String>,
) -> (&'c str, &'c Settings) {
    settings_for_account(config, user, rhost, protocol, groups, &Attributes::new())
}

/// [`settings_for_login`] for a user whose directory attributes are `attributes`, which
/// policies with `match_attribute` need (without them such a policy never matches).
pub fn settings_for_account<'c>(
    config: &'c Config,
    user: &str,
    rhost: Option<IpAddr>,
    protocol: Protocol,
    groups: impl FnOnce() -> Vec<String>,
    attributes: &Attributes,
) -> (&'c str, &'c Settings) {
    let groups = if config.policies_need_groups() {
        groups()
    } else {
        Vec::new()
    };
    config.settings_for_account(user, &groups, attributes, protocol, rhost)
}

/// The login's protocol when it is one that needs a code, or why the login is skipped for its
/// protocol alone, whoever the user is: an unknown service or a protocol that is not enabled.
/// [`decide`] asks this first; the handler asks it before looking the user up, so such a login
/// costs no database read.
pub fn enabled_protocol(
    config: &Config,
    protocol: Option<Protocol>,
) -> Result<Protocol, SkipReason> {
    match protocol {
        None => Err(SkipReason::UnknownService),
        Some(protocol) if !config.enabled_protocols.contains(&protocol) => {
            Err(SkipReason::ProtocolNotEnabled)
        }
        Some(protocol) => Ok(protocol),
    }
}

/// Decides what a login needs. `rhost` is the remote host otpd believes (see
/// `caller::believed`), `None` for a local caller whatever it claimed. `record` and `address`
/// are what the directories found for the user (see `directory`; [`address_for`] when only
/// the record is at hand).
pub fn decide(
    config: &Config,
    login: &LoginContext,
    rhost: Option<IpAddr>,
    protocol: Option<Protocol>,
    record: Option<&UserRecord>,
    to: Destinations,
    membership: Membership<'_, impl FnOnce() -> Vec<String>>,
) -> Decision {
    let protocol = match enabled_protocol(config, protocol) {
        Ok(protocol) => protocol,
        Err(reason) => return Decision::Skip(reason),
    };
    let (profile, settings) = settings_for_account(
        config,
        &login.user,
        rhost,
        protocol,
        membership.groups,
        membership.attributes,
    );
    match settings.mode {
        Mode::Off => return Decision::Skip(SkipReason::ModeOff),
        Mode::Optional if !enrolled_for(record, protocol) => {
            return Decision::Skip(SkipReason::NotEnrolled);
        }
        // A dry run decides as `required` does; the login handler records and skips it.
        Mode::Optional | Mode::Required | Mode::Audit => {}
    }
    // A phone number reaches the user only through one of the profile's webhook channels.
    let by_phone = to.phone
        && settings
            .channels
            .iter()
            .any(|c| matches!(c, Channel::Webhook(_)));
    match (to.address.is_some() || by_phone, settings.mode) {
        (true, _) => {
            let mut settings = settings.clone();
            // The user's own language (`otpctl user set-language`) over the profile's.
            if let Some(language) = record.and_then(|r| r.language) {
                settings.language = language;
            }
            Decision::Code(Box::new(CodeNeeded {
                protocol,
                profile: profile.to_string(),
                settings,
                address: to.address,
            }))
        }
        // `required` covers everyone who has an address or a phone a channel can use; a user
        // with neither is not enrolled.
        (false, Mode::Required | Mode::Audit) => Decision::Skip(SkipReason::NoAddress),
        // The user turned codes on, so losing the address must not turn them off.
        (false, _) => Decision::NoUsableAddress,
    }
}

/// True when the user has enabled codes and opted into `protocol` (no list means all).
fn enrolled_for(record: Option<&UserRecord>, protocol: Protocol) -> bool {
    record.is_some_and(|r| {
        r.enabled
            && r.protocols
                .as_ref()
                .is_none_or(|list| list.iter().any(|p| p == protocol.as_str()))
    })
}

/// The user's address from otpd's user table, then the directory template, without the LDAP
/// sources (they need a network lookup; logins and self-service codes ask them through
/// `directory::look_up_all`). For otpctl's views and imports only.
pub fn address_for(
    config: &Config,
    user: &str,
    record: Option<&UserRecord>,
) -> Option<EmailAddress> {
    let from_table = record
        .and_then(|r| r.email.as_deref())
        .and_then(|e| EmailAddress::parse(e).ok());
    from_table.or_else(|| {
        config
            .directory
            .email_template
            .as_ref()
            .and_then(|t| t.address_for(user))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::config;

    fn login(user: &str, service: &str) -> LoginContext {
        LoginContext {
            user: user.into(),
            service: service.into(),
            rhost: None,
            tty: None,
            protocol: None,
        }
    }

    fn enrolled(email: Option<&str>, protocols: Option<Vec<&str>>) -> UserRecord {
        UserRecord {
            name: "alice".into(),
            email: email.map(String::from),
            enabled: true,
            protocols: protocols.map(|v| v.into_iter().map(String::from).collect()),
            language: None,
            phone: None,
        }
    }

    fn decide_for(config: &Config, login: &LoginContext, record: Option<&UserRecord>) -> Decision {
        let protocol = login_protocol(config, login).unwrap();
        let address = address_for(config, &login.user, record);
        decide(
            config,
            login,
            None,
            protocol,
            record,
            Destinations {
                address,
                phone: false,
            },
            Membership {
                groups: Vec::new,
                attributes: &Attributes::new(),
            },
        )
    }

    #[test]
    fn unknown_service_is_skipped_without_default_protocol() {
        let c = config("");
        let d = decide_for(&c, &login("alice", "mystery"), None);
        assert!(matches!(d, Decision::Skip(SkipReason::UnknownService)));
    }

    #[test]
    fn unknown_service_uses_default_protocol_when_set() {
        let c = config(
            "[daemon]\ndefault_protocol = \"ssh\"\n[defaults]\nmode = \"required\"\n[directory]\nemail_template = \"{user}@example.com\"",
        );
        let d = decide_for(&c, &login("alice", "mystery"), None);
        assert!(matches!(d, Decision::Code(ref n) if n.protocol == Protocol::Ssh));
    }

    #[test]
    fn disabled_protocol_is_skipped() {
        let c = config(
            "[protocols]\nenabled = [\"ssh\"]\n[defaults]\nmode = \"required\"\n[directory]\nemail_template = \"{user}@example.com\"",
        );
        let d = decide_for(&c, &login("alice", "vsftpd"), None);
        assert!(matches!(d, Decision::Skip(SkipReason::ProtocolNotEnabled)));
        let d = decide_for(&c, &login("alice", "sshd"), None);
        assert!(matches!(d, Decision::Code(_)));
    }

    #[test]
    fn module_protocol_argument_overrides_the_service_map() {
        let c = config(
            "[protocols]\nenabled = [\"sftp\"]\n[defaults]\nmode = \"required\"\n[directory]\nemail_template = \"{user}@example.com\"",
        );
        let mut l = login("alice", "sshd");
        l.protocol = Some("sftp".into());
        assert!(matches!(decide_for(&c, &l, None), Decision::Code(_)));
        l.protocol = Some("shh".into());
        assert!(login_protocol(&c, &l).is_err());
    }

    #[test]
    fn optional_mode_asks_only_enrolled_users_for_their_protocols() {
        let c = config("");
        let l = login("alice", "sshd");
        assert!(matches!(
            decide_for(&c, &l, None),
            Decision::Skip(SkipReason::NotEnrolled)
        ));
        let all = enrolled(Some("alice@example.com"), None);
        assert!(matches!(decide_for(&c, &l, Some(&all)), Decision::Code(_)));
        let ftp_only = enrolled(Some("alice@example.com"), Some(vec!["ftp"]));
        assert!(matches!(
            decide_for(&c, &l, Some(&ftp_only)),
            Decision::Skip(SkipReason::NotEnrolled)
        ));
        let mut off = all.clone();
        off.enabled = false;
        assert!(matches!(
            decide_for(&c, &l, Some(&off)),
            Decision::Skip(SkipReason::NotEnrolled)
        ));
    }

    #[test]
    fn enrolled_user_without_address_fails_closed() {
        let c = config("");
        let record = enrolled(None, None);
        assert!(matches!(
            decide_for(&c, &login("alice", "sshd"), Some(&record)),
            Decision::NoUsableAddress
        ));
    }

    #[test]
    fn required_mode_without_any_address_skips() {
        let c = config("[defaults]\nmode = \"required\"");
        assert!(matches!(
            decide_for(&c, &login("alice", "sshd"), None),
            Decision::Skip(SkipReason::NoAddress)
        ));
    }

    #[test]
    fn table_address_wins_over_template() {
        let c = config(
            "[defaults]\nmode = \"required\"\n[directory]\nemail_template = \"{user}@example.com\"",
        );
        let record = enrolled(Some("alice@corp.example"), None);
        match decide_for(&c, &login("alice", "sshd"), Some(&record)) {
            Decision::Code(n) => assert_eq!(n.addresses(), ["alice@corp.example"]),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn mode_off_profile_skips_matching_users() {
        let c = config(
            "[defaults]\nmode = \"required\"\n[directory]\nemail_template = \"{user}@example.com\"\n[profiles.robots]\nmode = \"off\"\n[[policies]]\nmatch_user = \"bot-*\"\nprofile = \"robots\"",
        );
        assert!(matches!(
            decide_for(&c, &login("bot-1", "sshd"), None),
            Decision::Skip(SkipReason::ModeOff)
        ));
        assert!(matches!(
            decide_for(&c, &login("alice", "sshd"), None),
            Decision::Code(_)
        ));
    }

    /// A user with no address but a phone number: what `decide` makes of them under `config`.
    fn phone_only(config: &Config, record: Option<&UserRecord>) -> Decision {
        decide(
            config,
            &login("alice", "sshd"),
            None,
            Some(Protocol::Ssh),
            record,
            Destinations {
                address: None,
                phone: true,
            },
            Membership {
                groups: Vec::new,
                attributes: &Attributes::new(),
            },
        )
    }

    #[test]
    fn a_phone_a_profiles_webhook_channel_can_use_makes_the_user_reachable() {
        let webhook = "[[channels.webhook]]\nname = \"sms\"\nendpoints = [\"https://gw.example/{to}\"]\nbody = \"{\\\"t\\\": \\\"{code}\\\"}\"\nbody_format = \"json\"\n";
        let required = config(&format!(
            "[defaults]\nmode = \"required\"\nchannels = [\"sms\", \"email\"]\n{webhook}"
        ));
        let Decision::Code(needed) = phone_only(&required, None) else {
            panic!("a phone-only user must be asked for a code");
        };
        assert_eq!(needed.address, None);
        // Without a webhook channel in the profile the phone reaches nobody: as before.
        let mail_only = config("[defaults]\nmode = \"required\"\n");
        assert!(matches!(
            phone_only(&mail_only, None),
            Decision::Skip(SkipReason::NoAddress)
        ));
        let optional = config(&format!("[defaults]\nchannels = [\"sms\"]\n{webhook}"));
        let enrolled = enrolled(None, None);
        assert!(matches!(
            phone_only(&optional, Some(&enrolled)),
            Decision::Code(_)
        ));
    }

    #[test]
    fn a_trusted_network_turns_codes_off_only_for_a_believed_rhost_inside_it() {
        let c = config(
            "[defaults]\nmode = \"required\"\n[directory]\nemail_template = \"{user}@example.com\"\n[profiles.mgmt]\nmode = \"off\"\n[[policies]]\nmatch_rhost = [\"10.0.0.0/8\"]\nprofile = \"mgmt\"",
        );
        let l = login("alice", "sshd");
        let from = |rhost: Option<&str>| {
            decide(
                &c,
                &l,
                rhost.map(|r| r.parse().unwrap()),
                Some(Protocol::Ssh),
                None,
                Destinations {
                    address: address_for(&c, "alice", None),
                    phone: false,
                },
                Membership {
                    groups: Vec::new,
                    attributes: &Attributes::new(),
                },
            )
        };
        assert!(matches!(
            from(Some("10.1.2.3")),
            Decision::Skip(SkipReason::ModeOff)
        ));
        assert!(matches!(from(Some("192.0.2.1")), Decision::Code(_)));
        assert!(matches!(from(None), Decision::Code(_)));
    }
}
