//! `[relay]` and `[relay_listener]`: a host in a DMZ whose otpd holds no secret and forwards each
//! login request over mutual TLS to a main otpd, and the main otpd's side of it.
//!
//! The DMZ side names where the main otpd is, the CA that signed the main's server certificate,
//! and its own client certificate and key (the only private file a DMZ host holds). The main
//! side names the CA that signed the DMZ hosts' client certificates and, for each DMZ host, the
//! exact certificate allowed and the one host name it may speak for.
//!
//! A DMZ otpd decides nothing about codes, so every section that only matters where codes are
//! decided (`[mail]`, `[store]`, the directories, the channels, the policies) is refused next to
//! `[relay]`, rather than silently ignored: an admin who wrote them believed they did something.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use toml::Spanned;

use super::check::{self, SECOND};
use super::error::Invalid;
use super::raw::{RawConfig, RawRelay, RawRelayListener, Text};

/// The port of `upstream` when it names none.
pub const DEFAULT_RELAY_PORT: u16 = 7443;

/// How long a DMZ otpd waits for the TCP connection and the TLS handshake together.
pub const DEFAULT_RELAY_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// How long a DMZ otpd waits for a whole relayed exchange (connect, handshake, request and
/// answer): a begin waits for the main otpd's mail (20 s by default), and the module waits 25 s
/// for a begin, so the DMZ answers "unavailable" before the module gives up.
pub const DEFAULT_RELAY_TIMEOUT: Duration = Duration::from_secs(22);

/// How long the main otpd gives a relay connection for its handshake, for its request, and
/// (each) for taking the answer.
pub const DEFAULT_RELAY_LISTENER_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections one DMZ host may hold open at once on the main otpd unless
/// `max_connections_per_client` says otherwise.
pub const DEFAULT_RELAY_CONNECTIONS_PER_CLIENT: usize = 16;

/// `[relay]`: where this (DMZ) otpd forwards login requests, and with which credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayConfig {
    /// The main otpd's host (a name or an IP address), from `upstream`.
    pub upstream_host: String,
    /// Its relay port, from `upstream`.
    pub upstream_port: u16,
    /// The name the main otpd's certificate must carry: `server_name`, else `upstream_host`.
    pub server_name: String,
    /// The host name this otpd speaks for (`host_name`), which the main otpd checks against the
    /// one mapped to the client certificate; `None` means this machine's name.
    pub host_name: Option<String>,
    /// The client certificate (PEM chain) presented to the main otpd.
    pub client_cert: PathBuf,
    /// Its private key: a private file, read at start.
    pub client_key: PathBuf,
    /// The CA(s) the main otpd's server certificate must chain to; the system store is not used.
    pub ca_file: PathBuf,
    /// Deadline of the TCP connection and TLS handshake together.
    pub connect_timeout: Duration,
    /// Deadline of the whole exchange, connection included.
    pub timeout: Duration,
}

/// `[relay_listener]`: where this (main) otpd answers relayed requests from DMZ hosts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayListenerConfig {
    /// The TCP address to listen on.
    pub listen: SocketAddr,
    /// The server certificate (PEM chain) shown to DMZ hosts.
    pub cert: PathBuf,
    /// Its private key: a private file, read at start.
    pub key: PathBuf,
    /// The CA(s) the DMZ hosts' client certificates must chain to.
    pub client_ca: PathBuf,
    /// The allowed DMZ hosts; never empty, certificates and host names unique.
    pub clients: Vec<RelayClient>,
    /// Connections one DMZ host may hold at once.
    pub max_connections_per_client: usize,
    /// Deadline of the handshake, of reading the request and of writing the answer.
    pub timeout: Duration,
}

/// One `[[relay_listener.clients]]` entry: a DMZ host allowed to relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayClient {
    /// The exact certificate (PEM) the host presents; matched by the SHA-256 of its DER.
    pub certificate: PathBuf,
    /// The host name it may speak for, recorded as `relay=HOST` in audit lines and rows.
    pub host: String,
}

impl RelayConfig {
    /// Checks `[relay]`.
    pub(super) fn from_raw(raw: &Spanned<RawRelay>) -> Result<RelayConfig, Invalid> {
        let relay = raw.get_ref();
        let required = |key: &str, value: &Option<Text>| {
            value.clone().ok_or_else(|| {
                Invalid::new(
                    raw.span(),
                    format!("[relay] needs {key}: see otpd.toml(5), \"[relay]\""),
                )
            })
        };
        let upstream = required("upstream = \"HOST:PORT\"", &relay.upstream)?;
        let (upstream_host, upstream_port) = host_and_port(&upstream)?;
        let server_name = match &relay.server_name {
            Some(name) => check::host("server_name", name)?,
            None => upstream_host.clone(),
        };
        let host_name = relay
            .host_name
            .as_ref()
            .map(|name| relay_host_name("host_name", name))
            .transpose()?;
        let path = |key: &str, value: &Option<Text>| {
            let value = required(&format!("{key} = \"/PATH\""), value)?;
            check::absolute_path(key, &value)
        };
        let connect_timeout = match &relay.connect_timeout_seconds {
            Some(v) => check::duration("connect_timeout_seconds", v, 1, 30, SECOND)?,
            None => DEFAULT_RELAY_CONNECT_TIMEOUT,
        };
        let timeout = match &relay.timeout_seconds {
            Some(v) => check::duration("timeout_seconds", v, 1, 60, SECOND)?,
            None => DEFAULT_RELAY_TIMEOUT,
        };
        Ok(RelayConfig {
            upstream_host,
            upstream_port,
            server_name,
            host_name,
            client_cert: path("client_cert", &relay.client_cert)?,
            client_key: path("client_key", &relay.client_key)?,
            ca_file: path("ca_file", &relay.ca_file)?,
            connect_timeout: connect_timeout.min(timeout),
            timeout,
        })
    }
}

impl RelayListenerConfig {
    /// Checks `[relay_listener]`.
    pub(super) fn from_raw(
        raw: &Spanned<RawRelayListener>,
    ) -> Result<RelayListenerConfig, Invalid> {
        let listener = raw.get_ref();
        let required = |key: &str, value: &Option<Text>| {
            value.clone().ok_or_else(|| {
                Invalid::new(
                    raw.span(),
                    format!("[relay_listener] needs {key}: see otpd.toml(5), \"[relay_listener]\""),
                )
            })
        };
        let listen_text = required("listen = \"ADDRESS:PORT\"", &listener.listen)?;
        let listen = listen_text.get_ref().parse::<SocketAddr>().map_err(|_| {
            Invalid::new(
                listen_text.span(),
                format!(
                    "listen must be an IP address and a port, like \"0.0.0.0:7443\" or \"[::]:7443\", got {:?}",
                    listen_text.get_ref()
                ),
            )
        })?;
        let path = |key: &str, value: &Option<Text>| {
            let value = required(&format!("{key} = \"/PATH\""), value)?;
            check::absolute_path(key, &value)
        };
        let mut clients: Vec<RelayClient> = Vec::new();
        for entry in listener.clients.iter().flatten() {
            let client = entry.get_ref();
            let missing = |key: &str| {
                Invalid::new(
                    entry.span(),
                    format!("a [[relay_listener.clients]] entry needs {key}"),
                )
            };
            let certificate = client
                .certificate
                .as_ref()
                .ok_or_else(|| missing("certificate = \"/PATH\""))?;
            let host = client
                .host
                .as_ref()
                .ok_or_else(|| missing("host = \"NAME\""))?;
            let parsed = RelayClient {
                certificate: check::absolute_path("certificate", certificate)?,
                host: relay_host_name("host", host)?,
            };
            if clients.iter().any(|c| c.host == parsed.host) {
                return Err(Invalid::new(
                    host.span(),
                    format!(
                        "a second client speaks for {:?}; each host name belongs to one certificate",
                        parsed.host
                    ),
                ));
            }
            if clients.iter().any(|c| c.certificate == parsed.certificate) {
                return Err(Invalid::new(
                    certificate.span(),
                    "this certificate is listed twice; each certificate speaks for one host name",
                ));
            }
            clients.push(parsed);
        }
        if clients.is_empty() {
            return Err(Invalid::new(
                raw.span(),
                "[relay_listener] needs at least one [[relay_listener.clients]] entry (certificate and host): without one no DMZ host may relay",
            ));
        }
        let max_connections_per_client = match &listener.max_connections_per_client {
            Some(v) => check::cap("max_connections_per_client", v, 1, 1024)?,
            None => DEFAULT_RELAY_CONNECTIONS_PER_CLIENT,
        };
        let timeout = match &listener.timeout_seconds {
            Some(v) => check::duration("timeout_seconds", v, 1, 60, SECOND)?,
            None => DEFAULT_RELAY_LISTENER_TIMEOUT,
        };
        Ok(RelayListenerConfig {
            listen,
            cert: path("cert", &listener.cert)?,
            key: path("key", &listener.key)?,
            client_ca: path("client_ca", &listener.client_ca)?,
            clients,
            max_connections_per_client,
            timeout,
        })
    }
}

/// `HOST:PORT`, `HOST` (port 7443), `[IPV6]:PORT` or `[IPV6]`.
fn host_and_port(value: &Text) -> Result<(String, u16), Invalid> {
    let text = value.get_ref();
    let bad = || {
        Invalid::new(
            value.span(),
            format!(
                "upstream must be HOST:PORT (a host name or IP address, \"[IPV6]:PORT\" for IPv6), got {text:?}"
            ),
        )
    };
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(bad)?;
        if host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(bad());
        }
        match after {
            "" => (host, None),
            _ => (host, Some(after.strip_prefix(':').ok_or_else(bad)?)),
        }
    } else {
        match text.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text.as_str(), None),
        }
    };
    let port = match port {
        Some(port) => port
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(bad)?,
        None => DEFAULT_RELAY_PORT,
    };
    let host = Spanned::new(value.span(), host.to_string());
    let host = check::host("upstream", &host).map_err(|_| bad())?;
    Ok((host, port))
}

/// A host name a relay speaks for: DNS labels, lower-cased (names are compared as such).
fn relay_host_name(key: &str, value: &Text) -> Result<String, Invalid> {
    let name = check::host(key, value)?;
    if name.is_empty() {
        return Err(Invalid::new(
            value.span(),
            format!("{key} must not be empty"),
        ));
    }
    Ok(name.to_ascii_lowercase())
}

/// With `[relay]`, the sections that only matter where codes are decided are refused, at the
/// first one's position.
pub(super) fn refuse_beside_relay(raw: &RawConfig) -> Result<(), Invalid> {
    let why = "with [relay] this otpd forwards every login to the main otpd, which decides, mails and stores everything: remove it here (keep it on the main host)";
    let refuse = |what: &str, span: std::ops::Range<usize>| {
        Err(Invalid::new(
            span,
            format!("{what} is meaningless on a relay (DMZ) host: {why}"),
        ))
    };
    if let Some(mail) = &raw.mail {
        return refuse("[mail]", mail.span());
    }
    if let Some(store) = &raw.store {
        return refuse("[store]", store.span());
    }
    if let Some(listener) = &raw.relay_listener {
        return refuse("[relay_listener]", listener.span());
    }
    if let Some(directory) = &raw.directory {
        if let Some(first) = directory.ldap.iter().flatten().next() {
            return refuse("[[directory.ldap]]", first.span());
        }
        if let Some(template) = &directory.email_template {
            return refuse("[directory] email_template", template.span());
        }
    }
    let webhooks = raw.channels.iter().flat_map(|c| c.webhook.iter().flatten());
    if let Some(first) = webhooks.into_iter().next() {
        return refuse("[[channels.webhook]]", first.span());
    }
    if let Some(first) = raw.exemptions.iter().flatten().next() {
        return refuse("[[exemptions]]", first.span());
    }
    if let Some(first) = raw.policies.iter().flatten().next() {
        return refuse("[[policies]]", first.span());
    }
    if let Some((name, _)) = raw.profiles.iter().flatten().next() {
        return refuse("[profiles.NAME]", name.span());
    }
    if let Some(admin) = raw
        .notifications
        .as_ref()
        .and_then(|n| n.admin_address.as_ref())
    {
        return refuse("[notifications]", admin.span());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::Config;
    use super::*;

    const RELAY: &str = "[relay]\nupstream = \"main.example:7443\"\nclient_cert = \"/etc/otpd/dmz1.pem\"\nclient_key = \"/etc/otpd/dmz1.key\"\nca_file = \"/etc/otpd/main-ca.pem\"\n";

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(text, Path::new("/etc/otpd/otpd.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn a_relay_needs_no_mail_section_and_takes_the_upstreams_name_for_its_certificate() {
        let config = parse(RELAY).unwrap();
        let relay = config.relay.unwrap();
        assert_eq!(relay.upstream_host, "main.example");
        assert_eq!(relay.upstream_port, 7443);
        assert_eq!(relay.server_name, "main.example");
        assert_eq!(relay.host_name, None);
        assert_eq!(relay.timeout, DEFAULT_RELAY_TIMEOUT);
    }

    #[test]
    fn upstream_forms() {
        for (upstream, host, port) in [
            ("main.example", "main.example", 7443),
            ("192.0.2.1:9000", "192.0.2.1", 9000),
            ("[2001:db8::1]:7444", "2001:db8::1", 7444),
            ("[::1]", "::1", 7443),
        ] {
            let text = RELAY.replace("main.example:7443", upstream);
            let relay = parse(&text).unwrap().relay.unwrap();
            assert_eq!(
                (relay.upstream_host.as_str(), relay.upstream_port),
                (host, port)
            );
        }
        for bad in [
            "main.example:0",
            "main.example:x",
            "2001:db8::1",
            "[::1",
            "a b:1",
        ] {
            let text = RELAY.replace("main.example:7443", bad);
            let e = parse(&text).unwrap_err();
            assert!(
                e.contains(":2:12: upstream must be HOST:PORT"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn sections_meaningless_on_a_relay_are_refused_where_they_are() {
        for (extra, what, line) in [
            ("[mail]\nfrom = \"otp@example.com\"\n", "[mail]", 6),
            ("[store]\nbackend = \"sqlite\"\n", "[store]", 6),
            (
                "[[directory.ldap]]\nname = \"corp\"\n",
                "[[directory.ldap]]",
                6,
            ),
            (
                "[directory]\nemail_template = \"{user}@example.com\"\n",
                "email_template",
                7,
            ),
            (
                "[[channels.webhook]]\nname = \"sms\"\n",
                "[[channels.webhook]]",
                6,
            ),
            (
                "[relay_listener]\nlisten = \"0.0.0.0:7443\"\n",
                "[relay_listener]",
                6,
            ),
        ] {
            let e = parse(&format!("{RELAY}{extra}")).unwrap_err();
            assert!(
                e.contains(&format!("otpd.toml:{line}:")) && e.contains(what),
                "{what}: {e}"
            );
            assert!(e.contains("meaningless on a relay"), "{e}");
        }
    }

    #[test]
    fn the_relays_stand_in_sender_is_a_valid_address() {
        let config = parse(RELAY).unwrap();
        assert!(super::super::EmailAddress::parse(config.mail.from.as_str()).is_ok());
        assert!(config.mail.servers.is_empty());
    }

    #[test]
    fn without_relay_the_mail_section_is_still_required() {
        let e = parse("[daemon]\n").unwrap_err();
        assert!(e.contains("[mail] section is required"), "{e}");
    }

    const LISTENER: &str = "[mail]\nfrom = \"otp@example.com\"\n[relay_listener]\nlisten = \"0.0.0.0:7443\"\ncert = \"/etc/otpd/main.pem\"\nkey = \"/etc/otpd/main.key\"\nclient_ca = \"/etc/otpd/dmz-ca.pem\"\n[[relay_listener.clients]]\ncertificate = \"/etc/otpd/dmz1.pem\"\nhost = \"DMZ1.example\"\n";

    #[test]
    fn a_listener_maps_each_certificate_to_one_host() {
        let listener = parse(LISTENER).unwrap().relay_listener.unwrap();
        assert_eq!(listener.listen, "0.0.0.0:7443".parse().unwrap());
        assert_eq!(listener.clients.len(), 1);
        assert_eq!(listener.clients[0].host, "dmz1.example");
        assert_eq!(
            listener.max_connections_per_client,
            DEFAULT_RELAY_CONNECTIONS_PER_CLIENT
        );
        let twice = format!(
            "{LISTENER}[[relay_listener.clients]]\ncertificate = \"/etc/otpd/dmz2.pem\"\nhost = \"dmz1.example\"\n"
        );
        let e = parse(&twice).unwrap_err();
        assert!(e.contains(":13:8: a second client speaks for"), "{e}");
        let none = LISTENER.replace(
            "[[relay_listener.clients]]\ncertificate = \"/etc/otpd/dmz1.pem\"\nhost = \"DMZ1.example\"\n",
            "",
        );
        let e = parse(&none).unwrap_err();
        assert!(e.contains("at least one [[relay_listener.clients]]"), "{e}");
        let bad = LISTENER.replace("0.0.0.0:7443", "main.example:7443");
        let e = parse(&bad).unwrap_err();
        assert!(e.contains(":4:10: listen must be an IP address"), "{e}");
    }
}
