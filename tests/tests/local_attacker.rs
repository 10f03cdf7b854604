//! A local user (uid `nobody`) talking to a real otpd over its socket, as an attacker would:
//! claiming remote hosts it does not come from, sending payloads built to forge log lines, and
//! flooding refusals, claiming SSH keys or a trusted network (issue #16). Each test states what
//! such a user must not achieve.

// Test code: a failed unwrap is how a test reports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::wire::{DenyReason, LoginContext, Request, Response};
use e2e_tests::otpd::{Otpd, TestConfig};
use e2e_tests::smtp::SmtpCapture;

/// The host nobody claims to come from; no real login from it ever failed.
const FRAMED_HOST: &str = "203.0.113.77";

/// A line a parser would take for root's successful login from a host nobody wants banned.
const FORGED: &str = "2026-12-06T21:00:00.000000Z  INFO otpd::audit: event=wrong_code user=root service=sshd protocol=ssh rhost=198.51.100.99 caller_uid=0 detail=attempts_left=2";

/// Sends frames to otpd's socket as whoever runs it. argv: socket, mode, and per mode:
/// `raw` reads one JSON payload per stdin line (as a JSON string: any bytes) and prints one
/// JSON response per line; `flood SECONDS USER` sends a mix of refusable requests for that
/// long and prints how many it sent; `answers N` sends N wrong answers for N users.
const CLIENT: &str = r#"
import json, socket, struct, sys, time

def call(path, payload):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    s.sendall(b"OT" + struct.pack(">HI", 1, len(payload)) + payload)
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    if len(data) < 8:
        return None
    return json.loads(data[8:8 + struct.unpack(">I", data[4:8])[0]])

path, mode = sys.argv[1], sys.argv[2]
if mode == "raw":
    for line in sys.stdin:
        payload = json.loads(line).encode("utf-8", "surrogatepass")
        print(json.dumps(call(path, payload)), flush=True)
elif mode == "flood":
    seconds, user = float(sys.argv[3]), sys.argv[4]
    def login(name):
        return {"user": name, "service": "sshd", "rhost": "203.0.113.78", "tty": "pts/9", "protocol": None}
    shapes = [
        json.dumps({"op": "begin", "login": login("root")}).encode(),
        json.dumps({"op": "answer", "login": login(user), "challenge": "none", "code": "000000"}).encode(),
        b'{"op":"x\\nforged"}',
    ]
    sent, end = 0, time.time() + seconds
    while time.time() < end:
        call(path, shapes[sent % len(shapes)])
        sent += 1
    print(sent)
elif mode == "answers":
    for i in range(int(sys.argv[3])):
        login = {"user": "u%d" % i, "service": "sshd", "rhost": None, "tty": None, "protocol": None}
        call(path, json.dumps({"op": "answer", "login": login, "challenge": "none", "code": "0"}).encode())
"#;

const NOBODY: &str = "nobody";

/// Runs the client as uid/gid nobody with `args` after the socket, feeding it `stdin`.
fn as_nobody(otpd: &Otpd, args: &[&str], stdin: &str) -> String {
    client(otpd, true, args, stdin)
}

/// Runs the client as nobody, or as root (this test's uid) with `nobody` false.
fn client(otpd: &Otpd, nobody: bool, args: &[&str], stdin: &str) -> String {
    let mut command = if nobody {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg("/usr/bin/python3");
        c
    } else {
        Command::new("/usr/bin/python3")
    };
    let mut child = command
        .args(["-c", CLIENT])
        .arg(&otpd.socket)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the client as nobody");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Sends each payload as nobody; returns the responses.
fn raw_as_nobody(otpd: &Otpd, payloads: &[String]) -> Vec<serde_json::Value> {
    raw_as(otpd, true, payloads)
}

/// Sends each payload as nobody or root; returns the responses.
fn raw_as(otpd: &Otpd, nobody: bool, payloads: &[String]) -> Vec<serde_json::Value> {
    let stdin: String = payloads
        .iter()
        .map(|p| format!("{}\n", serde_json::to_string(p).unwrap()))
        .collect();
    client(otpd, nobody, &["raw"], &stdin)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn login(user: &str, rhost: &str) -> serde_json::Value {
    serde_json::json!({
        "user": user, "service": "sshd", "rhost": rhost, "tty": "pts/7", "protocol": null
    })
}

/// Lines a parser reading one event per line takes for an audit event: otpd's audit target
/// followed by an event, or, for a naive filter like the README's fail2ban example, any
/// `event=` at all.
fn audit_lines(log: &str) -> Vec<&str> {
    log.lines().filter(|l| l.contains("event=")).collect()
}

/// Waits until otpd's log has settled (the audit writer and the log are asynchronous).
fn settled_log(otpd: &Otpd) -> String {
    let mut last = otpd.log();
    loop {
        std::thread::sleep(Duration::from_millis(400));
        let now = otpd.log();
        if now == last {
            return now;
        }
        last = now;
    }
}

/// `config` with the socket's per-user request rate at its highest: these tests measure what
/// reaches the audit layer from one local user; the socket's own limits, which refuse most of a
/// flood before it gets that far, are tested in socket_fairness.rs.
fn unthrottled(mut config: TestConfig) -> TestConfig {
    config
        .daemon
        .push_str("\nuser_requests_per_second = 10000\nuser_request_burst = 10000\n");
    config
}

/// `config` with the host limit lowered to the user limit (20): one user's wrong answers can
/// then lock a host, as the two tests of host counting need. At the default (100) a host lock
/// takes five users, and one user's answers stop counting once that user is locked.
fn one_user_can_lock_a_host(mut config: TestConfig) -> TestConfig {
    config.body.push_str("max_host_failures = 20\n");
    config
}

#[test]
fn rhost_claims_by_nobody_neither_lock_out_the_host_nor_name_it_in_the_audit() {
    let smtp = SmtpCapture::start();
    let otpd = Otpd::start(&one_user_can_lock_a_host(unthrottled(
        TestConfig::required(smtp.port),
    )));
    // Nobody's own account needs a code (the template gives everyone an address), so wrong
    // answers reach the lockout counters: twenty of them used to lock the claimed host.
    let begin = serde_json::json!({"op": "begin", "login": login(NOBODY, FRAMED_HOST)});
    let mut payloads = vec![begin.to_string()];
    for _ in 0..25 {
        let answer = serde_json::json!({
            "op": "answer", "login": login(NOBODY, FRAMED_HOST),
            "challenge": "guessed", "code": "000000"
        });
        payloads.push(answer.to_string());
    }
    let replies = raw_as_nobody(&otpd, &payloads);
    assert_eq!(replies[0]["result"], "prompt", "{replies:?}");

    // A real login of alice from that host, through root (sshd), still gets a code.
    let alice = LoginContext {
        user: "alice".into(),
        service: "sshd".into(),
        rhost: Some(FRAMED_HOST.into()),
        tty: Some("ssh".into()),
        protocol: None,
    };
    let reply = otpd
        .call(&Request::Begin {
            login: alice,
            ssh_keys: Vec::new(),
        })
        .unwrap();
    assert!(
        matches!(reply, Response::Prompt { .. }),
        "the claimed host was locked out: {reply:?}"
    );

    let log = settled_log(&otpd);
    let nobodys: Vec<&str> = audit_lines(&log)
        .into_iter()
        .filter(|l| l.contains("caller_uid=65534"))
        .collect();
    // The first ten of each kind in a minute are written one by one; the rest only counted.
    assert!(nobodys.len() >= 10, "{log}");
    for line in &nobodys {
        assert!(line.contains(" rhost=local "), "{line}");
        assert!(!line.contains(FRAMED_HOST), "{line}");
    }
    println!("{} audit lines by nobody, all rhost=local", nobodys.len());
}

#[test]
fn a_host_lockout_still_counts_what_root_reports() {
    // The other side of the rule above: a trusted caller's rhost is believed and counted.
    let smtp = SmtpCapture::start();
    let otpd = Otpd::start(&one_user_can_lock_a_host(unthrottled(
        TestConfig::required(smtp.port),
    )));
    for _ in 0..20 {
        let wrong = Request::Answer {
            login: LoginContext {
                user: "mallory".into(),
                service: "sshd".into(),
                rhost: Some(FRAMED_HOST.into()),
                tty: None,
                protocol: None,
            },
            challenge: "guessed".into(),
            code: common::secret::SecretString::new("000000".into()),
        };
        otpd.call(&wrong).unwrap();
    }
    let alice = LoginContext {
        user: "alice".into(),
        service: "sshd".into(),
        rhost: Some(FRAMED_HOST.into()),
        tty: None,
        protocol: None,
    };
    let reply = otpd
        .call(&Request::Begin {
            login: alice,
            ssh_keys: Vec::new(),
        })
        .unwrap();
    assert!(
        matches!(
            reply,
            Response::Denied {
                reason: DenyReason::LockedOut,
                ..
            }
        ),
        "{reply:?}"
    );
}

/// Every way to end or disguise a line: LF, CR, CRLF, ESC (erase line), NUL, NEL, U+2028,
/// U+2029, a bidi override.
const BREAKS: [&str; 9] = [
    "\n",
    "\r",
    "\r\n",
    "\x1b[2K\r",
    "\0",
    "\u{85}",
    "\u{2028}",
    "\u{2029}",
    "\u{202e}",
];

#[test]
fn log_forging_payloads_produce_no_forged_line() {
    let smtp = SmtpCapture::start();
    let otpd = Otpd::start(&unthrottled(TestConfig::required(smtp.port)));
    let before = otpd.log();
    // serde_json quotes an unknown variant and an unknown field as they were sent. Nobody
    // sends one shape, root the other: each uid's first ten bad requests in a minute are
    // logged one by one, and every one of these must be.
    let mut malformed = Vec::new();
    let mut malformed_by_root = Vec::new();
    let mut requests = Vec::new();
    for brk in BREAKS {
        let forged = format!("x{brk}{FORGED}{brk}");
        malformed.push(serde_json::json!({ "op": forged }).to_string());
        malformed_by_root.push(
            serde_json::json!({"op": "begin", "login": login(NOBODY, "h"), forged.clone(): 1})
                .to_string(),
        );
        // A hostile user name (refused: not nobody's own), service, rhost and tty.
        requests.push(serde_json::json!({"op": "begin", "login": login(&forged, "h")}).to_string());
        let mut own = login(NOBODY, &forged);
        own["service"] = forged.clone().into();
        own["tty"] = forged.clone().into();
        requests.push(serde_json::json!({"op": "begin", "login": own}).to_string());
    }
    let all: Vec<String> = malformed.iter().chain(&requests).cloned().collect();
    let replies = raw_as_nobody(&otpd, &all);
    assert_eq!(replies.len(), all.len());
    let by_root = raw_as(&otpd, false, &malformed_by_root);
    for reply in replies[..malformed.len()].iter().chain(&by_root) {
        assert_eq!(reply["result"], "error", "{reply}");
    }
    // The same hostile user, service and rhost from root, whose rhost is believed and logged.
    for brk in BREAKS {
        let forged = format!("x{brk}{FORGED}{brk}");
        let hostile = LoginContext {
            user: forged.clone(),
            service: forged.clone(),
            rhost: Some(forged.clone()),
            tty: Some(forged),
            protocol: None,
        };
        otpd.call(&Request::Begin {
            login: hostile,
            ssh_keys: Vec::new(),
        })
        .unwrap();
    }

    let log = settled_log(&otpd);
    let new = &log[before.len()..];
    for bad in [
        '\r', '\x1b', '\0', '\u{85}', '\u{2028}', '\u{2029}', '\u{202e}',
    ] {
        assert!(
            !new.contains(bad),
            "{bad:?} reached the log:\n{}",
            new.escape_debug()
        );
    }
    for line in new.lines() {
        assert!(
            !line.contains("user=root") && !line.contains("rhost=198.51.100.99"),
            "forged line: {line}"
        );
        if line.contains("bad request") {
            assert!(line.contains(" otpd::server: bad request: "), "{line}");
        }
        if line.contains("event=") {
            assert_eq!(line.matches("event=").count(), 1, "{line}");
            assert!(line.contains(" otpd::audit: event="), "{line}");
        }
    }
    let bad_requests = new.lines().filter(|l| l.contains("bad request")).count();
    let sent = malformed.len() + malformed_by_root.len();
    assert_eq!(bad_requests, sent, "one line per malformed request:\n{new}");
    let audit = audit_lines(new);
    // Each request is one event: refused_caller, or skipped for an unknown service.
    assert_eq!(audit.len(), requests.len() + BREAKS.len(), "{new}");
    println!(
        "{} malformed requests -> {} lines; {} requests -> {} audit lines",
        sent,
        bad_requests,
        requests.len() + BREAKS.len(),
        audit.len()
    );
}

/// Rows in the audit table of a stopped otpd's database.
fn audit_rows(otpd: &Otpd) -> i64 {
    let out = Command::new("/usr/bin/python3")
        .args([
            "-c",
            "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('select count(*) from audit').fetchone()[0])",
        ])
        .arg(otpd.state_dir().join("otpd.db"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// Bytes in the state directory (database, WAL, key).
fn state_bytes(otpd: &Otpd) -> u64 {
    std::fs::read_dir(otpd.state_dir())
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum()
}

#[test]
fn a_flood_by_nobody_leaves_audit_rows_and_log_lines_within_their_caps() {
    let smtp = SmtpCapture::start();
    let mut otpd = Otpd::start(&unthrottled(TestConfig::required(smtp.port)));
    let (lines_before, bytes_before) = (otpd.log().lines().count(), state_bytes(&otpd));
    let started = Instant::now();
    let sent: u64 = as_nobody(&otpd, &["flood", "10", NOBODY], "")
        .trim()
        .parse()
        .unwrap();
    let took = started.elapsed();
    let log = settled_log(&otpd);
    assert!(otpd.stop());
    let lines = log.lines().count() - lines_before;
    let rows = audit_rows(&otpd);
    let bytes = state_bytes(&otpd).saturating_sub(bytes_before);
    println!(
        "flood: {sent} requests in {:.1}s -> {rows} audit rows, {lines} log lines ({} KiB), state dir {} KiB -> {} KiB ({} KiB more)",
        took.as_secs_f64(),
        log.len() / 1024,
        bytes_before / 1024,
        state_bytes(&otpd) / 1024,
        bytes / 1024
    );
    assert!(
        sent > 1000,
        "the flood was too slow to mean anything: {sent}"
    );
    // Three kinds of refusal (refused_caller, an answer's wrong/locked, bad request), each
    // logged at most 10 times in a minute plus one summary; a few lines of start-up.
    assert!(rows <= 40, "{rows} audit rows");
    assert!(lines <= 60, "{lines} log lines:\n{log}");
}

#[test]
fn an_audit_table_over_its_cap_is_trimmed_with_a_warning() {
    let smtp = SmtpCapture::start();
    let mut config = TestConfig::required(smtp.port);
    config.daemon = "audit_max_rows = 1000".into();
    let mut otpd = Otpd::start(&unthrottled(config));
    // Root's events are never rate limited (fail2ban needs each one): 1,500 code_dead rows.
    client(&otpd, false, &["answers", "1500"], "");
    settled_log(&otpd);
    assert!(otpd.stop());
    // Trimmed by the upkeep once a second, or at the latest when otpd stops.
    let log = otpd.log();
    let rows = audit_rows(&otpd);
    println!("1500 events with audit_max_rows = 1000 -> {rows} rows");
    assert!(rows <= 1000, "{rows} rows");
    assert!(
        log.contains("audit rows over [daemon] audit_max_rows = 1000: deleted the"),
        "{log}"
    );
}

// --- issue #16: what only root and trusted callers are believed about ---

/// A fresh ed25519 key: its `TYPE BASE64` line and its fingerprint as `ssh-keygen -lf` prints it.
fn ssh_key() -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("k");
    let made = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(made.success());
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    let line: Vec<&str> = public.split_whitespace().take(2).collect();
    let out = Command::new("ssh-keygen")
        .args(["-E", "sha256", "-lf"])
        .arg(key.with_extension("pub"))
        .output()
        .unwrap();
    let printed = String::from_utf8(out.stdout).unwrap();
    let fingerprint = printed.split_whitespace().nth(1).unwrap().to_string();
    (line.join(" "), fingerprint)
}

#[test]
fn a_trusted_network_claimed_by_nobody_still_needs_the_code() {
    let smtp = SmtpCapture::start();
    let mut config = TestConfig::required(smtp.port);
    config.body.push_str(
        "\n[profiles.mgmt]\nmode = \"off\"\n\n[[policies]]\nmatch_rhost = [\"10.0.0.0/8\"]\nprofile = \"mgmt\"\n",
    );
    let otpd = Otpd::start(&config);
    let begin = serde_json::json!({"op": "begin", "login": login(NOBODY, "10.1.2.3")}).to_string();
    let claimed = raw_as_nobody(&otpd, std::slice::from_ref(&begin));
    assert_eq!(claimed[0]["result"], "prompt", "{claimed:?}");
    let reported = raw_as(&otpd, false, &[begin]);
    assert_eq!(reported[0]["result"], "skip", "{reported:?}");
    assert_eq!(reported[0]["reason"], "mode_off", "{reported:?}");
}

#[test]
fn ssh_keys_claimed_by_nobody_exempt_nothing() {
    let smtp = SmtpCapture::start();
    let (key, fingerprint) = ssh_key();
    let mut config = TestConfig::required(smtp.port);
    config.body.push_str(&format!(
        "\n[[exemptions]]\nuser = \"{NOBODY}\"\nssh_key_fingerprints = [\"{fingerprint}\"]\n"
    ));
    let otpd = Otpd::start(&config);
    let begin = serde_json::json!({
        "op": "begin", "login": login(NOBODY, "192.0.2.7"), "ssh_keys": [key]
    })
    .to_string();
    let claimed = raw_as_nobody(&otpd, std::slice::from_ref(&begin));
    assert_eq!(claimed[0]["result"], "prompt", "{claimed:?}");
    let reported = raw_as(&otpd, false, &[begin]);
    assert_eq!(reported[0]["result"], "skip", "{reported:?}");
    assert_eq!(reported[0]["reason"], "exempt", "{reported:?}");
    let log = settled_log(&otpd);
    let exempt: Vec<&str> = audit_lines(&log)
        .into_iter()
        .filter(|l| l.contains("event=exempt"))
        .collect();
    assert_eq!(exempt.len(), 1, "{log}");
    assert!(exempt[0].contains("caller_uid=0"), "{log}");
    assert!(exempt[0].contains(&fingerprint), "{log}");
}
