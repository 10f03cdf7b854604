//! Writes whose answer nothing waits for: an operation that has decided leaves its last write
//! here instead of waiting a round trip for it, and the unit sends it, in order, in the same
//! round trip as whatever it sends next (the next operation, or the `COMMIT`).
//!
//! Such a write still happens before everything sent after it, so every later statement sees
//! it. Its failure cannot be taken back alone any more: the unit it belongs to fails whole and
//! keeps nothing (`unit`), which is where a decision whose write failed must end anyway.

use tokio_postgres::types::ToSql;

use super::super::StoreError;
use super::sql::exec;
use super::unit::Conn;

/// A parameter the write owns: it is sent after the operation's borrowed values are gone.
pub(super) type Param = Box<dyn ToSql + Sync + Send>;

/// Writes waiting to be sent, in the order they were left.
#[derive(Default)]
pub(super) struct Later(Vec<(&'static str, Vec<Param>)>);

impl std::fmt::Debug for Later {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The statements, never the values (a salt, a MAC).
        f.debug_list()
            .entries(self.0.iter().map(|(sql, _)| sql))
            .finish()
    }
}

impl Later {
    /// `sql` with `params`, after the writes already waiting.
    pub(super) fn push(&mut self, sql: &'static str, params: Vec<Param>) {
        self.0.push((sql, params));
    }

    /// `other`'s writes, after these.
    pub(super) fn append(&mut self, mut other: Later) {
        self.0.append(&mut other.0);
    }

    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Prepares every statement (a round trip only the first time on a connection), so that
    /// [`Prepared::send`] puts each whole on the wire when it is first polled, in order with
    /// what is pipelined after it. Behind a pooler nothing is prepared: each is sent unnamed
    /// (see `sql`), whole at the first poll too.
    pub(super) async fn prepare(self, db: &Conn) -> Result<Prepared, StoreError> {
        let mut prepared = Vec::with_capacity(self.0.len());
        for (sql, params) in self.0 {
            let statement = match db.unnamed_statements {
                true => Statement::Unnamed(sql),
                false => Statement::Named(db.client().prepare_cached(sql).await?),
            };
            prepared.push((statement, params));
        }
        Ok(Prepared(prepared))
    }
}

/// A write's statement: prepared on the connection, or its text to send unnamed.
enum Statement {
    Named(tokio_postgres::Statement),
    Unnamed(&'static str),
}

/// [`Later`]'s writes, prepared.
pub(super) struct Prepared(Vec<(Statement, Vec<Param>)>);

impl Prepared {
    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(super) fn len(&self) -> usize {
        self.0.len()
    }

    /// Sends every write at the first poll, in order, and waits for all their answers; the
    /// first failure is returned.
    pub(super) async fn send(&self, db: &Conn) -> Result<(), StoreError> {
        let writes = self.0.iter().map(|(statement, params)| async move {
            let params: Vec<&(dyn ToSql + Sync)> = params
                .iter()
                .map(|param| param.as_ref() as &(dyn ToSql + Sync))
                .collect();
            match statement {
                Statement::Named(statement) => Ok(db.client().execute(statement, &params).await?),
                Statement::Unnamed(sql) => exec(db, sql, &params).await,
            }
        });
        futures_util::future::try_join_all(writes).await?;
        Ok(())
    }
}
