//! Start-up, signals and reload: everything between `main` and [`server::serve`].
//!
//! Order matters: the config is validated, the state directory and key checked, the database
//! opened and the mailer built before the socket is bound, and systemd hears READY=1 only then.
//! SIGHUP reloads the config; a bad file is reported and the old config keeps running.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::config::{Config, ConfigError, PgTls, PostgresConfig, StoreConfig};
use common::text::escape_for_log;
use tokio::net::UnixListener;
use tokio::signal::unix::{SignalKind, signal};

use crate::accounts::SystemAccounts;
use crate::clock::{Clock, SteadyClock};
use crate::files::{self, FileError};
use crate::mail::{MailSetupError, Mailer};
use crate::server;
use crate::server_key::{KeyError, ServerKey};
use crate::state::{Active, Shared};
use crate::store::{PgOptions, PgStore, SqliteStore, Store, StoreError};
use crate::systemd;

/// The database file inside the state directory.
pub const DATABASE_FILE: &str = "otpd.db";

/// Why otpd could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The config is invalid.
    #[error("{0}")]
    Config(#[from] ConfigError),
    /// A file or directory is unsafe or unusable.
    #[error("{0}")]
    Files(#[from] FileError),
    /// The server key could not be loaded or created.
    #[error("server key: {0}")]
    Key(#[from] KeyError),
    /// The database could not be opened.
    #[error("database: {0}")]
    Store(#[from] StoreError),
    /// The configured store backend cannot be used.
    #[error("[store]: {0}")]
    Backend(String),
    /// The mailer could not be built.
    #[error("{0}")]
    Mail(#[from] MailSetupError),
    /// An LDAP source's or a webhook channel's password, credentials or CA file could not be
    /// used.
    #[error("{0}")]
    Directory(String),
    /// Relay mode's certificates, key or address cannot be used.
    #[error("{0}")]
    Relay(String),
    /// The socket could not be bound or signals not installed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
}

/// The driver's connection settings for `[store] backend = "postgresql"`: every host with its
/// port, tried in order, the first that takes writes used (`target_session_attrs=read-write`,
/// so a promoted standby takes over); the role's password read from its private file.
fn postgres_connection(pg: &PostgresConfig) -> Result<tokio_postgres::Config, StartError> {
    let mut config = tokio_postgres::Config::new();
    for host in &pg.hosts {
        config.host(&host.host);
        config.port(host.port);
    }
    config
        .dbname(&pg.dbname)
        .user(&pg.user)
        .target_session_attrs(tokio_postgres::config::TargetSessionAttrs::ReadWrite)
        .connect_timeout(pg.connect_timeout)
        .application_name("otpd");
    if let Some(path) = &pg.password_file {
        let password = crate::mail::secret_file::read_password(path)
            .map_err(|e| StartError::Backend(format!("password_file {e}")))?;
        config.password(password.expose());
    }
    Ok(config)
}

/// The PostgreSQL store `pg` names, made with `key` (the state directory's server key: every
/// host sharing the database must hold the same file; a database made with another key is
/// refused).
///
/// The database must be reachable at start: otpd brings the schema to its version and checks
/// the key before it serves anyone, so it refuses to start without them (systemd's
/// `Restart=on-failure` tries again). Once running, a database that goes away makes logins
/// unavailable, and the pool connects again by itself when it is back.
///
/// `deadline` bounds each operation (otpd: `statement_timeout_seconds`; `otpctl store
/// migrate`: the whole copy, which is one operation).
pub fn open_postgres(
    pg: &PostgresConfig,
    key: ServerKey,
    deadline: std::time::Duration,
) -> Result<PgStore, StartError> {
    let config = postgres_connection(pg)?;
    let tls = match pg.tls {
        PgTls::None => None,
        PgTls::VerifyFull => Some(
            crate::mail::tls::verifying_config_with_client(
                pg.ca_file.as_deref(),
                pg.client_cert
                    .as_ref()
                    .map(|(c, k)| (c.as_path(), k.as_path())),
            )
            .map_err(StartError::Backend)?,
        ),
    };
    let options = PgOptions {
        pool_size: pg.pool_size,
        deadline,
        connect_timeout: pg.connect_timeout,
        behind_pooler: pg.behind_pooler,
        pooler_keeps_prepared_statements: pg.pooler_keeps_prepared_statements,
    };
    let hosts = pg
        .hosts
        .iter()
        .map(|h| format!("{}:{}", h.host, h.port))
        .collect::<Vec<_>>()
        .join(", ");
    let store = PgStore::open_with_tls(config, options, key, tls).map_err(|e| {
        StartError::Backend(format!(
            "PostgreSQL database {} on {}: {e}",
            escape_for_log(&pg.dbname),
            escape_for_log(&hosts)
        ))
    })?;
    tracing::info!(
        "store: PostgreSQL database {} on {} ({}{})",
        escape_for_log(&pg.dbname),
        escape_for_log(&hosts),
        match pg.tls {
            PgTls::VerifyFull => "TLS, verify-full",
            PgTls::None => "no TLS, loopback",
        },
        options.pooler_note()
    );
    if pg.behind_pooler {
        warn_of_reads_without_a_deadline(&store, &pg.user);
    }
    Ok(store)
}

/// Behind a pooler a read outside a transaction runs under the role's own
/// `statement_timeout` (otpd's session settings cannot be carried through): says so when the
/// role has none, since a stuck read would then hold one of the pooler's server connections
/// for as long as it runs.
fn warn_of_reads_without_a_deadline(store: &PgStore, role: &str) {
    match store.statement_timeout_outside_transactions().as_deref() {
        Ok("0") => tracing::warn!(
            "store: behind a pooler, reads outside a transaction run under the role's own \
             statement_timeout, and role {} has none; set one (ALTER ROLE {} SET \
             statement_timeout = '3s') and the pooler's query_timeout",
            escape_for_log(role),
            escape_for_log(role)
        ),
        Ok(_) => {}
        Err(e) => tracing::warn!("store: cannot read the role's statement_timeout: {e}"),
    }
}

/// Runs otpd with the config at `config_path` until SIGTERM or SIGINT.
pub async fn run(config_path: PathBuf) -> Result<(), StartError> {
    forbid_core_dumps();
    let config = Config::load_with_files(&config_path)?;
    if nix::unistd::geteuid().is_root() {
        tracing::warn!(
            "running as root; otpd needs no privileges and should run as its own user (otpd)"
        );
    }
    let daemon = config.daemon.clone();
    files::prepare_state_dir(&daemon.state_dir)?;
    let store: Box<dyn Store + Send> = if config.relay.is_some() {
        // A relay (DMZ) host: no database and no server key on its disk.
        Box::new(crate::relay::stateless_store().map_err(StartError::Relay)?)
    } else {
        let key = ServerKey::load_or_create(&daemon.state_dir)?;
        match &config.store {
            StoreConfig::Postgresql(pg) => {
                // The store blocks on a runtime of its own: opened off this one's threads.
                let pg = pg.clone();
                let store = tokio::task::spawn_blocking(move || {
                    open_postgres(&pg, key, pg.statement_timeout)
                })
                .await
                .map_err(|e| StartError::Backend(format!("opening the store: {e}")))??;
                Box::new(store)
            }
            StoreConfig::Sqlite => {
                let database = daemon.state_dir.join(DATABASE_FILE);
                Box::new(SqliteStore::open(&database, key)?)
            }
        }
    };
    // One clock for the store and the mailer's breaker, so a wall-clock step is logged once.
    let clock: Arc<dyn Clock> = Arc::new(SteadyClock::new());
    let mailer = Mailer::with_clock(&config.mail, Arc::clone(&clock))?;
    let hostname = crate::host_name::this_machine();
    let active = Active::build(config, mailer, &clock).map_err(StartError::Directory)?;
    let shared = Arc::new(Shared::new(
        active,
        store,
        clock,
        Arc::new(SystemAccounts),
        hostname,
    ));

    let listener = bind(&daemon.socket)?;
    let relay_listener = match &shared.active().config.relay_listener {
        Some(config) => Some(
            crate::relay_listener::RelayListener::bind(config)
                .await
                .map_err(StartError::Relay)?,
        ),
        None => None,
    };
    let io_error = |what: &str| {
        let what = what.to_string();
        move |source| StartError::Io { what, source }
    };
    let mut hangup = signal(SignalKind::hangup()).map_err(io_error("installing SIGHUP"))?;
    let mut terminate = signal(SignalKind::terminate()).map_err(io_error("installing SIGTERM"))?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(io_error("installing SIGINT"))?;

    tracing::info!(
        "otpd {} listening on {}",
        env!("CARGO_PKG_VERSION"),
        escape_for_log(&daemon.socket.display().to_string())
    );
    notify("READY=1");

    let purger = tokio::spawn(purge_periodically(Arc::clone(&shared)));
    let audit_upkeep = tokio::spawn(settle_audit_periodically(Arc::clone(&shared)));
    let deliverer = tokio::spawn(crate::notices::deliver_forever(Arc::clone(&shared)));
    let textfile = tokio::spawn(crate::metrics_textfile::write_periodically(Arc::clone(
        &shared,
    )));
    let metrics_listener =
        shared.active().config.metrics.listen.map(|address| {
            tokio::spawn(crate::metrics_listener::serve(Arc::clone(&shared), address))
        });
    let relays = relay_listener.map(|listener| tokio::spawn(listener.serve(Arc::clone(&shared))));
    let reloader = {
        let shared = Arc::clone(&shared);
        let path = config_path.clone();
        tokio::spawn(async move {
            while hangup.recv().await.is_some() {
                reload(&shared, &path).await;
            }
        })
    };
    let shutdown = async {
        tokio::select! {
            _ = terminate.recv() => tracing::info!("SIGTERM received"),
            _ = interrupt.recv() => tracing::info!("SIGINT received"),
        }
        notify("STOPPING=1");
    };
    server::serve(listener, Arc::clone(&shared), shutdown).await;
    shared.active().mailer.close_idle().await;
    reloader.abort();
    purger.abort();
    audit_upkeep.abort();
    deliverer.abort();
    textfile.abort();
    if let Some(listener) = metrics_listener {
        listener.abort();
    }
    if let Some(relays) = relays {
        relays.abort();
    }
    // On a blocking thread like every store call: PostgreSQL's store blocks on a runtime of its
    // own, which cannot start inside this one (it panicked here, and otpd exited with an error).
    let last = Arc::clone(&shared);
    match tokio::task::spawn_blocking(move || crate::audit::settle(&last, true)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!(
            "cannot write the last audit summaries: {}",
            escape_for_log(&e.to_string())
        ),
        Err(e) => tracing::error!("the last audit summaries' task failed: {e}"),
    }
    if let Err(e) = std::fs::remove_file(&daemon.socket) {
        tracing::warn!(
            "cannot remove {}: {}",
            escape_for_log(&daemon.socket.display().to_string()),
            escape_for_log(&e.to_string())
        );
    }
    tracing::info!("otpd stopped");
    Ok(())
}

fn bind(socket: &Path) -> Result<UnixListener, StartError> {
    files::prepare_socket_dir(socket)?;
    files::clear_stale_socket(socket)?;
    let listener = UnixListener::bind(socket).map_err(|source| StartError::Io {
        what: format!("binding {}", socket.display()),
        source,
    })?;
    files::open_socket_mode(socket)?;
    Ok(listener)
}

/// Loads the config again; on any error the running config stays.
///
/// Reading the config and its named files and building the mailer run on a blocking thread:
/// otpd serves every login on one thread, and a slow disk or a file that misbehaves must not
/// stall them. Only the finished result is swapped in.
async fn reload(shared: &Shared, path: &Path) {
    notify("RELOADING=1");
    let owned = path.to_path_buf();
    let clock = Arc::clone(&shared.clock);
    let built = tokio::task::spawn_blocking(move || build_active(&owned, clock)).await;
    let result = built.unwrap_or_else(|e| Err(format!("the reload task failed: {e}")));
    match result {
        Ok(active) if shared.active().config.relay.is_some() != active.config.relay.is_some() => {
            // A relay keeps no store to decide logins on, and a main otpd's store is not to be
            // dropped by a reload: switching needs a restart.
            tracing::error!(
                "reload refused, the previous config stays in force: adding or removing [relay] needs a restart"
            );
        }
        Ok(active) => {
            let old = shared.active();
            if old.config.relay_listener != active.config.relay_listener {
                tracing::warn!("[relay_listener] changes take effect only after a restart");
            }
            if old.config.daemon.socket != active.config.daemon.socket
                || old.config.daemon.state_dir != active.config.daemon.state_dir
                || old.config.store != active.config.store
            {
                tracing::warn!(
                    "socket, state_dir and [store] changes take effect only after a restart"
                );
            }
            shared.replace_active(active);
            tracing::info!("reloaded {}", escape_for_log(&path.display().to_string()));
        }
        Err(e) => tracing::error!(
            "reload refused, the previous config stays in force: {}",
            escape_for_log(&e)
        ),
    }
    notify("READY=1");
}

/// The config at `path`, its named files checked, and a mailer built from it.
fn build_active(path: &Path, clock: Arc<dyn Clock>) -> Result<Active, String> {
    let config = Config::load_with_files(path).map_err(|e| e.to_string())?;
    let mailer = Mailer::with_clock(&config.mail, Arc::clone(&clock)).map_err(|e| e.to_string())?;
    Active::build(config, mailer, &clock)
}

/// How often the audit upkeep runs: the summaries of local callers' rate windows that ended,
/// and the table kept under its cap. Rows themselves are written when they happen.
const AUDIT_UPKEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// Runs the audit upkeep (`audit::settle`) every [`AUDIT_UPKEEP_INTERVAL`], off the login path.
async fn settle_audit_periodically(shared: Arc<Shared>) {
    loop {
        tokio::time::sleep(AUDIT_UPKEEP_INTERVAL).await;
        let shared = Arc::clone(&shared);
        match tokio::task::spawn_blocking(move || crate::audit::settle(&shared, false)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(
                "cannot keep the audit table under its cap: {}",
                escape_for_log(&e.to_string())
            ),
            Err(e) => tracing::error!("audit upkeep task failed: {e}"),
        }
    }
}

/// Deletes expired codes, old send records and old audit rows, on the configured schedule.
async fn purge_periodically(shared: Arc<Shared>) {
    loop {
        let interval = shared.active().config.daemon.purge_interval;
        tokio::time::sleep(interval).await;
        let shared = Arc::clone(&shared);
        let result = tokio::task::spawn_blocking(move || {
            let retention = shared.active().config.daemon.audit_retention.as_secs();
            let now = shared.clock.now();
            let retention = i64::try_from(retention).unwrap_or(i64::MAX);
            let mut store = shared.store();
            crate::breakglass::expire_all(&mut store, now);
            store.purge(now, retention)
        })
        .await;
        match result {
            Ok(Ok(counts)) => tracing::info!("purged {counts:?}"),
            Ok(Err(e)) => tracing::error!("purge failed: {}", escape_for_log(&e.to_string())),
            Err(e) => tracing::error!("purge task failed: {e}"),
        }
    }
}

fn notify(state: &str) {
    if let Err(e) = systemd::notify(state) {
        tracing::warn!("sd_notify {state}: {e}");
    }
}

/// Makes the process non-dumpable before it reads any secret: a crash writes no core file, and
/// no other process of the same user may ptrace it or read its memory through /proc. otpd
/// wipes its own copies of codes and passwords, but libraries keep copies it cannot reach (lettre
/// builds a code mail through several buffers; SQLite and tokio copy what passes through them),
/// and freed memory keeps them until it is reused. The unit also sets `LimitCORE=0`.
pub fn forbid_core_dumps() {
    if let Err(e) = nix::sys::prctl::set_dumpable(false) {
        tracing::warn!(
            "cannot make otpd non-dumpable (a crash may write its memory to a core file): {e}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn after_forbidding_core_dumps_the_process_is_not_dumpable() {
        forbid_core_dumps();
        assert_eq!(nix::sys::prctl::get_dumpable(), Ok(false));
    }
}

#[cfg(test)]
mod postgres_tests {
    use super::*;
    use common::config::PgHost;
    use std::os::unix::fs::PermissionsExt;
    use std::time::Duration;
    use tokio_postgres::config::{Host, TargetSessionAttrs};

    fn pg(password_file: Option<PathBuf>) -> PostgresConfig {
        PostgresConfig {
            hosts: vec![
                PgHost {
                    host: "db1.example".into(),
                    port: 5432,
                },
                PgHost {
                    host: "10.0.0.2".into(),
                    port: 6432,
                },
            ],
            dbname: "otp".into(),
            user: "otpd".into(),
            password_file,
            tls: PgTls::VerifyFull,
            ca_file: None,
            client_cert: None,
            pool_size: 3,
            connect_timeout: Duration::from_secs(2),
            statement_timeout: Duration::from_secs(4),
            behind_pooler: false,
            pooler_keeps_prepared_statements: false,
        }
    }

    fn password_file(mode: u32) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pg.password");
        std::fs::write(&path, "s3cret\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        (dir, path)
    }

    #[test]
    fn every_host_and_port_is_tried_for_the_one_that_takes_writes() {
        let (_dir, path) = password_file(0o600);
        let config = postgres_connection(&pg(Some(path))).unwrap();
        assert_eq!(
            config.get_hosts(),
            &[
                Host::Tcp("db1.example".into()),
                Host::Tcp("10.0.0.2".into())
            ]
        );
        assert_eq!(config.get_ports(), &[5432, 6432]);
        assert_eq!(
            config.get_target_session_attrs(),
            TargetSessionAttrs::ReadWrite
        );
        assert_eq!(config.get_dbname(), Some("otp"));
        assert_eq!(config.get_user(), Some("otpd"));
        assert_eq!(config.get_password(), Some(&b"s3cret"[..]));
        assert_eq!(config.get_connect_timeout(), Some(&Duration::from_secs(2)));
    }

    #[test]
    fn a_password_file_others_can_read_is_refused_by_name() {
        let (_dir, path) = password_file(0o644);
        let error = postgres_connection(&pg(Some(path.clone())))
            .unwrap_err()
            .to_string();
        assert!(error.contains("password_file"), "{error}");
        assert!(error.contains(&path.display().to_string()), "{error}");
    }

    #[test]
    fn without_a_password_file_no_password_is_sent() {
        let config = postgres_connection(&pg(None)).unwrap();
        assert_eq!(config.get_password(), None);
    }

    #[test]
    fn an_unreachable_database_at_start_is_refused_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let key = ServerKey::load_or_create(dir.path()).unwrap();
        let mut config = pg(None);
        // A loopback port nothing listens on (bound and closed again).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        config.hosts = vec![PgHost {
            host: "127.0.0.1".into(),
            port,
        }];
        config.tls = PgTls::None;
        config.connect_timeout = Duration::from_secs(1);
        config.statement_timeout = Duration::from_secs(1);
        let error = open_postgres(&config, key, config.statement_timeout)
            .unwrap_err()
            .to_string();
        assert!(error.contains("PostgreSQL database otp"), "{error}");
        assert!(error.contains(&format!("127.0.0.1:{port}")), "{error}");
    }
}
