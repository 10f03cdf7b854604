//! fail2ban (issue #22): the filter and jail the packages ship, run by the real fail2ban.
//!
//! - `fail2ban-regex` over the lines otpd wrote during real logins (IPv4 and IPv6 remote
//!   addresses, a hostile user name, remote addresses that are no address, a local user's
//!   claims, a success) finds each remote failure with its address and nothing else, in both
//!   file formats syslog daemons write.
//! - A private `fail2ban-server` with the shipped jail bans the address of wrong codes given
//!   through real sshd, and not the address a local user claimed.
//!
//! No syslog daemon or journal runs here, so the tests put otpd's stderr lines into syslog's
//! file format themselves ([`syslog_file`]): `TIME HOST otpd[PID]: LINE`, as rsyslog writes the
//! journal's lines (and as fail2ban's journal backend hands them to the filter, minus the time).

// Test code: a failed unwrap is how a test reports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use e2e_tests::login::{login_with, mailed_code, never_prompted};
use e2e_tests::otpd::Otpd;
use e2e_tests::paths;
use e2e_tests::programs::answers::{mailed_code as newest_code, wrong, wrong_codes};
use e2e_tests::programs::lab::LabBase;
use e2e_tests::programs::ssh_client::{Method, SshClient};
use e2e_tests::programs::sshd::{self, Sshd};
use e2e_tests::programs::stacks;
use e2e_tests::stack::PamConfDir;

/// The shipped filter and jail.
fn shipped(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../packaging/fail2ban")
        .join(relative)
}

/// otpd's log as a syslog file: each line behind a timestamp (rsyslog's ISO form, or the
/// traditional `Dec  7 01:34:23`), the host and `otpd[PID]:`.
fn syslog_file(otpd_log: &str, traditional: bool, pid: i32) -> String {
    otpd_log
        .lines()
        .map(|line| {
            let time = if traditional {
                "Dec  7 01:34:23"
            } else {
                "2026-12-07T01:34:23.237234+00:00"
            };
            format!("{time} testhost otpd[{pid}]: {line}\n")
        })
        .collect()
}

/// The addresses `fail2ban-regex` finds in `log` with the shipped filter, each with how many
/// lines named it.
fn found_by_fail2ban_regex(log: &str) -> BTreeMap<String, usize> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("syslog");
    fs::write(&file, log).unwrap();
    let out = Command::new("fail2ban-regex")
        .args(["-o", "id"])
        .arg(&file)
        .arg(shipped("filter.d/otpd.conf"))
        .output()
        .expect("run fail2ban-regex (tests/install-deps installs fail2ban)");
    assert!(
        out.status.success(),
        "fail2ban-regex: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut found = BTreeMap::new();
    for id in String::from_utf8(out.stdout).unwrap().lines() {
        *found.entry(id.trim().to_string()).or_insert(0) += 1;
    }
    found
}

/// Logs in as `user` (a real account) from its own uid through the built module, reporting
/// `rhost`, and answers each prompt with `answer`: what a local user can claim.
fn local_user_login(pam: &PamConfDir, who: (u32, u32), user: &str, rhost: &str, answer: &str) {
    let mut child = Command::new("setpriv")
        .arg(format!("--reuid={}", who.0))
        .arg(format!("--regid={}", who.1))
        .args(["--clear-groups", "--"])
        .arg(paths::binary("pam-login"))
        .arg("--confdir")
        .arg(pam.path())
        .args(["--service", "sshd", "--user", user, "--rhost", rhost])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run pam-login as the user");
    let answers = format!("{answer}\n{answer}\n{answer}\n");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(answers.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success(), "a wrong code logged in: {out:?}");
}

/// Waits until otpd's log stops growing: every line of the logins above is in.
fn settled_log(otpd: &Otpd) -> String {
    let mut last = otpd.log();
    loop {
        std::thread::sleep(Duration::from_millis(300));
        let now = otpd.log();
        if now == last {
            return now;
        }
        last = now;
    }
}

#[test]
fn fail2ban_regex_finds_each_remote_failure_with_its_address_and_nothing_else() {
    // A lab for its real account: the local user whose claims must count for nothing.
    let lab = LabBase::start("max_user_failures = 3\n");
    let pam = PamConfDir::new();
    pam.otp_then_permit("sshd", &lab.otpd.socket, "");
    let wrongly = |user: &str, rhost: &str| {
        let reader = lab.smtp.reader();
        login_with(&pam, "sshd", user, Some(rhost), move |_| {
            wrong(&newest_code(&reader, 1))
        })
    };
    // Three wrong codes from an IPv4 address lock alice (max_user_failures = 3); her next try
    // is refused while locked, from the same address: four failures of 203.0.113.7.
    wrongly("alice", "203.0.113.7");
    login_with(&pam, "sshd", "alice", Some("203.0.113.7"), never_prompted);
    // Three from an IPv6 address.
    wrongly("bob", "2001:db8::7");
    // A user name built to look like an address field, from 192.0.2.77: that address, three
    // times, and never the one in the name.
    // (otpctl refuses spaces, control and line separator characters in a name; "=" it takes,
    // and otpd escapes it in the line.)
    let hostile = "rhost=198.51.100.1";
    let added = lab.otpd.otpctl(
        None,
        &[
            "user",
            "add",
            "--no-account",
            "--enable",
            "--email",
            "x@example.test",
            hostile,
        ],
    );
    assert_eq!(added.0, 0, "{added:?}");
    wrongly(hostile, "192.0.2.77");
    // Remote hosts root reported that are no address (a name, a forged field): no ban.
    wrongly("carol", "203.0.113.8 caller_uid=0");
    wrongly("dave", "mail.example.test");
    // The local user claims 198.51.100.2 for their own login, with wrong codes.
    local_user_login(
        &pam,
        lab.user.who(),
        &lab.user.name,
        "198.51.100.2",
        "000000",
    );
    // And a success from 192.0.2.50.
    let ok = login_with(
        &pam,
        "sshd",
        "erin",
        Some("192.0.2.50"),
        mailed_code(lab.smtp.reader(), 1),
    );
    assert_eq!(ok.code, e2e_tests::libpam::PAM_SUCCESS, "{ok:?}");

    let log = settled_log(&lab.otpd);
    assert!(
        log.contains("rhost=local caller_uid="),
        "the local user's claim was not audited as local:\n{log}"
    );
    let expected: BTreeMap<String, usize> =
        [("203.0.113.7", 4), ("2001:db8::7", 3), ("192.0.2.77", 3)]
            .into_iter()
            .map(|(address, n)| (address.to_string(), n))
            .collect();
    for traditional in [false, true] {
        let file = syslog_file(&log, traditional, lab.otpd.pid());
        assert_eq!(
            found_by_fail2ban_regex(&file),
            expected,
            "traditional time: {traditional}; otpd's log:\n{log}"
        );
    }
}

/// A private fail2ban-server: Debian's configuration with the shipped filter and jail, the jail
/// enabled over `log` (polled), banning through an action that only writes the address down,
/// and not ignoring loopback, where the test's sshd is.
struct Fail2ban {
    dir: tempfile::TempDir,
    server: Child,
}

impl Fail2ban {
    fn start(log: &Path, maxretry: u32) -> Fail2ban {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("conf");
        let copied = Command::new("cp")
            .args(["-r", "/etc/fail2ban"])
            .arg(&conf)
            .status()
            .unwrap();
        assert!(copied.success());
        // Only the jail under test: Debian's sshd jail wants /var/log/auth.log.
        let _ = fs::remove_file(conf.join("jail.d/defaults-debian.conf"));
        fs::copy(
            shipped("filter.d/otpd.conf"),
            conf.join("filter.d/otpd.conf"),
        )
        .unwrap();
        fs::copy(shipped("jail.d/otpd.conf"), conf.join("jail.d/otpd.conf")).unwrap();
        let banned = dir.path().join("banned");
        fs::write(
            conf.join("action.d/write-down.conf"),
            format!(
                "[Definition]\nactionstart =\nactionstop =\nactioncheck =\n\
                 actionban = echo <ip> >> {}\nactionunban =\n",
                banned.display()
            ),
        )
        .unwrap();
        fs::write(
            conf.join("jail.d/otpd.local"),
            format!(
                "[otpd]\nenabled = true\nbackend = polling\nlogpath = {}\n\
                 banaction = write-down\nmaxretry = {maxretry}\nignoreself = false\nignoreip =\n",
                log.display()
            ),
        )
        .unwrap();
        fs::write(
            conf.join("fail2ban.local"),
            format!(
                "[Definition]\nlogtarget = {}\nsocket = {}\npidfile = {}\ndbfile = :memory:\n",
                dir.path().join("fail2ban.log").display(),
                dir.path().join("fail2ban.sock").display(),
                dir.path().join("fail2ban.pid").display(),
            ),
        )
        .unwrap();
        let server = Command::new("fail2ban-server")
            .arg("-f")
            .arg("-x")
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start fail2ban-server");
        let f2b = Fail2ban { dir, server };
        f2b.wait_for_jail();
        f2b
    }

    fn client(&self) -> Command {
        let mut c = Command::new("fail2ban-client");
        c.arg("-c")
            .arg(self.dir.path().join("conf"))
            .arg("-s")
            .arg(self.dir.path().join("fail2ban.sock"));
        c
    }

    fn wait_for_jail(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = self.client().args(["status", "otpd"]).output().unwrap();
            if out.status.success() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "fail2ban did not start the jail: {}\n{}",
                String::from_utf8_lossy(&out.stderr),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The addresses the jail banned, in order.
    fn banned(&self) -> Vec<String> {
        fs::read_to_string(self.dir.path().join("banned"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("fail2ban.log")).unwrap_or_default()
    }
}

impl Drop for Fail2ban {
    fn drop(&mut self) {
        let _ = self.client().arg("stop").output();
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

#[test]
fn a_live_fail2ban_bans_the_address_of_wrong_codes_through_sshd_and_not_a_local_users_claim() {
    let lab = LabBase::start("");
    let stack = stacks::password_then_code(&stacks::otp(&lab.otpd.socket, ""));
    let sshd = Sshd::start("sshd", &stack, sshd::PASSWORD_THEN_CODE);
    let client = SshClient::new(&sshd);
    let syslog = lab.otpd.dir().join("syslog");
    fs::write(&syslog, "").unwrap();
    let fail2ban = Fail2ban::start(&syslog, 3);
    let forward = |otpd: &Otpd| {
        fs::write(&syslog, syslog_file(&settled_log(otpd), false, otpd.pid())).unwrap();
    };

    // First the local user, claiming 198.51.100.2 for their own logins: six wrong codes.
    let pam = PamConfDir::new();
    pam.otp_then_permit("sshd", &lab.otpd.socket, "");
    for _ in 0..2 {
        local_user_login(
            &pam,
            lab.user.who(),
            &lab.user.name,
            "198.51.100.2",
            "000000",
        );
    }
    forward(&lab.otpd);
    // Then three wrong codes through sshd from 127.0.0.1.
    let out = client.ssh(
        &lab.user.name,
        Method::KeyboardInteractive,
        "true",
        wrong_codes(&lab.user.password, lab.smtp.reader()),
    );
    assert!(!out.succeeded(), "{out:?}");
    forward(&lab.otpd);

    let deadline = Instant::now() + Duration::from_secs(20);
    while fail2ban.banned().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        fail2ban.banned(),
        vec!["127.0.0.1".to_string()],
        "fail2ban's log:\n{}\notpd's log:\n{}",
        fail2ban.log(),
        lab.otpd.log()
    );
}
