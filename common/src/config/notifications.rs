//! Notifications: the mails that tell a user (and, for some events, the admin) what happened
//! to their account. Which events tell the user is per profile (`notify`, `new_address_days`
//! in [`super::Settings`]); `[notifications]` holds what is global: the admin's address, the
//! caps that keep an attacker from turning the notices into spam, and the texts.
//!
//! The texts are templates of the code mail's kind (`{variable}` placeholders, inline or
//! `@/path`), parsed when the config loads. A notification template may not use `{code}`:
//! no notification ever carries a code.

use std::sync::Arc;

use toml::Spanned;

use super::address::EmailAddress;
use super::check;
use super::error::Invalid;
use super::mail::{MessageTemplate, TemplateKind, from_value};
use super::raw::{RawNoticeText, RawNotifications, Text};

/// What a notification tells of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NoticeKind {
    /// A successful login from a remote address not seen for the user in `new_address_days`.
    NewAddress,
    /// The user was locked out for wrong codes.
    Lockout,
    /// One of the user's recovery codes was used to log in.
    RecoveryUsed,
    /// A login of the user passed the code step under an admin's break-glass grant.
    BreakglassUsed,
    /// The user's login code was turned off (by an admin or by the user).
    FactorOff,
    /// The user's address was changed (told at the old address and the new one).
    AddressChanged,
}

impl NoticeKind {
    /// Every kind, in the order the documentation lists them.
    pub const ALL: [NoticeKind; 6] = [
        NoticeKind::NewAddress,
        NoticeKind::Lockout,
        NoticeKind::RecoveryUsed,
        NoticeKind::BreakglassUsed,
        NoticeKind::FactorOff,
        NoticeKind::AddressChanged,
    ];

    /// The kinds the admin can be told of.
    pub const FOR_ADMIN: [NoticeKind; 2] = [NoticeKind::Lockout, NoticeKind::BreakglassUsed];

    /// The name in the config, the store and the logs.
    pub fn name(self) -> &'static str {
        match self {
            NoticeKind::NewAddress => "new_address",
            NoticeKind::Lockout => "lockout",
            NoticeKind::RecoveryUsed => "recovery_used",
            NoticeKind::BreakglassUsed => "breakglass_used",
            NoticeKind::FactorOff => "factor_off",
            NoticeKind::AddressChanged => "address_changed",
        }
    }

    /// The kind of this name.
    pub fn of_name(name: &str) -> Option<NoticeKind> {
        NoticeKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The built-in subject and text.
    fn default_texts(self) -> (&'static str, &'static str) {
        match self {
            NoticeKind::NewAddress => (
                "New login to {host} from {rhost}",
                "{user} logged in to {host} ({service}) from {rhost}, an address not seen \
                 for this account lately, at {when}.\n\n\
                 If this was you, nothing needs doing. If not, tell your administrator at once: \
                 somebody has your password and your login code.\n",
            ),
            NoticeKind::Lockout => (
                "Logins of {user} to {host} are locked",
                "Too many wrong login codes were typed for {user} on {host} ({service}, from \
                 {rhost}); logins are locked {detail}.\n\n\
                 If this was not you, somebody knows your password: change it and tell your \
                 administrator.\n",
            ),
            NoticeKind::RecoveryUsed => (
                "A recovery code was used to log in to {host}",
                "A recovery code of {user} was just used to log in to {host} ({service} from \
                 {rhost}).\n\n{detail}. If this was not you, tell your administrator at once.\n",
            ),
            NoticeKind::BreakglassUsed => (
                "{user} logged in to {host} without a login code",
                "{user} logged in to {host} ({service}, from {rhost}) at {when} without a login \
                 code, under an administrator's break-glass grant ({detail}).\n\n\
                 If this was not you or your administrator, tell your administrator at once.\n",
            ),
            NoticeKind::FactorOff => (
                "The login code of {user} on {host} is off",
                "The login code that protects {user} on {host} was turned off at {when} \
                 ({detail}).\n\n\
                 From now on a password alone may be enough to log in. If you did not ask for \
                 this, tell your administrator at once.\n",
            ),
            NoticeKind::AddressChanged => (
                "The login code address of {user} on {host} changed",
                "The address that login codes for {user} on {host} go to was changed at {when} \
                 ({detail}).\n\n\
                 If you did not ask for this, tell your administrator at once: somebody may be \
                 trying to receive your login codes.\n",
            ),
        }
    }
}

/// One notification's subject and text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoticeTexts {
    /// The subject line.
    pub subject: Arc<MessageTemplate>,
    /// The text/plain body (the HTML part is this text, escaped).
    pub text: Arc<MessageTemplate>,
}

/// The most notices one user is sent per hour unless `per_user_per_hour` says otherwise.
pub const DEFAULT_PER_USER_PER_HOUR: u32 = 3;
/// The most notices the admin is sent per hour unless `admin_per_hour` says otherwise.
pub const DEFAULT_ADMIN_PER_HOUR: u32 = 20;
/// How long an address stays "seen" for a user unless a profile's `new_address_days` says
/// otherwise.
pub const DEFAULT_NEW_ADDRESS_DAYS: u32 = 30;

/// `[notifications]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationsConfig {
    /// `admin_address`: where the admin's notices go; none when unset.
    pub admin_address: Option<EmailAddress>,
    /// `admin_events`: which events the admin is told of (a subset of
    /// [`NoticeKind::FOR_ADMIN`]; both by default).
    pub admin_events: Vec<NoticeKind>,
    /// `per_user_per_hour`: the most notices queued for one user in an hour (1 to 100); more
    /// are dropped with a log line, so a flood of failures cannot flood a mailbox.
    pub per_user_per_hour: u32,
    /// `admin_per_hour`: the same cap for the admin's address (1 to 1000).
    pub admin_per_hour: u32,
    /// The texts, by [`NoticeKind::ALL`]'s order.
    texts: Vec<NoticeTexts>,
}

impl Default for NotificationsConfig {
    fn default() -> NotificationsConfig {
        NotificationsConfig {
            admin_address: None,
            admin_events: NoticeKind::FOR_ADMIN.to_vec(),
            per_user_per_hour: DEFAULT_PER_USER_PER_HOUR,
            admin_per_hour: DEFAULT_ADMIN_PER_HOUR,
            texts: NoticeKind::ALL.map(builtin_texts).to_vec(),
        }
    }
}

fn builtin_texts(kind: NoticeKind) -> NoticeTexts {
    let (subject, text) = kind.default_texts();
    NoticeTexts {
        subject: Arc::new(MessageTemplate::builtin(
            subject,
            TemplateKind::NoticeSubject,
        )),
        text: Arc::new(MessageTemplate::builtin(text, TemplateKind::NoticeText)),
    }
}

impl NotificationsConfig {
    /// The subject and text of `kind`'s notices.
    pub fn texts(&self, kind: NoticeKind) -> NoticeTexts {
        let at = NoticeKind::ALL.iter().position(|&k| k == kind);
        at.and_then(|i| self.texts.get(i).cloned())
            .unwrap_or_else(|| builtin_texts(kind))
    }

    /// Whether the admin is told of `kind`, and where.
    pub fn admin_for(&self, kind: NoticeKind) -> Option<&EmailAddress> {
        self.admin_address
            .as_ref()
            .filter(|_| self.admin_events.contains(&kind))
    }

    /// Checks `[notifications]`; a missing section is the defaults.
    pub(super) fn from_raw(
        raw: &RawNotifications,
        config_text: &str,
    ) -> Result<NotificationsConfig, Invalid> {
        let mut out = NotificationsConfig::default();
        if let Some(value) = &raw.admin_address {
            let address = EmailAddress::parse(value.get_ref()).map_err(|e| {
                Invalid::new(value.span(), format!("admin_address is not usable: {e}"))
            })?;
            out.admin_address = Some(address);
        }
        if let Some(list) = &raw.admin_events {
            out.admin_events = kinds("admin_events", list, &NoticeKind::FOR_ADMIN)?;
        }
        if let Some(v) = &raw.per_user_per_hour {
            out.per_user_per_hour = check::cap("per_user_per_hour", v, 1, 100)?;
        }
        if let Some(v) = &raw.admin_per_hour {
            out.admin_per_hour = check::cap("admin_per_hour", v, 1, 1000)?;
        }
        let written = [
            &raw.new_address,
            &raw.lockout,
            &raw.recovery_used,
            &raw.breakglass_used,
            &raw.factor_off,
            &raw.address_changed,
        ];
        for (slot, raw_texts) in out.texts.iter_mut().zip(written) {
            if let Some(raw_texts) = raw_texts {
                overlay(slot, raw_texts, config_text)?;
            }
        }
        Ok(out)
    }
}

/// A kind's `subject` and `text_template` over its built-in ones.
fn overlay(slot: &mut NoticeTexts, raw: &RawNoticeText, config_text: &str) -> Result<(), Invalid> {
    if let Some(v) = &raw.subject {
        slot.subject = Arc::new(from_value(
            v,
            TemplateKind::NoticeSubject,
            Some(config_text),
        )?);
    }
    if let Some(v) = &raw.text_template {
        slot.text = Arc::new(from_value(v, TemplateKind::NoticeText, Some(config_text))?);
    }
    Ok(())
}

/// A list of notification kinds, each among `allowed` and none twice. Empty is allowed: it
/// turns them all off.
pub(super) fn kinds(
    key: &str,
    list: &Spanned<Vec<Text>>,
    allowed: &[NoticeKind],
) -> Result<Vec<NoticeKind>, Invalid> {
    let mut out = Vec::new();
    for name in list.get_ref() {
        let kind = NoticeKind::of_name(name.get_ref()).filter(|k| allowed.contains(k));
        let Some(kind) = kind else {
            let names: Vec<&str> = allowed.iter().map(|k| k.name()).collect();
            return Err(Invalid::new(
                name.span(),
                format!(
                    "{key} lists {:?}, which is not one of {}",
                    name.get_ref(),
                    names.join(", ")
                ),
            ));
        };
        if out.contains(&kind) {
            return Err(Invalid::new(
                name.span(),
                format!("{key} lists {:?} twice", kind.name()),
            ));
        }
        out.push(kind);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use common_test::load;

    mod common_test {
        use crate::config::{Config, ConfigError};

        /// `extra` appended to a minimal valid config, loaded.
        pub fn load(extra: &str) -> Result<Config, ConfigError> {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("otpd.toml");
            std::fs::write(
                &path,
                format!("[mail]\nfrom = \"otp@example.com\"\n{extra}"),
            )
            .unwrap();
            Config::load(&path)
        }
    }

    #[test]
    fn without_the_section_every_user_notice_is_on_and_the_admin_gets_none() {
        let config = load("").unwrap();
        assert_eq!(config.notifications, NotificationsConfig::default());
        assert_eq!(config.notifications.admin_for(NoticeKind::Lockout), None);
        assert_eq!(config.defaults.notify, NoticeKind::ALL.to_vec());
        assert_eq!(config.defaults.new_address_days, DEFAULT_NEW_ADDRESS_DAYS);
    }

    #[test]
    fn the_built_in_texts_parse_and_none_holds_the_code() {
        for kind in NoticeKind::ALL {
            let (subject, text) = kind.default_texts();
            for (written, part) in [
                (subject, TemplateKind::NoticeSubject),
                (text, TemplateKind::NoticeText),
            ] {
                let parsed = MessageTemplate::parse(written, part);
                assert!(parsed.is_ok(), "{kind:?}: {:?}", parsed.err());
            }
        }
    }

    #[test]
    fn the_admin_gets_lockouts_and_break_glass_at_its_address_unless_told_otherwise() {
        let config = load(
            "[notifications]\nadmin_address = \"sec@example.com\"\nadmin_events = [\"lockout\"]\n",
        )
        .unwrap();
        let n = &config.notifications;
        assert_eq!(
            n.admin_for(NoticeKind::Lockout).map(|a| a.as_str()),
            Some("sec@example.com")
        );
        assert_eq!(n.admin_for(NoticeKind::BreakglassUsed), None);
    }

    #[test]
    fn a_template_with_the_code_is_refused_where_it_is_written() {
        let e = load("[notifications.lockout]\ntext_template = \"locked {code}\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(":4:") && e.contains("a notification never carries the code"),
            "{e}"
        );
    }

    #[test]
    fn a_profile_turns_notices_off_and_unknown_kinds_are_refused() {
        let config =
            load("[profiles.quiet]\nnotify = []\n[profiles.some]\nnotify = [\"lockout\"]\n")
                .unwrap();
        assert!(config.profiles["quiet"].notify.is_empty());
        assert_eq!(config.profiles["some"].notify, vec![NoticeKind::Lockout]);
        let e = load("[defaults]\nnotify = [\"lockouts\"]\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(":4:") && e.contains("not one of new_address"),
            "{e}"
        );
        let e = load("[notifications]\nadmin_events = [\"new_address\"]\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("not one of lockout, breakglass_used"), "{e}");
        let e = load("[notifications]\nper_user_per_hour = 0\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("per_user_per_hour"), "{e}");
    }

    #[test]
    fn a_custom_text_replaces_the_built_in_one_of_its_kind_only() {
        let config =
            load("[notifications.new_address]\nsubject = \"Hello {user} from {rhost}\"\n").unwrap();
        let n = &config.notifications;
        let subject = n.texts(NoticeKind::NewAddress).subject;
        assert_eq!(
            subject.render(|v| format!("<{}>", v.name())),
            "Hello <user> from <rhost>"
        );
        assert_eq!(
            n.texts(NoticeKind::Lockout),
            NotificationsConfig::default().texts(NoticeKind::Lockout)
        );
    }
}
