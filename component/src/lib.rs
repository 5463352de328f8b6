//! `mainstay-component`: what every Kubernetes component of Mainstay shares — kube's
//! `k8s.io/component-base` and client-go's `tools/leaderelection` and `tools/record`.
//!
//! Owns:
//! - [`client`](mod@client): a `kube::Client` from `--kubeconfig` or the environment (HTTPS with the
//!   kubeconfig's CA, bearer tokens; rustls on ring).
//! - [`election`]: Lease leader election on `coordination.k8s.io/v1` with client-go's semantics,
//!   and [`Leading`], the term of leadership every leader's write checks first.
//! - [`events`]: a core/v1 Event recorder as client-go's legacy recorder (bounded queue, counts
//!   repeats).
//! - [`metrics`] and [`serve`]: a small Prometheus registry and `/healthz`, `/livez`, `/readyz`,
//!   `/metrics` over plain HTTP.
//!
//! Must not depend on: any other `mainstay-*` crate, `etcd-client`, the store or the apiserver.
//! It reaches a cluster only through the Kubernetes API (kube-rs), like kube's own components.
//!
//! Decisions are pure and tested without sockets or sleeps (election's `decide`, the Event
//! correlator, metric rendering); the I/O around them is thin.

pub mod client;
pub mod election;
pub mod error;
pub mod events;
pub mod leading;
pub mod metrics;
pub mod serve;

pub use client::client;
pub use election::{default_identity, run_elected, ElectionConfig};
pub use error::Error;
pub use events::{object_reference, EventType, Recorder};
pub use leading::{Leading, NotLeading};
pub use metrics::{Counter, Gauge, Histogram, Metrics};
pub use serve::serve_health;
