//! `otpd`: the daemon. Parses arguments and hands over to [`otpd::lifecycle::run`].

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use common::config::Config;

/// Issues, mails and verifies one-time login codes for pam_otp_email.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// The config file.
    #[arg(long, default_value = "/etc/otpd/otpd.toml")]
    config: PathBuf,
    /// Check the config file and exit: 0 and `OK: FILE` when valid, 1 with FILE:LINE:COLUMN:
    /// message otherwise.
    #[arg(long)]
    check_config: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.check_config {
        return match Config::load_with_files(&args.config) {
            Ok(config) => {
                for warning in otpd::ctl::check_config::warnings(&config) {
                    eprintln!("{}: warning: {warning}", args.config.display());
                }
                // Said on success too: silence after a check reads like "nothing was checked".
                // A closed stdout does not make the file invalid: the exit status still says so.
                let _ = writeln!(std::io::stdout(), "OK: {}", args.config.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
        };
    }
    otpd::logging::init();
    // One thread: a request is a few tens of microseconds of work, and handing it between
    // worker threads cost more than the work (futex wake-ups; bench/README.md, "One thread").
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("otpd: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(otpd::lifecycle::run(args.config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{}", common::text::escape_for_log(&e.to_string()));
            eprintln!("otpd: {e}");
            ExitCode::FAILURE
        }
    }
}
