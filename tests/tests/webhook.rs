//! End-to-end (issue #21): codes by an HTTPS webhook. A loopback gateway that answers as
//! Twilio's Messages API (`tests/webhook/gateway.py`) records the request; logins go through
//! real libpam and the built module to the real otpd, the phone number set with the real
//! otpctl. The request is exactly Twilio's form, the code read from it logs the user in, a
//! failing endpoint falls back to the next, then to mail, and an untrusted certificate gets no
//! code.

// Test code: a failed unwrap is how a test reports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::PermissionsExt;

use e2e_tests::libpam;
use e2e_tests::login::{LoginResult, login_with, mailed_code};
use e2e_tests::otpd::{Otpd, TestConfig};
use e2e_tests::paths;
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

/// otpd requiring a code of everyone by `channels = ["sms", "email"]`, the sms channel's
/// endpoints one gateway per status in `statuses`, trusting the gateways' CA (or, with
/// `trusted` false, another one); alice's phone number set with otpctl.
fn setup(statuses: &[u16], trusted: bool) -> Sms {
    let (ca, other) = (TestCa::new("gateway-ca"), TestCa::new("other-ca"));
    let gateways: Vec<Gateway> = statuses.iter().map(|&s| Gateway::start(&ca, s)).collect();
    let endpoints: Vec<String> = gateways
        .iter()
        .map(|g| format!("\"https://127.0.0.1:{}{MESSAGES}\"", g.port))
        .collect();
    let trust = if trusted { &ca } else { &other };
    let smtp = SmtpCapture::start();
    let secrets = tempfile::tempdir().unwrap();
    let credentials = secrets.path().join("twilio-credentials");
    std::fs::write(&credentials, "basic ACtest:auth token+1\n").unwrap();
    std::fs::set_permissions(&credentials, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut config = TestConfig::required(smtp.port);
    config.body.push_str(&format!(
        "channels = [\"sms\", \"email\"]\n\n[[channels.webhook]]\nname = \"sms\"\ndisplay_name = \"SMS\"\nendpoints = [{}]\nbody = \"To={{to}}&From=+15005550006&Body=Your code is {{code}}\"\ncredentials_file = \"{}\"\nca_file = \"{}\"\ntimeout_seconds = 5\n",
        endpoints.join(", "),
        credentials.display(),
        trust.ca_cert().display()
    ));
    let otpd = Otpd::start(&config);
    let pam = PamConfDir::new();
    pam.otp_then_permit("sshd", &otpd.socket, "");
    let out = paths::otpctl_as(None)
        .arg("--socket")
        .arg(&otpd.socket)
        .arg("--config")
        .arg(&otpd.config_path)
        .args(["user", "set-phone", "alice", "+441234567890"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown = paths::otpctl_as(None)
        .arg("--socket")
        .arg(&otpd.socket)
        .arg("--config")
        .arg(&otpd.config_path)
        .args(["user", "show", "alice"])
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(shown.contains("phone            +441234567890"), "{shown}");
    Sms {
        gateways,
        smtp,
        otpd,
        pam,
        _files: (ca, other, secrets),
    }
}

/// A login as alice answering with the code of the gateway's first request.
fn login_by_sms(s: &Sms, gateway: usize) -> LoginResult {
    let reader: RequestReader = s.gateways[gateway].reader();
    login_with(&s.pam, "sshd", "alice", None, move |_| {
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
