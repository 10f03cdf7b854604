//! otpd's systemd service as doctor can learn it: from systemd when it runs (`systemctl show`,
//! and the running otpd's own no_new_privs flag), else from the unit files it is installed
//! with (packaging/systemd/otpd.service and drop-ins), merged the way systemd merges them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::host::Host;

/// The unit otpd is installed as.
pub const UNIT: &str = "otpd.service";

/// The user the packaged unit runs otpd as, when the unit names none.
pub const DEFAULT_USER: &str = "otpd";

/// Unit directories, most important first: a file here hides one of the same name further down.
const UNIT_DIRS: [&str; 4] = [
    "/etc/systemd/system",
    "/run/systemd/system",
    "/usr/lib/systemd/system",
    "/lib/systemd/system",
];

/// Settings that make systemd set no_new_privs whatever `NoNewPrivileges=` says, for a service
/// without CAP_SYS_ADMIN, as otpd's is (systemd.exec(5), systemd 252).
pub const IMPLY_NO_NEW_PRIVS: [&str; 16] = [
    "DynamicUser",
    "LockPersonality",
    "MemoryDenyWriteExecute",
    "PrivateDevices",
    "ProtectClock",
    "ProtectHostname",
    "ProtectKernelLogs",
    "ProtectKernelModules",
    "ProtectKernelTunables",
    "RestrictAddressFamilies",
    "RestrictNamespaces",
    "RestrictRealtime",
    "RestrictSUIDSGID",
    "SystemCallArchitectures",
    "SystemCallFilter",
    "SystemCallLog",
];

/// otpd's service settings and where they were read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// `[Service]` settings, the last assignment of each.
    pub settings: BTreeMap<String, String>,
    /// Where they come from, for the finding's text.
    pub source: String,
    /// The running otpd's pid, when systemd says one runs.
    pub main_pid: Option<u32>,
}

impl Service {
    /// The user otpd runs as.
    pub fn user(&self) -> &str {
        self.settings
            .get("User")
            .map(String::as_str)
            .filter(|u| !u.is_empty())
            .unwrap_or(DEFAULT_USER)
    }
}

/// Whether otpd runs with no_new_privs, and how doctor knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoNewPrivs {
    /// Read from the running otpd (`/proc/PID/status`): the fact, not a prediction.
    Running {
        /// otpd's pid.
        pid: u32,
        /// Whether the flag is set.
        set: bool,
    },
    /// Predicted from the unit's settings; `because` names those that set the flag.
    Unit {
        /// Where the settings were read.
        source: String,
        /// The settings that set no_new_privs; empty when none does.
        because: Vec<String>,
    },
    /// Neither systemd nor a unit file says.
    Unknown,
}

/// otpd's service, from systemd when it knows the unit, else from the unit files; `None` when
/// otpd is not installed as a systemd service.
pub fn service(host: &dyn Host) -> Option<Service> {
    from_systemd(host).or_else(|| from_files(host))
}

/// Whether otpd runs (or, not running, would run) with no_new_privs.
pub fn no_new_privs(host: &dyn Host, service: Option<&Service>) -> NoNewPrivs {
    let Some(service) = service else {
        return NoNewPrivs::Unknown;
    };
    if let Some(pid) = service.main_pid {
        let flag = host
            .read(Path::new(&format!("/proc/{pid}/status")))
            .and_then(|status| {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix("NoNewPrivs:").map(|v| v.trim() == "1"))
            });
        if let Some(set) = flag {
            return NoNewPrivs::Running { pid, set };
        }
    }
    let because = std::iter::once("NoNewPrivileges")
        .chain(IMPLY_NO_NEW_PRIVS)
        .filter(|key| service.settings.get(*key).is_some_and(|v| is_set(v)))
        .map(|key| format!("{key}={}", service.settings[key]))
        .collect();
    NoNewPrivs::Unit {
        source: service.source.clone(),
        because,
    }
}

/// Whether a setting's value switches it on: anything but empty or a false boolean.
fn is_set(value: &str) -> bool {
    !matches!(
        value.trim().to_ascii_lowercase().as_str(),
        "" | "no" | "false" | "off" | "0"
    )
}

fn from_systemd(host: &dyn Host) -> Option<Service> {
    let text = host.run("systemctl", &["show", UNIT])?;
    let settings: BTreeMap<String, String> = assignments(&text, false).into_iter().collect();
    if settings.get("LoadState").map(String::as_str) != Some("loaded") {
        return None;
    }
    let main_pid = settings
        .get("MainPID")
        .and_then(|p| p.parse().ok())
        .filter(|&p| p > 0);
    Some(Service {
        settings,
        source: format!("`systemctl show {UNIT}`"),
        main_pid,
    })
}

fn from_files(host: &dyn Host) -> Option<Service> {
    let main = UNIT_DIRS
        .iter()
        .map(|dir| Path::new(dir).join(UNIT))
        .find(|path| host.read(path).is_some())?;
    // Drop-ins apply in the order of their file names; one in a more important directory
    // hides any of the same name further down.
    let mut drop_ins: BTreeMap<String, PathBuf> = BTreeMap::new();
    for dir in UNIT_DIRS.iter().rev() {
        let dir = Path::new(dir).join(format!("{UNIT}.d"));
        for name in host.list(&dir) {
            if name.ends_with(".conf") {
                drop_ins.insert(name.clone(), dir.join(name));
            }
        }
    }
    let mut settings = BTreeMap::new();
    let mut read = Vec::new();
    for path in std::iter::once(main).chain(drop_ins.into_values()) {
        if let Some(text) = host.read(&path) {
            // An empty assignment resets a setting; kept as empty, it reads as unset.
            settings.extend(assignments(&text, true));
            read.push(path.display().to_string());
        }
    }
    Some(Service {
        settings,
        source: read.join(", "),
        main_pid: None,
    })
}

/// `Key=value` lines, the last of each key winning; with `sections`, only those in
/// `[Service]` (a unit file), else every line (`systemctl show`). Empty values are kept.
fn assignments(text: &str, sections: bool) -> Vec<(String, String)> {
    let mut in_service = !sections;
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if sections && line.starts_with('[') {
            in_service = line == "[Service]";
            continue;
        }
        if let (true, Some((key, value))) = (in_service, line.split_once('=')) {
            out.push((key.trim().to_string(), value.trim().to_string()));
        }
    }
    out
}
