//! The few facts of a Pod a simulated node keeps (never the Pod itself): its identity, its
//! containers' names, images and readiness delays, how it runs and ends (restart policy, the
//! `mainstay.io/*` annotations, whether a Job owns it), its deletion, its readiness gates,
//! and, for a pod found already running after a restart, what it was doing. No I/O.

use std::net::Ipv4Addr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::{Container, Pod, PodCondition};

use crate::qos::{qos_class, QosClass};

/// Seconds a pod's containers run before they exit (a decimal, e.g. `0.5`). Pods owned by a
/// Job run [`DEFAULT_JOB_RUN`] without it; other pods run until deleted unless they have it.
pub const ANNOTATION_RUN_SECONDS: &str = "mainstay.io/run-seconds";
/// The exit code the containers end with (default 0). Non-zero: `Error`, phase `Failed`
/// under restartPolicy Never, a restart under OnFailure and Always.
pub const ANNOTATION_EXIT_CODE: &str = "mainstay.io/exit-code";
/// Seconds the containers take to stop after SIGTERM (default 0), capped by the deletion's
/// grace period; beyond it they are killed (exit code 137).
pub const ANNOTATION_TERMINATION_SECONDS: &str = "mainstay.io/termination-seconds";
/// How long a Job's pod runs when it has no run-seconds annotation.
pub const DEFAULT_JOB_RUN: Duration = Duration::from_secs(1);
/// The longest run or termination time an annotation may ask for (a day): bounds the timers.
pub const MAX_ANNOTATED: Duration = Duration::from_secs(86_400);
/// kube's default `terminationGracePeriodSeconds`.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(30);

/// Namespace, name and UID: what every write about the pod names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodKey {
    pub namespace: Box<str>,
    pub name: Box<str>,
    pub uid: Box<str>,
}

/// One container (or init container) of the spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerLite {
    pub name: Box<str>,
    pub image: Box<str>,
    /// How long after it starts the container becomes ready: its readiness probe's
    /// `initialDelaySeconds`, or zero without a readiness probe.
    pub ready_after: Duration,
    /// An init container with `restartPolicy: Always` (a sidecar): it keeps running.
    pub sidecar: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartPolicy {
    Always,
    OnFailure,
    Never,
}

/// How the containers end on their own: after `run`, with `exit_code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunPlan {
    pub run: Duration,
    pub exit_code: i32,
}

/// What of the spec (and annotations) the simulation uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodSpecLite {
    pub containers: Box<[ContainerLite]>,
    pub init_containers: Box<[ContainerLite]>,
    pub restart_policy: RestartPolicy,
    pub host_network: bool,
    pub qos: QosClass,
    /// None: the containers run until the pod is deleted.
    pub run: Option<RunPlan>,
    /// Time to stop after SIGTERM.
    pub termination: Duration,
}

/// The phase the API shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObservedPhase {
    Pending,
    Running,
    Succeeded,
    Failed,
    Unknown,
}

/// What the API shows of a pod whose containers run (used to take over after a restart).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunningSeen {
    pub started_at: DateTime<Utc>,
    pub pod_ip: Option<Ipv4Addr>,
    pub restart_count: u32,
}

/// One watch event's worth of a pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub key: PodKey,
    pub spec: PodSpecLite,
    /// Set once the pod has a deletionTimestamp: its grace period.
    pub deletion_grace: Option<Duration>,
    /// Some(message) while a readiness gate's condition is missing or not True.
    pub gates: Option<Box<str>>,
    /// The pod has a PodScheduled condition (the scheduler's binding adds it; a pod created
    /// with `spec.nodeName` has none and kubelet adds it).
    pub has_pod_scheduled: bool,
    pub phase: ObservedPhase,
    pub running: Option<RunningSeen>,
}

/// The node a pod is bound to and what a node keeps of it; None for a pod without a name,
/// UID, spec or node (nothing a node could act on).
pub fn observe(pod: &Pod) -> Option<(String, Observed)> {
    let meta = &pod.metadata;
    let spec = pod.spec.as_ref()?;
    let node = spec.node_name.as_deref().filter(|n| !n.is_empty())?;
    let key = PodKey {
        namespace: meta.namespace.as_deref().unwrap_or("default").into(),
        name: meta.name.as_deref().filter(|n| !n.is_empty())?.into(),
        uid: meta.uid.as_deref().filter(|u| !u.is_empty())?.into(),
    };
    let annotations = meta.annotations.as_ref();
    let annotation = |k: &str| annotations.and_then(|a| a.get(k)).map(String::as_str);
    let owned_by_job = meta
        .owner_references
        .as_deref()
        .unwrap_or_default()
        .iter()
        .any(|o| o.kind == "Job" && o.api_version.starts_with("batch/"));
    let run_annotation = annotation(ANNOTATION_RUN_SECONDS).and_then(seconds);
    let run = match (run_annotation, owned_by_job) {
        (Some(run), _) => Some(run),
        (None, true) => Some(DEFAULT_JOB_RUN),
        (None, false) => None,
    }
    .map(|run| RunPlan {
        run,
        exit_code: annotation(ANNOTATION_EXIT_CODE)
            .and_then(|c| c.trim().parse().ok())
            .unwrap_or(0),
    });
    let restart_policy = match spec.restart_policy.as_deref() {
        Some("Never") => RestartPolicy::Never,
        Some("OnFailure") => RestartPolicy::OnFailure,
        _ => RestartPolicy::Always,
    };
    let lite = PodSpecLite {
        containers: spec.containers.iter().map(container).collect(),
        init_containers: spec
            .init_containers
            .as_deref()
            .unwrap_or_default()
            .iter()
            .map(container)
            .collect(),
        restart_policy,
        host_network: spec.host_network.unwrap_or(false),
        qos: qos_class(spec),
        run,
        termination: annotation(ANNOTATION_TERMINATION_SECONDS)
            .and_then(seconds)
            .unwrap_or(Duration::ZERO),
    };
    let deletion_grace = meta.deletion_timestamp.as_ref().map(|_| {
        meta.deletion_grace_period_seconds
            .or(spec.termination_grace_period_seconds)
            .map_or(DEFAULT_GRACE, |s| {
                Duration::from_secs(u64::try_from(s).unwrap_or(0))
            })
    });
    let status = pod.status.as_ref();
    let conditions = status
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default();
    let gate_messages: Vec<String> = spec
        .readiness_gates
        .as_deref()
        .unwrap_or_default()
        .iter()
        .filter_map(|g| gate_message(&g.condition_type, conditions))
        .collect();
    let phase = match status.and_then(|s| s.phase.as_deref()) {
        Some("Running") => ObservedPhase::Running,
        Some("Succeeded") => ObservedPhase::Succeeded,
        Some("Failed") => ObservedPhase::Failed,
        Some("Unknown") => ObservedPhase::Unknown,
        _ => ObservedPhase::Pending,
    };
    Some((
        node.to_string(),
        Observed {
            key,
            spec: lite,
            deletion_grace,
            gates: (!gate_messages.is_empty()).then(|| gate_messages.join(", ").into()),
            has_pod_scheduled: conditions
                .iter()
                .any(|c| c.type_ == "PodScheduled" && c.status == "True"),
            phase,
            running: running_seen(pod),
        },
    ))
}

fn container(c: &Container) -> ContainerLite {
    let ready_after = c
        .readiness_probe
        .as_ref()
        .and_then(|p| p.initial_delay_seconds)
        .map_or(Duration::ZERO, |s| {
            Duration::from_secs(u64::try_from(s).unwrap_or(0)).min(MAX_ANNOTATED)
        });
    ContainerLite {
        name: c.name.as_str().into(),
        image: c.image.as_deref().unwrap_or("").into(),
        ready_after,
        sidecar: c.restart_policy.as_deref() == Some("Always"),
    }
}

/// A non-negative decimal number of seconds, at most a day; None when it is not one.
fn seconds(s: &str) -> Option<Duration> {
    let v: f64 = s.trim().parse().ok()?;
    (v.is_finite() && v >= 0.0).then(|| Duration::from_secs_f64(v.min(MAX_ANNOTATED.as_secs_f64())))
}

/// kubelet's message for a readiness gate that is not True, or None when it is.
fn gate_message(gate: &str, conditions: &[PodCondition]) -> Option<String> {
    match conditions.iter().find(|c| c.type_ == gate) {
        None => Some(format!(
            "corresponding condition of pod readiness gate {gate:?} does not exist."
        )),
        Some(c) if c.status != "True" => Some(format!(
            "the status of pod readiness gate {gate:?} is not \"True\", but {}",
            c.status
        )),
        Some(_) => None,
    }
}

/// The earliest `running.startedAt` of the pod's containers, its pod IP and restart count,
/// when the API shows it Running with at least one running container.
fn running_seen(pod: &Pod) -> Option<RunningSeen> {
    let status = pod.status.as_ref()?;
    if status.phase.as_deref() != Some("Running") {
        return None;
    }
    let statuses = status.container_statuses.as_deref().unwrap_or_default();
    let started_at = statuses
        .iter()
        .filter_map(|s| s.state.as_ref()?.running.as_ref()?.started_at.as_ref())
        .map(|t| t.0)
        .min()?;
    Some(RunningSeen {
        started_at,
        pod_ip: status.pod_ip.as_deref().and_then(|ip| ip.parse().ok()),
        restart_count: statuses
            .iter()
            .map(|s| u32::try_from(s.restart_count).unwrap_or(0))
            .max()
            .unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    fn base() -> serde_json::Value {
        json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u1"},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "nginx:1.27"}]}
        })
    }

    #[test]
    fn plain_pod() {
        let (node, o) = observe(&pod(base())).unwrap();
        assert_eq!(node, "n1");
        assert_eq!(&*o.key.uid, "u1");
        assert_eq!(o.spec.containers.len(), 1);
        assert_eq!(&*o.spec.containers[0].image, "nginx:1.27");
        assert_eq!(o.spec.containers[0].ready_after, Duration::ZERO);
        assert_eq!(o.spec.restart_policy, RestartPolicy::Always);
        assert_eq!(o.spec.run, None);
        assert_eq!(o.spec.qos, QosClass::BestEffort);
        assert_eq!(o.deletion_grace, None);
        assert_eq!(o.gates, None);
        assert!(!o.has_pod_scheduled);
        assert_eq!(o.phase, ObservedPhase::Pending);
    }

    #[test]
    fn nothing_to_act_on_without_node_uid_or_spec() {
        let mut v = base();
        v["spec"]["nodeName"] = json!("");
        assert!(observe(&pod(v)).is_none());
        let mut v = base();
        v["metadata"].as_object_mut().unwrap().remove("uid");
        assert!(observe(&pod(v)).is_none());
        assert!(observe(&pod(json!({"metadata": {"name": "p", "uid": "u"}}))).is_none());
    }

    #[test]
    fn job_pods_run_then_exit_and_annotations_drive_them() {
        let mut v = base();
        v["metadata"]["ownerReferences"] = json!([{"apiVersion": "batch/v1", "kind": "Job",
            "name": "j", "uid": "j1", "controller": true}]);
        let (_, o) = observe(&pod(v.clone())).unwrap();
        assert_eq!(
            o.spec.run,
            Some(RunPlan {
                run: DEFAULT_JOB_RUN,
                exit_code: 0
            })
        );
        v["metadata"]["annotations"] = json!({
            "mainstay.io/run-seconds": "2.5",
            "mainstay.io/exit-code": "3",
            "mainstay.io/termination-seconds": "4"});
        v["spec"]["restartPolicy"] = json!("Never");
        let (_, o) = observe(&pod(v.clone())).unwrap();
        assert_eq!(
            o.spec.run,
            Some(RunPlan {
                run: Duration::from_millis(2500),
                exit_code: 3
            })
        );
        assert_eq!(o.spec.termination, Duration::from_secs(4));
        assert_eq!(o.spec.restart_policy, RestartPolicy::Never);
        // Nonsense annotations fall back to the defaults instead of failing.
        v["metadata"]["annotations"] = json!({
            "mainstay.io/run-seconds": "-1", "mainstay.io/exit-code": "x",
            "mainstay.io/termination-seconds": "NaN"});
        let (_, o) = observe(&pod(v)).unwrap();
        assert_eq!(
            o.spec.run,
            Some(RunPlan {
                run: DEFAULT_JOB_RUN,
                exit_code: 0
            })
        );
        assert_eq!(o.spec.termination, Duration::ZERO);
        // Without a Job owner, only the annotation makes a pod exit.
        let mut v = base();
        v["metadata"]["annotations"] = json!({"mainstay.io/run-seconds": "100000000"});
        let (_, o) = observe(&pod(v)).unwrap();
        assert_eq!(o.spec.run.unwrap().run, MAX_ANNOTATED);
    }

    #[test]
    fn probes_sidecars_deletion_and_gates() {
        let mut v = base();
        v["spec"]["containers"][0]["readinessProbe"] =
            json!({"initialDelaySeconds": 5, "httpGet": {"port": 80}});
        v["spec"]["initContainers"] = json!([
            {"name": "setup", "image": "busybox"},
            {"name": "proxy", "image": "envoy", "restartPolicy": "Always"}]);
        v["spec"]["readinessGates"] = json!([{"conditionType": "example.com/lb"},
            {"conditionType": "example.com/other"}]);
        v["metadata"]["deletionTimestamp"] = json!("2024-01-01T00:00:00Z");
        v["metadata"]["deletionGracePeriodSeconds"] = json!(7);
        v["status"] = json!({"phase": "Running", "conditions": [
            {"type": "example.com/other", "status": "False"},
            {"type": "PodScheduled", "status": "True"}]});
        let (_, o) = observe(&pod(v.clone())).unwrap();
        assert_eq!(o.spec.containers[0].ready_after, Duration::from_secs(5));
        assert!(!o.spec.init_containers[0].sidecar);
        assert!(o.spec.init_containers[1].sidecar);
        assert_eq!(o.deletion_grace, Some(Duration::from_secs(7)));
        assert_eq!(
            o.gates.as_deref(),
            Some("corresponding condition of pod readiness gate \"example.com/lb\" does not exist., the status of pod readiness gate \"example.com/other\" is not \"True\", but False")
        );
        assert!(o.has_pod_scheduled);
        assert_eq!(o.phase, ObservedPhase::Running);
        // Running phase but no running container: nothing to take over.
        assert_eq!(o.running, None);
        // Deletion without a grace period in the metadata falls back to the spec's.
        v["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("deletionGracePeriodSeconds");
        v["spec"]["terminationGracePeriodSeconds"] = json!(12);
        let (_, o) = observe(&pod(v)).unwrap();
        assert_eq!(o.deletion_grace, Some(Duration::from_secs(12)));
    }

    #[test]
    fn running_pods_are_seen_for_takeover() {
        let mut v = base();
        v["status"] = json!({"phase": "Running", "podIP": "10.128.0.9", "containerStatuses": [
            {"name": "c", "image": "nginx", "imageID": "", "ready": true, "restartCount": 2,
             "state": {"running": {"startedAt": "2024-01-01T00:00:10Z"}}}]});
        let (_, o) = observe(&pod(v)).unwrap();
        let r = o.running.unwrap();
        assert_eq!(r.started_at.timestamp(), 1_704_067_210);
        assert_eq!(r.pod_ip, Some(Ipv4Addr::new(10, 128, 0, 9)));
        assert_eq!(r.restart_count, 2);
    }
}
