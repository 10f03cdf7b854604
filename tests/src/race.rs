//! One code answered many times at once over several otpd hosts sharing a store (issue #20's
//! "100 parallel answers give exactly one success"): the single-secret flow (HTTP Basic behind
//! a load balancer), where an answer carries no challenge, so any host may get it.

use std::sync::Barrier;

use common::secret::SecretString;
use common::wire::{LoginContext, Request, Response};

use crate::otpd::Otpd;

/// An HTTP Basic request's login as nginx reports it, from `rhost`.
pub fn http(user: &str, rhost: &str) -> LoginContext {
    LoginContext {
        user: user.into(),
        service: "nginx".into(),
        rhost: Some(rhost.into()),
        tty: None,
        protocol: None,
    }
}

/// `answers` verifications of `user`'s `code`, all released at once, answer `n` sent to host
/// `n % hosts.len()` from its own client address (`198.51.100.n+1`, so no reuse grant of one
/// client serves another): each reply with the index of the host that gave it.
pub fn answer_at_once(
    hosts: &[&Otpd],
    user: &str,
    code: &str,
    answers: usize,
) -> Vec<(usize, Response)> {
    let start = Barrier::new(answers);
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..answers)
            .map(|n| {
                let (start, host) = (&start, n % hosts.len());
                scope.spawn(move || {
                    let login = http(user, &format!("198.51.100.{}", n + 1));
                    start.wait();
                    let reply = hosts[host].call(&Request::Verify {
                        login,
                        code: SecretString::new(code.to_string()),
                    });
                    (host, reply.expect("otpd answers"))
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("an answering thread"))
            .collect()
    })
}

/// Asserts that exactly one of `replies` is a success and every other a denial.
pub fn exactly_one_success(replies: &[(usize, Response)]) {
    let successes = replies
        .iter()
        .filter(|(_, r)| *r == Response::Success)
        .count();
    assert_eq!(successes, 1, "{replies:?}");
    for (host, reply) in replies {
        assert!(
            *reply == Response::Success || matches!(reply, Response::Denied { .. }),
            "host {host}: {reply:?}"
        );
    }
}
