//! A private OpenLDAP slapd for one test: its own `slapd.conf` and `mdb` database in a temp
//! directory, listening on loopback only (plain `ldap://` with StartTLS, and `ldaps://`) with a
//! certificate from a [`TestCa`], the `memberof` overlay on, and the fixture's users and groups
//! added over LDAP (so the overlay fills `memberOf`). Stopped when dropped.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::programs::free_port;
use crate::tls::TestCa;

/// The directory's suffix, the search base of the tests' sources.
pub const BASE: &str = "dc=example,dc=com";
/// The DN otpd binds as (the database's root DN).
pub const BIND_DN: &str = "cn=admin,dc=example,dc=com";
/// Its password, as the tests' `bind_password_file` holds it.
pub const BIND_PASSWORD: &str = "test-bind-secret";

/// The users and groups every test directory holds. `alice` is in `ops` (a `groupOfNames`,
/// so `memberOf`) and `devs` (a `posixGroup`, so `memberUid`), department `Ops-1`; `bob` is in
/// neither, department `Sales`; three
/// users have names with filter characters and one (`zoë`, base64 in LDIF) a non-ASCII one,
/// each with an address naming them.
const FIXTURE: &str = "\
dn: dc=example,dc=com
objectClass: dcObject
objectClass: organization
o: Example
dc: example

dn: ou=people,dc=example,dc=com
objectClass: organizationalUnit
ou: people

dn: ou=groups,dc=example,dc=com
objectClass: organizationalUnit
ou: groups

dn: uid=alice,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
uid: alice
cn: Alice
sn: A
mail: alice@ldap.example.test
departmentNumber: Ops-1

dn: uid=bob,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
uid: bob
cn: Bob
sn: B
mail: bob@ldap.example.test
departmentNumber: Sales

dn: cn=star,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
uid: a*
cn: star
sn: S
mail: star@ldap.example.test

dn: cn=parens,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
uid: a(b)
cn: parens
sn: P
mail: parens@ldap.example.test

dn: cn=backslash,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
uid: a\\b
cn: backslash
sn: B
mail: backslash@ldap.example.test

dn: cn=zoe,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
uid:: em/Dqw==
cn: zoe
sn: Z
mail: zoe@ldap.example.test

dn: cn=ops,ou=groups,dc=example,dc=com
objectClass: groupOfNames
cn: ops
member: uid=alice,ou=people,dc=example,dc=com

dn: cn=devs,ou=groups,dc=example,dc=com
objectClass: posixGroup
cn: devs
gidNumber: 20000
memberUid: alice
";

/// A running slapd.
#[derive(Debug)]
pub struct Slapd {
    child: Option<Child>,
    dir: tempfile::TempDir,
    /// The plain port (StartTLS is offered there).
    pub ldap_port: u16,
    /// The LDAPS port.
    pub ldaps_port: u16,
    /// Whether TLS (LDAPS, StartTLS) is configured.
    tls: bool,
}

impl Slapd {
    /// Starts slapd with `ca`'s server certificate and loads the fixture.
    pub fn start(ca: &TestCa) -> Slapd {
        Slapd::start_with(Some(ca))
    }

    /// Starts slapd without any TLS: plain `ldap://` only, where StartTLS is refused.
    pub fn start_without_tls() -> Slapd {
        Slapd::start_with(None)
    }

    fn start_with(ca: Option<&TestCa>) -> Slapd {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        std::fs::create_dir(d.join("data")).expect("data dir");
        std::fs::write(d.join("slapd.conf"), conf(d, ca)).expect("write slapd.conf");
        let (ldap_port, ldaps_port) = (free_port(), free_port());
        let mut slapd = Slapd {
            child: None,
            dir,
            ldap_port,
            ldaps_port,
            tls: ca.is_some(),
        };
        // Another test may take a port between free_port and slapd's bind: try fresh ones.
        for _ in 0..3 {
            if slapd.run() {
                slapd.add(FIXTURE);
                return slapd;
            }
            slapd.stop();
            (slapd.ldap_port, slapd.ldaps_port) = (free_port(), free_port());
        }
        panic!("slapd did not start listening; its log:\n{}", slapd.log());
    }

    /// `ldap://127.0.0.1:PORT`.
    pub fn ldap_url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.ldap_port)
    }

    /// `ldaps://127.0.0.1:PORT`.
    pub fn ldaps_url(&self) -> String {
        format!("ldaps://127.0.0.1:{}", self.ldaps_port)
    }

    /// Stops slapd (SIGTERM, then waits).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: kill(2) with the pid of a child we spawned and have not reaped.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// What slapd logged: its `stats` level, one line per connection, operation and result
    /// (`BIND dn=...`, `EXT oid=...` for StartTLS).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("slapd.log")).unwrap_or_default()
    }

    /// Starts slapd on its ports; true once it listens on them, false when it exited or did
    /// not listen in time.
    fn run(&mut self) -> bool {
        let d = self.dir.path();
        let mut urls = format!("ldap://127.0.0.1:{}/", self.ldap_port);
        if self.tls {
            urls.push_str(&format!(" ldaps://127.0.0.1:{}/", self.ldaps_port));
        }
        // -d stats: in the foreground, so the test owns the process, logging each operation
        // to stderr (kept in slapd.log).
        let child = Command::new("/usr/sbin/slapd")
            .args(["-d", "stats", "-h", &urls, "-f"])
            .arg(d.join("slapd.conf"))
            .stdout(Stdio::null())
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(d.join("slapd.log"))
                    .expect("log"),
            )
            .spawn()
            .expect("start slapd (is the slapd package installed? tests/install-deps)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        let up = |port: u16| TcpStream::connect(("127.0.0.1", port)).is_ok();
        while !up(self.ldap_port) || (self.tls && !up(self.ldaps_port)) {
            let exited = self
                .child
                .as_mut()
                .is_none_or(|c| matches!(c.try_wait(), Ok(Some(_))));
            if exited || Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        true
    }

    /// Adds `ldif` as the root DN over plain LDAP on loopback.
    pub fn add(&self, ldif: &str) {
        let file = self.dir.path().join("add.ldif");
        std::fs::write(&file, ldif).expect("write ldif");
        let out = Command::new("ldapadd")
            .args([
                "-x",
                "-H",
                &self.ldap_url(),
                "-D",
                BIND_DN,
                "-w",
                BIND_PASSWORD,
                "-f",
            ])
            .arg(&file)
            .output()
            .expect("run ldapadd (is ldap-utils installed?)");
        assert!(
            out.status.success(),
            "ldapadd failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A private file holding [`BIND_PASSWORD`], for `bind_password_file`.
    pub fn password_file(&self) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = self.dir.path().join("bind-password");
        std::fs::write(&path, format!("{BIND_PASSWORD}\n")).expect("write password");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        path
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The server's configuration: schemas for users, groups and posixGroup, one `mdb` database
/// under [`BASE`] with [`BIND_DN`] as its root, the `memberof` overlay, TLS from `ca` (none
/// without), and read access for anyone (the tests bind or search anonymously).
fn conf(dir: &Path, ca: Option<&TestCa>) -> String {
    let tls = ca.map_or(String::new(), |ca| {
        format!(
            "TLSCACertificateFile {}\nTLSCertificateFile {}\nTLSCertificateKeyFile {}\n",
            ca.ca_cert().display(),
            ca.server_cert().display(),
            ca.server_key().display()
        )
    });
    format!(
        "include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload memberof
pidfile {dir}/slapd.pid
argsfile {dir}/slapd.args
{tls}database mdb
maxsize 16777216
suffix \"{BASE}\"
rootdn \"{BIND_DN}\"
rootpw {BIND_PASSWORD}
directory {dir}/data
overlay memberof
access to * by * read
",
        dir = dir.display(),
    )
}
