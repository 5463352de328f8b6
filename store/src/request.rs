//! Requests and responses of the store, as domain types. They mirror etcd's KV messages closely
//! (the server converts once at the edge), but hold only what the store needs: no headers, no
//! protobuf.

use crate::kv::KeyValue;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum SortOrder {
    #[default]
    None,
    Ascend,
    Descend,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum SortTarget {
    #[default]
    Key,
    Version,
    Create,
    Mod,
    Value,
}

#[derive(Clone, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct RangeRequest {
    pub key: Vec<u8>,
    pub range_end: Vec<u8>,
    /// At most this many keys; 0 means no limit.
    pub limit: i64,
    /// Read at this revision; 0 or less means the current one.
    pub revision: i64,
    pub sort_order: SortOrder,
    pub sort_target: SortTarget,
    pub keys_only: bool,
    pub count_only: bool,
    pub min_mod_revision: i64,
    pub max_mod_revision: i64,
    pub min_create_revision: i64,
    pub max_create_revision: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct RangeResponse {
    /// Revision of the store when the read was served (etcd's header revision).
    pub revision: i64,
    pub kvs: Vec<KeyValue>,
    pub more: bool,
    /// Number of keys in the range at the read revision, before `limit` and revision filters.
    pub count: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct PutRequest {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    pub lease: i64,
    pub prev_kv: bool,
    pub ignore_value: bool,
    pub ignore_lease: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct PutResponse {
    pub revision: i64,
    pub prev_kv: Option<KeyValue>,
}

#[derive(Clone, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct DeleteRangeRequest {
    pub key: Vec<u8>,
    pub range_end: Vec<u8>,
    pub prev_kv: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct DeleteRangeResponse {
    pub revision: i64,
    pub deleted: i64,
    pub prev_kvs: Vec<KeyValue>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum CompareResult {
    Equal,
    Greater,
    Less,
    NotEqual,
}

/// What a compare looks at, with the operand. (etcd's protobuf allows a target whose operand is of
/// another kind; the edge resolves that to the target's zero value, as etcd does.)
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum CompareTarget {
    Version(i64),
    CreateRevision(i64),
    ModRevision(i64),
    Value(Vec<u8>),
    Lease(i64),
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Compare {
    pub key: Vec<u8>,
    pub range_end: Vec<u8>,
    pub result: CompareResult,
    pub target: CompareTarget,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum RequestOp {
    Range(RangeRequest),
    Put(PutRequest),
    DeleteRange(DeleteRangeRequest),
    Txn(#[serde(deserialize_with = "nesting::nested")] TxnRequest),
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ResponseOp {
    Range(RangeResponse),
    Put(PutResponse),
    DeleteRange(DeleteRangeResponse),
    Txn(#[serde(deserialize_with = "nesting::nested")] TxnResponse),
}

/// How many levels of txns may nest inside a txn in what is decoded from a peer or the disk
/// (serde, bincode). A
/// client's txn reaches the store through protobuf, whose decoder stops at 100 nested messages
/// (two per txn level), so no request a client can send nests deeper than 50; a forged or
/// corrupt peer message of a few hundred kilobytes could otherwise nest tens of thousands of
/// levels and overflow the decoding thread's stack, which aborts the member.
pub const MAX_TXN_NESTING: usize = 64;

mod nesting {
    use std::cell::Cell;

    use serde::de::{Deserialize, Deserializer, Error};

    thread_local! {
        static DEPTH: Cell<usize> = const { Cell::new(0) };
    }

    /// Leaves the level on every path out, an error included.
    struct Level;

    impl Drop for Level {
        fn drop(&mut self) {
            DEPTH.with(|d| d.set(d.get().saturating_sub(1)));
        }
    }

    pub fn nested<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<T, D::Error> {
        let depth = DEPTH.with(|c| {
            c.set(c.get() + 1);
            c.get()
        });
        let _level = Level;
        if depth > super::MAX_TXN_NESTING {
            return Err(D::Error::custom(format!(
                "txns nested deeper than {} levels",
                super::MAX_TXN_NESTING
            )));
        }
        T::deserialize(d)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct TxnRequest {
    pub compare: Vec<Compare>,
    pub success: Vec<RequestOp>,
    pub failure: Vec<RequestOp>,
}

impl TxnRequest {
    /// Neither branch (nor any nested txn) puts or deletes: etcd serves such a txn as a read.
    pub fn is_read_only(&self) -> bool {
        self.success.iter().chain(&self.failure).all(|op| match op {
            RequestOp::Range(_) => true,
            RequestOp::Put(_) | RequestOp::DeleteRange(_) => false,
            RequestOp::Txn(t) => t.is_read_only(),
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct TxnResponse {
    /// For the outermost txn, the store revision after it; etcd leaves nested txns' revision at 0.
    pub revision: i64,
    pub succeeded: bool,
    pub responses: Vec<ResponseOp>,
}

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum AlarmKind {
    NoSpace,
    Corrupt,
}

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct Alarm {
    pub member_id: u64,
    pub kind: AlarmKind,
}

/// A state-changing command. Applying the same commands in the same order gives every replica the
/// same state: anything non-deterministic (a new lease ID, the decision that a lease expired) is
/// decided before the command is made.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Command {
    Put(PutRequest),
    DeleteRange(DeleteRangeRequest),
    Txn(TxnRequest),
    Compact {
        revision: i64,
    },
    LeaseGrant {
        id: i64,
        ttl_secs: i64,
    },
    LeaseRevoke {
        id: i64,
    },
    /// Persists the remaining TTL of leases so it survives a restart or leader change.
    LeaseCheckpoint {
        checkpoints: Vec<(i64, i64)>,
    },
    AlarmActivate(Alarm),
    AlarmDeactivate(Alarm),
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum CommandOutput {
    Put(PutResponse),
    DeleteRange(DeleteRangeResponse),
    Txn(TxnResponse),
    Compact {
        revision: i64,
    },
    LeaseGrant {
        id: i64,
        ttl_secs: i64,
        revision: i64,
    },
    LeaseRevoke {
        revision: i64,
    },
    LeaseCheckpoint {
        revision: i64,
    },
    /// Alarms changed by the command (activating an active alarm changes nothing).
    Alarm {
        changed: Vec<Alarm>,
        revision: i64,
    },
}

impl CommandOutput {
    /// Store revision after the command.
    pub fn revision(&self) -> i64 {
        match self {
            CommandOutput::Put(r) => r.revision,
            CommandOutput::DeleteRange(r) => r.revision,
            CommandOutput::Txn(r) => r.revision,
            CommandOutput::Compact { revision }
            | CommandOutput::LeaseGrant { revision, .. }
            | CommandOutput::LeaseRevoke { revision }
            | CommandOutput::LeaseCheckpoint { revision }
            | CommandOutput::Alarm { revision, .. } => *revision,
        }
    }
}

/// A lease as the store knows it: its granted TTL, the last checkpointed remaining TTL, and keys.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LeaseInfo {
    pub id: i64,
    pub ttl_secs: i64,
    /// Remaining TTL at the last checkpoint; 0 if never checkpointed.
    pub remaining_ttl_secs: i64,
    pub keys: Vec<Vec<u8>>,
}
