//! The server side of the peer transport: openraft's RPCs from other members, handed to the local
//! [`Raft`](crate::Raft).

use mainstay_proto::mainstaypb::raft_peer_server::{RaftPeer, RaftPeerServer};
use mainstay_proto::mainstaypb::RaftPayload;
use serde::de::DeserializeOwned;
use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::codec::{decode, encode};
use crate::identity;
use crate::network::MAX_PEER_MESSAGE_BYTES;
use crate::{NodeId, Raft, TypeConfig};
use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest, VoteResponse};
use tonic::metadata::MetadataMap;

pub struct RaftPeerService {
    raft: Raft,
    /// Calls from another cluster are refused.
    cluster_id: u64,
    /// When an append (or heartbeat) from a leader was last accepted.
    last_append: Arc<std::sync::Mutex<Option<tokio::time::Instant>>>,
    /// openraft's leader lease: how long after the last append a member still trusts its leader.
    lease: std::time::Duration,
}

/// The `RaftPeer` gRPC service for the peer listener. `lease` is openraft's leader lease (its
/// largest election timeout).
pub fn service(
    raft: Raft,
    cluster_id: u64,
    lease: std::time::Duration,
) -> RaftPeerServer<RaftPeerService> {
    RaftPeerServer::new(RaftPeerService {
        raft,
        cluster_id,
        last_append: Default::default(),
        lease,
    })
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

impl RaftPeerService {
    /// The member a call comes from: of this cluster, and a member of it (any member of it while
    /// this one knows no membership yet, as when it joins).
    fn sender(&self, metadata: &MetadataMap) -> Result<NodeId, Status> {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        let membership = metrics.membership_config.membership();
        let knows_none = membership.nodes().next().is_none();
        identity::sender(metadata, self.cluster_id, |id| {
            knows_none || membership.get_node(&id).is_some()
        })
    }

    /// openraft has no pre-vote, and a member that refuses a candidate for its shorter log does
    /// not campaign any sooner: when the follower that lags behind times out first after the
    /// leader died, the up-to-date one waits out its own timeout, then splits the vote with the
    /// candidate's term. Here, a member that refused a candidate only for its log, after its
    /// leader's lease ran out, campaigns at once (twice: the first round may meet the
    /// candidate's own vote in the same term).
    fn campaign_if_more_up_to_date(
        &self,
        rpc: &VoteRequest<crate::NodeId>,
        resp: &VoteResponse<crate::NodeId>,
    ) {
        let leader_silent = self
            .last_append
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_none_or(|at| at.elapsed() > self.lease);
        let more_up_to_date = resp.last_log_id > rpc.last_log_id;
        if resp.vote_granted || !more_up_to_date || !leader_silent {
            return;
        }
        let raft = self.raft.clone();
        tokio::spawn(async move {
            tracing::info!("refused a candidate with a shorter log; campaigning");
            for _ in 0..2 {
                if raft.trigger().elect().await.is_err() {
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                if raft.metrics().borrow().current_leader.is_some() {
                    return;
                }
            }
        });
    }
}

/// Answers one append (or heartbeat) from a leader, noting when one was last accepted.
async fn append(
    raft: &Raft,
    last_append: &std::sync::Mutex<Option<tokio::time::Instant>>,
    data: &[u8],
    from: NodeId,
) -> Result<RaftPayload, Status> {
    let rpc: AppendEntriesRequest<TypeConfig> =
        decode(data).map_err(|e| Status::invalid_argument(e.to_string()))?;
    identity::check_append(&rpc, from)?;
    let result = raft.append_entries(rpc).await;
    if matches!(&result, Ok(r) if r.is_success()) {
        *last_append.lock().unwrap_or_else(|e| e.into_inner()) = Some(tokio::time::Instant::now());
    }
    let data = encode(&result).map_err(|e| Status::internal(e.to_string()))?;
    Ok(RaftPayload { data })
}

type PayloadStream = Pin<Box<dyn tokio_stream::Stream<Item = Result<RaftPayload, Status>> + Send>>;

#[tonic::async_trait]
impl RaftPeer for RaftPeerService {
    async fn append_entries(
        &self,
        request: Request<RaftPayload>,
    ) -> Result<Response<RaftPayload>, Status> {
        let from = self.sender(request.metadata())?;
        let data = request.into_inner().data;
        Ok(Response::new(
            append(&self.raft, &self.last_append, &data, from).await?,
        ))
    }

    type AppendEntriesStreamStream = PayloadStream;

    async fn append_entries_stream(
        &self,
        request: Request<Streaming<RaftPayload>>,
    ) -> Result<Response<PayloadStream>, Status> {
        let from = self.sender(request.metadata())?;
        let mut inbound = request.into_inner();
        let raft = self.raft.clone();
        let last_append = self.last_append.clone();
        // The leader sends the next append only after this answer: one slot is enough.
        let (tx, rx) = mpsc::channel(1);
        tokio::spawn(async move {
            while let Ok(Some(message)) = inbound.message().await {
                let answer = append(&raft, &last_append, &message.data, from).await;
                let failed = answer.is_err();
                if tx.send(answer).await.is_err() || failed {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn vote(&self, request: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        let from = self.sender(request.metadata())?;
        let rpc: VoteRequest<crate::NodeId> = payload(request)?;
        identity::check_vote(&rpc, from)?;
        let result = self.raft.vote(rpc.clone()).await;
        if let Ok(resp) = &result {
            self.campaign_if_more_up_to_date(&rpc, resp);
        }
        reply(&result)
    }

    async fn install_snapshot(
        &self,
        request: Request<RaftPayload>,
    ) -> Result<Response<RaftPayload>, Status> {
        let from = self.sender(request.metadata())?;
        let rpc: InstallSnapshotRequest<TypeConfig> = payload(request)?;
        identity::check_snapshot(&rpc, from)?;
        reply(&self.raft.install_snapshot(rpc).await)
    }
}
