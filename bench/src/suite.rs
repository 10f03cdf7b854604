//! The whole benchmark in order: bursts through real MTAs, logins with the address from LDAP or
//! otpd's table, memory probes, skip path, serial and concurrent logins (ours then pam_oath's
//! each time), otpd's memory after the burst and with many live codes.

use std::io::Write;
use std::ops::Range;
use std::time::{Duration, Instant};

use crate::bulk;
use crate::burst::{self, Burst, Mta};
use crate::cpu;
use crate::error::BenchError;
use crate::floor::{self, Floor};
use crate::hotp;
use crate::ldap::{self, LdapResults};
use crate::loops::{Run, Until};
use crate::memory::{self, Process};
use crate::pg_cost::LoginCost;
use crate::pg_store::{self, On, PgHosts};
use crate::probe::{self, Footprint, Probe};
use crate::scenarios;
use crate::setup::{self, Setup};
use crate::stats::Summary;

/// How much of each scenario to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Timed serial logins of each kind.
    pub serial: u64,
    /// How long each concurrent scenario runs, per side.
    pub seconds: f64,
    /// Timed transactions of each skip-path stack.
    pub skip: usize,
    /// Live codes otpd holds for the memory measurement.
    pub live_codes: usize,
    /// The concurrent loop counts.
    pub concurrency: Vec<usize>,
    /// Logins at once in each burst through a real MTA (0: no bursts).
    pub burst: usize,
    /// Timed logins of each kind whose address comes from slapd or otpd's table (0: none).
    pub ldap: u64,
    /// Whether our logins also run with otpd on the PostgreSQL store.
    pub postgres: bool,
    /// Whether its timed scenarios wait about a second each to count the rows written.
    pub postgres_rows: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            serial: 2000,
            seconds: 5.0,
            skip: 3000,
            live_codes: 100_000,
            concurrency: vec![4, 16],
            burst: crate::burst::LOGINS,
            ldap: 200,
            postgres: true,
            postgres_rows: true,
        }
    }
}

/// The loops of the throughput target, and of the floor measured against it.
pub const GATED_LOOPS: usize = 4;
/// Untimed logins per loop before each scenario.
const WARMUP: u64 = 20;
/// Threads the bulk load issues from, each with one connection open at a time.
pub const BULK_CONNECTIONS: usize = 8;

/// Throughput, latency and CPU cost of one side of a scenario.
#[derive(Debug, Clone, Copy)]
pub struct Throughput {
    /// Logins per second.
    pub per_second: f64,
    /// Latencies.
    pub latency: Summary,
    /// CPU time per login, this process and otpd together.
    pub cpu_per_login: Duration,
    /// The part of it otpd used.
    pub otpd_cpu_per_login: Duration,
}

/// One scenario (serial is one loop), both sides.
#[derive(Debug, Clone, Copy)]
pub struct Concurrent {
    /// Loops.
    pub loops: usize,
    /// Ours.
    pub ours: Throughput,
    /// pam_oath's.
    pub oath: Throughput,
}

/// otpd's resident size at each point, KiB.
#[derive(Debug, Clone, Copy)]
pub struct OtpdMemory {
    /// Started, answered a ping, nothing else.
    pub idle: u64,
    /// After the login scenarios (the last one the largest burst).
    pub after_burst: u64,
    /// Holding [`Results::live_codes`] live codes.
    pub with_live_codes: u64,
    /// The peak over the whole run (VmHWM).
    pub peak: u64,
}

/// Our logins with otpd on the PostgreSQL store, beside the SQLite ones of the same run.
#[derive(Debug, Clone)]
pub struct PgResults {
    /// Serial logins, in the same blocks as the SQLite and pam_oath ones.
    pub serial: Throughput,
    /// The loopback otpd, [`GATED_LOOPS`] loops, and what a login cost the server there: set
    /// against SQLite's loops.
    pub one_host: Option<(Throughput, LoginCost)>,
    /// The first otpd in a namespace on the bridge alone, [`GATED_LOOPS`] loops, and the
    /// server's cost per login: the baseline of the multi-host scenario, on the same network.
    pub one_bridge_host: Option<(Throughput, LoginCost)>,
    /// [`pg_store::HOSTS`] otpd in namespaces at once on the one database, [`GATED_LOOPS`]
    /// loops each, and the server's cost per login there.
    pub hosts: Option<(Throughput, LoginCost)>,
    /// The otpd on loopback through each PgBouncer in transaction mode, [`GATED_LOOPS`]
    /// loops: each set against [`PgResults::one_host`].
    pub pooled: Vec<Pooled>,
}

/// The scenario through PgBouncer.
#[derive(Debug, Clone, Copy)]
pub struct Pooled {
    /// Which PgBouncer, named for the report.
    pub pooler: &'static str,
    /// The logins.
    pub run: Throughput,
    /// What a login cost the server.
    pub cost: LoginCost,
    /// What a login cost PgBouncer (one process, CPU time).
    pub bouncer_cpu: Duration,
}

/// Everything measured.
#[derive(Debug, Clone)]
pub struct Results {
    /// Serial logins.
    pub serial: Concurrent,
    /// The concurrent scenarios.
    pub concurrent: Vec<Concurrent>,
    /// The floor of a login under the gated loops, when that scenario ran.
    pub floor: Option<Floor>,
    /// Skip path: our module then pam_permit.
    pub skip_with_module: Summary,
    /// Skip path baseline: pam_permit alone.
    pub skip_permit_alone: Summary,
    /// otpd's memory.
    pub otpd: OtpdMemory,
    /// Live codes issued for the memory measurement.
    pub live_codes: usize,
    /// How long issuing them took.
    pub bulk_time: Duration,
    /// Probe: pam_permit alone, no module preloaded.
    pub probe_baseline: Footprint,
    /// Probe: our module and one whole emailed-code login.
    pub probe_ours: Footprint,
    /// Probe: pam_oath and one HOTP login.
    pub probe_oath: Footprint,
    /// The bursts through Postfix and Exim.
    pub bursts: Vec<Burst>,
    /// Logins with the address from slapd, cold and cached, and from otpd's table.
    pub ldap: Option<LdapResults>,
    /// Our logins on the PostgreSQL store, when they ran.
    pub postgres: Option<PgResults>,
    /// The consistency checks that passed.
    pub checks: Vec<String>,
    /// How long the whole run took.
    pub elapsed: Duration,
}

/// Runs every scenario; progress goes to `log`.
pub fn run(options: &Options, log: &mut dyn Write) -> Result<Results, BenchError> {
    let started = Instant::now();
    let mut say = |text: String| {
        let _ = writeln!(log, "[{:>6.1}s] {text}", started.elapsed().as_secs_f64());
    };
    let setup = Setup::start()?;
    let otpd_pid = Process::Pid(u32::try_from(setup.otpd.pid()).unwrap_or_default());
    std::thread::sleep(Duration::from_millis(300));
    let idle = memory::rss_kib(otpd_pid)?;
    say(format!("otpd idle: {idle} KiB"));

    // First, before pam_oath is loaded into this process: its library leaves the umask at
    // 0177, and the MTAs' private directories would not be traversable.
    let mut bursts = Vec::new();
    let mut checks = Vec::new();
    if options.burst > 0 {
        for mta in [Mta::Postfix, Mta::Exim] {
            say(format!(
                "burst: {} logins at once through {}",
                options.burst,
                mta.name()
            ));
            let burst = burst::run(mta, options.burst, &setup.module)?;
            checks.push(format!(
                "burst through {}: {} logins, no address mailed twice",
                mta.name(),
                burst.logins
            ));
            bursts.push(burst);
        }
    }

    // Also before pam_oath is loaded, for its umask: slapd and a second otpd write files.
    let mut ldap = None;
    if options.ldap > 0 {
        say(format!(
            "LDAP: {} logins each, cold, cached and from otpd's table",
            options.ldap
        ));
        let (results, check) = ldap::run(&setup, options.ldap)?;
        checks.push(check);
        ldap = Some(results);
    }

    // Also before pam_oath is loaded: initdb and otpd write files.
    let pg = match options.postgres {
        true => {
            say(format!(
                "PostgreSQL: a private cluster with TLS, one otpd on loopback and {} in network \
                 namespaces on 198.18.{}.0/24",
                pg_store::HOSTS,
                pg_store::SUBNET
            ));
            Some(PgHosts::start(
                &setup,
                pg_store::HOSTS,
                options.postgres_rows,
            )?)
        }
        false => None,
    };

    say("module memory probes".into());
    let (probe_baseline, probe_ours, probe_oath) = probes(&setup)?;

    say(format!(
        "skip path: {} transactions per stack",
        options.skip
    ));
    let skip = scenarios::run_skip(&setup, options.skip)?;

    say(format!("serial: {} logins each", options.serial));
    let (serial_ours, serial_oath, serial_pg) =
        serial_in_blocks(&setup, pg.as_ref(), options.serial, &mut checks)?;
    let mut postgres = match serial_pg {
        Some(run) => Some(PgResults {
            serial: throughput(run)?,
            one_host: None,
            one_bridge_host: None,
            hosts: None,
            pooled: Vec::new(),
        }),
        None => None,
    };
    let serial = Concurrent {
        loops: 1,
        ours: throughput(serial_ours)?,
        oath: throughput(serial_oath)?,
    };

    let time = Until::Time(Duration::from_secs_f64(options.seconds));
    let mut concurrent = Vec::new();
    for &loops in &options.concurrency {
        say(format!("{loops} loops: {}s each", options.seconds));
        let ours = scenarios::run_ours(&setup, &format!("c{loops}"), loops, WARMUP, time)?;
        checks.push(ours.check.clone());
        let oath = scenarios::run_oath(&setup, loops, WARMUP, time)?;
        concurrent.push(Concurrent {
            loops,
            ours: throughput(ours.run)?,
            oath: throughput(oath)?,
        });
        if let (Some(pg), Some(results), GATED_LOOPS) = (&pg, &mut postgres, loops) {
            say(format!(
                "PostgreSQL, 1 host on loopback, {loops} loops: {}s",
                options.seconds
            ));
            let one = pg.run(&setup.mailbox, "pg1c", On::Loopback, loops, WARMUP, time)?;
            checks.push(one.check);
            say(format!(
                "PostgreSQL: the statements called most, {:.1} per login in all:\n{}",
                one.cost.statements,
                crate::pg_cost::most_called(&pg.pg, pg_store::DB, 25)
            ));
            results.one_host = Some((throughput(one.run)?, one.cost));
            for (n, pooler) in pg.poolers.iter().enumerate() {
                say(format!(
                    "PostgreSQL through {} (transaction mode), 1 host on loopback, {loops} \
                     loops: {}s",
                    pooler.release.name(),
                    options.seconds
                ));
                results
                    .pooled
                    .push(run_pooled(&setup, pg, n, loops, time, &mut checks)?);
            }
            say(format!(
                "PostgreSQL, 1 host in a namespace, {loops} loops: {}s",
                options.seconds
            ));
            let one = pg.run(&setup.mailbox, "pgn1c", On::Bridge(1), loops, WARMUP, time)?;
            checks.push(one.check);
            results.one_bridge_host = Some((throughput(one.run)?, one.cost));
            let hosts = pg_store::HOSTS;
            say(format!(
                "PostgreSQL, {hosts} hosts in namespaces at once, {loops} loops each: {}s",
                options.seconds
            ));
            let all = pg.run(
                &setup.mailbox,
                "pgn3c",
                On::Bridge(hosts),
                loops,
                WARMUP,
                time,
            )?;
            checks.push(all.check);
            checks.push(database_clients_check(pg)?);
            results.hosts = Some((throughput(all.run)?, all.cost));
        }
    }
    let after_burst = memory::rss_kib(otpd_pid)?;

    let floor = match options.concurrency.contains(&GATED_LOOPS) {
        true => {
            say(format!(
                "floor: {GATED_LOOPS} loops of pam_permit, bare requests, bare mails, bare writes"
            ));
            Some(floor::measure(&setup, GATED_LOOPS, WARMUP, time)?)
        }
        false => None,
    };

    say(format!("issuing {} live codes", options.live_codes));
    setup.mailbox.set_discard(true);
    let mails_before = setup.mailbox.delivered();
    let bulk_time =
        bulk::issue_live_codes(&setup.otpd.socket, options.live_codes, BULK_CONNECTIONS)?;
    let mailed = setup.mailbox.delivered() - mails_before;
    if mailed != options.live_codes as u64 || setup.mailbox.without_code() != 0 {
        return Err(BenchError::Check(format!(
            "{} codes issued but {mailed} mails arrived ({} without a code)",
            options.live_codes,
            setup.mailbox.without_code()
        )));
    }
    checks.push(format!(
        "bulk: {} begins answered with a prompt, {mailed} mails with a code",
        options.live_codes
    ));
    let (with_live_codes, peak) = memory::rss_and_peak_kib(otpd_pid)?;
    say(format!("otpd with live codes: {with_live_codes} KiB"));

    let summary = |mut samples: Vec<Duration>| {
        Summary::of(&mut samples).ok_or_else(|| BenchError::Check("no logins were timed".into()))
    };
    Ok(Results {
        serial,
        concurrent,
        floor,
        skip_with_module: summary(skip.with_module)?,
        skip_permit_alone: summary(skip.permit_alone)?,
        otpd: OtpdMemory {
            idle,
            after_burst,
            with_live_codes,
            peak,
        },
        live_codes: options.live_codes,
        bulk_time,
        probe_baseline,
        probe_ours,
        probe_oath,
        bursts,
        ldap,
        postgres,
        checks,
        elapsed: started.elapsed(),
    })
}

fn throughput(run: Run) -> Result<Throughput, BenchError> {
    let per_second = run.per_second();
    let cpu_per_login = run.cpu_per_login();
    let otpd_cpu_per_login = run.cpu_elsewhere_per_login();
    let mut latencies = run.latencies;
    let latency = Summary::of(&mut latencies)
        .ok_or_else(|| BenchError::Check("no logins were timed".into()))?;
    Ok(Throughput {
        per_second,
        latency,
        cpu_per_login,
        otpd_cpu_per_login,
    })
}

/// The three module probes: baseline, ours (a whole emailed-code login), pam_oath.
fn probes(setup: &Setup) -> Result<(Footprint, Footprint, Footprint), BenchError> {
    let probe = |module: Option<&std::path::Path>, service: &str, user: &str| Probe {
        module: module.map(std::path::Path::to_path_buf),
        confdir: setup.confdir().to_path_buf(),
        service: service.into(),
        user: user.into(),
    };
    let baseline = probe::measure(&probe(None, setup::PERMIT_SERVICE, "probe"), || None)?;
    let mailbox = &setup.mailbox;
    let ours = probe::measure(
        &probe(Some(&setup.module), setup::OUR_SERVICE, "probe"),
        || {
            mailbox
                .take("probe@example.test", Duration::from_secs(10))
                .flatten()
        },
    )?;
    let key = setup::oath_key(setup::MAX_LOOPS);
    let oath = probe::measure(
        &probe(
            Some(&setup.pam_oath),
            setup::OATH_PROBE_SERVICE,
            setup::OATH_PROBE_USER,
        ),
        || Some(hotp::hotp(&key, 0, setup::DIGITS)),
    )?;
    Ok((baseline, ours, oath))
}

/// Only our side, for profiling otpd (under perf, or callgrind through a wrapper): `logins`
/// whole logins in `loops` concurrent loops, then `logins` skip-path transactions, each phase
/// announced on `log` with otpd's pid so a profiler can attach. Returns the two phases' times.
pub fn profile(
    logins: u64,
    loops: usize,
    log: &mut dyn Write,
) -> Result<(Duration, Duration), BenchError> {
    let mut setup = Setup::start()?;
    let _ = writeln!(log, "otpd pid {}", setup.otpd.pid());
    let started = Instant::now();
    let per_loop = logins.div_ceil(loops as u64);
    scenarios::run_ours(&setup, "p", loops, 0, Until::Count(per_loop))?;
    let serial = started.elapsed();
    let _ = writeln!(log, "{logins} logins in {loops} loop(s) in {serial:?}");
    let started = Instant::now();
    for _ in 0..logins {
        crate::login::login(
            setup.confdir(),
            setup::SKIP_SERVICE,
            "skipper",
            "192.0.2.1",
            |_| None,
        )?;
    }
    let skip = started.elapsed();
    let _ = writeln!(log, "{logins} skip transactions in {skip:?}");
    let pings = ping_times(&setup, logins)?;
    let _ = writeln!(
        log,
        "{logins} bare Ping requests to otpd (the module's client, no libpam): p50 {:.0} µs",
        crate::stats::micros(pings.p50)
    );
    // A clean stop, so a profiler wrapped around otpd writes its results.
    setup.otpd.stop();
    Ok((serial, skip))
}

/// Times `count` bare `Ping` requests through the client the module uses: what one request and
/// answer with otpd costs on this machine, with no PAM and no policy around it.
fn ping_times(setup: &Setup, count: u64) -> Result<Summary, BenchError> {
    let options = floor::client_options(setup);
    let mut times = Vec::new();
    for _ in 0..count {
        let started = Instant::now();
        floor::ping(&options)?;
        times.push(started.elapsed());
    }
    Summary::of(&mut times).ok_or_else(|| BenchError::Check("no ping was timed".into()))
}

/// Blocks the serial logins are split into, ours and pam_oath's taking turns, so a drift in
/// the machine's speed during the run (this VM's varies by a fifth from minute to minute)
/// weighs on both sides alike instead of on whichever ran second.
const SERIAL_BLOCKS: u64 = 10;

/// `0..count` split into [`SERIAL_BLOCKS`] consecutive ranges (the last may be shorter), for
/// serial scenarios whose sides take turns block by block.
pub fn blocks(count: u64) -> impl Iterator<Item = Range<u64>> {
    let per_block = count.div_ceil(SERIAL_BLOCKS).max(1);
    let step = usize::try_from(per_block).unwrap_or(usize::MAX);
    (0..count)
        .step_by(step)
        .map(move |start| start..count.min(start + per_block))
}

/// Our logins in `loops` loops on the otpd behind the `n`th PgBouncer, with PgBouncer's CPU
/// time per login.
fn run_pooled(
    setup: &Setup,
    pg: &PgHosts,
    n: usize,
    loops: usize,
    until: Until,
    checks: &mut Vec<String>,
) -> Result<Pooled, BenchError> {
    let pooler = pg
        .poolers
        .get(n)
        .ok_or_else(|| BenchError::Setup(format!("no pooler {n}")))?;
    let bouncer = Process::Pid(pooler.bouncer.pid());
    let before = cpu::cpu_time(bouncer)?;
    let tag = format!("pgp{n}c");
    let pooled = pg.run(&setup.mailbox, &tag, On::Pooled(n), loops, WARMUP, until)?;
    let spent = cpu::cpu_time(bouncer)?.saturating_sub(before);
    checks.push(pooled.check);
    let logins = u32::try_from(pooled.cost.logins.max(1)).unwrap_or(u32::MAX);
    Ok(Pooled {
        pooler: pooler.release.name(),
        run: throughput(pooled.run)?,
        cost: pooled.cost,
        bouncer_cpu: spent / logins,
    })
}

/// `count` serial logins of each side in alternating blocks, each block checked: ours on
/// SQLite, ours on PostgreSQL (when `pg` is given, on its first host), pam_oath's.
fn serial_in_blocks(
    setup: &Setup,
    pg: Option<&PgHosts>,
    count: u64,
    checks: &mut Vec<String>,
) -> Result<(Run, Run, Option<Run>), BenchError> {
    let (mut ours, mut oath) = (Run::default(), Run::default());
    let mut on_pg = pg.map(|_| Run::default());
    let mut checked_pg = 0;
    let mut block = 0;
    let mut checked_logins = 0;
    for range in blocks(count) {
        let size = range.end - range.start;
        // A tag per block: each block logs in as fresh users, far from the send caps.
        let checked =
            scenarios::run_ours(setup, &format!("s{block}-"), 1, WARMUP, Until::Count(size))?;
        checked_logins += checked.run.logins() + checked.run.warmups;
        if let (Some(pg), Some(on_pg)) = (pg, on_pg.as_mut()) {
            let block_tag = format!("pgs{block}-");
            let run = pg.run(
                &setup.mailbox,
                &block_tag,
                On::Loopback,
                1,
                WARMUP,
                Until::Count(size),
            )?;
            checked_pg += run.run.logins() + run.run.warmups;
            on_pg.absorb(run.run);
        }
        let theirs = scenarios::run_oath(setup, 1, WARMUP, Until::Count(size))?;
        ours.absorb(checked.run);
        oath.absorb(theirs);
        block += 1;
    }
    checks.push(format!(
        "serial, {block} blocks: {checked_logins} logins, {checked_logins} codes issued, mailed \
         and verified, each exactly once"
    ));
    if on_pg.is_some() {
        checks.push(format!(
            "serial on PostgreSQL, {block} blocks: {checked_pg} logins, {checked_pg} codes \
             issued, mailed and verified, each exactly once"
        ));
    }
    // No block at all (`--serial 0`) leaves every run empty, which `throughput` refuses.
    Ok((ours, oath, on_pg))
}

/// That PostgreSQL saw otpd's sessions over TLS from loopback (the single host) and from each
/// namespaced host's own address on the bridge, and from nowhere else: the hosts reached the
/// database over the network, not loopback.
fn database_clients_check(pg: &PgHosts) -> Result<String, BenchError> {
    let bridge: Vec<String> = pg
        .bridge_addresses()
        .iter()
        .map(ToString::to_string)
        .collect();
    let seen = e2e_tests::pg_hosts::otpd_clients_over_tls(&pg.pg);
    let unexpected = seen
        .iter()
        .any(|addr| addr != "127.0.0.1" && !bridge.contains(addr));
    let missing = bridge.iter().any(|addr| !seen.contains(addr));
    if unexpected || missing {
        return Err(BenchError::Check(format!(
            "otpd's sessions over TLS came from {seen:?}: not 127.0.0.1 and each of {bridge:?}"
        )));
    }
    Ok(format!(
        "otpd's sessions over TLS, as PostgreSQL saw them, came from {}: the namespaced hosts over \
         the bridge",
        seen.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_cover_the_count_in_order_without_overlap() {
        let all: Vec<Range<u64>> = blocks(25).collect();
        assert_eq!(all.len(), 9);
        assert_eq!((all[0].clone(), all[8].clone()), (0..3, 24..25));
        assert!(all.windows(2).all(|w| w[0].end == w[1].start));
        assert_eq!(blocks(2000).count(), 10);
        assert_eq!(blocks(3).collect::<Vec<_>>(), vec![0..1, 1..2, 2..3]);
        assert_eq!(blocks(0).count(), 0);
    }
}
