//! The scheduler's cache (kube's `internal/cache`): nodes and bound pods from the watches, plus
//! **assumed pods** — a pod is counted on its chosen node as soon as it is chosen, before the
//! bind call returns, so the next pods of a burst see the node's real load.
//!
//! An assumed pod is
//! - **confirmed** when the watch shows it bound (on whichever node the API server says);
//! - **forgotten** when binding fails;
//! - **expired** `assumed_ttl` after its binding finished if the watch never confirmed it (the
//!   bind succeeded but the pod's watch event never came — e.g. it was deleted in between and
//!   the delete was missed). Until binding finishes an assumed pod never expires.
//!
//! The cache updates the one [`Snapshot`] in place: a pod event costs O(its ports and scalar
//! resources), a node event O(its labels and taints); nothing is rebuilt per scheduled pod.
//! Pure: no I/O; time comes in as `now`.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use tokio::time::Instant;

use crate::error::Error;
use crate::queue::{pod_key, ClusterEvent, NodeChange};
use crate::snapshot::{NodeView, PodInfo, Snapshot};

/// How long a bound-but-unconfirmed assumed pod is kept (kube's historical `assumedPodTTL`).
pub const DEFAULT_ASSUMED_POD_TTL: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PodState {
    Bound,
    /// Chosen by us; `Some(deadline)` once the bind call returned.
    Assumed(Option<Instant>),
}

#[derive(Debug)]
struct CachedPod {
    info: PodInfo,
    node: String,
    state: PodState,
}

#[derive(Debug)]
pub struct Cache {
    snapshot: Snapshot,
    pods: HashMap<String, CachedPod>,
    /// Assumed pods whose binding finished, by deadline.
    expiring: BTreeSet<(Instant, String)>,
    assumed_ttl: Duration,
}

fn node_name_of(pod: &Pod) -> Option<&str> {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .filter(|n| !n.is_empty())
}

impl Cache {
    pub fn new(assumed_ttl: Duration) -> Cache {
        Cache {
            snapshot: Snapshot::new(),
            pods: HashMap::new(),
            expiring: BTreeSet::new(),
            assumed_ttl,
        }
    }

    /// What the algorithm reads.
    pub fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }

    pub fn pod_count(&self) -> usize {
        self.pods.len()
    }

    pub fn contains_pod(&self, key: &str) -> bool {
        self.pods.contains_key(key)
    }

    pub fn is_assumed(&self, key: &str) -> bool {
        self.pods
            .get(key)
            .is_some_and(|p| matches!(p.state, PodState::Assumed(_)))
    }

    /// Keys of the pods the watch has shown (assumed ones excluded): for a relist.
    pub fn bound_pod_keys(&self) -> Vec<String> {
        self.pods
            .iter()
            .filter(|(_, p)| p.state == PodState::Bound)
            .map(|(k, _)| k.clone())
            .collect()
    }

    pub fn node_names(&self) -> Vec<String> {
        self.snapshot.nodes().map(|n| n.name.clone()).collect()
    }

    /// A node from the watch; returns the event it makes for the queue.
    pub fn set_node(&mut self, node: &Node) -> Option<ClusterEvent> {
        let name = node.metadata.name.as_deref().filter(|n| !n.is_empty())?;
        let new = NodeView::of(node);
        let change = self
            .snapshot
            .get(name)
            .and_then(|i| i.node.as_ref())
            .map(|old| NodeChange {
                allocatable: old.allocatable != new.allocatable,
                labels: old.labels != new.labels,
                taints: old.taints != new.taints,
                became_schedulable: old.unschedulable && !new.unschedulable,
            });
        self.snapshot.set_node(name, new);
        Some(match change {
            None => ClusterEvent::NodeAdded,
            Some(c) => ClusterEvent::NodeUpdated(c),
        })
    }

    pub fn remove_node(&mut self, name: &str) -> bool {
        self.snapshot.remove_node(name)
    }

    fn unplace(&mut self, key: &str) -> Option<CachedPod> {
        let old = self.pods.remove(key)?;
        self.snapshot.remove_pod(&old.node, &old.info);
        if let PodState::Assumed(Some(deadline)) = old.state {
            self.expiring.remove(&(deadline, key.to_string()));
        }
        Some(old)
    }

    fn place(&mut self, key: String, info: PodInfo, node: String, state: PodState) {
        self.snapshot.add_pod(&node, &info);
        self.pods.insert(key, CachedPod { info, node, state });
    }

    /// A pod the watch shows bound to a node (`spec.nodeName` set, not finished). Confirms an
    /// assumed pod. Returns `AssignedPodFreed` when the update frees room (it moved, or asks
    /// for less, or dropped a host port).
    pub fn add_or_update_pod(&mut self, pod: &Pod) -> Option<ClusterEvent> {
        let node = node_name_of(pod)?.to_string();
        let key = pod_key(pod);
        let info = PodInfo::of(pod);
        if let Some(cur) = self.pods.get(&key) {
            if cur.state == PodState::Bound && cur.node == node && cur.info == info {
                return None;
            }
        }
        let old = self.unplace(&key);
        let freed = old.as_ref().is_some_and(|o| {
            o.node != node
                || o.info
                    .requests
                    .requests
                    .any_less_than(&info.requests.requests)
                || o.info
                    .host_ports
                    .iter()
                    .any(|p| !info.host_ports.contains(p))
        });
        self.place(key, info, node, PodState::Bound);
        freed.then_some(ClusterEvent::AssignedPodFreed)
    }

    /// The pod was deleted or finished: its room is freed.
    pub fn remove_pod(&mut self, key: &str) -> Option<ClusterEvent> {
        self.unplace(key).map(|_| ClusterEvent::AssignedPodFreed)
    }

    /// Counts `pod` on `node` before it is bound.
    pub fn assume(&mut self, pod: &Pod, node: &str) -> Result<(), Error> {
        let key = pod_key(pod);
        if self.pods.contains_key(&key) {
            return Err(Error::AlreadyInCache(key));
        }
        self.place(
            key,
            PodInfo::of(pod),
            node.to_string(),
            PodState::Assumed(None),
        );
        Ok(())
    }

    /// The bind call succeeded: the assumed pod now expires unless the watch confirms it.
    pub fn finish_binding(&mut self, key: &str, now: Instant) {
        let Some(p) = self.pods.get_mut(key) else {
            return;
        };
        if p.state == PodState::Assumed(None) {
            let deadline = now + self.assumed_ttl;
            p.state = PodState::Assumed(Some(deadline));
            self.expiring.insert((deadline, key.to_string()));
        }
    }

    /// Binding failed: an assumed pod is removed (a confirmed one stays).
    pub fn forget(&mut self, key: &str) -> Option<ClusterEvent> {
        if self.is_assumed(key) {
            self.remove_pod(key)
        } else {
            None
        }
    }

    /// Removes assumed pods whose deadline passed; returns how many.
    pub fn expire_assumed(&mut self, now: Instant) -> usize {
        let mut n = 0;
        while let Some((deadline, key)) = self.expiring.first().cloned() {
            if deadline > now {
                break;
            }
            self.expiring.pop_first();
            if self.is_assumed(&key) {
                tracing::warn!(pod = %key, "assumed pod expired: its binding was never confirmed by the watch");
                self.unplace(&key);
                n += 1;
            }
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::algorithm::testing::{node, pod};
    use crate::algorithm::Algorithm;

    fn cache_with(nodes: Vec<crate::algorithm::testing::TestNode>) -> Cache {
        let mut c = Cache::new(DEFAULT_ASSUMED_POD_TTL);
        for n in nodes {
            assert_eq!(c.set_node(&n.0), Some(ClusterEvent::NodeAdded));
        }
        c
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_does_not_overfill_a_node() {
        let mut c = cache_with(vec![node("only", 1500, 8 << 30)]);
        let mut alg = Algorithm::new(None, 1);
        let p1 = pod("p1").cpu("1");
        let p2 = pod("p2").cpu("1");
        let r = alg.schedule(&p1.0, c.snapshot(), 0).unwrap();
        assert_eq!(r.node, "only");
        c.assume(&p1.0, &r.node).unwrap();
        // p1's bind has not returned yet; p2 must not land on the same node.
        let err = alg.schedule(&p2.0, c.snapshot(), 0).unwrap_err();
        assert_eq!(
            err.to_string(),
            "0/1 nodes are available: 1 Insufficient cpu."
        );
        // Binding p1 failed: forgetting it makes room for p2.
        assert_eq!(c.forget("uid-p1"), Some(ClusterEvent::AssignedPodFreed));
        assert_eq!(alg.schedule(&p2.0, c.snapshot(), 0).unwrap().node, "only");
    }

    #[tokio::test(start_paused = true)]
    async fn the_watch_confirms_an_assumed_pod() {
        let mut c = cache_with(vec![node("a", 4000, 8 << 30), node("b", 4000, 8 << 30)]);
        let p = pod("p").cpu("1");
        c.assume(&p.0, "a").unwrap();
        assert!(c.assume(&p.0, "a").is_err(), "assumed twice");
        c.finish_binding("uid-p", Instant::now());
        // The watch shows it bound to "a": confirmed, no longer expiring, no event.
        let bound = pod("p").cpu("1").on_node("a");
        assert_eq!(c.add_or_update_pod(&bound.0), None);
        assert!(!c.is_assumed("uid-p"));
        tokio::time::advance(DEFAULT_ASSUMED_POD_TTL * 2).await;
        assert_eq!(c.expire_assumed(Instant::now()), 0);
        assert_eq!(c.snapshot().get("a").unwrap().requested.milli_cpu, 1000);
        // forget() does not remove a confirmed pod.
        assert_eq!(c.forget("uid-p"), None);
        assert_eq!(c.pod_count(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn confirmation_on_another_node_moves_the_pod() {
        let mut c = cache_with(vec![node("a", 4000, 8 << 30), node("b", 4000, 8 << 30)]);
        c.assume(&pod("p").cpu("1").0, "a").unwrap();
        let ev = c.add_or_update_pod(&pod("p").cpu("1").on_node("b").0);
        assert_eq!(ev, Some(ClusterEvent::AssignedPodFreed));
        assert_eq!(c.snapshot().get("a").unwrap().requested.milli_cpu, 0);
        assert_eq!(c.snapshot().get("b").unwrap().requested.milli_cpu, 1000);
    }

    #[tokio::test(start_paused = true)]
    async fn unconfirmed_assumed_pods_expire_after_binding_finished() {
        let mut c = cache_with(vec![node("a", 4000, 8 << 30)]);
        c.assume(&pod("p").cpu("1").0, "a").unwrap();
        c.assume(&pod("q").cpu("1").0, "a").unwrap();
        tokio::time::advance(Duration::from_secs(3600)).await;
        // Not bound yet: never expires.
        assert_eq!(c.expire_assumed(Instant::now()), 0);
        c.finish_binding("uid-p", Instant::now());
        tokio::time::advance(DEFAULT_ASSUMED_POD_TTL - Duration::from_millis(1)).await;
        assert_eq!(c.expire_assumed(Instant::now()), 0);
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(c.expire_assumed(Instant::now()), 1);
        assert_eq!(
            c.snapshot().get("a").unwrap().requested.milli_cpu,
            1000,
            "q stays"
        );
        assert!(c.is_assumed("uid-q"));
    }

    #[test]
    fn pod_updates_report_freed_room() {
        let mut c = cache_with(vec![node("a", 4000, 8 << 30)]);
        assert_eq!(c.add_or_update_pod(&pod("p").cpu("2").on_node("a").0), None);
        // Same pod again: nothing.
        assert_eq!(c.add_or_update_pod(&pod("p").cpu("2").on_node("a").0), None);
        // Asks for more: no room freed.
        assert_eq!(c.add_or_update_pod(&pod("p").cpu("3").on_node("a").0), None);
        assert_eq!(
            c.add_or_update_pod(&pod("p").cpu("1").on_node("a").0),
            Some(ClusterEvent::AssignedPodFreed)
        );
        assert_eq!(c.snapshot().get("a").unwrap().requested.milli_cpu, 1000);
        assert_eq!(c.remove_pod("uid-p"), Some(ClusterEvent::AssignedPodFreed));
        assert_eq!(c.remove_pod("uid-p"), None);
        assert_eq!(c.snapshot().get("a").unwrap().pod_count, 0);
        // A pod not bound to a node is not the cache's business.
        assert_eq!(c.add_or_update_pod(&pod("pending").0), None);
        assert_eq!(c.pod_count(), 0);
    }

    #[test]
    fn node_updates_say_what_changed() {
        let mut c = cache_with(vec![node("a", 4000, 8 << 30).unschedulable()]);
        let ev = c.set_node(&node("a", 4000, 8 << 30).0).unwrap();
        let ClusterEvent::NodeUpdated(ch) = ev else {
            panic!("{ev:?}")
        };
        assert!(ch.became_schedulable && !ch.allocatable && !ch.labels && !ch.taints);
        let ev = c
            .set_node(&node("a", 8000, 8 << 30).label("x", "y").0)
            .unwrap();
        assert_eq!(
            ev,
            ClusterEvent::NodeUpdated(NodeChange {
                allocatable: true,
                labels: true,
                taints: false,
                became_schedulable: false
            })
        );
        let ev = c
            .set_node(&node("a", 8000, 8 << 30).label("x", "y").0)
            .unwrap();
        assert_eq!(ev, ClusterEvent::NodeUpdated(NodeChange::default()));
        assert!(c.remove_node("a"));
        assert!(c.node_names().is_empty());
    }

    fn zoned_cluster(nodes: usize, milli_cpu: i64) -> Cache {
        use crate::algorithm::score::{LABEL_HOSTNAME, LABEL_ZONE};
        let mut c = Cache::new(DEFAULT_ASSUMED_POD_TTL);
        for i in 0..nodes {
            let name = format!("n{i:04}");
            let zone = format!("z{}", i % 3);
            let n = node(&name, milli_cpu, 64 << 30)
                .label(LABEL_HOSTNAME, &name)
                .label(LABEL_ZONE, &zone);
            c.set_node(&n.0);
        }
        c
    }

    #[test]
    fn a_large_burst_fills_nodes_exactly_and_never_overcommits() {
        let mut c = zoned_cluster(500, 2000);
        let mut alg = Algorithm::new(None, 11);
        let (mut start, mut placed, mut failed) = (0, 0, 0);
        for i in 0..1200 {
            let p = pod(&format!("p{i}")).cpu("1").owner("ReplicaSet", "rs");
            match alg.schedule(&p.0, c.snapshot(), start) {
                Ok(r) => {
                    start = (start + r.evaluated) % 500;
                    c.assume(&p.0, &r.node).unwrap();
                    placed += 1;
                }
                Err(e) => {
                    assert_eq!(
                        e.to_string(),
                        "0/500 nodes are available: 500 Insufficient cpu."
                    );
                    failed += 1;
                }
            }
        }
        assert_eq!((placed, failed), (1000, 200));
        for n in c.snapshot().nodes() {
            assert_eq!(n.requested.milli_cpu, 2000, "{}", n.name);
            assert_eq!(n.pod_count, 2);
        }
    }

    #[test]
    fn five_thousand_nodes_are_sampled_and_pods_spread() {
        let mut c = zoned_cluster(5000, 32_000);
        let mut alg = Algorithm::new(None, 5);
        let mut start = 0;
        let pods = 1000;
        let t = std::time::Instant::now();
        for i in 0..pods {
            let p = pod(&format!("p{i}"))
                .cpu("100m")
                .mem("128Mi")
                .owner("ReplicaSet", "rs");
            let r = alg.schedule(&p.0, c.snapshot(), start).unwrap();
            assert_eq!((r.evaluated, r.feasible), (500, 500));
            start = (start + r.evaluated) % 5000;
            c.assume(&p.0, &r.node).unwrap();
        }
        let elapsed = t.elapsed();
        eprintln!(
            "{pods} pods on 5000 nodes in {elapsed:?} ({:.0} pods/s, this build's optimization level)",
            pods as f64 / elapsed.as_secs_f64()
        );
        let max = c.snapshot().nodes().map(|n| n.pod_count).max().unwrap();
        assert_eq!(
            max, 1,
            "spreading and least-allocated put each pod on an empty node"
        );
    }
}
