//! The messages of `otpctl`: admin commands and a user's own account, carried inside
//! [`crate::wire::Request::Admin`] and [`crate::wire::Response::Admin`].
//!
//! otpd authorizes every one of them by the peer's credentials: admin requests need root or a
//! member of `[daemon] admin_group`; the self-service requests act only on the caller's own
//! account, named by its uid, never by anything in the request. Addresses are never set by the
//! user: only admin requests carry one.

use serde::{Deserialize, Serialize};

use crate::secret::SecretString;

/// How many bytes of list items (users, audit rows, import rows) one message carries, so that
/// the whole message stays well below [`crate::frame::MAX_PAYLOAD`]; longer lists are paged.
pub const PAGE_BYTES: usize = crate::frame::MAX_PAYLOAD * 3 / 4;

/// What otpctl asks otpd.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum AdminRequest {
    /// Admin: create a user record; refused when one exists.
    UserAdd {
        /// The login name.
        user: String,
        /// Where the user's codes go.
        email: String,
        /// Turn the code on at once.
        enabled: bool,
        /// Protocols the user is enrolled for; `None` means all enabled protocols.
        protocols: Option<Vec<String>>,
        /// The name is not an account on this host (yet), and the admin means it (a user who
        /// will only exist once a directory is set up). Without it a name NSS does not know is
        /// refused: a typo would otherwise become a record no login ever uses. Left out of the
        /// frame when false, so an older otpd still understands every other `user add`.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        no_account: bool,
    },
    /// Admin: set (or replace) a user's address, creating the record when missing.
    UserSetEmail {
        /// The login name.
        user: String,
        /// The new address.
        email: String,
    },
    /// Admin: set the protocols a user is enrolled for (`None`: all), creating the record when
    /// missing.
    UserSetProtocols {
        /// The login name.
        user: String,
        /// The protocols; `None` means all enabled protocols.
        protocols: Option<Vec<String>>,
    },
    /// Admin: set the language of a user's login texts (`None`: the profile's), creating the
    /// record when missing.
    UserSetLanguage {
        /// The login name.
        user: String,
        /// An ISO 639-1 code otpd has texts in; `None` leaves it to the user's profile.
        language: Option<String>,
    },
    /// Admin: set the phone number webhook channels send a user's codes to (`None`: none),
    /// creating the record when missing.
    UserSetPhone {
        /// The login name.
        user: String,
        /// An E.164 number (`+` and 8 to 15 digits); `None` removes it.
        phone: Option<String>,
    },
    /// Admin: turn the code on for a user, creating the record when missing.
    UserEnable {
        /// The login name.
        user: String,
    },
    /// Admin: turn the code off for a user (deactivate the second factor).
    UserDisable {
        /// The login name.
        user: String,
    },
    /// Admin: clear a user's lockout and failure count.
    UserUnlock {
        /// The login name.
        user: String,
    },
    /// Admin: delete a user's record.
    UserRemove {
        /// The login name.
        user: String,
    },
    /// Admin: one user's record and effective state.
    UserShow {
        /// The login name.
        user: String,
    },
    /// Admin: every user otpd knows (its table and anyone locked out).
    UserList {
        /// Only users with the code turned on.
        enabled_only: bool,
        /// Only users locked out now.
        locked_only: bool,
        /// Only users whose name sorts after this one: the next page.
        after: Option<String>,
    },
    /// Admin: create or replace many records at once. With `partial = false` nothing changes
    /// when any row is bad. A file too large for one frame is sent in parts: each part first
    /// with `dry_run` to find every bad line, then for real.
    Import {
        /// The rows, with their line numbers in the file for error messages.
        rows: Vec<ImportRow>,
        /// Import the good rows even when some are bad.
        partial: bool,
        /// Only check the rows; change nothing.
        dry_run: bool,
    },
    /// Admin: turn the code on for every known user with an address, or every member of a
    /// group.
    EnableAll {
        /// Only members of this group.
        group: Option<String>,
    },
    /// Admin (or a user, for their own rows): audit rows, newest first.
    Audit {
        /// Only rows for this user.
        user: Option<String>,
        /// Only rows with this event name.
        event: Option<String>,
        /// Only rows at or after this unix time.
        since: Option<i64>,
        /// At most this many rows.
        limit: u32,
        /// Only rows older than this `(time, id)`: the next page.
        before: Option<(i64, i64)>,
    },
    /// Admin: the daemon's state. A non-admin gets their own account's state instead.
    Status,
    /// Admin: otpd's counters in Prometheus's text exposition format.
    Metrics,
    /// Admin: send a test message through each configured server (or one of them).
    TestMail {
        /// The recipient.
        to: String,
        /// Only this server (by its `name`).
        server: Option<String>,
    },
    /// Self-service, step one: mail a code to the caller's address on file for `action`, or
    /// do it at once when it needs no code.
    SelfStart {
        /// What the caller wants done to their own account.
        action: SelfAction,
    },
    /// Self-service, step two: the code the caller received; only the right one applies
    /// `action`.
    SelfConfirm {
        /// The same action as in `SelfStart`.
        action: SelfAction,
        /// The challenge from [`AdminResponse::CodeSent`].
        challenge: String,
        /// What the caller typed. Never logged.
        code: SecretString,
    },
    /// Root only (not the admin group): let `user`'s logins pass the code step for `minutes`
    /// (1 to 240), optionally only from remote hosts in `from` (a CIDR network).
    BreakGlassGrant {
        /// The login name.
        user: String,
        /// How long the grant holds.
        minutes: u32,
        /// Only logins whose believed remote host is in this network.
        from: Option<String>,
    },
    /// Root only: end `user`'s grant now.
    BreakGlassRevoke {
        /// The login name.
        user: String,
    },
    /// Admin: the grants that hold now.
    BreakGlassList,
    /// Admin: create a new set of recovery codes for a user, replacing the old set. The codes
    /// answer any login prompt in place of the mailed code, each once.
    UserRecoveryCodes {
        /// The login name.
        user: String,
    },
    /// Admin: the remote addresses with failures counted or a lock in force.
    HostList,
    /// Admin: clear a remote address's lockout and failure count.
    HostUnlock {
        /// The IP address, as the audit's `rhost` shows it.
        address: String,
    },
    /// Admin: forget the codes mailed to a user (the hourly and daily caps start again),
    /// close their unused codes and clear their lockout.
    UserReset {
        /// The login name.
        user: String,
    },
}

/// A change a user makes to their own account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum SelfAction {
    /// Turn the code on (proves the address works).
    Enable,
    /// Turn the code off; refused when the policy says `allow_user_disable = false`.
    Disable,
    /// Opt into these protocols only.
    Protocols {
        /// Protocol names.
        protocols: Vec<String>,
    },
    /// A new set of recovery codes for the caller, replacing the old set (proves the caller
    /// reads the address's mail, as an admin's `user recovery-codes` needs no proof).
    RecoveryCodes,
}

impl SelfAction {
    /// A short name for messages and audit rows.
    pub fn name(&self) -> &'static str {
        match self {
            SelfAction::Enable => "enable",
            SelfAction::Disable => "disable",
            SelfAction::Protocols { .. } => "protocols",
            SelfAction::RecoveryCodes => "recovery-codes",
        }
    }
}

/// One line of an import file, as read; otpd validates every field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportRow {
    /// 1-based line number in the file.
    pub line: usize,
    /// The login name.
    pub user: String,
    /// The address.
    pub email: String,
    /// The `enabled` column; `None` when absent (off).
    pub enabled: Option<bool>,
    /// The protocols column; `None` when absent (all).
    pub protocols: Option<Vec<String>>,
}

/// otpd's answer to an [`AdminRequest`]. Large parts are boxed so every answer (and
/// [`crate::wire::Response`], which carries one) stays small.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case", deny_unknown_fields)]
pub enum AdminResponse {
    /// The change was made.
    Done {
        /// What was done, for the person.
        message: String,
        /// The user's record after the change, when there is one.
        user: Option<Box<UserView>>,
    },
    /// One user.
    User {
        /// The user.
        user: Box<UserView>,
    },
    /// Many users, sorted by name; a page of them when the list is longer than one frame.
    Users {
        /// The users.
        users: Vec<UserView>,
        /// When there are more: ask again with `after` set to this name.
        more_after: Option<String>,
    },
    /// The outcome of an import.
    Imported {
        /// Records created or replaced.
        imported: usize,
        /// Every bad line.
        problems: Vec<LineProblem>,
        /// False when bad lines stopped the import: nothing was changed.
        applied: bool,
    },
    /// The outcome of enable-all.
    EnabledAll {
        /// Users whose code is now on.
        enabled: Vec<String>,
        /// Users left alone, and why.
        skipped: Vec<Skipped>,
    },
    /// Audit rows, newest first; a page of them when they do not fit one frame.
    Audit {
        /// The rows.
        rows: Vec<AuditRow>,
        /// When there may be more: ask again with `before` set to this.
        more_before: Option<(i64, i64)>,
    },
    /// The daemon's state (admins).
    Status {
        /// The state.
        status: Box<DaemonStatus>,
    },
    /// The caller's own state (non-admins).
    SelfStatus {
        /// The state.
        status: Box<SelfStatus>,
    },
    /// otpd's counters, ready to print: Prometheus's text exposition format (0.0.4), every
    /// line ending in a line feed.
    Metrics {
        /// The exposition text.
        text: String,
    },
    /// One result per server tried.
    MailTest {
        /// The results, in server order.
        results: Vec<MailTestResult>,
    },
    /// A code was mailed; send it back with [`AdminRequest::SelfConfirm`].
    CodeSent {
        /// The opaque challenge id.
        challenge: String,
        /// The masked address it went to.
        sent_to: String,
        /// When the code expires (unix seconds).
        expires_at: i64,
    },
    /// Nothing was done.
    Refused {
        /// Why, for the exit status.
        reason: RefuseReason,
        /// What to do about it, for the person.
        message: String,
    },
    /// The break-glass grants that hold now, by user name.
    BreakGlass {
        /// The grants.
        grants: Vec<BreakGlassView>,
    },
    /// A new set of recovery codes: the only time they are shown.
    RecoveryCodes {
        /// The login name.
        user: String,
        /// The codes, formatted `abcde-fghjk`. Never logged.
        codes: Vec<SecretString>,
    },
    /// Remote addresses with failures counted or a lock in force, locked ones first.
    Hosts {
        /// The addresses, as many as fit in one answer.
        hosts: Vec<HostView>,
        /// How many more there are that did not fit (the shortest locks and fewest failures):
        /// many addresses at once is itself worth knowing.
        left_out: u64,
    },
}

/// One remote address's failure counter, as `otpctl host list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostView {
    /// The IP address.
    pub address: String,
    /// Consecutive wrong answers from it since its last lock or success.
    pub failures: u32,
    /// When its lock ends (unix seconds), if it is locked.
    pub locked_until: Option<i64>,
    /// Seconds from otpd's now until the lock ends, if it is locked: a duration computed where
    /// the lock is kept, so a client with a wrong clock still shows the right one.
    pub locked_seconds_left: Option<i64>,
    /// When its counter last changed (unix seconds).
    pub updated_at: i64,
}

/// One break-glass grant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BreakGlassView {
    /// The user whose logins pass the code step.
    pub user: String,
    /// The network the login must come from; `None`: anywhere.
    pub from: Option<String>,
    /// The uid that granted it.
    pub granted_by: u32,
    /// When (unix seconds).
    pub granted_at: i64,
    /// When it stops holding (unix seconds).
    pub expires_at: i64,
}

/// Why an admin or self-service request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefuseReason {
    /// The caller is neither root nor in `admin_group`, or acted on another account.
    NotAllowed,
    /// The policy does not let users do this (`allow_user_disable = false`).
    Policy,
    /// No such user.
    NotFound,
    /// The user already exists.
    Exists,
    /// A field is invalid (address, protocol, name).
    Invalid,
    /// The code was wrong, expired or used.
    WrongCode,
    /// Too many wrong codes: locked out.
    LockedOut,
    /// Mail caps reached.
    RateLimited,
    /// No address is on file for the caller.
    NoAddress,
    /// otpd could not do it (mail or database failure).
    Failed,
}

/// A user as otpctl shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserView {
    /// The login name.
    pub name: String,
    /// True when otpd's table has a record (false: only locked or template-derived).
    pub in_table: bool,
    /// The address codes go to (admins see it whole, users masked).
    pub address: Option<String>,
    /// The phone number webhook channels send codes to (admins see it whole, users masked);
    /// only on the wire when set, so an older otpctl reads the views of users without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// Where the phone number comes from: `table` (`otpctl user set-phone`) or `ldap:NAME`
    /// (the source's `phone_attribute`); only on the wire with a phone number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_source: Option<String>,
    /// Where the address comes from: `table`, `ldap:NAME`, `template`, or `none`; with no
    /// address, `unavailable: WHY` when an LDAP source could not be asked.
    pub address_source: String,
    /// Whether the user turned the code on (matters under `mode = "optional"`).
    pub enabled: bool,
    /// Protocols the user is enrolled for; `None` means all.
    pub protocols: Option<Vec<String>>,
    /// Protocols for which a login by this user needs a code now.
    pub code_required_for: Vec<String>,
    /// Until when the user is locked out (unix seconds), if locked.
    pub locked_until: Option<i64>,
    /// How many of the user's recovery codes are unused; `None` where not looked up (lists).
    #[serde(default)]
    pub recovery_codes_left: Option<u32>,
    /// Codes mailed to the user in the last hour and the last 24 hours, which count against
    /// `max_sends_per_hour` and `max_sends_per_day`; `None` where not looked up (lists).
    #[serde(default)]
    pub mailed: Option<MailedCounts>,
    /// The groups the `[[directory.ldap]]` sources gave (`user show`; empty without them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub directory_groups: Vec<String>,
    /// The directory attributes policies match, as the sources gave them (`user show`).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub directory_attributes: std::collections::BTreeMap<String, Vec<String>>,
}

/// Codes mailed to one user, by window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailedCounts {
    /// In the last hour.
    pub last_hour: u32,
    /// In the last 24 hours (the hour's included).
    pub last_day: u32,
}

/// A bad import line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineProblem {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// A user enable-all left alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Skipped {
    /// The login name.
    pub user: String,
    /// Why.
    pub reason: String,
}

/// One audit row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditRow {
    /// The row's id, increasing in insertion order.
    pub id: i64,
    /// Unix time.
    pub time: i64,
    /// Event name.
    pub event: String,
    /// Login name.
    pub user: Option<String>,
    /// PAM service.
    pub service: Option<String>,
    /// Login protocol.
    pub protocol: Option<String>,
    /// Remote host.
    pub rhost: Option<String>,
    /// The uid that asked otpd.
    pub caller_uid: Option<u32>,
    /// Free text.
    pub detail: Option<String>,
}

/// The daemon's state for admins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DaemonStatus {
    /// otpd's version.
    pub version: String,
    /// The daemon's clock (unix seconds).
    pub now: i64,
    /// When otpd started (unix seconds).
    pub started_at: i64,
    /// The config file in force.
    pub config_file: String,
    /// When it was loaded (unix seconds).
    pub config_loaded_at: i64,
    /// Records in the user table.
    pub users: u64,
    /// Records with the code turned on.
    pub enabled: u64,
    /// Users locked out now.
    pub locked: u64,
    /// Codes that can still be answered.
    pub live_codes: u64,
    /// The configured mail servers, in order, with their last result.
    pub mail_servers: Vec<MailServerStatus>,
    /// Break-glass grants that hold now.
    #[serde(default)]
    pub breakglass: Vec<BreakGlassView>,
    /// Remote addresses locked out now (`otpctl host list`): each refuses all its users.
    #[serde(default)]
    pub locked_hosts: u64,
    /// What a dry run (`mode = "audit"`) found lately; absent when no profile is a dry run and
    /// none was lately.
    #[serde(default)]
    pub dry_run: Option<DryRunSummary>,
    /// The endpoints of the `[[channels.webhook]]` entries, in order, with their last result;
    /// only on the wire when there are some, so an older otpctl reads a status without them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub webhook_endpoints: Vec<WebhookEndpointStatus>,
    /// The store in use: `sqlite`, or `postgresql: DBNAME on HOST:PORT, ... (TLS ...)`; absent
    /// from an older otpd.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub store: String,
}

/// One endpoint of a webhook channel, as `otpctl status` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookEndpointStatus {
    /// The channel's `name`.
    pub channel: String,
    /// How audit rows name the endpoint: `webhook:NAME endpoint N (HOST[:PORT])`.
    pub endpoint: String,
    /// When it last took a code (unix seconds).
    pub last_ok_at: Option<i64>,
    /// When it last failed (unix seconds).
    pub last_failure_at: Option<i64>,
    /// The audit detail of that failure (statuses and errors; never a code or number).
    pub last_error: Option<String>,
}

/// The logins a dry run (`mode = "audit"`) would have asked for a code (`would_ask` rows).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DryRunSummary {
    /// Over how many days, back from now.
    pub days: u32,
    /// Logins that would have been asked.
    pub logins: u64,
    /// Distinct users among them.
    pub users: u64,
    /// The users asked most often, most first, with their counts.
    pub top: Vec<(String, u64)>,
}

/// One mail server in the status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailServerStatus {
    /// Its `name`.
    pub name: String,
    /// `host:port`.
    pub address: String,
    /// `none`, `starttls` or `tls`.
    pub security: String,
    /// When it last accepted a message (unix seconds).
    pub last_ok_at: Option<i64>,
    /// When it last failed (unix seconds).
    pub last_failure_at: Option<i64>,
    /// What it said then.
    pub last_error: Option<String>,
    /// Failures in a row since the last success (since otpd started or reloaded).
    pub failures_in_a_row: u32,
    /// Until when logins skip this server after repeated failures (unix seconds), if they do.
    pub skipped_until: Option<i64>,
}

/// A user's own state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelfStatus {
    /// The caller's account, with the address masked.
    pub user: UserView,
    /// Whether the policy lets the user turn the code off.
    pub may_disable: bool,
}

/// What one server did with a test message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailTestResult {
    /// The server's name.
    pub server: String,
    /// `None` when accepted; otherwise the exact error.
    pub error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_confirm_request_round_trips_and_hides_its_code() {
        let req = AdminRequest::SelfConfirm {
            action: SelfAction::Protocols {
                protocols: vec!["ssh".into()],
            },
            challenge: "c".into(),
            code: SecretString::new("424242".into()),
        };
        assert!(!format!("{req:?}").contains("424242"));
        let back: AdminRequest =
            serde_json::from_slice(&serde_json::to_vec(&req).unwrap()).unwrap();
        match back {
            AdminRequest::SelfConfirm { action, code, .. } => {
                assert_eq!(code.expose(), "424242");
                assert_eq!(
                    action,
                    SelfAction::Protocols {
                        protocols: vec!["ssh".into()]
                    }
                );
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn unknown_fields_in_admin_requests_are_refused() {
        let bad = br#"{"op":"user_enable","user":"a","as_uid":0}"#;
        assert!(serde_json::from_slice::<AdminRequest>(bad).is_err());
        let good = br#"{"op":"user_enable","user":"a"}"#;
        assert!(serde_json::from_slice::<AdminRequest>(good).is_ok());
    }

    #[test]
    fn a_refusal_round_trips() {
        let resp = AdminResponse::Refused {
            reason: RefuseReason::NotAllowed,
            message: "no".into(),
        };
        let back: AdminResponse =
            serde_json::from_slice(&serde_json::to_vec(&resp).unwrap()).unwrap();
        assert_eq!(back, resp);
    }
}
