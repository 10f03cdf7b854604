//! Relay mode's transport: a DMZ otpd sends each login request to a main otpd over mutual TLS
//! ([`Upstream`]), and the main otpd's listener (`crate::relay_listener`) reads them with the
//! same frames and deadlines. Both ends are rustls (through tokio-rustls) with ring, like every
//! other TLS connection otpd makes; the trust is only the CA files the config names, never the
//! system store.
//!
//! A relay connection carries one request, like a connection to the local socket: connect,
//! handshake, one [`RelayedRequest`] frame, one [`Response`] frame, close. Every step has a
//! deadline, so a main otpd that is down, black-holed or slow makes the login "unavailable"
//! (fail closed) before the module's own deadline.

mod tls;

use std::sync::Arc;
use std::time::Duration;

use common::config::RelayConfig;
use common::frame::{self, FrameError, HEADER_LEN};
use common::wire::Response;
use common::wire_relay::RelayedRequest;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use zeroize::Zeroizing;

pub use self::tls::{Fingerprint, ListenerTls};

/// The answer a relay gives to an admin request, and the main otpd to one that arrives relayed.
pub const ADMIN_NOT_RELAYED: &str = "admin requests are not relayed; run otpctl on the main host";

/// The store of a relay (DMZ) host: in memory, keyed by a random key that never leaves it, so
/// the state directory gets no database and no server key.
pub fn stateless_store() -> Result<crate::store::SqliteStore, String> {
    let mut bytes = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
    let key = crate::server_key::ServerKey::from_bytes(bytes);
    zeroize::Zeroize::zeroize(&mut bytes);
    crate::store::SqliteStore::in_memory(key).map_err(|e| e.to_string())
}

/// Why a relayed exchange failed. Each is a reason for the log; the login is "unavailable".
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// No TCP connection within the deadline, or it was refused.
    #[error("cannot connect to {upstream}: {reason}")]
    Connect {
        /// `HOST:PORT`.
        upstream: String,
        /// Why.
        reason: String,
    },
    /// The TLS handshake failed (an untrusted or wrong certificate, ours refused) or was late.
    #[error("TLS handshake with {upstream} failed: {reason}")]
    Handshake {
        /// `HOST:PORT`.
        upstream: String,
        /// Why.
        reason: String,
    },
    /// Sending the request or reading the answer failed or was late.
    #[error("exchange with {upstream} failed: {reason}")]
    Exchange {
        /// `HOST:PORT`.
        upstream: String,
        /// Why.
        reason: String,
    },
}

/// A DMZ otpd's way to the main otpd: its TLS client (the CA, the client certificate and key,
/// read when the config was loaded) and the deadlines.
pub struct Upstream {
    tls: tokio_rustls::TlsConnector,
    server_name: rustls::pki_types::ServerName<'static>,
    host: String,
    port: u16,
    /// The host name this relay speaks for, as put in every envelope.
    pub host_name: String,
    connect_timeout: Duration,
    timeout: Duration,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("host_name", &self.host_name)
            .finish_non_exhaustive()
    }
}

impl Upstream {
    /// The upstream of `[relay]`, its files read now (the key checked as a private file). A
    /// relay speaks for `host_name`, else for `machine`, this machine's name.
    pub fn new(relay: &RelayConfig, machine: &str) -> Result<Upstream, String> {
        let config = tls::client_config(relay)?;
        let server_name = rustls::pki_types::ServerName::try_from(relay.server_name.clone())
            .map_err(|e| format!("[relay] server_name {:?}: {e}", relay.server_name))?;
        Ok(Upstream {
            tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
            server_name,
            host: relay.upstream_host.clone(),
            port: relay.upstream_port,
            host_name: relay
                .host_name
                .clone()
                .unwrap_or_else(|| machine.to_ascii_lowercase()),
            connect_timeout: relay.connect_timeout,
            timeout: relay.timeout,
        })
    }

    /// `HOST:PORT`, for messages.
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// Sends `request` to the main otpd and returns its answer, all within the deadlines:
    /// the connection and handshake within `connect_timeout_seconds`, everything within
    /// `timeout_seconds`.
    pub async fn forward(&self, request: &RelayedRequest) -> Result<Response, RelayError> {
        let upstream = self.address();
        let started = Instant::now();
        let connect_by = started + self.connect_timeout;
        let done_by = started + self.timeout;
        let tcp = tokio::time::timeout_at(
            connect_by,
            TcpStream::connect((self.host.as_str(), self.port)),
        )
        .await
        .map_err(|_| late(self.connect_timeout))
        .and_then(|connected| connected.map_err(|e| e.to_string()))
        .map_err(|reason| RelayError::Connect {
            upstream: upstream.clone(),
            reason,
        })?;
        let _ = tcp.set_nodelay(true);
        let mut stream =
            tokio::time::timeout_at(connect_by, self.tls.connect(self.server_name.clone(), tcp))
                .await
                .map_err(|_| late(self.connect_timeout))
                .and_then(|shaken| shaken.map_err(|e| e.to_string()))
                .map_err(|reason| RelayError::Handshake {
                    upstream: upstream.clone(),
                    reason,
                })?;
        let exchange = async {
            let bytes = frame::encode(request).map_err(|e| e.to_string())?;
            stream.write_all(&bytes).await.map_err(|e| e.to_string())?;
            stream.flush().await.map_err(|e| e.to_string())?;
            match read_frame::<Response>(&mut stream).await {
                Ok(Some(response)) => Ok(response),
                Ok(None) => Err("the main otpd closed the connection without an answer (see its log: a refused relay is told why there)".to_string()),
                Err(e) => Err(e.to_string()),
            }
        };
        let answered = tokio::time::timeout_at(done_by, exchange)
            .await
            .map_err(|_| late(self.timeout))
            .and_then(|answered| answered);
        // A polite close; nothing waits for it.
        let _ = tokio::time::timeout(Duration::from_millis(100), stream.shutdown()).await;
        answered.map_err(|reason| RelayError::Exchange { upstream, reason })
    }
}

fn late(limit: Duration) -> String {
    format!("no answer within {} s", limit.as_secs())
}

/// Reads one frame from `stream`: `Ok(None)` when it closed before sending a byte. The length
/// is checked before the body is read (a frame is at most [`frame::MAX_PAYLOAD`]), and the
/// buffer is wiped when dropped, since a request may carry a code. The caller bounds the time.
pub async fn read_frame<T: DeserializeOwned>(
    stream: &mut (impl AsyncRead + Unpin),
) -> Result<Option<T>, FrameError> {
    let mut header = [0u8; HEADER_LEN];
    let mut got = 0;
    while got < HEADER_LEN {
        let read = stream
            .read(&mut header[got..])
            .await
            .map_err(FrameError::Io)?;
        if read == 0 {
            return if got == 0 {
                Ok(None)
            } else {
                Err(FrameError::Closed)
            };
        }
        got += read;
    }
    let length = frame::parse_header(&header)?;
    let mut body = Zeroizing::new(vec![0u8; length]);
    stream.read_exact(&mut body).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            FrameError::Closed
        } else {
            FrameError::Io(e)
        }
    })?;
    frame::decode_payload(&body).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framing::write_frame;
    use common::wire::Request;

    #[tokio::test]
    async fn a_frame_is_read_whole_and_a_closed_stream_is_none() {
        let (mut a, mut b) = tokio::io::duplex(64 * 1024);
        write_frame(&mut a, &Request::Ping, Duration::from_secs(1))
            .await
            .unwrap();
        drop(a);
        let read: Option<Request> = read_frame(&mut b).await.unwrap();
        assert!(matches!(read, Some(Request::Ping)));
        let read: Option<Request> = read_frame(&mut b).await.unwrap();
        assert!(read.is_none());
    }

    #[tokio::test]
    async fn an_oversized_frame_is_refused_before_its_body_is_read() {
        let (mut a, mut b) = tokio::io::duplex(64);
        let mut header = frame::encode(&Request::Ping).unwrap()[..HEADER_LEN].to_vec();
        let too_long = u32::try_from(frame::MAX_PAYLOAD + 1).unwrap();
        header[4..8].copy_from_slice(&too_long.to_be_bytes());
        a.write_all(&header).await.unwrap();
        let read = read_frame::<Request>(&mut b).await;
        assert!(read.is_err(), "{read:?}");
    }

    #[tokio::test]
    async fn a_main_otpd_that_is_down_is_reported_as_a_connect_error_at_once() {
        let port = crate::test_support::closed_port();
        let relay = RelayConfig {
            upstream_host: "127.0.0.1".into(),
            upstream_port: port,
            server_name: "127.0.0.1".into(),
            host_name: Some("dmz1.example".into()),
            client_cert: "/nonexistent".into(),
            client_key: "/nonexistent".into(),
            ca_file: "/nonexistent".into(),
            connect_timeout: Duration::from_secs(3),
            timeout: Duration::from_secs(5),
        };
        // No files to read: the TLS client is built without them for this test.
        let upstream = Upstream {
            tls: tokio_rustls::TlsConnector::from(Arc::new(tls::test_client())),
            server_name: rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap(),
            host: relay.upstream_host.clone(),
            port,
            host_name: "dmz1.example".into(),
            connect_timeout: relay.connect_timeout,
            timeout: relay.timeout,
        };
        let envelope = RelayedRequest {
            host: "dmz1.example".into(),
            verdict: common::wire_relay::RelayVerdict::Reported,
            caller_uid: 0,
            request: Request::Ping,
        };
        let started = std::time::Instant::now();
        let e = upstream.forward(&envelope).await.unwrap_err();
        assert!(matches!(e, RelayError::Connect { .. }), "{e}");
        assert!(started.elapsed() < Duration::from_secs(2));
    }
}
