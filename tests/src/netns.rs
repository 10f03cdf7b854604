//! Network namespaces with real source addresses, for tests of what otpd decides from the rhost
//! sshd reports (`match_rhost`): a client in a namespace reaches a server in the root namespace
//! over its own veth pair, so sshd sees the namespace's address, not loopback.
//!
//! Each [`Namespace`] is a veth pair: `198.18.N.1/24` on the root side (where the server
//! listens), `198.18.N.2/24` on `eth0` inside (where the client connects from). 198.18.0.0/15 is
//! the benchmarking range (RFC 2544): never routed, so nothing here can leave the machine. The
//! namespace and the pair are removed on drop, also when the test panics. A namespace can also be
//! plugged into a bridge instead ([`crate::bridge`]), for several hosts on one segment.

use std::fmt;
use std::fs;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

use crate::programs::ssh_client::SshOutcome;
use crate::programs::sshd::Sshd;

/// Why namespaces cannot be made here (`ip netns add` was refused): the test says so and skips.
#[derive(Debug)]
pub struct NotPermitted(pub String);

impl fmt::Display for NotPermitted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`ip netns add` is not permitted here: {}", self.0.trim())
    }
}

/// A network namespace joined to the root namespace by a veth pair.
#[derive(Debug)]
pub struct Namespace {
    /// The namespace name, for `ip netns exec` (`otpns-<role>-<pid>`).
    pub name: String,
    /// The root side's address: where a server listens for this namespace's clients.
    pub server_addr: Ipv4Addr,
    /// The namespace side's address: the source address of its connections.
    pub client_addr: Ipv4Addr,
    /// The root side of the veth pair.
    host_link: String,
}

impl Namespace {
    /// Creates `otpns-<role>-<pid>` on subnet `198.18.<subnet>.0/24`. Errs only when `ip netns
    /// add` is refused for lack of privilege; any other failure is a broken test and panics
    /// (after which drop removes what was made).
    pub fn create(role: &str, subnet: u8) -> Result<Namespace, NotPermitted> {
        let pid = std::process::id();
        let role_letter = role.chars().next().unwrap_or('x');
        let namespace = Namespace::add(
            format!("otpns-{role}-{pid}"),
            // Interface names have at most 15 characters: `otpv` + letter + `-` + pid fits.
            format!("otpv{role_letter}-{pid}"),
            Ipv4Addr::new(198, 18, subnet, 1),
            Ipv4Addr::new(198, 18, subnet, 2),
        )?;
        let server = format!("{}/24", namespace.server_addr);
        ip(&["addr", "add", &server, "dev", &namespace.host_link]);
        ip(&["link", "set", &namespace.host_link, "up"]);
        Ok(namespace)
    }

    /// Creates the namespace `name` with `client_addr/24` on its `eth0`, whose root end
    /// `host_link` is a port of `bridge` (which holds `server_addr`): the way several hosts
    /// share one network segment. Errs like [`Namespace::create`].
    pub fn create_on_bridge(
        name: String,
        host_link: String,
        bridge: &str,
        server_addr: Ipv4Addr,
        client_addr: Ipv4Addr,
    ) -> Result<Namespace, NotPermitted> {
        let namespace = Namespace::add(name, host_link, server_addr, client_addr)?;
        ip(&["link", "set", &namespace.host_link, "master", bridge]);
        ip(&["link", "set", &namespace.host_link, "up"]);
        Ok(namespace)
    }

    /// The namespace and its veth pair, `client_addr/24` on `eth0` inside, the root end
    /// `host_link` not yet up.
    fn add(
        name: String,
        host_link: String,
        server_addr: Ipv4Addr,
        client_addr: Ipv4Addr,
    ) -> Result<Namespace, NotPermitted> {
        ip_unless_refused(&["netns", "add", &name])?;
        let namespace = Namespace {
            host_link,
            name,
            server_addr,
            client_addr,
        };
        let client = format!("{}/24", namespace.client_addr);
        ip(&[
            "link",
            "add",
            &namespace.host_link,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            &namespace.name,
        ]);
        namespace.ip_inside(&["addr", "add", &client, "dev", "eth0"]);
        namespace.ip_inside(&["link", "set", "eth0", "up"]);
        namespace.ip_inside(&["link", "set", "lo", "up"]);
        Ok(namespace)
    }

    /// `cmd` run inside this namespace (`ip netns exec NAME cmd`).
    pub fn command(&self, cmd: &str) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name, cmd]);
        command
    }

    /// Lets this namespace open TCP connections only to `addr:port` (and itself): an nftables
    /// output chain inside it drops everything else. The namespace has no route beyond its
    /// veth pair anyway; this narrows it to one port of the root side.
    pub fn only_allow_tcp_to(&self, addr: Ipv4Addr, port: u16) {
        let rules = format!(
            "table inet otp_tests {{\n chain out {{\n  type filter hook output priority 0; policy drop;\n  oif \"lo\" accept\n  ip daddr {addr} tcp dport {port} accept\n }}\n}}\n"
        );
        let mut nft = self.command("nft");
        let mut child = nft
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run nft (nftables)");
        std::io::Write::write_all(child.stdin.as_mut().expect("nft stdin"), rules.as_bytes())
            .expect("write the rules");
        drop(child.stdin.take());
        let out = child.wait_with_output().expect("nft");
        assert!(
            out.status.success(),
            "nft -f failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Whether a TCP connection from inside this namespace to `addr:port` is made within 2 s.
    pub fn can_connect(&self, addr: Ipv4Addr, port: u16) -> bool {
        self.command("timeout")
            .args([
                "2",
                "bash",
                "-c",
                &format!("exec 3<>/dev/tcp/{addr}/{port}"),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    fn ip_inside(&self, args: &[&str]) {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        ip(&all);
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        // Deleting the namespace deletes its end of the pair, and with it the root end; the
        // explicit delete covers a pair whose peer never reached the namespace.
        for args in [
            vec!["netns", "del", self.name.as_str()],
            vec!["link", "del", self.host_link.as_str()],
        ] {
            let _ = Command::new("ip")
                .args(&args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Runs `ip args`, the first step of making something: errs when the kernel refuses for lack of
/// privilege (the test then skips), panics on any other failure (a name left over, a missing
/// tool: a broken test).
pub(crate) fn ip_unless_refused(args: &[&str]) -> Result<(), NotPermitted> {
    let output = Command::new("ip")
        .args(args)
        .output()
        .expect("run ip (iproute2)");
    if output.status.success() {
        return Ok(());
    }
    let why = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        why.contains("not permitted") || why.contains("Permission denied"),
        "ip {} failed: {why}",
        args.join(" ")
    );
    Err(NotPermitted(why))
}

/// Runs `ip args`, panicking with its message when it fails.
pub(crate) fn ip(args: &[&str]) {
    let output = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        output.status.success(),
        "ip {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The real `ssh` client run inside a namespace (`ip netns exec NAME ssh ...`), logging in over
/// keyboard-interactive to `sshd` at `addr:port`. Prompts go through the same askpass helper as
/// [`crate::programs::ssh_client::SshClient`], which cannot take a command prefix.
pub fn ssh_from(
    namespace: &Namespace,
    sshd: &Sshd,
    port: u16,
    user: &str,
    command: &str,
    answer: impl FnMut(&str) -> String,
) -> SshOutcome {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = namespace.server_addr;
    // The host key line names 127.0.0.1 and the loopback port; this client connects elsewhere.
    let loopback_line = sshd.known_hosts_line();
    let (_, key) = loopback_line.split_once(' ').expect("HOST KEY");
    let known_hosts = dir.path().join("known_hosts");
    fs::write(&known_hosts, format!("[{server}]:{port} {key}\n")).expect("write known_hosts");
    let mut ssh = namespace.command("ssh");
    ssh.arg("-F")
        .arg("/dev/null")
        .arg("-p")
        .arg(port.to_string());
    for option in [
        "BatchMode=no".to_string(),
        format!("UserKnownHostsFile={}", known_hosts.display()),
        "GlobalKnownHostsFile=/dev/null".into(),
        "StrictHostKeyChecking=yes".into(),
        "UpdateHostKeys=no".into(),
        "ConnectTimeout=10".into(),
        "NumberOfPasswordPrompts=1".into(),
        "IdentityAgent=none".into(),
        "PreferredAuthentications=keyboard-interactive".into(),
        "PubkeyAuthentication=no".into(),
    ] {
        ssh.arg("-o").arg(option);
    }
    ssh.arg(format!("{user}@{server}")).arg(command);

    crate::programs::ssh_client::drive(ssh, dir.path(), &dir.path().join("talk"), answer)
}
