//! What every connection shares: the active config, mailer and LDAP sources (swapped together on
//! reload), the
//! store, and the injected clock and account lookups.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use common::config::Config;

use crate::accounts::Accounts;
use crate::clock::Clock;
use crate::directory::LdapDirectory;
use crate::mail::Mailer;
use crate::metrics::Metrics;
use crate::relay::Upstream;
use crate::store::Store;
use crate::webhook::WebhookSender;

/// A config and the mailer built from it; replaced as one so they never disagree.
#[derive(Debug)]
pub struct Active {
    /// The validated config.
    pub config: Config,
    /// Mail transports built from `config.mail`.
    pub mailer: Mailer,
    /// The `[[directory.ldap]]` sources of `config`, in order, each with its cache (a reload
    /// starts them empty).
    pub ldap: Vec<LdapDirectory>,
    /// The `[[channels.webhook]]` of `config`, in order, their credentials and CA files read.
    pub webhooks: Vec<WebhookSender>,
    /// `[relay]`'s way to the main otpd, its certificate and key read: set on a DMZ host,
    /// where every login request is forwarded.
    pub relay: Option<Upstream>,
}

impl Active {
    /// `config` with its mailer, its LDAP sources and its webhook channels, whose password,
    /// credentials and CA files are read now.
    pub fn build(config: Config, mailer: Mailer, clock: &Arc<dyn Clock>) -> Result<Active, String> {
        let attributes: Vec<String> = config.policy_attributes().into_iter().collect();
        let ldap = config
            .directory
            .ldap
            .iter()
            .map(|source| LdapDirectory::new(source, attributes.clone(), Arc::clone(clock)))
            .collect::<Result<_, _>>()?;
        let webhooks = config
            .webhooks
            .iter()
            .map(|channel| WebhookSender::new(channel).map_err(|e| e.to_string()))
            .collect::<Result<_, _>>()?;
        let relay = match &config.relay {
            Some(relay) => Some(Upstream::new(relay, &crate::host_name::this_machine())?),
            None => None,
        };
        Ok(Active {
            config,
            mailer,
            ldap,
            webhooks,
            relay,
        })
    }
}

/// The daemon's shared state.
#[derive(Debug)]
pub struct Shared {
    active: RwLock<Arc<Active>>,
    store: Mutex<Box<dyn Store + Send>>,
    /// The time source.
    pub clock: Arc<dyn Clock>,
    /// Account lookups (NSS).
    pub accounts: Arc<dyn Accounts>,
    /// This machine's name, for mails.
    pub hostname: String,
    /// When this otpd started (unix seconds), for `otpctl status`.
    pub started_at: i64,
    /// When the config in force was loaded (unix seconds), for `otpctl status`.
    config_loaded_at: AtomicI64,
    /// Wakes the notice deliverer ([`crate::notices`]) when a notice was queued.
    pub notices_queued: Arc<tokio::sync::Notify>,
    /// The counters `otpctl metrics` prints; kept here, not in [`Active`], so a reload keeps
    /// them.
    pub metrics: Arc<Metrics>,
}

impl Shared {
    /// Bundles the daemon's state.
    pub fn new(
        active: Active,
        mut store: Box<dyn Store + Send>,
        clock: Arc<dyn Clock>,
        accounts: Arc<dyn Accounts>,
        hostname: String,
    ) -> Shared {
        let now = clock.now();
        let metrics = Arc::new(Metrics::default());
        store.count_audit_into(Arc::clone(&metrics));
        let notices_queued = Arc::new(tokio::sync::Notify::new());
        store.wake_on_notices(Arc::clone(&notices_queued));
        Shared {
            active: RwLock::new(Arc::new(active)),
            store: Mutex::new(store),
            clock,
            accounts,
            hostname,
            started_at: now,
            config_loaded_at: AtomicI64::new(now),
            notices_queued,
            metrics,
        }
    }

    /// When the config in force was loaded (unix seconds).
    pub fn config_loaded_at(&self) -> i64 {
        self.config_loaded_at.load(Ordering::Relaxed)
    }

    /// The config and mailer in force now. A request keeps the one it started with even if a
    /// reload happens meanwhile.
    pub fn active(&self) -> Arc<Active> {
        // A poisoned lock only means a panic elsewhere while holding it; the Arc inside is intact.
        match self.active.read() {
            Ok(guard) => Arc::clone(&guard),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Puts a new config and mailer in force.
    pub fn replace_active(&self, active: Active) {
        let mut guard = match self.active.write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        *guard = Arc::new(active);
        self.config_loaded_at
            .store(self.clock.now(), Ordering::Relaxed);
    }

    /// Exclusive access to the store. Blocks while another transaction holds it, so it is only
    /// taken on a blocking thread ([`crate::off_thread`]), never on the runtime's.
    pub fn store(&self) -> MutexGuard<'_, Box<dyn Store + Send>> {
        // Every store operation is a transaction, so a panic mid-way left nothing half-written.
        match self.store.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}
