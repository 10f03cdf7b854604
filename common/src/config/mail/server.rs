//! One `[[mail.servers]]` entry: where, how protected, as whom.

use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use toml::Spanned;

use super::super::check::{self, SECOND, is_loopback};
use super::super::error::Invalid;
use super::super::raw::{RawServer, Text};

/// The longest SMTP user name; it is sent base64-encoded in one AUTH line.
const MAX_USERNAME: usize = 256;

/// Connections otpd holds open to one server at most, busy and idle together. Small, because
/// local MTAs count connections per client: Exim refuses the 21st at its default
/// `smtp_accept_max = 20` (and fewer per host with `smtp_accept_max_per_host`), and a refused
/// connection is a failed login. Four connections carry hundreds of pipelined mails a second.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 4;

/// Messages sent over one connection before otpd says QUIT and opens a fresh one. Exim's
/// default `smtp_accept_queue_per_connection = 10` queues every further message of a
/// connection for the next queue run (every 30 minutes on Debian) instead of delivering it, and
/// a queued code expires unread; 10 stays within that.
pub const DEFAULT_MAX_MESSAGES_PER_CONNECTION: u32 = 10;

/// One SMTP server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpServer {
    /// A short unique name for logs and audit rows.
    pub name: String,
    /// A host name or IP address; also the name its TLS certificate must carry.
    pub host: String,
    /// The TCP port.
    pub port: u16,
    /// How the connection is protected. `None` is only allowed to loopback hosts or when the
    /// admin wrote `insecure_plaintext = true`.
    pub security: Security,
    /// The account to log in as, if the server wants one.
    pub auth: Option<SmtpAuth>,
    /// A PEM file of extra trusted CA certificates (a private CA), besides the system store.
    pub ca_file: Option<PathBuf>,
    /// The name sent in EHLO; `None` sends this machine's host name.
    pub hello_name: Option<String>,
    /// How long one delivery attempt to this server may take.
    pub timeout: Duration,
    /// Connections open to this server at once, at most; a send that finds none free waits
    /// for one inside its deadline instead of opening another.
    pub max_connections: u32,
    /// Messages over one connection before it is closed and a fresh one opened.
    pub max_messages_per_connection: u32,
}

/// SMTP AUTH credentials. The password stays in its own file, readable by otpd alone, so the
/// main config can be world-readable; otpd reads and checks that file when it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpAuth {
    /// The user name, without control characters.
    pub username: String,
    /// The file holding the password (its first line).
    pub password_file: PathBuf,
}

/// Transport security towards an SMTP server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Security {
    /// Plain text: the code crosses the network readable by anyone on the path.
    None,
    /// Plain connection upgraded with STARTTLS, which must succeed: a server that does not
    /// offer it is a failure, never a plain-text send.
    Starttls,
    /// TLS from the first byte (SMTPS).
    Tls,
}

impl Security {
    /// The name used in the config and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Security::None => "none",
            Security::Starttls => "starttls",
            Security::Tls => "tls",
        }
    }

    /// The usual port for this kind of connection.
    pub fn default_port(self) -> u16 {
        match self {
            Security::None => 25,
            Security::Starttls => 587,
            Security::Tls => 465,
        }
    }

    fn from_raw(value: &Text) -> Result<Security, Invalid> {
        match value.get_ref().as_str() {
            "none" => Ok(Security::None),
            "starttls" => Ok(Security::Starttls),
            "tls" => Ok(Security::Tls),
            other => Err(Invalid::new(
                value.span(),
                format!("security must be \"none\", \"starttls\" or \"tls\", got {other:?}"),
            )),
        }
    }
}

impl std::fmt::Display for Security {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl SmtpServer {
    /// True when the host is on this machine, where plain SMTP never crosses a network.
    pub fn is_loopback(&self) -> bool {
        is_loopback(&self.host)
    }

    /// Checks one `[[mail.servers]]` entry; also returns the span of its name for the
    /// uniqueness check.
    pub(in crate::config) fn from_raw(
        raw: &Spanned<RawServer>,
    ) -> Result<(SmtpServer, Range<usize>), Invalid> {
        let server = raw.get_ref();
        let missing = |key: &str, what: &str| {
            Invalid::new(raw.span(), format!("this mail server has no {key}; {what}"))
        };
        let name_value = server
            .name
            .as_ref()
            .ok_or_else(|| missing("name", "add name = \"NAME\" to tell servers apart in logs"))?;
        let name = check::label("mail server name", name_value)?;
        let host_value = server
            .host
            .as_ref()
            .ok_or_else(|| missing("host", "add host = \"HOST NAME OR IP ADDRESS\""))?;
        let host = check::host("host", host_value)?;
        let security_value = server.security.as_ref().ok_or_else(|| {
            missing(
                "security",
                "set security = \"tls\", \"starttls\" or \"none\"; there is no default on purpose",
            )
        })?;
        let security = Security::from_raw(security_value)?;
        let insecure_ok = server.insecure_plaintext == Some(true);
        if security == Security::None && !is_loopback(&host) && !insecure_ok {
            return Err(Invalid::new(
                security_value.span(),
                format!(
                    "security = \"none\" would send codes in clear text to {host:?}; it is only allowed for loopback hosts (127.0.0.0/8, ::1, localhost). Use \"starttls\" or \"tls\", or set insecure_plaintext = true if the network path is trusted"
                ),
            ));
        }
        let port = match &server.port {
            Some(v) => check::number("port", v, 1, 65_535)?,
            None => security.default_port(),
        };
        let timeout = match &server.timeout_seconds {
            Some(v) => check::duration("timeout_seconds", v, 1, 120, SECOND)?,
            None => SECOND * 10,
        };
        let auth = auth(raw)?;
        let ca_file = match &server.ca_file {
            Some(v) if security == Security::None => {
                return Err(Invalid::new(
                    v.span(),
                    "ca_file is only used with security = \"tls\" or \"starttls\"",
                ));
            }
            Some(v) => Some(check::absolute_path("ca_file", v)?),
            None => None,
        };
        let hello_name = server
            .hello_name
            .as_ref()
            .map(|v| check::host("hello_name", v))
            .transpose()?;
        let max_connections = match &server.max_connections {
            Some(v) => check::cap("max_connections", v, 1, 100)?,
            None => DEFAULT_MAX_CONNECTIONS,
        };
        let max_messages_per_connection = match &server.max_messages_per_connection {
            Some(v) => check::cap("max_messages_per_connection", v, 1, 1000)?,
            None => DEFAULT_MAX_MESSAGES_PER_CONNECTION,
        };
        let smtp = SmtpServer {
            name,
            host,
            port,
            security,
            auth,
            ca_file,
            hello_name,
            timeout,
            max_connections,
            max_messages_per_connection,
        };
        Ok((smtp, name_value.span()))
    }
}

/// `username` and `password_file` come together or not at all.
fn auth(raw: &Spanned<RawServer>) -> Result<Option<SmtpAuth>, Invalid> {
    let server = raw.get_ref();
    match (&server.username, &server.password_file) {
        (None, None) => Ok(None),
        (Some(user), None) => Err(Invalid::new(
            user.span(),
            "username needs password_file = \"/PATH\", a file only otpd can read holding the password; passwords are never written in this file",
        )),
        (None, Some(file)) => Err(Invalid::new(
            file.span(),
            "password_file needs username = \"NAME\" as well",
        )),
        (Some(user), Some(file)) => {
            let name = user.get_ref();
            let count = name.chars().count();
            if count == 0 || count > MAX_USERNAME || name.chars().any(char::is_control) {
                return Err(Invalid::new(
                    user.span(),
                    format!(
                        "username must be 1 to {MAX_USERNAME} characters without control characters, got {name:?}"
                    ),
                ));
            }
            Ok(Some(SmtpAuth {
                username: name.clone(),
                password_file: check::absolute_path("password_file", file)?,
            }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(body: &str) -> Result<SmtpServer, Invalid> {
        #[derive(serde::Deserialize)]
        struct W {
            s: Spanned<RawServer>,
        }
        let raw: W = toml::from_str(&format!("[s]\nname = \"s\"\n{body}")).unwrap();
        SmtpServer::from_raw(&raw.s).map(|(s, _)| s)
    }

    #[test]
    fn the_port_defaults_by_security() {
        let s = server("host = \"127.0.0.1\"\nsecurity = \"none\"").unwrap();
        assert_eq!((s.port, s.security), (25, Security::None));
        assert_eq!(s.timeout, Duration::from_secs(10));
        assert_eq!((s.auth, s.ca_file, s.hello_name), (None, None, None));
        let s = server("host = \"smtp.example.com\"\nsecurity = \"starttls\"").unwrap();
        assert_eq!(s.port, 587);
        let s = server("host = \"smtp.example.com\"\nsecurity = \"tls\"").unwrap();
        assert_eq!(s.port, 465);
        let s = server("host = \"smtp.example.com\"\nsecurity = \"tls\"\nport = 2465").unwrap();
        assert_eq!(s.port, 2465);
    }

    #[test]
    fn plaintext_is_for_loopback_unless_insecure_is_explicit() {
        for host in ["127.0.0.1", "127.1.2.3", "::1", "localhost", "LOCALHOST"] {
            let s = server(&format!("host = {host:?}\nsecurity = \"none\"")).unwrap();
            assert!(s.is_loopback(), "{host}");
        }
        for host in [
            "10.0.0.1",
            "smtp.example.com",
            "localhost.example.com",
            "::ffff:127.0.0.1",
        ] {
            let e = server(&format!("host = {host:?}\nsecurity = \"none\"")).unwrap_err();
            assert!(
                e.message.contains("only allowed for loopback"),
                "{host}: {}",
                e.message
            );
        }
        let s =
            server("host = \"10.0.0.1\"\nsecurity = \"none\"\ninsecure_plaintext = true").unwrap();
        assert!(!s.is_loopback());
        assert!(
            server("host = \"10.0.0.1\"\nsecurity = \"none\"\ninsecure_plaintext = false").is_err()
        );
    }

    #[test]
    fn security_has_no_silent_default() {
        let e = server("host = \"127.0.0.1\"").unwrap_err();
        assert!(e.message.contains("no security"), "{}", e.message);
        let e = server("host = \"127.0.0.1\"\nsecurity = \"ssl\"").unwrap_err();
        assert_eq!(
            e.message,
            "security must be \"none\", \"starttls\" or \"tls\", got \"ssl\""
        );
    }

    #[test]
    fn hosts_are_names_or_addresses() {
        for bad in [
            "",
            "smtp example.com",
            "[::1]",
            "smtp.example.com.",
            "a\r\nb",
            "-x",
        ] {
            let e = server(&format!("host = {bad:?}\nsecurity = \"tls\"")).unwrap_err();
            assert!(
                e.message.starts_with("host must be"),
                "{bad:?}: {}",
                e.message
            );
        }
        assert!(server("host = \"2001:db8::25\"\nsecurity = \"tls\"").is_ok());
        assert!(server("host = \"mailhub\"\nsecurity = \"tls\"").is_ok());
    }

    #[test]
    fn port_and_timeout_ranges() {
        assert!(server("host = \"h\"\nsecurity = \"tls\"\nport = 0").is_err());
        assert!(server("host = \"h\"\nsecurity = \"tls\"\nport = 65536").is_err());
        assert!(server("host = \"h\"\nsecurity = \"tls\"\ntimeout_seconds = 0").is_err());
        assert!(server("host = \"h\"\nsecurity = \"tls\"\ntimeout_seconds = 121").is_err());
    }

    #[test]
    fn credentials_need_both_a_user_and_a_password_file() {
        let s = server(
            "host = \"h\"\nsecurity = \"tls\"\nusername = \"otp@example.com\"\npassword_file = \"/etc/otpd/smtp-password\"",
        )
        .unwrap();
        assert_eq!(
            s.auth,
            Some(SmtpAuth {
                username: "otp@example.com".into(),
                password_file: PathBuf::from("/etc/otpd/smtp-password"),
            })
        );
        let e = server("host = \"h\"\nsecurity = \"tls\"\nusername = \"u\"").unwrap_err();
        assert!(e.message.contains("needs password_file"), "{}", e.message);
        let e = server("host = \"h\"\nsecurity = \"tls\"\npassword_file = \"/p\"").unwrap_err();
        assert!(e.message.contains("needs username"), "{}", e.message);
        let e = server("host = \"h\"\nsecurity = \"tls\"\nusername = \"u\"\npassword_file = \"p\"")
            .unwrap_err();
        assert!(e.message.contains("absolute path"), "{}", e.message);
        let e = server(
            "host = \"h\"\nsecurity = \"tls\"\nusername = \"u\\r\\nMAIL FROM:<x@y>\"\npassword_file = \"/p\"",
        )
        .unwrap_err();
        assert!(e.message.starts_with("username must be"), "{}", e.message);
    }

    #[test]
    fn connections_and_messages_per_connection_default_to_what_exim_accepts() {
        let s = server("host = \"h\"\nsecurity = \"tls\"").unwrap();
        assert_eq!((s.max_connections, s.max_messages_per_connection), (4, 10));
        let s = server(
            "host = \"h\"\nsecurity = \"tls\"\nmax_connections = 1\nmax_messages_per_connection = 1000",
        )
        .unwrap();
        assert_eq!(
            (s.max_connections, s.max_messages_per_connection),
            (1, 1000)
        );
        for bad in [
            "max_connections = 0",
            "max_connections = 101",
            "max_messages_per_connection = 0",
            "max_messages_per_connection = 1001",
        ] {
            let e = server(&format!("host = \"h\"\nsecurity = \"tls\"\n{bad}")).unwrap_err();
            assert!(e.message.contains("between"), "{bad}: {}", e.message);
        }
    }

    #[test]
    fn ca_file_and_hello_name_are_checked() {
        let s = server(
            "host = \"h\"\nsecurity = \"starttls\"\nca_file = \"/etc/otpd/ca.pem\"\nhello_name = \"box1.example.com\"",
        )
        .unwrap();
        assert_eq!(s.ca_file, Some(PathBuf::from("/etc/otpd/ca.pem")));
        assert_eq!(s.hello_name.as_deref(), Some("box1.example.com"));
        let e = server("host = \"::1\"\nsecurity = \"none\"\nca_file = \"/ca.pem\"").unwrap_err();
        assert!(e.message.contains("only used with"), "{}", e.message);
        let e = server("host = \"h\"\nsecurity = \"tls\"\nhello_name = \"a b\"").unwrap_err();
        assert!(e.message.starts_with("hello_name must be"), "{}", e.message);
    }
}
