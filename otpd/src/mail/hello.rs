//! The name otpd gives in EHLO: a fully-qualified domain name, or else an address literal.
//!
//! RFC 5321 4.1.1.1 asks for the client's fully-qualified domain name, or an address literal
//! when it has none. A short host name (`vm`) is neither, and mail servers that check it refuse
//! the session: Postfix's common `reject_non_fqdn_helo_hostname` answers `504 5.5.2 <vm>: Helo
//! command rejected`, every login's mail fails, and nobody can log in. So otpd looks for the
//! host's canonical name (`hostname -f`, through NSS: /etc/hosts, then DNS) and, when that is
//! not fully qualified either, says EHLO with the literal of the connection's own address
//! (`[192.0.2.7]`), which those checks accept. Either way it warns, at start and in
//! `--check-config` and `otpctl doctor`, so the admin can set `hello_name`.

use common::config::MailConfig;

/// What otpd says when this machine has no fully-qualified name.
pub const NOT_QUALIFIED: &str = "this machine's host name is not fully qualified (it has no domain, as `hostname -f` shows), so EHLO carries the address literal of each connection (e.g. [127.0.0.1]); give the host a name with a domain (in /etc/hosts) or set hello_name in [[mail.servers]]";

/// This machine's fully-qualified name, if it has one: the host name itself when it holds a
/// domain, else its canonical name. It asks NSS, so it is called at start and reload only.
pub fn fully_qualified_name() -> Option<String> {
    let host = nix::unistd::gethostname().ok()?.into_string().ok()?;
    if is_fully_qualified(&host) {
        return Some(host);
    }
    canonical_name(&host).filter(|name| is_fully_qualified(name))
}

/// The canonical name of `host` (getaddrinfo with `AI_CANONNAME`, as `hostname -f` does).
fn canonical_name(host: &str) -> Option<String> {
    let hints = dns_lookup::AddrInfoHints {
        flags: nix::libc::AI_CANONNAME,
        ..dns_lookup::AddrInfoHints::default()
    };
    dns_lookup::getaddrinfo(Some(host), None, Some(hints))
        .ok()?
        .filter_map(Result::ok)
        .find_map(|info| info.canonname)
}

/// True for a name with a domain that a strict server takes for fully qualified: at least two
/// DNS labels, the last not all digits, and not a `localhost` name.
pub fn is_fully_qualified(name: &str) -> bool {
    let labels: Vec<&str> = name.split('.').collect();
    let lower = name.to_ascii_lowercase();
    labels.len() >= 2
        && name.len() <= 253
        && labels.iter().all(|label| is_dns_label(label))
        && !labels
            .last()
            .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
        && !lower.starts_with("localhost.")
        && !lower.ends_with(".localdomain")
}

fn is_dns_label(label: &str) -> bool {
    (1..=63).contains(&label.len())
        && !label.starts_with('-')
        && !label.ends_with('-')
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// What `--check-config` and `otpctl doctor` warn about the EHLO names of `mail`, given the
/// machine's fully-qualified name (`found`): each `hello_name` that is neither fully qualified
/// nor an IP address, and the host's own name when a server relies on it and it is not.
pub fn warnings(mail: &MailConfig, found: Option<&str>) -> Vec<String> {
    let mut warnings = Vec::new();
    let mut relies_on_host = false;
    for server in &mail.servers {
        match &server.hello_name {
            Some(name)
                if name.parse::<std::net::IpAddr>().is_err() && !is_fully_qualified(name) =>
            {
                warnings.push(format!(
                    "mail server {}: hello_name {name:?} is not fully qualified; servers that check EHLO (Postfix's reject_non_fqdn_helo_hostname) refuse it: use a name with a domain or an IP address",
                    server.name
                ));
            }
            Some(_) => {}
            None => relies_on_host = true,
        }
    }
    if relies_on_host && found.is_none() {
        warnings.push(NOT_QUALIFIED.to_string());
    }
    warnings
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::config::Config;

    #[test]
    fn short_names_and_localhost_are_not_fully_qualified() {
        for name in [
            "vm",
            "localhost",
            "localhost.localdomain",
            "vm.localdomain",
            "a.123",
            "",
            "a..b",
            "-a.example",
        ] {
            assert!(!is_fully_qualified(name), "{name}");
        }
        for name in ["vm.example.com", "mail1.corp.example", "h.example"] {
            assert!(is_fully_qualified(name), "{name}");
        }
    }

    #[test]
    fn the_found_name_is_fully_qualified_or_none() {
        if let Some(name) = fully_qualified_name() {
            assert!(is_fully_qualified(&name), "{name}");
        }
    }

    fn mail(servers: &str) -> MailConfig {
        let text = format!("[mail]\nfrom = \"otp@example.com\"\n{servers}");
        Config::parse(&text, std::path::Path::new("t.toml"))
            .unwrap()
            .mail
    }

    fn server(name: &str, hello: Option<&str>) -> String {
        let hello = hello
            .map(|h| format!("hello_name = {h:?}\n"))
            .unwrap_or_default();
        format!(
            "[[mail.servers]]\nname = \"{name}\"\nhost = \"127.0.0.1\"\nsecurity = \"none\"\n{hello}\n"
        )
    }

    #[test]
    fn a_short_hello_name_is_warned_about_and_an_address_or_domain_is_not() {
        let config = mail(
            &[
                server("short", Some("vm")),
                server("fqdn", Some("vm.example.com")),
                server("literal", Some("192.0.2.7")),
            ]
            .concat(),
        );
        let warnings = warnings(&config, None);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].starts_with("mail server short: hello_name \"vm\""),
            "{warnings:?}"
        );
    }

    #[test]
    fn the_host_name_is_warned_about_only_when_a_server_relies_on_it() {
        let relies = mail(&server("local", None));
        assert_eq!(warnings(&relies, None), [NOT_QUALIFIED.to_string()]);
        assert!(warnings(&relies, Some("vm.example.com")).is_empty());
        let own = mail(&server("local", Some("box.example.com")));
        assert!(warnings(&own, None).is_empty());
    }
}
