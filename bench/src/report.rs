//! The results as one markdown table (ours, pam_oath, ratio, target), with the machine, the
//! command and notes on what each row measures.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::burst::{self, Burst};
use crate::ldap::LdapResults;
use crate::memory::mib;
use crate::pg_cost::LoginCost;
use crate::stats::{Summary, micros};
use crate::suite::{Concurrent, PgResults, Results, Throughput};

/// The skip path must add less than this per PAM transaction.
pub const SKIP_TARGET: Duration = Duration::from_micros(100);
/// otpd idle must stay at or below this, KiB.
pub const IDLE_TARGET_KIB: u64 = 16 * 1024;
/// otpd with 100,000 live codes must stay at or below this, KiB.
pub const LIVE_TARGET_KIB: u64 = 64 * 1024;
/// Our 4-loop throughput must be at least this multiple of pam_oath's.
pub const THROUGHPUT_TARGET: f64 = 2.0;
/// A serial login's p50 on the PostgreSQL store must be at most this multiple of SQLite's.
pub const PG_SERIAL_TARGET: f64 = 2.0;
/// Several hosts on one database together must make at least this multiple of one host's
/// logins per second.
pub const PG_HOSTS_TARGET: f64 = 1.0;

/// What the run ran on.
#[derive(Debug, Clone)]
pub struct Machine {
    /// CPU model.
    pub cpu: String,
    /// Cores available to the run.
    pub cores: usize,
    /// Kernel release.
    pub kernel: String,
    /// Distribution.
    pub os: String,
    /// Package versions of the peers (libpam0g, libpam-oath).
    pub packages: String,
}

impl Machine {
    /// Reads the machine's description from /proc, /etc and dpkg.
    pub fn detect() -> Machine {
        let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
        let cpu = read("/proc/cpuinfo")
            .lines()
            .find_map(|l| {
                l.strip_prefix("model name")
                    .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
            })
            .unwrap_or_else(|| "unknown CPU".into());
        let os = read("/etc/os-release")
            .lines()
            .find_map(|l| {
                l.strip_prefix("PRETTY_NAME=")
                    .map(|v| v.trim_matches('"').to_string())
            })
            .unwrap_or_else(|| "unknown OS".into());
        let packages = std::process::Command::new("dpkg-query")
            .args([
                "-W",
                "-f",
                "${Package} ${Version}, ",
                "libpam0g",
                "libpam-oath",
            ])
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .trim_end_matches([',', ' '])
                    .to_string()
            })
            .unwrap_or_default();
        Machine {
            cpu,
            cores: std::thread::available_parallelism().map_or(0, usize::from),
            kernel: read("/proc/sys/kernel/osrelease").trim().to_string(),
            os,
            packages,
        }
    }
}

/// One table row.
struct Row {
    measure: String,
    ours: String,
    oath: String,
    ratio: String,
    target: String,
    met: &'static str,
}

fn us(duration: Duration) -> String {
    let value = micros(duration);
    if value >= 100.0 {
        format!("{value:.0} µs")
    } else {
        format!("{value:.1} µs")
    }
}

fn ratio(ours: f64, theirs: f64) -> String {
    if theirs == 0.0 {
        "—".into()
    } else {
        format!("{:.2}", ours / theirs)
    }
}

fn verdict(met: bool) -> &'static str {
    if met { "yes" } else { "**no**" }
}

fn latency_rows(
    rows: &mut Vec<Row>,
    label: &str,
    ours: &Summary,
    oath: &Summary,
    target_p50: bool,
) {
    for (name, a, b) in [
        ("p50", ours.p50, oath.p50),
        ("p99", ours.p99, oath.p99),
        ("max", ours.max, oath.max),
    ] {
        let gated = target_p50 && name == "p50";
        rows.push(Row {
            measure: format!("{label} latency {name}"),
            ours: us(a),
            oath: us(b),
            ratio: ratio(a.as_secs_f64(), b.as_secs_f64()),
            target: if gated {
                "ratio ≤ 1".into()
            } else {
                String::new()
            },
            met: if gated { verdict(a <= b) } else { "" },
        });
    }
}

fn cpu_row(label: &str, c: &Concurrent) -> Row {
    let (a, b) = (c.ours.cpu_per_login, c.oath.cpu_per_login);
    Row {
        measure: format!("{label}: CPU time per login, all processes"),
        ours: us(a),
        oath: us(b),
        ratio: ratio(a.as_secs_f64(), b.as_secs_f64()),
        target: String::new(),
        met: "",
    }
}

fn rows(results: &Results) -> Vec<Row> {
    let mut rows = Vec::new();
    let serial = &results.serial;
    latency_rows(
        &mut rows,
        &format!("Serial login ({} each)", serial.ours.latency.count),
        &serial.ours.latency,
        &serial.oath.latency,
        true,
    );
    rows.push(cpu_row("Serial", serial));
    for c in &results.concurrent {
        let gated = c.loops == crate::suite::GATED_LOOPS;
        let r = c.ours.per_second / c.oath.per_second.max(f64::EPSILON);
        rows.push(Row {
            measure: format!("{} loops: logins per second", c.loops),
            ours: format!("{:.0}", c.ours.per_second),
            oath: format!("{:.0}", c.oath.per_second),
            ratio: format!("{r:.2}"),
            target: if gated {
                format!("ratio ≥ {THROUGHPUT_TARGET}")
            } else {
                String::new()
            },
            met: if gated {
                verdict(r >= THROUGHPUT_TARGET)
            } else {
                ""
            },
        });
        rows.push(Row {
            measure: format!("{} loops: latency p99", c.loops),
            ours: us(c.ours.latency.p99),
            oath: us(c.oath.latency.p99),
            ratio: ratio(
                c.ours.latency.p99.as_secs_f64(),
                c.oath.latency.p99.as_secs_f64(),
            ),
            target: String::new(),
            met: "",
        });
        rows.push(cpu_row(&format!("{} loops", c.loops), c));
    }
    let added = results
        .skip_with_module
        .p50
        .saturating_sub(results.skip_permit_alone.p50);
    rows.push(Row {
        measure: "Skip path: added per PAM transaction (p50)".into(),
        ours: us(added),
        oath: "—".into(),
        ratio: "—".into(),
        target: format!("< {} µs", SKIP_TARGET.as_micros()),
        met: verdict(added < SKIP_TARGET),
    });
    let otpd = &results.otpd;
    for (label, kib, target) in [
        ("otpd resident size, idle", otpd.idle, Some(IDLE_TARGET_KIB)),
        (
            "otpd resident size, after the login bursts",
            otpd.after_burst,
            None,
        ),
        (
            &*format!(
                "otpd resident size, {} live codes",
                thousands(results.live_codes)
            ),
            otpd.with_live_codes,
            Some(LIVE_TARGET_KIB),
        ),
    ] {
        rows.push(Row {
            measure: label.to_string(),
            ours: format!("{:.1} MiB", mib(kib)),
            oath: "— (no daemon)".into(),
            ratio: "—".into(),
            target: target.map_or_else(String::new, |t| format!("≤ {} MiB", t / 1024)),
            met: target.map_or("", |t| verdict(kib <= t)),
        });
    }
    let base = results.probe_baseline.login_delta();
    for (label, ours, oath) in [
        (
            "Module: resident size added by loading it",
            results.probe_ours.load_delta(),
            results.probe_oath.load_delta(),
        ),
        (
            "Module: resident size added by loading it and one login",
            results.probe_ours.login_delta() - base,
            results.probe_oath.login_delta() - base,
        ),
    ] {
        rows.push(Row {
            measure: label.into(),
            ours: format!("{ours} KiB"),
            oath: format!("{oath} KiB"),
            ratio: ratio(ours as f64, oath as f64),
            target: String::new(),
            met: "",
        });
    }
    rows
}

/// `n` with thin separators: 100,000.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The table alone, as markdown.
pub fn table(results: &Results) -> String {
    let mut out = String::from(
        "| Measure | ours (pam_otp_email + otpd) | pam_oath | ratio ours/pam_oath | target | met |\n\
         |---|---:|---:|---:|---|---|\n",
    );
    for r in rows(results) {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} |",
            r.measure, r.ours, r.oath, r.ratio, r.target, r.met
        );
    }
    out
}

/// The bursts through real MTAs, as markdown: nothing when none ran.
pub fn burst_table(bursts: &[Burst]) -> String {
    if bursts.is_empty() {
        return String::new();
    }
    let mut out = format!(
        "\n| Burst through a real MTA (Debian 12, default limits) | logins at once | PAM_SUCCESS | codes delivered at once (≤ {} s) | to the MTA's acceptance p50 | p99 | all delivered in | target | met |\n\
         |---|---:|---:|---:|---:|---:|---:|---|---|\n",
        burst::AT_ONCE.as_secs()
    );
    for b in bursts {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {:.0} ms | {:.0} ms | {:.1} s | all at once, p99 < {} s | {} |",
            b.mta.name(),
            b.logins,
            b.succeeded,
            b.delivered_at_once,
            b.to_acceptance.p50.as_secs_f64() * 1e3,
            b.to_acceptance.p99.as_secs_f64() * 1e3,
            b.all_delivered_in.as_secs_f64(),
            burst::P99_TARGET.as_secs(),
            verdict(b.met()),
        );
    }
    out
}

/// Logins with the address from slapd, cold and cached, against otpd's table, as markdown:
/// nothing when the scenario did not run.
pub fn ldap_table(ldap: Option<&LdapResults>) -> String {
    let Some(ldap) = ldap else {
        return String::new();
    };
    let mut out = String::from(
        "\n| Login (ours), address from | logins | p50 | p99 | p50 / table | p99 / table |\n\
         |---|---:|---:|---:|---:|---:|\n",
    );
    for (label, s) in [
        ("LDAP (slapd on loopback), cold", &ldap.cold),
        ("LDAP, cached", &ldap.cached),
        ("otpd's table", &ldap.table),
    ] {
        let _ = writeln!(
            out,
            "| {label} | {} | {} | {} | {} | {} |",
            s.count,
            us(s.p50),
            us(s.p99),
            ratio(s.p50.as_secs_f64(), ldap.table.p50.as_secs_f64()),
            ratio(s.p99.as_secs_f64(), ldap.table.p99.as_secs_f64()),
        );
    }
    out
}

/// The whole results page.
pub fn markdown(results: &Results, machine: &Machine, command: &str) -> String {
    let mut out = String::from("# Benchmark: pam_otp_email against pam_oath\n\n");
    let _ = writeln!(
        out,
        "Run {} with `{command}` on {} ({} cores), {}, Linux {}; {}. The whole run took {:.0} s; \
load average at its end {}.\n",
        utc_now(),
        machine.cpu,
        machine.cores,
        machine.os,
        machine.kernel,
        machine.packages,
        results.elapsed.as_secs_f64(),
        load_average()
    );
    out.push_str(&table(results));
    out.push_str(&burst_table(&results.bursts));
    out.push_str(&ldap_table(results.ldap.as_ref()));
    out.push_str(&postgres_tables(results));
    if let Some(section) = budget_section(results, machine.cores) {
        out.push_str(&section);
    }
    let skip = (&results.skip_with_module, &results.skip_permit_alone);
    let _ = write!(
        out,
        "\n## What each row measures\n\n\
- Every login is one whole PAM transaction driven in-process (`pam_start_confdir`, \
`pam_authenticate`, `pam_end`), release build. **Ours**: the module asks otpd, otpd issues a \
code (SQLite, WAL), mails it to the benchmark's own SMTP sink on loopback, the sink takes the \
code out of the message, the conversation answers with it, otpd verifies. **pam_oath**: \
`pam_oath.so usersfile=... window=20 digits=6`, one HOTP usersfile per loop, the conversation \
answers with HOTP computed in-process (RFC 4226); pam_oath reads, checks and rewrites its \
usersfile on every login.\n\
- Serial: one loop, one login after another, in 10 blocks with ours and pam_oath's taking \
turns, so drift in the machine's speed weighs on both alike. Concurrent: N loops at once for a fixed time; \
logins per second is all logins over the wall-clock time. Each of our loops logs in as its own \
user (a fresh user every {per_user} logins, far below the send caps, which are set to their \
maxima with no resend cooldown). Ratios are ours divided by pam_oath's.\n\
- CPU time per login: user and system time of the benchmark process (the PAM application with \
the module, and the SMTP sink) plus otpd, over the timed part, divided by the logins; it does \
not depend on what else the machine was doing. pam_oath rewrites and fsyncs its usersfile on \
every login, so part of its latency is waiting for the disk, not CPU.\n\
- The module is given `daemon_user=root` because this otpd runs as root; installed, the daemon \
user is in /etc/passwd, the same files lookup. The benchmark is a Rust program, so \
libgcc_s.so.1 is already loaded in it; a C application such as sshd also pays for loading \
whatever the module needs that it does not have.\n\
- Skip path: a service whose protocol is disabled (our module answers PAM_IGNORE after asking \
otpd, then pam_permit) against pam_permit alone, {n} transactions each, alternating in blocks \
of 100: p50 {with} against {alone} (means {with_mean} and {alone_mean}).\n\
- otpd's resident size (VmRSS) idle after start, after the concurrent scenarios, and after \
{codes} `Begin` requests for distinct users through the wire protocol (so every one is a live, \
mailed code: issued, audited and mailed exactly as for a login; {rate:.0} per second from {conns} \
threads, one connection per request as the module makes them). Peak over the run (VmHWM): {peak:.1} MiB.\n\
- Bursts: N logins started at once, each in its own thread, against an otpd whose only mail \
server is a private Postfix 3.7 or Exim 4.96 from Debian's packages at their default limits \
(the end-to-end tests' harness, tests/src/mta.rs), relaying every message to a capture server \
where each login reads its code. \"To the MTA's acceptance\" is from a login's start to its \
prompt, which otpd shows only once the MTA accepted the mail; a code is delivered at once when \
it reaches the capture within {at_once} s of that, rather than waiting in the MTA's queue.\n\
{ldap}{postgres}- Module size: a fresh child process `dlopen`s the module (RTLD_NOW, as libpam does), then \
runs one whole login with it; the second row subtracts what the same login path costs with \
pam_permit alone ({base} KiB).\n",
        per_user = crate::scenarios::LOGINS_PER_USER,
        n = skip.0.count,
        with = us(skip.0.p50),
        alone = us(skip.1.p50),
        with_mean = us(skip.0.mean),
        alone_mean = us(skip.1.mean),
        codes = thousands(results.live_codes),
        rate = results.live_codes as f64 / results.bulk_time.as_secs_f64().max(f64::EPSILON),
        conns = crate::suite::BULK_CONNECTIONS,
        peak = mib(results.otpd.peak),
        base = results.probe_baseline.login_delta(),
        at_once = burst::AT_ONCE.as_secs(),
        ldap = if results.ldap.is_some() {
            LDAP_NOTE
        } else {
            ""
        },
        postgres = if results.postgres.is_some() {
            POSTGRES_NOTE
        } else {
            ""
        },
    );
    out.push_str("\n## Checks that passed\n\n");
    for check in &results.checks {
        let _ = writeln!(out, "- {check}");
    }
    out
}

/// Our logins on SQLite against the same on PostgreSQL, and one host against several on one
/// database with what a login cost the server, as markdown: nothing when they did not run.
pub fn postgres_tables(results: &Results) -> String {
    let Some(pg) = results.postgres.as_ref() else {
        return String::new();
    };
    let mut out = String::from(
        "\n| Login (ours), store | SQLite | PostgreSQL (TLS, loopback) | PostgreSQL / SQLite | target | met |\n\
         |---|---:|---:|---:|---|---|\n",
    );
    let serial = (&results.serial.ours, &pg.serial);
    let p50_ratio =
        serial.1.latency.p50.as_secs_f64() / serial.0.latency.p50.as_secs_f64().max(f64::EPSILON);
    let mut line = |measure: String,
                    sqlite: String,
                    postgres: String,
                    ratio: String,
                    target: String,
                    met: &str| {
        let _ = writeln!(
            out,
            "| {measure} | {sqlite} | {postgres} | {ratio} | {target} | {met} |"
        );
    };
    line(
        format!("Serial ({} each): latency p50", serial.1.latency.count),
        us(serial.0.latency.p50),
        us(serial.1.latency.p50),
        format!("{p50_ratio:.2}"),
        format!("ratio ≤ {PG_SERIAL_TARGET}"),
        verdict(p50_ratio <= PG_SERIAL_TARGET),
    );
    for (label, a, b) in [
        (
            "Serial: latency p99",
            serial.0.latency.p99,
            serial.1.latency.p99,
        ),
        (
            "Serial: CPU per login, this process and otpd",
            serial.0.cpu_per_login,
            serial.1.cpu_per_login,
        ),
    ] {
        line(
            label.into(),
            us(a),
            us(b),
            ratio(b.as_secs_f64(), a.as_secs_f64()),
            String::new(),
            "",
        );
    }
    let gated = results
        .concurrent
        .iter()
        .find(|c| c.loops == crate::suite::GATED_LOOPS);
    if let (Some(c), Some((one, _))) = (gated, pg.one_host.as_ref()) {
        let loops = c.loops;
        line(
            format!("{loops} loops: logins per second"),
            format!("{:.0}", c.ours.per_second),
            format!("{:.0}", one.per_second),
            ratio(one.per_second, c.ours.per_second),
            String::new(),
            "",
        );
        for (label, a, b) in [
            ("latency p99", c.ours.latency.p99, one.latency.p99),
            (
                "CPU per login, this process and otpd",
                c.ours.cpu_per_login,
                one.cpu_per_login,
            ),
        ] {
            line(
                format!("{loops} loops: {label}"),
                us(a),
                us(b),
                ratio(b.as_secs_f64(), a.as_secs_f64()),
                String::new(),
                "",
            );
        }
    }
    out.push_str(&pooler_table(pg));
    out.push_str(&hosts_table(pg));
    out
}

/// A time the hosts table shows, read from a scenario's throughput and server cost.
type TimeOf = fn(&Throughput, &LoginCost) -> Duration;
/// A per-login count the hosts table shows, read from a scenario's server cost.
type CountOf = fn(&LoginCost) -> f64;

/// One otpd against [`crate::pg_store::HOSTS`] at once on the one database, each otpd in a
/// network namespace of its own on the bridge in both columns, with the server's cost per login
/// in each.
fn hosts_table(pg: &PgResults) -> String {
    let (Some((one, one_cost)), Some((all, all_cost))) =
        (pg.one_bridge_host.as_ref(), pg.hosts.as_ref())
    else {
        return String::new();
    };
    let hosts = crate::pg_store::HOSTS;
    let loops = crate::suite::GATED_LOOPS;
    let mut out = format!(
        "\n| PostgreSQL store, {loops} loops per host, each host in a network namespace | 1 host | {hosts} hosts at once | {hosts} hosts / 1 host | target | met |\n\
         |---|---:|---:|---:|---|---|\n"
    );
    let scale = all.per_second / one.per_second.max(f64::EPSILON);
    let _ = writeln!(
        out,
        "| logins per second, all hosts together | {:.0} | {:.0} | {scale:.2} | ratio ≥ {PG_HOSTS_TARGET} | {} |",
        one.per_second,
        all.per_second,
        verdict(scale >= PG_HOSTS_TARGET)
    );
    // The table's last two columns, the target and whether it is met, are empty in these rows.
    out.push_str(&cost_rows((one, one_cost), (all, all_cost), " | |"));
    out
}

/// For each PgBouncer, the otpd on loopback through it in transaction mode (`behind_pooler`)
/// set against the same otpd's scenario connecting directly, with what a login cost PgBouncer.
fn pooler_table(pg: &PgResults) -> String {
    let Some(direct) = pg.one_host.as_ref() else {
        return String::new();
    };
    pg.pooled
        .iter()
        .map(|pooled| one_pooler_table(direct, pooled))
        .collect()
}

fn one_pooler_table(
    (direct, direct_cost): &(Throughput, LoginCost),
    pooled: &crate::suite::Pooled,
) -> String {
    let loops = crate::suite::GATED_LOOPS;
    let mut out = format!(
        "\n| PostgreSQL store, 1 host on loopback, {loops} loops | direct | through {} (transaction mode) | through / direct |\n\
         |---|---:|---:|---:|\n",
        pooled.pooler
    );
    let _ = writeln!(
        out,
        "| logins per second | {:.0} | {:.0} | {} |",
        direct.per_second,
        pooled.run.per_second,
        ratio(pooled.run.per_second, direct.per_second)
    );
    out.push_str(&cost_rows(
        (direct, direct_cost),
        (&pooled.run, &pooled.cost),
        "",
    ));
    let _ = writeln!(
        out,
        "| PgBouncer CPU per login (one process) | — | {} | |",
        us(pooled.bouncer_cpu)
    );
    out
}

/// The rows both comparisons of PostgreSQL scenarios show, `a` against `b`: latency, CPU in
/// otpd and in the server, statements and rows per login, each row ended by `after` (the
/// table's further columns, left empty).
fn cost_rows(a: (&Throughput, &LoginCost), b: (&Throughput, &LoginCost), after: &str) -> String {
    let mut out = String::new();
    let mut line = |label: &str, x: String, y: String, r: String| {
        let _ = writeln!(out, "| {label} | {x} | {y} | {r}{after} |");
    };
    let times: [(&str, TimeOf); 5] = [
        ("latency p50", |t, _| t.latency.p50),
        ("latency p99", |t, _| t.latency.p99),
        (
            "CPU per login, this process and every host's otpd",
            |t, _| t.cpu_per_login,
        ),
        (
            "PostgreSQL server CPU per login (postmaster and children)",
            |_, c| c.cpu,
        ),
        ("of which otpd's backends", |_, c| c.backend_cpu),
    ];
    for (label, get) in times {
        let (x, y) = (get(a.0, a.1), get(b.0, b.1));
        line(label, us(x), us(y), ratio(y.as_secs_f64(), x.as_secs_f64()));
    }
    let counts: [(&str, CountOf); 3] = [
        ("statements per login (BEGIN and COMMIT included)", |c| {
            c.statements
        }),
        ("statements that write, per login", |c| c.writing_statements),
        ("audit table growth per login, bytes", |c| c.audit_bytes),
    ];
    for (label, get) in counts {
        let (x, y) = (get(a.1), get(b.1));
        line(label, format!("{x:.1}"), format!("{y:.1}"), ratio(y, x));
    }
    let rows = match (a.1.rows_written, b.1.rows_written) {
        (Some(x), Some(y)) => (format!("{x:.1}"), format!("{y:.1}"), ratio(y, x)),
        _ => (
            "— (smoke run: not waited for)".into(),
            "—".into(),
            "—".into(),
        ),
    };
    line(
        "rows inserted, updated or deleted per login",
        rows.0,
        rows.1,
        rows.2,
    );
    out
}

/// What the PostgreSQL tables measure.
const POSTGRES_NOTE: &str = "- PostgreSQL store: our logins against otpd with `[store] backend = \
\"postgresql\"` (default pool of 8) on a private PostgreSQL 15 (the end-to-end tests' harness, \
tests/src/postgres.rs) listening on 127.0.0.1 and the bridge's address, TLS with the server's certificate and name verified \
(`verify-full`) and a SCRAM password, `fsync` on and `synchronous_commit = off` (no WAL flush \
per commit, as SQLite's `synchronous=NORMAL` in WAL does not sync per commit either), \
`pg_stat_statements` loaded. Serial logins run in the same blocks as SQLite's and pam_oath's, \
taking turns; the loops right after SQLite's and pam_oath's. The \
single-host rows (serial, and the loops beside SQLite's) ask one otpd on loopback, as SQLite's \
do. Several hosts: otpd processes with their own state directories and sockets and the same \
server key on the one database, each in a network namespace of its own (and with its own host \
name) on a bridge, `198.18.60.0/24` (tests/src/bridge.rs), as the end-to-end tests' fleet \
runs them: each reaches PostgreSQL at the bridge's address over its veth pair, verified by IP \
(`verify-full`), and mails over STARTTLS (the sink's certificate from the same CA, verified by \
otpd) to a second sink of the run on the bridge's address. Their sockets are files, so the \
run drives every host's logins from the root namespace, each host by its own loops, all at \
once; CPU per login there counts every host's otpd. The multi-host table's 1-host column is \
the first of those namespaced hosts alone, so both columns cross the same bridge and the \
ratio compares like with like. A check confirms PostgreSQL saw otpd's sessions over TLS from \
each host's own bridge address. Through PgBouncer: two more otpd on loopback with `[store] \
behind_pooler = true`, each reaching the cluster through a PgBouncer of the run's own \
(`pool_mode = transaction`, as many server connections as loops, TLS on both sides, \
tests/src/pgbouncer.rs): Debian 12's 1.18, which keeps no prepared statements, so otpd sends \
every statement unnamed; and 1.24.1 (Debian 13's, built by tests/install-deps) with \
`max_prepared_statements = 200` and otpd's `pooler_keeps_prepared_statements = true`. Each \
is set against the loopback otpd's loops right before them; PgBouncer's CPU time is its one \
process's. Server cost per login is over every login of the scenario, \
warm-up included: the postmaster's and its children's CPU time (`/proc/PID/stat`), statements \
from `pg_stat_statements` for otpd's database, rows inserted, updated or deleted from \
`pg_stat_database` (read once the backends reported them), and the growth of \
`pg_total_relation_size('audit')`.\n";

/// The 1, 5 and 15 minute load averages, from `/proc/loadavg`.
fn load_average() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let parts: Vec<&str> = text.split_whitespace().take(3).collect();
    match parts.len() {
        3 => parts.join(", "),
        _ => "unknown".into(),
    }
}

/// What the LDAP table measures.
const LDAP_NOTE: &str = "- Address from LDAP: serial logins of ours against a second otpd \
whose one `[[directory.ldap]]` source is a private OpenLDAP slapd on loopback (the end-to-end \
tests' harness, tests/src/slapd.rs; plain `ldap://`, `tls = \"none\"`, bound as the \
directory's admin), holding one entry with a `mail` attribute per user. Cold: the user's first \
login, for which otpd connects, binds and searches; cached: the same user's next login, within \
`cache_ttl_seconds`; table: users added to that otpd's table with `otpctl import`, found \
before the directory is asked. In 10 blocks, each of cold, cached and table in turn. Ratios are \
to the table's.\n";

/// The CPU the throughput target leaves a login on this machine, set against the floor the run
/// measured under the same loops: what a login costs at the least, done the cheapest way.
fn budget_section(results: &Results, cores: usize) -> Option<String> {
    let floor = results.floor?;
    let gated = results.concurrent.iter().find(|c| c.loops == floor.loops)?;
    let rate = THROUGHPUT_TARGET * gated.oath.per_second;
    let budget = cpu_per_login_at(rate, cores);
    let verdict = if floor.login() > budget {
        "over the budget: done one login at a time, these steps alone cannot reach the target \
on this machine"
    } else {
        "within the budget"
    };
    Some(format!(
        "\n## The {loops}-loop target against this machine\n\n\
{THROUGHPUT_TARGET}× pam_oath's rate is {rate:.0} logins per second; on {cores} cores that \
leaves at most {budget} of CPU per login, for every process together. A login of ours makes \
one PAM transaction, two requests to otpd, one SMTP transaction and two database \
transactions. Measured in the same run under the same {loops} loops, each done the cheapest \
way and nothing else:\n\n\
- a PAM transaction with pam_permit alone: {transaction};\n\
- one bare request to otpd (connect, check otpd's uid, `Ping`, answer; both sides): \
{request}, twice;\n\
- one SMTP transaction to the sink on a kept connection (envelope pipelined in one write, a \
message of three headers and one line after the 354; client and sink, which reads the code out): {mail};\n\
- the two SQLite transactions, storing a code and using it up (one table, WAL, otpd's \
pragmas): {store}.\n\n\
Together a floor of {floor_login}, {verdict}. Run one after another in each loop, as a \
login does them, these bare steps made {bare_rate:.0} logins per second ({bare_ratio}× \
pam_oath's rate) at {bare_cpu} of CPU each: {bare_verdict}. A whole login of ours cost {ours}, pam_oath's \
{oath}. Of ours, otpd used {otpd}; it serves requests on one thread, so that alone caps it \
at about {otpd_cap:.0} logins per second.\n",
        loops = floor.loops,
        budget = us(budget),
        transaction = us(floor.transaction),
        request = us(floor.request),
        mail = us(floor.mail),
        store = us(floor.store),
        floor_login = us(floor.login()),
        bare_rate = floor.bare_logins.per_second,
        bare_ratio = ratio(floor.bare_logins.per_second, gated.oath.per_second),
        bare_cpu = us(floor.bare_logins.cpu_per_login),
        bare_verdict = bare_verdict(floor.bare_logins.per_second, rate),
        ours = us(gated.ours.cpu_per_login),
        oath = us(gated.oath.cpu_per_login),
        otpd = us(gated.ours.otpd_cpu_per_login),
        otpd_cap = 1.0
            / gated
                .ours
                .otpd_cpu_per_login
                .as_secs_f64()
                .max(f64::EPSILON),
    ))
}

/// Whether bare logins, which do a login's steps and nothing else, reached the target's rate.
fn bare_verdict(bare_per_second: f64, target_per_second: f64) -> String {
    let share = 100.0 * bare_per_second / target_per_second.max(f64::EPSILON);
    if bare_per_second < target_per_second {
        format!(
            "{share:.0} % of the target rate, so a login that did only these steps, the \
cheapest way, would miss the target on this machine"
        )
    } else {
        format!(
            "{share:.0} % of the target rate; what a login of ours does beyond these steps \
has to fit in the difference"
        )
    }
}

/// The CPU time a login may cost, over all processes, for `cores` fully busy cores to carry
/// `logins_per_second`.
fn cpu_per_login_at(logins_per_second: f64, cores: usize) -> Duration {
    Duration::from_secs_f64(cores as f64 / logins_per_second.max(f64::EPSILON))
}

/// The current time as `YYYY-MM-DD HH:MM UTC`.
fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    common::timefmt::utc(i64::try_from(secs).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_are_separated() {
        assert_eq!(thousands(100_000), "100,000");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
    }

    #[test]
    fn the_budget_is_the_cores_shared_out_over_the_logins() {
        assert_eq!(cpu_per_login_at(10_000.0, 2), Duration::from_micros(200));
        assert_eq!(cpu_per_login_at(4_000.0, 1), Duration::from_micros(250));
    }

    #[test]
    fn bare_logins_below_the_target_rate_are_said_to_miss_it() {
        let below = bare_verdict(9_000.0, 12_000.0);
        assert!(below.starts_with("75 % of the target rate"), "{below}");
        assert!(below.contains("would miss the target"), "{below}");
        let above = bare_verdict(15_000.0, 12_000.0);
        assert!(above.starts_with("125 % of the target rate"), "{above}");
        assert!(!above.contains("miss"), "{above}");
    }

    #[test]
    fn the_ldap_table_gives_each_kind_against_the_tables() {
        let summary = |p50: u64, p99: u64| Summary {
            count: 200,
            p50: Duration::from_micros(p50),
            p99: Duration::from_micros(p99),
            max: Duration::from_micros(p99),
            mean: Duration::from_micros(p50),
        };
        let ldap = LdapResults {
            cold: summary(3000, 8000),
            cached: summary(1100, 2000),
            table: summary(1000, 4000),
        };
        let table = ldap_table(Some(&ldap));
        assert!(
            table.contains(
                "| LDAP (slapd on loopback), cold | 200 | 3000 µs | 8000 µs | 3.00 | 2.00 |"
            ),
            "{table}"
        );
        assert!(
            table.contains("| LDAP, cached | 200 | 1100 µs | 2000 µs | 1.10 | 0.50 |"),
            "{table}"
        );
        assert_eq!(ldap_table(None), "");
    }

    /// A scenario's throughput of `per_second` logins, the rest the same in every test.
    fn at(per_second: f64) -> Throughput {
        Throughput {
            per_second,
            latency: Summary {
                count: 100,
                p50: Duration::from_micros(2000),
                p99: Duration::from_micros(5000),
                max: Duration::from_micros(6000),
                mean: Duration::from_micros(2100),
            },
            cpu_per_login: Duration::from_micros(900),
            otpd_cpu_per_login: Duration::from_micros(300),
        }
    }

    #[test]
    fn the_hosts_table_sets_the_namespaced_hosts_against_one_namespaced_host() {
        let cost = LoginCost::default();
        let pg = PgResults {
            serial: at(250.0),
            // The loopback host, set against SQLite: not the baseline of the hosts table.
            one_host: Some((at(1000.0), cost)),
            one_bridge_host: Some((at(800.0), cost)),
            hosts: Some((at(1200.0), cost)),
            pooled: Vec::new(),
        };
        let table = hosts_table(&pg);
        assert!(
            table.contains(
                "| logins per second, all hosts together | 800 | 1200 | 1.50 | ratio ≥ 1 | yes |"
            ),
            "{table}"
        );
        assert!(
            table.contains("each host in a network namespace"),
            "{table}"
        );
        // Every row has the table's six columns.
        assert!(
            table.contains("| latency p50 | 2000 µs | 2000 µs | 1.00 | | |\n"),
            "{table}"
        );
        let without = PgResults {
            one_bridge_host: None,
            ..pg
        };
        assert_eq!(hosts_table(&without), "");
    }

    #[test]
    fn the_pooler_table_sets_the_pooled_host_against_the_direct_one() {
        let cost = LoginCost::default();
        let pg = PgResults {
            serial: at(250.0),
            one_host: Some((at(600.0), cost)),
            one_bridge_host: None,
            hosts: None,
            pooled: vec![
                crate::suite::Pooled {
                    pooler: "PgBouncer 1.18",
                    run: at(450.0),
                    cost,
                    bouncer_cpu: Duration::from_micros(120),
                },
                crate::suite::Pooled {
                    pooler: "PgBouncer 1.24.1, prepared statements kept",
                    run: at(540.0),
                    cost,
                    bouncer_cpu: Duration::from_micros(110),
                },
            ],
        };
        let table = pooler_table(&pg);
        let (first, second) = table
            .split_once("\n\n")
            .expect("one table per pooler, a blank line between");
        assert!(
            first.contains("| direct | through PgBouncer 1.18 (transaction mode) |")
                && first.contains("| logins per second | 600 | 450 | 0.75 |")
                && first.contains("| PgBouncer CPU per login (one process) | — | 120 µs | |")
                && first.contains("| latency p50 | 2000 µs | 2000 µs | 1.00 |\n"),
            "{table}"
        );
        assert!(
            second.contains("| through PgBouncer 1.24.1, prepared statements kept (transaction")
                && second.contains("| logins per second | 600 | 540 | 0.90 |")
                && second.contains("| PgBouncer CPU per login (one process) | — | 110 µs | |"),
            "{table}"
        );
        let without = PgResults {
            pooled: Vec::new(),
            ..pg.clone()
        };
        assert_eq!(pooler_table(&without), "");
        let no_direct = PgResults {
            one_host: None,
            ..pg
        };
        assert_eq!(pooler_table(&no_direct), "");
    }

    #[test]
    fn ratios_guard_against_a_zero_baseline() {
        assert_eq!(ratio(3.0, 1.5), "2.00");
        assert_eq!(ratio(3.0, 0.0), "—");
    }
}
