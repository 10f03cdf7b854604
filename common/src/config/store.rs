//! `[store]`: where otpd keeps its state. SQLite in the state directory is the embedded default;
//! `backend = "postgresql"` shares one database among many hosts (issue #20), so enrolment,
//! caps and lockouts hold across all of them.
//!
//! The PostgreSQL connection is checked here as the LDAP one is: TLS with the server's name
//! verified (`verify-full`) unless every host is loopback and `tls = "none"`; the password and
//! the client key live in private files, never in this file.

use std::path::PathBuf;
use std::time::Duration;

use toml::Spanned;

use super::check::{self, SECOND, is_loopback};
use super::error::Invalid;
use super::raw::{RawStore, Text};

/// PostgreSQL's port when a host names none.
pub const DEFAULT_PG_PORT: u16 = 5432;
/// Pooled connections per otpd unless `pool_size` says otherwise.
pub const DEFAULT_POOL_SIZE: usize = 8;
/// How long a connection may take unless `connect_timeout_seconds` says otherwise.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a statement may take unless `statement_timeout_seconds` says otherwise: under the
/// module's deadline, so a stuck database makes a login unavailable, not hang.
pub const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(3);

/// Which backend holds otpd's state.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum StoreConfig {
    /// SQLite in `[daemon] state_dir` (the default).
    #[default]
    Sqlite,
    /// A PostgreSQL database shared by several hosts.
    Postgresql(Box<PostgresConfig>),
}

/// How a PostgreSQL connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PgTls {
    /// TLS, the server's certificate verified against the system store and `ca_file`, and its
    /// name against the host's (libpq's `sslmode=verify-full`).
    VerifyFull,
    /// No TLS: only when every host is loopback.
    None,
}

/// One `host` or `host:port` of `hosts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgHost {
    /// A name or an IP address.
    pub host: String,
    /// The port.
    pub port: u16,
}

/// `[store]` with `backend = "postgresql"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresConfig {
    /// The servers, tried in order; the one that takes writes is used
    /// (`target_session_attrs=read-write`), so a promoted standby takes over.
    pub hosts: Vec<PgHost>,
    /// The database.
    pub dbname: String,
    /// The role otpd logs in as.
    pub user: String,
    /// A private file holding the role's password, if it uses one.
    pub password_file: Option<PathBuf>,
    /// TLS or not.
    pub tls: PgTls,
    /// A CA trusted besides the system store.
    pub ca_file: Option<PathBuf>,
    /// A client certificate and its private key, to log in with a certificate.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// The most connections one otpd opens.
    pub pool_size: usize,
    /// How long a connection may take.
    pub connect_timeout: Duration,
    /// How long one statement may take.
    pub statement_timeout: Duration,
    /// A connection pooler in transaction mode (PgBouncer's `pool_mode = transaction`) stands
    /// between otpd and the servers: each transaction may run on another server connection,
    /// so otpd keeps nothing on a connection across transactions (no named prepared
    /// statements, no session settings) and sends no startup options, which poolers refuse.
    pub behind_pooler: bool,
    /// The pooler keeps prepared statements across its server connections (PgBouncer from
    /// 1.21 with `max_prepared_statements` above 0): behind it otpd prepares its statements
    /// once per connection as when connected directly, so the server plans each once, not at
    /// every run. Only with `behind_pooler`.
    pub pooler_keeps_prepared_statements: bool,
}

impl StoreConfig {
    /// Checks `[store]`; a missing section is SQLite.
    pub(super) fn from_raw(raw: &Spanned<RawStore>) -> Result<StoreConfig, Invalid> {
        let store = raw.get_ref();
        let backend = store
            .backend
            .as_ref()
            .map_or("sqlite", |b| b.get_ref().as_str());
        match backend {
            "sqlite" => {
                if let Some(key) = postgres_only_key(store) {
                    return Err(Invalid::new(
                        raw.span(),
                        format!("{key} is only used with backend = \"postgresql\""),
                    ));
                }
                Ok(StoreConfig::Sqlite)
            }
            "postgresql" => Ok(StoreConfig::Postgresql(Box::new(PostgresConfig::from_raw(
                raw,
            )?))),
            other => Err(Invalid::new(
                store.backend.as_ref().map(|b| b.span()).unwrap_or_default(),
                format!("backend must be \"sqlite\" or \"postgresql\", got {other:?}"),
            )),
        }
    }
}

/// The first PostgreSQL key set in a SQLite `[store]`.
fn postgres_only_key(store: &RawStore) -> Option<&'static str> {
    [
        ("hosts", store.hosts.is_some()),
        ("dbname", store.dbname.is_some()),
        ("user", store.user.is_some()),
        ("password_file", store.password_file.is_some()),
        ("tls", store.tls.is_some()),
        ("ca_file", store.ca_file.is_some()),
        ("client_cert", store.client_cert.is_some()),
        ("client_key", store.client_key.is_some()),
        ("pool_size", store.pool_size.is_some()),
        ("behind_pooler", store.behind_pooler.is_some()),
        (
            "pooler_keeps_prepared_statements",
            store.pooler_keeps_prepared_statements.is_some(),
        ),
    ]
    .into_iter()
    .find(|(_, set)| *set)
    .map(|(key, _)| key)
}

impl PostgresConfig {
    fn from_raw(raw: &Spanned<RawStore>) -> Result<PostgresConfig, Invalid> {
        let store = raw.get_ref();
        let Some(hosts_value) = &store.hosts else {
            return Err(Invalid::new(
                raw.span(),
                "backend = \"postgresql\" needs hosts = [\"HOST[:PORT]\", ...], the servers tried in order",
            ));
        };
        if hosts_value.get_ref().is_empty() || hosts_value.get_ref().len() > 8 {
            return Err(Invalid::new(
                hosts_value.span(),
                "hosts must list 1 to 8 servers",
            ));
        }
        let hosts = hosts_value
            .get_ref()
            .iter()
            .map(pg_host)
            .collect::<Result<Vec<_>, _>>()?;
        let tls = match store.tls.as_ref().map(|t| (t, t.get_ref().as_str())) {
            None | Some((_, "verify-full")) => PgTls::VerifyFull,
            Some((_, "none")) => PgTls::None,
            Some((value, other)) => {
                return Err(Invalid::new(
                    value.span(),
                    format!("tls must be \"verify-full\" or \"none\", got {other:?}"),
                ));
            }
        };
        if tls == PgTls::None {
            if let Some(remote) = hosts.iter().find(|h| !is_loopback(&h.host)) {
                return Err(Invalid::new(
                    store.tls.as_ref().map(|t| t.span()).unwrap_or_default(),
                    format!(
                        "tls = \"none\" would send the password and every code's record in clear text to {:?}; it is only allowed when every host is loopback",
                        remote.host
                    ),
                ));
            }
        }
        let ca_file = optional_path("ca_file", store.ca_file.as_ref())?;
        if tls == PgTls::None && ca_file.is_some() {
            return Err(Invalid::new(
                store.ca_file.as_ref().map(|v| v.span()).unwrap_or_default(),
                "ca_file is only used with tls = \"verify-full\"",
            ));
        }
        let client_cert = match (&store.client_cert, &store.client_key) {
            (Some(cert), Some(key)) => Some((
                check::absolute_path("client_cert", cert)?,
                check::absolute_path("client_key", key)?,
            )),
            (None, None) => None,
            (Some(v), None) | (None, Some(v)) => {
                return Err(Invalid::new(
                    v.span(),
                    "client_cert and client_key come together: the certificate and its private key",
                ));
            }
        };
        let behind_pooler = store.behind_pooler.unwrap_or(false);
        let pooler_keeps_prepared_statements = match &store.pooler_keeps_prepared_statements {
            Some(keeps) if *keeps.get_ref() && !behind_pooler => {
                return Err(Invalid::new(
                    keeps.span(),
                    "pooler_keeps_prepared_statements is only used with behind_pooler = true",
                ));
            }
            Some(keeps) => *keeps.get_ref(),
            None => false,
        };
        Ok(PostgresConfig {
            hosts,
            dbname: name("dbname", store.dbname.as_ref(), "otpd")?,
            user: name("user", store.user.as_ref(), "otpd")?,
            password_file: optional_path("password_file", store.password_file.as_ref())?,
            tls,
            ca_file,
            client_cert,
            pool_size: match &store.pool_size {
                Some(v) => check::cap("pool_size", v, 1, 64)?,
                None => DEFAULT_POOL_SIZE,
            },
            connect_timeout: match &store.connect_timeout_seconds {
                Some(v) => check::duration("connect_timeout_seconds", v, 1, 60, SECOND)?,
                None => DEFAULT_CONNECT_TIMEOUT,
            },
            statement_timeout: match &store.statement_timeout_seconds {
                Some(v) => check::duration("statement_timeout_seconds", v, 1, 60, SECOND)?,
                None => DEFAULT_STATEMENT_TIMEOUT,
            },
            behind_pooler,
            pooler_keeps_prepared_statements,
        })
    }
}

fn optional_path(key: &str, value: Option<&Text>) -> Result<Option<PathBuf>, Invalid> {
    value.map(|v| check::absolute_path(key, v)).transpose()
}

/// A database or role name: letters, digits, `_`, `-` and `.`, at most 63 bytes (PostgreSQL's
/// limit), so it never needs quoting anywhere.
fn name(key: &str, value: Option<&Text>, default: &str) -> Result<String, Invalid> {
    let Some(value) = value else {
        return Ok(default.to_string());
    };
    let text = value.get_ref();
    let fine = !text.is_empty()
        && text.len() <= 63
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if fine {
        Ok(text.clone())
    } else {
        Err(Invalid::new(
            value.span(),
            format!("{key} must be 1 to 63 letters, digits, '_', '-' or '.', got {text:?}"),
        ))
    }
}

/// `host` or `host:port` (an IPv6 address in brackets when a port follows).
fn pg_host(value: &Text) -> Result<PgHost, Invalid> {
    let written = value.get_ref();
    let (host, port) = match written.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') || host.starts_with('[') => {
            let port = port.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| {
                Invalid::new(
                    value.span(),
                    format!("the port of {written:?} must be 1 to 65535"),
                )
            })?;
            (host.trim_start_matches('[').trim_end_matches(']'), port)
        }
        _ => (written.as_str(), DEFAULT_PG_PORT),
    };
    let host_value = Spanned::new(value.span(), host.to_string());
    Ok(PgHost {
        host: check::host("hosts", &host_value)?,
        port,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, ConfigError};

    fn load(store: &str) -> Result<Config, ConfigError> {
        let text = format!("[store]\n{store}\n[mail]\nfrom = \"otp@example.com\"\n");
        Config::parse(&text, std::path::Path::new("otpd.toml"))
    }

    fn postgres(store: &str) -> PostgresConfig {
        match load(store).unwrap().store {
            StoreConfig::Postgresql(pg) => *pg,
            StoreConfig::Sqlite => panic!("not postgresql"),
        }
    }

    fn error(store: &str) -> String {
        load(store).unwrap_err().to_string()
    }

    #[test]
    fn the_audit_row_cap_unset_is_a_hosts_on_sqlite_and_none_on_the_fleets_postgresql() {
        let pg = "backend = \"postgresql\"\nhosts = [\"127.0.0.1:5432\"]\ntls = \"none\"\n";
        let cap = |store: &str, daemon: &str| {
            let text = format!("{daemon}[store]\n{store}\n[mail]\nfrom = \"otp@example.com\"\n");
            let config = Config::parse(&text, std::path::Path::new("otpd.toml")).unwrap();
            config.audit_row_cap()
        };
        assert_eq!(
            cap("", ""),
            Some(crate::config::daemon::DEFAULT_AUDIT_MAX_ROWS)
        );
        assert_eq!(cap(pg, ""), None);
        let set = "[daemon]\naudit_max_rows = 2000000\n";
        assert_eq!(cap(pg, set), Some(2_000_000));
        assert_eq!(cap("", set), Some(2_000_000));
    }

    #[test]
    fn without_the_section_the_store_is_sqlite() {
        let config = Config::parse(
            "[mail]\nfrom = \"otp@example.com\"\n",
            std::path::Path::new("otpd.toml"),
        )
        .unwrap();
        assert_eq!(config.store, StoreConfig::Sqlite);
    }

    #[test]
    fn a_host_list_with_ports_verified_tls_and_the_defaults() {
        let pg = postgres(
            "backend = \"postgresql\"\nhosts = [\"db1.example.com\", \"10.0.0.2:6432\", \"[2001:db8::1]:5433\"]\n\
             password_file = \"/etc/otpd/pg-password\"\nca_file = \"/etc/otpd/pg-ca.pem\"\n",
        );
        assert_eq!(
            pg.hosts,
            [
                PgHost {
                    host: "db1.example.com".into(),
                    port: 5432
                },
                PgHost {
                    host: "10.0.0.2".into(),
                    port: 6432
                },
                PgHost {
                    host: "2001:db8::1".into(),
                    port: 5433
                },
            ]
        );
        assert_eq!(pg.tls, PgTls::VerifyFull);
        assert_eq!((pg.dbname.as_str(), pg.user.as_str()), ("otpd", "otpd"));
        assert_eq!(pg.pool_size, DEFAULT_POOL_SIZE);
        assert_eq!(pg.statement_timeout, DEFAULT_STATEMENT_TIMEOUT);
        assert!(!pg.behind_pooler, "connected directly unless told");
    }

    #[test]
    fn a_pooler_in_front_is_said_and_only_for_postgresql() {
        let pg = postgres(
            "backend = \"postgresql\"\nhosts = [\"pgbouncer.example:6432\"]\nbehind_pooler = true\n",
        );
        assert!(pg.behind_pooler);
        let e = error("behind_pooler = true\n");
        assert!(
            e.contains("behind_pooler is only used with backend = \"postgresql\""),
            "{e}"
        );
        let e = error("backend = \"postgresql\"\nhosts = [\"db\"]\nbehind_pooler = \"yes\"\n");
        assert!(e.contains("otpd.toml:4:"), "{e}");
    }

    #[test]
    fn a_pooler_that_keeps_prepared_statements_is_said_only_behind_a_pooler() {
        let pooled = "backend = \"postgresql\"\nhosts = [\"pgbouncer.example:6432\"]\nbehind_pooler = true\n";
        assert!(!postgres(pooled).pooler_keeps_prepared_statements);
        let pg = postgres(&format!(
            "{pooled}pooler_keeps_prepared_statements = true\n"
        ));
        assert!(pg.behind_pooler && pg.pooler_keeps_prepared_statements);
        let e = error(
            "backend = \"postgresql\"\nhosts = [\"db\"]\npooler_keeps_prepared_statements = true\n",
        );
        assert!(
            e.contains("otpd.toml:4:")
                && e.contains(
                    "pooler_keeps_prepared_statements is only used with behind_pooler = true"
                ),
            "{e}"
        );
        let e = error("pooler_keeps_prepared_statements = false\n");
        assert!(
            e.contains("pooler_keeps_prepared_statements is only used with backend"),
            "{e}"
        );
    }

    #[test]
    fn plain_connections_only_to_loopback() {
        let pg =
            postgres("backend = \"postgresql\"\nhosts = [\"127.0.0.1:5432\"]\ntls = \"none\"\n");
        assert_eq!(pg.tls, PgTls::None);
        let e = error(
            "backend = \"postgresql\"\nhosts = [\"127.0.0.1\", \"db2.example.com\"]\ntls = \"none\"\n",
        );
        assert!(
            e.contains("otpd.toml:4:") && e.contains("only allowed when every host is loopback"),
            "{e}"
        );
    }

    #[test]
    fn mistakes_are_refused_where_they_are_written() {
        for (store, line, says) in [
            ("backend = \"mysql\"\n", 2, "backend must be"),
            ("backend = \"postgresql\"\n", 1, "needs hosts"),
            (
                "backend = \"postgresql\"\nhosts = []\n",
                3,
                "1 to 8 servers",
            ),
            (
                "backend = \"postgresql\"\nhosts = [\"db:0\"]\n",
                3,
                "1 to 65535",
            ),
            (
                "backend = \"postgresql\"\nhosts = [\"db x\"]\n",
                3,
                "host name",
            ),
            (
                "backend = \"postgresql\"\nhosts = [\"db\"]\ndbname = \"a;b\"\n",
                4,
                "dbname must be",
            ),
            (
                "backend = \"postgresql\"\nhosts = [\"db\"]\nclient_cert = \"/c.pem\"\n",
                4,
                "come together",
            ),
            (
                "backend = \"postgresql\"\nhosts = [\"db\"]\npool_size = 0\n",
                4,
                "pool_size",
            ),
            (
                "backend = \"postgresql\"\nhosts = [\"db\"]\npassword_file = \"rel\"\n",
                4,
                "absolute",
            ),
            (
                "hosts = [\"db\"]\n",
                1,
                "only used with backend = \"postgresql\"",
            ),
        ] {
            let e = error(store);
            assert!(
                e.contains(&format!("otpd.toml:{line}:")) && e.contains(says),
                "{store:?}: {e}"
            );
        }
    }
}
