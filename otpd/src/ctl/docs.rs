//! The man pages and shell completions, generated from the [`Cli`] definition so they cannot
//! drift from the real command line. The generated files are committed under
//! `packaging/generated/`; a test fails when they are out of date.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use clap::CommandFactory;
use clap_complete::Shell;

use super::Cli;

/// Where the committed copies live, relative to the workspace root.
pub const GENERATED_DIR: &str = "packaging/generated";

/// Every generated file: its name and contents.
pub fn files() -> io::Result<Vec<(PathBuf, Vec<u8>)>> {
    let mut out = Vec::new();
    let command = Cli::command();
    out.push((PathBuf::from("otpctl.1"), man(command.clone(), "otpctl")?));
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("otpctl-{}", sub.get_name());
        let page = sub
            .clone()
            .display_name(name.clone())
            .bin_name(format!("otpctl {}", sub.get_name()));
        out.push((PathBuf::from(format!("{name}.1")), man(page, &name)?));
        for nested in sub.get_subcommands().filter(|s| !s.is_hide_set()) {
            let nested_name = format!("{name}-{}", nested.get_name());
            let page = nested
                .clone()
                .display_name(nested_name.clone())
                .bin_name(format!("otpctl {} {}", sub.get_name(), nested.get_name()));
            out.push((
                PathBuf::from(format!("{nested_name}.1")),
                man(page, &nested_name)?,
            ));
        }
    }
    for (shell, file) in [
        (Shell::Bash, "otpctl.bash"),
        (Shell::Zsh, "_otpctl"),
        (Shell::Fish, "otpctl.fish"),
    ] {
        let mut buf = Vec::new();
        clap_complete::generate(shell, &mut Cli::command(), "otpctl", &mut buf);
        out.push((PathBuf::from(file), buf));
    }
    Ok(out)
}

fn man(command: clap::Command, title: &str) -> io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    clap_mangen::Man::new(command)
        .title(title.to_string())
        .section("1")
        .source(concat!("pam_otp_email ", env!("CARGO_PKG_VERSION")))
        .manual("User Commands")
        .render(&mut buf)?;
    Ok(buf)
}

/// Writes every generated file into `dir`.
pub fn generate(dir: &Path) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    for (name, contents) in files()? {
        fs::write(dir.join(name), contents)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_committed_man_pages_and_completions_are_up_to_date() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(GENERATED_DIR);
        for (name, contents) in files().unwrap() {
            let committed = fs::read(dir.join(&name)).unwrap_or_default();
            assert!(
                committed == contents,
                "{} is out of date: run `cargo run -p otpd --bin otpctl -- generate-docs {GENERATED_DIR}`",
                name.display()
            );
        }
    }

    /// Regression: NAME read `otpctl \- The pam_otp_email daemon: issues, mails and verifies
    /// one\-time codes; and otpctl.`, the otpd crate's description, which `about` without a
    /// value takes; the page's NAME is otpctl's own summary, the doc comment's first line.
    #[test]
    fn the_man_pages_name_line_says_what_otpctl_does() {
        let page = String::from_utf8(man(Cli::command(), "otpctl").unwrap()).unwrap();
        let name = page
            .lines()
            .skip_while(|line| *line != ".SH NAME")
            .nth(1)
            .unwrap();
        assert_eq!(name, "otpctl \\- Manage emailed login codes through otpd");
    }

    #[test]
    fn the_man_page_documents_the_exit_statuses() {
        let page = String::from_utf8(man(Cli::command(), "otpctl").unwrap()).unwrap();
        assert!(page.contains("otpd could not be reached"), "{page}");
    }
}
