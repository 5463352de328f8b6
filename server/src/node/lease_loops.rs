//! The node's lease loops: the only code that proposes on the lessor's behalf. The lessor
//! ([`crate::lessor`]) keeps the books and hands out expired leases and remaining TTLs; these loops,
//! on the leader, turn them into `LeaseRevoke` and `LeaseCheckpoint` proposals (etcd's lessor offers
//! expired leases on a channel and its server loop revokes them the same way).

use std::sync::Weak;
use std::time::Duration;

use mainstay_store::{Command, StoreError};
use tokio::time::Instant;

use super::Node;
use crate::error::ServerError;

const EXPIRY_TICK: Duration = Duration::from_millis(250);
/// etcd's `maxLeaseCheckpointBatchSize`.
const MAX_CHECKPOINTS_PER_COMMAND: usize = 1000;

impl Node {
    /// On the leader, revokes expired leases until the node is gone. Other members only track
    /// leases; the leader decides expiry and replicates the revoke.
    pub(super) async fn run_expiry(node: Weak<Node>) {
        let mut tick = tokio::time::interval(EXPIRY_TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(n) = node.upgrade() else { return };
            if !n.is_leader() {
                continue;
            }
            let expired = n.lessor.take_expired(Instant::now());
            drop(n);
            for id in expired {
                let node = node.clone();
                tokio::spawn(async move {
                    let Some(n) = node.upgrade() else { return };
                    match n.propose(Command::LeaseRevoke { id }).await {
                        Ok(_) | Err(ServerError::Store(StoreError::LeaseNotFound)) => {}
                        Err(e) => {
                            tracing::warn!(lease = id, error = %e, "revoking an expired lease failed");
                            n.lessor.revoke_failed(id);
                        }
                    }
                });
            }
        }
    }

    /// On the leader, checkpoints leases' remaining TTLs through Raft every
    /// `lease_checkpoint_interval`, so a new leader restarts each lease from what was left rather than
    /// from its full TTL.
    pub(super) async fn run_checkpoints(node: Weak<Node>) {
        let Some(n) = node.upgrade() else { return };
        let mut tick = tokio::time::interval(n.config.lease_checkpoint_interval);
        drop(n);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(n) = node.upgrade() else { return };
            if !n.is_leader() {
                continue;
            }
            for batch in n.lessor.checkpoints().chunks(MAX_CHECKPOINTS_PER_COMMAND) {
                let command = Command::LeaseCheckpoint {
                    checkpoints: batch.to_vec(),
                };
                if let Err(e) = n.propose(command).await {
                    tracing::warn!(error = %e, "checkpointing leases failed");
                    break;
                }
            }
        }
    }
}
