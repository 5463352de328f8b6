//! The client side of the peer transport: openraft's RPCs to other members over tonic gRPC, on
//! their peer URLs, as bincode payloads. One lazily connected HTTP/2 channel per peer carries all
//! of its RPCs; the payload limit bounds what one message may carry.

use mainstay_proto::mainstaypb::raft_peer_client::RaftPeerClient;
use mainstay_proto::mainstaypb::RaftPayload;
use openraft::error::{
    Infallible, InstallSnapshotError, NetworkError, RPCError, RaftError as ORaftError, RemoteError,
    Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tonic::transport::{Channel, Endpoint};

use crate::codec::{decode, encode};
use crate::{Member, NodeId, TypeConfig};

/// Largest peer message accepted or sent (an append of many large entries, a snapshot chunk).
pub const MAX_PEER_MESSAGE_BYTES: usize = 256 << 20;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// A lazily connected channel to a member's first peer URL.
pub fn peer_channel(url: &str) -> Result<Channel, String> {
    let endpoint = Endpoint::from_shared(url.to_string()).map_err(|e| format!("{url}: {e}"))?;
    Ok(endpoint
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(5))
        .keep_alive_timeout(Duration::from_secs(5))
        .connect_lazy())
}

/// Makes openraft's per-peer clients. openraft asks for a new client for every replication
/// stream, vote round and leadership check; they share one HTTP/2 channel per peer URL (a channel
/// multiplexes requests and reconnects by itself), so none of them pays for a new connection.
#[derive(Clone, Default)]
pub struct NetworkFactory {
    channels: Arc<Mutex<HashMap<String, Channel>>>,
}

impl NetworkFactory {
    fn channel(&self, url: &str) -> Result<Channel, String> {
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = channels.get(url) {
            return Ok(c.clone());
        }
        let channel = peer_channel(url)?;
        channels.insert(url.to_string(), channel.clone());
        Ok(channel)
    }
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &Member) -> PeerClient {
        let client = match node.peer_urls.first() {
            Some(url) => self.channel(url).map(|ch| {
                RaftPeerClient::new(ch)
                    .max_decoding_message_size(MAX_PEER_MESSAGE_BYTES)
                    .max_encoding_message_size(MAX_PEER_MESSAGE_BYTES)
            }),
            None => Err(format!("member {target:x} has no peer URL")),
        };
        PeerClient { target, client }
    }
}

pub struct PeerClient {
    target: NodeId,
    client: Result<RaftPeerClient<Channel>, String>,
}

type RpcResult<T, E> = Result<T, RPCError<NodeId, Member, ORaftError<NodeId, E>>>;

impl PeerClient {
    async fn call<Req, Resp, E>(
        &mut self,
        kind: Rpc,
        rpc: &Req,
        option: &RPCOption,
    ) -> RpcResult<Resp, E>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let client = match &mut self.client {
            Ok(c) => c,
            Err(e) => {
                let e = std::io::Error::other(e.clone());
                return Err(RPCError::Unreachable(Unreachable::new(&e)));
            }
        };
        let data = encode(rpc).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let mut request = tonic::Request::new(RaftPayload { data });
        request.set_timeout(option.hard_ttl());
        let reply = match kind {
            Rpc::Append => client.append_entries(request).await,
            Rpc::Vote => client.vote(request).await,
            Rpc::Snapshot => client.install_snapshot(request).await,
        };
        let reply = reply.map_err(|status| match status.code() {
            tonic::Code::Unavailable => RPCError::Unreachable(Unreachable::new(&status)),
            _ => RPCError::Network(NetworkError::new(&status)),
        })?;
        let result: Result<Resp, ORaftError<NodeId, E>> = decode(&reply.into_inner().data)
            .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

enum Rpc {
    Append,
    Vote,
    Snapshot,
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>, Infallible> {
        self.call(Rpc::Append, &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
        self.call(Rpc::Snapshot, &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>, Infallible> {
        self.call(Rpc::Vote, &rpc, &option).await
    }
}
