//! The memory a PAM module adds to the process that loads it, measured in a fresh child process
//! (this same binary, started with [`PROBE_FLAG`]) so nothing the benchmark itself allocated
//! blurs the numbers.
//!
//! The child reads its resident size, `dlopen`s the module (and keeps it loaded, as an
//! application does for the whole transaction), reads it again, runs one whole login through
//! libpam, and reads it a third time. Prompts are relayed to the parent over stdin/stdout: the
//! parent holds the mailbox (and the HOTP key), so it answers.

use std::ffi::CString;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::BenchError;
use crate::login;
use crate::memory::{self, Process};

/// The first argument that makes the binary a probe child.
pub const PROBE_FLAG: &str = "--probe-module";

/// Resident sizes of a probe child, KiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Footprint {
    /// Before the module was loaded.
    pub before: u64,
    /// With the module loaded, before any login.
    pub loaded: u64,
    /// After one whole login, the module still loaded.
    pub after_login: u64,
}

impl Footprint {
    /// What loading added.
    pub fn load_delta(&self) -> i64 {
        self.loaded as i64 - self.before as i64
    }

    /// What loading and one login added.
    pub fn login_delta(&self) -> i64 {
        self.after_login as i64 - self.before as i64
    }
}

/// What a probe child does.
#[derive(Debug, Clone)]
pub struct Probe {
    /// The module to load first, or `None` for the baseline (the stack loads what it needs).
    pub module: Option<PathBuf>,
    /// The PAM config directory.
    pub confdir: PathBuf,
    /// The service whose stack the login runs.
    pub service: String,
    /// The user.
    pub user: String,
}

/// Runs a probe child and answers its prompts with `answer`.
pub fn measure(
    probe: &Probe,
    mut answer: impl FnMut() -> Option<String>,
) -> Result<Footprint, BenchError> {
    let exe = std::env::current_exe().map_err(BenchError::io("current_exe"))?;
    let module = probe
        .module
        .as_ref()
        .map_or_else(|| "none".into(), |m| m.display().to_string());
    let mut child = Command::new(&exe)
        .arg(PROBE_FLAG)
        .arg(&module)
        .arg(&probe.confdir)
        .arg(&probe.service)
        .arg(&probe.user)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(BenchError::io(&exe))?;
    let (Some(mut to_child), Some(from_child)) = (child.stdin.take(), child.stdout.take()) else {
        return Err(BenchError::Setup("probe child without pipes".into()));
    };
    let mut result = Err(BenchError::Check(format!(
        "probe of {module} ended without a result"
    )));
    for line in BufReader::new(from_child).lines() {
        let line = line.map_err(BenchError::io("probe stdout"))?;
        if line == "PROMPT" {
            let reply = answer().unwrap_or_default();
            writeln!(to_child, "{reply}").map_err(BenchError::io("probe stdin"))?;
            to_child.flush().map_err(BenchError::io("probe stdin"))?;
        } else if let Some(numbers) = line.strip_prefix("RSS ") {
            let values: Vec<u64> = numbers
                .split_whitespace()
                .filter_map(|n| n.parse().ok())
                .collect();
            if let [before, loaded, after_login] = values[..] {
                result = Ok(Footprint {
                    before,
                    loaded,
                    after_login,
                });
            }
        } else if let Some(message) = line.strip_prefix("ERR ") {
            result = Err(BenchError::Check(format!("probe of {module}: {message}")));
        }
    }
    child.wait().map_err(BenchError::io(&exe))?;
    result
}

/// The child's side: `args` are module (or `none`), confdir, service, user.
pub fn child(args: &[String]) -> Result<(), BenchError> {
    let [module, confdir, service, user] = args else {
        return Err(BenchError::Setup(format!(
            "{PROBE_FLAG} takes MODULE CONFDIR SERVICE USER, got {args:?}"
        )));
    };
    let before = memory::rss_kib(Process::Current)?;
    if module != "none" {
        load(Path::new(module))?;
    }
    let loaded = memory::rss_kib(Process::Current)?;
    let outcome = login::login(Path::new(confdir), service, user, "", |_| {
        let mut out = std::io::stdout().lock();
        writeln!(out, "PROMPT").ok()?;
        out.flush().ok()?;
        let mut reply = String::new();
        std::io::stdin().lock().read_line(&mut reply).ok()?;
        Some(reply.trim_end().to_string())
    });
    let after_login = memory::rss_kib(Process::Current)?;
    let mut out = std::io::stdout().lock();
    let written = match outcome {
        Ok(()) => writeln!(out, "RSS {before} {loaded} {after_login}"),
        Err(e) => writeln!(out, "ERR {e}"),
    };
    written.map_err(BenchError::io("stdout"))
}

/// Loads `module` with RTLD_NOW, as libpam does, and leaves it loaded until the process exits.
fn load(module: &Path) -> Result<(), BenchError> {
    let path = CString::new(module.as_os_str().as_bytes())
        .map_err(|_| BenchError::Setup(format!("{} contains a NUL byte", module.display())))?;
    // SAFETY: `path` is a NUL-terminated string alive for the call. Loading runs the module's
    // initializers, which for a PAM module is exactly what libpam would do in this process.
    let handle = unsafe { libc::dlopen(path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    if handle.is_null() {
        return Err(BenchError::Setup(format!(
            "dlopen {} failed",
            module.display()
        )));
    }
    // The handle is deliberately never closed: the module stays mapped for the measurement.
    Ok(())
}
