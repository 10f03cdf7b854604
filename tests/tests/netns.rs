//! Trusted networks (issue #16) with real source addresses from real networks: the ssh client
//! runs inside a network namespace and reaches sshd in the root namespace over a veth pair, so
//! the rhost sshd hands to PAM is the namespace's address. A `match_rhost` policy with a
//! `mode = "off"` profile lets the management network in with the password alone; a login from
//! any other network is asked for the code. Needs root and `ip netns`; where `ip netns add` is
//! refused the test says why and skips.

// Test code: a failed unwrap is how a test reports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::TcpListener;

use e2e_tests::netns::{Namespace, ssh_from};
use e2e_tests::programs::answers::{is_code_prompt, is_password_prompt, person};
use e2e_tests::programs::lab::LabBase;
use e2e_tests::programs::ssh_client::SshOutcome;
use e2e_tests::programs::sshd::{self, Sshd};
use e2e_tests::programs::stacks;

/// A remote command whose output proves the shell ran as the user.
const WHOAMI: &str = "echo logged-in-as-$(id -un)";

/// otpd's policy: the management network (198.18.10.0/24) needs no code.
const MGMT_POLICY: &str = "\n[profiles.mgmt]\nmode = \"off\"\n\n\
                           [[policies]]\nmatch_rhost = [\"198.18.10.0/24\"]\nprofile = \"mgmt\"\n";

#[test]
fn from_the_management_namespace_the_password_alone_logs_in_and_from_another_the_code_is_asked() {
    // First, so a machine without namespaces skips before anything else starts. Dropped last:
    // sshd stops before its addresses go away.
    let (mgmt, other) = match (
        Namespace::create("mgmt", 10),
        Namespace::create("other", 20),
    ) {
        (Ok(mgmt), Ok(other)) => (mgmt, other),
        (Err(why), _) | (_, Err(why)) => {
            eprintln!("SKIPPED: {why}; this test needs root and network namespaces");
            return;
        }
    };
    let base = LabBase::start(MGMT_POLICY);
    // sshd keeps its loopback listener (readiness is checked there) and adds the root side of
    // both pairs on a port of our own: `ListenAddress` without a port takes `Port`.
    let port = TcpListener::bind("0.0.0.0:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let config = format!(
        "{}Port {port}\nListenAddress {}\nListenAddress {}\n",
        sshd::PASSWORD_THEN_CODE,
        mgmt.server_addr,
        other.server_addr
    );
    let stack = stacks::password_then_code(&stacks::otp(&base.otpd.socket, ""));
    let sshd = Sshd::start("sshd", &stack, &config);
    let user = &base.user;
    let logged_in = |out: &SshOutcome| {
        out.succeeded() && out.stdout.trim() == format!("logged-in-as-{}", user.name)
    };
    let report = |out: &SshOutcome| base.report(out, "sshd", &sshd.log());

    let password = user.password.clone();
    let inside = ssh_from(&mgmt, &sshd, port, &user.name, WHOAMI, move |prompt| {
        assert!(is_password_prompt(prompt), "only the password: {prompt:?}");
        password.clone()
    });
    assert!(logged_in(&inside), "{}", report(&inside));
    assert_eq!(inside.prompts.len(), 1, "{}", report(&inside));
    assert!(
        sshd.log().contains(&format!("from {}", mgmt.client_addr)),
        "sshd did not see the management address: {}",
        report(&inside)
    );
    base.assert_no_code_was_mailed();

    let outside = ssh_from(
        &other,
        &sshd,
        port,
        &user.name,
        WHOAMI,
        person(&user.password, base.smtp.reader(), 1),
    );
    assert!(logged_in(&outside), "{}", report(&outside));
    assert_eq!(outside.prompts.len(), 2, "{}", report(&outside));
    assert!(is_code_prompt(&outside.prompts[1]), "{}", report(&outside));
    assert!(
        base.smtp
            .last()
            .text
            .contains(&format!("ssh from {}", other.client_addr)),
        "{}",
        report(&outside)
    );
}
