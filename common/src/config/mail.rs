//! `[mail]`: the sender of code mails and the SMTP servers tried in order.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use toml::Spanned;

use super::address::{EmailAddress, is_dns_label};
use super::check::{self, SECOND};
use super::error::{Invalid, Location};
use super::raw::{RawMail, RawServer, Text};

/// The longest sender display name; it goes into a header.
const MAX_FROM_NAME: usize = 128;

/// How code mails are sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailConfig {
    /// The envelope and header sender.
    pub from: EmailAddress,
    /// A display name for the `From:` header, free of control characters.
    pub from_name: Option<String>,
    /// Servers in the order they are tried; never empty, names unique.
    pub servers: Vec<SmtpServer>,
}

/// One SMTP server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpServer {
    /// A short unique name for logs and audit rows.
    pub name: String,
    /// A host name or IP address.
    pub host: String,
    /// The TCP port.
    pub port: u16,
    /// How the connection is protected. `None` is only allowed to loopback hosts or when the
    /// admin wrote `insecure_plaintext = true`.
    pub security: Security,
    /// How long one delivery attempt to this server may take.
    pub timeout: Duration,
}

/// Transport security towards an SMTP server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Security {
    /// Plain text: the code crosses the network readable by anyone on the path.
    None,
    /// Plain connection upgraded with STARTTLS, which must succeed.
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

impl MailConfig {
    /// Checks `[mail]`. `text` is the whole file, used only to say on which line a duplicate
    /// server name was first used.
    pub(super) fn from_raw(raw: &Spanned<RawMail>, text: &str) -> Result<MailConfig, Invalid> {
        let mail = raw.get_ref();
        let Some(from) = &mail.from else {
            return Err(Invalid::new(
                raw.span(),
                "[mail] needs from = \"ADDRESS\", the sender of code mails",
            ));
        };
        let from = EmailAddress::parse(from.get_ref()).map_err(|why| {
            Invalid::new(from.span(), format!("from is not a valid address: {why}"))
        })?;
        let from_name = mail.from_name.as_ref().map(from_name).transpose()?;
        let Some(servers) = &mail.servers else {
            return Err(Invalid::new(
                raw.span(),
                "[mail] needs at least one [[mail.servers]] entry",
            ));
        };
        if servers.get_ref().is_empty() {
            return Err(Invalid::new(
                servers.span(),
                "mail.servers is empty; at least one [[mail.servers]] entry is needed",
            ));
        }
        // Name -> byte offset of its first use, to point back at it.
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        let mut checked = Vec::with_capacity(servers.get_ref().len());
        for raw_server in servers.get_ref() {
            let (server, name_span) = SmtpServer::from_raw(raw_server)?;
            if let Some(&first) = seen.get(&server.name) {
                let line = Location::of_offset(text, first).line;
                return Err(Invalid::new(
                    name_span,
                    format!(
                        "mail server name {:?} is already used on line {line}; names must be unique",
                        server.name
                    ),
                ));
            }
            seen.insert(server.name.clone(), name_span.start);
            checked.push(server);
        }
        Ok(MailConfig {
            from,
            from_name,
            servers: checked,
        })
    }
}

/// The display name: it lands in a `From:` header, so no control characters (a CR/LF would
/// start a new header), and short.
fn from_name(value: &Text) -> Result<String, Invalid> {
    let name = value.get_ref();
    let count = name.chars().count();
    if count == 0 || count > MAX_FROM_NAME || name.chars().any(char::is_control) {
        return Err(Invalid::new(
            value.span(),
            format!(
                "from_name must be 1 to {MAX_FROM_NAME} characters without control characters, got {name:?}"
            ),
        ));
    }
    Ok(name.clone())
}

impl SmtpServer {
    /// Checks one `[[mail.servers]]` entry; also returns the span of its name for the
    /// uniqueness check.
    fn from_raw(raw: &Spanned<RawServer>) -> Result<(SmtpServer, std::ops::Range<usize>), Invalid> {
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
        let host = host(host_value)?;
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
        let smtp = SmtpServer {
            name,
            host,
            port,
            security,
            timeout,
        };
        Ok((smtp, name_value.span()))
    }
}

/// A host name (DNS labels, no trailing dot) or an IP address without brackets.
fn host(value: &Text) -> Result<String, Invalid> {
    let host = value.get_ref();
    let is_name = host.len() <= 253 && host.split('.').all(is_dns_label);
    if is_name || host.parse::<IpAddr>().is_ok() {
        Ok(host.clone())
    } else {
        Err(Invalid::new(
            value.span(),
            format!(
                "host must be a host name (letters, digits, '-' and dots) or an IP address without brackets, got {host:?}"
            ),
        ))
    }
}

/// Hosts where plain SMTP never leaves the machine.
fn is_loopback(host: &str) -> bool {
    match host.parse::<IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => host.eq_ignore_ascii_case("localhost"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mail(body: &str) -> Result<MailConfig, Invalid> {
        #[derive(serde::Deserialize)]
        struct W {
            mail: Spanned<RawMail>,
        }
        let text = format!("[mail]\nfrom = \"otp@example.com\"\n{body}");
        let raw: W = toml::from_str(&text).unwrap();
        MailConfig::from_raw(&raw.mail, &text)
    }

    fn server(body: &str) -> Result<SmtpServer, Invalid> {
        mail(&format!("[[mail.servers]]\nname = \"s\"\n{body}"))
            .map(|m| m.servers.into_iter().next().unwrap())
    }

    #[test]
    fn the_port_defaults_by_security() {
        let s = server("host = \"127.0.0.1\"\nsecurity = \"none\"").unwrap();
        assert_eq!((s.port, s.security), (25, Security::None));
        assert_eq!(s.timeout, Duration::from_secs(10));
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
            assert!(
                server(&format!("host = {host:?}\nsecurity = \"none\"")).is_ok(),
                "{host}"
            );
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
        assert!(
            server("host = \"10.0.0.1\"\nsecurity = \"none\"\ninsecure_plaintext = true").is_ok()
        );
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
    fn from_name_refuses_control_characters() {
        let base = "[[mail.servers]]\nname = \"s\"\nhost = \"h\"\nsecurity = \"tls\"\n";
        let ok = mail(&format!("from_name = \"Login codes\"\n{base}")).unwrap();
        assert_eq!(ok.from_name.as_deref(), Some("Login codes"));
        assert!(mail(&format!("from_name = \"x\\r\\nBcc: y\"\n{base}")).is_err());
        assert!(mail(&format!("from_name = \"\"\n{base}")).is_err());
    }

    #[test]
    fn duplicate_server_names_point_at_the_second_and_name_the_first_line() {
        let e = mail(
            "[[mail.servers]]\nname = \"a\"\nhost = \"h\"\nsecurity = \"tls\"\n[[mail.servers]]\nname = \"a\"\nhost = \"i\"\nsecurity = \"tls\"\n",
        )
        .unwrap_err();
        assert_eq!(
            e.message,
            "mail server name \"a\" is already used on line 4; names must be unique"
        );
    }
}
