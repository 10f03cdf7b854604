//! End-to-end: files the admin names in the config (templates as `@/path`, `password_file`,
//! `ca_file`, the DKIM `key_file`) that are a FIFO, a device, too big or owned by another user
//! are refused by the real `otpd --check-config` at the setting's `FILE:LINE:COLUMN`, at once
//! (a FIFO once hung it), and a reload naming a FIFO leaves logins working (issue #15, part 6).

// Test code: a failed unwrap is how a test reports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use e2e_tests::login::{login_with, mailed_code};
use e2e_tests::otpd::{Otpd, TestConfig};
use e2e_tests::paths;
use e2e_tests::smtp::SmtpCapture;
use e2e_tests::stack::PamConfDir;

/// How long `--check-config` may take before the test calls it a hang.
const CHECK_DEADLINE: Duration = Duration::from_secs(10);

/// Debian's `nobody`.
const NOBODY: u32 = 65534;

/// A setting that names a file, and the config around it; `{}` is the file's path.
struct Setting {
    key: &'static str,
    config: &'static str,
}

const SETTINGS: &[Setting] = &[
    Setting {
        key: "subject",
        config: "[mail]\nfrom = \"otp@example.test\"\nsubject = \"@{}\"\n",
    },
    Setting {
        key: "text_template",
        config: "[mail]\nfrom = \"otp@example.test\"\ntext_template = \"@{}\"\n",
    },
    Setting {
        key: "html_template",
        config: "[profiles.admins]\nhtml_template = \"@{}\"\n\n[mail]\nfrom = \"otp@example.test\"\n",
    },
    Setting {
        key: "password_file",
        config: "[mail]\nfrom = \"otp@example.test\"\n\n[[mail.servers]]\nname = \"relay\"\nhost = \"mail.example.test\"\nsecurity = \"tls\"\nusername = \"otp\"\npassword_file = \"{}\"\n",
    },
    Setting {
        key: "ca_file",
        config: "[mail]\nfrom = \"otp@example.test\"\n\n[[mail.servers]]\nname = \"relay\"\nhost = \"mail.example.test\"\nsecurity = \"tls\"\nca_file = \"{}\"\n",
    },
    Setting {
        key: "key_file",
        config: "[mail]\nfrom = \"otp@example.test\"\n\n[mail.dkim]\nselector = \"s1\"\ndomain = \"example.test\"\nkey_file = \"{}\"\n",
    },
];

/// The bad files: name and how to make one in `dir`.
fn bad_files(dir: &Path) -> Vec<(&'static str, PathBuf)> {
    let fifo = dir.join("fifo");
    let status = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(status.success());
    let big = dir.join("big");
    fs::write(&big, vec![b'x'; 2 * 1024 * 1024]).unwrap();
    fs::set_permissions(&big, fs::Permissions::from_mode(0o600)).unwrap();
    let foreign = dir.join("foreign");
    fs::write(&foreign, "{code}\n").unwrap();
    fs::set_permissions(&foreign, fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::chown(&foreign, Some(NOBODY), None).unwrap();
    vec![
        ("a FIFO", fifo),
        ("a device", PathBuf::from("/dev/zero")),
        ("an oversized file", big),
        ("a file owned by nobody", foreign),
    ]
}

/// Runs `otpd --check-config` on `config`; (exit success, stderr). Fails the test on a hang.
fn check_config(config: &Path) -> (bool, String) {
    let mut child = Command::new(paths::binary("otpd"))
        .arg("--check-config")
        .arg("--config")
        .arg(config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let output = child.wait_with_output().unwrap();
            return (
                status.success(),
                String::from_utf8_lossy(&output.stderr).into_owned(),
            );
        }
        if started.elapsed() > CHECK_DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!("otpd --check-config on {} hung", config.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `FILE:LINE:COLUMN` of the value of `key` in `text`.
fn position_of(config: &Path, text: &str, key: &str) -> String {
    let (index, line) = text
        .lines()
        .enumerate()
        .find(|(_, l)| l.starts_with(&format!("{key} =")))
        .unwrap();
    let column = line.find('"').unwrap() + 1;
    format!("{}:{}:{}:", config.display(), index + 1, column)
}

#[test]
fn every_named_file_that_is_a_fifo_a_device_oversized_or_foreign_is_refused_at_its_setting_at_once()
{
    let dir = tempfile::tempdir().unwrap();
    let files = bad_files(dir.path());
    let config = dir.path().join("otpd.toml");
    let mut failures = Vec::new();
    for setting in SETTINGS {
        for (what, file) in &files {
            let text = setting.config.replace("{}", &file.display().to_string());
            fs::write(&config, &text).unwrap();
            let (ok, stderr) = check_config(&config);
            let at = position_of(&config, &text, setting.key);
            if ok || !stderr.starts_with(&at) {
                failures.push(format!(
                    "{} as {what}: exit ok={ok}, expected {at}...; got {stderr}",
                    setting.key
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_reload_naming_a_fifo_template_is_refused_and_logins_keep_working() {
    let smtp = SmtpCapture::start();
    let otpd = Otpd::start(&TestConfig::required(smtp.port));
    let pam = PamConfDir::new();
    pam.otp_then_permit("sshd", &otpd.socket, "");
    let first = login_with(&pam, "sshd", "alice", None, mailed_code(smtp.reader(), 1));
    assert_eq!(first.name(), "PAM_SUCCESS", "{first:?}");

    let fifo = otpd.dir().join("template.fifo");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let text = otpd.config_text().replace(
        "[mail]\n",
        &format!("[mail]\ntext_template = \"@{}\"\n", fifo.display()),
    );
    // Waits (10 s at most) for otpd to log the outcome; with the FIFO read on the serving
    // thread it never did.
    otpd.reload_with(&text);
    let log = otpd.log();
    assert!(log.contains("reload refused"), "{log}");
    assert!(log.contains("a FIFO"), "{log}");

    let second = login_with(&pam, "sshd", "alice", None, mailed_code(smtp.reader(), 2));
    assert_eq!(second.name(), "PAM_SUCCESS", "{second:?}");
}
