//! Runs the real `otpd` binary with a config in a temporary directory.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::client::{self, ClientOptions};
use common::wire::{Request, Response};

use crate::paths;

/// A running otpd and its files.
#[derive(Debug)]
pub struct Otpd {
    child: Option<Child>,
    dir: tempfile::TempDir,
    /// otpd's socket.
    pub socket: PathBuf,
    /// The config file otpd was started with.
    pub config_path: PathBuf,
    /// Extra environment for the otpd process (e.g. libfaketime's `LD_PRELOAD`).
    env: Vec<(String, String)>,
    /// The network namespace otpd runs in (`ip netns` name), if not the test's own.
    namespace: Option<String>,
    /// The host name otpd sees (in a UTS namespace of its own), if not the machine's.
    hostname: Option<String>,
}

/// An otpd that refused to start ([`Otpd::refused_at_start`]).
#[derive(Debug)]
pub struct Refused {
    /// What it printed (its log goes to stderr).
    pub log: String,
    /// The socket it would have served: a module pointed there finds no otpd.
    pub socket: PathBuf,
    _dir: tempfile::TempDir,
}

/// The config of a test otpd: its `[daemon]` extras and the rest of the file, around the fixed
/// socket, state directory and a mail server on the capture port.
#[derive(Debug, Clone, Default)]
pub struct TestConfig {
    /// Lines added to `[daemon]`.
    pub daemon: String,
    /// Everything after `[daemon]` and before `[mail]` (e.g. `[defaults]`, `[directory]`).
    pub body: String,
    /// The SMTP port of the (first) mail server.
    pub smtp_port: u16,
}

impl TestConfig {
    /// Every user `name` has the address `name@example.test` and must give a code.
    pub fn required(smtp_port: u16) -> TestConfig {
        TestConfig {
            daemon: String::new(),
            body: "[directory]\nemail_template = \"{user}@example.test\"\n\n[defaults]\nmode = \"required\"\n".into(),
            smtp_port,
        }
    }

    fn render(&self, socket: &Path, state_dir: &Path) -> String {
        format!(
            "[daemon]\nsocket = \"{}\"\nstate_dir = \"{}\"\n{}\n\n{}\n\n[mail]\nfrom = \"otp@example.test\"\n\n[[mail.servers]]\nname = \"capture\"\nhost = \"127.0.0.1\"\nport = {}\nsecurity = \"none\"\ntimeout_seconds = 5\n",
            socket.display(),
            state_dir.display(),
            self.daemon,
            self.body,
            self.smtp_port
        )
    }
}

impl Otpd {
    /// Starts otpd and waits until it answers a ping.
    pub fn start(config: &TestConfig) -> Otpd {
        Otpd::start_with_text(|socket, state_dir| config.render(socket, state_dir))
    }

    /// Starts otpd with the whole config file written by `render` from the socket path and the
    /// state directory (for tests that need their own `[mail]`), and waits for a ping.
    pub fn start_with_text(render: impl FnOnce(&Path, &Path) -> String) -> Otpd {
        Otpd::start_with_text_and_env(render, &[])
    }

    /// [`Otpd::start`] with extra environment variables for the otpd process: the clock tests
    /// run it under libfaketime.
    pub fn start_with_env(config: &TestConfig, env: &[(&str, &str)]) -> Otpd {
        Otpd::start_with_text_and_env(|socket, state_dir| config.render(socket, state_dir), env)
    }

    fn start_with_text_and_env(
        render: impl FnOnce(&Path, &Path) -> String,
        env: &[(&str, &str)],
    ) -> Otpd {
        Otpd::start_with(render, env, None, None)
    }

    fn start_with(
        render: impl FnOnce(&Path, &Path) -> String,
        env: &[(&str, &str)],
        namespace: Option<&str>,
        hostname: Option<&str>,
    ) -> Otpd {
        let dir = tempfile::tempdir().expect("tempdir");
        // Other uids (the caller tests) must reach the socket below this directory.
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
        let socket = dir.path().join("run/otpd.sock");
        let config_path = dir.path().join("otpd.toml");
        fs::write(&config_path, render(&socket, &dir.path().join("state"))).expect("write config");
        let mut otpd = Otpd {
            child: None,
            dir,
            socket,
            config_path,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            namespace: namespace.map(str::to_string),
            hostname: hostname.map(str::to_string),
        };
        otpd.spawn();
        otpd
    }

    /// Runs otpd on the config `render` writes from the socket path and the state directory,
    /// and expects it to refuse to start: fails the test if it still runs after 10 s or exits
    /// successfully.
    pub fn refused_at_start(render: impl FnOnce(&Path, &Path) -> String) -> Refused {
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = dir.path().join("otpd.sock");
        let path = dir.path().join("otpd.toml");
        fs::write(&path, render(&socket, &dir.path().join("state"))).expect("write config");
        let mut child = Command::new(paths::binary("otpd"))
            .arg("--config")
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn otpd");
        let deadline = Instant::now() + Duration::from_secs(10);
        while child.try_wait().expect("otpd's status").is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("otpd started with a bad config");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = child.wait_with_output().expect("otpd's output");
        let log = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(!out.status.success(), "otpd started: {log}");
        Refused {
            log,
            socket,
            _dir: dir,
        }
    }

    /// [`Otpd::start_with_text`] with otpd in the network namespace `namespace` (an `ip netns`
    /// name): it reaches only that namespace's network, while its socket, a file, is reached
    /// from here as always.
    pub fn start_in_namespace(
        namespace: &str,
        render: impl FnOnce(&Path, &Path) -> String,
    ) -> Otpd {
        Otpd::start_with(render, &[], Some(namespace), None)
    }

    /// [`Otpd::start_in_namespace`], otpd also seeing `hostname` as the machine's name (a UTS
    /// namespace of its own): one of several hosts, naming itself in its mail as a real host
    /// would.
    pub fn start_in_namespace_as(
        namespace: &str,
        hostname: &str,
        render: impl FnOnce(&Path, &Path) -> String,
    ) -> Otpd {
        Otpd::start_with(render, &[], Some(namespace), Some(hostname))
    }

    /// The temporary directory holding config, state and log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The state directory (database and key).
    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("otpd.log")
    }

    /// Everything otpd logged so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn spawn(&mut self) {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("log file");
        // nsenter, unshare and the shell's exec run otpd in place (no fork), so the child is
        // otpd itself, for signals.
        let mut command = match &self.namespace {
            Some(namespace) => {
                let mut nsenter = Command::new("nsenter");
                nsenter
                    .arg(format!("--net=/run/netns/{namespace}"))
                    .arg("--");
                if let Some(hostname) = &self.hostname {
                    nsenter.args([
                        "unshare",
                        "--uts",
                        "--",
                        "/bin/sh",
                        "-c",
                        "hostname \"$0\" && exec \"$@\"",
                        hostname,
                    ]);
                }
                nsenter.arg(paths::binary("otpd"));
                nsenter
            }
            None => Command::new(paths::binary("otpd")),
        };
        let child = command
            .arg("--config")
            .arg(&self.config_path)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn otpd");
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Response::Pong { .. }) = self.call(&Request::Ping) {
                return;
            }
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("otpd exited with {status}; log:\n{}", self.log());
                }
            }
            assert!(
                Instant::now() < deadline,
                "otpd did not become ready; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The real `otpctl ARGS` against this otpd (its socket and config), as root or as the
    /// uid:gid `who`, with no input: exit status, stdout, stderr.
    pub fn otpctl(&self, who: Option<(u32, u32)>, args: &[&str]) -> (i32, String, String) {
        let out = paths::otpctl_as(who)
            .arg("--socket")
            .arg(&self.socket)
            .arg("--config")
            .arg(&self.config_path)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run otpctl");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Enrols `user` at `email` with `otpctl user add USER --no-account --email EMAIL --enable`
    /// (no local account needed), which must succeed.
    pub fn enrol(&self, user: &str, email: &str) {
        let args = [
            "user",
            "add",
            user,
            "--no-account",
            "--email",
            email,
            "--enable",
        ];
        let (rc, out, err) = self.otpctl(None, &args);
        assert_eq!(rc, 0, "otpctl {args:?}: {out}{err}");
    }

    /// One request through the same client the module uses.
    pub fn call(&self, request: &Request) -> Result<Response, client::ClientError> {
        client::call(
            &ClientOptions {
                socket: self.socket.clone(),
                timeout: Duration::from_secs(5),
                trusted_daemon_uids: vec![nix_uid()],
            },
            request,
        )
    }

    /// The pid of the running otpd.
    pub fn pid(&self) -> i32 {
        self.child.as_ref().expect("running").id() as i32
    }

    /// Sends a signal to otpd.
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) with a pid of a child we spawned and a valid signal number.
        let rc = unsafe { libc::kill(self.pid(), signal) };
        assert_eq!(rc, 0, "kill failed");
    }

    /// otpd's audit lines for `event`, with the audit escapes for spaces and `=` undone so a
    /// test can read them.
    pub fn events(&self, event: &str) -> Vec<String> {
        self.log()
            .lines()
            .filter(|l| l.contains(&format!("event={event} ")))
            .map(|l| l.replace("\\x20", " ").replace("\\x3d", "="))
            .collect()
    }

    /// Stops otpd with SIGTERM and waits for it; returns its exit status success.
    pub fn stop(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return true;
        };
        // SAFETY: as in `signal`.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        child.wait().map(|s| s.success()).unwrap_or(false)
    }

    /// Stops and starts otpd again on the same config and state.
    pub fn restart(&mut self) {
        assert!(
            self.stop(),
            "otpd did not stop cleanly; log:\n{}",
            self.log()
        );
        self.spawn();
    }

    /// Writes a new config file and sends SIGHUP; waits until otpd logged the outcome.
    pub fn reload_with(&self, text: &str) {
        let before = self.log().len();
        fs::write(&self.config_path, text).expect("write config");
        self.signal(libc::SIGHUP);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let log = self.log();
            let new = &log[before.min(log.len())..];
            if new.contains("reloaded") || new.contains("reload refused") {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("otpd did not log a reload; log:\n{}", self.log());
    }

    /// Replaces the config file without telling otpd: the text applies at the next start.
    pub fn write_config(&self, text: &str) {
        fs::write(&self.config_path, text).expect("write config");
    }

    /// The config file's current text.
    pub fn config_text(&self) -> String {
        fs::read_to_string(&self.config_path).expect("read config")
    }
}

fn nix_uid() -> u32 {
    // SAFETY: getuid(2) cannot fail and has no preconditions.
    unsafe { libc::getuid() }
}

impl Drop for Otpd {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
