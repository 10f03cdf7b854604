//! The logins the scenarios time: ours (otpd issues, mails through the sink, the code is read
//! from the mail, otpd verifies), pam_oath's (HOTP from a usersfile), and the skip path.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use e2e_tests::otpd::Otpd;

use crate::error::BenchError;
use crate::hotp;
use crate::login::login;
use crate::loops::{self, Run, Until};
use crate::mailbox::Mailbox;
use crate::memory::Process;
use crate::setup::{self, Setup};

/// How long a login waits for its mail. The sink has the code before otpd even answers the
/// module, so this only matters when something is broken.
pub const MAIL_WAIT: Duration = Duration::from_secs(10);

/// Logins per user before a loop moves to a fresh user: far below the hourly cap, and about what
/// a busy person does in a day.
pub const LOGINS_PER_USER: u64 = 100;

/// The remote host of loop `index`, as sshd would report it.
pub fn rhost(index: usize) -> String {
    format!("192.0.2.{}", index % 250 + 1)
}

/// One whole emailed-code login of loop `index` at `iteration` in scenario `tag`.
pub fn our_login(setup: &Setup, tag: &str, index: usize, iteration: u64) -> Result<(), BenchError> {
    our_login_on(setup.confdir(), &setup.mailbox, tag, index, iteration)
}

/// [`our_login`] through the PAM config directory `confdir`, whose `sshd` stack names the otpd
/// to ask (one on another store, or another host), its mail read from `mailbox`.
pub fn our_login_on(
    confdir: &Path,
    mailbox: &Arc<Mailbox>,
    tag: &str,
    index: usize,
    iteration: u64,
) -> Result<(), BenchError> {
    let user = format!("{tag}l{index}u{}", iteration / LOGINS_PER_USER);
    let address = format!("{user}@example.test");
    let mailbox = Arc::clone(mailbox);
    login(
        confdir,
        setup::OUR_SERVICE,
        &user,
        &rhost(index),
        move |_| mailbox.take(&address, MAIL_WAIT).flatten(),
    )
}

/// One pam_oath login of loop `index` at `iteration`: the usersfile was reset to counter 0, so
/// the expected code is HOTP(key, iteration).
pub fn oath_login(setup: &Setup, index: usize, iteration: u64) -> Result<(), BenchError> {
    let key = setup::oath_key(index);
    login(
        setup.confdir(),
        &setup::oath_service(index),
        &setup::oath_user(index),
        &rhost(index),
        move |_| Some(hotp::hotp(&key, iteration, setup::DIGITS)),
    )
}

/// Our logins of one scenario, with the checks that every login was done exactly once.
#[derive(Debug, Clone)]
pub struct Checked {
    /// The timed logins.
    pub run: Run,
    /// What was checked, for the report.
    pub check: String,
}

/// Runs our login in `loops` loops and checks, from the sink and from otpd's audit log, that
/// each login (warm-up included) issued, mailed and verified exactly one code.
pub fn run_ours(
    setup: &Setup,
    tag: &str,
    loops: usize,
    warmup: u64,
    until: Until,
) -> Result<Checked, BenchError> {
    let before = Tally::now(&setup.mailbox, &setup.otpd);
    let run = loops::run_loops(
        loops,
        warmup,
        until,
        &watched(setup),
        &|index, iteration| our_login(setup, tag, index, iteration),
    )?;
    let logins = run.logins() + run.warmups;
    before.check(&setup.mailbox, &setup.otpd, tag, logins)?;
    Ok(Checked {
        check: format!(
            "{loops} loop(s): {logins} logins, {logins} codes issued, mailed and verified, each \
             exactly once"
        ),
        run,
    })
}

/// What the sink and an otpd's audit log have counted so far, to check a run's logins against.
#[derive(Debug, Clone, Copy)]
pub struct Tally {
    mails: u64,
    issued: u64,
    verified: u64,
}

impl Tally {
    /// The counts of `mailbox` and of `otpd`'s audit log now.
    pub fn now(mailbox: &Mailbox, otpd: &Otpd) -> Tally {
        Tally::of_hosts(mailbox, &[otpd])
    }

    /// The counts of `mailbox` and of the audit logs of `hosts` together (several otpd
    /// mailing to one sink).
    pub fn of_hosts(mailbox: &Mailbox, hosts: &[&Otpd]) -> Tally {
        let mut tally = Tally {
            mails: mailbox.delivered(),
            issued: 0,
            verified: 0,
        };
        for otpd in hosts {
            let log = otpd.log();
            tally.issued += log.matches("event=issued ").count() as u64;
            tally.verified += log.matches("event=verified ").count() as u64;
        }
        tally
    }

    /// Checks that since this tally, `logins` logins of `tag` issued, mailed and verified
    /// exactly one code each, and that no code was left unused.
    pub fn check(
        &self,
        mailbox: &Mailbox,
        otpd: &Otpd,
        tag: &str,
        logins: u64,
    ) -> Result<(), BenchError> {
        self.check_hosts(mailbox, &[otpd], tag, logins)
    }

    /// [`Tally::check`] for a tally of [`Tally::of_hosts`]: the same hosts, all their logins.
    pub fn check_hosts(
        &self,
        mailbox: &Mailbox,
        hosts: &[&Otpd],
        tag: &str,
        logins: u64,
    ) -> Result<(), BenchError> {
        let now = Tally::of_hosts(mailbox, hosts);
        let mails = now.mails - self.mails;
        let issued = now.issued - self.issued;
        let verified = now.verified - self.verified;
        let left = mailbox.waiting();
        if mails != logins || issued != logins || verified != logins || left != 0 {
            return Err(BenchError::Check(format!(
                "{tag}: {logins} logins succeeded but otpd issued {issued}, the sink got {mails} \
                 mails, otpd verified {verified}, {left} codes were never used"
            )));
        }
        Ok(())
    }
}

/// Runs pam_oath in `loops` loops, each on its own usersfile from counter 0.
pub fn run_oath(setup: &Setup, loops: usize, warmup: u64, until: Until) -> Result<Run, BenchError> {
    setup.reset_oath(loops)?;
    loops::run_loops(
        loops,
        warmup,
        until,
        &watched(setup),
        &|index, iteration| oath_login(setup, index, iteration),
    )
}

/// The processes whose CPU time a login costs: this one (the PAM application with the module,
/// and the SMTP sink) and otpd (idle during pam_oath's runs, watched there too for symmetry).
pub fn watched(setup: &Setup) -> [Process; 2] {
    [
        Process::Current,
        Process::Pid(u32::try_from(setup.otpd.pid()).unwrap_or_default()),
    ]
}

/// The skip path, timed against its baseline.
#[derive(Debug, Clone)]
pub struct SkipRun {
    /// Transactions on our module (protocol disabled: skip) followed by pam_permit.
    pub with_module: Vec<Duration>,
    /// Transactions on pam_permit alone.
    pub permit_alone: Vec<Duration>,
}

/// Times `count` transactions of each stack, alternating in blocks so drift (frequency, cache,
/// other load) hits both alike.
pub fn run_skip(setup: &Setup, count: usize) -> Result<SkipRun, BenchError> {
    const BLOCK: usize = 100;
    let mut result = SkipRun {
        with_module: Vec::with_capacity(count),
        permit_alone: Vec::with_capacity(count),
    };
    let no_prompt = |_: &str| None;
    // Warm-up: page in both stacks and otpd's code path.
    for _ in 0..BLOCK {
        login(
            setup.confdir(),
            setup::SKIP_SERVICE,
            "skipper",
            "192.0.2.1",
            no_prompt,
        )?;
        login(
            setup.confdir(),
            setup::PERMIT_SERVICE,
            "skipper",
            "192.0.2.1",
            no_prompt,
        )?;
    }
    while result.with_module.len() < count {
        for (service, into) in [
            (setup::SKIP_SERVICE, &mut result.with_module),
            (setup::PERMIT_SERVICE, &mut result.permit_alone),
        ] {
            for _ in 0..BLOCK {
                let started = Instant::now();
                login(setup.confdir(), service, "skipper", "192.0.2.1", no_prompt)?;
                into.push(started.elapsed());
            }
        }
    }
    Ok(result)
}
