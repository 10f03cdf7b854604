use std::path::Path;

use super::super::super::migrate::TABLES;
use super::super::super::test_support::{
    T0, challenge_of, key, limits, open_store, request, rng, secret_of, user_added, user_record,
};
use super::super::super::{Imported, SendCounts, SqliteStore, Store, UserRecord, VerifyOutcome};
use super::super::test_server::{TestDb, fresh_database};
use super::super::{PgOptions, PgStore};
use super::*;

fn open(db: &TestDb) -> PgStore {
    db.open_for_copy()
}

fn snapshot_of(dir: &Path, store: SqliteStore) -> Snapshot {
    drop(store);
    Snapshot::read(&dir.join("otpd.db")).unwrap()
}

/// Merges `snapshot` at `now`, which must be done, not refused: when the database says this
/// host was copied or merged before.
fn merged_since(pg: &PgStore, snapshot: &Snapshot, now: i64) -> Option<i64> {
    match pg.merge(snapshot, now).unwrap() {
        Merged::Done { merged_before, .. } => merged_before,
        refused => panic!("the merge was refused: {refused:?}"),
    }
}

fn audit(store: &mut dyn Store, detail: &str) {
    store.record_audit(&user_added(detail)).unwrap();
}

/// `failures` wrong answers by `user` to a code of theirs.
fn fail(store: &mut dyn Store, user: &str, failures: usize) {
    let issued = store
        .issue(&request(user, "ssh"), &limits(), T0, &mut rng())
        .unwrap();
    let wrong = common::secret::SecretString::new("000000".to_string());
    for _ in 0..failures {
        let outcome = store
            .verify(
                &challenge_of(&issued),
                user,
                "ssh",
                None,
                &wrong,
                &limits(),
                T0 + 1,
            )
            .unwrap();
        assert_ne!(outcome, VerifyOutcome::Success);
    }
}

#[test]
fn every_copied_table_has_a_merge_rule() {
    for table in TABLES {
        assert!(rule(table.name).is_some(), "{}", table.name);
    }
}

#[test]
fn every_copied_table_says_which_rows_a_host_wrote_after_a_time() {
    for table in TABLES {
        assert!(written_since(table.name).is_some(), "{}", table.name);
    }
}

/// A host that went back to SQLite after its move, and is merged again: what the database
/// has from the first time is not added again (audit rows, sends, failures), what was done
/// to it there since stands (a user removed there is not brought back), and what the host
/// wrote since is merged.
#[test]
fn a_host_merged_before_brings_only_what_it_wrote_since() {
    let db = fresh_database();
    let mut pg = open(&db);
    let (dir, mut host) = open_store();
    host.upsert_user(&user_record("alice")).unwrap();
    host.issue(&request("alice", "ssh"), &limits(), T0, &mut rng())
        .unwrap();
    fail(&mut host, "carol", 2);
    audit(&mut host, "before the move");
    // The record's times are SQLite's clock; set to the test's.
    host.run_sql(&format!("UPDATE users SET updated_at = {T0}"));
    let moved = snapshot_of(dir.path(), host);
    assert!(matches!(
        pg.import(&moved, T0 + 10).unwrap(),
        Imported::Copied(_)
    ));
    drop(moved);
    assert!(pg.remove_user("alice").unwrap());

    let mut host = SqliteStore::open(&dir.path().join("otpd.db"), key()).unwrap();
    host.upsert_user(&user_record("dave")).unwrap();
    host.run_sql(&format!(
        "UPDATE users SET updated_at = {} WHERE name = 'dave'",
        T0 + 100
    ));
    host.issue(&request("dave", "ssh"), &limits(), T0 + 100, &mut rng())
        .unwrap();
    audit(&mut host, "back on SQLite");
    let back = snapshot_of(dir.path(), host);

    assert_eq!(merged_since(&pg, &back, T0 + 200), Some(T0 + 10));
    for detail in ["before the move", "back on SQLite"] {
        let sql = format!("SELECT count(*) FROM audit WHERE detail = '{detail}'");
        assert_eq!(pg.count_rows(&sql), 1, "{detail}");
    }
    assert_eq!(pg.user("alice").unwrap(), None);
    assert_eq!(pg.user("dave").unwrap(), Some(user_record("dave")));
    for user in ["alice", "dave"] {
        let sql = format!("SELECT count(*) FROM sends WHERE username = '{user}'");
        assert_eq!(pg.count_rows(&sql), 1, "{user}");
    }
    assert_eq!(
        pg.count_rows("SELECT failures FROM lockouts WHERE subject = 'carol'"),
        2
    );
    // Merged again later: from the second merge on.
    drop(back);
    let mut host = SqliteStore::open(&dir.path().join("otpd.db"), key()).unwrap();
    audit(&mut host, "later still");
    let later = snapshot_of(dir.path(), host);
    assert_eq!(merged_since(&pg, &later, T0 + 300), Some(T0 + 200));
    assert_eq!(pg.count_rows("SELECT count(*) FROM audit"), 3);
}

/// Two hosts set up by one script in the same second end their audit alike; the second is
/// still merged as a host of its own, by its name, and its users come in.
#[test]
fn hosts_whose_last_audit_rows_are_the_same_are_told_apart_by_name() {
    let db = fresh_database();
    let pg = open(&db);
    let set_up = |user: &str| {
        let (dir, mut host) = open_store();
        host.upsert_user(&user_record(user)).unwrap();
        host.run_sql(&format!("UPDATE users SET updated_at = {T0}"));
        audit(&mut host, "set up");
        (dir, host)
    };
    let (dir_a, a) = set_up("alice");
    let from_a = snapshot_of(dir_a.path(), a).of_host("a.example");
    assert!(matches!(
        pg.import(&from_a, T0 + 10).unwrap(),
        Imported::Copied(_)
    ));
    let (dir_b, b) = set_up("bob");
    let from_b = snapshot_of(dir_b.path(), b).of_host("b.example");
    assert_eq!(merged_since(&pg, &from_b, T0 + 20), None);
    assert_eq!(pg.user("bob").unwrap(), Some(user_record("bob")));
    assert_eq!(pg.count_rows("SELECT count(*) FROM audit"), 2);
}

#[test]
fn a_second_hosts_state_merges_into_a_used_database_by_each_tables_rule() {
    merges_by_each_tables_rule(open);
}

/// The same copy and merge behind a pooler in transaction mode (`[store] behind_pooler`):
/// the staging tables, the dynamic statements and the many-row inserts sent unnamed.
#[test]
fn behind_a_pooler_a_second_hosts_state_merges_by_the_same_rules() {
    merges_by_each_tables_rule(TestDb::open_for_copy_behind_pooler);
}

fn merges_by_each_tables_rule(open: fn(&TestDb) -> PgStore) {
    let db = fresh_database();
    let pg = open(&db);

    // Host A moves first, into the empty database.
    let (dir_a, mut a) = open_store();
    a.upsert_user(&user_record("alice")).unwrap();
    a.new_recovery_codes("alice", T0, &mut rng()).unwrap();
    a.issue(&request("alice", "ssh"), &limits(), T0, &mut rng())
        .unwrap();
    fail(&mut a, "carol", 2);
    audit(&mut a, "on host A");
    let from_a = snapshot_of(dir_a.path(), a);
    assert!(matches!(
        pg.import(&from_a, T0).unwrap(),
        Imported::Copied(_)
    ));

    // Host B: the same alice (enrolled there too, with her own recovery codes) and carol.
    let (dir_b, mut b) = open_store();
    b.upsert_user(&user_record("alice")).unwrap();
    b.upsert_user(&user_record("carol")).unwrap();
    b.new_recovery_codes("alice", T0 + 50, &mut rng()).unwrap();
    b.new_recovery_codes("carol", T0 + 50, &mut rng()).unwrap();
    b.issue(&request("alice", "ssh"), &limits(), T0 + 40, &mut rng())
        .unwrap();
    fail(&mut b, "carol", 3);
    // After the failures: a new code supersedes the user's older ones.
    let carols = b
        .issue(&request("carol", "http"), &limits(), T0 + 60, &mut rng())
        .unwrap();
    audit(&mut b, "on host B");
    let from_b = snapshot_of(dir_b.path(), b);

    // A plain copy is still refused; the merge is not.
    assert!(matches!(
        pg.import(&from_b, T0 + 70).unwrap(),
        Imported::Refused(_)
    ));
    let Merged::Done {
        written,
        recovery_kept,
        merged_before,
    } = pg.merge(&from_b, T0 + 70).unwrap()
    else {
        panic!("the merge was refused");
    };
    assert_eq!(recovery_kept, vec!["alice".to_string()]);
    assert_eq!(merged_before, None, "another host's trail is not B's");
    let users = written.iter().find(|(t, _)| *t == "users").unwrap().1;
    assert_eq!(users, 1, "alice was already there: only carol is added");

    let mut pg = pg;
    assert_eq!(pg.count_rows("SELECT count(*) FROM users"), 2);
    assert_eq!(pg.user("carol").unwrap(), Some(user_record("carol")));
    // Alice keeps the database's set (A's, made at T0); carol gets B's.
    assert_eq!(
        pg.count_rows(&format!(
            "SELECT count(*) FROM recovery_codes WHERE username = 'alice' AND created_at = {T0}"
        )),
        10
    );
    assert_eq!(pg.recovery_codes_left("alice").unwrap(), 10);
    assert_eq!(pg.recovery_codes_left("carol").unwrap(), 10);
    // Both hosts' history, and both hosts' mails to alice count for her caps.
    for host in ["A", "B"] {
        let sql = format!("SELECT count(*) FROM audit WHERE detail = 'on host {host}'");
        assert_eq!(pg.count_rows(&sql), 1, "{host}");
    }
    assert_eq!(
        pg.sends_counted("alice", T0 + 100).unwrap(),
        SendCounts { hour: 2, day: 2 }
    );
    // Carol's failures on both hosts add up.
    assert_eq!(
        pg.count_rows("SELECT failures FROM lockouts WHERE subject = 'carol'"),
        5
    );
    // The code B mailed to carol answers on the shared database.
    let outcome = pg
        .verify(
            &challenge_of(&carols),
            "carol",
            "http",
            None,
            &secret_of(&carols),
            &limits(),
            T0 + 80,
        )
        .unwrap();
    assert_eq!(outcome, VerifyOutcome::Success);

    // The same state again: refused, nothing written.
    let audit_rows = pg.count_rows("SELECT count(*) FROM audit");
    assert_eq!(
        pg.merge(&from_b, T0 + 90).unwrap(),
        Merged::AlreadyMerged(T0 + 70)
    );
    assert_eq!(
        pg.merge(&from_a, T0 + 90).unwrap(),
        Merged::AlreadyMerged(T0)
    );
    assert_eq!(pg.count_rows("SELECT count(*) FROM audit"), audit_rows);
}

#[test]
fn a_user_the_hosts_hold_differently_refuses_the_merge_naming_them_and_writes_nothing() {
    let db = fresh_database();
    let pg = open(&db);
    let (dir_a, mut a) = open_store();
    a.upsert_user(&user_record("alice")).unwrap();
    assert!(matches!(
        pg.import(&snapshot_of(dir_a.path(), a), T0).unwrap(),
        Imported::Copied(_)
    ));

    let (dir_b, mut b) = open_store();
    let elsewhere = UserRecord {
        email: Some("alice@elsewhere.example".into()),
        ..user_record("alice")
    };
    b.upsert_user(&elsewhere).unwrap();
    b.upsert_user(&user_record("dave")).unwrap();
    audit(&mut b, "on host B");
    let from_b = snapshot_of(dir_b.path(), b);

    assert_eq!(
        pg.merge(&from_b, T0 + 10).unwrap(),
        Merged::Conflicts(vec![Conflict {
            table: "users",
            user: "alice".into(),
            columns: "email".into(),
        }])
    );
    assert_eq!(pg.user("dave").unwrap(), None);
    assert_eq!(
        pg.count_rows("SELECT count(*) FROM audit WHERE detail = 'on host B'"),
        0
    );
    assert_eq!(pg.user("alice").unwrap(), Some(user_record("alice")));
    // Refused is not merged: once the admin has settled alice's address, it merges.
    let mut settled = from_b;
    for (table, rows) in &mut settled.tables {
        if table.name == "users" {
            rows.retain(|row| row[0] != Value::Text(Some("alice".into())));
        }
    }
    assert!(matches!(
        pg.merge(&settled, T0 + 20).unwrap(),
        Merged::Done { .. }
    ));
    assert_eq!(pg.user("dave").unwrap(), Some(user_record("dave")));
}

#[test]
fn a_merge_waits_for_another_hosts_writer_and_does_not_run_beside_it() {
    let db = fresh_database();
    let (dir_b, mut b) = open_store();
    b.upsert_user(&user_record("carol")).unwrap();
    let from_b = snapshot_of(dir_b.path(), b);

    // Another host's otpd, in the middle of a transaction that wrote a user.
    let (writing, written) = std::sync::mpsc::channel();
    let (finish, finished) = std::sync::mpsc::channel::<()>();
    let other = db.open_for_copy();
    let host = std::thread::spawn(move || {
        let mut other = other;
        other
            .in_one_transaction(&mut |store| {
                store.upsert_user(&user_record("alice"))?;
                writing.send(()).unwrap();
                finished.recv().unwrap();
                Ok(())
            })
            .unwrap();
    });
    written.recv().unwrap();

    // The merge must not check and write while that transaction may still commit: it waits
    // for it, here past its own short deadline, and writes nothing.
    let options = PgOptions {
        deadline: std::time::Duration::from_secs(1),
        ..PgOptions::default()
    };
    let merging = PgStore::open(
        db.config(),
        options,
        super::super::super::test_support::key(),
    )
    .unwrap();
    assert!(merging.merge(&from_b, T0).is_err());
    finish.send(()).unwrap();
    host.join().unwrap();
    let after = db.open_for_copy();
    assert_eq!(after.user("carol").unwrap(), None);
    assert!(matches!(
        after.merge(&from_b, T0).unwrap(),
        Merged::Done { .. }
    ));
    assert_eq!(after.count_rows("SELECT count(*) FROM users"), 2);
}
