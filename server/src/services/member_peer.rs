//! The `MemberPeer` gRPC service on the peer URLs: what other members forward to this one (as
//! leader) and ask of it. An adapter over the [`Node`] like the client-facing services; the
//! payloads are [`crate::peer::wire`]'s.

use std::sync::Arc;

use mainstay_proto::mainstaypb::member_peer_server::{MemberPeer, MemberPeerServer};
use mainstay_proto::mainstaypb::RaftPayload;
use mainstay_raft::codec::{decode, encode};
use mainstay_raft::identity;
use mainstay_raft::network::MAX_PEER_MESSAGE_BYTES;
use mainstay_store::{validate, Command, CommandOutput, StoreError};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status};

use crate::error::{Result, ServerError};
use crate::node::Node;
use crate::peer::wire::{ClusterOp, Reply, WireError};

/// The `MemberPeer` service over this member.
pub struct MemberPeerService {
    node: Arc<Node>,
}

pub fn service(node: Arc<Node>) -> MemberPeerServer<MemberPeerService> {
    MemberPeerServer::new(MemberPeerService { node })
        .max_decoding_message_size(MAX_PEER_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_PEER_MESSAGE_BYTES)
}

fn payload<T: DeserializeOwned>(request: Request<RaftPayload>) -> std::result::Result<T, Status> {
    decode(&request.into_inner().data).map_err(|e| Status::invalid_argument(e.to_string()))
}

fn reply<T: Serialize>(value: &T) -> std::result::Result<Response<RaftPayload>, Status> {
    let data = encode(value).map_err(|e| Status::internal(e.to_string()))?;
    Ok(Response::new(RaftPayload { data }))
}

/// `Ok(None)` from a leader-only operation becomes "not the leader".
fn leader_only<T>(r: Result<Option<T>>) -> Reply<T> {
    match r {
        Ok(Some(v)) => Ok(v),
        Ok(None) => Err(WireError::NotLeader),
        Err(e) => Err(e.into()),
    }
}

impl MemberPeerService {
    /// The member a call comes from: of this cluster, and a member of it (any member of it while
    /// this one knows no membership yet), as the Raft messages' sender is checked.
    fn sender(&self, metadata: &MetadataMap) -> std::result::Result<u64, Status> {
        let members = self.node.members();
        identity::sender(metadata, self.node.cluster_id, |id| {
            members.is_empty() || members.iter().any(|m| m.id == id)
        })
    }
}

#[tonic::async_trait]
impl MemberPeer for MemberPeerService {
    async fn propose(
        &self,
        request: Request<RaftPayload>,
    ) -> std::result::Result<Response<RaftPayload>, Status> {
        self.sender(request.metadata())?;
        let command: Command = payload(request)?;
        // Checked again here as the member that took it from a client checked it: no peer can
        // propose what no client could.
        if let Err(e) = validate::check_command(&command, self.node.config.max_txn_ops) {
            let refused: Reply<(u64, std::result::Result<CommandOutput, StoreError>)> =
                Ok((0, Err(e)));
            return reply(&refused);
        }
        let answer: Reply<(u64, std::result::Result<CommandOutput, StoreError>)> =
            match self.node.propose_local(command).await {
                Ok(Some((index, output))) => Ok((index, Ok(output))),
                Ok(None) => Err(WireError::NotLeader),
                Err(ServerError::Store(e)) => Ok((0, Err(e))),
                Err(e) => Err(e.into()),
            };
        reply(&answer)
    }

    async fn read_index(
        &self,
        request: Request<RaftPayload>,
    ) -> std::result::Result<Response<RaftPayload>, Status> {
        self.sender(request.metadata())?;
        reply(&leader_only(self.node.leader_read_index().await))
    }

    async fn lease_keep_alive(
        &self,
        request: Request<RaftPayload>,
    ) -> std::result::Result<Response<RaftPayload>, Status> {
        self.sender(request.metadata())?;
        let id: i64 = payload(request)?;
        let answer: Reply<i64> = if self.node.is_leader() {
            self.node
                .renew_lease_local(id)
                .await
                .map_err(WireError::from)
        } else {
            Err(WireError::NotLeader)
        };
        reply(&answer)
    }

    async fn lease_time_to_live(
        &self,
        request: Request<RaftPayload>,
    ) -> std::result::Result<Response<RaftPayload>, Status> {
        self.sender(request.metadata())?;
        let id: i64 = payload(request)?;
        let answer = if self.node.is_leader() {
            Ok(self.node.lease_ttl_local(id))
        } else {
            Err(WireError::NotLeader)
        };
        reply(&answer)
    }

    async fn cluster(
        &self,
        request: Request<RaftPayload>,
    ) -> std::result::Result<Response<RaftPayload>, Status> {
        let from = self.sender(request.metadata())?;
        let op: ClusterOp = payload(request)?;
        // A member publishes its own name and client URLs, no other's.
        if let ClusterOp::Publish { id, .. } = &op {
            if *id != from {
                return Err(Status::permission_denied(format!(
                    "peer: member {from:x} may not publish member {id:x}"
                )));
            }
        }
        reply(&leader_only(self.node.change_cluster_local(op).await))
    }

    async fn campaign(
        &self,
        request: Request<RaftPayload>,
    ) -> std::result::Result<Response<RaftPayload>, Status> {
        self.sender(request.metadata())?;
        self.node
            .raft
            .trigger()
            .elect()
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        reply(&())
    }

    /// Asked by a joining member before it knows its own IDs: answered to anyone (the IDs and
    /// URLs are what etcd's `/members` peer endpoint also serves).
    async fn members(
        &self,
        _request: Request<RaftPayload>,
    ) -> std::result::Result<Response<RaftPayload>, Status> {
        reply(&(self.node.cluster_id, self.node.members()))
    }
}
