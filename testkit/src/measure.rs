//! What the long tests and the bench measure and how they are tuned:
//! percentiles of a sorted sample, a process's resident memory and CPU
//! time from `/proc`, and the environment knobs of a long run.
//!
//! Imports: nothing of this crate.

use std::process::Command;
use std::sync::OnceLock;

/// A knob of a long test: the environment variable `name`, or `default`.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The `p`th percentile of `sorted`: the sample whose rank is `p`% of the
/// way from the first to the last, rounded to the nearest; NaN when empty.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// The resident memory of process `pid`, in KiB (0 if it cannot be read).
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// CPU seconds a process and its reaped children have used
/// (`/proc/<pid>/stat`: utime, stime, cutime, cstime); 0 if it cannot be
/// read. The children count: Redis rewrites its append-only file in a
/// forked child.
pub fn cpu_secs(pid: u32) -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    let ticks = *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    });
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name, which may hold spaces: state is the
    // first, utime the 12th.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    let used: u64 = rest
        .split_whitespace()
        .skip(11)
        .take(4)
        .filter_map(|f| f.parse::<u64>().ok())
        .sum();
    used as f64 / ticks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_round_to_the_nearest_rank() {
        let ms: Vec<f64> = (1..=101).map(f64::from).collect();
        assert_eq!(percentile(&ms, 50.0), 51.0);
        assert_eq!(percentile(&ms, 99.0), 100.0);
        assert_eq!(percentile(&ms, 100.0), 101.0);
        assert!(percentile(&[], 99.0).is_nan());
    }

    #[test]
    fn this_process_has_memory_and_time() {
        let me = std::process::id();
        assert!(rss_kib(me) > 0);
        assert!(cpu_secs(me) >= 0.0);
        assert_eq!(rss_kib(u32::MAX), 0);
    }
}
