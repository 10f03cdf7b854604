//! The configuration file (`/etc/otpd/otpd.toml`): schema, parsing and validation.
//!
//! Parse, don't validate: the file is read into the raw serde structs of `raw` (which refuse
//! unknown keys), then turned, section by section, into one [`Config`] whose fields hold only
//! checked values: durations instead of counts of minutes, an [`EmailAddress`] instead of a
//! string, compiled matchers instead of patterns. Code that holds a `Config` never re-checks it.
//!
//! Every error says where it is, as `FILE:LINE:COLUMN: message` (see [`ConfigError`]), and what
//! would be accepted instead. Only the first error is reported. A bad file never weakens
//! anything: the daemon refuses to start, and a reload keeps the old configuration.

mod address;
mod address_template;
pub mod admin_file;
mod channels;
mod check;
mod daemon;
mod error;
mod exemption;
mod glob;
mod language;
mod ldap;
mod mail;
mod metrics;
mod named_files;
mod network;
mod notifications;
mod phone;
mod policy;
mod raw;
mod relay;
mod settings;
pub mod sms;
mod store;
pub mod webhook_template;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

pub use self::address::{AddressError, EmailAddress, MAX_ADDRESS_LEN, MAX_LOCAL_LEN};
pub use self::address_template::EmailTemplate;
pub use self::channels::{
    Channel, DEFAULT_WEBHOOK_TIMEOUT, EMAIL_CHANNEL, WebhookChannel, WebhookMethod,
};
pub use self::daemon::{
    DEFAULT_MAX_CONNECTIONS_PER_USER, DEFAULT_STATE_DIR, DaemonConfig, FairShare, TrustedCaller,
};
pub use self::error::{ConfigError, Location};
pub use self::exemption::Exemption;
pub use self::language::Language;
pub use self::ldap::{
    GroupSearch, LdapBind, LdapSource, LdapTls, LdapUrl, USER_PLACEHOLDER, escape_filter_value,
};
pub use self::mail::{
    DEFAULT_HTML, DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_MESSAGES_PER_CONNECTION,
    DEFAULT_SENDMAIL_PATH, DEFAULT_SUBJECT, DEFAULT_TEXT, DEFAULT_TOTAL_TIMEOUT, DkimSettings,
    MailConfig, MailTransport, MessageOverrides, MessageTemplate, MessageTemplates, Security,
    SmtpAuth, SmtpServer, TemplateVar,
};
pub use self::metrics::{DEFAULT_METRICS_INTERVAL, MetricsConfig};
pub use self::network::Network;
pub use self::notifications::{
    DEFAULT_NEW_ADDRESS_DAYS, NoticeKind, NoticeTexts, NotificationsConfig,
};
pub use self::phone::{PhoneNumber, mask_phone};
pub use self::policy::{Attributes, Policy};
pub use self::relay::{
    DEFAULT_RELAY_CONNECT_TIMEOUT, DEFAULT_RELAY_CONNECTIONS_PER_CLIENT,
    DEFAULT_RELAY_LISTENER_TIMEOUT, DEFAULT_RELAY_PORT, DEFAULT_RELAY_TIMEOUT, RelayClient,
    RelayConfig, RelayListenerConfig,
};
pub use self::settings::{DirectoryDown, Mode, Settings};
pub use self::store::{
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_PG_PORT, DEFAULT_POOL_SIZE, DEFAULT_STATEMENT_TIMEOUT, PgHost,
    PgTls, PostgresConfig, StoreConfig,
};
pub use crate::service::Protocol;

use self::error::Invalid;
use self::raw::{RawConfig, RawDaemon, RawDirectory, RawMetrics, RawSettings, Text};
use crate::service::DEFAULT_SERVICES;

/// The name [`Config::settings_for`] reports when no policy matched; reserved, so no profile
/// can be mistaken for the defaults in logs.
pub const DEFAULTS_PROFILE: &str = "defaults";

/// The longest PAM service name accepted in `[services]`.
const MAX_SERVICE_LEN: usize = crate::text::MAX_FIELD_LEN;

/// A whole, validated configuration. Loaded once at start and again on SIGHUP; the daemon
/// shares it behind an `Arc` and swaps it whole, so a request sees one consistent version.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from, for messages.
    pub source: PathBuf,
    /// `[daemon]`.
    pub daemon: DaemonConfig,
    /// `[protocols] enabled`: logins by other protocols never need a code. May be empty.
    pub enabled_protocols: BTreeSet<Protocol>,
    /// `[directory]`.
    pub directory: DirectoryConfig,
    /// `[defaults]` over the built-in defaults: what applies when no policy matches.
    pub defaults: Settings,
    /// `[profiles.NAME]`, each already merged over [`Config::defaults`].
    pub profiles: BTreeMap<String, Settings>,
    /// `[[policies]]` in file order; the first that matches wins.
    pub policies: Vec<Policy>,
    /// `[mail]`; on a relay (DMZ) host, which mails nothing and has no `[mail]`, an unused
    /// stand-in ([`MailConfig::unused_on_relay`]).
    pub mail: MailConfig,
    /// `[[exemptions]]`: users whose logins with a listed SSH key need no code.
    pub exemptions: Vec<Exemption>,
    /// `[[channels.webhook]]`, names unique; the profiles' `channels` name only these and
    /// `email`.
    pub webhooks: Vec<WebhookChannel>,
    /// `[metrics]`: the node_exporter textfile otpd writes its counters to, if any.
    pub metrics: MetricsConfig,
    /// `[notifications]`: the admin's address, the caps and the texts of notifications.
    pub notifications: NotificationsConfig,
    /// `[store]`: SQLite (the default) or a shared PostgreSQL database.
    pub store: StoreConfig,
    /// `[relay]`: this otpd forwards every login request to a main otpd and keeps no state.
    pub relay: Option<RelayConfig>,
    /// `[relay_listener]`: this otpd answers the login requests DMZ hosts relay to it.
    pub relay_listener: Option<RelayListenerConfig>,
    /// PAM service name to protocol: the built-in map with `[services]` over it.
    services: BTreeMap<String, Protocol>,
}

/// `[directory]`: where addresses come from for users otpd's own table does not know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryConfig {
    /// `email_template`; `None` means only the user table gives addresses.
    pub email_template: Option<EmailTemplate>,
    /// `[[directory.ldap]]` in file order: asked after otpd's table, before the template.
    pub ldap: Vec<LdapSource>,
}

impl Config {
    /// The most audit rows otpd keeps, deleting the oldest beyond it; `None`: no cap, only
    /// `audit_retention_days`. Unset, a SQLite store has [`daemon::DEFAULT_AUDIT_MAX_ROWS`]:
    /// the cap keeps a local flood of events from filling the host's disk. A PostgreSQL store
    /// has none: its audit table is the whole fleet's, and every host trims it to its own cap,
    /// so a per-host default would delete the fleet's trail within hours (bench/README.md,
    /// the paper estimate). Set there, the cap is the fleet's, and otpd takes it as given.
    pub fn audit_row_cap(&self) -> Option<u64> {
        match (&self.store, self.daemon.audit_max_rows) {
            (_, Some(rows)) => Some(rows),
            (StoreConfig::Sqlite, None) => Some(daemon::DEFAULT_AUDIT_MAX_ROWS),
            (StoreConfig::Postgresql(_), None) => None,
        }
    }

    /// Reads and checks the file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::unreadable(path, &e))?;
        Config::parse(&text, path)
    }

    /// [`Config::load`], and then checks the files the mailer will read (`password_file`,
    /// `ca_file`, the DKIM `key_file`) as the daemon would: for `otpd` itself (start, reload,
    /// `--check-config`), which must read them, unlike `otpctl` run by an ordinary user.
    pub fn load_with_files(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::unreadable(path, &e))?;
        let config = Config::parse(&text, path)?;
        let raw: RawConfig =
            toml::from_str(&text).map_err(|e| ConfigError::at(path, &text, Invalid::from(e)))?;
        named_files::check(&raw).map_err(|invalid| ConfigError::at(path, &text, invalid))?;
        Ok(config)
    }

    /// Checks `text`, the contents of the file at `path` (used in messages only).
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        Config::from_text(text, path).map_err(|invalid| ConfigError::at(path, text, invalid))
    }

    fn from_text(text: &str, path: &Path) -> Result<Config, Invalid> {
        let raw: RawConfig = toml::from_str(text)?;
        if raw.relay.is_some() {
            // First: a relay's [[directory.ldap]] is wrong for being there, whatever is in it.
            relay::refuse_beside_relay(&raw)?;
        }
        let daemon = DaemonConfig::from_raw(raw.daemon.as_ref().unwrap_or(&RawDaemon::default()))?;
        let enabled_protocols = match raw.protocols.as_ref().and_then(|p| p.enabled.as_ref()) {
            Some(list) => list.iter().map(check::protocol).collect::<Result<_, _>>()?,
            None => Protocol::DEFAULT_ENABLED.into_iter().collect(),
        };
        let services = services(raw.services.as_ref())?;
        let email_template = raw
            .directory
            .as_ref()
            .and_then(|d| d.email_template.as_ref())
            .map(EmailTemplate::from_raw)
            .transpose()?;
        let ldap = ldap_sources(raw.directory.as_ref())?;
        if ldap.is_empty() {
            // Only LDAP sources give attributes: such a policy could never match.
            let unmatched = raw.policies.iter().flatten();
            if let Some(table) = unmatched
                .filter_map(|p| {
                    let p = p.get_ref();
                    p.match_attribute
                        .as_ref()
                        .or(p.match_attribute_regex.as_ref())
                })
                .next()
            {
                return Err(Invalid::new(
                    table.span(),
                    "match_attribute needs a [[directory.ldap]] source: only LDAP sources give attributes, so this policy could never match",
                ));
            }
        }
        let webhooks = channels::webhooks(raw.channels.as_ref().and_then(|c| c.webhook.as_ref()))?;
        let every_settings = raw
            .defaults
            .iter()
            .chain(raw.profiles.iter().flat_map(|p| p.values()));
        for list in every_settings.filter_map(|s| s.channels.as_ref()) {
            channels::check_known(list, &webhooks)?;
        }
        let defaults = Settings::default()
            .overlay(raw.defaults.as_ref().unwrap_or(&RawSettings::default()))?;
        let profiles = profiles(raw.profiles.as_ref(), &defaults)?;
        let policies = raw
            .policies
            .iter()
            .flatten()
            .map(|p| Policy::from_raw(p, &profiles))
            .collect::<Result<_, _>>()?;
        let relay = raw.relay.as_ref().map(RelayConfig::from_raw).transpose()?;
        let relay_listener = raw
            .relay_listener
            .as_ref()
            .map(RelayListenerConfig::from_raw)
            .transpose()?;
        let mail = match (&raw.mail, &relay) {
            (_, Some(_)) => MailConfig::unused_on_relay(),
            (Some(mail), None) => MailConfig::from_raw(mail, text)?,
            (None, None) => {
                return Err(Invalid::new(
                    0..0,
                    "the [mail] section is required: it needs at least from = \"ADDRESS\", the sender of code mails (or [relay], on a DMZ host that forwards logins to a main otpd)",
                ));
            }
        };
        let exemptions = raw
            .exemptions
            .iter()
            .flatten()
            .map(Exemption::from_raw)
            .collect::<Result<_, _>>()?;
        let notifications = match &raw.notifications {
            Some(n) => NotificationsConfig::from_raw(n, text)?,
            None => NotificationsConfig::default(),
        };
        let store = match &raw.store {
            Some(s) => StoreConfig::from_raw(s)?,
            None => StoreConfig::Sqlite,
        };
        let metrics =
            MetricsConfig::from_raw(raw.metrics.as_ref().unwrap_or(&RawMetrics::default()))?;
        Ok(Config {
            source: path.to_path_buf(),
            daemon,
            enabled_protocols,
            directory: DirectoryConfig {
                email_template,
                ldap,
            },
            defaults,
            profiles,
            policies,
            mail,
            exemptions,
            webhooks,
            metrics,
            notifications,
            store,
            relay,
            relay_listener,
            services,
        })
    }

    /// The protocol a PAM service speaks: `[services]` over the built-in map, then
    /// `[daemon] default_protocol`, else `None` (the login is not one otpd protects).
    pub fn protocol_for_service(&self, service: &str) -> Option<Protocol> {
        self.services
            .get(service)
            .copied()
            .or(self.daemon.default_protocol)
    }

    /// The protocol `[services]` or the built-in map names for a PAM service, without `[daemon]
    /// default_protocol`: `otpctl doctor` asks this of every file in pam.d, and most of those
    /// (common-auth, other) are stacks that services include, not services.
    pub fn mapped_protocol(&self, service: &str) -> Option<Protocol> {
        self.services.get(service).copied()
    }

    /// The first fingerprint in `fingerprints` that an `[[exemptions]]` entry lists for `user`.
    pub fn exempting_fingerprint<'f>(
        &self,
        user: &str,
        fingerprints: &'f [String],
    ) -> Option<&'f str> {
        let listed = |fp: &&String| {
            self.exemptions
                .iter()
                .any(|e| e.user == user && e.ssh_key_fingerprints.contains(fp.as_str()))
        };
        fingerprints.iter().find(listed).map(String::as_str)
    }

    /// True when some policy matches on groups, so callers look groups up only when needed.
    pub fn policies_need_groups(&self) -> bool {
        self.policies.iter().any(Policy::needs_groups)
    }

    /// True when some policy matches directory attributes, which only LDAP sources give.
    pub fn policies_need_attributes(&self) -> bool {
        self.policies
            .iter()
            .any(|p| p.attribute_names().next().is_some())
    }

    /// The directory attributes some policy matches (lower-case names), which LDAP lookups
    /// read along with the address.
    pub fn policy_attributes(&self) -> BTreeSet<String> {
        self.policies
            .iter()
            .flat_map(|p| p.attribute_names().map(str::to_string))
            .collect()
    }

    /// [`Config::settings_for_login`] for a user whose directory attributes are `attributes`,
    /// for policies with `match_attribute`.
    pub fn settings_for_account(
        &self,
        user: &str,
        groups: &[String],
        attributes: &Attributes,
        protocol: Protocol,
        rhost: Option<IpAddr>,
    ) -> (&str, &Settings) {
        self.policies
            .iter()
            .find(|p| p.matches_with_attributes(user, groups, attributes, protocol, rhost))
            .map_or((DEFAULTS_PROFILE, &self.defaults), |p| {
                (p.profile.as_str(), p.settings())
            })
    }

    /// The settings for a login: the first matching policy's profile, else the defaults.
    /// Returns the profile's name (or [`DEFAULTS_PROFILE`]) for logs and audit rows. Policies
    /// with `match_rhost` never match here; see [`Config::settings_for_login`].
    pub fn settings_for(
        &self,
        user: &str,
        groups: &[String],
        protocol: Protocol,
    ) -> (&str, &Settings) {
        self.settings_for_login(user, groups, protocol, None)
    }

    /// [`Config::settings_for`] for a login whose remote host otpd believes is `rhost` (`None`
    /// when there is none, or when the caller may not vouch for it).
    pub fn settings_for_login(
        &self,
        user: &str,
        groups: &[String],
        protocol: Protocol,
        rhost: Option<IpAddr>,
    ) -> (&str, &Settings) {
        self.settings_for_account(user, groups, &Attributes::new(), protocol, rhost)
    }
}

/// The built-in service map with `[services]` over it.
fn services(raw: Option<&BTreeMap<Text, Text>>) -> Result<BTreeMap<String, Protocol>, Invalid> {
    let mut map: BTreeMap<String, Protocol> = DEFAULT_SERVICES
        .iter()
        .map(|&(name, protocol)| (name.to_string(), protocol))
        .collect();
    for (name, protocol) in raw.into_iter().flatten() {
        let service = name.get_ref();
        let bad_name = service.is_empty()
            || service.chars().count() > MAX_SERVICE_LEN
            || service.chars().any(|c| c.is_whitespace() || c.is_control());
        if bad_name {
            return Err(Invalid::new(
                name.span(),
                format!(
                    "a PAM service name must be 1 to {MAX_SERVICE_LEN} characters without spaces or control characters, got {service:?}"
                ),
            ));
        }
        map.insert(service.clone(), check::protocol(protocol)?);
    }
    Ok(map)
}

/// Each `[[directory.ldap]]` source, with names unique so logs and audit rows tell them apart.
fn ldap_sources(raw: Option<&RawDirectory>) -> Result<Vec<LdapSource>, Invalid> {
    let mut sources: Vec<LdapSource> = Vec::new();
    for entry in raw.iter().flat_map(|d| d.ldap.iter().flatten()) {
        let (source, name_span) = LdapSource::from_raw(entry)?;
        if sources.iter().any(|s| s.name == source.name) {
            return Err(Invalid::new(
                name_span,
                format!(
                    "a second LDAP source is named {:?}; names must be unique",
                    source.name
                ),
            ));
        }
        sources.push(source);
    }
    Ok(sources)
}

/// Each `[profiles.NAME]` merged over the defaults.
fn profiles(
    raw: Option<&BTreeMap<Text, RawSettings>>,
    defaults: &Settings,
) -> Result<BTreeMap<String, Settings>, Invalid> {
    let mut out = BTreeMap::new();
    for (name, settings) in raw.into_iter().flatten() {
        let label = check::label("a profile name", name)?;
        if label == DEFAULTS_PROFILE {
            return Err(Invalid::new(
                name.span(),
                "the profile name \"defaults\" is reserved; put these keys in [defaults] instead",
            ));
        }
        out.insert(label, defaults.overlay(settings)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
