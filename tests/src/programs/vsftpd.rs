//! Debian's vsftpd on a free loopback port, and curl as the FTP client.
//!
//! vsftpd runs standalone in the foreground (`listen=YES`, `background=NO`) with PAM service
//! `vsftpd` read from the test's directory through pam_wrapper, local users only, passive mode
//! on 127.0.0.1. The options Debian's defaults would trip on here: `secure_chroot_dir` must be an
//! empty root-owned directory (a temporary one instead of /var/run/vsftpd/empty), and the
//! seccomp sandbox and network namespace isolation are off because a container may not allow
//! them. vsftpd's own one-second delay after a failed login is off to keep the tests quick.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use super::pam_wrapper;
use super::process::{ServerProcess, start_on_free_port};
use crate::stack::PamConfDir;

/// The real vsftpd.
pub const VSFTPD: &str = "/usr/sbin/vsftpd";
/// The PAM service name in the config (and Debian's default).
pub const SERVICE: &str = "vsftpd";
/// curl's exit code when the server answers the login with 530.
pub const CURL_LOGIN_DENIED: i32 = 67;

/// A running vsftpd.
#[derive(Debug)]
pub struct Vsftpd {
    process: ServerProcess,
    _pam: PamConfDir,
    dir: tempfile::TempDir,
    /// The control port on 127.0.0.1.
    pub port: u16,
}

/// What one FTP login and directory listing gave.
#[derive(Debug)]
pub struct FtpOutcome {
    /// curl's exit code: 0 listed, [`CURL_LOGIN_DENIED`] for a 530, others for broken
    /// connections (e.g. a server process that died during the login).
    pub curl_exit: Option<i32>,
    /// The listing of the home directory.
    pub listing: String,
    /// curl's error message.
    pub stderr: String,
}

impl FtpOutcome {
    /// The login succeeded and the directory was listed.
    pub fn listed(&self) -> bool {
        self.curl_exit == Some(0)
    }

    /// The server answered the login with 530: a clean refusal, not a dropped connection.
    pub fn refused(&self) -> bool {
        self.curl_exit == Some(CURL_LOGIN_DENIED)
    }
}

impl Vsftpd {
    /// Starts vsftpd with `pam_stack` as its PAM service file.
    pub fn start(pam_stack: &str) -> Vsftpd {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
        let empty = dir.path().join("empty");
        fs::create_dir(&empty).expect("mkdir empty");
        fs::set_permissions(&empty, fs::Permissions::from_mode(0o555)).expect("chmod");
        let pam = pam_wrapper::service_dir();
        pam.service(SERVICE, pam_stack);
        let config_path = dir.path().join("vsftpd.conf");
        let log = dir.path().join("vsftpd.out");
        let protocol_log = dir.path().join("vsftpd.log");
        let (process, port) = start_on_free_port("vsftpd", |port| {
            let config = format!(
                "listen=YES\nlisten_ipv6=NO\nlisten_address=127.0.0.1\nlisten_port={port}\n\
                 background=NO\nanonymous_enable=NO\nlocal_enable=YES\nwrite_enable=NO\n\
                 pam_service_name={SERVICE}\nsecure_chroot_dir={}\n\
                 seccomp_sandbox=NO\nisolate=NO\nisolate_network=NO\n\
                 pasv_enable=YES\npasv_address=127.0.0.1\n\
                 delay_failed_login=0\nmax_login_fails=1\n\
                 vsftpd_log_file={}\nlog_ftp_protocol=YES\ndual_log_enable=YES\n\
                 xferlog_enable=YES\nxferlog_file={}\n",
                empty.display(),
                protocol_log.display(),
                dir.path().join("xferlog").display(),
            );
            fs::write(&config_path, config).expect("write vsftpd.conf");
            let mut command = Command::new(VSFTPD);
            command.arg(&config_path);
            pam_wrapper::wrap(&mut command, pam.path());
            (command, log.clone())
        });
        Vsftpd {
            process,
            _pam: pam,
            dir,
            port,
        }
    }

    /// Logs in as `user` with `secret` (the password, or password and code) and lists the home
    /// directory, as `curl ftp://...` does.
    pub fn list(&self, user: &str, secret: &str) -> FtpOutcome {
        let output = Command::new("curl")
            .args(["--silent", "--show-error", "--max-time", "30", "--user"])
            .arg(format!("{user}:{secret}"))
            .arg(format!("ftp://127.0.0.1:{}/", self.port))
            .output()
            .expect("run curl");
        FtpOutcome {
            curl_exit: output.status.code(),
            listing: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// vsftpd's protocol log (commands and answers, never passwords) and its stderr.
    pub fn log(&self) -> String {
        let protocol = fs::read_to_string(self.dir.path().join("vsftpd.log")).unwrap_or_default();
        format!("{protocol}{}", self.process.log())
    }

    /// Whether the listening vsftpd is still alive.
    pub fn is_running(&mut self) -> bool {
        self.process.is_running()
    }
}
