//! A burst of logins through a real local MTA (issue 14): `count` logins at once, each in its
//! own thread, against otpd whose only mail server is a private Postfix or Exim at Debian's
//! default limits (the end-to-end tests' harness, `e2e_tests::mta`), which relays every message
//! to a capture server where the login reads its code.
//!
//! It reports how many logins succeeded, how many codes reached the capture "at once" (within
//! [`AT_ONCE`] of the MTA's acceptance, rather than held in its queue for a later run), and the
//! time from a login's start to its prompt: otpd shows the prompt only after the MTA accepted
//! the mail, so that is the time to the MTA's acceptance as the user waits it.

use std::path::Path;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use e2e_tests::mta::{CodeBook, Exim, Postfix};
use e2e_tests::otpd::Otpd;
use e2e_tests::smtp::SmtpCapture;
use e2e_tests::stack::PamConfDir;

use crate::error::BenchError;
use crate::login::login;
use crate::stats::Summary;

/// A code that reaches the capture within this long after the MTA accepted it was delivered at
/// once; Exim's queue runner, by contrast, comes every 30 minutes on Debian.
pub const AT_ONCE: Duration = Duration::from_secs(5);

/// How long a login waits for its code at the capture.
const CODE_WAIT: Duration = Duration::from_secs(30);

/// The logins of the target: 200 at once.
pub const LOGINS: usize = 200;

/// The target for the time to the MTA's acceptance, at the 99th percentile.
pub const P99_TARGET: Duration = Duration::from_secs(2);

/// Which MTA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mta {
    /// Postfix 3.7, from its Debian package.
    Postfix,
    /// Exim 4.96, from Debian's extracted packages.
    Exim,
}

impl Mta {
    /// Its name in the report.
    pub fn name(self) -> &'static str {
        match self {
            Mta::Postfix => "Postfix",
            Mta::Exim => "Exim",
        }
    }
}

/// What one burst came to.
#[derive(Debug, Clone)]
pub struct Burst {
    /// Through which MTA.
    pub mta: Mta,
    /// Logins started at once.
    pub logins: usize,
    /// Logins that ended in PAM_SUCCESS.
    pub succeeded: usize,
    /// Codes that reached the capture within [`AT_ONCE`] of their prompt.
    pub delivered_at_once: usize,
    /// From each login's start to its prompt: the MTA's acceptance.
    pub to_acceptance: Summary,
    /// From the burst's start until the last code reached the capture.
    pub all_delivered_in: Duration,
    /// Mails the MTA still held in its queue afterwards.
    pub left_in_queue: usize,
}

impl Burst {
    /// The target: every login got its code at once, and p99 under [`P99_TARGET`].
    pub fn met(&self) -> bool {
        self.succeeded == self.logins
            && self.delivered_at_once == self.logins
            && self.to_acceptance.p99 < P99_TARGET
    }
}

/// One login's marks.
#[derive(Debug, Clone, Copy)]
struct Login {
    started: Instant,
    /// When the prompt came: the MTA had accepted the mail.
    prompt: Option<Instant>,
    /// When the code was at the capture.
    code: Option<Instant>,
    ok: bool,
}

/// Runs `count` logins at once through a fresh instance of `mta`; `module` is our PAM module.
pub fn run(mta: Mta, count: usize, module: &Path) -> Result<Burst, BenchError> {
    let capture = SmtpCapture::start();
    // Each MTA instance lives until the burst is over; its queue is read before it stops.
    let (port, queue): (u16, Box<dyn Fn() -> usize>) = match mta {
        Mta::Postfix => {
            let postfix = Postfix::start(&capture, &[]);
            let port = postfix.ports.smtp;
            (port, Box::new(move || postfix.wait_queue_empty(AT_ONCE)))
        }
        Mta::Exim => {
            let exim = Exim::start(&capture, &[]);
            let port = exim.ports.smtp;
            (port, Box::new(move || exim.wait_queue_empty(AT_ONCE)))
        }
    };
    let otpd = Otpd::start_with_text(|socket, state_dir| {
        format!(
            "[daemon]\nsocket = \"{}\"\nstate_dir = \"{}\"\n\n{}\n[mail]\nfrom = \"otp@example.test\"\n\n[[mail.servers]]\nname = \"{}\"\nhost = \"127.0.0.1\"\nport = {port}\nsecurity = \"none\"\n",
            socket.display(),
            state_dir.display(),
            crate::setup::otpd_body(),
            mta.name().to_ascii_lowercase(),
        )
    });
    let pam = Arc::new(crate::setup::our_service(module, &otpd));
    let book = Arc::new(CodeBook::new(&[&capture]));
    let start = Arc::new(Barrier::new(count + 1));
    let threads: Vec<_> = (0..count)
        .map(|i| {
            let (pam, book, start) = (Arc::clone(&pam), Arc::clone(&book), Arc::clone(&start));
            thread::spawn(move || one_login(&pam, book, &start, i))
        })
        .collect();
    start.wait();
    let began = Instant::now();
    let mut logins = Vec::with_capacity(count);
    for thread in threads {
        logins.push(
            thread
                .join()
                .map_err(|_| BenchError::Check("a burst login thread panicked".into()))?,
        );
    }
    let left_in_queue = queue();
    drop(otpd);
    if let Some((rcpt, mails)) = book.counts().into_iter().find(|(_, mails)| *mails > 1) {
        return Err(BenchError::Check(format!(
            "{} burst: {rcpt} got {mails} mails for one login",
            mta.name()
        )));
    }
    summarize(mta, began, &logins, left_in_queue)
}

/// The burst's figures from its logins' marks.
fn summarize(
    mta: Mta,
    began: Instant,
    logins: &[Login],
    left_in_queue: usize,
) -> Result<Burst, BenchError> {
    let mut to_acceptance: Vec<Duration> = logins
        .iter()
        .filter_map(|l| l.prompt.map(|p| p - l.started))
        .collect();
    let to_acceptance = Summary::of(&mut to_acceptance).ok_or_else(|| {
        BenchError::Check(format!("no login of the {} burst was prompted", mta.name()))
    })?;
    let delivered_at_once = logins
        .iter()
        .filter(|l| matches!((l.prompt, l.code), (Some(p), Some(c)) if c - p <= AT_ONCE))
        .count();
    let all_delivered_in = logins
        .iter()
        .filter_map(|l| l.code.map(|c| c - began))
        .max()
        .unwrap_or_default();
    Ok(Burst {
        mta,
        logins: logins.len(),
        succeeded: logins.iter().filter(|l| l.ok).count(),
        delivered_at_once,
        to_acceptance,
        all_delivered_in,
        left_in_queue,
    })
}

/// One login of the burst: waits for the common start, then logs in as `burst{index}` and
/// answers with the code from the capture.
fn one_login(pam: &PamConfDir, book: Arc<CodeBook>, start: &Barrier, index: usize) -> Login {
    let user = format!("burst{index}");
    let address = format!("{user}@example.test");
    let marks = Arc::new(std::sync::Mutex::new((None, None)));
    let seen = Arc::clone(&marks);
    start.wait();
    let started = Instant::now();
    let result = login(
        pam.path(),
        crate::setup::OUR_SERVICE,
        &user,
        "192.0.2.1",
        move |_| {
            let prompt = Instant::now();
            let code = book.code_for(&address, CODE_WAIT);
            let mut marks = seen.lock().unwrap_or_else(|p| p.into_inner());
            marks.0.get_or_insert(prompt);
            if code.is_some() {
                marks.1.get_or_insert(Instant::now());
            }
            code
        },
    );
    let (prompt, code) = *marks.lock().unwrap_or_else(|p| p.into_inner());
    Login {
        started,
        prompt,
        code,
        ok: result.is_ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn login(at: Instant, prompt_ms: Option<u64>, code_ms: Option<u64>, ok: bool) -> Login {
        Login {
            started: at,
            prompt: prompt_ms.map(|ms| at + Duration::from_millis(ms)),
            code: code_ms.map(|ms| at + Duration::from_millis(ms)),
            ok,
        }
    }

    #[test]
    fn a_code_held_past_the_at_once_window_is_not_delivered_at_once() {
        let t = Instant::now();
        let logins = [
            login(t, Some(100), Some(300), true),
            login(t, Some(200), Some(200 + 6_000), true),
            login(t, None, None, false),
        ];
        let burst = summarize(Mta::Exim, t, &logins, 1).unwrap();
        assert_eq!((burst.logins, burst.succeeded), (3, 2));
        assert_eq!(burst.delivered_at_once, 1);
        assert_eq!(burst.to_acceptance.count, 2);
        assert_eq!(burst.all_delivered_in, Duration::from_millis(6_200));
        assert!(!burst.met());
    }

    #[test]
    fn every_code_at_once_and_a_fast_p99_meet_the_target() {
        let t = Instant::now();
        let logins: Vec<Login> = (0..10)
            .map(|i| login(t, Some(100 + i), Some(400 + i), true))
            .collect();
        let burst = summarize(Mta::Postfix, t, &logins, 0).unwrap();
        assert!(burst.met(), "{burst:?}");
    }
}
