//! `mainstay-nodesim`: simulated worker nodes, as kubemark's hollow kubelet and kwok provide
//! them, so that the pod lifecycle runs with no container runtime. One process holds
//! thousands of nodes; each node is a slot in shared tasks (Lease renewal, status posts, one
//! watch of Nodes and one of bound pods) plus one small task for its pods.
//!
//! What it owns, kubelet's part of the API:
//! - **registration** of each Node (create, or take over an existing one): kubelet's labels,
//!   taints, a pod CIDR, capacity = allocatable, the four conditions, addresses, nodeInfo;
//! - **heartbeats**: a Lease in `kube-node-lease` renewed every 10 s, and the node status
//!   re-posted every report interval, or within 10 s when someone else changed it;
//! - **pods** bound to its nodes: Pending/ContainerCreating, then Running with a pod IP and
//!   ready containers (readiness probes wait their initial delay), Jobs' pods ending Succeeded
//!   or Failed as annotations say, restarts with CrashLoopBackOff, and deletion: containers
//!   stopped within the grace period, final status, then kubelet's `DELETE` with grace 0 and a
//!   UID precondition.
//!
//! - **stop and restart** of single nodes while the process runs ([`NodeControl`], served over
//!   HTTP by [`admin_router`]): a stopped node is silent as a dead machine is;
//! - the **pod CIDR** the node IPAM controller assigns, when nodes register without one
//!   (`register_pod_cidr: false`): pod IPs come from it once it is set.
//!
//! # Layout
//! Pure modules, no I/O, unit-tested: `config` (flags), `quantity` and `qos`, `ipam`,
//! `schedule` (heartbeat spreading and backoff), `node` (the Node object and status), and
//! `pod::{observe, state, sim, status}` (the per-node pod state machine and the status it writes).
//! `runtime` is the thin I/O layer over kube-rs.
//!
//! Architecture invariant: this crate talks to the API server only through `kube::Client`.
//! It must not depend on `mainstay-apiserver`, `-store`, `-raft`, `-server`, `-proto`,
//! `etcd-client`, `mainstay-scheduler` or `mainstay-controllers`; of Mainstay's crates it
//! uses only `mainstay-component` (Events). Nodes do not elect leaders: each process holds
//! its own disjoint range of node names.

use std::future::Future;

mod config;
mod control;
mod error;
mod ids;
mod ipam;
mod node;
mod pod;
mod qos;
mod quantity;
mod runtime;
mod schedule;

pub use config::{
    parse_labels, parse_taint, NodesConfig, MAX_CONTAINER_BACKOFF, NODE_STATUS_UPDATE_FREQUENCY,
};
pub use control::{admin_router, serve_admin, ControlOutcome, NodeControl};
pub use error::Error;
pub use pod::observe::{
    ANNOTATION_EXIT_CODE, ANNOTATION_RUN_SECONDS, ANNOTATION_TERMINATION_SECONDS, DEFAULT_JOB_RUN,
};

/// Registers `cfg.count` nodes, then runs them until `shutdown` resolves: Leases, node
/// statuses and the pods bound to them. Returns `Ok(())` on shutdown (Nodes and Leases are
/// left in place, as a stopped kubelet leaves them), or an error when the configuration is
/// invalid, the API server refuses a node for good, or a task of the simulation stops
/// (a bug). Transient API failures are retried, never returned.
pub async fn run(
    client: kube::Client,
    cfg: NodesConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    let control = NodeControl::new(&cfg);
    run_with_control(client, cfg, control, shutdown).await
}

/// [`run`], with a [`NodeControl`] that stops and starts single nodes while they run (made
/// from the same `cfg`).
pub async fn run_with_control(
    client: kube::Client,
    cfg: NodesConfig,
    control: NodeControl,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    cfg.validate()?;
    runtime::run(client, cfg, control, shutdown).await
}

#[cfg(test)]
mod memory_tests;
