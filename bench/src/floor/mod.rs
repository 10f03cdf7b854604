//! What a login of ours costs at the least on this machine: one PAM transaction, two requests
//! to otpd (Begin, then Answer), one SMTP transaction and two database transactions, each done
//! the cheapest way and nothing else (no policy, codes, audit or composed mail). It is measured
//! under the same concurrent loops as the logins, so the report can set it against the CPU
//! budget a throughput target leaves per login. Each step is measured apart, then all of them
//! one after another as bare logins: strung together they cost more than their sum, because
//! every hand-off between processes wakes one, and that rate is what a login made of nothing
//! else reaches on this machine.

mod smtp;
mod store;

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::client::{self, ClientOptions};
use common::wire::Request;

use crate::error::BenchError;
use crate::login::login;
use crate::loops::{self, Until};
use crate::scenarios;
use crate::setup::{self, Setup};

/// The parts of the floor, each in CPU time of the benchmark process and otpd together, and the
/// same bare steps run as whole logins.
#[derive(Debug, Clone, Copy)]
pub struct Floor {
    /// Concurrent loops it was measured with.
    pub loops: usize,
    /// One whole PAM transaction with pam_permit alone: libpam's own cost.
    pub transaction: Duration,
    /// One bare request to otpd through the module's client (connect, check otpd's uid,
    /// `Ping`, answer), on both sides.
    pub request: Duration,
    /// One bare SMTP transaction to the sink on a kept connection (`floor/smtp.rs`), client and sink.
    pub mail: Duration,
    /// A login's two bare SQLite transactions, store and use up a code (`floor/store.rs`).
    pub store: Duration,
    /// Every step above, one after another in each loop as a login does them.
    pub bare_logins: BareLogins,
}

/// What the bare steps did when each loop ran them in a login's order: the rate a login made
/// of nothing else reaches on this machine, waits between the steps included.
#[derive(Debug, Clone, Copy)]
pub struct BareLogins {
    /// Bare logins over the wall-clock time of the run, all loops together.
    pub per_second: f64,
    /// CPU time of the benchmark process and otpd per bare login.
    pub cpu_per_login: Duration,
}

impl Floor {
    /// A login's floor: one transaction, two requests, one mail and the two store writes.
    pub fn login(&self) -> Duration {
        self.transaction + self.request * 2 + self.mail + self.store
    }
}

/// The client options the module would use against the benchmark's otpd (root, always
/// trusted).
pub fn client_options(setup: &Setup) -> ClientOptions {
    ClientOptions {
        socket: setup.otpd.socket.clone(),
        timeout: Duration::from_secs(5),
        trusted_daemon_uids: Vec::new(),
    }
}

/// One bare `Ping` to otpd through the module's client.
pub fn ping(options: &ClientOptions) -> Result<(), BenchError> {
    client::call(options, &Request::Ping)
        .map(|_| ())
        .map_err(|e| BenchError::Check(format!("ping: {e}")))
}

/// Measures every part with `loops` loops, each for `until`, then all parts as whole logins.
pub fn measure(
    setup: &Setup,
    loops: usize,
    warmup: u64,
    until: Until,
) -> Result<Floor, BenchError> {
    let steps = Steps::new(setup, loops)?;
    let watch = scenarios::watched(setup);
    let run = |step: &(dyn Fn(usize, u64) -> Result<(), BenchError> + Sync)| {
        loops::run_loops(loops, warmup, until, &watch, step)
    };
    let transactions = run(&|index, _| steps.transaction(index))?;
    let requests = run(&|_, _| steps.request())?;
    let mails = run(&|index, iteration| steps.mail(index, iteration))?;
    let stores = run(&|index, _| steps.store(index))?;
    let whole = run(&|index, iteration| steps.login(index, iteration))?;
    Ok(Floor {
        loops,
        transaction: transactions.cpu_per_login(),
        request: requests.cpu_per_login(),
        mail: mails.cpu_per_login(),
        store: stores.cpu_per_login(),
        bare_logins: BareLogins {
            per_second: whole.per_second(),
            cpu_per_login: whole.cpu_per_login(),
        },
    })
}

/// The bare steps, with what they need: the client options, one SMTP connection per loop and
/// a database of their own.
struct Steps<'a> {
    setup: &'a Setup,
    options: ClientOptions,
    connections: Vec<Mutex<smtp::BareSmtp>>,
    database: store::BareStore,
    /// The next challenge number: every store call of every run writes a new one.
    challenges: AtomicU64,
}

impl<'a> Steps<'a> {
    fn new(setup: &'a Setup, loops: usize) -> Result<Steps<'a>, BenchError> {
        let connections = (0..loops)
            .map(|_| smtp::BareSmtp::connect(setup.sink_port()).map(Mutex::new))
            .collect::<Result<Vec<_>, _>>()
            .map_err(BenchError::io("floor: connect to the SMTP sink"))?;
        Ok(Steps {
            setup,
            options: client_options(setup),
            connections,
            database: store::BareStore::open()?,
            challenges: AtomicU64::new(0),
        })
    }

    /// A PAM transaction through pam_permit alone.
    fn transaction(&self, index: usize) -> Result<(), BenchError> {
        let rhost = format!("192.0.2.{}", index + 1);
        login(
            self.setup.confdir(),
            setup::PERMIT_SERVICE,
            "floor",
            &rhost,
            |_| None,
        )
    }

    /// One bare request to otpd.
    fn request(&self) -> Result<(), BenchError> {
        ping(&self.options)
    }

    /// Loop `index` mails its own recipient over its own connection and takes the code out of
    /// the mailbox, as a login's conversation does, so the sink's parsing and delivery count
    /// too.
    fn mail(&self, index: usize, iteration: u64) -> Result<(), BenchError> {
        let to = recipient(index);
        let code = format!("{:06}", iteration % 1_000_000);
        let mut smtp = self
            .connections
            .get(index)
            .ok_or_else(|| {
                BenchError::Check(format!("floor mail: no connection for loop {index}"))
            })?
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        smtp.send(&to, &code)
            .map_err(|e| BenchError::Check(format!("floor mail: {e}")))?;
        match self.setup.mailbox.take(&to, Duration::from_secs(5)) {
            Some(Some(got)) if got == code => Ok(()),
            other => Err(BenchError::Check(format!(
                "floor mail to {to}: sent {code}, the mailbox had {other:?}"
            ))),
        }
    }

    /// A login's two bare database transactions, under a challenge no other call uses.
    fn store(&self, index: usize) -> Result<(), BenchError> {
        let challenge = self.challenges.fetch_add(1, Ordering::Relaxed);
        self.database
            .login(&format!("floor-{challenge}"), &format!("floor{index}"))
    }

    /// Every step in a login's order: the transaction, a request (Begin), the mail, a request
    /// (Answer) and the store writes.
    fn login(&self, index: usize, iteration: u64) -> Result<(), BenchError> {
        self.transaction(index)?;
        self.request()?;
        self.mail(index, iteration)?;
        self.request()?;
        self.store(index)
    }
}

/// The recipient of loop `index`'s floor mails.
fn recipient(index: usize) -> String {
    format!("floor{index}@bench.invalid")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_login_floor_is_one_transaction_two_requests_one_mail_and_the_store() {
        let floor = Floor {
            loops: 4,
            transaction: Duration::from_micros(20),
            request: Duration::from_micros(15),
            mail: Duration::from_micros(40),
            store: Duration::from_micros(30),
            bare_logins: BareLogins {
                per_second: 1000.0,
                cpu_per_login: Duration::from_micros(150),
            },
        };
        assert_eq!(floor.login(), Duration::from_micros(120));
    }

    /// Against the real sink and otpd (run as root, with libpam-oath installed, as the
    /// benchmark itself): the mail step's run and the bare logins' run each mail once per
    /// iteration, so a bare login that skipped its mail would leave the count short.
    #[test]
    fn a_measured_floor_mails_once_per_mail_step_and_once_per_bare_login() {
        let setup = Setup::start().unwrap();
        let before = setup.mailbox.delivered();
        let floor = measure(&setup, 2, 1, Until::Count(3)).unwrap();
        // 2 loops × (1 warm-up + 3 timed), for the mail run and for the bare logins.
        assert_eq!(setup.mailbox.delivered() - before, 2 * 4 * 2);
        // CPU times come in clock ticks, too coarse for so few logins to assert on.
        assert!(floor.bare_logins.per_second > 0.0, "{floor:?}");
        assert_eq!(floor.loops, 2);
    }
}
