//! TLS towards SMTP servers: rustls, TLS 1.2 or newer, certificates verified against the
//! system's CA store plus the server's optional `ca_file` (a private CA). There is no switch to
//! skip verification: a server whose certificate does not check out gets no code.

use common::config::SmtpServer;
use lettre::transport::smtp::client::{Certificate, TlsParameters, TlsVersion};

/// Why a server's TLS settings could not be prepared.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("mail server {server}: {reason}")]
pub struct TlsSetupError {
    /// The server's name.
    pub server: String,
    /// What went wrong.
    pub reason: String,
}

/// The TLS parameters for `server`: its host name is the name the certificate must carry.
pub fn parameters(server: &SmtpServer) -> Result<TlsParameters, TlsSetupError> {
    let fail = |reason: String| TlsSetupError {
        server: server.name.clone(),
        reason,
    };
    let mut builder =
        TlsParameters::builder(server.host.clone()).set_min_tls_version(TlsVersion::Tlsv12);
    if let Some(ca_file) = &server.ca_file {
        let show = ca_file.display();
        let pem = std::fs::read(ca_file).map_err(|e| fail(format!("ca_file {show}: {e}")))?;
        if !pem
            .windows(b"-----BEGIN CERTIFICATE-----".len())
            .any(|w| w == b"-----BEGIN CERTIFICATE-----")
        {
            return Err(fail(format!(
                "ca_file {show} holds no PEM certificate (-----BEGIN CERTIFICATE-----)"
            )));
        }
        let certificate =
            Certificate::from_pem(&pem).map_err(|e| fail(format!("ca_file {show}: {e}")))?;
        builder = builder.add_root_certificate(certificate);
    }
    builder
        .build_rustls()
        .map_err(|e| fail(format!("cannot set up TLS: {e}")))
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
        }
    }

    #[test]
    fn the_system_store_alone_is_enough_to_set_up() {
        let p = parameters(&server(None)).unwrap();
        assert_eq!(p.domain(), "smtp.example.com");
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
}
