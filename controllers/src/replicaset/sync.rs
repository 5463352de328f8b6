//! The ReplicaSet controller's decisions, without I/O (kube's `replica_set.go` `manageReplicas`,
//! `calculateStatus` in `replica_set_utils.go`, and the pod ranking, claiming and pod building of
//! `pkg/controller`): which pods a ReplicaSet owns, adopts and releases; how many pods to create
//! or which to delete; and its status. Time comes in as an argument.

use std::cmp::Reverse;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetCondition, ReplicaSetStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use kube::core::{Selector, SelectorExt};
use serde_json::{json, Value};

use crate::util::pod::{
    available_in, controller_ref, is_pod_active, is_pod_available, is_pod_ready, labels,
    max_container_restarts, phase_ordinal, ready_since,
};

/// kube's `BurstReplicas`: the most pods created or deleted in one sync.
pub const BURST_REPLICAS: usize = 500;
/// kube's `SlowStartInitialBatchSize`: creates go in batches of 1, 2, 4, …
pub const SLOW_START_INITIAL_BATCH_SIZE: usize = 1;
/// The annotation that orders pods for deletion before their rank (feature PodDeletionCost,
/// on by default since 1.22).
pub const POD_DELETION_COST: &str = "controller.kubernetes.io/pod-deletion-cost";
/// The condition a ReplicaSet gets when creating or deleting pods failed.
pub const REPLICA_FAILURE: &str = "ReplicaFailure";
pub const FAILED_CREATE: &str = "FailedCreate";
pub const FAILED_DELETE: &str = "FailedDelete";

/// The kind a controller of this module manages. kube runs one controller for ReplicaSets and,
/// through an adapter that presents ReplicationControllers as ReplicaSets, for
/// ReplicationControllers (`replication.NewReplicationManager` passes its GroupVersionKind to
/// `replicaset.NewBaseController`); the kind only shows in owner references and Events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kind {
    pub api_version: &'static str,
    pub kind: &'static str,
}

pub const REPLICA_SET: Kind = Kind {
    api_version: "apps/v1",
    kind: "ReplicaSet",
};
pub const REPLICATION_CONTROLLER: Kind = Kind {
    api_version: "v1",
    kind: "ReplicationController",
};

/// `spec.replicas`, defaulted to 1 as the API server does.
pub fn desired_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

pub fn min_ready_seconds(rs: &ReplicaSet) -> i32 {
    rs.spec
        .as_ref()
        .and_then(|s| s.min_ready_seconds)
        .unwrap_or(0)
}

/// What `manageReplicas` must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicaDiff {
    InSync,
    /// Create this many pods (at most the burst).
    Create(usize),
    /// Delete this many pods (at most the burst).
    Delete(usize),
}

/// The difference between the desired replicas and the active pods owned, capped at `burst`.
pub fn replica_diff(desired: i32, owned: usize, burst: usize) -> ReplicaDiff {
    let desired = usize::try_from(desired).unwrap_or(0);
    if owned < desired {
        ReplicaDiff::Create((desired - owned).min(burst))
    } else if owned > desired {
        ReplicaDiff::Delete((owned - desired).min(burst))
    } else {
        ReplicaDiff::InSync
    }
}

/// The batch sizes of kube's `slowStartBatch`: `initial`, then doubling, the last one cut to
/// what remains. The caller stops at the first batch with a failure; the rest are skipped.
pub fn slow_start_batches(count: usize, initial: usize) -> impl Iterator<Item = usize> {
    let mut remaining = count;
    let mut next = initial.max(1);
    std::iter::from_fn(move || {
        let size = next.min(remaining);
        if size == 0 {
            return None;
        }
        remaining -= size;
        next = size.saturating_mul(2);
        Some(size)
    })
}

/// Who the pods of a namespace belong to, from one ReplicaSet's point of view
/// (`PodControllerRefManager.ClaimPods`).
#[derive(Debug, Clone, Default)]
pub struct Claim {
    /// Active pods it controls and its selector matches.
    pub owned: Vec<Arc<Pod>>,
    /// Active orphans its selector matches: to adopt (only while it is not being deleted).
    pub adopt: Vec<Arc<Pod>>,
    /// Active pods it controls that its selector no longer matches: to release (only while
    /// it is not being deleted).
    pub release: Vec<Arc<Pod>>,
}

/// Sorts the active pods of the ReplicaSet's namespace into owned, to adopt and to release.
/// Pods controlled by another object, and inactive pods, are left alone.
pub fn claim_pods(rs: &ReplicaSet, selector: &Selector, pods: &[Arc<Pod>]) -> Claim {
    let uid = rs.metadata.uid.as_deref().unwrap_or("");
    let deleting = rs.metadata.deletion_timestamp.is_some();
    let ns = rs.metadata.namespace.as_deref().unwrap_or("");
    let mut claim = Claim::default();
    for pod in pods {
        if !is_pod_active(pod) || pod.metadata.namespace.as_deref().unwrap_or("") != ns {
            continue;
        }
        let matches = selector.matches(labels(&pod.metadata));
        match controller_ref(&pod.metadata) {
            Some(r) if !uid.is_empty() && r.uid == uid => {
                if matches {
                    claim.owned.push(pod.clone());
                } else if !deleting {
                    claim.release.push(pod.clone());
                }
            }
            Some(_) => {}
            None => {
                if matches && !deleting && !uid.is_empty() {
                    claim.adopt.push(pod.clone());
                }
            }
        }
    }
    claim
}

/// The owner reference a ReplicaSet (or a ReplicationController, `kind`) puts on its pods
/// (`metav1.NewControllerRef`).
pub fn controller_owner_ref(rs: &ReplicaSet, kind: Kind) -> Result<OwnerReference, String> {
    let name = rs.metadata.name.clone().filter(|n| !n.is_empty());
    let uid = rs.metadata.uid.clone().filter(|u| !u.is_empty());
    match (name, uid) {
        (Some(name), Some(uid)) => Ok(OwnerReference {
            api_version: kind.api_version.into(),
            kind: kind.kind.into(),
            name,
            uid,
            controller: Some(true),
            block_owner_deletion: Some(true),
        }),
        _ => Err(format!("the {} has no name or uid", kind.kind)),
    }
}

/// kube's `getPodsPrefix`: `<name>-` when that is a valid generateName, else `<name>`.
fn pod_name_prefix(name: &str) -> String {
    // ValidatePodName(prefix, true) checks the prefix with its trailing dash masked: a
    // DNS subdomain of at most 253 characters.
    if name.len() < 253 {
        format!("{name}-")
    } else {
        name.to_string()
    }
}

/// The pod a ReplicaSet creates (`GetPodFromTemplate`): the template's labels, annotations,
/// finalizers and spec, `generateName: <rs-name>-`, and the ReplicaSet as controller.
pub fn pod_from_template(rs: &ReplicaSet, kind: Kind) -> Result<Pod, String> {
    let owner = controller_owner_ref(rs, kind)?;
    let template = rs
        .spec
        .as_ref()
        .and_then(|s| s.template.as_ref())
        .ok_or("spec.template is required")?;
    let meta = template.metadata.clone().unwrap_or_default();
    if meta.labels.as_ref().is_none_or(|l| l.is_empty()) {
        return Err("unable to create pods, no labels".into());
    }
    Ok(Pod {
        metadata: ObjectMeta {
            generate_name: Some(pod_name_prefix(&owner.name)),
            namespace: rs.metadata.namespace.clone(),
            labels: meta.labels,
            annotations: meta.annotations,
            finalizers: meta.finalizers,
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        spec: template.spec.clone(),
        status: None,
    })
}

/// The strategic-merge patch that adopts a pod (`ownerRefControllerPatch`); the pod's uid in it
/// is a precondition on kube's API server (a recreated pod of the same name is not adopted).
pub fn adopt_patch(rs: &ReplicaSet, pod: &Pod, kind: Kind) -> Result<Value, String> {
    let owner = controller_owner_ref(rs, kind)?;
    Ok(json!({
        "metadata": {
            "ownerReferences": [owner],
            "uid": pod.metadata.uid.as_deref().unwrap_or(""),
        }
    }))
}

/// The strategic-merge patch that releases a pod
/// (`GenerateDeleteOwnerRefStrategicMergeBytes`): deletes this ReplicaSet's owner reference.
pub fn release_patch(rs: &ReplicaSet, pod: &Pod) -> Value {
    json!({
        "metadata": {
            "ownerReferences": [{"$patch": "delete", "uid": rs.metadata.uid.as_deref().unwrap_or("")}],
            "uid": pod.metadata.uid.as_deref().unwrap_or(""),
        }
    })
}

/// `floor(log2(now - t))` in nanoseconds, -1 for a time not in the past
/// (`logarithmicRankDiff`, feature LogarithmicScaleDown, on by default since 1.22).
fn log2_age(t: DateTime<Utc>, now: DateTime<Utc>) -> i64 {
    match (now - t).num_nanoseconds() {
        Some(d) if d > 0 => 63 - i64::from((d as u64).leading_zeros()),
        Some(_) => -1,
        None => 63,
    }
}

/// A pod's place in kube's deletion order (`ActivePodsWithRanks.Less`, kube 1.32): smaller
/// keys are deleted first.
///
/// 1. not assigned to a node before assigned;
/// 2. Pending before Unknown before Running;
/// 3. not ready before ready;
/// 4. lower `controller.kubernetes.io/pod-deletion-cost` before higher;
/// 5. more active related pods on its node before fewer (`rank`);
/// 6. ready for less time before longer (both ready; in log2 buckets of the time since);
/// 7. more container restarts before fewer;
/// 8. newer before older (log2 buckets of age), then by uid.
///
/// As a sort key this is a total order (kube's comparator is not always transitive, and a sort
/// must never panic on data from the server). It differs from kube's only among pods whose
/// ready times fall in the same log2 bucket, where kube goes straight to its pseudo-random
/// uid order and this key looks at restarts and age first.
type DeletionKey = (
    bool,           // 1. assigned
    u8,             // 2. phase ordinal
    bool,           // 3. ready
    i32,            // 4. deletion cost
    Reverse<usize>, // 5. rank
    (bool, i64),    // 6. (has a ready time, bucket)
    Reverse<i32>,   // 7. restarts
    (bool, i64),    // 8. (has a creation time, bucket)
    String,         // uid
);

fn deletion_key(pod: &Pod, rank: usize, now: DateTime<Utc>) -> DeletionKey {
    let assigned = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .is_some_and(|n| !n.is_empty());
    let ready = is_pod_ready(pod);
    let cost = pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(POD_DELETION_COST))
        .and_then(|v| v.parse::<i32>().ok())
        .unwrap_or(0);
    // Zero times sort first ("afterOrZero"); only ready pods are compared by ready time.
    let ready_bucket = match (ready, ready_since(pod)) {
        (true, Some(t)) => (true, log2_age(t, now)),
        _ => (false, 0),
    };
    let created = match pod.metadata.creation_timestamp.as_ref() {
        Some(t) => (true, log2_age(t.0, now)),
        None => (false, 0),
    };
    (
        assigned,
        phase_ordinal(pod),
        ready,
        cost,
        Reverse(rank),
        ready_bucket,
        Reverse(max_container_restarts(pod)),
        created,
        pod.metadata.uid.clone().unwrap_or_default(),
    )
}

/// Chooses `count` pods to delete (`getPodsToDelete`). `related` are the pods of every
/// ReplicaSet with the same controller as this one (the Deployment's other ReplicaSets): a
/// pod's rank is the number of active related pods on its node.
pub fn pods_to_delete(
    pods: &[Arc<Pod>],
    related: &[Arc<Pod>],
    count: usize,
    now: DateTime<Utc>,
) -> Vec<Arc<Pod>> {
    if count >= pods.len() {
        return pods.to_vec();
    }
    let mut on_node: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for p in related.iter().filter(|p| is_pod_active(p)) {
        let node = p.spec.as_ref().and_then(|s| s.node_name.as_deref());
        *on_node.entry(node.unwrap_or("")).or_default() += 1;
    }
    let mut ranked: Vec<(DeletionKey, &Arc<Pod>)> = pods
        .iter()
        .map(|p| {
            let node = p.spec.as_ref().and_then(|s| s.node_name.as_deref());
            let rank = on_node.get(node.unwrap_or("")).copied().unwrap_or(0);
            (deletion_key(p, rank, now), p)
        })
        .collect();
    ranked.sort_by(|(a, _), (b, _)| a.cmp(b));
    ranked
        .into_iter()
        .take(count)
        .map(|(_, p)| p.clone())
        .collect()
}

/// A status to write, and when to look again.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusPlan {
    pub status: ReplicaSetStatus,
    /// The soonest a ready pod becomes available (it is, strictly after now plus this).
    pub next_available_in: Option<Duration>,
}

/// The ReplicaSet's status from its owned active pods (`calculateStatus` plus the
/// observedGeneration `updateReplicaSetStatus` adds). `manage_error` is the message of a failed
/// create or delete in this sync: it sets the ReplicaFailure condition (reason FailedCreate when
/// pods were missing, FailedDelete when there were too many) unless one is already set; a sync
/// without error removes it.
pub fn calculate_status(
    rs: &ReplicaSet,
    pods: &[Arc<Pod>],
    manage_error: Option<&str>,
    now: DateTime<Utc>,
) -> StatusPlan {
    let mut status = rs.status.clone().unwrap_or_default();
    let template_labels = rs
        .spec
        .as_ref()
        .and_then(|s| s.template.as_ref())
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let min_ready = min_ready_seconds(rs);
    let (mut fully_labeled, mut ready, mut available) = (0i32, 0i32, 0i32);
    let mut next_available_in: Option<Duration> = None;
    for pod in pods {
        let pod_labels = labels(&pod.metadata);
        if template_labels
            .iter()
            .all(|(k, v)| pod_labels.get(k) == Some(v))
        {
            fully_labeled += 1;
        }
        if is_pod_ready(pod) {
            ready += 1;
            if is_pod_available(pod, min_ready, now) {
                available += 1;
            } else if let Some(d) = available_in(pod, min_ready, now) {
                next_available_in = Some(next_available_in.map_or(d, |n| n.min(d)));
            }
        }
    }

    let has_failure = status
        .conditions
        .as_ref()
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == REPLICA_FAILURE));
    match manage_error {
        Some(message) if !has_failure => {
            let diff =
                i64::try_from(pods.len()).unwrap_or(i64::MAX) - i64::from(desired_replicas(rs));
            let reason = match diff {
                d if d < 0 => FAILED_CREATE,
                d if d > 0 => FAILED_DELETE,
                _ => "",
            };
            status
                .conditions
                .get_or_insert_with(Vec::new)
                .push(ReplicaSetCondition {
                    type_: REPLICA_FAILURE.into(),
                    status: "True".into(),
                    reason: Some(reason.into()),
                    message: Some(message.into()),
                    last_transition_time: Some(Time(now)),
                });
        }
        None if has_failure => {
            if let Some(cs) = status.conditions.as_mut() {
                cs.retain(|c| c.type_ != REPLICA_FAILURE);
            }
            if status.conditions.as_ref().is_some_and(Vec::is_empty) {
                status.conditions = None;
            }
        }
        _ => {}
    }

    // Go's `omitempty`: kube leaves zero counts out of the status it writes.
    let omit_zero = |n: i32| (n != 0).then_some(n);
    status.replicas = i32::try_from(pods.len()).unwrap_or(i32::MAX);
    status.fully_labeled_replicas = omit_zero(fully_labeled);
    status.ready_replicas = omit_zero(ready);
    status.available_replicas = omit_zero(available);
    status.observed_generation = rs.metadata.generation;
    StatusPlan {
        status,
        next_available_in,
    }
}

/// Whether `new` differs from the stored status, counting absent numbers as 0 (kube compares
/// the counts, observedGeneration against generation, and the conditions).
pub fn status_changed(rs: &ReplicaSet, new: &ReplicaSetStatus) -> bool {
    let old = rs.status.clone().unwrap_or_default();
    let n = |v: Option<i32>| v.unwrap_or(0);
    let conds = |s: &ReplicaSetStatus| s.conditions.clone().unwrap_or_default();
    old.replicas != new.replicas
        || n(old.fully_labeled_replicas) != n(new.fully_labeled_replicas)
        || n(old.ready_replicas) != n(new.ready_replicas)
        || n(old.available_replicas) != n(new.available_replicas)
        || old.observed_generation.unwrap_or(0) != new.observed_generation.unwrap_or(0)
        || conds(&old) != conds(new)
}

#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use k8s_openapi::api::apps::v1::ReplicaSetSpec;
    use k8s_openapi::api::core::v1::{PodSpec, PodTemplateSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

    pub fn rs(name: &str, replicas: i32) -> ReplicaSet {
        let app = [("app".to_string(), "web".to_string())];
        ReplicaSet {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                uid: Some(format!("rs-uid-{name}")),
                generation: Some(3),
                ..ObjectMeta::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(replicas),
                selector: LabelSelector {
                    match_labels: Some(app.clone().into()),
                    match_expressions: None,
                },
                template: Some(PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(
                            [
                                ("app".to_string(), "web".to_string()),
                                ("tier".to_string(), "front".to_string()),
                            ]
                            .into(),
                        ),
                        annotations: Some([("note".to_string(), "x".to_string())].into()),
                        ..ObjectMeta::default()
                    }),
                    spec: Some(PodSpec::default()),
                }),
                min_ready_seconds: None,
            }),
            status: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::rs;
    use super::*;
    use crate::util::pod::testing::*;
    use crate::util::pod::{selector, PHASE_PENDING, PHASE_SUCCEEDED, PHASE_UNKNOWN};

    fn arcs(pods: Vec<Pod>) -> Vec<Arc<Pod>> {
        pods.into_iter().map(Arc::new).collect()
    }

    fn names(pods: &[Arc<Pod>]) -> Vec<String> {
        pods.iter()
            .map(|p| p.metadata.name.clone().unwrap_or_default())
            .collect()
    }

    /// The first of two pods to delete.
    fn first_deleted(a: Pod, b: Pod) -> String {
        let now = at(1_000_000);
        let pods = arcs(vec![a.clone(), b.clone()]);
        let one = names(&pods_to_delete(&pods, &[], 1, now));
        // The answer must not depend on the input order.
        let reversed = arcs(vec![b, a]);
        assert_eq!(one, names(&pods_to_delete(&reversed, &[], 1, now)));
        one[0].clone()
    }

    #[test]
    fn the_diff_is_capped_at_the_burst() {
        assert_eq!(replica_diff(3, 3, BURST_REPLICAS), ReplicaDiff::InSync);
        assert_eq!(replica_diff(5, 2, BURST_REPLICAS), ReplicaDiff::Create(3));
        assert_eq!(replica_diff(2, 5, BURST_REPLICAS), ReplicaDiff::Delete(3));
        assert_eq!(
            replica_diff(2000, 0, BURST_REPLICAS),
            ReplicaDiff::Create(500)
        );
        assert_eq!(
            replica_diff(0, 1200, BURST_REPLICAS),
            ReplicaDiff::Delete(500)
        );
        assert_eq!(replica_diff(-1, 1, BURST_REPLICAS), ReplicaDiff::Delete(1));
    }

    #[test]
    fn slow_start_doubles_and_cuts_the_last_batch() {
        let b = |n| slow_start_batches(n, SLOW_START_INITIAL_BATCH_SIZE).collect::<Vec<_>>();
        assert_eq!(b(0), Vec::<usize>::new());
        assert_eq!(b(1), [1]);
        assert_eq!(b(10), [1, 2, 4, 3]);
        assert_eq!(b(15), [1, 2, 4, 8]);
        assert_eq!(b(500), [1, 2, 4, 8, 16, 32, 64, 128, 245]);
        assert_eq!(b(500).iter().sum::<usize>(), 500);
        assert_eq!(slow_start_batches(10, 3).collect::<Vec<_>>(), [3, 6, 1]);
    }

    #[test]
    fn deletion_prefers_unassigned_pods() {
        let a = on_node(pod("assigned"), "n1");
        let b = pod("unassigned");
        assert_eq!(first_deleted(a, b), "unassigned");
    }

    #[test]
    fn deletion_prefers_pending_then_unknown_then_running() {
        let pending = on_node(with_phase(pod("pending"), PHASE_PENDING), "n1");
        let unknown = on_node(with_phase(pod("unknown"), PHASE_UNKNOWN), "n1");
        let running = on_node(pod("running"), "n1");
        assert_eq!(first_deleted(unknown.clone(), pending), "pending");
        assert_eq!(first_deleted(running, unknown), "unknown");
    }

    #[test]
    fn deletion_prefers_not_ready_pods() {
        let ready = ready_at(on_node(pod("ready"), "n1"), Some(at(10)));
        let not_ready = on_node(pod("not-ready"), "n1");
        assert_eq!(first_deleted(ready, not_ready), "not-ready");
    }

    #[test]
    fn deletion_prefers_a_lower_deletion_cost() {
        let mut cheap = on_node(pod("cheap"), "n1");
        cheap.metadata.annotations =
            Some([(POD_DELETION_COST.to_string(), "-5".to_string())].into());
        let mut dear = on_node(pod("dear"), "n1");
        dear.metadata.annotations =
            Some([(POD_DELETION_COST.to_string(), "100".to_string())].into());
        assert_eq!(first_deleted(dear.clone(), cheap), "cheap");
        // An unparsable cost counts as 0.
        let mut junk = on_node(pod("junk"), "n1");
        junk.metadata.annotations =
            Some([(POD_DELETION_COST.to_string(), "lots".to_string())].into());
        assert_eq!(first_deleted(dear, junk), "junk");
    }

    #[test]
    fn deletion_prefers_pods_doubled_up_on_a_node() {
        let now = at(1_000_000);
        let crowded = on_node(pod("crowded"), "n1");
        let alone = on_node(pod("alone"), "n2");
        let pods = arcs(vec![alone.clone(), crowded.clone()]);
        let related = arcs(vec![
            crowded,
            alone,
            on_node(pod("sibling-1"), "n1"),
            on_node(pod("sibling-2"), "n1"),
        ]);
        assert_eq!(names(&pods_to_delete(&pods, &related, 1, now)), ["crowded"]);
        // Inactive related pods do not count.
        let finished = arcs(vec![
            on_node(with_phase(pod("done-1"), PHASE_SUCCEEDED), "n2"),
            on_node(with_phase(pod("done-2"), PHASE_SUCCEEDED), "n2"),
            on_node(pod("live"), "n1"),
        ]);
        assert_eq!(
            names(&pods_to_delete(&pods, &finished, 1, now)),
            ["crowded"]
        );
    }

    #[test]
    fn deletion_prefers_pods_ready_for_less_time() {
        // Ready 100 s ago versus ready 100 000 s ago: different log2 buckets.
        let now = at(1_000_000);
        let recent = ready_at(
            on_node(pod("recent"), "n1"),
            Some(now - chrono::Duration::seconds(100)),
        );
        let old = ready_at(
            on_node(pod("old"), "n1"),
            Some(now - chrono::Duration::seconds(100_000)),
        );
        assert_eq!(first_deleted(old.clone(), recent), "recent");
        // A ready pod without a transition time sorts first.
        let unknown = ready_at(on_node(pod("unknown"), "n1"), None);
        assert_eq!(first_deleted(old, unknown), "unknown");
    }

    #[test]
    fn deletion_prefers_more_restarts() {
        let flaky = restarts(on_node(pod("flaky"), "n1"), 5);
        let steady = restarts(on_node(pod("steady"), "n1"), 1);
        assert_eq!(first_deleted(steady, flaky), "flaky");
    }

    #[test]
    fn deletion_prefers_newer_pods() {
        let now = at(1_000_000);
        let newer = created_at(
            on_node(pod("newer"), "n1"),
            now - chrono::Duration::seconds(60),
        );
        let older = created_at(
            on_node(pod("older"), "n1"),
            now - chrono::Duration::seconds(86_400),
        );
        assert_eq!(first_deleted(older.clone(), newer.clone()), "newer");
        let mut no_time = on_node(pod("no-time"), "n1");
        no_time.metadata.creation_timestamp = None;
        assert_eq!(first_deleted(newer, no_time), "no-time");
    }

    #[test]
    fn earlier_rules_win_over_later_ones() {
        // Unassigned but old and steady beats assigned, new and crash-looping.
        let now = at(1_000_000);
        let a = created_at(
            pod("unassigned-old"),
            now - chrono::Duration::seconds(86_400),
        );
        let b = restarts(
            created_at(
                on_node(pod("assigned-new"), "n1"),
                now - chrono::Duration::seconds(5),
            ),
            50,
        );
        assert_eq!(first_deleted(a, b), "unassigned-old");
    }

    #[test]
    fn deleting_everything_keeps_the_order_given() {
        let pods = arcs(vec![on_node(pod("a"), "n1"), pod("b")]);
        assert_eq!(names(&pods_to_delete(&pods, &[], 2, at(0))), ["a", "b"]);
        assert_eq!(names(&pods_to_delete(&pods, &[], 5, at(0))), ["a", "b"]);
        assert_eq!(names(&pods_to_delete(&pods, &[], 1, at(0))), ["b"]);
    }

    #[test]
    fn claims_own_adopt_release_and_ignore() {
        let r = rs("web", 3);
        let sel = selector(&r.spec.as_ref().expect("spec").selector).expect("valid");
        let uid = "rs-uid-web";
        let pods = arcs(vec![
            owned_by(pod("mine"), "ReplicaSet", "web", uid),
            pod("orphan"),
            with_labels(pod("orphan-other-app"), &[("app", "db")]),
            with_labels(
                owned_by(pod("relabelled"), "ReplicaSet", "web", uid),
                &[("app", "db")],
            ),
            owned_by(pod("theirs"), "ReplicaSet", "other", "other-uid"),
            with_phase(pod("finished-orphan"), PHASE_SUCCEEDED),
            {
                let mut p = pod("other-namespace");
                p.metadata.namespace = Some("elsewhere".into());
                p
            },
        ]);
        let c = claim_pods(&r, &sel, &pods);
        assert_eq!(names(&c.owned), ["mine"]);
        assert_eq!(names(&c.adopt), ["orphan"]);
        assert_eq!(names(&c.release), ["relabelled"]);

        // Being deleted: keep what it owns and matches, adopt and release nothing.
        let mut deleting = r.clone();
        deleting.metadata.deletion_timestamp = Some(Time(at(5)));
        let c = claim_pods(&deleting, &sel, &pods);
        assert_eq!(names(&c.owned), ["mine"]);
        assert!(c.adopt.is_empty());
        assert!(c.release.is_empty());
    }

    #[test]
    fn adoption_and_release_patches_name_the_owner_and_the_pod_uid() {
        let r = rs("web", 1);
        let p = pod("orphan");
        let adopt = adopt_patch(&r, &p, REPLICA_SET).expect("has uid");
        assert_eq!(
            adopt,
            json!({"metadata": {"ownerReferences": [{
                "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web",
                "uid": "rs-uid-web", "controller": true, "blockOwnerDeletion": true,
            }], "uid": "uid-orphan"}})
        );
        assert_eq!(
            release_patch(&r, &p),
            json!({"metadata": {"ownerReferences": [{"$patch": "delete", "uid": "rs-uid-web"}],
                "uid": "uid-orphan"}})
        );
    }

    #[test]
    fn pods_are_built_from_the_template() {
        let r = rs("web", 1);
        let p = pod_from_template(&r, REPLICA_SET).expect("builds");
        let v = serde_json::to_value(&p).expect("serializes");
        assert_eq!(v["metadata"]["generateName"], "web-");
        assert_eq!(v["metadata"]["namespace"], "ns");
        assert_eq!(
            v["metadata"]["labels"],
            json!({"app": "web", "tier": "front"})
        );
        assert_eq!(v["metadata"]["annotations"], json!({"note": "x"}));
        assert_eq!(
            v["metadata"]["ownerReferences"],
            json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web",
                "uid": "rs-uid-web", "controller": true, "blockOwnerDeletion": true}])
        );
        assert!(v["metadata"].get("name").is_none());
        assert!(v.get("spec").is_some());

        let mut unlabeled = r.clone();
        if let Some(m) = unlabeled
            .spec
            .as_mut()
            .and_then(|s| s.template.as_mut())
            .and_then(|t| t.metadata.as_mut())
        {
            m.labels = None;
        }
        assert_eq!(
            pod_from_template(&unlabeled, REPLICA_SET).err().as_deref(),
            Some("unable to create pods, no labels")
        );
        let long = rs(&"x".repeat(253), 1);
        assert_eq!(
            pod_from_template(&long, REPLICA_SET)
                .expect("builds")
                .metadata
                .generate_name
                .map(|g| g.len()),
            Some(253),
            "no dash when it would not fit"
        );
    }

    #[test]
    fn status_counts_labels_readiness_and_availability() {
        let now = at(1_000);
        let mut r = rs("web", 4);
        if let Some(s) = r.spec.as_mut() {
            s.min_ready_seconds = Some(30);
        }
        let pods = arcs(vec![
            // Fully labeled, ready for 100 s: available.
            ready_at(
                with_labels(
                    pod("a"),
                    &[("app", "web"), ("tier", "front"), ("extra", "1")],
                ),
                Some(now - chrono::Duration::seconds(100)),
            ),
            // Missing tier; ready for 10 s: not yet available, becomes so in 20 s.
            ready_at(pod("b"), Some(now - chrono::Duration::seconds(10))),
            // Ready for 25 s: available in 5 s, the sooner one.
            ready_at(pod("c"), Some(now - chrono::Duration::seconds(25))),
            // Not ready.
            pod("d"),
        ]);
        let plan = calculate_status(&r, &pods, None, now);
        let s = &plan.status;
        assert_eq!(s.replicas, 4);
        assert_eq!(s.fully_labeled_replicas, Some(1));
        assert_eq!(s.ready_replicas, Some(3));
        assert_eq!(s.available_replicas, Some(1));
        assert_eq!(s.observed_generation, Some(3));
        assert_eq!(plan.next_available_in, Some(Duration::from_secs(5)));
        assert!(s.conditions.is_none());

        // 6 s later c is available and b is next.
        let later = calculate_status(&r, &pods, None, now + chrono::Duration::seconds(6));
        assert_eq!(later.status.available_replicas, Some(2));
        assert_eq!(later.next_available_in, Some(Duration::from_secs(14)));

        // Without minReadySeconds every ready pod is available and nothing is awaited.
        let plain = calculate_status(&rs("web", 4), &pods, None, now);
        assert_eq!(plain.status.available_replicas, Some(3));
        assert_eq!(plain.next_available_in, None);
    }

    #[test]
    fn replica_failure_is_set_once_and_cleared_by_a_clean_sync() {
        let now = at(50);
        let r = rs("web", 3);
        let one = arcs(vec![pod("a")]);
        let failed = calculate_status(&r, &one, Some("pods \"web-x\" is forbidden: quota"), now);
        let conds = failed.status.conditions.clone().expect("set");
        assert_eq!(conds.len(), 1);
        assert_eq!(conds[0].type_, REPLICA_FAILURE);
        assert_eq!(conds[0].status, "True");
        assert_eq!(conds[0].reason.as_deref(), Some(FAILED_CREATE));
        assert_eq!(
            conds[0].message.as_deref(),
            Some("pods \"web-x\" is forbidden: quota")
        );
        assert_eq!(conds[0].last_transition_time, Some(Time(now)));

        // A second failure keeps the first condition as it is (kube sets it only when absent).
        let mut stored = r.clone();
        stored.status = Some(failed.status.clone());
        let again = calculate_status(&stored, &one, Some("another"), at(60));
        assert_eq!(again.status.conditions, Some(conds));
        assert!(!status_changed(&stored, &again.status));

        // A sync without error clears it.
        let ok = calculate_status(&stored, &one, None, at(70));
        assert!(ok.status.conditions.is_none());
        assert!(status_changed(&stored, &ok.status));

        // Too many pods: FailedDelete.
        let four = arcs(vec![pod("a"), pod("b"), pod("c"), pod("d")]);
        let del = calculate_status(&r, &four, Some("boom"), now);
        assert_eq!(
            del.status.conditions.expect("set")[0].reason.as_deref(),
            Some(FAILED_DELETE)
        );
    }

    #[test]
    fn status_is_written_only_when_it_changed() {
        let now = at(0);
        let mut r = rs("web", 1);
        let pods = arcs(vec![pod("a")]);
        let plan = calculate_status(&r, &pods, None, now);
        assert!(status_changed(&r, &plan.status), "no status yet");
        r.status = Some(plan.status.clone());
        assert!(!status_changed(
            &r,
            &calculate_status(&r, &pods, None, now).status
        ));
        // A new generation must be observed.
        r.metadata.generation = Some(4);
        assert!(status_changed(
            &r,
            &calculate_status(&r, &pods, None, now).status
        ));
        // Zero counts are left out, as Go's omitempty does; replicas is always written.
        let empty = calculate_status(&rs("web", 0), &[], None, now).status;
        let v = serde_json::to_value(&empty).expect("serializes");
        assert_eq!(v, json!({"replicas": 0, "observedGeneration": 3}));
    }
}
