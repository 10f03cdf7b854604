//! otpd delivering through Debian's two real MTAs at their default limits (issue #14): a
//! private Postfix 3.7 and a private Exim 4.96 on loopback, each relaying what it accepts to a
//! capture server, real otpd processes, real libpam logins. The limits that matter are the
//! MTAs' own: Exim's `smtp_accept_max = 20` connections and
//! `smtp_accept_queue_per_connection = 10` (the 11th message on one connection waits for the
//! next queue run, 30 minutes on Debian), Postfix's rate and HELO restrictions when a site turns
//! them on, and both logging a client that leaves without QUIT.

// Test code: a failed unwrap is how a test reports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use e2e_tests::libpam;
use e2e_tests::login::{LoginResult, login_with, never_prompted};
use e2e_tests::mta::{
    AUTH_PASSWORD, AUTH_USER, CodeBook, Exim, EximConfig, Ports, Postfix, SystemView,
    UnprivilegedOtpd,
};
use e2e_tests::otpd::Otpd;
use e2e_tests::programs::users::TestUser;
use e2e_tests::smtp::{MAIL_WAIT, SmtpCapture};
use e2e_tests::stack::PamConfDir;

/// Logins in a burst: well above Exim's 20 connections and otpd's pool, below otpd's 256.
const BURST: usize = 200;
/// How long the whole burst may take until every code is at the capture: "at once" for a
/// person, with room for two busy cores.
const BURST_DEADLINE: Duration = Duration::from_secs(10);
/// How long an MTA may take to empty its queue after the last code arrived.
const QUEUE_DRAIN: Duration = Duration::from_secs(5);
/// Longer than otpd keeps an idle pooled connection, so by then it has closed them all.
const IDLE_WAIT: Duration = Duration::from_secs(15);

/// otpd's whole config: every user required to give a code, mailed to `USER@example.test`,
/// and `mail` (the `[mail]` keys after `from`, then any `[[mail.servers]]`).
fn config(socket: &Path, state_dir: &Path, mail: &str) -> String {
    format!(
        "[daemon]\nsocket = \"{}\"\nstate_dir = \"{}\"\n\n[directory]\nemail_template = \"{{user}}@example.test\"\n\n[defaults]\nmode = \"required\"\nresend_cooldown_seconds = 0\n\n[mail]\nfrom = \"otp@example.test\"\n{mail}",
        socket.display(),
        state_dir.display(),
    )
}

/// The `[mail]` keys that hand codes to the program `path`.
fn sendmail(path: &Path) -> String {
    format!(
        "transport = \"sendmail\"\nsendmail_path = \"{}\"\n",
        path.display()
    )
}

/// otpd on [`config`] with `mail`, and a PAM stack for `sshd` that waits up to 30 s for it.
fn start_with(mail: &str) -> (Otpd, PamConfDir) {
    let otpd = Otpd::start_with_text(|socket, state_dir| config(socket, state_dir, mail));
    let pam = PamConfDir::new();
    pam.otp_then_permit("sshd", &otpd.socket, "timeout=30 mail_timeout=30");
    (otpd, pam)
}

/// otpd mailing through `servers`, tried in order.
fn start(servers: &[String]) -> (Otpd, PamConfDir) {
    start_with(&format!("\n{}", servers.concat()))
}

/// One `[[mail.servers]]` entry on 127.0.0.1, with otpd's defaults for everything else.
fn server(name: &str, port: u16, security: &str, extra: &str) -> String {
    format!(
        "[[mail.servers]]\nname = \"{name}\"\nhost = \"127.0.0.1\"\nport = {port}\nsecurity = \"{security}\"\n{extra}\n\n"
    )
}

/// The server lines for AUTH as the MTAs' test account, trusting `ca`; the password file goes
/// into `dir`.
fn auth(dir: &Path, ca: &Path) -> String {
    let file = dir.join("smtp-password");
    std::fs::write(&file, format!("{AUTH_PASSWORD}\n")).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    format!(
        "username = \"{AUTH_USER}\"\npassword_file = \"{}\"\nca_file = \"{}\"\n",
        file.display(),
        ca.display()
    )
}

/// The three ways otpd reaches an MTA: its entry for each, given the MTA's ports and CA.
fn every_security_mode(
    smtp: u16,
    smtps: u16,
    ca: &Path,
    dir: &Path,
) -> Vec<(&'static str, String)> {
    vec![
        ("none", server("mta", smtp, "none", "")),
        ("starttls", server("mta", smtp, "starttls", &auth(dir, ca))),
        ("tls", server("mta", smtps, "tls", &auth(dir, ca))),
    ]
}

/// One `sshd` login as `user`, answering with the code mailed to `USER@example.test`.
fn login(pam: &PamConfDir, user: &str, book: &Arc<CodeBook>) -> LoginResult {
    let book = Arc::clone(book);
    let rcpt = format!("{user}@example.test");
    login_with(pam, "sshd", user, None, move |_| {
        // No code in time: a wrong answer, so the login fails and the test says which.
        book.code_for(&rcpt, MAIL_WAIT).unwrap_or_default()
    })
}

/// What a burst of logins did.
struct Burst {
    /// Logins that did not succeed: user, result.
    failed: Vec<(String, LoginResult)>,
    /// From the start until the last code arrived, when all did.
    all_delivered_after: Option<Duration>,
}

/// `count` logins at once, users `PREFIX0`..; waits until each has its code or gave up.
fn burst(pam: &Arc<PamConfDir>, prefix: &str, count: usize, book: &Arc<CodeBook>) -> Burst {
    let started = Instant::now();
    let logins: Vec<_> = (0..count)
        .map(|i| {
            let (pam, book, user) = (Arc::clone(pam), Arc::clone(book), format!("{prefix}{i}"));
            std::thread::spawn(move || {
                let result = login(&pam, &user, &book);
                (user, result)
            })
        })
        .collect();
    let mut all_delivered_after = None;
    while started.elapsed() < BURST_DEADLINE + MAIL_WAIT {
        if book.counts().len() >= count {
            all_delivered_after = Some(started.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let failed = logins
        .into_iter()
        .map(|h| h.join().unwrap())
        .filter(|(_, r)| r.code != libpam::PAM_SUCCESS)
        .collect();
    Burst {
        failed,
        all_delivered_after,
    }
}

/// The first few failed logins, for an assertion message.
fn describe(failed: &[(String, LoginResult)]) -> String {
    let shown: Vec<String> = failed
        .iter()
        .take(5)
        .map(|(user, r)| format!("{user}: {} {:?}", r.name(), r.errors))
        .collect();
    format!("{} logins failed, e.g. {shown:#?}", failed.len())
}

/// Recipients that got more than one mail.
fn mailed_twice(book: &CodeBook) -> Vec<(String, usize)> {
    let mut twice: Vec<(String, usize)> =
        book.counts().into_iter().filter(|(_, n)| *n > 1).collect();
    twice.sort();
    twice
}

/// Log lines containing any of `needles`.
fn lines_with(log: &str, needles: &[&str]) -> Vec<String> {
    log.lines()
        .filter(|l| needles.iter().any(|n| l.contains(n)))
        .map(str::to_string)
        .collect()
}

/// Log lines worth showing when logins failed: refusals, queued mail, broken sessions.
const MTA_TROUBLE: &[&str] = &[
    " 421 ",
    " 450 ",
    " 451 ",
    "rate limit exceeded",
    "no immediate delivery",
    "lost connection",
    "] lost ",
    "unexpected disconnection",
];

/// What Postfix logs when a client leaves or talks out of turn.
const POSTFIX_BAD_SESSION: &[&str] = &["lost connection", "improper command pipelining"];
/// What Exim logs when a client leaves without QUIT, closes TLS without close_notify, or
/// talks out of turn; and when it queued a message instead of delivering it.
const EXIM_BAD_SESSION: &[&str] = &[
    "non-properly terminated",
    "unexpected disconnection",
    "synchronization error",
    "no immediate delivery",
];

// --- every security mode, both MTAs ---

/// One login through the MTA on `ports` in each security mode, each mailed exactly once to
/// the capture behind `book`; `mta_log` is shown when one fails.
fn a_login_in_every_security_mode(
    prefix: &str,
    ports: Ports,
    ca: &Path,
    book: &Arc<CodeBook>,
    mta_log: &dyn Fn() -> String,
) {
    let dir = tempfile::tempdir().unwrap();
    for (mode, entry) in every_security_mode(ports.smtp, ports.smtps, ca, dir.path()) {
        let (otpd, pam) = start(&[entry]);
        let user = format!("{prefix}{mode}");
        let result = login(&pam, &user, book);
        assert_eq!(
            result.name(),
            "PAM_SUCCESS",
            "{mode}: {result:?}\notpd:\n{}\n{prefix} MTA:\n{}",
            otpd.log(),
            mta_log()
        );
        assert_eq!(book.counts()[&format!("{user}@example.test")], 1, "{mode}");
    }
}

#[test]
fn postfix_delivers_a_code_over_plain_loopback_starttls_with_auth_and_implicit_tls_with_auth() {
    let capture = SmtpCapture::start();
    let postfix = Postfix::start(&capture, &[]);
    let book = Arc::new(CodeBook::new(&[&capture]));
    a_login_in_every_security_mode("pf", postfix.ports, &postfix.ca_cert(), &book, &|| {
        postfix.log()
    });
    let log = postfix.log();
    assert_eq!(
        log.matches(&format!("sasl_username={AUTH_USER}@")).count(),
        2,
        "AUTH in the two TLS modes only:\n{log}"
    );
    assert_eq!(postfix.wait_queue_empty(QUEUE_DRAIN), 0, "{log}");
}

#[test]
fn exim_delivers_a_code_over_plain_loopback_starttls_with_auth_and_implicit_tls_with_auth() {
    let capture = SmtpCapture::start();
    let exim = Exim::start(&capture, &[]);
    let book = Arc::new(CodeBook::new(&[&capture]));
    a_login_in_every_security_mode("ex", exim.ports, &exim.ca_cert(), &book, &|| exim.log());
    let log = exim.log();
    let received: Vec<&str> = log.lines().filter(|l| l.contains(" <= ")).collect();
    assert_eq!(received.len(), 3, "{log}");
    assert!(
        !received[0].contains(" A="),
        "no AUTH in clear: {}",
        received[0]
    );
    for line in &received[1..] {
        assert!(line.contains(&format!(":{AUTH_USER} ")), "AUTH: {line}");
        assert!(line.contains(" X=TLS"), "TLS: {line}");
    }
    assert_eq!(exim.wait_queue_empty(QUEUE_DRAIN), 0, "{log}");
}

// --- bursts at default limits ---

/// 200 logins at once through one MTA at its defaults, otpd at its own defaults.
fn two_hundred_at_once(
    mta: &str,
    port: u16,
    capture: &SmtpCapture,
) -> (Otpd, Burst, Arc<CodeBook>) {
    let (otpd, pam) = start(&[server(mta, port, "none", "")]);
    let book = Arc::new(CodeBook::new(&[capture]));
    let result = burst(&Arc::new(pam), "u", BURST, &book);
    match result.all_delivered_after {
        Some(took) => eprintln!("{mta}: all {BURST} codes at the capture after {took:.2?}"),
        None => eprintln!(
            "{mta}: only {} of {BURST} codes arrived",
            book.counts().len()
        ),
    }
    (otpd, result, book)
}

fn assert_burst_delivered_at_once(burst: &Burst, book: &CodeBook, otpd: &Otpd, mta_log: &str) {
    assert!(
        burst.failed.is_empty(),
        "{}\notpd mail failures: {:#?}\nMTA log problems: {:#?}",
        describe(&burst.failed),
        otpd.events("mail_failed")
            .iter()
            .take(5)
            .collect::<Vec<_>>(),
        lines_with(
            mta_log,
            &["421", "450", "451", "no immediate delivery", "lost"]
        )
        .iter()
        .take(10)
        .collect::<Vec<_>>()
    );
    let took = burst.all_delivered_after.expect("every code arrived");
    assert!(took <= BURST_DEADLINE, "all codes took {took:?}");
    assert_eq!(book.counts().len(), BURST);
    assert!(mailed_twice(book).is_empty(), "{:?}", mailed_twice(book));
}

#[test]
fn two_hundred_logins_at_once_through_postfix_at_its_default_limits_all_get_their_code_at_once() {
    let capture = SmtpCapture::start();
    let postfix = Postfix::start(&capture, &[]);
    let (otpd, burst, book) = two_hundred_at_once("postfix", postfix.ports.smtp, &capture);
    assert_burst_delivered_at_once(&burst, &book, &otpd, &postfix.log());
    assert_eq!(postfix.wait_queue_empty(QUEUE_DRAIN), 0);
}

#[test]
fn two_hundred_logins_at_once_through_exim_at_its_default_limits_all_get_their_code_at_once() {
    let capture = SmtpCapture::start();
    let exim = Exim::start(&capture, &[]);
    let (otpd, burst, book) = two_hundred_at_once("exim", exim.ports.smtp, &capture);
    assert_burst_delivered_at_once(&burst, &book, &otpd, &exim.log());
    assert_eq!(exim.wait_queue_empty(QUEUE_DRAIN), 0, "{}", exim.log());
}

#[test]
fn twenty_logins_in_a_row_through_exim_on_pooled_connections_are_all_delivered_at_once() {
    let capture = SmtpCapture::start();
    let exim = Exim::start(&capture, &[]);
    let (otpd, pam) = start(&[server("exim", exim.ports.smtp, "none", "")]);
    let book = Arc::new(CodeBook::new(&[&capture]));
    for i in 0..20 {
        let result = login(&pam, &format!("row{i}"), &book);
        assert_eq!(
            result.name(),
            "PAM_SUCCESS",
            "login {} of 20: {result:?}\nexim queue: {}\nexim log:\n{}\notpd mailed {} codes",
            i + 1,
            exim.queue_len(),
            lines_with(&exim.log(), &["no immediate delivery"]).join("\n"),
            otpd.events("mailed").len()
        );
    }
    let log = exim.log();
    assert!(!log.contains("no immediate delivery"), "{log}");
    assert_eq!(exim.queue_len(), 0, "{log}");
}

// --- clean sessions ---

/// Postfix's lines for sessions that ended badly: [`POSTFIX_BAD_SESSION`], and a `disconnect
/// from` without `quit=1` (how Postfix records a client that closed between transactions
/// without QUIT: it writes no "lost connection" for that).
fn postfix_bad_sessions(log: &str) -> Vec<String> {
    let mut bad = lines_with(log, POSTFIX_BAD_SESSION);
    bad.extend(
        log.lines()
            .filter(|l| l.contains("]: disconnect from ") && !l.contains(" quit=1 "))
            .map(str::to_string),
    );
    bad
}

/// Postfix: every `connect from` has its `disconnect from` with `quit=1`.
fn postfix_sessions_ended_with_quit(log: &str) -> (usize, usize) {
    let connects = log.matches("]: connect from ").count();
    let quits = log
        .lines()
        .filter(|l| l.contains("]: disconnect from ") && l.contains(" quit=1 "))
        .count();
    (connects, quits)
}

/// Exim (`+smtp_connection`): every connection logged at its start ended with QUIT.
fn exim_sessions_ended_with_quit(log: &str) -> (usize, usize) {
    let connects = log.matches("TCP/IP connection count").count();
    let quits = log.matches(" closed by QUIT").count();
    (connects, quits)
}

#[test]
fn after_logins_and_an_idle_pause_neither_mta_logs_a_connection_otpd_dropped() {
    let (pf_capture, ex_capture) = (SmtpCapture::start(), SmtpCapture::start());
    let postfix = Postfix::start(&pf_capture, &[]);
    let exim = Exim::start(&ex_capture, &[]);
    let dir = tempfile::tempdir().unwrap();
    // STARTTLS and implicit TLS: a TLS session must also end with close_notify.
    let (mut pf_otpd, pf_pam) = start(&[server(
        "postfix",
        postfix.ports.smtps,
        "tls",
        &auth(dir.path(), &postfix.ca_cert()),
    )]);
    let (mut ex_otpd, ex_pam) = start(&[server(
        "exim",
        exim.ports.smtp,
        "starttls",
        &auth(dir.path(), &exim.ca_cert()),
    )]);
    let (pf_book, ex_book) = (
        Arc::new(CodeBook::new(&[&pf_capture])),
        Arc::new(CodeBook::new(&[&ex_capture])),
    );
    // Fewer at once than Exim's 20 connections: this test is about how sessions end.
    let pf_burst = burst(&Arc::new(pf_pam), "pf", 12, &pf_book);
    let ex_burst = burst(&Arc::new(ex_pam), "ex", 12, &ex_book);
    assert!(
        pf_burst.failed.is_empty(),
        "postfix: {}",
        describe(&pf_burst.failed)
    );
    assert!(
        ex_burst.failed.is_empty(),
        "exim: {}",
        describe(&ex_burst.failed)
    );
    // Every check is made and all that failed are reported together.
    let mut problems = Vec::new();
    let check = |problems: &mut Vec<String>, when: &str, pf_log: &str, ex_log: &str| {
        for (mta, bad) in [
            ("postfix", postfix_bad_sessions(pf_log)),
            ("exim", lines_with(ex_log, EXIM_BAD_SESSION)),
        ] {
            if !bad.is_empty() {
                let shown = &bad[..bad.len().min(3)];
                problems.push(format!(
                    "{mta} {when}: {} lines, e.g. {shown:#?}",
                    bad.len()
                ));
            }
        }
    };
    // Right after the logins, while otpd still holds its pooled connections.
    check(
        &mut problems,
        "during the logins",
        &postfix.log(),
        &exim.log(),
    );
    std::thread::sleep(IDLE_WAIT);
    let (pf_log, ex_log) = (postfix.log(), exim.log());
    let idled = format!("after otpd idled {IDLE_WAIT:?}");
    check(&mut problems, &idled, &pf_log, &ex_log);
    for (mta, (connects, quits)) in [
        ("postfix", postfix_sessions_ended_with_quit(&pf_log)),
        ("exim", exim_sessions_ended_with_quit(&ex_log)),
    ] {
        if quits != connects {
            problems.push(format!(
                "{mta}: of {connects} connections, {quits} ended with QUIT after otpd idled {IDLE_WAIT:?}"
            ));
        }
    }
    // And when otpd stops: whatever it still holds ends with QUIT too.
    assert!(pf_otpd.stop() && ex_otpd.stop(), "otpd stops cleanly");
    std::thread::sleep(Duration::from_millis(500));
    check(
        &mut problems,
        "after otpd stopped",
        &postfix.log(),
        &exim.log(),
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

// --- HELO ---

#[test]
fn a_postfix_that_rejects_non_fqdn_helo_names_accepts_otpds_default_ehlo_name() {
    let capture = SmtpCapture::start();
    let postfix = Postfix::start(
        &capture,
        &[
            "smtpd_helo_required = yes",
            "smtpd_helo_restrictions = reject_non_fqdn_helo_hostname",
        ],
    );
    let (otpd, pam) = start(&[server("postfix", postfix.ports.smtp, "none", "")]);
    let book = Arc::new(CodeBook::new(&[&capture]));
    let result = login(&pam, "helo", &book);
    assert_eq!(
        result.name(),
        "PAM_SUCCESS",
        "{result:?}\notpd: {:?}\npostfix: {:?}",
        otpd.events("mail_failed"),
        lines_with(&postfix.log(), &["reject"])
    );
}

// --- limits with a second server behind ---

/// 200 logins at once through `first` then a plain capture behind it: each code mailed once.
fn two_hundred_with_a_fallback(
    first: &str,
    port: u16,
    capture: &SmtpCapture,
    mta_log: impl Fn() -> String,
) -> usize {
    let fallback = SmtpCapture::start();
    let (otpd, pam) = start(&[
        server(first, port, "none", ""),
        server("fallback", fallback.port, "none", ""),
    ]);
    let book = Arc::new(CodeBook::new(&[capture, &fallback]));
    let burst = burst(&Arc::new(pam), "f", BURST, &book);
    std::thread::sleep(Duration::from_millis(500));
    let (via_first, via_fallback) = (capture.messages().len(), fallback.messages().len());
    eprintln!(
        "{first} with a fallback: {via_first} codes through {first}, {via_fallback} through the fallback, all after {:?}",
        burst.all_delivered_after
    );
    assert!(
        burst.failed.is_empty(),
        "{}\notpd: {:#?}\n{first}: {:#?}",
        describe(&burst.failed),
        otpd.events("mail_failed")
            .iter()
            .take(5)
            .collect::<Vec<_>>(),
        lines_with(&mta_log(), MTA_TROUBLE)
            .iter()
            .take(5)
            .collect::<Vec<_>>()
    );
    assert!(mailed_twice(&book).is_empty(), "{:?}", mailed_twice(&book));
    assert_eq!(via_first + via_fallback, BURST, "one mail per login");
    via_first
}

#[test]
fn an_exim_at_two_connections_with_a_fallback_behind_it_delivers_all_200_codes_exactly_once() {
    let capture = SmtpCapture::start();
    let exim = Exim::start(&capture, &["smtp_accept_max = 2"]);
    two_hundred_with_a_fallback("exim", exim.ports.smtp, &capture, || exim.log());
    assert_eq!(exim.wait_queue_empty(QUEUE_DRAIN), 0, "{}", exim.log());
}

#[test]
fn a_rate_limiting_postfix_with_a_fallback_behind_it_delivers_all_200_codes_exactly_once() {
    let capture = SmtpCapture::start();
    let postfix = Postfix::start(
        &capture,
        &[
            // 50 messages a minute from one client, loopback included (it is exempt by
            // default, as part of mynetworks).
            "smtpd_client_message_rate_limit = 50",
            "anvil_rate_time_unit = 60s",
            "smtpd_client_event_limit_exceptions =",
        ],
    );
    let via_postfix =
        two_hundred_with_a_fallback("postfix", postfix.ports.smtp, &capture, || postfix.log());
    assert!(
        via_postfix <= 50,
        "postfix took {via_postfix} in its minute"
    );
    let log = postfix.log();
    let limited = lines_with(&log, &["rate limit exceeded", " 450 "]);
    eprintln!(
        "postfix at its limit: {:#?}",
        &limited[..limited.len().min(2)]
    );
    assert!(
        log.contains("Message delivery request rate limit exceeded"),
        "the limit was reached:\n{log}"
    );
    assert_eq!(postfix.wait_queue_empty(QUEUE_DRAIN), 0);
}

// --- the sendmail transport ---

/// otpd runs as root here: a private MTA instance only accepts a sendmail with its own config
/// from root (see [`Postfix::sendmail`], [`Exim::sendmail`]).
#[test]
fn the_sendmail_transport_delivers_through_postfixs_and_exims_own_sendmail_with_the_envelope_sender()
 {
    let (pf_capture, ex_capture) = (SmtpCapture::start(), SmtpCapture::start());
    let postfix = Postfix::start(&pf_capture, &[]);
    let exim = Exim::start(&ex_capture, &[]);
    let book = Arc::new(CodeBook::new(&[&pf_capture, &ex_capture]));
    for (mta, program, capture) in [
        ("postfix", postfix.sendmail(), &pf_capture),
        ("exim", exim.sendmail(), &ex_capture),
    ] {
        let (otpd, pam) = start_with(&sendmail(&program));
        let user = format!("sm{mta}");
        let result = login(&pam, &user, &book);
        assert_eq!(
            result.name(),
            "PAM_SUCCESS",
            "{mta}: {result:?}\notpd:\n{}",
            otpd.log()
        );
        let mail = capture.last();
        assert_eq!(mail.rcpt_tos, vec![format!("{user}@example.test")]);
        let record: serde_json::Value = serde_json::from_slice(
            &std::fs::read(
                std::fs::read_dir(capture.mail_dir())
                    .unwrap()
                    .map(|e| e.unwrap().path())
                    .find(|p| p.extension().is_some_and(|x| x == "json"))
                    .unwrap(),
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(
            record["mail_from"], "otp@example.test",
            "{mta}: -f was honoured"
        );
    }
    assert!(
        postfix.log().contains("uid=0 from=<otp@example.test>"),
        "{}",
        postfix.log()
    );
    assert!(
        exim.log().contains("<= otp@example.test U=root P=local"),
        "{}",
        exim.log()
    );
    assert_eq!(postfix.wait_queue_empty(QUEUE_DRAIN), 0);
    assert_eq!(exim.wait_queue_empty(QUEUE_DRAIN), 0);
}

/// otpd as its own unprivileged user, as packaged, handing codes to the machine's MTA through
/// `sendmail` (in a mount namespace where the private instance is the machine's MTA).
fn unprivileged_sendmail_login(
    daemon_user: &TestUser,
    view: &SystemView,
    program: &Path,
    capture: &SmtpCapture,
) -> (LoginResult, serde_json::Value, String) {
    let otpd = UnprivilegedOtpd::start(view, daemon_user.who(), |socket, state_dir| {
        config(socket, state_dir, &sendmail(program))
    });
    let pam = PamConfDir::new();
    pam.otp_then_permit(
        "sshd",
        &otpd.socket,
        &format!(
            "timeout=30 mail_timeout=30 daemon_user={}",
            daemon_user.name
        ),
    );
    let book = Arc::new(CodeBook::new(&[capture]));
    let result = login(&pam, "unpriv", &book);
    let record = std::fs::read_dir(capture.mail_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap())
        .unwrap_or_default();
    (result, record, otpd.log())
}

#[test]
fn an_unprivileged_otpd_delivers_through_postfixs_sendmail_as_the_configured_sender() {
    let capture = SmtpCapture::start();
    let postfix = Postfix::start(&capture, &[]);
    let (result, mail, log) = unprivileged_sendmail_login(
        &TestUser::create(),
        &postfix.system_view(),
        Path::new("/usr/sbin/sendmail"),
        &capture,
    );
    assert_eq!(result.name(), "PAM_SUCCESS", "{result:?}\notpd:\n{log}");
    assert_eq!(mail["mail_from"], "otp@example.test", "{mail:#}");
    assert_eq!(
        mail["headers"]["Sender"],
        serde_json::Value::Null,
        "{mail:#}"
    );
}

/// Exim ignores `-f` from a caller that is not in its `trusted_users` (nor allowed by
/// `untrusted_set_sender`), and Debian's configuration trusts nobody but root and Debian-exim:
/// the envelope sender becomes `USER@qualify_domain` and a `Sender:` header is added, so
/// bounces, SPF and DMARC no longer follow `[mail] from`. With otpd's user in `trusted_users`,
/// the sender is kept.
#[test]
fn an_unprivileged_otpd_gets_its_codes_through_exims_sendmail_with_the_sender_kept_only_when_exim_trusts_it()
 {
    let daemon_user = TestUser::create();
    let capture = SmtpCapture::start();
    let exim = Exim::start(&capture, &[]);
    let (result, mail, log) =
        unprivileged_sendmail_login(&daemon_user, &exim.system_view(), &Exim::binary(), &capture);
    assert_eq!(result.name(), "PAM_SUCCESS", "{result:?}\notpd:\n{log}");
    assert_eq!(
        mail["mail_from"],
        format!("{}@exim.test", daemon_user.name),
        "{mail:#}"
    );
    assert!(
        mail["headers"]["Sender"]
            .as_str()
            .unwrap()
            .contains(&format!("<{}@exim.test>", daemon_user.name)),
        "{mail:#}"
    );
    drop(exim);
    let capture = SmtpCapture::start();
    let trusted = format!("trusted_users = {}", daemon_user.name);
    let exim = Exim::start(&capture, &[&trusted]);
    let (result, mail, log) =
        unprivileged_sendmail_login(&daemon_user, &exim.system_view(), &Exim::binary(), &capture);
    assert_eq!(result.name(), "PAM_SUCCESS", "{result:?}\notpd:\n{log}");
    assert_eq!(mail["mail_from"], "otp@example.test", "{mail:#}");
    assert_eq!(
        mail["headers"]["Sender"],
        serde_json::Value::Null,
        "{mail:#}"
    );
}

// --- refusals ---

/// An Exim at one connection, with that connection held by the test: the next client gets
/// Exim's `421 ... Too many concurrent SMTP connections` and the connection is closed.
fn a_busy_exim(capture: &SmtpCapture) -> (Exim, std::net::TcpStream) {
    let exim = Exim::start(capture, &["smtp_accept_max = 1"]);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut held = std::net::TcpStream::connect(("127.0.0.1", exim.ports.smtp)).unwrap();
        let mut greeting = [0u8; 256];
        let n = std::io::Read::read(&mut held, &mut greeting).unwrap();
        if greeting[..n].starts_with(b"220 ") {
            return (exim, held);
        }
        // The slot of an earlier connection is freed when the daemon reaps its process.
        assert!(
            Instant::now() < deadline,
            "{}",
            String::from_utf8_lossy(&greeting[..n])
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_421_then_close_fails_the_login_cleanly_alone_and_fails_over_to_the_next_server() {
    let capture = SmtpCapture::start();
    let (exim, held) = a_busy_exim(&capture);
    // Alone: the login fails, and otpd's log quotes Exim's reply.
    let (otpd, pam) = start(&[server("busy", exim.ports.smtp, "none", "")]);
    let result = login_with(&pam, "sshd", "alone", None, never_prompted);
    assert_eq!(result.name(), "PAM_AUTHINFO_UNAVAIL", "{result:?}");
    let failed = otpd.events("mail_failed");
    assert!(
        failed
            .iter()
            .any(|l| l.contains("421") && l.contains("Too many concurrent SMTP connections")),
        "{failed:#?}"
    );
    // With a second server: the code goes there, once.
    let next = SmtpCapture::start();
    let (otpd, pam) = start(&[
        server("busy", exim.ports.smtp, "none", ""),
        server("next", next.port, "none", ""),
    ]);
    let book = Arc::new(CodeBook::new(&[&capture, &next]));
    let result = login(&pam, "failover", &book);
    assert_eq!(result.name(), "PAM_SUCCESS", "{result:?}\n{}", otpd.log());
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(next.messages().len(), 1);
    assert!(capture.messages().is_empty());
    assert!(
        otpd.events("mailed")[0].contains("detail=next"),
        "{}",
        otpd.log()
    );
    drop(held);
}

#[test]
fn a_550_to_rcpt_then_close_fails_the_login_with_the_reply_and_no_other_server_is_tried() {
    let capture = SmtpCapture::start();
    let exim = Exim::start_with(
        &capture,
        &EximConfig {
            main: Vec::new(),
            rcpt_acl: vec![
                "  drop message = 550 5.1.1 <$local_part@$domain>: no such user here".into(),
            ],
        },
    );
    let next = SmtpCapture::start();
    let (otpd, pam) = start(&[
        server("exim", exim.ports.smtp, "none", ""),
        server("next", next.port, "none", ""),
    ]);
    // A prompt would mean a code went out somewhere: answer it wrongly and check where.
    let result = login_with(&pam, "sshd", "nobody", None, |_| String::new());
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        next.messages().len(),
        0,
        "the 550 must not fail over; otpd:\n{}\nexim:\n{}",
        otpd.log(),
        exim.log()
    );
    assert_eq!(result.name(), "PAM_AUTHINFO_UNAVAIL", "{result:?}");
    let failed = otpd.events("mail_failed");
    assert!(
        failed
            .iter()
            .any(|l| l.contains("550 5.1.1 <nobody@example.test>: no such user here")),
        "{failed:#?}"
    );
    assert!(std::fs::read_to_string(next.mail_dir().join("commands.log")).is_err());
    assert!(capture.messages().is_empty());
    assert!(
        exim.log().contains("closed by DROP in ACL"),
        "{}",
        exim.log()
    );
}
