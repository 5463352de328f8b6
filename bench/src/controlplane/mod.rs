//! The control-plane benchmark: Mainstay's scheduler, controller-manager and simulated nodes,
//! through one `mainstay apiserver`, on a 3-member cluster of each system (the Mainstay store,
//! then real etcd), in three shapes taken from Kubernetes' own performance tests:
//!
//! - [`scheduling`]: scheduler_perf's SchedulingBasic (5000 Node objects, 1000 init pods, 10000
//!   measured), pods/s against kube-scheduler's CI floor of 680;
//! - [`startup`]: ClusterLoader2's density shape (100 nodes × 30 pods, one-replica Deployments
//!   created at 20 pods/s), pod startup latency against kube's SLO (p99 ≤ 5 s);
//! - [`nodescale`]: 1000 simulated nodes and 30000 pods in one `mainstay nodes` process,
//!   memory per node and per pod, and the heartbeats' load on the apiserver and the store.
//!
//! Each shape runs on a fresh plane ([`plane`]) per system; [`observe`] is the watch whose
//! instants the latencies come from, and [`results`] the figures. Like the rest of the crate it
//! starts everything as processes and talks to them only through their APIs (kube-rs here).

pub mod nodescale;
pub mod observe;
pub mod plane;
pub mod results;
pub mod scheduling;
pub mod startup;

use crate::controlplane::results::ControlPlaneResults;
use crate::systems::{Options, PlaneOptions, System};
use crate::Error;

/// Runs the three shapes, each on Mainstay then on etcd.
pub async fn run(opts: &Options, p: &PlaneOptions) -> Result<ControlPlaneResults, Error> {
    let mut results = ControlPlaneResults {
        options: Some(p.clone()),
        ..ControlPlaneResults::default()
    };
    for system in System::BOTH {
        eprintln!("bench: control plane, scheduling throughput on {system}");
        results
            .scheduling
            .push(scheduling::run(system, opts, p).await?);
    }
    for system in System::BOTH {
        eprintln!("bench: control plane, pod startup latency on {system}");
        results.startup.push(startup::run(system, opts, p).await?);
    }
    for system in System::BOTH {
        eprintln!("bench: control plane, simulated node scale on {system}");
        results
            .node_scale
            .push(nodescale::run(system, opts, p).await?);
    }
    Ok(results)
}
