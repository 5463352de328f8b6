//! `mainstay-testkit`: what the multi-process tests share.
//!
//! Owns: what every test client shares ([`client`]: bounded connect and request times, "certainly
//! not sent", etcd's `prefix_end`); a harness that runs a cluster of real server processes on
//! loopback (mainstay, or real etcd for comparison) and injects faults (kill -9, restart, wipe,
//! membership changes); client workloads that record every operation; and checkers for the
//! recorded histories
//! (per-key linearizability, per-client revision monotonicity, watch streams against the store's
//! history).
//!
//! Must not depend on: any mainstay crate. It talks to servers only through etcd's v3 API (the
//! `etcd-client` crate) and process control, so the same tests run against real etcd.

pub mod client;
pub mod cluster;
pub mod history;
pub mod lincheck;
pub mod watchcheck;
pub mod watching;
pub mod workload;
