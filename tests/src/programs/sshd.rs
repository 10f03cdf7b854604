//! Debian's OpenSSH sshd on a free loopback port, with a test host key and its own config.
//!
//! sshd's PAM service name is the name it was started as (OpenSSH uses its program name), so a
//! symlink `<dir>/<service>` to /usr/sbin/sshd gives a second sshd its own service: `sshd-sftp`
//! is how the README tells SSH and SFTP apart. Under pam_wrapper the service file is read from
//! the test's directory.

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;

use super::pam_wrapper;
use super::process::{ServerProcess, start_on_free_port};
use crate::stack::PamConfDir;

/// The real sshd.
pub const SSHD: &str = "/usr/sbin/sshd";
/// The privilege separation directory compiled into Debian's sshd.
const PRIVSEP_DIR: &str = "/run/sshd";

/// Password then code: the PAM stack asks for both over keyboard-interactive.
pub const PASSWORD_THEN_CODE: &str = "AuthenticationMethods keyboard-interactive:pam\n";
/// Key then code: the key first, then keyboard-interactive for the code.
pub const KEY_THEN_CODE: &str = "AuthenticationMethods publickey,keyboard-interactive:pam\n";
/// Key then code, with sshd telling PAM which key authenticated (`SSH_AUTH_INFO_0` in the PAM
/// environment), as the README's `[[exemptions]]` setup has it. `AcceptEnv` lets a client try to
/// set the same variable with `SetEnv`, which must change nothing.
pub const KEY_THEN_CODE_EXPOSED: &str = "AuthenticationMethods publickey,keyboard-interactive:pam\n\
                                         ExposeAuthInfo yes\n\
                                         AcceptEnv SSH_AUTH_INFO_0\n";
/// Password then code, with `ExposeAuthInfo` and the same `AcceptEnv`.
pub const PASSWORD_THEN_CODE_EXPOSED: &str = "AuthenticationMethods keyboard-interactive:pam\n\
                                              ExposeAuthInfo yes\n\
                                              AcceptEnv SSH_AUTH_INFO_0\n";
/// SSH's `password` method alone, which the README warns against: sshd answers every PAM prompt
/// with the one password, so it cannot carry a code.
pub const PASSWORD_ONLY: &str = "PasswordAuthentication yes\n\
                                 KbdInteractiveAuthentication no\n\
                                 AuthenticationMethods password\n";
/// An SFTP-only server (the `sshd-sftp` setup).
pub const SFTP_ONLY: &str = "AuthenticationMethods keyboard-interactive:pam\n\
                             ForceCommand internal-sftp\n";
/// Debian's default for root: keys only. sshd then refuses keyboard-interactive to root, even
/// after PAM said yes.
pub const DEBIAN_ROOT_DEFAULT: &str = "PermitRootLogin prohibit-password\n";
/// The block the shipped drop-in (packaging/doc/examples/sshd_config.d/otp-email.conf) ends
/// with: root gives its key and the code. [`Sshd::start`] moves it after the common settings,
/// where a Match block must stand.
pub const ROOT_KEY_AND_CODE: &str = "Match User root\n\
                                     \x20   PermitRootLogin yes\n\
                                     \x20   AuthenticationMethods publickey,keyboard-interactive:pam\n";

/// sshd_config lines that read every user's authorized keys from `dir` (`authorized_keys_USER`)
/// instead of their home, so a test can let root in with a test key without touching root's
/// own files. `StrictModes no` because `dir` lies under the world-writable /tmp.
pub fn authorized_keys_in(dir: &Path) -> String {
    format!(
        "AuthorizedKeysFile {}/authorized_keys_%u\nStrictModes no\n",
        dir.display()
    )
}

/// A running sshd.
#[derive(Debug)]
pub struct Sshd {
    process: ServerProcess,
    _pam: PamConfDir,
    dir: tempfile::TempDir,
    /// The port on 127.0.0.1.
    pub port: u16,
    /// The PAM service name (the name sshd runs as).
    pub service: String,
}

impl Sshd {
    /// Starts sshd as `service` with `pam_stack` as its PAM service file and `config` (e.g.
    /// [`KEY_THEN_CODE`]) ahead of the common settings: sshd keeps the first value it reads.
    /// From its first `Match` line on, `config` goes after them instead (e.g.
    /// [`ROOT_KEY_AND_CODE`]): a Match block runs to the end of the file.
    pub fn start(service: &str, pam_stack: &str, config: &str) -> Sshd {
        ensure_privsep_dir();
        let dir = tempfile::tempdir().expect("tempdir");
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
        let host_key = dir.path().join("host_ed25519");
        keygen(&host_key);
        let program = dir.path().join(service);
        symlink(SSHD, &program).expect("symlink sshd");
        let pam = pam_wrapper::service_dir();
        pam.service(service, pam_stack);
        let config_path = dir.path().join("sshd_config");
        let log = dir.path().join("sshd.log");
        let (process, port) = start_on_free_port(service, |port| {
            fs::write(&config_path, render_config(port, &host_key, config)).expect("config");
            let mut command = Command::new(&program);
            command.arg("-D").arg("-e").arg("-f").arg(&config_path);
            pam_wrapper::wrap(&mut command, pam.path());
            (command, log.clone())
        });
        Sshd {
            process,
            _pam: pam,
            dir,
            port,
            service: service.to_string(),
        }
    }

    /// The host key line for a client's known_hosts file.
    pub fn known_hosts_line(&self) -> String {
        let public = fs::read_to_string(self.dir.path().join("host_ed25519.pub"))
            .expect("read the host public key");
        format!("[127.0.0.1]:{} {}", self.port, public.trim())
    }

    /// sshd's log (`-e`: everything it logs goes there).
    pub fn log(&self) -> String {
        self.process.log()
    }

    /// Whether the listening sshd is still alive.
    pub fn is_running(&mut self) -> bool {
        self.process.is_running()
    }
}

fn render_config(port: u16, host_key: &Path, extra: &str) -> String {
    let (global, matches) = split_at_match(extra);
    format!(
        "{global}\n\
         ListenAddress 127.0.0.1:{port}\n\
         HostKey {}\n\
         PidFile none\n\
         UsePAM yes\n\
         KbdInteractiveAuthentication yes\n\
         PasswordAuthentication no\n\
         PubkeyAuthentication yes\n\
         PermitRootLogin no\n\
         UseDNS no\n\
         PrintMotd no\n\
         PrintLastLog no\n\
         X11Forwarding no\n\
         AllowTcpForwarding no\n\
         AllowAgentForwarding no\n\
         Subsystem sftp internal-sftp\n\
         LogLevel DEBUG1\n\
         {matches}",
        host_key.display()
    )
}

/// `config` split before its first `Match` line: the global lines, then the Match blocks.
fn split_at_match(config: &str) -> (&str, &str) {
    let mut at = 0;
    for line in config.split_inclusive('\n') {
        let keyword = line.split_whitespace().next().unwrap_or("");
        if keyword.eq_ignore_ascii_case("match") {
            return config.split_at(at);
        }
        at += line.len();
    }
    (config, "")
}

/// Generates an ed25519 key pair without a passphrase (`path` and `path.pub`).
pub fn keygen(path: &Path) -> PathBuf {
    let status = Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "pam_otp_email-e2e",
            "-f",
        ])
        .arg(path)
        .status()
        .expect("run ssh-keygen (openssh-client)");
    assert!(status.success(), "ssh-keygen failed");
    path.with_extension("pub")
}

/// sshd refuses to start (and `sshd -T` to print anything) without its privilege separation
/// directory, which Debian's ssh service creates at boot; create it the same way when no ssh
/// service ever ran here.
pub fn ensure_privsep_dir() {
    let dir = Path::new(PRIVSEP_DIR);
    if !dir.is_dir() {
        fs::create_dir_all(dir).expect("create /run/sshd");
        fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).expect("chmod /run/sshd");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_match_block_goes_after_the_common_settings() {
        let extra = format!("{KEY_THEN_CODE}{DEBIAN_ROOT_DEFAULT}{ROOT_KEY_AND_CODE}");
        let config = render_config(2222, Path::new("/k"), &extra);
        let at = |text: &str| config.find(text).unwrap();
        assert!(at("PermitRootLogin prohibit-password") < at("PermitRootLogin no"));
        assert!(at("LogLevel DEBUG1") < at("Match User root"), "{config}");
        assert!(config.ends_with(ROOT_KEY_AND_CODE), "{config}");
        assert_eq!(split_at_match(KEY_THEN_CODE), (KEY_THEN_CODE, ""));
    }
}
