//! A certificate authority made for one test with the `openssl` command: a CA certificate and
//! a server certificate it signed for 127.0.0.1 and localhost (and more addresses, such as a
//! bridge's for hosts in network namespaces), so a real SMTP server can speak TLS that otpd
//! verifies against the CA (and a second CA shows an untrusted one is refused); and client
//! certificates, valid or expired, for relay mode's mutual TLS.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A CA and one server certificate, in a temporary directory.
#[derive(Debug)]
pub struct TestCa {
    dir: tempfile::TempDir,
}

impl TestCa {
    /// Makes a fresh CA named `name` and a server certificate for 127.0.0.1 signed by it.
    pub fn new(name: &str) -> TestCa {
        TestCa::with_server_ips(name, &[])
    }

    /// [`TestCa::new`], the server certificate also naming `ips`: for a server that hosts in
    /// network namespaces reach at a bridge's address, verified by IP like loopback.
    pub fn with_server_ips(name: &str, ips: &[Ipv4Addr]) -> TestCa {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        let ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
        openssl(
            d,
            &format!(
                "req -x509 {ec} -keyout ca.key -out ca.pem -days 2 \
                 -addext basicConstraints=critical,CA:TRUE \
                 -addext keyUsage=critical,keyCertSign,cRLSign -subj"
            ),
            &[&format!("/CN={name}")],
        );
        openssl(
            d,
            &format!("req {ec} -keyout server.key -out server.csr -subj /CN=127.0.0.1"),
            &[],
        );
        let more: String = ips.iter().map(|ip| format!(",IP:{ip}")).collect();
        std::fs::write(
            d.join("server.ext"),
            format!(
                "subjectAltName=IP:127.0.0.1,DNS:localhost{more}\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
            ),
        )
        .expect("write extensions");
        openssl(
            d,
            "x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem \
             -days 2 -extfile server.ext",
            &[],
        );
        TestCa { dir }
    }

    /// The CA certificate (PEM), for `ca_file`.
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// The server certificate (PEM).
    pub fn server_cert(&self) -> PathBuf {
        self.dir.path().join("server.pem")
    }

    /// The server's private key (PEM).
    pub fn server_key(&self) -> PathBuf {
        self.dir.path().join("server.key")
    }

    /// A client certificate (TLS client authentication) for `name`, signed by this CA, valid
    /// for two days: its certificate and its private key (mode 0600), as `NAME.pem` and
    /// `NAME.key`.
    pub fn client_cert(&self, name: &str) -> (PathBuf, PathBuf) {
        self.issue_client(name, 2)
    }

    /// [`TestCa::client_cert`], but expired a day ago: a verifier that checks dates refuses it.
    pub fn expired_client_cert(&self, name: &str) -> (PathBuf, PathBuf) {
        self.issue_client(name, -1)
    }

    fn issue_client(&self, name: &str, days: i32) -> (PathBuf, PathBuf) {
        let d = self.dir.path();
        let ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
        openssl(
            d,
            &format!("req {ec} -keyout {name}.key -out {name}.csr -subj"),
            &[&format!("/CN={name}")],
        );
        std::fs::write(
            d.join(format!("{name}.ext")),
            "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n",
        )
        .expect("write extensions");
        // `-days -1` puts notAfter a day before notBefore: expired as soon as it is made.
        openssl(
            d,
            &format!(
                "x509 -req -in {name}.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out {name}.pem \
                 -days {days} -extfile {name}.ext"
            ),
            &[],
        );
        let key = d.join(format!("{name}.key"));
        std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .expect("chmod key");
        (d.join(format!("{name}.pem")), key)
    }

    /// capture.py flags that serve this server certificate.
    pub fn capture_flags(&self) -> Vec<String> {
        vec![
            "--tls-cert".into(),
            self.server_cert().display().to_string(),
            "--tls-key".into(),
            self.server_key().display().to_string(),
        ]
    }
}

/// Runs `openssl` in `dir` with the whitespace-separated `words`, then `extra` as they are.
fn openssl(dir: &Path, words: &str, extra: &[&str]) {
    let args: Vec<&str> = words
        .split_whitespace()
        .chain(extra.iter().copied())
        .collect();
    let out = Command::new("openssl")
        .args(&args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
