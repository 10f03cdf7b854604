//! `otp-bench`: runs the benchmark and writes the results table. See `bench/README.md`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use otp_bench::error::BenchError;
use otp_bench::probe;
use otp_bench::report::{self, Machine};
use otp_bench::suite::{self, Options};

const USAGE: &str = "usage: otp-bench [--out FILE] [--command TEXT] [--quick]
                 [--serial N] [--seconds S] [--skip N] [--live-codes N]
  --out FILE       write the results as markdown to FILE (default: print only)
  --command TEXT   the command to name in the results (default: otp-bench)
  --quick          a smoke run: few logins, 1 s per concurrent scenario, 2,000 live codes,
                   30 LDAP logins each, PostgreSQL's rows written per login not counted
  --serial N       timed serial logins per side (default 2000)
  --seconds S      seconds per side of each concurrent scenario (default 5)
  --skip N         timed transactions per skip-path stack (default 3000)
  --live-codes N   live codes for otpd's memory measurement (default 100000)
  --burst N        logins at once through real Postfix and Exim (default 200; 0: none)
  --ldap N         timed logins each with the address from slapd (cold, cached) and from
                   otpd's table (default 200; 0: none)
  --no-postgres    leave out our logins with otpd on a private PostgreSQL 15 (one host and
                   three at once)
  --profile N      only our side, for a profiler: N serial logins, then N skip transactions
  --profile-loops L  with --profile: the N logins run in L concurrent loops (default 1)";

/// What the command line asked for.
struct Cli {
    options: Options,
    profile: Option<u64>,
    profile_loops: usize,
    out: Option<PathBuf>,
    command: String,
}

fn parse(args: &[String]) -> Result<Cli, String> {
    let mut cli = Cli {
        options: Options::default(),
        profile: None,
        profile_loops: 1,
        out: None,
        command: "otp-bench".into(),
    };
    let mut args = args.iter();
    while let Some(flag) = args.next() {
        let mut value = || args.next().cloned().ok_or(format!("{flag} needs a value"));
        let number = |text: String| -> Result<usize, String> {
            text.parse()
                .map_err(|_| format!("{flag}: not a number: {text}"))
        };
        match flag.as_str() {
            "--out" => cli.out = Some(PathBuf::from(value()?)),
            "--command" => cli.command = value()?,
            "--quick" => {
                cli.options = Options {
                    serial: 200,
                    seconds: 1.0,
                    skip: 300,
                    live_codes: 2000,
                    concurrency: vec![4, 16],
                    burst: otp_bench::burst::LOGINS,
                    ldap: 30,
                    postgres: cli.options.postgres,
                    postgres_rows: false,
                };
            }
            "--no-postgres" => cli.options.postgres = false,
            "--serial" => cli.options.serial = number(value()?)? as u64,
            "--profile" => cli.profile = Some(number(value()?)? as u64),
            "--profile-loops" => cli.profile_loops = number(value()?)?.max(1),
            "--skip" => cli.options.skip = number(value()?)?,
            "--burst" => cli.options.burst = number(value()?)?,
            "--ldap" => cli.options.ldap = number(value()?)? as u64,
            "--live-codes" => cli.options.live_codes = number(value()?)?,
            "--seconds" => {
                let text = value()?;
                cli.options.seconds = text
                    .parse()
                    .ok()
                    .filter(|s: &f64| *s > 0.0)
                    .ok_or(format!("--seconds: not a positive number: {text}"))?;
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(cli)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some(probe::PROBE_FLAG) {
        return match probe::child(&args[1..]) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                let _ = writeln!(std::io::stderr(), "otp-bench probe: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if args.iter().any(|a| a == "--help" || a == "-h") {
        let _ = writeln!(std::io::stdout(), "{USAGE}");
        return ExitCode::SUCCESS;
    }
    let cli = match parse(&args) {
        Ok(cli) => cli,
        Err(message) => {
            let _ = writeln!(std::io::stderr(), "otp-bench: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "otp-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: &Cli) -> Result<(), BenchError> {
    if let Some(logins) = cli.profile {
        suite::profile(logins, cli.profile_loops, &mut std::io::stderr())?;
        return Ok(());
    }
    let results = suite::run(&cli.options, &mut std::io::stderr())?;
    let page = report::markdown(&results, &Machine::detect(), &cli.command);
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{page}").map_err(BenchError::io("stdout"))?;
    if let Some(out) = &cli.out {
        std::fs::write(out, &page).map_err(BenchError::io(out))?;
    }
    Ok(())
}
