//! Several hosts on one network segment: a Linux bridge in the root namespace and one network
//! namespace per host, each joined to the bridge by a veth pair. This is how the fleet tests
//! (issue #20) put three otpd on three "machines" that reach one PostgreSQL and one mail server
//! over a real network, not loopback.
//!
//! The segment is `198.18.<subnet>.0/24` (RFC 2544's benchmarking range, never routed): the
//! bridge holds `.1`, where the root namespace's servers listen; the hosts are `.2`, `.3`, ...
//! Names carry the test process's pid, and the subnet tells one test's segment from another's
//! in the same process. Everything is removed on drop, also when the test panics.

use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

use crate::netns::{Namespace, NotPermitted, ip, ip_unless_refused};

/// A bridge with its address and the namespaces plugged into it.
#[derive(Debug)]
pub struct Bridge {
    /// The bridge's interface name (`obr<subnet>-<pid>`).
    pub name: String,
    /// The bridge's address: where servers in the root namespace listen for the hosts.
    pub addr: Ipv4Addr,
    /// The hosts, in order of their addresses (`.2` first).
    pub hosts: Vec<Namespace>,
}

impl Bridge {
    /// Makes the bridge for `198.18.<subnet>.0/24` and `hosts` namespaces on it. Errs only when
    /// the kernel refuses for lack of privilege (the test then skips); any other failure is a
    /// broken test and panics, after which drop removes what was made.
    pub fn create(subnet: u8, hosts: u8) -> Result<Bridge, NotPermitted> {
        assert!(hosts <= 26, "hosts are named a to z");
        let pid = std::process::id();
        // Interface names have at most 15 characters: `obr` + subnet + `-` + pid fits.
        let name = format!("obr{subnet}-{pid}");
        ip_unless_refused(&["link", "add", &name, "type", "bridge"])?;
        let mut bridge = Bridge {
            name,
            addr: Ipv4Addr::new(198, 18, subnet, 1),
            hosts: Vec::new(),
        };
        ip(&[
            "addr",
            "add",
            &format!("{}/24", bridge.addr),
            "dev",
            &bridge.name,
        ]);
        ip(&["link", "set", &bridge.name, "up"]);
        for n in 0..hosts {
            let letter = char::from(b'a' + n);
            let host = Namespace::create_on_bridge(
                format!("otpns-br{subnet}{letter}-{pid}"),
                format!("ob{subnet}{letter}-{pid}"),
                &bridge.name,
                bridge.addr,
                Ipv4Addr::new(198, 18, subnet, 2 + n),
            )?;
            bridge.hosts.push(host);
        }
        Ok(bridge)
    }

    /// The segment in CIDR notation, e.g. for pg_hba.conf.
    pub fn cidr(&self) -> String {
        let [a, b, c, _] = self.addr.octets();
        format!("{a}.{b}.{c}.0/24")
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        // The namespaces go first (each takes its veth pair along), then the bridge.
        self.hosts.clear();
        let _ = Command::new("ip")
            .args(["link", "del", self.name.as_str()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}
