//! What members ask of each other besides Raft's own traffic: a follower forwards proposals,
//! read-index requests, lease keep-alives and time-to-live queries, and membership changes to the
//! leader; a joining member asks who it is. Served as the `MemberPeer` gRPC service on the peer
//! URLs, with bincode payloads.
//!
//! Forwarding is careful about outcomes: an answer "not the leader" and a connection that could
//! not be made both mean the request was certainly not applied, and the caller retries with the
//! leader it learns next; any other failure after sending may have been applied, and becomes
//! etcd's "request timed out, possibly due to previous leader failure".

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use mainstay_proto::mainstaypb::member_peer_client::MemberPeerClient;
use mainstay_proto::mainstaypb::member_peer_server::{MemberPeer, MemberPeerServer};
use mainstay_proto::mainstaypb::RaftPayload;
use mainstay_raft::codec::{decode, encode};
use mainstay_raft::network::{peer_channel, MAX_PEER_MESSAGE_BYTES};
use mainstay_raft::Member;
use mainstay_store::{Command, CommandOutput, StoreError};
use openraft::error::{ClientWriteError, RaftError as ORaftError};
use openraft::ChangeMembers;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

use crate::error::{Result, ServerError};
use crate::node::{member_id_for, Node};

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
enum WireError {
    /// The member asked is not the leader: nothing was done.
    NotLeader,
    /// The answer for the client, as a gRPC status.
    Status { code: i32, message: String },
}

type Reply<T> = std::result::Result<T, WireError>;

impl From<ServerError> for WireError {
    fn from(e: ServerError) -> Self {
        let status: Status = e.into();
        WireError::Status {
            code: status.code() as i32,
            message: status.message().to_string(),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct LeaseTtl {
    pub remaining_secs: i64,
    pub granted_secs: i64,
    pub keys: Vec<Vec<u8>>,
}

/// One connection per peer URL, made on first use.
#[derive(Default)]
pub struct PeerClients {
    clients: Mutex<HashMap<String, MemberPeerClient<Channel>>>,
}

/// Whether a failed call certainly never reached the peer's handler.
fn not_sent(status: &Status) -> bool {
    status.code() == tonic::Code::Unavailable
        && (status.message().contains("connect") || status.message().contains("Connection refused"))
}

impl PeerClients {
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

    fn leader_url(node: &Node, leader: u64) -> Option<String> {
        node.members()
            .into_iter()
            .find(|m| m.id == leader)
            .and_then(|m| m.member.peer_urls.first().cloned())
    }

    /// Calls `rpc` on the leader. `Ok(None)`: certainly not done (not the leader, or not
    /// reachable); `idempotent` calls also treat any transport failure so.
    async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        node: &Node,
        leader: u64,
        rpc: Rpc,
        request: &Req,
        deadline: Instant,
        idempotent: bool,
    ) -> Result<Option<Resp>> {
        let Some(url) = Self::leader_url(node, leader) else {
            return Ok(None);
        };
        let mut client = self.client(&url)?;
        let data = encode(request)?;
        let mut req = Request::new(RaftPayload { data });
        req.set_timeout(deadline.saturating_duration_since(Instant::now()));
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
        node: &Node,
        leader: u64,
        command: &Command,
        deadline: Instant,
    ) -> Result<Option<(u64, std::result::Result<CommandOutput, StoreError>)>> {
        self.call(node, leader, Rpc::Propose, command, deadline, false)
            .await
    }

    pub async fn read_index(
        &self,
        node: &Node,
        leader: u64,
        deadline: Instant,
    ) -> Result<Option<u64>> {
        self.call(node, leader, Rpc::ReadIndex, &(), deadline, true)
            .await
    }

    pub async fn keep_alive(
        &self,
        node: &Node,
        leader: u64,
        id: i64,
        deadline: Instant,
    ) -> Result<Option<i64>> {
        self.call(node, leader, Rpc::KeepAlive, &id, deadline, true)
            .await
    }

    pub async fn time_to_live(
        &self,
        node: &Node,
        leader: u64,
        id: i64,
        deadline: Instant,
    ) -> Result<Option<Option<LeaseTtl>>> {
        self.call(node, leader, Rpc::TimeToLive, &id, deadline, true)
            .await
    }

    pub async fn change_cluster(
        &self,
        node: &Node,
        leader: u64,
        op: &ClusterOp,
        deadline: Instant,
    ) -> Result<Option<Option<MemberInfo>>> {
        self.call(node, leader, Rpc::Cluster, op, deadline, false)
            .await
    }

    /// Asks the member at `url` to campaign for leadership now.
    pub async fn campaign_at(&self, url: &str) -> Result<()> {
        let mut client = self.client(url)?;
        let mut req = Request::new(RaftPayload { data: Vec::new() });
        req.set_timeout(std::time::Duration::from_secs(2));
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
        let mut req = Request::new(RaftPayload { data: Vec::new() });
        req.set_timeout(std::time::Duration::from_secs(2));
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

/// Makes a membership change on this member, which must be the leader (`Ok(None)` otherwise).
pub(crate) async fn change_cluster_local(
    node: &Node,
    op: ClusterOp,
) -> Result<Option<Option<MemberInfo>>> {
    if !node.is_leader() {
        return Ok(None);
    }
    let members = node.members();
    let find = |id: u64| members.iter().find(|m| m.id == id).cloned();
    let (change, info): (ChangeMembers<u64, Member>, Option<MemberInfo>) = match op {
        ClusterOp::Add {
            peer_urls,
            is_learner,
        } => {
            check_peer_urls(&members, &peer_urls, None)?;
            if is_learner && members.iter().filter(|m| m.is_learner).count() >= 1 {
                return Err(ServerError::TooManyLearners);
            }
            // As etcd, a time-dependent ID: a member removed and added again is a new member.
            let salt = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos().to_string())
                .unwrap_or_default();
            let id = member_id_for(&peer_urls, &node.config.cluster_token, &salt);
            let member = Member {
                name: String::new(),
                peer_urls,
                client_urls: Vec::new(),
            };
            match node.raft.add_learner(id, member.clone(), false).await {
                Ok(_) => {}
                Err(e) => return raft_change_error(e),
            }
            let info = MemberInfo {
                id,
                member,
                is_learner,
            };
            if is_learner {
                return Ok(Some(Some(info)));
            }
            (ChangeMembers::AddVoterIds(BTreeSet::from([id])), Some(info))
        }
        ClusterOp::Promote { id } => {
            let m = find(id).ok_or(ServerError::MemberNotFound)?;
            if !m.is_learner {
                return Err(ServerError::MemberNotLearner);
            }
            let metrics = node.raft.metrics().borrow().clone();
            let leader_last = metrics.last_log_index.unwrap_or(0);
            let matched = metrics
                .replication
                .as_ref()
                .and_then(|r| r.get(&id).cloned().flatten())
                .map(|l| l.index)
                .unwrap_or(0);
            // etcd's readiness: the learner has at least 90% of the leader's log.
            if (matched as f64) < 0.9 * leader_last as f64 {
                return Err(ServerError::LearnerNotReady);
            }
            (
                ChangeMembers::AddVoterIds(BTreeSet::from([id])),
                Some(MemberInfo {
                    is_learner: false,
                    ..m
                }),
            )
        }
        ClusterOp::Remove { id } => {
            let m = find(id).ok_or(ServerError::MemberNotFound)?;
            if m.is_learner {
                (ChangeMembers::RemoveNodes(BTreeSet::from([id])), None)
            } else {
                (ChangeMembers::RemoveVoters(BTreeSet::from([id])), None)
            }
        }
        ClusterOp::Update { id, peer_urls } => {
            let m = find(id).ok_or(ServerError::MemberNotFound)?;
            check_peer_urls(&members, &peer_urls, Some(id))?;
            let member = Member {
                peer_urls,
                ..m.member
            };
            (
                ChangeMembers::SetNodes(BTreeMap::from([(id, member)])),
                None,
            )
        }
        ClusterOp::Publish { id, member } => {
            find(id).ok_or(ServerError::MemberNotFound)?;
            (
                ChangeMembers::SetNodes(BTreeMap::from([(id, member)])),
                None,
            )
        }
    };
    // `retain = false`: a voter removed is removed from the cluster, not kept as a learner.
    match node.raft.change_membership(change, false).await {
        Ok(_) => Ok(Some(info)),
        Err(e) => raft_change_error(e),
    }
}

/// etcd's checks of a member's new peer URLs: well-formed, and used by no other member.
fn check_peer_urls(
    members: &[MemberInfo],
    peer_urls: &[String],
    except: Option<u64>,
) -> Result<()> {
    if peer_urls.is_empty()
        || peer_urls
            .iter()
            .any(|u| crate::parse_listen_url(u).is_err())
    {
        return Err(ServerError::MemberBadUrls);
    }
    let taken = members
        .iter()
        .any(|m| Some(m.id) != except && m.member.peer_urls.iter().any(|u| peer_urls.contains(u)));
    if taken {
        return Err(ServerError::PeerUrlExists);
    }
    Ok(())
}

fn raft_change_error<T>(e: ORaftError<u64, ClientWriteError<u64, Member>>) -> Result<Option<T>> {
    match crate::error::client_write_error(e) {
        None => Ok(None),
        Some(e) => Err(e),
    }
}

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

#[tonic::async_trait]
impl MemberPeer for MemberPeerService {
    async fn propose(
        &self,
        request: Request<RaftPayload>,
    ) -> std::result::Result<Response<RaftPayload>, Status> {
        let command: Command = payload(request)?;
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
        _request: Request<RaftPayload>,
    ) -> std::result::Result<Response<RaftPayload>, Status> {
        reply(&leader_only(self.node.leader_read_index().await))
    }

    async fn lease_keep_alive(
        &self,
        request: Request<RaftPayload>,
    ) -> std::result::Result<Response<RaftPayload>, Status> {
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
        let op: ClusterOp = payload(request)?;
        reply(&leader_only(change_cluster_local(&self.node, op).await))
    }

    async fn campaign(
        &self,
        _request: Request<RaftPayload>,
    ) -> std::result::Result<Response<RaftPayload>, Status> {
        self.node
            .raft
            .trigger()
            .elect()
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        reply(&())
    }

    async fn members(
        &self,
        _request: Request<RaftPayload>,
    ) -> std::result::Result<Response<RaftPayload>, Status> {
        reply(&(self.node.cluster_id, self.node.members()))
    }
}
