//! Resident memory of a process, as the kernel reports it in `/proc/<pid>/status`.

use crate::error::BenchError;

/// Which process to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Process {
    /// This process.
    Current,
    /// Another one, by pid.
    Pid(u32),
}

/// The resident set size now (`VmRSS`), KiB.
pub fn rss_kib(process: Process) -> Result<u64, BenchError> {
    status_field(process, "VmRSS")
}

/// The resident set size now and the largest so far (`VmRSS`, `VmHWM`), KiB.
///
/// Both come from one read of the status file: the kernel reports `VmHWM` as
/// at least the `VmRSS` it reports beside it, but two reads can see the
/// (approximate, per-CPU) resident count move between them, and a peak read
/// after a shrink can then be below the size read before it.
pub fn rss_and_peak_kib(process: Process) -> Result<(u64, u64), BenchError> {
    let (path, text) = read_status(process)?;
    Ok((
        field_of(&path, &text, "VmRSS")?,
        field_of(&path, &text, "VmHWM")?,
    ))
}

fn status_field(process: Process, field: &str) -> Result<u64, BenchError> {
    let (path, text) = read_status(process)?;
    field_of(&path, &text, field)
}

fn field_of(path: &str, text: &str, field: &str) -> Result<u64, BenchError> {
    parse_field(text, field)
        .ok_or_else(|| BenchError::Setup(format!("{path} has no readable {field} line")))
}

fn read_status(process: Process) -> Result<(String, String), BenchError> {
    let path = match process {
        Process::Current => "/proc/self/status".to_string(),
        Process::Pid(pid) => format!("/proc/{pid}/status"),
    };
    let text = std::fs::read_to_string(&path).map_err(BenchError::io(&path))?;
    Ok((path, text))
}

/// The value of a `Name:   1234 kB` line.
fn parse_field(status: &str, field: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(field)?.strip_prefix(':')?;
        rest.trim().strip_suffix("kB")?.trim().parse().ok()
    })
}

/// KiB as MiB, for tables.
pub fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_named_line_is_read_in_kib() {
        let status = "Name:\totpd\nVmHWM:\t   20480 kB\nVmRSS:\t    9000 kB\nVmRSSx:\t1 kB\n";
        assert_eq!(parse_field(status, "VmRSS"), Some(9000));
        assert_eq!(parse_field(status, "VmHWM"), Some(20480));
        assert_eq!(parse_field(status, "VmSwap"), None);
    }

    #[test]
    fn this_process_has_a_resident_size() {
        assert!(rss_kib(Process::Current).unwrap() > 0);
        let (rss, peak) = rss_and_peak_kib(Process::Current).unwrap();
        assert!(rss > 0);
        assert!(peak >= rss, "peak {peak} KiB below resident {rss} KiB");
    }
}
