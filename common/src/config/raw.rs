//! The file as written: serde structs that mirror `otpd.toml` key for key.
//!
//! Every struct refuses unknown keys, so a misspelt `max_attemps` is an error instead of a
//! setting that silently keeps its default. Values are kept as plain TOML types wrapped in
//! [`Spanned`] so that the validation in the sibling modules can say exactly where a bad value
//! is; nothing here is trusted until it has been turned into the types in [`super`].

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

/// A TOML integer with its position; ranges are checked during validation.
pub(super) type Int = Spanned<i64>;
/// A TOML string with its position.
pub(super) type Text = Spanned<String>;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub daemon: Option<RawDaemon>,
    pub protocols: Option<RawProtocols>,
    pub services: Option<BTreeMap<Text, Text>>,
    pub directory: Option<RawDirectory>,
    pub defaults: Option<RawSettings>,
    pub profiles: Option<BTreeMap<Text, RawSettings>>,
    pub policies: Option<Vec<Spanned<RawPolicy>>>,
    pub mail: Option<Spanned<RawMail>>,
    pub exemptions: Option<Vec<Spanned<RawExemption>>>,
    pub channels: Option<RawChannels>,
    pub metrics: Option<RawMetrics>,
    pub notifications: Option<RawNotifications>,
    pub store: Option<Spanned<RawStore>>,
    pub relay: Option<Spanned<RawRelay>>,
    pub relay_listener: Option<Spanned<RawRelayListener>>,
}

/// `[relay]`: this otpd forwards login requests to a main otpd (a DMZ host).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRelay {
    pub upstream: Option<Text>,
    pub server_name: Option<Text>,
    pub host_name: Option<Text>,
    pub client_cert: Option<Text>,
    pub client_key: Option<Text>,
    pub ca_file: Option<Text>,
    pub connect_timeout_seconds: Option<Int>,
    pub timeout_seconds: Option<Int>,
}

/// `[relay_listener]`: this otpd answers relayed requests from DMZ hosts (the main host).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRelayListener {
    pub listen: Option<Text>,
    pub cert: Option<Text>,
    pub key: Option<Text>,
    pub client_ca: Option<Text>,
    pub max_connections_per_client: Option<Int>,
    pub timeout_seconds: Option<Int>,
    pub clients: Option<Vec<Spanned<RawRelayClient>>>,
}

/// One `[[relay_listener.clients]]` entry.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRelayClient {
    pub certificate: Option<Text>,
    pub host: Option<Text>,
}

/// `[store]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStore {
    pub backend: Option<Text>,
    pub hosts: Option<Spanned<Vec<Text>>>,
    pub dbname: Option<Text>,
    pub user: Option<Text>,
    pub password_file: Option<Text>,
    pub tls: Option<Text>,
    pub ca_file: Option<Text>,
    pub client_cert: Option<Text>,
    pub client_key: Option<Text>,
    pub pool_size: Option<Int>,
    pub connect_timeout_seconds: Option<Int>,
    pub statement_timeout_seconds: Option<Int>,
    pub behind_pooler: Option<bool>,
    pub pooler_keeps_prepared_statements: Option<Spanned<bool>>,
}

/// `[notifications]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNotifications {
    pub admin_address: Option<Text>,
    pub admin_events: Option<Spanned<Vec<Text>>>,
    pub per_user_per_hour: Option<Int>,
    pub admin_per_hour: Option<Int>,
    pub new_address: Option<RawNoticeText>,
    pub lockout: Option<RawNoticeText>,
    pub recovery_used: Option<RawNoticeText>,
    pub breakglass_used: Option<RawNoticeText>,
    pub factor_off: Option<RawNoticeText>,
    pub address_changed: Option<RawNoticeText>,
}

/// `[notifications.KIND]`: one notification's texts.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNoticeText {
    pub subject: Option<Text>,
    pub text_template: Option<Text>,
}

/// `[channels]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawChannels {
    pub webhook: Option<Vec<Spanned<RawWebhook>>>,
}

/// One `[[channels.webhook]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWebhook {
    pub name: Option<Text>,
    pub display_name: Option<Text>,
    pub endpoints: Option<Spanned<Vec<Text>>>,
    pub method: Option<Text>,
    pub headers: Option<Spanned<BTreeMap<Text, Text>>>,
    pub body: Option<Text>,
    pub notice_body: Option<Text>,
    pub body_format: Option<Text>,
    pub sms_field: Option<Text>,
    pub credentials_file: Option<Text>,
    pub ca_file: Option<Text>,
    pub timeout_seconds: Option<Int>,
}

/// `[metrics]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMetrics {
    pub textfile: Option<Text>,
    pub interval_seconds: Option<Int>,
    pub listen: Option<Text>,
}

/// `[daemon]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDaemon {
    pub socket: Option<Text>,
    pub state_dir: Option<Text>,
    pub trusted_callers: Option<Vec<Text>>,
    pub admin_group: Option<Text>,
    pub default_protocol: Option<Text>,
    pub max_connections: Option<Int>,
    pub reserved_connections: Option<Int>,
    pub max_connections_per_user: Option<Int>,
    pub user_requests_per_second: Option<Int>,
    pub user_request_burst: Option<Int>,
    pub request_timeout_seconds: Option<Int>,
    pub purge_interval_minutes: Option<Int>,
    pub audit_retention_days: Option<Int>,
    // Audit size (issue #15, disk filling): kept as their own group of keys.
    pub audit_max_rows: Option<Int>,
}

/// `[protocols]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProtocols {
    pub enabled: Option<Vec<Text>>,
}

/// `[directory]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDirectory {
    pub email_template: Option<Text>,
    pub ldap: Option<Vec<Spanned<RawLdap>>>,
}

/// One `[[directory.ldap]]` source.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLdap {
    pub name: Option<Text>,
    pub urls: Option<Spanned<Vec<Text>>>,
    pub tls: Option<Text>,
    pub ca_file: Option<Text>,
    pub bind_dn: Option<Text>,
    pub bind_password_file: Option<Text>,
    pub base: Option<Text>,
    pub filter: Option<Text>,
    pub address_attribute: Option<Text>,
    pub language_attribute: Option<Text>,
    pub phone_attribute: Option<Text>,
    pub group_search: Option<Text>,
    pub group_attribute: Option<Text>,
    pub connect_timeout_seconds: Option<Int>,
    pub search_timeout_seconds: Option<Int>,
    pub cache_ttl_seconds: Option<Int>,
    pub negative_cache_ttl_seconds: Option<Int>,
    pub cache_size: Option<Int>,
}

/// `[defaults]` and each `[profiles.NAME]`: every key optional, so a profile states only what
/// it changes.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSettings {
    pub mode: Option<Text>,
    pub code_length: Option<Int>,
    pub valid_minutes: Option<Int>,
    pub max_attempts: Option<Int>,
    pub resend_cooldown_seconds: Option<Int>,
    pub max_sends_per_hour: Option<Int>,
    pub max_sends_per_day: Option<Int>,
    pub max_user_failures: Option<Int>,
    pub max_host_failures: Option<Int>,
    pub lockout_minutes: Option<Int>,
    /// The code mail's subject and bodies for this profile, over `[mail]`'s.
    pub subject: Option<Text>,
    pub text_template: Option<Text>,
    pub html_template: Option<Text>,
    pub reuse_window_seconds: Option<Int>,
    pub allow_user_disable: Option<bool>,
    pub language: Option<Text>,
    pub directory_down: Option<Text>,
    /// The order in which a user's channels are tried: `email` and `[[channels.webhook]]`
    /// names.
    pub channels: Option<Spanned<Vec<Text>>>,
    /// The notifications these users get, by kind name.
    pub notify: Option<Spanned<Vec<Text>>>,
    /// How many days a remote address stays known for a user.
    pub new_address_days: Option<Int>,
}

/// One `[[policies]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPolicy {
    pub match_user: Option<Text>,
    pub match_user_regex: Option<Text>,
    pub match_group: Option<Text>,
    pub match_protocol: Option<Spanned<Vec<Text>>>,
    pub match_rhost: Option<Spanned<Vec<Text>>>,
    /// `{ ATTRIBUTE = "GLOB", ... }` over the user's directory attributes.
    pub match_attribute: Option<Spanned<BTreeMap<Text, Text>>>,
    pub match_attribute_regex: Option<Spanned<BTreeMap<Text, Text>>>,
    /// Optional here only so that a missing one gets our message rather than serde's.
    pub profile: Option<Text>,
}

/// One `[[exemptions]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawExemption {
    /// Optional here only so that a missing one gets our message rather than serde's.
    pub user: Option<Text>,
    pub ssh_key_fingerprints: Option<Spanned<Vec<Text>>>,
}

/// `[mail]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMail {
    pub transport: Option<Text>,
    pub sendmail_path: Option<Text>,
    pub from: Option<Text>,
    pub from_name: Option<Text>,
    pub reply_to: Option<Text>,
    pub subject: Option<Text>,
    pub text_template: Option<Text>,
    pub html_template: Option<Text>,
    pub total_timeout_seconds: Option<Int>,
    pub dkim: Option<Spanned<RawDkim>>,
    pub servers: Option<Spanned<Vec<Spanned<RawServer>>>>,
}

/// `[mail.dkim]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDkim {
    pub selector: Option<Text>,
    pub domain: Option<Text>,
    pub key_file: Option<Text>,
}

/// One `[[mail.servers]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServer {
    pub name: Option<Text>,
    pub host: Option<Text>,
    pub port: Option<Int>,
    pub security: Option<Text>,
    pub insecure_plaintext: Option<bool>,
    pub username: Option<Text>,
    pub password_file: Option<Text>,
    pub ca_file: Option<Text>,
    pub hello_name: Option<Text>,
    pub timeout_seconds: Option<Int>,
    pub max_connections: Option<Int>,
    pub max_messages_per_connection: Option<Int>,
}
