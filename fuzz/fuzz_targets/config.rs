//! The config parser: `Config::parse(text, path)` over any text.
//!
//! The file is the admin's, but `otpctl` and `otpd --check-config` read files an admin may have
//! pasted from anywhere, and a reload must never take the daemon down. Properties:
//! - it never panics (a panic in a SIGHUP reload would end otpd);
//! - every error names a place that exists: a line of the file and a column on that line
//!   (counted in characters), shown as `FILE:LINE:COLUMN: message`;
//! - an error is one line with no control characters: it goes to the journal as one record
//!   and to a terminal, where a CR, an ESC or a newline could forge or hide text.
#![no_main]

use std::path::Path;

use common::config::Config;
use libfuzzer_sys::fuzz_target;

const PATH: &str = "/etc/otpd/otpd.toml";

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Err(error) = Config::parse(&text, Path::new(PATH)) else {
        return;
    };
    let at = error
        .location()
        .expect("an error about the text has a position");
    // The lines as an editor counts them: a file ending in a newline has an empty last line.
    let lines: Vec<&str> = text.split('\n').collect();
    assert!(
        (1..=lines.len()).contains(&at.line),
        "line {} of a file of {} lines",
        at.line,
        lines.len()
    );
    let line_chars = lines[at.line - 1].chars().count();
    assert!(
        (1..=line_chars + 1).contains(&at.column),
        "column {} on line {} of {line_chars} characters",
        at.column,
        at.line
    );
    let shown = error.to_string();
    assert_eq!(
        shown,
        format!("{PATH}:{}:{}: {}", at.line, at.column, error.message())
    );
    assert!(
        !shown.chars().any(char::is_control),
        "a control character in the message: {shown:?}"
    );
});
