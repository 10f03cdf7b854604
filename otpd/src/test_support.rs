//! Fixtures shared by otpd's unit tests: a config built around a minimal `[mail]` section, and
//! account databases that stand in for NSS so caller and admin checks run without real users.

use std::path::Path;

use common::config::Config;

use crate::accounts::Accounts;
use crate::caller::Caller;

/// `extra` (any sections the test is about) followed by the smallest `[mail]` a config needs:
/// one plain-text server on loopback, which nothing in a unit test ever connects to.
pub fn config(extra: &str) -> Config {
    let text = format!(
        "{extra}\n[mail]\nfrom = \"otp@example.com\"\n[[mail.servers]]\nname = \"l\"\nhost = \"127.0.0.1\"\nsecurity = \"none\"\n"
    );
    Config::parse(&text, Path::new("test.toml")).unwrap()
}

/// An otpd's shared state for in-process tests: `config` with its mailer, a fresh store in
/// `dir` keyed with a fixed server key, `clock`, and [`FakeAccounts`] for NSS.
pub fn shared(
    dir: &Path,
    config: Config,
    clock: std::sync::Arc<dyn crate::clock::Clock>,
) -> crate::state::Shared {
    shared_with_accounts(dir, config, clock, std::sync::Arc::new(FakeAccounts))
}

/// [`shared`] with `accounts` standing in for NSS.
pub fn shared_with_accounts(
    dir: &Path,
    config: Config,
    clock: std::sync::Arc<dyn crate::clock::Clock>,
    accounts: std::sync::Arc<dyn Accounts>,
) -> crate::state::Shared {
    let store = crate::store::SqliteStore::open(
        &dir.join("otpd.db"),
        crate::server_key::ServerKey::from_bytes([0x4d; 32]),
    )
    .unwrap();
    let mailer = crate::mail::Mailer::new(&config.mail).unwrap();
    let active = crate::state::Active::build(config, mailer, &clock).unwrap();
    crate::state::Shared::new(active, Box::new(store), clock, accounts, "test".into())
}

/// A caller whose primary group has the number of its uid, as `useradd` usually makes it.
pub fn caller(uid: u32) -> Caller {
    Caller::local(uid, uid)
}

/// An account database with nobody in it: no names, no uids, no groups.
#[derive(Debug)]
pub struct NoAccounts;

impl Accounts for NoAccounts {
    fn user_name(&self, _uid: u32) -> Option<String> {
        None
    }
    fn uid_of(&self, _name: &str) -> Option<u32> {
        None
    }
    fn groups_of(&self, _user: &str) -> Vec<String> {
        Vec::new()
    }
}

/// A few accounts: `alice` (1000, also in `otpadmin`), `bob` (1001, also in `webdav`) and
/// `www-data` (33). Every user is in the group of their own name; other uids have no name.
#[derive(Debug)]
pub struct FakeAccounts;

impl Accounts for FakeAccounts {
    fn user_name(&self, uid: u32) -> Option<String> {
        match uid {
            1000 => Some("alice".into()),
            1001 => Some("bob".into()),
            33 => Some("www-data".into()),
            _ => None,
        }
    }
    fn uid_of(&self, name: &str) -> Option<u32> {
        match name {
            "alice" => Some(1000),
            "bob" => Some(1001),
            "www-data" => Some(33),
            _ => None,
        }
    }
    fn groups_of(&self, user: &str) -> Vec<String> {
        match user {
            "alice" => vec!["alice".into(), "otpadmin".into()],
            "bob" => vec!["bob".into(), "webdav".into()],
            _ => vec![user.into()],
        }
    }
}

/// otpd's shared state requiring a code of everyone (`USER@example.test`), mailing through
/// one plain-text server on loopback `port` (port 1: nothing listens, every mail fails), at
/// `clock`.
pub fn shared_mailing_through(
    dir: &Path,
    port: u16,
    clock: std::sync::Arc<dyn crate::clock::Clock>,
) -> std::sync::Arc<crate::state::Shared> {
    let text = format!(
        "[directory]\nemail_template = \"{{user}}@example.test\"\n\
         [defaults]\nmode = \"required\"\n\
         [mail]\nfrom = \"otp@example.com\"\n\
         [[mail.servers]]\nname = \"relay\"\nhost = \"127.0.0.1\"\nport = {port}\n\
         security = \"none\"\ntimeout_seconds = 2\n"
    );
    let config = Config::parse(&text, Path::new("t.toml")).unwrap();
    std::sync::Arc::new(shared(dir, config, clock))
}

/// alice logging in over sshd from 192.0.2.1, as sshd reports it.
pub fn alice() -> common::wire::LoginContext {
    common::wire::LoginContext {
        user: "alice".into(),
        service: "sshd".into(),
        rhost: Some("192.0.2.1".into()),
        tty: None,
        protocol: None,
    }
}

/// Makes the database `otpd.db` in `dir` (not open) refuse every audit row: a trigger aborts
/// the insert, as a disk that fails only the audit table would.
pub fn refuse_audit_rows(dir: &Path) {
    rusqlite::Connection::open(dir.join("otpd.db"))
        .unwrap()
        .execute_batch(
            "CREATE TRIGGER audit_down BEFORE INSERT ON audit
             BEGIN SELECT RAISE(ABORT, 'the audit table is down'); END",
        )
        .unwrap();
}

/// The audit log lines (`otpd::audit`, from `event=` on) that `work` writes on this thread.
pub fn audit_lines(work: impl FnOnce()) -> Vec<String> {
    /// A log writer into a buffer the test reads after.
    #[derive(Clone)]
    struct Buffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    let buffer = Buffer(Default::default());
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    tracing::subscriber::with_default(subscriber, work);
    let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    text.lines()
        .filter_map(|line| line.split_once("otpd::audit: ").map(|(_, e)| e.to_string()))
        .collect()
}

/// A loopback port where nothing listens (bound, then closed).
pub fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Config lines for an address template and one LDAP source, `corp`, whose only server is
/// down (a closed loopback port): a user the directory should know gets no address.
pub fn ldap_down_lines() -> String {
    format!(
        "[directory]\nemail_template = \"{{user}}@example.com\"\n\
         [[directory.ldap]]\nname = \"corp\"\nurls = [\"ldap://127.0.0.1:{}\"]\ntls = \"none\"\n\
         base = \"dc=example,dc=com\"\nfilter = \"(uid={{user}})\"\nconnect_timeout_seconds = 1",
        closed_port()
    )
}
