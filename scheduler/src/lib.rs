//! `mainstay-scheduler`: a kube-scheduler (kube 1.32's `pkg/scheduler` with the default
//! profile) written on kube-rs. It watches nodes and pods, picks a node for each pending pod
//! whose `spec.schedulerName` is its own, and binds it with `POST pods/<name>/binding`.
//!
//! # What it owns
//! - [`algorithm`] (pure): the default filters — NodeUnschedulable, NodeName, TaintToleration,
//!   NodeAffinity, NodePorts, NodeResourcesFit — and scores — NodeResourcesFit LeastAllocated
//!   (1), NodeResourcesBalancedAllocation (1), TaintToleration (3), NodeAffinity (2),
//!   PodTopologySpread system defaults (2) — with kube's normalization, weights, random
//!   tie-breaking, adaptive `percentageOfNodesToScore` with a rotating start index, and kube's
//!   `FitError` text.
//! - [`resources`] (pure): Kubernetes quantities and pod requests.
//! - [`snapshot`] (pure): per-node sums the algorithm reads, updated in place.
//! - [`queue`] (pure, tokio time): activeQ / backoffQ / unschedulable pods / gated pods.
//! - [`cache`] (pure): nodes, bound pods and assumed pods.
//! - [`pods`] (pure): routing watch events, the Binding, the `PodScheduled` condition patch.
//! - [`run`] and [`bind`] (thin I/O): the watches, the scheduling loop, the writes, each
//!   preceded by `leading.ensure()`; [`metrics`]: counters in Prometheus text.
//!
//! # What it does not do (kube does)
//! Preemption (DefaultPreemption, so no `nominatedNodeName` and no "preemption: …" suffix on
//! `FailedScheduling`), InterPodAffinity, ImageLocality, the volume plugins (VolumeBinding,
//! VolumeRestrictions, VolumeZone, NodeVolumeLimits and the cloud disk limits), DRA, a pod's
//! own `topologySpreadConstraints` (such a pod gets no spreading score and its DoNotSchedule
//! constraints are not enforced), Services as spreading selectors (the default spreading counts
//! pods sharing the pod's first ownerReference when it is a ReplicaSet, StatefulSet or
//! ReplicationController — kube's own `PodsWithOwnerRef` approximation of the owner's
//! selector), queueing hints finer than "which filter rejected the pod", extenders, multiple
//! profiles and scheduler configuration files, and parallel filtering/scoring (one thread
//! evaluates the sampled nodes).
//!
//! # Must not depend on
//! Any `mainstay-*` crate except `mainstay-component` — in particular not the apiserver, store,
//! raft, server or proto crates, nor `etcd-client`, nor the controllers or nodesim crates. It
//! talks to an API server only through kube-rs.

pub mod algorithm;
pub mod bind;
pub mod cache;
pub mod error;
pub mod metrics;
pub mod pods;
pub mod queue;
pub mod resources;
pub mod run;
pub mod snapshot;

pub use algorithm::{Algorithm, FitError, ScheduleResult};
pub use error::Error;
pub use metrics::Metrics;
pub use run::{run, run_with_metrics, SchedulerConfig};
pub use snapshot::{NodeInfo, Snapshot};
