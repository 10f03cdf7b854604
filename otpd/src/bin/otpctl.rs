//! `otpctl`: parses the command line and hands over to [`otpd::ctl::run`].

use std::process::ExitCode;

use clap::Parser;
use otpd::ctl::{Cli, Io, run};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let mut out = std::io::stdout().lock();
    let mut err = std::io::stderr().lock();
    let mut io = Io {
        input: &mut input,
        out: &mut out,
        err: &mut err,
    };
    run(&cli, &mut io).into()
}
