//! `match_rhost` networks (issue #16, trusted networks): a policy that spares a network the code
//! should name a small, private one. Wider than /16 (IPv4) or /48 (IPv6), or holding public
//! addresses, it is likely a typo or a hole: anyone there logs in with the first factor alone.

use common::config::{Config, Network};

use super::Finding;

/// The widest IPv4 network doctor accepts without a warning.
const WIDEST_V4: u8 = 16;
/// The widest IPv6 network doctor accepts without a warning: one site.
const WIDEST_V6: u8 = 48;

/// Address ranges that are not routed on the internet: RFC 1918, shared address space (CGNAT),
/// loopback, link-local, and IPv6 unique-local, link-local and loopback.
const PRIVATE: [&str; 9] = [
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "fc00::/7",
    "fe80::/10",
    "::1/128",
];

/// One finding per `match_rhost` network that deserves a warning; one `ok` when there are
/// networks and all are fine; nothing when no policy has any.
pub fn check(config: &Config) -> Vec<Finding> {
    let private: Vec<Network> = PRIVATE
        .iter()
        .filter_map(|text| Network::parse(text).ok())
        .collect();
    let mut out = Vec::new();
    let mut seen = 0;
    for policy in &config.policies {
        for network in policy.rhost_networks() {
            seen += 1;
            out.extend(judge(network, &policy.profile, &private));
        }
    }
    if seen > 0 && out.is_empty() {
        out.push(Finding::ok(
            "networks",
            format!("{seen} match_rhost network(s), all private and at most /{WIDEST_V4} (IPv4) or /{WIDEST_V6} (IPv6)"),
        ));
    }
    out
}

fn judge(network: &Network, profile: &str, private: &[Network]) -> Vec<Finding> {
    let mut out = Vec::new();
    let widest = if network.address().is_ipv4() {
        WIDEST_V4
    } else {
        WIDEST_V6
    };
    if network.prefix() < widest {
        out.push(Finding::warning(
            "networks",
            format!("match_rhost network {network} (profile {profile}) is wider than /{widest}"),
            "name only the management network itself; every host in it gets this profile's settings",
        ));
    }
    if !private.iter().any(|p| network.within(p)) {
        out.push(Finding::warning(
            "networks",
            format!(
                "match_rhost network {network} (profile {profile}) holds public addresses"
            ),
            "trust only private ranges (10/8, 172.16/12, 192.168/16, fc00::/7) reached through your own network",
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ctl::doctor::Level;
    use crate::test_support::config;

    fn findings(networks: &str) -> Vec<(Level, String)> {
        let c = config(&format!(
            "[profiles.mgmt]\nmode = \"off\"\n[[policies]]\nmatch_rhost = [{networks}]\nprofile = \"mgmt\""
        ));
        check(&c)
            .into_iter()
            .map(|f| (f.level, f.message))
            .collect()
    }

    fn warnings(networks: &str) -> Vec<String> {
        findings(networks)
            .into_iter()
            .filter(|(level, _)| *level == Level::Warning)
            .map(|(_, message)| message)
            .collect()
    }

    #[test]
    fn small_private_networks_are_fine() {
        let all = findings("\"10.20.0.0/16\", \"192.168.1.0/24\", \"fd00:1:2::/48\"");
        assert_eq!(all.len(), 1, "{all:?}");
        assert_eq!(all[0].0, Level::Ok);
        assert!(check(&config("")).is_empty(), "no networks, no finding");
    }

    #[test]
    fn a_network_wider_than_a_16_or_a_48_is_warned_about() {
        let w = warnings("\"10.0.0.0/8\"");
        assert_eq!(
            w,
            ["match_rhost network 10.0.0.0/8 (profile mgmt) is wider than /16"]
        );
        let w = warnings("\"fd00::/8\"");
        assert_eq!(
            w,
            ["match_rhost network fd00::/8 (profile mgmt) is wider than /48"]
        );
    }

    #[test]
    fn a_network_with_public_addresses_is_warned_about() {
        let w = warnings("\"203.0.113.0/24\"");
        assert_eq!(
            w,
            ["match_rhost network 203.0.113.0/24 (profile mgmt) holds public addresses"]
        );
        // Wider than 172.16/12 reaches past it.
        let w = warnings("\"172.0.0.0/16\"");
        assert!(w.iter().any(|m| m.contains("public")), "{w:?}");
        let w = warnings("\"0.0.0.0/0\"");
        assert_eq!(w.len(), 2, "{w:?}");
        let w = warnings("\"2001:db8::/48\"");
        assert!(w.iter().any(|m| m.contains("public")), "{w:?}");
    }
}
