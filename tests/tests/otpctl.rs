//! End-to-end: the real `otpctl` against a real otpd, each command's effect checked in the next
//! real PAM login (libpam loading the built module) and the real mail it sends. Non-admin and
//! self-service cases run otpctl as other uids (nobody, and a user created for the test).

// Test code: a failed unwrap is how a test reports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use common::secret::SecretString;
use common::text::mask_email;
use common::wire::{LoginContext, Request, Response};
use common::wire_admin::{AdminRequest, AdminResponse, SelfAction};
use e2e_tests::login::{LoginResult, login_with, never_prompted};
use e2e_tests::otpd::{Otpd, TestConfig};
use e2e_tests::paths;
use e2e_tests::programs::answers::wrong;
use e2e_tests::programs::users::TestUser;
use e2e_tests::smtp::{MAIL_WAIT, SmtpCapture};
use e2e_tests::stack::PamConfDir;
use serde_json::Value;

/// Optional mode (only enrolled users need a code), addresses from a template, and limits
/// loose enough that a test's many logins are never capped or reused.
fn optional(smtp_port: u16) -> TestConfig {
    TestConfig {
        daemon: String::new(),
        body: "[directory]\nemail_template = \"{user}@example.test\"\n\n[defaults]\nmode = \"optional\"\nresend_cooldown_seconds = 0\nmax_sends_per_hour = 100\nmax_sends_per_day = 1000\n".into(),
        smtp_port,
    }
}

struct Setup {
    smtp: SmtpCapture,
    otpd: Otpd,
    pam: PamConfDir,
}

fn setup_with(config: impl FnOnce(u16) -> TestConfig) -> Setup {
    let smtp = SmtpCapture::start();
    let otpd = Otpd::start(&config(smtp.port));
    let pam = PamConfDir::new();
    pam.otp_then_permit("sshd", &otpd.socket, "");
    Setup { smtp, otpd, pam }
}

fn setup() -> Setup {
    setup_with(optional)
}

/// A login through PAM; `answer` replies to each prompt.
fn login(s: &Setup, user: &str, answer: impl FnMut(&str) -> String + 'static) -> LoginResult {
    login_with(&s.pam, "sshd", user, None, answer)
}

/// A login answered with the code of the mail number `nth` (1-based) once it arrives.
fn login_with_mailed_code(s: &Setup, user: &str, nth: usize) -> LoginResult {
    let reader = s.smtp.reader();
    login(s, user, move |_| {
        let mails = reader.wait_for_codes(nth, MAIL_WAIT);
        assert!(mails.len() >= nth, "mail {nth} did not arrive");
        mails[nth - 1].code()
    })
}

/// A login that must not be asked for anything.
fn login_without_prompt(s: &Setup, user: &str) -> LoginResult {
    login(s, user, never_prompted)
}

/// otpctl's exit status and output.
#[derive(Debug)]
struct Ran {
    status: i32,
    stdout: String,
    stderr: String,
}

impl Ran {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout))
    }
}

fn ran(output: Output) -> Ran {
    Ran {
        status: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// `otpctl --socket S --config C ARGS` as root.
fn ctl(s: &Setup, args: &[&str]) -> Ran {
    ran(command(None, s, args)
        .stdin(Stdio::null())
        .output()
        .unwrap())
}

/// The same, as the uid:gid `who` (with no supplementary groups).
fn ctl_as(who: (u32, u32), s: &Setup, args: &[&str]) -> Ran {
    ran(command(Some(who), s, args)
        .stdin(Stdio::null())
        .output()
        .unwrap())
}

fn command(who: Option<(u32, u32)>, s: &Setup, args: &[&str]) -> Command {
    let mut cmd = paths::otpctl_as(who);
    cmd.arg("--socket").arg(&s.otpd.socket);
    if !args.contains(&"--config") {
        cmd.arg("--config").arg(&s.otpd.config_path);
    }
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd
}

const NOBODY: (u32, u32) = (65534, 65534);

/// Runs a self-service command as `user`, answering its code prompt with `answer(code)` once
/// the mail number `nth` arrives; `None` closes standard input without answering.
fn self_service(
    s: &Setup,
    user: &TestUser,
    args: &[&str],
    nth: usize,
    answer: impl FnOnce(String) -> Option<String>,
) -> Ran {
    let mut child: Child = command(Some(user.who()), s, args)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let mails = s.smtp.wait_for_codes(nth, MAIL_WAIT);
    assert!(mails.len() >= nth, "the code mail {nth} did not arrive");
    let mut stdin = child.stdin.take().unwrap();
    if let Some(text) = answer(mails[nth - 1].code()) {
        writeln!(stdin, "{text}").unwrap();
    }
    drop(stdin);
    ran(child.wait_with_output().unwrap())
}

#[test]
fn an_added_and_enabled_user_is_asked_for_a_code_mailed_to_the_address_on_file() {
    let s = setup();
    assert_eq!(login_without_prompt(&s, "zoe").name(), "PAM_SUCCESS");
    let r = ctl(
        &s,
        &[
            "user",
            "add",
            "zoe",
            "--no-account",
            "--email",
            "zoe@corp.test",
            "--enable",
        ],
    );
    assert_eq!(r.status, 0, "{r:?}");
    let l = login_with_mailed_code(&s, "zoe", 1);
    assert_eq!(l.name(), "PAM_SUCCESS", "{l:?}");
    assert!(
        l.prompts[0].starts_with("Code sent to z***@c***.test"),
        "{l:?}"
    );
    assert_eq!(s.smtp.last_code_mail().rcpt_tos, ["zoe@corp.test"]);
}

#[test]
fn user_disable_and_remove_turn_the_code_off_for_the_next_login() {
    let s = setup();
    ctl(
        &s,
        &[
            "user",
            "add",
            "yan",
            "--no-account",
            "--email",
            "yan@corp.test",
            "--enable",
        ],
    );
    assert_eq!(login_with_mailed_code(&s, "yan", 1).name(), "PAM_SUCCESS");
    let r = ctl(&s, &["user", "disable", "yan"]);
    assert_eq!(
        (r.status, r.stdout.trim()),
        (0, "The login code is off for yan.")
    );
    assert_eq!(login_without_prompt(&s, "yan").name(), "PAM_SUCCESS");
    ctl(&s, &["user", "enable", "yan"]);
    assert_eq!(login_with_mailed_code(&s, "yan", 2).name(), "PAM_SUCCESS");
    assert_eq!(ctl(&s, &["user", "remove", "yan"]).status, 0);
    assert_eq!(login_without_prompt(&s, "yan").name(), "PAM_SUCCESS");
    let gone = ctl(&s, &["user", "remove", "yan"]);
    assert_eq!(gone.status, 5, "{gone:?}");
}

#[test]
fn set_email_and_set_protocols_change_the_next_login() {
    let s = setup();
    ctl(
        &s,
        &[
            "user",
            "add",
            "xia",
            "--no-account",
            "--email",
            "old@corp.test",
            "--enable",
        ],
    );
    let r = ctl(&s, &["user", "set-email", "xia", "new@corp.test"]);
    assert_eq!(r.status, 0, "{r:?}");
    assert_eq!(login_with_mailed_code(&s, "xia", 1).name(), "PAM_SUCCESS");
    assert_eq!(s.smtp.last_code_mail().rcpt_tos, ["new@corp.test"]);
    let r = ctl(&s, &["user", "set-protocols", "xia", "ftp"]);
    assert_eq!(r.status, 0, "{r:?}");
    assert_eq!(login_without_prompt(&s, "xia").name(), "PAM_SUCCESS");
    let bad = ctl(&s, &["user", "set-email", "xia", "not an address"]);
    assert_eq!(bad.status, 1, "{bad:?}");
    assert!(bad.stderr.contains("not a valid address"), "{bad:?}");
}

#[test]
fn unlock_clears_a_lockout_so_the_next_login_gets_a_code() {
    let s = setup_with(|port| {
        let mut c = optional(port);
        c.body.push_str("max_user_failures = 1\n");
        c
    });
    ctl(
        &s,
        &[
            "user",
            "add",
            "wes",
            "--no-account",
            "--email",
            "wes@corp.test",
            "--enable",
        ],
    );
    let reader = s.smtp.reader();
    let failed = login(&s, "wes", move |_| {
        wrong(&reader.wait_for_codes(1, MAIL_WAIT)[0].code())
    });
    assert_ne!(failed.name(), "PAM_SUCCESS", "{failed:?}");
    let locked = login_without_prompt(&s, "wes");
    assert_ne!(locked.name(), "PAM_SUCCESS", "{locked:?}");
    assert!(
        locked.errors[0].starts_with("Too many wrong codes"),
        "{locked:?}"
    );

    let list = ctl(&s, &["user", "list", "--locked", "--json"]);
    let users = list.json()["users"].as_array().unwrap().clone();
    assert_eq!(users.len(), 1, "{list:?}");
    assert_eq!(users[0]["name"], "wes");

    let r = ctl(&s, &["user", "unlock", "wes"]);
    assert_eq!(r.status, 0, "{r:?}");
    assert!(r.stdout.contains("Cleared the lockout"), "{r:?}");
    assert_eq!(login_with_mailed_code(&s, "wes", 2).name(), "PAM_SUCCESS");
}

#[test]
fn show_and_list_print_tables_and_json() {
    let s = setup();
    ctl(
        &s,
        &[
            "user",
            "add",
            "vic",
            "--no-account",
            "--email",
            "vic@corp.test",
            "--protocols",
            "ssh,sftp",
        ],
    );
    ctl(
        &s,
        &[
            "user",
            "add",
            "una",
            "--no-account",
            "--email",
            "una@corp.test",
            "--enable",
        ],
    );
    let table = ctl(&s, &["user", "list"]);
    assert_eq!(table.status, 0, "{table:?}");
    let lines: Vec<&str> = table.stdout.lines().collect();
    assert!(lines[0].starts_with("USER"), "{table:?}");
    assert!(
        lines[1].starts_with("una ") && lines[2].starts_with("vic "),
        "{table:?}"
    );
    let enabled = ctl(&s, &["user", "list", "--enabled", "--json"]).json();
    assert_eq!(enabled["users"].as_array().unwrap().len(), 1);
    let vic = ctl(&s, &["user", "show", "vic", "--json"]).json();
    assert_eq!(vic["user"]["address"], "vic@corp.test");
    assert_eq!(vic["user"]["protocols"], serde_json::json!(["ssh", "sftp"]));
    assert_eq!(vic["user"]["enabled"], false);
    let human = ctl(&s, &["user", "show", "una"]);
    assert!(human.stdout.contains("code needed for  ssh"), "{human:?}");
    let unknown = ctl(&s, &["user", "show", "no-such-user-anywhere"]);
    assert_eq!(unknown.status, 5, "{unknown:?}");
}

/// The codes of `otpctl user recovery-codes USER --json`, checked to be a whole new set.
fn new_recovery_codes(s: &Setup, user: &str) -> Vec<String> {
    let r = ctl(s, &["user", "recovery-codes", user, "--json"]);
    assert_eq!(r.status, 0, "{r:?}");
    let json = r.json();
    assert_eq!(json["user"], user, "{r:?}");
    let codes: Vec<String> = json["codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    assert_eq!(codes.len(), 10, "{r:?}");
    codes
}

fn login_answering(s: &Setup, user: &str, answer: &str) -> LoginResult {
    let answer = answer.to_string();
    login(s, user, move |_| answer.clone())
}

#[test]
fn recovery_codes_are_shown_once_answer_one_login_each_and_a_new_set_replaces_the_old() {
    let s = setup();
    ctl(
        &s,
        &[
            "user",
            "add",
            "rex",
            "--no-account",
            "--email",
            "rex@corp.test",
            "--enable",
        ],
    );
    let table = ctl(&s, &["user", "recovery-codes", "rex"]);
    assert_eq!(table.status, 0, "{table:?}");
    let printed: Vec<&str> = table.stdout.lines().skip(1).map(str::trim).collect();
    assert_eq!(printed.len(), 10, "{table:?}");
    assert!(
        printed
            .iter()
            .all(|c| c.len() == 11 && c.as_bytes()[5] == b'-'),
        "{table:?}"
    );
    // A second set replaces the first: the printed codes no longer work.
    let codes = new_recovery_codes(&s, "rex");
    let old = login_answering(&s, "rex", printed[0]);
    assert_ne!(old.name(), "PAM_SUCCESS", "{old:?}");

    // Typed in capitals without the dash, at the mailed code's prompt.
    let typed = codes[0].replace('-', "").to_uppercase();
    let used = login_answering(&s, "rex", &typed);
    assert_eq!(used.name(), "PAM_SUCCESS", "{used:?}");
    assert!(used.prompts[0].starts_with("Code sent to"), "{used:?}");
    assert!(
        used.errors
            .iter()
            .any(|e| e.contains("9 recovery codes left")),
        "{used:?}"
    );
    let replay = login_answering(&s, "rex", &codes[0]);
    assert_ne!(replay.name(), "PAM_SUCCESS", "{replay:?}");
    // Mail works here: the user is told of the use, without the code.
    let mails = s.smtp.wait_for(4, MAIL_WAIT);
    let notice = mails
        .iter()
        .find(|m| m.text.contains("recovery code of rex was just used"))
        .unwrap_or_else(|| panic!("no notice mail: {mails:#?}"));
    assert_eq!(notice.rcpt_tos, ["rex@corp.test"]);
    assert!(
        notice.text.contains("9 recovery codes are left"),
        "{}",
        notice.text
    );
    assert!(
        !notice
            .text
            .to_lowercase()
            .contains(&codes[0].replace('-', ""))
            && !notice.text.contains(&codes[0]),
        "{}",
        notice.text
    );

    let shown = ctl(&s, &["user", "show", "rex", "--json"]).json();
    assert_eq!(shown["user"]["recovery_codes_left"], 9, "{shown}");
    let human = ctl(&s, &["user", "show", "rex"]);
    assert!(human.stdout.contains("9 left"), "{human:?}");
    // Only MACs are stored: no code is in the state directory's files.
    let state = s.otpd.config_path.parent().unwrap().join("state");
    for entry in fs::read_dir(&state).unwrap() {
        let bytes = fs::read(entry.unwrap().path()).unwrap_or_default();
        for code in &codes {
            let plain = code.replace('-', "");
            assert!(
                !bytes.windows(10).any(|w| w == plain.as_bytes()),
                "a recovery code is stored in clear"
            );
        }
    }
    let audit = ctl(&s, &["audit", "--user", "rex", "--json"]).json();
    let events: Vec<&str> = audit["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["event"].as_str().unwrap())
        .collect();
    assert!(events.contains(&"recovery_used"), "{events:?}");
    assert_eq!(
        events
            .iter()
            .filter(|e| **e == "recovery_codes_created")
            .count(),
        2,
        "{events:?}"
    );
}

#[test]
fn a_non_admin_cannot_create_recovery_codes_even_for_themselves() {
    let s = setup();
    let user = TestUser::create();
    ctl(
        &s,
        &[
            "user",
            "add",
            &user.name,
            "--email",
            "x@corp.test",
            "--enable",
        ],
    );
    for who in [NOBODY, user.who()] {
        let r = ctl_as(who, &s, &["user", "recovery-codes", &user.name]);
        assert_eq!(r.status, 4, "{r:?}");
        assert!(!r.stdout.contains('-'), "codes were printed: {r:?}");
    }
    let shown = ctl(&s, &["user", "show", &user.name, "--json"]).json();
    assert_eq!(shown["user"]["recovery_codes_left"], 0, "{shown}");
}

#[test]
fn a_user_replaces_their_own_recovery_codes_only_with_the_mailed_code() {
    let s = setup();
    let user = TestUser::create();
    let wrong_answer = self_service(&s, &user, &["recovery-codes"], 1, |code| Some(wrong(&code)));
    assert_ne!(wrong_answer.status, 0, "{wrong_answer:?}");
    assert_eq!(
        ctl(&s, &["user", "show", &user.name, "--json"]).json()["user"]["recovery_codes_left"],
        0
    );
    let r = self_service(&s, &user, &["recovery-codes", "--json"], 2, Some);
    assert_eq!(r.status, 0, "{r:?}");
    let codes = r.json()["codes"].as_array().unwrap().len();
    assert_eq!(codes, 10, "{r:?}");
    assert_eq!(
        ctl(&s, &["user", "show", &user.name, "--json"]).json()["user"]["recovery_codes_left"],
        10
    );
}

#[test]
fn a_non_admin_cannot_list_change_or_unlock_others() {
    let s = setup();
    ctl(
        &s,
        &[
            "user",
            "add",
            "tia",
            "--no-account",
            "--email",
            "tia@corp.test",
            "--enable",
        ],
    );
    let before = ctl(&s, &["user", "show", "tia", "--json"]).json();
    for args in [
        &["user", "list"][..],
        &["user", "show", "tia"],
        &["user", "disable", "tia"],
        &["user", "set-email", "tia", "evil@attacker.test"],
        &["user", "unlock", "tia"],
        &["user", "remove", "tia"],
        &["enable", "--all"],
        &["audit", "--user", "tia"],
        &["test-mail", "evil@attacker.test"],
    ] {
        let r = ctl_as(NOBODY, &s, args);
        assert_eq!(r.status, 4, "{args:?}: {r:?}");
        assert!(
            r.stderr.contains("admin") || r.stderr.contains("only about yourself"),
            "{args:?}: {r:?}"
        );
    }
    assert_eq!(ctl(&s, &["user", "show", "tia", "--json"]).json(), before);
    assert_eq!(login_with_mailed_code(&s, "tia", 1).name(), "PAM_SUCCESS");
    assert_eq!(s.smtp.messages().len(), 1, "a refused test-mail was sent");
    let refusals = ctl(&s, &["audit", "--event", "admin_refused", "--json"]).json();
    assert_eq!(refusals["rows"].as_array().unwrap().len(), 8);
}

#[test]
fn a_member_of_the_admin_group_may_run_admin_commands() {
    let admin = TestUser::create();
    let s = setup_with(|port| TestConfig {
        daemon: format!("admin_group = \"{}\"\n", admin.name),
        ..optional(port)
    });
    let r = ctl_as(
        admin.who(),
        &s,
        &[
            "user",
            "add",
            "sam",
            "--no-account",
            "--email",
            "sam@corp.test",
        ],
    );
    assert_eq!(r.status, 0, "{r:?}");
    let list = ctl_as(admin.who(), &s, &["user", "list", "--json"]).json();
    assert_eq!(list["users"][0]["name"], "sam");
}

#[test]
fn self_enable_needs_the_mailed_code_and_then_logins_ask_for_one() {
    let s = setup();
    let user = TestUser::create();
    assert_eq!(login_without_prompt(&s, &user.name).name(), "PAM_SUCCESS");

    let wrong_try = self_service(&s, &user, &["enable"], 1, |code| Some(wrong(&code)));
    assert_eq!(wrong_try.status, 1, "{wrong_try:?}");
    assert!(
        wrong_try.stderr.contains("Wrong code; nothing was changed"),
        "{wrong_try:?}"
    );
    assert_eq!(
        s.smtp.last_code_mail().rcpt_tos,
        [format!("{}@example.test", user.name)]
    );
    assert_eq!(login_without_prompt(&s, &user.name).name(), "PAM_SUCCESS");

    let no_answer = self_service(&s, &user, &["enable"], 2, |_| None);
    assert_eq!(no_answer.status, 1, "{no_answer:?}");
    assert_eq!(login_without_prompt(&s, &user.name).name(), "PAM_SUCCESS");

    let right = self_service(&s, &user, &["enable"], 3, Some);
    assert_eq!(right.status, 0, "{right:?}");
    assert!(right.stderr.contains("A code was sent to"), "{right:?}");
    assert!(right.stdout.contains("now on"), "{right:?}");
    assert_eq!(
        login_with_mailed_code(&s, &user.name, 4).name(),
        "PAM_SUCCESS"
    );

    let status = ctl_as(user.who(), &s, &["status", "--json"]).json();
    let me = &status["status"]["user"];
    assert_eq!(me["enabled"], true);
    assert_eq!(me["address"], mask_email(&user.email()));
}

#[test]
fn a_code_mailed_for_otpctl_cannot_answer_a_login_even_with_its_own_challenge() {
    // Every login needs a code here, so the answer is checked rather than skipped.
    let s = setup_with(|port| {
        let mut c = optional(port);
        c.body = c.body.replace("mode = \"optional\"", "mode = \"required\"");
        c
    });
    // Root's own account: self-service by the wire, so the test holds the challenge.
    let start = s
        .otpd
        .call(&Request::Admin {
            request: AdminRequest::SelfStart {
                action: SelfAction::Enable,
            },
        })
        .unwrap();
    let Response::Admin {
        response: AdminResponse::CodeSent { challenge, .. },
    } = start
    else {
        panic!("expected a code to be sent, got {start:?}");
    };
    let code = s.smtp.wait_for_codes(1, MAIL_WAIT)[0].code();
    let as_login = s
        .otpd
        .call(&Request::Answer {
            login: LoginContext {
                user: "root".into(),
                service: "sshd".into(),
                rhost: None,
                tty: None,
                protocol: None,
            },
            challenge: challenge.clone(),
            code: SecretString::new(code.clone()),
        })
        .unwrap();
    assert!(
        matches!(as_login, Response::Denied { .. }),
        "an otpctl code answered a login: {as_login:?}"
    );
    // The code still does what it was mailed for.
    let confirm = s
        .otpd
        .call(&Request::Admin {
            request: AdminRequest::SelfConfirm {
                action: SelfAction::Enable,
                challenge,
                code: SecretString::new(code),
            },
        })
        .unwrap();
    assert!(
        matches!(
            confirm,
            Response::Admin {
                response: AdminResponse::Done { .. }
            }
        ),
        "{confirm:?}"
    );
}

#[test]
fn self_disable_needs_a_code_and_is_refused_when_the_policy_forbids_it() {
    let s = setup();
    let user = TestUser::create();
    ctl(&s, &["user", "enable", &user.name]);
    let r = self_service(&s, &user, &["disable"], 1, Some);
    assert_eq!(r.status, 0, "{r:?}");
    assert_eq!(login_without_prompt(&s, &user.name).name(), "PAM_SUCCESS");

    ctl(&s, &["user", "enable", &user.name]);
    let text = s.otpd.config_text().replace(
        "mode = \"optional\"",
        "mode = \"optional\"\nallow_user_disable = false",
    );
    s.otpd.reload_with(&text);
    let refused = ctl_as(user.who(), &s, &["disable"]);
    assert_eq!(refused.status, 4, "{refused:?}");
    assert!(refused.stderr.contains("allow_user_disable"), "{refused:?}");
    let narrowing = ctl_as(user.who(), &s, &["protocols", "ftp"]);
    assert_eq!(narrowing.status, 4, "{narrowing:?}");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        s.smtp.code_mails().len(),
        1,
        "a refused disable mailed a code"
    );
    assert_eq!(
        login_with_mailed_code(&s, &user.name, 2).name(),
        "PAM_SUCCESS"
    );
}

#[test]
fn self_protocols_narrowing_needs_a_code_and_applies_to_logins() {
    let s = setup();
    let user = TestUser::create();
    ctl(&s, &["user", "enable", &user.name]);
    let r = self_service(&s, &user, &["protocols", "sftp"], 1, Some);
    assert_eq!(r.status, 0, "{r:?}");
    assert!(r.stdout.contains("enrolled for sftp"), "{r:?}");
    assert_eq!(login_without_prompt(&s, &user.name).name(), "PAM_SUCCESS");
    let unknown = ctl_as(user.who(), &s, &["protocols", "shh"]);
    assert_eq!(unknown.status, 1, "{unknown:?}");
    assert!(unknown.stderr.contains("unknown protocol"), "{unknown:?}");
}

#[test]
fn import_with_bad_lines_changes_nothing_without_partial() {
    let s = setup();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("users.csv");
    fs::write(
        &file,
        "user,email,enabled,protocols\nrita,rita@corp.test,yes\nbad,not-an-address,yes\nquin,quin@corp.test,yes,\"ssh,sftp\"\nodd,odd@corp.test,maybe\n",
    )
    .unwrap();
    let file = file.to_str().unwrap();
    let r = ctl(&s, &["import", file]);
    assert_eq!(r.status, 1, "{r:?}");
    assert!(r.stderr.contains(":5: enabled must be"), "{r:?}");
    assert!(r.stderr.contains("nothing imported"), "{r:?}");
    assert_eq!(ctl(&s, &["user", "show", "rita"]).status, 5);

    // The shape is fine but otpd finds an address bad: still nothing without --partial.
    let shape_ok = dir.path().join("shape.csv");
    fs::write(
        &shape_ok,
        "rita,rita@corp.test,yes\nbad,not-an-address,yes\n",
    )
    .unwrap();
    let r = ctl(&s, &["import", shape_ok.to_str().unwrap()]);
    assert_eq!(r.status, 1, "{r:?}");
    assert!(r.stderr.contains("line 2:"), "{r:?}");
    assert_eq!(ctl(&s, &["user", "show", "rita"]).status, 5);
    assert_eq!(login_without_prompt(&s, "rita").name(), "PAM_SUCCESS");

    let r = ctl(&s, &["import", file, "--partial", "--json"]);
    assert_eq!(r.status, 1, "{r:?}");
    assert_eq!(r.json()["imported"], 2, "{r:?}");
    assert_eq!(login_with_mailed_code(&s, "rita", 1).name(), "PAM_SUCCESS");
    assert_eq!(s.smtp.last_code_mail().rcpt_tos, ["rita@corp.test"]);
}

#[test]
fn an_import_and_a_list_larger_than_one_frame_go_through_in_parts() {
    let s = setup();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("many.csv");
    let text: String = (0..3000)
        .map(|i| format!("bulk{i:04},bulk{i:04}@corp.test,yes,\"ssh,sftp\"\n"))
        .collect();
    fs::write(&file, format!("{text}broken,not-an-address\n")).unwrap();
    let refused = ctl(&s, &["import", file.to_str().unwrap()]);
    assert_eq!(refused.status, 1, "{refused:?}");
    assert!(refused.stderr.contains("line 3001:"), "{refused:?}");
    assert_eq!(ctl(&s, &["status", "--json"]).json()["status"]["users"], 0);
    let r = ctl(&s, &["import", file.to_str().unwrap(), "--partial"]);
    assert!(r.stdout.contains("Imported 3000 user(s)."), "{r:?}");
    let list = ctl(&s, &["user", "list", "--json"]).json();
    let users = list["users"].as_array().unwrap();
    assert_eq!(users.len(), 3000);
    assert_eq!(users[2999]["name"], "bulk2999");
    assert_eq!(
        login_with_mailed_code(&s, "bulk1234", 1).name(),
        "PAM_SUCCESS"
    );
}

#[test]
fn enable_all_turns_the_code_on_for_every_user_with_an_address() {
    let s = setup_with(|port| TestConfig {
        body: "[defaults]\nmode = \"optional\"\nresend_cooldown_seconds = 0\n".into(),
        ..optional(port)
    });
    ctl(
        &s,
        &[
            "user",
            "add",
            "pia",
            "--no-account",
            "--email",
            "pia@corp.test",
        ],
    );
    ctl(&s, &["user", "set-protocols", "oli", "ssh"]);
    assert_eq!(login_without_prompt(&s, "pia").name(), "PAM_SUCCESS");
    let r = ctl(&s, &["enable", "--all"]);
    assert_eq!(r.status, 0, "{r:?}");
    assert!(r.stdout.contains("for 1 user(s): pia"), "{r:?}");
    assert!(r.stdout.contains("skipped oli: no address"), "{r:?}");
    assert_eq!(login_with_mailed_code(&s, "pia", 1).name(), "PAM_SUCCESS");
    assert_eq!(login_without_prompt(&s, "oli").name(), "PAM_SUCCESS");
}

#[test]
fn audit_filters_by_user_event_and_time() {
    let s = setup();
    ctl(
        &s,
        &[
            "user",
            "add",
            "ned",
            "--no-account",
            "--email",
            "ned@corp.test",
            "--enable",
        ],
    );
    assert_eq!(login_with_mailed_code(&s, "ned", 1).name(), "PAM_SUCCESS");
    let rows = ctl(&s, &["audit", "--user", "ned", "--since", "1h", "--json"]).json()["rows"]
        .as_array()
        .unwrap()
        .clone();
    let events: Vec<&str> = rows.iter().map(|r| r["event"].as_str().unwrap()).collect();
    assert_eq!(events.last(), Some(&"user_added"), "{events:?}");
    assert!(events.contains(&"verified"), "{events:?}");
    let verified = ctl(&s, &["audit", "--event", "verified", "--json"]).json();
    assert_eq!(verified["rows"].as_array().unwrap().len(), 1);
    let future = ctl(&s, &["audit", "--since", "2999-01-01", "--json"]).json();
    assert!(future["rows"].as_array().unwrap().is_empty());
    let table = ctl(&s, &["audit", "--limit", "2"]);
    assert_eq!(table.stdout.lines().count(), 3, "{table:?}");
    let bad = ctl(&s, &["audit", "--since", "yesterday"]);
    assert_eq!(bad.status, 2, "{bad:?}");
}

#[test]
fn status_shows_the_daemon_to_admins_and_their_own_account_to_users() {
    let s = setup();
    ctl(
        &s,
        &[
            "user",
            "add",
            "max",
            "--no-account",
            "--email",
            "max@corp.test",
            "--enable",
        ],
    );
    assert_eq!(login_with_mailed_code(&s, "max", 1).name(), "PAM_SUCCESS");
    let admin = ctl(&s, &["status", "--json"]).json();
    let st = &admin["status"];
    assert_eq!(st["users"], 1);
    assert_eq!(st["enabled"], 1);
    assert_eq!(st["config_file"], s.otpd.config_path.to_str().unwrap());
    assert_eq!(st["mail_servers"][0]["name"], "capture");
    assert!(st["mail_servers"][0]["last_ok_at"].is_i64(), "{st}");
    let human = ctl(&s, &["status"]);
    assert!(human.stdout.contains("up since"), "{human:?}");
    let nobody = ctl_as(NOBODY, &s, &["status", "--json"]).json();
    assert_eq!(nobody["status"]["user"]["name"], "nobody");
    assert_eq!(nobody["status"]["user"]["address"], "n***@e***.test");
}

#[test]
fn test_mail_reports_each_server_and_its_exact_error() {
    let s = setup();
    let r = ctl(&s, &["test-mail", "admin@corp.test"]);
    assert_eq!(r.status, 0, "{r:?}");
    assert!(r.stdout.contains("capture  accepted"), "{r:?}");
    assert_eq!(
        s.smtp.wait_for(1, MAIL_WAIT)[0].rcpt_tos,
        ["admin@corp.test"]
    );

    let refusing = SmtpCapture::start_with(&["--reply-code", "550"]);
    let text = s.otpd.config_text().replace(
        &format!("port = {}", s.smtp.port),
        &format!("port = {}", refusing.port),
    );
    s.otpd.reload_with(&text);
    let r = ctl(&s, &["test-mail", "admin@corp.test", "--server", "capture"]);
    assert_eq!(r.status, 1, "{r:?}");
    assert!(
        r.stdout.contains("FAILED") && r.stdout.contains("550"),
        "{r:?}"
    );
}

#[test]
fn check_config_exits_zero_for_a_valid_file_and_one_with_the_position_of_an_error() {
    let s = setup();
    let ok = ctl(&s, &["check-config"]);
    assert_eq!(ok.status, 0, "{ok:?}");
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    fs::write(&bad, "[defaults]\nmode = \"sometimes\"\n").unwrap();
    let r = ctl(&s, &["check-config", bad.to_str().unwrap()]);
    assert_eq!(r.status, 1, "{r:?}");
    assert!(r.stderr.contains("bad.toml:2:"), "{r:?}");
}

#[test]
fn usage_errors_and_an_unreachable_otpd_have_their_own_exit_statuses() {
    let mut s = setup();
    assert_eq!(ctl(&s, &["user"]).status, 2);
    assert_eq!(ctl(&s, &["user", "add", "x"]).status, 2);
    assert!(s.otpd.stop());
    let r = ctl(&s, &["user", "list"]);
    assert_eq!(r.status, 3, "{r:?}");
    assert!(r.stderr.contains("Is otpd running?"), "{r:?}");
}

/// A machine where everything doctor checks is right, in temporary directories.
struct Healthy {
    dir: tempfile::TempDir,
    module: PathBuf,
    pam_dir: PathBuf,
    sshd: String,
}

const GOOD_SSHD: &str = "printf 'usepam yes\\nkbdinteractiveauthentication yes\\nauthenticationmethods publickey,keyboard-interactive\\npasswordauthentication no\\n'";

fn healthy() -> Healthy {
    let dir = tempfile::tempdir().unwrap();
    let module = dir.path().join("pam_otp_email.so");
    fs::copy(paths::module(), &module).unwrap();
    fs::set_permissions(&module, fs::Permissions::from_mode(0o644)).unwrap();
    let pam_dir = dir.path().join("pam.d");
    fs::create_dir(&pam_dir).unwrap();
    fs::write(pam_dir.join("common-auth"), "auth [success=1 default=ignore] pam_unix.so nullok\nauth requisite pam_deny.so\nauth required pam_permit.so\n").unwrap();
    fs::write(
        pam_dir.join("sshd"),
        "@include common-auth\nauth [success=ok ignore=ignore default=die] pam_otp_email.so\n",
    )
    .unwrap();
    Healthy {
        dir,
        module,
        pam_dir,
        sshd: GOOD_SSHD.to_string(),
    }
}

fn doctor(s: &Setup, h: &Healthy, extra: &[&str]) -> Ran {
    let mut args = vec![
        "doctor",
        "--module",
        h.module.to_str().unwrap(),
        "--pam-dir",
        h.pam_dir.to_str().unwrap(),
        "--sshd-command",
        &h.sshd,
    ];
    args.extend_from_slice(extra);
    ctl(s, &args)
}

/// The problems doctor reported, from its JSON.
fn problems(r: &Ran) -> Vec<String> {
    r.json()
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["level"] == "problem")
        .map(|f| format!("{}: {} (fix: {})", f["check"], f["message"], f["fix"]))
        .collect()
}

#[test]
fn doctor_exits_zero_on_a_healthy_machine() {
    let s = setup();
    let h = healthy();
    let r = doctor(&s, &h, &[]);
    assert_eq!(r.status, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("0 problem(s)"), "{r:?}");
    let sent = doctor(&s, &h, &["--send-to", "admin@corp.test", "--json"]);
    assert_eq!(sent.status, 0, "{sent:?}");
    assert_eq!(s.smtp.wait_for(1, MAIL_WAIT).len(), 1);
}

#[test]
fn doctor_finds_a_socket_others_cannot_use() {
    let s = setup();
    let h = healthy();
    fs::set_permissions(&s.otpd.socket, fs::Permissions::from_mode(0o600)).unwrap();
    let r = doctor(&s, &h, &["--json"]);
    assert_eq!(r.status, 1, "{r:?}");
    let p = problems(&r);
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(
        p[0].contains("mode 0600") && p[0].contains("restart otpd"),
        "{p:?}"
    );
}

#[test]
fn doctor_finds_a_missing_module() {
    let s = setup();
    let h = healthy();
    fs::remove_file(&h.module).unwrap();
    let r = doctor(&s, &h, &["--json"]);
    assert_eq!(r.status, 1, "{r:?}");
    let p = problems(&r);
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(
        p[0].starts_with("\"module\"") && p[0].contains("install"),
        "{p:?}"
    );
}

#[test]
fn doctor_finds_sshd_without_keyboard_interactive() {
    let s = setup();
    let mut h = healthy();
    h.sshd = h.sshd.replace(
        "kbdinteractiveauthentication yes",
        "kbdinteractiveauthentication no",
    );
    let r = doctor(&s, &h, &["--json"]);
    assert_eq!(r.status, 1, "{r:?}");
    let p = problems(&r);
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(p[0].contains("KbdInteractiveAuthentication yes"), "{p:?}");
}

#[test]
fn doctor_finds_a_dead_mail_server() {
    let s = setup();
    let h = healthy();
    let dead_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let text = s.otpd.config_text().replace(
        &format!("port = {}", s.smtp.port),
        &format!("port = {dead_port}"),
    );
    let config = h.dir.path().join("dead-mail.toml");
    fs::write(&config, text).unwrap();
    let r = doctor(&s, &h, &["--json", "--config", config.to_str().unwrap()]);
    assert_eq!(r.status, 1, "{r:?}");
    let p = problems(&r);
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(p[0].contains(&format!("127.0.0.1:{dead_port}")), "{p:?}");
}

#[test]
fn doctor_finds_the_module_before_the_password_module() {
    let s = setup();
    let h = healthy();
    fs::write(
        h.pam_dir.join("sshd"),
        "auth required pam_otp_email.so\n@include common-auth\n",
    )
    .unwrap();
    let r = doctor(&s, &h, &["--json"]);
    assert_eq!(r.status, 1, "{r:?}");
    let p = problems(&r);
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(p[0].contains("move line 1 below line 2"), "{p:?}");
}

#[test]
fn the_generated_man_page_documents_every_command_and_the_exit_statuses() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(paths::binary("otpctl"))
        .arg("generate-docs")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let page = fs::read_to_string(dir.path().join("otpctl.1")).unwrap();
    for word in [
        "doctor",
        "import",
        "test\\-mail",
        "otpd could not be reached",
    ] {
        assert!(page.contains(word), "{word} missing from the man page");
    }
    let committed = Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/generated/otpctl.1");
    assert_eq!(
        fs::read_to_string(committed).unwrap(),
        page,
        "packaging/generated is stale"
    );
}
