//! What every test of a real login program starts from besides the program itself: its turn to
//! run ([`super::serial`]), a mail capture, an otpd that requires a code of everyone, and a unix
//! user; and the checks those tests share.

use std::fmt::Debug;
use std::sync::MutexGuard;
use std::time::Duration;

use crate::otpd::{Otpd, TestConfig};
use crate::programs::users::TestUser;
use crate::smtp::{MAIL_WAIT, SmtpCapture};

/// The otpd side of a lab. Fields drop in order and the serial lock goes last; a test's own lab
/// declares its server before this, so the server stops before the user is deleted.
#[derive(Debug)]
pub struct LabBase {
    /// otpd, requiring a code of every user with an address (`USER@example.test`).
    pub otpd: Otpd,
    /// Where otpd's mail arrives.
    pub smtp: SmtpCapture,
    /// The user who logs in.
    pub user: TestUser,
    _serial: MutexGuard<'static, ()>,
}

impl LabBase {
    /// Waits for this test's turn, then starts the capture and otpd (with `defaults` appended to
    /// its config, e.g. `reuse_window_seconds = 1\n`) and creates the user.
    pub fn start(defaults: &str) -> LabBase {
        let serial = super::serial();
        let smtp = SmtpCapture::start();
        let mut config = TestConfig::required(smtp.port);
        config.body.push_str(defaults);
        let otpd = Otpd::start(&config);
        let user = TestUser::create();
        LabBase {
            otpd,
            smtp,
            user,
            _serial: serial,
        }
    }

    /// Mails captured after a short wait, so a mail that should not exist had time to arrive.
    pub fn settled_mail_count(&self) -> usize {
        std::thread::sleep(Duration::from_millis(500));
        self.smtp.messages().len()
    }

    /// The code of the one mail a first single-secret login (the password alone) caused;
    /// `report` says what that login did when the mail is missing.
    pub fn only_mailed_code(&self, report: &str) -> String {
        let mails = self.smtp.wait_for(1, MAIL_WAIT);
        assert_eq!(mails.len(), 1, "{report}");
        mails[0].code()
    }

    /// Whether otpd logged `event` for the user.
    pub fn logged(&self, event: &str) -> bool {
        self.otpd
            .log()
            .contains(&format!("event={event} user={}", self.user.name))
    }

    /// Checks that no code was issued nor mailed, as after a wrong password: the module must
    /// not ask otpd for a code before the password module said yes.
    pub fn assert_no_code_was_mailed(&self) {
        assert_eq!(
            self.settled_mail_count(),
            0,
            "a wrong password mailed a code"
        );
        assert!(
            !self.otpd.log().contains("event=issued"),
            "{}",
            self.otpd.log()
        );
    }

    /// Everything worth seeing when an assertion fails: what the client saw, the server's log
    /// (`server` names it) and otpd's.
    pub fn report(&self, outcome: &dyn Debug, server: &str, server_log: &str) -> String {
        format!(
            "{outcome:#?}\n--- {server} log ---\n{server_log}\n--- otpd log ---\n{}",
            self.otpd.log()
        )
    }
}
