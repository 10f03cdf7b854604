//! Fills otpd with live codes through its wire protocol: `Request::Begin` for many distinct
//! users from a few threads, one connection per request as the module makes them, so otpd does
//! exactly the work a login does (decide, issue, mail, audit) and the memory measured is what
//! that work leaves behind.

use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use common::frame;
use common::wire::{LoginContext, Request, Response};

use crate::error::BenchError;

/// The user name of bulk code `n`; each is distinct, so no code supersedes another.
pub fn bulk_user(n: usize) -> String {
    format!("bulk{n:06}")
}

/// Issues `total` codes from `connections` threads, each with one connection open at a time,
/// and returns how long it took.
/// Every answer must be a prompt: anything else means a code was not issued.
pub fn issue_live_codes(
    socket: &Path,
    total: usize,
    connections: usize,
) -> Result<Duration, BenchError> {
    let started = Instant::now();
    let results: Vec<Result<(), BenchError>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..connections)
            .map(|first| scope.spawn(move || issue_share(socket, first, connections, total)))
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|_| Err(BenchError::Check("a bulk thread panicked".into())))
            })
            .collect()
    });
    for result in results {
        result?;
    }
    Ok(started.elapsed())
}

/// Issues codes `first`, `first + step`, ... below `total` on one connection.
fn issue_share(socket: &Path, first: usize, step: usize, total: usize) -> Result<(), BenchError> {
    for n in (first..total).step_by(step.max(1)) {
        // One request per connection, as the module and otpctl send them.
        let mut stream = UnixStream::connect(socket).map_err(BenchError::io(socket))?;
        let request = Request::Begin {
            login: LoginContext {
                user: bulk_user(n),
                service: "sshd".into(),
                rhost: None,
                tty: None,
                protocol: None,
            },
            ssh_keys: Vec::new(),
        };
        let response: Response = frame::write_frame(&mut stream, &request)
            .and_then(|()| frame::read_frame(&mut stream))
            .map_err(|e| BenchError::Check(format!("bulk begin {n}: {e}")))?;
        if !matches!(response, Response::Prompt { .. }) {
            return Err(BenchError::Check(format!(
                "bulk begin {n} was answered {response:?}, not a prompt"
            )));
        }
    }
    Ok(())
}
