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

/// The largest resident set size so far (`VmHWM`), KiB.
pub fn peak_rss_kib(process: Process) -> Result<u64, BenchError> {
    status_field(process, "VmHWM")
}

fn status_field(process: Process, field: &str) -> Result<u64, BenchError> {
    let path = match process {
        Process::Current => "/proc/self/status".to_string(),
        Process::Pid(pid) => format!("/proc/{pid}/status"),
    };
    let text = std::fs::read_to_string(&path).map_err(BenchError::io(&path))?;
    parse_field(&text, field)
        .ok_or_else(|| BenchError::Setup(format!("{path} has no readable {field} line")))
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
        let rss = rss_kib(Process::Current).unwrap();
        assert!(rss > 0);
        assert!(peak_rss_kib(Process::Current).unwrap() >= rss);
    }
}
