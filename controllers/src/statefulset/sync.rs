//! The StatefulSet controller's decisions, without I/O (kube's `stateful_set_control.go` and
//! `stateful_set_utils.go`): which pods a set claims, its update revision, the pods it creates,
//! deletes and relabels in one sync and in which order, the status it reports, and the history
//! it truncates. [`super`] reads the caches, performs what is decided here, and writes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet, StatefulSetStatus};
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaimVolumeSource, Pod, PodSpec, PodTemplateSpec, Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::core::{Selector, SelectorExt};
use serde_json::{json, Value};

use crate::history::{
    self, by_revision, equal_revision, equal_revisions, hash_revision, next_revision,
    revision_name, template_of, POD_REVISION_LABEL,
};
use crate::util::pod::{
    controller_ref, is_pod_available, is_pod_ready, labels, PHASE_FAILED, PHASE_RUNNING,
    PHASE_SUCCEEDED,
};

pub const API_VERSION: &str = "apps/v1";
pub const KIND: &str = "StatefulSet";
/// The label naming a pod of a set (`apps.StatefulSetPodNameLabel`).
pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
/// The label holding a pod's ordinal (`apps.PodIndexLabel`, feature PodIndexLabel, on in 1.32).
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";
const PARALLEL: &str = "Parallel";
const ON_DELETE: &str = "OnDelete";

// ---------------------------------------------------------------------------------------------
// Names and ordinals

/// `getParentNameAndOrdinal`: a pod named `<parent>-<digits>` belongs to `parent`; its ordinal
/// is the digits, `None` when they do not fit an int32 (kube's -1).
pub fn parent_and_ordinal(name: &str) -> Option<(&str, Option<i32>)> {
    let (parent, digits) = name.rsplit_once('-')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((parent, digits.parse::<i32>().ok()))
}

/// The pod's ordinal, if its name has a valid one.
pub fn ordinal(pod: &Pod) -> Option<i32> {
    parent_and_ordinal(pod.metadata.name.as_deref().unwrap_or(""))?.1
}

/// `isMemberOf`: the pod's name says it belongs to the set.
pub fn is_member_of(set: &StatefulSet, pod: &Pod) -> bool {
    parent_and_ordinal(pod.metadata.name.as_deref().unwrap_or(""))
        .is_some_and(|(parent, _)| parent == set_name(set))
}

fn set_name(set: &StatefulSet) -> &str {
    set.metadata.name.as_deref().unwrap_or("")
}

/// `getPodName`: `<set>-<ordinal>`.
pub fn pod_name(set: &StatefulSet, ordinal: i32) -> String {
    format!("{}-{ordinal}", set_name(set))
}

/// `getStartOrdinal`: `spec.ordinals.start`, 0 when unset.
pub fn start_ordinal(set: &StatefulSet) -> i32 {
    set.spec
        .as_ref()
        .and_then(|s| s.ordinals.as_ref())
        .and_then(|o| o.start)
        .unwrap_or(0)
}

/// `spec.replicas`, 1 when unset (the API server's default).
pub fn replicas(set: &StatefulSet) -> i32 {
    set.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

fn min_ready_seconds(set: &StatefulSet) -> i32 {
    set.spec
        .as_ref()
        .and_then(|s| s.min_ready_seconds)
        .unwrap_or(0)
}

fn service_name(set: &StatefulSet) -> Option<String> {
    set.spec
        .as_ref()
        .and_then(|s| s.service_name.clone())
        .filter(|s| !s.is_empty())
}

/// `allowsBurst`: podManagementPolicy Parallel.
pub fn allows_burst(set: &StatefulSet) -> bool {
    set.spec
        .as_ref()
        .and_then(|s| s.pod_management_policy.as_deref())
        == Some(PARALLEL)
}

fn strategy_type(set: &StatefulSet) -> &str {
    set.spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|u| u.type_.as_deref())
        .unwrap_or("RollingUpdate")
}

/// The partition of a RollingUpdate strategy, `None` without a `rollingUpdate` block.
fn partition(set: &StatefulSet) -> Option<i32> {
    let ru = set
        .spec
        .as_ref()?
        .update_strategy
        .as_ref()?
        .rolling_update
        .as_ref()?;
    Some(ru.partition.unwrap_or(0))
}

// ---------------------------------------------------------------------------------------------
// Pod predicates (stateful_set_utils.go)

fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

/// `isCreated`: the API server has given the pod a phase.
pub fn is_created(pod: &Pod) -> bool {
    !phase(pod).is_empty()
}

fn is_terminating(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

/// `isRunningAndReady`.
pub fn is_running_and_ready(pod: &Pod) -> bool {
    phase(pod) == PHASE_RUNNING && is_pod_ready(pod)
}

/// `isUnavailable`: not available (ready for minReadySeconds), or being deleted.
fn is_unavailable(pod: &Pod, min_ready_seconds: i32, now: DateTime<Utc>) -> bool {
    !is_pod_available(pod, min_ready_seconds, now) || is_terminating(pod)
}

/// The revision a pod was created at (`getPodRevision`), "" without one.
pub fn pod_revision(pod: &Pod) -> &str {
    labels(&pod.metadata)
        .get(POD_REVISION_LABEL)
        .map(String::as_str)
        .unwrap_or("")
}

/// `identityMatches`: named `<set>-<ordinal>` in the set's namespace, with the pod-name label.
/// (Hostname and subdomain are set at creation only: a pod's spec cannot change them.)
pub fn identity_matches(set: &StatefulSet, pod: &Pod) -> bool {
    let name = pod.metadata.name.as_deref().unwrap_or("");
    let Some((parent, Some(ord))) = parent_and_ordinal(name) else {
        return false;
    };
    parent == set_name(set)
        && name == pod_name(set, ord)
        && pod.metadata.namespace == set.metadata.namespace
        && labels(&pod.metadata)
            .get(POD_NAME_LABEL)
            .map(String::as_str)
            == Some(name)
}

/// `getPersistentVolumeClaimName`: `<claim>-<set>-<ordinal>`.
pub fn claim_name(claim: &str, set: &StatefulSet, ordinal: i32) -> String {
    format!("{claim}-{}-{ordinal}", set_name(set))
}

fn claim_templates(set: &StatefulSet) -> Vec<String> {
    set.spec
        .as_ref()
        .and_then(|s| s.volume_claim_templates.as_ref())
        .map(|cs| cs.iter().filter_map(|c| c.metadata.name.clone()).collect())
        .unwrap_or_default()
}

/// `storageMatches`: every claim template has its volume in the pod.
pub fn storage_matches(set: &StatefulSet, pod: &Pod) -> bool {
    let Some(ord) = ordinal(pod) else {
        return false;
    };
    let volumes = pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.as_ref())
        .map(Vec::as_slice)
        .unwrap_or_default();
    claim_templates(set).iter().all(|claim| {
        volumes.iter().any(|v| {
            &v.name == claim
                && v.persistent_volume_claim
                    .as_ref()
                    .is_some_and(|p| p.claim_name == claim_name(claim, set, ord))
        })
    })
}

/// The labels `updateIdentity` puts on a pod of the set: its name and its ordinal.
pub fn identity_labels(pod_name: &str, ordinal: i32) -> BTreeMap<String, String> {
    BTreeMap::from([
        (POD_NAME_LABEL.to_string(), pod_name.to_string()),
        (POD_INDEX_LABEL.to_string(), ordinal.to_string()),
    ])
}

/// `updateStorage`: the claim templates' volumes first (in template order), then the pod's
/// other volumes.
fn update_storage(set: &StatefulSet, spec: &mut PodSpec, ordinal: i32) {
    let claims = claim_templates(set);
    if claims.is_empty() {
        return;
    }
    let mut volumes: Vec<Volume> = claims
        .iter()
        .map(|c| Volume {
            name: c.clone(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: claim_name(c, set, ordinal),
                read_only: None,
            }),
            ..Volume::default()
        })
        .collect();
    for v in spec.volumes.take().unwrap_or_default() {
        if !claims.contains(&v.name) {
            volumes.push(v);
        }
    }
    spec.volumes = Some(volumes);
}

/// The controller reference the set's pods and revisions carry (`metav1.NewControllerRef`).
pub fn owner_ref(set: &StatefulSet) -> OwnerReference {
    history::controller_ref(&set.metadata, API_VERSION, KIND)
}

/// `newStatefulSetPod` at a revision: the template's labels, annotations, finalizers and spec
/// (`GetPodFromTemplate`, with its `generateName`), the identity (`initIdentity`: name,
/// namespace, pod-name and pod-index labels, hostname, subdomain), the claim volumes and the
/// revision label.
pub fn new_pod(set: &StatefulSet, template: &PodTemplateSpec, ordinal: i32, revision: &str) -> Pod {
    let meta = template.metadata.clone().unwrap_or_default();
    let name = pod_name(set, ordinal);
    let mut pod_labels = meta.labels.unwrap_or_default();
    pod_labels.extend(identity_labels(&name, ordinal));
    pod_labels.insert(POD_REVISION_LABEL.into(), revision.into());
    let mut spec = template.spec.clone().unwrap_or_default();
    spec.hostname = Some(name.clone());
    spec.subdomain = service_name(set);
    update_storage(set, &mut spec, ordinal);
    // getPodsPrefix: `<name>-` when that is a valid generateName.
    let owner = set_name(set);
    let generate_name = if owner.len() < 253 {
        format!("{owner}-")
    } else {
        owner.to_string()
    };
    Pod {
        metadata: ObjectMeta {
            name: Some(name),
            generate_name: Some(generate_name),
            namespace: set.metadata.namespace.clone(),
            labels: Some(pod_labels),
            annotations: meta.annotations,
            finalizers: meta.finalizers,
            owner_references: Some(vec![owner_ref(set)]),
            ..ObjectMeta::default()
        },
        spec: Some(spec),
        status: None,
    }
}

/// `newVersionedStatefulSetPod`'s choice: the current revision for ordinals below the
/// partition of a RollingUpdate (or, without a `rollingUpdate` block, below the current
/// replicas), the update revision otherwise — so OnDelete creates every new pod at the update
/// revision. (Go's `a && b || c` binds as `(a && b) || c`, which is what this does.)
pub fn uses_current_revision(set: &StatefulSet, ordinal: i32) -> bool {
    let start = start_ordinal(set);
    match partition(set) {
        Some(p) => ordinal < start.saturating_add(p),
        None => {
            let current = set
                .status
                .as_ref()
                .and_then(|s| s.current_replicas)
                .unwrap_or(0);
            strategy_type(set) == "RollingUpdate" && ordinal < start.saturating_add(current)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Claiming pods and revisions

/// Who the pods of the set's namespace belong to, from the set's point of view
/// (`PodControllerRefManager.ClaimPods` with kube's `isMemberOf` filter).
#[derive(Debug, Clone, Default)]
pub struct Claim {
    /// Pods it controls that its selector matches and whose names make them members.
    pub owned: Vec<Arc<Pod>>,
    /// Orphans to adopt (the selector matches, named as members, not being deleted).
    pub adopt: Vec<Arc<Pod>>,
    /// Pods it controls that no longer match: to release.
    pub release: Vec<Arc<Pod>>,
}

/// `ClaimPods`: every pod of the namespace, whatever its phase, as kube's StatefulSet claims.
pub fn claim_pods(set: &StatefulSet, selector: &Selector, pods: &[Arc<Pod>]) -> Claim {
    let uid = set.metadata.uid.as_deref().unwrap_or("");
    let deleting = set.metadata.deletion_timestamp.is_some();
    let mut claim = Claim::default();
    for pod in pods {
        if pod.metadata.namespace != set.metadata.namespace {
            continue;
        }
        let matches = selector.matches(labels(&pod.metadata)) && is_member_of(set, pod);
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
                if matches && !deleting && !is_terminating(pod) && !uid.is_empty() {
                    claim.adopt.push(pod.clone());
                }
            }
        }
    }
    claim
}

/// The strategic-merge patch adopting a pod or a revision: the set as controller, with the
/// object's uid as precondition.
pub fn adopt_patch(set: &StatefulSet, uid: Option<&str>) -> Value {
    json!({
        "metadata": {
            "ownerReferences": [owner_ref(set)],
            "uid": uid.unwrap_or(""),
        }
    })
}

/// The strategic-merge patch releasing a pod (`GenerateDeleteOwnerRefStrategicMergeBytes`).
pub fn release_patch(set: &StatefulSet, pod: &Pod) -> Value {
    json!({
        "metadata": {
            "ownerReferences": [{"$patch": "delete", "uid": set.metadata.uid.as_deref().unwrap_or("")}],
            "uid": pod.metadata.uid.as_deref().unwrap_or(""),
        }
    })
}

/// `ListControllerRevisions`: the namespace's revisions the selector matches that are the
/// set's or nobody's, sorted (`SortControllerRevisions`).
pub fn set_revisions(
    set: &StatefulSet,
    selector: &Selector,
    revisions: &[Arc<ControllerRevision>],
) -> Vec<ControllerRevision> {
    let uid = set.metadata.uid.as_deref().unwrap_or("");
    let mut owned: Vec<ControllerRevision> = revisions
        .iter()
        .filter(|r| r.metadata.namespace == set.metadata.namespace)
        .filter(|r| selector.matches(labels(&r.metadata)))
        .filter(|r| controller_ref(&r.metadata).is_none_or(|c| c.uid == uid))
        .map(|r| (**r).clone())
        .collect();
    owned.sort_by(by_revision);
    owned
}

/// Orphans among `revisions`, to adopt.
pub fn orphan_revisions(revisions: &[ControllerRevision]) -> Vec<usize> {
    (0..revisions.len())
        .filter(|&i| controller_ref(&revisions[i].metadata).is_none())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Revisions

/// How the set's update revision comes about (`getStatefulSetRevisions`).
#[derive(Debug, Clone)]
pub enum UpdateRevision {
    /// The latest revision holds the set's template: it is the update revision.
    Latest(usize),
    /// An older revision holds it (a rollback): it becomes the latest, as `revision`.
    Bump { index: usize, revision: i64 },
    /// No revision holds it: this one is created (renamed on a name collision, see
    /// [`renamed`]).
    Create(Box<ControllerRevision>),
}

/// The set's template as a revision's data (kube's `getPatch`).
pub fn revision_data(set: &StatefulSet) -> Result<Value, String> {
    let template = set
        .spec
        .as_ref()
        .map(|s| &s.template)
        .ok_or("the StatefulSet has no spec")?;
    let template =
        serde_json::to_value(template).map_err(|e| format!("encoding the template: {e}"))?;
    Ok(history::template_patch(&template))
}

/// `newRevision`: a revision of the set's template numbered `revision`, with the set's
/// annotations, named by its hash with the collision count.
pub fn new_revision(
    set: &StatefulSet,
    revision: i64,
    collision_count: i32,
) -> Result<ControllerRevision, String> {
    let template_labels = set
        .spec
        .as_ref()
        .and_then(|s| s.template.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let mut rev = history::new_revision(
        &set.metadata,
        API_VERSION,
        KIND,
        &template_labels,
        revision_data(set)?,
        revision,
        Some(collision_count),
    );
    if let Some(a) = set.metadata.annotations.as_ref().filter(|a| !a.is_empty()) {
        rev.metadata.annotations = Some(a.clone());
    }
    Ok(rev)
}

/// What `CreateControllerRevision` tries after a name collision: the same revision named by
/// the hash with the new collision count (its hash label stays, as kube's does).
pub fn renamed(rev: &ControllerRevision, owner: &str, collision_count: i32) -> ControllerRevision {
    let data = rev
        .data
        .as_ref()
        .map(|d| d.0.clone())
        .unwrap_or(Value::Null);
    let mut renamed = rev.clone();
    renamed.metadata.name = Some(revision_name(
        owner,
        &hash_revision(&data, Some(collision_count)),
    ));
    renamed
}

/// The update revision of `set` given its `revisions` (sorted).
pub fn update_revision(
    set: &StatefulSet,
    revisions: &[ControllerRevision],
    collision_count: i32,
) -> Result<UpdateRevision, String> {
    let candidate = new_revision(set, next_revision(revisions), collision_count)?;
    let equal = equal_revisions(revisions, &candidate);
    let Some(last_equal) = equal.last() else {
        return Ok(UpdateRevision::Create(Box::new(candidate)));
    };
    let latest = revisions.len() - 1;
    if equal_revision(&revisions[latest], last_equal) {
        return Ok(UpdateRevision::Latest(latest));
    }
    let index = revisions
        .iter()
        .rposition(|r| r.metadata.name == last_equal.metadata.name)
        .unwrap_or(latest);
    Ok(UpdateRevision::Bump {
        index,
        revision: candidate.revision,
    })
}

/// The current revision: the one `status.currentRevision` names, else the update revision
/// (a new set's history starts at its update revision).
pub fn current_revision<'a>(
    set: &StatefulSet,
    revisions: &'a [ControllerRevision],
    update: &'a ControllerRevision,
) -> &'a ControllerRevision {
    let name = set
        .status
        .as_ref()
        .and_then(|s| s.current_revision.as_deref());
    revisions
        .iter()
        .find(|r| name.is_some() && r.metadata.name.as_deref() == name)
        .unwrap_or(update)
}

/// `truncateHistory`: the revisions to delete, oldest first, so that at most
/// `revisionHistoryLimit` (default 10) remain besides the live ones — the current and update
/// revisions and any a pod was created at.
pub fn history_to_delete(
    set: &StatefulSet,
    pods: &[Arc<Pod>],
    revisions: &[ControllerRevision],
    current: &str,
    update: &str,
) -> Vec<String> {
    let limit = set
        .spec
        .as_ref()
        .and_then(|s| s.revision_history_limit)
        .unwrap_or(10);
    let live = |name: &str| {
        name == current || name == update || pods.iter().any(|p| pod_revision(p) == name)
    };
    let history: Vec<String> = revisions
        .iter()
        .filter_map(|r| r.metadata.name.clone())
        .filter(|n| !live(n))
        .collect();
    if limit < 0 || history.len() <= limit as usize {
        return Vec::new();
    }
    let excess = history.len() - limit as usize;
    history.into_iter().take(excess).collect()
}

/// `ApplyRevision`, for what the controller reads of it: the template the revision holds.
pub fn revision_template(rev: &ControllerRevision) -> Result<PodTemplateSpec, String> {
    let name = rev.metadata.name.as_deref().unwrap_or("");
    let t = template_of(rev).ok_or_else(|| format!("revision {name} holds no template"))?;
    serde_json::from_value(t).map_err(|e| format!("revision {name}: template: {e}"))
}

// ---------------------------------------------------------------------------------------------
// The sync

/// Why a pod is deleted (for logs and tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteReason {
    /// Failed or Succeeded: deleted so that it is created again (`processReplica`).
    Recreate,
    /// Its ordinal is beyond the replicas (`processCondemned`).
    ScaleDown,
    /// Not at the update revision (the rolling update).
    Update,
}

/// One write to a pod.
#[derive(Debug, Clone)]
pub enum Action {
    Create(Box<Pod>),
    Delete {
        pod: Arc<Pod>,
        reason: DeleteReason,
    },
    /// Labels to set on the pod so its identity matches (`UpdateStatefulPod`).
    Relabel {
        pod: Arc<Pod>,
        labels: BTreeMap<String, String>,
    },
}

impl Action {
    pub fn pod_name(&self) -> &str {
        let meta = match self {
            Action::Create(p) => &p.metadata,
            Action::Delete { pod, .. } | Action::Relabel { pod, .. } => &pod.metadata,
        };
        meta.name.as_deref().unwrap_or("")
    }
}

/// What one sync does, in kube's order: the replicas (create, recreate, relabel), then the
/// condemned pods (scale down), then one step of the rolling update. Under OrderedReady each
/// list is performed in order and stops at the first failure; under Parallel each list is
/// performed at once (kube's slow-start batches), the next list only when it succeeded.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub replicas: Vec<Action>,
    pub condemned: Vec<Action>,
    /// The pod deleted to be recreated at the update revision, if any.
    pub update: Option<Arc<Pod>>,
    /// Actions of one list run one after the other (OrderedReady).
    pub monotonic: bool,
    /// The status before the rolling update's step (see [`finish_status`]).
    pub status: StatefulSetStatus,
    /// Sync again after this long (pods waiting out minReadySeconds).
    pub requeue_after: Option<Duration>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.replicas.is_empty() && self.condemned.is_empty() && self.update.is_none()
    }
}

/// The counts of `updateStatus` over `pods`.
fn count(
    status: &mut StatefulSetStatus,
    pods: &[&Arc<Pod>],
    min_ready_seconds: i32,
    current: &str,
    update: &str,
    now: DateTime<Utc>,
) {
    let (mut replicas, mut ready, mut available, mut cur, mut upd) = (0, 0, 0, 0, 0);
    for pod in pods {
        if is_created(pod) {
            replicas += 1;
        }
        if is_running_and_ready(pod) {
            ready += 1;
            if is_pod_available(pod, min_ready_seconds, now) {
                available += 1;
            }
        }
        if is_created(pod) && !is_terminating(pod) {
            let rev = pod_revision(pod);
            if rev == current {
                cur += 1;
            }
            if rev == update {
                upd += 1;
            }
        }
    }
    status.replicas = replicas;
    status.ready_replicas = Some(ready);
    status.available_replicas = Some(available);
    status.current_replicas = Some(cur);
    status.updated_replicas = Some(upd);
}

/// A slot of the ordinal range: the pod there, or the one this sync creates.
enum Slot {
    Pod(Arc<Pod>),
    /// Created (Parallel) or deleted (a recreation) in this sync: not available yet.
    Pending,
}

/// `updateStatefulSet`: what to do with `pods` (those the set owns) given its current and update
/// revisions.
pub fn plan(
    set: &StatefulSet,
    pods: &[Arc<Pod>],
    current: &ControllerRevision,
    update: &ControllerRevision,
    collision_count: i32,
    now: DateTime<Utc>,
) -> Result<Plan, String> {
    let current_name = current.metadata.name.clone().unwrap_or_default();
    let update_name = update.metadata.name.clone().unwrap_or_default();
    let current_template = revision_template(current)?;
    let update_template = revision_template(update)?;
    let mrs = min_ready_seconds(set);
    let monotonic = !allows_burst(set);

    let mut status = StatefulSetStatus {
        observed_generation: set.metadata.generation,
        current_revision: Some(current_name.clone()),
        update_revision: Some(update_name.clone()),
        collision_count: Some(collision_count),
        conditions: set.status.as_ref().and_then(|s| s.conditions.clone()),
        ..StatefulSetStatus::default()
    };

    // The replicas in [start, end] by ordinal, and the condemned beyond, highest first. Pods
    // are taken by name so that two names of one ordinal ("web-1", "web-01") resolve alike on
    // every sync.
    let start = start_ordinal(set);
    let count_replicas = replicas(set).max(0);
    let end = start.saturating_add(count_replicas); // exclusive
    let mut sorted: Vec<&Arc<Pod>> = pods.iter().collect();
    sorted.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let mut in_range: BTreeMap<i32, Arc<Pod>> = BTreeMap::new();
    let mut condemned: Vec<Arc<Pod>> = Vec::new();
    for pod in sorted {
        match ordinal(pod) {
            Some(o) if o >= start && o < end => {
                in_range.insert(o, pod.clone());
            }
            Some(_) => condemned.push(pod.clone()),
            None => {}
        }
    }
    condemned.sort_by_key(|p| std::cmp::Reverse(ordinal(p)));
    {
        let counted: Vec<&Arc<Pod>> = in_range.values().chain(condemned.iter()).collect();
        count(&mut status, &counted, mrs, &current_name, &update_name, now);
    }
    let requeue_after = (mrs > 0 && status.available_replicas != Some(count_replicas))
        .then(|| Duration::from_secs(mrs as u64));
    let mut plan = Plan {
        monotonic,
        status,
        requeue_after,
        ..Plan::default()
    };
    if set.metadata.deletion_timestamp.is_some() {
        return Ok(plan);
    }

    // The first unavailable pod: of the replicas (a missing one counts), else the lowest
    // condemned one.
    let first_unavailable: Option<String> = (start..end)
        .find_map(|o| match in_range.get(&o) {
            None => Some(pod_name(set, o)),
            Some(p) if is_unavailable(p, mrs, now) => p.metadata.name.clone(),
            Some(_) => None,
        })
        .or_else(|| {
            condemned
                .iter()
                .rev()
                .find(|p| is_unavailable(p, mrs, now))
                .and_then(|p| p.metadata.name.clone())
        });

    // 1. The replicas (processReplica), lowest ordinal first.
    let mut slots: BTreeMap<i32, Slot> = BTreeMap::new();
    for o in start..end {
        match in_range.get(&o) {
            Some(pod) => {
                let ph = phase(pod);
                if ph == PHASE_FAILED || ph == PHASE_SUCCEEDED {
                    if !is_terminating(pod) {
                        plan.replicas.push(Action::Delete {
                            pod: pod.clone(),
                            reason: DeleteReason::Recreate,
                        });
                    }
                    // Created again by a later sync, once it is gone.
                    if monotonic {
                        return Ok(plan);
                    }
                    slots.insert(o, Slot::Pending);
                    continue;
                }
                if monotonic
                    && (is_terminating(pod)
                        || !is_running_and_ready(pod)
                        || !is_pod_available(pod, mrs, now))
                {
                    return Ok(plan);
                }
                if !identity_matches(set, pod) {
                    let name = pod.metadata.name.clone().unwrap_or_default();
                    plan.replicas.push(Action::Relabel {
                        pod: pod.clone(),
                        labels: identity_labels(&name, o),
                    });
                }
                slots.insert(o, Slot::Pod(pod.clone()));
            }
            None => {
                let (template, revision) = if uses_current_revision(set, o) {
                    (&current_template, &current_name)
                } else {
                    (&update_template, &update_name)
                };
                plan.replicas.push(Action::Create(Box::new(new_pod(
                    set, template, o, revision,
                ))));
                if monotonic {
                    return Ok(plan);
                }
                slots.insert(o, Slot::Pending);
            }
        }
    }

    // 2. The condemned (processCondemned), highest ordinal first.
    for pod in &condemned {
        if is_terminating(pod) {
            if monotonic {
                return Ok(plan);
            }
            continue;
        }
        let first = pod.metadata.name.is_some() && pod.metadata.name == first_unavailable;
        if monotonic && !first && (!is_running_and_ready(pod) || !is_pod_available(pod, mrs, now)) {
            return Ok(plan);
        }
        plan.condemned.push(Action::Delete {
            pod: pod.clone(),
            reason: DeleteReason::ScaleDown,
        });
        if monotonic {
            return Ok(plan);
        }
    }

    // 3. OnDelete: pods change revision only when someone deletes them.
    if strategy_type(set) == ON_DELETE {
        return Ok(plan);
    }

    // 4. The rolling update: the highest ordinal at or above the partition not at the update
    // revision is deleted (and created again at it by a later sync), one at a time, each only
    // once the ones above it are available again. maxUnavailable is behind the
    // MaxUnavailableStatefulSet gate, off in 1.32: one at a time.
    let update_min = partition(set).unwrap_or(0).max(0);
    for (&o, slot) in slots.iter().rev() {
        if o - start < update_min {
            break;
        }
        match slot {
            // Not available yet (kube waits on it as on any unavailable pod).
            Slot::Pending => return Ok(plan),
            Slot::Pod(pod) => {
                if pod_revision(pod) != update_name && !is_terminating(pod) {
                    plan.update = Some(pod.clone());
                    return Ok(plan);
                }
                if is_unavailable(pod, mrs, now) {
                    return Ok(plan);
                }
            }
        }
    }
    Ok(plan)
}

/// The status written after the sync (`updateStatefulSetStatus`): one fewer current replica
/// when the rolling update deleted one, and the rollout completed — the update revision becomes
/// current — once every replica is updated and ready (`completeRollingUpdate`).
pub fn finish_status(
    set: &StatefulSet,
    status: &StatefulSetStatus,
    update_deleted: bool,
) -> StatefulSetStatus {
    let mut status = status.clone();
    if update_deleted {
        status.current_replicas = Some(status.current_replicas.unwrap_or(0) - 1);
    }
    let want = replicas(set);
    if strategy_type(set) == "RollingUpdate"
        && status.updated_replicas.unwrap_or(0) == want
        && status.ready_replicas.unwrap_or(0) == want
        && status.replicas == want
    {
        status.current_replicas = status.updated_replicas;
        status.current_revision = status.update_revision.clone();
    }
    status
}

/// Whether `status` differs from the set's (`inconsistentStatus`, plus the collision count).
pub fn status_changed(set: &StatefulSet, status: &StatefulSetStatus) -> bool {
    let Some(old) = set.status.as_ref() else {
        return true;
    };
    let n = |v: Option<i32>| v.unwrap_or(0);
    status.observed_generation.unwrap_or(0) > old.observed_generation.unwrap_or(0)
        || status.replicas != old.replicas
        || n(status.ready_replicas) != n(old.ready_replicas)
        || n(status.current_replicas) != n(old.current_replicas)
        || n(status.updated_replicas) != n(old.updated_replicas)
        || n(status.available_replicas) != n(old.available_replicas)
        || status.current_revision.as_deref().unwrap_or("")
            != old.current_revision.as_deref().unwrap_or("")
        || status.update_revision.as_deref().unwrap_or("")
            != old.update_revision.as_deref().unwrap_or("")
        || n(status.collision_count) != n(old.collision_count)
}

/// The JSON merge patch writing `status` through the status subresource. Fields kube omits
/// when empty (`omitempty`) are removed when zero, so the object reads as kube's.
pub fn status_patch(status: &StatefulSetStatus) -> Value {
    let omit_zero = |v: Option<i32>| match v.unwrap_or(0) {
        0 => Value::Null,
        n => json!(n),
    };
    let omit_empty = |v: &Option<String>| match v.as_deref() {
        None | Some("") => Value::Null,
        Some(s) => json!(s),
    };
    json!({
        "status": {
            "observedGeneration": status.observed_generation.filter(|g| *g != 0),
            "replicas": status.replicas,
            "readyReplicas": omit_zero(status.ready_replicas),
            "currentReplicas": omit_zero(status.current_replicas),
            "updatedReplicas": omit_zero(status.updated_replicas),
            "availableReplicas": status.available_replicas.unwrap_or(0),
            "currentRevision": omit_empty(&status.current_revision),
            "updateRevision": omit_empty(&status.update_revision),
            "collisionCount": status.collision_count,
        }
    })
}

/// kube's pod Events (`recordPodEvent`): reason and message of a write that succeeded or
/// failed with `error`.
pub fn pod_event(verb: &str, pod: &str, set: &str, error: Option<&str>) -> (String, String) {
    let title = {
        let mut c = verb.chars();
        c.next()
            .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
            .unwrap_or_default()
    };
    match error {
        None => (
            format!("Successful{title}"),
            format!("{verb} Pod {pod} in StatefulSet {set} successful"),
        ),
        Some(e) => (
            format!("Failed{title}"),
            format!("{verb} Pod {pod} in StatefulSet {set} failed error: {e}"),
        ),
    }
}

#[cfg(test)]
#[path = "sync_tests.rs"]
mod tests;
