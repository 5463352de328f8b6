//! What the harness and the benchmark through the apiserver share: the two systems compared, the
//! run's options, and starting a cluster of either system as the benchmarks run it. Both
//! [`crate::harness`] and [`crate::apiserver`] build on this; it uses neither.

use std::path::PathBuf;

use mainstay_testkit::cluster::{Cluster, ClusterOptions, Target};
use serde::{Deserialize, Serialize};

/// The two systems measured side by side.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum System {
    #[default]
    Mainstay,
    Etcd,
}

impl System {
    pub const BOTH: [System; 2] = [System::Mainstay, System::Etcd];

    fn target(self) -> Target {
        match self {
            System::Mainstay => Target::Mainstay,
            System::Etcd => Target::Etcd,
        }
    }
}

impl std::fmt::Display for System {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            System::Mainstay => "mainstay",
            System::Etcd => "etcd",
        })
    }
}

/// What one benchmark run does (the `mainstay bench` command line).
#[derive(Clone, Debug)]
pub struct Options {
    /// Divides every workload's operation count (1: the full run).
    pub scale: u64,
    /// A–B rounds per workload.
    pub rounds: u32,
    /// Run only workloads whose name contains one of these (all if empty).
    pub only: Vec<String>,
    /// Keys loaded by the scale check (0: skip it).
    pub scale_keys: u64,
    /// Watcher counts of the scale check (empty: skip it).
    pub scale_watchers: Vec<usize>,
    pub mainstay_bin: PathBuf,
    pub etcd_bin: PathBuf,
    /// Where the clusters' data directories go.
    pub work_dir: PathBuf,
    /// Members per cluster (3 for the published numbers).
    pub members: usize,
    /// The command line, for the report.
    pub command: String,
    /// The benchmark through the apiserver (`None`: skip it).
    pub apiserver: Option<ApiOptions>,
    /// The control-plane benchmark (`None`: skip it).
    pub control_plane: Option<PlaneOptions>,
}

/// What the apiserver benchmark does.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ApiOptions {
    /// Pods created, read, updated and deleted per round.
    pub pods: u64,
    /// Concurrent closed-loop clients (and the HTTP pool's idle connections).
    pub concurrency: usize,
    /// `limit` of the paginated lists.
    pub page_size: u64,
    /// Paginated lists (and as many `resourceVersion=0` lists) per round.
    pub lists: u32,
    /// Patches observed on the watch per round.
    pub watch_events: u64,
    /// Patches per second during the watch.
    pub watch_rate: u32,
}

impl ApiOptions {
    /// The published configuration divided by `scale` (1: the full run; `--quick` uses 50).
    pub fn standard(scale: u64) -> ApiOptions {
        let scale = scale.max(1);
        ApiOptions {
            pods: (10_000 / scale).max(100),
            concurrency: 16,
            // Small pages in a quick run, so that it still follows `continue` tokens.
            page_size: (500 / scale).max(50),
            lists: if scale > 1 { 5 } else { 20 },
            watch_events: (1_000 / scale).max(50),
            watch_rate: 100,
        }
    }
}

/// What the control-plane benchmark does: three shapes from Kubernetes' own performance tests.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PlaneOptions {
    /// scheduler_perf's SchedulingBasic: Node objects (no kubelets), pods placed before the
    /// measurement, and pods measured.
    pub sched_nodes: usize,
    pub sched_init_pods: usize,
    pub sched_pods: usize,
    /// ClusterLoader2's density shape: simulated nodes, pods per node, and the rate (pods/s) at
    /// which one-replica Deployments are created.
    pub startup_nodes: usize,
    pub startup_pods_per_node: usize,
    pub startup_rate: f64,
    /// Simulated nodes and pods in one `mainstay nodes` process.
    pub scale_nodes: usize,
    pub scale_pods: usize,
    /// Seconds of heartbeats only (no pod churn) over which the load on the apiserver and the
    /// store is measured.
    pub heartbeat_window_secs: u64,
    /// Concurrent creates from the benchmark's client.
    pub concurrency: usize,
}

impl PlaneOptions {
    /// The published configuration (`quick`: a smoke run whose figures are not benchmarks).
    pub fn standard(quick: bool) -> PlaneOptions {
        if quick {
            PlaneOptions {
                sched_nodes: 100,
                sched_init_pods: 50,
                sched_pods: 300,
                startup_nodes: 5,
                startup_pods_per_node: 10,
                startup_rate: 20.0,
                scale_nodes: 50,
                scale_pods: 300,
                heartbeat_window_secs: 12,
                concurrency: 16,
            }
        } else {
            PlaneOptions {
                sched_nodes: 5_000,
                sched_init_pods: 1_000,
                sched_pods: 10_000,
                startup_nodes: 100,
                startup_pods_per_node: 30,
                startup_rate: 20.0,
                scale_nodes: 1_000,
                scale_pods: 30_000,
                heartbeat_window_secs: 60,
                concurrency: 32,
            }
        }
    }
}

/// Starts a cluster of `system` as the benchmarks run it (members, binaries, data directory).
pub(crate) async fn start_cluster(system: System, opts: &Options) -> Cluster {
    Cluster::start_with(
        opts.members.max(1),
        ClusterOptions {
            target: Some(system.target()),
            mainstay_bin: Some(opts.mainstay_bin.clone()),
            etcd_bin: Some(opts.etcd_bin.clone()),
            base_dir: Some(opts.work_dir.clone()),
            ..ClusterOptions::default()
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quick_options_stay_small_and_paginate() {
        let full = ApiOptions::standard(1);
        assert_eq!((full.pods, full.page_size, full.lists), (10_000, 500, 20));
        let quick = ApiOptions::standard(50);
        assert!(quick.pods <= 500);
        assert!(
            quick.pods > quick.page_size,
            "a quick run still follows continue tokens"
        );
        assert!(quick.watch_events as f64 / quick.watch_rate as f64 <= 2.0);
    }
}
