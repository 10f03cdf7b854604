//! The admin's day with the installed package (issue #17), run by `tests/packages/check.sh`
//! while the .deb is installed, its otpd runs as the unit would run it and the `otp-email`
//! profile is enabled: nothing here builds otpd or the module, everything is what `dpkg -i`
//! put on the machine.
//!
//! - mail goes through a local Postfix (Debian's package, at its default limits) to a capture;
//! - Debian's sshd, with Debian's default `PermitRootLogin prohibit-password` and the shipped
//!   drop-in and pam.d example in their key-then-code form: root logs in with its key and the
//!   mailed code, as the drop-in documents (root's real keys and password are never touched:
//!   the keys come from a directory of the test's own);
//! - two users behind one address: one locks himself out, the other still logs in;
//!   `otpctl user reset` and `otpctl host unlock` let them in again through real logins;
//! - `otpctl doctor` flags Debian's own /etc/pam.d/vsftpd under the profile, and accepts the
//!   documented split stack.
//!
//! Ignored by `cargo test`: it needs the package installed and changes /etc/otpd/otpd.toml
//! (restored at the end). check.sh runs it with `--ignored` and tells it otpd's pid and log.

// Test code: a failed unwrap is how a test reports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use e2e_tests::mta::Postfix;
use e2e_tests::programs::answers::{is_code_prompt, wrong};
use e2e_tests::programs::ssh_client::{Method, SshClient, SshOutcome};
use e2e_tests::programs::sshd::Sshd;
use e2e_tests::programs::stacks;
use e2e_tests::programs::users::TestUser;
use e2e_tests::smtp::{MAIL_WAIT, SmtpCapture};

/// The installed config, otpctl and documentation.
const CONFIG: &str = "/etc/otpd/otpd.toml";
const OTPCTL: &str = "/usr/bin/otpctl";
const EXAMPLES: &str = "/usr/share/doc/pam-otp-email/examples";
/// Where the test's sshd finds authorized keys (`AuthorizedKeysFile .../%u`): a root-owned
/// directory outside /tmp, which sshd's StrictModes would refuse.
const KEYS_DIR: &str = "/run/otp-journey-keys";
/// A remote command whose output proves the shell ran as the user.
const WHOAMI: &str = "echo logged-in-as-$(id -un)";

/// The installed otpd, as check.sh started it.
struct InstalledOtpd {
    pid: i32,
    log: PathBuf,
    original_config: String,
}

impl InstalledOtpd {
    fn from_env() -> InstalledOtpd {
        let pid = std::env::var("OTP_JOURNEY_OTPD_PID")
            .expect("OTP_JOURNEY_OTPD_PID: run me from tests/packages/check.sh")
            .parse()
            .expect("a pid");
        let log =
            PathBuf::from(std::env::var("OTP_JOURNEY_OTPD_LOG").expect("OTP_JOURNEY_OTPD_LOG"));
        InstalledOtpd {
            pid,
            log,
            original_config: fs::read_to_string(CONFIG).expect("read the installed config"),
        }
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Writes `text` into /etc/otpd/otpd.toml (keeping its owner and mode) and reloads otpd.
    fn configure(&self, text: &str) {
        let before = self.log().len();
        fs::write(CONFIG, text).expect("write the config");
        // SAFETY: kill(2) with a pid and a signal number has no memory effects.
        let sent = unsafe { libc::kill(self.pid, libc::SIGHUP) };
        assert_eq!(sent, 0, "SIGHUP otpd");
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let log = self.log();
            let new = &log[before.min(log.len())..];
            assert!(!new.contains("reload refused"), "{new}");
            if new.contains("reloaded") {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("otpd did not reload:\n{}", self.log());
    }
}

impl Drop for InstalledOtpd {
    fn drop(&mut self) {
        let original = self.original_config.clone();
        self.configure(&original);
    }
}

/// otpd's config for the journey: codes for ssh through the test sshd's service, mailed through
/// the local Postfix, `[defaults]` followed by `defaults`.
fn journey_config(postfix_port: u16, defaults: &str) -> String {
    format!(
        "# Written by tests/tests/package_journey.rs.\n\
         [protocols]\nenabled = [\"ssh\"]\n\
         [directory]\nemail_template = \"{{user}}@example.test\"\n\
         [defaults]\nmode = \"required\"\nresend_cooldown_seconds = 0\n{defaults}\n\
         [mail]\nfrom = \"otp@example.test\"\n\
         [[mail.servers]]\nname = \"local-postfix\"\nhost = \"127.0.0.1\"\nport = {postfix_port}\n\
         security = \"none\"\n"
    )
}

/// The shipped pam.d/sshd example in its key-then-code form: the commented code-only lines in
/// place of `@include common-auth`, as its comments tell the admin to do.
fn key_then_code_stack() -> String {
    let example = fs::read_to_string(format!("{EXAMPLES}/pam.d/sshd")).expect("pam.d example");
    let code_only: Vec<&str> = example
        .lines()
        .filter_map(|l| l.strip_prefix('#'))
        .filter(|l| l.starts_with("auth "))
        .collect();
    assert!(
        code_only.iter().any(|l| l.contains("pam_otp_email.so")),
        "no key-then-code lines in the example:\n{example}"
    );
    format!(
        "{}\naccount required pam_permit.so\nsession required pam_permit.so\n",
        code_only.join("\n")
    )
}

/// The shipped sshd drop-in in its key-then-code form, after Debian's default for root.
fn sshd_config() -> String {
    let drop_in = fs::read_to_string(format!("{EXAMPLES}/sshd_config.d/otp-email.conf"))
        .expect("sshd drop-in example");
    let mut lines = Vec::new();
    for line in drop_in.lines() {
        if line.trim_start() == "AuthenticationMethods keyboard-interactive:pam" {
            lines.push(format!("#{line}"));
        } else if line == "#AuthenticationMethods publickey,keyboard-interactive:pam" {
            lines.push(line[1..].to_string());
        } else {
            lines.push(line.to_string());
        }
    }
    format!(
        "PermitRootLogin prohibit-password\nAuthorizedKeysFile {KEYS_DIR}/%u\n{}\n",
        lines.join("\n")
    )
}

/// Everything the journey's logins go through.
struct Journey {
    client: SshClient,
    sshd: Sshd,
    capture: SmtpCapture,
    postfix: Postfix,
    otpd: InstalledOtpd,
}

impl Journey {
    fn start() -> Journey {
        let otpd = InstalledOtpd::from_env();
        let capture = SmtpCapture::start();
        let postfix = Postfix::start(&capture, &[]);
        otpd.configure(&journey_config(postfix.ports.smtp, ""));
        fs::create_dir_all(KEYS_DIR).expect("mkdir keys");
        let sshd = Sshd::start("sshd", &key_then_code_stack(), &sshd_config());
        let client = SshClient::new(&sshd);
        Journey {
            client,
            sshd,
            capture,
            postfix,
            otpd,
        }
    }

    fn authorize(&self, user: &str) {
        fs::write(Path::new(KEYS_DIR).join(user), self.client.public_key()).expect("write keys");
    }

    /// Logs `user` in with the key, answering each code prompt with the code of the newest mail
    /// to `user` since the login began (made wrong when `right` is false). A prompt after a
    /// wrong answer asks again for the same code, so it gets the same mail's.
    fn login(&self, user: &str, right: bool) -> SshOutcome {
        let reader = self.capture.reader();
        let before = reader.messages().len();
        let to = format!("{user}@example.test");
        self.client.ssh(
            user,
            Method::KeyThenKeyboardInteractive,
            WHOAMI,
            move |prompt| {
                assert!(is_code_prompt(prompt), "only codes are asked: {prompt:?}");
                let mails = reader.wait_for(before + 1, MAIL_WAIT);
                let mail = mails[before..]
                    .iter()
                    .rev()
                    .find(|m| m.rcpt_tos == vec![to.clone()])
                    .unwrap_or_else(|| panic!("no code mail to {to} for {prompt:?}"));
                if right {
                    mail.code()
                } else {
                    wrong(&mail.code())
                }
            },
        )
    }

    fn logged_in(out: &SshOutcome, user: &str) -> bool {
        out.succeeded() && out.stdout.trim() == format!("logged-in-as-{user}")
    }

    fn report(&self, out: &SshOutcome) -> String {
        format!(
            "{out:#?}\n--- sshd:\n{}\n--- otpd:\n{}\n--- postfix:\n{}",
            self.sshd.log(),
            self.otpd.log(),
            self.postfix.log()
        )
    }
}

impl Drop for Journey {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(KEYS_DIR);
    }
}

/// Runs the installed otpctl; returns its exit success and output (stdout and stderr).
fn otpctl(args: &[&str]) -> (bool, String) {
    let out = Command::new(OTPCTL)
        .args(args)
        .output()
        .expect("run otpctl");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
#[ignore = "run by tests/packages/check.sh with the package installed"]
fn the_admins_day_with_the_installed_package() {
    let journey = Journey::start();

    // Root: key and code, through Debian's default PermitRootLogin and the shipped drop-in.
    journey.authorize("root");
    let out = journey.login("root", true);
    assert!(Journey::logged_in(&out, "root"), "{}", journey.report(&out));

    // Two users behind one address (127.0.0.1): alice's wrong codes lock alice, not bob.
    journey.otpd.configure(&journey_config(
        journey.postfix.ports.smtp,
        "max_user_failures = 3\nmax_sends_per_hour = 3\n",
    ));
    let (alice, bob) = (TestUser::create(), TestUser::create());
    journey.authorize(&alice.name);
    journey.authorize(&bob.name);
    let out = journey.login(&alice.name, false);
    assert!(!out.succeeded(), "{}", journey.report(&out));
    let out = journey.login(&alice.name, true);
    assert!(
        !out.succeeded(),
        "alice is locked out: {}",
        journey.report(&out)
    );
    let out = journey.login(&bob.name, true);
    assert!(
        Journey::logged_in(&out, &bob.name),
        "bob, behind the same address, still logs in: {}",
        journey.report(&out)
    );

    // otpctl user reset: alice's lockout and her mail cap are cleared.
    let (ok, text) = otpctl(&["user", "reset", &alice.name]);
    assert!(ok, "{text}");
    // The reset also forgot her sends: three codes this hour, then the cap (3) refuses.
    for _ in 0..3 {
        let out = journey.login(&alice.name, true);
        assert!(
            Journey::logged_in(&out, &alice.name),
            "{}",
            journey.report(&out)
        );
    }
    let out = journey.login(&alice.name, true);
    assert!(
        !out.succeeded() && out.prompts.is_empty(),
        "alice's hourly cap of 3: {}",
        journey.report(&out)
    );
    let (ok, text) = otpctl(&["user", "reset", &alice.name]);
    assert!(ok, "{text}");
    let out = journey.login(&alice.name, true);
    assert!(
        Journey::logged_in(&out, &alice.name),
        "the reset cleared the cap: {}",
        journey.report(&out)
    );

    // A host lockout (a limit as low as the user's, so one user's typos lock the address):
    // bob is refused too until `otpctl host unlock 127.0.0.1`.
    journey.otpd.configure(&journey_config(
        journey.postfix.ports.smtp,
        "max_user_failures = 3\nmax_host_failures = 3\n",
    ));
    let out = journey.login(&alice.name, false);
    assert!(!out.succeeded(), "{}", journey.report(&out));
    let out = journey.login(&bob.name, true);
    assert!(
        !out.succeeded(),
        "the address is locked: {}",
        journey.report(&out)
    );
    let (ok, text) = otpctl(&["host", "list"]);
    assert!(ok && text.contains("127.0.0.1"), "{text}");
    let (ok, text) = otpctl(&["host", "unlock", "127.0.0.1"]);
    assert!(ok, "{text}");
    let out = journey.login(&bob.name, true);
    assert!(
        Journey::logged_in(&out, &bob.name),
        "the unlocked address lets bob in: {}",
        journey.report(&out)
    );

    // doctor over the machine's own /etc/pam.d, with the profile in common-auth: Debian's
    // vsftpd reaches the module without `split` (a problem); the shipped split stack does not.
    let vsftpd = PamFile::take("vsftpd");
    fs::write(VSFTPD_DEBIAN_PATH, stacks::DEBIAN_VSFTPD).unwrap();
    let problems = doctor_pam_problems();
    assert!(
        problems.iter().any(|p| p.starts_with("vsftpd speaks ftp")),
        "{problems:#?}"
    );
    fs::copy(format!("{EXAMPLES}/pam.d/vsftpd"), VSFTPD_DEBIAN_PATH).unwrap();
    let problems = doctor_pam_problems();
    assert!(
        !problems.iter().any(|p| p.starts_with("vsftpd")),
        "{problems:#?}"
    );
    drop(vsftpd);
}

const VSFTPD_DEBIAN_PATH: &str = "/etc/pam.d/vsftpd";

/// A file in /etc/pam.d the journey replaces for a while: put back (or removed, when there was
/// none) on drop.
struct PamFile {
    path: PathBuf,
    before: Option<Vec<u8>>,
}

impl PamFile {
    fn take(service: &str) -> PamFile {
        let path = Path::new("/etc/pam.d").join(service);
        let before = fs::read(&path).ok();
        PamFile { path, before }
    }
}

impl Drop for PamFile {
    fn drop(&mut self) {
        match &self.before {
            Some(bytes) => fs::write(&self.path, bytes).expect("restore the pam.d file"),
            None => {
                let _ = fs::remove_file(&self.path);
            }
        }
    }
}

/// The messages of the problems `otpctl doctor` finds in the pam check, on this machine.
fn doctor_pam_problems() -> Vec<String> {
    let out = Command::new(OTPCTL)
        .args(["--json", "doctor"])
        .output()
        .expect("run otpctl doctor");
    let all: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "doctor printed no JSON ({e}): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    all.as_array()
        .expect("a list of findings")
        .iter()
        .filter(|f| f["check"] == "pam" && f["level"] == "problem")
        .map(|f| f["message"].as_str().unwrap_or_default().to_string())
        .collect()
}
