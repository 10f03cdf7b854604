//! What a login costs the PostgreSQL server, for the paper estimate of how many hosts one
//! primary carries (issue #20): the server's CPU time (the postmaster and every child: backends,
//! WAL writer, checkpointer), the statements otpd sent and the rows they wrote (from
//! `pg_stat_statements`), and how much the audit table and its index grew. A [`Snapshot`] is
//! taken before and after a run; [`Snapshot::cost_since`] shares the difference out per login.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use e2e_tests::postgres::Postgres;

use crate::cpu;
use crate::error::BenchError;
use crate::memory::Process;

/// One server process's CPU time so far, and whether it serves otpd (a backend of otpd's role)
/// or the server itself (postmaster, WAL writer, checkpointer, autovacuum, a `psql`'s backend).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessCpu {
    /// User plus system time.
    pub cpu: Duration,
    /// A backend of otpd's role.
    pub serves_otpd: bool,
}

/// The server's counters at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// CPU time of the postmaster and of each child alive now, by pid.
    pub cpu: BTreeMap<u32, ProcessCpu>,
    /// Statements executed in otpd's database (`BEGIN` and `COMMIT` included).
    pub statements: u64,
    /// Rows inserted, updated or deleted in otpd's database (`pg_stat_database`; a backend
    /// reports them within about a second of its last transaction, see [`STATS_DELAY`]).
    pub rows_written: u64,
    /// Of those statements, the ones that write (an INSERT, UPDATE or DELETE, alone or in a
    /// `WITH`).
    pub writing_statements: u64,
    /// Bytes of the audit table with its indexes and TOAST.
    pub audit_bytes: u64,
}

/// What one login cost the server, on average over a run.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LoginCost {
    /// Logins the average is over.
    pub logins: u64,
    /// Server CPU time per login, every process of the server.
    pub cpu: Duration,
    /// The part of it spent in otpd's backends.
    pub backend_cpu: Duration,
    /// Statements per login.
    pub statements: f64,
    /// Writing statements per login.
    pub writing_statements: f64,
    /// Rows inserted, updated or deleted per login, when the run waited for the backends to
    /// report them.
    pub rows_written: Option<f64>,
    /// Audit table growth per login, bytes.
    pub audit_bytes: f64,
}

/// How long after its last transaction a backend may take to report its row counts: it
/// flushes them when idle, at most once a second (PostgreSQL 15's `PGSTAT_MIN_INTERVAL`).
pub const STATS_DELAY: std::time::Duration = std::time::Duration::from_millis(1100);

/// The statements of database `dbname` in `pg_stat_statements` (installed in `postgres`):
/// all, and the writing ones (`FOR UPDATE` is a read); then the rows the database's backends
/// wrote.
fn counters_sql(dbname: &str) -> String {
    let of_db = format!("(SELECT oid FROM pg_database WHERE datname = '{dbname}')");
    format!(
        "SELECT coalesce(sum(calls), 0), \
                coalesce(sum(calls) FILTER (WHERE query ~* '^\\s*(insert|update|delete)' \
                    OR (query ~* '^\\s*with' \
                        AND query ~* '\\m(insert\\s+into|update\\s+\\w+\\s+set|delete\\s+from)\\M')), 0), \
                (SELECT tup_inserted + tup_updated + tup_deleted FROM pg_stat_database \
                 WHERE datid = {of_db}) \
         FROM pg_stat_statements WHERE dbid = {of_db}"
    )
}

impl Snapshot {
    /// The counters of `pg` now, for otpd's database `dbname`.
    pub fn take(pg: &Postgres, dbname: &str, role: &str) -> Result<Snapshot, BenchError> {
        let cpu = server_cpu(pg.dir(), role)?;
        let counts = numbers(&pg.psql("postgres", &counters_sql(dbname)))?;
        let audit = numbers(&pg.psql(dbname, "SELECT pg_total_relation_size('audit')"))?;
        match (counts.as_slice(), audit.as_slice()) {
            ([statements, writing, rows], [audit_bytes]) => Ok(Snapshot {
                cpu,
                statements: *statements,
                writing_statements: *writing,
                rows_written: *rows,
                audit_bytes: *audit_bytes,
            }),
            _ => Err(BenchError::Check(format!(
                "unexpected answer from pg_stat_statements: {counts:?} {audit:?}"
            ))),
        }
    }

    /// The cost per login of the `logins` logins since `before` (this snapshot taken after them).
    ///
    /// CPU time is counted per process: what a process alive in both used in between, and all
    /// a process started since used. A process that ended in between (an autovacuum worker)
    /// takes its time with it; otpd keeps its pooled connections, so its backends stay.
    pub fn cost_since(&self, before: &Snapshot, logins: u64) -> LoginCost {
        let per =
            |after: u64, before: u64| after.saturating_sub(before) as f64 / logins.max(1) as f64;
        let divisor = u32::try_from(logins.max(1)).unwrap_or(u32::MAX);
        let (mut all, mut backends) = (Duration::ZERO, Duration::ZERO);
        for (pid, now) in &self.cpu {
            let earlier = before.cpu.get(pid).map_or(Duration::ZERO, |p| p.cpu);
            let used = now.cpu.saturating_sub(earlier);
            all += used;
            if now.serves_otpd {
                backends += used;
            }
        }
        LoginCost {
            logins,
            cpu: all / divisor,
            backend_cpu: backends / divisor,
            statements: per(self.statements, before.statements),
            writing_statements: per(self.writing_statements, before.writing_statements),
            rows_written: Some(per(self.rows_written, before.rows_written)),
            audit_bytes: per(self.audit_bytes, before.audit_bytes),
        }
    }
}

/// The `count` statements of otpd's database `dbname` that ran most often, with their calls and
/// the server's mean time executing one, as lines for the progress log: where a login's round
/// trips go.
pub fn most_called(pg: &Postgres, dbname: &str, count: usize) -> String {
    pg.psql(
        "postgres",
        &format!(
            "SELECT calls, round(mean_exec_time::numeric * 1000) || ' µs', \
                    left(regexp_replace(query, '\\s+', ' ', 'g'), 100) \
             FROM pg_stat_statements \
             WHERE dbid = (SELECT oid FROM pg_database WHERE datname = '{dbname}') \
             ORDER BY calls DESC LIMIT {count}"
        ),
    )
}

/// The whole numbers of one `psql -A -t` row (`|`-separated).
fn numbers(row: &str) -> Result<Vec<u64>, BenchError> {
    row.trim()
        .split('|')
        .map(|field| {
            field
                .trim()
                .parse()
                .map_err(|_| BenchError::Check(format!("not a number from psql: {row:?}")))
        })
        .collect()
}

/// CPU time of the postmaster of the cluster in `dir` and of each of its children now; a
/// backend serves otpd when its title names `role` (`postgres: ROLE DB HOST(PORT) STATE`).
fn server_cpu(dir: &Path, role: &str) -> Result<BTreeMap<u32, ProcessCpu>, BenchError> {
    let pidfile = dir.join("data/postmaster.pid");
    let text = std::fs::read_to_string(&pidfile).map_err(BenchError::io(&pidfile))?;
    let postmaster: u32 = text
        .lines()
        .next()
        .and_then(|l| l.trim().parse().ok())
        .ok_or_else(|| BenchError::Setup(format!("{}: no pid", pidfile.display())))?;
    let mut processes = BTreeMap::new();
    let cpu = cpu::cpu_time(Process::Pid(postmaster))?;
    processes.insert(
        postmaster,
        ProcessCpu {
            cpu,
            serves_otpd: false,
        },
    );
    let title = format!("postgres: {role} ");
    let proc_dir = std::fs::read_dir("/proc").map_err(BenchError::io("/proc"))?;
    for entry in proc_dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        if parent(&stat) == Some(postmaster) {
            // A child that ended since it was listed is skipped.
            let Ok(cpu) = cpu::cpu_time(Process::Pid(pid)) else {
                continue;
            };
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            let serves_otpd = String::from_utf8_lossy(&cmdline).starts_with(&title);
            processes.insert(pid, ProcessCpu { cpu, serves_otpd });
        }
    }
    Ok(processes)
}

/// The parent pid (field 4) of a `/proc/<pid>/stat` line; fields are counted from the last `)`,
/// as the command name may hold spaces and parentheses.
fn parent(stat: &str) -> Option<u32> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parent_is_read_after_the_command_name() {
        let stat = "4242 (postgres: otp (x)) S 17 4242 4242 0 -1 4194560 500 0 0 0 37 5";
        assert_eq!(parent(stat), Some(17));
        assert_eq!(parent("garbage"), None);
    }

    #[test]
    fn psql_rows_are_read_as_numbers_and_anything_else_refused() {
        assert_eq!(numbers("12|3|40\n").unwrap(), vec![12, 3, 40]);
        assert!(numbers("12|x").is_err());
    }

    fn processes(list: &[(u32, u64, bool)]) -> BTreeMap<u32, ProcessCpu> {
        list.iter()
            .map(|&(pid, ms, serves_otpd)| {
                (
                    pid,
                    ProcessCpu {
                        cpu: Duration::from_millis(ms),
                        serves_otpd,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn the_difference_is_shared_out_per_login() {
        let before = Snapshot {
            cpu: processes(&[(1, 50, false), (2, 50, true)]),
            statements: 10,
            writing_statements: 4,
            rows_written: 5,
            audit_bytes: 8192,
        };
        let after = Snapshot {
            cpu: processes(&[(1, 100, false), (2, 200, true)]),
            statements: 210,
            writing_statements: 84,
            rows_written: 105,
            audit_bytes: 8192 + 40_000,
        };
        let cost = after.cost_since(&before, 100);
        assert_eq!(cost.cpu, Duration::from_millis(2));
        assert_eq!(cost.backend_cpu, Duration::from_micros(1500));
        assert_eq!(cost.statements, 2.0);
        assert_eq!(cost.writing_statements, 0.8);
        assert_eq!(cost.rows_written, Some(1.0));
        assert_eq!(cost.audit_bytes, 400.0);
        assert_eq!(cost.logins, 100);
    }

    #[test]
    fn a_process_started_since_counts_whole_and_one_gone_counts_nothing() {
        let before = Snapshot {
            cpu: processes(&[(1, 50, false), (7, 400, true)]),
            ..Snapshot::default()
        };
        let after = Snapshot {
            cpu: processes(&[(1, 60, false), (9, 30, true)]),
            ..Snapshot::default()
        };
        let cost = after.cost_since(&before, 10);
        assert_eq!(cost.cpu, Duration::from_millis(4));
        assert_eq!(cost.backend_cpu, Duration::from_millis(3));
    }
}
