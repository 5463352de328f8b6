//! The lessor: when each lease expires. The store holds leases' durable state (TTL, keys); the
//! deadlines are wall-clock, so they live here, outside the deterministic state machine. Expiry
//! becomes a `LeaseRevoke` command proposed like any other write.
//!
//! The lessor only keeps the books: it hands out expired leases (`Lessor::take_expired`) and
//! remaining TTLs (`Lessor::checkpoints`), and never proposes anything itself. The node's lease
//! loops (`node/lease_loops.rs`) propose the revokes and checkpoints, as etcd's server loop
//! revokes what its lessor's `ExpiredLeasesC` hands out.
//!
//! Every member tracks leases as they are applied, but only the leader runs expiry. When a member
//! becomes leader every lease gets a fresh deadline (its checkpointed remaining TTL if it has one,
//! else its full TTL, plus an election timeout), as etcd's lessor promotion does; the leader
//! checkpoints remaining TTLs through Raft periodically so that this survives a leader change.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use mainstay_store::{Command, CommandOutput, LeaseInfo, StoreError};
use tokio::time::Instant;

/// Expired leases revoked per round, so a mass expiry cannot flood the proposal queue.
const MAX_REVOKES_PER_ROUND: usize = 1000;

#[derive(Default)]
struct State {
    deadline: HashMap<i64, Instant>,
    by_deadline: BTreeSet<(Instant, i64)>,
    /// Expired, revoke proposed, not yet applied.
    revoking: BTreeSet<i64>,
}

impl State {
    fn set(&mut self, id: i64, at: Instant) {
        if let Some(old) = self.deadline.insert(id, at) {
            self.by_deadline.remove(&(old, id));
        }
        self.by_deadline.insert((at, id));
    }

    fn remove(&mut self, id: i64) {
        if let Some(old) = self.deadline.remove(&id) {
            self.by_deadline.remove(&(old, id));
        }
        self.revoking.remove(&id);
    }
}

#[derive(Default)]
pub struct Lessor {
    state: Mutex<State>,
}

impl Lessor {
    pub fn new() -> Lessor {
        Lessor::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Forgets every deadline and starts each lease's clock again from its checkpointed remaining
    /// TTL (or its full TTL), plus `extend`.
    fn restart_clocks(&self, leases: &[LeaseInfo], extend: Duration) {
        let now = Instant::now() + extend;
        let mut s = self.lock();
        s.deadline.clear();
        s.by_deadline.clear();
        s.revoking.clear();
        for l in leases {
            let ttl = if l.remaining_ttl_secs > 0 {
                l.remaining_ttl_secs
            } else {
                l.ttl_secs
            };
            s.set(l.id, now + secs(ttl));
        }
    }

    /// Tracks the leases of a store that was just opened or replaced by a snapshot.
    pub fn reset(&self, leases: &[LeaseInfo]) {
        self.restart_clocks(leases, Duration::ZERO)
    }

    /// This member became leader: every lease's clock restarts from its checkpointed remaining
    /// TTL, extended by `extend` (an election timeout) so that keep-alives that went to the old
    /// leader meanwhile have a chance to reach this one (etcd's `Promote`).
    pub fn promote(&self, leases: &[LeaseInfo], extend: Duration) {
        self.restart_clocks(leases, extend)
    }

    /// Every lease's remaining whole seconds (at least 1), to checkpoint.
    pub(crate) fn checkpoints(&self) -> Vec<(i64, i64)> {
        let now = Instant::now();
        let s = self.lock();
        s.deadline
            .iter()
            .filter(|(id, _)| !s.revoking.contains(id))
            .map(|(id, at)| {
                (
                    *id,
                    (at.saturating_duration_since(now).as_secs() as i64).max(1),
                )
            })
            .collect()
    }

    /// Follows applied commands: a granted lease starts its clock, a revoked one is forgotten.
    pub fn observe(&self, commands: &[Command], outputs: &[mainstay_store::Result<CommandOutput>]) {
        let now = Instant::now();
        let mut s = self.lock();
        for (c, o) in commands.iter().zip(outputs) {
            match (c, o) {
                (
                    Command::LeaseGrant { .. },
                    Ok(CommandOutput::LeaseGrant { id, ttl_secs, .. }),
                ) => s.set(*id, now + secs(*ttl_secs)),
                (Command::LeaseRevoke { id }, Ok(_) | Err(StoreError::LeaseNotFound)) => {
                    s.remove(*id)
                }
                _ => {}
            }
        }
    }

    /// Restarts a lease's clock; `None` if the lessor does not know it.
    pub fn renew(&self, id: i64, ttl_secs: i64) -> Option<()> {
        let mut s = self.lock();
        if !s.deadline.contains_key(&id) || s.revoking.contains(&id) {
            return None;
        }
        s.set(id, Instant::now() + secs(ttl_secs));
        Some(())
    }

    /// Whole seconds left, truncated as etcd reports them; `None` if unknown.
    pub fn remaining_secs(&self, id: i64) -> Option<i64> {
        let s = self.lock();
        let at = s.deadline.get(&id)?;
        Some(at.saturating_duration_since(Instant::now()).as_secs() as i64)
    }

    /// Lease IDs ordered by expiry, soonest first (etcd lists leases this way).
    pub fn by_expiry(&self) -> Vec<i64> {
        self.lock().by_deadline.iter().map(|(_, id)| *id).collect()
    }

    /// Leases past their deadline that are not yet being revoked; marks them as being revoked.
    pub(crate) fn take_expired(&self, now: Instant) -> Vec<i64> {
        let mut s = self.lock();
        let expired: Vec<i64> = s
            .by_deadline
            .iter()
            .take_while(|(at, _)| *at <= now)
            .map(|(_, id)| *id)
            .filter(|id| !s.revoking.contains(id))
            .take(MAX_REVOKES_PER_ROUND)
            .collect();
        s.revoking.extend(expired.iter().copied());
        expired
    }

    /// A revoke of `id` handed out by [`Lessor::take_expired`] failed: hand it out again.
    pub(crate) fn revoke_failed(&self, id: i64) {
        self.lock().revoking.remove(&id);
    }
}

fn secs(s: i64) -> Duration {
    Duration::from_secs(s.max(0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn expired_leases_come_out_once_in_deadline_order() {
        let l = Lessor::new();
        let grants = [
            Command::LeaseGrant { id: 1, ttl_secs: 5 },
            Command::LeaseGrant { id: 2, ttl_secs: 3 },
        ];
        let outs = vec![
            Ok(CommandOutput::LeaseGrant {
                id: 1,
                ttl_secs: 5,
                revision: 1,
            }),
            Ok(CommandOutput::LeaseGrant {
                id: 2,
                ttl_secs: 3,
                revision: 1,
            }),
        ];
        l.observe(&grants, &outs);
        assert_eq!(l.by_expiry(), vec![2, 1]);
        assert!(l.take_expired(Instant::now()).is_empty());
        tokio::time::advance(Duration::from_secs(4)).await;
        assert_eq!(l.take_expired(Instant::now()), vec![2]);
        // Being revoked: not handed out again, and cannot be renewed.
        assert!(l.take_expired(Instant::now()).is_empty());
        assert!(l.renew(2, 3).is_none());
        // A renewal pushes lease 1 past the next check.
        l.renew(1, 5).unwrap();
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(l.take_expired(Instant::now()).is_empty());
        assert_eq!(l.remaining_secs(1), Some(3));
        l.observe(
            &[Command::LeaseRevoke { id: 2 }],
            &[Ok(CommandOutput::LeaseRevoke { revision: 2 })],
        );
        assert_eq!(l.by_expiry(), vec![1]);
    }

    #[tokio::test(start_paused = true)]
    async fn promotion_restarts_clocks_from_checkpoints_plus_an_extension() {
        let l = Lessor::new();
        let lease = |id, ttl_secs, remaining_ttl_secs| LeaseInfo {
            id,
            ttl_secs,
            remaining_ttl_secs,
            keys: vec![],
        };
        // Lease 1 was checkpointed at 20 s left; lease 2 never was.
        l.promote(&[lease(1, 60, 20), lease(2, 30, 0)], Duration::from_secs(1));
        assert_eq!(l.remaining_secs(1), Some(21));
        assert_eq!(l.remaining_secs(2), Some(31));
        tokio::time::advance(Duration::from_secs(10)).await;
        let mut checkpoints = l.checkpoints();
        checkpoints.sort();
        assert_eq!(checkpoints, vec![(1, 11), (2, 21)]);
        // An expired lease being revoked is not checkpointed.
        tokio::time::advance(Duration::from_secs(12)).await;
        assert_eq!(l.take_expired(Instant::now()), vec![1]);
        assert_eq!(l.checkpoints(), vec![(2, 9)]);
        // A store replaced by a snapshot: clocks restart without the extension.
        l.reset(&[lease(3, 5, 0)]);
        assert_eq!(l.by_expiry(), vec![3]);
        assert_eq!(l.remaining_secs(3), Some(5));
    }
}
