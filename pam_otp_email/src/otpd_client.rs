//! The real [`Daemon`]: otpd over its Unix socket, through the blocking client in `common`.

use common::client::{self, ClientError, ClientOptions};
use common::wire::{Request, Response};
use nix::unistd::User;

use crate::args::Args;
use crate::flow::Daemon;

/// otpd as reached by the module, with the deadline and trusted uids of the module arguments.
#[derive(Debug, Clone)]
pub struct Otpd {
    options: ClientOptions,
    /// The deadline of requests that may mail a code and so wait for the mail server.
    mail_timeout: std::time::Duration,
}

impl Otpd {
    /// Builds the client options; the daemon user is resolved now, once per login.
    pub fn new(args: &Args) -> Self {
        Otpd {
            options: ClientOptions {
                socket: args.socket.clone(),
                timeout: args.timeout,
                trusted_daemon_uids: daemon_uid(&args.daemon_user).into_iter().collect(),
            },
            mail_timeout: args.mail_timeout,
        }
    }
}

impl Daemon for Otpd {
    fn call(&self, request: &Request) -> Result<Response, ClientError> {
        match request {
            Request::Begin { .. } | Request::Resend { .. } => {
                let options = ClientOptions {
                    timeout: self.mail_timeout,
                    ..self.options.clone()
                };
                client::call(&options, request)
            }
            _ => client::call(&self.options, request),
        }
    }
}

/// The uid of the daemon user. An absent user, or a lookup that fails, trusts nobody but root:
/// a broken name service must not widen who may answer on the socket.
pub fn daemon_uid(name: &str) -> Option<u32> {
    User::from_name(name)
        .ok()
        .flatten()
        .map(|user| user.uid.as_raw())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn root_resolves_to_uid_zero() {
        assert_eq!(daemon_uid("root"), Some(0));
    }

    #[test]
    fn an_absent_daemon_user_trusts_only_root() {
        assert_eq!(daemon_uid("no-such-user-otpd-test"), None);
        let args = Args {
            daemon_user: "no-such-user-otpd-test".into(),
            ..Args::default()
        };
        assert!(Otpd::new(&args).options.trusted_daemon_uids.is_empty());
    }

    #[test]
    fn the_arguments_become_the_client_options() {
        let args = Args {
            socket: "/tmp/otpd-test.sock".into(),
            timeout: Duration::from_secs(2),
            daemon_user: "root".into(),
            ..Args::default()
        };
        let otpd = Otpd::new(&args);
        assert_eq!(otpd.options.socket, args.socket);
        assert_eq!(otpd.options.timeout, Duration::from_secs(2));
        assert_eq!(otpd.options.trusted_daemon_uids, vec![0]);
    }
}
