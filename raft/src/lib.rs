//! `mainstay-raft`: replication of the store across members with openraft.
//!
//! Owns: the openraft type configuration ([`TypeConfig`]), the Raft log on RocksDB with group
//! commit ([`log_store::LogStore`]), the state machine that applies committed entries to the
//! `store` crate's [`Store`](mainstay_store::Store) and builds / installs snapshots as files
//! streamed in chunks ([`state_machine::StateMachine`]), the peer transport over tonic gRPC
//! (client side in [`network`], server side in [`peer`]), and the bincode encoding of what crosses
//! the wire or the disk ([`codec`]).
//!
//! Must not depend on: the server crate, etcd's client API types (`etcdserverpb`), the wall clock in
//! anything applied. What a member does with an applied entry beyond the store (watchers, leases)
//! is the server's business, told through [`state_machine::ApplyObserver`].

pub mod codec;
pub mod error;
pub mod identity;
pub mod log_store;
pub mod network;
pub mod peer;
pub mod state_machine;

use mainstay_store::{Command, CommandOutput, StoreError};
use serde::{Deserialize, Serialize};

pub use error::{RaftError, Result};

/// A member's identity as the cluster's membership records it (etcd's `Member`, without the ID,
/// which is the Raft node ID). Learner or voter is a property of the membership, not of the member.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Empty until the member has started and published itself (as in etcd).
    pub name: String,
    pub peer_urls: Vec<String>,
    /// Empty until the member has started and published itself.
    pub client_urls: Vec<String>,
}

impl std::fmt::Display for Member {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{:?}", self.name, self.peer_urls)
    }
}

/// A log entry's application data: commands proposed together, applied in order in one store
/// batch. (openraft 0.9 appends each entry on its own, so concurrent proposals share an entry
/// rather than each paying for one.)
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub commands: Vec<Command>,
}

impl Request {
    pub fn one(command: Command) -> Request {
        Request {
            commands: vec![command],
        }
    }
}

impl std::fmt::Display for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.commands.as_slice() {
            [one] => write!(f, "{one:?}"),
            many => write!(f, "{} commands", many.len()),
        }
    }
}

/// The result of applying one entry: one output per command of its [`Request`], in order (none
/// for blank and membership entries).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    pub outputs: Vec<std::result::Result<CommandOutput, StoreError>>,
}

openraft::declare_raft_types!(
    /// openraft's types for Mainstay: u64 member IDs (etcd's member IDs), store commands as the
    /// application data, snapshots as files.
    pub TypeConfig:
        D = Request,
        R = Response,
        NodeId = u64,
        Node = Member,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = tokio::fs::File,
        AsyncRuntime = openraft::TokioRuntime,
        Responder = openraft::impls::OneshotResponder<TypeConfig>,
);

pub type Raft = openraft::Raft<TypeConfig>;
pub type NodeId = u64;
pub type LogId = openraft::LogId<NodeId>;
pub type Entry = openraft::Entry<TypeConfig>;
pub type Membership = openraft::Membership<NodeId, Member>;
pub type StoredMembership = openraft::StoredMembership<NodeId, Member>;
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, Member>;
pub type Vote = openraft::Vote<NodeId>;
pub type StorageError = openraft::StorageError<NodeId>;
pub type RaftMetrics = openraft::RaftMetrics<NodeId, Member>;
