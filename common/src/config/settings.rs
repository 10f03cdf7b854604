//! `[defaults]` and `[profiles.NAME]`: how codes behave for the users a policy selects.

use std::fmt;
use std::time::Duration;

use super::channels::{self, Channel};
use super::check::{self, MINUTE, SECOND};
use super::error::Invalid;
use super::language::Language;
use super::mail::MessageOverrides;
use super::notifications::{self, DEFAULT_NEW_ADDRESS_DAYS, NoticeKind};
use super::raw::{RawSettings, Text};

/// Whether a login needs a code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Never ask for a code.
    Off,
    /// Ask only users who turned codes on for themselves.
    Optional,
    /// Ask every user who has an address.
    Required,
    /// Dry run for a rollout: decide as `Required` would, record `would_ask` in the audit and
    /// the log, but send nothing and let the login pass the code step (skip).
    Audit,
}

impl Mode {
    /// The name used in the config and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Off => "off",
            Mode::Optional => "optional",
            Mode::Required => "required",
            Mode::Audit => "audit",
        }
    }

    fn from_raw(value: &Text) -> Result<Mode, Invalid> {
        match value.get_ref().as_str() {
            "off" => Ok(Mode::Off),
            "optional" => Ok(Mode::Optional),
            "required" => Ok(Mode::Required),
            "audit" => Ok(Mode::Audit),
            other => Err(Invalid::new(
                value.span(),
                format!(
                    "mode must be \"off\", \"optional\", \"required\" or \"audit\", got {other:?}"
                ),
            )),
        }
    }
}

/// What a login gets when every LDAP server is down and the user's cached answer is past its
/// TTL (`directory_down`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum DirectoryDown {
    /// The login is unavailable (fail closed): the default.
    #[default]
    Unavailable,
    /// The directory's last known answer about the user serves, however old; the audit row of
    /// the code says so.
    LastKnown,
}

impl DirectoryDown {
    fn from_raw(value: &Text) -> Result<DirectoryDown, Invalid> {
        match value.get_ref().as_str() {
            "unavailable" => Ok(DirectoryDown::Unavailable),
            "last_known" => Ok(DirectoryDown::LastKnown),
            other => Err(Invalid::new(
                value.span(),
                format!("directory_down must be \"unavailable\" or \"last_known\", got {other:?}"),
            )),
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The rules for issuing and checking codes. Every value is within its documented range,
/// `max_sends_per_day >= max_sends_per_hour` and `max_host_failures >= max_user_failures`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Whether a code is needed at all.
    pub mode: Mode,
    /// Digits in a code, 6 to 10.
    pub code_length: u8,
    /// How long a code stays valid after it is mailed, 1 to 60 minutes.
    pub valid: Duration,
    /// Wrong answers allowed per code (1 to 10) before it is thrown away.
    pub max_attempts: u32,
    /// How long a login reuses the outstanding code instead of mailing a new one (0 to 3600
    /// seconds); stops one user flooding their own mailbox by retrying.
    pub resend_cooldown: Duration,
    /// Codes mailed per user per hour, 1 to 1000.
    pub max_sends_per_hour: u32,
    /// Codes mailed per user per day, 1 to 10000 and at least `max_sends_per_hour`.
    pub max_sends_per_day: u32,
    /// Consecutive wrong answers per user (1 to 1000) before the user is locked out.
    pub max_user_failures: u32,
    /// Consecutive wrong answers from one remote IP address (1 to 10000, and at least
    /// `max_user_failures`) before it is locked out. Many users share an address (an office
    /// behind NAT), so a host lock must take many users' typos or one guesser trying many
    /// accounts, never one user's lockout: one user's typos lock only that user.
    pub max_host_failures: u32,
    /// How long a lockout lasts, 1 to 1440 minutes.
    pub lockout: Duration,
    /// Single-secret protocols (FTP, HTTP, WebDAV): how long a verified `password || code`
    /// keeps working for the same user, service and remote host (0 to 3600 seconds; 0: never),
    /// because WebDAV clients resend the same credentials with every request.
    pub reuse_window: Duration,
    /// Whether users may turn the code off for themselves (`otpctl disable`); `false` leaves
    /// that to admins, like a hidden "Deactivate" button.
    pub allow_user_disable: bool,
    /// The code mail's subject and bodies for these users, over `[mail]`'s.
    pub message: MessageOverrides,
    /// The language of the texts a login shows these users (prompts, refusals).
    pub language: Language,
    /// When the LDAP servers are all down and the cached answer is old: unavailable, or the
    /// last known answer.
    pub directory_down: DirectoryDown,
    /// The channels a code may go by, in order: the first the user has an address for is
    /// used, the next on failure. Never empty; each webhook is a `[[channels.webhook]]`.
    pub channels: Vec<Channel>,
    /// The notifications these users get (every kind unless `notify` says otherwise).
    pub notify: Vec<NoticeKind>,
    /// How many days a remote address a user logged in from stays known (1 to 365): a
    /// successful login from any other address tells the user (`new_address`).
    pub new_address_days: u32,
}

impl Default for Settings {
    /// The built-in `[defaults]`, used for every key the file leaves out.
    fn default() -> Settings {
        Settings {
            mode: Mode::Optional,
            code_length: 6,
            valid: MINUTE * 10,
            max_attempts: 3,
            resend_cooldown: SECOND * 60,
            max_sends_per_hour: 5,
            max_sends_per_day: 20,
            max_user_failures: 20,
            // Five users' worth of lockouts: well above one user's, so one user locks only
            // themselves, and still low enough to stop one address guessing across accounts.
            max_host_failures: 100,
            lockout: MINUTE * 15,
            reuse_window: SECOND * 300,
            allow_user_disable: true,
            message: MessageOverrides::default(),
            language: Language::English,
            directory_down: DirectoryDown::Unavailable,
            channels: vec![Channel::Email],
            notify: NoticeKind::ALL.to_vec(),
            new_address_days: DEFAULT_NEW_ADDRESS_DAYS,
        }
    }
}

impl Settings {
    /// `self` with the keys set in `raw` replaced: how `[defaults]` applies over the built-in
    /// values and a profile over `[defaults]`.
    pub(super) fn overlay(&self, raw: &RawSettings) -> Result<Settings, Invalid> {
        let mut s = self.clone();
        if let Some(v) = &raw.mode {
            s.mode = Mode::from_raw(v)?;
        }
        if let Some(v) = &raw.code_length {
            s.code_length = check::number("code_length", v, 6, 10)?;
        }
        if let Some(v) = &raw.valid_minutes {
            s.valid = check::duration("valid_minutes", v, 1, 60, MINUTE)?;
        }
        if let Some(v) = &raw.max_attempts {
            s.max_attempts = check::cap("max_attempts", v, 1, 10)?;
        }
        if let Some(v) = &raw.resend_cooldown_seconds {
            s.resend_cooldown = check::duration("resend_cooldown_seconds", v, 0, 3600, SECOND)?;
        }
        if let Some(v) = &raw.max_sends_per_hour {
            s.max_sends_per_hour = check::cap("max_sends_per_hour", v, 1, 1000)?;
        }
        if let Some(v) = &raw.max_sends_per_day {
            s.max_sends_per_day = check::cap("max_sends_per_day", v, 1, 10_000)?;
        }
        if let Some(v) = &raw.max_user_failures {
            s.max_user_failures = check::cap("max_user_failures", v, 1, 1000)?;
        }
        if let Some(v) = &raw.max_host_failures {
            s.max_host_failures = check::cap("max_host_failures", v, 1, 10_000)?;
        }
        if let Some(v) = &raw.lockout_minutes {
            s.lockout = check::duration("lockout_minutes", v, 1, 1440, MINUTE)?;
        }
        if let Some(v) = &raw.reuse_window_seconds {
            s.reuse_window = check::duration("reuse_window_seconds", v, 0, 3600, SECOND)?;
        }
        if let Some(v) = raw.allow_user_disable {
            s.allow_user_disable = v;
        }
        if let Some(v) = &raw.language {
            s.language = Language::from_raw(v)?;
        }
        if let Some(v) = &raw.directory_down {
            s.directory_down = DirectoryDown::from_raw(v)?;
        }
        if let Some(v) = &raw.channels {
            s.channels = channels::channel_list(v)?;
        }
        if let Some(v) = &raw.notify {
            s.notify = notifications::kinds("notify", v, &NoticeKind::ALL)?;
        }
        if let Some(v) = &raw.new_address_days {
            s.new_address_days = check::cap("new_address_days", v, 1, 365)?;
        }
        s.message.overlay(raw)?;
        if s.max_sends_per_day < s.max_sends_per_hour {
            // `self` already satisfied this, so one of the two keys is set here: point at it.
            let span = raw
                .max_sends_per_day
                .as_ref()
                .or(raw.max_sends_per_hour.as_ref())
                .map(|v| v.span())
                .unwrap_or_default();
            return Err(Invalid::new(
                span,
                format!(
                    "max_sends_per_day ({}) must be at least max_sends_per_hour ({})",
                    s.max_sends_per_day, s.max_sends_per_hour
                ),
            ));
        }
        if s.max_host_failures < s.max_user_failures {
            // As above: one of the two keys is set here.
            let span = raw
                .max_host_failures
                .as_ref()
                .or(raw.max_user_failures.as_ref())
                .map(|v| v.span())
                .unwrap_or_default();
            return Err(Invalid::new(
                span,
                format!(
                    "max_host_failures ({}) must be at least max_user_failures ({}): otherwise one user's wrong codes lock out everyone behind the same address",
                    s.max_host_failures, s.max_user_failures
                ),
            ));
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str) -> RawSettings {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn built_in_defaults_match_the_documentation() {
        let s = Settings::default();
        assert_eq!(s.mode, Mode::Optional);
        assert_eq!(s.code_length, 6);
        assert_eq!(s.valid, Duration::from_secs(600));
        assert_eq!(s.max_attempts, 3);
        assert_eq!(s.resend_cooldown, Duration::from_secs(60));
        assert_eq!((s.max_sends_per_hour, s.max_sends_per_day), (5, 20));
        assert_eq!((s.max_user_failures, s.max_host_failures), (20, 100));
        assert_eq!(s.lockout, Duration::from_secs(900));
    }

    #[test]
    fn overlay_replaces_only_the_keys_given() {
        let s = Settings::default()
            .overlay(&raw(
                "mode = \"required\"\nvalid_minutes = 5\nresend_cooldown_seconds = 0",
            ))
            .unwrap();
        assert_eq!(s.mode, Mode::Required);
        assert_eq!(s.valid, Duration::from_secs(300));
        assert_eq!(s.resend_cooldown, Duration::ZERO);
        assert_eq!(s.max_attempts, 3);
        assert_eq!(s.lockout, Duration::from_secs(900));
    }

    #[test]
    fn a_language_is_one_otpd_has_texts_in() {
        let s = Settings::default()
            .overlay(&raw("language = \"de\""))
            .unwrap();
        assert_eq!(s.language, Language::German);
        let e = Settings::default()
            .overlay(&raw("language = \"pt\""))
            .unwrap_err();
        assert_eq!(
            e.message,
            "language must be one of en, de, fr, es, tr, ja, got \"pt\""
        );
    }

    #[test]
    fn directory_down_is_unavailable_unless_last_known_is_chosen() {
        assert_eq!(
            Settings::default().directory_down,
            DirectoryDown::Unavailable
        );
        let s = Settings::default()
            .overlay(&raw("directory_down = \"last_known\""))
            .unwrap();
        assert_eq!(s.directory_down, DirectoryDown::LastKnown);
        assert!(
            Settings::default()
                .overlay(&raw("directory_down = \"skip\""))
                .is_err()
        );
    }

    #[test]
    fn an_unknown_mode_lists_the_modes() {
        let e = Settings::default()
            .overlay(&raw("mode = \"on\""))
            .unwrap_err();
        assert_eq!(
            e.message,
            "mode must be \"off\", \"optional\", \"required\" or \"audit\", got \"on\""
        );
    }

    #[test]
    fn every_range_is_enforced_at_both_ends() {
        // The two send caps are tested with the other one out of the way of `day >= hour`.
        let cases = [
            ("code_length", 6, 10, ""),
            ("valid_minutes", 1, 60, ""),
            ("max_attempts", 1, 10, ""),
            ("resend_cooldown_seconds", 0, 3600, ""),
            ("max_sends_per_hour", 1, 1000, "max_sends_per_day = 10000"),
            ("max_sends_per_day", 1, 10_000, "max_sends_per_hour = 1"),
            ("max_user_failures", 1, 1000, "max_host_failures = 10000"),
            ("max_host_failures", 1, 10_000, "max_user_failures = 1"),
            ("lockout_minutes", 1, 1440, ""),
        ];
        let base = Settings::default();
        for (key, min, max, other) in cases {
            let with = |value: i64| base.overlay(&raw(&format!("{other}\n{key} = {value}")));
            assert!(with(min).is_ok(), "{key} = {min}");
            assert!(with(max).is_ok(), "{key} = {max}");
            let low = with(min - 1).unwrap_err().message;
            assert!(
                low.starts_with(&format!("{key} must be between {min} and {max}")),
                "{low}"
            );
            let high = with(max + 1).unwrap_err().message;
            assert!(
                high.starts_with(&format!("{key} must be between {min} and {max}")),
                "{high}"
            );
        }
    }

    #[test]
    fn day_cap_below_hour_cap_is_refused_even_when_inherited() {
        let e = Settings::default()
            .overlay(&raw("max_sends_per_day = 4"))
            .unwrap_err();
        assert_eq!(
            e.message,
            "max_sends_per_day (4) must be at least max_sends_per_hour (5)"
        );
        let e = Settings::default()
            .overlay(&raw("max_sends_per_hour = 30"))
            .unwrap_err();
        assert_eq!(e.span, 21..23);
    }

    #[test]
    fn a_host_limit_below_the_user_limit_is_refused_even_when_inherited() {
        let e = Settings::default()
            .overlay(&raw("max_host_failures = 19"))
            .unwrap_err();
        assert_eq!(
            e.message,
            "max_host_failures (19) must be at least max_user_failures (20): otherwise one user's wrong codes lock out everyone behind the same address"
        );
        let e = Settings::default()
            .overlay(&raw("max_user_failures = 101"))
            .unwrap_err();
        assert_eq!(e.span, 20..23);
        assert!(
            Settings::default()
                .overlay(&raw("max_user_failures = 100"))
                .is_ok()
        );
    }
}
