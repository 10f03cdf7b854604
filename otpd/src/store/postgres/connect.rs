//! Where connections to PostgreSQL are made: the one place TLS will be added.
//!
//! Every connection carries the deadlines as session settings, so the server itself stops a
//! statement that runs past the deadline (an advisory lock waited for included) and ends a
//! session that sits in a transaction without a word, say an otpd host that hung or lost its
//! network mid-transaction: the locks it held do not keep other hosts' logins waiting.
//!
//! Behind a pooler in transaction mode (`[store] behind_pooler`, PgBouncer's
//! `pool_mode = transaction`) there is no session of otpd's own on the server: each
//! transaction may run on another server connection, and PgBouncer refuses the startup
//! option that carries session settings. There the deadlines go with every transaction
//! instead (`SET LOCAL`, in the batch of its `BEGIN`: no round trip more), and a statement
//! outside a transaction runs under the server's own `statement_timeout` for the role (and
//! PgBouncer's `query_timeout`), which the README asks the admin to set.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{
    ClientWrapper, Hook, HookError, Manager, ManagerConfig, Metrics, Pool, RecyclingMethod, Runtime,
};

use super::super::StoreError;
use super::PgOptions;

/// A bounded pool of connections made from `config` with `options`' deadlines. Nothing is
/// connected yet: the pool connects when a connection is first asked for, inside the store's
/// runtime, which then drives it.
///
/// With `tls`, every connection is TLS (PostgreSQL's `sslmode=require` is forced: a server that
/// declines TLS gets no connection), the certificate verified by `tls`'s roots and its name
/// against the host connected to (each host of the list in turn): libpq's `verify-full`.
/// Without, `NoTls` (the config allows that only when every host is loopback).
pub(super) fn connect(
    mut config: tokio_postgres::Config,
    options: &PgOptions,
    tls: Option<Arc<rustls::ClientConfig>>,
) -> Result<Pool, StoreError> {
    if !options.behind_pooler {
        let mut settings = config.get_options().unwrap_or_default().to_string();
        for (name, millis) in deadlines(options) {
            settings.push_str(&format!(" -c {name}={millis}"));
        }
        config.options(settings.trim());
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(options.connect_timeout);
    }
    if config.get_application_name().is_none() {
        config.application_name("otpd");
    }
    let manager_config = ManagerConfig {
        // A connection is handed out again only after its transaction ended cleanly (see
        // `unit`); one that did not is dropped, never recycled, so checking is enough.
        recycling_method: RecyclingMethod::Fast,
    };
    let manager = match tls {
        Some(tls) => {
            config.ssl_mode(tokio_postgres::config::SslMode::Require);
            Manager::from_config(
                config,
                tokio_postgres_rustls::MakeRustlsConnect::new((*tls).clone()),
                manager_config,
            )
        }
        None => Manager::from_config(config, tokio_postgres::NoTls, manager_config),
    };
    Pool::builder(manager)
        .max_size(options.pool_size.max(1))
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(options.deadline))
        .create_timeout(Some(options.connect_timeout))
        .recycle_timeout(Some(options.deadline))
        .pre_recycle(Hook::async_fn(closed_while_idle))
        .build()
        .map_err(|e| StoreError::Postgres(format!("connection pool: {e}")))
}

/// How recently a connection must have been handed out to be handed out again unchecked: a
/// connection in use moments ago is taken to be alive, as HikariCP's `aliveBypassWindowMs`
/// (also 500 ms) does. One the server closes within this window fails the operation that takes
/// it, as a close during the operation would: fail-closed, and the pool then drops it.
pub(super) const RECENTLY_USED: Duration = Duration::from_millis(500);

/// The pool's check before it hands out `client` again: unless it was handed out within
/// [`RECENTLY_USED`], its connection task is let run first (the first yield lets the runtime
/// poll its sockets, the second lets the tasks that found something run; the store's runtime
/// runs them only while an operation blocks on it). So a connection the server closed while it
/// sat idle (a restart, a failover, an admin's kill, `idle_session_timeout`) is seen closed and
/// replaced, not handed to an operation to fail on. The yields wake the runtime through its
/// event fd and make it poll again: paid on every operation, they were about a fifth of the
/// PostgreSQL otpd's system calls per login and 7% of its CPU per login (bench/README.md,
/// "The idle check in the pool").
fn closed_while_idle<'a>(
    client: &'a mut ClientWrapper,
    metrics: &'a Metrics,
) -> Pin<Box<dyn Future<Output = Result<(), HookError>> + Send + 'a>> {
    Box::pin(async move {
        if metrics.last_used() < RECENTLY_USED {
            return Ok(());
        }
        tokio::task::yield_now().await;
        tokio::task::yield_now().await;
        match client.is_closed() {
            true => Err(HookError::message("closed by the server while idle")),
            false => Ok(()),
        }
    })
}

/// The server's settings that hold otpd's statements to `options`' deadline, in milliseconds.
fn deadlines(options: &PgOptions) -> [(&'static str, u128); 3] {
    [
        ("statement_timeout", millis(options.deadline)),
        ("lock_timeout", millis(options.deadline)),
        (
            "idle_in_transaction_session_timeout",
            millis(options.deadline.saturating_mul(3)),
        ),
    ]
}

/// What starts each transaction: `begin`, and behind a pooler the deadlines for this
/// transaction alone (`set_config(…, true)` is `SET LOCAL`), in the same batch and as one
/// statement: each statement costs the server its own parse and answer.
pub(super) fn begin_with_deadlines(begin: &str, options: &PgOptions) -> String {
    if !options.behind_pooler {
        return begin.to_string();
    }
    let settings: Vec<String> = deadlines(options)
        .iter()
        .map(|(name, millis)| format!("set_config('{name}', '{millis}', true)"))
        .collect();
    format!("{begin}; SELECT {}", settings.join(", "))
}

/// At least one millisecond: PostgreSQL reads 0 as "no timeout".
fn millis(value: Duration) -> u128 {
    value.as_millis().max(1)
}
