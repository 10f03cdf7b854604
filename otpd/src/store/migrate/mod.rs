//! Moving one host's state from SQLite to PostgreSQL (`otpctl store migrate --to postgresql`,
//! issue #20): SQLite stays the embedded default, and a host that joins a shared database
//! brings its users, their enrolment and its audit history along instead of starting over.
//!
//! # What is copied
//!
//! Every row of every table of SQLite's schema version 9 ([`super::schema`]), into the table
//! of the same meaning in PostgreSQL's version 1 (the renamed columns are in [`TABLES`]). The
//! decisions, table by table:
//!
//! - `users`: copied. Addresses, phones, languages, protocols, the enabled flag: enrolment.
//! - `recovery_codes`: copied, as the salted MACs they are (used ones too: a used code must
//!   stay used). They verify on PostgreSQL only under the same server key, which the
//!   database's key check enforces.
//! - `breakglass`: copied. A grant is an admin's decision with its own expiry; dropping it
//!   would silently end access the admin gave, and keeping it adds nothing the admin did not
//!   choose. An expired one is logged and removed there as it would have been here.
//! - `audit`: copied, oldest first, so PostgreSQL's new ids keep the order; the history stays
//!   readable with `otpctl audit`.
//! - `lockouts`: copied. A lock is a security decision; a migration must not be a way to
//!   clear one (fail closed).
//! - `sends`: copied. The hourly and daily mail caps count them; dropping them would let a
//!   user be mailed more than the caps allow on the day of the move.
//! - `codes`: copied (live, used and dead, oldest first). A code mailed just before the stop
//!   still answers after the restart within its validity, and a used one stays used, so it
//!   cannot be replayed. Expired ones are purged there as here.
//! - `reuse_grants`: copied. A single-secret client (HTTP, WebDAV) keeps working across the
//!   restart within its reuse window instead of asking its user for a new code.
//! - `notices`: copied. A notice not yet delivered is owed to its user and is never dropped
//!   (schema version 6); delivered ones count for the per-hour caps and the once-per-event key.
//! - `seen_rhosts`: copied, or every user's next login from a known address would be
//!   reported as a new address.
//!
//! Nothing else is kept in SQLite (the schema version is SQLite's own; PostgreSQL has its own
//! `otpd_schema` and `otpd_meta`). A unit test holds [`TABLES`] to the schema: a table or
//! column added to SQLite without a decision here makes it fail.
//!
//! # Safety
//!
//! - The source is read in one transaction that holds SQLite's write lock (`BEGIN
//!   IMMEDIATE` in exclusive locking mode) until the copy is committed or abandoned: one
//!   consistent snapshot, and no otpd can start on the file and write what the copy would
//!   miss. A running otpd holds that lock itself (it opens the file in exclusive mode), so a
//!   migration while otpd runs on the state directory fails at once (`source`); `otpctl`
//!   asks the configured socket first, for a clearer answer (`ctl::store_migrate`).
//! - The target is written in one PostgreSQL transaction, under the schema's migration lock
//!   and with every copied table locked against writers: all rows or none. A target that
//!   holds any row in a copied table (another host's users, or an otpd that already ran on
//!   it) is refused, and nothing is written; `--merge` is the way into such a database, by
//!   one stated rule per table (`store::postgres::merge`), never by a guess. A database made
//!   with another server key is refused by the key check before anything is copied, and a
//!   snapshot already copied or merged (its fingerprint is kept there) is refused too.
//! - The SQLite file is never changed: going back is stopping otpd, setting `[store]` back
//!   to SQLite and starting it again.
//!
//! The snapshot is held in memory while it is written: the audit, the one table that grows
//! with time, is capped by `audit_max_rows`, and the rest holds a row per user, per code of the
//! last day or per recent address.

mod source;
mod tables;

pub use source::{Snapshot, SourceError};
pub use tables::{Kind, TABLES, Table};

/// One copied value, typed as PostgreSQL expects it (NULL is typed too: the driver checks a
/// parameter's type even when it is NULL). Values are never shown: some are MACs.
#[derive(Clone, PartialEq, Eq)]
pub enum Value {
    /// An integer column (`INTEGER` in SQLite, `BIGINT` in PostgreSQL), NULL or not.
    Int(Option<i64>),
    /// A text column, NULL or not.
    Text(Option<String>),
    /// A salt or MAC.
    Blob(Vec<u8>),
    /// A flag stored as 0 or 1 in SQLite, `BOOLEAN` in PostgreSQL.
    Bool(bool),
}

impl std::fmt::Debug for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Only the kind: a row may hold a MAC or an address.
        f.write_str(match self {
            Value::Int(_) => "Int",
            Value::Text(_) => "Text",
            Value::Blob(_) => "Blob",
            Value::Bool(_) => "Bool",
        })
    }
}

/// How many rows of each table were copied, in [`TABLES`]' order.
pub type Copied = Vec<(&'static str, u64)>;

/// What the target holds that makes a copy unsafe: tables with their row counts.
pub type Occupied = Vec<(&'static str, u64)>;

#[cfg(test)]
mod tests;
