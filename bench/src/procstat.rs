//! Resource use of server processes: resident memory and CPU time from `/proc`, data size on disk
//! from the file system.

use std::os::unix::fs::MetadataExt as _;
use std::path::Path;

/// One reading of a process.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ProcSample {
    /// Resident set size (VmRSS).
    pub rss_bytes: u64,
    /// Peak resident set size (VmHWM).
    pub peak_rss_bytes: u64,
    /// User plus system CPU time so far.
    pub cpu_seconds: f64,
}

impl std::ops::Add for ProcSample {
    type Output = ProcSample;
    fn add(self, o: ProcSample) -> ProcSample {
        ProcSample {
            rss_bytes: self.rss_bytes + o.rss_bytes,
            peak_rss_bytes: self.peak_rss_bytes + o.peak_rss_bytes,
            cpu_seconds: self.cpu_seconds + o.cpu_seconds,
        }
    }
}

/// Reads `/proc/<pid>`; `None` if the process is gone or `/proc` is not there.
pub fn sample(pid: u32) -> Option<ProcSample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    Some(ProcSample {
        rss_bytes: status_kib(&status, "VmRSS:")? * 1024,
        peak_rss_bytes: status_kib(&status, "VmHWM:")? * 1024,
        cpu_seconds: stat_cpu_ticks(&stat)? as f64 / clock_ticks_per_second(),
    })
}

/// A `Name:   1234 kB` line of `/proc/<pid>/status`.
fn status_kib(status: &str, name: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(name))?;
    line[name.len()..].split_whitespace().next()?.parse().ok()
}

/// utime + stime (fields 14 and 15) of `/proc/<pid>/stat`. The command name (field 2) is in
/// parentheses and may hold spaces, so fields are counted after its closing parenthesis.
fn stat_cpu_ticks(stat: &str) -> Option<u64> {
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // `after` starts at field 3 (state).
    let utime: u64 = fields.get(14 - 3)?.parse().ok()?;
    let stime: u64 = fields.get(15 - 3)?.parse().ok()?;
    Some(utime + stime)
}

fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

/// Bytes allocated on disk to the files under `path` (sparse files count what they use).
pub fn disk_usage(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if meta.is_dir() {
        let Ok(entries) = std::fs::read_dir(path) else {
            return 0;
        };
        entries
            .filter_map(Result::ok)
            .map(|e| disk_usage(&e.path()))
            .sum()
    } else {
        meta.blocks() * 512
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_lines() {
        let status = "Name:\tetcd\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\n";
        assert_eq!(status_kib(status, "VmRSS:"), Some(1024));
        assert_eq!(status_kib(status, "VmHWM:"), Some(2048));
        assert_eq!(status_kib(status, "VmSwap:"), None);
        let stat = "42 (a (weird) name) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 9 0";
        assert_eq!(stat_cpu_ticks(stat), Some(300));
    }

    #[test]
    fn samples_this_process_and_sizes_a_directory() {
        let me = sample(std::process::id()).expect("/proc is mounted");
        assert!(me.rss_bytes > 0 && me.peak_rss_bytes >= me.rss_bytes);
        let dir = tempfile_dir();
        std::fs::write(dir.join("f"), vec![1u8; 64 * 1024]).unwrap();
        assert!(disk_usage(&dir) >= 64 * 1024);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("mainstay-bench-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
