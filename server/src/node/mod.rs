//! One member of a Mainstay cluster: the store, the watch hub, the lessor, and the Raft instance
//! that replicates every change.
//!
//! Every state change goes through [`Node::propose`]: on the leader it becomes a Raft log entry
//! (openraft batches concurrent proposals into one append, and the log's flusher shares one fsync
//! among them), and is answered once a quorum holds it and the local state machine applied it; on a
//! follower it is forwarded to the leader over the peer transport, and answered once this member
//! applied it too, so the client can read its own write here. Linearizable reads first obtain a
//! read index from the leader ([`Node::read_barrier`]) and wait until this member applied it.
//!
//! Leases: every member tracks leases as they are applied; only the leader runs expiry, and
//! periodically checkpoints remaining TTLs through Raft so a new leader continues from them
//! (`node/lease_loops.rs`). Listing and changing the membership: `node/membership.rs`.
//!
//! The node uses the lessor, the read-index batcher and the peer client, and none of them knows
//! the node: the batcher gets a closure over a `Weak<Node>`, the peer client gets the URL the node
//! resolved, and the loops that propose for the lessor are the node's own.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures::future::BoxFuture;
use mainstay_proto::etcdserverpb as pb;
use mainstay_raft::identity::PeerIdentity;
use mainstay_raft::log_store::LogStore;
use mainstay_raft::network::{Contacts, NetworkFactory};
use mainstay_raft::state_machine::{open_store, ApplyObserver, StateMachine};
use mainstay_raft::{Member, Raft};
use mainstay_store::watch::{WatchHub, WatchHubConfig};
use mainstay_store::{Alarm, AlarmKind, Applied, Command, CommandOutput, Store};
use openraft::error::RaftError as ORaftError;
use openraft::{ServerState, SnapshotPolicy};
use tokio::sync::watch;

use crate::error::{Result, ServerError};
use crate::lessor::Lessor;
use crate::peer::client::PeerClients;
use crate::peer::wire::{ClusterOp, LeaseTtl};
use crate::proposer::Proposer;
use crate::read_index::{self, ReadIndexBatcher};

mod lease_loops;
mod membership;

/// Whether this member creates a new cluster with `--initial-cluster` or joins one that exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClusterState {
    New,
    Existing,
}

#[derive(Clone, Debug)]
pub struct NodeConfig {
    pub name: String,
    pub data_dir: PathBuf,
    /// This member's advertised peer URLs.
    pub peer_urls: Vec<String>,
    /// Where to listen for peers.
    pub listen_peer_urls: Vec<String>,
    /// This member's advertised client URLs.
    pub client_urls: Vec<String>,
    /// `--initial-cluster`: name and peer URLs of every initial member (this one included).
    pub initial_cluster: Vec<(String, Vec<String>)>,
    pub initial_cluster_state: ClusterState,
    pub cluster_token: String,
    /// Largest accepted request, in bytes (etcd's `--max-request-bytes`).
    pub max_request_bytes: usize,
    pub max_txn_ops: usize,
    /// Backend size at which the NOSPACE alarm goes off (etcd's `--quota-backend-bytes`).
    pub quota_backend_bytes: u64,
    /// Per-watcher progress notifications (etcd: 10 minutes).
    pub progress_notify_interval: Duration,
    /// Cap on watchers on one Watch stream.
    pub max_watchers_per_stream: usize,
    /// Applied entries between snapshots (etcd's `--snapshot-count`).
    pub snapshot_count: u64,
    /// etcd's `--heartbeat-interval`.
    pub heartbeat_interval: Duration,
    /// etcd's `--election-timeout`: the shortest wait before a follower without a leader campaigns.
    pub election_timeout: Duration,
    /// How often the leader checkpoints leases' remaining TTLs.
    pub lease_checkpoint_interval: Duration,
}

impl NodeConfig {
    /// A one-member cluster's configuration with etcd's defaults.
    pub fn new(name: &str, data_dir: PathBuf) -> NodeConfig {
        let peer = "http://localhost:2380".to_string();
        NodeConfig {
            name: name.to_string(),
            data_dir,
            peer_urls: vec![peer.clone()],
            listen_peer_urls: vec![peer.clone()],
            client_urls: vec!["http://localhost:2379".into()],
            initial_cluster: vec![(name.to_string(), vec![peer])],
            initial_cluster_state: ClusterState::New,
            cluster_token: "etcd-cluster".into(),
            max_request_bytes: 1536 * 1024,
            max_txn_ops: 128,
            quota_backend_bytes: 2 * 1024 * 1024 * 1024,
            progress_notify_interval: Duration::from_secs(600),
            max_watchers_per_stream: 100_000,
            snapshot_count: 100_000,
            heartbeat_interval: Duration::from_millis(100),
            election_timeout: Duration::from_millis(1000),
            lease_checkpoint_interval: Duration::from_secs(5 * 60),
        }
    }

    /// etcd's request timeout: 5 s plus two election timeouts.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(5) + 2 * self.election_timeout
    }
}

pub struct Node {
    pub config: NodeConfig,
    pub store: Arc<Store>,
    pub hub: Arc<WatchHub>,
    pub lessor: Arc<Lessor>,
    pub member_id: u64,
    pub cluster_id: u64,
    pub raft: Raft,
    applied: watch::Receiver<u64>,
    /// The leader as this member last saw it (`None`: no leader).
    leader: watch::Sender<Option<u64>>,
    is_leader: AtomicBool,
    /// A learner serves only serializable reads and watches (as etcd's learners).
    is_learner: AtomicBool,
    /// Set once this member's name and client URLs are in the membership (etcd serves clients
    /// only from then on).
    ready: watch::Sender<bool>,
    pub(crate) peers: PeerClients,
    /// When each peer last answered this member's Raft messages (a removal must leave a quorum
    /// of active members).
    pub(crate) peer_contacts: Contacts,
    /// Backend size, refreshed by a background task (reading RocksDB properties per request would
    /// cost more than the request).
    db_size: AtomicU64,
    /// Batches this member's proposals (as leader) into log entries.
    proposer: Proposer,
    /// Read indexes for this member's linearizable reads (from the leader, wherever it is).
    reads: ReadIndexBatcher,
    /// Read indexes this member gives as leader to followers' forwarded requests.
    leader_reads: ReadIndexBatcher,
}

/// etcd derives member IDs from the peer URLs and the cluster token; so do we (with SHA-256), so
/// every initial member computes the same IDs from the same `--initial-cluster`.
pub(crate) fn derive_id(parts: &[&str]) -> u64 {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    let d = h.finalize();
    let id = u64::from_be_bytes(d[..8].try_into().expect("8 bytes"));
    id.max(1)
}

pub(crate) fn member_id_for(peer_urls: &[String], token: &str, salt: &str) -> u64 {
    let mut urls = peer_urls.to_vec();
    urls.sort();
    derive_id(&[&urls.join(","), token, salt])
}

/// A read-index round for a [`ReadIndexBatcher`], run on the node behind `node`. The batcher holds
/// only this weak reference, so it does not keep the node alive; once the node is gone a round
/// answers [`ServerError::Stopped`].
fn read_round(
    node: Weak<Node>,
    round: fn(Arc<Node>) -> BoxFuture<'static, read_index::Answer>,
) -> impl Fn() -> BoxFuture<'static, read_index::Answer> + Send + 'static {
    move || match node.upgrade() {
        Some(node) => round(node),
        None => Box::pin(async { Err(ServerError::Stopped) }),
    }
}

/// Tells the watch hub, the lessor and index waiters what the state machine applied.
struct Observer {
    store: Arc<Store>,
    hub: Arc<WatchHub>,
    lessor: Arc<Lessor>,
    applied: watch::Sender<u64>,
}

impl ApplyObserver for Observer {
    fn applied(&self, index: u64, commands: &[Command], applied: &Applied) {
        self.hub.notify(applied.revision, &applied.events);
        self.lessor.observe(commands, &applied.outputs);
        self.applied.send_replace(index);
    }

    fn store_replaced(&self, index: u64) {
        self.hub.store_replaced(self.store.current_revision());
        self.lessor.reset(&self.store.leases());
        self.applied.send_replace(index);
    }
}

/// The member and cluster IDs, kept in the data directory from the first start on.
#[derive(serde::Serialize, serde::Deserialize)]
struct Identity {
    member_id: u64,
    cluster_id: u64,
}

const IDENTITY_FILE: &str = "member.json";

impl Node {
    /// Opens the store and the Raft log, joins or creates the cluster, and starts the background
    /// tasks. The peer listener is started by [`crate::serve`].
    pub async fn start(config: NodeConfig) -> Result<Arc<Node>> {
        std::fs::create_dir_all(&config.data_dir).map_err(|source| ServerError::Io {
            context: format!("creating data dir {}", config.data_dir.display()),
            source,
        })?;
        let data_dir = config.data_dir.clone();
        let store = tokio::task::spawn_blocking(move || open_store(&data_dir, false))
            .await
            .map_err(|e| ServerError::Config(format!("opening the store: {e}")))??;
        let hub = WatchHub::new(store.clone(), WatchHubConfig::default());
        let lessor = Arc::new(Lessor::new());
        lessor.reset(&store.leases());
        let (applied_tx, applied_rx) = watch::channel(store.applied_index());
        let observer = Arc::new(Observer {
            store: store.clone(),
            hub: hub.clone(),
            lessor: lessor.clone(),
            applied: applied_tx,
        });
        let log = LogStore::open(&config.data_dir.join("raft"))?;
        let peers = PeerClients::default();
        let (identity, fresh) = identity(&config, &peers).await?;
        peers.set_identity(PeerIdentity {
            cluster_id: identity.cluster_id,
            member_id: identity.member_id,
        });
        let sm = StateMachine::new(store.clone(), config.data_dir.clone(), observer)?;
        let raft_config = raft_config(&config)?;
        let network = NetworkFactory::new(PeerIdentity {
            cluster_id: identity.cluster_id,
            member_id: identity.member_id,
        });
        let peer_contacts = network.contacts();
        let raft = Raft::new(identity.member_id, Arc::new(raft_config), network, log, sm)
            .await
            .map_err(|e| ServerError::Config(format!("starting raft: {e}")))?;
        if fresh && config.initial_cluster_state == ClusterState::New {
            let members = initial_members(&config);
            match raft.initialize(members).await {
                Ok(()) => {}
                // Another start of this member already initialized it.
                Err(ORaftError::APIError(openraft::error::InitializeError::NotAllowed(_))) => {}
                Err(e) => return Err(ServerError::Config(format!("initializing raft: {e}"))),
            }
        }
        let (leader_tx, _) = watch::channel(None);
        let proposer = Proposer::spawn(raft.clone(), config.request_timeout());
        let node = Arc::new_cyclic(|weak| Node {
            proposer,
            reads: ReadIndexBatcher::spawn(read_round(weak.clone(), |node| {
                Box::pin(async move { node.read_index_round().await })
            })),
            leader_reads: ReadIndexBatcher::spawn(read_round(weak.clone(), |node| {
                Box::pin(async move { node.read_index_local().await })
            })),
            db_size: AtomicU64::new(store.size_bytes()),
            config,
            store,
            hub: hub.clone(),
            lessor,
            member_id: identity.member_id,
            cluster_id: identity.cluster_id,
            raft,
            applied: applied_rx,
            leader: leader_tx,
            is_leader: AtomicBool::new(false),
            is_learner: AtomicBool::new(false),
            ready: watch::channel(false).0,
            peers,
            peer_contacts,
        });
        tokio::spawn(hub.run_catch_up());
        tokio::spawn(follow_leadership(Arc::downgrade(&node)));
        tokio::spawn(Node::run_expiry(Arc::downgrade(&node)));
        tokio::spawn(Node::run_checkpoints(Arc::downgrade(&node)));
        tokio::spawn(publish(Arc::downgrade(&node)));
        tokio::spawn(refresh_size(Arc::downgrade(&node)));
        Ok(node)
    }

    /// The header every top-level response carries.
    pub fn header(&self, revision: i64) -> Option<pb::ResponseHeader> {
        Some(pb::ResponseHeader {
            cluster_id: self.cluster_id,
            member_id: self.member_id,
            revision,
            raft_term: self.raft_term(),
        })
    }

    pub fn raft_term(&self) -> u64 {
        self.raft.metrics().borrow().current_term
    }

    pub fn is_leader(&self) -> bool {
        self.is_leader.load(Ordering::Acquire)
    }

    /// openraft's leader lease (its largest election timeout, see `raft_config`): a follower
    /// refuses to vote within it of its leader's last heartbeat.
    pub fn leader_lease(&self) -> Duration {
        self.config.election_timeout * 3 / 4
    }

    pub fn is_learner(&self) -> bool {
        self.is_learner.load(Ordering::Acquire)
    }

    /// The current leader as this member knows it.
    pub fn leader(&self) -> Option<u64> {
        *self.leader.borrow()
    }

    /// Changes of [`Node::leader`], for watch streams that must end when the leader is lost.
    pub fn leader_changes(&self) -> watch::Receiver<Option<u64>> {
        self.leader.subscribe()
    }

    /// Waits until this member has published itself to the cluster.
    pub async fn wait_ready(&self) {
        let mut rx = self.ready.subscribe();
        let _ = rx.wait_for(|r| *r).await;
    }

    /// Log index this member's state machine has applied.
    pub fn applied_index(&self) -> u64 {
        *self.applied.borrow()
    }

    /// Waits until the local state machine applied `index`.
    pub async fn wait_applied(&self, index: u64) -> Result<()> {
        let mut rx = self.applied.clone();
        let wait = rx.wait_for(|applied| *applied >= index);
        let waited = tokio::time::timeout(self.config.request_timeout(), wait).await;
        match waited {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(ServerError::Stopped),
            Err(_) => Err(ServerError::Timeout),
        }
    }

    /// Waits until some member is leader, up to `deadline`.
    async fn wait_for_leader(&self, deadline: tokio::time::Instant) -> Result<u64> {
        let mut rx = self.leader.subscribe();
        let wait = rx.wait_for(|l| l.is_some());
        let waited = tokio::time::timeout_at(deadline, wait)
            .await
            .map(|r| r.map(|l| *l));
        match waited {
            Ok(Ok(l)) => Ok(l.expect("waited for a leader")),
            Ok(Err(_)) => Err(ServerError::Stopped),
            Err(_) => Err(ServerError::NoLeader),
        }
    }

    /// Applies `command` through Raft and returns its result, once this member applied it.
    pub async fn propose(&self, command: Command) -> Result<CommandOutput> {
        if self.is_learner() {
            return Err(ServerError::NotSupportedForLearner);
        }
        let deadline = tokio::time::Instant::now() + self.config.request_timeout();
        loop {
            let leader = self.wait_for_leader(deadline).await?;
            let attempt = if leader == self.member_id {
                self.propose_local(command.clone()).await
            } else {
                let forwarded = match self.peer_url(leader) {
                    Some(url) => self.peers.propose(&url, &command, deadline).await?,
                    None => None,
                };
                match forwarded {
                    None => Ok(None),
                    Some((index, Ok(output))) => Ok(Some((index, output))),
                    Some((_, Err(e))) => Err(ServerError::Store(e)),
                }
            };
            match attempt {
                Ok(Some((index, output))) => {
                    tokio::time::timeout_at(deadline, self.wait_applied(index))
                        .await
                        .map_err(|_| ServerError::Timeout)??;
                    return Ok(output);
                }
                // Certainly not applied (this member or the one asked was not the leader): retry
                // once the leadership settles.
                Ok(None) => {
                    if tokio::time::Instant::now() >= deadline {
                        return Err(ServerError::Timeout);
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Proposes on this member as leader, in the next log entry with whatever else is waiting
    /// ([`Proposer`]). `Ok(None)`: it is not the leader (nothing appended).
    pub(crate) async fn propose_local(
        &self,
        command: Command,
    ) -> Result<Option<(u64, CommandOutput)>> {
        self.proposer.propose(command).await
    }

    /// A linearizable read may start once this returns: the leader confirmed its leadership with
    /// a quorum after the read began, and this member applied everything committed before.
    /// Concurrent reads share one confirmation ([`ReadIndexBatcher`]).
    pub async fn read_barrier(&self) -> Result<()> {
        if self.is_learner() {
            return Err(ServerError::NotSupportedForLearner);
        }
        let deadline = tokio::time::Instant::now() + self.config.request_timeout();
        loop {
            let index = tokio::time::timeout_at(deadline, self.reads.read_index())
                .await
                .map_err(|_| ServerError::Timeout)??;
            match index {
                Some(index) => {
                    return tokio::time::timeout_at(deadline, self.wait_applied(index))
                        .await
                        .map_err(|_| ServerError::Timeout)?;
                }
                None => {
                    if tokio::time::Instant::now() >= deadline {
                        return Err(ServerError::Timeout);
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    }

    /// One read-index round for this member's reads: from Raft on the leader, else asked of the
    /// leader. `Ok(None)`: the member asked was not the leader.
    async fn read_index_round(&self) -> Result<Option<u64>> {
        let deadline = tokio::time::Instant::now() + self.config.request_timeout();
        let leader = self.wait_for_leader(deadline).await?;
        if leader == self.member_id {
            self.read_index_local().await
        } else {
            match self.peer_url(leader) {
                Some(url) => self.peers.read_index(&url, deadline).await,
                None => Ok(None),
            }
        }
    }

    /// The read index for a follower's forwarded request, batched with the other followers'.
    pub(crate) async fn leader_read_index(&self) -> Result<Option<u64>> {
        self.leader_reads.read_index().await
    }

    /// The leader's read index. `Ok(None)`: this member is not the leader. Called only by the
    /// two read-index batchers, so at most two checks are in openraft's (unbounded) request
    /// channel at once.
    async fn read_index_local(&self) -> Result<Option<u64>> {
        let check = self.raft.get_read_log_id();
        match tokio::time::timeout(self.config.request_timeout(), check).await {
            Err(_) => Err(ServerError::Timeout),
            Ok(Ok((read, _applied))) => Ok(Some(read.map(|l| l.index).unwrap_or(0))),
            Ok(Err(ORaftError::APIError(_))) => Ok(None),
            Ok(Err(ORaftError::Fatal(_))) => Err(ServerError::Stopped),
        }
    }

    /// Leader only: restarts a lease's clock and returns its TTL (0 when it does not exist, as
    /// etcd answers). A checkpointed remaining TTL is cleared through Raft before answering (as
    /// etcd's lessor does), so a leader taking over right after cannot cut the renewed lease short.
    pub(crate) async fn renew_lease_local(&self, id: i64) -> Result<i64> {
        match self.store.lease(id) {
            Some(l) if self.lessor.renew(id, l.ttl_secs).is_some() => {
                if l.remaining_ttl_secs > 0 {
                    self.propose(Command::LeaseCheckpoint {
                        checkpoints: vec![(id, 0)],
                    })
                    .await?;
                }
                Ok(l.ttl_secs)
            }
            _ => Ok(0),
        }
    }

    /// Leader only: a lease's remaining and granted TTL and keys.
    pub(crate) fn lease_ttl_local(&self, id: i64) -> Option<LeaseTtl> {
        let lease = self.store.lease(id)?;
        let remaining = self.lessor.remaining_secs(id)?;
        Some(LeaseTtl {
            remaining_secs: remaining,
            granted_secs: lease.ttl_secs,
            keys: lease.keys,
        })
    }

    /// Renews a lease on the leader, from any member.
    pub async fn renew_lease(&self, id: i64) -> Result<i64> {
        self.on_leader(
            || self.renew_lease_local(id),
            |url, deadline| async move { self.peers.keep_alive(&url, id, deadline).await },
        )
        .await
    }

    /// A lease's remaining TTL as the leader knows it, from any member.
    pub async fn lease_ttl(&self, id: i64) -> Result<Option<LeaseTtl>> {
        self.on_leader(
            || async { Ok(self.lease_ttl_local(id)) },
            |url, deadline| async move { self.peers.time_to_live(&url, id, deadline).await },
        )
        .await
    }

    /// Runs an idempotent leader-only request: `local` when this member leads, else `remote` on
    /// the leader's peer URL (`Ok(None)` from it: not the leader after all), until the request
    /// timeout.
    async fn on_leader<T, L, LF, R, RF>(&self, local: L, remote: R) -> Result<T>
    where
        L: Fn() -> LF,
        LF: std::future::Future<Output = Result<T>>,
        R: Fn(String, tokio::time::Instant) -> RF,
        RF: std::future::Future<Output = Result<Option<T>>>,
    {
        let deadline = tokio::time::Instant::now() + self.config.request_timeout();
        loop {
            let leader = self.wait_for_leader(deadline).await?;
            if leader == self.member_id {
                if self.is_leader() {
                    return local().await;
                }
            } else if let Some(url) = self.peer_url(leader) {
                if let Some(answer) = remote(url, deadline).await? {
                    return Ok(answer);
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ServerError::Timeout);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Hands leadership to the voter `target` (etcd's MoveLeader): waits until it has the whole
    /// log, stops this leader's heartbeats for a leader lease so the other members will vote,
    /// asks the target to campaign, and waits for it to lead.
    pub async fn transfer_leadership(&self, target: u64) -> Result<()> {
        if !self.is_leader() {
            return Err(ServerError::NotLeader);
        }
        let Some(member) = self
            .members()
            .into_iter()
            .find(|m| m.id == target && !m.is_learner)
        else {
            return Err(ServerError::BadLeaderTransferee);
        };
        if target == self.member_id {
            return Ok(());
        }
        let url = member
            .member
            .peer_urls
            .first()
            .cloned()
            .ok_or(ServerError::BadLeaderTransferee)?;
        let deadline = tokio::time::Instant::now() + self.config.request_timeout();
        let mut metrics = self.raft.metrics();
        let caught_up = metrics.wait_for(|m| {
            let matched = m
                .replication
                .as_ref()
                .and_then(|r| r.get(&target).cloned().flatten())
                .map(|l| l.index);
            matched.is_some() && matched == m.last_log_index
        });
        tokio::time::timeout_at(deadline, caught_up)
            .await
            .map_err(|_| ServerError::TimeoutLeaderTransfer)?
            .map_err(|_| ServerError::Stopped)?;
        let runtime = self.raft.runtime_config();
        runtime.heartbeat(false);
        runtime.elect(false);
        let result = async {
            // Followers refuse to vote within a leader lease (openraft: the largest election
            // timeout) of the last heartbeat.
            tokio::time::sleep(self.leader_lease() + Duration::from_millis(50)).await;
            self.peers.campaign_at(&url).await?;
            let mut metrics = self.raft.metrics();
            let led = metrics.wait_for(|m| m.current_leader == Some(target));
            let waited = tokio::time::timeout(2 * self.config.election_timeout, led)
                .await
                .map(|r| r.map(|_| ()));
            match waited {
                Ok(Ok(())) => Ok(()),
                Ok(Err(_)) => Err(ServerError::Stopped),
                Err(_) => Err(ServerError::TimeoutLeaderTransfer),
            }
        }
        .await;
        runtime.heartbeat(true);
        runtime.elect(true);
        result
    }

    pub fn db_size(&self) -> u64 {
        self.db_size.load(Ordering::Relaxed)
    }

    /// etcd's quota check for requests that may grow the store: refuse while NOSPACE is raised,
    /// and raise it when this request would take the backend past the quota.
    pub async fn check_quota(&self, cost: usize) -> Result<()> {
        if self
            .store
            .alarms()
            .iter()
            .any(|a| a.kind == AlarmKind::NoSpace)
        {
            return Err(ServerError::NoSpace);
        }
        if self.db_size() + cost as u64 > self.config.quota_backend_bytes {
            tracing::warn!(
                db_size = self.db_size(),
                quota = self.config.quota_backend_bytes,
                "backend quota exceeded; raising the NOSPACE alarm"
            );
            self.propose(Command::AlarmActivate(Alarm {
                member_id: self.member_id,
                kind: AlarmKind::NoSpace,
            }))
            .await?;
            return Err(ServerError::NoSpace);
        }
        Ok(())
    }

    /// etcd's check that the encoded request fits `--max-request-bytes`.
    pub fn check_size(&self, encoded_len: usize) -> Result<()> {
        if encoded_len > self.config.max_request_bytes {
            return Err(ServerError::RequestTooLarge);
        }
        Ok(())
    }
}

fn raft_config(config: &NodeConfig) -> Result<openraft::Config> {
    // A follower that had a leader campaigns after openraft's leader lease (= the largest
    // election timeout) plus its random election timeout: 1.25-1.5 times `--election-timeout`
    // after the last heartbeat (etcd: 1-2 times). openraft checks timers on a tick of 1.5
    // heartbeat intervals, so heartbeats go at half etcd's interval to keep that tick fine.
    let election_ms = config.election_timeout.as_millis() as u64;
    let raft = openraft::Config {
        cluster_name: config.cluster_token.clone(),
        heartbeat_interval: (config.heartbeat_interval.as_millis() as u64 / 2).max(10),
        election_timeout_min: election_ms / 2,
        election_timeout_max: election_ms * 3 / 4,
        // A peer RPC (one append batch, one snapshot chunk) must finish within this.
        install_snapshot_timeout: 10_000,
        max_payload_entries: 64,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(config.snapshot_count.max(1)),
        // etcd keeps 5000 entries behind a snapshot for slow followers.
        max_in_snapshot_log_to_keep: config.snapshot_count.min(5000),
        snapshot_max_chunk_size: 1 << 20,
        ..Default::default()
    };
    raft.validate()
        .map_err(|e| ServerError::Config(format!("raft settings: {e}")))
}

fn initial_members(config: &NodeConfig) -> BTreeMap<u64, Member> {
    config
        .initial_cluster
        .iter()
        .map(|(name, urls)| {
            (
                member_id_for(urls, &config.cluster_token, ""),
                Member {
                    name: name.clone(),
                    peer_urls: urls.clone(),
                    client_urls: Vec::new(),
                },
            )
        })
        .collect()
}

/// This member's IDs: from its data directory, from `--initial-cluster` for a new cluster, or
/// from the existing members for one that joins. Returns whether the data directory was fresh.
async fn identity(config: &NodeConfig, peers: &PeerClients) -> Result<(Identity, bool)> {
    let path = config.data_dir.join(IDENTITY_FILE);
    if let Ok(bytes) = std::fs::read(&path) {
        let id: Identity = serde_json::from_slice(&bytes)
            .map_err(|e| ServerError::Config(format!("{}: {e}", path.display())))?;
        return Ok((id, false));
    }
    let identity = match config.initial_cluster_state {
        ClusterState::New => {
            let Some((_, urls)) = config
                .initial_cluster
                .iter()
                .find(|(name, _)| *name == config.name)
            else {
                return Err(ServerError::Config(format!(
                    "couldn't find local name {:?} in the initial cluster configuration",
                    config.name
                )));
            };
            let mut mine = config.peer_urls.clone();
            mine.sort();
            let mut listed = urls.clone();
            listed.sort();
            if mine != listed {
                return Err(ServerError::Config(format!(
                    "--initial-cluster has {listed:?} for {:?} but --initial-advertise-peer-urls is {mine:?}",
                    config.name
                )));
            }
            let mut ids: Vec<u64> = initial_members(config).keys().copied().collect();
            ids.sort();
            let ids: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
            Identity {
                member_id: member_id_for(&config.peer_urls, &config.cluster_token, ""),
                cluster_id: derive_id(&[&ids.join(","), &config.cluster_token]),
            }
        }
        ClusterState::Existing => join_identity(config, peers).await?,
    };
    let bytes = serde_json::to_vec(&identity).expect("identity serializes");
    // Atomic and synced: a member that lost power while writing it would otherwise start with no
    // identity (or half of one) beside a Raft log that has one.
    mainstay_raft::state_machine::write_atomic(&path, &bytes)?;
    Ok((identity, true))
}

/// Asks the other initial members who this member is (it was added by MemberAdd).
async fn join_identity(config: &NodeConfig, peers: &PeerClients) -> Result<Identity> {
    let mut mine = config.peer_urls.clone();
    mine.sort();
    let others: Vec<String> = config
        .initial_cluster
        .iter()
        .filter(|(name, _)| *name != config.name)
        .flat_map(|(_, urls)| urls.iter().cloned())
        .collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut last_error = String::from("no other member in --initial-cluster");
    while tokio::time::Instant::now() < deadline {
        for url in &others {
            match peers.members_at(url).await {
                Ok((cluster_id, members)) => {
                    for m in members {
                        let mut theirs = m.member.peer_urls.clone();
                        theirs.sort();
                        if theirs == mine {
                            return Ok(Identity {
                                member_id: m.id,
                                cluster_id,
                            });
                        }
                    }
                    return Err(ServerError::Config(format!(
                        "this member ({mine:?}) is not a member of the cluster at {url}; add it with MemberAdd first"
                    )));
                }
                Err(e) => last_error = format!("{url}: {e}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Err(ServerError::Config(format!(
        "could not reach the existing cluster: {last_error}"
    )))
}

/// Follows Raft's view of the leader: keeps [`Node::leader`] current, and on becoming leader
/// restarts every lease's clock from its checkpointed remaining TTL (as etcd's lessor promotion).
async fn follow_leadership(node: Weak<Node>) {
    let Some(n) = node.upgrade() else { return };
    let mut metrics = n.raft.metrics();
    drop(n);
    loop {
        let (leader, state, learner) = {
            let m = metrics.borrow_and_update();
            let membership = m.membership_config.membership();
            let me = m.id;
            let learner = membership.learner_ids().any(|id| id == me);
            (m.current_leader, m.state, learner)
        };
        let Some(n) = node.upgrade() else { return };
        n.is_learner.store(learner, Ordering::Release);
        let leading = state == ServerState::Leader && leader == Some(n.member_id);
        let was_leading = n.is_leader.swap(leading, Ordering::AcqRel);
        if leading && !was_leading {
            tracing::info!(term = n.raft_term(), "became leader");
            n.lessor
                .promote(&n.store.leases(), n.config.election_timeout);
        } else if !leading && was_leading {
            tracing::info!(?leader, "no longer leader");
        }
        n.leader.send_if_modified(|l| {
            let changed = *l != leader;
            *l = leader;
            changed
        });
        drop(n);
        if metrics.changed().await.is_err() {
            return;
        }
    }
}

/// Publishes this member's name and client URLs into the membership (as etcd's member publish),
/// once there is a leader, and again whenever they differ from what the membership says.
async fn publish(node: Weak<Node>) {
    loop {
        let Some(n) = node.upgrade() else { return };
        let me = Member {
            name: n.config.name.clone(),
            peer_urls: n.config.peer_urls.clone(),
            client_urls: n.config.client_urls.clone(),
        };
        let listed = n
            .members()
            .into_iter()
            .find(|m| m.id == n.member_id)
            .map(|m| m.member);
        let done = match listed {
            Some(listed) if listed.name == me.name && listed.client_urls == me.client_urls => {
                n.ready.send_replace(true);
                true
            }
            // Removed (or not yet known): nothing to publish.
            None => false,
            Some(_) => match n
                .change_cluster(ClusterOp::Publish {
                    id: n.member_id,
                    member: me,
                })
                .await
            {
                Ok(_) => {
                    tracing::info!("published this member's name and client URLs");
                    false
                }
                Err(e) => {
                    tracing::debug!(error = %e, "publishing this member failed; retrying");
                    false
                }
            },
        };
        drop(n);
        tokio::time::sleep(if done {
            Duration::from_secs(5)
        } else {
            Duration::from_millis(500)
        })
        .await;
    }
}

async fn refresh_size(node: Weak<Node>) {
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let Some(node) = node.upgrade() else { return };
        let store = node.store.clone();
        if let Ok(size) = tokio::task::spawn_blocking(move || store.size_bytes()).await {
            node.db_size.store(size, Ordering::Relaxed);
        }
    }
}
