//! CPU time a process has used (all its threads, user and system), from `/proc/<pid>/stat`, so
//! a scenario can say what one login costs in CPU across every process involved, whatever else
//! the machine was doing meanwhile.

use std::time::Duration;

use crate::error::BenchError;
use crate::memory::Process;

/// User plus system CPU time of `process` so far.
pub fn cpu_time(process: Process) -> Result<Duration, BenchError> {
    let path = match process {
        Process::Current => "/proc/self/stat".to_string(),
        Process::Pid(pid) => format!("/proc/{pid}/stat"),
    };
    let text = std::fs::read_to_string(&path).map_err(BenchError::io(&path))?;
    let ticks = parse_ticks(&text)
        .ok_or_else(|| BenchError::Setup(format!("{path}: no utime/stime fields")))?;
    // SAFETY: sysconf has no preconditions; it only reads a system constant.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let per_second = u64::try_from(per_second)
        .ok()
        .filter(|t| *t > 0)
        .unwrap_or(100);
    Ok(Duration::from_nanos(
        ticks.saturating_mul(1_000_000_000) / per_second,
    ))
}

/// utime + stime (fields 14 and 15) in clock ticks. The command name (field 2) may hold spaces
/// and parentheses, so fields are counted from the last `)`.
fn parse_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    // After the name: state is field 3, so utime (14) is the 12th field of `rest`.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utime_and_stime_are_read_after_the_command_name() {
        let stat = "4242 (otp d) x) S 1 4242 4242 0 -1 4194560 500 0 0 0 37 5 0 0 20 0 3 0";
        assert_eq!(parse_ticks(stat), Some(42));
    }

    #[test]
    fn spinning_shows_up_as_cpu_time() {
        let before = cpu_time(Process::Current).unwrap();
        let start = std::time::Instant::now();
        let mut x: u64 = 0;
        while start.elapsed() < Duration::from_millis(60) {
            x = x.wrapping_add(std::hint::black_box(1));
        }
        std::hint::black_box(x);
        assert!(cpu_time(Process::Current).unwrap() > before);
    }
}
