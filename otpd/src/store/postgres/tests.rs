//! The store conformance suite on a real PostgreSQL 15, and what only this backend has to
//! show: the refusals at open, the deadlines, recovery after a lost connection, and use from
//! otpd's blocking threads.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::secret::SecretString;

use super::super::conformance::Handle;
use super::super::test_support::{T0, key, limits, request, rng};
use super::super::{
    AddressSeen, AuditRecord, BreakGlass, IssueOutcome, IssueRequest, Limits, NoticeTo, ReadAhead,
    Store, StoreError, VerifyOutcome,
};
use super::connect::RECENTLY_USED;
use super::locks::Lock;
use super::schema::CURRENT_VERSION;
use super::test_server::{TestDb, fresh_database, server};
use super::{PgOptions, PgStore};
use crate::server_key::ServerKey;

/// An empty store on a new database of the test server.
fn fresh() -> (TestDb, PgStore) {
    fresh_with(PgOptions::default())
}

/// [`fresh`], opened with `options`.
fn fresh_with(options: PgOptions) -> (TestDb, PgStore) {
    let db = fresh_database();
    let store = PgStore::open(db.config(), options, key()).expect("open store");
    (db, store)
}

crate::store_conformance_tests!(fresh);

/// `n` handles on one new database, each its own `PgStore` with its own connections, as `n`
/// otpd hosts would have.
fn handles(n: usize) -> (TestDb, Vec<Handle>) {
    handles_with(PgOptions::default(), n)
}

/// [`handles`], each store opened with `options`.
fn handles_with(options: PgOptions, n: usize) -> (TestDb, Vec<Handle>) {
    let db = fresh_database();
    let handles = (0..n)
        .map(|_| {
            let store = PgStore::open(db.config(), options, key()).expect("open");
            let store = Arc::new(Mutex::new(store));
            Box::new(move |work: &mut dyn FnMut(&mut dyn Store)| {
                work(&mut *store.lock().expect("not poisoned"))
            }) as Handle
        })
        .collect();
    (db, handles)
}

crate::store_conformance_race_tests!(handles);

/// The same rules with every statement sent unnamed and the deadlines set per transaction, as
/// otpd runs behind a pooler in transaction mode (`[store] behind_pooler`): each statement's
/// parameters, sent with the types their Rust values have instead of those the server read
/// from a prepared statement, must mean the same. (Through a real PgBouncer:
/// tests/tests/store_pooler.rs.)
mod behind_pooler {
    use super::*;

    fn pooled() -> PgOptions {
        PgOptions {
            behind_pooler: true,
            ..PgOptions::default()
        }
    }

    fn fresh() -> (TestDb, PgStore) {
        fresh_with(pooled())
    }

    crate::store_conformance_tests!(fresh);

    fn handles(n: usize) -> (TestDb, Vec<Handle>) {
        handles_with(pooled(), n)
    }

    crate::store_conformance_race_tests!(handles);

    /// The deadlines the server itself enforces, as a transaction and a statement outside one
    /// see them: `(statement_timeout, lock_timeout, idle_in_transaction_session_timeout)`.
    fn deadlines_seen(store: &PgStore) -> [(String, String, String); 2] {
        const SHOW: &str = "SELECT current_setting('statement_timeout'),
                current_setting('lock_timeout'),
                current_setting('idle_in_transaction_session_timeout')";
        let read = async |db: &super::super::unit::Conn, _: &ServerKey| {
            let row = super::super::sql::one(db, SHOW, &[]).await?;
            Ok::<_, StoreError>((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?))
        };
        [
            store.unit(&[], read).expect("in a transaction"),
            store.plain(read).expect("outside one"),
        ]
    }

    #[test]
    fn behind_a_pooler_every_transaction_carries_the_deadlines_and_no_session_setting_is_made() {
        let db = fresh_database();
        let options = PgOptions {
            deadline: Duration::from_secs(2),
            ..pooled()
        };
        let store = PgStore::open(db.config(), options, key()).expect("open");
        let [in_transaction, outside] = deadlines_seen(&store);
        let ours = ("2s".to_string(), "2s".to_string(), "6s".to_string());
        assert_eq!(in_transaction, ours);
        // Nothing of otpd's on the session: a pooler's server connection serves others too.
        assert_eq!(outside, ("0".into(), "0".into(), "0".into()));
        // Connected directly, the session carries them (startup options), everywhere.
        let direct = PgOptions {
            behind_pooler: false,
            ..options
        };
        let store = PgStore::open(db.config(), direct, key()).expect("open");
        assert_eq!(deadlines_seen(&store), [ours.clone(), ours]);
    }

    #[test]
    fn behind_a_pooler_that_keeps_prepared_statements_they_are_prepared_and_the_rest_holds() {
        let db = fresh_database();
        let keeping = PgOptions {
            pooler_keeps_prepared_statements: true,
            ..pooled()
        };
        let prepared_on_the_session = |options| {
            let store = PgStore::open(db.config(), options, key()).expect("open");
            let count = store
                .plain(async |db, _| {
                    const COUNT: &str = "SELECT count(*) FROM pg_prepared_statements";
                    let row = super::super::sql::one(db, COUNT, &[]).await?;
                    Ok::<i64, StoreError>(row.try_get(0)?)
                })
                .expect("count");
            (store, count)
        };
        assert_eq!(prepared_on_the_session(pooled()).1, 0, "all unnamed");
        let (store, prepared) = prepared_on_the_session(keeping);
        assert!(prepared >= 1, "{prepared} prepared");
        // Still nothing of otpd's on the session, and the deadlines in each transaction.
        let [in_transaction, outside] = deadlines_seen(&store);
        assert_eq!(outside, ("0".into(), "0".into(), "0".into()));
        assert_ne!(in_transaction, outside);
    }
}

/// A deadline short enough to wait for in a test, long enough for a loaded test machine.
fn quick() -> PgOptions {
    PgOptions {
        deadline: Duration::from_secs(1),
        connect_timeout: Duration::from_secs(1),
        ..PgOptions::default()
    }
}

#[test]
fn a_new_database_gets_the_current_version_and_the_key_id_not_the_key() {
    let (db, store) = fresh();
    assert_eq!(
        store.count_rows("SELECT max(version) FROM otpd_schema"),
        CURRENT_VERSION
    );
    assert_eq!(store.count_rows("SELECT count(*) FROM otpd_schema"), 1);
    drop(store);
    let key_id = key().key_id();
    assert_eq!(key_id.len(), 64);
    assert!(
        !key_id.contains("4d4d4d4d"),
        "the key's own bytes are not shown"
    );
    server()
        .run_in(
            &db.name,
            &format!(
                "DO $$ BEGIN IF (SELECT value FROM otpd_meta WHERE name = 'key_id') <> '{key_id}'
                 THEN RAISE 'wrong key id'; END IF; END $$"
            ),
        )
        .unwrap();
}

#[test]
fn a_database_made_with_another_server_key_is_refused() {
    let (db, store) = fresh();
    drop(store);
    let other = ServerKey::from_bytes([0x17; 32]);
    let err = PgStore::open(db.config(), PgOptions::default(), other).unwrap_err();
    assert!(matches!(err, StoreError::OtherServerKey { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("made with another server key"), "{text}");
    // The right key still opens it.
    PgStore::open(db.config(), PgOptions::default(), key()).unwrap();
}

#[test]
fn a_database_newer_than_this_build_is_refused_and_left_alone() {
    let (db, store) = fresh();
    drop(store);
    let newer = CURRENT_VERSION + 1;
    server()
        .run_in(
            &db.name,
            &format!("INSERT INTO otpd_schema (version, applied_at) VALUES ({newer}, 0)"),
        )
        .unwrap();
    let err = PgStore::open(db.config(), PgOptions::default(), key()).unwrap_err();
    match &err {
        StoreError::NewerSchema { found, known } => {
            assert_eq!((*found, *known), (newer, CURRENT_VERSION));
        }
        other => panic!("expected NewerSchema, got {other:?}"),
    }
    assert!(err.to_string().contains("upgrade otpd"), "{err}");
}

#[test]
fn hosts_starting_at_once_migrate_once() {
    let db = fresh_database();
    let opened: Vec<Result<PgStore, StoreError>> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..4)
            .map(|_| scope.spawn(|| PgStore::open(db.config(), PgOptions::default(), key())))
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    for store in &opened {
        assert!(store.is_ok(), "{store:?}");
    }
    let store = opened.into_iter().next().unwrap().unwrap();
    assert_eq!(
        store.count_rows("SELECT count(*) FROM otpd_schema"),
        CURRENT_VERSION
    );
}

#[test]
fn a_store_is_used_from_otpds_blocking_threads() {
    let db = fresh_database();
    let config = db.config();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let outcome = runtime.block_on(async move {
        let store = tokio::task::spawn_blocking(move || {
            PgStore::open(config, PgOptions::default(), key()).unwrap()
        })
        .await
        .unwrap();
        let store = Arc::new(Mutex::new(store));
        let shared = Arc::clone(&store);
        let outcome = tokio::task::spawn_blocking(move || {
            shared
                .lock()
                .unwrap()
                .issue(&request("alice", "ssh"), &limits(), T0, &mut rng())
                .unwrap()
        })
        .await
        .unwrap();
        // Dropped inside the runtime: the store's own runtime shuts down without blocking.
        drop(store);
        outcome
    });
    assert!(
        matches!(outcome, IssueOutcome::Issued { .. }),
        "{outcome:?}"
    );
}

#[test]
fn a_server_that_never_answers_fails_the_open_within_the_deadline() {
    // Accepts connections and says nothing.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let mut config = server().config("nothing");
    config.port(port);
    let started = Instant::now();
    let err = PgStore::open(config, quick(), key()).unwrap_err();
    assert!(matches!(err, StoreError::Postgres(_)), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    drop(silent);
}

#[test]
fn nothing_listening_is_an_error_at_once() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let mut config = server().config("nothing");
    config.port(port);
    let started = Instant::now();
    let err = PgStore::open(config, quick(), key()).unwrap_err();
    assert!(matches!(err, StoreError::Postgres(_)), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(
        !err.to_string().contains(&server().password_for_tests()),
        "{err}"
    );
}

/// Waits until another session on `db` holds `lock` (as the test's other "host" does), so a
/// test never races that session to it. Only `db`'s locks count: tests running at the same
/// time on their own databases take the same users' locks, and `pg_locks` shows every
/// database's.
fn wait_until_held(db: &TestDb, lock: Lock) {
    let Lock::Subject { class, key } = lock else {
        panic!("a subject's lock");
    };
    let check = format!(
        "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_locks WHERE locktype = 'advisory'
             AND granted AND classid = {class} AND objid::bigint = ({key}::bigint & 4294967295)
             AND objsubid = 2
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database()))
         THEN RAISE 'not yet'; END IF; END $$"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while server().run_in(&db.name, &check).is_err() {
        assert!(
            Instant::now() < deadline,
            "the other session never took the lock"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_lock_held_elsewhere_fails_the_operation_in_time_not_a_hang() {
    let db = fresh_database();
    let mut store = PgStore::open(db.config(), quick(), key()).unwrap();
    // Another host sits in a transaction holding alice's lock.
    let Lock::Subject { class, key } = Lock::user("alice") else {
        panic!("a user's lock is a subject's");
    };
    let holder = std::thread::spawn({
        let name = db.name.clone();
        move || {
            server().run_in(
                &name,
                &format!(
                    "BEGIN; SELECT pg_advisory_xact_lock({class}, {key}); SELECT pg_sleep(2); COMMIT;"
                ),
            )
        }
    });
    wait_until_held(&db, Lock::user("alice"));
    let started = Instant::now();
    let err = store
        .issue(&request("alice", "ssh"), &limits(), T0, &mut rng())
        .unwrap_err();
    assert!(matches!(err, StoreError::Postgres(_)), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    // Others are not held up, and nothing of the failed issue was kept.
    issues_a_code(&mut store, "bob", T0);
    assert_eq!(store.count_rows("SELECT count(*) FROM codes"), 1);
    holder.join().unwrap().unwrap();
    issues_a_code(&mut store, "alice", T0);
}

/// Inside a unit, an operation that runs out of time (here: waiting for a lock another host
/// holds) is taken back whole, and the unit ends cleanly either way: when the server stopped
/// the statement (`lock_timeout`), the savepoint is rolled back and the rest commits, as the
/// interface says; when the store's own deadline came first, what the connection holds is
/// unknown, so the unit refuses to commit and keeps nothing. Never a half operation.
#[test]
fn an_operation_out_of_time_inside_a_unit_is_taken_back_whole() {
    let db = fresh_database();
    let mut store = PgStore::open(db.config(), quick(), key()).unwrap();
    let Lock::Subject { class, key: lock } = Lock::user("alice") else {
        panic!("a user's lock is a subject's");
    };
    let name = db.name.clone();
    // Held well past the 1 s deadline of alice's issue, which starts only after the unit's
    // connection and bob's issue.
    let holder = std::thread::spawn(move || {
        server().run_in(
            &name,
            &format!(
                "BEGIN; SELECT pg_advisory_xact_lock({class}, {lock}); SELECT pg_sleep(6);
                 COMMIT;"
            ),
        )
    });
    wait_until_held(&db, Lock::user("alice"));
    let mut late = None;
    let unit = store.in_one_transaction(&mut |store| {
        store.issue(&request("bob", "ssh"), &limits(), T0, &mut rng())?;
        // The work swallows the error and goes on.
        late = Some(store.issue(&request("alice", "ssh"), &limits(), T0, &mut rng()));
        Ok(())
    });
    assert!(
        matches!(late, Some(Err(StoreError::Postgres(_)))),
        "{late:?}"
    );
    holder.join().unwrap().unwrap();
    let codes = |user: &str| {
        store.count_rows(&format!(
            "SELECT count(*) FROM codes WHERE username = '{user}'"
        ))
    };
    assert_eq!(codes("alice"), 0, "nothing of the late operation");
    match unit {
        Ok(()) => assert_eq!(codes("bob"), 1, "the rest of the unit committed"),
        Err(StoreError::Postgres(_)) => assert_eq!(codes("bob"), 0, "nothing committed"),
        Err(other) => panic!("{other:?}"),
    }
    issues_a_code(&mut store, "alice", T0 + 60);
}

#[test]
fn a_connection_the_server_closed_while_idle_is_replaced_before_use() {
    let db = fresh_database();
    let mut store = PgStore::open(db.config(), PgOptions::default(), key()).unwrap();
    assert_eq!(store.live_codes(T0).unwrap(), 0);
    // The database restarted, or an admin ended the sessions, while otpd was idle.
    end_the_sessions_on(&db);
    std::thread::sleep(RECENTLY_USED);
    issues_a_code(&mut store, "alice", T0);
    issues_a_code(&mut store, "bob", T0);
}

/// The other side of [`RECENTLY_USED`]: a connection handed out moments ago goes out again
/// unchecked, so one the server closed in between fails the operation that takes it, closed
/// (no code issued), and the next one connects again.
///
/// Ending the sessions takes a new superuser session, which a loaded machine may make slower
/// than the window: the test then starts over (a connection past the window is checked and
/// replaced), up to five times.
#[test]
fn a_connection_closed_moments_after_use_fails_one_operation_closed() {
    let db = fresh_database();
    let mut store = PgStore::open(db.config(), PgOptions::default(), key()).unwrap();
    let mut attempts = 0;
    loop {
        attempts += 1;
        // Timed from before the hand-out, which is when the pool's window starts.
        let handed_out = Instant::now();
        assert_eq!(store.live_codes(T0).unwrap(), 0);
        end_the_sessions_on(&db);
        if handed_out.elapsed() < RECENTLY_USED {
            break;
        }
        assert!(
            attempts < 5,
            "the server was too slow for this test, {attempts} times"
        );
    }
    let lost = store.issue(&request("alice", "ssh"), &limits(), T0, &mut rng());
    assert!(matches!(lost, Err(StoreError::Postgres(_))), "{lost:?}");
    issues_a_code(&mut store, "alice", T0);
    assert_eq!(store.count_rows("SELECT count(*) FROM codes"), 1);
}

/// Ends every session on `db`'s database, as an admin or a restart would, and gives the
/// server a moment to close them.
fn end_the_sessions_on(db: &TestDb) {
    server()
        .admin(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{}'",
            db.name
        ))
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
}

#[test]
fn a_connection_lost_mid_operation_fails_it_and_the_next_one_connects_again() {
    let db = fresh_database();
    let mut store = PgStore::open(db.config(), PgOptions::default(), key()).unwrap();
    // Another session ends this store's session while it waits for a lock (only this
    // database's waiters: other tests share the server, and wait for their own locks).
    let Lock::Subject { class, key: lock } = Lock::user("alice") else {
        panic!("a user's lock is a subject's");
    };
    let name = db.name.clone();
    let killer = std::thread::spawn(move || {
        server().run_in(
            &name,
            &format!(
                "BEGIN; SELECT pg_advisory_xact_lock({class}, {lock}); SELECT pg_sleep(1);
                 SELECT pg_terminate_backend(pid) FROM pg_locks
                 WHERE locktype = 'advisory' AND NOT granted
                   AND database = (SELECT oid FROM pg_database
                                   WHERE datname = current_database());
                 COMMIT;"
            ),
        )
    });
    wait_until_held(&db, Lock::user("alice"));
    let lost = store.issue(&request("alice", "ssh"), &limits(), T0, &mut rng());
    assert!(matches!(lost, Err(StoreError::Postgres(_))), "{lost:?}");
    killer.join().unwrap().unwrap();
    issues_a_code(&mut store, "alice", T0);
    assert_eq!(store.count_rows("SELECT count(*) FROM codes"), 1);
}

#[test]
fn debug_shows_neither_key_nor_password() {
    let (_db, store) = fresh();
    let shown = format!("{store:?}");
    assert!(shown.contains("[redacted]"), "{shown}");
    assert!(!shown.contains(&server().password_for_tests()), "{shown}");
}

/// Two hosts each update two rows, in opposite orders, so their transactions wait on each
/// other: a real deadlock, which the server breaks by rolling one back (40P01). Run again,
/// the loser waits for the winner and goes through: both operations succeed, each row counts
/// both, and at least one of them needed another attempt. (Usually exactly one, once; but the
/// loser's second attempt may take its first row again before the winner, woken, has locked
/// it, and then the two deadlock once more: still within the three attempts.)
#[test]
fn a_transaction_that_lost_a_deadlock_is_run_again_and_succeeds() {
    let db = fresh_database();
    server()
        .run_in(
            &db.name,
            "CREATE TABLE pair (id INT PRIMARY KEY, n INT NOT NULL);
             INSERT INTO pair VALUES (1, 0), (2, 0);",
        )
        .unwrap();
    let both_hold_their_first_row = std::sync::Barrier::new(2);
    let outcomes: Vec<Result<u32, StoreError>> = std::thread::scope(|scope| {
        let threads: Vec<_> = [(1_i32, 2_i32), (2, 1)]
            .into_iter()
            .map(|(first, second)| {
                let store = PgStore::open(db.config(), PgOptions::default(), key()).unwrap();
                let meet = &both_hold_their_first_row;
                scope.spawn(move || {
                    let mut attempts = 0_u32;
                    let bump = "UPDATE pair SET n = n + 1 WHERE id = $1";
                    store.unit(&[], async |conn, _| {
                        attempts += 1;
                        super::sql::exec(conn, bump, &[&first]).await?;
                        if attempts == 1 {
                            // Each holds its first row before either asks for its second.
                            meet.wait();
                        }
                        super::sql::exec(conn, bump, &[&second]).await?;
                        Ok(attempts)
                    })
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    let attempts: Vec<u32> = outcomes
        .into_iter()
        .map(|outcome| outcome.expect("both operations succeed"))
        .collect();
    let mut sorted = attempts.clone();
    sorted.sort_unstable();
    assert!(
        sorted[1] >= 2 && sorted[1] <= 3,
        "a deadlock was broken and its loser run again: {attempts:?}"
    );
    let store = PgStore::open(db.config(), PgOptions::default(), key()).unwrap();
    assert_eq!(store.count_rows("SELECT sum(n)::BIGINT FROM pair"), 4);
    assert_eq!(store.count_rows("SELECT count(*) FROM pair WHERE n = 2"), 2);
}

/// Makes the store's one pooled connection refuse writes from now on, as a server turned
/// read-only under it would (the session's setting, which the server enforces: this test
/// server is shared, so it is not made read-only as a whole).
fn refuse_writes_on_the_pooled_connection(store: &PgStore) {
    store
        .plain(async |conn, _| {
            conn.batch_execute("SET SESSION default_transaction_read_only = on")
                .await?;
            Ok(())
        })
        .unwrap();
}

/// A pooled connection whose server turned read-only under it (here the session itself set
/// read-only, which the server then enforces exactly as on a primary demoted to standby):
/// the write it is given fails closed (25006), and the connection is dropped rather than
/// handed out again, so the next operation connects anew and writes.
#[test]
fn a_connection_that_refuses_writes_is_dropped_and_the_next_write_connects_anew() {
    let (_db, mut store) = fresh();
    refuse_writes_on_the_pooled_connection(&store);
    let refused = store.issue(&request("alice", "ssh"), &limits(), T0, &mut rng());
    assert!(
        matches!(&refused, Err(StoreError::Postgres(text)) if text.starts_with("25006")),
        "{refused:?}"
    );
    issues_a_code(&mut store, "alice", T0);
    assert_eq!(store.count_rows("SELECT count(*) FROM codes"), 1);
}

/// The same inside a held unit: its write is refused (the issue's writes go out with the
/// `COMMIT`, so the refusal comes there), the unit keeps nothing, and its connection is not
/// handed out again.
#[test]
fn a_unit_on_a_connection_that_refuses_writes_keeps_nothing_and_is_not_reused() {
    let (_db, mut store) = fresh();
    refuse_writes_on_the_pooled_connection(&store);
    let unit = store.in_one_transaction(&mut |store| {
        store.issue(&request("alice", "ssh"), &limits(), T0, &mut rng())?;
        Ok(())
    });
    assert!(
        matches!(&unit, Err(StoreError::Postgres(text)) if text.starts_with("25006")),
        "{unit:?}"
    );
    assert_eq!(store.count_rows("SELECT count(*) FROM codes"), 0);
    issues_a_code(&mut store, "alice", T0);
}

/// `user` gets a new code at `now`: the store works (again).
fn issues_a_code(store: &mut PgStore, user: &str, now: i64) {
    let outcome = store
        .issue(&request(user, "ssh"), &limits(), now, &mut rng())
        .unwrap();
    assert!(
        matches!(outcome, IssueOutcome::Issued { .. }),
        "{outcome:?}"
    );
}

/// A grant that ends when it starts: refused by the table's CHECK, in the server, not before.
fn grant_the_server_refuses(store: &mut dyn Store) -> Result<Option<BreakGlass>, StoreError> {
    store.grant_breakglass(&BreakGlass {
        user: "bob".into(),
        cidr: None,
        granted_by: 0,
        granted_at: T0,
        expires_at: T0,
    })
}

/// The server refused the grant and kept nothing of it; the unit's one code was kept.
fn refused_with_one_code_kept(
    store: &PgStore,
    refused: Option<Result<Option<BreakGlass>, StoreError>>,
) {
    assert!(
        matches!(refused, Some(Err(StoreError::Postgres(_)))),
        "{refused:?}"
    );
    assert_eq!(store.count_rows("SELECT count(*) FROM breakglass"), 0);
    assert_eq!(store.count_rows("SELECT count(*) FROM codes"), 1);
}

/// A row of the unit's audit with nothing unusual but its caller's.
fn row<'a>(event: &'a str, detail: &'a str) -> AuditRecord<'a> {
    AuditRecord {
        time: T0,
        event,
        user: Some("bob"),
        service: Some("sshd"),
        protocol: Some("ssh"),
        rhost: None,
        caller_uid: Some(0),
        detail: Some(detail),
    }
}

/// The audit rows a unit recorded wait for its next round trip, and go out ahead of the next
/// operation's savepoint: an operation the server refuses (here a grant that ends when it
/// starts) takes back only its own writes, not the row before it.
#[test]
fn a_row_recorded_before_an_operation_the_server_refuses_is_kept_with_the_unit() {
    let (_db, mut store) = fresh();
    let mut refused = None;
    store
        .in_one_transaction(&mut |store| {
            store.issue(&request("bob", "ssh"), &limits(), T0, &mut rng())?;
            store.record_audit(&row("issued", "before"))?;
            refused = Some(grant_the_server_refuses(store));
            store.record_audit(&row("mailed", "after"))?;
            Ok(())
        })
        .unwrap();
    refused_with_one_code_kept(&store, refused);
    let details: Vec<_> = store
        .audit_since(0, 10)
        .unwrap()
        .into_iter()
        .filter_map(|r| r.detail)
        .collect();
    assert_eq!(details, ["after", "before"]);
}

/// A row the server refuses to store (PostgreSQL's text holds no NUL) fails the unit's next
/// operation and the unit itself: the decision it records is not kept without it, even when
/// the work swallows the error.
#[test]
fn a_row_the_server_refuses_takes_the_whole_unit_back() {
    let (_db, mut store) = fresh();
    let mut next = None;
    let unit = store.in_one_transaction(&mut |store| {
        store.issue(&request("bob", "ssh"), &limits(), T0, &mut rng())?;
        store.record_audit(&row("issued", "a\0b"))?;
        next = Some(store.live_codes(T0));
        Ok(())
    });
    assert!(
        matches!(next, Some(Err(StoreError::Postgres(_)))),
        "{next:?}"
    );
    assert!(matches!(unit, Err(StoreError::Postgres(_))), "{unit:?}");
    assert_eq!(store.count_rows("SELECT count(*) FROM codes"), 0);
    assert_eq!(store.count_rows("SELECT count(*) FROM audit"), 0);
    // Also when the row is the last thing sent, with the `COMMIT`.
    let unit = store.in_one_transaction(&mut |store| {
        store.issue(&request("bob", "ssh"), &limits(), T0, &mut rng())?;
        store.record_audit(&row("issued", "a\0b"))
    });
    assert!(matches!(unit, Err(StoreError::Postgres(_))), "{unit:?}");
    assert_eq!(store.count_rows("SELECT count(*) FROM codes"), 0);
    // The store goes on.
    issues_a_code(&mut store, "bob", T0);
}

/// A unit's first operation runs without a savepoint: when the server refuses it, the
/// transaction so far (only that operation) is rolled back, and the unit goes on with the next
/// operation in a new one, which commits.
#[test]
fn a_unit_whose_first_operation_the_server_refuses_goes_on_and_commits_the_rest() {
    let (_db, mut store) = fresh();
    let mut refused = None;
    store
        .in_one_transaction(&mut |store| {
            refused = Some(grant_the_server_refuses(store));
            store.issue(&request("bob", "ssh"), &limits(), T0, &mut rng())?;
            store.record_audit(&row("issued", "after"))
        })
        .unwrap();
    refused_with_one_code_kept(&store, refused);
    assert_eq!(store.count_rows("SELECT count(*) FROM audit"), 1);
}

/// A login of alice's from a remote host, and the code issued to it (committed) at `T0`.
fn alice_issued_a_code_from_a_host(
    store: &mut PgStore,
) -> (IssueRequest<'static>, String, SecretString) {
    let alice = IssueRequest {
        rhost: Some("192.0.2.1"),
        ..request("alice", "ssh")
    };
    match store.issue(&alice, &limits(), T0, &mut rng()).unwrap() {
        IssueOutcome::Issued {
            challenge, code, ..
        } => (alice, challenge, code),
        other => panic!("{other:?}"),
    }
}

/// A right answer's address is noted in its transaction without a round trip of its own: the
/// answer's statement read what the noting decides on. Shown by ending the session between
/// the two: the noting still answers (then the unit cannot commit, and keeps nothing).
#[test]
fn noting_the_address_of_a_right_answer_asks_the_server_nothing_more() {
    let (db, mut store) = fresh();
    let (alice, challenge, code) = alice_issued_a_code_from_a_host(&mut store);
    let notice = NoticeTo {
        address: "alice@example.org",
        service: "sshd",
        tell: false,
    };
    let mut noted = None;
    let unit = store.in_one_transaction(&mut |store| {
        let outcome = store.verify_answer(
            &challenge,
            "alice",
            "ssh",
            alice.rhost,
            &code,
            &limits(),
            T0 + 1,
            &notice,
        )?;
        assert_eq!(outcome, VerifyOutcome::Success);
        end_the_sessions_on(&db);
        noted = Some(store.note_login_address("alice", "192.0.2.1", T0 + 1, 100));
        Ok(())
    });
    assert!(
        matches!(noted, Some(Ok(AddressSeen::FirstEver))),
        "{noted:?}"
    );
    assert!(matches!(unit, Err(StoreError::Postgres(_))), "{unit:?}");
    assert_eq!(store.count_rows("SELECT count(*) FROM seen_rhosts"), 0);
    assert_eq!(
        store.live_codes(T0 + 1).unwrap(),
        1,
        "the code is not used up"
    );
}

/// A unit that reads alice's facts told `ahead`, then (the server's sessions ended) runs
/// `then`: what `then` answered, and whether the unit committed.
fn told_then_cut_off<T>(
    db: &TestDb,
    store: &mut PgStore,
    ahead: ReadAhead<'_>,
    mut then: impl FnMut(&mut dyn Store) -> Result<T, StoreError>,
) -> (Option<Result<T, StoreError>>, Result<(), StoreError>) {
    let mut done = None;
    let unit = store.in_one_transaction(&mut |store| {
        let (_, grant) = store.user_and_grant_then("alice", &ahead)?;
        assert_eq!(grant.unwrap(), None);
        end_the_sessions_on(db);
        done = Some(then(store));
        Ok(())
    });
    (done, unit)
}

/// A begin's issue told with the facts needs no round trip of its own: its facts were read
/// with the login's. Shown by ending the session between the two: the issue still answers
/// (then the unit cannot commit, and keeps nothing).
#[test]
fn an_issue_told_with_the_facts_asks_the_server_nothing_more() {
    let (db, mut store) = fresh();
    let alice = IssueRequest {
        rhost: Some("192.0.2.1"),
        ..request("alice", "ssh")
    };
    let ahead = ReadAhead::Issue {
        rhost: alice.rhost,
        max_attempts: limits().max_attempts,
        now: T0,
    };
    let (issued, unit) = told_then_cut_off(&db, &mut store, ahead, |store| {
        store.issue(&alice, &limits(), T0, &mut rng())
    });
    assert!(
        matches!(issued, Some(Ok(IssueOutcome::Issued { .. }))),
        "{issued:?}"
    );
    assert!(matches!(unit, Err(StoreError::Postgres(_))), "{unit:?}");
    assert_eq!(store.count_rows("SELECT count(*) FROM codes"), 0);
}

/// The same for an answer: a right one is decided from the code row read with the facts.
#[test]
fn an_answer_told_with_the_facts_asks_the_server_nothing_more() {
    let (db, mut store) = fresh();
    let (alice, challenge, code) = alice_issued_a_code_from_a_host(&mut store);
    let ahead = ReadAhead::Answer {
        challenge: &challenge,
        rhost: alice.rhost,
        now: T0 + 1,
    };
    let (answered, unit) = told_then_cut_off(&db, &mut store, ahead, |store| {
        store.verify(
            &challenge,
            "alice",
            "ssh",
            alice.rhost,
            &code,
            &limits(),
            T0 + 1,
        )
    });
    assert!(
        matches!(answered, Some(Ok(VerifyOutcome::Success))),
        "{answered:?}"
    );
    assert!(matches!(unit, Err(StoreError::Postgres(_))), "{unit:?}");
    assert_eq!(store.live_codes(T0 + 1).unwrap(), 1, "the code is not used");
}

/// A row read for other parameters than the operation's is not used: the operation asks the
/// server (here gone, so it fails) instead of deciding on what was read for another.
#[test]
fn a_row_read_ahead_for_other_parameters_is_not_used() {
    let (db, mut store) = fresh();
    let alice = request("alice", "ssh");
    let other_limits = Limits {
        max_attempts: limits().max_attempts + 1,
        ..limits()
    };
    for (told, limits, now) in [
        (other_limits.max_attempts, limits(), T0),
        (limits().max_attempts, limits(), T0 + 1),
    ] {
        let ahead = ReadAhead::Issue {
            rhost: None,
            max_attempts: told,
            now: T0,
        };
        let (issued, _) = told_then_cut_off(&db, &mut store, ahead, |store| {
            store.issue(&alice, &limits, now, &mut rng())
        });
        assert!(
            matches!(issued, Some(Err(StoreError::Postgres(_)))),
            "{issued:?}"
        );
    }
}
