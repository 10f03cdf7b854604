//! `otpctl`, the library side: the binary parses the command line into [`Cli`] and calls
//! [`run`]; everything else (talking to otpd, tables and JSON, the local checks of
//! `check-config` and `doctor`, the generated docs) lives here so it is tested without a
//! process.
//!
//! Output goes through [`Io`] rather than the process's stdout, so tests read what a command
//! printed and feed it a code on "standard input".

pub mod check_config;
pub mod cli;
pub mod commands;
pub mod connect;
pub mod docs;
pub mod doctor;
pub mod exit;
pub mod import;
pub mod output;
pub mod paging;
pub mod since;
pub mod store_migrate;

use std::io::{BufRead, Write};

pub use cli::Cli;
pub use exit::Exit;

use cli::Command;

/// Where a command reads its input and writes its output.
pub struct Io<'a> {
    /// Where a mailed code is read from (the terminal or a pipe).
    pub input: &'a mut dyn BufRead,
    /// Results: tables, JSON.
    pub out: &'a mut dyn Write,
    /// Prompts, errors and advice.
    pub err: &'a mut dyn Write,
}

impl std::fmt::Debug for Io<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Io").finish_non_exhaustive()
    }
}

impl Io<'_> {
    /// Writes a line of results. A closed stdout (e.g. `| head`) is not worth failing over.
    pub fn out(&mut self, text: &str) {
        let _ = writeln!(self.out, "{text}");
    }

    /// Writes a line to stderr.
    pub fn err(&mut self, text: &str) {
        let _ = writeln!(self.err, "{text}");
    }
}

/// Runs one otpctl command.
pub fn run(cli: &Cli, io: &mut Io<'_>) -> Exit {
    match &cli.command {
        Command::CheckConfig { file } => {
            check_config::run(file.as_deref().unwrap_or(&cli.config), cli.json, io)
        }
        Command::GenerateDocs { dir } => match docs::generate(dir) {
            Ok(()) => Exit::Ok,
            Err(e) => {
                io.err(&format!(
                    "otpctl: writing the docs into {}: {e}",
                    dir.display()
                ));
                Exit::Failed
            }
        },
        Command::Doctor(args) => doctor::run(cli, args, io),
        Command::Store(cli::StoreCommand::Migrate {
            to: cli::MigrateTarget::Postgresql,
            merge,
        }) => store_migrate::run(&cli.config, cli.socket.as_deref(), *merge, cli.json, io),
        other => {
            let conn = match connect::Conn::new(cli) {
                Ok(conn) => conn,
                Err(why) => {
                    io.err(&format!("otpctl: {why}"));
                    return Exit::Failed;
                }
            };
            commands::run(&conn, other, cli.json, io)
        }
    }
}
