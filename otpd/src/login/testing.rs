//! Fixtures shared by the login handler's tests: daemons whose mail always fails or whose clock
//! the test moves, and logins to send them.

use std::sync::Arc;

use common::wire::{LoginContext, Response};

use super::begin::{Mode, begin};
use crate::clock::SystemClock;
use crate::rules::limits_of;
use crate::state::Shared;
use crate::store::{Limits, Store};
use crate::test_support::caller;

/// otpd requiring a code of everyone, its only mail server on a loopback port where
/// nothing listens: every code mail fails.
pub(super) fn relay_down() -> (tempfile::TempDir, Arc<Shared>) {
    let dir = tempfile::tempdir().unwrap();
    let shared = crate::test_support::shared_mailing_through(dir.path(), 1, Arc::new(SystemClock));
    (dir, shared)
}

pub(super) use crate::test_support::alice;

/// [`relay_down`] whose database refuses every audit row (a trigger aborts the insert), after
/// `before` ran on its store, under its default limits, with rows still allowed: a disk that
/// fails only the audit table.
pub(super) fn audit_down<T>(
    before: impl FnOnce(&mut dyn Store, &Limits) -> T,
) -> (tempfile::TempDir, Arc<Shared>, T) {
    let (dir, shared) = relay_down();
    let limits = limits_of(&shared.active().config.defaults);
    let made = before(&mut shared.store(), &limits);
    drop(shared);
    crate::test_support::refuse_audit_rows(dir.path());
    let shared = crate::test_support::shared_mailing_through(dir.path(), 1, Arc::new(SystemClock));
    (dir, shared, made)
}

pub(super) fn audited(shared: &Shared, event: &str) -> i64 {
    let store = shared.store();
    store.count_rows(&format!(
        "SELECT count(*) FROM audit WHERE event = '{event}' AND user = 'alice'"
    ))
}

/// A Begin for `login` as sshd (root) sends it, with no SSH keys.
pub(super) async fn begin_as_root(shared: &Arc<Shared>, login: LoginContext) -> Response {
    begin(shared, caller(0), login, Mode::First(Vec::new())).await
}

/// Break-glass (issue #16): a clock the test moves.
#[derive(Debug, Default)]
pub(super) struct FakeClock(pub(super) std::sync::atomic::AtomicI64);

impl crate::clock::Clock for FakeClock {
    fn now(&self) -> i64 {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

pub(super) const T0: i64 = 1_700_000_000;

/// A daemon whose sshd logins need a code (every user has an address), on `clock`.
pub(super) fn breakglass_daemon(clock: Arc<FakeClock>) -> (tempfile::TempDir, Arc<Shared>) {
    let dir = tempfile::tempdir().unwrap();
    let config = crate::test_support::config(
        "[protocols]\nenabled = [\"ssh\"]\n[defaults]\nmode = \"required\"\n[directory]\nemail_template = \"{user}@example.com\"",
    );
    let shared = Arc::new(crate::test_support::shared(dir.path(), config, clock));
    (dir, shared)
}

pub(super) fn ssh_login(user: &str, rhost: &str) -> LoginContext {
    LoginContext {
        user: user.into(),
        service: "sshd".into(),
        rhost: Some(rhost.into()),
        tty: None,
        protocol: None,
    }
}
