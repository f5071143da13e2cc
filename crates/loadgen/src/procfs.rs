//! The server processes as Linux shows them in /proc: resident memory, CPU time, threads.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// How often RSS is sampled.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(100);

/// Resident set size of a process in KiB (`VmRSS` in /proc/PID/status).
pub fn rss_kib(pid: u32) -> Option<u64> {
    status_field(pid, "VmRSS:")
}

/// Number of threads of a process.
pub fn threads(pid: u32) -> Option<u64> {
    status_field(pid, "Threads:")
}

fn status_field(pid: u32, name: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// User + system CPU time of a process (all threads), in clock ticks.
pub fn cpu_ticks(pid: Option<u32>) -> Option<u64> {
    let path = match pid {
        Some(p) => format!("/proc/{p}/stat"),
        None => "/proc/self/stat".to_owned(),
    };
    stat_ticks(&std::fs::read_to_string(path).ok()?)
}

/// Name prefix of tenantd's password-hashing threads (`argon2-0`, `argon2-1`, …).
const HASHING_THREAD: &str = "argon2-";

/// User + system CPU time of a process's password-hashing threads, in clock ticks: with
/// [`cpu_ticks`] it splits a password sign-in's CPU into the hash and everything else within
/// one run, which a noisy host cannot skew the way it skews two runs minutes apart.
pub fn hashing_ticks(pid: u32) -> Option<u64> {
    let mut ticks = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let dir = task.ok()?.path();
        let named = std::fs::read_to_string(dir.join("comm"))
            .is_ok_and(|comm| comm.starts_with(HASHING_THREAD));
        if named {
            // A thread that ended between the listing and this read no longer counts.
            if let Some(t) = std::fs::read_to_string(dir.join("stat"))
                .ok()
                .and_then(|s| stat_ticks(&s))
            {
                ticks += t;
            }
        }
    }
    Some(ticks)
}

/// utime + stime of a `/proc/…/stat` line.
fn stat_ticks(stat: &str) -> Option<u64> {
    // The command name (field 2) may contain spaces; fields after the last ')' are fixed.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); utime is field 14, stime field 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Clock ticks of the whole machine, all CPUs (`cpu` line of /proc/stat): busy (everything but
/// idle, iowait and steal), to tell whether other processes shared the CPUs during a run, and
/// stolen (a virtual machine's CPUs running someone else), which the processes here did not use.
pub fn machine_ticks() -> Option<MachineTicks> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is included in user).
    let total: u64 = v.iter().take(8).sum();
    let steal = *v.get(7)?;
    Some(MachineTicks {
        busy: total - v.get(3)? - v.get(4)? - steal,
        steal,
    })
}

/// See [`machine_ticks`].
#[derive(Debug, Clone, Copy)]
pub struct MachineTicks {
    /// Used by some process or the kernel here.
    pub busy: u64,
    /// Stolen by the hypervisor.
    pub steal: u64,
}

/// Online CPUs of the machine (the `cpuN` lines of /proc/stat; not this process's affinity,
/// which is one CPU when the load generator is pinned).
pub fn cpus() -> usize {
    std::fs::read_to_string("/proc/stat")
        .ok()
        .map(|stat| {
            stat.lines()
                .filter(|l| {
                    l.strip_prefix("cpu")
                        .is_some_and(|n| n.starts_with(|c: char| c.is_ascii_digit()))
                })
                .count()
        })
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from))
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 on every Linux we care about).
pub fn clock_ticks_per_sec() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .filter(|&t| t > 0)
        .unwrap_or(100)
}

/// Samples a process's RSS every [`SAMPLE_EVERY`] and keeps the peak.
#[derive(Debug)]
pub struct RssSampler {
    peak_kib: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl RssSampler {
    /// Start sampling `pid`.
    pub fn start(pid: u32) -> Self {
        let peak_kib = Arc::new(AtomicU64::new(rss_kib(pid).unwrap_or(0)));
        let stop = Arc::new(AtomicBool::new(false));
        let (peak, halt) = (peak_kib.clone(), stop.clone());
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(SAMPLE_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            while !halt.load(Ordering::Relaxed) {
                tick.tick().await;
                if let Some(kib) = rss_kib(pid) {
                    peak.fetch_max(kib, Ordering::Relaxed);
                }
            }
        });
        Self {
            peak_kib,
            stop,
            task,
        }
    }

    /// Stop sampling; the peak RSS in KiB.
    pub async fn finish(self, pid: u32) -> u64 {
        if let Some(kib) = rss_kib(pid) {
            self.peak_kib.fetch_max(kib, Ordering::Relaxed);
        }
        self.stop.store(true, Ordering::Relaxed);
        let _ = tokio::time::timeout(Duration::from_secs(1), self.task).await;
        self.peak_kib.load(Ordering::Relaxed)
    }
}

/// CPU cores used on average between two readings of [`cpu_ticks`] or
/// [`machine_ticks`] taken `elapsed` apart (`hz`: [`clock_ticks_per_sec`]).
pub fn cores(before: Option<u64>, after: Option<u64>, hz: f64, elapsed: Duration) -> Option<f64> {
    match (before, after) {
        (Some(a), Some(b)) if elapsed > Duration::ZERO => {
            Some(b.saturating_sub(a) as f64 / hz / elapsed.as_secs_f64())
        }
        _ => None,
    }
}

/// A server process watched through a run: its RSS before, at its peak during the set-up
/// (sign-ins, warm-up), at the start of the measured window, at its peak during it and after;
/// its CPU time over the measured window.
#[derive(Debug)]
pub struct Watch {
    name: Option<String>,
    pid: u32,
    idle_kib: u64,
    sampler: RssSampler,
    cpu_at_start: Option<u64>,
    hashing_at_start: Option<u64>,
    start_kib: Option<u64>,
    setup_peak_kib: Option<u64>,
}

/// What a [`Watch`] saw.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ServerStats {
    /// The name given with `--server-pid NAME=PID`.
    pub name: Option<String>,
    /// Its pid.
    pub pid: u32,
    /// Threads at the end.
    pub threads: Option<u64>,
    /// RSS before the set-up (sign-ins) and warm-up.
    pub idle_rss_kib: u64,
    /// Highest RSS sampled before the measured window: the set-up's password sign-ins hold
    /// a hashing buffer (argon2id's memory) for a moment after the last one.
    pub setup_peak_rss_kib: Option<u64>,
    /// RSS when the measured window started.
    pub measure_start_rss_kib: Option<u64>,
    /// Highest RSS sampled during the measured window.
    pub peak_rss_kib: u64,
    /// RSS at the end.
    pub end_rss_kib: Option<u64>,
    /// CPU cores used during the measured window.
    pub cpu_cores: Option<f64>,
    /// CPU time per successful operation.
    pub cpu_us_per_op: Option<f64>,
    /// The part of `cpu_us_per_op` spent in password-hashing threads (zero when no password
    /// was checked).
    pub hashing_us_per_op: Option<f64>,
}

impl Watch {
    /// Start watching `pid`; `None` when its /proc/PID/status cannot be read.
    pub fn start(name: Option<String>, pid: u32) -> Option<Self> {
        let idle_kib = rss_kib(pid)?;
        Some(Self {
            name,
            pid,
            idle_kib,
            sampler: RssSampler::start(pid),
            cpu_at_start: None,
            hashing_at_start: None,
            start_kib: None,
            setup_peak_kib: None,
        })
    }

    /// The measured window starts now.
    pub fn mark(&mut self) {
        self.cpu_at_start = cpu_ticks(Some(self.pid));
        self.hashing_at_start = hashing_ticks(self.pid);
        self.start_kib = rss_kib(self.pid);
        // The peak starts over: what the set-up held is not what the load needs.
        self.setup_peak_kib = Some(
            self.sampler
                .peak_kib
                .swap(self.start_kib.unwrap_or(0), Ordering::Relaxed),
        );
    }

    /// The CPU time since [`Watch::mark`] (`elapsed` ago, `ops` operations done), then stop.
    pub async fn finish(self, elapsed: Duration, ops: u64, hz: f64) -> ServerStats {
        let cpu_cores = cores(self.cpu_at_start, cpu_ticks(Some(self.pid)), hz, elapsed);
        let hashing_cores = cores(self.hashing_at_start, hashing_ticks(self.pid), hz, elapsed);
        let per_op = |cores: f64| cores * elapsed.as_secs_f64() * 1e6 / (ops.max(1) as f64);
        let peak_rss_kib = self.sampler.finish(self.pid).await;
        ServerStats {
            name: self.name,
            pid: self.pid,
            threads: threads(self.pid),
            idle_rss_kib: self.idle_kib,
            setup_peak_rss_kib: self.setup_peak_kib,
            measure_start_rss_kib: self.start_kib,
            peak_rss_kib,
            end_rss_kib: rss_kib(self.pid),
            cpu_cores,
            cpu_us_per_op: cpu_cores.map(per_op),
            hashing_us_per_op: hashing_cores.map(per_op),
        }
    }
}

/// KiB as MiB with one decimal.
pub fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_process() {
        let me = std::process::id();
        assert!(rss_kib(me).unwrap() > 0);
        assert!(threads(me).unwrap() >= 1);
        assert!(cpu_ticks(None).is_some());
        assert!(cpu_ticks(Some(me)).is_some());
        // This process has no hashing threads: zero, not a failure.
        assert_eq!(hashing_ticks(me), Some(0));
        assert!(machine_ticks().is_some());
    }
}
