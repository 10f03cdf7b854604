//! A fleet (issue #20): three hosts in three network namespaces on one bridge, each running its
//! own otpd with its own host name, state directory and socket, all on one PostgreSQL and one mail server
//! that listen on the bridge's address in the root namespace. The otpd reach both over the
//! bridge, as separate machines would; the tests reach each otpd through its socket (a file) and
//! run real libpam logins against it, as that host's sshd or nginx would.
//!
//! PostgreSQL's certificate names the bridge's address, so each otpd verifies it (verify-full)
//! against the test CA; pg_hba.conf lets in only TLS with a SCRAM password from the segment. The
//! mail server speaks STARTTLS with a certificate from the same CA, as otpd requires off
//! loopback.

use std::net::Ipv4Addr;

use crate::bridge::Bridge;
use crate::netns::NotPermitted;
use crate::otpd::Otpd;
use crate::paths;
use crate::pg_hosts::{HostConfig, create_otp_database, with_key};
use crate::postgres::Postgres;
use crate::smtp::SmtpCapture;
use crate::stack::PamConfDir;
use crate::tls::TestCa;

/// One host of the fleet: its otpd (inside its namespace) and its PAM services.
#[derive(Debug)]
pub struct Host {
    /// The host's name, `host-a.fleet.test` and so on: otpd sees it as the machine's name and
    /// says it in the mail's subject ("Your login code for host-a.fleet.test").
    pub name: String,
    /// The host's address on the bridge.
    pub addr: Ipv4Addr,
    /// The host's otpd.
    pub otpd: Otpd,
    /// `sshd` (prompting for the code) and `nginx` (HTTP Basic: the code after the password)
    /// against this host's otpd.
    pub pam: PamConfDir,
}

/// The hosts, the shared servers and the network, torn down in that order.
#[derive(Debug)]
pub struct Fleet {
    /// The hosts, `a`, `b`, `c`.
    pub hosts: Vec<Host>,
    /// The mail server every host sends to.
    pub smtp: SmtpCapture,
    /// The one database.
    pub pg: Postgres,
    /// The CA of PostgreSQL's and the mail server's certificate.
    pub ca: TestCa,
    /// The segment; dropped last, after every otpd inside it stopped.
    pub bridge: Bridge,
}

impl Fleet {
    /// Three hosts on `198.18.<subnet>.0/24` with `defaults` added to each otpd's
    /// `[defaults]`. Errs when network namespaces cannot be made here.
    pub fn start(subnet: u8, defaults: &str) -> Result<Fleet, NotPermitted> {
        let bridge = Bridge::create(subnet, 3)?;
        let ca = TestCa::with_server_ips("fleet-ca", &[bridge.addr]);
        let pg = Postgres::start_with_tls_for_network(&ca, bridge.addr, &bridge.cidr());
        create_otp_database(&pg);
        // Off loopback otpd mails only over TLS: STARTTLS with the same CA's certificate.
        let mut flags = ca.capture_flags();
        flags.extend([
            "--starttls".into(),
            "--host".into(),
            bridge.addr.to_string(),
        ]);
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        let smtp = SmtpCapture::start_with(&flags);
        let config = HostConfig {
            pg_hosts: vec![(bridge.addr.to_string(), pg.port)],
            ca_file: ca.ca_cert(),
            smtp_host: bridge.addr.to_string(),
            smtp_port: smtp.port,
            smtp_ca_file: Some(ca.ca_cert()),
            extra: defaults.into(),
            store_extra: String::new(),
        };
        let mut hosts: Vec<Host> = Vec::new();
        for (letter, namespace) in ('a'..='z').zip(&bridge.hosts) {
            // The first host makes the server key; the others start with a copy of it.
            let key = hosts.first().map(|first| {
                std::fs::read(first.otpd.state_dir().join("secret.key")).expect("read the key")
            });
            let name = format!("host-{letter}.fleet.test");
            let otpd = Otpd::start_in_namespace_as(&namespace.name, &name, |socket, state| {
                if let Some(key) = &key {
                    with_key(state, key);
                }
                config.render(socket, state)
            });
            let pam = PamConfDir::new();
            pam.otp_then_permit("sshd", &otpd.socket, "");
            pam.service("nginx", &http_stack(&otpd));
            hosts.push(Host {
                name,
                addr: namespace.client_addr,
                otpd,
                pam,
            });
        }
        Ok(Fleet {
            hosts,
            smtp,
            pg,
            ca,
            bridge,
        })
    }
}

/// The single-secret stack of an HTTP Basic location: the split line, the password module,
/// the line that verifies the code. pam_permit stands in for the password module (any
/// password passes): these tests are about where the code is known, not about passwords.
fn http_stack(otpd: &Otpd) -> String {
    let module = paths::module();
    let socket = otpd.socket.display();
    format!(
        "auth required {m} socket={socket} split\n\
         auth requisite pam_permit.so\n\
         auth required {m} socket={socket}\n",
        m = module.display()
    )
}
