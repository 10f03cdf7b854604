//! The copied tables, column by column: SQLite's name, PostgreSQL's name, and the kind of
//! value. One list serves both sides, so a column cannot be read without being written.

/// How a column is read from SQLite and sent to PostgreSQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An integer, NULL allowed.
    Int,
    /// Text, NULL allowed.
    Text,
    /// A BLOB (salt or MAC), never NULL.
    Blob,
    /// 0 or 1 in SQLite, a `BOOLEAN` in PostgreSQL; any other value is refused.
    Bool,
}

/// One copied table.
#[derive(Debug)]
pub struct Table {
    /// Its name, the same in both databases.
    pub name: &'static str,
    /// Its columns: SQLite's name, PostgreSQL's name, kind. Identity ids are left out:
    /// PostgreSQL numbers the rows anew, in the order they are read.
    pub columns: &'static [(&'static str, &'static str, Kind)],
    /// The order rows are read in (SQLite), which is the order PostgreSQL numbers them in.
    pub order_by: &'static str,
}

impl Table {
    /// The SQLite query that reads every row.
    pub fn select(&self) -> String {
        let columns: Vec<String> = self
            .columns
            .iter()
            .map(|(sqlite, _, _)| format!("\"{sqlite}\""))
            .collect();
        format!(
            "SELECT {} FROM {} ORDER BY {}",
            columns.join(", "),
            self.name,
            self.order_by
        )
    }

    /// Its PostgreSQL column names, comma separated.
    pub fn pg_columns(&self) -> String {
        let columns: Vec<&str> = self.columns.iter().map(|(_, pg, _)| *pg).collect();
        columns.join(", ")
    }

    /// The PostgreSQL statement that writes `rows` rows (one round trip for all of them).
    pub fn insert(&self, rows: usize) -> String {
        self.insert_into(self.name, rows)
    }

    /// [`Table::insert`] into `target`, a table with this one's PostgreSQL columns (a merge's
    /// staging table).
    pub fn insert_into(&self, target: &str, rows: usize) -> String {
        let width = self.columns.len();
        let tuples: Vec<String> = (0..rows)
            .map(|row| {
                let params: Vec<String> = (1..=width)
                    .map(|column| format!("${}", row * width + column))
                    .collect();
                format!("({})", params.join(", "))
            })
            .collect();
        format!(
            "INSERT INTO {} ({}) VALUES {}",
            target,
            self.pg_columns(),
            tuples.join(", ")
        )
    }
}

use Kind::{Blob, Bool, Int, Text};

/// Every table SQLite's schema holds, in the order they are copied (users first: what an
/// admin reads first when a copy is refused half-way is the enrolment). The module doc says
/// why each is copied.
pub const TABLES: &[Table] = &[
    Table {
        name: "users",
        columns: &[
            ("name", "name", Text),
            ("email", "email", Text),
            ("enabled", "enabled", Bool),
            ("protocols", "protocols", Text),
            ("language", "language", Text),
            ("phone", "phone", Text),
            ("created_at", "created_at", Int),
            ("updated_at", "updated_at", Int),
        ],
        order_by: "name",
    },
    Table {
        name: "recovery_codes",
        columns: &[
            ("user", "username", Text),
            ("slot", "slot", Int),
            ("salt", "salt", Blob),
            ("mac", "mac", Blob),
            ("created_at", "created_at", Int),
            ("used_at", "used_at", Int),
        ],
        order_by: "user, slot",
    },
    Table {
        name: "breakglass",
        columns: &[
            ("user", "username", Text),
            ("cidr", "cidr", Text),
            ("granted_by", "granted_by", Int),
            ("granted_at", "granted_at", Int),
            ("expires_at", "expires_at", Int),
        ],
        order_by: "user",
    },
    Table {
        name: "audit",
        columns: &[
            ("time", "logged_at", Int),
            ("event", "event", Text),
            ("user", "username", Text),
            ("service", "service", Text),
            ("protocol", "protocol", Text),
            ("rhost", "rhost", Text),
            ("caller_uid", "caller_uid", Int),
            ("detail", "detail", Text),
        ],
        order_by: "id",
    },
    Table {
        name: "lockouts",
        columns: &[
            ("kind", "kind", Text),
            ("subject", "subject", Text),
            ("failures", "failures", Int),
            ("locked_until", "locked_until", Int),
            ("updated_at", "updated_at", Int),
        ],
        order_by: "kind, subject",
    },
    Table {
        name: "sends",
        columns: &[
            ("user", "username", Text),
            ("sent_at", "sent_at", Int),
            ("challenge", "challenge", Text),
        ],
        order_by: "id",
    },
    Table {
        name: "codes",
        columns: &[
            ("challenge", "challenge", Text),
            ("user", "username", Text),
            ("protocol", "protocol", Text),
            ("service", "service", Text),
            ("rhost", "rhost", Text),
            ("salt", "salt", Blob),
            ("mac", "mac", Blob),
            ("issued_at", "issued_at", Int),
            ("expires_at", "expires_at", Int),
            ("attempts", "attempts", Int),
            ("state", "state", Text),
            ("closed_at", "closed_at", Int),
            ("recovery_only", "recovery_only", Bool),
        ],
        // SQLite orders codes of the same second by rowid; PostgreSQL by its new id.
        order_by: "rowid",
    },
    Table {
        name: "reuse_grants",
        columns: &[
            ("user", "username", Text),
            ("service", "service", Text),
            ("rhost", "rhost", Text),
            ("salt", "salt", Blob),
            ("mac", "mac", Blob),
            ("expires_at", "expires_at", Int),
        ],
        order_by: "user, service, rhost",
    },
    Table {
        name: "notices",
        columns: &[
            ("kind", "kind", Text),
            ("user", "username", Text),
            ("address", "address", Text),
            ("to_admin", "to_admin", Bool),
            ("channel", "channel", Text),
            ("service", "service", Text),
            ("rhost", "rhost", Text),
            ("detail", "detail", Text),
            ("event_key", "event_key", Text),
            ("created_at", "created_at", Int),
            ("next_try_at", "next_try_at", Int),
            ("tries", "tries", Int),
            ("sent_at", "sent_at", Int),
        ],
        order_by: "id",
    },
    Table {
        name: "seen_rhosts",
        columns: &[
            ("user", "username", Text),
            ("rhost", "rhost", Text),
            ("last_seen", "last_seen", Int),
        ],
        order_by: "user, rhost",
    },
];
