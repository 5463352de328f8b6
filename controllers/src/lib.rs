//! `mainstay-controllers`: Mainstay's kube-controller-manager — the controllers of
//! `pkg/controller` (ReplicaSet, ReplicationController, Deployment, DaemonSet, StatefulSet,
//! Namespace, the garbage collector, Job, CronJob, TTL-after-finished, ServiceAccount,
//! Endpoints, EndpointSlice, disruption, and the node controllers: node lifecycle, taint
//! eviction, node IPAM, pod GC) and the manager that runs the ones `--controllers` enables for
//! one term of leadership.
//!
//! **Owns:** the manager's descriptor table and `--controllers` semantics ([`manager`]); per
//! controller, the pure decisions in a `sync` module (which pods to create, delete, adopt or
//! release, and the status to write — plain functions of the objects and the time, unit-tested
//! without sockets or sleeps) apart from the thin I/O that watches objects into caches, queues
//! keys and performs the writes (the garbage collector's pure part is its dependency graph and
//! per-item decisions, [`gc`]); the shared watch cache, work queue and pod predicates
//! ([`util`]); the watch-and-worker loop the workload controllers share ([`runner`]); the
//! ControllerRevision history DaemonSets and StatefulSets keep ([`history`]).
//!
//! **Reaches the cluster only through the Kubernetes API** (kube-rs), like kube's own
//! controllers; each write is preceded by `Leading::ensure()`.
//!
//! **Must not depend on:** the apiserver, store, raft, server, proto, etcd-client, scheduler or
//! nodesim crates — no `mainstay-*` crate but `mainstay-component`.

pub mod cronjob;
pub mod daemonset;
pub mod deployment;
pub mod disruption;
pub mod endpoint;
pub mod endpointslice;
pub mod error;
pub mod gc;
pub mod history;
pub mod job;
pub mod manager;
pub mod namespace;
pub mod nodeconfig;
pub mod nodeipam;
pub mod nodelifecycle;
pub mod podgc;
pub mod replicaset;
pub mod runner;
pub mod serviceaccount;
pub mod statefulset;
pub mod tainteviction;
pub mod ttlafterfinished;
pub mod util;

pub use error::{Error, Result};
pub use manager::{enabled_controllers, run, ManagerConfig};
