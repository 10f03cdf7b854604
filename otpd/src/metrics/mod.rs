//! otpd's counters, kept in memory and printed in Prometheus's text exposition format
//! (`otpctl metrics`).
//!
//! Every counter is counted from the audit rows otpd stores, at one place: the store counts a
//! row when it is committed ([`crate::store::SqliteStore`] holds the rows of an open
//! transaction until it commits, and drops them when it rolls back), so the counters equal the
//! rows written since otpd started, never an event whose row was taken back. One [`Metrics`]
//! lives in [`crate::state::Shared`] for the daemon's life: a reload replaces the config and
//! the mailer, not the counters.
//!
//! Label values are bounded by otpd, never by what a user sends: `event` by [`Event::ALL`],
//! `reason` by the skip reasons [`SKIP_REASONS`] (anything else counts as `other`), `server` by
//! the mail servers' names in the config (at most [`MAX_SERVERS`] kept; more count as
//! `other`). Every label value is escaped all the same.

mod histogram;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use self::histogram::Histogram;

use common::wire::SkipReason;

use crate::audit::Event;
use crate::state::{Active, Shared};

/// Every skip reason, for the `reason` label: the series exist from the start.
pub const SKIP_REASONS: [SkipReason; 8] = [
    SkipReason::ProtocolNotEnabled,
    SkipReason::UnknownService,
    SkipReason::ModeOff,
    SkipReason::NotEnrolled,
    SkipReason::NoAddress,
    SkipReason::BreakGlass,
    SkipReason::Exempt,
    SkipReason::DryRun,
];

/// The most mail server names kept as `server` labels.
pub const MAX_SERVERS: usize = 64;

/// The label value for a skip reason or server outside the bounded sets.
const OTHER: &str = "other";

/// The upper bounds (seconds) of the delivery latency histogram's buckets; `+Inf` follows.
pub const DELIVERY_BUCKETS: [f64; 10] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

/// The upper bounds (seconds) of the login request latency histogram's buckets: a request
/// that mails a code waits for the mail server's acceptance.
pub const REQUEST_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// The login requests whose latency is measured, for the `request` label.
pub const LOGIN_REQUESTS: [&str; 5] = ["begin", "resend", "answer", "probe", "verify"];

/// The counters. Cheap to update: one short lock per stored audit row or request.
#[derive(Debug, Default)]
pub struct Metrics {
    counts: Mutex<Counts>,
}

#[derive(Debug)]
struct Counts {
    /// Rows per event name (only names of [`Event::ALL`]).
    events: BTreeMap<&'static str, u64>,
    /// `mailed` rows per server (the row's detail).
    mailed: BTreeMap<String, u64>,
    /// `skipped` rows per reason (the row's detail).
    skipped: BTreeMap<&'static str, u64>,
    /// How long mail deliveries took.
    delivery: Histogram,
    /// How long each kind of login request took, from its frame read to its answer.
    requests: BTreeMap<&'static str, Histogram>,
    /// Connections admitted and refused by the socket's fair share, and open now.
    admitted: u64,
    refused: u64,
    open: u64,
}

impl Default for Counts {
    fn default() -> Counts {
        Counts {
            events: BTreeMap::new(),
            mailed: BTreeMap::new(),
            skipped: BTreeMap::new(),
            delivery: Histogram::new(&DELIVERY_BUCKETS),
            requests: LOGIN_REQUESTS
                .iter()
                .map(|kind| (*kind, Histogram::new(&REQUEST_BUCKETS)))
                .collect(),
            admitted: 0,
            refused: 0,
            open: 0,
        }
    }
}

/// What `otpctl metrics` shows besides the counters: read when it asks.
#[derive(Debug, Clone)]
pub struct Gauges {
    /// When otpd started (unix seconds).
    pub start_time: i64,
    /// Each configured mail server's name and whether its last attempt succeeded (a server not
    /// tried yet counts as up).
    pub servers: Vec<(String, bool)>,
    /// Each LDAP source (`ldap:NAME`) and whether its last lookup reached a server (a source
    /// not asked yet counts as up).
    pub directories: Vec<(String, bool)>,
}

impl Metrics {
    fn counts(&self) -> MutexGuard<'_, Counts> {
        // Counts are plain numbers: a panic elsewhere while holding the lock leaves them whole.
        match self.counts.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Counts one stored audit row: its event, and for `mailed` its server and for `skipped`
    /// its reason (both the row's detail). A name that is no [`Event`] is not counted.
    pub fn count_row(&self, event: &str, detail: Option<&str>) {
        let Some(known) = Event::ALL.iter().find(|e| e.as_str() == event) else {
            return;
        };
        let mut counts = self.counts();
        *counts.events.entry(known.as_str()).or_default() += 1;
        match known {
            Event::Mailed => {
                let server = detail.unwrap_or(OTHER);
                let kept = counts.mailed.contains_key(server) || counts.mailed.len() < MAX_SERVERS;
                let label = if kept { server } else { OTHER };
                *counts.mailed.entry(label.to_string()).or_default() += 1;
            }
            Event::Skipped => {
                let reason = SKIP_REASONS
                    .iter()
                    .map(|r| skip_reason_name(*r))
                    .find(|name| Some(*name) == detail)
                    .unwrap_or(OTHER);
                *counts.skipped.entry(reason).or_default() += 1;
            }
            _ => {}
        }
    }

    /// Notes how long one mail delivery took (every server tried, success or not).
    pub fn observe_delivery(&self, took: Duration) {
        self.counts().delivery.observe(took);
    }

    /// Notes how long one login request of `kind` (one of [`LOGIN_REQUESTS`]) took.
    pub fn observe_request(&self, kind: &'static str, took: Duration) {
        if let Some(histogram) = self.counts().requests.get_mut(kind) {
            histogram.observe(took);
        }
    }

    /// Counts a connection the socket admitted (open until [`Metrics::connection_closed`]) or
    /// refused.
    pub fn connection(&self, admitted: bool) {
        let mut counts = self.counts();
        if admitted {
            counts.admitted += 1;
            counts.open += 1;
        } else {
            counts.refused += 1;
        }
    }

    /// An admitted connection ended.
    pub fn connection_closed(&self) {
        let mut counts = self.counts();
        counts.open = counts.open.saturating_sub(1);
    }

    /// The counters and `gauges` in Prometheus's text exposition format (version 0.0.4).
    pub fn render(&self, gauges: &Gauges) -> String {
        let counts = self.counts();
        let mut out = String::new();
        family(
            &mut out,
            "otpd_audit_events_total",
            "counter",
            "Audit rows stored since otpd started, by event (otpctl audit --event).",
        );
        for event in Event::ALL {
            let name = event.as_str();
            let n = counts.events.get(name).copied().unwrap_or(0);
            sample(&mut out, "otpd_audit_events_total", &[("event", name)], n);
        }
        family(
            &mut out,
            "otpd_mails_delivered_total",
            "counter",
            "Code mails a server accepted (audit event mailed), by server.",
        );
        let mut servers: BTreeMap<&str, u64> = gauges
            .servers
            .iter()
            .map(|(name, _)| (name.as_str(), 0))
            .collect();
        for (server, n) in &counts.mailed {
            servers.insert(server.as_str(), *n);
        }
        for (server, n) in servers {
            sample(
                &mut out,
                "otpd_mails_delivered_total",
                &[("server", server)],
                n,
            );
        }
        family(
            &mut out,
            "otpd_skips_total",
            "counter",
            "Logins that needed no code (audit event skipped), by reason.",
        );
        let mut reasons: Vec<&str> = SKIP_REASONS.iter().map(|r| skip_reason_name(*r)).collect();
        if counts.skipped.contains_key(OTHER) {
            reasons.push(OTHER);
        }
        for reason in reasons {
            let n = counts.skipped.get(reason).copied().unwrap_or(0);
            sample(&mut out, "otpd_skips_total", &[("reason", reason)], n);
        }
        family(
            &mut out,
            "otpd_mail_delivery_seconds",
            "histogram",
            "How long mailing a code took, every server tried, delivered or not.",
        );
        counts
            .delivery
            .render(&mut out, "otpd_mail_delivery_seconds", &[]);
        family(
            &mut out,
            "otpd_login_request_seconds",
            "histogram",
            "How long login requests took, from the request read to its answer, by request.",
        );
        for (kind, histogram) in &counts.requests {
            histogram.render(&mut out, "otpd_login_request_seconds", &[("request", kind)]);
        }
        family(
            &mut out,
            "otpd_connections_total",
            "counter",
            "Connections to otpd's socket, admitted or refused by its fair share.",
        );
        sample(
            &mut out,
            "otpd_connections_total",
            &[("outcome", "admitted")],
            counts.admitted,
        );
        sample(
            &mut out,
            "otpd_connections_total",
            &[("outcome", "refused")],
            counts.refused,
        );
        family(
            &mut out,
            "otpd_connections_open",
            "gauge",
            "Connections to otpd's socket being served now.",
        );
        sample(&mut out, "otpd_connections_open", &[], counts.open);
        drop(counts);
        family(
            &mut out,
            "otpd_mail_server_up",
            "gauge",
            "1 when the mail server's last attempt succeeded or none was made since otpd started or reloaded, else 0.",
        );
        for (server, up) in &gauges.servers {
            sample(
                &mut out,
                "otpd_mail_server_up",
                &[("server", server)],
                u64::from(*up),
            );
        }
        family(
            &mut out,
            "otpd_directory_up",
            "gauge",
            "1 when the LDAP source's last lookup reached a server or none was made since otpd started or reloaded, else 0.",
        );
        for (source, up) in &gauges.directories {
            sample(
                &mut out,
                "otpd_directory_up",
                &[("source", source)],
                u64::from(*up),
            );
        }
        family(
            &mut out,
            "otpd_start_time_seconds",
            "gauge",
            "When otpd started, in unix seconds.",
        );
        let _ = writeln!(out, "otpd_start_time_seconds {}", gauges.start_time);
        out
    }
}

/// What `otpctl metrics` prints and the textfile holds: `shared`'s counters, each mail server
/// of `active` up or not (by the mailer's health), and otpd's start time.
pub fn exposition(shared: &Shared, active: &Active) -> String {
    let health = active.mailer.server_health();
    let servers = active
        .config
        .mail
        .servers
        .iter()
        .map(|server| {
            let live = health.iter().find(|h| h.name == server.name);
            let up = live.is_none_or(|h| h.failures_in_a_row == 0);
            (server.name.clone(), up)
        })
        .collect();
    let directories = active
        .ldap
        .iter()
        .map(|source| (source.label(), source.reachable()))
        .collect();
    shared.metrics.render(&Gauges {
        start_time: shared.started_at,
        servers,
        directories,
    })
}

/// A skip reason's name, as the `skipped` row's detail writes it.
pub fn skip_reason_name(reason: SkipReason) -> &'static str {
    match reason {
        SkipReason::ProtocolNotEnabled => "protocol_not_enabled",
        SkipReason::UnknownService => "unknown_service",
        SkipReason::ModeOff => "mode_off",
        SkipReason::NotEnrolled => "not_enrolled",
        SkipReason::NoAddress => "no_address",
        SkipReason::BreakGlass => "break_glass",
        SkipReason::Exempt => "exempt",
        SkipReason::DryRun => "dry_run",
    }
}

/// The `# HELP` and `# TYPE` lines of a metric family.
fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {}", escape_help(help));
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// One sample line: `name{label="value",...} n`.
fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], n: impl std::fmt::Display) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (i, (label, value)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{label}=\"{}\"", escape_label_value(value));
        }
        out.push('}');
    }
    let _ = writeln!(out, " {n}");
}

/// A label value as the exposition format wants it: `\` as `\\`, `"` as `\"`, a line feed as
/// `\n`. Nothing else needs escaping; the value is UTF-8.
pub fn escape_label_value(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            other => out.push(other),
        }
    }
    out
}

/// A `# HELP` text: `\` as `\\` and a line feed as `\n`.
fn escape_help(raw: &str) -> String {
    raw.replace('\\', "\\\\").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gauges() -> Gauges {
        Gauges {
            start_time: 1_700_000_000,
            servers: vec![("primary".into(), true), ("backup".into(), false)],
            directories: vec![("ldap:corp".into(), false)],
        }
    }

    fn line_of<'a>(text: &'a str, prefix: &str) -> &'a str {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no line {prefix} in\n{text}"))
    }

    #[test]
    fn every_event_has_a_series_from_the_start_at_zero() {
        let text = Metrics::default().render(&gauges());
        for event in Event::ALL {
            let line = format!("otpd_audit_events_total{{event=\"{}\"}} 0", event.as_str());
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
        for reason in SKIP_REASONS {
            let line = format!(
                "otpd_skips_total{{reason=\"{}\"}} 0",
                skip_reason_name(reason)
            );
            assert!(text.lines().any(|l| l == line), "{line} missing");
        }
        assert!(text.contains("otpd_mails_delivered_total{server=\"primary\"} 0\n"));
        assert!(text.contains("otpd_mail_server_up{server=\"primary\"} 1\n"));
        assert!(text.contains("otpd_mail_server_up{server=\"backup\"} 0\n"));
        assert!(text.contains("otpd_start_time_seconds 1700000000\n"));
    }

    #[test]
    fn every_family_has_help_and_type_before_its_samples() {
        let text = Metrics::default().render(&gauges());
        let mut declared = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                declared.push(rest.split(' ').next().unwrap().to_string());
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap();
                let family = name
                    .strip_suffix("_bucket")
                    .or_else(|| name.strip_suffix("_sum"))
                    .or_else(|| name.strip_suffix("_count"))
                    .filter(|f| declared.iter().any(|d| d == f))
                    .unwrap_or(name);
                assert_eq!(declared.last().map(String::as_str), Some(family), "{line}");
                assert!(text.contains(&format!("# HELP {family} ")));
            }
        }
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn rows_count_by_event_server_and_reason() {
        let metrics = Metrics::default();
        metrics.count_row("issued", Some("default"));
        metrics.count_row("issued", None);
        metrics.count_row("mailed", Some("backup"));
        metrics.count_row("skipped", Some("not_enrolled"));
        metrics.count_row("skipped", Some("no such reason"));
        metrics.count_row("no_such_event", None);
        let text = metrics.render(&gauges());
        assert_eq!(
            line_of(&text, "otpd_audit_events_total{event=\"issued\"}"),
            "otpd_audit_events_total{event=\"issued\"} 2"
        );
        assert_eq!(
            line_of(&text, "otpd_audit_events_total{event=\"mailed\"}"),
            "otpd_audit_events_total{event=\"mailed\"} 1"
        );
        assert_eq!(
            line_of(&text, "otpd_audit_events_total{event=\"skipped\"}"),
            "otpd_audit_events_total{event=\"skipped\"} 2"
        );
        assert!(text.contains("otpd_mails_delivered_total{server=\"backup\"} 1\n"));
        assert!(text.contains("otpd_mails_delivered_total{server=\"primary\"} 0\n"));
        assert!(text.contains("otpd_skips_total{reason=\"not_enrolled\"} 1\n"));
        assert!(text.contains("otpd_skips_total{reason=\"other\"} 1\n"));
        assert!(!text.contains("no_such"));
    }

    #[test]
    fn server_labels_stay_bounded() {
        let metrics = Metrics::default();
        for i in 0..1000 {
            metrics.count_row("mailed", Some(&format!("s{i}")));
        }
        let text = metrics.render(&gauges());
        let series = text
            .lines()
            .filter(|l| l.starts_with("otpd_mails_delivered_total{"))
            .count();
        // The two configured servers, the first MAX_SERVERS seen, and `other`.
        assert_eq!(series, MAX_SERVERS + 3);
        assert!(text.contains(&format!(
            "otpd_mails_delivered_total{{server=\"other\"}} {}\n",
            1000 - MAX_SERVERS
        )));
    }

    #[test]
    fn requests_connections_and_directories_have_their_series() {
        let metrics = Metrics::default();
        metrics.observe_request("begin", Duration::from_millis(3));
        metrics.observe_request("made-up", Duration::from_millis(3));
        metrics.connection(true);
        metrics.connection(true);
        metrics.connection(false);
        metrics.connection_closed();
        let text = metrics.render(&gauges());
        assert_eq!(
            line_of(
                &text,
                "otpd_login_request_seconds_bucket{request=\"begin\",le=\"0.0025\"}"
            ),
            "otpd_login_request_seconds_bucket{request=\"begin\",le=\"0.0025\"} 0"
        );
        assert_eq!(
            line_of(
                &text,
                "otpd_login_request_seconds_bucket{request=\"begin\",le=\"0.005\"}"
            ),
            "otpd_login_request_seconds_bucket{request=\"begin\",le=\"0.005\"} 1"
        );
        assert_eq!(
            line_of(
                &text,
                "otpd_login_request_seconds_count{request=\"answer\"}"
            ),
            "otpd_login_request_seconds_count{request=\"answer\"} 0"
        );
        assert!(
            !text.contains("made-up"),
            "only the known requests have series"
        );
        assert_eq!(
            line_of(&text, "otpd_connections_total{outcome=\"admitted\"}"),
            "otpd_connections_total{outcome=\"admitted\"} 2"
        );
        assert_eq!(
            line_of(&text, "otpd_connections_total{outcome=\"refused\"}"),
            "otpd_connections_total{outcome=\"refused\"} 1"
        );
        assert_eq!(
            line_of(&text, "otpd_connections_open "),
            "otpd_connections_open 1"
        );
        assert_eq!(
            line_of(&text, "otpd_directory_up{source=\"ldap:corp\"}"),
            "otpd_directory_up{source=\"ldap:corp\"} 0"
        );
    }

    #[test]
    fn label_values_are_escaped_per_the_exposition_format() {
        assert_eq!(escape_label_value(r#"a\b"c"#), r#"a\\b\"c"#);
        assert_eq!(escape_label_value("a\nb"), "a\\nb");
        assert_eq!(escape_label_value("mx.example.org"), "mx.example.org");
        let text = Metrics::default().render(&Gauges {
            start_time: 0,
            servers: vec![("evil\"} 1\nfake_metric{x=\"".into(), true)],
            directories: Vec::new(),
        });
        assert!(!text.lines().any(|l| l.starts_with("fake_metric")));
        assert!(text.contains(r#"otpd_mail_server_up{server="evil\"} 1\nfake_metric{x=\""} 1"#));
        assert_eq!(escape_help("a\\b\nc"), "a\\\\b\\nc");
    }

    #[test]
    fn delivery_latency_fills_cumulative_buckets() {
        let metrics = Metrics::default();
        metrics.observe_delivery(Duration::from_millis(30));
        metrics.observe_delivery(Duration::from_millis(700));
        metrics.observe_delivery(Duration::from_secs(120));
        let text = metrics.render(&gauges());
        assert!(text.contains("otpd_mail_delivery_seconds_bucket{le=\"0.05\"} 1\n"));
        assert!(text.contains("otpd_mail_delivery_seconds_bucket{le=\"1\"} 2\n"));
        assert!(text.contains("otpd_mail_delivery_seconds_bucket{le=\"60\"} 2\n"));
        assert!(text.contains("otpd_mail_delivery_seconds_bucket{le=\"+Inf\"} 3\n"));
        assert!(text.contains("otpd_mail_delivery_seconds_count 3\n"));
        assert!(text.contains("otpd_mail_delivery_seconds_sum 120.73"));
    }

    /// The `match` makes a new skip reason a compile error until it has a place, and then a
    /// test failure until [`SKIP_REASONS`] lists it.
    fn place(reason: SkipReason) -> usize {
        match reason {
            SkipReason::ProtocolNotEnabled => 0,
            SkipReason::UnknownService => 1,
            SkipReason::ModeOff => 2,
            SkipReason::NotEnrolled => 3,
            SkipReason::NoAddress => 4,
            SkipReason::BreakGlass => 5,
            SkipReason::Exempt => 6,
            SkipReason::DryRun => 7,
        }
    }

    #[test]
    fn every_skip_reason_has_a_series() {
        let mut listed = [false; SKIP_REASONS.len()];
        for reason in SKIP_REASONS {
            listed[place(reason)] = true;
        }
        assert!(listed.iter().all(|l| *l), "SKIP_REASONS misses a reason");
    }

    #[test]
    fn skip_reason_names_are_what_the_skipped_rows_say() {
        for reason in SKIP_REASONS {
            let serde = serde_json::to_string(&reason).unwrap();
            assert_eq!(serde.trim_matches('"'), skip_reason_name(reason));
        }
    }
}
