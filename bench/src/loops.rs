//! Runs a login in one or more concurrent loops and times every one.

use std::sync::Barrier;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::cpu;
use crate::error::BenchError;
use crate::memory::Process;

/// When each loop stops.
#[derive(Debug, Clone, Copy)]
pub enum Until {
    /// After this many measured logins per loop.
    Count(u64),
    /// Once this much time has passed since all loops started.
    Time(Duration),
}

/// The logins of a run (none by default, to absorb blocks into).
#[derive(Debug, Clone, Default)]
pub struct Run {
    /// Every measured login's latency, all loops together.
    pub latencies: Vec<Duration>,
    /// From the moment all loops were released to the end of the last login.
    pub elapsed: Duration,
    /// Logins done before timing started, all loops together.
    pub warmups: u64,
    /// CPU time the watched processes used while the loops were timed.
    pub cpu: Duration,
    /// The part of `cpu` used by watched processes other than this one (otpd).
    pub cpu_elsewhere: Duration,
}

impl Run {
    /// Measured logins.
    pub fn logins(&self) -> u64 {
        self.latencies.len() as u64
    }

    /// Measured logins over the wall-clock time of the run.
    pub fn per_second(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }

    /// CPU time of the watched processes per measured login.
    pub fn cpu_per_login(&self) -> Duration {
        self.per_login(self.cpu)
    }

    /// CPU time of the watched processes other than this one (otpd) per measured login.
    pub fn cpu_elsewhere_per_login(&self) -> Duration {
        self.per_login(self.cpu_elsewhere)
    }

    fn per_login(&self, cpu: Duration) -> Duration {
        cpu / u32::try_from(self.latencies.len().max(1)).unwrap_or(u32::MAX)
    }

    /// Adds `other`'s logins, time and CPU to this run: blocks of one scenario run apart.
    pub fn absorb(&mut self, other: Run) {
        self.latencies.extend(other.latencies);
        self.elapsed += other.elapsed;
        self.warmups += other.warmups;
        self.cpu += other.cpu;
        self.cpu_elsewhere += other.cpu_elsewhere;
    }
}

/// Runs `loops` threads; each does `warmup` untimed logins, waits for the others, then timed
/// logins until `until`. `login(loop, iteration)` numbers iterations from 0 across warm-up and
/// measurement, so a loop can derive its user or counter from them. The CPU time of `watch`
/// (this process, otpd) is taken over the timed part. The first failed login stops every loop
/// and is returned.
pub fn run_loops<F>(
    loops: usize,
    warmup: u64,
    until: Until,
    watch: &[Process],
    login: &F,
) -> Result<Run, BenchError>
where
    F: Fn(usize, u64) -> Result<(), BenchError> + Sync + ?Sized,
{
    let start_line = Barrier::new(loops + 1);
    let stop = AtomicBool::new(false);
    let first_error: Mutex<Option<BenchError>> = Mutex::new(None);
    let fail = |error: BenchError| {
        stop.store(true, Ordering::SeqCst);
        if let Ok(mut slot) = first_error.lock() {
            slot.get_or_insert(error);
        }
    };
    // (all watched, those other than this process)
    let cpu_now = || -> Result<(Duration, Duration), BenchError> {
        let mut sums = (Duration::ZERO, Duration::ZERO);
        for &process in watch {
            let used = cpu::cpu_time(process)?;
            sums.0 += used;
            if process != Process::Current {
                sums.1 += used;
            }
        }
        Ok(sums)
    };
    let mut cpu_before = Ok((Duration::ZERO, Duration::ZERO));
    let (latencies, elapsed) = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..loops)
            .map(|index| {
                let (start_line, stop, fail) = (&start_line, &stop, &fail);
                scope.spawn(move || {
                    let mut iteration = 0;
                    while iteration < warmup && !stop.load(Ordering::Relaxed) {
                        if let Err(e) = login(index, iteration) {
                            fail(e);
                        }
                        iteration += 1;
                    }
                    start_line.wait();
                    let started = Instant::now();
                    let mut times = Vec::with_capacity(4096);
                    loop {
                        let done = match until {
                            Until::Count(n) => times.len() as u64 >= n,
                            Until::Time(limit) => started.elapsed() >= limit,
                        };
                        if done || stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let before = Instant::now();
                        match login(index, iteration) {
                            Ok(()) => times.push(before.elapsed()),
                            Err(e) => fail(e),
                        }
                        iteration += 1;
                    }
                    (times, Instant::now())
                })
            })
            .collect();
        start_line.wait();
        let released = Instant::now();
        cpu_before = cpu_now();
        let mut all = Vec::new();
        let mut last_end = released;
        for worker in workers {
            match worker.join() {
                Ok((times, ended)) => {
                    all.extend(times);
                    last_end = last_end.max(ended);
                }
                Err(_) => fail(BenchError::Check("a benchmark loop panicked".into())),
            }
        }
        (all, last_end.duration_since(released))
    });
    if let Some(error) = first_error.lock().ok().and_then(|mut slot| slot.take()) {
        return Err(error);
    }
    let (before, after) = (cpu_before?, cpu_now()?);
    Ok(Run {
        latencies,
        elapsed,
        warmups: warmup * loops as u64,
        cpu: after.0.saturating_sub(before.0),
        cpu_elsewhere: after.1.saturating_sub(before.1),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    #[test]
    fn every_loop_does_its_warmup_then_its_count() {
        let calls = AtomicU64::new(0);
        let seen = Mutex::new(Vec::new());
        let run = run_loops(
            3,
            2,
            Until::Count(5),
            &[Process::Current],
            &|index, iteration| {
                calls.fetch_add(1, Ordering::SeqCst);
                seen.lock().unwrap().push((index, iteration));
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(run.logins(), 15);
        assert_eq!(run.warmups, 6);
        assert_eq!(calls.load(Ordering::SeqCst), 21);
        let mut seen = seen.into_inner().unwrap();
        seen.sort_unstable();
        let expected: Vec<(usize, u64)> = (0..3)
            .flat_map(|loop_index| (0..7).map(move |i| (loop_index, i)))
            .collect();
        assert_eq!(seen, expected);
    }

    #[test]
    fn absorbing_a_block_adds_its_logins_time_and_cpu() {
        let block = |ms: u64| Run {
            latencies: vec![Duration::from_millis(ms); 2],
            elapsed: Duration::from_millis(10 * ms),
            warmups: 1,
            cpu: Duration::from_millis(ms),
            cpu_elsewhere: Duration::from_micros(500 * ms),
        };
        let mut run = block(1);
        run.absorb(block(3));
        assert_eq!(run.logins(), 4);
        assert_eq!(run.elapsed, Duration::from_millis(40));
        assert_eq!((run.warmups, run.cpu), (2, Duration::from_millis(4)));
        assert_eq!(run.cpu_per_login(), Duration::from_millis(1));
        assert_eq!(run.cpu_elsewhere_per_login(), Duration::from_micros(500));
    }

    #[test]
    fn cpu_elsewhere_counts_only_the_other_processes() {
        let parent = Process::Pid(std::os::unix::process::parent_id());
        let run = run_loops(
            1,
            0,
            Until::Count(1),
            &[Process::Current, parent],
            &|_, _| {
                let start = Instant::now();
                let mut x: u64 = 0;
                while start.elapsed() < Duration::from_millis(100) {
                    x = x.wrapping_add(std::hint::black_box(1));
                }
                std::hint::black_box(x);
                Ok(())
            },
        )
        .unwrap();
        // This process spun for 100 ms; the parent (cargo or a shell) sat waiting.
        assert!(run.cpu >= Duration::from_millis(50), "{:?}", run.cpu);
        assert!(run.cpu_elsewhere < run.cpu / 2, "{run:?}");
    }

    #[test]
    fn the_first_failure_stops_the_run_and_is_returned() {
        let result = run_loops(
            2,
            0,
            Until::Time(Duration::from_secs(30)),
            &[],
            &|_, iteration| {
                if iteration == 3 {
                    Err(BenchError::Login("no code".into()))
                } else {
                    Ok(())
                }
            },
        );
        match result {
            Err(BenchError::Login(message)) => assert_eq!(message, "no code"),
            other => panic!("expected the login error, got {other:?}"),
        }
    }
}
