//! Who a peer message claims to come from, and what a member refuses to take from a peer.
//!
//! Every peer call carries the cluster ID and the sender's member ID in its metadata (as etcd's
//! peer requests carry `X-Etcd-Cluster-ID` and `X-Server-From`); a member refuses calls from
//! another cluster, from members it does not know, and Raft messages that claim another sender
//! than the one named. This is not authentication (both IDs are public; peers authenticate with
//! TLS client certificates in the security work): it keeps a misdirected or stale member out, and
//! together with the term bound below it makes sure no single message, forged or corrupt, can put
//! a member in a state it cannot leave.

use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::Status;

use crate::{LogId, NodeId, TypeConfig, Vote};

pub const CLUSTER_ID_HEADER: &str = "mainstay-cluster-id";
pub const MEMBER_ID_HEADER: &str = "mainstay-member-id";

/// The largest Raft term a member accepts from a peer. Terms grow by one per election: at one
/// election per millisecond, 2^48 takes about nine thousand years to reach. A term beyond it can
/// only be forged or corrupt, and taking it would bring the cluster's terms within reach of
/// overflow (a vote of term 2^64−1 made every member's next election panic).
pub const TERM_MAX: u64 = 1 << 48;

/// This member, as named in the metadata of every peer call it makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerIdentity {
    pub cluster_id: u64,
    pub member_id: u64,
}

impl PeerIdentity {
    /// Adds the cluster and member IDs to a call's metadata.
    pub fn stamp(&self, metadata: &mut MetadataMap) {
        metadata.insert(CLUSTER_ID_HEADER, hex_value(self.cluster_id));
        metadata.insert(MEMBER_ID_HEADER, hex_value(self.member_id));
    }
}

impl tonic::service::Interceptor for PeerIdentity {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        self.stamp(request.metadata_mut());
        Ok(request)
    }
}

fn hex_value(id: u64) -> MetadataValue<tonic::metadata::Ascii> {
    format!("{id:x}")
        .parse()
        .expect("hex digits are valid metadata")
}

fn header_id(metadata: &MetadataMap, name: &str) -> Result<u64, Status> {
    let value = metadata
        .get(name)
        .ok_or_else(|| Status::failed_precondition(format!("peer: {name} missing")))?;
    value
        .to_str()
        .ok()
        .and_then(|s| u64::from_str_radix(s, 16).ok())
        .ok_or_else(|| Status::invalid_argument(format!("peer: {name} is not a hex member ID")))
}

/// The sender named by a peer call, checked against this member's cluster ID and the members it
/// knows. `known` is false for a sender outside this member's membership; a member that knows no
/// membership yet (one joining a cluster, before the leader's first message) takes any sender of
/// its cluster.
pub fn sender(
    metadata: &MetadataMap,
    cluster_id: u64,
    known: impl FnOnce(u64) -> bool,
) -> Result<u64, Status> {
    let theirs = header_id(metadata, CLUSTER_ID_HEADER)?;
    if theirs != cluster_id {
        return Err(Status::failed_precondition(format!(
            "peer: cluster ID mismatch (the sender's is {theirs:x}, this member's {cluster_id:x})"
        )));
    }
    let from = header_id(metadata, MEMBER_ID_HEADER)?;
    if !known(from) {
        return Err(Status::permission_denied(format!(
            "peer: member {from:x} is not a member of this cluster"
        )));
    }
    Ok(from)
}

fn term_ok(term: u64, what: &str) -> Result<(), Status> {
    if term > TERM_MAX {
        return Err(Status::invalid_argument(format!(
            "peer: {what} term {term} is beyond the largest term elections can reach ({TERM_MAX})"
        )));
    }
    Ok(())
}

fn log_id_ok(log_id: &Option<LogId>, what: &str) -> Result<(), Status> {
    match log_id {
        Some(id) => term_ok(id.leader_id.term, what),
        None => Ok(()),
    }
}

/// A message's vote must be the sender's own (a leader appends and snapshots, a candidate asks for
/// votes, under its own ID) and within reach of counting elections.
fn vote_ok(vote: &Vote, from: u64) -> Result<(), Status> {
    term_ok(vote.leader_id.term, "vote")?;
    if vote.leader_id.node_id != from {
        return Err(Status::invalid_argument(format!(
            "peer: the message's vote names member {:x}, but member {from:x} sent it",
            vote.leader_id.node_id
        )));
    }
    Ok(())
}

pub fn check_append(rpc: &AppendEntriesRequest<TypeConfig>, from: NodeId) -> Result<(), Status> {
    vote_ok(&rpc.vote, from)?;
    log_id_ok(&rpc.prev_log_id, "previous log")?;
    log_id_ok(&rpc.leader_commit, "commit")?;
    for entry in &rpc.entries {
        term_ok(entry.log_id.leader_id.term, "entry")?;
    }
    Ok(())
}

pub fn check_vote(rpc: &VoteRequest<NodeId>, from: NodeId) -> Result<(), Status> {
    vote_ok(&rpc.vote, from)?;
    log_id_ok(&rpc.last_log_id, "last log")
}

pub fn check_snapshot(
    rpc: &InstallSnapshotRequest<TypeConfig>,
    from: NodeId,
) -> Result<(), Status> {
    vote_ok(&rpc.vote, from)?;
    log_id_ok(&rpc.meta.last_log_id, "snapshot")?;
    log_id_ok(rpc.meta.last_membership.log_id(), "snapshot membership")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vote(term: u64, node: u64) -> Vote {
        openraft::Vote::new(term, node)
    }

    #[test]
    fn calls_name_their_cluster_and_sender() {
        let me = PeerIdentity {
            cluster_id: 0xc1,
            member_id: 0xa,
        };
        let mut md = MetadataMap::new();
        me.stamp(&mut md);
        assert_eq!(sender(&md, 0xc1, |id| id == 0xa).unwrap(), 0xa);
        let other_cluster = sender(&md, 0xc2, |_| true).unwrap_err();
        assert_eq!(other_cluster.code(), tonic::Code::FailedPrecondition);
        assert!(other_cluster.message().contains("cluster ID mismatch"));
        let stranger = sender(&md, 0xc1, |_| false).unwrap_err();
        assert_eq!(stranger.code(), tonic::Code::PermissionDenied);
        assert_eq!(
            sender(&MetadataMap::new(), 0xc1, |_| true)
                .unwrap_err()
                .code(),
            tonic::Code::FailedPrecondition
        );
        let mut garbled = MetadataMap::new();
        garbled.insert(CLUSTER_ID_HEADER, "c1".parse().unwrap());
        garbled.insert(MEMBER_ID_HEADER, "not-hex".parse().unwrap());
        assert_eq!(
            sender(&garbled, 0xc1, |_| true).unwrap_err().code(),
            tonic::Code::InvalidArgument
        );
    }

    #[test]
    fn terms_beyond_reach_and_borrowed_names_are_refused() {
        let ok = VoteRequest::new(vote(7, 2), None);
        assert!(check_vote(&ok, 2).is_ok());
        // The 27-byte message that bricked a cluster: a vote of term 2^64−1.
        let forged = VoteRequest::new(vote(u64::MAX, 2), None);
        assert_eq!(
            check_vote(&forged, 2).unwrap_err().code(),
            tonic::Code::InvalidArgument
        );
        assert!(check_vote(&VoteRequest::new(vote(TERM_MAX, 2), None), 2).is_ok());
        assert!(check_vote(&VoteRequest::new(vote(TERM_MAX + 1, 2), None), 2).is_err());
        // Another member's name.
        assert!(check_vote(&ok, 3).is_err());
        let append = AppendEntriesRequest::<TypeConfig> {
            vote: vote(u64::MAX, 2),
            prev_log_id: None,
            entries: vec![],
            leader_commit: None,
        };
        assert!(check_append(&append, 2).is_err());
        let stale_log = AppendEntriesRequest::<TypeConfig> {
            vote: vote(3, 2),
            prev_log_id: Some(openraft::LogId::new(
                openraft::CommittedLeaderId::new(u64::MAX, 2),
                1,
            )),
            entries: vec![],
            leader_commit: None,
        };
        assert!(check_append(&stale_log, 2).is_err());
    }
}
