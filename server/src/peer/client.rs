//! The client side of the `MemberPeer` service: one connection per peer URL, and the calls a
//! member makes to another. The node resolves whom to call (the leader's peer URL); this module
//! only calls.
//!
//! Forwarding is careful about outcomes: an answer "not the leader" and a connection that could
//! not be made both mean the request was certainly not applied, and the caller retries with the
//! leader it learns next; any other failure after sending may have been applied, and becomes
//! etcd's "request timed out, possibly due to previous leader failure".

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use mainstay_proto::mainstaypb::member_peer_client::MemberPeerClient;
use mainstay_proto::mainstaypb::RaftPayload;
use mainstay_raft::codec::{decode, encode};
use mainstay_raft::identity::PeerIdentity;
use mainstay_raft::network::{peer_channel, MAX_PEER_MESSAGE_BYTES};
use mainstay_store::{Command, CommandOutput, StoreError};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::time::Instant;
use tonic::transport::Channel;
use tonic::{Request, Status};

use crate::error::{Result, ServerError};
use crate::peer::wire::{ClusterOp, LeaseTtl, MemberInfo, Reply, WireError};

/// One connection per peer URL, made on first use.
#[derive(Default)]
pub struct PeerClients {
    clients: Mutex<HashMap<String, MemberPeerClient<Channel>>>,
    /// This member's cluster and member IDs, stamped on every call once known (a joining member
    /// asks who it is before it knows them; that call, `members_at`, carries none).
    identity: OnceLock<PeerIdentity>,
}

/// Whether a failed call certainly never reached the peer's handler.
fn not_sent(status: &Status) -> bool {
    status.code() == tonic::Code::Unavailable
        && (status.message().contains("connect") || status.message().contains("Connection refused"))
}

impl PeerClients {
    /// Names this member in every later call.
    pub fn set_identity(&self, identity: PeerIdentity) {
        let _ = self.identity.set(identity);
    }

    /// A request carrying `data`, this member's identity and a timeout.
    fn request(&self, data: Vec<u8>, timeout: std::time::Duration) -> Request<RaftPayload> {
        let mut req = Request::new(RaftPayload { data });
        if let Some(identity) = self.identity.get() {
            identity.stamp(req.metadata_mut());
        }
        req.set_timeout(timeout);
        req
    }

    fn client(&self, url: &str) -> Result<MemberPeerClient<Channel>> {
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = clients.get(url) {
            return Ok(c.clone());
        }
        let channel = peer_channel(url).map_err(ServerError::Config)?;
        let client = MemberPeerClient::new(channel)
            .max_decoding_message_size(MAX_PEER_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_PEER_MESSAGE_BYTES);
        clients.insert(url.to_string(), client.clone());
        Ok(client)
    }

    /// Calls `rpc` on the leader at `url`. `Ok(None)`: certainly not done (not the leader, or
    /// not reachable); `idempotent` calls also treat any transport failure so.
    async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        url: &str,
        rpc: Rpc,
        request: &Req,
        deadline: Instant,
        idempotent: bool,
    ) -> Result<Option<Resp>> {
        let mut client = self.client(url)?;
        let req = self.request(
            encode(request)?,
            deadline.saturating_duration_since(Instant::now()),
        );
        let reply = match rpc {
            Rpc::Propose => client.propose(req).await,
            Rpc::ReadIndex => client.read_index(req).await,
            Rpc::KeepAlive => client.lease_keep_alive(req).await,
            Rpc::TimeToLive => client.lease_time_to_live(req).await,
            Rpc::Cluster => client.cluster(req).await,
        };
        let reply = match reply {
            Ok(r) => r.into_inner(),
            Err(status) if idempotent || not_sent(&status) => {
                tracing::debug!(%url, %status, "forwarding to the leader failed; retrying");
                return Ok(None);
            }
            Err(status) if status.code() == tonic::Code::DeadlineExceeded => {
                return Err(ServerError::Timeout)
            }
            Err(status) => {
                tracing::warn!(%url, %status, "lost the leader while it handled a request");
                return Err(ServerError::TimeoutLeaderFail);
            }
        };
        match decode::<Reply<Resp>>(&reply.data)? {
            Ok(r) => Ok(Some(r)),
            Err(WireError::NotLeader) => Ok(None),
            Err(WireError::Status { code, message }) => {
                Err(ServerError::Forwarded { code, message })
            }
        }
    }

    pub async fn propose(
        &self,
        leader_url: &str,
        command: &Command,
        deadline: Instant,
    ) -> Result<Option<(u64, std::result::Result<CommandOutput, StoreError>)>> {
        self.call(leader_url, Rpc::Propose, command, deadline, false)
            .await
    }

    pub async fn read_index(&self, leader_url: &str, deadline: Instant) -> Result<Option<u64>> {
        self.call(leader_url, Rpc::ReadIndex, &(), deadline, true)
            .await
    }

    pub async fn keep_alive(
        &self,
        leader_url: &str,
        id: i64,
        deadline: Instant,
    ) -> Result<Option<i64>> {
        self.call(leader_url, Rpc::KeepAlive, &id, deadline, true)
            .await
    }

    pub async fn time_to_live(
        &self,
        leader_url: &str,
        id: i64,
        deadline: Instant,
    ) -> Result<Option<Option<LeaseTtl>>> {
        self.call(leader_url, Rpc::TimeToLive, &id, deadline, true)
            .await
    }

    pub async fn change_cluster(
        &self,
        leader_url: &str,
        op: &ClusterOp,
        deadline: Instant,
    ) -> Result<Option<Option<MemberInfo>>> {
        self.call(leader_url, Rpc::Cluster, op, deadline, false)
            .await
    }

    /// Asks the member at `url` to campaign for leadership now.
    pub async fn campaign_at(&self, url: &str) -> Result<()> {
        let mut client = self.client(url)?;
        let req = self.request(Vec::new(), std::time::Duration::from_secs(2));
        client
            .campaign(req)
            .await
            .map_err(|s| ServerError::Forwarded {
                code: s.code() as i32,
                message: s.message().to_string(),
            })?;
        Ok(())
    }

    /// The cluster ID and members, as the member at `url` knows them.
    pub async fn members_at(
        &self,
        url: &str,
    ) -> std::result::Result<(u64, Vec<MemberInfo>), String> {
        let mut client = self.client(url).map_err(|e| e.to_string())?;
        let req = self.request(Vec::new(), std::time::Duration::from_secs(2));
        let reply = client.members(req).await.map_err(|s| s.to_string())?;
        decode(&reply.into_inner().data).map_err(|e| e.to_string())
    }
}

enum Rpc {
    Propose,
    ReadIndex,
    KeepAlive,
    TimeToLive,
    Cluster,
}
