//! The server in-process on a socket in a temporary directory, with real connections.
//!
//! All test connections come from this process, so the peer lookup is injected: each client
//! binds its end to a path that names the uid it stands for (`uid-1000-7`), and the server
//! reads that instead of SO_PEERCRED.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::frame;
use common::wire::{Request, Response};
use nix::sys::socket::{self, AddressFamily, SockFlag, SockType, UnixAddr};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::oneshot;

use super::serve_with;
use crate::accounts::Accounts;
use crate::caller::Caller;
use crate::clock::SystemClock;
use crate::test_support::{FakeAccounts, config};

/// A server running on the test's runtime until dropped.
struct Server {
    dir: tempfile::TempDir,
    socket: PathBuf,
    shared: Arc<crate::state::Shared>,
    stop: Option<oneshot::Sender<()>>,
    next_client: AtomicUsize,
}

impl Server {
    /// Starts a server whose `[daemon]` section has `daemon` in it.
    fn start(daemon: &str) -> Server {
        Server::start_with(&format!("[daemon]\n{daemon}"), Arc::new(FakeAccounts))
    }

    /// Starts a server with the config `text` and `accounts` standing in for NSS.
    fn start_with(text: &str, accounts: Arc<dyn Accounts>) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("otpd.sock");
        let shared = Arc::new(crate::test_support::shared_with_accounts(
            dir.path(),
            config(text),
            Arc::new(SystemClock),
            accounts,
        ));
        let listener = UnixListener::bind(&socket).unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(serve_with(
            listener,
            Arc::clone(&shared),
            async move {
                let _ = stopped.await;
            },
            uid_named_by_client,
        ));
        Server {
            dir,
            socket,
            shared,
            stop: Some(stop),
            next_client: AtomicUsize::new(0),
        }
    }

    /// A new connection that stands for `uid`.
    fn connect_as(&self, uid: u32) -> UnixStream {
        let n = self.next_client.fetch_add(1, Ordering::Relaxed);
        let own = self.dir.path().join(format!("uid-{uid}-{n}"));
        let fd = socket::socket(
            AddressFamily::Unix,
            SockType::Stream,
            SockFlag::SOCK_CLOEXEC,
            None,
        )
        .unwrap();
        socket::bind(
            std::os::fd::AsRawFd::as_raw_fd(&fd),
            &UnixAddr::new(&own).unwrap(),
        )
        .unwrap();
        socket::connect(
            std::os::fd::AsRawFd::as_raw_fd(&fd),
            &UnixAddr::new(&self.socket).unwrap(),
        )
        .unwrap();
        let std_stream = std::os::unix::net::UnixStream::from(fd);
        std_stream.set_nonblocking(true).unwrap();
        UnixStream::from_std(std_stream).unwrap()
    }

    /// One begin for `user` as sshd (root) sends it: the answer.
    async fn begin_for(&self, user: &str) -> Response {
        let mut stream = self.connect_as(0);
        let request = Request::Begin {
            login: common::wire::LoginContext {
                user: user.into(),
                service: "sshd".into(),
                rhost: Some("192.0.2.7".into()),
                tty: Some("ssh".into()),
                protocol: None,
            },
            ssh_keys: Vec::new(),
        };
        stream
            .write_all(&frame::encode(&request).unwrap())
            .await
            .unwrap();
        answer(&mut stream).await.unwrap()
    }

    /// A connection held open without a request, as a slow client holds it.
    fn hold_as(&self, uid: u32) -> UnixStream {
        self.connect_as(uid)
    }

    /// One ping as `uid`: the answer.
    async fn ping_as(&self, uid: u32) -> Response {
        let mut stream = self.connect_as(uid);
        // A refused connection may be closed before the request is written; its answer is
        // still there to read.
        let _ = stream
            .write_all(&frame::encode(&Request::Ping).unwrap())
            .await;
        answer(&mut stream).await.unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The uid in the file name the client bound its end to.
fn uid_named_by_client(stream: &UnixStream) -> io::Result<Caller> {
    let addr = stream.peer_addr()?;
    let uid = addr
        .as_pathname()
        .and_then(|p| p.file_name())
        .and_then(|n| n.to_str())
        .and_then(|n| n.split('-').nth(1))
        .and_then(|uid| uid.parse().ok())
        .ok_or_else(|| io::Error::other("test client without a uid name"))?;
    Ok(Caller::local(uid, uid))
}

/// The one framed answer on `stream`, within a few seconds; `None` when it closed without one.
/// A refused client that had sent its request sees a reset once the answer is read, since
/// otpd closed without reading it; the answer comes first all the same.
async fn answer(stream: &mut UnixStream) -> Option<Response> {
    let mut bytes = Vec::new();
    loop {
        if let Some((response, _)) = frame::try_decode(&bytes).unwrap() {
            return Some(response);
        }
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read_buf(&mut bytes))
            .await
            .unwrap();
        match read {
            Ok(0) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

/// The refusal text on a connection otpd closed at once, or `None` for one it is still serving
/// (waiting for its request). Call after a ping that was accepted later: the server decides in
/// accept order, so by then it has decided about `stream` too.
async fn refusal_of(stream: &mut UnixStream) -> Option<String> {
    match tokio::time::timeout(Duration::from_millis(200), stream.readable()).await {
        Err(_) => None,
        Ok(_) => match answer(stream).await {
            Some(Response::Error { message }) => Some(message),
            other => panic!("a refusal has an error reply, got {other:?}"),
        },
    }
}

fn is_pong(response: &Response) -> bool {
    matches!(response, Response::Pong { .. })
}

#[tokio::test]
async fn a_uid_at_its_cap_is_refused_while_root_and_other_users_still_get_through() {
    let server = Server::start("max_connections_per_user = 3");
    let mut held: Vec<UnixStream> = (0..3).map(|_| server.hold_as(1000)).collect();
    let mut over = server.hold_as(1000);
    assert!(is_pong(&server.ping_as(0).await), "root gets through");
    assert!(is_pong(&server.ping_as(1001).await), "another user too");
    for stream in &mut held {
        assert_eq!(refusal_of(stream).await, None, "the first 3 are served");
    }
    assert_eq!(
        refusal_of(&mut over).await.as_deref(),
        Some("too many connections to otpd from your user")
    );
    // Its own next request is refused too, until one of its connections closes.
    assert!(!is_pong(&server.ping_as(1000).await));
    drop(held.pop());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(is_pong(&server.ping_as(1000).await));
}

#[tokio::test]
async fn reserved_capacity_holds_when_unprivileged_connections_fill_the_rest() {
    let server = Server::start(
        "max_connections = 10\nreserved_connections = 3\nmax_connections_per_user = 4",
    );
    // 7 unprivileged connections fill the unprivileged share, from two users.
    let mut unprivileged: Vec<UnixStream> = (0..4)
        .map(|_| server.hold_as(1000))
        .chain((0..3).map(|_| server.hold_as(1001)))
        .collect();
    let mut third_user = server.hold_as(1002);
    let mut second_user_more = server.hold_as(1001);
    // Root takes two of the reserve with slow connections and still pings in the third.
    let mut root_held: Vec<UnixStream> = (0..2).map(|_| server.hold_as(0)).collect();
    assert!(is_pong(&server.ping_as(0).await), "the reserve is root's");
    for stream in unprivileged.iter_mut().chain(root_held.iter_mut()) {
        assert_eq!(refusal_of(stream).await, None);
    }
    for stream in [&mut third_user, &mut second_user_more] {
        assert_eq!(
            refusal_of(stream).await.as_deref(),
            Some("otpd is at its connection limit")
        );
    }
    // With all 10 taken (9 held, and a tenth held now), even root is refused: the cap on
    // memory and descriptors holds for everyone.
    let _tenth = server.hold_as(0);
    assert!(!is_pong(&server.ping_as(0).await));
}

#[tokio::test]
async fn a_trusted_caller_is_exempt_from_the_per_user_cap_and_rate() {
    let server = Server::start(
        "trusted_callers = [\"www-data\"]\nmax_connections_per_user = 1\nuser_request_burst = 1\nuser_requests_per_second = 1",
    );
    let _held: Vec<UnixStream> = (0..5).map(|_| server.hold_as(33)).collect();
    for _ in 0..5 {
        assert!(is_pong(&server.ping_as(33).await));
    }
}

#[tokio::test]
async fn a_uid_over_its_request_rate_gets_a_short_error_and_others_do_not() {
    let server = Server::start("user_requests_per_second = 1\nuser_request_burst = 3");
    for _ in 0..3 {
        assert!(is_pong(&server.ping_as(1000).await));
    }
    assert_eq!(
        server.ping_as(1000).await,
        Response::Error {
            message: "too many requests to otpd from your user; try again shortly".into()
        }
    );
    assert!(is_pong(&server.ping_as(1001).await));
    assert!(is_pong(&server.ping_as(0).await));
}

#[tokio::test]
async fn a_slow_client_is_cut_off_at_the_deadline_and_its_place_comes_back() {
    let server = Server::start("request_timeout_seconds = 1\nmax_connections_per_user = 1");
    let mut slow = server.hold_as(1000);
    slow.write_all(&frame::encode(&Request::Ping).unwrap()[..3])
        .await
        .unwrap();
    assert!(
        !is_pong(&server.ping_as(1000).await),
        "its one place is taken"
    );
    match answer(&mut slow).await {
        Some(Response::Error { message }) => {
            assert!(message.contains("not complete within"), "{message}")
        }
        other => panic!("a slow client is told why it was cut off, got {other:?}"),
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(is_pong(&server.ping_as(1000).await));
}

/// A directory (NSS) whose group lookups for one user take [`SLOW_LOOKUP`] of real time, as a
/// stalled sssd or LDAP server would; everyone else's answer at once. It says when the slow
/// lookup started.
#[derive(Debug)]
struct SlowFor {
    user: &'static str,
    started: std::sync::Mutex<Option<oneshot::Sender<std::time::Instant>>>,
}

const SLOW_LOOKUP: Duration = Duration::from_secs(2);

impl Accounts for SlowFor {
    fn user_name(&self, uid: u32) -> Option<String> {
        FakeAccounts.user_name(uid)
    }
    fn uid_of(&self, name: &str) -> Option<u32> {
        FakeAccounts.uid_of(name)
    }
    fn groups_of(&self, user: &str) -> Vec<String> {
        if user == self.user {
            if let Some(started) = self.started.lock().unwrap().take() {
                let _ = started.send(std::time::Instant::now());
            }
            std::thread::sleep(SLOW_LOOKUP);
        }
        FakeAccounts.groups_of(user)
    }
}

/// Issue #18: a lookup was made under the store lock on the runtime's only thread, so one slow
/// directory answer stopped every login. Time is paused, so no deadline or timeout fires by
/// itself; the slow lookup really takes 2 s, and alice's begin must not wait for it.
#[tokio::test(start_paused = true)]
async fn a_slow_directory_for_one_user_does_not_delay_another_users_login() {
    let (started, lookup_started) = oneshot::channel();
    let directory = Arc::new(SlowFor {
        user: "slow",
        started: std::sync::Mutex::new(Some(started)),
    });
    // Every profile is off, but a policy matches a group: each login looks its user's groups
    // up, then decides (skip) and audits it in the store.
    let server = Arc::new(Server::start_with(
        "[defaults]\nmode = \"off\"\n[profiles.wheel]\nmode = \"off\"\n\
         [[policies]]\nmatch_group = \"wheel\"\nprofile = \"wheel\"",
        directory,
    ));
    let waiting = {
        let server = Arc::clone(&server);
        tokio::spawn(async move { server.begin_for("slow").await })
    };
    let lookup_began = lookup_started.await.unwrap();

    let asked = std::time::Instant::now();
    let other = server.begin_for("alice").await;
    let latency = asked.elapsed();
    let since_lookup_began = lookup_began.elapsed();
    let mode_off = Response::Skip {
        reason: common::wire::SkipReason::ModeOff,
    };
    assert_eq!(other, mode_off);
    assert!(
        latency < SLOW_LOOKUP / 4,
        "alice waited {latency:?} for the slow user's lookup"
    );
    assert!(
        since_lookup_began < SLOW_LOOKUP,
        "alice was answered only {since_lookup_began:?} after the slow lookup began"
    );
    assert!(!waiting.is_finished(), "the slow login ended first");
    assert_eq!(waiting.await.unwrap(), mode_off);
}

/// Issue #18: a login's store work ran inline on the runtime's only thread, so a login waiting
/// for the store's lock (held by a purge or a bulk import) stopped every connection.
#[tokio::test(start_paused = true)]
async fn a_login_waiting_for_a_busy_store_does_not_stop_the_server() {
    const HOLD: Duration = Duration::from_secs(2);
    let server = Arc::new(Server::start_with(
        "[defaults]\nmode = \"off\"",
        Arc::new(FakeAccounts),
    ));
    let (locked, store_locked) = oneshot::channel();
    let purge = {
        let shared = Arc::clone(&server.shared);
        std::thread::spawn(move || {
            let _store = shared.store();
            let _ = locked.send(std::time::Instant::now());
            std::thread::sleep(HOLD);
        })
    };
    let lock_taken = store_locked.await.unwrap();
    let waiting = {
        let server = Arc::clone(&server);
        tokio::spawn(async move { server.begin_for("alice").await })
    };
    // Give the begin time to reach the store and wait there.
    while lock_taken.elapsed() < Duration::from_millis(300) {
        tokio::task::yield_now().await;
    }
    assert!(is_pong(&server.ping_as(1000).await));
    let answered = lock_taken.elapsed();
    assert!(
        answered < HOLD,
        "a ping was answered only {answered:?} after the store was locked"
    );
    assert!(
        !waiting.is_finished(),
        "the begin did not wait for the store"
    );
    purge.join().unwrap();
    let skipped = waiting.await.unwrap();
    assert!(matches!(skipped, Response::Skip { .. }), "{skipped:?}");
}

/// NSS whose answers about one uid take [`SLOW_LOOKUP`] of real time; it says when the slow
/// lookup started.
#[derive(Debug)]
struct SlowUid {
    uid: u32,
    started: std::sync::Mutex<Option<oneshot::Sender<std::time::Instant>>>,
}

impl Accounts for SlowUid {
    fn user_name(&self, uid: u32) -> Option<String> {
        if uid == self.uid {
            if let Some(started) = self.started.lock().unwrap().take() {
                let _ = started.send(std::time::Instant::now());
            }
            std::thread::sleep(SLOW_LOOKUP);
        }
        FakeAccounts.user_name(uid)
    }
    fn uid_of(&self, name: &str) -> Option<u32> {
        FakeAccounts.uid_of(name)
    }
    fn groups_of(&self, user: &str) -> Vec<String> {
        FakeAccounts.groups_of(user)
    }
}

/// Issue #18: a non-root caller's standing (trusted caller, admin) was looked up in NSS on the
/// runtime's only thread at accept time, so one slow answer stopped every other caller.
#[tokio::test(start_paused = true)]
async fn a_slow_lookup_of_one_callers_standing_does_not_delay_other_callers() {
    let (started, lookup_started) = oneshot::channel();
    let accounts = Arc::new(SlowUid {
        uid: 1001,
        started: std::sync::Mutex::new(Some(started)),
    });
    let server = Arc::new(Server::start_with(
        "[daemon]\nadmin_group = \"otpadmin\"",
        accounts,
    ));
    let waiting = {
        let server = Arc::clone(&server);
        tokio::spawn(async move { server.ping_as(1001).await })
    };
    let lookup_began = lookup_started.await.unwrap();
    assert!(is_pong(&server.ping_as(1000).await), "alice is served");
    assert!(is_pong(&server.ping_as(0).await), "root is served");
    let since_lookup_began = lookup_began.elapsed();
    assert!(
        since_lookup_began < SLOW_LOOKUP / 2,
        "other callers were served only {since_lookup_began:?} after bob's lookup began"
    );
    assert!(
        !waiting.is_finished(),
        "bob was served before his lookup ended"
    );
    assert!(is_pong(&waiting.await.unwrap()), "and then bob is served");
}
