//! End-to-end, issue #19: users' addresses and groups from a real OpenLDAP slapd on loopback,
//! through real otpd and real PAM logins, over LDAPS and StartTLS verified against a test CA;
//! failover, the cache while every server is down, and fail-closed when nothing answers.

// Test code: a failed unwrap is how a test reports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use common::wire::{LoginContext, Request, Response};
use e2e_tests::login::{LoginResult, login_with, mailed_code, never_prompted};
use e2e_tests::otpd::{Otpd, TestConfig};
use e2e_tests::paths;
use e2e_tests::slapd::{BASE, BIND_DN, Slapd};
use e2e_tests::smtp::SmtpCapture;
use e2e_tests::stack::PamConfDir;
use e2e_tests::tls::TestCa;

struct Setup {
    smtp: SmtpCapture,
    otpd: Otpd,
    pam: PamConfDir,
}

/// otpd requiring a code of everyone, with one `[[directory.ldap]]` source named `corp` whose
/// keys besides name, base and filter are `source`, then `extra` (policies, profiles), and an
/// `email_template` after it that must never be used for a user the directory should know.
fn setup(source: &str, extra: &str) -> Setup {
    let smtp = SmtpCapture::start();
    let body = format!(
        "[directory]\nemail_template = \"{{user}}@template.example.test\"\n\n\
         [[directory.ldap]]\nname = \"corp\"\nbase = \"{BASE}\"\nfilter = \"(uid={{user}})\"\n{source}\n\n\
         [defaults]\nmode = \"required\"\n\n{extra}\n"
    );
    let otpd = Otpd::start(&TestConfig {
        daemon: String::new(),
        body,
        smtp_port: smtp.port,
    });
    let pam = PamConfDir::new();
    pam.otp_then_permit("sshd", &otpd.socket, "");
    Setup { smtp, otpd, pam }
}

/// `urls`, the test CA, and a bind as the directory's admin with a private password file.
fn bound_to(urls: &[String], ca: &TestCa, slapd: &Slapd) -> String {
    let urls: Vec<String> = urls.iter().map(|u| format!("{u:?}")).collect();
    format!(
        "urls = [{}]\nca_file = {:?}\nbind_dn = \"{BIND_DN}\"\nbind_password_file = {:?}\nconnect_timeout_seconds = 1\nsearch_timeout_seconds = 2",
        urls.join(", "),
        ca.ca_cert().display().to_string(),
        slapd.password_file().display().to_string()
    )
}

/// [`bound_to`] the server, with a private password file holding the wrong password (kept
/// while the returned file lives).
fn bound_with_a_wrong_password(ca: &TestCa, slapd: &Slapd) -> (tempfile::NamedTempFile, String) {
    use std::os::unix::fs::PermissionsExt;
    let wrong = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(wrong.path(), "not-the-password\n").unwrap();
    std::fs::set_permissions(wrong.path(), std::fs::Permissions::from_mode(0o600)).unwrap();
    let source = bound_to(&[slapd.ldaps_url()], ca, slapd).replace(
        &format!("{:?}", slapd.password_file().display().to_string()),
        &format!("{:?}", wrong.path().display().to_string()),
    );
    (wrong, source)
}

/// A login by `user` answering with the code of the `nth` mail of the test.
fn login(s: &Setup, user: &str, nth: usize) -> LoginResult {
    login_with(
        &s.pam,
        "sshd",
        user,
        None,
        mailed_code(s.smtp.reader(), nth),
    )
}

fn assert_mailed_to(s: &Setup, result: &LoginResult, address: &str) {
    assert_eq!(result.name(), "PAM_SUCCESS", "{result:?}\n{}", s.otpd.log());
    assert_eq!(s.smtp.last().rcpt_tos, vec![address.to_string()]);
}

fn assert_unavailable(s: &Setup, result: &LoginResult) {
    assert_eq!(
        result.name(),
        "PAM_AUTHINFO_UNAVAIL",
        "{result:?}\n{}",
        s.otpd.log()
    );
    assert!(result.prompts.is_empty(), "{result:?}");
}

#[test]
fn over_ldaps_the_code_goes_to_the_address_in_the_directory_and_the_audit_row_says_so() {
    let ca = TestCa::new("ldap-test-ca");
    let slapd = Slapd::start(&ca);
    let s = setup(&bound_to(&[slapd.ldaps_url()], &ca, &slapd), "");
    let result = login(&s, "bob", 1);
    assert_mailed_to(&s, &result, "bob@ldap.example.test");
    let issued = s.otpd.events("issued");
    assert!(
        issued
            .iter()
            .any(|l| l.contains("address_source=ldap:corp")),
        "{issued:?}"
    );
    // The bind password never reaches the log.
    assert!(!s.otpd.log().contains(e2e_tests::slapd::BIND_PASSWORD));
}

#[test]
fn over_starttls_a_match_group_policy_sees_the_groups_from_member_of() {
    let ca = TestCa::new("ldap-test-ca");
    let slapd = Slapd::start(&ca);
    let s = setup(
        &bound_to(&[slapd.ldap_url()], &ca, &slapd),
        "[profiles.ops]\nmode = \"off\"\n\n[[policies]]\nmatch_group = \"ops\"\nprofile = \"ops\"",
    );
    // alice is in ops only in the directory: no code for her.
    let alice = login_with(&s.pam, "sshd", "alice", None, never_prompted);
    assert_eq!(alice.name(), "PAM_SUCCESS", "{alice:?}\n{}", s.otpd.log());
    let bob = login(&s, "bob", 1);
    assert_mailed_to(&s, &bob, "bob@ldap.example.test");
}

#[test]
fn a_department_policy_picks_its_profile_from_the_directory_attribute() {
    let ca = TestCa::new("ldap-test-ca");
    let slapd = Slapd::start(&ca);
    let s = setup(
        &bound_to(&[slapd.ldaps_url()], &ca, &slapd),
        "[profiles.ops]\nmode = \"off\"\n\n[[policies]]\nmatch_attribute = { departmentNumber = \"Ops*\" }\nprofile = \"ops\"",
    );
    let alice = login_with(&s.pam, "sshd", "alice", None, never_prompted);
    assert_eq!(alice.name(), "PAM_SUCCESS", "{alice:?}\n{}", s.otpd.log());
    assert_mailed_to(&s, &login(&s, "bob", 1), "bob@ldap.example.test");
}

#[test]
fn posix_group_searches_give_groups_by_member_uid_to_anonymous_searches() {
    let ca = TestCa::new("ldap-test-ca");
    let slapd = Slapd::start(&ca);
    let source = format!(
        "urls = [{:?}]\nca_file = {:?}\ngroup_search = \"posix\"",
        slapd.ldaps_url(),
        ca.ca_cert().display().to_string()
    );
    let s = setup(
        &source,
        "[profiles.devs]\nmode = \"off\"\n\n[[policies]]\nmatch_group = \"devs\"\nprofile = \"devs\"",
    );
    let alice = login_with(&s.pam, "sshd", "alice", None, never_prompted);
    assert_eq!(alice.name(), "PAM_SUCCESS", "{alice:?}\n{}", s.otpd.log());
    assert_mailed_to(&s, &login(&s, "bob", 1), "bob@ldap.example.test");
}

#[test]
fn a_server_whose_certificate_another_ca_signed_is_refused_and_the_login_is_unavailable() {
    let ca = TestCa::new("ldap-test-ca");
    let other = TestCa::new("someone-else");
    let slapd = Slapd::start(&ca);
    for url in [slapd.ldaps_url(), slapd.ldap_url()] {
        let s = setup(&bound_to(&[url], &other, &slapd), "");
        let result = login_with(&s.pam, "sshd", "bob", None, never_prompted);
        assert_unavailable(&s, &result);
        assert!(
            s.smtp.messages().is_empty(),
            "nothing is mailed, least of all to the template"
        );
        assert!(
            s.otpd.log().contains("LDAP source corp"),
            "{}",
            s.otpd.log()
        );
    }
}

#[test]
fn a_server_without_starttls_is_refused_before_the_bind_password_is_sent() {
    let ca = TestCa::new("ldap-test-ca");
    let plain = Slapd::start_without_tls();
    let s = setup(&bound_to(&[plain.ldap_url()], &ca, &plain), "");
    // Only what otpd sent, not the harness's own loading of the fixture.
    let loaded = plain.log().len();
    let result = login_with(&s.pam, "sshd", "bob", None, never_prompted);
    assert_unavailable(&s, &result);
    let seen = plain.log().split_off(loaded);
    assert!(
        seen.contains("oid=1.3.6.1.4.1.1466.20037"),
        "no StartTLS asked:\n{seen}"
    );
    assert!(!seen.contains("BIND"), "a bind was sent in clear:\n{seen}");
    assert!(
        !seen.contains("SRCH"),
        "a search was sent in clear:\n{seen}"
    );
}

#[test]
fn a_wrong_bind_password_makes_the_login_unavailable_and_the_log_says_why() {
    let ca = TestCa::new("ldap-test-ca");
    let slapd = Slapd::start(&ca);
    let (_wrong, source) = bound_with_a_wrong_password(&ca, &slapd);
    let s = setup(&source, "");
    let result = login_with(&s.pam, "sshd", "bob", None, never_prompted);
    assert_unavailable(&s, &result);
    let log = s.otpd.log();
    assert!(log.contains("LDAP source corp"), "{log}");
    assert!(
        log.contains("49"),
        "the invalidCredentials result code: {log}"
    );
    assert!(!log.contains("not-the-password"), "{log}");
}

#[test]
fn user_names_with_filter_characters_find_only_themselves() {
    let ca = TestCa::new("ldap-test-ca");
    let slapd = Slapd::start(&ca);
    let s = setup(&bound_to(&[slapd.ldaps_url()], &ca, &slapd), "");
    for (nth, (user, address)) in [
        ("a*", "star@ldap.example.test"),
        ("a(b)", "parens@ldap.example.test"),
        ("a\\b", "backslash@ldap.example.test"),
        ("zoë", "zoe@ldap.example.test"),
    ]
    .into_iter()
    .enumerate()
    {
        let result = login(&s, user, nth + 1);
        assert_mailed_to(&s, &result, address);
    }
    // "*" unescaped would match every entry; escaped it matches none, so the template answers.
    let result = login(&s, "*", 5);
    assert_mailed_to(&s, &result, "*@template.example.test");
}

#[test]
fn with_the_first_server_stopped_the_second_answers() {
    let ca = TestCa::new("ldap-test-ca");
    let mut first = Slapd::start(&ca);
    let second = Slapd::start(&ca);
    let s = setup(
        &bound_to(&[first.ldaps_url(), second.ldaps_url()], &ca, &second),
        "",
    );
    first.stop();
    assert_mailed_to(&s, &login(&s, "bob", 1), "bob@ldap.example.test");
}

#[test]
fn with_every_server_stopped_the_cache_serves_until_its_ttl_then_the_login_is_unavailable() {
    let ca = TestCa::new("ldap-test-ca");
    let mut first = Slapd::start(&ca);
    let mut second = Slapd::start(&ca);
    let source = format!(
        "{}\ncache_ttl_seconds = 6",
        bound_to(&[first.ldaps_url(), second.ldaps_url()], &ca, &second)
    );
    let s = setup(&source, "");
    // The cache counts whole seconds: an entry serves at least TTL - 1 s and at most TTL + 1 s
    // after the login that stored it.
    let before = Instant::now();
    assert_mailed_to(&s, &login(&s, "bob", 1), "bob@ldap.example.test");
    let stored_by = Instant::now();
    first.stop();
    second.stop();
    let again = login_with(&s.pam, "sshd", "bob", None, mailed_code(s.smtp.reader(), 2));
    assert!(
        before.elapsed() < Duration::from_secs(5),
        "too slow to test the TTL"
    );
    assert_mailed_to(&s, &again, "bob@ldap.example.test");
    std::thread::sleep(Duration::from_secs(7).saturating_sub(stored_by.elapsed()));
    let late = login_with(&s.pam, "sshd", "bob", None, never_prompted);
    assert_unavailable(&s, &late);
}

/// `directory_down = "last_known"`: past the TTL, with every server down, the directory's last
/// answer still serves, and the audit row of the code says it was the last known one.
#[test]
fn with_directory_down_last_known_the_last_answer_serves_past_the_ttl() {
    let ca = TestCa::new("ldap-test-ca");
    let mut slapd = Slapd::start(&ca);
    let source = format!(
        "{}\ncache_ttl_seconds = 1",
        bound_to(&[slapd.ldaps_url()], &ca, &slapd)
    );
    let s = setup(&source, "directory_down = \"last_known\"");
    assert_mailed_to(&s, &login(&s, "bob", 1), "bob@ldap.example.test");
    let up = "otpd_directory_up{source=\"ldap:corp\"} ";
    assert!(
        s.otpd
            .otpctl(None, &["metrics"])
            .1
            .contains(&format!("{up}1"))
    );
    slapd.stop();
    std::thread::sleep(Duration::from_secs(3));
    assert_mailed_to(&s, &login(&s, "bob", 2), "bob@ldap.example.test");
    assert!(
        s.otpd
            .otpctl(None, &["metrics"])
            .1
            .contains(&format!("{up}0"))
    );
    let log = s.otpd.log();
    assert!(
        log.contains("address_source\\x3dldap:corp\\x20directory\\x3dlast_known"),
        "{log}"
    );
    // A user the directory never answered for has no last answer: unavailable.
    let carol = login_with(&s.pam, "sshd", "carol", None, never_prompted);
    assert_unavailable(&s, &carol);
}

/// Issue #22: the user's `preferredLanguage` in the directory words their login texts.
#[test]
fn the_directorys_preferred_language_words_the_prompt() {
    let ca = TestCa::new("ldap-test-ca");
    let slapd = Slapd::start(&ca);
    let s = setup(&bound_to(&[slapd.ldaps_url()], &ca, &slapd), "");
    let dora = login(&s, "dora", 1);
    assert_mailed_to(&s, &dora, "dora@ldap.example.test");
    assert!(
        dora.prompts[0].starts_with("Code gesendet an d***@l***.test (gültig 10 Min.): "),
        "{dora:?}"
    );
    let bob = login(&s, "bob", 2);
    assert!(bob.prompts[0].starts_with("Code sent to "), "{bob:?}");
}

#[test]
fn a_silent_directory_does_not_delay_a_login_whose_address_is_in_otpds_table() {
    let ca = TestCa::new("ldap-test-ca");
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let source = format!(
        "urls = [\"ldaps://127.0.0.1:{port}\"]\nca_file = {:?}\nconnect_timeout_seconds = 4",
        ca.ca_cert().display().to_string()
    );
    let s = setup(&source, "");
    let added = std::process::Command::new(paths::binary("otpctl"))
        .arg("--socket")
        .arg(&s.otpd.socket)
        .arg("--config")
        .arg(&s.otpd.config_path)
        .args([
            "user",
            "add",
            "carol",
            "--no-account",
            "--email",
            "carol@table.example.test",
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(added.status.success(), "{added:?}");
    std::thread::scope(|scope| {
        // bob's login waits for the silent server, on otpd's side of the socket.
        let stuck = scope.spawn(|| {
            let started = Instant::now();
            let answer = s.otpd.call(&Request::Begin {
                login: LoginContext {
                    user: "bob".into(),
                    service: "sshd".into(),
                    rhost: None,
                    tty: None,
                    protocol: None,
                },
                ssh_keys: Vec::new(),
            });
            (answer, started.elapsed())
        });
        std::thread::sleep(Duration::from_millis(300));
        let started = Instant::now();
        let carol = login(&s, "carol", 1);
        let carol_took = started.elapsed();
        let (bob, bob_took) = stuck.join().unwrap();
        assert_mailed_to(&s, &carol, "carol@table.example.test");
        assert!(
            carol_took < Duration::from_secs(2),
            "carol waited {carol_took:?}"
        );
        assert!(
            matches!(&bob, Ok(Response::Unavailable { .. })),
            "{bob:?}\n{}",
            s.otpd.log()
        );
        assert!(
            bob_took >= Duration::from_secs(3),
            "bob's lookup ended early: {bob_took:?}"
        );
    });
    drop(silent);
}

#[test]
fn a_server_that_accepts_and_never_answers_makes_the_login_unavailable_within_the_deadline() {
    let ca = TestCa::new("ldap-test-ca");
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let source = format!(
        "urls = [\"ldaps://127.0.0.1:{port}\"]\nca_file = {:?}\nconnect_timeout_seconds = 1",
        ca.ca_cert().display().to_string()
    );
    let s = setup(&source, "");
    let started = Instant::now();
    let result = login_with(&s.pam, "sshd", "bob", None, never_prompted);
    let took = started.elapsed();
    assert_unavailable(&s, &result);
    // otpd's facts deadline is 5 s; the connect timeout ends it well before.
    assert!(took < Duration::from_secs(5), "took {took:?}");
    drop(silent);
}

/// The `ldap` findings of `otpctl doctor --json` over `s`'s config.
fn doctor_ldap(s: &Setup) -> Vec<serde_json::Value> {
    doctor_ldap_with(s, &[])
}

/// [`doctor_ldap`] with `args` after `doctor`.
fn doctor_ldap_with(s: &Setup, args: &[&str]) -> Vec<serde_json::Value> {
    let output = std::process::Command::new(paths::binary("otpctl"))
        .arg("--config")
        .arg(&s.otpd.config_path)
        .args(["--timeout", "1", "--json", "doctor"])
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let all: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    all.as_array()
        .unwrap()
        .iter()
        .filter(|f| f["check"] == "ldap")
        .cloned()
        .collect()
}

#[test]
fn otpctl_doctor_binds_to_each_ldap_server_and_names_the_one_that_is_down() {
    let ca = TestCa::new("ldap-test-ca");
    let slapd = Slapd::start(&ca);
    let down = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let urls = [slapd.ldaps_url(), format!("ldaps://127.0.0.1:{down}")];
    let s = setup(&bound_to(&urls, &ca, &slapd), "");
    let f = doctor_ldap(&s);
    assert_eq!(f.len(), 2, "{f:#?}");
    assert_eq!(f[0]["level"], "ok", "{f:#?}");
    let ok = f[0]["message"].as_str().unwrap();
    assert!(
        ok.contains("ldaps verified, bound as cn=admin,dc=example,dc=com"),
        "{ok}"
    );
    assert_eq!(f[1]["level"], "problem", "{f:#?}");
    assert!(
        f[1]["message"]
            .as_str()
            .unwrap()
            .contains(&down.to_string()),
        "{f:#?}"
    );
}

/// `otpctl doctor --ldap-user`: the user looked up on each server as a login would, with the
/// address and groups found, and a user the filter does not find is a problem.
#[test]
fn otpctl_doctor_looks_a_test_user_up_on_each_server() {
    let ca = TestCa::new("ldap-test-ca");
    let slapd = Slapd::start(&ca);
    let s = setup(&bound_to(&[slapd.ldaps_url()], &ca, &slapd), "");
    let f = doctor_ldap_with(&s, &["--ldap-user", "alice"]);
    assert_eq!(f.len(), 2, "{f:#?}");
    assert_eq!(f[1]["level"], "ok", "{f:#?}");
    let found = f[1]["message"].as_str().unwrap();
    assert!(
        found.contains("user alice found with (uid=alice): address alice@ldap.example.test"),
        "{found}"
    );
    let f = doctor_ldap_with(&s, &["--ldap-user", "nobody-here"]);
    assert_eq!(f[1]["level"], "problem", "{f:#?}");
    assert!(
        f[1]["message"]
            .as_str()
            .unwrap()
            .contains("user nobody-here not found"),
        "{f:#?}"
    );
}

#[test]
fn otpctl_doctor_says_a_bind_password_is_wrong() {
    let ca = TestCa::new("ldap-test-ca");
    let slapd = Slapd::start(&ca);
    let (_wrong, source) = bound_with_a_wrong_password(&ca, &slapd);
    let s = setup(&source, "");
    let f = doctor_ldap(&s);
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(f[0]["level"], "problem", "{f:#?}");
    assert!(f[0]["message"].as_str().unwrap().contains("49"), "{f:#?}");
}

/// `otpctl user show USER --json` over `s`'s otpd, as root.
fn user_show(s: &Setup, user: &str) -> serde_json::Value {
    let output = std::process::Command::new(paths::binary("otpctl"))
        .arg("--socket")
        .arg(&s.otpd.socket)
        .arg("--config")
        .arg(&s.otpd.config_path)
        .args(["user", "show", user, "--json"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let all: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    all["user"].clone()
}

#[test]
fn otpctl_user_show_gives_the_directory_address_its_source_and_groups_or_why_there_is_none() {
    let ca = TestCa::new("ldap-test-ca");
    let mut slapd = Slapd::start(&ca);
    let s = setup(&bound_to(&[slapd.ldaps_url()], &ca, &slapd), "");
    let bob = user_show(&s, "bob");
    assert_eq!(bob["address"], "bob@ldap.example.test", "{bob}");
    assert_eq!(bob["address_source"], "ldap:corp", "{bob}");
    // What else the directory returned: the groups (from memberOf).
    let alice = user_show(&s, "alice");
    assert_eq!(
        alice["directory_groups"],
        serde_json::json!(["ops"]),
        "{alice}"
    );
    // Unknown to the directory: the template, as a login would use it.
    let nobody = user_show(&s, "root");
    assert_eq!(nobody["address_source"], "template", "{nobody}");
    slapd.stop();
    // A user the cache does not hold yet.
    let dora = user_show(&s, "dora");
    assert!(dora["address"].is_null(), "{dora}");
    let why = dora["address_source"].as_str().unwrap();
    assert!(why.starts_with("unavailable: LDAP source corp"), "{why}");
}
