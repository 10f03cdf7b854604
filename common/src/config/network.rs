//! `match_rhost` networks: CIDRs a policy matches the remote host against (issue #16, trusted
//! networks). Only a remote host otpd believes (reported by root or a trusted caller) is ever
//! matched; see otpd's `caller::believed`.

use std::fmt;
use std::net::IpAddr;

use super::error::Invalid;
use super::raw::Text;

/// One network, `ADDRESS/PREFIX`, with the host bits zero (so `10.0.0.1/8` is refused as a
/// probable typo rather than read as `10.0.0.0/8`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    address: IpAddr,
    prefix: u8,
}

impl Network {
    /// Parses `ADDRESS/PREFIX`; the error says what would be accepted.
    pub fn parse(text: &str) -> Result<Network, String> {
        let Some((address, prefix)) = text.split_once('/') else {
            return Err(format!(
                "{text:?} is not a network: write ADDRESS/PREFIX, e.g. \"10.0.0.0/8\" or \"fd00::/8\""
            ));
        };
        let address: IpAddr = address
            .parse()
            .map_err(|_| format!("{address:?} is not an IPv4 or IPv6 address"))?;
        let max = max_prefix(address);
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| *p <= max && !prefix.starts_with('+'))
            .ok_or_else(|| {
                format!("the prefix length {prefix:?} must be a number from 0 to {max}")
            })?;
        let network = Network { address, prefix };
        if network.masked(address) != bits(address) {
            return Err(format!(
                "{text:?} has host bits set; the network is {}",
                Network {
                    address: from_bits(address, network.masked(address)),
                    prefix
                }
            ));
        }
        Ok(network)
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// The network's first address.
    pub fn address(&self) -> IpAddr {
        self.address
    }

    /// True when `ip` lies in this network. An IPv4-mapped IPv6 address (`::ffff:10.1.2.3`,
    /// as a dual-stack listener reports IPv4 peers) is matched as the IPv4 address it is.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        ip.is_ipv4() == self.address.is_ipv4() && self.masked(ip) == bits(self.address)
    }

    /// True when every address of `self` lies in `other`.
    pub fn within(&self, other: &Network) -> bool {
        self.prefix >= other.prefix && other.contains(self.address)
    }

    fn masked(&self, ip: IpAddr) -> u128 {
        let width = u32::from(max_prefix(ip));
        let host_bits = width - u32::from(self.prefix);
        let mask = u128::MAX.checked_shl(host_bits).unwrap_or(0);
        bits(ip) & mask
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix)
    }
}

fn max_prefix(ip: IpAddr) -> u8 {
    if ip.is_ipv4() { 32 } else { 128 }
}

fn bits(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

fn from_bits(like: IpAddr, value: u128) -> IpAddr {
    match like {
        // The value came from masking an IPv4 address's 32 bits, so it fits.
        IpAddr::V4(_) => IpAddr::V4(u32::try_from(value).unwrap_or(0).into()),
        IpAddr::V6(_) => IpAddr::V6(value.into()),
    }
}

/// `match_rhost`: a non-empty list of networks.
pub(super) fn networks(list: &toml::Spanned<Vec<Text>>) -> Result<Vec<Network>, Invalid> {
    if list.get_ref().is_empty() {
        return Err(Invalid::new(
            list.span(),
            "match_rhost is empty and would match nothing; list networks, or leave it out to match every remote host",
        ));
    }
    list.get_ref()
        .iter()
        .map(|text| {
            Network::parse(text.get_ref())
                .map_err(|why| Invalid::new(text.span(), format!("match_rhost: {why}")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn a_network_contains_exactly_its_addresses() {
        let net = Network::parse("10.20.0.0/16").unwrap();
        assert!(net.contains(ip("10.20.0.1")));
        assert!(net.contains(ip("10.20.255.255")));
        assert!(!net.contains(ip("10.21.0.0")));
        assert!(!net.contains(ip("10.19.255.255")));
        assert!(!net.contains(ip("::ffff:10.21.0.1")));
        assert!(net.contains(ip("::ffff:10.20.3.4")), "IPv4-mapped IPv6");
        assert!(
            !net.contains(ip("::a14:1")),
            "an IPv6 address is not an IPv4 one"
        );
        let v6 = Network::parse("fd00:1:2::/48").unwrap();
        assert!(v6.contains(ip("fd00:1:2:ffff::9")));
        assert!(!v6.contains(ip("fd00:1:3::1")));
        assert!(!v6.contains(ip("10.20.0.1")));
        assert!(
            Network::parse("0.0.0.0/0")
                .unwrap()
                .contains(ip("203.0.113.7"))
        );
        assert!(
            Network::parse("192.0.2.7/32")
                .unwrap()
                .contains(ip("192.0.2.7"))
        );
        assert!(
            !Network::parse("192.0.2.7/32")
                .unwrap()
                .contains(ip("192.0.2.8"))
        );
    }

    #[test]
    fn malformed_networks_are_refused_with_a_reason() {
        for (text, says) in [
            ("10.0.0.0", "write ADDRESS/PREFIX"),
            ("10.0.0/8", "not an IPv4 or IPv6 address"),
            ("10.0.0.0/33", "from 0 to 32"),
            ("fd00::/129", "from 0 to 128"),
            ("10.0.0.0/+8", "from 0 to 32"),
            ("10.0.0.0/", "from 0 to 32"),
            ("10.0.0.1/8", "the network is 10.0.0.0/8"),
            ("example.com/24", "not an IPv4 or IPv6 address"),
        ] {
            let e = Network::parse(text).unwrap_err();
            assert!(e.contains(says), "{text}: {e}");
        }
    }

    #[test]
    fn within_compares_networks() {
        let ten = Network::parse("10.0.0.0/8").unwrap();
        assert!(Network::parse("10.1.0.0/16").unwrap().within(&ten));
        assert!(!ten.within(&Network::parse("10.1.0.0/16").unwrap()));
        assert!(!Network::parse("11.0.0.0/16").unwrap().within(&ten));
    }
}
