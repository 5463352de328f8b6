//! One store node: the store, the watch hub, the lessor, and the single writer that applies
//! proposals in group-committed batches.
//!
//! Every state change goes through [`Node::propose`]: the request is validated by the caller, queued
//! on a bounded channel, and the writer task applies whatever is queued as one durable batch (one
//! fsync for many clients), tells the watch hub and the lessor, and only then answers. This is the
//! seam where Raft replication will sit: proposals become log entries, and the writer becomes the
//! apply loop.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mainstay_proto::etcdserverpb as pb;
use mainstay_store::watch::{WatchHub, WatchHubConfig};
use mainstay_store::{Alarm, AlarmKind, Command, CommandOutput, Store, StoreConfig};
use tokio::sync::{mpsc, oneshot};

use crate::error::{Result, ServerError};
use crate::lessor::Lessor;

/// Proposals waiting for the writer; a full queue makes callers wait (backpressure), not grow.
const PROPOSAL_QUEUE: usize = 4096;
/// At most this many commands share one batch (one fsync).
const MAX_BATCH: usize = 512;

#[derive(Clone, Debug)]
pub struct NodeConfig {
    pub name: String,
    pub data_dir: PathBuf,
    pub peer_urls: Vec<String>,
    pub client_urls: Vec<String>,
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
}

impl NodeConfig {
    pub fn new(name: &str, data_dir: PathBuf) -> NodeConfig {
        NodeConfig {
            name: name.to_string(),
            data_dir,
            peer_urls: vec!["http://localhost:2380".into()],
            client_urls: vec!["http://localhost:2379".into()],
            cluster_token: "etcd-cluster".into(),
            max_request_bytes: 1536 * 1024,
            max_txn_ops: 128,
            quota_backend_bytes: 2 * 1024 * 1024 * 1024,
            progress_notify_interval: Duration::from_secs(600),
            max_watchers_per_stream: 100_000,
        }
    }
}

struct Proposal {
    command: Command,
    reply: oneshot::Sender<mainstay_store::Result<CommandOutput>>,
}

pub struct Node {
    pub config: NodeConfig,
    pub store: Arc<Store>,
    pub hub: Arc<WatchHub>,
    pub lessor: Arc<Lessor>,
    pub member_id: u64,
    pub cluster_id: u64,
    proposals: mpsc::Sender<Proposal>,
    /// Backend size, refreshed by a background task (reading RocksDB properties per request would
    /// cost more than the request).
    db_size: AtomicU64,
}

/// etcd derives member IDs from the peer URLs and the cluster token; so do we (with SHA-256), so
/// the same flags give the same IDs after a restart.
fn derive_id(parts: &[&str]) -> u64 {
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

impl Node {
    /// Opens the store and starts the writer, watch catch-up, lease expiry and size tasks.
    pub async fn start(config: NodeConfig) -> Result<Arc<Node>> {
        std::fs::create_dir_all(&config.data_dir).map_err(|source| ServerError::Io {
            context: format!("creating data dir {}", config.data_dir.display()),
            source,
        })?;
        let path = config.data_dir.join("store");
        let store = tokio::task::spawn_blocking(move || Store::open(&path, StoreConfig::default()))
            .await
            .map_err(|e| ServerError::Config(format!("opening the store: {e}")))??;
        let store = Arc::new(store);
        let hub = WatchHub::new(store.clone(), WatchHubConfig::default());
        let lessor = Arc::new(Lessor::new());
        lessor.restore(&store.leases());
        let mut peers = config.peer_urls.clone();
        peers.sort();
        let peer_str = peers.join(",");
        let member_id = derive_id(&[&peer_str, &config.cluster_token]);
        let cluster_id = derive_id(&[&member_id.to_string(), &config.cluster_token]);
        let (tx, rx) = mpsc::channel(PROPOSAL_QUEUE);
        let node = Arc::new(Node {
            db_size: AtomicU64::new(store.size_bytes()),
            config,
            store,
            hub: hub.clone(),
            lessor,
            member_id,
            cluster_id,
            proposals: tx,
        });
        tokio::spawn(writer(node.clone(), rx));
        tokio::spawn(hub.run_catch_up());
        tokio::spawn(crate::lessor::run_expiry(Arc::downgrade(&node)));
        tokio::spawn(refresh_size(Arc::downgrade(&node)));
        Ok(node)
    }

    /// The header every top-level response carries.
    pub fn header(&self, revision: i64) -> Option<pb::ResponseHeader> {
        Some(pb::ResponseHeader {
            cluster_id: self.cluster_id,
            member_id: self.member_id,
            revision,
            // One member, one term; Raft replication brings real terms.
            raft_term: 1,
        })
    }

    /// Applies `command` durably and returns its result.
    pub async fn propose(&self, command: Command) -> Result<CommandOutput> {
        let (reply, rx) = oneshot::channel();
        self.proposals
            .send(Proposal { command, reply })
            .await
            .map_err(|_| ServerError::Stopped)?;
        Ok(rx.await.map_err(|_| ServerError::Stopped)??)
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

async fn refresh_size(node: std::sync::Weak<Node>) {
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let Some(node) = node.upgrade() else { return };
        let store = node.store.clone();
        if let Ok(size) = tokio::task::spawn_blocking(move || store.size_bytes()).await {
            node.db_size.store(size, Ordering::Relaxed);
        }
    }
}

/// The single writer: drains whatever is queued (up to [`MAX_BATCH`]), applies it as one durable
/// batch, then notifies watchers and the lessor before answering, so a client that hears "done"
/// can read and watch what it wrote.
async fn writer(node: Arc<Node>, mut rx: mpsc::Receiver<Proposal>) {
    let mut index = node.store.applied_index();
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        if rx.recv_many(&mut batch, MAX_BATCH).await == 0 {
            return;
        }
        index += 1;
        // Commands move into the blocking apply; replies stay here. No copy of a request.
        let (commands, replies): (Vec<Command>, Vec<_>) =
            batch.drain(..).map(|p| (p.command, p.reply)).unzip();
        let store = node.store.clone();
        let applied = match tokio::task::spawn_blocking(move || {
            let applied = store.apply(index, &commands);
            (applied, commands)
        })
        .await
        {
            Ok(a) => a,
            Err(e) => {
                // apply panics only when the disk refused a write: nothing more can be acknowledged.
                tracing::error!(error = %e, "store apply failed; stopping the node");
                std::process::abort();
            }
        };
        let (applied, commands) = applied;
        node.hub.notify(applied.revision, &applied.events);
        node.lessor.observe(&commands, &applied.outputs);
        for (reply, out) in replies.into_iter().zip(applied.outputs) {
            let _ = reply.send(out);
        }
    }
}
