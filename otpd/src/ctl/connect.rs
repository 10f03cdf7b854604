//! How otpctl reaches otpd: which socket, which daemon uids to trust, one request per call.

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::client::{self, ClientError, ClientOptions, DEFAULT_SOCKET};
use common::config::Config;
use common::wire::{Request, Response};
use common::wire_admin::{AdminRequest, AdminResponse};

use super::cli::{Cli, DEFAULT_CONFIG};

/// The account otpd runs as when installed from the package.
pub const DAEMON_USER: &str = "otpd";

/// The uids, besides root, trusted to be otpd at the other end of the socket: the package's
/// daemon account, if the system has one.
pub fn trusted_daemon_uids() -> Vec<u32> {
    nix::unistd::User::from_name(DAEMON_USER)
        .ok()
        .flatten()
        .map(|u| vec![u.uid.as_raw()])
        .unwrap_or_default()
}

/// Why a call did not give an admin answer.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// otpd could not be reached, or did not answer in time.
    #[error("{0}. Is otpd running? (systemctl status otpd; otpctl doctor)")]
    Unreachable(#[from] ClientError),
    /// otpd answered something other than an admin answer.
    #[error("otpd: {0}")]
    Unexpected(String),
}

/// A configured connection to otpd.
#[derive(Debug, Clone)]
pub struct Conn {
    options: ClientOptions,
}

impl Conn {
    /// The socket from `--socket`, else from the config file, else the default; an error
    /// when a config file that should name the socket cannot (see [`socket_path`]).
    pub fn new(cli: &Cli) -> Result<Conn, String> {
        let socket = socket_path(cli.socket.as_deref(), &cli.config)?;
        Ok(Conn::at(socket, Duration::from_secs(cli.timeout.max(1))))
    }

    /// A connection to `socket`.
    pub fn at(socket: PathBuf, timeout: Duration) -> Conn {
        Conn {
            options: ClientOptions {
                socket,
                timeout,
                trusted_daemon_uids: trusted_daemon_uids(),
            },
        }
    }

    /// The socket this connection uses.
    pub fn socket(&self) -> &Path {
        &self.options.socket
    }

    /// Sends one request.
    pub fn call(&self, request: &Request) -> Result<Response, ClientError> {
        client::call(&self.options, request)
    }

    /// Sends one admin request and returns the admin answer.
    pub fn admin(&self, request: AdminRequest) -> Result<AdminResponse, CallError> {
        match self.call(&Request::Admin { request })? {
            Response::Admin { response } => Ok(response),
            Response::Error { message } => Err(CallError::Unexpected(format!(
                "{message} (an otpd older than this otpctl does not know its commands)"
            ))),
            Response::Unavailable { message } => Err(CallError::Unexpected(message)),
            other => Err(CallError::Unexpected(format!(
                "unexpected answer {other:?}"
            ))),
        }
    }
}

/// `--socket`, else `[daemon] socket` from the config file, else the default.
///
/// Only a config that cannot be read for lack of permission (a user on a machine whose config
/// is private) or that is absent from the default path falls back to the default socket. A
/// config that is there but invalid, or a named one that is missing, is an error: the default
/// socket may belong to another otpd, and a change sent there would land in the wrong place.
pub fn socket_path(socket: Option<&Path>, config: &Path) -> Result<PathBuf, String> {
    if let Some(socket) = socket {
        return Ok(socket.to_path_buf());
    }
    let error = match Config::load(config) {
        Ok(c) => return Ok(c.daemon.socket),
        Err(e) => e,
    };
    match std::fs::File::open(config) {
        Ok(_) => Err(format!(
            "{error}\n(the socket comes from this file: fix it, or name the socket with --socket)"
        )),
        Err(e)
            if e.kind() == std::io::ErrorKind::NotFound && config != Path::new(DEFAULT_CONFIG) =>
        {
            Err(format!(
                "{}: {e} (name the config with --config, or the socket with --socket)",
                config.display()
            ))
        }
        Err(_) => Ok(PathBuf::from(DEFAULT_SOCKET)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_socket_flag_wins_and_a_missing_named_config_is_an_error() {
        let flag = Path::new("/tmp/x.sock");
        assert_eq!(
            socket_path(Some(flag), Path::new("/nonexistent")),
            Ok(flag.to_path_buf())
        );
        let error = socket_path(None, Path::new("/nonexistent/otpd.toml")).unwrap_err();
        assert!(error.contains("/nonexistent/otpd.toml"), "{error}");
    }

    #[test]
    fn the_config_files_socket_is_used_when_no_flag_is_given() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("otpd.toml");
        std::fs::write(
            &path,
            "[daemon]\nsocket = \"/run/elsewhere/otpd.sock\"\n[mail]\nfrom = \"a@example.com\"\n[[mail.servers]]\nname = \"l\"\nhost = \"127.0.0.1\"\nsecurity = \"none\"\n",
        )
        .unwrap();
        assert_eq!(
            socket_path(None, &path),
            Ok(PathBuf::from("/run/elsewhere/otpd.sock"))
        );
    }

    #[test]
    fn an_invalid_config_is_an_error_instead_of_a_guess_at_the_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("otpd.toml");
        std::fs::write(&path, "[daemon]\nsocket = \"relative.sock\"\n").unwrap();
        let error = socket_path(None, &path).unwrap_err();
        assert!(
            error.contains("otpd.toml:2:") && error.contains("--socket"),
            "{error}"
        );
    }
}
