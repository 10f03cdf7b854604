//! End-to-end (issue #22): `otpctl metrics` after real logins through libpam (the built
//! module): Prometheus's own `promtool check metrics` accepts what it prints, every audit
//! counter equals the rows `otpctl audit` shows, and a reload (SIGHUP) keeps the counters.

// Test code: a failed unwrap is how a test reports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use e2e_tests::login::{LoginResult, login_with, never_prompted};
use e2e_tests::otpd::{Otpd, TestConfig};
use e2e_tests::programs::answers::{mailed_code, wrong};
use e2e_tests::smtp::SmtpCapture;
use e2e_tests::stack::PamConfDir;
use serde_json::Value;

const REMOTE: &str = "192.0.2.80";

struct Site {
    smtp: SmtpCapture,
    otpd: Otpd,
    pam: PamConfDir,
}

/// otpd requiring a code for ssh, with ftp not enabled (its logins are skipped), and the module
/// in sshd's and vsftpd's stacks.
fn site() -> Site {
    site_with("")
}

/// [`site`] with `sections` added to the config.
fn site_with(sections: &str) -> Site {
    let smtp = SmtpCapture::start();
    let mut config = TestConfig::required(smtp.port);
    config
        .body
        .push_str("resend_cooldown_seconds = 0\n\n[protocols]\nenabled = [\"ssh\"]\n");
    config.body.push_str(sections);
    let otpd = Otpd::start(&config);
    let pam = PamConfDir::new();
    pam.otp_then_permit("sshd", &otpd.socket, "");
    pam.otp_then_permit("vsftpd", &otpd.socket, "");
    Site { smtp, otpd, pam }
}

fn right_code(s: &Site, user: &str, nth: usize) -> LoginResult {
    let reader = s.smtp.reader();
    login_with(&s.pam, "sshd", user, Some(REMOTE), move |_| {
        mailed_code(&reader, nth)
    })
}

fn wrong_codes(s: &Site, user: &str) -> LoginResult {
    let reader = s.smtp.reader();
    login_with(&s.pam, "sshd", user, Some(REMOTE), move |_| {
        wrong(&mailed_code(&reader, 1))
    })
}

fn skipped(s: &Site, user: &str) -> LoginResult {
    login_with(&s.pam, "vsftpd", user, Some(REMOTE), never_prompted)
}

/// `otpctl ARGS` as root, or as the uid:gid `who`: exit status, stdout, stderr.
fn ctl(s: &Site, who: Option<(u32, u32)>, args: &[&str]) -> (i32, String, String) {
    s.otpd.otpctl(who, args)
}

/// What the real `otpctl metrics` prints, checked by the real `promtool check metrics`.
fn checked_metrics(s: &Site) -> String {
    let (status, text, err) = ctl(s, None, &["metrics"]);
    assert_eq!(status, 0, "{text}{err}");
    promtool_accepts(&text);
    text
}

/// Asserts that `promtool check metrics` finds nothing wrong with `text`.
fn promtool_accepts(text: &str) {
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus, see tests/install-deps)");
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let verdict = promtool.wait_with_output().unwrap();
    assert!(
        verdict.status.success() && verdict.stdout.is_empty() && verdict.stderr.is_empty(),
        "promtool check metrics: {}{}\non:\n{text}",
        String::from_utf8_lossy(&verdict.stdout),
        String::from_utf8_lossy(&verdict.stderr)
    );
}

/// The value of the sample `series` (name and labels, as printed).
fn sample(text: &str, series: &str) -> u64 {
    let prefix = format!("{series} ");
    text.lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .unwrap_or_else(|| panic!("no {series} in:\n{text}"))
        .parse()
        .unwrap()
}

/// `otpd_audit_events_total` by event name.
fn event_counters(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|l| l.strip_prefix("otpd_audit_events_total{event=\""))
        .map(|rest| {
            let (event, n) = rest.split_once("\"} ").unwrap();
            (event.to_string(), n.parse().unwrap())
        })
        .collect()
}

/// The audit rows of the last hour, counted by event, as the real `otpctl audit` shows them.
fn audit_rows(s: &Site) -> BTreeMap<String, u64> {
    let (status, out, err) = ctl(
        s,
        None,
        &["audit", "--since", "1h", "--limit", "10000", "--json"],
    );
    assert_eq!(status, 0, "{out}{err}");
    let answer: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        answer["more_before"],
        Value::Null,
        "one page holds them all"
    );
    let mut counts = BTreeMap::new();
    for row in answer["rows"].as_array().unwrap() {
        *counts
            .entry(row["event"].as_str().unwrap().to_string())
            .or_insert(0) += 1;
    }
    counts
}

/// Every counter equals the rows of its event (events without rows at zero).
fn assert_counters_match_rows(s: &Site, text: &str) {
    let counters = event_counters(text);
    let rows = audit_rows(s);
    for (event, n) in &rows {
        assert_eq!(
            counters.get(event),
            Some(n),
            "{event}: {counters:?} {rows:?}"
        );
    }
    for (event, n) in &counters {
        assert_eq!(*n, rows.get(event).copied().unwrap_or(0), "{event}");
    }
}

#[test]
fn otpctl_metrics_passes_promtool_and_its_counters_equal_the_audit_rows() {
    let s = site();
    // Before any login every series is there, at zero.
    let fresh = checked_metrics(&s);
    for event in [
        "issued",
        "mailed",
        "verified",
        "wrong_code",
        "skipped",
        "would_ask",
    ] {
        assert_eq!(event_counters(&fresh).get(event), Some(&0), "{fresh}");
    }
    assert!(event_counters(&fresh).values().all(|n| *n == 0), "{fresh}");
    assert_eq!(sample(&fresh, "otpd_mail_server_up{server=\"capture\"}"), 1);

    assert_eq!(right_code(&s, "alice", 1).name(), "PAM_SUCCESS");
    let bob = wrong_codes(&s, "bob");
    assert_ne!(bob.name(), "PAM_SUCCESS", "{bob:?}");
    assert_eq!(skipped(&s, "dave").name(), "PAM_SUCCESS");

    let text = checked_metrics(&s);
    let counters = event_counters(&text);
    assert_eq!(counters["issued"], 2, "{text}");
    assert_eq!(counters["mailed"], 2, "{text}");
    assert_eq!(counters["verified"], 1, "{text}");
    assert!(counters["wrong_code"] >= 1, "{text}");
    assert_eq!(counters["skipped"], 1, "{text}");
    assert_eq!(
        sample(&text, "otpd_mails_delivered_total{server=\"capture\"}"),
        2
    );
    assert_eq!(
        sample(&text, "otpd_skips_total{reason=\"protocol_not_enabled\"}"),
        1
    );
    assert_eq!(sample(&text, "otpd_mail_delivery_seconds_count"), 2);
    // Each login asked otpd: alice and bob a begin (bob's wrong answers answers), dave's skip
    // a probe of the split ftp stack or a begin.
    assert_eq!(
        sample(
            &text,
            "otpd_login_request_seconds_count{request=\"answer\"}"
        ),
        counters["verified"] + counters["wrong_code"],
        "{text}"
    );
    assert!(sample(&text, "otpd_login_request_seconds_count{request=\"begin\"}") >= 2);
    assert!(sample(&text, "otpd_connections_total{outcome=\"admitted\"}") >= 5);
    assert_eq!(
        sample(&text, "otpd_connections_total{outcome=\"refused\"}"),
        0
    );
    // otpctl's own connection is the one open while it asks.
    assert_eq!(sample(&text, "otpd_connections_open"), 1, "{text}");
    assert_counters_match_rows(&s, &text);

    // Only root and admins see them; a refused caller's row is counted too.
    let (status, out, err) = ctl(&s, Some((65534, 65534)), &["metrics"]);
    assert_eq!(status, 4, "{out}{err}");
    assert!(!out.contains("otpd_audit_events_total"), "{out}");
    let after_refusal = checked_metrics(&s);
    assert_eq!(event_counters(&after_refusal)["admin_refused"], 1);
    assert_counters_match_rows(&s, &after_refusal);
}

#[test]
fn the_counters_survive_a_reload() {
    let s = site();
    assert_eq!(right_code(&s, "alice", 1).name(), "PAM_SUCCESS");
    assert_eq!(skipped(&s, "dave").name(), "PAM_SUCCESS");
    let before = event_counters(&checked_metrics(&s));
    assert_eq!(before["verified"], 1);

    let text = s
        .otpd
        .config_text()
        .replace("resend_cooldown_seconds = 0", "resend_cooldown_seconds = 1");
    s.otpd.reload_with(&text);
    assert!(
        s.otpd.log().contains("reloaded"),
        "the reload was refused:\n{}",
        s.otpd.log()
    );
    let reloaded = checked_metrics(&s);
    assert_eq!(event_counters(&reloaded), before);

    assert_eq!(right_code(&s, "carol", 2).name(), "PAM_SUCCESS");
    let after = checked_metrics(&s);
    assert_eq!(event_counters(&after)["verified"], 2, "{after}");
    assert_eq!(
        sample(&after, "otpd_mails_delivered_total{server=\"capture\"}"),
        2
    );
    assert_counters_match_rows(&s, &after);
}

/// The textfile's text once `done` holds for it, within a few intervals.
fn textfile_when(path: &std::path::Path, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if done(&text) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "the textfile never got there:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn otpd_writes_the_node_exporter_textfile_at_its_interval() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("otpd.prom");
    let s = site_with(&format!(
        "\n[metrics]\ntextfile = \"{}\"\ninterval_seconds = 1\n",
        path.display()
    ));
    let first = textfile_when(&path, |t| t.contains("otpd_start_time_seconds"));
    promtool_accepts(&first);
    assert_eq!(event_counters(&first)["verified"], 0, "{first}");

    assert_eq!(right_code(&s, "alice", 1).name(), "PAM_SUCCESS");
    let later = textfile_when(&path, |t| {
        event_counters(t).get("verified").copied() == Some(1)
    });
    promtool_accepts(&later);
    assert_eq!(event_counters(&later), event_counters(&checked_metrics(&s)));
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["otpd.prom"], "a temporary file stayed");
}

/// `curl` for `url` with `args`: the HTTP status and the body.
fn curl(url: &str, args: &[&str]) -> (String, String) {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "5", "-w", "\n%{http_code}"])
        .args(args)
        .arg(url)
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", &text));
    (status.to_string(), body.to_string())
}

/// `[metrics] listen`: the real curl reads from otpd's loopback port what `otpctl metrics`
/// prints (promtool accepts it); other paths and methods are refused.
#[test]
fn otpd_serves_the_metrics_on_its_loopback_port() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let s = site_with(&format!("\n[metrics]\nlisten = \"127.0.0.1:{port}\"\n"));
    assert_eq!(right_code(&s, "alice", 1).name(), "PAM_SUCCESS");
    let url = format!("http://127.0.0.1:{port}/metrics");
    let (status, served) = curl(&url, &[]);
    assert_eq!(status, "200", "{served}\n{}", s.otpd.log());
    promtool_accepts(&served);
    assert_eq!(
        event_counters(&served),
        event_counters(&checked_metrics(&s))
    );
    assert_eq!(event_counters(&served)["verified"], 1, "{served}");
    assert_eq!(curl(&url, &["-X", "POST"]).0, "405");
    assert_eq!(curl(&format!("http://127.0.0.1:{port}/"), &[]).0, "404");
}
