//! Mainstay's benchmarks: a load generator that speaks etcd's v3 gRPC API, and the harness that
//! runs it against a 3-member Mainstay cluster and a 3-member etcd cluster side by side.
//!
//! What it owns:
//! - [`workload`]: etcd `tools/benchmark`-style workloads (put, range, compare-and-swap txn, watch
//!   latency, lease keep-alive, a Kubernetes-shaped mix) with a fixed operation count, run by
//!   closed-loop clients over a fixed number of gRPC connections.
//! - [`procstat`]: the servers' resident memory, CPU time and data size, read from `/proc` and the
//!   file system.
//! - [`harness`]: one command that starts both clusters (through `mainstay-testkit`), runs every
//!   workload against both interleaved (A B A B), then the scale checks (1M keys, 10k and 100k
//!   watchers), and hands the results to [`report`].
//! - [`apiserver`]: the same pod workload (create, get, paginated and cached lists, watch delay,
//!   update, delete) through one `mainstay apiserver` per system, judged against Kubernetes' API
//!   call latency SLOs.
//! - [`controlplane`]: Mainstay's scheduler, controller-manager and simulated nodes over one
//!   apiserver per system, in scheduler_perf's and ClusterLoader2's shapes (scheduling
//!   throughput, pod startup latency, simulated node scale), through kube-rs.
//! - [`process`]: the `mainstay` processes the benchmarks start (apiserver, components).
//! - [`report`]: JSON results, the markdown table of Mainstay/etcd ratios and the PNG charts.
//! - [`systems`]: the two systems compared, the run's options, and starting a cluster of either;
//!   what `harness` and `apiserver` share (`harness` orchestrates on top of `workload` and
//!   `apiserver`, and nothing imports `harness` back).
//!
//! Rules: it knows nothing of Mainstay's internals. It talks to both servers only through the
//! client API (generated stubs from `mainstay-proto`, the Kubernetes API with hyper or kube-rs)
//! and starts them only as processes, with etcd's flags, so neither side gets a path the other
//! lacks.

pub mod apiserver;
pub mod controlplane;
pub mod error;
pub mod harness;
pub mod histogram;
pub mod process;
pub mod procstat;
pub mod report;
pub mod systems;
pub mod workload;

pub use error::Error;
