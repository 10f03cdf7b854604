//! The SQLite side of the migration: the table list matches the schema, the snapshot reads
//! every row, and what must be refused is. (The PostgreSQL side is tested in
//! `postgres::import`, on a real server.)

use std::collections::BTreeSet;

use rusqlite::Connection;

use super::super::AuditRecord;
use super::super::schema::CURRENT_VERSION;
use super::super::test_support::{T0, open_store, rng, user_record};
use super::{Snapshot, SourceError, TABLES, Value};

/// SQLite columns left out on purpose: ids PostgreSQL makes anew, in the order rows come.
const LEFT_OUT: &[(&str, &str)] = &[("audit", "id"), ("sends", "id"), ("notices", "id")];

/// `table.column` for every column of every table in a fresh SQLite database.
fn schema_columns(conn: &Connection) -> BTreeSet<String> {
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut columns = BTreeSet::new();
    for table in tables {
        let names: Vec<String> = conn
            .prepare(&format!("SELECT name FROM pragma_table_info('{table}')"))
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        columns.extend(names.into_iter().map(|c| format!("{table}.{c}")));
    }
    columns
}

#[test]
fn every_table_and_column_of_the_sqlite_schema_is_copied_or_left_out_on_purpose() {
    let (dir, store) = open_store();
    drop(store);
    let conn = Connection::open(dir.path().join("otpd.db")).unwrap();
    let in_schema = schema_columns(&conn);
    let mut decided: BTreeSet<String> = TABLES
        .iter()
        .flat_map(|t| t.columns.iter().map(|(c, _, _)| format!("{}.{c}", t.name)))
        .collect();
    decided.extend(LEFT_OUT.iter().map(|(t, c)| format!("{t}.{c}")));
    assert_eq!(
        in_schema, decided,
        "a column without a decision in migrate::TABLES"
    );
    assert_eq!(
        CURRENT_VERSION, 9,
        "a new schema version: decide its tables in migrate"
    );
}

#[test]
fn a_snapshot_holds_every_row_in_order_with_flags_as_booleans() {
    let (dir, mut store) = open_store();
    store.upsert_user(&user_record("alice")).unwrap();
    let mut off = user_record("bob");
    off.enabled = false;
    store.upsert_user(&off).unwrap();
    store.new_recovery_codes("alice", T0, &mut rng()).unwrap();
    for event in ["first", "second"] {
        store
            .record_audit(&AuditRecord {
                time: T0,
                event,
                user: Some("alice"),
                service: None,
                protocol: None,
                rhost: None,
                caller_uid: Some(0),
                detail: None,
            })
            .unwrap();
    }
    drop(store);
    let snapshot = Snapshot::read(&dir.path().join("otpd.db")).unwrap();
    let counts = snapshot.counts();
    let count = |name: &str| counts.iter().find(|(t, _)| *t == name).map(|(_, n)| *n);
    assert_eq!(count("users"), Some(2));
    assert_eq!(count("recovery_codes"), Some(10));
    assert_eq!(counts.len(), TABLES.len());
    let (_, users) = &snapshot.tables[0];
    assert_eq!(users[0][0], Value::Text(Some("alice".into())));
    assert_eq!(users[0][2], Value::Bool(true));
    assert_eq!(users[1][2], Value::Bool(false));
    let (table, audit) = snapshot
        .tables
        .iter()
        .find(|(t, _)| t.name == "audit")
        .unwrap();
    let events: Vec<&Value> = audit.iter().filter_map(|row| row.get(1)).collect();
    let first = events
        .iter()
        .position(|v| **v == Value::Text(Some("first".into())));
    let second = events
        .iter()
        .position(|v| **v == Value::Text(Some("second".into())));
    assert!(first < second && first.is_some(), "{table:?}");
    // Nothing about the values leaks through Debug.
    assert!(!format!("{snapshot:?}").contains("alice"));
}

#[test]
fn a_database_otpd_holds_open_is_refused_as_in_use() {
    let (dir, store) = open_store();
    let err = Snapshot::read(&dir.path().join("otpd.db")).unwrap_err();
    assert!(matches!(err, SourceError::InUse(_)), "{err:?}");
    assert!(err.to_string().contains("stop it first"), "{err}");
    drop(store);
    assert!(Snapshot::read(&dir.path().join("otpd.db")).is_ok());
}

#[test]
fn while_a_snapshot_is_held_otpd_cannot_open_the_database() {
    let (dir, store) = open_store();
    drop(store);
    let path = dir.path().join("otpd.db");
    let snapshot = Snapshot::read(&path).unwrap();
    let opened = super::super::SqliteStore::open(&path, super::super::test_support::key());
    assert!(opened.is_err(), "otpd opened the file during the copy");
    drop(snapshot);
    assert!(super::super::SqliteStore::open(&path, super::super::test_support::key()).is_ok());
}

#[test]
fn an_older_or_newer_schema_and_a_missing_file_are_refused_without_a_change() {
    let (dir, store) = open_store();
    drop(store);
    let path = dir.path().join("otpd.db");
    for version in [CURRENT_VERSION - 1, CURRENT_VERSION + 1] {
        Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", version)
            .unwrap();
        let err = Snapshot::read(&path).unwrap_err();
        assert!(
            matches!(err, SourceError::Version { found, .. } if found == version),
            "{err:?}"
        );
        let found: i64 = Connection::open(&path)
            .unwrap()
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .unwrap();
        assert_eq!(found, version);
    }
    let err = Snapshot::read(&dir.path().join("elsewhere.db")).unwrap_err();
    assert!(matches!(err, SourceError::Missing { .. }), "{err:?}");
    assert!(!dir.path().join("elsewhere.db").exists());
}

#[test]
fn files_sqlite_makes_beside_the_database_while_it_is_read_as_root_belong_to_otpd() {
    // Run as root (as otpctl store migrate is), on the file of otpd's uid: a WAL file left
    // behind by an interrupted copy must still be otpd's, or otpd could not open its database.
    if !nix::unistd::geteuid().is_root() {
        return;
    }
    let (dir, store) = open_store();
    drop(store);
    let otpd = Some(nix::unistd::Uid::from_raw(4242));
    let path = dir.path().join("otpd.db");
    nix::unistd::chown(dir.path(), otpd, None).unwrap();
    nix::unistd::chown(&path, otpd, None).unwrap();
    let snapshot = Snapshot::read(&path).unwrap();
    let mut beside = 0;
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let entry = entry.unwrap();
        use std::os::unix::fs::MetadataExt;
        let owner = entry.metadata().unwrap().uid();
        assert_eq!(owner, 4242, "{:?} is owned by {owner}", entry.file_name());
        beside += 1;
    }
    drop(snapshot);
    // The database and, while it was held, its WAL file.
    assert!(beside >= 2, "{beside}");
}
