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

use chrono::Utc;
use kube::Client;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::config::NodesConfig;
use crate::error::Error;
use crate::node::NodeIdentity;
use crate::pod::sim::Clock;

mod heartbeat;
mod pods;
mod register;
mod shared;

use shared::{Shared, NODE_QUEUE_CAPACITY};

pub(crate) async fn run(
    client: Client,
    cfg: NodesConfig,
    control: crate::control::NodeControl,
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
        control,
    });

    let mut tasks: JoinSet<&'static str> = JoinSet::new();
    tasks.spawn(heartbeat::lease_loop(shared.clone()));
    let (changed_tx, changed_rx) = mpsc::channel(heartbeat::CHANGED_CAPACITY);
    let restarts = shared
        .control
        .take_restarts()
        .unwrap_or_else(|| mpsc::channel(1).1);
    tasks.spawn(heartbeat::status_loop(shared.clone(), changed_rx, restarts));
    let mut queues = Vec::with_capacity(count);
    for slot in 0..count {
        let (tx, rx) = mpsc::channel(NODE_QUEUE_CAPACITY);
        queues.push(tx);
        tasks.spawn(pods::node_loop(shared.clone(), slot, rx));
    }
    tasks.spawn(heartbeat::watch_nodes(
        shared.clone(),
        changed_tx,
        queues.clone(),
    ));
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
