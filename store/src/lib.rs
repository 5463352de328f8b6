//! `mainstay-store`: the MVCC key-value store with etcd v3 semantics, on RocksDB.
//!
//! Owns: revisions and the per-key index ([`Revision`], generations), the durable layout in RocksDB,
//! range / put / delete / txn / compaction semantics, leases' durable state (TTL, attached keys),
//! alarms, hashing and snapshots of the data, request validation, and the watch hub that fans
//! changes out to watchers (a layer over the store, not inside it).
//!
//! The store is a deterministic state machine: [`Store::apply`] takes [`Command`]s and its result
//! depends only on the commands and the prior state — no wall clock, no randomness, no I/O but its
//! own RocksDB write batch — so replicas applying the same log hold the same data. Anything
//! non-deterministic (a fresh lease ID, the decision that a lease expired) is decided before a
//! command is made.
//!
//! Must not depend on: protobuf/gRPC types (the server converts at the edge), Raft, networking, or
//! the wall clock. `tokio` is used only for the watch hub's bounded channels and notifications.

mod backend;
pub mod error;
mod index;
mod key_index;
pub mod kv;
mod mvcc;
pub mod request;
pub mod revision;
pub mod validate;
pub mod watch;

pub use error::{Result, StoreError};
pub use kv::{prefix_range_end, Event, EventKind, KeyRange, KeyValue};
pub use mvcc::{Applied, HashKv, Store, StoreConfig, MAX_LEASE_TTL_SECS, SNAPSHOT_MAGIC};
pub use request::*;
pub use revision::Revision;
