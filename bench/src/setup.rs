//! Everything a run needs in place: the SMTP sink, otpd configured for the benchmark, and one
//! PAM config directory with every stack the scenarios use.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use e2e_tests::otpd::{Otpd, TestConfig};
use e2e_tests::paths;
use e2e_tests::stack::PamConfDir;

use crate::error::BenchError;
use crate::hotp;
use crate::mailbox::Mailbox;
use crate::sink::SmtpSink;

/// Where Debian installs pam_oath (package libpam-oath).
pub const PAM_OATH: &str = "/lib/x86_64-linux-gnu/security/pam_oath.so";

/// Our PAM service: our module alone, so its verdict is the login's (`sshd` maps to ssh).
pub const OUR_SERVICE: &str = "sshd";
/// A service whose protocol (ftp) is disabled: our module says skip, pam_permit decides.
pub const SKIP_SERVICE: &str = "vsftpd";
/// pam_permit alone: the baseline the skip path is compared with.
pub const PERMIT_SERVICE: &str = "permit";
/// The pam_oath stack of the module probe.
pub const OATH_PROBE_SERVICE: &str = "oath-probe";
/// The most concurrent loops any scenario runs (one pam_oath usersfile each).
pub const MAX_LOOPS: usize = 16;
/// pam_oath's look-ahead window, as in a typical deployment.
pub const OATH_WINDOW: u32 = 20;
/// Digits of every code, ours (the default) and pam_oath's.
pub const DIGITS: u32 = 6;

/// The config body of the benchmark's otpd: every user needs a code, mailed to
/// `{user}@example.test`, under [`OTPD_LIMITS`].
pub fn otpd_body() -> String {
    format!("[directory]\nemail_template = \"{{user}}@example.test\"\n\n{OTPD_LIMITS}")
}

/// Every user needs a code; the send caps are at the highest values config validation allows
/// (1000 per hour, 10000 per day) and the resend cooldown is off, so caps never decide a login;
/// only ssh is enabled, so ftp logins are skipped.
pub const OTPD_LIMITS: &str = "[defaults]
mode = \"required\"
max_sends_per_hour = 1000
max_sends_per_day = 10000
resend_cooldown_seconds = 0

[protocols]
enabled = [\"ssh\"]
";

/// A running benchmark environment. Dropping it stops otpd and the sink and removes the files.
#[derive(Debug)]
pub struct Setup {
    /// Codes by recipient, filled by the sink.
    pub mailbox: Arc<Mailbox>,
    /// The PAM config directory.
    pub pam: PamConfDir,
    /// The running otpd.
    pub otpd: Otpd,
    /// Our module as built.
    pub module: PathBuf,
    /// pam_oath.
    pub pam_oath: PathBuf,
    /// pam_oath's usersfiles.
    oath_dir: tempfile::TempDir,
    // Declared last so it is dropped after otpd stopped mailing.
    sink: SmtpSink,
}

impl Setup {
    /// Starts the sink and otpd and writes every PAM stack.
    pub fn start() -> Result<Setup, BenchError> {
        let module = paths::target_dir().join("libpam_otp_email.so");
        if !module.exists() || !paths::target_dir().join("otpd").exists() {
            return Err(BenchError::Setup(format!(
                "build otpd and the module first (cargo build --release --workspace); looked in {}",
                paths::target_dir().display()
            )));
        }
        let pam_oath = PathBuf::from(PAM_OATH);
        if !pam_oath.exists() {
            return Err(BenchError::Setup(format!(
                "{PAM_OATH} is missing: apt-get install libpam-oath"
            )));
        }
        let mailbox = Arc::new(Mailbox::new());
        let sink = SmtpSink::start(Arc::clone(&mailbox)).map_err(BenchError::io("smtp sink"))?;
        let otpd = Otpd::start(&TestConfig {
            daemon: String::new(),
            body: otpd_body(),
            smtp_port: sink.port(),
        });
        let pam = PamConfDir::new();
        let ours = our_line(&module, &otpd);
        pam.service(OUR_SERVICE, &ours);
        pam.service(
            SKIP_SERVICE,
            &format!("{ours}auth required pam_permit.so\n"),
        );
        pam.service(PERMIT_SERVICE, "auth required pam_permit.so\n");
        let oath_dir = tempfile::tempdir().map_err(BenchError::io("tempdir"))?;
        let setup = Setup {
            mailbox,
            pam,
            otpd,
            module,
            pam_oath,
            oath_dir,
            sink,
        };
        for index in 0..MAX_LOOPS {
            setup.write_oath_stack(&oath_service(index), &oath_user(index), index)?;
        }
        setup.write_oath_stack(OATH_PROBE_SERVICE, OATH_PROBE_USER, MAX_LOOPS)?;
        Ok(setup)
    }

    /// A PAM directory whose [`OUR_SERVICE`] is our module alone, asking `otpd`.
    pub fn our_service_for(&self, otpd: &Otpd) -> PamConfDir {
        our_service(&self.module, otpd)
    }

    /// The port of the SMTP sink otpd mails to.
    pub fn sink_port(&self) -> u16 {
        self.sink.port()
    }

    /// The PAM config directory.
    pub fn confdir(&self) -> &Path {
        self.pam.path()
    }

    /// Writes the pam_oath stack `service` with its own usersfile holding `user`'s key
    /// number `key`, counter 0.
    fn write_oath_stack(&self, service: &str, user: &str, key: usize) -> Result<(), BenchError> {
        let usersfile = self.oath_dir.path().join(format!("{service}.users"));
        self.pam.service(
            service,
            &format!(
                "auth required pam_oath.so usersfile={} window={OATH_WINDOW} digits={DIGITS}\n",
                usersfile.display()
            ),
        );
        self.reset_usersfile(&usersfile, user, key)
    }

    /// Puts the usersfiles of `loops` loops back to counter 0, so a scenario's loop `i`
    /// answers HOTP(key i, iteration).
    pub fn reset_oath(&self, loops: usize) -> Result<(), BenchError> {
        for index in 0..loops {
            let usersfile = self
                .oath_dir
                .path()
                .join(format!("{}.users", oath_service(index)));
            self.reset_usersfile(&usersfile, &oath_user(index), index)?;
        }
        Ok(())
    }

    fn reset_usersfile(&self, path: &Path, user: &str, key: usize) -> Result<(), BenchError> {
        let mut line = String::new();
        // Type, user, password ("-": none, the OTP alone), key in hex.
        let _ = writeln!(line, "HOTP {user} - {}", hotp::to_hex(&oath_key(key)));
        std::fs::write(path, line).map_err(BenchError::io(path))
    }
}

/// The pam_oath service of loop `index`.
pub fn oath_service(index: usize) -> String {
    format!("oath{index}")
}

/// The pam_oath user of loop `index`.
pub fn oath_user(index: usize) -> String {
    format!("oathuser{index}")
}

/// The pam_oath user of the module probe.
pub const OATH_PROBE_USER: &str = "oathprobe";

/// The 20-byte HOTP key of usersfile `index` (the probe's is [`MAX_LOOPS`]).
pub fn oath_key(index: usize) -> Vec<u8> {
    format!("bench-hotp-key-{index:05}").into_bytes()
}

/// The PAM line of our module (`module`) asking `otpd`. otpd runs as root here; in a real
/// install the daemon user is in /etc/passwd, so the module's lookup of it is a files lookup,
/// as it is for root.
fn our_line(module: &Path, otpd: &Otpd) -> String {
    format!(
        "auth required {} socket={} daemon_user=root\n",
        module.display(),
        otpd.socket.display()
    )
}

/// A PAM directory whose [`OUR_SERVICE`] is our module (`module`) alone, asking `otpd`.
pub fn our_service(module: &Path, otpd: &Otpd) -> PamConfDir {
    let pam = PamConfDir::new();
    pam.service(OUR_SERVICE, &our_line(module, otpd));
    pam
}
