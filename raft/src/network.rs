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
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

use crate::codec::{decode, encode};
use crate::identity::PeerIdentity;
use crate::{Member, NodeId, TypeConfig};

/// A `RaftPeer` client whose every call names this member and its cluster.
type Client = RaftPeerClient<InterceptedService<Channel, PeerIdentity>>;

/// Largest peer message accepted or sent (an append of many large entries, a snapshot chunk).
pub const MAX_PEER_MESSAGE_BYTES: usize = 256 << 20;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// A lazily connected channel to a member's first peer URL.
pub fn peer_channel(url: &str) -> Result<Channel, String> {
    let endpoint = Endpoint::from_shared(url.to_string()).map_err(|e| format!("{url}: {e}"))?;
    Ok(endpoint
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(1))
        .keep_alive_timeout(Duration::from_secs(2))
        .keep_alive_while_idle(true)
        .connect_lazy())
}

/// Makes openraft's per-peer clients. openraft asks for a new client for every replication
/// stream, vote round and leadership check; they share one HTTP/2 channel per peer URL (a channel
/// multiplexes requests and reconnects by itself), so none of them pays for a new connection.
#[derive(Clone)]
pub struct NetworkFactory {
    identity: PeerIdentity,
    channels: Channels,
    idle: IdleStreams,
    contacts: Contacts,
}

impl NetworkFactory {
    /// Clients for the member `identity` names; every call carries its cluster and member IDs.
    pub fn new(identity: PeerIdentity) -> NetworkFactory {
        NetworkFactory {
            identity,
            channels: Channels::default(),
            idle: IdleStreams::default(),
            contacts: Contacts::default(),
        }
    }

    /// When each peer last answered a Raft message of this member's.
    pub fn contacts(&self) -> Contacts {
        self.contacts.clone()
    }
}

/// Since when each peer has answered without a break, and when it last did (etcd's transport
/// tracks the same "active since", to tell which peers are healthy before a membership change).
/// A leader hears from every live follower each heartbeat.
#[derive(Clone, Default)]
pub struct Contacts(Arc<Mutex<HashMap<NodeId, Contact>>>);

#[derive(Clone, Copy)]
struct Contact {
    since: std::time::Instant,
    last: std::time::Instant,
}

/// A peer silent for longer than this has lost its connection: its next answer starts a new run.
pub const CONTACT_BREAK: Duration = Duration::from_secs(1);

impl Contacts {
    fn record(&self, peer: NodeId) {
        let now = std::time::Instant::now();
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let contact = map.entry(peer).or_insert(Contact {
            since: now,
            last: now,
        });
        if now.duration_since(contact.last) > CONTACT_BREAK {
            contact.since = now;
        }
        contact.last = now;
    }

    /// Since when `peer` has answered without a break; `None` when it is not answering now.
    pub fn active_since(&self, peer: NodeId) -> Option<std::time::Instant> {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.get(&peer)
            .filter(|c| c.last.elapsed() <= CONTACT_BREAK)
            .map(|c| c.since)
    }
}

/// One channel per peer URL, with a generation that counts its replacements.
type Channels = Arc<Mutex<HashMap<String, (u64, Channel)>>>;

/// Appends to a peer that all time out for this long mean its connection is dead (the peer
/// restarted at another address, or packets to it vanish): the channel is replaced by a new
/// one. Without this, a leader keeps writing into the dead connection until HTTP/2 keep-alive
/// gives up, and the restarted follower, hearing nothing, campaigns and unseats it.
const DEAD_CONNECTION_AFTER: Duration = Duration::from_millis(500);

/// Append streams not in use, per peer URL: a client made for one leadership check (a read-index
/// round sends one heartbeat per follower) takes one instead of opening its own, and gives it
/// back when dropped.
type IdleStreams = Arc<Mutex<HashMap<String, Vec<AppendStream>>>>;

/// Idle append streams kept per peer, at most.
const MAX_IDLE_STREAMS: usize = 4;

/// The current channel to `url` and its generation; a new one if there is none, or if
/// `replace` names the current generation.
fn current_channel(
    channels: &Channels,
    url: &str,
    replace: Option<u64>,
) -> Result<(u64, Channel), String> {
    let mut channels = channels.lock().unwrap_or_else(|e| e.into_inner());
    match channels.get(url) {
        Some((generation, c)) if replace != Some(*generation) => Ok((*generation, c.clone())),
        existing => {
            let generation = existing.map_or(0, |(g, _)| g + 1);
            let channel = peer_channel(url)?;
            channels.insert(url.to_string(), (generation, channel.clone()));
            Ok((generation, channel))
        }
    }
}

fn raft_client(channel: Channel, identity: PeerIdentity) -> Client {
    RaftPeerClient::with_interceptor(channel, identity)
        .max_decoding_message_size(MAX_PEER_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_PEER_MESSAGE_BYTES)
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &Member) -> PeerClient {
        let url = node.peer_urls.first().cloned();
        let (generation, client) = match &url {
            Some(url) => match current_channel(&self.channels, url, None) {
                Ok((generation, channel)) => (generation, Ok(raft_client(channel, self.identity))),
                Err(e) => (0, Err(e)),
            },
            None => (0, Err(format!("member {target:x} has no peer URL"))),
        };
        PeerClient {
            target,
            contacts: self.contacts.clone(),
            identity: self.identity,
            client,
            url,
            channels: self.channels.clone(),
            generation,
            silent_since: None,
            idle: self.idle.clone(),
            stream: None,
        }
    }
}

/// openraft's client of one peer: one per replication stream (thousands of appends and
/// heartbeats), one per vote round or leadership check. Appends go over a gRPC stream, answered in
/// order, which saves opening and closing an HTTP/2 stream per message.
pub struct PeerClient {
    target: NodeId,
    contacts: Contacts,
    identity: PeerIdentity,
    client: Result<Client, String>,
    url: Option<String>,
    channels: Channels,
    /// The generation of the channel `client` uses.
    generation: u64,
    /// Since when every append has timed out (None after any answer).
    silent_since: Option<tokio::time::Instant>,
    idle: IdleStreams,
    /// The append stream in use. Taken out while a call uses it and put back only when the call
    /// got its answer, so a failed or abandoned call never leaves an answer behind to be read as
    /// the next one's.
    stream: Option<AppendStream>,
}

impl Drop for PeerClient {
    fn drop(&mut self) {
        if let (Some(stream), Some(url)) = (self.stream.take(), &self.url) {
            let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
            let streams = idle.entry(url.clone()).or_default();
            if streams.len() < MAX_IDLE_STREAMS {
                streams.push(stream);
            }
        }
    }
}

impl PeerClient {
    /// Before an append: if appends have gone unanswered for [`DEAD_CONNECTION_AFTER`] (timed
    /// out, failed, or cut off by openraft's own timeout), replaces the peer's channel (unless
    /// another client already did) and drops the idle streams on the old one.
    fn check_connection(&mut self) {
        let now = tokio::time::Instant::now();
        let since = *self.silent_since.get_or_insert(now);
        if now.duration_since(since) < DEAD_CONNECTION_AFTER {
            return;
        }
        self.silent_since = Some(now);
        let Some(url) = &self.url else { return };
        if let Ok((generation, channel)) =
            current_channel(&self.channels, url, Some(self.generation))
        {
            tracing::info!(peer = %url, "appends to the peer go unanswered: connecting anew");
            self.generation = generation;
            self.client = Ok(raft_client(channel, self.identity));
            self.stream = None;
            let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
            idle.remove(url);
        }
    }

    /// An idle stream of this client's peer, left by an earlier client.
    fn take_idle_stream(&self) -> Option<AppendStream> {
        let url = self.url.as_ref()?;
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        idle.get_mut(url)?.pop()
    }
}

struct AppendStream {
    requests: mpsc::Sender<RaftPayload>,
    responses: tonic::Streaming<RaftPayload>,
}

fn stream_closed(_: impl Sized) -> tonic::Status {
    tonic::Status::unavailable("the append stream closed")
}

/// Sends one append on `stream` (a new one if `None`) and reads its answer.
async fn exchange(
    mut client: Client,
    stream: Option<AppendStream>,
    data: Vec<u8>,
) -> Result<(AppendStream, RaftPayload), tonic::Status> {
    let mut stream = match stream {
        Some(s) => {
            s.requests
                .send(RaftPayload { data })
                .await
                .map_err(stream_closed)?;
            s
        }
        None => {
            let (requests, rx) = mpsc::channel(1);
            // Queued before the call: the stream's first message goes with its opening.
            requests
                .send(RaftPayload { data })
                .await
                .map_err(stream_closed)?;
            let responses = client
                .append_entries_stream(ReceiverStream::new(rx))
                .await?
                .into_inner();
            AppendStream {
                requests,
                responses,
            }
        }
    };
    let answer = stream
        .responses
        .message()
        .await?
        .ok_or_else(|| stream_closed(()))?;
    Ok((stream, answer))
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
            Rpc::Vote => client.vote(request).await,
            Rpc::Snapshot => client.install_snapshot(request).await,
        };
        let reply = reply.map_err(|status| match status.code() {
            tonic::Code::Unavailable => RPCError::Unreachable(Unreachable::new(&status)),
            _ => RPCError::Network(NetworkError::new(&status)),
        })?;
        self.contacts.record(self.target);
        let result: Result<Resp, ORaftError<NodeId, E>> = decode(&reply.into_inner().data)
            .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

enum Rpc {
    Vote,
    Snapshot,
}

impl PeerClient {
    /// An append over this client's stream (opened on first use).
    async fn append_streamed(
        &mut self,
        rpc: &AppendEntriesRequest<TypeConfig>,
        option: &RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>, Infallible> {
        let data = encode(rpc).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        self.check_connection();
        let client = match &mut self.client {
            Ok(c) => c.clone(),
            Err(e) => {
                let e = std::io::Error::other(e.clone());
                return Err(RPCError::Unreachable(Unreachable::new(&e)));
            }
        };
        let own = self.stream.take();
        let idle = if own.is_none() {
            self.take_idle_stream()
        } else {
            None
        };
        let attempt = async move {
            match idle {
                // A stream left by an earlier client may have broken meanwhile (the peer
                // restarted): then the append goes once more on a new stream (appends may be
                // repeated safely). Only these short-lived clients' appends (heartbeats of a
                // leadership check) are copied for it.
                Some(idle) => match exchange(client.clone(), Some(idle), data.clone()).await {
                    Ok(done) => Ok(done),
                    Err(_) => exchange(client, None, data).await,
                },
                // This client's own stream, or a new one: a failure goes back to openraft, whose
                // replication retries.
                None => exchange(client, own, data).await,
            }
        };
        let (stream, answer) = match tokio::time::timeout(option.hard_ttl(), attempt).await {
            Ok(Ok(done)) => done,
            Ok(Err(status)) => {
                return Err(match status.code() {
                    tonic::Code::Unavailable => RPCError::Unreachable(Unreachable::new(&status)),
                    _ => RPCError::Network(NetworkError::new(&status)),
                })
            }
            Err(elapsed) => return Err(RPCError::Network(NetworkError::new(&elapsed))),
        };
        self.silent_since = None;
        self.contacts.record(self.target);
        self.stream = Some(stream);
        let result: Result<AppendEntriesResponse<NodeId>, ORaftError<NodeId, Infallible>> =
            decode(&answer.data).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>, Infallible> {
        self.append_streamed(&rpc, &option).await
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
