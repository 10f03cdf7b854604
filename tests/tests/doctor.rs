//! `otpctl doctor` against the real thing: Debian's sshd judging an sshd_config that Includes the
//! shipped drop-in (packaging/doc/examples/sshd_config.d/otp-email.conf), and pam.d trees built
//! from the shipped service files. No otpd runs here; only the `sshd` and `pam` findings count.

// Test code: a failed unwrap is how a test reports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use e2e_tests::paths;
use e2e_tests::programs::{sshd, stacks};
use serde_json::Value;

/// A file shipped in packaging/doc/examples.
fn example(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../packaging/doc/examples")
        .join(path)
}

/// The findings of `otpctl doctor --json` for `check` (`sshd` or `pam`), run with `extra`
/// arguments, no config and no otpd.
fn findings(check: &str, extra: &[&str]) -> Vec<Value> {
    let scratch = tempfile::tempdir().unwrap();
    let output = Command::new(paths::binary("otpctl"))
        .arg("--config")
        .arg(scratch.path().join("otpd.toml"))
        .arg("--socket")
        .arg(scratch.path().join("otpd.sock"))
        .args(["--timeout", "1", "--json", "doctor"])
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let all: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    all.as_array()
        .unwrap()
        .iter()
        .filter(|f| f["check"] == check)
        .cloned()
        .collect()
}

fn at_level<'f>(findings: &'f [Value], level: &str) -> Vec<&'f Value> {
    findings.iter().filter(|f| f["level"] == level).collect()
}

/// An sshd_config as Debian ships it in effect: the drop-in Included first, then Debian's
/// default for root; with a host key so `sshd -T` runs.
struct SshdConfig {
    dir: tempfile::TempDir,
}

impl SshdConfig {
    fn including(drop_in: &str) -> SshdConfig {
        SshdConfig::including_with(drop_in, sshd::DEBIAN_ROOT_DEFAULT)
    }

    /// The drop-in Included, then `main` (global lines of sshd_config).
    fn including_with(drop_in: &str, main: &str) -> SshdConfig {
        sshd::ensure_privsep_dir();
        let dir = tempfile::tempdir().unwrap();
        let host_key = dir.path().join("host_ed25519");
        sshd::keygen(&host_key);
        fs::write(dir.path().join("otp-email.conf"), drop_in).unwrap();
        fs::write(
            dir.path().join("sshd_config"),
            format!(
                "Include {}\nHostKey {}\n{}",
                dir.path().join("otp-email.conf").display(),
                host_key.display(),
                main
            ),
        )
        .unwrap();
        SshdConfig { dir }
    }

    fn doctor(&self) -> Vec<Value> {
        let command = format!(
            "{} -T -f {}",
            sshd::SSHD,
            self.dir.path().join("sshd_config").display()
        );
        findings("sshd", &["--sshd-command", &command])
    }
}

fn shipped_drop_in() -> String {
    fs::read_to_string(example("sshd_config.d/otp-email.conf")).unwrap()
}

/// The shipped drop-in up to its `Match User root` block: what it was before issue 17.
fn drop_in_without_the_root_block() -> String {
    let text = shipped_drop_in();
    let at = text
        .find("\nMatch User root")
        .expect("the drop-in ends with the root block");
    text[..=at].to_string()
}

#[test]
fn the_shipped_sshd_drop_in_passes_for_root_and_everyone_under_debians_root_default() {
    let f = SshdConfig::including(&shipped_drop_in()).doctor();
    assert!(at_level(&f, "problem").is_empty(), "{f:#?}");
    assert!(at_level(&f, "warning").is_empty(), "{f:#?}");
    assert!(
        f.iter().any(|f| f["message"]
            .as_str()
            .unwrap()
            .contains("root gives the code too")),
        "{f:#?}"
    );
}

#[test]
fn the_drop_in_without_its_root_block_is_reported_as_locking_root_out() {
    let f = SshdConfig::including(&drop_in_without_the_root_block()).doctor();
    let problems = at_level(&f, "problem");
    assert_eq!(problems.len(), 1, "{f:#?}");
    assert!(
        problems[0]["message"]
            .as_str()
            .unwrap()
            .contains("root cannot log in over ssh"),
        "{f:#?}"
    );
    assert!(
        problems[0]["fix"]
            .as_str()
            .unwrap()
            .contains("Match User root"),
        "{f:#?}"
    );
}

#[test]
fn a_root_block_with_the_key_alone_is_a_warning_for_everyone_giving_the_code() {
    let key_then_code = drop_in_without_the_root_block().replace(
        "AuthenticationMethods keyboard-interactive:pam\n",
        "AuthenticationMethods publickey,keyboard-interactive:pam\n",
    );
    let f = SshdConfig::including(&format!(
        "{key_then_code}Match User root\n    AuthenticationMethods publickey\n"
    ))
    .doctor();
    assert!(at_level(&f, "problem").is_empty(), "{f:#?}");
    let warnings = at_level(&f, "warning");
    assert_eq!(warnings.len(), 1, "{f:#?}");
    assert!(
        warnings[0]["message"]
            .as_str()
            .unwrap()
            .contains("root logs in without the code (publickey)"),
        "{f:#?}"
    );
}

/// common-auth as `pam-auth-update --enable otp-email` leaves it on Debian, with the profile
/// shipped in packaging/pam-configs/otp-email.
fn common_auth_with_the_profile() -> String {
    let profile = fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/pam-configs/otp-email"),
    )
    .unwrap();
    let line = profile
        .lines()
        .find(|l| l.contains("pam_otp_email.so"))
        .expect("the profile's auth line")
        .trim();
    format!(
        "auth\t[success=1 default=ignore]\tpam_unix.so nullok\nauth\trequisite\tpam_deny.so\nauth\trequired\tpam_permit.so\nauth\t{line}\n"
    )
}

/// The pam findings of doctor over a pam.d holding the profile's common-auth and `services`.
fn pam_findings(services: &[(&str, &str)]) -> Vec<Value> {
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join("common-auth"),
        common_auth_with_the_profile(),
    )
    .unwrap();
    for (name, text) in services {
        fs::write(dir.path().join(name), text).unwrap();
    }
    findings("pam", &["--pam-dir", dir.path().to_str().unwrap()])
}

#[test]
fn debians_vsftpd_through_common_auth_with_the_profile_is_a_problem() {
    let f = pam_findings(&[("vsftpd", stacks::DEBIAN_VSFTPD)]);
    let problems = at_level(&f, "problem");
    assert_eq!(problems.len(), 1, "{f:#?}");
    assert!(
        problems[0]["message"]
            .as_str()
            .unwrap()
            .starts_with("vsftpd speaks ftp"),
        "{f:#?}"
    );
    assert!(
        problems[0]["fix"]
            .as_str()
            .unwrap()
            .contains("pam_otp_email.so split"),
        "{f:#?}"
    );
}

#[test]
fn the_shipped_single_secret_stacks_are_accepted_next_to_the_profile() {
    let read = |name: &str| fs::read_to_string(example(&format!("pam.d/{name}"))).unwrap();
    let (vsftpd, nginx, apache2) = (read("vsftpd"), read("nginx"), read("apache2"));
    let f = pam_findings(&[
        ("vsftpd", &vsftpd),
        ("nginx", &nginx),
        ("apache2", &apache2),
    ]);
    assert!(at_level(&f, "problem").is_empty(), "{f:#?}");
    assert!(at_level(&f, "warning").is_empty(), "{f:#?}");
    for service in ["vsftpd (ftp", "nginx (http", "apache2 (http"] {
        assert!(
            f.iter()
                .any(|f| f["message"].as_str().unwrap().starts_with(service)),
            "{service}: {f:#?}"
        );
    }
}

#[test]
fn the_shipped_root_block_under_a_global_permitrootlogin_no_is_a_warning() {
    let f = SshdConfig::including_with(&shipped_drop_in(), "PermitRootLogin no\n").doctor();
    assert!(at_level(&f, "problem").is_empty(), "{f:#?}");
    let warnings = at_level(&f, "warning");
    assert_eq!(warnings.len(), 1, "{f:#?}");
    assert!(
        warnings[0]["message"]
            .as_str()
            .unwrap()
            .contains("although sshd_config says PermitRootLogin no"),
        "{f:#?}"
    );
}
