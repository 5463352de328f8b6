//! Pure helpers about pods and owner references, as kube's `pkg/api/v1/pod` and
//! `pkg/controller/controller_utils.go` define them. No I/O.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::{Pod, PodCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use kube::core::Selector;

/// The pod phases kube names.
pub const PHASE_PENDING: &str = "Pending";
pub const PHASE_RUNNING: &str = "Running";
pub const PHASE_SUCCEEDED: &str = "Succeeded";
pub const PHASE_FAILED: &str = "Failed";
pub const PHASE_UNKNOWN: &str = "Unknown";

/// The owner reference marked `controller: true`, if any (`metav1.GetControllerOf`).
pub fn controller_ref(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .as_ref()?
        .iter()
        .find(|r| r.controller == Some(true))
}

/// `namespace/name`, the key of kube's work queues and expectations.
pub fn object_key(meta: &ObjectMeta) -> String {
    format!(
        "{}/{}",
        meta.namespace.as_deref().unwrap_or(""),
        meta.name.as_deref().unwrap_or("")
    )
}

/// Splits a `namespace/name` key; `None` when it has no `/`.
pub fn split_key(key: &str) -> Option<(&str, &str)> {
    key.split_once('/')
}

/// The object's labels, empty when it has none.
pub fn labels(meta: &ObjectMeta) -> &BTreeMap<String, String> {
    static EMPTY: BTreeMap<String, String> = BTreeMap::new();
    meta.labels.as_ref().unwrap_or(&EMPTY)
}

/// A controller's label selector. An empty selector is refused: kube's validation rejects it
/// for ReplicaSets and Deployments, and its listers make one "match nothing, not everything".
pub fn selector(sel: &LabelSelector) -> Result<Selector, String> {
    let empty = sel.match_labels.as_ref().is_none_or(BTreeMap::is_empty)
        && sel.match_expressions.as_ref().is_none_or(Vec::is_empty);
    if empty {
        return Err("empty selector is invalid".into());
    }
    Selector::try_from(sel.clone()).map_err(|e| format!("invalid selector: {}", e.0))
}

fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

/// Not Succeeded, not Failed and not being deleted (`controller.IsPodActive`).
pub fn is_pod_active(pod: &Pod) -> bool {
    let p = phase(pod);
    p != PHASE_SUCCEEDED && p != PHASE_FAILED && pod.metadata.deletion_timestamp.is_none()
}

/// The first condition of type Ready (`GetPodReadyCondition`).
pub fn ready_condition(pod: &Pod) -> Option<&PodCondition> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
}

/// The Ready condition is True (`podutil.IsPodReady`).
pub fn is_pod_ready(pod: &Pod) -> bool {
    ready_condition(pod).is_some_and(|c| c.status == "True")
}

/// When the pod last became Ready: the Ready condition's lastTransitionTime, for a ready pod.
pub fn ready_since(pod: &Pod) -> Option<DateTime<Utc>> {
    if !is_pod_ready(pod) {
        return None;
    }
    ready_condition(pod)?
        .last_transition_time
        .as_ref()
        .map(|t| t.0)
}

/// Ready for more than `min_ready_seconds` (`podutil.IsPodAvailable`): with
/// `min_ready_seconds > 0` a ready pod without a lastTransitionTime is never available, and the
/// comparison is strict (available only *after* `since + min_ready_seconds`).
pub fn is_pod_available(pod: &Pod, min_ready_seconds: i32, now: DateTime<Utc>) -> bool {
    if !is_pod_ready(pod) {
        return false;
    }
    if min_ready_seconds <= 0 {
        return true;
    }
    ready_since(pod)
        .is_some_and(|since| since + chrono::Duration::seconds(min_ready_seconds.into()) < now)
}

/// For a ready pod not yet available: how long until it is (it is available strictly after
/// `now` plus this). `None` when it is not ready, already available, or never will be by time.
pub fn available_in(pod: &Pod, min_ready_seconds: i32, now: DateTime<Utc>) -> Option<Duration> {
    if min_ready_seconds <= 0 || is_pod_available(pod, min_ready_seconds, now) {
        return None;
    }
    let since = ready_since(pod)?;
    let at = since + chrono::Duration::seconds(min_ready_seconds.into());
    (at - now).to_std().ok()
}

/// The highest restart count among the pod's containers (`maxContainerRestarts`).
pub fn max_container_restarts(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map(|cs| cs.iter().map(|c| c.restart_count).max().unwrap_or(0))
        .unwrap_or(0)
}

/// The pod's phase as kube's deletion ranking orders it: Pending 0, Unknown 1, Running 2, and
/// anything else 0 (a Go map lookup of a missing phase gives the zero value).
pub fn phase_ordinal(pod: &Pod) -> u8 {
    match phase(pod) {
        PHASE_UNKNOWN => 1,
        PHASE_RUNNING => 2,
        _ => 0,
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! Builders for pods in tests.

    use super::*;
    use k8s_openapi::api::core::v1::{ContainerStatus, PodSpec, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    pub fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + secs, 0).expect("valid time")
    }

    pub fn pod(name: &str) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                uid: Some(format!("uid-{name}")),
                creation_timestamp: Some(Time(at(0))),
                labels: Some([("app".to_string(), "web".to_string())].into()),
                ..ObjectMeta::default()
            },
            spec: Some(PodSpec::default()),
            status: Some(PodStatus {
                phase: Some(PHASE_RUNNING.into()),
                ..PodStatus::default()
            }),
        }
    }

    pub fn with_phase(mut p: Pod, phase: &str) -> Pod {
        p.status.get_or_insert_with(Default::default).phase = Some(phase.into());
        p
    }

    pub fn on_node(mut p: Pod, node: &str) -> Pod {
        p.spec.get_or_insert_with(Default::default).node_name = Some(node.into());
        p
    }

    pub fn ready_at(mut p: Pod, since: Option<DateTime<Utc>>) -> Pod {
        let status = p.status.get_or_insert_with(Default::default);
        status.conditions = Some(vec![PodCondition {
            type_: "Ready".into(),
            status: "True".into(),
            last_transition_time: since.map(Time),
            ..PodCondition::default()
        }]);
        p
    }

    pub fn created_at(mut p: Pod, t: DateTime<Utc>) -> Pod {
        p.metadata.creation_timestamp = Some(Time(t));
        p
    }

    pub fn restarts(mut p: Pod, n: i32) -> Pod {
        let status = p.status.get_or_insert_with(Default::default);
        status.container_statuses = Some(vec![
            ContainerStatus {
                name: "a".into(),
                restart_count: 0,
                ..ContainerStatus::default()
            },
            ContainerStatus {
                name: "b".into(),
                restart_count: n,
                ..ContainerStatus::default()
            },
        ]);
        p
    }

    pub fn owned_by(mut p: Pod, kind: &str, name: &str, uid: &str) -> Pod {
        p.metadata.owner_references = Some(vec![OwnerReference {
            api_version: "apps/v1".into(),
            kind: kind.into(),
            name: name.into(),
            uid: uid.into(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }]);
        p
    }

    pub fn with_labels(mut p: Pod, labels: &[(&str, &str)]) -> Pod {
        p.metadata.labels = Some(
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        p
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelectorRequirement, Time};
    use kube::core::SelectorExt;

    #[test]
    fn active_excludes_finished_and_deleting_pods() {
        assert!(is_pod_active(&pod("a")));
        assert!(is_pod_active(&with_phase(pod("a"), PHASE_PENDING)));
        assert!(!is_pod_active(&with_phase(pod("a"), PHASE_SUCCEEDED)));
        assert!(!is_pod_active(&with_phase(pod("a"), PHASE_FAILED)));
        let mut deleting = pod("a");
        deleting.metadata.deletion_timestamp = Some(Time(at(1)));
        assert!(!is_pod_active(&deleting));
    }

    #[test]
    fn availability_is_strictly_after_min_ready_seconds() {
        let p = ready_at(pod("a"), Some(at(100)));
        assert!(is_pod_available(&p, 0, at(100)));
        assert!(
            !is_pod_available(&p, 10, at(110)),
            "exactly at the threshold: not yet"
        );
        assert!(is_pod_available(&p, 10, at(111)));
        assert_eq!(available_in(&p, 10, at(104)), Some(Duration::from_secs(6)));
        assert_eq!(available_in(&p, 10, at(111)), None);
        assert_eq!(available_in(&p, 0, at(0)), None);
        // Ready without a transition time: never available by time, and no wake-up.
        let unknown = ready_at(pod("b"), None);
        assert!(is_pod_available(&unknown, 0, at(0)));
        assert!(!is_pod_available(&unknown, 5, at(1_000)));
        assert_eq!(available_in(&unknown, 5, at(1_000)), None);
        assert!(!is_pod_available(&pod("c"), 0, at(0)), "not ready");
    }

    #[test]
    fn controller_ref_is_the_one_marked_controller() {
        let mut p = owned_by(pod("a"), "ReplicaSet", "rs", "u1");
        assert_eq!(
            controller_ref(&p.metadata).map(|r| r.uid.as_str()),
            Some("u1")
        );
        if let Some(refs) = p.metadata.owner_references.as_mut() {
            refs[0].controller = Some(false);
        }
        assert!(controller_ref(&p.metadata).is_none());
    }

    #[test]
    fn selectors_refuse_empty_and_match_expressions() {
        assert!(selector(&LabelSelector::default()).is_err());
        let sel = LabelSelector {
            match_labels: Some([("app".to_string(), "web".to_string())].into()),
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "tier".into(),
                operator: "NotIn".into(),
                values: Some(vec!["db".into()]),
            }]),
        };
        let s = selector(&sel).expect("valid");
        assert!(s.matches(labels(&pod("a").metadata)));
        let db = with_labels(pod("a"), &[("app", "web"), ("tier", "db")]);
        assert!(!s.matches(labels(&db.metadata)));
        let bad = LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "x".into(),
                operator: "Near".into(),
                values: None,
            }]),
            ..LabelSelector::default()
        };
        assert!(selector(&bad).is_err());
    }

    #[test]
    fn keys_split_at_the_first_slash() {
        assert_eq!(object_key(&pod("a").metadata), "ns/a");
        assert_eq!(split_key("ns/a"), Some(("ns", "a")));
        assert_eq!(split_key("nokey"), None);
    }

    #[test]
    fn restarts_take_the_largest_container_count() {
        assert_eq!(max_container_restarts(&restarts(pod("a"), 7)), 7);
        assert_eq!(max_container_restarts(&pod("a")), 0);
    }
}
