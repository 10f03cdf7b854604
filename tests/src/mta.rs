//! Debian's two real MTAs, Postfix 3.7 and Exim 4.96, each run as a private instance for one
//! test: own config, queue and log in a temporary directory, listening on free loopback ports
//! (one for plain SMTP and STARTTLS, one for implicit TLS), AUTH PLAIN and LOGIN for one test
//! account offered only over TLS, the distribution's default limits unless the test adds lines,
//! and every accepted message relayed on to an [`SmtpCapture`], where the test reads the codes.
//!
//! Postfix comes from its Debian package (`tests/install-deps`; its service is never started),
//! with Cyrus SASL's sasldb for AUTH. Exim cannot be installed next to it, so its binary runs
//! from the extracted `.deb`s in [`EXIM_ROOT`]. Both run as root, as they do on a server, and
//! both are stopped on drop with their whole process group, so no delivery process outlives the
//! test.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::programs::free_port;
use crate::smtp::SmtpCapture;
use crate::tls::TestCa;

/// Where `tests/install-deps` extracts Debian's exim4-base and exim4-daemon-light packages.
pub const EXIM_ROOT: &str = "/var/cache/otp-tests/exim";
/// Postfix's daemons, from the Debian package.
const POSTFIX_DAEMONS: &str = "/usr/lib/postfix/sbin";
/// Debian's stock master.cf: the services and process limits every Postfix install starts with.
const POSTFIX_MASTER_CF: &str = "/usr/share/postfix/master.cf.dist";
/// The account both MTAs accept for AUTH.
pub const AUTH_USER: &str = "otp";
/// Its password (a space, so quoting mistakes show).
pub const AUTH_PASSWORD: &str = "otp test password";
/// The domain of the test account in Postfix's sasldb (its `smtpd_sasl_local_domain`).
const SASL_REALM: &str = "example.test";
/// How long an MTA may take to listen on both ports.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a stopped MTA's processes may take to exit before they are killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// The loopback ports of one MTA instance.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    /// Plain SMTP with STARTTLS offered (where `security = "none"` and `"starttls"` connect).
    pub smtp: u16,
    /// Implicit TLS (SMTPS, `security = "tls"`).
    pub smtps: u16,
}

/// A daemon that leads its own process group, stopped with the whole group.
#[derive(Debug)]
struct Daemon {
    name: &'static str,
    child: Option<Child>,
}

impl Daemon {
    /// Starts `command` with its output appended to `output`. `new_group`: put it in a process
    /// group of its own; false for a daemon that calls setsid(2) itself (Postfix's master, whose
    /// setsid would fail as a group leader).
    fn spawn(name: &'static str, mut command: Command, output: &Path, new_group: bool) -> Daemon {
        let out = fs::File::options()
            .create(true)
            .append(true)
            .open(output)
            .expect("open the daemon's output file");
        let err = out.try_clone().expect("clone the output handle");
        if new_group {
            command.process_group(0);
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("start {name}: {e} (run tests/install-deps)"));
        Daemon {
            name,
            child: Some(child),
        }
    }

    fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Waits until both ports are listening; false when the daemon exited first or did not
    /// listen in time. It never connects: a probe connection would show up in the MTA's log as
    /// a client that left without QUIT, which is what the tests look for.
    fn wait_listening(&mut self, ports: Ports) -> bool {
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            if !self.is_running() {
                return false;
            }
            if is_listening(ports.smtp) && is_listening(ports.smtps) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        false
    }

    /// SIGTERM to the group (the daemon and every process it forked), then SIGKILL to what is
    /// left.
    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = libc::pid_t::try_from(child.id()).expect("pid fits pid_t");
        // SAFETY: kill(2) on the child this struct spawned and on the process group it leads
        // (process_group(0) or its own setsid made it the leader), with a valid signal.
        unsafe {
            libc::kill(-pid, libc::SIGTERM);
            libc::kill(pid, libc::SIGTERM);
        };
        let deadline = Instant::now() + STOP_TIMEOUT;
        let mut exited = false;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                exited = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if !exited {
            eprintln!("{} did not stop on SIGTERM; killing it", self.name);
        }
        // Children that outlive the leader (a delivery in progress) go too.
        std::thread::sleep(Duration::from_millis(100));
        // SAFETY: as above; the group may be empty by now, which kill(2) reports harmlessly.
        unsafe { libc::kill(-pid, libc::SIGKILL) };
        let _ = child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Whether a socket listens on 127.0.0.1:`port`, from the kernel's table (/proc/net/tcp:
/// local address `0100007F:PORT` in hex, state `0A`, LISTEN).
fn is_listening(port: u16) -> bool {
    let local = format!("0100007F:{port:04X}");
    fs::read_to_string("/proc/net/tcp")
        .unwrap_or_default()
        .lines()
        .skip(1)
        .any(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            fields.get(1) == Some(&local.as_str()) && fields.get(3) == Some(&"0A")
        })
}

/// Two loopback ports that were free a moment ago.
fn free_ports() -> Ports {
    loop {
        let ports = Ports {
            smtp: free_port(),
            smtps: free_port(),
        };
        if ports.smtp != ports.smtps {
            return ports;
        }
    }
}

/// Starts a daemon on free ports, retrying in case another process takes a port in between:
/// `start` writes the config for the ports and returns the command. Panics with `log()` when no
/// attempt listened.
fn start_on_free_ports(
    name: &'static str,
    output: &Path,
    new_group: bool,
    mut start: impl FnMut(Ports) -> Command,
    log: impl Fn() -> String,
) -> (Daemon, Ports) {
    for _ in 0..3 {
        let ports = free_ports();
        let mut daemon = Daemon::spawn(name, start(ports), output, new_group);
        if daemon.wait_listening(ports) {
            return (daemon, ports);
        }
        daemon.stop();
    }
    panic!(
        "{name} did not start listening; its output:\n{}\nits log:\n{}",
        fs::read_to_string(output).unwrap_or_default(),
        log()
    );
}

/// A temporary directory that the MTAs' unprivileged users can traverse.
fn shared_tempdir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    dir
}

/// A directory the MTAs' unprivileged users can traverse, whatever the process's umask (a
/// process that loaded pam_oath runs with 0177, which would leave it without search rights).
fn shared_dir(path: &Path) {
    fs::create_dir(path).expect("mkdir");
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).expect("chmod");
}

fn run(command: &mut Command) -> String {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("run {command:?}: {e}"));
    assert!(
        out.status.success(),
        "{command:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn chown(path: &Path, user: &str) {
    run(Command::new("chown").arg(user).arg(path));
}

/// Writes `dir/sendmail`, a shell script running `exec_line` with the caller's arguments.
fn sendmail_wrapper(dir: &Path, exec_line: &str) -> PathBuf {
    let path = dir.join("sendmail");
    fs::write(&path, format!("#!/bin/sh\n{exec_line}\n")).expect("write the sendmail wrapper");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

/// Waits up to `timeout` until `queue_len` says 0; returns the last count.
fn wait_queue_empty(queue_len: impl Fn() -> usize, timeout: Duration) -> usize {
    let deadline = Instant::now() + timeout;
    loop {
        let n = queue_len();
        if n == 0 || Instant::now() >= deadline {
            return n;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

// --- Postfix ---

/// A private Postfix instance.
#[derive(Debug)]
pub struct Postfix {
    master: Daemon,
    dir: tempfile::TempDir,
    ca: TestCa,
    /// Where it listens.
    pub ports: Ports,
}

impl Postfix {
    /// Starts Postfix relaying to `capture`, with `extra` lines appended to main.cf (a later
    /// line wins in main.cf, so they override what is set here).
    pub fn start(capture: &SmtpCapture, extra: &[&str]) -> Postfix {
        let dir = shared_tempdir();
        let ca = TestCa::new("postfix test CA");
        let d = dir.path();
        let conf = d.join("conf");
        let data = d.join("data");
        for sub in [&conf, &d.join("queue"), &data] {
            shared_dir(sub);
        }
        chown(&data, "postfix");
        fs::copy(ca.server_cert(), conf.join("cert.pem")).expect("copy cert");
        fs::copy(ca.server_key(), conf.join("key.pem")).expect("copy key");
        sasldb(&conf.join("sasl"));
        let output = d.join("master.out");
        let (master, ports) = start_on_free_ports(
            "postfix",
            &output,
            false,
            |ports| {
                fs::write(conf.join("main.cf"), main_cf(d, capture.port, extra))
                    .expect("write main.cf");
                fs::write(conf.join("master.cf"), master_cf(ports)).expect("write master.cf");
                // Creates the queue directories with their owners and modes, as `postfix
                // start` would before starting master.
                run(Command::new("/usr/sbin/postfix")
                    .arg("-c")
                    .arg(&conf)
                    .arg("check"));
                let mut command = Command::new(Path::new(POSTFIX_DAEMONS).join("master"));
                // `-s`, as `postfix start-fg` runs it: in the foreground, so it is our child.
                command
                    .arg("-s")
                    .arg("-c")
                    .arg(&conf)
                    .env("MAIL_CONFIG", &conf);
                command
            },
            || fs::read_to_string(d.join("maillog")).unwrap_or_default(),
        );
        Postfix {
            master,
            dir,
            ca,
            ports,
        }
    }

    /// The CA that signed the server certificate, for otpd's `ca_file`.
    pub fn ca_cert(&self) -> PathBuf {
        self.ca.ca_cert()
    }

    /// A `sendmail` program for this instance: Postfix's own `/usr/sbin/sendmail` pointed at
    /// its config directory (a private instance needs `-C`; only root may use one that the
    /// default main.cf does not list in `alternate_config_directories`).
    pub fn sendmail(&self) -> PathBuf {
        let conf = self.dir.path().join("conf");
        sendmail_wrapper(
            self.dir.path(),
            &format!("exec /usr/sbin/sendmail -C {} \"$@\"", conf.display()),
        )
    }

    /// Messages in the queue (`postqueue -j`: one JSON line per message).
    pub fn queue_len(&self) -> usize {
        run(Command::new("/usr/sbin/postqueue")
            .arg("-c")
            .arg(self.dir.path().join("conf"))
            .arg("-j"))
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count()
    }

    /// Waits up to `timeout` for an empty queue; returns what is left.
    pub fn wait_queue_empty(&self, timeout: Duration) -> usize {
        wait_queue_empty(|| self.queue_len(), timeout)
    }

    /// Everything Postfix logged so far (its `maillog_file`, written by postlogd).
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("maillog")).unwrap_or_default()
    }

    /// Whether master is still running.
    pub fn is_running(&mut self) -> bool {
        self.master.is_running()
    }
}

/// main.cf: Debian's defaults except what a private instance needs (its own directories, a log
/// file, TLS with the test certificate, SASL AUTH only over TLS, relaying to the capture, and no
/// aliases: nothing is delivered locally, and Debian's default names an /etc/aliases.db and NIS).
fn main_cf(dir: &Path, capture_port: u16, extra: &[&str]) -> String {
    let d = dir.display();
    let mut text = format!(
        "compatibility_level = 3.6\n\
         myhostname = postfix.test\n\
         config_directory = {d}/conf\n\
         queue_directory = {d}/queue\n\
         data_directory = {d}/data\n\
         inet_interfaces = 127.0.0.1\n\
         inet_protocols = ipv4\n\
         relayhost = [127.0.0.1]:{capture_port}\n\
         maillog_file = {d}/maillog\n\
         maillog_file_prefixes = {d}\n\
         smtpd_tls_chain_files = {d}/conf/key.pem, {d}/conf/cert.pem\n\
         smtpd_tls_security_level = may\n\
         smtpd_tls_auth_only = yes\n\
         smtpd_sasl_auth_enable = yes\n\
         smtpd_sasl_type = cyrus\n\
         smtpd_sasl_path = smtpd\n\
         cyrus_sasl_config_path = {d}/conf/sasl\n\
         smtpd_sasl_local_domain = {SASL_REALM}\n\
         alias_maps =\n"
    );
    for line in extra {
        text.push_str(line);
        text.push('\n');
    }
    text
}

/// Debian's master.cf with its `smtp inet` line replaced by a plain/STARTTLS listener and an
/// SMTPS listener on the test's ports, and no chroot (a chroot would need copies of /etc files
/// in the temporary queue directory).
fn master_cf(ports: Ports) -> String {
    let stock = fs::read_to_string(POSTFIX_MASTER_CF)
        .unwrap_or_else(|e| panic!("read {POSTFIX_MASTER_CF}: {e} (run tests/install-deps)"));
    let mut text = format!(
        "127.0.0.1:{} inet n - n - - smtpd\n\
         127.0.0.1:{} inet n - n - - smtpd -o smtpd_tls_wrappermode=yes\n",
        ports.smtp, ports.smtps
    );
    for line in stock.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if line.starts_with('#') || line.starts_with(char::is_whitespace) || fields.len() < 8 {
            text.push_str(line);
        } else if fields[0] == "smtp" && fields[1] == "inet" {
            continue;
        } else {
            let mut fields = fields;
            fields[4] = "n";
            text.push_str(&fields.join(" "));
        }
        text.push('\n');
    }
    text
}

/// Cyrus SASL for smtpd: `smtpd.conf` and a sasldb holding the test account.
fn sasldb(dir: &Path) {
    shared_dir(dir);
    let db = dir.join("sasldb2");
    fs::write(
        dir.join("smtpd.conf"),
        format!(
            "pwcheck_method: auxprop\nauxprop_plugin: sasldb\nmech_list: PLAIN LOGIN\nsasldb_path: {}\n",
            db.display()
        ),
    )
    .expect("write smtpd.conf");
    let mut child = Command::new("/usr/sbin/saslpasswd2")
        .args(["-p", "-c", "-u", SASL_REALM, "-f"])
        .arg(&db)
        .arg(AUTH_USER)
        .stdin(Stdio::piped())
        .spawn()
        .expect("run saslpasswd2 (sasl2-bin; run tests/install-deps)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(AUTH_PASSWORD.as_bytes())
        .expect("write the password");
    assert!(child.wait().expect("saslpasswd2").success());
    // smtpd reads it after dropping to the postfix user; `postfix check` wants root to own it.
    run(Command::new("chown").arg("root:postfix").arg(&db));
    fs::set_permissions(&db, fs::Permissions::from_mode(0o640)).expect("chmod sasldb");
}

// --- Exim ---

/// What a test changes in an Exim instance's configuration.
#[derive(Debug, Clone, Default)]
pub struct EximConfig {
    /// Main-section lines, e.g. `smtp_accept_max = 2`: options this harness leaves at their
    /// defaults.
    pub main: Vec<String>,
    /// ACL statements put first in the RCPT ACL, e.g. a `drop` for one recipient.
    pub rcpt_acl: Vec<String>,
}

impl EximConfig {
    /// The defaults plus `main` lines.
    pub fn main(lines: &[&str]) -> EximConfig {
        EximConfig {
            main: lines.iter().map(|l| l.to_string()).collect(),
            rcpt_acl: Vec::new(),
        }
    }
}

/// A private Exim instance, run from the extracted Debian packages.
#[derive(Debug)]
pub struct Exim {
    daemon: Daemon,
    dir: tempfile::TempDir,
    ca: TestCa,
    /// Where it listens.
    pub ports: Ports,
}

impl Exim {
    /// The exim binary of the extracted packages.
    pub fn binary() -> PathBuf {
        Path::new(EXIM_ROOT).join("usr/sbin/exim4")
    }

    /// Starts Exim relaying to `capture` with the defaults and `extra` main-section lines.
    pub fn start(capture: &SmtpCapture, extra: &[&str]) -> Exim {
        Exim::start_with(capture, &EximConfig::main(extra))
    }

    /// Starts Exim relaying to `capture` with `config`'s changes.
    pub fn start_with(capture: &SmtpCapture, config: &EximConfig) -> Exim {
        let binary = Exim::binary();
        assert!(
            binary.exists(),
            "{} is missing: run tests/install-deps",
            binary.display()
        );
        let dir = shared_tempdir();
        let ca = TestCa::new("exim test CA");
        let d = dir.path();
        for sub in ["spool", "log"] {
            shared_dir(&d.join(sub));
            chown(&d.join(sub), "Debian-exim:Debian-exim");
        }
        fs::copy(ca.server_cert(), d.join("cert.pem")).expect("copy cert");
        fs::copy(ca.server_key(), d.join("key.pem")).expect("copy key");
        // Read by the receiving process, which runs as the Exim user.
        chown(&d.join("key.pem"), "Debian-exim");
        let conf = d.join("exim.conf");
        let output = d.join("daemon.out");
        let (daemon, ports) = start_on_free_ports(
            "exim",
            &output,
            true,
            |ports| {
                fs::write(&conf, exim_conf(d, ports, capture.port, config))
                    .expect("write exim.conf");
                let mut command = Command::new(&binary);
                // Foreground daemon with a queue runner every 30 minutes, as Debian runs it
                // (QUEUEINTERVAL='30m'): a queued message waits that long.
                command.arg("-C").arg(&conf).args(["-bdf", "-q30m"]);
                command
            },
            || fs::read_to_string(d.join("log/mainlog")).unwrap_or_default(),
        );
        Exim {
            daemon,
            dir,
            ca,
            ports,
        }
    }

    /// The CA that signed the server certificate, for otpd's `ca_file`.
    pub fn ca_cert(&self) -> PathBuf {
        self.ca.ca_cert()
    }

    /// A `sendmail` program for this instance: the Exim binary (which is its own sendmail) with
    /// this instance's config (only root keeps Exim's privileges with `-C` outside Debian's
    /// TRUSTED_CONFIG_LIST, /etc/exim4/trusted_configs).
    pub fn sendmail(&self) -> PathBuf {
        let conf = self.dir.path().join("exim.conf");
        sendmail_wrapper(
            self.dir.path(),
            &format!(
                "exec {} -C {} \"$@\"",
                Exim::binary().display(),
                conf.display()
            ),
        )
    }

    /// Messages in the queue (`exim -bpc` on this instance's config).
    pub fn queue_len(&self) -> usize {
        let out = run(Command::new(Exim::binary())
            .arg("-C")
            .arg(self.dir.path().join("exim.conf"))
            .arg("-bpc"));
        out.trim()
            .parse()
            .unwrap_or_else(|_| panic!("exim -bpc said {out:?}"))
    }

    /// Waits up to `timeout` for an empty queue; returns what is left.
    pub fn wait_queue_empty(&self, timeout: Duration) -> usize {
        wait_queue_empty(|| self.queue_len(), timeout)
    }

    /// Everything Exim logged so far: its mainlog, then its paniclog if there is one.
    pub fn log(&self) -> String {
        let logs = self.dir.path().join("log");
        let mut text = fs::read_to_string(logs.join("mainlog")).unwrap_or_default();
        if let Ok(panic) = fs::read_to_string(logs.join("paniclog")) {
            text.push_str("--- paniclog\n");
            text.push_str(&panic);
        }
        text
    }

    /// Whether the daemon is still running.
    pub fn is_running(&mut self) -> bool {
        self.daemon.is_running()
    }
}

/// The whole Exim configuration: Exim's compiled-in defaults for every limit, Debian's way of
/// offering AUTH only over TLS, relaying from loopback and for authenticated clients, and one
/// router that sends everything to the capture.
fn exim_conf(dir: &Path, ports: Ports, capture_port: u16, config: &EximConfig) -> String {
    EXIM_CONF
        .replace("@EXIM@", &Exim::binary().display().to_string())
        .replace("@DIR@", &dir.display().to_string())
        .replace("@SMTP_PORT@", &ports.smtp.to_string())
        .replace("@SMTPS_PORT@", &ports.smtps.to_string())
        .replace("@CAPTURE_PORT@", &capture_port.to_string())
        .replace("@USER@", AUTH_USER)
        .replace("@PASSWORD@", AUTH_PASSWORD)
        .replace("@MAIN@", &config.main.join("\n"))
        .replace("@RCPT_ACL@", &config.rcpt_acl.join("\n"))
}

/// [`exim_conf`]'s template; `@NAME@` are filled in.
const EXIM_CONF: &str = r#"exim_path = @EXIM@
primary_hostname = exim.test
spool_directory = @DIR@/spool
log_file_path = @DIR@/log/%slog
pid_file_path = @DIR@/exim.pid
keep_environment =
local_interfaces = 127.0.0.1
daemon_smtp_ports = @SMTP_PORT@ : @SMTPS_PORT@
tls_on_connect_ports = @SMTPS_PORT@
tls_advertise_hosts = *
tls_certificate = @DIR@/cert.pem
tls_privatekey = @DIR@/key.pem
acl_smtp_rcpt = acl_check_rcpt
# Logging only, no limit: each connection's start and end, so a test sees how it ended.
log_selector = +smtp_connection
@MAIN@

begin acl

acl_check_rcpt:
@RCPT_ACL@
  accept hosts = 127.0.0.1
  accept authenticated = *
  deny message = relay not permitted

begin routers

capture:
  driver = manualroute
  route_list = * 127.0.0.1
  transport = to_capture
  self = send

begin transports

to_capture:
  driver = smtp
  port = @CAPTURE_PORT@
  allow_localhost

begin authenticators

# Debian's exim4-config offers AUTH only over TLS the same way.
plain:
  driver = plaintext
  public_name = PLAIN
  server_prompts = :
  server_condition = ${if and{{eq{$auth2}{@USER@}}{eq{$auth3}{@PASSWORD@}}}}
  server_set_id = $auth2
  server_advertise_condition = ${if eq{$tls_in_cipher}{}{}{*}}

login:
  driver = plaintext
  public_name = LOGIN
  server_prompts = Username:: : Password::
  server_condition = ${if and{{eq{$auth1}{@USER@}}{eq{$auth2}{@PASSWORD@}}}}
  server_set_id = $auth1
  server_advertise_condition = ${if eq{$tls_in_cipher}{}{}{*}}
"#;

// --- an MTA as the machine's own, for an unprivileged otpd ---

/// An MTA instance seen as the machine's own MTA, inside a private mount namespace: its config
/// directory bound onto the system path the MTA's setuid/setgid helpers read (Postfix's
/// postdrop reads /etc/postfix/main.cf; Exim reads /etc/exim4/exim4.conf). Outside the
/// namespace nothing changes. A private config given with `-C` will not do for a process that
/// is not root: postdrop refuses a config directory the default main.cf does not list, and Exim
/// gives up its privileges (and so cannot write its spool) for any caller but root or its own
/// user, whatever /etc/exim4/trusted_configs says.
#[derive(Debug)]
pub struct SystemView {
    /// The directory bound onto `target`.
    source: PathBuf,
    /// The system config directory.
    target: &'static str,
}

impl Postfix {
    /// This instance as the system's Postfix: its config directory on /etc/postfix.
    pub fn system_view(&self) -> SystemView {
        SystemView {
            source: self.dir.path().join("conf"),
            target: "/etc/postfix",
        }
    }
}

impl Exim {
    /// This instance as the system's Exim: its config as /etc/exim4/exim4.conf, the first
    /// config file compiled into Debian's binary (/etc/exim4 is created by tests/install-deps
    /// as the mount point).
    pub fn system_view(&self) -> SystemView {
        let etc = self.dir.path().join("etc-exim4");
        fs::create_dir_all(&etc).expect("mkdir");
        fs::set_permissions(&etc, fs::Permissions::from_mode(0o755)).expect("chmod");
        fs::copy(self.dir.path().join("exim.conf"), etc.join("exim4.conf")).expect("copy config");
        SystemView {
            source: etc,
            target: "/etc/exim4",
        }
    }
}

impl SystemView {
    /// `program` with `args`, run as `uid`:`gid` (no supplementary groups) in a new mount
    /// namespace where this MTA's config is at its system path.
    pub fn command(&self, uid: u32, gid: u32, program: &Path, args: &[&str]) -> Command {
        let mut command = Command::new("unshare");
        command
            .args(["--mount", "--propagation", "private", "--", "sh", "-c"])
            .arg(
                "mount --bind \"$1\" \"$2\" && uid=$3 gid=$4 && shift 4 && \
                 exec setpriv --reuid=\"$uid\" --regid=\"$gid\" --clear-groups -- \"$@\"",
            )
            .arg("sh")
            .arg(&self.source)
            .arg(self.target)
            .arg(uid.to_string())
            .arg(gid.to_string())
            .arg(program)
            .args(args);
        command
    }
}

/// otpd run as an unprivileged user (as its package runs it) in a [`SystemView`].
#[derive(Debug)]
pub struct UnprivilegedOtpd {
    daemon: Daemon,
    dir: tempfile::TempDir,
    /// otpd's socket.
    pub socket: PathBuf,
}

impl UnprivilegedOtpd {
    /// Starts otpd as `uid`:`gid` with the config `render` writes from the socket path and the
    /// state directory, in a directory that user owns, and waits until it answers a ping.
    pub fn start(
        view: &SystemView,
        (uid, gid): (u32, u32),
        render: impl FnOnce(&Path, &Path) -> String,
    ) -> UnprivilegedOtpd {
        let dir = shared_tempdir();
        let socket = dir.path().join("run/otpd.sock");
        let config = dir.path().join("otpd.toml");
        fs::write(&config, render(&socket, &dir.path().join("state"))).expect("write config");
        std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).expect("chown");
        std::os::unix::fs::chown(&config, Some(uid), Some(gid)).expect("chown");
        let otpd = crate::paths::binary("otpd");
        let config_arg = config.display().to_string();
        let command = view.command(uid, gid, &otpd, &["--config", &config_arg]);
        let mut started = UnprivilegedOtpd {
            daemon: Daemon::spawn("otpd", command, &dir.path().join("otpd.log"), true),
            dir,
            socket,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let options = common::client::ClientOptions {
                socket: started.socket.clone(),
                timeout: Duration::from_secs(5),
                trusted_daemon_uids: vec![uid],
            };
            if let Ok(common::wire::Response::Pong { .. }) =
                common::client::call(&options, &common::wire::Request::Ping)
            {
                return started;
            }
            assert!(
                started.daemon.is_running() && Instant::now() < deadline,
                "otpd did not start; its log:\n{}",
                started.log()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Everything otpd logged so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("otpd.log")).unwrap_or_default()
    }
}

// --- reading codes from several captures at once ---

/// The codes mailed so far, by recipient, read from one or more capture directories. Built for
/// hundreds of logins waiting at once: each call reads only the files it has not seen yet.
#[derive(Debug)]
pub struct CodeBook {
    dirs: Vec<PathBuf>,
    seen: Mutex<Read>,
}

/// What a [`CodeBook`] has read so far.
#[derive(Debug, Default)]
struct Read {
    /// The files already read.
    files: HashSet<PathBuf>,
    /// Recipient -> the codes mailed to it, oldest first.
    codes: HashMap<String, Vec<String>>,
}

impl CodeBook {
    /// A book over the mail of `captures`.
    pub fn new(captures: &[&SmtpCapture]) -> CodeBook {
        CodeBook {
            dirs: captures.iter().map(|c| c.mail_dir()).collect(),
            seen: Mutex::new(Read::default()),
        }
    }

    fn refresh(&self) {
        let mut guard = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let Read { files: seen, codes } = &mut *guard;
        for dir in &self.dirs {
            let Ok(entries) = fs::read_dir(dir) else {
                continue;
            };
            for path in entries.filter_map(|e| e.ok().map(|e| e.path())) {
                if path.extension().is_none_or(|x| x != "json") || seen.contains(&path) {
                    continue;
                }
                let Ok(bytes) = fs::read(&path) else {
                    continue;
                };
                let record: Value = serde_json::from_slice(&bytes).expect("mail json");
                let text = record["text"].as_str().unwrap_or_default();
                let code = text
                    .find("code is: ")
                    .map(|at| {
                        text[at + "code is: ".len()..]
                            .chars()
                            .take_while(char::is_ascii_digit)
                            .collect::<String>()
                    })
                    .unwrap_or_default();
                for rcpt in record["rcpt_tos"].as_array().into_iter().flatten() {
                    codes
                        .entry(rcpt.as_str().unwrap_or_default().to_string())
                        .or_default()
                        .push(code.clone());
                }
                seen.insert(path);
            }
        }
    }

    /// Waits up to `timeout` for a mail to `rcpt`; returns the code of the newest one.
    pub fn code_for(&self, rcpt: &str, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            self.refresh();
            let found = self
                .seen
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .codes
                .get(rcpt)
                .and_then(|codes| codes.last().cloned());
            if found.is_some() || Instant::now() >= deadline {
                return found;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// How many mails each recipient got so far.
    pub fn counts(&self) -> HashMap<String, usize> {
        self.refresh();
        self.seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .codes
            .iter()
            .map(|(rcpt, codes)| (rcpt.clone(), codes.len()))
            .collect()
    }
}
