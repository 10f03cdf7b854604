//! Logs go to stderr (the journal under systemd), one line per event, without colour codes.
//!
//! Every outside text is escaped where it is logged, with [`escape_for_log`]. The writer here is
//! the last line of defence for a call site that forgot: a finished line that still holds a
//! line break or a hidden character is escaped as a whole before it is written, so one event
//! stays one line whatever reached it (and, with its `=` escaped too, is no `key=value` event a
//! parser would take for an audit line).

use std::io::{self, Write};

use common::text::{breaks_log_line, escape_for_log};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// Installs the stderr logger; `RUST_LOG` may narrow or widen it (default `info`).
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(OneLineStderr)
        .with_ansi(false)
        .init();
}

/// Hands the formatter a [`OneLine`] writer per event.
#[derive(Debug, Clone, Copy)]
struct OneLineStderr;

impl<'a> MakeWriter<'a> for OneLineStderr {
    type Writer = OneLine<io::Stderr>;

    fn make_writer(&'a self) -> Self::Writer {
        OneLine::new(io::stderr())
    }
}

/// Collects one formatted event (the formatter writes each event through a writer of its own)
/// and writes it to `out` as exactly one line when dropped.
#[derive(Debug)]
struct OneLine<W: Write> {
    event: Vec<u8>,
    out: W,
}

impl<W: Write> OneLine<W> {
    fn new(out: W) -> OneLine<W> {
        OneLine {
            event: Vec::new(),
            out,
        }
    }
}

impl<W: Write> Write for OneLine<W> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.event.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<W: Write> Drop for OneLine<W> {
    fn drop(&mut self) {
        if self.event.is_empty() {
            return;
        }
        let line = one_line(&String::from_utf8_lossy(&self.event));
        // A log write that fails has nowhere to be reported.
        let _ = self.out.write_all(line.as_bytes());
    }
}

/// The formatted event as one line ending in a newline: unchanged when it is one already,
/// otherwise escaped as a whole.
fn one_line(event: &str) -> String {
    let body = event.strip_suffix('\n').unwrap_or(event);
    let mut line = if breaks_log_line(body) {
        escape_for_log(body)
    } else {
        body.to_string()
    };
    line.push('\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clean_event_is_written_as_it_is() {
        let event = "2026-12-06T21:00:00Z  INFO otpd::audit: event=issued user=a\n";
        assert_eq!(one_line(event), event);
    }

    #[test]
    fn an_event_that_escaped_escaping_is_still_one_line_and_no_audit_event() {
        for brk in ["\n", "\r", "\x1b[2K", "\0", "\u{2028}", "\u{202e}"] {
            let event = format!(
                "INFO otpd::server: oops x{brk}INFO otpd::audit: event=verified user=root\n"
            );
            let line = one_line(&event);
            assert_eq!(line.matches('\n').count(), 1, "{line:?}");
            assert!(line.ends_with('\n'));
            assert!(!line.contains("event="), "{line:?}");
            assert!(!breaks_log_line(line.trim_end_matches('\n')), "{line:?}");
        }
    }

    #[test]
    fn the_writer_writes_one_line_per_event_when_dropped() {
        let mut out = Vec::new();
        {
            let mut writer = OneLine::new(&mut out);
            writer.write_all(b"part one\n").unwrap();
            writer.write_all(b"part two\n").unwrap();
            assert!(
                writer.out.is_empty(),
                "nothing is written before the event is whole"
            );
        }
        assert_eq!(String::from_utf8(out).unwrap(), "part one\\x0apart two\n");
    }
}
