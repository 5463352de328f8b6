//! kube's `ControllerExpectations` with `UIDTrackingControllerExpectations`
//! (`pkg/controller/controller_utils.go`): what a ReplicaSet waits to see from the pod watch
//! before it decides again how many pods to create or delete.
//!
//! The cache lags the API server. A ReplicaSet that created 3 pods and is synced again before
//! the watch shows them would see 0 pods and create 3 more. So after issuing N creates (or M
//! deletes) its key is not *satisfied* until the watch has shown N adds (the M named pods
//! deleted or marked for deletion), or until [`EXPECTATIONS_TIMEOUT`] has passed since the
//! expectation was set, in case an event was lost. Creates that failed, or that were never
//! tried, lower the expectation at once. Time is tokio's, so tests drive it with a paused clock.
//!
//! Bound: one entry per ReplicaSet key, removed when the ReplicaSet is deleted.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use tokio::time::Instant;

/// kube's `ExpectationsTimeout`: after this long, unfulfilled expectations stop blocking.
pub const EXPECTATIONS_TIMEOUT: Duration = Duration::from_secs(5 * 60);

#[derive(Debug, Clone)]
struct Expectation {
    adds: i64,
    dels: i64,
    /// Pods (`namespace/name`) whose deletion is awaited, so each is counted once whether the
    /// watch shows its deletionTimestamp, its deletion, or both.
    deleting: HashSet<String>,
    set_at: Instant,
}

impl Expectation {
    fn fulfilled(&self) -> bool {
        self.adds <= 0 && self.dels <= 0
    }
}

/// Expectations of every ReplicaSet, by `namespace/name`.
#[derive(Debug, Default)]
pub struct Expectations {
    by_key: HashMap<String, Expectation>,
}

impl Expectations {
    pub fn new() -> Self {
        Self::default()
    }

    /// True when the key may decide creates and deletes again: no expectation recorded, all of
    /// it observed, or it has expired.
    pub fn satisfied(&self, key: &str) -> bool {
        match self.by_key.get(key) {
            None => true,
            Some(e) => e.fulfilled() || e.set_at.elapsed() > EXPECTATIONS_TIMEOUT,
        }
    }

    /// Outstanding (adds, deletes) for a key, for logs and tests.
    pub fn pending(&self, key: &str) -> Option<(i64, i64)> {
        self.by_key.get(key).map(|e| (e.adds, e.dels))
    }

    /// About to issue `adds` creates: replaces the key's expectation and restarts its clock.
    pub fn expect_creations(&mut self, key: &str, adds: usize) {
        // kube's ExpectCreations sets (adds, 0) and leaves the tracked delete keys alone.
        let deleting = self
            .by_key
            .remove(key)
            .map(|e| e.deleting)
            .unwrap_or_default();
        self.by_key.insert(
            key.to_string(),
            Expectation {
                adds: i64::try_from(adds).unwrap_or(i64::MAX),
                dels: 0,
                deleting,
                set_at: Instant::now(),
            },
        );
    }

    /// About to delete these pods: replaces the key's expectation and restarts its clock.
    pub fn expect_deletions(&mut self, key: &str, pods: impl IntoIterator<Item = String>) {
        let deleting: HashSet<String> = pods.into_iter().collect();
        self.by_key.insert(
            key.to_string(),
            Expectation {
                adds: 0,
                dels: i64::try_from(deleting.len()).unwrap_or(i64::MAX),
                deleting,
                set_at: Instant::now(),
            },
        );
    }

    /// The watch showed a pod this ReplicaSet created (or `n` creates will never be seen).
    pub fn creations_observed(&mut self, key: &str, n: usize) {
        if let Some(e) = self.by_key.get_mut(key) {
            e.adds -= i64::try_from(n).unwrap_or(i64::MAX);
        }
    }

    /// The watch showed `pod` deleted or being deleted (or its delete failed): counted once,
    /// and only if it was one of the awaited pods.
    pub fn deletion_observed(&mut self, key: &str, pod: &str) {
        if let Some(e) = self.by_key.get_mut(key) {
            if e.deleting.remove(pod) {
                e.dels -= 1;
            }
        }
    }

    /// Forgets the key (its ReplicaSet is gone; a new one of the same name starts clean).
    pub fn delete(&mut self, key: &str) {
        self.by_key.remove(key);
    }

    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replicaset::sync::{replica_diff, ReplicaDiff, BURST_REPLICAS};

    const KEY: &str = "ns/web";

    /// One sync's create/delete decision, as the controller makes it: nothing unless the
    /// expectations are satisfied, else the diff between desired and the pods the cache shows.
    fn decide(exp: &mut Expectations, desired: i32, cached_pods: usize) -> ReplicaDiff {
        if !exp.satisfied(KEY) {
            return ReplicaDiff::InSync;
        }
        let d = replica_diff(desired, cached_pods, BURST_REPLICAS);
        if let ReplicaDiff::Create(n) = d {
            exp.expect_creations(KEY, n);
        }
        d
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_watch_does_not_double_the_pods() {
        let mut exp = Expectations::new();
        let mut created = 0;
        let mut cached = 0;
        // First sync: nothing cached, 3 wanted.
        if let ReplicaDiff::Create(n) = decide(&mut exp, 3, cached) {
            created += n;
        }
        assert_eq!(created, 3);
        // Syncs triggered by unrelated events (our own status write, a label change…) while
        // the watch has not yet shown the new pods: the stale cache says 0 pods.
        for _ in 0..5 {
            tokio::time::advance(Duration::from_secs(2)).await;
            assert_eq!(decide(&mut exp, 3, cached), ReplicaDiff::InSync);
        }
        // The watch catches up, one pod at a time.
        for _ in 0..3 {
            assert!(!exp.satisfied(KEY));
            exp.creations_observed(KEY, 1);
            cached += 1;
        }
        assert!(exp.satisfied(KEY));
        assert_eq!(decide(&mut exp, 3, cached), ReplicaDiff::InSync);
        assert_eq!(created, 3, "no extra pods");

        // Without expectations the same sequence would have created 3 more on the next sync.
        assert_eq!(
            replica_diff(3, 0, BURST_REPLICAS),
            ReplicaDiff::Create(3),
            "the gate is what prevents the doubling"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn expectations_expire_after_five_minutes() {
        let mut exp = Expectations::new();
        exp.expect_creations(KEY, 2);
        exp.creations_observed(KEY, 1);
        tokio::time::advance(EXPECTATIONS_TIMEOUT).await;
        assert!(!exp.satisfied(KEY), "not before the timeout has passed");
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(
            exp.satisfied(KEY),
            "a lost watch event stops blocking after 5 minutes"
        );
        // Observations do not restart the clock; a new expectation does.
        exp.expect_creations(KEY, 1);
        assert!(!exp.satisfied(KEY));
    }

    #[tokio::test(start_paused = true)]
    async fn failed_and_skipped_creates_lower_the_expectation() {
        let mut exp = Expectations::new();
        exp.expect_creations(KEY, 7);
        // Slow start: batch 1 ok, batch 2 ok, batch 4 had one failure; 3 succeeded of 7.
        let succeeded = 1 + 2 + 3;
        exp.creations_observed(KEY, 7 - succeeded);
        assert_eq!(exp.pending(KEY), Some((6, 0)));
        exp.creations_observed(KEY, 5);
        assert!(!exp.satisfied(KEY));
        exp.creations_observed(KEY, 1);
        assert!(exp.satisfied(KEY));
    }

    #[tokio::test(start_paused = true)]
    async fn each_awaited_deletion_counts_once() {
        let mut exp = Expectations::new();
        exp.expect_deletions(KEY, ["ns/a".to_string(), "ns/b".to_string()]);
        assert_eq!(exp.pending(KEY), Some((0, 2)));
        // Graceful deletion: first the deletionTimestamp, later the delete event.
        exp.deletion_observed(KEY, "ns/a");
        exp.deletion_observed(KEY, "ns/a");
        // A pod we did not choose is deleted by someone else: not ours to count.
        exp.deletion_observed(KEY, "ns/z");
        assert_eq!(exp.pending(KEY), Some((0, 1)));
        assert!(!exp.satisfied(KEY));
        exp.deletion_observed(KEY, "ns/b");
        assert!(exp.satisfied(KEY));
    }

    #[tokio::test(start_paused = true)]
    async fn unknown_keys_are_satisfied_and_deleted_keys_start_clean() {
        let mut exp = Expectations::new();
        assert!(exp.satisfied(KEY));
        exp.creations_observed(KEY, 1);
        assert!(
            exp.pending(KEY).is_none(),
            "observations without expectations are ignored"
        );
        exp.expect_creations(KEY, 3);
        exp.delete(KEY);
        assert!(exp.satisfied(KEY));
        assert!(exp.is_empty());
    }
}
