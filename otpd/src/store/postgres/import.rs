//! Writing a SQLite snapshot into an empty database (`otpctl store migrate`, see
//! `store::migrate` for what is copied and why): one transaction, all rows or none.
//!
//! The transaction takes the schema's migration lock (no otpd migrates or checks the key
//! meanwhile) and locks every copied table against writers (`EXCLUSIVE` lets readers on), so
//! an otpd of another host that is already serving cannot write between the check that the
//! tables are empty and the commit. A table that holds a row makes the whole copy refused
//! (`merge` is the way into a database other hosts use). The snapshot's fingerprint is kept in
//! `otpd_meta`, so that it is not merged in again later.

use tokio_postgres::types::ToSql;

use super::super::StoreError;
use super::super::migrate::{Copied, Occupied, Snapshot, TABLES, Table, Value};
use super::PgStore;
use super::locks::Lock;
use super::schema::MIGRATION_LOCK;
use super::sql::{exec, exec_once, maybe, one};
use super::unit::Conn;

/// Rows sent in one `INSERT`: few round trips, and far below PostgreSQL's 65,535 parameters
/// (the widest table has 13 columns).
const ROWS_PER_STATEMENT: usize = 200;

/// What an import did.
#[derive(Debug, PartialEq, Eq)]
pub enum Imported {
    /// Every row was written and committed; the counts per table.
    Copied(Copied),
    /// The database already holds rows in these tables: nothing was written.
    Refused(Occupied),
}

impl PgStore {
    /// Writes every row of `snapshot` in one transaction, or nothing when any copied table
    /// already holds a row. Fails (writing nothing) past the store's deadline.
    pub fn import(&self, snapshot: &Snapshot, now: i64) -> Result<Imported, StoreError> {
        self.unit(&[Lock::Single(MIGRATION_LOCK)], async |db, _key| {
            import_in(db, snapshot, now).await
        })
    }
}

async fn import_in(db: &Conn, snapshot: &Snapshot, now: i64) -> Result<Imported, StoreError> {
    lock_copied_tables(db).await?;
    let mut occupied = Vec::new();
    for table in TABLES {
        let sql = format!("SELECT count(*) FROM {}", table.name);
        let rows: i64 = one(db, &sql, &[]).await?.try_get(0)?;
        if rows > 0 {
            occupied.push((table.name, u64::try_from(rows).unwrap_or(u64::MAX)));
        }
    }
    if !occupied.is_empty() {
        return Ok(Imported::Refused(occupied));
    }
    let mut copied = Vec::with_capacity(snapshot.tables.len());
    for (table, rows) in &snapshot.tables {
        copied.push((table.name, write_rows(db, table, table.name, rows).await?));
    }
    remember_copy(db, snapshot, &snapshot.fingerprint(), now).await?;
    Ok(Imported::Copied(copied))
}

/// Locks every copied table against writers until the transaction ends (`EXCLUSIVE` lets
/// readers on): no otpd of another host writes between a copy's or merge's checks and its
/// commit; their logins wait, within their own deadline.
pub(super) async fn lock_copied_tables(db: &Conn) -> Result<(), StoreError> {
    let names: Vec<&str> = TABLES.iter().map(|table| table.name).collect();
    db.batch_execute(&format!(
        "LOCK TABLE {} IN EXCLUSIVE MODE",
        names.join(", ")
    ))
    .await?;
    Ok(())
}

/// Writes `rows` of `table` into `target` (the table itself, or a merge's staging table), a
/// statement per [`ROWS_PER_STATEMENT`]; returns how many were written.
pub(super) async fn write_rows(
    db: &Conn,
    table: &Table,
    target: &str,
    rows: &[Vec<Value>],
) -> Result<u64, StoreError> {
    let mut written = 0u64;
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        // Not cached: a staging table is made anew by each merge.
        let sql = table.insert_into(target, chunk.len());
        let params: Vec<&(dyn ToSql + Sync)> = chunk.iter().flatten().map(param).collect();
        written += exec_once(db, &sql, &params).await?;
    }
    Ok(written)
}

/// The `otpd_meta` name under which a copied or merged snapshot's fingerprint is kept.
fn copy_mark(fingerprint: &str) -> String {
    format!("copied:{fingerprint}")
}

/// When the snapshot with `fingerprint` was copied or merged into this database, if it was.
pub(super) async fn already_copied(
    db: &Conn,
    fingerprint: &str,
) -> Result<Option<i64>, StoreError> {
    let found = maybe(
        db,
        "SELECT value FROM otpd_meta WHERE name = $1",
        &[&copy_mark(fingerprint)],
    )
    .await?;
    match found {
        None => Ok(None),
        // A mark that is not a time still marks the snapshot as copied.
        Some(row) => Ok(Some(row.try_get::<_, String>(0)?.parse().unwrap_or(0))),
    }
}

/// Keeps `fingerprint` in `otpd_meta` with the time of the copy, so the same state is never
/// merged in again; and the name of `snapshot`'s audit trail, so a later state of the same
/// host brings only what it wrote since (`merge`, "A host merged before").
pub(super) async fn remember_copy(
    db: &Conn,
    snapshot: &Snapshot,
    fingerprint: &str,
    now: i64,
) -> Result<(), StoreError> {
    let at = now.to_string();
    exec(
        db,
        "INSERT INTO otpd_meta (name, value) VALUES ($1, $2)",
        &[&copy_mark(fingerprint), &at],
    )
    .await?;
    if let Some(tail) = snapshot.audit_tail(snapshot.audit().len()) {
        exec(
            db,
            "INSERT INTO otpd_meta (name, value) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value",
            &[&tail_mark(&tail), &at],
        )
        .await?;
    }
    Ok(())
}

/// The `otpd_meta` name under which the audit trail of a copied or merged snapshot is kept
/// (see `merge`, "A host merged before").
pub(super) fn tail_mark(tail: &str) -> String {
    format!("audit-tail:{tail}")
}

/// A value as a statement parameter, with its type (NULL included).
fn param(value: &Value) -> &(dyn ToSql + Sync) {
    match value {
        Value::Int(v) => v,
        Value::Text(v) => v,
        Value::Blob(v) => v,
        Value::Bool(v) => v,
    }
}

#[cfg(test)]
mod tests {

    use super::super::super::test_support::{
        T0, challenge_of, limits, open_store, request, rng, secret_of, user_added, user_record,
    };
    use super::super::super::{BreakGlass, BreakGlassLookup, SendCounts, Store, VerifyOutcome};
    use super::super::PgStore;
    use super::super::test_server::{TestDb, fresh_database};
    use super::*;

    fn open(db: &TestDb) -> PgStore {
        db.open_for_copy()
    }

    #[test]
    fn every_copied_tables_postgresql_columns_are_written_but_its_identity_id() {
        let db = fresh_database();
        let store = open(&db);
        for table in TABLES {
            let columns = store.count_rows(&format!(
                "SELECT count(*) FROM information_schema.columns \
                 WHERE table_name = '{}' AND is_identity = 'NO'",
                table.name
            ));
            assert_eq!(columns, table.columns.len() as i64, "{}", table.name);
            for (_, pg, _) in table.columns {
                let found = store.count_rows(&format!(
                    "SELECT count(*) FROM information_schema.columns \
                     WHERE table_name = '{}' AND column_name = '{pg}'",
                    table.name
                ));
                assert_eq!(found, 1, "{}.{pg}", table.name);
            }
        }
        // And no table of PostgreSQL's but otpd's own bookkeeping is left out.
        let tables = store.count_rows(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public' \
             AND table_name NOT IN ('otpd_schema', 'otpd_meta')",
        );
        assert_eq!(tables, TABLES.len() as i64);
    }

    #[test]
    fn a_sqlite_hosts_state_works_on_postgresql_and_a_second_copy_is_refused_untouched() {
        let (dir, mut sqlite) = open_store();
        let mut alice = user_record("alice");
        alice.phone = Some("+441234567890".into());
        sqlite.upsert_user(&alice).unwrap();
        let codes = sqlite.new_recovery_codes("alice", T0, &mut rng()).unwrap();
        let issued = sqlite
            .issue(&request("alice", "ssh"), &limits(), T0, &mut rng())
            .unwrap();
        let grant = BreakGlass {
            user: "alice".into(),
            cidr: Some("192.0.2.0/24".into()),
            granted_by: 0,
            granted_at: T0,
            expires_at: T0 + 600,
        };
        sqlite.grant_breakglass(&grant).unwrap();
        sqlite.record_audit(&user_added("before the move")).unwrap();
        let audit_rows = sqlite.count_rows("SELECT count(*) FROM audit");
        drop(sqlite);
        let snapshot = Snapshot::read(&dir.path().join("otpd.db")).unwrap();

        let db = fresh_database();
        let mut pg = open(&db);
        let Imported::Copied(copied) = pg.import(&snapshot, T0).unwrap() else {
            panic!("refused an empty database");
        };
        assert_eq!(copied, snapshot.counts());

        assert_eq!(pg.user("alice").unwrap(), Some(alice));
        assert_eq!(pg.recovery_codes_left("alice").unwrap(), 10);
        assert_eq!(
            pg.breakglass_for("alice", T0 + 1).unwrap(),
            BreakGlassLookup::Live(grant)
        );
        assert_eq!(
            pg.sends_counted("alice", T0 + 1).unwrap(),
            SendCounts { hour: 1, day: 1 }
        );
        assert_eq!(
            pg.count_rows("SELECT count(*) FROM audit WHERE detail = 'before the move'"),
            1
        );
        assert_eq!(pg.count_rows("SELECT count(*) FROM audit"), audit_rows);
        // The code SQLite issued verifies on PostgreSQL (same key, same MAC), once.
        let challenge = challenge_of(&issued);
        let verify = |pg: &mut PgStore| {
            pg.verify(
                &challenge,
                "alice",
                "ssh",
                None,
                &secret_of(&issued),
                &limits(),
                T0 + 5,
            )
            .unwrap()
        };
        assert_eq!(verify(&mut pg), VerifyOutcome::Success);
        assert_eq!(verify(&mut pg), VerifyOutcome::Dead);
        assert_eq!(codes.len(), 10);

        // A second copy into the now used database: refused, nothing written.
        let before = pg.count_rows("SELECT count(*) FROM audit");
        match pg.import(&snapshot, T0).unwrap() {
            Imported::Refused(occupied) => {
                assert!(occupied.iter().any(|(t, _)| *t == "users"), "{occupied:?}");
                assert!(occupied.iter().any(|(t, _)| *t == "audit"), "{occupied:?}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(pg.count_rows("SELECT count(*) FROM audit"), before);
        assert_eq!(pg.count_rows("SELECT count(*) FROM users"), 1);
    }

    #[test]
    fn a_copy_that_fails_half_way_leaves_the_database_empty() {
        let (dir, mut sqlite) = open_store();
        sqlite.upsert_user(&user_record("alice")).unwrap();
        sqlite.new_recovery_codes("alice", T0, &mut rng()).unwrap();
        drop(sqlite);
        let snapshot = Snapshot::read(&dir.path().join("otpd.db")).unwrap();
        let db = fresh_database();
        let pg = open(&db);
        // A rule of PostgreSQL's that SQLite did not have fails the recovery codes' insert,
        // after the users' one.
        pg.plain(async |db, _| {
            db.batch_execute("ALTER TABLE recovery_codes ADD CONSTRAINT no_rows CHECK (slot < 0)")
                .await?;
            Ok(())
        })
        .unwrap();
        assert!(pg.import(&snapshot, T0).is_err());
        assert_eq!(pg.count_rows("SELECT count(*) FROM users"), 0);
    }
}
