//! What the control-plane benchmark measured, and the pure arithmetic behind it (throughput
//! samples, latency summaries from recorded instants). No I/O.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::histogram::{Latencies, LatencySummary};
use crate::systems::{PlaneOptions, System};

/// kube-scheduler's CI floor for SchedulingBasic/5000Nodes_10000Pods (scheduler_perf's
/// `performance-config.yaml`, the minimum average SchedulingThroughput of its last 250 runs).
pub const KUBE_SCHEDULING_FLOOR_PODS_PER_SEC: f64 = 680.0;
/// Kubernetes' pod startup latency SLO (sig-scalability, p99).
pub const KUBE_STARTUP_SLO_P99_MS: f64 = 5_000.0;
/// Our own target for the pod startup p99.
pub const STARTUP_TARGET_P99_MS: f64 = 1_000.0;

/// How many error messages a run keeps.
pub const ERROR_SAMPLES: usize = 5;

/// Failed requests of a run, with a few of their messages.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Errors {
    pub count: u64,
    pub samples: Vec<String>,
}

impl Errors {
    pub fn add(&mut self, e: String) {
        self.count += 1;
        if self.samples.len() < ERROR_SAMPLES {
            self.samples.push(e);
        }
    }

    pub fn merge(&mut self, o: &Errors) {
        self.count += o.count;
        for s in &o.samples {
            if self.samples.len() < ERROR_SAMPLES {
                self.samples.push(s.clone());
            }
        }
    }
}

/// CPU seconds and resident memory of the processes of a plane over a measured span.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct PlaneUsage {
    pub seconds: f64,
    /// The three store members together.
    pub store_cpu_seconds: f64,
    pub store_rss_bytes: u64,
    pub apiserver_cpu_seconds: f64,
    pub apiserver_rss_bytes: u64,
    pub scheduler_cpu_seconds: f64,
    pub controller_manager_cpu_seconds: f64,
    pub nodes_cpu_seconds: f64,
    pub nodes_rss_bytes: u64,
    /// Store revisions over the span: every write the apiserver made.
    pub store_writes: u64,
}

impl PlaneUsage {
    pub fn per_second(&self, v: f64) -> f64 {
        v / self.seconds.max(1e-9)
    }
}

/// scheduler_perf's SchedulingBasic on one system.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct SchedulingRun {
    pub system: System,
    pub nodes: usize,
    pub init_pods: usize,
    pub pods: usize,
    /// The mean of 1 s samples of pods bound, from the second of the first measured binding to
    /// the last (scheduler_perf's SchedulingThroughput "Average").
    pub throughput: f64,
    /// Measured pods over the time from the first create sent to the last binding observed.
    pub throughput_overall: f64,
    /// The 1 s samples' median and lowest whole-second value.
    pub throughput_p50: f64,
    pub throughput_min: f64,
    /// How long creating the measured pods took (the client's side).
    pub create_seconds: f64,
    /// From a pod's create being sent to its binding observed by a watch.
    pub create_to_bound: LatencySummary,
    pub usage: PlaneUsage,
    /// The scheduler alone: as many pods again, created while no scheduler runs, then placed
    /// by a fresh one (so pod creation does not set the pace). The mean of 1 s samples from
    /// its first binding to its last, and the time from its start to the last binding.
    #[serde(default)]
    pub drain_throughput: f64,
    #[serde(default)]
    pub drain_seconds: f64,
    #[serde(default)]
    pub drain_usage: PlaneUsage,
    pub errors: Errors,
}

impl SchedulingRun {
    pub fn meets_floor(&self) -> bool {
        self.throughput >= KUBE_SCHEDULING_FLOOR_PODS_PER_SEC
    }
}

/// ClusterLoader2's density shape on one system.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct StartupRun {
    pub system: System,
    pub nodes: usize,
    pub pods: usize,
    pub rate: f64,
    /// The simulated nodes' ContainerCreating time (their `--pod-start-delay`).
    pub pod_start_delay_ms: u64,
    /// A pod's first event on the watch (its creation by the ReplicaSet controller) to the event
    /// showing it Running with every container started: the SLI of kube's SLO.
    pub startup: LatencySummary,
    /// The Deployment's create being sent to its pod observed Running (controllers included).
    pub deployment_to_running: LatencySummary,
    /// A pod's creation to its binding observed.
    pub created_to_bound: LatencySummary,
    /// Its binding to Running observed (the node's part, with the start delay).
    pub bound_to_running: LatencySummary,
    pub usage: PlaneUsage,
    pub errors: Errors,
}

impl StartupRun {
    pub fn meets_slo(&self) -> bool {
        self.startup.samples as usize == self.pods && self.startup.p99_ms <= KUBE_STARTUP_SLO_P99_MS
    }

    pub fn meets_target(&self) -> bool {
        self.startup.samples as usize == self.pods && self.startup.p99_ms <= STARTUP_TARGET_P99_MS
    }
}

/// Simulated node scale on one system.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct NodeScaleRun {
    pub system: System,
    pub nodes: usize,
    pub pods: usize,
    /// From the nodes process's start to every node Ready.
    pub register_seconds: f64,
    /// From the first pod create sent to every pod Running.
    pub running_seconds: f64,
    /// The resident memory of a one-node process (what a process costs with no nodes to speak
    /// of), of the process with every node Ready, and with every pod Running.
    pub baseline_rss_bytes: u64,
    pub nodes_rss_bytes: u64,
    pub pods_rss_bytes: u64,
    /// Heartbeats only: leases renewed, statuses posted, nothing else changing.
    pub heartbeats: PlaneUsage,
    pub errors: Errors,
}

impl NodeScaleRun {
    pub fn rss_per_node(&self) -> f64 {
        self.nodes_rss_bytes.saturating_sub(self.baseline_rss_bytes) as f64
            / (self.nodes.saturating_sub(1)).max(1) as f64
    }

    pub fn rss_per_pod(&self) -> f64 {
        self.pods_rss_bytes.saturating_sub(self.nodes_rss_bytes) as f64 / self.pods.max(1) as f64
    }
}

/// The control-plane benchmark's results, per shape and system.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct ControlPlaneResults {
    pub options: Option<PlaneOptions>,
    pub scheduling: Vec<SchedulingRun>,
    pub startup: Vec<StartupRun>,
    pub node_scale: Vec<NodeScaleRun>,
}

impl ControlPlaneResults {
    /// One line per run with failed requests or pods that never got where they should.
    pub fn failures(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut errors = |what: &str, system: System, e: &Errors| {
            if e.count > 0 {
                out.push(format!(
                    "control plane, {what} on {system}: {} errors, e.g. {:?}",
                    e.count, e.samples
                ));
            }
        };
        for r in &self.scheduling {
            errors("scheduling", r.system, &r.errors);
        }
        for r in &self.startup {
            errors("pod startup", r.system, &r.errors);
        }
        for r in &self.node_scale {
            errors("node scale", r.system, &r.errors);
        }
        out
    }
}

/// Throughput from the instants at which events (bindings) were observed: the 1 s samples
/// from the second of the first event to the one of the last (a last partial second counts for
/// its length), as scheduler_perf samples them.
pub fn throughput_samples(events: &[Instant]) -> Vec<f64> {
    let Some(&first) = events.iter().min() else {
        return Vec::new();
    };
    let last = events.iter().max().copied().unwrap_or(first);
    let span = last.duration_since(first);
    let whole = span.as_secs() as usize;
    let mut counts = vec![0u64; whole + 1];
    for e in events {
        let i = (e.duration_since(first).as_secs() as usize).min(whole);
        counts[i] += 1;
    }
    let tail = span.as_secs_f64() - whole as f64;
    counts
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            if i == whole {
                // The last sample covers `tail` seconds (at least a millisecond).
                c as f64 / tail.clamp(0.001, 1.0)
            } else {
                c as f64
            }
        })
        .collect()
}

/// The mean, median and lowest of samples (0 for none). A one-event run's single sample is its
/// count over a millisecond, which says nothing; callers report such runs with care.
pub fn sample_stats(samples: &[f64]) -> (f64, f64, f64) {
    if samples.is_empty() {
        return (0.0, 0.0, 0.0);
    }
    let mean = samples.iter().sum::<f64>() / samples.len() as f64;
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    (mean, sorted[sorted.len() / 2], sorted[0])
}

/// Latencies of the pairs whose both ends were seen (`to` not before `from`).
pub fn latencies(pairs: impl IntoIterator<Item = (Option<Instant>, Option<Instant>)>) -> Latencies {
    let mut h = Latencies::default();
    for (from, to) in pairs {
        if let (Some(from), Some(to)) = (from, to) {
            h.record(
                to.saturating_duration_since(from)
                    .max(Duration::from_micros(1)),
            );
        }
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throughput_is_sampled_per_second_from_the_first_event() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        // 3 in the first second, 2 in the second, 1 in a last half second.
        let events = vec![at(0), at(100), at(900), at(1000), at(1999), at(2500)];
        let s = throughput_samples(&events);
        assert_eq!(s.len(), 3);
        assert_eq!((s[0], s[1]), (3.0, 2.0));
        assert!(
            (s[2] - 2.0).abs() < 1e-9,
            "one event in half a second: {s:?}"
        );
        let (mean, p50, min) = sample_stats(&s);
        assert!((mean - 7.0 / 3.0).abs() < 1e-9);
        assert_eq!((p50, min), (2.0, 2.0));
        assert!(throughput_samples(&[]).is_empty());
        assert_eq!(sample_stats(&[]), (0.0, 0.0, 0.0));
    }

    #[test]
    fn events_before_the_first_sorted_anywhere_still_count() {
        let t0 = Instant::now();
        let events = vec![
            t0 + Duration::from_millis(1500),
            t0,
            t0 + Duration::from_millis(10),
        ];
        let s = throughput_samples(&events);
        assert_eq!(s[0], 2.0);
        assert!((s[1] - 1.0 / 0.5).abs() < 1e-9);
    }

    #[test]
    fn latencies_skip_unfinished_pairs() {
        let t0 = Instant::now();
        let h = latencies([
            (Some(t0), Some(t0 + Duration::from_millis(10))),
            (Some(t0), None),
            (None, Some(t0)),
            (
                Some(t0 + Duration::from_millis(30)),
                Some(t0 + Duration::from_millis(50)),
            ),
        ]);
        let s = h.summary();
        assert_eq!(s.samples, 2);
        assert!((s.max_ms - 20.0).abs() < 0.1, "{s:?}");
    }

    #[test]
    fn verdicts_need_every_pod_and_the_bound() {
        let mut r = StartupRun {
            pods: 2,
            ..StartupRun::default()
        };
        r.startup.samples = 2;
        r.startup.p99_ms = 900.0;
        assert!(r.meets_slo() && r.meets_target());
        r.startup.p99_ms = 1_500.0;
        assert!(r.meets_slo() && !r.meets_target());
        r.startup.samples = 1;
        assert!(!r.meets_slo(), "a pod that never ran fails the SLO");
        let s = SchedulingRun {
            throughput: 700.0,
            ..SchedulingRun::default()
        };
        assert!(s.meets_floor());
        let n = NodeScaleRun {
            nodes: 11,
            pods: 100,
            baseline_rss_bytes: 1000,
            nodes_rss_bytes: 11_000,
            pods_rss_bytes: 21_000,
            ..NodeScaleRun::default()
        };
        assert_eq!((n.rss_per_node(), n.rss_per_pod()), (1000.0, 100.0));
    }
}
