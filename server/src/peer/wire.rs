//! What travels between members in a `MemberPeer` call besides commands: membership changes and
//! listings, lease TTLs, and the leader's refusals. bincode payloads; client and service both use
//! these and nothing else of each other.

use mainstay_raft::Member;
use serde::{Deserialize, Serialize};
use tonic::Status;

use crate::error::ServerError;

/// A member as membership lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberInfo {
    pub id: u64,
    pub member: Member,
    pub is_learner: bool,
}

/// A membership change, made by the leader.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum ClusterOp {
    Add {
        peer_urls: Vec<String>,
        is_learner: bool,
    },
    Promote {
        id: u64,
    },
    Remove {
        id: u64,
    },
    Update {
        id: u64,
        peer_urls: Vec<String>,
    },
    /// A started member's name and client URLs (etcd's publish).
    Publish {
        id: u64,
        member: Member,
    },
}

/// Why the leader did not do what was asked.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum WireError {
    /// The member asked is not the leader: nothing was done.
    NotLeader,
    /// The answer for the client, as a gRPC status.
    Status { code: i32, message: String },
}

/// What a `MemberPeer` call answers: the value, or why the leader did not do what was asked.
pub(crate) type Reply<T> = std::result::Result<T, WireError>;

impl From<ServerError> for WireError {
    fn from(e: ServerError) -> Self {
        let status: Status = e.into();
        WireError::Status {
            code: status.code() as i32,
            message: status.message().to_string(),
        }
    }
}

/// A lease's remaining and granted TTL and its keys, as the leader knows them.
#[derive(Debug, Serialize, Deserialize)]
pub struct LeaseTtl {
    pub remaining_secs: i64,
    pub granted_secs: i64,
    pub keys: Vec<Vec<u8>>,
}
