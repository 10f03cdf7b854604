//! `[daemon]`: where otpd listens and keeps state, who may talk to it, and its housekeeping.

use std::path::PathBuf;
use std::time::Duration;

use super::check::{self, DAY, MINUTE, SECOND};
use super::error::Invalid;
use super::raw::{Int, RawDaemon, Text};
use crate::service::Protocol;

/// Where otpd keeps its SQLite database and server secret when `state_dir` is not set.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/otpd";

/// The daemon's own settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonConfig {
    /// The Unix socket the PAM module and `otpctl` connect to.
    pub socket: PathBuf,
    /// The directory holding the database and the server secret.
    pub state_dir: PathBuf,
    /// Callers that may act for any user (web servers checking a code for their user); root
    /// always may, everyone else only for themselves.
    pub trusted_callers: Vec<TrustedCaller>,
    /// Members of this group may run admin commands.
    pub admin_group: Option<String>,
    /// The protocol for PAM services `[services]` does not name. `None` means such logins are
    /// not protected by a code: listing services is the admin's explicit choice.
    pub default_protocol: Option<Protocol>,
    /// Connections served at once, from everyone together; more are refused with a short
    /// error, so a flood cannot exhaust memory or file descriptors.
    pub max_connections: usize,
    /// How much of the socket unprivileged callers may take, and how fast.
    pub fair_share: FairShare,
    /// How long a connection may take to send its request.
    pub request_timeout: Duration,
    /// How often expired codes and stale counters are deleted.
    pub purge_interval: Duration,
    /// How long audit rows are kept.
    pub audit_retention: Duration,
    /// `audit_max_rows` as written; `None` when unset. What applies depends on the store:
    /// [`crate::config::Config::audit_row_cap`].
    pub audit_max_rows: Option<u64>,
}

/// The socket's fair share. Its mode is 0666, so every local user may connect; these keep one
/// unprivileged user (or several) from using up the connections root (sshd running the module)
/// and the trusted callers need to log people in. Root and trusted callers are exempt from all
/// of them but `max_connections` itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FairShare {
    /// Of `max_connections`, how many unprivileged callers can never take, all of them together:
    /// a login through sshd always finds a free connection even when every other local user
    /// holds as many as they may.
    pub reserved_connections: usize,
    /// Connections one unprivileged uid may have open at once. A client that sends its request
    /// slowly holds only these, never anyone else's.
    pub max_connections_per_user: usize,
    /// Requests (connections) per second one unprivileged uid may sustain; more get a short
    /// error reply. A person running otpctl or unlocking a screen needs a handful.
    pub user_requests_per_second: u32,
    /// Requests one unprivileged uid may make at once above that rate after a quiet spell.
    pub user_request_burst: u32,
}

/// Per-uid connections when `max_connections_per_user` is not set: more than a person's
/// otpctl and screen locker ever open at once, few enough that 31 users fit in the default
/// unprivileged share.
pub const DEFAULT_MAX_CONNECTIONS_PER_USER: usize = 8;
/// The audit row cap of a SQLite store when `audit_max_rows` is unset: about 40 MiB of
/// database at the ~80 bytes a row takes, and at a few thousand events a day still more than
/// the 90 days of retention.
pub const DEFAULT_AUDIT_MAX_ROWS: u64 = 500_000;

/// A non-root caller allowed to act for other users.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrustedCaller {
    /// A user, written by name.
    User(String),
    /// Every member of a group, written `@group`.
    Group(String),
}

impl DaemonConfig {
    /// Checks `[daemon]`; a missing section gives all the defaults.
    pub(super) fn from_raw(raw: &RawDaemon) -> Result<DaemonConfig, Invalid> {
        let max_connections = match &raw.max_connections {
            Some(v) => check::cap("max_connections", v, 1, 10_000)?,
            None => 256,
        };
        Ok(DaemonConfig {
            socket: match &raw.socket {
                Some(v) => check::socket_path(v)?,
                None => PathBuf::from(crate::client::DEFAULT_SOCKET),
            },
            state_dir: match &raw.state_dir {
                Some(v) => check::absolute_path("state_dir", v)?,
                None => PathBuf::from(DEFAULT_STATE_DIR),
            },
            trusted_callers: raw
                .trusted_callers
                .iter()
                .flatten()
                .map(trusted_caller)
                .collect::<Result<_, _>>()?,
            admin_group: raw
                .admin_group
                .as_ref()
                .map(|g| check::account_name("admin_group", g.get_ref(), g.span()))
                .transpose()?,
            default_protocol: raw
                .default_protocol
                .as_ref()
                .map(check::protocol)
                .transpose()?,
            max_connections,
            fair_share: fair_share(raw, max_connections)?,
            request_timeout: match &raw.request_timeout_seconds {
                Some(v) => check::duration("request_timeout_seconds", v, 1, 60, SECOND)?,
                None => SECOND * 10,
            },
            purge_interval: match &raw.purge_interval_minutes {
                Some(v) => check::duration("purge_interval_minutes", v, 1, 1440, MINUTE)?,
                None => MINUTE * 60,
            },
            audit_retention: match &raw.audit_retention_days {
                Some(v) => check::duration("audit_retention_days", v, 1, 3650, DAY)?,
                None => DAY * 90,
            },
            audit_max_rows: raw
                .audit_max_rows
                .as_ref()
                .map(|v| check::cap("audit_max_rows", v, 1_000, 100_000_000))
                .transpose()?,
        })
    }
}

/// `[daemon]`'s fair-share keys; the reserve is checked against `max_connections`, since a
/// reserve of all of it would lock every unprivileged user out.
fn fair_share(raw: &RawDaemon, max_connections: usize) -> Result<FairShare, Invalid> {
    Ok(FairShare {
        reserved_connections: match &raw.reserved_connections {
            Some(v) => reserved_connections(v, max_connections)?,
            None => default_reserve(max_connections),
        },
        max_connections_per_user: match &raw.max_connections_per_user {
            Some(v) => check::cap("max_connections_per_user", v, 1, 10_000)?,
            None => DEFAULT_MAX_CONNECTIONS_PER_USER,
        },
        user_requests_per_second: match &raw.user_requests_per_second {
            Some(v) => check::cap("user_requests_per_second", v, 1, 10_000)?,
            None => 20,
        },
        user_request_burst: match &raw.user_request_burst {
            Some(v) => check::cap("user_request_burst", v, 1, 10_000)?,
            None => 10,
        },
    })
}

/// A quarter of `max_connections` (64 of the default 256), so the reserve follows the cap when
/// an admin changes only that; never all of it.
fn default_reserve(max_connections: usize) -> usize {
    (max_connections / 4).min(max_connections.saturating_sub(1))
}

/// `0..max_connections`: 0 turns the reserve off (one uid is still held to its own cap).
fn reserved_connections(value: &Int, max_connections: usize) -> Result<usize, Invalid> {
    let got = *value.get_ref();
    match usize::try_from(got) {
        Ok(n) if n < max_connections => Ok(n),
        _ => Err(Invalid::new(
            value.span(),
            format!(
                "reserved_connections must be between 0 and {} (less than max_connections, {max_connections}), got {got}",
                max_connections.saturating_sub(1)
            ),
        )),
    }
}

/// `name` is a user, `@name` a group.
fn trusted_caller(value: &Text) -> Result<TrustedCaller, Invalid> {
    let text = value.get_ref();
    match text.strip_prefix('@') {
        Some(group) => {
            check::account_name("a trusted caller group (after '@')", group, value.span())
                .map(TrustedCaller::Group)
        }
        None => {
            check::account_name("a trusted caller", text, value.span()).map(TrustedCaller::User)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn daemon(text: &str) -> Result<DaemonConfig, Invalid> {
        DaemonConfig::from_raw(&toml::from_str(text).unwrap())
    }

    #[test]
    fn an_empty_section_gets_the_documented_defaults() {
        let d = daemon("").unwrap();
        assert_eq!(d.socket, PathBuf::from("/run/otpd/otpd.sock"));
        assert_eq!(d.state_dir, PathBuf::from("/var/lib/otpd"));
        assert!(d.trusted_callers.is_empty());
        assert_eq!(d.admin_group, None);
        assert_eq!(d.default_protocol, None);
        assert_eq!(d.max_connections, 256);
        assert_eq!(
            d.fair_share,
            FairShare {
                reserved_connections: 64,
                max_connections_per_user: 8,
                user_requests_per_second: 20,
                user_request_burst: 10,
            }
        );
        assert_eq!(d.request_timeout, Duration::from_secs(10));
        assert_eq!(d.purge_interval, Duration::from_secs(3600));
        assert_eq!(d.audit_retention, Duration::from_secs(90 * 86_400));
        assert_eq!(d.audit_max_rows, None);
    }

    #[test]
    fn trusted_callers_are_users_or_at_groups() {
        let d = daemon("trusted_callers = [\"www-data\", \"@webdav\"]").unwrap();
        assert_eq!(
            d.trusted_callers,
            vec![
                TrustedCaller::User("www-data".into()),
                TrustedCaller::Group("webdav".into())
            ]
        );
        assert!(daemon("trusted_callers = [\"@\"]").is_err());
        assert!(daemon("trusted_callers = [\"a b\"]").is_err());
        assert!(daemon("trusted_callers = [\"\"]").is_err());
    }

    #[test]
    fn ranges_are_enforced() {
        assert!(daemon("max_connections = 0").is_err());
        assert!(daemon("max_connections = 10001").is_err());
        assert!(daemon("request_timeout_seconds = 61").is_err());
        assert!(daemon("purge_interval_minutes = 1441").is_err());
        assert!(daemon("audit_retention_days = 3651").is_err());
        assert!(daemon("audit_retention_days = 0").is_err());
        assert!(daemon("audit_max_rows = 999").is_err());
        assert!(daemon("audit_max_rows = 100000001").is_err());
        assert_eq!(
            daemon("audit_max_rows = 1000").unwrap().audit_max_rows,
            Some(1000)
        );
    }

    #[test]
    fn fair_share_keys_are_ranged_and_refuse_zero_as_unlimited() {
        assert!(daemon("max_connections_per_user = 0").is_err());
        assert!(daemon("max_connections_per_user = 10001").is_err());
        assert!(daemon("user_requests_per_second = 0").is_err());
        assert!(daemon("user_request_burst = 0").is_err());
        let d = daemon(
            "max_connections_per_user = 2\nuser_requests_per_second = 5\nuser_request_burst = 3",
        )
        .unwrap();
        assert_eq!(d.fair_share.max_connections_per_user, 2);
        assert_eq!(d.fair_share.user_requests_per_second, 5);
        assert_eq!(d.fair_share.user_request_burst, 3);
    }

    #[test]
    fn the_reserve_follows_max_connections_and_never_takes_all_of_it() {
        let d = daemon("max_connections = 40").unwrap();
        assert_eq!(d.fair_share.reserved_connections, 10);
        assert_eq!(
            daemon("max_connections = 1")
                .unwrap()
                .fair_share
                .reserved_connections,
            0
        );
        assert_eq!(
            daemon("max_connections = 40\nreserved_connections = 0")
                .unwrap()
                .fair_share
                .reserved_connections,
            0
        );
        assert_eq!(
            daemon("max_connections = 40\nreserved_connections = 39")
                .unwrap()
                .fair_share
                .reserved_connections,
            39
        );
        let e = daemon("max_connections = 40\nreserved_connections = 40").unwrap_err();
        assert!(
            e.message.contains("less than max_connections"),
            "{}",
            e.message
        );
        assert!(daemon("reserved_connections = -1").is_err());
    }

    #[test]
    fn default_protocol_must_be_known() {
        assert_eq!(
            daemon("default_protocol = \"sftp\"")
                .unwrap()
                .default_protocol,
            Some(Protocol::Sftp)
        );
        let e = daemon("default_protocol = \"shh\"").unwrap_err();
        assert!(e.message.starts_with("unknown protocol \"shh\""));
    }

    #[test]
    fn relative_paths_are_refused() {
        let e = daemon("socket = \"otpd.sock\"").unwrap_err();
        assert!(e.message.contains("absolute path"));
        assert!(daemon("state_dir = \"lib/otpd\"").is_err());
    }
}
