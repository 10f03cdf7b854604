//! The mailer against scripted SMTP servers on loopback: failover, what stops it, the breaker
//! with an injected clock, pooling, deadlines, test mails and the sendmail transport.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use common::config::{Config, EmailAddress, MessageOverrides};
use common::secret::SecretString;

use super::test_server::{Script, TestServer};
use super::*;

/// A clock the test moves by hand.
#[derive(Debug)]
struct FakeClock(AtomicI64);

impl Clock for FakeClock {
    fn now(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

impl FakeClock {
    fn advance(&self, secs: i64) {
        self.0.fetch_add(secs, Ordering::SeqCst);
    }
}

fn config(mail: &str) -> MailConfig {
    let text = format!("[mail]\nfrom = \"otp@example.com\"\n{mail}");
    Config::parse(&text, Path::new("/test/otpd.toml"))
        .unwrap()
        .mail
}

/// A `[[mail.servers]]` entry for a loopback port.
fn server(name: &str, port: u16, extra: &str) -> String {
    server_with(name, port, "none", &format!("timeout_seconds = 2\n{extra}"))
}

/// A `[[mail.servers]]` entry for a loopback port with `security`, then `extra` lines.
fn server_with(name: &str, port: u16, security: &str, extra: &str) -> String {
    format!(
        "[[mail.servers]]\nname = \"{name}\"\nhost = \"127.0.0.1\"\nport = {port}\nsecurity = \"{security}\"\n{extra}\n"
    )
}

fn mailer(mail: &str) -> (Mailer, Arc<FakeClock>) {
    let clock = Arc::new(FakeClock(AtomicI64::new(1_800_000_000)));
    let mailer = Mailer::with_clock(&config(mail), clock.clone()).unwrap();
    (mailer, clock)
}

async fn send_code(mailer: &Mailer) -> Result<String, MailFailure> {
    let to = EmailAddress::parse("alice@example.com").unwrap();
    let code = SecretString::new("424242".into());
    let overrides = MessageOverrides::default();
    mailer
        .send(&CodeMail {
            values: Values {
                to: Some(&to),
                user: "alice",
                code: &code,
                host: "box1",
                service: "sshd",
                protocol: "ssh",
                rhost: Some("192.0.2.1"),
                issued_at: 1_800_000_000,
                expires_at: 1_800_000_600,
            },
            overrides: &overrides,
        })
        .await
}

#[tokio::test]
async fn a_dead_server_and_a_451_are_skipped_and_exactly_one_message_arrives() {
    let dead = TestServer::dead_port().await;
    let busy = TestServer::start(Script {
        end: Some("451 4.3.0 try again later"),
        ..Script::default()
    })
    .await;
    let good = TestServer::start(Script::default()).await;
    let (mailer, _) = mailer(&format!(
        "{}{}{}",
        server("dead", dead, ""),
        server("busy", busy.port, ""),
        server("good", good.port, "")
    ));
    assert_eq!(send_code(&mailer).await.unwrap(), "good");
    assert_eq!(good.messages().len(), 1);
    assert!(good.messages()[0].contains("424242"));
    let health = mailer.server_health();
    assert!(
        matches!(&health[0].last, Some((_, Err(e))) if e.starts_with("cannot connect to 127.0.0.1:"))
    );
    assert!(
        matches!(&health[1].last, Some((_, Err(e))) if e == "message refused: 451 4.3.0 try again later")
    );
    assert_eq!(health[2].last.as_ref().map(|l| l.1.clone()), Some(Ok(())));
}

#[tokio::test]
async fn a_refused_recipient_stops_failover() {
    a_refused_recipient_stops_failover_with(Vec::new(), false).await;
}

#[tokio::test]
async fn a_refused_recipient_stops_failover_when_pipelined() {
    a_refused_recipient_stops_failover_with(vec!["PIPELINING"], false).await;
}

/// Regression: Exim's 550 at RCPT followed by a close was taken for a network error, and the
/// code went to the next server although the recipient was refused for good.
#[tokio::test]
async fn a_550_for_the_recipient_then_a_close_stops_failover() {
    a_refused_recipient_stops_failover_with(Vec::new(), true).await;
    a_refused_recipient_stops_failover_with(vec!["PIPELINING"], true).await;
}

/// The first server refuses the recipient with a 550 (and hangs up after it when `close`).
async fn a_refused_recipient_stops_failover_with(extensions: Vec<&'static str>, close: bool) {
    let refusing = TestServer::start(Script {
        rcpt: "550 5.1.1 no such user",
        close_after_refusal: close,
        extensions,
        ..Script::default()
    })
    .await;
    let good = TestServer::start(Script::default()).await;
    let (mailer, _) = mailer(&format!(
        "{}{}",
        server("first", refusing.port, ""),
        server("second", good.port, "")
    ));
    let failure = send_code(&mailer).await.unwrap_err();
    assert_eq!(failure.attempts.len(), 1);
    assert_eq!(
        failure.attempts[0].error,
        "recipient refused: 550 5.1.1 no such user"
    );
    assert_eq!(good.connections(), 0, "the second server must not be tried");
    // The server did its job; it is not counted as failing.
    assert_eq!(mailer.server_health()[0].failures_in_a_row, 0);
}

#[tokio::test]
async fn silence_after_the_message_stops_failover_so_the_code_cannot_arrive_twice() {
    let silent = TestServer::start(Script {
        end: None,
        ..Script::default()
    })
    .await;
    let good = TestServer::start(Script::default()).await;
    let (mailer, _) = mailer(&format!(
        "{}{}",
        server("silent", silent.port, ""),
        server("second", good.port, "")
    ));
    let failure = send_code(&mailer).await.unwrap_err();
    assert_eq!(silent.messages().len(), 1);
    assert!(
        failure.attempts[0]
            .error
            .contains("may have been delivered"),
        "{failure}"
    );
    assert_eq!(good.connections(), 0);
}

/// The server lines for AUTH as otp with `password`, kept in a private file in `dir`.
fn auth_as_otp(dir: &tempfile::TempDir, password: &str) -> String {
    let file = dir.path().join("pw");
    std::fs::write(&file, format!("{password}\n")).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    format!("username = \"otp\"\npassword_file = \"{}\"", file.display())
}

#[tokio::test]
async fn a_refused_login_moves_on_to_the_next_server_with_the_servers_reply() {
    let dir = tempfile::tempdir().unwrap();
    let auth = TestServer::start(Script {
        extensions: vec!["AUTH PLAIN LOGIN"],
        auth: "535 5.7.8 Authentication credentials invalid",
        ..Script::default()
    })
    .await;
    let good = TestServer::start(Script::default()).await;
    let (mailer, _) = mailer(&format!(
        "{}{}",
        server("auth", auth.port, &auth_as_otp(&dir, "wrong")),
        server("good", good.port, "")
    ));
    assert_eq!(send_code(&mailer).await.unwrap(), "good");
    assert!(auth.commands().iter().all(|c| !c.starts_with("MAIL")));
    let results = mailer
        .send_test(
            &EmailAddress::parse("admin@example.com").unwrap(),
            Some("auth"),
        )
        .await;
    assert_eq!(
        results,
        vec![TestResult {
            server: "auth".into(),
            outcome: Err(
                "AUTH as \"otp\" refused: 535 5.7.8 Authentication credentials invalid".into()
            ),
        }]
    );
}

/// A server offering `mechanisms` with AUTH for user otp, password `p4ss word`.
async fn login_with(mechanisms: &'static str) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let relay = TestServer::start(Script {
        extensions: vec![mechanisms],
        ..Script::default()
    })
    .await;
    let (mailer, _) = mailer(&server(
        "relay",
        relay.port,
        &auth_as_otp(&dir, "p4ss word"),
    ));
    assert_eq!(send_code(&mailer).await.unwrap(), "relay");
    assert_eq!(relay.messages().len(), 1);
    relay.logins()
}

#[tokio::test]
async fn auth_plain_is_preferred_and_login_is_used_when_it_is_the_only_one() {
    assert_eq!(
        login_with("AUTH LOGIN PLAIN").await,
        vec!["PLAIN otp p4ss word".to_string()]
    );
    assert_eq!(
        login_with("AUTH LOGIN").await,
        vec!["LOGIN otp p4ss word".to_string()]
    );
}

#[tokio::test]
async fn starttls_that_is_not_offered_is_a_failure_and_nothing_is_sent_in_clear() {
    let plain = TestServer::start(Script::default()).await;
    let (mailer, _) = mailer(&server_with("tls-only", plain.port, "starttls", ""));
    let failure = send_code(&mailer).await.unwrap_err();
    assert!(
        failure.attempts[0]
            .error
            .starts_with("the server does not offer STARTTLS"),
        "{failure}"
    );
    let commands = plain.commands();
    assert!(
        commands
            .iter()
            .all(|c| c.starts_with("EHLO") || c == "QUIT"),
        "{commands:?}"
    );
    assert!(plain.messages().is_empty());
}

/// STARTTLS command injection (CVE-2011-0411 and kin): anything the server sends after its
/// 220, before the handshake, came in clear and may be an attacker's; it must not be read as
/// a reply inside TLS.
#[tokio::test]
async fn bytes_after_the_starttls_go_ahead_are_refused_before_any_handshake() {
    let injecting = TestServer::start(Script {
        extensions: vec!["STARTTLS"],
        starttls: "220 2.0.0 go ahead\r\n250 2.1.0 injected",
        ..Script::default()
    })
    .await;
    let (mailer, _) = mailer(&server_with("inject", injecting.port, "starttls", ""));
    let failure = send_code(&mailer).await.unwrap_err();
    assert!(
        failure.attempts[0]
            .error
            .contains("the server sent data after agreeing to STARTTLS"),
        "{failure}"
    );
    assert!(injecting.messages().is_empty());
    assert!(injecting.commands().iter().all(|c| !c.starts_with("MAIL")));
}

#[tokio::test]
async fn a_server_that_keeps_failing_is_skipped_for_a_while() {
    let flaky = TestServer::start(Script {
        hang_up: true,
        ..Script::default()
    })
    .await;
    let good = TestServer::start(Script::default()).await;
    let (mailer, clock) = mailer(&format!(
        "{}{}",
        server("flaky", flaky.port, ""),
        server("good", good.port, "")
    ));
    for _ in 0..3 {
        assert_eq!(send_code(&mailer).await.unwrap(), "good");
    }
    assert_eq!(flaky.connections(), 3);
    let health = &mailer.server_health()[0];
    assert_eq!(health.failures_in_a_row, 3);
    assert_eq!(health.skipped_until, Some(clock.now() + 10));

    clock.advance(9);
    assert_eq!(send_code(&mailer).await.unwrap(), "good");
    assert_eq!(flaky.connections(), 3, "skipped: not even connected to");

    clock.advance(1);
    assert_eq!(send_code(&mailer).await.unwrap(), "good");
    assert_eq!(flaky.connections(), 4, "tried again once the pause is over");
    assert_eq!(good.messages().len(), 5);
}

#[tokio::test]
async fn when_every_server_is_skipped_the_send_fails_at_once_and_says_why() {
    let flaky = TestServer::start(Script {
        hang_up: true,
        ..Script::default()
    })
    .await;
    let (mailer, _) = mailer(&server("flaky", flaky.port, ""));
    for _ in 0..3 {
        assert!(send_code(&mailer).await.is_err());
    }
    let failure = send_code(&mailer).await.unwrap_err();
    assert!(
        failure.attempts[0].error.starts_with("skipped until "),
        "{failure}"
    );
    assert_eq!(flaky.connections(), 3);
}

#[tokio::test]
async fn a_burst_of_messages_reuses_one_connection() {
    let good = TestServer::start(Script::default()).await;
    let (mailer, _) = mailer(&server("good", good.port, ""));
    for _ in 0..5 {
        send_code(&mailer).await.unwrap();
    }
    assert_eq!(good.messages().len(), 5);
    assert_eq!(good.connections(), 1);
    assert_eq!(
        good.commands()
            .iter()
            .filter(|c| *c == "RSET" || *c == "NOOP")
            .count(),
        0,
        "a pooled connection is not probed before use"
    );
}

#[tokio::test]
async fn a_connection_is_replaced_after_its_message_limit_with_a_quit_and_not_before() {
    let good = TestServer::start(Script::default()).await;
    let (mailer, _) = mailer(&server("good", good.port, ""));
    let limit = common::config::DEFAULT_MAX_MESSAGES_PER_CONNECTION as usize;
    for _ in 0..limit {
        send_code(&mailer).await.unwrap();
    }
    assert_eq!(good.connections(), 1);
    let quits = || good.commands().iter().filter(|c| *c == "QUIT").count();
    // The QUIT is its own task, after the send returned.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while quits() == 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(quits(), 1, "the worn-out connection says goodbye");
    send_code(&mailer).await.unwrap();
    assert_eq!(good.connections(), 2);
    assert_eq!(good.messages().len(), limit + 1);
}

/// Sends `count` code mails at once, each as its own task, and waits for all of them.
async fn send_at_once(mailer: &Arc<Mailer>, count: usize) {
    let tasks: Vec<_> = (0..count)
        .map(|_| {
            let mailer = Arc::clone(mailer);
            tokio::spawn(async move { send_code(&mailer).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
}

/// Regression: every send that found no idle connection opened a new one, and a burst of 200
/// logins met Exim's `smtp_accept_max` (20) with 421s.
#[tokio::test]
async fn a_burst_never_opens_more_than_max_connections_and_every_message_goes_out() {
    let good = TestServer::start(Script {
        extensions: vec!["PIPELINING"],
        ..Script::default()
    })
    .await;
    let (mailer, _) = mailer(&server("good", good.port, "max_connections = 2"));
    let mailer = Arc::new(mailer);
    send_at_once(&mailer, 30).await;
    assert_eq!(good.messages().len(), 30);
    assert_eq!(good.most_at_once(), 2, "never more than max_connections");
    let Transport::Smtp(servers) = &mailer.transport else {
        panic!("smtp")
    };
    assert!(servers[0].target.open_connections() <= 2);
}

#[tokio::test]
async fn a_server_at_its_connection_limit_is_waited_for_not_shut_out() {
    // The server takes one session at a time and greets the rest with 421, as Exim does past
    // smtp_accept_max; otpd may open four.
    let full = TestServer::start(Script {
        max_sessions: Some(1),
        ..Script::default()
    })
    .await;
    let (mailer, _) = mailer(&format!(
        "total_timeout_seconds = 15\n{}",
        server("full", full.port, "")
    ));
    let mailer = Arc::new(mailer);
    send_at_once(&mailer, 12).await;
    assert_eq!(full.messages().len(), 12, "each message once");
    let health = &mailer.server_health()[0];
    assert_eq!(
        (health.failures_in_a_row, health.skipped_until),
        (0, None),
        "a 421 is backpressure, not an outage"
    );
}

#[tokio::test]
async fn a_rate_limit_is_waited_out_within_the_deadline() {
    let limited = TestServer::start(Script {
        mail: "450 4.7.1 Error: too much mail from 127.0.0.1",
        refuse_first: Some(3),
        ..Script::default()
    })
    .await;
    let (mailer, _) = mailer(&server("limited", limited.port, ""));
    assert_eq!(send_code(&mailer).await.unwrap(), "limited");
    assert_eq!(limited.messages().len(), 1);
    assert_eq!(mailer.server_health()[0].failures_in_a_row, 0);
}

#[tokio::test]
async fn a_421_then_a_close_is_reported_as_the_421_and_moves_on() {
    for extensions in [Vec::new(), vec!["PIPELINING"]] {
        let closing = TestServer::start(Script {
            mail: "421 4.3.2 Service shutting down, closing connection",
            extensions,
            ..Script::default()
        })
        .await;
        let good = TestServer::start(Script::default()).await;
        let (mailer, _) = mailer(&format!(
            "{}{}",
            server("closing", closing.port, ""),
            server("good", good.port, "")
        ));
        assert_eq!(send_code(&mailer).await.unwrap(), "good");
        assert_eq!(
            mailer.server_health()[0].last,
            Some((
                1_800_000_000,
                Err("sender refused: 421 4.3.2 Service shutting down, closing connection".into())
            ))
        );
    }
}

/// Regression: a transaction refused under pipelining was dropped without RSET or QUIT
/// (Postfix logs "lost connection after DATA").
#[tokio::test]
async fn a_refused_recipient_is_followed_by_rset_and_the_connection_carries_the_next_mail() {
    let once = TestServer::start(Script {
        rcpt: "550 5.1.1 no such user",
        refuse_first: Some(1),
        extensions: vec!["PIPELINING"],
        ..Script::default()
    })
    .await;
    let (mailer, _) = mailer(&server("once", once.port, ""));
    assert!(send_code(&mailer).await.is_err());
    send_code(&mailer).await.unwrap();
    assert_eq!(
        once.connections(),
        1,
        "the same connection carried the next mail"
    );
    let commands = once.commands();
    let after_data = commands.iter().position(|c| c == "DATA").unwrap() + 1;
    assert_eq!(commands[after_data], "RSET", "{commands:?}");
}

#[tokio::test]
async fn failures_of_sends_in_flight_together_count_once() {
    let dead = TestServer::dead_port().await;
    let good = TestServer::start(Script::default()).await;
    let (mailer, _) = mailer(&format!(
        "{}{}",
        server("dead", dead, ""),
        server("good", good.port, "")
    ));
    let mailer = Arc::new(mailer);
    // Twenty at once, each refused by the dead port before any failure is recorded... or
    // after: either way far fewer than twenty count, and the server is not skipped for a burst.
    let started = mailer.server_health()[0].failures_in_a_row;
    assert_eq!(started, 0);
    send_at_once(&mailer, 20).await;
    assert_eq!(good.messages().len(), 20);
    let counted = mailer.server_health()[0].failures_in_a_row;
    assert!(counted < 20, "counted {counted}");
}

#[tokio::test]
async fn with_pipelining_mail_rcpt_and_data_go_out_together() {
    let server_with = |extensions| Script {
        extensions,
        ..Script::default()
    };
    let pipelining = TestServer::start(server_with(vec!["PIPELINING"])).await;
    let (piped, _) = mailer(&server("p", pipelining.port, ""));
    for _ in 0..2 {
        send_code(&piped).await.unwrap();
    }
    assert_eq!(pipelining.messages().len(), 2);
    assert!(pipelining.messages()[1].contains("424242"));
    // MAIL and RCPT of each message had the next command right behind them.
    assert_eq!(pipelining.pipelined(), 4, "{:?}", pipelining.commands());
    let plain = TestServer::start(server_with(Vec::new())).await;
    let (one_by_one, _) = mailer(&server("q", plain.port, ""));
    send_code(&one_by_one).await.unwrap();
    assert_eq!(plain.pipelined(), 0, "no PIPELINING offered, none used");
}

#[tokio::test]
async fn a_pooled_connection_the_server_closed_is_replaced_and_nothing_is_sent_twice() {
    let closing = TestServer::start(Script {
        close_after: Some(1),
        ..Script::default()
    })
    .await;
    let (mailer, _) = mailer(&server("closing", closing.port, ""));
    for _ in 0..3 {
        send_code(&mailer).await.unwrap();
        // Let the server's close reach the client, as an idle timeout would.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(closing.messages().len(), 3, "each code mailed exactly once");
    assert_eq!(
        closing.connections(),
        3,
        "each dropped connection was replaced"
    );
}

#[tokio::test]
async fn the_total_deadline_bounds_the_whole_send() {
    let mute1 = TestServer::start(Script {
        greet: false,
        ..Script::default()
    })
    .await;
    let mute2 = TestServer::start(Script {
        greet: false,
        ..Script::default()
    })
    .await;
    let good = TestServer::start(Script::default()).await;
    let (mailer, _) = mailer(&format!(
        "total_timeout_seconds = 1\n{}{}{}",
        server("mute1", mute1.port, ""),
        server("mute2", mute2.port, ""),
        server("good", good.port, "")
    ));
    let started = Instant::now();
    let failure = send_code(&mailer).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        failure.attempts[0].error,
        "no answer within 1.0s while connecting"
    );
    assert!(
        failure.attempts[1]
            .error
            .starts_with("not tried: the total deadline")
    );
    assert!(
        failure.attempts[2]
            .error
            .starts_with("not tried: the total deadline")
    );
    assert_eq!(good.connections(), 0);
}

#[tokio::test]
async fn test_mail_goes_through_each_server_on_a_fresh_connection() {
    let a = TestServer::start(Script::default()).await;
    let b = TestServer::start(Script {
        mail: "553 5.7.1 sender not allowed",
        ..Script::default()
    })
    .await;
    let (mailer, _) = mailer(&format!(
        "{}{}",
        server("a", a.port, ""),
        server("b", b.port, "")
    ));
    send_code(&mailer).await.unwrap();
    let to = EmailAddress::parse("admin@example.com").unwrap();
    let results = mailer.send_test(&to, None).await;
    assert_eq!(
        results,
        vec![
            TestResult {
                server: "a".into(),
                outcome: Ok(())
            },
            TestResult {
                server: "b".into(),
                outcome: Err("sender refused: 553 5.7.1 sender not allowed".into())
            },
        ]
    );
    assert_eq!(
        a.connections(),
        2,
        "the test does not reuse the pooled connection"
    );
    assert!(a.messages()[1].contains("otpd test message"));
    assert!(!a.messages()[1].contains("424242"));
    let unknown = mailer.send_test(&to, Some("c")).await;
    assert_eq!(unknown.len(), 1);
    assert_eq!(
        unknown[0].outcome,
        Err("no mail server is named \"c\"; the configured ones are: a, b".into())
    );
}

#[tokio::test]
async fn a_readable_password_file_stops_the_mailer_from_starting() {
    let dir = tempfile::tempdir().unwrap();
    let password = dir.path().join("pw");
    std::fs::write(&password, "secret\n").unwrap();
    std::fs::set_permissions(&password, std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = Mailer::new(&config(&server(
        "s",
        25,
        &format!(
            "username = \"u\"\npassword_file = \"{}\"",
            password.display()
        ),
    )))
    .unwrap_err()
    .to_string();
    assert!(e.starts_with("mail server s: password_file "), "{e}");
    assert!(e.contains("chmod 600"), "{e}");
}

/// A sendmail stand-in that records its arguments and the message, then exits with `status`.
fn fake_sendmail(dir: &Path, status: i32) -> std::path::PathBuf {
    let path = dir.join("sendmail");
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\necho \"$@\" > \"{dir}/args\"\ncat > \"{dir}/message\"\necho 'queue full' >&2\nexit {status}\n",
            dir = dir.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[tokio::test]
async fn without_servers_the_message_goes_to_sendmail_with_the_envelope_as_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let program = fake_sendmail(dir.path(), 0);
    let (mailer, _) = mailer(&format!("sendmail_path = \"{}\"\n", program.display()));
    assert_eq!(send_code(&mailer).await.unwrap(), "sendmail");
    let args = std::fs::read_to_string(dir.path().join("args")).unwrap();
    assert_eq!(args.trim(), "-i -f otp@example.com -- alice@example.com");
    let message = std::fs::read_to_string(dir.path().join("message")).unwrap();
    assert!(message.contains("Auto-Submitted: auto-generated"));
    assert!(mailer.server_health().is_empty());
}

#[tokio::test]
async fn a_failing_sendmail_reports_its_error_output() {
    let dir = tempfile::tempdir().unwrap();
    let program = fake_sendmail(dir.path(), 75);
    let (mailer, _) = mailer(&format!("sendmail_path = \"{}\"\n", program.display()));
    let failure = send_code(&mailer).await.unwrap_err();
    assert_eq!(failure.attempts[0].server, "sendmail");
    assert!(
        failure.attempts[0].error.ends_with("failed: queue full"),
        "{failure}"
    );
    let results = mailer
        .send_test(
            &EmailAddress::parse("a@example.com").unwrap(),
            Some("relay"),
        )
        .await;
    assert!(
        results[0]
            .outcome
            .as_ref()
            .unwrap_err()
            .contains("configured ones are: sendmail")
    );
}

#[tokio::test]
async fn the_configured_hello_name_is_sent_in_ehlo() {
    let good = TestServer::start(Script::default()).await;
    let (mailer, _) = mailer(&server(
        "good",
        good.port,
        "hello_name = \"box1.example.com\"",
    ));
    send_code(&mailer).await.unwrap();
    assert_eq!(good.commands()[0], "EHLO box1.example.com");
}

#[tokio::test]
async fn a_message_is_seven_bit_and_carries_the_code_once_per_part() {
    let good = TestServer::start(Script::default()).await;
    let (mailer, _) = mailer(&server("good", good.port, ""));
    send_code(&mailer).await.unwrap();
    let message = &good.messages()[0];
    assert!(message.is_ascii());
    assert!(message.contains("Your login code is: 424242"), "{message}");
    assert_eq!(
        message
            .matches("Content-Transfer-Encoding: quoted-printable")
            .count(),
        2
    );
}

#[test]
fn plaintext_to_loopback_is_not_warned_about_on_every_start() {
    for host in ["127.0.0.1", "::1", "localhost"] {
        let mail = config(&format!(
            "[[mail.servers]]\nname = \"local\"\nhost = \"{host}\"\nsecurity = \"none\"\n"
        ));
        assert_eq!(plaintext_warning(&mail.servers[0]), None, "{host}");
    }
}

#[test]
fn plaintext_to_another_host_is_warned_about() {
    let mail = config(
        "[[mail.servers]]\nname = \"relay\"\nhost = \"192.0.2.25\"\nsecurity = \"none\"\ninsecure_plaintext = true\n",
    );
    let warning = plaintext_warning(&mail.servers[0]).expect("a warning for a remote host");
    assert!(warning.contains("192.0.2.25"), "{warning}");
    assert!(warning.contains("clear text"), "{warning}");
}
