//! Real unix users for the logins: pam_unix checks their passwords in /etc/shadow, sshd and
//! vsftpd need their accounts and home directories. Each has a unique name (`e2e<pid>u<n>`) and
//! is deleted, with its home, on drop.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{PermissionsExt, chown};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// useradd, chpasswd and userdel lock /etc/passwd and /etc/shadow and fail rather than wait when
/// another of them holds the lock, so this process runs them one at a time (and retries).
static ACCOUNTS: Mutex<()> = Mutex::new(());
static NEXT: AtomicU32 = AtomicU32::new(1);

/// A unix user that exists for one test.
#[derive(Debug)]
pub struct TestUser {
    /// The login name; otpd mails `<name>@example.test` in the test configs.
    pub name: String,
    /// The password pam_unix accepts.
    pub password: String,
    /// The home directory (owned by the user).
    pub home: PathBuf,
    uid: u32,
    gid: u32,
}

impl TestUser {
    /// Creates a user with a home directory, `/bin/sh` and a known password.
    pub fn create() -> TestUser {
        let name = format!(
            "e2e{}u{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        // Letters only: the single-secret tests append the code's digits to it.
        let password = format!("Pw-{name}-secret").replace(|c: char| c.is_ascii_digit(), "x");
        {
            let _lock = ACCOUNTS.lock().unwrap_or_else(|p| p.into_inner());
            run_retrying(Command::new("useradd").args([
                "--create-home",
                "--shell",
                "/bin/sh",
                "--comment",
                "pam_otp_email end-to-end test",
                &name,
            ]));
            let mut chpasswd = Command::new("chpasswd");
            chpasswd.stdin(Stdio::piped());
            let line = format!("{name}:{password}\n");
            run_with_input(chpasswd, line.as_bytes());
        }
        let (uid, gid, home) = lookup(&name);
        TestUser {
            name,
            password,
            home,
            uid,
            gid,
        }
    }

    /// The uid and gid, to run a command as this user.
    pub fn who(&self) -> (u32, u32) {
        (self.uid, self.gid)
    }

    /// The address the test otpd configs give this user.
    pub fn email(&self) -> String {
        format!("{}@example.test", self.name)
    }

    /// Writes `contents` to `relative` under the home directory, owned by the user.
    pub fn write_file(&self, relative: &str, contents: &[u8]) -> PathBuf {
        let path = self.home.join(relative);
        fs::write(&path, contents).expect("write a file in the home directory");
        chown(&path, Some(self.uid), Some(self.gid)).expect("chown");
        path
    }

    /// Authorizes `public_key` (one OpenSSH public key line) in `~/.ssh/authorized_keys`, with
    /// the ownership and modes sshd's StrictModes insists on.
    pub fn authorize_key(&self, public_key: &str) {
        self.authorize_keys(&[public_key]);
    }

    /// Makes `~/.ssh/authorized_keys` hold exactly `public_keys`, one a line.
    pub fn authorize_keys(&self, public_keys: &[&str]) {
        let ssh = self.home.join(".ssh");
        fs::create_dir_all(&ssh).expect("mkdir ~/.ssh");
        set_owned(&ssh, self.uid, self.gid, 0o700);
        let keys = ssh.join("authorized_keys");
        let lines: String = public_keys
            .iter()
            .map(|k| format!("{}\n", k.trim()))
            .collect();
        fs::write(&keys, lines).expect("write authorized_keys");
        set_owned(&keys, self.uid, self.gid, 0o600);
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        let _lock = ACCOUNTS.lock().unwrap_or_else(|p| p.into_inner());
        // --force: a session process of the user may still be exiting.
        let output = retry(|| {
            Command::new("userdel")
                .args(["--remove", "--force", &self.name])
                .output()
        });
        if !output.status.success() {
            eprintln!(
                "userdel {} failed: {}",
                self.name,
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }
}

fn set_owned(path: &Path, uid: u32, gid: u32, mode: u32) {
    chown(path, Some(uid), Some(gid)).expect("chown");
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
}

/// uid, gid and home of `name`, from `getent passwd`.
fn lookup(name: &str) -> (u32, u32, PathBuf) {
    let output = Command::new("getent")
        .args(["passwd", name])
        .output()
        .expect("run getent");
    let line = String::from_utf8_lossy(&output.stdout).into_owned();
    let fields: Vec<&str> = line.trim().split(':').collect();
    assert!(fields.len() >= 7, "getent passwd {name}: {line:?}");
    (
        fields[2].parse().expect("uid"),
        fields[3].parse().expect("gid"),
        PathBuf::from(fields[5]),
    )
}

/// Runs an account tool, retrying while it says it could not lock the account files (another
/// process, e.g. a package install, may hold them for a moment).
fn run_retrying(command: &mut Command) {
    let output = retry(|| command.output());
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn retry(mut run: impl FnMut() -> std::io::Result<Output>) -> Output {
    let mut attempt = 0;
    loop {
        let output = run().expect("run an account tool (passwd package)");
        let locked = String::from_utf8_lossy(&output.stderr).contains("lock");
        attempt += 1;
        if output.status.success() || !locked || attempt >= 20 {
            return output;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn run_with_input(mut command: Command, input: &[u8]) {
    let mut child = command
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input)
        .expect("write stdin");
    let output = child.wait_with_output().expect("wait");
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}
