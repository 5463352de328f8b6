//! The DaemonSet controller's decisions, without I/O (kube's `pkg/controller/daemon`:
//! `NodeShouldRunDaemonPod`, `podsShouldBeOnNode`/`manage`, `rollingUpdate`,
//! `updateDaemonSetStatus`, `constructHistory`/`dedupCurHistories`/`cleanupHistory`, and the
//! pod building of `daemon/util`): which nodes should run a daemon pod, what to create and
//! delete, which old pods a rolling update replaces, the status, and what to do with the
//! ControllerRevisions. Wall-clock time and the failed-pod backoff's clock come in as
//! arguments.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet, DaemonSetStatus};
use k8s_openapi::api::core::v1::{
    Affinity, Node, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Pod,
    PodSpec, PodTemplateSpec, Taint, Toleration,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::core::{Selector, SelectorExt};
use serde_json::{json, Value};
use tokio::time::Instant;

use crate::deployment::util::{compute_hash, scaled_value};
use crate::history::{by_revision, revision_name, template_patch, POD_REVISION_LABEL};
use crate::nodelifecycle::taints::{
    NO_EXECUTE, NO_SCHEDULE, TAINT_DISK_PRESSURE, TAINT_MEMORY_PRESSURE, TAINT_NETWORK_UNAVAILABLE,
    TAINT_NOT_READY, TAINT_PID_PRESSURE, TAINT_UNREACHABLE, TAINT_UNSCHEDULABLE,
};
use crate::tainteviction::tolerations::tolerates;
use crate::util::pod::{
    controller_ref, is_pod_available, is_pod_ready, labels, PHASE_FAILED, PHASE_SUCCEEDED,
};

pub const API_VERSION: &str = "apps/v1";
pub const KIND: &str = "DaemonSet";
/// kube's `BurstReplicas` for DaemonSets: the most pods created or deleted in one sync.
pub const BURST_REPLICAS: usize = 250;
/// Where apps/v1 keeps the DaemonSet's template generation.
pub const TEMPLATE_GENERATION_ANNOTATION: &str = "deprecated.daemonset.template.generation";
/// The label daemon pods carry with the template generation they were made from
/// (`extensions.DaemonSetTemplateGenerationKey`).
pub const TEMPLATE_GENERATION_LABEL: &str = "pod-template-generation";
/// The node field a daemon pod's required node affinity pins (`metav1.ObjectNameField`).
pub const OBJECT_NAME_FIELD: &str = "metadata.name";
pub const FAILED_DAEMON_POD: &str = "FailedDaemonPod";
pub const SUCCEEDED_DAEMON_POD: &str = "SucceededDaemonPod";
pub const SELECTING_ALL: &str = "SelectingAll";
pub const SELECTING_ALL_MESSAGE: &str =
    "This daemon set is selecting all pods. A non-empty selector is required.";
pub const FAILED_CREATE: &str = "FailedCreate";
pub const FAILED_DELETE: &str = "FailedDelete";
/// kube's failed-pod backoff: 1 s, doubling per node and DaemonSet, at most 15 minutes.
pub const FAILED_POD_BACKOFF_INITIAL: Duration = Duration::from_secs(1);
pub const FAILED_POD_BACKOFF_MAX: Duration = Duration::from_secs(15 * 60);
/// `spec.revisionHistoryLimit`'s default.
pub const DEFAULT_REVISION_HISTORY_LIMIT: i32 = 10;

// ------------------------------------------------------------------------------------------------
// The DaemonSet's spec
// ------------------------------------------------------------------------------------------------

pub fn template(ds: &DaemonSet) -> Option<&PodTemplateSpec> {
    ds.spec.as_ref().map(|s| &s.template)
}

fn template_spec(ds: &DaemonSet) -> Option<&PodSpec> {
    template(ds)?.spec.as_ref()
}

pub fn min_ready_seconds(ds: &DaemonSet) -> i32 {
    ds.spec
        .as_ref()
        .and_then(|s| s.min_ready_seconds)
        .unwrap_or(0)
}

fn strategy_type(ds: &DaemonSet) -> &str {
    ds.spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|u| u.type_.as_deref())
        .unwrap_or("RollingUpdate")
}

/// RollingUpdate, the default (the API server defaults the type; an absent one counts too).
pub fn is_rolling_update(ds: &DaemonSet) -> bool {
    strategy_type(ds) == "RollingUpdate"
}

/// `GetTemplateGeneration`: the annotation, when present and a number.
pub fn template_generation(ds: &DaemonSet) -> Option<i64> {
    ds.metadata
        .annotations
        .as_ref()?
        .get(TEMPLATE_GENERATION_ANNOTATION)?
        .parse()
        .ok()
}

pub fn revision_history_limit(ds: &DaemonSet) -> usize {
    let limit = ds
        .spec
        .as_ref()
        .and_then(|s| s.revision_history_limit)
        .unwrap_or(DEFAULT_REVISION_HISTORY_LIMIT);
    usize::try_from(limit).unwrap_or(0)
}

/// `SurgeCount`: maxSurge of `number` (rounded up); 0 unless RollingUpdate asks for a surge.
pub fn surge_count(ds: &DaemonSet, number: i32) -> Result<i32, String> {
    if !is_rolling_update(ds) {
        return Ok(0);
    }
    let surge = ds
        .spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|u| u.rolling_update.as_ref())
        .and_then(|r| r.max_surge.as_ref());
    match surge {
        None => Ok(0),
        Some(v) => scaled_value(v, number, true)
            .map_err(|e| format!("spec.updateStrategy.rollingUpdate.maxSurge: {e}")),
    }
}

/// `UnavailableCount`: maxUnavailable of `number` (rounded up); 0 for OnDelete. An absent
/// value is apps/v1's default, 1.
pub fn unavailable_count(ds: &DaemonSet, number: i32) -> Result<i32, String> {
    if !is_rolling_update(ds) {
        return Ok(0);
    }
    let one = IntOrString::Int(1);
    let v = ds
        .spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|u| u.rolling_update.as_ref())
        .and_then(|r| r.max_unavailable.as_ref())
        .unwrap_or(&one);
    scaled_value(v, number, true)
        .map_err(|e| format!("spec.updateStrategy.rollingUpdate.maxUnavailable: {e}"))
}

/// `AllowsSurge`: a surge is configured (maxSurge of 1 node is not 0).
pub fn allows_surge(ds: &DaemonSet) -> bool {
    surge_count(ds, 1).is_ok_and(|s| s > 0)
}

// ------------------------------------------------------------------------------------------------
// Tolerations, node affinity, and which nodes should run a daemon pod
// ------------------------------------------------------------------------------------------------

fn exists_toleration(key: &str, effect: &str) -> Toleration {
    Toleration {
        key: Some(key.into()),
        operator: Some("Exists".into()),
        effect: Some(effect.into()),
        ..Toleration::default()
    }
}

/// The tolerations every daemon pod gets (`AddOrUpdateDaemonPodTolerations`): it survives
/// not-ready and unreachable nodes, and ignores the condition taints and cordoning.
pub fn daemon_tolerations(host_network: bool) -> Vec<Toleration> {
    let mut t = vec![
        exists_toleration(TAINT_NOT_READY, NO_EXECUTE),
        exists_toleration(TAINT_UNREACHABLE, NO_EXECUTE),
        exists_toleration(TAINT_DISK_PRESSURE, NO_SCHEDULE),
        exists_toleration(TAINT_MEMORY_PRESSURE, NO_SCHEDULE),
        exists_toleration(TAINT_PID_PRESSURE, NO_SCHEDULE),
        exists_toleration(TAINT_UNSCHEDULABLE, NO_SCHEDULE),
    ];
    if host_network {
        t.push(exists_toleration(TAINT_NETWORK_UNAVAILABLE, NO_SCHEDULE));
    }
    t
}

/// `Toleration.MatchToleration`: same key, effect, operator and value.
fn same_toleration(a: &Toleration, b: &Toleration) -> bool {
    let s = |o: &Option<String>| o.as_deref().unwrap_or("").to_string();
    s(&a.key) == s(&b.key)
        && s(&a.effect) == s(&b.effect)
        && s(&a.operator) == s(&b.operator)
        && s(&a.value) == s(&b.value)
}

/// `AddOrUpdateTolerationInPodSpec`: a toleration matching `t` is replaced by it (dropping,
/// say, its tolerationSeconds); without one, `t` is appended.
fn add_or_update_toleration(tolerations: &mut Vec<Toleration>, t: Toleration) {
    let mut matched = false;
    for existing in tolerations.iter_mut() {
        if same_toleration(existing, &t) {
            *existing = t.clone();
            matched = true;
        }
    }
    if !matched {
        tolerations.push(t);
    }
}

/// Adds [`daemon_tolerations`] to a pod spec.
pub fn add_daemon_tolerations(spec: &mut PodSpec) {
    let mut tolerations = spec.tolerations.take().unwrap_or_default();
    for t in daemon_tolerations(spec.host_network == Some(true)) {
        add_or_update_toleration(&mut tolerations, t);
    }
    spec.tolerations = Some(tolerations);
}

/// One `matchExpressions` requirement against node labels (as the scheduler's filter).
fn label_requirement_matches(
    r: &NodeSelectorRequirement,
    labels: &BTreeMap<String, String>,
) -> bool {
    let values = r.values.as_deref().unwrap_or(&[]);
    let label = labels.get(&r.key);
    match r.operator.as_str() {
        "In" => !values.is_empty() && label.is_some_and(|v| values.contains(v)),
        "NotIn" => !values.is_empty() && label.is_none_or(|v| !values.contains(v)),
        "Exists" => values.is_empty() && label.is_some(),
        "DoesNotExist" => values.is_empty() && label.is_none(),
        op @ ("Gt" | "Lt") => {
            let [want] = values else {
                return false;
            };
            let (Ok(want), Some(have)) = (
                want.parse::<i64>(),
                label.and_then(|v| v.parse::<i64>().ok()),
            ) else {
                return false;
            };
            if op == "Gt" {
                have > want
            } else {
                have < want
            }
        }
        _ => false,
    }
}

/// One `matchFields` requirement: only `metadata.name`, with exactly one value.
fn field_requirement_matches(r: &NodeSelectorRequirement, node_name: &str) -> bool {
    let [want] = r.values.as_deref().unwrap_or(&[]) else {
        return false;
    };
    let have = if r.key == OBJECT_NAME_FIELD {
        node_name
    } else {
        ""
    };
    match r.operator.as_str() {
        "In" => have == want,
        "NotIn" => have != want,
        _ => false,
    }
}

/// A node selector term: all of it matches; an empty term matches nothing.
fn term_matches(t: &NodeSelectorTerm, node_name: &str, labels: &BTreeMap<String, String>) -> bool {
    let exprs = t.match_expressions.as_deref().unwrap_or(&[]);
    let fields = t.match_fields.as_deref().unwrap_or(&[]);
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    exprs.iter().all(|r| label_requirement_matches(r, labels))
        && fields
            .iter()
            .all(|r| field_requirement_matches(r, node_name))
}

/// `GetRequiredNodeAffinity(pod).Match(node)`: the nodeSelector's labels all equal, and one
/// required node affinity term matches.
pub fn required_affinity_matches(spec: &PodSpec, node: &Node) -> bool {
    let name = node.metadata.name.as_deref().unwrap_or("");
    let node_labels = labels(&node.metadata);
    if let Some(sel) = &spec.node_selector {
        if !sel.iter().all(|(k, v)| node_labels.get(k) == Some(v)) {
            return false;
        }
    }
    let required = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|n| {
            n.required_during_scheduling_ignored_during_execution
                .as_ref()
        });
    match required {
        None => true,
        Some(sel) => sel
            .node_selector_terms
            .iter()
            .any(|t| term_matches(t, name, node_labels)),
    }
}

fn untolerated(taints: &[Taint], tolerations: &[Toleration], effects: &[&str]) -> bool {
    taints.iter().any(|taint| {
        effects.contains(&taint.effect.as_str()) && !tolerations.iter().any(|t| tolerates(t, taint))
    })
}

/// Whether a node should run a daemon pod, and whether it may keep one it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    pub should_run: bool,
    pub should_continue_running: bool,
}

impl Placement {
    const NO: Placement = Placement {
        should_run: false,
        should_continue_running: false,
    };
}

/// `NodeShouldRunDaemonPod`: the template's nodeName (if any) names the node, its nodeSelector
/// and required node affinity match the node, and its tolerations (with the daemon ones) cover
/// the node's NoSchedule and NoExecute taints. An untolerated NoSchedule taint only stops new
/// pods; an untolerated NoExecute taint also evicts the running one.
pub fn placement(node: &Node, ds: &DaemonSet) -> Placement {
    let Some(spec) = template_spec(ds) else {
        return Placement::NO;
    };
    let name = node.metadata.name.as_deref().unwrap_or("");
    if spec
        .node_name
        .as_deref()
        .is_some_and(|n| !n.is_empty() && n != name)
    {
        return Placement::NO;
    }
    if !required_affinity_matches(spec, node) {
        return Placement::NO;
    }
    let mut tolerations = spec.tolerations.clone().unwrap_or_default();
    for t in daemon_tolerations(spec.host_network == Some(true)) {
        add_or_update_toleration(&mut tolerations, t);
    }
    let taints = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_deref())
        .unwrap_or(&[]);
    if untolerated(taints, &tolerations, &[NO_SCHEDULE, NO_EXECUTE]) {
        return Placement {
            should_run: false,
            should_continue_running: !untolerated(taints, &tolerations, &[NO_EXECUTE]),
        };
    }
    Placement {
        should_run: true,
        should_continue_running: true,
    }
}

/// The nodes the controller considers: those not being deleted.
pub fn live_nodes(nodes: Vec<Arc<Node>>) -> Vec<Arc<Node>> {
    let mut live: Vec<Arc<Node>> = nodes
        .into_iter()
        .filter(|n| n.metadata.deletion_timestamp.is_none())
        .collect();
    live.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    live
}

/// The node's fields `placement` reads changed (labels, taints), so the DaemonSets' decisions
/// must be compared (kube's `shouldIgnoreNodeUpdate`, narrowed to what matters).
pub fn node_placement_inputs_changed(old: &Node, new: &Node) -> bool {
    old.metadata.labels != new.metadata.labels
        || old.spec.as_ref().and_then(|s| s.taints.as_ref())
            != new.spec.as_ref().and_then(|s| s.taints.as_ref())
}

/// `ReplaceDaemonSetPodNodeNameNodeAffinity`: pins the pod to `node` through its required node
/// affinity. As kube, the required terms become the one term `matchFields: metadata.name In
/// [node]` — the controller has already checked the node against the template's own terms —
/// and the rest of the affinity (preferred terms, pod affinity) stays.
pub fn pin_to_node(affinity: Option<Affinity>, node: &str) -> Affinity {
    let requirement = NodeSelectorRequirement {
        key: OBJECT_NAME_FIELD.into(),
        operator: "In".into(),
        values: Some(vec![node.to_string()]),
    };
    let mut affinity = affinity.unwrap_or_default();
    let node_affinity = affinity
        .node_affinity
        .get_or_insert_with(NodeAffinity::default);
    node_affinity.required_during_scheduling_ignored_during_execution = Some(NodeSelector {
        node_selector_terms: vec![NodeSelectorTerm {
            match_fields: Some(vec![requirement]),
            match_expressions: None,
        }],
    });
    affinity
}

/// `GetTargetNodeName`: the pod's nodeName, or, while unscheduled, the node its required
/// affinity pins (`matchFields: metadata.name In [one node]`).
pub fn target_node(pod: &Pod) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    if let Some(n) = spec.node_name.as_deref().filter(|n| !n.is_empty()) {
        return Some(n.to_string());
    }
    let terms = &spec
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?
        .node_selector_terms;
    for term in terms {
        for r in term.match_fields.iter().flatten() {
            if r.key == OBJECT_NAME_FIELD && r.operator == "In" {
                return match r.values.as_deref().unwrap_or(&[]) {
                    [one] => Some(one.clone()),
                    _ => None,
                };
            }
        }
    }
    None
}

// ------------------------------------------------------------------------------------------------
// Pods
// ------------------------------------------------------------------------------------------------

/// The controller reference a DaemonSet puts on its pods and revisions.
pub fn owner_ref(ds: &DaemonSet) -> Result<OwnerReference, String> {
    let name = ds.metadata.name.clone().filter(|n| !n.is_empty());
    let uid = ds.metadata.uid.clone().filter(|u| !u.is_empty());
    match (name, uid) {
        (Some(name), Some(uid)) => Ok(OwnerReference {
            api_version: API_VERSION.into(),
            kind: KIND.into(),
            name,
            uid,
            controller: Some(true),
            block_owner_deletion: Some(true),
        }),
        _ => Err("the DaemonSet has no name or uid".into()),
    }
}

/// kube's `getPodsPrefix`: `<name>-` when that is a valid generateName.
fn pod_name_prefix(name: &str) -> String {
    if name.len() < 253 {
        format!("{name}-")
    } else {
        name.to_string()
    }
}

/// The daemon pod for `node` (`CreatePodTemplate`, `ReplaceDaemonSetPodNodeNameNodeAffinity`
/// and `GetPodFromTemplate`): the template with the daemon tolerations, the labels
/// `pod-template-generation` and `controller-revision-hash`, pinned to the node by its node
/// affinity (the scheduler binds it), `generateName: <ds>-`, the DaemonSet as controller.
pub fn pod_for_node(ds: &DaemonSet, hash: &str, node: &str) -> Result<Pod, String> {
    let owner = owner_ref(ds)?;
    let template = template(ds).ok_or("spec.template is required")?;
    let meta = template.metadata.clone().unwrap_or_default();
    let mut pod_labels = meta.labels.unwrap_or_default();
    if let Some(g) = template_generation(ds) {
        pod_labels.insert(TEMPLATE_GENERATION_LABEL.into(), g.to_string());
    }
    if !hash.is_empty() {
        pod_labels.insert(POD_REVISION_LABEL.into(), hash.into());
    }
    let mut spec = template
        .spec
        .clone()
        .ok_or("spec.template.spec is required")?;
    add_daemon_tolerations(&mut spec);
    spec.affinity = Some(pin_to_node(spec.affinity.take(), node));
    Ok(Pod {
        metadata: ObjectMeta {
            generate_name: Some(pod_name_prefix(&owner.name)),
            namespace: ds.metadata.namespace.clone(),
            labels: Some(pod_labels),
            annotations: meta.annotations,
            finalizers: meta.finalizers,
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        spec: Some(spec),
        status: None,
    })
}

fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

fn is_terminal(pod: &Pod) -> bool {
    matches!(phase(pod), PHASE_FAILED | PHASE_SUCCEEDED)
}

fn pod_label<'a>(pod: &'a Pod, key: &str) -> Option<&'a str> {
    pod.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(key))
        .map(String::as_str)
}

/// `IsPodUpdated`: the pod carries the current revision's hash, or the current template
/// generation.
pub fn is_pod_updated(pod: &Pod, hash: &str, generation: Option<i64>) -> bool {
    let hash_matches = !hash.is_empty() && pod_label(pod, POD_REVISION_LABEL) == Some(hash);
    let generation_matches = generation
        .is_some_and(|g| pod_label(pod, TEMPLATE_GENERATION_LABEL) == Some(g.to_string().as_str()));
    hash_matches || generation_matches
}

/// `podByCreationTimestampAndPhase`: scheduled pods first, then the oldest, then by name.
pub fn by_creation_and_phase(a: &Arc<Pod>, b: &Arc<Pod>) -> Ordering {
    let scheduled = |p: &Pod| {
        p.spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .is_some_and(|n| !n.is_empty())
    };
    let created = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
    scheduled(b)
        .cmp(&scheduled(a))
        .then_with(|| created(a).cmp(&created(b)))
        .then_with(|| a.metadata.name.cmp(&b.metadata.name))
}

/// The daemon pods by the node they run on or are pinned to (`getNodesToDaemonPods`); terminal
/// pods already being deleted are left out, and so are pods with no target node.
pub type NodePods = BTreeMap<String, Vec<Arc<Pod>>>;

pub fn nodes_to_pods(pods: &[Arc<Pod>]) -> NodePods {
    let mut by_node = NodePods::new();
    for pod in pods {
        if is_terminal(pod) && pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        if let Some(node) = target_node(pod) {
            by_node.entry(node).or_default().push(pod.clone());
        }
    }
    by_node
}

// ------------------------------------------------------------------------------------------------
// Claiming pods and revisions
// ------------------------------------------------------------------------------------------------

/// Who the objects of a namespace belong to, from one DaemonSet's point of view (kube's
/// `ClaimPods` / `ClaimControllerRevisions`, which the DaemonSet controller runs over every
/// pod, terminal ones included).
#[derive(Debug, Clone)]
pub struct Claim<K> {
    /// Controlled by the DaemonSet and matching its selector.
    pub owned: Vec<Arc<K>>,
    /// Orphans that match (and are not being deleted): to adopt.
    pub adopt: Vec<Arc<K>>,
    /// Controlled by the DaemonSet but no longer matching: to release.
    pub release: Vec<Arc<K>>,
}

pub fn claim<K: kube::Resource>(
    ds: &DaemonSet,
    selector: &Selector,
    objects: &[Arc<K>],
) -> Claim<K> {
    let uid = ds.metadata.uid.as_deref().unwrap_or("");
    let ns = ds.metadata.namespace.as_deref().unwrap_or("");
    let deleting = ds.metadata.deletion_timestamp.is_some();
    let mut c = Claim {
        owned: Vec::new(),
        adopt: Vec::new(),
        release: Vec::new(),
    };
    for obj in objects {
        let meta = obj.meta();
        if meta.namespace.as_deref().unwrap_or("") != ns {
            continue;
        }
        let matches = selector.matches(labels(meta));
        match controller_ref(meta) {
            Some(r) if !uid.is_empty() && r.uid == uid => {
                if matches {
                    c.owned.push(obj.clone());
                } else if !deleting {
                    c.release.push(obj.clone());
                }
            }
            Some(_) => {}
            None => {
                if matches && !deleting && !uid.is_empty() && meta.deletion_timestamp.is_none() {
                    c.adopt.push(obj.clone());
                }
            }
        }
    }
    c
}

/// The strategic-merge patch that adopts an object (its uid a precondition).
pub fn adopt_patch(ds: &DaemonSet, meta: &ObjectMeta) -> Result<Value, String> {
    Ok(json!({
        "metadata": {
            "ownerReferences": [owner_ref(ds)?],
            "uid": meta.uid.as_deref().unwrap_or(""),
        }
    }))
}

/// The strategic-merge patch that releases an object: deletes this DaemonSet's reference.
pub fn release_patch(ds: &DaemonSet, meta: &ObjectMeta) -> Value {
    json!({
        "metadata": {
            "ownerReferences": [{"$patch": "delete", "uid": ds.metadata.uid.as_deref().unwrap_or("")}],
            "uid": meta.uid.as_deref().unwrap_or(""),
        }
    })
}

// ------------------------------------------------------------------------------------------------
// The failed-pod backoff
// ------------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
struct BackoffEntry {
    delay: Duration,
    last_update: Instant,
}

/// client-go's `flowcontrol.Backoff` as the DaemonSet controller uses it for failed pods (1 s
/// doubling to 15 min, per DaemonSet, generation and node), without jitter. An entry not
/// touched for twice the maximum has expired and starts over.
///
/// Bound: one entry per (DaemonSet, generation, node) with a failed pod, dropped by [`gc`]
/// once expired.
///
/// [`gc`]: FailedPodBackoff::gc
#[derive(Debug, Default)]
pub struct FailedPodBackoff {
    entries: HashMap<String, BackoffEntry>,
}

fn expired(now: Instant, last_update: Instant) -> bool {
    now.saturating_duration_since(last_update) > FAILED_POD_BACKOFF_MAX * 2
}

impl FailedPodBackoff {
    /// `failedPodsBackoffKey`.
    pub fn key(ds: &DaemonSet, node: &str) -> String {
        format!(
            "{}/{}/{node}",
            ds.metadata.uid.as_deref().unwrap_or(""),
            ds.status
                .as_ref()
                .and_then(|s| s.observed_generation)
                .unwrap_or(0)
        )
    }

    /// `IsInBackOffSinceUpdate`: within the current delay of the last failure.
    pub fn in_backoff(&self, key: &str, now: Instant) -> bool {
        self.entries.get(key).is_some_and(|e| {
            !expired(now, e.last_update) && now.saturating_duration_since(e.last_update) < e.delay
        })
    }

    /// The current delay (zero without an entry).
    pub fn delay(&self, key: &str) -> Duration {
        self.entries.get(key).map_or(Duration::ZERO, |e| e.delay)
    }

    /// `Next`: another failure now — the delay starts at 1 s or doubles.
    pub fn next(&mut self, key: &str, now: Instant) {
        let delay = match self.entries.get(key) {
            Some(e) if !expired(now, e.last_update) => (e.delay * 2).min(FAILED_POD_BACKOFF_MAX),
            _ => FAILED_POD_BACKOFF_INITIAL,
        };
        self.entries.insert(
            key.to_string(),
            BackoffEntry {
                delay,
                last_update: now,
            },
        );
    }

    /// Drops expired entries.
    pub fn gc(&mut self, now: Instant) {
        self.entries.retain(|_, e| !expired(now, e.last_update));
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

// ------------------------------------------------------------------------------------------------
// manage and rollingUpdate
// ------------------------------------------------------------------------------------------------

/// An Event to record about the DaemonSet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanEvent {
    pub warning: bool,
    pub reason: &'static str,
    pub message: String,
}

/// What one step of a sync does: create a pod on each of `create_on`, delete `delete`.
#[derive(Debug, Clone, Default)]
pub struct Changes {
    pub create_on: Vec<String>,
    pub delete: Vec<Arc<Pod>>,
    pub events: Vec<PlanEvent>,
    /// Sync again after this long (a failed pod in backoff).
    pub requeue_after: Option<Duration>,
}

impl Changes {
    fn requeue(&mut self, after: Duration) {
        self.requeue_after = Some(self.requeue_after.map_or(after, |d| d.min(after)));
    }

    /// At most [`BURST_REPLICAS`] of each (`syncNodes`).
    fn cap(mut self) -> Self {
        self.create_on.truncate(BURST_REPLICAS);
        self.delete.truncate(BURST_REPLICAS);
        self
    }

    pub fn is_empty(&self) -> bool {
        self.create_on.is_empty() && self.delete.is_empty()
    }
}

fn pod_name(pod: &Pod) -> &str {
    pod.metadata.name.as_deref().unwrap_or("")
}

/// The clocks a decision reads: the wall clock for pod availability, the monotonic one for the
/// failed-pod backoff.
#[derive(Debug, Clone, Copy)]
pub struct Clocks {
    pub now: DateTime<Utc>,
    pub at: Instant,
}

/// `podsShouldBeOnNode` for one node.
fn pods_should_be_on_node(
    ds: &DaemonSet,
    node: &Node,
    node_pods: &NodePods,
    hash: &str,
    clocks: Clocks,
    backoff: &mut FailedPodBackoff,
    out: &mut Changes,
) {
    let name = node.metadata.name.as_deref().unwrap_or("");
    let place = placement(node, ds);
    let daemon_pods = node_pods.get(name);
    match daemon_pods {
        None if place.should_run => out.create_on.push(name.to_string()),
        None => {}
        Some(pods) if place.should_continue_running => {
            let mut running: Vec<Arc<Pod>> = Vec::new();
            for pod in pods {
                if pod.metadata.deletion_timestamp.is_some() {
                    continue;
                }
                let ns = pod.metadata.namespace.as_deref().unwrap_or("");
                match phase(pod) {
                    PHASE_FAILED => {
                        // kube fights kubelets that reject pods with a backoff, not a hot loop.
                        let key = FailedPodBackoff::key(ds, name);
                        if backoff.in_backoff(&key, clocks.at) {
                            out.requeue(backoff.delay(&key));
                            continue;
                        }
                        backoff.next(&key, clocks.at);
                        out.events.push(PlanEvent {
                            warning: true,
                            reason: FAILED_DAEMON_POD,
                            message: format!(
                                "Found failed daemon pod {ns}/{} on node {name}, will try to kill it",
                                pod_name(pod)
                            ),
                        });
                        out.delete.push(pod.clone());
                    }
                    PHASE_SUCCEEDED => {
                        out.events.push(PlanEvent {
                            warning: false,
                            reason: SUCCEEDED_DAEMON_POD,
                            message: format!(
                                "Found succeeded daemon pod {ns}/{} on node {name}, will try to delete it",
                                pod_name(pod)
                            ),
                        });
                        out.delete.push(pod.clone());
                    }
                    _ => running.push(pod.clone()),
                }
            }
            running.sort_by(by_creation_and_phase);
            if !allows_surge(ds) {
                // One pod per node: keep the oldest.
                out.delete.extend(running.iter().skip(1).cloned());
                return;
            }
            if running.len() <= 1 {
                if running.is_empty() && place.should_run {
                    out.create_on.push(name.to_string());
                }
                return;
            }
            // Surging: keep the oldest new pod, and the oldest old pod while it is ready and
            // the new one is not yet available.
            let mut oldest_new: Option<&Arc<Pod>> = None;
            let mut oldest_old: Option<&Arc<Pod>> = None;
            for pod in &running {
                let slot = if pod_label(pod, POD_REVISION_LABEL) == Some(hash) {
                    &mut oldest_new
                } else {
                    &mut oldest_old
                };
                if slot.is_none() {
                    *slot = Some(pod);
                } else {
                    out.delete.push(pod.clone());
                }
            }
            if let (Some(new), Some(old)) = (oldest_new, oldest_old) {
                if !is_pod_ready(old) || is_pod_available(new, min_ready_seconds(ds), clocks.now) {
                    out.delete.push(old.clone());
                }
            }
        }
        Some(pods) => {
            // Should not run here, and may not stay: every daemon pod goes.
            out.delete.extend(
                pods.iter()
                    .filter(|p| p.metadata.deletion_timestamp.is_none())
                    .cloned(),
            );
        }
    }
}

/// kube's `manage`: for every live node, the pods to create and delete; and unscheduled pods
/// pinned to nodes that no longer exist (`getUnscheduledPodsWithoutNode`).
pub fn manage(
    ds: &DaemonSet,
    nodes: &[Arc<Node>],
    node_pods: &NodePods,
    hash: &str,
    clocks: Clocks,
    backoff: &mut FailedPodBackoff,
) -> Changes {
    let mut out = Changes::default();
    for node in nodes {
        pods_should_be_on_node(ds, node, node_pods, hash, clocks, backoff, &mut out);
    }
    let live: HashSet<&str> = nodes
        .iter()
        .filter_map(|n| n.metadata.name.as_deref())
        .collect();
    for (node, pods) in node_pods {
        if live.contains(node.as_str()) {
            continue;
        }
        out.delete.extend(
            pods.iter()
                .filter(|p| {
                    p.spec
                        .as_ref()
                        .and_then(|s| s.node_name.as_deref())
                        .is_none_or(str::is_empty)
                })
                .cloned(),
        );
    }
    out.cap()
}

/// `findUpdatedPodsOnNode`: the node's (new, old) pod among those not being deleted; `None`
/// when it has more than one of either (the manage step prunes those first).
#[allow(clippy::type_complexity)]
fn updated_pods_on_node<'a>(
    pods: &'a [Arc<Pod>],
    hash: &str,
    generation: Option<i64>,
) -> Option<(Option<&'a Arc<Pod>>, Option<&'a Arc<Pod>>)> {
    let (mut new, mut old) = (None, None);
    for pod in pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
    {
        let slot = if is_pod_updated(pod, hash, generation) {
            &mut new
        } else {
            &mut old
        };
        if slot.is_some() {
            return None;
        }
        *slot = Some(pod);
    }
    Some((new, old))
}

/// kube's `rollingUpdate`. Without a surge, deletes old pods — the unavailable ones, then
/// available ones while fewer than maxUnavailable pods are unavailable — and the next manage
/// step creates their replacements. With a surge, creates a new pod next to an old one (at
/// once when the old one is unavailable, else up to maxSurge at a time) and deletes the old
/// pod once the new one is available.
pub fn rolling_update(
    ds: &DaemonSet,
    nodes: &[Arc<Node>],
    node_pods: &NodePods,
    hash: &str,
    now: DateTime<Utc>,
) -> Result<Changes, String> {
    // updatedDesiredNodeCounts
    let mut by_node: BTreeMap<&str, &[Arc<Pod>]> = node_pods
        .iter()
        .map(|(n, p)| (n.as_str(), p.as_slice()))
        .collect();
    let mut desired = 0;
    let mut placements: HashMap<&str, Placement> = HashMap::new();
    for node in nodes {
        let name = node.metadata.name.as_deref().unwrap_or("");
        let place = placement(node, ds);
        placements.insert(name, place);
        if place.should_run {
            desired += 1;
            by_node.entry(name).or_insert(&[]);
        }
    }
    let mut max_surge = surge_count(ds, desired)?;
    let mut max_unavailable = unavailable_count(ds, desired)?;
    if desired > 0 && max_surge == 0 && max_unavailable == 0 {
        max_unavailable = 1;
    }
    max_surge = max_surge.max(0);
    let generation = template_generation(ds);
    let min_ready = min_ready_seconds(ds);
    let available = |p: &Pod| is_pod_available(p, min_ready, now);
    let mut out = Changes::default();

    if max_surge == 0 {
        let mut unavailable = 0;
        let mut replace_now: Vec<Arc<Pod>> = Vec::new();
        let mut candidates: Vec<Arc<Pod>> = Vec::new();
        for pods in by_node.values() {
            let Some((new, old)) = updated_pods_on_node(pods, hash, generation) else {
                unavailable += 1;
                continue;
            };
            match (new, old) {
                (None, None) | (Some(_), Some(_)) => unavailable += 1,
                (Some(new), None) => {
                    if !available(new) {
                        unavailable += 1;
                    }
                }
                (None, Some(old)) => {
                    if !available(old) {
                        replace_now.push(old.clone());
                    } else if unavailable < max_unavailable {
                        candidates.push(old.clone());
                    }
                }
            }
        }
        let remaining = usize::try_from((max_unavailable - unavailable).max(0)).unwrap_or(0);
        out.delete = replace_now;
        out.delete.extend(candidates.into_iter().take(remaining));
        return Ok(out.cap());
    }

    let mut should_not_run: Vec<Arc<Pod>> = Vec::new();
    let mut candidate_nodes: Vec<String> = Vec::new();
    let mut allowed_nodes: Vec<String> = Vec::new();
    let mut surging = 0;
    let mut number_available = 0;
    for (&node, pods) in &by_node {
        let Some((new, old)) = updated_pods_on_node(pods, hash, generation) else {
            surging += 1;
            continue;
        };
        if let Some(p) = old.or(new) {
            if available(p) {
                number_available += 1;
            }
        }
        match (new, old) {
            (_, None) => {}
            (None, Some(old)) => {
                // A node kube cannot look up makes its rollingUpdate fail; here it is skipped.
                let Some(place) = placements.get(node) else {
                    continue;
                };
                if !available(old) {
                    if !place.should_run {
                        out.delete.push(old.clone());
                        continue;
                    }
                    allowed_nodes.push(node.to_string());
                } else {
                    if !place.should_run {
                        should_not_run.push(old.clone());
                        continue;
                    }
                    if surging >= max_surge {
                        continue;
                    }
                    candidate_nodes.push(node.to_string());
                }
            }
            (Some(new), Some(old)) => {
                if !available(new) {
                    surging += 1;
                    continue;
                }
                out.delete.push(old.clone());
            }
        }
    }
    // With a surge the owner expects full availability: pods on nodes that should no longer
    // run one go only as others become available.
    let deletable = usize::try_from(number_available - desired).unwrap_or(0);
    out.delete
        .extend(should_not_run.into_iter().take(deletable));
    let remaining = usize::try_from((max_surge - surging).max(0)).unwrap_or(0);
    out.create_on = allowed_nodes;
    out.create_on
        .extend(candidate_nodes.into_iter().take(remaining));
    Ok(out.cap())
}

// ------------------------------------------------------------------------------------------------
// Status
// ------------------------------------------------------------------------------------------------

/// The numbers `updateDaemonSetStatus` counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub desired: i32,
    pub current: i32,
    pub misscheduled: i32,
    pub ready: i32,
    pub updated: i32,
    pub available: i32,
    pub unavailable: i32,
}

/// Counts nodes: those that should run a pod (desired), of them those that have one (current;
/// its oldest pod ready, available, updated), and those that have one but should not
/// (misscheduled).
pub fn count(
    ds: &DaemonSet,
    nodes: &[Arc<Node>],
    node_pods: &NodePods,
    hash: &str,
    now: DateTime<Utc>,
) -> Counts {
    let mut c = Counts::default();
    let generation = template_generation(ds);
    let min_ready = min_ready_seconds(ds);
    for node in nodes {
        let name = node.metadata.name.as_deref().unwrap_or("");
        let pods = node_pods.get(name).filter(|p| !p.is_empty());
        if !placement(node, ds).should_run {
            if pods.is_some() {
                c.misscheduled += 1;
            }
            continue;
        }
        c.desired += 1;
        let Some(pods) = pods else {
            continue;
        };
        c.current += 1;
        let mut sorted = pods.clone();
        sorted.sort_by(by_creation_and_phase);
        let pod = &sorted[0];
        if is_pod_ready(pod) {
            c.ready += 1;
            if is_pod_available(pod, min_ready, now) {
                c.available += 1;
            }
        }
        if is_pod_updated(pod, hash, generation) {
            c.updated += 1;
        }
    }
    c.unavailable = c.desired - c.available;
    c
}

fn nonzero(n: i32) -> Option<i32> {
    (n != 0).then_some(n)
}

/// The status with `counts` written in (zeros of the `omitempty` fields left out, as kube's
/// JSON has them), and `observed_generation` when given.
pub fn next_status(
    current: Option<&DaemonSetStatus>,
    counts: Counts,
    observed_generation: Option<i64>,
) -> DaemonSetStatus {
    let mut s = current.cloned().unwrap_or_default();
    if observed_generation.is_some() {
        s.observed_generation = observed_generation;
    }
    s.desired_number_scheduled = counts.desired;
    s.current_number_scheduled = counts.current;
    s.number_misscheduled = counts.misscheduled;
    s.number_ready = counts.ready;
    s.updated_number_scheduled = nonzero(counts.updated);
    s.number_available = nonzero(counts.available);
    s.number_unavailable = nonzero(counts.unavailable);
    s
}

/// True when `new` differs from the DaemonSet's status (a zero and an absent number agree).
pub fn status_changed(ds: &DaemonSet, new: &DaemonSetStatus) -> bool {
    let norm = |s: &DaemonSetStatus| {
        let mut s = s.clone();
        for f in [
            &mut s.updated_number_scheduled,
            &mut s.number_available,
            &mut s.number_unavailable,
        ] {
            *f = f.filter(|n| *n != 0);
        }
        s
    };
    ds.status.as_ref().map(norm).unwrap_or_default() != norm(new)
}

/// When to sync again for availability: after minReadySeconds while some ready pod is not yet
/// available (kube's last line of defence against clock skew).
pub fn availability_requeue(ds: &DaemonSet, counts: Counts) -> Option<Duration> {
    let min_ready = min_ready_seconds(ds);
    (min_ready > 0 && counts.ready != counts.available)
        .then(|| Duration::from_secs(u64::try_from(min_ready).unwrap_or(0)))
}

// ------------------------------------------------------------------------------------------------
// ControllerRevisions
// ------------------------------------------------------------------------------------------------

/// kube's `getPatch`: the revision data, `{"spec":{"template":{…,"$patch":"replace"}}}`, which
/// `kubectl rollout undo` patches back onto the DaemonSet.
pub fn revision_data(ds: &DaemonSet) -> Value {
    let template = template(ds)
        .and_then(|t| serde_json::to_value(t).ok())
        .unwrap_or_else(|| json!({}));
    template_patch(&template)
}

/// kube's `Match`: the revision holds the DaemonSet's current template.
pub fn revision_matches(ds: &DaemonSet, rev: &ControllerRevision) -> bool {
    rev.data.as_ref().map(|d| &d.0) == Some(&revision_data(ds))
}

/// The revision's hash: its `controller-revision-hash` label, or its name when unlabelled
/// (kube labels such revisions with their name).
pub fn revision_hash(rev: &ControllerRevision) -> String {
    rev.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(POD_REVISION_LABEL))
        .cloned()
        .unwrap_or_else(|| rev.metadata.name.clone().unwrap_or_default())
}

/// The hash of the DaemonSet's template with its collision count.
pub fn template_hash(ds: &DaemonSet) -> String {
    let collision = ds.status.as_ref().and_then(|s| s.collision_count);
    template(ds).map_or_else(String::new, |t| compute_hash(t, collision))
}

/// kube's `snapshot`: the revision of the current template, named `<ds>-<hash>`, labelled with
/// the template's labels and the hash, annotated as the DaemonSet, controlled by it.
pub fn new_revision(ds: &DaemonSet, revision: i64) -> Result<ControllerRevision, String> {
    let owner = owner_ref(ds)?;
    let hash = template_hash(ds);
    let mut rev_labels = template(ds)
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    rev_labels.insert(POD_REVISION_LABEL.into(), hash.clone());
    Ok(ControllerRevision {
        metadata: ObjectMeta {
            name: Some(revision_name(&owner.name, &hash)),
            namespace: ds.metadata.namespace.clone(),
            labels: Some(rev_labels),
            annotations: ds.metadata.annotations.clone(),
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        data: Some(RawExtension(revision_data(ds))),
        revision,
    })
}

/// The current revision: an existing one, or one to create.
#[derive(Debug, Clone)]
pub enum Current {
    Existing(Arc<ControllerRevision>),
    Create(Box<ControllerRevision>),
}

/// What `constructHistory` does with a DaemonSet's revisions.
#[derive(Debug, Clone)]
pub struct HistoryPlan {
    pub current: Current,
    /// Give the current revision this number: it is current again (a rollback), so it becomes
    /// the newest.
    pub bump_to: Option<i64>,
    /// Other revisions equal to the current one: deleted (`dedupCurHistories`).
    pub duplicates: Vec<Arc<ControllerRevision>>,
    /// Pods labelled with a duplicate's hash: relabelled with the current one's first.
    pub relabel: Vec<Arc<Pod>>,
    /// The revisions that are not current.
    pub old: Vec<Arc<ControllerRevision>>,
}

/// kube's `constructHistory` and `dedupCurHistories` over the revisions the DaemonSet owns.
/// kube relabels every pod whose hash differs from the kept revision's before deleting a
/// duplicate; this relabels only the pods carrying a duplicate's hash, so pods of older
/// templates stay old.
pub fn plan_history(
    ds: &DaemonSet,
    revisions: &[Arc<ControllerRevision>],
    pods: &[Arc<Pod>],
) -> Result<HistoryPlan, String> {
    let (current, old): (Vec<_>, Vec<_>) = revisions
        .iter()
        .cloned()
        .partition(|r| revision_matches(ds, r));
    let next = old.iter().map(|r| r.revision).max().unwrap_or(0) + 1;
    if current.is_empty() {
        return Ok(HistoryPlan {
            current: Current::Create(Box::new(new_revision(ds, next)?)),
            bump_to: None,
            duplicates: Vec::new(),
            relabel: Vec::new(),
            old,
        });
    }
    // Keep the highest revision (the last of equals, as kube's `>=` scan).
    let mut keep = current[0].clone();
    for r in &current[1..] {
        if r.revision >= keep.revision {
            keep = r.clone();
        }
    }
    let duplicates: Vec<Arc<ControllerRevision>> = current
        .iter()
        .filter(|r| r.metadata.name != keep.metadata.name)
        .cloned()
        .collect();
    let duplicate_hashes: BTreeSet<String> = duplicates.iter().map(|r| revision_hash(r)).collect();
    let keep_hash = revision_hash(&keep);
    let relabel = pods
        .iter()
        .filter(|p| {
            pod_label(p, POD_REVISION_LABEL)
                .is_some_and(|h| h != keep_hash && duplicate_hashes.contains(h))
        })
        .cloned()
        .collect();
    Ok(HistoryPlan {
        bump_to: (keep.revision < next).then_some(next),
        current: Current::Existing(keep),
        duplicates,
        relabel,
        old,
    })
}

/// kube's `cleanupHistory`: beyond revisionHistoryLimit old revisions, the oldest ones that no
/// pod of the DaemonSet uses (by its `controller-revision-hash` label) are deleted.
pub fn revisions_to_truncate(
    ds: &DaemonSet,
    old: &[Arc<ControllerRevision>],
    pods: &[Arc<Pod>],
) -> Vec<Arc<ControllerRevision>> {
    let mut to_kill = old.len().saturating_sub(revision_history_limit(ds));
    if to_kill == 0 {
        return Vec::new();
    }
    let live: HashSet<&str> = pods
        .iter()
        .filter_map(|p| pod_label(p, POD_REVISION_LABEL))
        .filter(|h| !h.is_empty())
        .collect();
    let mut sorted = old.to_vec();
    sorted.sort_by(|a, b| by_revision(a, b));
    let mut out = Vec::new();
    for rev in sorted {
        if to_kill == 0 {
            break;
        }
        if live.contains(revision_hash(&rev).as_str()) {
            continue;
        }
        out.push(rev);
        to_kill -= 1;
    }
    out
}

/// The strategic-merge patch that sets a pod's `controller-revision-hash`.
pub fn relabel_patch(hash: &str) -> Value {
    json!({"metadata": {"labels": {POD_REVISION_LABEL: hash}}})
}

#[cfg(test)]
#[path = "sync_tests.rs"]
mod tests;
