//! How many requests otpd is answering right now, so that a wait inside one of them can tell
//! whether it would hold anyone else up.

use std::sync::atomic::{AtomicUsize, Ordering};

static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

/// Counts one request as in flight until dropped.
#[derive(Debug)]
pub struct Request(());

impl Request {
    /// Counts a request that is starting.
    pub fn start() -> Request {
        IN_FLIGHT.fetch_add(1, Ordering::Relaxed);
        Request(())
    }
}

impl Drop for Request {
    fn drop(&mut self) {
        IN_FLIGHT.fetch_sub(1, Ordering::Relaxed);
    }
}

/// True when at most one request is being answered: a short busy wait in it delays nobody.
pub fn alone() -> bool {
    IN_FLIGHT.load(Ordering::Relaxed) <= 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_requests_are_not_alone_and_one_is_again_once_the_other_ends() {
        let first = Request::start();
        assert!(alone());
        let second = Request::start();
        assert!(!alone());
        drop(second);
        assert!(alone());
        drop(first);
    }
}
