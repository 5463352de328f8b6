//! The server side of the peer transport: openraft's RPCs from other members, handed to the local
//! [`Raft`](crate::Raft).

use mainstay_proto::mainstaypb::raft_peer_server::{RaftPeer, RaftPeerServer};
use mainstay_proto::mainstaypb::RaftPayload;
use serde::de::DeserializeOwned;
use tonic::{Request, Response, Status};

use crate::codec::{decode, encode};
use crate::network::MAX_PEER_MESSAGE_BYTES;
use crate::Raft;

pub struct RaftPeerService {
    raft: Raft,
}

/// The `RaftPeer` gRPC service for the peer listener.
pub fn service(raft: Raft) -> RaftPeerServer<RaftPeerService> {
    RaftPeerServer::new(RaftPeerService { raft })
        .max_decoding_message_size(MAX_PEER_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_PEER_MESSAGE_BYTES)
}

fn payload<T: DeserializeOwned>(request: Request<RaftPayload>) -> Result<T, Status> {
    decode(&request.into_inner().data).map_err(|e| Status::invalid_argument(e.to_string()))
}

fn reply<T: serde::Serialize>(value: &T) -> Result<Response<RaftPayload>, Status> {
    let data = encode(value).map_err(|e| Status::internal(e.to_string()))?;
    Ok(Response::new(RaftPayload { data }))
}

#[tonic::async_trait]
impl RaftPeer for RaftPeerService {
    async fn append_entries(
        &self,
        request: Request<RaftPayload>,
    ) -> Result<Response<RaftPayload>, Status> {
        let rpc = payload(request)?;
        reply(&self.raft.append_entries(rpc).await)
    }

    async fn vote(&self, request: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        let rpc = payload(request)?;
        reply(&self.raft.vote(rpc).await)
    }

    async fn install_snapshot(
        &self,
        request: Request<RaftPayload>,
    ) -> Result<Response<RaftPayload>, Status> {
        let rpc = payload(request)?;
        reply(&self.raft.install_snapshot(rpc).await)
    }
}
