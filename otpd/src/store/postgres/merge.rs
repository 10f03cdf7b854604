//! Merging one host's SQLite snapshot into a database other hosts already use (`otpctl store
//! migrate --to postgresql --merge`): the second and later hosts of a fleet bring their users,
//! enrolment and history along, instead of only the first one.
//!
//! # How rows meet
//!
//! Each table has one [`Rule`], chosen so that a merge never weakens a rule the database
//! already enforces and never picks between two admins' decisions silently:
//!
//! - users, break-glass grants, codes ([`Rule::Agree`]): a row whose key the database already
//!   holds must say the same (a user's address, phone, language, protocols and enabled flag; a
//!   grant's network and expiry; a code's every column). The same row is skipped; a different
//!   one refuses the whole merge, naming the users, for the admin to settle on one side (an
//!   address is where codes go: no merge may choose it).
//! - recovery codes ([`Rule::DatabaseSetWins`]): a user who has a set in the database keeps
//!   it, and this host's set for that user is not copied (two sets would be twice the ways
//!   in); the users are named, so the admin can tell them which codes still work. A user with
//!   no set there gets this host's.
//! - audit, sends, notices, reuse grants ([`Rule::Append`]): added, in this host's order. Sends
//!   count for the caps from now on, as they will across hosts; a notice whose once-per-event
//!   key the database already holds, and a reuse grant for a user, service and host that
//!   already has one, are skipped (the database's stays).
//! - lockouts, addresses seen ([`Rule::Combine`]): one row per key; failures add up and a lock
//!   runs until the later of the two ends (a merge is no way to clear a lock: fail closed),
//!   and an address counts as seen at its latest login.
//!
//! # A host merged before
//!
//! A host that moved, went back to SQLite for a while and is merged again still holds what it
//! brought the first time. Each copy and merge keeps the name of the snapshot's audit trail
//! (`audit-tail:`, [`Snapshot::audit_tail`]: a hash of the host's name and its last audit
//! rows) with its time; a merge that finds one of them in its own trail takes out of its
//! staged rows what the database already has from that time ([`written_since`]): the audit
//! rows up to that point, and every other row older than it (a user not changed since, a
//! send, a code, a grant). What the database did with them since (a user removed or changed,
//! a grant revoked, a code used) stands; only what the host wrote since is merged, by the
//! rules above. A lockout the host counted on since is combined
//! whole, its older failures included (counted twice: fail closed). A host whose audit no
//! longer holds the trail (trimmed or aged out since) is merged as a new host: its audit rows
//! are then all newer and none is added twice, but a user removed in the database since comes
//! back (and is asked for codes again). The host's name alone is not enough to know it by:
//! cloned machines often share one.
//!
//! # Safety
//!
//! As for a copy into an empty database (`import`): one transaction under the migration lock,
//! every copied table locked against writers, so no host writes between the checks and the
//! commit; logins on the other hosts wait for it (their deadline makes them unavailable past
//! it, fail closed). The snapshot's fingerprint is kept in `otpd_meta`, and a snapshot already
//! copied or merged is refused: its audit rows and sends would count twice.
//!
//! The rows are first written into temporary tables (dropped at the commit), so every rule is
//! one statement over two tables instead of a round trip per row; that is done before the
//! copied tables are locked, so the other hosts wait only for the checks and the merge.

use super::super::StoreError;
use super::super::migrate::{Copied, Snapshot, Table, Value};
use super::PgStore;
use super::import::{already_copied, lock_copied_tables, remember_copy, tail_mark, write_rows};
use super::locks::Lock;
use super::schema::MIGRATION_LOCK;
use super::sql::{exec_once, rows, rows_once};
use super::unit::Conn;

/// How the rows of one table meet the rows the database already holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    /// Rows with the same `key` must agree on `compare`, or the merge is refused; the users
    /// named in a refusal are the `shown` column's.
    Agree {
        key: &'static str,
        compare: &'static [&'static str],
        shown: &'static str,
    },
    /// A user's rows are copied only when the database holds none of that user's.
    DatabaseSetWins,
    /// Every row is added; one that breaks a unique key is skipped.
    Append,
    /// One row per `key`: the `add` columns are summed, the `latest` ones take the greater.
    Combine {
        key: &'static str,
        add: &'static [&'static str],
        latest: &'static [&'static str],
    },
}

/// The rule of each copied table (the module doc says why); `None` for a table without one,
/// which a test forbids.
fn rule(table: &str) -> Option<Rule> {
    Some(match table {
        "users" => Rule::Agree {
            key: "name",
            compare: &["email", "enabled", "protocols", "language", "phone"],
            shown: "name",
        },
        "breakglass" => Rule::Agree {
            key: "username",
            compare: &["cidr", "expires_at"],
            shown: "username",
        },
        "codes" => Rule::Agree {
            key: "challenge",
            compare: &[
                "username",
                "protocol",
                "service",
                "rhost",
                "salt",
                "mac",
                "issued_at",
                "expires_at",
                "attempts",
                "state",
                "closed_at",
                "recovery_only",
            ],
            shown: "username",
        },
        "recovery_codes" => Rule::DatabaseSetWins,
        "audit" | "sends" | "notices" | "reuse_grants" => Rule::Append,
        "lockouts" => Rule::Combine {
            key: "kind, subject",
            add: &["failures"],
            latest: &["locked_until", "updated_at"],
        },
        "seen_rhosts" => Rule::Combine {
            key: "username, rhost",
            add: &[],
            latest: &["last_seen"],
        },
        _ => return None,
    })
}

/// The column of each copied table's staged rows that tells which ones the host wrote after
/// a time (`None` for a table without one, which a test forbids): a row older than the
/// host's earlier copy or merge is the database's to keep or change. The audit is taken by
/// position instead (its times need not be unique, its order is).
fn written_since(table: &str) -> Option<&'static str> {
    Some(match table {
        "users" | "lockouts" => "updated_at",
        "recovery_codes" | "notices" => "created_at",
        "breakglass" => "granted_at",
        "codes" => "issued_at",
        "sends" => "sent_at",
        "seen_rhosts" => "last_seen",
        // A grant lives for the reuse window (minutes): one older than the earlier merge has
        // ended long before the host comes back.
        "reuse_grants" => "expires_at",
        "audit" => "ord",
        _ => return None,
    })
}

/// A row that both sides hold differently: the merge was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The table.
    pub table: &'static str,
    /// The user the row is about.
    pub user: String,
    /// The columns that differ, comma separated (names only, never values).
    pub columns: String,
}

/// What a merge did.
#[derive(Debug, PartialEq, Eq)]
pub enum Merged {
    /// Committed: the rows each table gained or changed (in [`TABLES`](super::super::migrate::TABLES)' order), and the users
    /// whose recovery codes stayed the database's.
    Done {
        /// Rows added or changed per table.
        written: Copied,
        /// Users whose recovery codes on this host were not copied.
        recovery_kept: Vec<String>,
        /// When this host was copied or merged before, if its audit trail says it was: only
        /// what it wrote since was merged.
        merged_before: Option<i64>,
    },
    /// Rows both sides hold differently: nothing was written.
    Conflicts(Vec<Conflict>),
    /// This very state was copied or merged before (at this unix time): nothing was written.
    AlreadyMerged(i64),
}

impl PgStore {
    /// Merges `snapshot` into the database in one transaction by each table's rule, or
    /// writes nothing. Fails (writing nothing) past the store's deadline.
    pub fn merge(&self, snapshot: &Snapshot, now: i64) -> Result<Merged, StoreError> {
        self.unit(&[Lock::Single(MIGRATION_LOCK)], async |db, _key| {
            merge_in(db, snapshot, now).await
        })
    }
}

async fn merge_in(db: &Conn, snapshot: &Snapshot, now: i64) -> Result<Merged, StoreError> {
    // First what needs no table locked: `otpd_meta`'s marks are written only under the
    // migration lock this unit holds, and the staging tables are this session's own. Other
    // hosts' logins then wait only for the checks and the merge statements.
    let fingerprint = snapshot.fingerprint();
    if let Some(at) = already_copied(db, &fingerprint).await? {
        return Ok(Merged::AlreadyMerged(at));
    }
    let earlier = merged_before(db, snapshot).await?;
    let mut planned = Vec::with_capacity(snapshot.tables.len());
    for (table, rows) in &snapshot.tables {
        let rule = rule(table.name).ok_or_else(|| {
            StoreError::Postgres(format!("no merge rule for table {}", table.name))
        })?;
        stage(db, table, rows).await?;
        planned.push((*table, rule));
    }
    if let Some((end, at)) = earlier {
        drop_held_rows(db, &planned, end, at).await?;
    }
    lock_copied_tables(db).await?;
    let mut conflicts = Vec::new();
    for (table, rule) in &planned {
        if let Rule::Agree {
            key,
            compare,
            shown,
        } = rule
        {
            for row in rows_once(db, &disagreeing(table, key, compare, shown), &[]).await? {
                conflicts.push(Conflict {
                    table: table.name,
                    user: row.try_get(0)?,
                    columns: row.try_get(1)?,
                });
            }
        }
    }
    if !conflicts.is_empty() {
        return Ok(Merged::Conflicts(conflicts));
    }
    let recovery_kept = users(db, RECOVERY_KEPT).await?;
    let mut written = Vec::with_capacity(planned.len());
    for (table, rule) in &planned {
        written.push((
            table.name,
            exec_once(db, &merge_into(table, *rule), &[]).await?,
        ));
    }
    remember_copy(db, snapshot, &fingerprint, now).await?;
    Ok(Merged::Done {
        written,
        recovery_kept,
        merged_before: earlier.map(|(_, at)| at),
    })
}

/// This host's earlier copy or merge, when one of the trails the database keeps is in its
/// audit: how many of its audit rows the database has, and when that was. The latest such
/// point in the trail wins (the host may have been merged more than once).
async fn merged_before(db: &Conn, snapshot: &Snapshot) -> Result<Option<(usize, i64)>, StoreError> {
    let kept = rows(
        db,
        "SELECT name, value FROM otpd_meta WHERE name LIKE 'audit-tail:%'",
        &[],
    )
    .await?;
    let mut trails = std::collections::HashMap::with_capacity(kept.len());
    for row in &kept {
        let (name, at): (String, String) = (row.try_get(0)?, row.try_get(1)?);
        let at = at
            .parse::<i64>()
            .map_err(|_| StoreError::Postgres(format!("otpd_meta {name}: not a time: {at:?}")))?;
        trails.insert(name, at);
    }
    if trails.is_empty() {
        return Ok(None);
    }
    Ok((1..=snapshot.audit().len()).rev().find_map(|end| {
        let tail = snapshot.audit_tail(end)?;
        trails.get(&tail_mark(&tail)).map(|at| (end, *at))
    }))
}

/// Takes out of the staged rows those the database holds from this host's copy or merge at
/// `at`, which held its first `end` audit rows.
async fn drop_held_rows(
    db: &Conn,
    planned: &[(&Table, Rule)],
    end: usize,
    at: i64,
) -> Result<(), StoreError> {
    let mut sql = String::new();
    for (table, _) in planned {
        let condition = match written_since(table.name) {
            Some("ord") => format!("ord <= {end}"),
            Some(column) => format!("{column} < {at}"),
            None => {
                let why = format!("no time column for table {}", table.name);
                return Err(StoreError::Postgres(why));
            }
        };
        sql.push_str(&format!(
            "DELETE FROM {} WHERE {condition}; ",
            staged(table)
        ));
    }
    db.batch_execute(&sql).await?;
    Ok(())
}

/// The staging table of `table`.
fn staged(table: &Table) -> String {
    format!("incoming_{}", table.name)
}

/// Writes `rows` into a temporary table shaped like `table` (its copied columns, plus `ord`,
/// the order they were read in), dropped at the commit.
async fn stage(db: &Conn, table: &Table, rows: &[Vec<Value>]) -> Result<(), StoreError> {
    let staged = staged(table);
    db.batch_execute(&format!(
        "CREATE TEMP TABLE {staged} ON COMMIT DROP AS SELECT {} FROM {} WITH NO DATA; \
         ALTER TABLE {staged} ADD COLUMN ord BIGINT GENERATED ALWAYS AS IDENTITY",
        table.pg_columns(),
        table.name
    ))
    .await?;
    write_rows(db, table, &staged, rows).await?;
    Ok(())
}

/// The users of the staged rows of `table` that the database holds differently, each with the
/// names of the columns that differ.
fn disagreeing(table: &Table, key: &str, compare: &[&str], shown: &str) -> String {
    let differs: Vec<String> = compare
        .iter()
        .map(|c| format!("CASE WHEN i.{c} IS DISTINCT FROM d.{c} THEN '{c}' END"))
        .collect();
    format!(
        "SELECT DISTINCT shown, columns FROM (\
         SELECT i.{shown} AS shown, array_to_string(ARRAY[{}], ', ') AS columns \
         FROM {} i JOIN {} d USING ({key})) compared WHERE columns <> '' ORDER BY 1, 2",
        differs.join(", "),
        staged(table),
        table.name,
    )
}

/// Users with recovery codes on both sides: the database's set stays.
const RECOVERY_KEPT: &str = "SELECT DISTINCT i.username FROM incoming_recovery_codes i \
     WHERE EXISTS (SELECT 1 FROM recovery_codes d WHERE d.username = i.username) ORDER BY 1";

/// The statement that merges the staged rows of `table` by `rule`.
fn merge_into(table: &Table, rule: Rule) -> String {
    let (name, columns, staged) = (table.name, table.pg_columns(), staged(table));
    let insert = format!("INSERT INTO {name} ({columns}) SELECT {columns} FROM {staged} i");
    match rule {
        Rule::Agree { key, .. } => format!("{insert} ORDER BY ord ON CONFLICT ({key}) DO NOTHING"),
        Rule::DatabaseSetWins => format!(
            "{insert} WHERE NOT EXISTS (SELECT 1 FROM {name} d WHERE d.username = i.username) \
             ORDER BY ord"
        ),
        Rule::Append => format!("{insert} ORDER BY ord ON CONFLICT DO NOTHING"),
        Rule::Combine { key, add, latest } => {
            let set: Vec<String> = add
                .iter()
                .map(|c| format!("{c} = {name}.{c} + EXCLUDED.{c}"))
                .chain(
                    latest
                        .iter()
                        .map(|c| format!("{c} = GREATEST({name}.{c}, EXCLUDED.{c})")),
                )
                .collect();
            format!(
                "{insert} ORDER BY ord ON CONFLICT ({key}) DO UPDATE SET {}",
                set.join(", ")
            )
        }
    }
}

/// The first column of every row of `sql`, as text. Not a cached statement: the temporary
/// tables it reads are made anew by each merge.
async fn users(db: &Conn, sql: &str) -> Result<Vec<String>, StoreError> {
    let found = rows_once(db, sql, &[]).await?;
    found
        .iter()
        .map(|row| row.try_get(0).map_err(StoreError::from))
        .collect()
}

#[cfg(test)]
mod tests;
