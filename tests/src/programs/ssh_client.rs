//! The real OpenSSH clients, `ssh` and `sftp`, logging in to a test [`Sshd`].
//!
//! Every prompt (the password, each keyboard-interactive prompt from PAM) goes through the
//! `tests/programs/askpass` helper (`SSH_ASKPASS_REQUIRE=force`), which hands it to the test's
//! `answer` closure through files: the test reads the code out of the captured mail and answers
//! exactly as a person at a terminal would, with no pty to drive. The client reads no config
//! but its command line (`-F /dev/null`), uses no agent, and trusts only the test host key.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::sshd::{Sshd, keygen};

/// How long one client run may take, prompts included.
const RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// How the client authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Keyboard-interactive only: every question comes from the PAM stack.
    KeyboardInteractive,
    /// The client's key, then keyboard-interactive.
    KeyThenKeyboardInteractive,
    /// SSH's `password` method: one password, which sshd hands to every PAM prompt.
    Password,
}

/// What one client run saw and how it ended.
#[derive(Debug)]
pub struct SshOutcome {
    /// The client's exit code (`None` when killed by a signal); ssh exits 255 when it could
    /// not log in.
    pub exit_code: Option<i32>,
    /// Standard output: the remote command's output, or sftp's.
    pub stdout: String,
    /// Standard error: ssh's own messages ("Permission denied ...").
    pub stderr: String,
    /// Every prompt, in order, as ssh passed it to askpass (ssh puts `(user@host) ` before
    /// keyboard-interactive prompts).
    pub prompts: Vec<String>,
}

impl SshOutcome {
    /// Whether the client logged in and its command succeeded.
    pub fn succeeded(&self) -> bool {
        self.exit_code == Some(0)
    }
}

/// An ssh/sftp client set up for one sshd: a key pair and a known_hosts with its host key.
#[derive(Debug)]
pub struct SshClient {
    dir: tempfile::TempDir,
    port: u16,
    key: PathBuf,
    runs: std::cell::Cell<u32>,
}

impl SshClient {
    /// A client for `sshd`, with a fresh ed25519 key.
    pub fn new(sshd: &Sshd) -> SshClient {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(
            dir.path().join("known_hosts"),
            format!("{}\n", sshd.known_hosts_line()),
        )
        .expect("write known_hosts");
        let key = dir.path().join("id_ed25519");
        keygen(&key);
        SshClient {
            dir,
            port: sshd.port,
            key,
            runs: std::cell::Cell::new(0),
        }
    }

    /// The client key's fingerprint as `ssh-keygen -lf` prints it (`SHA256:...`).
    pub fn key_fingerprint(&self) -> String {
        let out = Command::new("ssh-keygen")
            .args(["-E", "sha256", "-lf"])
            .arg(self.key.with_extension("pub"))
            .output()
            .expect("run ssh-keygen -lf");
        assert!(out.status.success(), "ssh-keygen -lf failed");
        let printed = String::from_utf8_lossy(&out.stdout);
        printed
            .split_whitespace()
            .nth(1)
            .expect("ssh-keygen -lf prints BITS FINGERPRINT COMMENT (TYPE)")
            .to_string()
    }

    /// The client's public key line, for [`super::users::TestUser::authorize_key`].
    pub fn public_key(&self) -> String {
        fs::read_to_string(self.key.with_extension("pub")).expect("read the public key")
    }

    /// Runs `command` on the server as `user`; `answer` answers each prompt.
    pub fn ssh(
        &self,
        user: &str,
        method: Method,
        command: &str,
        answer: impl FnMut(&str) -> String,
    ) -> SshOutcome {
        self.ssh_with_options(user, method, &[], command, answer)
    }

    /// [`SshClient::ssh`] with `extra` client options (`-o`), e.g. `SetEnv=NAME=value`.
    pub fn ssh_with_options(
        &self,
        user: &str,
        method: Method,
        extra: &[&str],
        command: &str,
        answer: impl FnMut(&str) -> String,
    ) -> SshOutcome {
        let mut ssh = Command::new("ssh");
        ssh.arg("-p").arg(self.port.to_string());
        for option in extra {
            ssh.arg("-o").arg(option);
        }
        self.options(&mut ssh, method);
        ssh.arg(format!("{user}@127.0.0.1")).arg(command);
        self.drive(ssh, answer)
    }

    /// Runs the sftp `batch` commands (one a line) as `user`; sftp stops at the first failing
    /// command and exits non-zero.
    pub fn sftp(
        &self,
        user: &str,
        method: Method,
        batch: &str,
        answer: impl FnMut(&str) -> String,
    ) -> SshOutcome {
        let batch_file = self.dir.path().join("sftp-batch");
        fs::write(&batch_file, batch).expect("write the sftp batch");
        let mut sftp = Command::new("sftp");
        sftp.arg("-P").arg(self.port.to_string());
        // Before -b: sftp's -b adds BatchMode=yes, which would forbid every prompt, and ssh
        // keeps the first value of an option.
        self.options(&mut sftp, method);
        sftp.arg("-b").arg(&batch_file);
        sftp.arg(format!("{user}@127.0.0.1"));
        self.drive(sftp, answer)
    }

    /// A directory for files a test fetches with sftp.
    pub fn download_dir(&self) -> PathBuf {
        let dir = self.dir.path().join("downloads");
        fs::create_dir_all(&dir).expect("mkdir downloads");
        dir
    }

    fn options(&self, command: &mut Command, method: Method) {
        let known_hosts = self.dir.path().join("known_hosts");
        let mut options = vec![
            "BatchMode=no".to_string(),
            format!("UserKnownHostsFile={}", known_hosts.display()),
            "GlobalKnownHostsFile=/dev/null".into(),
            "StrictHostKeyChecking=yes".into(),
            "UpdateHostKeys=no".into(),
            "ConnectTimeout=10".into(),
            // One keyboard-interactive round: a refused login ends instead of starting over.
            "NumberOfPasswordPrompts=1".into(),
            "IdentityAgent=none".into(),
            "IdentitiesOnly=yes".into(),
        ];
        match method {
            Method::KeyboardInteractive => {
                options.push("PreferredAuthentications=keyboard-interactive".into());
                options.push("PubkeyAuthentication=no".into());
            }
            Method::Password => {
                options.push("PreferredAuthentications=password".into());
                options.push("PubkeyAuthentication=no".into());
            }
            Method::KeyThenKeyboardInteractive => {
                options.push("PreferredAuthentications=publickey,keyboard-interactive".into());
                options.push(format!("IdentityFile={}", self.key.display()));
            }
        }
        command.arg("-F").arg("/dev/null");
        for option in options {
            command.arg("-o").arg(option);
        }
    }

    fn drive(&self, command: Command, answer: impl FnMut(&str) -> String) -> SshOutcome {
        let run = self.runs.get() + 1;
        self.runs.set(run);
        let talk = self.dir.path().join(format!("run{run}"));
        drive(command, self.dir.path(), &talk, answer)
    }
}

/// Runs an OpenSSH client `command` (ssh, sftp, or either behind `ip netns exec`) with `home`
/// as its HOME, answering each prompt it shows through the askpass helper with `answer`; the
/// prompts, answers and output go to `talk`.
pub fn drive(
    mut command: Command,
    home: &Path,
    talk: &Path,
    mut answer: impl FnMut(&str) -> String,
) -> SshOutcome {
    fs::create_dir_all(talk).expect("mkdir the askpass directory");
    let stdout_path = talk.join("stdout");
    let stderr_path = talk.join("stderr");
    command
        .env_clear()
        .env("PATH", "/usr/bin:/bin:/usr/sbin:/sbin")
        .env("HOME", home)
        // A UTF-8 locale, as a person's terminal has: in the C locale the client shows every
        // byte of a non-ASCII prompt as an octal escape.
        .env("LC_ALL", "C.UTF-8")
        .env("SSH_ASKPASS", askpass())
        .env("SSH_ASKPASS_REQUIRE", "force")
        .env("OTP_ASKPASS_DIR", talk)
        .stdin(Stdio::null())
        .stdout(fs::File::create(&stdout_path).expect("stdout file"))
        .stderr(fs::File::create(&stderr_path).expect("stderr file"));
    let mut child = KillOnDrop(command.spawn().expect("run the OpenSSH client"));
    let deadline = Instant::now() + RUN_TIMEOUT;
    let mut prompts = Vec::new();
    let status = loop {
        let n = prompts.len() + 1;
        if let Ok(prompt) = fs::read_to_string(talk.join(format!("prompt.{n}"))) {
            let partial = talk.join(format!("answer.{n}.partial"));
            fs::write(&partial, answer(&prompt)).expect("write the answer");
            fs::rename(&partial, talk.join(format!("answer.{n}"))).expect("publish the answer");
            prompts.push(prompt);
            continue;
        }
        if let Some(status) = child.0.try_wait().expect("wait for the client") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the ssh client did not finish; prompts so far: {prompts:?}; stderr: {}",
            fs::read_to_string(&stderr_path).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    SshOutcome {
        exit_code: status.code(),
        stdout: fs::read_to_string(&stdout_path).unwrap_or_default(),
        stderr: fs::read_to_string(&stderr_path).unwrap_or_default(),
        prompts,
    }
}

/// The askpass helper script.
fn askpass() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("programs/askpass")
}

/// Kills a client left running when a test fails half-way (e.g. an assertion in `answer`).
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}
