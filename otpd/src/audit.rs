//! Audit events: a row in the database and a `key=value` line in the log for each.
//!
//! [`Event`] is the one vocabulary of audit events, logins' and otpctl's alike: [`record`]
//! writes a login's, `admin::record` an otpctl command's. Their names are what fail2ban filters
//! and `otpctl audit --event` match, and README.md's "Audit" section lists them (a test holds
//! the two together).
//!
//! The log line is written for fail2ban and friends (`event=wrong_code ... rhost=<HOST>`); every
//! value is escaped so an attacker-chosen user name or host cannot forge a second line or a
//! second key. Neither the row nor the line ever contains a code.
//!
//! A local caller (one whose reported origin is not believed, see [`crate::caller`]) can cause
//! events as fast as it can connect; beyond a small rate its events of one kind are counted and
//! summarised instead of written one by one (`store::audit_rate`), so no local user can fill
//! the disk with rows or log lines; and the table is kept under its row cap
//! ([`common::config::Config::audit_row_cap`]: on SQLite 500,000 rows by default, on the
//! fleet's PostgreSQL only one the admin set).

use common::text::escape_for_log;
use common::wire::LoginContext;

use crate::caller::{LOCAL_ORIGIN, Origin, RelayHost};
use crate::state::Shared;
use crate::store::{Admission, AuditRecord, RateKey, Store, StoreError, Suppressed};

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A code was issued.
    Issued,
    /// A login inside the resend cooldown reused the live code; nothing was mailed.
    Reused,
    /// A mail server accepted the code mail.
    Mailed,
    /// No server accepted it (or there was no usable address); the code was invalidated.
    MailFailed,
    /// The right code was given.
    Verified,
    /// A wrong code was given.
    WrongCode,
    /// An answer to an expired, used, superseded or exhausted code.
    CodeDead,
    /// The user or remote host is locked out.
    Locked,
    /// Mail caps reached; no code sent.
    RateLimited,
    /// The login needs no code.
    Skipped,
    /// A login request refused before its decision: the caller may not act for the user it
    /// named, or (the detail names the field) a field held a NUL byte, which no PAM module
    /// sends and PostgreSQL cannot store; that row holds the field escaped.
    RefusedCaller,
    /// A summary: more events of one kind from one local uid than are written one by one.
    Suppressed,
    /// Root granted a break-glass (issue #16); the detail says for how long and from where.
    BreakglassGranted,
    /// A login passed the code step under a break-glass grant.
    BreakglassUsed,
    /// Root ended a break-glass grant before its expiry.
    BreakglassRevoked,
    /// A break-glass grant reached its expiry (logged once, when found expired).
    BreakglassExpired,
    /// The login needed a code, but authenticated with an SSH key `[[exemptions]]` lists for
    /// the user (the detail is its fingerprint): no code.
    Exempt,
    /// A recovery code answered a login prompt; the detail says how many are left.
    RecoveryUsed,
    /// The code mail failed and the login was asked for a recovery code instead.
    RecoveryOffered,
    /// An admin created a new set of recovery codes for the user.
    RecoveryCodesCreated,
    /// A caller other than root or an admin ran an admin command; the detail names it.
    AdminRefused,
    /// `otpctl user add`.
    UserAdded,
    /// `otpctl user set-email`.
    UserEmailSet,
    /// `otpctl user set-protocols`.
    UserProtocolsSet,
    /// `otpctl user set-language`.
    UserLanguageSet,
    /// `otpctl user set-phone`.
    UserPhoneSet,
    /// `otpctl user enable`.
    UserEnabled,
    /// `otpctl user disable`.
    UserDisabled,
    /// `otpctl user unlock`: the user's lockout and failure count were cleared.
    UserUnlocked,
    /// `otpctl user remove`.
    UserRemoved,
    /// `otpctl user reset`; the detail says what it cleared, even when that was nothing.
    UserReset,
    /// `otpctl user import`; the detail says how many.
    UsersImported,
    /// Many users enabled by one admin command; the detail says how many.
    UsersEnabled,
    /// `otpctl host unlock`; the address is in the `rhost` column.
    HostUnlocked,
    /// `otpctl enable`: a user turned their own login code on.
    SelfEnabled,
    /// `otpctl disable`: a user turned their own login code off.
    SelfDisabled,
    /// `otpctl protocols`: a user changed the protocols they are enrolled for.
    SelfProtocols,
    /// A self-service confirmation code was mailed; the detail says what it is for.
    SelfCodeSent,
    /// `otpctl test-mail`: one server accepted the test mail (the detail names it).
    TestMailOk,
    /// `otpctl test-mail`: one server refused it or could not be reached.
    TestMailFailed,
    /// A dry run (`mode = "audit"`): the login would have been asked for a code; nothing was
    /// sent and it passed the code step. The detail names the profile.
    WouldAsk,
}

impl Event {
    /// Every event, in the order `otpctl metrics` lists them.
    pub const ALL: [Event; 41] = [
        Event::Issued,
        Event::Reused,
        Event::Mailed,
        Event::MailFailed,
        Event::Verified,
        Event::WrongCode,
        Event::CodeDead,
        Event::Locked,
        Event::RateLimited,
        Event::Skipped,
        Event::RefusedCaller,
        Event::Suppressed,
        Event::BreakglassGranted,
        Event::BreakglassUsed,
        Event::BreakglassRevoked,
        Event::BreakglassExpired,
        Event::Exempt,
        Event::RecoveryUsed,
        Event::RecoveryOffered,
        Event::RecoveryCodesCreated,
        Event::AdminRefused,
        Event::UserAdded,
        Event::UserEmailSet,
        Event::UserProtocolsSet,
        Event::UserEnabled,
        Event::UserDisabled,
        Event::UserUnlocked,
        Event::UserRemoved,
        Event::UserReset,
        Event::UsersImported,
        Event::UsersEnabled,
        Event::HostUnlocked,
        Event::SelfEnabled,
        Event::SelfDisabled,
        Event::SelfProtocols,
        Event::SelfCodeSent,
        Event::TestMailOk,
        Event::TestMailFailed,
        Event::WouldAsk,
        Event::UserLanguageSet,
        Event::UserPhoneSet,
    ];

    /// The name used in audit rows and log lines.
    pub fn as_str(self) -> &'static str {
        match self {
            Event::Issued => "issued",
            Event::Reused => "reused",
            Event::Mailed => "mailed",
            Event::MailFailed => "mail_failed",
            Event::Verified => "verified",
            Event::WrongCode => "wrong_code",
            Event::CodeDead => "code_dead",
            Event::Locked => "locked",
            Event::RateLimited => "rate_limited",
            Event::Skipped => "skipped",
            Event::RefusedCaller => "refused_caller",
            Event::Suppressed => "suppressed",
            Event::BreakglassGranted => "breakglass_granted",
            Event::BreakglassUsed => "breakglass_used",
            Event::BreakglassRevoked => "breakglass_revoked",
            Event::BreakglassExpired => "breakglass_expired",
            Event::Exempt => "exempt",
            Event::RecoveryUsed => "recovery_used",
            Event::RecoveryOffered => "recovery_offered",
            Event::RecoveryCodesCreated => "recovery_codes_created",
            Event::AdminRefused => "admin_refused",
            Event::UserAdded => "user_added",
            Event::UserEmailSet => "user_email_set",
            Event::UserProtocolsSet => "user_protocols_set",
            Event::UserLanguageSet => "user_language_set",
            Event::UserPhoneSet => "user_phone_set",
            Event::UserEnabled => "user_enabled",
            Event::UserDisabled => "user_disabled",
            Event::UserUnlocked => "user_unlocked",
            Event::UserRemoved => "user_removed",
            Event::UserReset => "user_reset",
            Event::UsersImported => "users_imported",
            Event::UsersEnabled => "users_enabled",
            Event::HostUnlocked => "host_unlocked",
            Event::SelfEnabled => "self_enabled",
            Event::SelfDisabled => "self_disabled",
            Event::SelfProtocols => "self_protocols",
            Event::SelfCodeSent => "self_code_sent",
            Event::TestMailOk => "test_mail_ok",
            Event::TestMailFailed => "test_mail_failed",
            Event::WouldAsk => "would_ask",
        }
    }

    /// Whether any local user can cause this event through otpctl as often as they like:
    /// refused admin commands and wrong or dead answers to a self-service code (and the
    /// lockout they lead to). From callers other than root, otpctl's rows of these are rate
    /// limited like a local caller's login events (`store::audit_rate`). The other otpctl
    /// events are changes made by root or an admin, or bounded by the mail caps, and are
    /// always written one by one.
    pub fn unbounded(self) -> bool {
        matches!(
            self,
            Event::AdminRefused | Event::WrongCode | Event::CodeDead | Event::Locked
        )
    }
}

/// The facts every audit event carries.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    /// The login, as the module reported it.
    pub login: &'a LoginContext,
    /// The protocol it resolved to, when known.
    pub protocol: Option<&'a str>,
    /// The uid of the process that asked.
    pub caller_uid: u32,
    /// Whether the login's `rhost` is the caller's report or [`LOCAL_ORIGIN`]; local callers'
    /// events are rate-limited.
    pub origin: Origin,
    /// The DMZ host that relayed the request, if one did: `relay=HOST` in the line and at the
    /// front of the row's detail.
    pub relay: Option<RelayHost>,
}

/// Records `event` in the database and the log. A row that cannot be written is an `Err`,
/// for the caller to pass on: inside [`crate::store::atomically`] it takes back the decision
/// the row records, so no decision is stored without its row (the login fails closed).
///
/// A local caller's events beyond the rate are only counted (see the module's doc); when the
/// previous window of the same kind ended with some counted, its summary is written first.
pub fn record(
    store: &mut dyn Store,
    now: i64,
    event: Event,
    subject: Subject<'_>,
    detail: Option<&str>,
) -> Result<(), StoreError> {
    if subject.origin == Origin::Local {
        let key = RateKey {
            caller_uid: subject.caller_uid,
            kind: event.as_str(),
        };
        let (admission, ended) = store.admit_audit(key, now);
        if let Some(summary) = ended {
            record_summary(store, now, summary)?;
        }
        if admission == Admission::Counted {
            return Ok(());
        }
    }
    write(store, now, event.as_str(), subject, detail)
}

/// Writes the row and the line of one event.
fn write(
    store: &mut dyn Store,
    now: i64,
    event: &str,
    subject: Subject<'_>,
    detail: Option<&str>,
) -> Result<(), StoreError> {
    tracing::info!(target: "otpd::audit", "{}", line_of(event, subject, detail));
    let relayed_detail = subject.relay.map(|host| match detail {
        Some(detail) => format!("relay={} {detail}", host.as_str()),
        None => format!("relay={}", host.as_str()),
    });
    let detail = relayed_detail.as_deref().or(detail);
    let row = AuditRecord {
        time: now,
        event,
        // A summary names no user or service: the row says NULL, the line `-`.
        user: Some(subject.login.user.as_str()).filter(|u| !u.is_empty()),
        service: Some(subject.login.service.as_str()).filter(|s| !s.is_empty()),
        protocol: subject.protocol,
        rhost: subject.login.rhost.as_deref(),
        caller_uid: Some(subject.caller_uid),
        detail,
    };
    store
        .record_audit(&row)
        .inspect_err(|e| row_failed(event, e))
}

/// Logs an audit row that could not be written (its log line was written already).
pub(crate) fn row_failed(event: &str, error: &StoreError) {
    tracing::error!(
        "cannot write audit row for {}: {}",
        value(event),
        escape_for_log(&error.to_string())
    );
}

/// The row and line saying how many events of one kind a local uid caused beyond the rate:
/// `event=suppressed user=- service=- protocol=- rhost=local caller_uid=U detail=KIND:COUNT`.
pub(crate) fn record_summary(
    store: &mut dyn Store,
    now: i64,
    summary: Suppressed,
) -> Result<(), StoreError> {
    if crate::peer_lines::summarise(&summary) {
        return Ok(());
    }
    let login = LoginContext {
        user: String::new(),
        service: String::new(),
        rhost: Some(LOCAL_ORIGIN.to_string()),
        tty: None,
        protocol: None,
    };
    let subject = Subject {
        login: &login,
        protocol: None,
        caller_uid: summary.key.caller_uid,
        origin: Origin::Local,
        relay: None,
    };
    let detail = format!("{}:{}", summary.key.kind, summary.count);
    write(
        store,
        now,
        Event::Suppressed.as_str(),
        subject,
        Some(&detail),
    )
}

/// The periodic audit work, off the login path: writes the summaries of rate windows that
/// ended, and keeps the table under its row cap ([`common::config::Config::audit_row_cap`]),
/// saying so in the log when it deletes rows. With `closing` (at shutdown), summarises every
/// open window.
pub fn settle(shared: &Shared, closing: bool) -> Result<(), StoreError> {
    let now = shared.clock.now();
    let cap = shared.active().config.audit_row_cap();
    let mut store = shared.store();
    for summary in store.ended_audit_windows(now, closing) {
        // A summary that cannot be written is logged; the others and the trim still go on.
        let _ = record_summary(&mut store, now, summary);
    }
    let Some(max_rows) = cap else {
        return Ok(());
    };
    if let Some(trimmed) = store.trim_audit(max_rows)? {
        tracing::warn!(
            "audit rows over [daemon] audit_max_rows = {max_rows}: deleted the {} oldest; rows from {} on are kept",
            trimmed.deleted,
            common::timefmt::utc(trimmed.oldest_kept)
        );
    }
    Ok(())
}

/// The `key=value` line for an event named `event`.
fn line_of(event: &str, subject: Subject<'_>, detail: Option<&str>) -> String {
    let mut line = format!(
        "event={} user={} service={} protocol={} rhost={} caller_uid={}",
        event,
        value(&subject.login.user),
        value(&subject.login.service),
        value(subject.protocol.unwrap_or("-")),
        value(subject.login.rhost.as_deref().unwrap_or("-")),
        subject.caller_uid,
    );
    if let Some(host) = subject.relay {
        line.push_str(" relay=");
        line.push_str(&value(host.as_str()));
    }
    if let Some(detail) = detail {
        line.push_str(" detail=");
        line.push_str(&value(detail));
    }
    line
}

/// A value as one token: [`escape_for_log`] (which leaves no line break, control, hidden
/// character or `=`), and spaces written `\x20`. An empty value is written `-`. Every audit
/// log line, otpctl's included, uses it.
pub(crate) fn value(raw: &str) -> String {
    if raw.is_empty() {
        return "-".to_string();
    }
    escape_for_log(raw).replace(' ', "\\x20")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server_key::ServerKey;
    use std::path::Path;

    const T0: i64 = 1_700_000_000;

    fn wrong_answers(store: &mut dyn Store, n: usize, caller_uid: u32, origin: Origin) {
        let login = LoginContext {
            user: "nobody".into(),
            service: "sshd".into(),
            rhost: Some(LOCAL_ORIGIN.into()),
            tty: None,
            protocol: None,
        };
        let subject = Subject {
            login: &login,
            protocol: Some("ssh"),
            caller_uid,
            origin,
            relay: None,
        };
        for _ in 0..n {
            record(store, T0, Event::WrongCode, subject, None).unwrap();
        }
    }

    fn open_store() -> (tempfile::TempDir, crate::store::SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::SqliteStore::open(
            &dir.path().join("otpd.db"),
            ServerKey::from_bytes([7; 32]),
        );
        (dir, store.unwrap())
    }

    #[test]
    fn a_local_callers_flood_is_written_ten_times_then_summarised_once() {
        let (_dir, mut store) = open_store();
        wrong_answers(&mut store, 1000, 65534, Origin::Local);
        assert_eq!(store.audit_since(0, 10_000).unwrap().len(), 10);
        for summary in store.ended_audit_windows(T0 + 60, false) {
            record_summary(&mut store, T0 + 60, summary).unwrap();
        }
        let rows = store.audit_since(0, 10_000).unwrap();
        assert_eq!(rows.len(), 11);
        assert_eq!(rows[0].event, "suppressed");
        assert_eq!(rows[0].detail.as_deref(), Some("wrong_code:990"));
        assert_eq!(rows[0].caller_uid, Some(65534));
        assert_eq!(rows[0].rhost.as_deref(), Some(LOCAL_ORIGIN));
        assert_eq!(rows[0].user, None);
    }

    #[test]
    fn a_relayed_event_names_its_relay_in_the_line_and_first_in_the_rows_detail() {
        let (_dir, mut store) = open_store();
        let login = LoginContext {
            user: "alice".into(),
            service: "sshd".into(),
            rhost: Some("192.0.2.7".into()),
            tty: None,
            protocol: None,
        };
        let subject = Subject {
            login: &login,
            protocol: Some("ssh"),
            caller_uid: 0,
            origin: Origin::Reported,
            relay: RelayHost::new("dmz1.example"),
        };
        let line = line_of("mailed", subject, Some("capture"));
        assert!(
            line.ends_with("caller_uid=0 relay=dmz1.example detail=capture"),
            "{line}"
        );
        record(&mut store, T0, Event::Mailed, subject, Some("capture")).unwrap();
        record(&mut store, T0, Event::Verified, subject, None).unwrap();
        let rows = store.audit_since(0, 10).unwrap();
        let details: Vec<_> = rows.iter().map(|r| r.detail.clone()).collect();
        assert!(
            details.contains(&Some("relay=dmz1.example capture".to_string())),
            "{details:?}"
        );
        assert!(
            details.contains(&Some("relay=dmz1.example".to_string())),
            "{details:?}"
        );
    }

    #[test]
    fn root_and_trusted_callers_events_are_all_written_for_fail2ban() {
        let (_dir, mut store) = open_store();
        wrong_answers(&mut store, 100, 0, Origin::Reported);
        assert_eq!(store.audit_since(0, 10_000).unwrap().len(), 100);
        assert!(store.ended_audit_windows(T0 + 60, true).is_empty());
    }

    /// Every event. The `match` in `place` makes a new variant a compile error until it has
    /// a place, and then a test failure until it is listed in [`Event::ALL`].
    const EVERY: [Event; 41] = Event::ALL;

    fn place(event: Event) -> usize {
        match event {
            Event::Issued => 0,
            Event::Reused => 1,
            Event::Mailed => 2,
            Event::MailFailed => 3,
            Event::Verified => 4,
            Event::WrongCode => 5,
            Event::CodeDead => 6,
            Event::Locked => 7,
            Event::RateLimited => 8,
            Event::Skipped => 9,
            Event::RefusedCaller => 10,
            Event::Suppressed => 11,
            Event::BreakglassGranted => 12,
            Event::BreakglassUsed => 13,
            Event::BreakglassRevoked => 14,
            Event::BreakglassExpired => 15,
            Event::Exempt => 16,
            Event::RecoveryUsed => 17,
            Event::RecoveryOffered => 18,
            Event::RecoveryCodesCreated => 19,
            Event::AdminRefused => 20,
            Event::UserAdded => 21,
            Event::UserEmailSet => 22,
            Event::UserProtocolsSet => 23,
            Event::UserEnabled => 24,
            Event::UserDisabled => 25,
            Event::UserUnlocked => 26,
            Event::UserRemoved => 27,
            Event::UserReset => 28,
            Event::UsersImported => 29,
            Event::UsersEnabled => 30,
            Event::HostUnlocked => 31,
            Event::SelfEnabled => 32,
            Event::SelfDisabled => 33,
            Event::SelfProtocols => 34,
            Event::SelfCodeSent => 35,
            Event::TestMailOk => 36,
            Event::TestMailFailed => 37,
            Event::WouldAsk => 38,
            Event::UserLanguageSet => 39,
            Event::UserPhoneSet => 40,
        }
    }

    /// The event names README.md's "Audit" section lists: every backquoted word of the list
    /// that starts at "- logins:" and ends at the first blank line.
    fn documented_names() -> std::collections::BTreeSet<String> {
        let readme = Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
        let text = std::fs::read_to_string(readme).unwrap();
        let section = text.split("\n## Audit\n").nth(1).unwrap();
        let section = section.split("\n## ").next().unwrap();
        let list = section.split("\n- logins:").nth(1).unwrap();
        let list = list.split("\n\n").next().unwrap();
        list.split('`')
            .skip(1)
            .step_by(2)
            .map(String::from)
            .collect()
    }

    #[test]
    fn every_event_has_one_name_of_its_own_and_the_readme_lists_them_all() {
        let mut listed = [false; EVERY.len()];
        for event in EVERY {
            listed[place(event)] = true;
        }
        assert!(listed.iter().all(|l| *l), "EVERY misses an event");
        let names: std::collections::BTreeSet<String> =
            EVERY.iter().map(|e| e.as_str().to_string()).collect();
        assert_eq!(names.len(), EVERY.len(), "two events share a name");
        assert_eq!(names, documented_names(), "README.md's Audit section");
    }

    #[test]
    fn only_refusals_and_wrong_or_dead_answers_are_unbounded() {
        let unbounded: Vec<&str> = EVERY
            .iter()
            .filter(|e| e.unbounded())
            .map(|e| e.as_str())
            .collect();
        assert_eq!(
            unbounded,
            ["wrong_code", "code_dead", "locked", "admin_refused"]
        );
    }

    #[test]
    fn values_stay_one_token() {
        assert_eq!(value("a b=c\nd"), "a\\x20b\\x3dc\\x0ad");
        assert_eq!(value(""), "-");
    }

    #[test]
    fn log_line_stays_one_line_with_hostile_values() {
        let login = LoginContext {
            user: "eve\nevent=verified user=root".into(),
            service: "sshd".into(),
            rhost: Some("10.0.0.1 x".into()),
            tty: None,
            protocol: None,
        };
        let line = line_of(
            Event::WrongCode.as_str(),
            Subject {
                login: &login,
                protocol: Some("ssh"),
                caller_uid: 0,
                origin: Origin::Reported,
                relay: None,
            },
            None,
        );
        assert!(!line.contains('\n'));
        assert_eq!(line.matches("event=").count(), 1);
        assert!(line.contains("rhost=10.0.0.1\\x20x"));
        assert!(line.starts_with("event=wrong_code user=eve\\x0aevent\\x3dverified"));
    }
}
