//! otpd hosts sharing one PostgreSQL (issue #20): the role and database an admin makes for them,
//! the config each host runs with, and the server key they must all hold. Shared by the
//! loopback tests (`store_postgres.rs`) and the fleet on a bridge (`store_postgres_fleet.rs`),
//! so both prove the same configuration an admin would write.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::postgres::Postgres;

/// The role otpd logs in as.
pub const ROLE: &str = "otpd";
/// The database otpd keeps its state in.
pub const DB: &str = "otp";
/// The role's password (in a private file beside each host's state directory).
pub const PASSWORD: &str = "pg-Secret-42";

/// Makes the role and database on `pg`.
pub fn create_otp_database(pg: &Postgres) {
    pg.create_role_and_database(ROLE, PASSWORD, DB);
}

/// The addresses otpd's open sessions come from, as `pg` sees them, counting only sessions over
/// TLS: each host's own address when every host reached the database over the network, as it
/// should (127.0.0.1 for one on loopback).
pub fn otpd_clients_over_tls(pg: &Postgres) -> Vec<String> {
    let out = pg.psql(
        "postgres",
        &format!(
            "SELECT DISTINCT host(a.client_addr) FROM pg_stat_activity a \
             JOIN pg_stat_ssl s USING (pid) WHERE a.usename = '{ROLE}' AND s.ssl \
             ORDER BY 1"
        ),
    );
    out.lines().map(str::to_string).collect()
}

/// What one otpd host is told: where the database and the mail server are, and `extra` lines
/// for `[defaults]`.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// PostgreSQL's servers as the host reaches them (IPs the server certificate names) and
    /// their ports, in the order otpd tries them.
    pub pg_hosts: Vec<(String, u16)>,
    /// The CA that signed PostgreSQL's certificate.
    pub ca_file: PathBuf,
    /// The SMTP server's address as the host reaches it.
    pub smtp_host: String,
    /// The SMTP server's port.
    pub smtp_port: u16,
    /// The CA of the SMTP server's certificate when it speaks STARTTLS; `None` for plain text,
    /// which otpd allows on loopback only.
    pub smtp_ca_file: Option<PathBuf>,
    /// Lines added to `[defaults]`.
    pub extra: String,
    /// Lines added to `[store]`.
    pub store_extra: String,
}

impl HostConfig {
    /// A host on this machine's loopback: PostgreSQL and the mail server at 127.0.0.1.
    pub fn loopback(pg: &Postgres, ca_file: &Path, smtp_port: u16, extra: &str) -> HostConfig {
        HostConfig {
            pg_hosts: vec![("127.0.0.1".into(), pg.port)],
            ca_file: ca_file.to_path_buf(),
            smtp_host: "127.0.0.1".into(),
            smtp_port,
            smtp_ca_file: None,
            extra: extra.into(),
            store_extra: String::new(),
        }
    }

    /// otpd's whole config: mail to the SMTP server, every user required, the store on
    /// PostgreSQL verified against `ca_file`. Writes the password file beside `state_dir`.
    pub fn render(&self, socket: &Path, state_dir: &Path) -> String {
        let password_file = state_dir.parent().expect("a parent").join("pg.password");
        fs::write(&password_file, format!("{PASSWORD}\n")).expect("write the password");
        fs::set_permissions(&password_file, fs::Permissions::from_mode(0o600)).expect("chmod");
        let store = store_section(&self.pg_hosts, &password_file, &self.ca_file);
        let store_extra = &self.store_extra;
        let server = capture_server(
            &self.smtp_host,
            self.smtp_port,
            self.smtp_ca_file.as_deref(),
        );
        format!(
            "[daemon]\nsocket = \"{}\"\nstate_dir = \"{}\"\n\n\
             {store}{store_extra}connect_timeout_seconds = 1\nstatement_timeout_seconds = 2\n\n\
             [directory]\nemail_template = \"{{user}}@example.test\"\n\n\
             [defaults]\nmode = \"required\"\n{}\n\n\
             [mail]\nfrom = \"otp@example.test\"\n\n{server}",
            socket.display(),
            state_dir.display(),
            self.extra,
        )
    }
}

/// Puts `key` (the first host's server key) into the state directory of another host before
/// its otpd starts: every host of one database must mac codes with the same key.
pub fn with_key(state: &Path, key: &[u8]) {
    fs::create_dir_all(state).expect("mkdir state");
    fs::set_permissions(state, fs::Permissions::from_mode(0o700)).expect("chmod");
    let file = state.join("secret.key");
    fs::write(&file, key).expect("write the key");
    fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).expect("chmod");
}

/// The `[store]` section of a host on PostgreSQL at `pg_hosts` (tried in order), logging in as
/// [`ROLE`] with the password in `password_file`, the server verified against `ca_file`.
pub fn store_section(pg_hosts: &[(String, u16)], password_file: &Path, ca_file: &Path) -> String {
    let hosts = pg_hosts
        .iter()
        .map(|(host, port)| format!("\"{host}:{port}\""))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "[store]\nbackend = \"postgresql\"\nhosts = [{hosts}]\ndbname = \"{DB}\"\n\
         user = \"{ROLE}\"\npassword_file = \"{}\"\nca_file = \"{}\"\n",
        password_file.display(),
        ca_file.display(),
    )
}

/// The `[[mail.servers]]` entry of the capturing mail server at `host`:`port`: STARTTLS
/// verified against `ca_file` when given (otpd mails in plain text to loopback only), else
/// plain.
pub fn capture_server(host: &str, port: u16, ca_file: Option<&Path>) -> String {
    let security = match ca_file {
        Some(ca) => format!("security = \"starttls\"\nca_file = \"{}\"", ca.display()),
        None => "security = \"none\"".into(),
    };
    format!(
        "[[mail.servers]]\nname = \"capture\"\nhost = \"{host}\"\nport = {port}\n{security}\n\
         timeout_seconds = 5\n"
    )
}
