//! The harness: one command that measures Mainstay and etcd side by side.
//!
//! It starts a 3-member etcd cluster and a 3-member Mainstay cluster on loopback (the same flags,
//! the same data directory's file system, both fsyncing before they acknowledge), runs every
//! workload against both, interleaved (Mainstay, etcd, Mainstay, etcd) so drift on the machine
//! falls on both, then runs the scale checks on a fresh cluster of each, one system at a time.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use mainstay_testkit::cluster::Cluster;
use serde::{Deserialize, Serialize};

use crate::apiserver::ApiserverResults;
use crate::controlplane::results::ControlPlaneResults;
use crate::histogram::{Latencies, LatencySummary};
use crate::procstat::{self, ProcSample};
use crate::systems::start_cluster;
use crate::workload::{self, Spec};
use crate::Error;

// `harness::Options` and `harness::System` stay valid paths (`mainstay bench` uses them).
pub use crate::systems::{Options, System};

/// How long members may take to apply what the leader committed, after a load.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(300);

/// One run of one workload on one system.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Run {
    pub system: System,
    pub round: u32,
    pub ops: u64,
    pub errors: u64,
    pub seconds: f64,
    pub throughput: f64,
    pub latency: LatencySummary,
    /// CPU time of the three members during the run.
    pub cpu_seconds: f64,
    /// Resident memory of the three members after the run.
    pub rss_bytes: u64,
    /// Data directories of the three members after the run.
    pub disk_bytes: u64,
    pub counters: BTreeMap<String, u64>,
    pub error_samples: Vec<String>,
}

/// A system's rounds of one workload together.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Combined {
    pub ops: u64,
    pub errors: u64,
    pub seconds: f64,
    pub throughput: f64,
    pub latency: LatencySummary,
    pub cpu_seconds: f64,
    pub rss_bytes: u64,
    pub disk_bytes: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WorkloadResult {
    pub spec: Spec,
    pub mainstay: Combined,
    pub etcd: Combined,
    pub runs: Vec<Run>,
}

impl WorkloadResult {
    pub fn get(&self, system: System) -> &Combined {
        match system {
            System::Mainstay => &self.mainstay,
            System::Etcd => &self.etcd,
        }
    }

    /// Mainstay's throughput over etcd's (`None` for fixed-rate workloads).
    pub fn throughput_ratio(&self) -> Option<f64> {
        (!self.spec.fixed_rate()).then(|| self.mainstay.throughput / self.etcd.throughput.max(1e-9))
    }

    /// Mainstay's p99 latency over etcd's.
    pub fn p99_ratio(&self) -> f64 {
        self.mainstay.latency.p99_ms / self.etcd.latency.p99_ms.max(1e-9)
    }

    /// At or above etcd: throughput ratio ≥ 1 (where the server sets it) and p99 ratio ≤ 1.
    pub fn ahead(&self) -> bool {
        self.throughput_ratio().is_none_or(|r| r >= 1.0) && self.p99_ratio() <= 1.0
    }
}

/// The key-count scale check on one system.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct KeyScale {
    pub keys: u64,
    pub load_seconds: f64,
    pub load_throughput: f64,
    pub load_errors: u64,
    /// Per member (the three members' growth divided by 3), per key.
    pub rss_bytes_per_key: f64,
    pub disk_bytes_per_key: f64,
    pub rss_bytes_after: u64,
    pub disk_bytes_after: u64,
}

/// One watcher-count scale check on one system.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct WatcherScale {
    pub watchers: usize,
    pub open_seconds: f64,
    /// Growth of the watched member's resident memory per watcher.
    pub rss_bytes_per_watcher: f64,
    pub events_per_watcher: u64,
    pub delivered: u64,
    pub expected: u64,
    pub latency: LatencySummary,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ScaleResult {
    pub keys: Option<KeyScale>,
    pub watchers: Vec<WatcherScale>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    pub memory_gib: f64,
    pub kernel: String,
    pub etcd_version: String,
    pub mainstay_version: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Results {
    pub command: String,
    /// Members per cluster.
    pub members: usize,
    /// UTC, `YYYY-MM-DD HH:MM`.
    pub started: String,
    pub duration_seconds: f64,
    pub machine: Machine,
    pub workloads: Vec<WorkloadResult>,
    pub scale: BTreeMap<System, ScaleResult>,
    /// The pod workload through one apiserver per system.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apiserver: Option<ApiserverResults>,
    /// The scheduler, controller-manager and simulated nodes over one apiserver per system.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_plane: Option<ControlPlaneResults>,
}

/// A running cluster of one system, with what the harness needs to measure it.
struct Bench {
    system: System,
    cluster: Cluster,
}

impl Bench {
    async fn start(system: System, opts: &Options) -> Bench {
        let cluster = start_cluster(system, opts).await;
        Bench { system, cluster }
    }

    fn sample(&self, i: usize) -> ProcSample {
        self.cluster
            .pid(i)
            .and_then(procstat::sample)
            .unwrap_or_default()
    }

    fn sample_all(&self) -> ProcSample {
        (0..self.cluster.len())
            .map(|i| self.sample(i))
            .fold(ProcSample::default(), |a, b| a + b)
    }

    fn disk(&self) -> u64 {
        (0..self.cluster.len())
            .map(|i| procstat::disk_usage(&self.cluster.data_dir(i)))
            .sum()
    }

    /// (leader index, leader URL, every member's URL, followers first). Which member is leader
    /// differs between the two clusters, so the members are ordered by role: a workload with
    /// fewer connections than members then reaches a member of the same role on both systems (a
    /// follower: two members in three are).
    async fn urls(&mut self) -> (usize, String, Vec<String>) {
        let leader = self
            .cluster
            .wait_for_leader(mainstay_testkit::cluster::LEADER_TIMEOUT)
            .await;
        let leader_url = self.cluster.client_url(leader);
        let mut members: Vec<String> = self
            .cluster
            .endpoints()
            .into_iter()
            .filter(|u| *u != leader_url)
            .collect();
        members.push(leader_url.clone());
        (leader, leader_url, members)
    }

    async fn run(&mut self, spec: &Spec, round: u32) -> Result<(Run, Latencies), Error> {
        let (_, leader, members) = self.urls().await;
        let before = self.sample_all();
        let outcome = workload::run(spec, &leader, &members).await?;
        let after = self.sample_all();
        let run = Run {
            system: self.system,
            round,
            ops: outcome.ops,
            errors: outcome.errors,
            seconds: outcome.elapsed.as_secs_f64(),
            throughput: outcome.throughput(),
            latency: outcome.latencies.summary(),
            cpu_seconds: after.cpu_seconds - before.cpu_seconds,
            rss_bytes: after.rss_bytes,
            disk_bytes: self.disk(),
            counters: outcome.counters,
            error_samples: outcome.error_samples,
        };
        eprintln!(
            "bench: {:<30} {:<8} round {round}: {:>9.0} ops/s  p50 {:>8.3} ms  p99 {:>8.3} ms  \
             errors {}  ({:.1} s, cpu {:.1} s)",
            spec.name,
            self.system,
            run.throughput,
            run.latency.p50_ms,
            run.latency.p99_ms,
            run.errors,
            run.seconds,
            run.cpu_seconds
        );
        for e in &run.error_samples {
            eprintln!("bench:     error: {e}");
        }
        Ok((run, outcome.latencies))
    }

    /// Waits until every member has applied what the leader has committed.
    async fn caught_up(&mut self) {
        for i in 0..self.cluster.len() {
            self.cluster.wait_caught_up(i, CATCH_UP_TIMEOUT).await;
        }
    }
}

pub async fn run(opts: &Options) -> Result<Results, Error> {
    let started_at = Instant::now();
    let started = utc_now();
    let machine = machine(opts)?;
    eprintln!(
        "bench: {} cores, {:.1} GiB, {}; etcd {}; mainstay {}",
        machine.cores,
        machine.memory_gib,
        machine.cpu,
        machine.etcd_version,
        machine.mainstay_version
    );
    let specs: Vec<Spec> = workload::standard(opts.scale)
        .into_iter()
        .filter(|s| opts.only.is_empty() || opts.only.iter().any(|o| s.name.contains(o.as_str())))
        .collect();
    let mut workloads = Vec::new();
    if !specs.is_empty() {
        let mut benches = Vec::new();
        for system in System::BOTH {
            benches.push(Bench::start(system, opts).await);
        }
        for spec in &specs {
            let mut runs = Vec::new();
            let mut merged: BTreeMap<System, Latencies> = BTreeMap::new();
            for round in 1..=opts.rounds {
                for bench in &mut benches {
                    let (run, latencies) = bench.run(spec, round).await?;
                    merged.entry(bench.system).or_default().merge(&latencies);
                    runs.push(run);
                }
            }
            let combine = |system: System| combine(&runs, system, &merged[&system]);
            workloads.push(WorkloadResult {
                spec: spec.clone(),
                mainstay: combine(System::Mainstay),
                etcd: combine(System::Etcd),
                runs: runs.clone(),
            });
        }
    }
    let mut scale = BTreeMap::new();
    if opts.scale_keys > 0 || !opts.scale_watchers.is_empty() {
        for system in System::BOTH {
            let mut bench = Bench::start(system, opts).await;
            scale.insert(system, scale_check(&mut bench, opts).await?);
        }
    }
    // After everything else, on fresh clusters of its own.
    let apiserver = match &opts.apiserver {
        Some(api) => Some(crate::apiserver::run(opts, api).await?),
        None => None,
    };
    let control_plane = match &opts.control_plane {
        Some(p) => Some(crate::controlplane::run(opts, p).await?),
        None => None,
    };
    Ok(Results {
        command: opts.command.clone(),
        members: opts.members.max(1),
        started,
        duration_seconds: started_at.elapsed().as_secs_f64(),
        machine,
        workloads,
        scale,
        apiserver,
        control_plane,
    })
}

/// What went wrong in a run, one line per workload run or scale check with errors or missing
/// watch events.
pub fn failures(results: &Results) -> Vec<String> {
    let mut out = Vec::new();
    for w in &results.workloads {
        for r in w.runs.iter().filter(|r| r.errors > 0) {
            out.push(format!(
                "{} on {} (round {}): {} errors, e.g. {:?}",
                w.spec.name, r.system, r.round, r.errors, r.error_samples
            ));
        }
    }
    for (system, scale) in &results.scale {
        if let Some(k) = scale.keys.as_ref().filter(|k| k.load_errors > 0) {
            out.push(format!(
                "{system}: {} errors loading {} keys",
                k.load_errors, k.keys
            ));
        }
        for w in scale.watchers.iter().filter(|w| w.delivered < w.expected) {
            out.push(format!(
                "{system}: {} watchers got {} of {} events",
                w.watchers, w.delivered, w.expected
            ));
        }
    }
    if let Some(api) = &results.apiserver {
        out.extend(api.failures());
    }
    if let Some(plane) = &results.control_plane {
        out.extend(plane.failures());
    }
    out
}

fn combine(runs: &[Run], system: System, latencies: &Latencies) -> Combined {
    let mine: Vec<&Run> = runs.iter().filter(|r| r.system == system).collect();
    let ops = mine.iter().map(|r| r.ops).sum();
    let seconds: f64 = mine.iter().map(|r| r.seconds).sum();
    Combined {
        ops,
        errors: mine.iter().map(|r| r.errors).sum(),
        seconds,
        throughput: ops as f64 / seconds.max(1e-9),
        latency: latencies.summary(),
        cpu_seconds: mine.iter().map(|r| r.cpu_seconds).sum(),
        rss_bytes: mine.iter().map(|r| r.rss_bytes).max().unwrap_or(0),
        disk_bytes: mine.last().map_or(0, |r| r.disk_bytes),
    }
}

async fn scale_check(bench: &mut Bench, opts: &Options) -> Result<ScaleResult, Error> {
    let mut result = ScaleResult::default();
    let members = bench.cluster.len() as f64;
    if opts.scale_keys > 0 {
        let (_, leader, _) = bench.urls().await;
        // Settle start-up allocations before the baseline.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let before = bench.sample_all();
        let disk_before = bench.disk();
        let load = workload::load_keys(&leader, b"/scale/keys/", opts.scale_keys).await?;
        bench.caught_up().await;
        let after = bench.sample_all();
        let disk_after = bench.disk();
        let per_key = |a: u64, b: u64| (a as f64 - b as f64) / members / opts.scale_keys as f64;
        let keys = KeyScale {
            keys: opts.scale_keys,
            load_seconds: load.elapsed.as_secs_f64(),
            load_throughput: load.throughput(),
            load_errors: load.errors,
            rss_bytes_per_key: per_key(after.rss_bytes, before.rss_bytes),
            disk_bytes_per_key: per_key(disk_after, disk_before),
            rss_bytes_after: after.rss_bytes,
            disk_bytes_after: disk_after,
        };
        eprintln!(
            "bench: {:<8} {} keys: load {:.0} puts/s ({} errors), {:.0} B RSS and {:.0} B disk per \
             key per member",
            bench.system,
            keys.keys,
            keys.load_throughput,
            keys.load_errors,
            keys.rss_bytes_per_key,
            keys.disk_bytes_per_key
        );
        result.keys = Some(keys);
    }
    for &n in &opts.scale_watchers {
        let (leader_index, leader, _) = bench.urls().await;
        // Watchers on a follower, as an apiserver's would mostly be.
        let member = (leader_index + 1) % bench.cluster.len();
        let url = bench.cluster.client_url(member);
        let prefix = format!("/scale/fanout/{n}/").into_bytes();
        const EVENTS: u64 = 10;
        let before = bench.sample(member);
        let opened = Instant::now();
        let set = workload::WatcherSet::open(&url, &prefix, n, 1000, 10, EVENTS).await?;
        let open_seconds = opened.elapsed().as_secs_f64();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let after = bench.sample(member);
        let put_errors = workload::stamped_puts(&leader, &prefix, EVENTS, 2).await?;
        let outcome = set.finish(Duration::from_secs(60)).await;
        let check = WatcherScale {
            watchers: n,
            open_seconds,
            rss_bytes_per_watcher: (after.rss_bytes as f64 - before.rss_bytes as f64) / n as f64,
            events_per_watcher: EVENTS,
            delivered: outcome.ops,
            expected: (EVENTS - put_errors) * n as u64,
            latency: outcome.latencies.summary(),
        };
        eprintln!(
            "bench: {:<8} {n} watchers: opened in {:.1} s, {:.0} B per watcher, fan-out p50 {:.1} \
             ms p99 {:.1} ms, {} of {} events delivered",
            bench.system,
            check.open_seconds,
            check.rss_bytes_per_watcher,
            check.latency.p50_ms,
            check.latency.p99_ms,
            check.delivered,
            check.expected
        );
        result.watchers.push(check);
    }
    Ok(result)
}

fn machine(opts: &Options) -> Result<Machine, Error> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory_kib: f64 = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    let etcd = std::process::Command::new(&opts.etcd_bin)
        .arg("--version")
        .output()
        .map_err(|e| {
            Error::Setup(format!(
                "running {} --version: {e} (install etcd 3.4 with scripts/setup.sh, or pass \
                 --etcd-bin)",
                opts.etcd_bin.display()
            ))
        })?;
    let etcd_version = String::from_utf8_lossy(&etcd.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("etcd Version:"))
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    let git = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    let mainstay_version = match git {
        Some(commit) => format!("{} ({commit})", env!("CARGO_PKG_VERSION")),
        None => env!("CARGO_PKG_VERSION").to_string(),
    };
    Ok(Machine {
        cpu,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        memory_gib: memory_kib / 1024.0 / 1024.0,
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_default(),
        etcd_version,
        mainstay_version,
    })
}

/// The current UTC time as `YYYY-MM-DD HH:MM`.
fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format_utc(secs)
}

fn format_utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let (h, m) = (secs % 86_400 / 3600, secs % 3600 / 60);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{d:02} {h:02}:{m:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(format_utc(0), "1970-01-01 00:00");
        assert_eq!(format_utc(951_782_400), "2000-02-29 00:00");
        assert_eq!(format_utc(1_795_392_000 + 3_660), "2026-11-23 01:01");
    }

    fn result(fixed: bool, m: (f64, f64), e: (f64, f64)) -> WorkloadResult {
        let combined = |(tput, p99): (f64, f64)| Combined {
            throughput: tput,
            latency: LatencySummary {
                p99_ms: p99,
                ..Default::default()
            },
            ..Default::default()
        };
        let kind = if fixed {
            workload::Kind::WatchLatency {
                watchers_per_stream: 1,
                put_rate: 1,
            }
        } else {
            workload::Kind::TxnCas
        };
        WorkloadResult {
            spec: Spec {
                name: "w".into(),
                kind,
                conns: 1,
                clients: 1,
                total: 1,
                route: workload::Route::Leader,
            },
            mainstay: combined(m),
            etcd: combined(e),
            runs: vec![],
        }
    }

    #[test]
    fn ahead_needs_both_throughput_and_p99() {
        assert!(result(false, (200.0, 1.0), (100.0, 2.0)).ahead());
        assert!(result(false, (100.0, 2.0), (100.0, 2.0)).ahead());
        assert!(!result(false, (99.0, 1.0), (100.0, 2.0)).ahead());
        assert!(!result(false, (200.0, 2.1), (100.0, 2.0)).ahead());
        // A fixed-rate workload is judged on latency alone.
        assert!(result(true, (1.0, 1.0), (100.0, 2.0)).ahead());
        assert!(result(true, (1.0, 1.0), (100.0, 2.0))
            .throughput_ratio()
            .is_none());
    }
}
