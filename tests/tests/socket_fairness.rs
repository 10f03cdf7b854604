//! End-to-end: an unprivileged local user flooding otpd's socket with slow connections cannot
//! deny root's logins (issue #15, "Deny every login").
//!
//! The attacker is a small Python program run as `nobody` through setpriv: it keeps several
//! hundred connections open, sends one byte a second on each (a valid header, then the body
//! byte by byte, so no request ever completes before otpd's deadline), and reopens every
//! connection otpd drops. Meanwhile root runs real libpam logins through the real module,
//! answered with the code from a real SMTP capture.

// Test code: a failed unwrap is how a test reports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use e2e_tests::libpam;
use e2e_tests::login::{LoginResult, login_with};
use e2e_tests::otpd::{Otpd, TestConfig};
use e2e_tests::smtp::{MAIL_WAIT, MailReader, SmtpCapture};
use e2e_tests::stack::PamConfDir;

/// Slow connections the attacker keeps open (more than the default `max_connections`, 256).
const ATTACK_CONNECTIONS: usize = 300;
/// The attacker stops by itself after this long, or once the test creates its stop file.
const ATTACK_SECONDS: u64 = 25;
/// ... or after this many connection attempts, whichever comes first.
const ATTACK_MAX_CONNECTS: usize = 200_000;
/// Real root logins during the attack.
const LOGINS: usize = 20;
/// One login starts this often, so the logins span more than otpd's request deadline (10 s):
/// the attacker's connections are cut and reopened while logins go on.
const LOGIN_EVERY: Duration = Duration::from_millis(600);

/// The attacker. Arguments: socket, connections, seconds, max connects, stop file. Prints
/// READY once its first connections are open, and one line of counts when it stops.
const ATTACKER: &str = r#"
import os, select, socket, sys, time

path, count, seconds, max_connects, stop = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
# A valid frame header announcing a 1000-byte body: otpd waits for the body until its deadline.
request = b"OT" + (1).to_bytes(2, "big") + (1000).to_bytes(4, "big") + b"x" * 1000
end = time.monotonic() + seconds
slots = [None] * count          # [socket, bytes sent, opened at]
connects = refused = cut = held_max = 0

def open_slot(i):
    global connects
    slots[i] = None
    if connects >= max_connects:
        return
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(1.0)
    try:
        s.connect(path)
    except OSError:
        s.close()
        return
    s.setblocking(False)
    connects += 1
    slots[i] = [s, 0, time.monotonic()]

def drop_slot(i):
    global refused, cut
    s = slots[i][0]
    try:
        answer = s.recv(4096)
    except OSError:
        answer = b""
    if b"too many" in answer or b"connection limit" in answer:
        refused += 1
    else:
        cut += 1
    s.close()
    open_slot(i)

for i in range(count):
    open_slot(i)
print("READY", flush=True)
next_byte = time.monotonic()
while time.monotonic() < end and not os.path.exists(stop) and connects < max_connects:
    poller = select.poll()
    by_fd = {}
    for i, slot in enumerate(slots):
        if slot is None:
            open_slot(i)
        else:
            poller.register(slot[0].fileno(), select.POLLIN | select.POLLHUP)
            by_fd[slot[0].fileno()] = i
    for fd, _ in poller.poll(50):
        drop_slot(by_fd[fd])
    now = time.monotonic()
    held_max = max(held_max, sum(1 for s in slots if s is not None and now - s[2] >= 2.0))
    if now >= next_byte:
        next_byte = now + 1.0
        for i, slot in enumerate(slots):
            if slot is None:
                continue
            try:
                slot[0].send(request[slot[1]:slot[1] + 1])
                slot[1] += 1
            except OSError:
                drop_slot(i)
    time.sleep(0.05)
for slot in slots:
    if slot is not None:
        slot[0].close()
print(f"connects={connects} refused={refused} cut={cut} held_max={held_max}", flush=True)
"#;

/// The attacker's counts.
#[derive(Debug)]
struct AttackReport {
    line: String,
    held_max: usize,
    connects: usize,
}

/// Runs `f` while the attacker floods `socket` as nobody; returns its result and the attacker's
/// report.
fn under_attack<T>(socket: &Path, f: impl FnOnce() -> T) -> (T, AttackReport) {
    let dir = tempfile::tempdir().unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).unwrap();
    let script = dir.path().join("attacker.py");
    fs::write(&script, ATTACKER).unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o644)).unwrap();
    let stop = dir.path().join("stop");
    let mut child = Command::new("setpriv")
        .args([
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            "--",
            "/usr/bin/python3",
        ])
        .arg(&script)
        .arg(socket)
        .arg(ATTACK_CONNECTIONS.to_string())
        .arg(ATTACK_SECONDS.to_string())
        .arg(ATTACK_MAX_CONNECTS.to_string())
        .arg(&stop)
        .stdout(Stdio::piped())
        .spawn()
        .expect("run the attacker as nobody");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "READY");
    // Let the first round of slow connections settle in before the logins start.
    std::thread::sleep(Duration::from_secs(2));
    let result = f();
    fs::write(&stop, "").unwrap();
    let line = lines.next().unwrap().unwrap();
    assert!(child.wait().unwrap().success(), "attacker failed: {line}");
    let field = |name: &str| -> usize {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {line:?}"))
    };
    let report = AttackReport {
        held_max: field("held_max"),
        connects: field("connects"),
        line: line.clone(),
    };
    (result, report)
}

/// The value at quantile `q` of `sorted` (nearest rank).
fn quantile(sorted: &[Duration], q: f64) -> Duration {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// One root login as `user`, answered with the code of the next mail; how it ended and how long
/// it took.
fn timed_login(pam: &PamConfDir, reader: &MailReader, user: &str) -> (LoginResult, Duration) {
    let reader = reader.clone();
    let mails_before = reader.messages().len();
    let start = Instant::now();
    let result = login_with(pam, "sshd", user, Some("192.0.2.15"), move |_| {
        reader
            .wait_for(mails_before + 1, MAIL_WAIT)
            .last()
            .map(|mail| mail.code())
            .unwrap_or_default()
    });
    (result, start.elapsed())
}

fn sorted_times(results: &[(LoginResult, Duration)]) -> Vec<Duration> {
    let mut times: Vec<Duration> = results.iter().map(|(_, t)| *t).collect();
    times.sort();
    times
}

#[test]
fn a_user_flooding_the_socket_with_slow_connections_cannot_deny_root_logins() {
    let smtp = SmtpCapture::start();
    let otpd = Otpd::start(&TestConfig::required(smtp.port));
    let pam = PamConfDir::new();
    pam.otp_then_permit("sshd", &otpd.socket, "timeout=3");
    let reader = smtp.reader();

    // A few logins without the attack, for comparison.
    let quiet: Vec<_> = (0..5)
        .map(|i| timed_login(&pam, &reader, &format!("quiet{i}")))
        .collect();
    let (results, attack) = under_attack(&otpd.socket, || {
        let first = Instant::now();
        (0..LOGINS)
            .map(|i| {
                let due = first + LOGIN_EVERY * u32::try_from(i).unwrap();
                std::thread::sleep(due.saturating_duration_since(Instant::now()));
                timed_login(&pam, &reader, &format!("fair{i:02}"))
            })
            .collect::<Vec<_>>()
    });

    let passed = results
        .iter()
        .filter(|(r, _)| libpam::code_name(r.code) == "PAM_SUCCESS")
        .count();
    let times = sorted_times(&results);
    let quiet_times = sorted_times(&quiet);
    println!(
        "socket fairness: {passed} of {LOGINS} root logins passed during the attack; \
         p50 {:?}, p99 {:?}, max {:?} (without the attack: p50 {:?}, max {:?}); attacker (uid \
         nobody, {ATTACK_CONNECTIONS} slow connections): {}",
        quantile(&times, 0.50),
        quantile(&times, 0.99),
        times.last().unwrap(),
        quantile(&quiet_times, 0.50),
        quiet_times.last().unwrap(),
        attack.line
    );
    let failed: Vec<_> = results
        .iter()
        .filter(|(r, _)| libpam::code_name(r.code) != "PAM_SUCCESS")
        .collect();
    assert!(failed.is_empty(), "root logins denied: {failed:?}");
    assert!(attack.connects >= ATTACK_CONNECTIONS, "{}", attack.line);
    assert!(
        attack.held_max <= common::config::DEFAULT_MAX_CONNECTIONS_PER_USER,
        "nobody held more connections than its own share: {}",
        attack.line
    );

    // The refusals were summed up, not logged one by one.
    let log = otpd.log();
    let refusal_lines: Vec<&str> = log.lines().filter(|l| l.contains("refused ")).collect();
    assert!(
        refusal_lines
            .iter()
            .any(|l| l.contains("most from uid 65534")),
        "{log}"
    );
    assert!(refusal_lines.len() <= 2, "{refusal_lines:#?}");
    println!("{}", refusal_lines.join("\n"));
}
