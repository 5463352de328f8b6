//! Which pods the pod garbage collector deletes (kube's `gcTerminated`, `gcTerminating`,
//! `gcOrphaned` quarantine and `gcUnscheduledTerminating`). No I/O.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use tokio::time::Instant;

use crate::nodelifecycle::pods::node_name;
use crate::nodelifecycle::taints::{is_node_ready, node_taints, TAINT_OUT_OF_SERVICE};

/// kube's `gcCheckPeriod`.
pub const GC_CHECK_PERIOD: Duration = Duration::from_secs(20);
/// kube's `quarantineTime`: how long a node may be missing from the cache before a GET
/// decides it is gone.
pub const QUARANTINE: Duration = Duration::from_secs(40);

fn phase(p: &Pod) -> &str {
    p.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

/// Neither Pending, Running nor Unknown (`isPodTerminated`; an empty phase counts).
pub fn is_terminated(p: &Pod) -> bool {
    !matches!(phase(p), "Pending" | "Running" | "Unknown")
}

/// Failed with reason Evicted (kubelet's `PodIsEvicted`).
fn is_evicted(p: &Pod) -> bool {
    phase(p) == "Failed" && p.status.as_ref().and_then(|s| s.reason.as_deref()) == Some("Evicted")
}

/// kube's `byEvictionAndCreationTimestamp`: evicted first, then oldest, then by name.
pub fn sort_for_deletion(pods: &mut [Arc<Pod>]) {
    pods.sort_by(|a, b| {
        is_evicted(b)
            .cmp(&is_evicted(a))
            .then_with(|| {
                let t = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
                t(a).cmp(&t(b))
            })
            .then_with(|| a.metadata.name.cmp(&b.metadata.name))
    });
}

/// Terminated pods beyond `threshold`, evicted and oldest first.
pub fn terminated_beyond(pods: &[Arc<Pod>], threshold: i64) -> Vec<Arc<Pod>> {
    if threshold <= 0 {
        return Vec::new();
    }
    let mut done: Vec<Arc<Pod>> = pods.iter().filter(|p| is_terminated(p)).cloned().collect();
    let excess = done.len().saturating_sub(threshold as usize);
    if excess == 0 {
        return Vec::new();
    }
    sort_for_deletion(&mut done);
    done.truncate(excess);
    done
}

/// Terminating pods on nodes that are not Ready and carry the out-of-service taint.
pub fn terminating_out_of_service(
    pods: &[Arc<Pod>],
    nodes: &HashMap<String, Arc<Node>>,
) -> Vec<Arc<Pod>> {
    let mut out: Vec<Arc<Pod>> = pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_some())
        .filter(|p| {
            nodes.get(node_name(p)).is_some_and(|n| {
                !is_node_ready(n) && node_taints(n).iter().any(|t| t.key == TAINT_OUT_OF_SERVICE)
            })
        })
        .cloned()
        .collect();
    sort_for_deletion(&mut out);
    out
}

/// Terminating pods never bound to a node.
pub fn unscheduled_terminating(pods: &[Arc<Pod>]) -> Vec<Arc<Pod>> {
    pods.iter()
        .filter(|p| p.metadata.deletion_timestamp.is_some() && node_name(p).is_empty())
        .cloned()
        .collect()
}

/// Node names pods are bound to that are missing from the cache, each held for
/// [`QUARANTINE`] before it is checked (client-go's delaying queue: an earlier time wins).
///
/// Bound: one entry per node name pods are bound to.
#[derive(Debug, Default)]
pub struct Quarantine {
    due: HashMap<String, Instant>,
}

impl Quarantine {
    /// Adds the bound-to nodes not in `existing`.
    pub fn add_missing(&mut self, pods: &[Arc<Pod>], existing: &HashSet<String>, now: Instant) {
        for p in pods {
            let n = node_name(p);
            if !n.is_empty() && !existing.contains(n) {
                self.due.entry(n.to_string()).or_insert(now + QUARANTINE);
            }
        }
    }

    /// Names whose quarantine is over and that are still missing (to be checked with a GET);
    /// taken out either way.
    pub fn take_due(&mut self, existing: &HashSet<String>, now: Instant) -> BTreeSet<String> {
        let due: Vec<String> = self
            .due
            .iter()
            .filter(|(_, t)| **t <= now)
            .map(|(n, _)| n.clone())
            .collect();
        due.into_iter()
            .filter(|n| {
                self.due.remove(n);
                !existing.contains(n)
            })
            .collect()
    }

    pub fn len(&self) -> usize {
        self.due.len()
    }

    pub fn is_empty(&self) -> bool {
        self.due.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nodelifecycle::taints::testing::{cond, node, with_conditions, with_taints};
    use crate::nodelifecycle::taints::{taint, NO_EXECUTE};
    use crate::util::pod::testing::{at, created_at, on_node, pod, with_phase};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn names(v: &[Arc<Pod>]) -> Vec<String> {
        v.iter().map(|p| p.metadata.name.clone().unwrap()).collect()
    }

    #[test]
    fn terminated_pods_beyond_the_threshold_go_oldest_and_evicted_first() {
        // kube's TestGCTerminated shape.
        let mut evicted = with_phase(created_at(pod("e"), at(50)), "Failed");
        evicted.status.as_mut().unwrap().reason = Some("Evicted".into());
        let pods: Vec<Arc<Pod>> = vec![
            Arc::new(with_phase(created_at(pod("c"), at(3)), "Succeeded")),
            Arc::new(with_phase(created_at(pod("a"), at(1)), "Failed")),
            Arc::new(with_phase(created_at(pod("b"), at(1)), "Succeeded")),
            Arc::new(with_phase(created_at(pod("r"), at(0)), "Running")),
            Arc::new(evicted),
        ];
        // Four terminated pods (the running one does not count).
        assert_eq!(names(&terminated_beyond(&pods, 2)), ["e", "a"]);
        assert_eq!(names(&terminated_beyond(&pods, 1)), ["e", "a", "b"]);
        assert!(terminated_beyond(&pods, 4).is_empty());
        assert!(terminated_beyond(&pods, 0).is_empty(), "0 turns it off");
    }

    #[test]
    fn terminating_pods_on_out_of_service_nodes_and_unscheduled_ones() {
        let mut deleting = on_node(pod("d"), "down");
        deleting.metadata.deletion_timestamp = Some(Time(at(1)));
        let mut deleting_up = on_node(pod("u"), "up");
        deleting_up.metadata.deletion_timestamp = Some(Time(at(1)));
        let mut unscheduled = pod("x");
        unscheduled.metadata.deletion_timestamp = Some(Time(at(1)));
        let pods = vec![
            Arc::new(deleting),
            Arc::new(deleting_up),
            Arc::new(unscheduled),
            Arc::new(on_node(pod("live"), "down")),
        ];
        let down = with_taints(
            with_conditions(node("down"), vec![cond("Ready", "Unknown", 0, 0)]),
            vec![taint(TAINT_OUT_OF_SERVICE, NO_EXECUTE)],
        );
        let up = with_taints(
            with_conditions(node("up"), vec![cond("Ready", "True", 0, 0)]),
            vec![taint(TAINT_OUT_OF_SERVICE, NO_EXECUTE)],
        );
        let nodes: HashMap<String, Arc<Node>> = [
            ("down".to_string(), Arc::new(down)),
            ("up".to_string(), Arc::new(up)),
        ]
        .into();
        assert_eq!(names(&terminating_out_of_service(&pods, &nodes)), ["d"]);
        assert_eq!(names(&unscheduled_terminating(&pods)), ["x"]);
    }

    #[tokio::test(start_paused = true)]
    async fn missing_nodes_wait_out_their_quarantine() {
        let t0 = Instant::now();
        let pods = vec![
            Arc::new(on_node(pod("a"), "gone")),
            Arc::new(on_node(pod("b"), "here")),
            Arc::new(pod("c")),
        ];
        let existing: HashSet<String> = ["here".to_string()].into();
        let mut q = Quarantine::default();
        q.add_missing(&pods, &existing, t0);
        assert_eq!(q.len(), 1);
        // Seen again later: the first time stands.
        q.add_missing(&pods, &existing, t0 + Duration::from_secs(20));
        assert!(q
            .take_due(&existing, t0 + Duration::from_secs(39))
            .is_empty());
        let due = q.take_due(&existing, t0 + QUARANTINE);
        assert_eq!(due.into_iter().collect::<Vec<_>>(), ["gone"]);
        assert!(q.is_empty());
        // A node that showed up meanwhile is not reported.
        q.add_missing(&pods, &existing, t0);
        let now_there: HashSet<String> = ["here".to_string(), "gone".to_string()].into();
        assert!(q.take_due(&now_there, t0 + QUARANTINE).is_empty());
        assert!(q.is_empty());
    }
}
