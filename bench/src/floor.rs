//! What a login of ours costs at the least on this machine, before otpd issues, stores, mails
//! or checks anything: one PAM transaction and two requests to otpd (Begin, then Answer). It
//! is measured under the same concurrent loops as the logins, so the report can set it against
//! the CPU budget a throughput target leaves per login.

use std::time::Duration;

use common::client::{self, ClientOptions};
use common::wire::Request;

use crate::error::BenchError;
use crate::login::login;
use crate::loops::{self, Until};
use crate::scenarios;
use crate::setup::{self, Setup};

/// The two parts of the floor, each in CPU time of the benchmark process and otpd together.
#[derive(Debug, Clone, Copy)]
pub struct Floor {
    /// Concurrent loops it was measured with.
    pub loops: usize,
    /// One whole PAM transaction with pam_permit alone: libpam's own cost.
    pub transaction: Duration,
    /// One bare request to otpd through the module's client (connect, check otpd's uid,
    /// `Ping`, answer), on both sides.
    pub request: Duration,
}

impl Floor {
    /// A login's floor: one transaction and two requests.
    pub fn login(&self) -> Duration {
        self.transaction + self.request * 2
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

/// Measures both parts with `loops` loops, each for `until`.
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
    Ok(Floor {
        loops,
        transaction: transactions.cpu_per_login(),
        request: requests.cpu_per_login(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_login_floor_is_one_transaction_and_two_requests() {
        let floor = Floor {
            loops: 4,
            transaction: Duration::from_micros(20),
            request: Duration::from_micros(15),
        };
        assert_eq!(floor.login(), Duration::from_micros(50));
    }
}
