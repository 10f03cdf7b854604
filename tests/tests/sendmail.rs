//! End-to-end: otpd handing mail to Debian Postfix's real `sendmail` the way the packaged
//! service runs it, with no_new_privs and no privileges. Postfix's setgid `postdrop` then
//! cannot write the queue and retries for ever (issue #14); the login must fail within the
//! deadline, say why, and leave neither `sendmail` nor `postdrop` running.

// Test code: a failed unwrap is how a test reports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use e2e_tests::libpam;
use e2e_tests::login::{login_with, never_prompted};
use e2e_tests::otpd::Otpd;
use e2e_tests::stack::PamConfDir;

/// Debian Postfix's programs.
const SENDMAIL: &str = "/usr/sbin/sendmail";
const POSTDROP: &str = "/usr/sbin/postdrop";
const SETPRIV: &str = "/usr/bin/setpriv";

/// otpd with every user required to give a code and `mail` as its `[mail]` section; a PAM
/// stack for `sshd` that waits up to 30 s for otpd.
fn start(mail: &str) -> (Otpd, PamConfDir) {
    let otpd = Otpd::start_with_text(|socket, state_dir| {
        format!(
            "[daemon]\nsocket = \"{}\"\nstate_dir = \"{}\"\n\n[directory]\nemail_template = \"{{user}}@example.test\"\n\n[defaults]\nmode = \"required\"\n\n[mail]\nfrom = \"otp@example.test\"\n{mail}\n",
            socket.display(),
            state_dir.display()
        )
    });
    let pam = PamConfDir::new();
    pam.otp_then_permit("sshd", &otpd.socket, "timeout=30 mail_timeout=30");
    (otpd, pam)
}

/// The processes that still run (zombies are dead) with `MAIL_CONFIG=config` in their
/// environment, as `pid comm`: the wrapper's sendmail and the postdrop it starts, whichever
/// process group they are in.
fn running_with(config: &Path) -> Vec<String> {
    let marker = format!("MAIL_CONFIG={}", config.display());
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        if !environ
            .split(|&b| b == 0)
            .any(|var| var == marker.as_bytes())
        {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ...; comm may hold spaces, so split after its ')'.
        if let Some((head, rest)) = stat.rsplit_once(") ") {
            if !rest.starts_with(['Z', 'X']) {
                found.push(head.replace(" (", " "));
            }
        }
    }
    found
}

#[test]
fn postfix_sendmail_under_no_new_privs_fails_the_login_within_the_deadline_and_leaves_no_postdrop()
{
    for program in [SENDMAIL, POSTDROP, SETPRIV] {
        assert!(
            Path::new(program).exists(),
            "{program} is missing: install postfix (tests/install-deps)"
        );
    }
    let setgid = std::fs::metadata(POSTDROP).unwrap().permissions().mode() & 0o2000;
    assert_ne!(
        setgid, 0,
        "{POSTDROP} is not setgid: this is not Debian's Postfix"
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    // Postfix needs a main.cf; a private one, so the test leaves /etc/postfix alone.
    let config = dir.path().join("postfix");
    std::fs::create_dir(&config).unwrap();
    std::fs::write(
        config.join("main.cf"),
        "compatibility_level = 3.6\nmyhostname = box1.example.test\n",
    )
    .unwrap();
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o755)).unwrap();
    // The packaged service's conditions for the program otpd starts: no_new_privs and an
    // unprivileged user. `exec` keeps the pid, so sendmail leads the group otpd made for it;
    // MAIL_CONFIG, which Postfix passes on to postdrop, marks both for the check below.
    let wrapper = dir.path().join("sendmail");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nexec env MAIL_CONFIG=\"{config}\" {SETPRIV} --no-new-privs --reuid=nobody --regid=nogroup --clear-groups {SENDMAIL} \"$@\"\n",
            config = config.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (otpd, pam) = start(&format!(
        "sendmail_path = \"{}\"\ntotal_timeout_seconds = 3",
        wrapper.display()
    ));

    let started = Instant::now();
    let result = login_with(&pam, "sshd", "mallory", None, never_prompted);
    let took = started.elapsed();

    assert_eq!(
        libpam::code_name(result.code),
        "PAM_AUTHINFO_UNAVAIL",
        "{result:?}"
    );
    assert!(took < Duration::from_secs(6), "the login took {took:?}");
    // The killed postdrop is reaped by init; give it a moment.
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut left = running_with(&config);
    while !left.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        left = running_with(&config);
    }
    assert!(
        left.is_empty(),
        "still running after the deadline: {left:?}"
    );
    let failed = &otpd.events("mail_failed")[0];
    assert!(failed.contains("did not finish within 3.0s"), "{failed}");
    assert!(
        failed.contains("postdrop: warning: mail_queue_enter: create file maildrop/"),
        "{failed}"
    );
}
