//! Pure decisions about pods seen on the watch: which part of the scheduler a pod belongs to,
//! the Binding to post, and the `PodScheduled` condition to write when a pod does not fit.

use k8s_openapi::api::core::v1::{Binding, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::{json, Value};

/// kube's default `schedulerName`.
pub const DEFAULT_SCHEDULER_NAME: &str = "default-scheduler";

/// Where a pod from the watch goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodRoute {
    /// Bound to a node and not finished: it counts in the cache.
    Assigned,
    /// Not bound, ours, not being deleted: it goes to the queue.
    Pending,
    /// Succeeded or Failed: it holds nothing any more (kube's cache drops such pods too).
    Finished,
    /// Not bound and not ours to schedule (another scheduler's, or being deleted).
    NotOurs,
}

pub fn route(pod: &Pod, scheduler_name: &str) -> PodRoute {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    if matches!(phase, Some("Succeeded") | Some("Failed")) {
        return PodRoute::Finished;
    }
    let spec = pod.spec.as_ref();
    if spec
        .and_then(|s| s.node_name.as_deref())
        .is_some_and(|n| !n.is_empty())
    {
        return PodRoute::Assigned;
    }
    if pod.metadata.deletion_timestamp.is_some() {
        return PodRoute::NotOurs;
    }
    let name = spec
        .and_then(|s| s.scheduler_name.as_deref())
        .filter(|n| !n.is_empty())
        .unwrap_or(DEFAULT_SCHEDULER_NAME);
    if name == scheduler_name {
        PodRoute::Pending
    } else {
        PodRoute::NotOurs
    }
}

/// kube's DefaultBinder's Binding: the pod's namespace, name and uid, and the node as target.
pub fn binding(pod: &Pod, node: &str) -> Binding {
    Binding {
        metadata: ObjectMeta {
            name: pod.metadata.name.clone(),
            namespace: pod.metadata.namespace.clone(),
            uid: pod.metadata.uid.clone(),
            ..Default::default()
        },
        target: ObjectReference {
            kind: Some("Node".into()),
            name: Some(node.to_string()),
            ..Default::default()
        },
    }
}

/// The strategic-merge patch of `status.conditions` (merged by `type`) that marks the pod
/// `PodScheduled=False`, reason `Unschedulable`, with `message` — or `None` when the pod already
/// says exactly that (kube's `updatePod` skips the write then). `lastTransitionTime` moves only
/// when the status changes, as kube's `UpdatePodCondition` does. `now` is an RFC 3339 time.
pub fn unschedulable_condition_patch(pod: &Pod, message: &str, now: &str) -> Option<Value> {
    let current = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "PodScheduled"));
    let mut transition = json!(now);
    if let Some(c) = current {
        if c.status == "False" {
            if c.reason.as_deref() == Some("Unschedulable") && c.message.as_deref() == Some(message)
            {
                return None;
            }
            if let Some(t) = &c.last_transition_time {
                transition = json!(t.0.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
            }
        }
    }
    Some(json!({
        "status": {
            "conditions": [{
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": message,
                "lastProbeTime": null,
                "lastTransitionTime": transition,
            }]
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::algorithm::testing::pod;
    use k8s_openapi::api::core::v1::{PodCondition, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    #[test]
    fn routes() {
        assert_eq!(
            route(&pod("p").0, DEFAULT_SCHEDULER_NAME),
            PodRoute::Pending
        );
        assert_eq!(
            route(&pod("p").on_node("n").0, DEFAULT_SCHEDULER_NAME),
            PodRoute::Assigned
        );
        let mut other = pod("p").0;
        other.spec.as_mut().unwrap().scheduler_name = Some("custom".into());
        assert_eq!(route(&other, DEFAULT_SCHEDULER_NAME), PodRoute::NotOurs);
        assert_eq!(route(&other, "custom"), PodRoute::Pending);
        let mut deleting = pod("p").0;
        deleting.metadata.deletion_timestamp = Some(Time(chrono::Utc::now()));
        assert_eq!(route(&deleting, DEFAULT_SCHEDULER_NAME), PodRoute::NotOurs);
        // A terminating pod on a node still holds its resources.
        let mut deleting_bound = pod("p").on_node("n").0;
        deleting_bound.metadata.deletion_timestamp = Some(Time(chrono::Utc::now()));
        assert_eq!(
            route(&deleting_bound, DEFAULT_SCHEDULER_NAME),
            PodRoute::Assigned
        );
        let mut done = pod("p").on_node("n").0;
        done.status = Some(PodStatus {
            phase: Some("Succeeded".into()),
            ..Default::default()
        });
        assert_eq!(route(&done, DEFAULT_SCHEDULER_NAME), PodRoute::Finished);
    }

    #[test]
    fn binding_names_pod_and_node() {
        let b = binding(&pod("p").0, "n1");
        let v = serde_json::to_value(&b).unwrap();
        assert_eq!(
            v["metadata"],
            json!({"name": "p", "namespace": "ns", "uid": "uid-p"})
        );
        assert_eq!(v["target"], json!({"kind": "Node", "name": "n1"}));
    }

    fn with_condition(status: &str, reason: &str, message: &str) -> Pod {
        let mut p = pod("p").0;
        p.status = Some(PodStatus {
            conditions: Some(vec![PodCondition {
                type_: "PodScheduled".into(),
                status: status.into(),
                reason: Some(reason.into()),
                message: Some(message.into()),
                last_transition_time: Some(Time(
                    chrono::DateTime::parse_from_rfc3339("2024-01-02T03:04:05Z")
                        .unwrap()
                        .into(),
                )),
                last_probe_time: None,
            }]),
            ..Default::default()
        });
        p
    }

    #[test]
    fn condition_patch_is_skipped_when_unchanged_and_keeps_transition_time() {
        let now = "2025-01-01T00:00:00Z";
        let patch =
            unschedulable_condition_patch(&pod("p").0, "0/1 nodes are available.", now).unwrap();
        assert_eq!(
            patch,
            json!({"status": {"conditions": [{"type": "PodScheduled", "status": "False",
                "reason": "Unschedulable", "message": "0/1 nodes are available.",
                "lastProbeTime": null, "lastTransitionTime": now}]}})
        );
        let same = with_condition("False", "Unschedulable", "m");
        assert_eq!(unschedulable_condition_patch(&same, "m", now), None);
        let patch = unschedulable_condition_patch(&same, "m2", now).unwrap();
        assert_eq!(
            patch["status"]["conditions"][0]["lastTransitionTime"],
            "2024-01-02T03:04:05Z"
        );
        let was_true = with_condition("True", "", "");
        let patch = unschedulable_condition_patch(&was_true, "m", now).unwrap();
        assert_eq!(patch["status"]["conditions"][0]["lastTransitionTime"], now);
    }
}
