//! The main otpd's side of relay mode (`[relay_listener]`): DMZ hosts connect over mutual TLS,
//! each with one request, which is answered like a request on the local socket, as coming from
//! that host's root (when the DMZ believed the caller's origin) or from a local user of that host,
//! never from this machine's root or one of its users.
//!
//! Who may relay: rustls's client verifier requires a certificate that chains to `client_ca` and
//! is within its dates; then it must be one of `[[relay_listener.clients]]` (SHA-256 of the DER),
//! and the host name the request claims must be the one listed with it. Admin requests are
//! refused. Every refusal is logged with its reason (at most [`REFUSALS_LOGGED_PER_MINUTE`] a
//! minute one by one, the rest counted) and answered with a short error where the connection
//! got that far, which the DMZ turns into an "unavailable" login.
//!
//! Fair share, as on the local socket: a source address has at most `max_connections_per_client`
//! handshakes under way, a listed client at most as many connections open, and all relays
//! together at most [`MAX_RELAY_CONNECTIONS`]; the handshake, the request and the answer each
//! have `timeout_seconds`. Relays have their own counts, apart from the local socket's, so a slow
//! or hostile DMZ host holds up neither the other DMZ hosts nor local logins.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use common::config::RelayListenerConfig;
use common::text::escape_for_log;
use common::wire::{Request, Response};
use common::wire_relay::{RelayVerdict, RelayedRequest};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use crate::caller::{Caller, Origin, RelayHost, Relayed};
use crate::dispatch;
use crate::relay::{self, ADMIN_NOT_RELAYED, ListenerTls};
use crate::state::Shared;

/// The most relay connections open at once, all DMZ hosts together: a bound on memory and file
/// descriptors, far above what `max_connections_per_client` lets the listed hosts hold.
pub const MAX_RELAY_CONNECTIONS: usize = 1024;

/// The relay listener, bound and with its TLS set up, not yet serving.
#[derive(Debug)]
pub struct RelayListener {
    tcp: TcpListener,
    tls: ListenerTls,
    per_client: usize,
    timeout: Duration,
}

impl RelayListener {
    /// Reads the certificates and key of `config` and binds its address.
    pub async fn bind(config: &RelayListenerConfig) -> Result<RelayListener, String> {
        let tls = ListenerTls::new(config)?;
        let tcp = TcpListener::bind(config.listen)
            .await
            .map_err(|e| format!("[relay_listener] cannot listen on {}: {e}", config.listen))?;
        Ok(RelayListener {
            tcp,
            tls,
            per_client: config.max_connections_per_client,
            timeout: config.timeout,
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.tcp.local_addr()
    }

    /// Serves relayed requests for as long as the task runs (otpd aborts it at shutdown).
    pub async fn serve(self, shared: Arc<Shared>) {
        let counts = Counts::default();
        let all = Arc::new(Semaphore::new(MAX_RELAY_CONNECTIONS));
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::clone(&self.tls.config));
        let listener = Arc::new(Served {
            tls: self.tls,
            per_client: self.per_client,
            timeout: self.timeout,
            refusals: Mutex::new(RefusalWindow::new()),
        });
        loop {
            let (stream, peer) = match self.tcp.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!("relay accept failed: {}", escape_for_log(&e.to_string()));
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Ok(permit) = Arc::clone(&all).try_acquire_owned() else {
                // Closed at once: the DMZ sees no answer, its login is unavailable.
                continue;
            };
            let Some(handshaking) = counts.take(Key::Source(peer.ip()), listener.per_client) else {
                continue;
            };
            let (shared, acceptor, listener, counts) = (
                Arc::clone(&shared),
                acceptor.clone(),
                Arc::clone(&listener),
                counts.clone(),
            );
            tokio::spawn(async move {
                let _permit = permit;
                listener
                    .connection(stream, peer, handshaking, acceptor, counts, shared)
                    .await;
            });
        }
    }
}

/// What each connection's task needs of the listener.
struct Served {
    tls: ListenerTls,
    per_client: usize,
    timeout: Duration,
    refusals: Mutex<RefusalWindow>,
}

impl Served {
    /// Logs a refused relay connection from `source`, and why (within the minute's share).
    fn refused(&self, source: IpAddr, why: &str) {
        let (log, ended) = match self.refusals.lock() {
            Ok(mut window) => window.admit(tokio::time::Instant::now()),
            Err(poisoned) => poisoned.into_inner().admit(tokio::time::Instant::now()),
        };
        if let Some(count) = ended {
            tracing::warn!(
                "{count} more relay connection(s) were refused in the last minute (not logged one by one)"
            );
        }
        if log {
            tracing::warn!(
                "relay connection from {source} refused: {}",
                escape_for_log(why)
            );
        }
    }

    /// One relay connection: handshake, who it is, its one request, the answer.
    async fn connection(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
        handshaking: Slot,
        acceptor: tokio_rustls::TlsAcceptor,
        counts: Counts,
        shared: Arc<Shared>,
    ) {
        let source = peer.ip();
        let shaken = tokio::time::timeout(self.timeout, acceptor.accept(stream)).await;
        drop(handshaking);
        let mut tls = match shaken {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => {
                self.refused(source, &format!("TLS handshake failed: {e}"));
                return;
            }
            Err(_) => {
                self.refused(
                    source,
                    &format!("TLS handshake not done within {} s", self.timeout.as_secs()),
                );
                return;
            }
        };
        let der = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|chain| chain.first())
            .map(|c| c.as_ref().to_vec());
        let Some(der) = der else {
            // The verifier requires one; kept as a refusal, never a panic.
            self.refused(source, "no client certificate");
            return;
        };
        let host = match self.tls.host_of(&der) {
            Ok(host) => host.to_string(),
            Err(fingerprint) => {
                self.refused(
                    source,
                    &format!(
                        "its client certificate (SHA-256 {fingerprint}) is not listed in [[relay_listener.clients]]"
                    ),
                );
                let reply = "this client certificate is not allowed to relay";
                self.answer(&mut tls, &error(reply)).await;
                return;
            }
        };
        let Some(_open) = counts.take(Key::Client(host.clone()), self.per_client) else {
            self.refused(
                source,
                &format!(
                    "relay {host} holds max_connections_per_client ({}) already",
                    self.per_client
                ),
            );
            self.answer(&mut tls, &error("too many connections from this relay"))
                .await;
            return;
        };
        let read =
            tokio::time::timeout(self.timeout, relay::read_frame::<RelayedRequest>(&mut tls));
        let envelope = match read.await {
            Ok(Ok(Some(envelope))) => envelope,
            Ok(Ok(None)) => return,
            Ok(Err(e)) => {
                self.refused(source, &format!("relay {host}: bad request: {e}"));
                self.answer(&mut tls, &error(&format!("bad request: {e}")))
                    .await;
                return;
            }
            Err(_) => {
                self.refused(
                    source,
                    &format!(
                        "relay {host}: request not complete within {} s",
                        self.timeout.as_secs()
                    ),
                );
                return;
            }
        };
        let response = match judge(&host, envelope) {
            Ok((caller, request)) => dispatch::handle(&shared, caller, request).await,
            Err(why) => {
                self.refused(source, &format!("relay {host}: {}", why.log));
                error(why.reply)
            }
        };
        self.answer(&mut tls, &response).await;
    }

    /// Writes `response` within the deadline and closes.
    async fn answer(
        &self,
        tls: &mut tokio_rustls::server::TlsStream<TcpStream>,
        response: &Response,
    ) {
        if let Err(e) = crate::framing::write_frame(tls, response, self.timeout).await {
            tracing::warn!(
                "relay answer not delivered: {}",
                escape_for_log(&e.to_string())
            );
            return;
        }
        let _ = tokio::time::timeout(Duration::from_millis(500), tls.shutdown()).await;
    }
}

/// Why a relayed request was refused: what the log says, and the short reply.
#[derive(Debug)]
struct Refused {
    log: String,
    reply: &'static str,
}

/// The caller and request a relayed `envelope` from the client listed for `host` stands for,
/// or why it is refused: another host name claimed, or an admin request.
fn judge(host: &str, envelope: RelayedRequest) -> Result<(Caller, Request), Refused> {
    if !envelope.host.eq_ignore_ascii_case(host) {
        return Err(Refused {
            log: format!(
                "claimed to speak for host {}, but its certificate is listed for {host}",
                envelope.host
            ),
            reply: "this relay may not speak for that host",
        });
    }
    if matches!(envelope.request, Request::Admin { .. }) {
        return Err(Refused {
            log: "sent an admin request, which is not relayed".into(),
            reply: ADMIN_NOT_RELAYED,
        });
    }
    let Some(host) = RelayHost::new(host) else {
        return Err(Refused {
            log: "its host name is too long".into(),
            reply: "this relay may not speak for that host",
        });
    };
    let origin = match envelope.verdict {
        RelayVerdict::Reported => Origin::Reported,
        RelayVerdict::Local => Origin::Local,
    };
    let caller = Caller {
        uid: envelope.caller_uid,
        // Not known here, and never used for a login request.
        gid: u32::MAX,
        relay: Some(Relayed { host, origin }),
    };
    Ok((caller, envelope.request))
}

fn error(message: &str) -> Response {
    Response::Error {
        message: message.to_string(),
    }
}

/// How many refused relay connections are logged one by one per minute; past that they are
/// only counted, and the count is logged when the next minute's first refusal comes. The
/// listener may face a network where anyone can connect: a scanner must not flood the log.
const REFUSALS_LOGGED_PER_MINUTE: u32 = 30;

/// The refusals of the current minute: when it began, how many were logged, how many not.
#[derive(Debug)]
struct RefusalWindow {
    started: tokio::time::Instant,
    logged: u32,
    unlogged: u32,
}

impl RefusalWindow {
    fn new() -> RefusalWindow {
        RefusalWindow {
            started: tokio::time::Instant::now(),
            logged: 0,
            unlogged: 0,
        }
    }

    /// Whether a refusal at `now` is logged; when a new minute starts, how many of the last one
    /// were not.
    fn admit(&mut self, now: tokio::time::Instant) -> (bool, Option<u32>) {
        let mut ended = None;
        if now.duration_since(self.started) >= Duration::from_secs(60) {
            ended = Some(self.unlogged).filter(|&n| n > 0);
            *self = RefusalWindow {
                started: now,
                logged: 0,
                unlogged: 0,
            };
        }
        if self.logged < REFUSALS_LOGGED_PER_MINUTE {
            self.logged += 1;
            (true, ended)
        } else {
            self.unlogged += 1;
            (false, ended)
        }
    }
}

/// What the counts are kept by: a source address (handshakes under way) or a listed client
/// (connections open).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Source(IpAddr),
    Client(String),
}

/// Open handshakes and connections by [`Key`]. Cheap to clone; every clone is the same.
#[derive(Debug, Clone, Default)]
struct Counts(Arc<Mutex<HashMap<Key, usize>>>);

/// One counted handshake or connection; given back when dropped.
#[derive(Debug)]
struct Slot {
    counts: Counts,
    key: Key,
}

impl Counts {
    /// A slot for `key` if it holds fewer than `cap`.
    fn take(&self, key: Key, cap: usize) -> Option<Slot> {
        let mut counts = self.lock();
        let held = counts.entry(key.clone()).or_insert(0);
        if *held >= cap {
            return None;
        }
        *held += 1;
        drop(counts);
        Some(Slot {
            counts: self.clone(),
            key,
        })
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Key, usize>> {
        // Only counters are inside; a panic elsewhere left them whole.
        match self.0.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.counts.lock();
        if let Some(held) = counts.get_mut(&self.key) {
            *held = held.saturating_sub(1);
            if *held == 0 {
                counts.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::wire::LoginContext;

    fn envelope(host: &str, request: Request) -> RelayedRequest {
        RelayedRequest {
            host: host.into(),
            verdict: RelayVerdict::Reported,
            caller_uid: 0,
            request,
        }
    }

    fn probe() -> Request {
        Request::Probe {
            login: LoginContext {
                user: "alice".into(),
                service: "sshd".into(),
                rhost: Some("192.0.2.7".into()),
                tty: None,
                protocol: None,
            },
        }
    }

    #[test]
    fn a_relay_claiming_another_host_than_its_certificates_is_refused() {
        let refused = judge("dmz1.example", envelope("dmz2.example", probe())).unwrap_err();
        assert!(refused.log.contains("dmz2.example"), "{refused:?}");
        let (caller, _) = judge("dmz1.example", envelope("DMZ1.example", probe())).unwrap();
        let relayed = caller.relay.unwrap();
        assert_eq!(relayed.host.as_str(), "dmz1.example");
        assert_eq!(relayed.origin, Origin::Reported);
    }

    #[test]
    fn a_relayed_admin_request_is_refused_even_from_the_relays_root() {
        let admin = Request::Admin {
            request: common::wire_admin::AdminRequest::Status,
        };
        let refused = judge("dmz1.example", envelope("dmz1.example", admin)).unwrap_err();
        assert_eq!(refused.reply, ADMIN_NOT_RELAYED);
    }

    #[test]
    fn refusals_past_the_minutes_share_are_counted_and_the_count_logged_next_minute() {
        let start = tokio::time::Instant::now();
        let mut window = RefusalWindow {
            started: start,
            logged: 0,
            unlogged: 0,
        };
        for _ in 0..REFUSALS_LOGGED_PER_MINUTE {
            assert_eq!(window.admit(start), (true, None));
        }
        assert_eq!(window.admit(start), (false, None));
        assert_eq!(window.admit(start), (false, None));
        let next = start + Duration::from_secs(60);
        assert_eq!(window.admit(next), (true, Some(2)));
        let after = next + Duration::from_secs(60);
        assert_eq!(window.admit(after), (true, None), "nothing unlogged");
    }

    #[test]
    fn a_key_holds_at_most_its_cap_and_gets_its_place_back() {
        let counts = Counts::default();
        let key = || Key::Client("dmz1.example".into());
        let first = counts.take(key(), 2).unwrap();
        let _second = counts.take(key(), 2).unwrap();
        assert!(counts.take(key(), 2).is_none());
        assert!(counts.take(Key::Client("dmz2.example".into()), 2).is_some());
        drop(first);
        assert!(counts.take(key(), 2).is_some());
    }
}
