//! The I/O layer: registration, the heartbeat loops, the shared pod watch and the per-node
//! tasks that carry out what the pure modules decide. Kept thin: every decision is made in
//! `node`, `schedule` or `pod`.
//!
//! Tasks of one process (N nodes):
//! - `lease_loop`: one task renewing every node's Lease, spread over the renew interval;
//! - `status_loop`: one task posting every node's status, spread over the report interval,
//!   and sooner for a node whose conditions someone else changed (told by `watch_nodes`);
//! - `watch_nodes`: one watch of all Nodes;
//! - `dispatch`: one watch of all pods with a `spec.nodeName`, handing each pod of ours to
//!   its node's bounded queue;
//! - N `node_loop`s: one per node, running its pods and writing their statuses in order.
//!
//! Every write to Nodes, Leases and Pods, whichever task makes it, holds one of
//! `write_concurrency` permits. Events are written by `mainstay-component`'s recorders, which
//! bound their own queues but not this process's total of Event writes in flight.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use kube::api::{PatchParams, PostParams};
use kube::Client;
use mainstay_component::events::Recorder;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::config::NodesConfig;
use crate::error::Error;
use crate::node::{NodeIdentity, TransitionTimes};
use crate::pod::sim::Clock;

mod heartbeat;
mod pods;
mod register;

/// The longest any single write may take before it counts as failed (and is retried): a
/// hung request must not hold a write permit, or a node's queue, for long.
pub(crate) const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Pod events waiting for one node's task (the dispatcher waits when it is full).
const NODE_QUEUE_CAPACITY: usize = 64;

/// One registered node.
pub(crate) struct NodeInfo {
    pub id: NodeIdentity,
    /// The Node object's UID (the Lease's owner).
    pub uid: String,
    pub boot_id: String,
    /// When its conditions last changed, as registration posted them.
    pub transitions: TransitionTimes,
    /// Kept only when pod Events are on: a recorder costs about 35 KB (its queue's first
    /// block of full Events), which would be most of a node's memory. Rare node Events use a
    /// recorder made for the occasion ([`Shared::recorder`]).
    pub recorder: Option<Recorder>,
}

/// What every task of the process shares.
pub(crate) struct Shared {
    pub client: Client,
    pub cfg: NodesConfig,
    pub writes: Arc<Semaphore>,
    pub nodes: Vec<NodeInfo>,
    pub clock: Clock,
}

impl Shared {
    /// The node's recorder, or one made for this Event (it writes what it was given, then
    /// ends).
    pub fn recorder(&self, slot: usize) -> Recorder {
        let node = &self.nodes[slot];
        match &node.recorder {
            Some(r) => r.clone(),
            None => Recorder::new(self.client.clone(), "kubelet", Some(node.id.name.clone())),
        }
    }
}

/// How a failed write failed, from the point of view of what to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    NotFound,
    /// 409: already exists, or a failed precondition.
    Conflict,
    /// Another 4xx: the request will not succeed as it is.
    Refused,
    /// 429, 5xx, a timeout or connection trouble: try again later.
    Transient,
}

pub(crate) fn error_outcome(e: &kube::Error) -> Outcome {
    match e {
        kube::Error::Api(e) => match e.code {
            404 => Outcome::NotFound,
            409 => Outcome::Conflict,
            429 => Outcome::Transient,
            c if (400..500).contains(&c) => Outcome::Refused,
            _ => Outcome::Transient,
        },
        _ => Outcome::Transient,
    }
}

/// Writes are made as kubelet's (the `managedFields` manager kube would derive from kubelet's
/// user agent).
pub(crate) const FIELD_MANAGER: &str = "kubelet";

pub(crate) fn patch_params() -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..PatchParams::default()
    }
}

pub(crate) fn post_params() -> PostParams {
    PostParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..PostParams::default()
    }
}

/// Runs `f` holding a write permit, within [`WRITE_TIMEOUT`].
pub(crate) async fn write<T>(
    writes: &Semaphore,
    f: impl Future<Output = Result<T, kube::Error>>,
) -> Option<Result<T, kube::Error>> {
    // The semaphore is never closed.
    let _permit = writes.acquire().await.ok()?;
    tokio::time::timeout(WRITE_TIMEOUT, f).await.ok()
}

pub(crate) async fn run(
    client: Client,
    cfg: NodesConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    tokio::pin!(shutdown);
    let writes = Arc::new(Semaphore::new(cfg.write_concurrency));
    let clock = Clock {
        instant: Instant::now(),
        wall: Utc::now(),
    };
    let ids: Vec<NodeIdentity> = (cfg.first_index..cfg.first_index + cfg.count)
        .map(|i| NodeIdentity::new(&cfg, i))
        .collect();
    let started = std::time::Instant::now();
    let nodes = tokio::select! {
        r = register::register_all(&client, &cfg, ids, &writes, clock.wall) => r?,
        () = &mut shutdown => return Ok(()),
    };
    tracing::info!(
        nodes = nodes.len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "simulated nodes registered"
    );
    let count = nodes.len();
    let shared = Arc::new(Shared {
        client,
        cfg,
        writes,
        nodes,
        clock,
    });

    let mut tasks: JoinSet<&'static str> = JoinSet::new();
    tasks.spawn(heartbeat::lease_loop(shared.clone()));
    let (changed_tx, changed_rx) = mpsc::channel(heartbeat::CHANGED_CAPACITY);
    tasks.spawn(heartbeat::status_loop(shared.clone(), changed_rx));
    tasks.spawn(heartbeat::watch_nodes(shared.clone(), changed_tx));
    let mut queues = Vec::with_capacity(count);
    for slot in 0..count {
        let (tx, rx) = mpsc::channel(NODE_QUEUE_CAPACITY);
        queues.push(tx);
        tasks.spawn(pods::node_loop(shared.clone(), slot, rx));
    }
    tasks.spawn(pods::dispatch(shared.clone(), queues));

    let result = tokio::select! {
        () = &mut shutdown => Ok(()),
        Some(ended) = tasks.join_next() => {
            let what = match ended {
                Ok(name) => name,
                Err(e) if e.is_panic() => "a simulated-node task (panicked)",
                Err(_) => "a simulated-node task (cancelled)",
            };
            tracing::error!(task = what, "simulated-node task ended; stopping");
            Err(Error::TaskStopped(what))
        }
    };
    tasks.shutdown().await;
    result
}
