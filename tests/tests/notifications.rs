//! End-to-end (issue #21): the mails that tell users (and the admin) what happened to their
//! account, sent through the SMTP test server by a real otpd after real libpam logins and
//! real `otpctl` changes. Each test checks what arrived, to whom, and that no notification
//! holds a code.

// Test code: a failed unwrap is how a test reports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use e2e_tests::login::{LoginResult, login_with, never_prompted};
use e2e_tests::otpd::{Otpd, TestConfig};
use e2e_tests::programs::answers::{mailed_code, wrong};
use e2e_tests::smtp::{CapturedMail, SmtpCapture};
use e2e_tests::stack::PamConfDir;

/// How long a test waits for a notice it expects.
const NOTICE_WAIT: Duration = Duration::from_secs(10);

/// How long a test waits to be sure a notice it does not expect is not just late: the
/// deliverer is woken the moment one is queued, so one second is plenty.
const QUIET: Duration = Duration::from_secs(2);

const ADMIN: &str = "security@example.test";

struct Lab {
    smtp: SmtpCapture,
    otpd: Otpd,
    pam: PamConfDir,
}

/// otpd requiring a code of everyone (addresses `{user}@example.test`), with `extra` appended
/// to the config after `[defaults]`, and the module in sshd's stack.
fn lab(extra: &str) -> Lab {
    let smtp = SmtpCapture::start();
    let mut config = TestConfig::required(smtp.port);
    config.body.push_str(
        "resend_cooldown_seconds = 0\nmax_sends_per_hour = 100\nmax_sends_per_day = 1000\n",
    );
    config.body.push_str(extra);
    let otpd = Otpd::start(&config);
    let pam = PamConfDir::new();
    pam.otp_then_permit("sshd", &otpd.socket, "");
    Lab { smtp, otpd, pam }
}

impl Lab {
    /// A login of `user` from `rhost` answering with the code of code mail number `nth`.
    fn right_code(&self, user: &str, rhost: &str, nth: usize) -> LoginResult {
        let reader = self.smtp.reader();
        login_with(&self.pam, "sshd", user, Some(rhost), move |_| {
            mailed_code(&reader, nth)
        })
    }

    /// A login of `user` answering every prompt with a wrong code (after code mail `nth`).
    fn wrong_code(&self, user: &str, nth: usize) -> LoginResult {
        let reader = self.smtp.reader();
        login_with(&self.pam, "sshd", user, Some("192.0.2.44"), move |_| {
            wrong(&mailed_code(&reader, nth))
        })
    }

    /// `otpctl ARGS` as root; panics unless it succeeds.
    fn ctl(&self, args: &[&str]) {
        let (status, out, err) = self.otpd.otpctl(None, args);
        assert_eq!(status, 0, "otpctl {args:?}: {out}{err}");
    }

    /// Waits for `count` notifications, then for [`QUIET`] more, and returns all that came.
    fn notices(&self, count: usize) -> Vec<CapturedMail> {
        let reader = self.smtp.reader();
        e2e_tests::recorded::wait_for(count, NOTICE_WAIT, || {
            let mut mails = reader.messages();
            mails.retain(|m| !m.has_code());
            mails
        });
        std::thread::sleep(QUIET);
        let notices = self.smtp.notices();
        self.assert_no_code_in(&notices);
        notices
    }

    /// No notification holds any code that was mailed.
    fn assert_no_code_in(&self, notices: &[CapturedMail]) {
        let codes: Vec<String> = self.smtp.code_mails().iter().map(|m| m.code()).collect();
        for notice in notices {
            let raw = String::from_utf8_lossy(&notice.raw);
            for code in &codes {
                assert!(
                    !notice.text.contains(code.as_str()) && !raw.contains(code.as_str()),
                    "notice {:?} holds code {code}",
                    notice.subject
                );
            }
        }
    }
}

/// The notices sent to `address`.
fn to<'a>(notices: &'a [CapturedMail], address: &str) -> Vec<&'a CapturedMail> {
    notices
        .iter()
        .filter(|m| m.rcpt_tos.iter().any(|r| r == address))
        .collect()
}

/// Each notice's recipients and subject, for a failure message.
fn summary(notices: &[CapturedMail]) -> String {
    let lines: Vec<String> = notices
        .iter()
        .map(|m| format!("{:?} {:?}", m.rcpt_tos, m.subject))
        .collect();
    lines.join("\n")
}

fn locked_out(result: &LoginResult) -> bool {
    result.name() == "PAM_MAXTRIES"
}

#[test]
fn a_login_from_a_new_address_mails_the_user_once_and_the_same_address_again_does_not() {
    let l = lab("");
    // The first login on record: nothing to compare with, nothing told.
    assert_eq!(l.right_code("alice", "192.0.2.10", 1).name(), "PAM_SUCCESS");
    assert_eq!(
        l.right_code("alice", "198.51.100.20", 2).name(),
        "PAM_SUCCESS"
    );
    let notices = l.notices(1);
    assert_eq!(notices.len(), 1, "{}", summary(&notices));
    let notice = &notices[0];
    assert_eq!(notice.rcpt_tos, ["alice@example.test"]);
    assert!(
        notice.subject.contains("New login") && notice.subject.contains("198.51.100.20"),
        "{}",
        notice.subject
    );
    assert!(notice.text.contains("198.51.100.20"), "{}", notice.text);

    // The same address again, and the first one: both seen lately.
    assert_eq!(
        l.right_code("alice", "198.51.100.20", 3).name(),
        "PAM_SUCCESS"
    );
    assert_eq!(l.right_code("alice", "192.0.2.10", 4).name(), "PAM_SUCCESS");
    assert_eq!(l.notices(1).len(), 1, "no second notice");
}

#[test]
fn a_lockout_mails_the_user_and_the_admin_once_however_many_logins_it_refuses() {
    let l = lab(&format!(
        "max_user_failures = 3\n\n[notifications]\nadmin_address = \"{ADMIN}\"\n"
    ));
    // Three wrong answers to one code lock alice out.
    assert!(locked_out(&l.wrong_code("alice", 1)));
    for _ in 0..3 {
        let refused = login_with(&l.pam, "sshd", "alice", Some("192.0.2.44"), never_prompted);
        assert!(locked_out(&refused), "{refused:?}");
    }
    let notices = l.notices(2);
    assert_eq!(notices.len(), 2, "{}", summary(&notices));
    let user = to(&notices, "alice@example.test");
    let admin = to(&notices, ADMIN);
    assert_eq!((user.len(), admin.len()), (1, 1), "{}", summary(&notices));
    for notice in [user[0], admin[0]] {
        assert!(
            notice.subject.contains("alice") && notice.subject.contains("locked"),
            "{}",
            notice.subject
        );
        assert!(notice.text.contains("192.0.2.44"), "{}", notice.text);
    }
}

#[test]
fn a_flood_of_lockouts_sends_at_most_the_configured_number_of_notices() {
    let l = lab(&format!(
        "max_user_failures = 1\n\n[notifications]\nadmin_address = \"{ADMIN}\"\n\
         per_user_per_hour = 2\nadmin_per_hour = 3\n"
    ));
    // alice is locked by each wrong answer, and unlocked again four times: four lockouts. A
    // lock is named by its end, to the second, so each starts in a second of its own.
    let mut mails = 0;
    for _ in 0..4 {
        mails += 1;
        assert!(locked_out(&l.wrong_code("alice", mails)));
        l.ctl(&["user", "unlock", "alice"]);
        std::thread::sleep(Duration::from_millis(1100));
    }
    // Then three colleagues lock themselves out once each.
    for user in ["bob", "carol", "dave"] {
        mails += 1;
        assert!(locked_out(&l.wrong_code(user, mails)));
    }
    let notices = l.notices(7);
    assert_eq!(
        to(&notices, "alice@example.test").len(),
        2,
        "{}",
        summary(&notices)
    );
    for user in ["bob", "carol", "dave"] {
        assert_eq!(to(&notices, &format!("{user}@example.test")).len(), 1);
    }
    assert_eq!(to(&notices, ADMIN).len(), 3, "{}", summary(&notices));
    assert_eq!(notices.len(), 2 + 3 + 3);
    assert!(
        l.otpd
            .log()
            .contains("not telling the user of the lockout of alice"),
        "the dropped notices are logged"
    );
}

#[test]
fn a_changed_address_is_told_at_the_old_and_the_new_one_and_turning_the_code_off_is_told() {
    let l = lab(
        "\n[profiles.quiet]\nnotify = []\n\n[[policies]]\nmatch_user = \"bob\"\nprofile = \"quiet\"\n",
    );
    for user in ["alice", "bob"] {
        let address = format!("{user}@old.test");
        l.ctl(&[
            "user",
            "add",
            user,
            "--no-account",
            "--email",
            &address,
            "--enable",
        ]);
        l.ctl(&["user", "set-email", user, &format!("{user}@new.test")]);
        l.ctl(&["user", "disable", user]);
    }
    // Removing the record of a user whose code was on turns it off too.
    l.ctl(&[
        "user",
        "add",
        "carol",
        "--no-account",
        "--email",
        "carol@corp.test",
        "--enable",
    ]);
    l.ctl(&["user", "remove", "carol"]);
    let notices = l.notices(4);
    assert_eq!(
        notices.len(),
        4,
        "bob's profile tells nothing: {}",
        summary(&notices)
    );
    let removed = to(&notices, "carol@corp.test");
    assert_eq!(removed.len(), 1, "{}", summary(&notices));
    assert!(
        removed[0].text.contains("user remove"),
        "{}",
        removed[0].text
    );
    let old = to(&notices, "alice@old.test");
    let new = to(&notices, "alice@new.test");
    assert_eq!((old.len(), new.len()), (1, 2), "{}", summary(&notices));
    assert!(old[0].subject.contains("address"), "{}", old[0].subject);
    assert!(
        old[0].text.contains("a***@o***.test") && old[0].text.contains("a***@n***.test"),
        "{}",
        old[0].text
    );
    let off: Vec<_> = new
        .iter()
        .filter(|m| m.subject.contains("is off"))
        .collect();
    assert_eq!(off.len(), 1, "{}", summary(&notices));
    assert!(off[0].text.contains("administrator"), "{}", off[0].text);
}

#[test]
fn a_break_glass_grant_used_twice_is_told_to_the_user_and_the_admin_once() {
    let l = lab(&format!("\n[notifications]\nadmin_address = \"{ADMIN}\"\n"));
    l.ctl(&["breakglass", "grant", "alice", "--minutes", "5"]);
    for _ in 0..2 {
        let passed = login_with(&l.pam, "sshd", "alice", Some("192.0.2.5"), never_prompted);
        assert_eq!(passed.name(), "PAM_SUCCESS", "{passed:?}");
    }
    let notices = l.notices(2);
    assert_eq!(notices.len(), 2, "{}", summary(&notices));
    assert_eq!(to(&notices, "alice@example.test").len(), 1);
    let admin = to(&notices, ADMIN);
    assert_eq!(admin.len(), 1);
    assert!(admin[0].text.contains("break-glass"), "{}", admin[0].text);
    assert!(admin[0].text.contains("192.0.2.5"), "{}", admin[0].text);
}
