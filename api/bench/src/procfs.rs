//! Process and machine counters from `/proc`: CPU seconds (utime + stime of every thread)
//! and resident memory. Linux only.

use std::sync::OnceLock;

use anyhow::{Context as _, Result, anyhow};

/// Clock ticks per second (`getconf CLK_TCK`; 100 on every common Linux).
fn ticks_per_second() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|t| *t > 0.0)
            .unwrap_or(100.0)
    })
}

/// User + system CPU seconds a process has used so far (all its threads).
pub fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // The command name may contain spaces or parentheses: fields start after the last ')'.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| anyhow!("malformed /proc/{pid}/stat"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); utime and stime are fields 14 and 15.
    let tick = |i: usize| -> Result<f64> {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .map(|t| t as f64)
            .ok_or_else(|| anyhow!("malformed /proc/{pid}/stat"))
    };
    Ok((tick(11)? + tick(12)?) / ticks_per_second())
}

/// Resident set size of a process, in KiB.
pub fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| anyhow!("no VmRSS in /proc/{pid}/status"))
}

/// Machine-wide CPU time: (busy, total) seconds summed over all cores.
pub fn machine_cpu() -> Result<(f64, f64)> {
    let stat = std::fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
    let line = stat
        .lines()
        .next()
        .filter(|l| l.starts_with("cpu "))
        .ok_or_else(|| anyhow!("malformed /proc/stat"))?;
    let v: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse::<f64>().ok())
        .collect();
    let total: f64 = v.iter().take(8).sum();
    // idle + iowait
    let idle = v.get(3).copied().unwrap_or(0.0) + v.get(4).copied().unwrap_or(0.0);
    let t = ticks_per_second();
    Ok(((total - idle) / t, total / t))
}

/// Processes whose command name is one of `names` (e.g. `postgres`, `redis-server`).
pub fn pids_named(names: &[&str]) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .map(|c| names.contains(&c.trim()))
                .unwrap_or(false)
        })
        .collect()
}

/// A snapshot of CPU counters, to difference over a measurement window.
#[derive(Debug, Clone)]
pub struct CpuSnapshot {
    /// CPU seconds of each watched server process.
    pub servers: Vec<f64>,
    /// CPU seconds of other watched processes (database, broker), by PID.
    pub externals: Vec<(u32, f64)>,
    /// CPU seconds of this (client) process.
    pub client: f64,
    /// Machine busy and total CPU seconds.
    pub machine: (f64, f64),
    /// When it was taken.
    pub at: std::time::Instant,
}

impl CpuSnapshot {
    /// Reads the counters now. `external_pids` that have exited are skipped.
    pub fn take(server_pids: &[u32], external_pids: &[u32]) -> Result<Self> {
        Ok(Self {
            servers: server_pids
                .iter()
                .map(|p| cpu_seconds(*p))
                .collect::<Result<_>>()?,
            externals: external_pids
                .iter()
                .filter_map(|p| cpu_seconds(*p).ok().map(|c| (*p, c)))
                .collect(),
            client: cpu_seconds(std::process::id())?,
            machine: machine_cpu()?,
            at: std::time::Instant::now(),
        })
    }

    /// The usage between `self` (earlier) and `later`.
    pub fn usage_until(&self, later: &Self) -> CpuUsage {
        let server: f64 = later
            .servers
            .iter()
            .zip(&self.servers)
            .map(|(b, a)| b - a)
            .sum();
        let external: f64 = later
            .externals
            .iter()
            // A process first seen at the later snapshot started inside the window (the
            // process list is read again at every snapshot): all its CPU counts.
            .map(|(pid, b)| {
                self.externals
                    .iter()
                    .find(|(p, _)| p == pid)
                    .map_or(*b, |(_, a)| b - a)
            })
            .sum();
        let wall = later.at.duration_since(self.at).as_secs_f64();
        let busy = later.machine.0 - self.machine.0;
        let total = later.machine.1 - self.machine.1;
        CpuUsage {
            wall_seconds: wall,
            server_seconds: server,
            external_seconds: external,
            client_seconds: later.client - self.client,
            machine_busy_fraction: if total > 0.0 { busy / total } else { 0.0 },
        }
    }
}

/// CPU used over a window.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuUsage {
    /// Length of the window.
    pub wall_seconds: f64,
    /// CPU seconds of the server processes.
    pub server_seconds: f64,
    /// CPU seconds of the watched database and broker processes.
    pub external_seconds: f64,
    /// CPU seconds of the benchmark client.
    pub client_seconds: f64,
    /// Share of all cores busy (0 to 1), everything on the machine included.
    pub machine_busy_fraction: f64,
}

/// The processes whose CPU a run reports.
#[derive(Debug, Clone, Default)]
pub struct Watched {
    /// Server processes (Cloak nodes or the naive relay).
    pub servers: Vec<u32>,
    /// Command names of the database and broker processes, reported separately. They are
    /// looked up again at every snapshot: PostgreSQL starts a backend per connection, and
    /// the server opens some of its connections only when it first needs them.
    pub external_names: Vec<&'static str>,
}

impl Watched {
    /// Takes a snapshot of their counters.
    pub fn snapshot(&self) -> Result<CpuSnapshot> {
        CpuSnapshot::take(&self.servers, &pids_named(&self.external_names))
    }
}
