//! The TLS set-ups of relay mode: the DMZ's client (trusting only `[relay] ca_file`, showing its
//! client certificate) and the main otpd's server (requiring a client certificate that chains to
//! `client_ca`, then one of the listed ones, matched by the SHA-256 of its DER).
//!
//! rustls's verifiers check chains, names, key usage and validity dates; nothing here parses
//! certificates by hand.

use std::path::Path;
use std::sync::Arc;

use common::config::admin_file::{self, AdminFileKind};
use common::config::{RelayConfig, RelayListenerConfig};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};

use crate::mail::secret_file;

/// The SHA-256 of a certificate's DER: how a listed client certificate is recognised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    /// The fingerprint of `der`.
    pub fn of(der: &[u8]) -> Fingerprint {
        Fingerprint(Sha256::digest(der).into())
    }
}

impl std::fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

/// The PEM certificates in `path` (a public file, checked like every CA file): at least one.
fn certificates(key: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let show = path.display();
    let pem = admin_file::read(path, AdminFileKind::CaBundle).map_err(|e| format!("{key} {e}"))?;
    let certificates = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{key} {show}: {e}"))?;
    if certificates.is_empty() {
        return Err(format!(
            "{key} {show} holds no PEM certificate (-----BEGIN CERTIFICATE-----)"
        ));
    }
    Ok(certificates)
}

/// The private key in `path`, a private file (owner only, like the mail password file).
fn private_key(key: &str, path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let pem = secret_file::read_private(path).map_err(|e| format!("{key} {e}"))?;
    PrivateKeyDer::from_pem_slice(pem.expose().as_bytes()).map_err(|e| {
        format!(
            "{key} {}: no usable private key in PEM: {e}",
            path.display()
        )
    })
}

/// Trust anchors from `path`.
fn roots(key: &str, path: &Path) -> Result<rustls::RootCertStore, String> {
    let mut roots = rustls::RootCertStore::empty();
    for certificate in certificates(key, path)? {
        roots
            .add(certificate)
            .map_err(|e| format!("{key} {}: {e}", path.display()))?;
    }
    Ok(roots)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The DMZ's TLS client: trusts `ca_file` only, verifies the main otpd's certificate for
/// `server_name`, and authenticates with `client_cert` and `client_key`.
pub(super) fn client_config(relay: &RelayConfig) -> Result<rustls::ClientConfig, String> {
    let roots = roots("[relay] ca_file", &relay.ca_file)?;
    let chain = certificates("[relay] client_cert", &relay.client_cert)?;
    let key = private_key("[relay] client_key", &relay.client_key)?;
    rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| format!("cannot set up TLS: {e}"))?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(|e| format!("[relay] client_cert and client_key: {e}"))
}

/// The main otpd's TLS server for relays, and the clients it lets in.
#[derive(Debug, Clone)]
pub struct ListenerTls {
    /// The server config: a client certificate chaining to `client_ca` is required.
    pub config: Arc<rustls::ServerConfig>,
    /// The listed certificates' fingerprints and the host each may speak for.
    pub clients: Vec<(Fingerprint, String)>,
}

impl ListenerTls {
    /// Reads `cert`, `key`, `client_ca` and every listed client certificate.
    pub fn new(listener: &RelayListenerConfig) -> Result<ListenerTls, String> {
        let roots = roots("[relay_listener] client_ca", &listener.client_ca)?;
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider(),
        )
        .build()
        .map_err(|e| format!("[relay_listener] client_ca: {e}"))?;
        let chain = certificates("[relay_listener] cert", &listener.cert)?;
        let key = private_key("[relay_listener] key", &listener.key)?;
        let config = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| format!("cannot set up TLS: {e}"))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)
            .map_err(|e| format!("[relay_listener] cert and key: {e}"))?;
        let clients = listener
            .clients
            .iter()
            .map(|client| {
                // The first certificate of the file is the client's own (a chain may follow).
                let own = certificates(
                    "[[relay_listener.clients]] certificate",
                    &client.certificate,
                )?;
                let first = own.first().map(|c| Fingerprint::of(c.as_ref()));
                first
                    .map(|fp| (fp, client.host.clone()))
                    .ok_or_else(|| format!("{} holds no certificate", client.certificate.display()))
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(ListenerTls {
            config: Arc::new(config),
            clients,
        })
    }

    /// The host the certificate `der` may speak for, if it is listed.
    pub fn host_of(&self, der: &[u8]) -> Result<&str, Fingerprint> {
        let fingerprint = Fingerprint::of(der);
        self.clients
            .iter()
            .find(|(listed, _)| *listed == fingerprint)
            .map(|(_, host)| host.as_str())
            .ok_or(fingerprint)
    }
}

/// A client config for tests that never reach a handshake.
#[cfg(test)]
pub(super) fn test_client() -> rustls::ClientConfig {
    rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fingerprint_is_the_sha256_of_the_der_in_hex() {
        assert_eq!(
            Fingerprint::of(b"").to_string(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
