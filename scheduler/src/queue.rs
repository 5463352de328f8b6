//! The scheduling queue (kube's `internal/queue.PriorityQueue`), pure: every method takes `now`
//! (tokio's `Instant`, so tests drive it with paused time) and nothing here sleeps or spawns.
//!
//! - **activeQ**: pods ready to be tried, highest `.spec.priority` first, then the earliest
//!   queued (kube's PrioritySort).
//! - **backoffQ**: pods that failed recently wait `initial · 2^(attempts-1)`, at most `max`
//!   (1 s doubling to 10 s: `podInitialBackoffSeconds`, `podMaxBackoffSeconds`), measured from
//!   the failure.
//! - **unschedulable pods**: pods no node fits wait for a cluster event that may change the
//!   verdict of a filter that rejected them (see [`ClusterEvent::may_help`]), then go to backoffQ
//!   or activeQ; after 5 min (`podMaxInUnschedulablePodsDuration`) they are retried anyway.
//! - **gated pods** (non-empty `schedulingGates`) are held until an update removes the gates.
//! - **in flight**: popped and being scheduled or bound. A cluster event during that time sends
//!   the pod to backoffQ rather than the unschedulable pool if it fails (kube's
//!   `moveRequestCycle`), so an event is never missed.
//!
//! An update to a queued pod replaces it in place (and moves an unschedulable pod whose spec
//! changed); a deleted pod leaves. The queue holds at most `capacity` pods (default
//! [`DEFAULT_CAPACITY`]); beyond that [`SchedulingQueue::add`] refuses new pods, which the caller
//! counts and logs (the pod is offered again by its next watch event or relist).

use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use tokio::time::Instant;

use crate::algorithm::{Plugin, PluginSet};

/// kube's `podInitialBackoffSeconds`.
pub const DEFAULT_POD_INITIAL_BACKOFF: Duration = Duration::from_secs(1);
/// kube's `podMaxBackoffSeconds`.
pub const DEFAULT_POD_MAX_BACKOFF: Duration = Duration::from_secs(10);
/// kube's `podMaxInUnschedulablePodsDuration`.
pub const DEFAULT_POD_MAX_IN_UNSCHEDULABLE: Duration = Duration::from_secs(5 * 60);
/// Pending pods held at most (the scalability limit is 150,000 pods per cluster).
pub const DEFAULT_CAPACITY: usize = 200_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueConfig {
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    pub max_in_unschedulable: Duration,
    pub capacity: usize,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            initial_backoff: DEFAULT_POD_INITIAL_BACKOFF,
            max_backoff: DEFAULT_POD_MAX_BACKOFF,
            max_in_unschedulable: DEFAULT_POD_MAX_IN_UNSCHEDULABLE,
            capacity: DEFAULT_CAPACITY,
        }
    }
}

/// What changed on an updated node, as far as the filters care.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NodeChange {
    pub allocatable: bool,
    pub labels: bool,
    pub taints: bool,
    /// `spec.unschedulable` went from true to false.
    pub became_schedulable: bool,
}

impl NodeChange {
    pub fn is_empty(&self) -> bool {
        *self == NodeChange::default()
    }
}

/// A change in the cluster that may let a waiting pod fit (kube's `ClusterEvent`s that the
/// default plugins register in `EventsToRegister`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterEvent {
    NodeAdded,
    NodeUpdated(NodeChange),
    /// An assigned pod went away or asks for less: deleted, finished, scaled down, or an
    /// assumed pod forgotten or expired.
    AssignedPodFreed,
}

impl ClusterEvent {
    /// The filters whose verdict this event may change.
    pub fn may_help(&self) -> PluginSet {
        use Plugin::*;
        match self {
            ClusterEvent::NodeAdded => PluginSet::of(&[
                NodeUnschedulable,
                NodeName,
                TaintToleration,
                NodeAffinity,
                NodePorts,
                NodeResourcesFit,
            ]),
            ClusterEvent::NodeUpdated(c) => {
                let mut s = PluginSet::EMPTY;
                if c.became_schedulable {
                    s.insert(NodeUnschedulable);
                }
                if c.taints {
                    s.insert(TaintToleration);
                }
                if c.labels {
                    s.insert(NodeAffinity);
                }
                if c.allocatable {
                    s.insert(NodeResourcesFit);
                }
                s
            }
            ClusterEvent::AssignedPodFreed => PluginSet::of(&[NodePorts, NodeResourcesFit]),
        }
    }
}

/// The queue's key for a pod: its uid (or `namespace/name` if the server sent none).
pub fn pod_key(pod: &Pod) -> String {
    match pod.metadata.uid.as_deref() {
        Some(uid) if !uid.is_empty() => uid.to_string(),
        _ => format!(
            "{}/{}",
            pod.metadata.namespace.as_deref().unwrap_or(""),
            pod.metadata.name.as_deref().unwrap_or("")
        ),
    }
}

fn is_gated(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.scheduling_gates.as_ref())
        .is_some_and(|g| !g.is_empty())
}

fn priority(pod: &Pod) -> i32 {
    pod.spec.as_ref().and_then(|s| s.priority).unwrap_or(0)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Where {
    Active,
    Backoff,
    Unschedulable,
    Gated,
    InFlight,
}

#[derive(Debug)]
struct Entry {
    pod: Arc<Pod>,
    priority: i32,
    /// Unique order of insertion into the current sub-queue (a tiebreak for equal instants).
    seq: u64,
    /// kube's `Timestamp`: when the pod was added, or last failed.
    queued_at: Instant,
    /// When the pod was first queued (for the end-to-end latency).
    first_queued_at: Instant,
    attempts: u32,
    unschedulable_plugins: PluginSet,
    backoff_until: Instant,
    /// Scheduling cycle of the last pop.
    cycle: u64,
    /// The spec changed while the pod was in flight.
    changed_in_flight: bool,
    at: Where,
}

type ActiveKey = (Reverse<i32>, Instant, u64, String);
type TimeKey = (Instant, u64, String);

/// A pod taken from the queue for one scheduling attempt.
#[derive(Debug, Clone)]
pub struct Popped {
    pub pod: Arc<Pod>,
    pub key: String,
    /// Attempts including this one.
    pub attempts: u32,
    /// The scheduling cycle of this attempt.
    pub cycle: u64,
    pub first_queued_at: Instant,
}

/// The queue was full: the pod was not added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("scheduler: scheduling queue full ({0} pods)")]
pub struct QueueFull(pub usize);

/// How many pods wait where.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueCounts {
    pub active: usize,
    pub backoff: usize,
    pub unschedulable: usize,
    pub gated: usize,
    pub in_flight: usize,
}

#[derive(Debug)]
pub struct SchedulingQueue {
    cfg: QueueConfig,
    entries: HashMap<String, Entry>,
    active: BTreeSet<ActiveKey>,
    backoff: BTreeSet<TimeKey>,
    /// Keyed by when the pod became unschedulable.
    unschedulable: BTreeSet<TimeKey>,
    gated: usize,
    in_flight: usize,
    next_seq: u64,
    scheduling_cycle: u64,
    move_request_cycle: u64,
}

impl SchedulingQueue {
    pub fn new(cfg: QueueConfig) -> SchedulingQueue {
        SchedulingQueue {
            cfg,
            entries: HashMap::new(),
            active: BTreeSet::new(),
            backoff: BTreeSet::new(),
            unschedulable: BTreeSet::new(),
            gated: 0,
            in_flight: 0,
            next_seq: 0,
            scheduling_cycle: 0,
            move_request_cycle: 0,
        }
    }

    pub fn counts(&self) -> QueueCounts {
        QueueCounts {
            active: self.active.len(),
            backoff: self.backoff.len(),
            unschedulable: self.unschedulable.len(),
            gated: self.gated,
            in_flight: self.in_flight,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Keys of all queued pods (for a relist).
    pub fn keys(&self) -> Vec<String> {
        self.entries.keys().cloned().collect()
    }

    pub fn contains(&self, key: &str) -> bool {
        self.entries.contains_key(key)
    }

    /// kube's `calculateBackoffDuration`.
    pub fn backoff_duration(&self, attempts: u32) -> Duration {
        let mut d = self.cfg.initial_backoff;
        for _ in 1..attempts {
            d = d.saturating_mul(2);
            if d > self.cfg.max_backoff {
                return self.cfg.max_backoff;
            }
        }
        d.min(self.cfg.max_backoff)
    }

    fn seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    /// Takes the entry out of whatever sub-queue holds it (the entry stays in `entries`).
    fn unlink(&mut self, key: &str) {
        let Some(e) = self.entries.get(key) else {
            return;
        };
        match e.at {
            Where::Active => {
                self.active
                    .remove(&(Reverse(e.priority), e.queued_at, e.seq, key.to_string()));
            }
            Where::Backoff => {
                self.backoff
                    .remove(&(e.backoff_until, e.seq, key.to_string()));
            }
            Where::Unschedulable => {
                self.unschedulable
                    .remove(&(e.queued_at, e.seq, key.to_string()));
            }
            Where::Gated => self.gated -= 1,
            Where::InFlight => self.in_flight -= 1,
        }
    }

    /// Puts an (unlinked) entry into `to`.
    fn link(&mut self, key: &str, to: Where) {
        let seq = self.seq();
        let Some(e) = self.entries.get_mut(key) else {
            return;
        };
        e.at = to;
        e.seq = seq;
        match to {
            Where::Active => {
                self.active
                    .insert((Reverse(e.priority), e.queued_at, seq, key.to_string()));
            }
            Where::Backoff => {
                self.backoff.insert((e.backoff_until, seq, key.to_string()));
            }
            Where::Unschedulable => {
                self.unschedulable
                    .insert((e.queued_at, seq, key.to_string()));
            }
            Where::Gated => self.gated += 1,
            Where::InFlight => self.in_flight += 1,
        }
    }

    fn move_to(&mut self, key: &str, to: Where) {
        self.unlink(key);
        self.link(key, to);
    }

    /// Active if its backoff is over, else backoff.
    fn active_or_backoff(&self, key: &str, now: Instant) -> Where {
        match self.entries.get(key) {
            Some(e) if e.backoff_until > now => Where::Backoff,
            _ => Where::Active,
        }
    }

    /// A pending pod from the watch: added, or replacing the queued version.
    pub fn add(&mut self, pod: Pod, now: Instant) -> Result<(), QueueFull> {
        let key = pod_key(&pod);
        let gated = is_gated(&pod);
        let prio = priority(&pod);
        let Some(e) = self.entries.get_mut(&key) else {
            if self.entries.len() >= self.cfg.capacity {
                return Err(QueueFull(self.cfg.capacity));
            }
            self.entries.insert(
                key.clone(),
                Entry {
                    pod: Arc::new(pod),
                    priority: prio,
                    seq: 0,
                    queued_at: now,
                    first_queued_at: now,
                    attempts: 0,
                    unschedulable_plugins: PluginSet::EMPTY,
                    backoff_until: now,
                    cycle: 0,
                    changed_in_flight: false,
                    at: Where::Gated,
                },
            );
            self.link(&key, if gated { Where::Gated } else { Where::Active });
            return Ok(());
        };
        let spec_changed = e.pod.spec != pod.spec || e.pod.metadata.labels != pod.metadata.labels;
        let at = e.at;
        if at == Where::InFlight {
            e.changed_in_flight |= spec_changed;
            e.pod = Arc::new(pod);
            e.priority = prio;
            return Ok(());
        }
        // Re-link so a priority change reorders; the entry keeps its times.
        self.unlink(&key);
        if let Some(e) = self.entries.get_mut(&key) {
            e.pod = Arc::new(pod);
            e.priority = prio;
        }
        let to = match at {
            Where::Gated if !gated => {
                if let Some(e) = self.entries.get_mut(&key) {
                    e.queued_at = now;
                    e.first_queued_at = now;
                }
                Where::Active
            }
            Where::Unschedulable if spec_changed => self.active_or_backoff(&key, now),
            other => other,
        };
        self.link(&key, to);
        Ok(())
    }

    /// The pod was deleted, bound elsewhere, or is no longer ours: it leaves the queue.
    pub fn delete(&mut self, key: &str) -> bool {
        self.unlink(key);
        self.entries.remove(key).is_some()
    }

    /// Moves due pods: backoffQ pods whose backoff is over to activeQ, and pods unschedulable
    /// for longer than `max_in_unschedulable` to backoffQ or activeQ.
    pub fn flush(&mut self, now: Instant) {
        while let Some((until, _, key)) = self.backoff.first().cloned() {
            if until > now {
                break;
            }
            self.move_to(&key, Where::Active);
        }
        while let Some((since, _, key)) = self.unschedulable.first().cloned() {
            if since + self.cfg.max_in_unschedulable > now {
                break;
            }
            let to = self.active_or_backoff(&key, now);
            self.move_to(&key, to);
        }
    }

    /// The next pod to try, if one is ready at `now`.
    pub fn pop(&mut self, now: Instant) -> Option<Popped> {
        self.flush(now);
        let (_, _, _, key) = self.active.first().cloned()?;
        self.move_to(&key, Where::InFlight);
        self.scheduling_cycle += 1;
        let cycle = self.scheduling_cycle;
        let e = self.entries.get_mut(&key)?;
        e.attempts = e.attempts.saturating_add(1);
        e.cycle = cycle;
        e.changed_in_flight = false;
        Some(Popped {
            pod: e.pod.clone(),
            key,
            attempts: e.attempts,
            cycle,
            first_queued_at: e.first_queued_at,
        })
    }

    /// When the next pod becomes ready without any event (a backoff ending, or the
    /// unschedulable timeout), if any pod is waiting for time.
    pub fn next_wakeup(&self) -> Option<Instant> {
        let b = self.backoff.first().map(|(t, _, _)| *t);
        let u = self
            .unschedulable
            .first()
            .map(|(t, _, _)| *t + self.cfg.max_in_unschedulable);
        match (b, u) {
            (Some(b), Some(u)) => Some(b.min(u)),
            (b, u) => b.or(u),
        }
    }

    /// The in-flight pod was placed: it leaves the queue.
    pub fn done(&mut self, key: &str) {
        if self
            .entries
            .get(key)
            .is_some_and(|e| e.at == Where::InFlight)
        {
            self.delete(key);
        }
    }

    /// The in-flight pod fits no node (kube's `AddUnschedulableIfNotPresent`): it waits in the
    /// unschedulable pool for an event that may help one of `plugins` — or in backoffQ if such
    /// an event (or a change to the pod) came while it was in flight.
    pub fn requeue_unschedulable(&mut self, key: &str, plugins: PluginSet, now: Instant) {
        let move_request_cycle = self.move_request_cycle;
        let backoff = match self.entries.get(key) {
            Some(e) if e.at == Where::InFlight => self.backoff_duration(e.attempts),
            _ => return, // deleted (or re-added) meanwhile
        };
        let Some(e) = self.entries.get_mut(key) else {
            return;
        };
        e.queued_at = now;
        e.backoff_until = now + backoff;
        e.unschedulable_plugins = plugins;
        let to = if move_request_cycle >= e.cycle || e.changed_in_flight {
            Where::Backoff
        } else {
            Where::Unschedulable
        };
        self.move_to(key, to);
    }

    /// The in-flight pod failed for another reason (a bind error): it retries after backoff.
    pub fn requeue_backoff(&mut self, key: &str, now: Instant) {
        let backoff = match self.entries.get(key) {
            Some(e) if e.at == Where::InFlight => self.backoff_duration(e.attempts),
            _ => return,
        };
        if let Some(e) = self.entries.get_mut(key) {
            e.queued_at = now;
            e.backoff_until = now + backoff;
            e.unschedulable_plugins = PluginSet::EMPTY;
        }
        self.move_to(key, Where::Backoff);
    }

    /// A cluster event: unschedulable pods rejected by a filter it may help (or by an error)
    /// move to backoffQ or activeQ (kube's `MoveAllToActiveOrBackoffQueue`).
    pub fn on_event(&mut self, event: ClusterEvent, now: Instant) {
        let helps = event.may_help();
        if helps.is_empty() {
            return;
        }
        self.move_request_cycle = self.scheduling_cycle;
        let moving: Vec<String> = self
            .unschedulable
            .iter()
            .filter(|(_, _, key)| {
                self.entries.get(key).is_some_and(|e| {
                    e.unschedulable_plugins.is_empty() || e.unschedulable_plugins.intersects(helps)
                })
            })
            .map(|(_, _, key)| key.clone())
            .collect();
        for key in moving {
            let to = self.active_or_backoff(&key, now);
            self.move_to(&key, to);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::algorithm::testing::pod;

    fn q() -> SchedulingQueue {
        SchedulingQueue::new(QueueConfig::default())
    }

    fn p(name: &str, prio: i32) -> Pod {
        pod(name).priority(prio).0
    }

    fn name(p: &Popped) -> &str {
        p.pod.metadata.name.as_deref().unwrap()
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[tokio::test(start_paused = true)]
    async fn active_orders_by_priority_then_time() {
        let mut q = q();
        q.add(p("low-early", 0), Instant::now()).unwrap();
        tokio::time::advance(secs(1)).await;
        q.add(p("high", 10), Instant::now()).unwrap();
        q.add(p("low-late", 0), Instant::now()).unwrap();
        q.add(p("negative", -5), Instant::now()).unwrap();
        let now = Instant::now();
        let order: Vec<String> =
            std::iter::from_fn(|| q.pop(now).map(|x| name(&x).to_string())).collect();
        assert_eq!(order, ["high", "low-early", "low-late", "negative"]);
        assert_eq!(q.counts().in_flight, 4);
    }

    #[tokio::test(start_paused = true)]
    async fn equal_instants_keep_insertion_order() {
        let mut q = q();
        let now = Instant::now();
        for n in ["a", "b", "c"] {
            q.add(p(n, 0), now).unwrap();
        }
        let order: Vec<String> =
            std::iter::from_fn(|| q.pop(now).map(|x| name(&x).to_string())).collect();
        assert_eq!(order, ["a", "b", "c"]);
    }

    #[test]
    fn backoff_doubles_to_the_max() {
        let q = q();
        let got: Vec<u64> = (1..=6).map(|a| q.backoff_duration(a).as_secs()).collect();
        assert_eq!(got, [1, 2, 4, 8, 10, 10]);
        assert_eq!(q.backoff_duration(u32::MAX), secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn failed_pods_back_off_before_retrying() {
        let mut q = q();
        q.add(p("a", 0), Instant::now()).unwrap();
        let x = q.pop(Instant::now()).unwrap();
        assert_eq!(x.attempts, 1);
        q.requeue_backoff(&x.key, Instant::now());
        assert!(q.pop(Instant::now()).is_none());
        assert_eq!(q.next_wakeup(), Some(Instant::now() + secs(1)));
        tokio::time::advance(Duration::from_millis(999)).await;
        assert!(q.pop(Instant::now()).is_none());
        tokio::time::advance(Duration::from_millis(1)).await;
        let x = q.pop(Instant::now()).unwrap();
        assert_eq!(x.attempts, 2);
        q.requeue_backoff(&x.key, Instant::now());
        tokio::time::advance(Duration::from_millis(1999)).await;
        assert!(q.pop(Instant::now()).is_none());
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(q.pop(Instant::now()).is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn unschedulable_pods_wait_for_a_helpful_event() {
        let mut q = q();
        q.add(p("a", 0), Instant::now()).unwrap();
        let x = q.pop(Instant::now()).unwrap();
        q.requeue_unschedulable(
            &x.key,
            PluginSet::of(&[Plugin::NodeResourcesFit]),
            Instant::now(),
        );
        assert_eq!(q.counts().unschedulable, 1);
        tokio::time::advance(secs(30)).await;
        // Its backoff (1 s) is long over, but it waits for an event.
        assert!(q.pop(Instant::now()).is_none());
        // An event that cannot help (a label change) leaves it.
        q.on_event(
            ClusterEvent::NodeUpdated(NodeChange {
                labels: true,
                ..Default::default()
            }),
            Instant::now(),
        );
        assert_eq!(q.counts().unschedulable, 1);
        // A pod deletion can: it moves straight to activeQ (backoff over).
        q.on_event(ClusterEvent::AssignedPodFreed, Instant::now());
        assert_eq!(q.counts().active, 1);
        assert_eq!(q.pop(Instant::now()).unwrap().attempts, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_moved_pod_still_backing_off_goes_to_backoff() {
        let mut q = q();
        q.add(p("a", 0), Instant::now()).unwrap();
        for _ in 0..3 {
            let x = q.pop(Instant::now()).unwrap();
            q.requeue_backoff(&x.key, Instant::now());
            tokio::time::advance(secs(10)).await;
        }
        let x = q.pop(Instant::now()).unwrap();
        assert_eq!(x.attempts, 4);
        q.requeue_unschedulable(
            &x.key,
            PluginSet::of(&[Plugin::NodeAffinity]),
            Instant::now(),
        );
        tokio::time::advance(secs(3)).await;
        q.on_event(ClusterEvent::NodeAdded, Instant::now());
        // 4th attempt: 8 s backoff, 3 s passed.
        assert_eq!(q.counts().backoff, 1);
        assert_eq!(q.next_wakeup(), Some(Instant::now() + secs(5)));
        tokio::time::advance(secs(5)).await;
        assert!(q.pop(Instant::now()).is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn unschedulable_pods_are_retried_after_five_minutes() {
        let mut q = q();
        q.add(p("a", 0), Instant::now()).unwrap();
        let x = q.pop(Instant::now()).unwrap();
        q.requeue_unschedulable(
            &x.key,
            PluginSet::of(&[Plugin::TaintToleration]),
            Instant::now(),
        );
        assert_eq!(q.next_wakeup(), Some(Instant::now() + secs(300)));
        tokio::time::advance(secs(299)).await;
        assert!(q.pop(Instant::now()).is_none());
        tokio::time::advance(secs(1)).await;
        assert!(q.pop(Instant::now()).is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn an_event_during_the_attempt_sends_the_pod_to_backoff() {
        let mut q = q();
        q.add(p("a", 0), Instant::now()).unwrap();
        let x = q.pop(Instant::now()).unwrap();
        // The event arrives while "a" is in flight, before it is found unschedulable.
        q.on_event(ClusterEvent::NodeAdded, Instant::now());
        q.requeue_unschedulable(
            &x.key,
            PluginSet::of(&[Plugin::NodeResourcesFit]),
            Instant::now(),
        );
        assert_eq!(q.counts().backoff, 1);
        assert_eq!(q.counts().unschedulable, 0);
        // A later attempt with no event in between parks it.
        tokio::time::advance(secs(1)).await;
        let x = q.pop(Instant::now()).unwrap();
        q.requeue_unschedulable(
            &x.key,
            PluginSet::of(&[Plugin::NodeResourcesFit]),
            Instant::now(),
        );
        assert_eq!(q.counts().unschedulable, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn events_that_help_nothing_do_not_count_as_move_requests() {
        let mut q = q();
        q.add(p("a", 0), Instant::now()).unwrap();
        let x = q.pop(Instant::now()).unwrap();
        q.on_event(
            ClusterEvent::NodeUpdated(NodeChange::default()),
            Instant::now(),
        );
        q.requeue_unschedulable(
            &x.key,
            PluginSet::of(&[Plugin::NodeResourcesFit]),
            Instant::now(),
        );
        assert_eq!(q.counts().unschedulable, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn updates_replace_and_deletes_remove() {
        let mut q = q();
        q.add(p("a", 0), Instant::now()).unwrap();
        q.add(p("b", 0), Instant::now()).unwrap();
        // An update raising b's priority reorders it; the queue still holds two pods.
        q.add(p("b", 5), Instant::now()).unwrap();
        assert_eq!(q.len(), 2);
        let x = q.pop(Instant::now()).unwrap();
        assert_eq!(name(&x), "b");
        assert!(q.delete("uid-a"));
        assert!(q.pop(Instant::now()).is_none());
        // An update while in flight is kept for the requeue; a delete while in flight drops it.
        let mut updated = p("b", 5);
        updated.metadata.labels = Some([("v".to_string(), "2".to_string())].into());
        q.add(updated, Instant::now()).unwrap();
        assert_eq!(q.counts().in_flight, 1);
        q.requeue_unschedulable(
            &x.key,
            PluginSet::of(&[Plugin::NodeAffinity]),
            Instant::now(),
        );
        // The pod changed during the attempt: it is retried after backoff, not parked.
        assert_eq!(q.counts().backoff, 1);
        tokio::time::advance(secs(1)).await;
        let x = q.pop(Instant::now()).unwrap();
        assert!(x.pod.metadata.labels.is_some());
        q.delete(&x.key);
        q.requeue_backoff(&x.key, Instant::now());
        assert!(q.is_empty());
        assert_eq!(q.counts(), QueueCounts::default());
    }

    #[tokio::test(start_paused = true)]
    async fn a_spec_update_moves_an_unschedulable_pod() {
        let mut q = q();
        q.add(p("a", 0), Instant::now()).unwrap();
        let x = q.pop(Instant::now()).unwrap();
        q.requeue_unschedulable(
            &x.key,
            PluginSet::of(&[Plugin::NodeAffinity]),
            Instant::now(),
        );
        // A status-only update does not move it.
        let mut same = p("a", 0);
        same.status = Some(Default::default());
        q.add(same, Instant::now()).unwrap();
        assert_eq!(q.counts().unschedulable, 1);
        let mut changed = p("a", 0);
        changed.spec.as_mut().unwrap().tolerations = Some(vec![Default::default()]);
        q.add(changed, Instant::now()).unwrap();
        assert_eq!(q.counts().unschedulable, 0);
        assert_eq!(q.counts().backoff, 1, "still backing off from its failure");
    }

    #[tokio::test(start_paused = true)]
    async fn gated_pods_wait_for_their_gates_to_go() {
        let mut q = q();
        let mut gated = p("g", 0);
        gated.spec.as_mut().unwrap().scheduling_gates =
            Some(vec![k8s_openapi::api::core::v1::PodSchedulingGate {
                name: "x".into(),
            }]);
        q.add(gated, Instant::now()).unwrap();
        assert_eq!(q.counts().gated, 1);
        assert!(q.pop(Instant::now()).is_none());
        q.add(p("g", 0), Instant::now()).unwrap();
        assert_eq!(q.counts().gated, 0);
        assert!(q.pop(Instant::now()).is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn capacity_is_enforced_for_new_pods_only() {
        let mut q = SchedulingQueue::new(QueueConfig {
            capacity: 2,
            ..Default::default()
        });
        q.add(p("a", 0), Instant::now()).unwrap();
        q.add(p("b", 0), Instant::now()).unwrap();
        assert_eq!(q.add(p("c", 0), Instant::now()), Err(QueueFull(2)));
        q.add(p("a", 3), Instant::now()).unwrap();
        assert_eq!(q.len(), 2);
    }
}
