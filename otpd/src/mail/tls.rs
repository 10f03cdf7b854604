//! TLS towards SMTP servers: rustls, TLS 1.2 or newer, certificates verified against the
//! system's CA store plus the server's optional `ca_file` (a private CA). There is no switch to
//! skip verification: a server whose certificate does not check out gets no code.

use std::path::Path;
use std::sync::Arc;

use common::config::admin_file::{self, AdminFileKind};

use common::config::SmtpServer;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::TlsConnector;

/// Why a server's TLS settings could not be prepared.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("mail server {server}: {reason}")]
pub struct TlsSetupError {
    /// The server's name.
    pub server: String,
    /// What went wrong.
    pub reason: String,
}

/// What a TLS connection to one server needs: the verifying connector and the name the
/// certificate must carry.
#[derive(Clone)]
pub struct TlsClient {
    /// rustls with the trusted roots, TLS 1.2 or 1.3.
    pub connector: TlsConnector,
    /// The server's host name (or IP address) as configured.
    pub server_name: ServerName<'static>,
}

impl std::fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsClient")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

/// The TLS client for `server`: its host name is the name the certificate must carry.
pub fn parameters(server: &SmtpServer) -> Result<TlsClient, TlsSetupError> {
    let fail = |reason: String| TlsSetupError {
        server: server.name.clone(),
        reason,
    };
    let server_name = ServerName::try_from(server.host.clone())
        .map_err(|e| fail(format!("{:?} is not a host name: {e}", server.host)))?;
    let config = verifying_config(server.ca_file.as_deref()).map_err(fail)?;
    Ok(TlsClient {
        connector: TlsConnector::from(config),
        server_name,
    })
}

/// A rustls client that verifies against the system's CA store plus `ca_file` (a private CA),
/// TLS 1.2 or 1.3: the one trust setup of every server otpd talks to (SMTP, LDAP).
pub fn verifying_config(ca_file: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, String> {
    verifying_config_with_client(ca_file, None)
}

/// [`verifying_config`], showing the client certificate in `client` (its certificate file and
/// its private key file, a private file like the mail password) when one is given: how otpd
/// logs in to PostgreSQL with a certificate.
pub fn verifying_config_with_client(
    ca_file: Option<&Path>,
    client: Option<(&Path, &Path)>,
) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    // Certificates the system store holds but rustls cannot parse are skipped, as every
    // rustls client does; a store with none usable is caught below.
    let native = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(native.certs);
    if let Some(ca_file) = ca_file {
        let show = ca_file.display();
        // Bounded and checked like every file the admin names: /dev/zero or a FIFO here once
        // passed the config check and then exhausted or hung otpd at start.
        let pem = admin_file::read(ca_file, AdminFileKind::CaBundle)
            .map_err(|e| format!("ca_file {e}"))?;
        let certificates = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("ca_file {show}: {e}"))?;
        if certificates.is_empty() {
            return Err(format!(
                "ca_file {show} holds no PEM certificate (-----BEGIN CERTIFICATE-----)"
            ));
        }
        for certificate in certificates {
            roots
                .add(certificate)
                .map_err(|e| format!("ca_file {show}: {e}"))?;
        }
    }
    if roots.is_empty() {
        return Err(
            "no trusted certificate: the system store is empty and no ca_file is set".into(),
        );
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("cannot set up TLS: {e}"))?
        .with_root_certificates(roots);
    let config = match client {
        None => config.with_no_client_auth(),
        Some((cert, key)) => {
            let (chain, key) = client_identity(cert, key)?;
            config
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("client_cert and client_key: {e}"))?
        }
    };
    Ok(Arc::new(config))
}

/// The certificate chain in `cert` (checked like a CA file) and the private key in `key` (a
/// private file: owner only).
fn client_identity(
    cert: &Path,
    key: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
    let pem =
        admin_file::read(cert, AdminFileKind::CaBundle).map_err(|e| format!("client_cert {e}"))?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("client_cert {}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!(
            "client_cert {} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            cert.display()
        ));
    }
    let pem = super::secret_file::read_private(key).map_err(|e| format!("client_key {e}"))?;
    let key = PrivateKeyDer::from_pem_slice(pem.expose().as_bytes()).map_err(|e| {
        format!(
            "client_key {}: no usable private key in PEM: {e}",
            key.display()
        )
    })?;
    Ok((chain, key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::config::Security;
    use std::path::PathBuf;
    use std::time::Duration;

    fn server(ca_file: Option<PathBuf>) -> SmtpServer {
        SmtpServer {
            name: "relay".into(),
            host: "smtp.example.com".into(),
            port: 465,
            security: Security::Tls,
            auth: None,
            ca_file,
            hello_name: None,
            timeout: Duration::from_secs(5),
            max_connections: common::config::DEFAULT_MAX_CONNECTIONS,
            max_messages_per_connection: common::config::DEFAULT_MAX_MESSAGES_PER_CONNECTION,
        }
    }

    #[test]
    fn the_system_store_alone_is_enough_to_set_up() {
        let p = parameters(&server(None)).unwrap();
        assert_eq!(
            p.server_name,
            ServerName::try_from("smtp.example.com").unwrap()
        );
    }

    #[test]
    fn a_ca_file_without_a_certificate_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not a certificate").unwrap();
        let e = parameters(&server(Some(path))).err().unwrap();
        assert!(e.reason.contains("holds no PEM certificate"), "{e}");
        let e = parameters(&server(Some(dir.path().join("missing.pem"))))
            .err()
            .unwrap();
        assert!(e.reason.starts_with("ca_file"), "{e}");
    }

    #[test]
    fn a_ca_file_over_one_mebibyte_is_refused_before_it_is_parsed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, vec![b'x'; 1024 * 1024 + 1]).unwrap();
        let e = parameters(&server(Some(path))).err().unwrap();
        assert!(e.reason.contains("longer than 1048576 bytes"), "{e}");
    }

    #[test]
    fn a_device_as_ca_file_is_refused_instead_of_read_forever() {
        let e = parameters(&server(Some(PathBuf::from("/dev/zero"))))
            .err()
            .unwrap();
        assert!(e.reason.contains("is a device"), "{e}");
    }
}
