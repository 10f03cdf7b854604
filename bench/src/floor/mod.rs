//! What a login of ours costs at the least on this machine: one PAM transaction, two requests
//! to otpd (Begin, then Answer), one SMTP transaction and two database transactions, each done
//! the cheapest way and nothing else (no policy, codes, audit or composed mail). It is measured
//! under the same concurrent loops as the logins, so the report can set it against the CPU
//! budget a throughput target leaves per login.

mod smtp;
mod store;

use std::sync::Mutex;
use std::time::Duration;

use common::client::{self, ClientOptions};
use common::wire::Request;

use crate::error::BenchError;
use crate::login::login;
use crate::loops::{self, Until};
use crate::scenarios;
use crate::setup::{self, Setup};

/// The parts of the floor, each in CPU time of the benchmark process and otpd together.
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

/// Measures every part with `loops` loops, each for `until`.
pub fn measure(
    setup: &Setup,
    loops: usize,
    warmup: u64,
    until: Until,
) -> Result<Floor, BenchError> {
    let watch = scenarios::watched(setup);
    let transactions = loops::run_loops(loops, warmup, until, &watch, &|index, _| {
        let rhost = format!("192.0.2.{}", index + 1);
        login(
            setup.confdir(),
            setup::PERMIT_SERVICE,
            "floor",
            &rhost,
            |_| None,
        )
    })?;
    let options = client_options(setup);
    let requests = loops::run_loops(loops, warmup, until, &watch, &|_, _| ping(&options))?;
    let mails = measure_mail(setup, loops, warmup, until)?;
    let database = store::BareStore::open()?;
    let stores = loops::run_loops(loops, warmup, until, &watch, &|index, iteration| {
        database.login(
            &format!("floor-{index}-{iteration}"),
            &format!("floor{index}"),
        )
    })?;
    Ok(Floor {
        loops,
        transaction: transactions.cpu_per_login(),
        request: requests.cpu_per_login(),
        mail: mails.cpu_per_login(),
        store: stores.cpu_per_login(),
    })
}

/// Each loop mails its own recipient over its own connection and takes the code out of the
/// mailbox, as a login's conversation does, so the sink's parsing and delivery count too.
fn measure_mail(
    setup: &Setup,
    loops: usize,
    warmup: u64,
    until: Until,
) -> Result<loops::Run, BenchError> {
    let connections = (0..loops)
        .map(|_| smtp::BareSmtp::connect(setup.sink_port()).map(Mutex::new))
        .collect::<Result<Vec<_>, _>>()
        .map_err(BenchError::io("floor: connect to the SMTP sink"))?;
    let watch = scenarios::watched(setup);
    loops::run_loops(loops, warmup, until, &watch, &|index, iteration| {
        let to = recipient(index);
        let code = format!("{:06}", iteration % 1_000_000);
        let mut smtp = connections
            .get(index)
            .ok_or_else(|| {
                BenchError::Check(format!("floor mail: no connection for loop {index}"))
            })?
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        smtp.send(&to, &code)
            .map_err(|e| BenchError::Check(format!("floor mail: {e}")))?;
        match setup.mailbox.take(&to, Duration::from_secs(5)) {
            Some(Some(got)) if got == code => Ok(()),
            other => Err(BenchError::Check(format!(
                "floor mail to {to}: sent {code}, the mailbox had {other:?}"
            ))),
        }
    })
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
        };
        assert_eq!(floor.login(), Duration::from_micros(120));
    }
}
