//! End-to-end (issue #21): codes by an HTTPS webhook. A loopback gateway that answers as
//! Twilio's Messages API (`tests/webhook/gateway.py`) records the request; logins go through
//! real libpam and the built module to the real otpd, the phone number set with the real
//! otpctl. The request is exactly Twilio's form (`+`, spaces and non-ASCII form-encoded), the
//! code read from it logs the user in, a failing endpoint (500, 400 with Twilio's error body,
//! 429, slower than `timeout_seconds`) falls back to the next, then to mail, and an untrusted
//! certificate gets no code.

// Test code: a failed unwrap is how a test reports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use e2e_tests::libpam;
use e2e_tests::login::{LoginResult, login_with, mailed_code};
use e2e_tests::otpd::{Otpd, TestConfig};
use e2e_tests::paths;
use e2e_tests::slapd::{BASE, BIND_DN, Slapd};
use e2e_tests::smtp::{MAIL_WAIT, SmtpCapture};
use e2e_tests::stack::PamConfDir;
use e2e_tests::tls::TestCa;
use e2e_tests::webhook::{Gateway, REQUEST_WAIT, RequestReader};

/// Twilio's path for an account's messages, with the test account.
const MESSAGES: &str = "/2010-04-01/Accounts/ACtest/Messages.json";

struct Sms {
    gateways: Vec<Gateway>,
    smtp: SmtpCapture,
    otpd: Otpd,
    pam: PamConfDir,
    _files: (TestCa, TestCa, tempfile::TempDir),
}

/// How a test's gateways answer, its channel is set, and what its config adds.
struct Options<'a> {
    /// One gateway per entry, the sms channel's endpoints in this order: its status and how
    /// long after the request it answers.
    answers: &'a [(u16, Duration)],
    /// Whether otpd trusts the gateways' CA (or another one).
    trusted: bool,
    /// The channel's body.
    body: &'a str,
    /// The channel's `timeout_seconds`.
    timeout_seconds: u64,
    /// The channel's `sms_field`, if any.
    sms_field: Option<&'a str>,
    /// Appended to the config (an LDAP source).
    extra: String,
}

impl Default for Options<'_> {
    fn default() -> Self {
        Options {
            answers: &[(201, Duration::ZERO)],
            trusted: true,
            body: "To={to}&From=+15005550006&Body=Your code is {code}",
            timeout_seconds: 5,
            sms_field: None,
            extra: String::new(),
        }
    }
}

/// The answers of gateways that answer at once with `statuses`.
fn at_once(statuses: &[u16]) -> Vec<(u16, Duration)> {
    statuses.iter().map(|&s| (s, Duration::ZERO)).collect()
}

/// otpd requiring a code of everyone by `channels = ["sms", "email"]`, the sms channel's
/// endpoints one gateway per status in `statuses`, trusting the gateways' CA (or, with
/// `trusted` false, another one); alice's phone number set with otpctl.
fn setup(statuses: &[u16], trusted: bool) -> Sms {
    setup_with(Options {
        answers: &at_once(statuses),
        trusted,
        ..Options::default()
    })
}

/// [`setup`] with `options`.
fn setup_with(options: Options<'_>) -> Sms {
    let (ca, other) = (TestCa::new("gateway-ca"), TestCa::new("other-ca"));
    let gateways: Vec<Gateway> = options
        .answers
        .iter()
        .map(|&(status, delay)| Gateway::start_slow(&ca, status, delay))
        .collect();
    let endpoints: Vec<String> = gateways
        .iter()
        .map(|g| format!("\"https://127.0.0.1:{}{MESSAGES}\"", g.port))
        .collect();
    let trust = if options.trusted { &ca } else { &other };
    let smtp = SmtpCapture::start();
    let secrets = tempfile::tempdir().unwrap();
    let credentials = secrets.path().join("twilio-credentials");
    std::fs::write(&credentials, "basic ACtest:auth token+1\n").unwrap();
    std::fs::set_permissions(&credentials, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut config = TestConfig::required(smtp.port);
    config.body.push_str(&format!(
        "channels = [\"sms\", \"email\"]\n\n[[channels.webhook]]\nname = \"sms\"\ndisplay_name = \"SMS\"\nendpoints = [{}]\nbody = {:?}\ncredentials_file = \"{}\"\nca_file = \"{}\"\ntimeout_seconds = {}\n{}\n{}\n",
        endpoints.join(", "),
        options.body,
        credentials.display(),
        trust.ca_cert().display(),
        options.timeout_seconds,
        options
            .sms_field
            .map(|f| format!("sms_field = {f:?}\n"))
            .unwrap_or_default(),
        options.extra,
    ));
    let otpd = Otpd::start(&config);
    let pam = PamConfDir::new();
    pam.otp_then_permit("sshd", &otpd.socket, "");
    let out = otpctl(&otpd, &["user", "set-phone", "alice", "+441234567890"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(phone_shown(&otpd, "alice"), "+441234567890 (from table)");
    Sms {
        gateways,
        smtp,
        otpd,
        pam,
        _files: (ca, other, secrets),
    }
}

/// The phone row of `otpctl user show USER`.
fn phone_shown(otpd: &Otpd, user: &str) -> String {
    let shown = otpctl(otpd, &["user", "show", user]);
    let shown = String::from_utf8_lossy(&shown.stdout);
    shown
        .lines()
        .find_map(|l| l.strip_prefix("phone "))
        .map(|rest| rest.trim().to_string())
        .unwrap_or_else(|| panic!("no phone row: {shown}"))
}

/// The real otpctl, as root, against `otpd`.
fn otpctl(otpd: &Otpd, args: &[&str]) -> std::process::Output {
    paths::otpctl_as(None)
        .arg("--socket")
        .arg(&otpd.socket)
        .arg("--config")
        .arg(&otpd.config_path)
        .args(args)
        .output()
        .unwrap()
}

/// A login as alice answering with the code of the gateway's first request.
fn login_by_sms(s: &Sms, gateway: usize) -> LoginResult {
    login_by_sms_as(s, "alice", gateway)
}

/// A login as `user` answering with the code of the gateway's first request.
fn login_by_sms_as(s: &Sms, user: &str, gateway: usize) -> LoginResult {
    let reader: RequestReader = s.gateways[gateway].reader();
    login_with(&s.pam, "sshd", user, None, move |_| {
        let requests = reader.wait_for(1, REQUEST_WAIT);
        requests.first().map(|r| r.code()).unwrap_or_default()
    })
}

#[test]
fn a_code_by_sms_is_twilios_form_and_the_code_in_it_logs_the_user_in() {
    let s = setup(&[201], true);
    let login = login_by_sms(&s, 0);
    assert_eq!(libpam::code_name(login.code), "PAM_SUCCESS", "{login:?}");
    assert!(
        login.prompts[0].starts_with("Code sent by SMS to +44*******890 (valid 10 min): "),
        "{login:?}"
    );
    let requests = s.gateways[0].requests();
    assert_eq!(requests.len(), 1);
    let r = &requests[0];
    assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", MESSAGES));
    // base64("ACtest:auth token+1")
    assert_eq!(
        r.header("authorization"),
        Some("Basic QUN0ZXN0OmF1dGggdG9rZW4rMQ==")
    );
    assert_eq!(
        r.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    let code = r.code();
    assert_eq!(code.len(), 6, "{r:?}");
    assert_eq!(
        r.body,
        format!("To=%2B441234567890&From=%2B15005550006&Body=Your+code+is+{code}")
    );
    assert_eq!(r.field("To"), Some("+441234567890"));
    assert_eq!(r.field("From"), Some("+15005550006"));
    assert_eq!(
        r.field("Body"),
        Some(format!("Your code is {code}").as_str())
    );
    assert!(s.smtp.messages().is_empty(), "a mail was sent too");
    let log = s.otpd.log().replace("\\x20", " ");
    assert!(log.contains("event=user_phone_set user=alice"), "{log}");
    assert!(
        log.contains("event=mailed") && log.contains("detail=webhook:sms endpoint 1 (127.0.0.1:"),
        "{log}"
    );
    assert!(!log.contains(&code), "the code is in otpd's log");
}

#[test]
fn a_user_without_a_phone_number_gets_the_code_by_mail() {
    let s = setup(&[201], true);
    let login = login_with(&s.pam, "sshd", "bob", None, mailed_code(s.smtp.reader(), 1));
    assert_eq!(libpam::code_name(login.code), "PAM_SUCCESS", "{login:?}");
    assert!(
        login.prompts[0].starts_with("Code sent to b***@e***.test"),
        "{login:?}"
    );
    assert!(s.gateways[0].requests().is_empty());
}

#[test]
fn a_500_from_the_first_endpoint_falls_back_to_the_second() {
    let s = setup(&[500, 201], true);
    let login = login_by_sms(&s, 1);
    assert_eq!(libpam::code_name(login.code), "PAM_SUCCESS", "{login:?}");
    assert_eq!(s.gateways[0].requests().len(), 1);
    assert_eq!(s.gateways[1].requests().len(), 1);
    assert!(s.smtp.messages().is_empty());
    let log = s.otpd.log().replace("\\x20", " ");
    assert!(
        log.contains("detail=webhook:sms endpoint 2 (127.0.0.1:")
            && log.contains("after webhook:sms endpoint 1 (127.0.0.1:"),
        "{log}"
    );
    assert!(log.contains("HTTP 500"), "{log}");
    // otpctl status lists each endpoint with its last result, read back from the audit rows.
    let status = otpctl(&s.otpd, &["status"]);
    let status = String::from_utf8_lossy(&status.stdout);
    let row = |n: usize| {
        let endpoint = format!(
            "webhook:sms endpoint {n} (127.0.0.1:{})",
            s.gateways[n - 1].port
        );
        status
            .lines()
            .find(|l| {
                l.strip_prefix("sms")
                    .is_some_and(|rest| rest.trim_start().starts_with(&endpoint))
            })
            .unwrap_or_else(|| panic!("no row for {endpoint}: {status}"))
            .to_string()
    };
    assert!(status.contains("webhook channels:"), "{status}");
    assert!(row(1).contains("failed "), "{status}");
    assert!(row(1).ends_with("HTTP 500"), "{status}");
    assert!(row(2).contains(" ok "), "{status}");
}

#[test]
fn when_every_endpoint_fails_the_code_goes_by_mail() {
    let s = setup(&[500, 400], true);
    let login = login_with(
        &s.pam,
        "sshd",
        "alice",
        None,
        mailed_code(s.smtp.reader(), 1),
    );
    assert_eq!(libpam::code_name(login.code), "PAM_SUCCESS", "{login:?}");
    assert!(
        login.prompts[0].starts_with("Code sent to a***@e***.test"),
        "{login:?}"
    );
    assert_eq!(s.gateways[0].requests().len(), 1);
    assert_eq!(s.gateways[1].requests().len(), 1);
    assert_eq!(s.smtp.wait_for(1, MAIL_WAIT).len(), 1);
    let log = s.otpd.log().replace("\\x20", " ");
    assert!(
        log.contains("detail=capture after webhook:sms endpoint 1")
            && log.contains("HTTP 500")
            && log.contains("HTTP 400"),
        "{log}"
    );
}

#[test]
fn an_untrusted_gateway_certificate_gets_no_code_and_the_mail_does() {
    let s = setup(&[201], false);
    let login = login_with(
        &s.pam,
        "sshd",
        "alice",
        None,
        mailed_code(s.smtp.reader(), 1),
    );
    assert_eq!(libpam::code_name(login.code), "PAM_SUCCESS", "{login:?}");
    assert!(s.gateways[0].requests().is_empty(), "the request was sent");
    assert_eq!(s.smtp.wait_for(1, MAIL_WAIT).len(), 1);
    let log = s.otpd.log().replace("\\x20", " ");
    assert!(
        log.contains("detail=capture after webhook:sms endpoint 1 (127.0.0.1:"),
        "{log}"
    );
    assert!(
        log.contains("invalid peer certificate: UnknownIssuer"),
        "{log}"
    );
}

/// Issue #21: the phone number from a directory's `mobile` when otpd's table has none; a
/// directory value that is not E.164 is not used (the code goes by mail) and the log says so.
#[test]
fn a_user_whose_only_phone_is_the_directory_mobile_gets_the_code_by_sms() {
    let slapd = Slapd::start_without_tls();
    slapd.add(
        "dn: uid=mia,ou=people,dc=example,dc=com\nobjectClass: inetOrgPerson\nuid: mia\ncn: Mia\nsn: M\nmail: mia@ldap.example.test\nmobile: +441234567899\n\n\
         dn: uid=nora,ou=people,dc=example,dc=com\nobjectClass: inetOrgPerson\nuid: nora\ncn: Nora\nsn: N\nmail: nora@ldap.example.test\nmobile: 0044 1234 567899\n",
    );
    let s = setup_with(Options {
        extra: format!(
            "[[directory.ldap]]\nname = \"corp\"\nurls = [\"{}\"]\ntls = \"none\"\nbase = \"{BASE}\"\nfilter = \"(uid={{user}})\"\nbind_dn = \"{BIND_DN}\"\nbind_password_file = {:?}\n",
            slapd.ldap_url(),
            slapd.password_file().display().to_string()
        ),
        ..Options::default()
    });
    let login = login_by_sms_as(&s, "mia", 0);
    assert_eq!(libpam::code_name(login.code), "PAM_SUCCESS", "{login:?}");
    assert!(
        login.prompts[0].starts_with("Code sent by SMS to +44*******899 (valid 10 min): "),
        "{login:?}"
    );
    let requests = s.gateways[0].requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].field("To"), Some("+441234567899"));
    assert!(s.smtp.messages().is_empty(), "a mail was sent too");
    assert_eq!(
        phone_shown(&s.otpd, "mia"),
        "+441234567899 (from ldap:corp)"
    );
    let issued = s.otpd.events("issued").join("\n");
    assert!(issued.contains("phone_source=ldap:corp"), "{issued}");

    let login = login_with(
        &s.pam,
        "sshd",
        "nora",
        None,
        mailed_code(s.smtp.reader(), 1),
    );
    assert_eq!(libpam::code_name(login.code), "PAM_SUCCESS", "{login:?}");
    assert!(
        login.prompts[0].starts_with("Code sent to n***@l***"),
        "{login:?}"
    );
    assert_eq!(s.gateways[0].requests().len(), 1, "nora's number was used");
    let log = s.otpd.log().replace("\\x20", " ");
    assert!(
        log.contains("LDAP source corp gives user=nora a phone number otpd cannot use"),
        "{log}"
    );
    assert_eq!(phone_shown(&s.otpd, "nora"), "none");
}

/// Twilio's "Too Many Requests" is a failure like any other: the next endpoint, then mail,
/// and the audit row names the 429 of each.
#[test]
fn a_429_falls_back_to_the_next_endpoint_then_to_mail_and_the_audit_names_it() {
    let s = setup(&[429, 429], true);
    let login = login_with(
        &s.pam,
        "sshd",
        "alice",
        None,
        mailed_code(s.smtp.reader(), 1),
    );
    assert_eq!(libpam::code_name(login.code), "PAM_SUCCESS", "{login:?}");
    assert_eq!(s.gateways[0].requests().len(), 1);
    assert_eq!(s.gateways[1].requests().len(), 1);
    assert_eq!(s.smtp.wait_for(1, MAIL_WAIT).len(), 1);
    let mailed = s.otpd.events("mailed").join("\n");
    assert!(
        mailed.contains(&format!(
            "detail=capture after webhook:sms endpoint 1 (127.0.0.1:{}): HTTP 429; webhook:sms endpoint 2 (127.0.0.1:{}): HTTP 429",
            s.gateways[0].port, s.gateways[1].port
        )),
        "{mailed}"
    );
}

/// A 400 with Twilio's error body fails over; what the audit says of it is the status only,
/// never the gateway's text, the code or the phone number.
#[test]
fn a_400_with_twilios_error_body_fails_over_and_the_log_carries_no_code_or_phone() {
    let s = setup(&[400, 201], true);
    let login = login_by_sms(&s, 1);
    assert_eq!(libpam::code_name(login.code), "PAM_SUCCESS", "{login:?}");
    assert_eq!(s.gateways[0].requests().len(), 1);
    let code = s.gateways[1].requests()[0].code();
    let mailed = s.otpd.events("mailed").join("\n");
    assert!(
        mailed.contains(&format!(
            "after webhook:sms endpoint 1 (127.0.0.1:{}): HTTP 400",
            s.gateways[0].port
        )),
        "{mailed}"
    );
    let log = s.otpd.log();
    for secret in [code.as_str(), "1234567890", "21211", "not a valid"] {
        assert!(!log.contains(secret), "{secret:?} is in the log: {log}");
    }
}

/// A gateway slower than the channel's `timeout_seconds` costs that long, not the login: the
/// next endpoint takes the code within the deadline.
#[test]
fn a_gateway_slower_than_the_timeout_falls_back_within_the_deadline() {
    let s = setup_with(Options {
        answers: &[(201, Duration::from_secs(30)), (201, Duration::ZERO)],
        timeout_seconds: 2,
        ..Options::default()
    });
    let started = Instant::now();
    let login = login_by_sms(&s, 1);
    let took = started.elapsed();
    assert_eq!(libpam::code_name(login.code), "PAM_SUCCESS", "{login:?}");
    assert!(took < Duration::from_secs(8), "the login took {took:?}");
    assert_eq!(s.gateways[0].requests().len(), 1, "the slow one got it");
    let mailed = s.otpd.events("mailed").join("\n");
    assert!(
        mailed.contains("detail=webhook:sms endpoint 2")
            && mailed.contains("after webhook:sms endpoint 1"),
        "{mailed}"
    );
}

/// Every channel together has the mail's `total_timeout_seconds`: two gateways that each take
/// just under their own `timeout_seconds`, then the mail, made one delivery outlast the login
/// waiting for it (the module's `mail_timeout`).
#[test]
fn the_channels_together_have_the_mails_total_timeout_and_no_more() {
    let slow = Duration::from_secs(4);
    let s = setup_with(Options {
        answers: &[(201, slow), (201, slow)],
        timeout_seconds: 5,
        ..Options::default()
    });
    let text = s.otpd.config_text().replace(
        "[mail]\nfrom = \"otp@example.test\"\n",
        "[mail]\nfrom = \"otp@example.test\"\ntotal_timeout_seconds = 3\n",
    );
    assert!(text.contains("total_timeout_seconds = 3"), "{text}");
    s.otpd.reload_with(&text);
    let started = Instant::now();
    let login = login_with(&s.pam, "sshd", "alice", None, |p| panic!("no prompt: {p}"));
    let took = started.elapsed();
    assert_eq!(
        libpam::code_name(login.code),
        "PAM_AUTHINFO_UNAVAIL",
        "{login:?}"
    );
    assert!(took < Duration::from_secs(6), "the login took {took:?}");
    assert_eq!(
        s.gateways[1].requests().len(),
        0,
        "the second was not tried"
    );
    assert!(s.smtp.messages().is_empty(), "nor the mail");
    let failed = s.otpd.events("mail_failed").join("\n");
    assert!(
        failed.contains("webhook:sms: the delivery's 3 s ran out"),
        "{failed}"
    );
}

/// Twilio reads the form as `application/x-www-form-urlencoded`: a `+` in a value is `%2B`
/// (else a space), a space is `+`, and text outside ASCII is its UTF-8 bytes percent-encoded.
#[test]
fn a_form_body_encodes_plus_space_and_non_ascii_as_twilio_reads_them() {
    let s = setup_with(Options {
        body: "To={to}&From=+15005550006&Body=Your code is {code} für {user}, Grüße",
        ..Options::default()
    });
    let login = login_by_sms(&s, 0);
    assert_eq!(libpam::code_name(login.code), "PAM_SUCCESS", "{login:?}");
    let r = &s.gateways[0].requests()[0];
    let code = r.code();
    assert_eq!(
        r.body,
        format!(
            "To=%2B441234567890&From=%2B15005550006&Body=Your+code+is+{code}+f%C3%BCr+alice%2C+Gr%C3%BC%C3%9Fe"
        )
    );
    assert_eq!(r.field("To"), Some("+441234567890"));
    assert_eq!(
        r.field("Body"),
        Some(format!("Your code is {code} für alice, Grüße").as_str())
    );
}

/// Issue #21: with `sms_field`, the SMS text stays within one segment: a long user name is cut
/// so that it fits, and the code is whole (the login succeeds with it).
#[test]
fn a_long_user_name_is_cut_so_that_the_sms_fits_one_segment_and_the_code_is_whole() {
    let s = setup_with(Options {
        body: "To={to}&From=+15005550006&Body=Your code is {code} for {user} on {host}",
        sms_field: Some("Body"),
        ..Options::default()
    });
    let user = format!("l{}ng", "o".repeat(150));
    // The template's address would be too long: codes need an address on file.
    for args in [
        ["user", "set-email", &user, "long@example.test"],
        ["user", "set-phone", &user, "+441234567891"],
    ] {
        let out = otpctl(&s.otpd, &args);
        assert!(out.status.success(), "{out:?}");
    }
    let login = login_by_sms_as(&s, &user, 0);
    assert_eq!(libpam::code_name(login.code), "PAM_SUCCESS", "{login:?}");
    let r = &s.gateways[0].requests()[0];
    let code = r.code();
    let text = r.field("Body").unwrap();
    let length = common::config::sms::SmsLength::of(text);
    assert!(length.fits_one_segment(), "{length}: {text}");
    assert!(
        text.starts_with(&format!("Your code is {code} for looo")),
        "{text}"
    );
    assert!(!text.contains(&user), "the user name was not cut: {text}");
}

/// `otpctl doctor` checks each endpoint with a connection and a TLS handshake only: a trusted
/// gateway is fine, a closed port and an untrusted certificate are problems naming the channel
/// and endpoint, a private credentials file is fine, and the gateway gets no request at all.
#[test]
fn doctor_checks_each_endpoint_by_handshake_and_sends_no_request() {
    let (ca, other) = (TestCa::new("gateway-ca"), TestCa::new("other-ca"));
    let gateway = Gateway::start(&ca, 201);
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let credentials = dir.path().join("twilio-credentials");
    std::fs::write(&credentials, "basic ACtest:token\n").unwrap();
    std::fs::set_permissions(&credentials, std::fs::Permissions::from_mode(0o600)).unwrap();
    let url = |port: u16| format!("\"https://127.0.0.1:{port}{MESSAGES}\"");
    let config = dir.path().join("otpd.toml");
    std::fs::write(
        &config,
        format!(
            "[mail]\nfrom = \"otp@example.test\"\n\n\
             [[channels.webhook]]\nname = \"sms\"\nendpoints = [{}, {}]\nbody = \"To={{to}}&Body=Your code is {{code}}\"\ncredentials_file = {:?}\nca_file = {:?}\ntimeout_seconds = 3\n\n\
             [[channels.webhook]]\nname = \"stranger\"\nendpoints = [{}]\nbody = \"To={{to}}&Body=Your code is {{code}}\"\nca_file = {:?}\n",
            url(gateway.port),
            url(closed),
            credentials.display().to_string(),
            ca.ca_cert().display().to_string(),
            url(gateway.port),
            other.ca_cert().display().to_string(),
        ),
    )
    .unwrap();
    let output = paths::otpctl_as(None)
        .arg("--config")
        .arg(&config)
        .arg("--socket")
        .arg(dir.path().join("otpd.sock"))
        .args(["--timeout", "1", "--json", "doctor"])
        .output()
        .unwrap();
    let all: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    let webhook: Vec<(String, String)> = all
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["check"] == "webhook")
        .map(|f| {
            (
                f["level"].as_str().unwrap().to_string(),
                f["message"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(webhook.len(), 4, "{all:#?}");
    assert_eq!(webhook[0].0, "ok", "{webhook:#?}");
    assert!(
        webhook[0].1.contains("credentials_file") && webhook[0].1.contains("is private"),
        "{webhook:#?}"
    );
    assert_eq!(webhook[1].0, "ok", "{webhook:#?}");
    assert!(
        webhook[1].1.starts_with(&format!(
            "webhook:sms endpoint 1 (127.0.0.1:{}): ",
            gateway.port
        )) && webhook[1]
            .1
            .contains("TLS certificate is valid for 127.0.0.1"),
        "{webhook:#?}"
    );
    assert_eq!(webhook[2].0, "problem", "{webhook:#?}");
    assert!(
        webhook[2]
            .1
            .starts_with(&format!("webhook:sms endpoint 2 (127.0.0.1:{closed}): ")),
        "{webhook:#?}"
    );
    assert_eq!(webhook[3].0, "problem", "{webhook:#?}");
    assert!(
        webhook[3].1.starts_with("webhook:stranger endpoint 1")
            && webhook[3].1.contains("UnknownIssuer"),
        "{webhook:#?}"
    );
    assert!(!output.status.success(), "problems make doctor exit 1");
    assert!(
        gateway.requests().is_empty(),
        "doctor sent a request: {:?}",
        gateway.requests()
    );
}

/// With `mode = "required"`, a user whom no address reaches but a phone number does was let in
/// without any code (skipped as having no address).
#[test]
fn a_user_reached_only_by_phone_is_asked_for_the_code_by_sms_and_not_let_in_without_one() {
    let s = setup(&[201], true);
    // The template makes no usable address of this name: its local part is over 64 bytes.
    let user = "p".repeat(70);
    let out = otpctl(&s.otpd, &["user", "set-phone", &user, "+447700900123"]);
    assert!(out.status.success(), "{out:?}");
    let login = login_by_sms_as(&s, &user, 0);
    assert_eq!(libpam::code_name(login.code), "PAM_SUCCESS", "{login:?}");
    assert!(
        login
            .prompts
            .first()
            .is_some_and(|p| p.starts_with("Code sent by SMS to +44*******123")),
        "{login:?}"
    );
    assert_eq!(s.gateways[0].requests().len(), 1);
    assert!(s.smtp.messages().is_empty(), "no mail: there is no address");

    // A wrong code is refused: the code step holds for them as for everyone.
    let wrong = login_with(&s.pam, "sshd", &user, None, |_| "000000".to_string());
    assert_ne!(libpam::code_name(wrong.code), "PAM_SUCCESS", "{wrong:?}");
}

/// The hostile user name of [`hostile_names_stay_one_value_in_a_form_and_in_json`]: it tries to
/// add a form field (`&To=`) and to close a JSON string and object.
const HOSTILE: &str = "eve&To=+19005550000&Body=x\"}]{\"to\"=\"+1900\\";

/// A user name that tries to add a form field, or to end a JSON string and add a key, stays
/// one value of its own field, in a form body and in a JSON body; the remote host the login
/// claims is in neither.
#[test]
fn hostile_names_stay_one_value_in_a_form_and_in_json() {
    for json in [false, true] {
        let (body, extra) = if json {
            (
                "{\"to\": \"{to}\", \"text\": \"Your code is {code} for {user}\"}",
                "body_format = \"json\"\n".to_string(),
            )
        } else {
            (
                "To={to}&From=+15005550006&Body=Your code is {code} for {user}",
                String::new(),
            )
        };
        let s = setup_with(Options {
            body,
            extra,
            ..Options::default()
        });
        let out = otpctl(&s.otpd, &["user", "set-phone", HOSTILE, "+441234567890"]);
        assert!(out.status.success(), "{out:?}");
        let reader: RequestReader = s.gateways[0].reader();
        let login = login_with(
            &s.pam,
            "sshd",
            HOSTILE,
            Some("198.51.100.9\"&To=+1900"),
            move |_| {
                let requests = reader.wait_for(1, REQUEST_WAIT);
                if json {
                    let v: serde_json::Value =
                        serde_json::from_str(&requests[0].body).expect("the body is JSON");
                    let text = v["text"].as_str().unwrap_or_default().to_string();
                    text.split("code is ").nth(1).unwrap_or_default()[..6].to_string()
                } else {
                    requests[0].code()
                }
            },
        );
        assert_eq!(libpam::code_name(login.code), "PAM_SUCCESS", "{login:?}");
        let r = &s.gateways[0].requests()[0];
        assert!(!r.body.contains("198.51.100.9"), "{}", r.body);
        if json {
            let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
            let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
            assert_eq!(keys, ["text", "to"], "{}", r.body);
            assert_eq!(v["to"], "+441234567890");
            assert!(
                v["text"]
                    .as_str()
                    .unwrap()
                    .ends_with(&format!(" for {HOSTILE}")),
                "{}",
                r.body
            );
        } else {
            let names: Vec<&str> = r.form.iter().map(|(k, _)| k.as_str()).collect();
            assert_eq!(names, ["To", "From", "Body"], "{}", r.body);
            assert_eq!(r.field("To"), Some("+441234567890"));
            assert!(
                r.field("Body")
                    .unwrap()
                    .ends_with(&format!(" for {HOSTILE}")),
                "{}",
                r.body
            );
        }
    }
}

/// A user whose codes go by SMS is told of their lockout by SMS too (the channel's
/// `notice_body`, the notification's subject as the text), with no code in it and no mail.
#[test]
fn a_lockout_is_told_by_sms_to_a_user_reached_by_sms_and_the_text_holds_no_code() {
    let s = setup_with(Options {
        sms_field: Some("Body"),
        extra: "notice_body = \"To={to}&From=+15005550006&Body={message}\"\n".into(),
        ..Options::default()
    });
    let text = s.otpd.config_text().replace(
        "mode = \"required\"\n",
        "mode = \"required\"\nmax_user_failures = 1\n",
    );
    assert!(text.contains("max_user_failures = 1"), "{text}");
    s.otpd.reload_with(&text);
    let reader: RequestReader = s.gateways[0].reader();
    let login = login_with(&s.pam, "sshd", "alice", None, move |_| {
        let code = reader.wait_for(1, REQUEST_WAIT)[0].code();
        let mut wrong = code.into_bytes();
        wrong[0] = if wrong[0] == b'0' { b'1' } else { b'0' };
        String::from_utf8(wrong).unwrap()
    });
    assert_eq!(libpam::code_name(login.code), "PAM_MAXTRIES", "{login:?}");
    let requests = s.gateways[0].reader().wait_for(2, REQUEST_WAIT);
    assert_eq!(requests.len(), 2, "the code, then the notice");
    let code = requests[0].code();
    let notice = &requests[1];
    assert_eq!(notice.field("To"), Some("+441234567890"));
    let body = notice.field("Body").unwrap_or_default();
    assert!(
        body.starts_with("Logins of alice to ") && body.ends_with(" are locked"),
        "{body}"
    );
    assert!(!notice.body.contains(&code), "{}", notice.body);
    std::thread::sleep(Duration::from_secs(1));
    assert!(s.smtp.messages().is_empty(), "nothing by mail");
}
