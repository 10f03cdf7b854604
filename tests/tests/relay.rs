//! End-to-end relay mode: a main otpd (mailing through the SMTP capture) with
//! `[relay_listener]`, and a DMZ otpd with `[relay]` whose socket a real libpam login uses, two
//! processes on loopback with certificates from a test CA. Each test reads like the behaviour
//! it proves.

// Test code: a failed unwrap is how a test reports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use e2e_tests::login::{LoginResult, login_with, mailed_code, never_prompted};
use e2e_tests::netns::Namespace;
use e2e_tests::otpd::{Otpd, TestConfig};
use e2e_tests::programs::free_port;
use e2e_tests::smtp::SmtpCapture;
use e2e_tests::stack::PamConfDir;
use e2e_tests::tls::TestCa;

/// The main host: its otpd with a relay listener that allows `dmz1.pem` for `dmz1.example`.
struct Main {
    smtp: SmtpCapture,
    otpd: Otpd,
    port: u16,
    ca: TestCa,
}

impl Main {
    /// The listed client certificate (for `dmz1.example`) and its key.
    fn listed(&self) -> (PathBuf, PathBuf) {
        let ca = self.ca.ca_cert();
        (ca.with_file_name("dmz1.pem"), ca.with_file_name("dmz1.key"))
    }

    /// A DMZ otpd on loopback relaying with `cert` and `key` for `host_name`, whose login is
    /// unavailable: it and the main log once it says `why`.
    fn refused_relay(&self, cert: &Path, key: &Path, host_name: &str, why: &str) -> (Otpd, String) {
        let dmz = dmz_host(self.port, &self.ca.ca_cert(), cert, key, host_name);
        let result = login_with(&pam_for(&dmz), "sshd", "alice", None, never_prompted);
        assert_unavailable(&result);
        let log = wait_for_log(&self.otpd, why);
        (dmz, log)
    }

    /// A DMZ otpd on loopback with the listed certificate, speaking for `dmz1.example`.
    fn listed_dmz(&self) -> Otpd {
        let (cert, key) = self.listed();
        dmz_host(self.port, &self.ca.ca_cert(), &cert, &key, "dmz1.example")
    }
}

fn main_host() -> Main {
    main_host_on("127.0.0.1")
}

/// The main host with its relay listener on `address`.
fn main_host_on(address: &str) -> Main {
    main_host_with(address, "")
}

/// The main host with its relay listener on `address` and `extra` lines in `[relay_listener]`.
fn main_host_with(address: &str, extra: &str) -> Main {
    let ca = TestCa::new("relay test CA");
    std::fs::set_permissions(ca.server_key(), std::fs::Permissions::from_mode(0o600)).unwrap();
    let (dmz1_cert, _) = ca.client_cert("dmz1");
    let smtp = SmtpCapture::start();
    let port = free_port();
    let mut config = TestConfig::required(smtp.port);
    config.body.push_str(&format!(
        "\n[relay_listener]\nlisten = \"{address}:{port}\"\ncert = \"{}\"\nkey = \"{}\"\nclient_ca = \"{}\"\ntimeout_seconds = 5\n{extra}\n[[relay_listener.clients]]\ncertificate = \"{}\"\nhost = \"dmz1.example\"\n",
        ca.server_cert().display(),
        ca.server_key().display(),
        ca.ca_cert().display(),
        dmz1_cert.display(),
    ));
    let otpd = Otpd::start(&config);
    Main {
        smtp,
        otpd,
        port,
        ca,
    }
}

/// A DMZ otpd relaying to `127.0.0.1:port` with the client certificate `cert` and `key`, speaking
/// for `host_name`.
fn dmz_host(port: u16, ca_file: &Path, cert: &Path, key: &Path, host_name: &str) -> Otpd {
    dmz_with(port, ca_file, cert, key, host_name, "")
}

fn dmz_with(
    port: u16,
    ca_file: &Path,
    cert: &Path,
    key: &Path,
    host_name: &str,
    extra: &str,
) -> Otpd {
    let render = dmz_config("127.0.0.1", port, ca_file, cert, key, host_name, extra);
    Otpd::start_with_text(render)
}

/// The config of a DMZ otpd relaying to `upstream:port`.
fn dmz_config(
    upstream: &str,
    port: u16,
    ca_file: &Path,
    cert: &Path,
    key: &Path,
    host_name: &str,
    extra: &str,
) -> impl FnOnce(&Path, &Path) -> String + use<> {
    let (cert, key, ca_file) = (cert.to_owned(), key.to_owned(), ca_file.to_owned());
    let host_name = host_name.to_string();
    let extra = extra.to_string();
    let upstream = upstream.to_string();
    move |socket: &Path, state_dir: &Path| {
        format!(
            "[daemon]\nsocket = \"{}\"\nstate_dir = \"{}\"\n\n[relay]\nupstream = \"{upstream}:{port}\"\nhost_name = \"{host_name}\"\nclient_cert = \"{}\"\nclient_key = \"{}\"\nca_file = \"{}\"\n{extra}",
            socket.display(),
            state_dir.display(),
            cert.display(),
            key.display(),
            ca_file.display(),
        )
    }
}

fn pam_for(otpd: &Otpd) -> PamConfDir {
    let pam = PamConfDir::new();
    pam.otp_then_permit("sshd", &otpd.socket, "");
    pam
}

fn assert_unavailable(result: &LoginResult) {
    assert_eq!(result.name(), "PAM_AUTHINFO_UNAVAIL", "{result:?}");
}

/// Waits up to 5 s for `needle` in the main otpd's log.
fn wait_for_log(otpd: &Otpd, needle: &str) -> String {
    wait_for_log_within(otpd, needle, 5)
}

/// Waits up to `seconds` for `needle` in the main otpd's log.
fn wait_for_log_within(otpd: &Otpd, needle: &str, seconds: u64) -> String {
    let until = Instant::now() + Duration::from_secs(seconds);
    loop {
        let log = otpd.log();
        if log.contains(needle) || Instant::now() > until {
            return log;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_pam_login_on_the_dmz_gets_its_code_mailed_by_the_main_host_and_succeeds() {
    let main = main_host();
    let dmz = main.listed_dmz();
    let pam = pam_for(&dmz);
    let result = login_with(
        &pam,
        "sshd",
        "alice",
        Some("192.0.2.10"),
        mailed_code(main.smtp.reader(), 1),
    );
    assert_eq!(result.name(), "PAM_SUCCESS", "{result:?}");
    let mail = main.smtp.last();
    assert_eq!(mail.rcpt_tos, vec!["alice@example.test".to_string()]);
    assert!(
        mail.text.contains("sshd, ssh from 192.0.2.10"),
        "{}",
        mail.text
    );
    let log = main.otpd.log();
    let verified = log
        .lines()
        .find(|l| l.contains("event=verified user=alice"))
        .unwrap_or_else(|| panic!("no verified line in the main log:\n{log}"));
    assert!(verified.contains("rhost=192.0.2.10"), "{verified}");
    assert!(verified.contains("relay=dmz1.example"), "{verified}");
    // The DMZ decided nothing: it has no audit of its own.
    assert!(!dmz.log().contains("event=verified"), "{}", dmz.log());
}

#[test]
fn a_client_certificate_not_in_the_list_is_refused() {
    let main = main_host();
    let (cert, key) = main.ca.client_cert("dmz-unlisted");
    let (dmz, log) = main.refused_relay(
        &cert,
        &key,
        "dmz1.example",
        "not listed in [[relay_listener.clients]]",
    );
    assert!(
        log.contains("relay connection from 127.0.0.1 refused: its client certificate (SHA-256 "),
        "{log}"
    );
    assert!(
        dmz.log()
            .contains("answered: this client certificate is not allowed to relay"),
        "{}",
        dmz.log()
    );
    assert!(main.smtp.messages().is_empty());
}

#[test]
fn an_expired_client_certificate_is_refused() {
    let main = main_host();
    let (cert, key) = main.ca.expired_client_cert("dmz-expired");
    let (_dmz, log) = main.refused_relay(&cert, &key, "dmz1.example", "TLS handshake failed");
    let line = log
        .lines()
        .find(|l| l.contains("TLS handshake failed"))
        .unwrap_or_else(|| panic!("no handshake refusal in the main log:\n{log}"));
    assert!(line.to_lowercase().contains("expired"), "{line}");
    assert!(main.smtp.messages().is_empty());
}

#[test]
fn a_relay_claiming_another_host_name_is_refused() {
    let main = main_host();
    let (listed, listed_key) = main.listed();
    let (_dmz, log) = main.refused_relay(
        &listed,
        &listed_key,
        "dmz2.example",
        "claimed to speak for host dmz2.example",
    );
    assert!(
        log.contains("relay dmz1.example: claimed to speak for host dmz2.example"),
        "{log}"
    );
    assert!(main.smtp.messages().is_empty());
}

#[test]
fn with_the_main_host_down_the_login_is_unavailable_at_once() {
    let ca = TestCa::new("relay test CA");
    let (cert, key) = ca.client_cert("dmz1");
    let port = free_port();
    let dmz = dmz_host(port, &ca.ca_cert(), &cert, &key, "dmz1.example");
    let started = Instant::now();
    let result = login_with(&pam_for(&dmz), "sshd", "alice", None, never_prompted);
    assert_unavailable(&result);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(
        dmz.log().contains("cannot connect to 127.0.0.1:"),
        "{}",
        dmz.log()
    );
}

#[test]
fn with_a_main_host_that_never_answers_the_login_is_unavailable_within_the_deadline() {
    let ca = TestCa::new("relay test CA");
    let (cert, key) = ca.client_cert("dmz1");
    // Takes the connection, never speaks TLS.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let dmz = dmz_with(
        port,
        &ca.ca_cert(),
        &cert,
        &key,
        "dmz1.example",
        "connect_timeout_seconds = 2\ntimeout_seconds = 4\n",
    );
    let started = Instant::now();
    let result = login_with(&pam_for(&dmz), "sshd", "alice", None, never_prompted);
    let took = started.elapsed();
    assert_unavailable(&result);
    // Within the DMZ's 2 s for connect and handshake, well within the module's 25 s.
    assert!(took >= Duration::from_secs(2), "{took:?}");
    assert!(took < Duration::from_secs(4), "{took:?}");
    assert!(
        dmz.log().contains("TLS handshake with 127.0.0.1:"),
        "{}",
        dmz.log()
    );
    drop(silent);
}

#[test]
fn admin_requests_are_not_relayed() {
    let main = main_host();
    let dmz = main.listed_dmz();
    let (code, stdout, stderr) = dmz.otpctl(None, &["status"]);
    assert_ne!(code, 0, "{stdout}");
    assert!(
        stderr.contains("admin requests are not relayed; run otpctl on the main host"),
        "{stderr}"
    );
}

/// Every file below `dir`, recursively.
fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_below(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn the_dmz_host_holds_no_database_no_server_key_and_no_password() {
    let main = main_host();
    let dmz = main.listed_dmz();
    let result = login_with(
        &pam_for(&dmz),
        "sshd",
        "alice",
        Some("192.0.2.10"),
        mailed_code(main.smtp.reader(), 1),
    );
    assert_eq!(result.name(), "PAM_SUCCESS", "{result:?}");
    // The main host has both, which shows where they would be.
    let main_state: Vec<String> = files_below(&main.otpd.state_dir())
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(
        main_state.contains(&"otpd.db".to_string()),
        "{main_state:?}"
    );
    assert!(
        main_state.contains(&"secret.key".to_string()),
        "{main_state:?}"
    );
    let dmz_state = dmz.state_dir();
    let held = if dmz_state.exists() {
        files_below(&dmz_state)
    } else {
        Vec::new()
    };
    assert!(held.is_empty(), "the DMZ state dir holds {held:?}");
    // Its whole directory: config, log and socket, nothing else.
    for file in files_below(dmz.dir()) {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            ["otpd.toml", "otpd.log", "otpd.sock"].contains(&name.as_str()),
            "unexpected file on the DMZ host: {}",
            file.display()
        );
    }
    let config = dmz.config_text();
    for secret in ["password", "[mail]", "[store]", "secret.key", "otpd.db"] {
        assert!(
            !config.contains(secret),
            "{secret} in the DMZ config:\n{config}"
        );
    }
}

#[test]
fn a_dmz_namespace_that_reaches_only_the_relay_port_logs_in_through_the_main_host() {
    // First, so a machine without namespaces skips before anything else starts.
    let dmz_net = match Namespace::create("dmz", 30) {
        Ok(namespace) => namespace,
        Err(why) => {
            eprintln!("SKIPPED: {why}; this test needs root and network namespaces");
            return;
        }
    };
    let main_addr = dmz_net.server_addr;
    let main = main_host_on(&main_addr.to_string());
    // Something else listening on the main host's side of the pair: out of the DMZ's reach.
    let other = std::net::TcpListener::bind((main_addr, 0)).unwrap();
    let other_port = other.local_addr().unwrap().port();
    assert!(dmz_net.can_connect(main_addr, other_port), "the pair works");
    dmz_net.only_allow_tcp_to(main_addr, main.port);
    assert!(!dmz_net.can_connect(main_addr, other_port));
    assert!(dmz_net.can_connect(main_addr, main.port));

    // The main otpd's certificate names 127.0.0.1 and localhost: server_name says which.
    let dmz_in_namespace = |cert: &Path, key: &Path, host_name: &str| {
        Otpd::start_in_namespace(
            &dmz_net.name,
            dmz_config(
                &main_addr.to_string(),
                main.port,
                &main.ca.ca_cert(),
                cert,
                key,
                host_name,
                "server_name = \"localhost\"\n",
            ),
        )
    };
    let (listed, listed_key) = main.listed();
    let dmz = dmz_in_namespace(&listed, &listed_key, "dmz1.example");
    let result = login_with(
        &pam_for(&dmz),
        "sshd",
        "alice",
        Some("192.0.2.10"),
        mailed_code(main.smtp.reader(), 1),
    );
    assert_eq!(result.name(), "PAM_SUCCESS", "{result:?}\n{}", dmz.log());
    let verified = main.otpd.events("verified");
    assert!(
        verified
            .iter()
            .any(|l| l.contains("user=alice") && l.contains("relay=dmz1.example")),
        "{verified:?}"
    );

    let (unlisted, unlisted_key) = main.ca.client_cert("dmz-unlisted");
    let (expired, expired_key) = main.ca.expired_client_cert("dmz-expired");
    for (cert, key, host_name, why) in [
        (&unlisted, &unlisted_key, "dmz1.example", "is not listed"),
        (
            &expired,
            &expired_key,
            "dmz1.example",
            "TLS handshake failed",
        ),
        (
            &listed,
            &listed_key,
            "dmz2.example",
            "claimed to speak for host dmz2.example",
        ),
    ] {
        let dmz = dmz_in_namespace(cert, key, host_name);
        let result = login_with(&pam_for(&dmz), "sshd", "bob", None, never_prompted);
        assert_unavailable(&result);
        let log = wait_for_log(&main.otpd, why);
        // The refusal names the namespace's address: the relay came from there.
        let refusal = format!("relay connection from {} refused", dmz_net.client_addr);
        assert!(
            log.lines().any(|l| l.contains(&refusal) && l.contains(why)),
            "{why}:\n{log}"
        );
    }
    assert_eq!(
        main.smtp.messages().len(),
        1,
        "only alice's code was mailed"
    );
    drop(other);
}

/// Sends one begin for `user`, claiming `rhost`, to the socket at argv[1] and prints the answer.
const BEGIN_AS_CALLER: &str = r#"
import json, socket, struct, sys
path, user, rhost = sys.argv[1], sys.argv[2], sys.argv[3]
login = {"user": user, "service": "sshd", "rhost": rhost, "tty": "pts/7", "protocol": None}
payload = json.dumps({"op": "begin", "login": login}).encode()
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(path)
s.sendall(b"OT" + struct.pack(">HI", 1, len(payload)) + payload)
data = b""
while True:
    chunk = s.recv(65536)
    if not chunk:
        break
    data += chunk
print(data[8:].decode())
"#;

/// A begin for `user` claiming `rhost`, sent to `otpd` by uid/gid nobody: the JSON answer.
fn begin_as_nobody(otpd: &Otpd, user: &str, rhost: &str) -> String {
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .args(["/usr/bin/python3", "-c", BEGIN_AS_CALLER])
        .arg(&otpd.socket)
        .args([user, rhost])
        .output()
        .expect("run the client as nobody");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn a_local_user_of_the_dmz_is_refused_there_for_others_and_relayed_as_local_for_themselves() {
    let main = main_host();
    let dmz = main.listed_dmz();
    let refused = begin_as_nobody(&dmz, "alice", "203.0.113.9");
    assert!(refused.contains("caller_refused"), "{refused}");
    assert!(
        dmz.log().contains("refused here, not relayed: uid 65534"),
        "{}",
        dmz.log()
    );
    assert!(
        !main.otpd.log().contains("user=alice"),
        "{}",
        main.otpd.log()
    );

    let own = begin_as_nobody(&dmz, "nobody", "203.0.113.9");
    assert!(own.contains("\"prompt\""), "{own}");
    let issued = main.otpd.events("issued");
    let line = issued
        .iter()
        .find(|l| l.contains("user=nobody"))
        .unwrap_or_else(|| panic!("{issued:?}"));
    // Its claimed rhost is not believed: a local user of dmz1, never this host's root.
    assert!(line.contains("rhost=local"), "{line}");
    assert!(line.contains("caller_uid=65534"), "{line}");
    assert!(line.contains("relay=dmz1.example"), "{line}");
    assert!(
        !main.otpd.log().contains("203.0.113.9"),
        "{}",
        main.otpd.log()
    );
}

/// Starts `script` and waits until it prints "held": it holds its connections from then on.
fn python_holding(script: &mut std::process::Command) -> std::process::Child {
    let mut child = script.stdout(std::process::Stdio::piped()).spawn().unwrap();
    let mut ready = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut ready,
    )
    .unwrap();
    assert_eq!(ready.trim(), "held");
    child
}

/// Opens argv[3] TCP connections from 127.0.0.2 to 127.0.0.1:argv[1] that never speak, prints
/// "held", and keeps them for argv[2] seconds.
const SILENT_CONNECTIONS: &str = r#"
import socket, sys, time
port, seconds, count = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
held = []
for _ in range(count):
    s = socket.socket()
    s.bind(("127.0.0.2", 0))
    s.connect(("127.0.0.1", port))
    held.append(s)
print("held", flush=True)
time.sleep(seconds)
"#;

#[test]
fn a_hostile_host_holding_relay_connections_blocks_neither_a_dmz_nor_local_logins() {
    let main = main_host();
    let mut hostile = python_holding(
        std::process::Command::new("/usr/bin/python3")
            .args(["-c", SILENT_CONNECTIONS])
            .args([&main.port.to_string(), "30", "64"]),
    );

    let dmz = main.listed_dmz();
    let started = Instant::now();
    let relayed = login_with(
        &pam_for(&dmz),
        "sshd",
        "alice",
        Some("192.0.2.10"),
        mailed_code(main.smtp.reader(), 1),
    );
    assert_eq!(relayed.name(), "PAM_SUCCESS", "{relayed:?}");
    let local = login_with(
        &pam_for(&main.otpd),
        "sshd",
        "bob",
        Some("192.0.2.11"),
        mailed_code(main.smtp.reader(), 2),
    );
    assert_eq!(local.name(), "PAM_SUCCESS", "{local:?}");
    // Both well before the hostile connections' 5 s handshake deadline.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // The hostile host's handshakes are refused when their deadline passes.
    let log = wait_for_log_within(&main.otpd, "TLS handshake not done within 5 s", 10);
    let _ = hostile.kill();
    let _ = hostile.wait();
    assert!(
        log.contains("relay connection from 127.0.0.2 refused: TLS handshake not done"),
        "{log}"
    );
}

/// Opens one TLS connection to 127.0.0.1:argv[1] with the client certificate argv[3] and key
/// argv[4] (trusting the CA argv[2]), prints "held" once the handshake is done, and sends nothing
/// for 30 s: a slow relay holding its place.
const SLOW_RELAY: &str = r#"
import socket, ssl, sys, time
port, ca, cert, key = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
context = ssl.create_default_context(cafile=ca)
context.load_cert_chain(cert, key)
s = context.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="127.0.0.1")
s.do_handshake()
print("held", flush=True)
time.sleep(30)
"#;

#[test]
fn a_relay_at_its_connection_cap_is_refused_and_local_logins_go_on() {
    let main = main_host_with("127.0.0.1", "max_connections_per_client = 1\n");
    let (listed, listed_key) = main.listed();
    let mut slow = python_holding(
        std::process::Command::new("/usr/bin/python3")
            .args(["-c", SLOW_RELAY, &main.port.to_string()])
            .args([&main.ca.ca_cert(), &listed, &listed_key]),
    );
    let dmz = main.listed_dmz();
    let relayed = login_with(&pam_for(&dmz), "sshd", "alice", None, never_prompted);
    assert_unavailable(&relayed);
    let log = wait_for_log(&main.otpd, "holds max_connections_per_client (1) already");
    assert!(
        log.contains("relay dmz1.example holds max_connections_per_client (1) already"),
        "{log}"
    );
    let local = login_with(
        &pam_for(&main.otpd),
        "sshd",
        "bob",
        Some("192.0.2.11"),
        mailed_code(main.smtp.reader(), 1),
    );
    assert_eq!(local.name(), "PAM_SUCCESS", "{local:?}");
    let _ = slow.kill();
    let _ = slow.wait();
}
